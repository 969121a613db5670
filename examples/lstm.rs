//! Classifies MNIST digits with an LSTM that reads each image row by row ("sequential MNIST"):
//! 28 steps of 28 pixels, the last step's hidden state, then a linear classifier. Prints
//! per-epoch progress and the test accuracy.
//!
//! ```text
//! cargo run --release --example lstm -- [--epochs N] [--batch-size B] [--lr LR] [--lr-decay GAMMA]
//!     [--patience P] [--data DIR] [--out DIR] [--resume FILE] [--seed S]
//!     [--device cpu|cuda|cuda:N]
//! ```

mod cli;
mod common;

use shapesafe::prelude::*;

/// `(1, 28, 28)` image -> 28 rows of 28 pixels -> LSTM over the rows -> the last row's hidden
/// state -> 10 logits.
type SequentialMnistLstm = (Rows, Lstm<28, 128>, LastStep, Linear<128, 10>);

// PyTorch's count: 4 * 128 * (28 + 128) weights and 2 * 4 * 128 biases, then 128 * 10 + 10.
shapesafe::assert_shapes!(SequentialMnistLstm: Rank3<1, 28, 28> => Rank1<10>, params = 82_186);

fn main() {
    let mut defaults = common::defaults("lstm", 2, 2e-3);
    defaults.batch_size = 128;
    defaults.lr_decay = 0.3;
    defaults.clip_grad_norm = Some(1.0);
    let args = common::parse_args("lstm", defaults);
    let run = |a: common::Args| {
        shapesafe::with_device!(a.device, a.seed, |dev| {
            common::train_on_mnist::<SequentialMnistLstm, _>("lstm", a, dev)
        })
    };
    if let Err(e) = args.and_then(run) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
