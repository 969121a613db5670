// Mistake: shuffling 116 channels in 3 groups, which 116 does not divide.
use shapesafe::prelude::*;

fn main() {
    let dev = Cpu::default();
    let x: Tensor<Rank4<1, 116, 4, 4>, f32, _> = dev.zeros();
    let _ = ChannelShuffle::<3>.forward(x);
}
