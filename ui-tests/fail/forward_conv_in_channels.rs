// Mistake: an RGB convolution fed a greyscale image.
use shapesafe::prelude::*;

fn main() {
    let dev = Cpu::default();
    let conv = dev.build_module::<Conv2d<3, 8, 3>, f32>();
    let x: Tensor<Rank3<1, 28, 28>, f32, _> = dev.zeros();
    let _ = conv.forward(x);
}
