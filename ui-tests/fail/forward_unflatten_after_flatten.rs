// Mistake: the conv stack flattens to 16 * 4 * 4 = 256 features, which Unflatten<16, 5, 5> cannot unfold.
use shapesafe::prelude::*;

type Net = (Conv2d<1, 16, 5>, Flatten, Unflatten<16, 5, 5>);

fn main() {
    let dev = Cpu::default();
    let model = dev.build_module::<Net, f32>();
    let x: Tensor<Rank4<2, 1, 8, 8>, f32, _> = dev.zeros();
    let _ = model.forward(x);
}
