// Mistake: a stride of 0 never moves the window.
use shapesafe::prelude::*;

shapesafe::assert_shapes!(Conv2d<1, 4, 3, 0>: Rank3<1, 8, 8> => Rank3<4, 6, 6>);

fn main() {}
