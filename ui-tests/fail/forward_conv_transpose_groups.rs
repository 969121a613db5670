// Mistake: 4 groups cannot split 6 input channels of a transposed convolution.
use shapesafe::prelude::*;

fn main() {
    let dev = Cpu::default();
    let up = dev.build_module::<ConvTranspose2d<6, 8, 3, 2, 1, 1, 1, 4>, f32>();
    let x: Tensor<Rank4<1, 6, 7, 7>, f32, _> = dev.zeros();
    let _ = up.forward(x);
}
