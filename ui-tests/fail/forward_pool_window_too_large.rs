// Mistake: a 4x4 max-pool window on a 3x3 feature map.
use shapesafe::prelude::*;

fn main() {
    let dev = Cpu::default();
    let x: Tensor<Rank3<8, 3, 3>, f32, _> = dev.zeros();
    let _ = MaxPool2d::<4>.forward(x);
}
