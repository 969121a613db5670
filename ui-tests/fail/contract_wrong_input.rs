// Mistake: the contract claims LeNet5 takes 3-channel images; its first conv takes 1.
use shapesafe::models::LeNet5;
use shapesafe::prelude::*;

shapesafe::assert_shapes!(LeNet5: Rank3<3, 28, 28> => Rank1<10>);

fn main() {}
