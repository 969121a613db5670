// Mistake: the same model with a contract: `cargo check` already fails, at the field's line.
use shapesafe::prelude::*;

#[derive(Sequential, Clone, Copy, Default)]
#[built(Net)]
#[shapes(input = Rank3<1, 28, 28>, output = Rank1<10>)]
struct NetConfig {
    conv1: Conv2d<1, 6, 5>,
    pool1: MaxPool2d<2>,
    conv2: Conv2d<6, 16, 5>,
    pool2: MaxPool2d<2>,
    flatten: Flatten,
    fc1: Linear<400, 120>,
    fc2: Linear<120, 10>,
}

fn main() {}
