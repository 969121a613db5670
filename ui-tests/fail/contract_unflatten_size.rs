// Mistake: a decoder's Linear gives 32 * 7 * 7 = 1568 features, but Unflatten<32, 14, 14> unfolds 6272.
use shapesafe::prelude::*;

type Decoder = ((Linear<16, 1568>, ReLU), Unflatten<32, 14, 14>);

shapesafe::assert_shapes!(Decoder: Rank1<16> => Rank3<32, 14, 14>);

fn main() {}
