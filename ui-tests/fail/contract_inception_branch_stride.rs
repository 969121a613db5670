// Mistake: an Inception block whose 3x3 branch strides by 2, so its output is half the size
// of the other branches' and the four cannot be concatenated along the channels.
use shapesafe::models::googlenet::{builder::BasicConv2d, InceptionBranches};
use shapesafe::prelude::*;

type Block = InceptionBranches<
    BasicConv2d<192, 64, 1>,
    (BasicConv2d<192, 96, 1>, BasicConv2d<96, 128, 3, 2, 1>),
    (BasicConv2d<192, 16, 1>, BasicConv2d<16, 32, 3, 1, 1>),
    (MaxPool2d<3, 1, 1, true>, BasicConv2d<192, 32, 1>),
>;

shapesafe::assert_shapes!(Block: Rank3<192, 28, 28> => Rank3<256, 28, 28>);

fn main() {}
