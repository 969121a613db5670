// Mistake: the contract's parameter count is not LeNet5's 61,706.
use shapesafe::models::LeNet5;
use shapesafe::prelude::*;

shapesafe::assert_shapes!(LeNet5: Rank3<1, 28, 28> => Rank1<10>, params = 60_000);

fn main() {}
