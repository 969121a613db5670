//! Classifies MNIST digits with a Transformer encoder over the image's rows: each of the 28
//! rows is a token of 28 pixels, embedded by a `Linear<28, 64>`, given a sinusoidal position,
//! passed through two encoder layers and averaged into one vector for a linear classifier.
//! Prints per-epoch progress and the test accuracy.
//!
//! ```text
//! cargo run --release --example transformer -- [--epochs N] [--batch-size B] [--lr LR]
//!     [--lr-decay GAMMA] [--patience P] [--data DIR] [--out DIR] [--resume FILE] [--seed S]
//!     [--device cpu|cuda|cuda:N]
//! ```

mod cli;
mod common;

use shapesafe::prelude::*;

/// `(1, 28, 28)` image -> 28 row tokens of 64 features with positions -> 2 encoder layers
/// (4 heads, feed-forward 128) -> mean over the rows -> 10 logits.
type RowTransformer = (
    Rows,
    Linear<28, 64>,
    SinusoidalPositionalEncoding<28, 64>,
    TransformerEncoder<64, 4, 128, 2>,
    SequenceMean,
    Linear<64, 10>,
);

// Embedding 28 * 64 + 64; per layer 4 * 64 * 64 + 4 * 64 (attention), 2 * 64 * 128 + 128 + 64
// (feed-forward), 2 * 2 * 64 (norms); head 64 * 10 + 10.
shapesafe::assert_shapes!(RowTransformer: Rank3<1, 28, 28> => Rank1<10>, params = 69_450);

fn main() {
    let mut defaults = common::defaults("transformer", 2, 1e-3);
    defaults.lr_decay = 0.3;
    defaults.clip_grad_norm = Some(1.0);
    let args = common::parse_args("transformer", defaults);
    let run = |a: common::Args| {
        shapesafe::with_device!(a.device, a.seed, |dev| {
            common::train_on_mnist::<RowTransformer, _>("transformer", a, dev)
        })
    };
    if let Err(e) = args.and_then(run) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
