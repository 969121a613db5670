//! 2-D max and average pooling: the device trait, its CPU impl on dfdx's tape, and the composed version.

pub mod composed;
pub mod cpu;

use super::{host_input, scratch, Pool2dGeometry};
use dfdx::prelude::{Cpu, Device, Dtype, PutTape, Shape, Tape, Tensor, TensorFromVec};

/// Which reduction a pooling window applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    /// Largest value in the window; padding never wins.
    Max,
    /// Mean of the window, padding counted as zeros (PyTorch's `count_include_pad=True`).
    Avg,
}

/// A device that can run 2-D pooling with autodiff.
///
/// PyTorch equivalent: `torch.nn.functional.max_pool2d` / `avg_pool2d` (floor mode).
///
/// # Shapes
/// `input (B, C, H, W)` -> `(B, C, OH, OW)`, with the numbers in `geometry`.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::kernels::{Pool2dGeometry, Pool2dKernel, PoolKind};
/// let dev = Cpu::default();
/// let x: Tensor<Rank4<1, 1, 2, 2>, f32, _> = dev.tensor([[[[1.0, 5.0], [3.0, 2.0]]]]);
/// let g = Pool2dGeometry {
///     batch: 1, channels: 1, in_height: 2, in_width: 2, out_height: 1, out_width: 1,
///     kernel: 2, stride: 2, padding: 0,
/// };
/// let y = Cpu::try_pool2d(x, PoolKind::Max, g, Rank4::<1, 1, 1, 1>::default()).unwrap();
/// assert_eq!(y.array(), [[[[5.0]]]]);
/// ```
pub trait Pool2dKernel<E: Dtype>: Device<E> {
    /// Pools `input` and records the backward op on its tape.
    fn try_pool2d<S: Shape, O: Shape, T: Tape<E, Self>>(
        input: Tensor<S, E, Self, T>,
        kind: PoolKind,
        geometry: Pool2dGeometry,
        out_shape: O,
    ) -> Result<Tensor<O, E, Self, T>, Self::Err>;
}

macro_rules! cpu_pool2d_impl {
    ($($dtype:ty),*) => {$(
        impl Pool2dKernel<$dtype> for Cpu {
            fn try_pool2d<S: Shape, O: Shape, T: Tape<$dtype, Self>>(
                input: Tensor<S, $dtype, Self, T>,
                kind: PoolKind,
                geometry: Pool2dGeometry,
                out_shape: O,
            ) -> Result<Tensor<O, $dtype, Self, T>, Self::Err> {
                let g = geometry;
                let (input, mut tape, x) = host_input(input)?;
                let mut y = vec![0.0; out_shape.num_elements()];
                // Backward needs only the argmax (max) or nothing (avg), not the input.
                let argmax = match kind {
                    PoolKind::Max => {
                        let mut argmax = scratch::take_for_overwrite::<u32>(y.len());
                        cpu::max_pool2d_forward(&g, &x, &mut y, &mut argmax);
                        argmax
                    }
                    PoolKind::Avg => {
                        cpu::avg_pool2d_forward(&g, &x, &mut y);
                        Vec::new()
                    }
                };
                scratch::give(x);
                let out = input.device().try_tensor_from_vec(y, out_shape)?;
                if T::OWNS_TAPE {
                    let (out_id, input) = (out.ghost(), input.ghost());
                    tape.add_backward_op(move |grads| {
                        let grad_out = scratch::copy_of(grads.get_or_alloc_mut(&out_id)?);
                        let grad_x = grads.get_or_alloc_mut(&input)?;
                        match kind {
                            PoolKind::Max => cpu::max_pool2d_backward(&g, &argmax, &grad_out, grad_x),
                            PoolKind::Avg => cpu::avg_pool2d_backward(&g, &grad_out, grad_x),
                        }
                        scratch::give(grad_out);
                        scratch::give(argmax);
                        Ok(())
                    });
                } else {
                    scratch::give(argmax);
                }
                Ok(out.put_tape(tape))
            }
        }
    )*};
}
cpu_pool2d_impl!(f32, f64);
