//! shapesafe: neural networks whose shapes are types, on stable Rust, built on dfdx.
//!
//! A model is a type built from layers with const-generic dimensions —
//! `Conv2d<1, 6, 5, 1, 2>`, `MaxPool2d<2>`, `Linear<400, 120>` — composed as tuples.
//! Feed it an input whose shape does not fit and the build fails with a message
//! naming the layer and the numbers:
//!
//! ```text
//! error[E0080]: evaluation panicked: Linear<400, 120> expects 400 input features, but Flatten of (16, 4, 4) gives 256
//! ```
//!
//! Computed dims ([`shape::ConvOut`], [`shape::Flattened`]) are types whose size is an
//! associated const, because stable Rust cannot write `Const<{ (H - K) / S + 1 }>`.
//! Layers check them at compile time; [`assert_shapes!`] states a model's contract at
//! item level so that even `cargo check` verifies it. Convolution and pooling are
//! shapesafe's own kernels ([`kernels`]), registered on dfdx's tape, so dfdx's
//! optimizers, losses, safetensors and devices work on shapesafe models unchanged.
//!
//! ```
//! use shapesafe::prelude::*;
//!
//! type Net = (Conv2d<1, 4, 3, 1, 1>, ReLU, MaxPool2d<2>, Flatten, Linear<196, 10>);
//! shapesafe::assert_shapes!(Net: Rank3<1, 14, 14> => Rank1<10>);
//!
//! let dev = Cpu::default();
//! let mut model = dev.build_module::<Net, f32>();
//! let mut grads = model.alloc_grads();
//! let x: Tensor<Rank4<8, 1, 14, 14>, f32, _> = dev.sample_normal();
//! let y: Tensor<Rank2<8, 10>, f32, _> = dev.zeros();
//! let loss = mse_loss(model.forward(x.traced(grads)), y);
//! grads = loss.backward();
//! let mut opt = Adam::new(&model, AdamConfig::default());
//! opt.update(&mut model, &grads).unwrap();
//! ```
#![warn(missing_docs)]

pub mod data;
pub mod device;
mod error;
pub mod kernels;
pub mod models;
pub mod nn;
pub mod optim;
pub mod pytorch;
pub mod shape;
pub mod train;

#[cfg(test)]
mod test_util;

/// The README's code, compiled (and run where cheap) as doctests so it cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub use error::{Error, Result};

/// Everything a user needs: shapesafe's layers and shape engine, and dfdx's
/// devices, tensors, shapes, ops, optimizers, losses and module traits.
pub mod prelude {
    pub use crate::assert_shapes;
    pub use crate::kernels::KernelDevice;
    pub use crate::nn::builders::*;
    pub use crate::nn::init::{init_weights, Init};
    pub use crate::shape::ConvTransposeOut;
    pub use crate::shape::Scaled;
    pub use crate::shape::SumDim;
    pub use crate::shape::{Directions, Gates, LayerDirections};
    // dfdx's tensor_ops also exports a `Bilinear` (its upscale2d method); the layer's mode wins.
    pub use crate::nn::builders::Bilinear;
    pub use crate::shape::{
        ConvOut, Flattened, MaxoutOut, PerGroup, PoolOut, ShapeInfer, StaticDim, StaticShape,
        Summary,
    };
    pub use dfdx::losses::*;
    pub use dfdx::nn::{
        BuildModule, BuildOnDevice, DeviceBuildExt, LoadFromSafetensors, Module, ModuleMut,
        NumParams, ResetParams, SaveToSafetensors, TensorCollection, ToDevice, ToDtype, ZeroGrads,
    };
    // shapesafe's optimizers: dfdx's semantics and configs, with state that checkpoints.
    pub use crate::optim::{Adam, OptimizerState, RMSprop, Sgd};
    pub use dfdx::optim::{AdamConfig, Momentum, Optimizer, RMSpropConfig, SgdConfig, WeightDecay};
    pub use dfdx::shapes::*;
    pub use dfdx::tensor::*;
    pub use dfdx::tensor_ops::*;
}
