// Mistake: a tuple of seven layers; tuples are models up to six elements (as in dfdx). The
// contract says to nest the tuple or derive a struct.
use shapesafe::prelude::*;

type Net = (
    Linear<8, 8>,
    ReLU,
    Linear<8, 8>,
    ReLU,
    Linear<8, 8>,
    ReLU,
    Linear<8, 2>,
);
shapesafe::assert_shapes!(Net: Rank1<8> => Rank1<2>);

fn main() {}
