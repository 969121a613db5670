// Mistake: Maxout<3> groups features in threes, but the layer before it gives 10.
use shapesafe::prelude::*;

fn main() {
    let dev = Cpu::default();
    let model = dev.build_module::<(Linear<4, 10>, Maxout<3>), f32>();
    let x: Tensor<Rank2<2, 4>, f32, _> = dev.zeros();
    let _ = model.forward(x);
}
