// Mistake: 4 groups cannot split 6 input channels.
use shapesafe::prelude::*;

fn main() {
    let dev = Cpu::default();
    let conv = dev.build_module::<Conv2d<6, 16, 3, 1, 0, 1, 4>, f32>();
    let x: Tensor<Rank4<1, 6, 8, 8>, f32, _> = dev.zeros();
    let _ = conv.forward(x);
}
