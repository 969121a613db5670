//! Trains a small VGG (two stages of 3x3 convolutions with batch norm, then a dropout
//! classifier) on MNIST in `data/mnist`, and prints test accuracy.
//!
//! ```text
//! cargo run --release --example vgg -- [--epochs N] [--batch-size B] [--lr LR] [--lr-decay GAMMA]
//!     [--patience P] [--data DIR] [--out DIR] [--resume FILE] [--seed S]
//!     [--device cpu|cuda|cuda:N]
//! ```

mod cli;
mod common;

use shapesafe::models::vgg::BnStage2;
use shapesafe::prelude::*;

/// VGG's pattern at MNIST's size: 28x28 -> 14x14 (16 channels) -> 7x7 (32 channels).
type SmallVgg = (
    (BnStage2<1, 16>, BnStage2<16, 32>),
    Flatten,
    (Linear<1568, 128>, ReLU, Dropout),
    Linear<128, 10>,
);

shapesafe::assert_shapes!(SmallVgg: Rank3<1, 28, 28> => Rank1<10>, params = 218_682);

fn main() {
    let args = common::parse_args("vgg", common::defaults("vgg", 2, 1e-3));
    let run = |a: common::Args| {
        shapesafe::with_device!(a.device, a.seed, |dev| {
            common::train_on_mnist::<SmallVgg, _>("vgg", a, dev)
        })
    };
    if let Err(e) = args.and_then(run) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
