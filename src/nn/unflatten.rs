//! `Unflatten`: unfolds a feature dim into `(C, H, W)`, the inverse of `Flatten`.

use crate::shape::{check_unflatten, unflatten_name, ShapeInfer, StaticDim};
use dfdx::nn::{Module, NonMutableModule, ZeroSizedModule};
use dfdx::prelude::*;

/// Unfolds the feature dim into `(CHANNELS, HEIGHT, WIDTH)`, row-major.
///
/// PyTorch equivalent: `torch.nn.Unflatten(1, (CHANNELS, HEIGHT, WIDTH))` on batched
/// input; an unbatched `(F,)` becomes `(CHANNELS, HEIGHT, WIDTH)`. The input's feature
/// dim may be any compile-time dim (a `Const`, or the `Flattened<..>` a
/// [`Flatten`](crate::nn::builders::Flatten) produces) of size
/// `CHANNELS * HEIGHT * WIDTH`; another size is a build error naming both numbers.
/// Zero-copy when the input is contiguous.
///
/// # Generics
/// - `CHANNELS`, `HEIGHT`, `WIDTH`: the output image's dims.
///
/// # Shapes
/// - `(F,) -> (Const<CHANNELS>, Const<HEIGHT>, Const<WIDTH>)` where `F::SIZE == CHANNELS * HEIGHT * WIDTH`
/// - `(B, F) -> (B, Const<CHANNELS>, Const<HEIGHT>, Const<WIDTH>)`, `B` a `Const` or `usize`
///
/// ```
/// use shapesafe::prelude::*;
/// let dev = Cpu::default();
/// let x: Tensor<Rank2<2, 12>, f32, _> = dev.tensor([[0.0; 12], [1.0; 12]]);
/// let y: Tensor<Rank4<2, 3, 2, 2>, f32, _> = Unflatten::<3, 2, 2>.forward(x);
/// assert_eq!(y.as_vec()[12], 1.0);
/// ```
///
/// A size that does not fit is a build error:
///
/// ```compile_fail
/// use shapesafe::prelude::*;
/// let dev = Cpu::default();
/// let x: Tensor<Rank2<2, 10>, f32, _> = dev.zeros();
/// let y = Unflatten::<3, 2, 2>.forward(x);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Unflatten<const CHANNELS: usize, const HEIGHT: usize, const WIDTH: usize>;

impl<const CHANNELS: usize, const HEIGHT: usize, const WIDTH: usize> ZeroSizedModule
    for Unflatten<CHANNELS, HEIGHT, WIDTH>
{
}
impl<const CHANNELS: usize, const HEIGHT: usize, const WIDTH: usize> NonMutableModule
    for Unflatten<CHANNELS, HEIGHT, WIDTH>
{
}

impl<const CHANNELS: usize, const HEIGHT: usize, const WIDTH: usize, F: StaticDim> ShapeInfer<(F,)>
    for Unflatten<CHANNELS, HEIGHT, WIDTH>
{
    type Output = (Const<CHANNELS>, Const<HEIGHT>, Const<WIDTH>);
    const CHECK: () = check_unflatten([CHANNELS, HEIGHT, WIDTH], F::SIZE, F::FACTORS);
    const PARAMS: usize = 0;
    fn name() -> String {
        unflatten_name([CHANNELS, HEIGHT, WIDTH])
            .as_str()
            .to_string()
    }
}

impl<
        const CHANNELS: usize,
        const HEIGHT: usize,
        const WIDTH: usize,
        B: Dim,
        F: StaticDim,
        E: Dtype,
        D: Device<E>,
        T: Tape<E, D>,
    > Module<Tensor<(B, F), E, D, T>> for Unflatten<CHANNELS, HEIGHT, WIDTH>
{
    type Output = Tensor<(B, Const<CHANNELS>, Const<HEIGHT>, Const<WIDTH>), E, D, T>;
    type Error = D::Err;

    fn try_forward(&self, x: Tensor<(B, F), E, D, T>) -> Result<Self::Output, D::Err> {
        const { <Unflatten<CHANNELS, HEIGHT, WIDTH> as ShapeInfer<(F,)>>::CHECK };
        let batch = x.shape().0;
        x.try_reshape_like(&(batch, Const, Const, Const))
    }
}

impl<
        const CHANNELS: usize,
        const HEIGHT: usize,
        const WIDTH: usize,
        F: StaticDim,
        E: Dtype,
        D: Device<E>,
        T: Tape<E, D>,
    > Module<Tensor<(F,), E, D, T>> for Unflatten<CHANNELS, HEIGHT, WIDTH>
{
    type Output = Tensor<(Const<CHANNELS>, Const<HEIGHT>, Const<WIDTH>), E, D, T>;
    type Error = D::Err;

    fn try_forward(&self, x: Tensor<(F,), E, D, T>) -> Result<Self::Output, D::Err> {
        const { <Unflatten<CHANNELS, HEIGHT, WIDTH> as ShapeInfer<(F,)>>::CHECK };
        x.try_reshape_like(&(Const, Const, Const))
    }
}
