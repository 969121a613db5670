//! `Flatten`: folds `(C, H, W)` into one computed dim that remembers its factors.

use crate::shape::{Flattened, ShapeInfer, StaticDim};
use dfdx::nn::{Module, NonMutableModule, ZeroSizedModule};
use dfdx::prelude::*;

/// Flattens every dim but the batch into one.
///
/// PyTorch equivalent: `torch.nn.Flatten()` (`start_dim=1`) on batched input; an
/// unbatched `(C, H, W)` becomes one vector, as dfdx's `Flatten2D` does.
/// Zero-copy when the input is contiguous.
///
/// # Shapes
/// - `(C, H, W) -> (Flattened<(C, H, W)>,)`
/// - `(B, C, H, W) -> (B, Flattened<(C, H, W)>)`
///
/// `Flattened<(C, H, W)>` has size `C * H * W`; a following [`Linear`] checks it
/// and names the factors when they do not fit.
///
/// [`Linear`]: crate::nn::builders::Linear
///
/// ```
/// use shapesafe::prelude::*;
/// let dev = Cpu::default();
/// let x: Tensor<Rank4<2, 16, 5, 5>, f32, _> = dev.zeros();
/// let y: Tensor<(Const<2>, Flattened<Rank3<16, 5, 5>>), f32, _> = Flatten.forward(x);
/// assert_eq!(y.shape().concrete(), [2, 400]);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Flatten;

impl ZeroSizedModule for Flatten {}
impl NonMutableModule for Flatten {}

impl<C: StaticDim, H: StaticDim, W: StaticDim> ShapeInfer<(C, H, W)> for Flatten {
    type Output = (Flattened<(C, H, W)>,);
    const CHECK: () = ();
    const PARAMS: usize = 0;
    fn name() -> String {
        "Flatten".to_string()
    }
}

impl<B: Dim, C: StaticDim, H: StaticDim, W: StaticDim, E: Dtype, D: Device<E>, T: Tape<E, D>>
    Module<Tensor<(B, C, H, W), E, D, T>> for Flatten
{
    type Output = Tensor<(B, Flattened<(C, H, W)>), E, D, T>;
    type Error = D::Err;

    fn try_forward(&self, x: Tensor<(B, C, H, W), E, D, T>) -> Result<Self::Output, D::Err> {
        let batch = x.shape().0;
        x.try_reshape_like(&(batch, Default::default()))
    }
}

impl<C: StaticDim, H: StaticDim, W: StaticDim, E: Dtype, D: Device<E>, T: Tape<E, D>>
    Module<Tensor<(C, H, W), E, D, T>> for Flatten
{
    type Output = Tensor<(Flattened<(C, H, W)>,), E, D, T>;
    type Error = D::Err;

    fn try_forward(&self, x: Tensor<(C, H, W), E, D, T>) -> Result<Self::Output, D::Err> {
        x.try_reshape_like(&Default::default())
    }
}
