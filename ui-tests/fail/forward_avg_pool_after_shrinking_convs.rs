// Mistake: two unpadded 3x3 convs shrink 5x5 to 1x1, too small for the 2x2 average pool after them.
use shapesafe::prelude::*;

type Net = (Conv2d<1, 4, 3>, ReLU, Conv2d<4, 4, 3>, ReLU, AvgPool2d<2>);

fn main() {
    let dev = Cpu::default();
    let model = dev.build_module::<Net, f32>();
    let x: Tensor<(usize, Const<1>, Const<5>, Const<5>), f32, _> = dev.zeros_like(&(3, Const, Const, Const));
    let _ = model.forward(x);
}
