// Mistake: a U-Net skip whose upsampling branch lost a pixel to an unpadded 2x2 conv,
// so the two feature maps cannot be stacked along the channels.
use shapesafe::prelude::*;

type Skip = Concat<Identity, Conv2d<64, 64, 2>>;

fn main() {
    let dev = Cpu::default();
    let skip = dev.build_module::<Skip, f32>();
    let x: Tensor<Rank4<1, 64, 28, 28>, f32, _> = dev.zeros();
    let _ = skip.forward(x);
}
