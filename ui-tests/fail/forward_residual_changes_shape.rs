// Mistake: a residual branch that doubles the channels and halves the size has no
// shortcut projection, so `branch(x) + x` adds (128, 16, 16) to (64, 32, 32).
use shapesafe::prelude::*;

type Block = Residual<(Conv2d<64, 128, 3, 2, 1>, BatchNorm2d<128>, ReLU)>;

fn main() {
    let dev = Cpu::default();
    let block = dev.build_module::<Block, f32>();
    let x: Tensor<Rank4<2, 64, 32, 32>, f32, _> = dev.zeros();
    let _ = block.forward(x);
}
