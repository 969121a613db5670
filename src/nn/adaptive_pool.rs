//! `AdaptiveAvgPool2d` (average to a fixed output size) and `GlobalAvgPool2d` (mean over height and width).

use crate::kernels::{Resample2dKernel, ResampleAxis};
use crate::shape::{
    adaptive_avg_pool2d_name, check_adaptive_avg_pool2d, check_global_avg_pool2d, ShapeInfer,
    StaticDim,
};
use dfdx::nn::{Module, NonMutableModule, ZeroSizedModule};
use dfdx::prelude::*;

/// Averages each channel down (or up) to a fixed `OUT_HEIGHT x OUT_WIDTH`, whatever the input size.
///
/// PyTorch equivalent: `torch.nn.AdaptiveAvgPool2d((OUT_HEIGHT, OUT_WIDTH))`: output row `i`
/// averages input rows `floor(i * H / OUT_HEIGHT) .. ceil((i + 1) * H / OUT_HEIGHT)`, and
/// likewise for columns. Windows may differ in size and, when the output is larger than
/// the input, overlap. No parameters.
///
/// # Generics
/// - `OUT_HEIGHT`, `OUT_WIDTH`: the output size, at least 1x1; the input must also be at
///   least 1x1 (both checked at compile time).
///
/// # Shapes
/// - `(C, H, W) -> (C, Const<OUT_HEIGHT>, Const<OUT_WIDTH>)`
/// - `(B, C, H, W) -> (B, C, Const<OUT_HEIGHT>, Const<OUT_WIDTH>)`, `B` a `Const` or `usize`.
///
/// ```
/// use shapesafe::prelude::*;
/// let dev = Cpu::default();
/// let x: Tensor<Rank3<1, 1, 3>, f32, _> = dev.tensor([[[1.0, 2.0, 6.0]]]);
/// let y: Tensor<Rank3<1, 1, 2>, f32, _> = AdaptiveAvgPool2d::<1, 2>.forward(x);
/// assert_eq!(y.array(), [[[1.5, 4.0]]]);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct AdaptiveAvgPool2d<const OUT_HEIGHT: usize, const OUT_WIDTH: usize>;

impl<const OUT_HEIGHT: usize, const OUT_WIDTH: usize> ZeroSizedModule
    for AdaptiveAvgPool2d<OUT_HEIGHT, OUT_WIDTH>
{
}
impl<const OUT_HEIGHT: usize, const OUT_WIDTH: usize> NonMutableModule
    for AdaptiveAvgPool2d<OUT_HEIGHT, OUT_WIDTH>
{
}

impl<const OUT_HEIGHT: usize, const OUT_WIDTH: usize, C: StaticDim, H: StaticDim, W: StaticDim>
    ShapeInfer<(C, H, W)> for AdaptiveAvgPool2d<OUT_HEIGHT, OUT_WIDTH>
{
    type Output = (C, Const<OUT_HEIGHT>, Const<OUT_WIDTH>);
    const CHECK: () =
        check_adaptive_avg_pool2d([OUT_HEIGHT, OUT_WIDTH], [C::SIZE, H::SIZE, W::SIZE]);
    const PARAMS: usize = 0;
    fn name() -> String {
        adaptive_avg_pool2d_name([OUT_HEIGHT, OUT_WIDTH])
            .as_str()
            .to_string()
    }
}

impl<
        const OUT_HEIGHT: usize,
        const OUT_WIDTH: usize,
        B: Dim,
        C: StaticDim,
        H: StaticDim,
        W: StaticDim,
        E: Dtype,
        D: Resample2dKernel<E>,
        T: Tape<E, D>,
    > Module<Tensor<(B, C, H, W), E, D, T>> for AdaptiveAvgPool2d<OUT_HEIGHT, OUT_WIDTH>
{
    type Output = Tensor<(B, C, Const<OUT_HEIGHT>, Const<OUT_WIDTH>), E, D, T>;
    type Error = D::Err;

    fn try_forward(&self, x: Tensor<(B, C, H, W), E, D, T>) -> Result<Self::Output, D::Err> {
        const { <Self as ShapeInfer<(C, H, W)>>::CHECK };
        let out_shape = (x.shape().0, C::default(), Const, Const);
        D::try_resample2d(
            x,
            ResampleAxis::adaptive_average(H::SIZE, OUT_HEIGHT),
            ResampleAxis::adaptive_average(W::SIZE, OUT_WIDTH),
            out_shape,
        )
    }
}

impl<
        const OUT_HEIGHT: usize,
        const OUT_WIDTH: usize,
        C: StaticDim,
        H: StaticDim,
        W: StaticDim,
        E: Dtype,
        D: Resample2dKernel<E>,
        T: Tape<E, D>,
    > Module<Tensor<(C, H, W), E, D, T>> for AdaptiveAvgPool2d<OUT_HEIGHT, OUT_WIDTH>
{
    type Output = Tensor<(C, Const<OUT_HEIGHT>, Const<OUT_WIDTH>), E, D, T>;
    type Error = D::Err;

    fn try_forward(&self, x: Tensor<(C, H, W), E, D, T>) -> Result<Self::Output, D::Err> {
        const { <Self as ShapeInfer<(C, H, W)>>::CHECK };
        D::try_resample2d(
            x,
            ResampleAxis::adaptive_average(H::SIZE, OUT_HEIGHT),
            ResampleAxis::adaptive_average(W::SIZE, OUT_WIDTH),
            Default::default(),
        )
    }
}

/// The mean of each channel over height and width: one number per channel, as before the
/// classifier head of ResNet or MobileNet. No parameters.
///
/// PyTorch equivalent: `torch.nn.AdaptiveAvgPool2d(1)` followed by `torch.flatten(x, 1)`,
/// i.e. `x.mean(dim=(-2, -1))`. Built from dfdx's mean, so it runs on any dfdx device.
///
/// # Shapes
/// - `(C, H, W) -> (C,)`
/// - `(B, C, H, W) -> (B, C)`, `B` a `Const` or `usize`.
///
/// `H` and `W` may be computed dims; they must be at least 1x1 (checked at compile time).
///
/// ```
/// use shapesafe::prelude::*;
/// let dev = Cpu::default();
/// let x: Tensor<Rank4<1, 2, 1, 2>, f32, _> = dev.tensor([[[[1.0, 3.0]], [[0.0, -4.0]]]]);
/// let y: Tensor<Rank2<1, 2>, f32, _> = GlobalAvgPool2d.forward(x);
/// assert_eq!(y.array(), [[2.0, -2.0]]);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct GlobalAvgPool2d;

impl ZeroSizedModule for GlobalAvgPool2d {}
impl NonMutableModule for GlobalAvgPool2d {}

impl<C: StaticDim, H: StaticDim, W: StaticDim> ShapeInfer<(C, H, W)> for GlobalAvgPool2d {
    type Output = (C,);
    const CHECK: () = check_global_avg_pool2d([C::SIZE, H::SIZE, W::SIZE]);
    const PARAMS: usize = 0;
    fn name() -> String {
        "GlobalAvgPool2d".to_string()
    }
}

impl<B: Dim, C: StaticDim, H: StaticDim, W: StaticDim, E: Dtype, D: Device<E>, T: Tape<E, D>>
    Module<Tensor<(B, C, H, W), E, D, T>> for GlobalAvgPool2d
{
    type Output = Tensor<(B, C), E, D, T>;
    type Error = D::Err;

    fn try_forward(&self, x: Tensor<(B, C, H, W), E, D, T>) -> Result<Self::Output, D::Err> {
        const { <Self as ShapeInfer<(C, H, W)>>::CHECK };
        x.try_mean::<_, Axes2<2, 3>>()
    }
}

impl<C: StaticDim, H: StaticDim, W: StaticDim, E: Dtype, D: Device<E>, T: Tape<E, D>>
    Module<Tensor<(C, H, W), E, D, T>> for GlobalAvgPool2d
{
    type Output = Tensor<(C,), E, D, T>;
    type Error = D::Err;

    fn try_forward(&self, x: Tensor<(C, H, W), E, D, T>) -> Result<Self::Output, D::Err> {
        const { <Self as ShapeInfer<(C, H, W)>>::CHECK };
        x.try_mean::<_, Axes2<1, 2>>()
    }
}
