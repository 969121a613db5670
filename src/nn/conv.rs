//! `Conv2d`: 2-D convolution with bias, grouped and dilated, shapes checked at compile time.

use super::init::uniform_fan_in;
use crate::kernels::{Conv2dGeometry, Conv2dKernel};
use crate::shape::{check_conv2d, conv2d_name, ConvOut, PerGroup, ShapeInfer, StaticDim};
use dfdx::nn::{BuildModule, BuildOnDevice, Module, NonMutableModule};
use dfdx::nn::{ModuleVisitor, TensorCollection, TensorOptions};
use dfdx::prelude::*;
use rand_distr::uniform::SampleUniform;

/// The builder (architecture) type of [`Conv2d`].
pub mod builder {
    /// 2-D convolution over `(C, H, W)` images, with bias.
    ///
    /// PyTorch equivalent: `torch.nn.Conv2d(IN, OUT, KERNEL, STRIDE, PADDING, DILATION, GROUPS)`.
    /// Output sizes use PyTorch's floor formula. Weights start as PyTorch's do:
    /// uniform in `±1/sqrt(fan_in)`, `fan_in = IN / GROUPS * KERNEL * KERNEL`.
    ///
    /// # Generics
    /// - `IN`: input channels; `OUT`: output channels.
    /// - `KERNEL`: square kernel side.
    /// - `STRIDE` (default 1), `PADDING` (zeros on each side, default 0),
    ///   `DILATION` (default 1), `GROUPS` (default 1; must divide `IN` and `OUT`).
    /// - `BIAS` (default `true`): `false` is PyTorch's `bias=False` and builds a
    ///   [`Conv2dNoBias`](super::Conv2dNoBias), the convolution before a batch norm.
    ///
    /// # Shapes
    /// - `(Const<IN>, H, W) -> (Const<OUT>, ConvOut<H, KERNEL, STRIDE, PADDING, DILATION>, ConvOut<W, ...>)`
    /// - `(B, Const<IN>, H, W) -> (B, Const<OUT>, ConvOut<H, ...>, ConvOut<W, ...>)`, `B` a `Const` or `usize`.
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// let dev = Cpu::default();
    /// let conv = dev.build_module::<Conv2d<1, 6, 5, 1, 2>, f32>();
    /// let x: Tensor<Rank4<8, 1, 28, 28>, f32, _> = dev.zeros();
    /// let y: Tensor<(Const<8>, Const<6>, ConvOut<Const<28>, 5, 1, 2, 1>, ConvOut<Const<28>, 5, 1, 2, 1>), f32, _> =
    ///     conv.forward(x);
    /// assert_eq!(y.shape().concrete(), [8, 6, 28, 28]);
    /// ```
    #[derive(Debug, Clone, Copy, Default)]
    pub struct Conv2d<
        const IN: usize,
        const OUT: usize,
        const KERNEL: usize,
        const STRIDE: usize = 1,
        const PADDING: usize = 0,
        const DILATION: usize = 1,
        const GROUPS: usize = 1,
        const BIAS: bool = true,
    >;
}

/// The weight shape of a convolution: `(OUT, IN / GROUPS, KERNEL, KERNEL)`.
pub type Conv2dWeight<const IN: usize, const OUT: usize, const KERNEL: usize, const GROUPS: usize> = (
    Const<OUT>,
    PerGroup<IN, GROUPS>,
    Const<KERNEL>,
    Const<KERNEL>,
);

/// A built [`Conv2d`](builder::Conv2d) on device `D`; see the builder for its
/// generics and shapes.
///
/// # Shapes
/// As [`builder::Conv2d`].
///
/// ```
/// use shapesafe::prelude::*;
/// let conv = Cpu::default().build_module::<Conv2d<3, 8, 3, 1, 1>, f32>();
/// assert_eq!(conv.weight.shape().concrete(), [8, 3, 3, 3]);
/// ```
#[derive(Debug, Clone)]
pub struct Conv2d<
    const IN: usize,
    const OUT: usize,
    const KERNEL: usize,
    const STRIDE: usize,
    const PADDING: usize,
    const DILATION: usize,
    const GROUPS: usize,
    E: Dtype,
    D: Storage<E>,
> {
    /// `(OUT, IN / GROUPS, KERNEL, KERNEL)`, PyTorch's layout; initialised uniform in `±1/sqrt(fan_in)`.
    pub weight: Tensor<Conv2dWeight<IN, OUT, KERNEL, GROUPS>, E, D>,
    /// `(OUT,)`; initialised uniform in `±1/sqrt(fan_in)`.
    pub bias: Tensor<Rank1<OUT>, E, D>,
}

impl<
        const IN: usize,
        const OUT: usize,
        const KERNEL: usize,
        const STRIDE: usize,
        const PADDING: usize,
        const DILATION: usize,
        const GROUPS: usize,
        E: Dtype,
        D: Device<E>,
    > BuildOnDevice<D, E>
    for builder::Conv2d<IN, OUT, KERNEL, STRIDE, PADDING, DILATION, GROUPS, true>
where
    Conv2d<IN, OUT, KERNEL, STRIDE, PADDING, DILATION, GROUPS, E, D>: BuildModule<D, E>,
{
    type Built = Conv2d<IN, OUT, KERNEL, STRIDE, PADDING, DILATION, GROUPS, E, D>;
}

impl<
        const IN: usize,
        const OUT: usize,
        const KERNEL: usize,
        const STRIDE: usize,
        const PADDING: usize,
        const DILATION: usize,
        const GROUPS: usize,
        E: Dtype,
        D: Device<E>,
    > BuildOnDevice<D, E>
    for builder::Conv2d<IN, OUT, KERNEL, STRIDE, PADDING, DILATION, GROUPS, false>
where
    Conv2dNoBias<IN, OUT, KERNEL, STRIDE, PADDING, DILATION, GROUPS, E, D>: BuildModule<D, E>,
{
    type Built = Conv2dNoBias<IN, OUT, KERNEL, STRIDE, PADDING, DILATION, GROUPS, E, D>;
}

impl<
        const IN: usize,
        const OUT: usize,
        const KERNEL: usize,
        const STRIDE: usize,
        const PADDING: usize,
        const DILATION: usize,
        const GROUPS: usize,
        E: Dtype,
        D: Storage<E>,
    > NonMutableModule for Conv2d<IN, OUT, KERNEL, STRIDE, PADDING, DILATION, GROUPS, E, D>
{
}

impl<
        const IN: usize,
        const OUT: usize,
        const KERNEL: usize,
        const STRIDE: usize,
        const PADDING: usize,
        const DILATION: usize,
        const GROUPS: usize,
        E: Dtype + num_traits::Float + SampleUniform,
        D: Device<E>,
    > TensorCollection<E, D> for Conv2d<IN, OUT, KERNEL, STRIDE, PADDING, DILATION, GROUPS, E, D>
{
    type To<E2: Dtype, D2: Device<E2>> =
        Conv2d<IN, OUT, KERNEL, STRIDE, PADDING, DILATION, GROUPS, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::tensor(
                    "weight",
                    |s| &s.weight,
                    |s| &mut s.weight,
                    TensorOptions::reset_with(|t| {
                        uniform_fan_in(
                            t,
                            <PerGroup<IN, GROUPS> as ConstDim>::SIZE * KERNEL * KERNEL,
                        )
                    }),
                ),
                Self::tensor(
                    "bias",
                    |s| &s.bias,
                    |s| &mut s.bias,
                    TensorOptions::reset_with(|t| {
                        uniform_fan_in(
                            t,
                            <PerGroup<IN, GROUPS> as ConstDim>::SIZE * KERNEL * KERNEL,
                        )
                    }),
                ),
            ),
            |(weight, bias)| Conv2d { weight, bias },
        )
    }
}

impl<
        const IN: usize,
        const OUT: usize,
        const KERNEL: usize,
        const STRIDE: usize,
        const PADDING: usize,
        const DILATION: usize,
        const GROUPS: usize,
        const BIAS: bool,
        C: StaticDim,
        H: StaticDim,
        W: StaticDim,
    > ShapeInfer<(C, H, W)>
    for builder::Conv2d<IN, OUT, KERNEL, STRIDE, PADDING, DILATION, GROUPS, BIAS>
{
    type Output = (
        Const<OUT>,
        ConvOut<H, KERNEL, STRIDE, PADDING, DILATION>,
        ConvOut<W, KERNEL, STRIDE, PADDING, DILATION>,
    );
    const CHECK: () = check_conv2d(
        [IN, OUT, KERNEL, STRIDE, PADDING, DILATION, GROUPS],
        [C::SIZE, H::SIZE, W::SIZE],
    );
    const PARAMS: usize = OUT * <PerGroup<IN, GROUPS> as ConstDim>::SIZE * KERNEL * KERNEL
        + if BIAS { OUT } else { 0 };
    fn name() -> String {
        if BIAS {
            conv2d_name([IN, OUT, KERNEL, STRIDE, PADDING, DILATION, GROUPS])
                .as_str()
                .to_string()
        } else {
            format!(
                "Conv2d<{IN}, {OUT}, {KERNEL}, {STRIDE}, {PADDING}, {DILATION}, {GROUPS}, false>"
            )
        }
    }
}

/// A built [`Conv2d`](builder::Conv2d) with `BIAS = false` (PyTorch's `bias=False`):
/// the weight alone, as before a batch norm, whose shift makes a bias redundant.
///
/// # Shapes
/// As [`builder::Conv2d`].
///
/// ```
/// use shapesafe::prelude::*;
/// let dev = Cpu::default();
/// let conv = dev.build_module::<Conv2d<3, 8, 3, 1, 1, 1, 1, false>, f32>();
/// assert_eq!(conv.num_trainable_params(), 8 * 3 * 3 * 3);
/// let y = conv.forward(dev.zeros::<Rank4<2, 3, 5, 5>>());
/// assert_eq!(y.shape().concrete(), [2, 8, 5, 5]);
/// ```
#[derive(Debug, Clone)]
pub struct Conv2dNoBias<
    const IN: usize,
    const OUT: usize,
    const KERNEL: usize,
    const STRIDE: usize,
    const PADDING: usize,
    const DILATION: usize,
    const GROUPS: usize,
    E: Dtype,
    D: Storage<E>,
> {
    /// `(OUT, IN / GROUPS, KERNEL, KERNEL)`, PyTorch's layout; initialised uniform in `±1/sqrt(fan_in)`.
    pub weight: Tensor<Conv2dWeight<IN, OUT, KERNEL, GROUPS>, E, D>,
}

impl<
        const IN: usize,
        const OUT: usize,
        const KERNEL: usize,
        const STRIDE: usize,
        const PADDING: usize,
        const DILATION: usize,
        const GROUPS: usize,
        E: Dtype,
        D: Storage<E>,
    > NonMutableModule for Conv2dNoBias<IN, OUT, KERNEL, STRIDE, PADDING, DILATION, GROUPS, E, D>
{
}

impl<
        const IN: usize,
        const OUT: usize,
        const KERNEL: usize,
        const STRIDE: usize,
        const PADDING: usize,
        const DILATION: usize,
        const GROUPS: usize,
        E: Dtype + num_traits::Float + SampleUniform,
        D: Device<E>,
    > TensorCollection<E, D>
    for Conv2dNoBias<IN, OUT, KERNEL, STRIDE, PADDING, DILATION, GROUPS, E, D>
{
    type To<E2: Dtype, D2: Device<E2>> =
        Conv2dNoBias<IN, OUT, KERNEL, STRIDE, PADDING, DILATION, GROUPS, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            Self::tensor(
                "weight",
                |s| &s.weight,
                |s| &mut s.weight,
                TensorOptions::reset_with(|t| {
                    uniform_fan_in(
                        t,
                        <PerGroup<IN, GROUPS> as ConstDim>::SIZE * KERNEL * KERNEL,
                    )
                }),
            ),
            |weight| Conv2dNoBias { weight },
        )
    }
}

/// The batched forward both modules share; `bias` is `(OUT,)`.
// The output type is already an alias; its eleven generics are what clippy counts.
#[allow(clippy::type_complexity)]
fn conv_forward<
    const IN: usize,
    const OUT: usize,
    const KERNEL: usize,
    const STRIDE: usize,
    const PADDING: usize,
    const DILATION: usize,
    const GROUPS: usize,
    const BIAS: bool,
    B: Dim,
    C: StaticDim,
    H: StaticDim,
    W: StaticDim,
    E: Dtype,
    D: Conv2dKernel<E>,
    T: Tape<E, D>,
>(
    x: Tensor<(B, C, H, W), E, D, T>,
    weight: &Tensor<Conv2dWeight<IN, OUT, KERNEL, GROUPS>, E, D>,
    bias: &Tensor<Rank1<OUT>, E, D>,
) -> Result<ConvOutput<B, H, W, OUT, KERNEL, STRIDE, PADDING, DILATION, E, D, T>, D::Err> {
    const {
        <builder::Conv2d<IN, OUT, KERNEL, STRIDE, PADDING, DILATION, GROUPS, BIAS> as ShapeInfer<
            (C, H, W),
        >>::CHECK
    };
    let batch = x.shape().0;
    let out_shape = (batch, Const, Default::default(), Default::default());
    let geometry = Conv2dGeometry {
        batch: batch.size(),
        in_channels: IN,
        out_channels: OUT,
        in_height: H::SIZE,
        in_width: W::SIZE,
        out_height: <ConvOut<H, KERNEL, STRIDE, PADDING, DILATION> as ConstDim>::SIZE,
        out_width: <ConvOut<W, KERNEL, STRIDE, PADDING, DILATION> as ConstDim>::SIZE,
        kernel: KERNEL,
        stride: STRIDE,
        padding: PADDING,
        dilation: DILATION,
        groups: GROUPS,
    };
    D::try_conv2d(x, weight, bias, geometry, out_shape)
}

/// The output tensor of a batched convolution.
type ConvOutput<
    B,
    H,
    W,
    const OUT: usize,
    const KERNEL: usize,
    const STRIDE: usize,
    const PADDING: usize,
    const DILATION: usize,
    E,
    D,
    T,
> = Tensor<
    (
        B,
        Const<OUT>,
        ConvOut<H, KERNEL, STRIDE, PADDING, DILATION>,
        ConvOut<W, KERNEL, STRIDE, PADDING, DILATION>,
    ),
    E,
    D,
    T,
>;

/// `Module` for batched and unbatched input, for a module with the given bias flag;
/// `$bias` turns `(self, device)` into the `(OUT,)` bias to add.
macro_rules! conv_modules {
    ($module:ident, $flag:literal, |$s:ident, $dev:ident| $bias:expr) => {
        impl<
                const IN: usize,
                const OUT: usize,
                const KERNEL: usize,
                const STRIDE: usize,
                const PADDING: usize,
                const DILATION: usize,
                const GROUPS: usize,
                B: Dim,
                C: StaticDim,
                H: StaticDim,
                W: StaticDim,
                E: Dtype,
                D: Conv2dKernel<E>,
                T: Tape<E, D>,
            > Module<Tensor<(B, C, H, W), E, D, T>>
            for $module<IN, OUT, KERNEL, STRIDE, PADDING, DILATION, GROUPS, E, D>
        {
            type Output = ConvOutput<B, H, W, OUT, KERNEL, STRIDE, PADDING, DILATION, E, D, T>;
            type Error = D::Err;

            fn try_forward(
                &self,
                x: Tensor<(B, C, H, W), E, D, T>,
            ) -> Result<Self::Output, D::Err> {
                let ($s, $dev) = (self, x.device().clone());
                let bias: Tensor<Rank1<OUT>, E, D> = $bias;
                conv_forward::<
                    IN,
                    OUT,
                    KERNEL,
                    STRIDE,
                    PADDING,
                    DILATION,
                    GROUPS,
                    $flag,
                    _,
                    _,
                    _,
                    _,
                    _,
                    _,
                    _,
                >(x, &self.weight, &bias)
            }
        }

        impl<
                const IN: usize,
                const OUT: usize,
                const KERNEL: usize,
                const STRIDE: usize,
                const PADDING: usize,
                const DILATION: usize,
                const GROUPS: usize,
                C: StaticDim,
                H: StaticDim,
                W: StaticDim,
                E: Dtype,
                D: Conv2dKernel<E>,
                T: Tape<E, D>,
            > Module<Tensor<(C, H, W), E, D, T>>
            for $module<IN, OUT, KERNEL, STRIDE, PADDING, DILATION, GROUPS, E, D>
        {
            type Output = Tensor<
                (
                    Const<OUT>,
                    ConvOut<H, KERNEL, STRIDE, PADDING, DILATION>,
                    ConvOut<W, KERNEL, STRIDE, PADDING, DILATION>,
                ),
                E,
                D,
                T,
            >;
            type Error = D::Err;

            fn try_forward(&self, x: Tensor<(C, H, W), E, D, T>) -> Result<Self::Output, D::Err> {
                let x =
                    x.try_reshape_like(&(Const::<1>, C::default(), H::default(), W::default()))?;
                let y = self.try_forward(x)?;
                y.try_reshape_like(&Default::default())
            }
        }
    };
}

conv_modules!(Conv2d, true, |s, _dev| s.bias.clone());
// The kernel adds a bias; a bias-free conv gives it zeros, which cost OUT values
// against the convolution's OUT * H * W outputs.
conv_modules!(Conv2dNoBias, false, |_s, dev| dev.try_zeros()?);
