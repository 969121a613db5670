//! Trains LeNet-5 on the full MNIST set in `data/mnist` with the training toolkit:
//! progress bars, per-epoch validation, early stopping, a learning-rate schedule,
//! checkpoints you can `--resume`, metrics CSV and loss/accuracy curves, and a
//! final test report with a confusion matrix. The run itself is `train_on_mnist` in
//! `examples/common`, which the other MNIST examples share.
//!
//! ```text
//! cargo run --release --example lenet -- [--epochs N] [--batch-size B] [--lr LR]
//!     [--lr-decay GAMMA] [--patience P] [--data DIR] [--out DIR] [--resume FILE] [--seed S]
//!     [--device cpu|cuda|cuda:N]
//! ```

mod cli;
mod common;

use shapesafe::models::LeNet5;

fn main() {
    let args = common::parse_args("lenet", common::lenet_defaults());
    let run = |a: common::Args| {
        shapesafe::with_device!(a.device, a.seed, |dev| {
            common::train_on_mnist::<LeNet5, _>("lenet5", a, dev)
        })
    };
    if let Err(e) = args.and_then(run) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
