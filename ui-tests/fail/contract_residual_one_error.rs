// Mistake: the same network under a contract: one error, at the contract's line.
use shapesafe::prelude::*;

type Net = (
    Conv2d<3, 64, 3, 1, 1>,
    Residual<(Conv2d<64, 128, 3, 2, 1>, BatchNorm2d<128>, ReLU)>,
    Conv2d<128, 128, 3, 1, 1>,
    GlobalAvgPool2d,
    Linear<128, 10>,
);
shapesafe::assert_shapes!(Net: Rank3<3, 32, 32> => Rank1<10>);

fn main() {}
