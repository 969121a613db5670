// Mistake: 4 groups cannot split 6 output channels.
use shapesafe::prelude::*;

shapesafe::assert_shapes!(Conv2d<8, 6, 3, 1, 0, 1, 4>: Rank3<8, 8, 8> => Rank3<6, 6, 6>);

fn main() {}
