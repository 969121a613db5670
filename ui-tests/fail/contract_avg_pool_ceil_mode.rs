// Mistake: ceil mode on an average pool, which shapesafe supports for max pooling only.
use shapesafe::prelude::*;

shapesafe::assert_shapes!(AvgPool2d<3, 2, 0, true>: Rank3<8, 16, 16> => Rank3<8, 8, 8>);

fn main() {}
