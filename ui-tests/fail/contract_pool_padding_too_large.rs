// Mistake: padding 2 on a 2x2 window would make windows of padding only (PyTorch forbids it too).
use shapesafe::prelude::*;

shapesafe::assert_shapes!(MaxPool2d<2, 2, 2>: Rank3<4, 8, 8> => Rank3<4, 6, 6>);

fn main() {}
