// Mistake: conv1 has no padding, so the conv stack flattens to 16 * 4 * 4 = 256, not the 400 that Linear<400, 120> expects.
use shapesafe::prelude::*;

type Net = (
    (Conv2d<1, 6, 5>, ReLU, MaxPool2d<2>),
    (Conv2d<6, 16, 5>, ReLU, MaxPool2d<2>),
    Flatten,
    (Linear<400, 120>, ReLU),
    Linear<120, 10>,
);

shapesafe::assert_shapes!(Net: Rank3<1, 28, 28> => Rank1<10>);

fn main() {}
