//! Trains a small ResNet (a basic block at 28x28, then two strided blocks with projection
//! shortcuts, global average pooling) on MNIST in `data/mnist`, and prints test accuracy.
//!
//! ```text
//! cargo run --release --example resnet -- [--epochs N] [--batch-size B] [--lr LR] [--lr-decay GAMMA]
//!     [--patience P] [--data DIR] [--out DIR] [--resume FILE] [--seed S]
//!     [--device cpu|cuda|cuda:N]
//! ```

mod cli;
mod common;

use shapesafe::models::resnet::{BasicBlock, BasicBlockDown, ConvBn, Head};
use shapesafe::prelude::*;

/// ResNet's blocks at MNIST's size: 28x28 (8 channels) -> 14x14 (16) -> 7x7 (32).
type SmallResNet = (
    (ConvBn<1, 8, 3, 1, 1>, ReLU),
    BasicBlock<8>,
    BasicBlockDown<8, 16, 2>,
    BasicBlockDown<16, 32, 2>,
    Head<32, 10>,
);

shapesafe::assert_shapes!(SmallResNet: Rank3<1, 28, 28> => Rank1<10>, params = 19_810);

fn main() {
    let args = common::parse_args("resnet", common::defaults("resnet", 2, 2e-3));
    let run = |a: common::Args| {
        shapesafe::with_device!(a.device, a.seed, |dev| {
            common::train_on_mnist::<SmallResNet, _>("resnet", a, dev)
        })
    };
    if let Err(e) = args.and_then(run) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
