// Mistake: a 7x7 kernel on a 5x5 image with no padding.
use shapesafe::prelude::*;

fn main() {
    let dev = Cpu::default();
    let conv = dev.build_module::<Conv2d<1, 4, 7>, f32>();
    let x: Tensor<Rank4<2, 1, 5, 5>, f32, _> = dev.zeros();
    let _ = conv.forward(x);
}
