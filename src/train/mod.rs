//! Training helpers for image classifiers: one epoch of training, evaluation, weights on disk.

mod checkpoint;
mod classify;

pub use checkpoint::{load_weights, save_atomic};
pub use classify::{count_correct, evaluate, train_epoch, EpochStats, Evaluation};
