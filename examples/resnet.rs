//! Trains a small ResNet (a basic block at 28x28, then two strided blocks with projection
//! shortcuts, global average pooling) on MNIST in `data/mnist`, and prints test accuracy.
//!
//! ```text
//! cargo run --release --example resnet -- [--epochs N] [--batch-size B] [--lr LR] [--lr-decay GAMMA]
//!     [--data DIR] [--out DIR] [--seed S]
//! ```

mod common;

use shapesafe::models::resnet::{BasicBlock, BasicBlockDown, ConvBn, Head};
use shapesafe::prelude::*;

/// ResNet's blocks at MNIST's size: 28x28 (16 channels) -> 14x14 (32) -> 7x7 (64).
type SmallResNet = (
    (ConvBn<1, 16, 3, 1, 1>, ReLU),
    BasicBlock<16>,
    BasicBlockDown<16, 32, 2>,
    BasicBlockDown<32, 64, 2>,
    Head<64, 10>,
);

shapesafe::assert_shapes!(SmallResNet: Rank3<1, 28, 28> => Rank1<10>, params = 77_754);

fn main() {
    let args = common::parse_args("resnet", common::defaults("resnet", 2, 2e-3));
    if let Err(e) = args.and_then(|a| common::train_on_mnist::<SmallResNet>("resnet", a)) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
