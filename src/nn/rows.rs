//! `Rows`: reads a one-channel image as a sequence of its rows, for recurrent and attention layers.

use crate::shape::{check_rows, ShapeInfer, StaticDim};
use dfdx::nn::{Module, NonMutableModule, ZeroSizedModule};
use dfdx::prelude::*;

/// Reads a one-channel image `(1, H, W)` as a sequence of `H` steps of `W` features: row `h`
/// of the image is step `h`. This is the "sequential MNIST" view (28 steps of 28 pixels) that
/// lets a sequence model classify images.
///
/// PyTorch equivalent: `x.squeeze(1)` on a batch `(B, 1, H, W)`, as in the usual row-by-row
/// MNIST LSTM. A channel count other than 1 is a build error naming the input shape.
/// Zero-copy when the input is contiguous.
///
/// # Shapes
/// - `(C, H, W) -> (H, W)` where `C::SIZE == 1`
/// - `(B, C, H, W) -> (B, H, W)`, `B` a `Const` or `usize`
///
/// ```
/// use shapesafe::prelude::*;
/// let dev = Cpu::default();
/// let x: Tensor<Rank4<2, 1, 3, 4>, f32, _> = dev.sample_normal();
/// let y: Tensor<Rank3<2, 3, 4>, f32, _> = Rows.forward(x.clone());
/// assert_eq!(y.as_vec(), x.as_vec());
/// ```
///
/// A colour image is a build error:
///
/// ```compile_fail
/// use shapesafe::prelude::*;
/// let dev = Cpu::default();
/// let x: Tensor<Rank4<2, 3, 8, 8>, f32, _> = dev.zeros();
/// let y = Rows.forward(x);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Rows;

impl ZeroSizedModule for Rows {}
impl NonMutableModule for Rows {}

impl<C: StaticDim, H: StaticDim, W: StaticDim> ShapeInfer<(C, H, W)> for Rows {
    type Output = (H, W);
    const CHECK: () = check_rows(C::SIZE, &[C::SIZE, H::SIZE, W::SIZE]);
    const PARAMS: usize = 0;
    fn name() -> String {
        "Rows".to_string()
    }
}

impl<B: Dim, C: StaticDim, H: StaticDim, W: StaticDim, E: Dtype, D: Device<E>, T: Tape<E, D>>
    Module<Tensor<(B, C, H, W), E, D, T>> for Rows
{
    type Output = Tensor<(B, H, W), E, D, T>;
    type Error = D::Err;

    fn try_forward(&self, x: Tensor<(B, C, H, W), E, D, T>) -> Result<Self::Output, D::Err> {
        const { <Rows as ShapeInfer<(C, H, W)>>::CHECK };
        let batch = x.shape().0;
        x.try_reshape_like(&(batch, H::default(), W::default()))
    }
}

impl<C: StaticDim, H: StaticDim, W: StaticDim, E: Dtype, D: Device<E>, T: Tape<E, D>>
    Module<Tensor<(C, H, W), E, D, T>> for Rows
{
    type Output = Tensor<(H, W), E, D, T>;
    type Error = D::Err;

    fn try_forward(&self, x: Tensor<(C, H, W), E, D, T>) -> Result<Self::Output, D::Err> {
        const { <Rows as ShapeInfer<(C, H, W)>>::CHECK };
        x.try_reshape_like(&(H::default(), W::default()))
    }
}
