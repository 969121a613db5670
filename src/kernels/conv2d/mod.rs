//! 2-D convolution: the device trait, its CPU impl on dfdx's tape, and the composed version.

pub mod composed;
pub mod cpu;

use super::{accumulate, host_input, host_values, scratch, Conv2dGeometry};
use dfdx::prelude::{Cpu, Device, Dtype, PutTape, Shape, Tape, Tensor, TensorFromVec};

/// A device that can run a 2-D convolution with autodiff.
///
/// PyTorch equivalent: `torch.nn.functional.conv2d(input, weight, bias, stride, padding, dilation, groups)`.
///
/// # Shapes
/// `input (B, IN, H, W)`, `weight (OUT, IN / GROUPS, K, K)`, `bias (OUT,)` ->
/// `(B, OUT, OH, OW)`, with the numbers in `geometry`; the shapes' dim types are
/// whatever the caller uses (the layers use computed dims like [`ConvOut`]).
///
/// [`ConvOut`]: crate::shape::ConvOut
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::kernels::{Conv2dGeometry, Conv2dKernel};
/// let dev = Cpu::default();
/// let x: Tensor<Rank4<1, 1, 3, 3>, f32, _> = dev.ones();
/// let w: Tensor<Rank4<1, 1, 2, 2>, f32, _> = dev.ones();
/// let b: Tensor<Rank1<1>, f32, _> = dev.zeros();
/// let g = Conv2dGeometry {
///     batch: 1, in_channels: 1, out_channels: 1, in_height: 3, in_width: 3,
///     out_height: 2, out_width: 2, kernel: 2, stride: 1, padding: 0, dilation: 1, groups: 1,
/// };
/// let y = Cpu::try_conv2d(x, &w, &b, g, Rank4::<1, 1, 2, 2>::default()).unwrap();
/// assert_eq!(y.array(), [[[[4.0, 4.0], [4.0, 4.0]]]]);
/// ```
pub trait Conv2dKernel<E: Dtype>: Device<E> {
    /// Convolves `input` with `weight`, adds `bias`, and records the backward op
    /// (gradients of input, weight and bias) on the input's tape.
    fn try_conv2d<S: Shape, W: Shape, B: Shape, O: Shape, T: Tape<E, Self>>(
        input: Tensor<S, E, Self, T>,
        weight: &Tensor<W, E, Self>,
        bias: &Tensor<B, E, Self>,
        geometry: Conv2dGeometry,
        out_shape: O,
    ) -> Result<Tensor<O, E, Self, T>, Self::Err>;
}

macro_rules! cpu_conv2d_impl {
    ($($dtype:ty),*) => {$(
        impl Conv2dKernel<$dtype> for Cpu {
            fn try_conv2d<S: Shape, W: Shape, B: Shape, O: Shape, T: Tape<$dtype, Self>>(
                input: Tensor<S, $dtype, Self, T>,
                weight: &Tensor<W, $dtype, Self>,
                bias: &Tensor<B, $dtype, Self>,
                geometry: Conv2dGeometry,
                out_shape: O,
            ) -> Result<Tensor<O, $dtype, Self, T>, Self::Err> {
                let g = geometry;
                let (input, mut tape, x) = host_input(input)?;
                let w = host_values(weight)?;
                let b = host_values(bias)?;
                let mut y = vec![0.0; out_shape.num_elements()];
                cpu::conv2d_forward(&g, &x, &w, &b, &mut y);
                let out = input.device().try_tensor_from_vec(y, out_shape)?;
                if T::OWNS_TAPE {
                    let (out_id, input) = (out.ghost(), input.ghost());
                    let (weight, bias) = (weight.ghost(), bias.ghost());
                    tape.add_backward_op(move |grads| {
                        let grad_out = scratch::copy_of(grads.get_or_alloc_mut(&out_id)?);
                        let mut grad_w = scratch::take(w.len());
                        let mut grad_b = scratch::take(b.len());
                        let grad_x = grads.get_or_alloc_mut(&input)?;
                        cpu::conv2d_backward(&g, &x, &w, &grad_out, grad_x, &mut grad_w, &mut grad_b);
                        accumulate(grads.get_or_alloc_mut(&weight)?, &grad_w);
                        accumulate(grads.get_or_alloc_mut(&bias)?, &grad_b);
                        for v in [grad_out, grad_w, grad_b, x, w, b] {
                            scratch::give(v);
                        }
                        Ok(())
                    });
                } else {
                    for v in [x, w, b] {
                        scratch::give(v);
                    }
                }
                Ok(out.put_tape(tape))
            }
        }
    )*};
}
cpu_conv2d_impl!(f32, f64);
