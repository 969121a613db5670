//! Fuzz target: arbitrary bytes as a training checkpoint file for `train::load_checkpoint`,
//! loaded into a small model with an SGD-momentum and with an Adam optimizer.
//!
//! The loader must return `Ok` or `Err` and never panic; on `Err` the model and the optimizer
//! must be unchanged, and on `Ok` what was loaded must save and load back bit for bit
//! (`shapesafe_fuzz::checkpoint`). Seeds are real checkpoints of that model, written by
//! `cargo run --release --example checkpoint_seeds -- seeds/checkpoint`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| shapesafe_fuzz::checkpoint(data));
