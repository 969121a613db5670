//! `Upsample2d`: integer-factor nearest and bilinear upsampling, output dims computed as types.

use crate::kernels::{Resample2dKernel, ResampleAxis};
use crate::shape::{check_upsample2d, upsample2d_name, Scaled, ShapeInfer, StaticDim};
use core::marker::PhantomData;
use dfdx::nn::{Module, NonMutableModule, ZeroSizedModule};
use dfdx::prelude::*;

/// How [`Upsample2d`] fills the new pixels: [`Nearest`], [`Bilinear`] or [`BilinearAlignCorners`].
///
/// # Shapes
/// Not a layer; the mode never changes the output shape.
///
/// ```
/// use shapesafe::nn::upsample::UpsampleMode;
/// use shapesafe::prelude::*;
/// assert_eq!(Nearest::axis(2, 2).to_dense(), [1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0]);
/// assert_eq!(Bilinear::NAME, "Bilinear");
/// ```
pub trait UpsampleMode: Default + Clone + Copy + core::fmt::Debug + Send + Sync + 'static {
    /// The marker's name as written in `Upsample2d<SCALE, Mode>`; empty for the default.
    const NAME: &'static str;
    /// The map along one axis of length `input`, upsampled by `scale`.
    fn axis(input: usize, scale: usize) -> ResampleAxis;
}

/// Nearest-neighbour upsampling: each pixel is repeated `SCALE x SCALE` times.
///
/// PyTorch equivalent: `mode="nearest"`.
///
/// # Shapes
/// A mode of [`Upsample2d`]; see there.
///
/// ```
/// use shapesafe::prelude::*;
/// let dev = Cpu::default();
/// let x: Tensor<Rank3<1, 1, 2>, f32, _> = dev.tensor([[[1.0, 2.0]]]);
/// assert_eq!(Upsample2d::<2, Nearest>::default().forward(x).as_vec(), [1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0]);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Nearest;

/// Bilinear interpolation with half-pixel centers: output pixel `i` samples the input at
/// `(i + 0.5) / SCALE - 0.5`, clamped to the border.
///
/// PyTorch equivalent: `mode="bilinear", align_corners=False` (PyTorch's default).
///
/// # Shapes
/// A mode of [`Upsample2d`]; see there.
///
/// ```
/// use shapesafe::prelude::*;
/// let dev = Cpu::default();
/// let x: Tensor<Rank3<1, 1, 2>, f32, _> = dev.tensor([[[1.0, 2.0]]]);
/// assert_eq!(Upsample2d::<2, Bilinear>::default().forward(x).as_vec()[..4], [1.0, 1.25, 1.75, 2.0]);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bilinear;

/// Bilinear interpolation that maps the corner pixels onto each other: output pixel `i`
/// samples the input at `i * (H - 1) / (H * SCALE - 1)`.
///
/// PyTorch equivalent: `mode="bilinear", align_corners=True`.
///
/// # Shapes
/// A mode of [`Upsample2d`]; see there.
///
/// ```
/// use shapesafe::prelude::*;
/// let dev = Cpu::default();
/// let x: Tensor<Rank3<1, 1, 2>, f64, _> = dev.tensor([[[0.0, 3.0]]]);
/// let y = Upsample2d::<2, BilinearAlignCorners>::default().forward(x).as_vec();
/// assert_eq!(y[..4], [0.0, 1.0, 2.0, 3.0]);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BilinearAlignCorners;

impl UpsampleMode for Nearest {
    const NAME: &'static str = "";
    fn axis(input: usize, scale: usize) -> ResampleAxis {
        ResampleAxis::nearest(input, scale)
    }
}

impl UpsampleMode for Bilinear {
    const NAME: &'static str = "Bilinear";
    fn axis(input: usize, scale: usize) -> ResampleAxis {
        ResampleAxis::linear(input, scale, false)
    }
}

impl UpsampleMode for BilinearAlignCorners {
    const NAME: &'static str = "BilinearAlignCorners";
    fn axis(input: usize, scale: usize) -> ResampleAxis {
        ResampleAxis::linear(input, scale, true)
    }
}

/// Upsamples images by an integer factor in height and width. No parameters.
///
/// PyTorch equivalent: `torch.nn.Upsample(scale_factor=SCALE, mode=...)`, with `Mode`
/// [`Nearest`] (`"nearest"`), [`Bilinear`] (`"bilinear"`, `align_corners=False`) or
/// [`BilinearAlignCorners`] (`"bilinear"`, `align_corners=True`).
///
/// # Generics
/// - `SCALE`: the factor, at least 1 (checked at compile time).
/// - `Mode`: how new pixels are filled, default [`Nearest`].
///
/// # Shapes
/// - `(C, H, W) -> (C, Scaled<H, SCALE>, Scaled<W, SCALE>)`
/// - `(B, C, H, W) -> (B, C, Scaled<H, SCALE>, Scaled<W, SCALE>)`, `B` a `Const` or `usize`.
///
/// `H` and `W` may be computed dims, e.g. after a [`Conv2d`](crate::nn::builders::Conv2d).
///
/// ```
/// use shapesafe::prelude::*;
/// let dev = Cpu::default();
/// let x: Tensor<Rank4<1, 1, 2, 2>, f32, _> = dev.tensor([[[[1.0, 2.0], [3.0, 4.0]]]]);
/// let y: Tensor<(Const<1>, Const<1>, Scaled<Const<2>, 2>, Scaled<Const<2>, 2>), f32, _> =
///     Upsample2d::<2, Bilinear>::default().forward(x);
/// assert_eq!(y.as_vec()[..4], [1.0, 1.25, 1.75, 2.0]);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Upsample2d<const SCALE: usize, Mode = Nearest>(PhantomData<Mode>);

impl<const SCALE: usize, Mode: UpsampleMode> ZeroSizedModule for Upsample2d<SCALE, Mode> {}
impl<const SCALE: usize, Mode: UpsampleMode> NonMutableModule for Upsample2d<SCALE, Mode> {}

impl<const SCALE: usize, Mode: UpsampleMode, C: StaticDim, H: StaticDim, W: StaticDim>
    ShapeInfer<(C, H, W)> for Upsample2d<SCALE, Mode>
{
    type Output = (C, Scaled<H, SCALE>, Scaled<W, SCALE>);
    const CHECK: () = check_upsample2d(SCALE, Mode::NAME);
    const PARAMS: usize = 0;
    fn name() -> String {
        upsample2d_name(SCALE, Mode::NAME).as_str().to_string()
    }
}

impl<
        const SCALE: usize,
        Mode: UpsampleMode,
        B: Dim,
        C: StaticDim,
        H: StaticDim,
        W: StaticDim,
        E: Dtype,
        D: Resample2dKernel<E>,
        T: Tape<E, D>,
    > Module<Tensor<(B, C, H, W), E, D, T>> for Upsample2d<SCALE, Mode>
{
    type Output = Tensor<(B, C, Scaled<H, SCALE>, Scaled<W, SCALE>), E, D, T>;
    type Error = D::Err;

    fn try_forward(&self, x: Tensor<(B, C, H, W), E, D, T>) -> Result<Self::Output, D::Err> {
        const { <Self as ShapeInfer<(C, H, W)>>::CHECK };
        let out_shape = (
            x.shape().0,
            C::default(),
            Default::default(),
            Default::default(),
        );
        D::try_resample2d(
            x,
            Mode::axis(H::SIZE, SCALE),
            Mode::axis(W::SIZE, SCALE),
            out_shape,
        )
    }
}

impl<
        const SCALE: usize,
        Mode: UpsampleMode,
        C: StaticDim,
        H: StaticDim,
        W: StaticDim,
        E: Dtype,
        D: Resample2dKernel<E>,
        T: Tape<E, D>,
    > Module<Tensor<(C, H, W), E, D, T>> for Upsample2d<SCALE, Mode>
{
    type Output = Tensor<(C, Scaled<H, SCALE>, Scaled<W, SCALE>), E, D, T>;
    type Error = D::Err;

    fn try_forward(&self, x: Tensor<(C, H, W), E, D, T>) -> Result<Self::Output, D::Err> {
        const { <Self as ShapeInfer<(C, H, W)>>::CHECK };
        D::try_resample2d(
            x,
            Mode::axis(H::SIZE, SCALE),
            Mode::axis(W::SIZE, SCALE),
            Default::default(),
        )
    }
}
