//! The model zoo: classic architectures as types, each with its shape contract asserted.

pub mod classic;
pub mod lenet;

pub use lenet::LeNet5;
