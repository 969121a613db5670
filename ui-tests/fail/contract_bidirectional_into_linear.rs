// Mistake: a bidirectional LSTM outputs 2 * 64 = 128 features (both directions), not 64.
use shapesafe::prelude::*;

type Net = (Lstm<28, 64, 1, true>, LastStep, Linear<64, 10>);

shapesafe::assert_shapes!(Net: Rank2<28, 28> => Rank1<10>);

fn main() {}
