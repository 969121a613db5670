//! 2-D transposed convolution: its geometry, the device trait, the CPU impl on dfdx's
//! tape, and the composed version.

pub mod composed;
pub mod cpu;

use super::{accumulate, host_input, host_values};
use dfdx::prelude::{
    Cpu, CpuError, Device, Dtype, HasShape, PutTape, Shape, Tape, Tensor, TensorFromVec,
};

/// Sizes of one `conv_transpose2d` call; all tensors are contiguous NCHW.
///
/// Input `(batch, in_channels, in_height, in_width)`, weight
/// `(in_channels, out_channels / groups, kernel, kernel)` (PyTorch's transposed layout),
/// bias `(out_channels,)`, output `(batch, out_channels, out_height, out_width)`.
/// PyTorch's `output_padding` is not a field: it only lengthens the output, so it is
/// already in `out_height` and `out_width`.
///
/// # Shapes
/// Not a tensor; it describes the four above.
///
/// ```
/// use shapesafe::kernels::ConvTranspose2dGeometry;
/// use shapesafe::shape::transpose_output;
/// // ConvTranspose2d(8, 1, 3, stride=2, padding=1, output_padding=1) on 14x14.
/// let side = transpose_output(14, 3, 2, 1, 1, 1);
/// let g = ConvTranspose2dGeometry {
///     batch: 4, in_channels: 8, out_channels: 1, in_height: 14, in_width: 14,
///     out_height: side, out_width: side, kernel: 3, stride: 2, padding: 1, dilation: 1, groups: 1,
/// };
/// assert_eq!((g.out_height, g.out_width), (28, 28));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvTranspose2dGeometry {
    /// Images in the batch.
    pub batch: usize,
    /// Input channels (all groups together).
    pub in_channels: usize,
    /// Output channels (all groups together).
    pub out_channels: usize,
    /// Input height.
    pub in_height: usize,
    /// Input width.
    pub in_width: usize,
    /// Output height, `(in_height - 1) * stride - 2 * padding + dilation * (kernel - 1)
    /// + output_padding + 1`.
    pub out_height: usize,
    /// Output width, same formula as the height.
    pub out_width: usize,
    /// Square kernel side.
    pub kernel: usize,
    /// Step between the output positions of neighbouring input pixels.
    pub stride: usize,
    /// Rows and columns cropped from each side of the full output.
    pub padding: usize,
    /// Spacing between kernel taps.
    pub dilation: usize,
    /// Channel groups; both channel counts are multiples of it.
    pub groups: usize,
}

impl ConvTranspose2dGeometry {
    /// Element counts of `(input, weight, bias, output)` this geometry describes.
    fn lengths(&self) -> [usize; 4] {
        let per_group = self.out_channels / self.groups.max(1);
        [
            self.batch * self.in_channels * self.in_height * self.in_width,
            self.in_channels * per_group * self.kernel * self.kernel,
            self.out_channels,
            self.batch * self.out_channels * self.out_height * self.out_width,
        ]
    }
}

/// A device that can run a 2-D transposed convolution with autodiff.
///
/// PyTorch equivalent: `torch.nn.functional.conv_transpose2d(input, weight, bias, stride,
/// padding, output_padding, groups, dilation)`; it is the input gradient of `conv2d`.
///
/// # Shapes
/// `input (B, IN, H, W)`, `weight (IN, OUT / GROUPS, K, K)`, `bias (OUT,)` ->
/// `(B, OUT, OH, OW)`, with the numbers in `geometry`; the dim types are the caller's
/// (the layer uses [`ConvTransposeOut`]).
///
/// [`ConvTransposeOut`]: crate::shape::ConvTransposeOut
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::kernels::{ConvTranspose2dGeometry, ConvTranspose2dKernel};
/// let dev = Cpu::default();
/// let x: Tensor<Rank4<1, 1, 2, 2>, f32, _> = dev.tensor([[[[1.0, 2.0], [3.0, 4.0]]]]);
/// let w: Tensor<Rank4<1, 1, 2, 2>, f32, _> = dev.ones();
/// let b: Tensor<Rank1<1>, f32, _> = dev.zeros();
/// let g = ConvTranspose2dGeometry {
///     batch: 1, in_channels: 1, out_channels: 1, in_height: 2, in_width: 2,
///     out_height: 4, out_width: 4, kernel: 2, stride: 2, padding: 0, dilation: 1, groups: 1,
/// };
/// // Stride 2 with a 2x2 kernel of ones: every input pixel becomes a 2x2 block.
/// let y = Cpu::try_conv_transpose2d(x, &w, &b, g, Rank4::<1, 1, 4, 4>::default()).unwrap();
/// assert_eq!(
///     y.array(),
///     [[[[1.0, 1.0, 2.0, 2.0], [1.0, 1.0, 2.0, 2.0], [3.0, 3.0, 4.0, 4.0], [3.0, 3.0, 4.0, 4.0]]]]
/// );
/// ```
pub trait ConvTranspose2dKernel<E: Dtype>: Device<E> {
    /// Transposed-convolves `input` with `weight`, adds `bias`, and records the backward
    /// op (gradients of input, weight and bias) on the input's tape.
    ///
    /// # Errors
    /// The device's error if it cannot allocate, or if a tensor's element count differs
    /// from what `geometry` describes (`CpuError::WrongNumElements` on the CPU).
    fn try_conv_transpose2d<S: Shape, W: Shape, B: Shape, O: Shape, T: Tape<E, Self>>(
        input: Tensor<S, E, Self, T>,
        weight: &Tensor<W, E, Self>,
        bias: &Tensor<B, E, Self>,
        geometry: ConvTranspose2dGeometry,
        out_shape: O,
    ) -> Result<Tensor<O, E, Self, T>, Self::Err>;
}

macro_rules! cpu_conv_transpose2d_impl {
    ($($dtype:ty),*) => {$(
        impl ConvTranspose2dKernel<$dtype> for Cpu {
            fn try_conv_transpose2d<S: Shape, W: Shape, B: Shape, O: Shape, T: Tape<$dtype, Self>>(
                input: Tensor<S, $dtype, Self, T>,
                weight: &Tensor<W, $dtype, Self>,
                bias: &Tensor<B, $dtype, Self>,
                geometry: ConvTranspose2dGeometry,
                out_shape: O,
            ) -> Result<Tensor<O, $dtype, Self, T>, Self::Err> {
                let g = geometry;
                let given = [
                    input.shape().num_elements(),
                    weight.shape().num_elements(),
                    bias.shape().num_elements(),
                    out_shape.num_elements(),
                ];
                if given != g.lengths() {
                    return Err(CpuError::WrongNumElements);
                }
                let (input, mut tape, x) = host_input(input)?;
                let w = host_values(weight)?;
                let b = host_values(bias)?;
                let mut y = vec![0.0; out_shape.num_elements()];
                cpu::conv_transpose2d_forward(&g, &x, &w, &b, &mut y);
                let out = input.device().try_tensor_from_vec(y, out_shape)?;
                if T::OWNS_TAPE {
                    let (out_id, weight, bias) = (out.clone(), weight.clone(), bias.clone());
                    tape.add_backward_op(move |grads| {
                        let grad_out = grads.get_or_alloc_mut(&out_id)?.to_vec();
                        let mut grad_w = vec![0.0; w.len()];
                        let mut grad_b = vec![0.0; b.len()];
                        let grad_x = grads.get_or_alloc_mut(&input)?;
                        cpu::conv_transpose2d_backward(
                            &g, &x, &w, &grad_out, grad_x, &mut grad_w, &mut grad_b,
                        );
                        accumulate(grads.get_or_alloc_mut(&weight)?, &grad_w);
                        accumulate(grads.get_or_alloc_mut(&bias)?, &grad_b);
                        Ok(())
                    });
                }
                Ok(out.put_tape(tape))
            }
        }
    )*};
}
cpu_conv_transpose2d_impl!(f32, f64);
