// Mistake: a 3-tap kernel with dilation 3 spans 7 pixels, more than the 6x6 input.
use shapesafe::prelude::*;

type Net = (Conv2d<1, 4, 3, 1, 0, 3>, ReLU);

shapesafe::assert_shapes!(Net: Rank3<1, 6, 6> => Rank3<4, 1, 1>);

fn main() {}
