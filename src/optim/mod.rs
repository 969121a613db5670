//! Optimizers whose state can be checkpointed, and gradient utilities (clipping,
//! finiteness checks, L1/L2 penalties).
//!
//! dfdx 0.13's `Adam`, `Sgd` and `RMSprop` keep their state private and keyed by
//! process-local tensor ids, so a run cannot be resumed from disk. [`Sgd`], [`Adam`]
//! (AdamW with `WeightDecay::Decoupled`) and [`RMSprop`] here take dfdx's own configs,
//! give the same numbers step for step, and implement dfdx's [`Optimizer`] so they drop
//! into [`Trainer`](crate::train::Trainer). Their state is keyed by parameter name (`0.weight`) and
//! moves in and out as a [`StateDict`] through [`OptimizerState`]. The update math is
//! written with dfdx tensor ops, so it runs on any dfdx device; on the CPU (f32, f64) the
//! same arithmetic runs as one fused loop per parameter over its state, in place, and its
//! values (`cpu.rs`; `kernels::with_composed_ops` runs the composed ops instead).
//!
//! Parameters without a gradient are skipped and reported, as dfdx's optimizers do. dfdx
//! keeps its presence check private, so each walk asks `Gradients::get`, which panics on a
//! missing entry, under `catch_unwind`; a panic hook installed on first use keeps those
//! panics quiet and passes every other one to the hook that was there before. A hook the
//! program installs later replaces it, and then sees these panics too (only when a gradient
//! is missing). Builds with `panic = "abort"` find missing gradients another way, at the
//! cost of a copy of the model per walk.
//!
//! ```
//! use shapesafe::prelude::*;
//! use shapesafe::optim::{clip_grad_norm, Adam, OptimizerState};
//!
//! let dev = Cpu::default();
//! let mut model = dev.build_module::<(Linear<4, 8>, ReLU, Linear<8, 2>), f32>();
//! let mut opt = Adam::new(&model, AdamConfig::default());
//! let x: Tensor<Rank2<16, 4>, f32, _> = dev.sample_normal();
//! let loss = model.forward(x.traced(model.alloc_grads())).square().mean();
//! let mut grads = loss.backward();
//! clip_grad_norm(&model, &mut grads, 1.0).unwrap();
//! opt.update(&mut model, &grads).unwrap();
//! let state = opt.state_dict().unwrap();
//! assert_eq!(state.scalars["state.0.weight.step"], 1.0);
//! ```

mod adam;
mod clip;
mod cpu;
mod named_grads;
pub(crate) mod params;
mod regularize;
mod rmsprop;
mod sgd;
mod state;

pub use adam::Adam;
pub use clip::{clip_grad_norm, first_non_finite_grad, grads_are_finite};
pub use named_grads::{named_grads, NamedGrad};
pub use regularize::{add_l1, add_l2};
pub use rmsprop::RMSprop;
pub use sgd::Sgd;
pub use state::{OptimizerState, StateData, StateDict, StateDtype, StateTensor};

pub use dfdx::optim::{
    AdamConfig, Momentum, Optimizer, OptimizerUpdateError, RMSpropConfig, SgdConfig, WeightDecay,
};
