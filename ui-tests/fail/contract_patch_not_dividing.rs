// Mistake: 5x5 patches do not tile a 28x28 image.
use shapesafe::models::VisionTransformer;
use shapesafe::prelude::*;

shapesafe::assert_shapes!(
    VisionTransformer<1, 28, 5, 16, 2, 32, 1, 10>: Rank3<1, 28, 28> => Rank1<10>
);

fn main() {}
