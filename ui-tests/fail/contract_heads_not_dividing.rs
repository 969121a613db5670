// Mistake: 3 attention heads cannot split a model width of 100 evenly.
use shapesafe::prelude::*;

shapesafe::assert_shapes!(MultiHeadAttention<100, 3>: Rank2<16, 100> => Rank2<16, 100>);

fn main() {}
