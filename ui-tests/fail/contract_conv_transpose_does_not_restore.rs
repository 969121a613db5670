// Mistake: the decoder's transposed convolution lacks output_padding = 1, so the
// autoencoder maps 28x28 to 27x27, not back to 28x28.
use shapesafe::prelude::*;

type AutoEncoder = (
    (Conv2d<1, 8, 3, 2, 1>, ReLU),
    (ConvTranspose2d<8, 1, 3, 2, 1>, Sigmoid),
);

shapesafe::assert_shapes!(AutoEncoder: Rank3<1, 28, 28> => Rank3<1, 28, 28>);

fn main() {}
