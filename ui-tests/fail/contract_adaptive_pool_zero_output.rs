// Mistake: an adaptive pool to 0 rows has no windows to average.
use shapesafe::prelude::*;

shapesafe::assert_shapes!(AdaptiveAvgPool2d<0, 7>: Rank3<512, 14, 14> => Rank3<512, 0, 7>);

fn main() {}
