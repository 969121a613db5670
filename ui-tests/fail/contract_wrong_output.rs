// Mistake: the contract says 12 classes; LeNet5 outputs 10 logits.
use shapesafe::models::LeNet5;
use shapesafe::prelude::*;

shapesafe::assert_shapes!(LeNet5: Rank3<1, 28, 28> => Rank1<12>);

fn main() {}
