// Mistake: repeating a block that widens its input, so the second copy gets 128 channels
// where it expects 64.
use shapesafe::prelude::*;

type Stage = Repeated<(Conv2d<64, 128, 3, 1, 1>, ReLU), 3>;

shapesafe::assert_shapes!(Stage: Rank3<64, 28, 28> => Rank3<64, 28, 28>);

fn main() {}
