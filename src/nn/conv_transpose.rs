//! `ConvTranspose2d`: 2-D transposed convolution with bias, grouped and dilated, shapes
//! checked at compile time.

use super::init::uniform_fan_in;
use crate::kernels::{ConvTranspose2dGeometry, ConvTranspose2dKernel};
use crate::shape::{
    check_conv_transpose2d, conv_transpose2d_name, ConvTransposeOut, PerGroup, ShapeInfer,
    StaticDim,
};
use dfdx::nn::{BuildModule, BuildOnDevice, Module, NonMutableModule};
use dfdx::nn::{ModuleVisitor, TensorCollection, TensorOptions};
use dfdx::prelude::*;
use rand_distr::uniform::SampleUniform;

/// The builder (architecture) type of [`ConvTranspose2d`].
pub mod builder {
    /// 2-D transposed convolution over `(C, H, W)` images, with bias: the gradient of a
    /// `Conv2d` with respect to its input, used to upsample (decoders, U-Nets, GANs).
    ///
    /// PyTorch equivalent: `torch.nn.ConvTranspose2d(IN, OUT, KERNEL, STRIDE, PADDING,
    /// OUTPUT_PADDING, GROUPS, bias=True, dilation=DILATION)` (note the generic order here
    /// puts `DILATION` before `GROUPS`, as in [`Conv2d`](crate::nn::builders::Conv2d)).
    /// Weights start as PyTorch's do: uniform in `±1/sqrt(fan_in)` with PyTorch's
    /// `fan_in = weight.size(1) * KERNEL * KERNEL = OUT / GROUPS * KERNEL * KERNEL`; the
    /// bias uses the same bound.
    ///
    /// # Generics
    /// - `IN`: input channels; `OUT`: output channels.
    /// - `KERNEL`: square kernel side.
    /// - `STRIDE` (default 1): output step between neighbouring input pixels.
    /// - `PADDING` (default 0): rows and columns cropped from each side of the output.
    /// - `OUTPUT_PADDING` (default 0): extra rows and columns on the bottom and right,
    ///   smaller than `STRIDE` or `DILATION`; it picks which of the input sizes a
    ///   strided `Conv2d` maps to one size this layer maps back to.
    /// - `DILATION` (default 1), `GROUPS` (default 1; must divide `IN` and `OUT`).
    ///
    /// # Shapes
    /// - `(Const<IN>, H, W) -> (Const<OUT>, ConvTransposeOut<H, KERNEL, STRIDE, PADDING,
    ///   OUTPUT_PADDING, DILATION>, ConvTransposeOut<W, ...>)`, with
    ///   `ConvTransposeOut<H, ...> = (H - 1) * STRIDE - 2 * PADDING + DILATION * (KERNEL - 1)
    ///   + OUTPUT_PADDING + 1`.
    /// - `(B, Const<IN>, H, W) -> (B, Const<OUT>, ...)`, `B` a `Const` or `usize`.
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// let dev = Cpu::default();
    /// // A stride-2 Conv2d halves 28x28 to 14x14; this transposed conv maps it back.
    /// let model = dev.build_module::<(Conv2d<1, 8, 3, 2, 1>, ConvTranspose2d<8, 1, 3, 2, 1, 1>), f32>();
    /// let x: Tensor<Rank4<4, 1, 28, 28>, f32, _> = dev.zeros();
    /// let y = model.forward(x);
    /// assert_eq!(y.shape().concrete(), [4, 1, 28, 28]);
    /// ```
    #[derive(Debug, Clone, Copy, Default)]
    pub struct ConvTranspose2d<
        const IN: usize,
        const OUT: usize,
        const KERNEL: usize,
        const STRIDE: usize = 1,
        const PADDING: usize = 0,
        const OUTPUT_PADDING: usize = 0,
        const DILATION: usize = 1,
        const GROUPS: usize = 1,
    >;
}

/// The weight shape of a transposed convolution, PyTorch's layout:
/// `(IN, OUT / GROUPS, KERNEL, KERNEL)`.
///
/// # Shapes
/// As its name says.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::nn::conv_transpose::ConvTranspose2dWeight;
/// assert_eq!(<ConvTranspose2dWeight<4, 6, 3, 2> as StaticShape>::DIMS, &[4, 3, 3, 3]);
/// ```
pub type ConvTranspose2dWeight<
    const IN: usize,
    const OUT: usize,
    const KERNEL: usize,
    const GROUPS: usize,
> = (
    Const<IN>,
    PerGroup<OUT, GROUPS>,
    Const<KERNEL>,
    Const<KERNEL>,
);

/// A built [`ConvTranspose2d`](builder::ConvTranspose2d) on device `D`; see the builder
/// for its generics and shapes.
///
/// # Shapes
/// As [`builder::ConvTranspose2d`].
///
/// ```
/// use shapesafe::prelude::*;
/// let up = Cpu::default().build_module::<ConvTranspose2d<8, 4, 3, 2>, f32>();
/// assert_eq!(up.weight.shape().concrete(), [8, 4, 3, 3]);
/// let x: Tensor<Rank3<8, 5, 5>, f32, _> = Cpu::default().zeros();
/// assert_eq!(up.forward(x).shape().concrete(), [4, 11, 11]);
/// ```
#[derive(Debug, Clone)]
pub struct ConvTranspose2d<
    const IN: usize,
    const OUT: usize,
    const KERNEL: usize,
    const STRIDE: usize,
    const PADDING: usize,
    const OUTPUT_PADDING: usize,
    const DILATION: usize,
    const GROUPS: usize,
    E: Dtype,
    D: Storage<E>,
> {
    /// `(IN, OUT / GROUPS, KERNEL, KERNEL)`, PyTorch's layout; initialised uniform in
    /// `±1/sqrt(OUT / GROUPS * KERNEL * KERNEL)`.
    pub weight: Tensor<ConvTranspose2dWeight<IN, OUT, KERNEL, GROUPS>, E, D>,
    /// `(OUT,)`; initialised with the weight's bound.
    pub bias: Tensor<Rank1<OUT>, E, D>,
}

impl<
        const IN: usize,
        const OUT: usize,
        const KERNEL: usize,
        const STRIDE: usize,
        const PADDING: usize,
        const OUTPUT_PADDING: usize,
        const DILATION: usize,
        const GROUPS: usize,
        E: Dtype,
        D: Device<E>,
    > BuildOnDevice<D, E>
    for builder::ConvTranspose2d<IN, OUT, KERNEL, STRIDE, PADDING, OUTPUT_PADDING, DILATION, GROUPS>
where
    ConvTranspose2d<IN, OUT, KERNEL, STRIDE, PADDING, OUTPUT_PADDING, DILATION, GROUPS, E, D>:
        BuildModule<D, E>,
{
    type Built =
        ConvTranspose2d<IN, OUT, KERNEL, STRIDE, PADDING, OUTPUT_PADDING, DILATION, GROUPS, E, D>;
}

impl<
        const IN: usize,
        const OUT: usize,
        const KERNEL: usize,
        const STRIDE: usize,
        const PADDING: usize,
        const OUTPUT_PADDING: usize,
        const DILATION: usize,
        const GROUPS: usize,
        E: Dtype,
        D: Storage<E>,
    > NonMutableModule
    for ConvTranspose2d<IN, OUT, KERNEL, STRIDE, PADDING, OUTPUT_PADDING, DILATION, GROUPS, E, D>
{
}

impl<
        const IN: usize,
        const OUT: usize,
        const KERNEL: usize,
        const STRIDE: usize,
        const PADDING: usize,
        const OUTPUT_PADDING: usize,
        const DILATION: usize,
        const GROUPS: usize,
        E: Dtype,
        D: Storage<E>,
    > ConvTranspose2d<IN, OUT, KERNEL, STRIDE, PADDING, OUTPUT_PADDING, DILATION, GROUPS, E, D>
{
    /// PyTorch's `fan_in` for this layer's initialisation: it reads the weight's dim 1,
    /// which for a transposed convolution is the output channels per group, so
    /// `OUT / GROUPS * KERNEL * KERNEL`.
    ///
    /// # Shapes
    /// A count, from the weight shape `(IN, OUT / GROUPS, KERNEL, KERNEL)`.
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// type Up = shapesafe::nn::modules::ConvTranspose2d<16, 8, 4, 2, 1, 0, 1, 2, f32, Cpu>;
    /// assert_eq!(Up::FAN_IN, 4 * 4 * 4);
    /// ```
    pub const FAN_IN: usize = <PerGroup<OUT, GROUPS> as ConstDim>::SIZE * KERNEL * KERNEL;
}

impl<
        const IN: usize,
        const OUT: usize,
        const KERNEL: usize,
        const STRIDE: usize,
        const PADDING: usize,
        const OUTPUT_PADDING: usize,
        const DILATION: usize,
        const GROUPS: usize,
        E: Dtype + num_traits::Float + SampleUniform,
        D: Device<E>,
    > TensorCollection<E, D>
    for ConvTranspose2d<IN, OUT, KERNEL, STRIDE, PADDING, OUTPUT_PADDING, DILATION, GROUPS, E, D>
{
    type To<E2: Dtype, D2: Device<E2>> =
        ConvTranspose2d<IN, OUT, KERNEL, STRIDE, PADDING, OUTPUT_PADDING, DILATION, GROUPS, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::tensor(
                    "weight",
                    |s| &s.weight,
                    |s| &mut s.weight,
                    TensorOptions::reset_with(|t| uniform_fan_in(t, Self::FAN_IN)),
                ),
                Self::tensor(
                    "bias",
                    |s| &s.bias,
                    |s| &mut s.bias,
                    TensorOptions::reset_with(|t| uniform_fan_in(t, Self::FAN_IN)),
                ),
            ),
            |(weight, bias)| ConvTranspose2d { weight, bias },
        )
    }
}

/// The output dim of a `ConvTranspose2d` with these generics on input dim `H`.
type Out<
    H,
    const KERNEL: usize,
    const STRIDE: usize,
    const PADDING: usize,
    const OUTPUT_PADDING: usize,
    const DILATION: usize,
> = ConvTransposeOut<H, KERNEL, STRIDE, PADDING, OUTPUT_PADDING, DILATION>;

impl<
        const IN: usize,
        const OUT: usize,
        const KERNEL: usize,
        const STRIDE: usize,
        const PADDING: usize,
        const OUTPUT_PADDING: usize,
        const DILATION: usize,
        const GROUPS: usize,
        C: StaticDim,
        H: StaticDim,
        W: StaticDim,
    > ShapeInfer<(C, H, W)>
    for builder::ConvTranspose2d<IN, OUT, KERNEL, STRIDE, PADDING, OUTPUT_PADDING, DILATION, GROUPS>
{
    type Output = (
        Const<OUT>,
        Out<H, KERNEL, STRIDE, PADDING, OUTPUT_PADDING, DILATION>,
        Out<W, KERNEL, STRIDE, PADDING, OUTPUT_PADDING, DILATION>,
    );
    const CHECK: () = check_conv_transpose2d(
        [
            IN,
            OUT,
            KERNEL,
            STRIDE,
            PADDING,
            OUTPUT_PADDING,
            DILATION,
            GROUPS,
        ],
        [C::SIZE, H::SIZE, W::SIZE],
    );
    const PARAMS: usize = IN * <PerGroup<OUT, GROUPS> as ConstDim>::SIZE * KERNEL * KERNEL + OUT;
    fn name() -> String {
        conv_transpose2d_name([
            IN,
            OUT,
            KERNEL,
            STRIDE,
            PADDING,
            OUTPUT_PADDING,
            DILATION,
            GROUPS,
        ])
        .as_str()
        .to_string()
    }
}

impl<
        const IN: usize,
        const OUT: usize,
        const KERNEL: usize,
        const STRIDE: usize,
        const PADDING: usize,
        const OUTPUT_PADDING: usize,
        const DILATION: usize,
        const GROUPS: usize,
        B: Dim,
        C: StaticDim,
        H: StaticDim,
        W: StaticDim,
        E: Dtype,
        D: ConvTranspose2dKernel<E>,
        T: Tape<E, D>,
    > Module<Tensor<(B, C, H, W), E, D, T>>
    for ConvTranspose2d<IN, OUT, KERNEL, STRIDE, PADDING, OUTPUT_PADDING, DILATION, GROUPS, E, D>
{
    type Output = Tensor<
        (
            B,
            Const<OUT>,
            Out<H, KERNEL, STRIDE, PADDING, OUTPUT_PADDING, DILATION>,
            Out<W, KERNEL, STRIDE, PADDING, OUTPUT_PADDING, DILATION>,
        ),
        E,
        D,
        T,
    >;
    type Error = D::Err;

    fn try_forward(&self, x: Tensor<(B, C, H, W), E, D, T>) -> Result<Self::Output, D::Err> {
        const {
            <builder::ConvTranspose2d<
                IN,
                OUT,
                KERNEL,
                STRIDE,
                PADDING,
                OUTPUT_PADDING,
                DILATION,
                GROUPS,
            > as ShapeInfer<(C, H, W)>>::CHECK
        };
        let batch = x.shape().0;
        let out_shape = (batch, Const, Default::default(), Default::default());
        let geometry = ConvTranspose2dGeometry {
            batch: batch.size(),
            in_channels: IN,
            out_channels: OUT,
            in_height: H::SIZE,
            in_width: W::SIZE,
            out_height:
                <Out<H, KERNEL, STRIDE, PADDING, OUTPUT_PADDING, DILATION> as ConstDim>::SIZE,
            out_width:
                <Out<W, KERNEL, STRIDE, PADDING, OUTPUT_PADDING, DILATION> as ConstDim>::SIZE,
            kernel: KERNEL,
            stride: STRIDE,
            padding: PADDING,
            dilation: DILATION,
            groups: GROUPS,
        };
        D::try_conv_transpose2d(x, &self.weight, &self.bias, geometry, out_shape)
    }
}

impl<
        const IN: usize,
        const OUT: usize,
        const KERNEL: usize,
        const STRIDE: usize,
        const PADDING: usize,
        const OUTPUT_PADDING: usize,
        const DILATION: usize,
        const GROUPS: usize,
        C: StaticDim,
        H: StaticDim,
        W: StaticDim,
        E: Dtype,
        D: ConvTranspose2dKernel<E>,
        T: Tape<E, D>,
    > Module<Tensor<(C, H, W), E, D, T>>
    for ConvTranspose2d<IN, OUT, KERNEL, STRIDE, PADDING, OUTPUT_PADDING, DILATION, GROUPS, E, D>
{
    type Output = Tensor<
        (
            Const<OUT>,
            Out<H, KERNEL, STRIDE, PADDING, OUTPUT_PADDING, DILATION>,
            Out<W, KERNEL, STRIDE, PADDING, OUTPUT_PADDING, DILATION>,
        ),
        E,
        D,
        T,
    >;
    type Error = D::Err;

    fn try_forward(&self, x: Tensor<(C, H, W), E, D, T>) -> Result<Self::Output, D::Err> {
        let x = x.try_reshape_like(&(Const::<1>, C::default(), H::default(), W::default()))?;
        let y = self.try_forward(x)?;
        y.try_reshape_like(&Default::default())
    }
}
