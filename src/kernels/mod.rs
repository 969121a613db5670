//! Custom ops on dfdx's tape: 2-D convolution, pooling, resampling and the recurrent
//! layers' sequence op, a CPU kernel and a device-generic composition of dfdx ops for each.
//!
//! dfdx 0.13 has no convolution or pooling on stable Rust, and its per-op autodiff makes a
//! recurrent layer dozens of tiny ops per time step. Each op here is a device trait
//! ([`Conv2dKernel`], [`Pool2dKernel`], [`RecurrentKernel`], ...) whose CPU impl runs the fast
//! slice kernels in `cpu.rs` and registers their backward on the input's tape
//! through dfdx's public API (`split_tape`, `Tape::add_backward_op`,
//! `Gradients::get_or_alloc_mut`, `put_tape`). The `composed` versions build the same
//! op from dfdx ops that already run on every device (gather + matmul, window
//! reductions), so dfdx's own autodiff differentiates them; the CUDA device uses them.

pub mod attention;
pub mod batch_norm;
pub mod conv2d;
pub mod conv_transpose2d;
pub mod cross_entropy;
#[cfg(feature = "cuda")]
mod cuda;
pub mod dispatch;
pub mod dropout;
mod gemm;
pub mod geometry;
pub mod layer_norm;
pub mod linear;
pub mod pool2d;
pub mod recurrent;
pub mod relu;
pub mod resample;
pub(crate) mod scratch;
pub mod simd;

use dfdx::prelude::{
    Cpu, CpuError, Device, Dtype, HasShape, ReshapeTo, Shape, SplitTape, Tape, Tensor,
};

pub use conv2d::Conv2dKernel;
pub use conv_transpose2d::{ConvTranspose2dGeometry, ConvTranspose2dKernel};
pub use dispatch::with_composed_ops;
pub use geometry::{Conv2dGeometry, Pool2dGeometry};
pub use pool2d::{Pool2dKernel, PoolKind};
pub use recurrent::{
    RecurrentKernel, RecurrentMode, RecurrentOutput, RecurrentParams, RecurrentState,
};
pub use resample::{Resample2dKernel, ResampleAxis};

/// A device with every shapesafe kernel for dtype `E`: `Cpu`, and `Cuda` under the `cuda`
/// feature. It includes dfdx's `DeviceBuildExt`, so device-generic code can call
/// `dev.build_module::<M, E>()`.
///
/// # Shapes
/// Not a layer; it is the bound layers put on their device.
///
/// ```
/// use shapesafe::prelude::*;
///
/// fn build<D: KernelDevice<f32>>(dev: &D) -> usize {
///     dev.build_module::<Linear<3, 2>, f32>().num_trainable_params()
/// }
/// assert_eq!(build(&Cpu::default()), 8);
/// ```
pub trait KernelDevice<E: Dtype>:
    Conv2dKernel<E>
    + Pool2dKernel<E>
    + ConvTranspose2dKernel<E>
    + Resample2dKernel<E>
    + RecurrentKernel<E>
    + dfdx::nn::DeviceBuildExt
{
}

impl<E: Dtype, D> KernelDevice<E> for D where
    D: Conv2dKernel<E>
        + Pool2dKernel<E>
        + ConvTranspose2dKernel<E>
        + Resample2dKernel<E>
        + RecurrentKernel<E>
        + dfdx::nn::DeviceBuildExt
{
}

/// Makes `input` contiguous, splits off its tape and copies its values out, in the
/// layout the CPU kernels read (NCHW, row-major).
pub(crate) fn host_input<S, E, T>(
    input: Tensor<S, E, Cpu, T>,
) -> Result<HostInput<S, E, T>, CpuError>
where
    S: Shape,
    E: Dtype,
    Cpu: Device<E>,
    T: Tape<E, Cpu>,
{
    // The kernels read physical memory, so the input must be laid out as its shape says.
    let (input, tape) = input.try_contiguous()?.split_tape();
    let mut values = scratch::take_for_overwrite(input.shape().num_elements());
    input.copy_into(&mut values);
    Ok((input, tape, values))
}

/// The values of a tape-free CPU tensor in row-major order: one `memcpy` when it is
/// contiguous (dfdx's `as_vec` walks an index iterator, several times slower).
pub(crate) fn host_values<S: Shape, E: Dtype>(t: &Tensor<S, E, Cpu>) -> Result<Vec<E>, CpuError>
where
    Cpu: Device<E>,
{
    let t = t.clone().try_contiguous()?;
    let mut values = scratch::take_for_overwrite(t.shape().num_elements());
    t.copy_into(&mut values);
    Ok(values)
}

/// What [`host_input`] returns: the input without its tape, the tape, and its values.
pub(crate) type HostInput<S, E, T> = (Tensor<S, E, Cpu>, T, Vec<E>);

/// `dst += src`, elementwise: dfdx gradients accumulate.
pub(crate) fn accumulate<E: Copy + core::ops::AddAssign>(dst: &mut [E], src: &[E]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d += *s;
    }
}
