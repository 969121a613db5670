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
// docs.rs marks the items that need a feature.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod data;
pub mod device;
pub mod distributed;
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

// The derives' generated code names `::shapesafe::..`, which must resolve in this crate too.
extern crate self as shapesafe;

/// A model as a struct whose named fields run in order: PyTorch's `nn.Sequential` with
/// named children, or a class whose `forward` calls its layers one after another.
///
/// Put it on a builder struct whose fields are layers (any shapesafe or dfdx layer, a
/// tuple, another derived model), with `#[built(Name)]` naming the built model. It
/// generates:
/// - the built struct `Name<E, D>`, with the same field names holding the built layers
///   (`model.fc1.weight`); its further type parameters have defaults and are the fields'
///   built types, so `Name<f32, Cpu>` is the whole type;
/// - `BuildOnDevice` (so `dev.build_module::<Builder, f32>()`), `TensorCollection`
///   (optimizers, `zero_grads`, `num_params`, `to_device`, `to_dtype`, safetensors; the
///   parameter names are the field paths, `conv1.weight`, as in a PyTorch state dict);
/// - `Module` and `ModuleMut` for every input the chain of fields accepts;
/// - `ShapeInfer` on the builder, so `assert_shapes!` and `Summary` work (rows named by
///   field: `conv1: Conv2d<1, 6, 5, 1, 2>`);
/// - with `#[shapes(input = .., output = .., params = ..)]` (output and params optional),
///   the contract as an item-level const, checked by `cargo check`.
///
/// A shape error shows the offending field's line, through `forward` and through the
/// contract. The builder may take const parameters (`struct Mlp<const HIDDEN: usize>`);
/// a contract needs a concrete model, so generic builders use `assert_shapes!` on an
/// instance. There is no limit on the number of fields.
///
/// # Shapes
/// Whatever the chain of fields maps: the first field's input to the last field's output.
///
/// ```
/// use shapesafe::prelude::*;
///
/// // PyTorch:
/// // class LeNet(nn.Module):
/// //     def __init__(self):
/// //         super().__init__()
/// //         self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
/// //         ...
/// //     def forward(self, x):
/// //         return self.fc3(...self.conv1(x)...)
/// #[derive(Sequential, Clone, Copy, Default)]
/// #[built(LeNet)]
/// #[shapes(input = Rank3<1, 28, 28>, output = Rank1<10>, params = 61_706)]
/// struct LeNetConfig {
///     conv1: Conv2d<1, 6, 5, 1, 2>,
///     relu1: ReLU,
///     pool1: MaxPool2d<2>,
///     conv2: Conv2d<6, 16, 5>,
///     relu2: ReLU,
///     pool2: MaxPool2d<2>,
///     flatten: Flatten,
///     fc1: Linear<400, 120>,
///     relu3: ReLU,
///     fc2: Linear<120, 84>,
///     relu4: ReLU,
///     fc3: Linear<84, 10>,
/// }
///
/// let dev = Cpu::default();
/// let model: LeNet<f32, Cpu> = dev.build_module::<LeNetConfig, f32>();
/// let x: Tensor<Rank4<2, 1, 28, 28>, f32, _> = dev.zeros();
/// assert_eq!(model.forward(x).shape().concrete(), [2, 10]);
/// assert_eq!(model.fc1.weight.shape().concrete(), [120, 400]);
/// let summary = Summary::of::<LeNetConfig, Rank3<1, 28, 28>>();
/// assert_eq!(summary.rows[7].layer, "fc1: Linear<400, 120>");
/// ```
///
/// A field that does not fit is a build error at that field's line:
///
/// ```compile_fail
/// use shapesafe::prelude::*;
/// #[derive(Sequential, Clone, Copy, Default)]
/// #[built(Net)]
/// #[shapes(input = Rank3<1, 28, 28>, output = Rank1<10>)]
/// struct NetConfig {
///     conv: Conv2d<1, 16, 5>,
///     pool: MaxPool2d<2>,
///     flatten: Flatten,
///     fc: Linear<400, 10>, // 16 * 12 * 12 = 2,304 features arrive
/// }
/// ```
pub use shapesafe_derive::Sequential;

/// The plumbing of a model whose `forward` you write: PyTorch's `nn.Module` subclass with
/// its layers and `nn.Parameter`s as attributes.
///
/// Put it on a builder struct whose fields are layers (as in [`Sequential`]) or parameter
/// tensors, `#[param(init = ..)] scale: Rank1<16>`, with `init` one of `zeros`, `ones`,
/// `uniform(lo, hi)`, `normal(mean, std)` or `fan_in(n)` (uniform in `±1/sqrt(n)`, PyTorch's
/// `Linear` default). It generates the built struct `Name<E, D>` (parameters as
/// `Tensor<Shape, E, D>` fields), `BuildOnDevice` and `TensorCollection` as [`Sequential`]
/// does. You write `impl Module<Input> for Name<E, D>` (and `ModuleMut` for training-mode
/// behaviour such as dropout), calling the fields; naming concrete types
/// (`Name<f32, Cpu>`) needs no where-clauses, a generic impl adds the bounds its calls need.
///
/// With `#[shapes(input = .., output = .., params = ..)]` on the struct and
/// `#[shapes(input = ..)]` on each layer field (the shape your forward gives it), it also
/// generates `ShapeInfer` (the output as declared, the layers' checks, the parameter count
/// and a summary row per field) and checks that contract under `cargo check`. A shape
/// error in your forward shows your call's line.
///
/// # Shapes
/// As your `forward` declares.
///
/// ```
/// use shapesafe::prelude::*;
///
/// #[derive(CustomModule, Clone, Copy, Default)]
/// #[built(Gated)]
/// #[shapes(input = Rank1<4>, output = Rank1<3>, params = 15 + 3)]
/// struct GatedConfig {
///     #[shapes(input = Rank1<4>)]
///     fc: Linear<4, 3>,
///     #[param(init = ones)]
///     gate: Rank1<3>,
/// }
///
/// impl<B: Dim, T: Tape<f32, Cpu>> Module<Tensor<(B, Const<4>), f32, Cpu, T>> for Gated<f32, Cpu> {
///     type Output = Tensor<(B, Const<3>), f32, Cpu, T>;
///     type Error = CpuError;
///     fn try_forward(&self, x: Tensor<(B, Const<4>), f32, Cpu, T>) -> Result<Self::Output, CpuError> {
///         let h = self.fc.try_forward(x)?;
///         let gate = self.gate.retaped::<T>().try_broadcast_like(h.shape())?;
///         h.try_mul(gate)
///     }
/// }
///
/// let dev = Cpu::default();
/// let model = dev.build_module::<GatedConfig, f32>();
/// let x: Tensor<Rank2<5, 4>, f32, _> = dev.sample_normal();
/// assert_eq!(model.forward(x).shape().concrete(), [5, 3]);
/// assert_eq!(model.num_trainable_params(), 18);
/// ```
pub use shapesafe_derive::CustomModule;

/// What the derives' generated code uses; not an API.
#[doc(hidden)]
pub mod __derive {
    pub use crate::nn::init::{fill_fan_in, fill_normal, fill_uniform};
    pub use crate::shape::{
        check_contract, check_params, name_rows, product, ShapeInfer, StaticShape, SummaryRow,
    };
    pub use dfdx::nn::{
        BuildModule, BuildOnDevice, Module, ModuleMut, ModuleVisitor, TensorCollection,
        TensorOptions,
    };
    pub use dfdx::prelude::{Device, Dtype, Tensor};
    pub use num_traits::Float;
    pub use rand_distr::uniform::SampleUniform;
    pub use rand_distr::{Distribution, StandardNormal};
}

/// Everything a user needs: shapesafe's layers and shape engine, and dfdx's
/// devices, tensors, shapes, ops, optimizers, losses and module traits.
///
/// It exports items by name, never a module, so it cannot shadow a crate the user imports
/// beside it (dfdx's `tensor` module holds a `safetensors` module of its own):
///
/// ```
/// use shapesafe::prelude::*;
/// use rand::Rng;
/// use safetensors::SafeTensors;
///
/// let bytes = safetensors::serialize(Vec::<(&str, safetensors::tensor::TensorView)>::new(), &None)?;
/// assert_eq!(SafeTensors::deserialize(&bytes)?.len(), 0);
/// let x: f32 = rand::thread_rng().gen();
/// let t: Tensor<Rank1<1>, f32, Cpu> = Cpu::default().tensor([x]);
/// assert_eq!(t.array(), [x]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub mod prelude {
    pub use crate::assert_shapes;
    pub use crate::kernels::KernelDevice;
    pub use crate::nn::builders::*;
    pub use crate::nn::init::{init_weights, Init};
    pub use crate::nn::policy_value::HeadsInfer;
    pub use crate::shape::ConvTransposeOut;
    pub use crate::shape::Halved;
    pub use crate::shape::Scaled;
    pub use crate::shape::SumDim;
    pub use crate::shape::{Directions, Gates, LayerDirections};
    pub use crate::{CustomModule, Sequential};
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
    // By name: a glob would also bring dfdx's `safetensors` module, which shadows the crate.
    pub use dfdx::tensor::{
        AsArray, AutoDevice, Cache, CopySlice, Cpu, CpuError, Gradients, HasErr, Merge, NoneTape,
        OnesTensor, OwnedTape, PutTape, RandomU64, SampleTensor, SplitTape, Storage, Synchronize,
        Tape, Tensor, Tensor0D, Tensor1D, Tensor2D, Tensor3D, Tensor4D, Tensor5D, Tensor6D,
        TensorFrom, TensorFromVec, TensorToArray, Trace, TriangleTensor, UniqueId, WithEmptyTape,
        ZerosTensor,
    };
    #[cfg(feature = "cuda")]
    pub use dfdx::tensor::{Cuda, CudaError};
    pub use dfdx::tensor_ops::*;
}
