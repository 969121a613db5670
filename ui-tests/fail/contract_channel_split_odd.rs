// Mistake: a ShuffleNet V2 unit on 115 channels, which do not split into two halves.
use shapesafe::models::shufflenet::ShuffleUnit;
use shapesafe::prelude::*;

shapesafe::assert_shapes!(ShuffleUnit<58>: Rank3<115, 28, 28> => Rank3<115, 28, 28>);

fn main() {}
