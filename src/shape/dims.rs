//! Computed dimensions: dim types whose size is an associated const, and static shapes.

use core::marker::PhantomData;
use dfdx::shapes::{Const, ConstDim, Dim};

/// A compile-time dimension that can also say where its size came from.
///
/// Every [`ConstDim`] that shapesafe produces or accepts implements it, so error
/// messages can say "Flatten of (16, 4, 4) gives 256" instead of just "256".
///
/// # Shapes
/// One dim; `SIZE` is its length.
///
/// ```
/// use shapesafe::prelude::*;
/// assert_eq!(<Flattened<(Const<16>, Const<4>, Const<4>)> as StaticDim>::FACTORS, &[16, 4, 4]);
/// assert!(<Const<7> as StaticDim>::FACTORS.is_empty());
/// ```
pub trait StaticDim: ConstDim {
    /// The dims this one is the flattened product of; empty for a plain dim.
    const FACTORS: &'static [usize] = &[];
}

impl<const N: usize> StaticDim for Const<N> {}

/// A shape made only of [`StaticDim`]s: its dims are known at compile time.
///
/// # Shapes
/// Tuples of rank 1 to 6.
///
/// ```
/// use shapesafe::prelude::*;
/// assert_eq!(<Rank3<1, 28, 28> as StaticShape>::DIMS, &[1, 28, 28]);
/// ```
pub trait StaticShape: dfdx::shapes::ConstShape {
    /// The sizes of the dims, outermost first.
    const DIMS: &'static [usize];
    /// Product of the sizes.
    const NUMEL: usize = product(Self::DIMS);
}

macro_rules! static_shape {
    ($($d:ident),+) => {
        impl<$($d: StaticDim),+> StaticShape for ($($d,)+) {
            const DIMS: &'static [usize] = &[$($d::SIZE),+];
        }
    };
}
static_shape!(A);
static_shape!(A, B);
static_shape!(A, B, C);
static_shape!(A, B, C, D);
static_shape!(A, B, C, D, E);
static_shape!(A, B, C, D, E, F);

/// Product of `dims`, saturating so an absurd shape reports instead of overflowing.
pub const fn product(dims: &[usize]) -> usize {
    let mut p: usize = 1;
    let mut i = 0;
    while i < dims.len() {
        p = p.saturating_mul(dims[i]);
        i += 1;
    }
    p
}

/// Output length of a sliding window, PyTorch's floor formula:
/// `(input + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1`.
///
/// Returns 0 when the window does not fit or `stride` is 0; the layer's own check
/// reports that case with a sentence, and 0 tells later checks to stay quiet.
///
/// ```
/// assert_eq!(shapesafe::shape::window_output(28, 5, 1, 2, 1), 28);
/// assert_eq!(shapesafe::shape::window_output(10, 2, 2, 0, 1), 5);
/// assert_eq!(shapesafe::shape::window_output(3, 5, 1, 0, 1), 0);
/// ```
pub const fn window_output(
    input: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
) -> usize {
    let padded = input + 2 * padding;
    let span = dilation * (kernel.saturating_sub(1)) + 1;
    if input == 0 || kernel == 0 || stride == 0 || dilation == 0 || span > padded {
        0
    } else {
        (padded - span) / stride + 1
    }
}

macro_rules! dim_type_traits {
    ($name:ident <$($p:ident),*; $(const $c:ident: $t:ty),*>) => {
        impl<$($p,)* $(const $c: $t),*> Clone for $name<$($p,)* $($c),*> {
            fn clone(&self) -> Self {
                *self
            }
        }
        impl<$($p,)* $(const $c: $t),*> Copy for $name<$($p,)* $($c),*> {}
        impl<$($p,)* $(const $c: $t),*> Default for $name<$($p,)* $($c),*> {
            fn default() -> Self {
                Self(PhantomData)
            }
        }
        impl<$($p,)* $(const $c: $t),*> PartialEq for $name<$($p,)* $($c),*> {
            fn eq(&self, _: &Self) -> bool {
                true
            }
        }
        impl<$($p,)* $(const $c: $t),*> Eq for $name<$($p,)* $($c),*> {}
        impl<$($p: 'static,)* $(const $c: $t),*> Dim for $name<$($p,)* $($c),*>
        where
            Self: ConstDim,
        {
            #[inline(always)]
            fn size(&self) -> usize {
                <Self as ConstDim>::SIZE
            }
            #[inline(always)]
            fn from_size(size: usize) -> Option<Self> {
                (size == <Self as ConstDim>::SIZE).then(Self::default)
            }
        }
        impl<$($p,)* $(const $c: $t),*> core::fmt::Debug for $name<$($p,)* $($c),*>
        where
            Self: ConstDim,
        {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, "{}", <Self as ConstDim>::SIZE)
            }
        }
    };
}

/// The spatial size after a convolution or pooling window slides over `Input`.
///
/// PyTorch equivalent: the `H_out` formula of `torch.nn.Conv2d`.
///
/// # Generics
/// - `Input`: the incoming dim (any [`StaticDim`]).
/// - `KERNEL`, `STRIDE`, `PADDING`, `DILATION`: the window's geometry.
///
/// # Shapes
/// `SIZE = (Input + 2 * PADDING - DILATION * (KERNEL - 1) - 1) / STRIDE + 1`.
///
/// ```
/// use shapesafe::prelude::*;
/// type H = ConvOut<Const<32>, 3, 2, 1, 1>;
/// assert_eq!(<H as ConstDim>::SIZE, 16);
/// ```
pub struct ConvOut<
    Input,
    const KERNEL: usize,
    const STRIDE: usize,
    const PADDING: usize,
    const DILATION: usize,
>(PhantomData<fn() -> Input>);

dim_type_traits!(ConvOut<Input; const KERNEL: usize, const STRIDE: usize, const PADDING: usize, const DILATION: usize>);

impl<
        Input: StaticDim,
        const KERNEL: usize,
        const STRIDE: usize,
        const PADDING: usize,
        const DILATION: usize,
    > ConstDim for ConvOut<Input, KERNEL, STRIDE, PADDING, DILATION>
{
    const SIZE: usize = window_output(Input::SIZE, KERNEL, STRIDE, PADDING, DILATION);
}

impl<
        Input: StaticDim,
        const KERNEL: usize,
        const STRIDE: usize,
        const PADDING: usize,
        const DILATION: usize,
    > StaticDim for ConvOut<Input, KERNEL, STRIDE, PADDING, DILATION>
{
}

/// The spatial size after a pooling window (no dilation) slides over `Input`, rounding
/// down (PyTorch's default) or up (`ceil_mode=True`).
///
/// PyTorch equivalent: the `H_out` formula of `torch.nn.MaxPool2d`. In ceil mode a last,
/// partial window counts as long as it starts inside the input or its left padding.
///
/// # Generics
/// - `Input`: the incoming dim (any [`StaticDim`]).
/// - `KERNEL`, `STRIDE`, `PADDING`: the window's geometry.
/// - `CEIL_MODE`: round the window count up, default `false`.
///
/// # Shapes
/// `SIZE = (Input + 2 * PADDING - KERNEL) / STRIDE + 1`, rounded down or up.
///
/// ```
/// use shapesafe::prelude::*;
/// assert_eq!(<PoolOut<Const<28>, 2, 2, 0> as ConstDim>::SIZE, 14);
/// // GoogLeNet's first pool: 112 -> 55 when rounding down, 56 in ceil mode.
/// assert_eq!(<PoolOut<Const<112>, 3, 2, 0> as ConstDim>::SIZE, 55);
/// assert_eq!(<PoolOut<Const<112>, 3, 2, 0, true> as ConstDim>::SIZE, 56);
/// ```
pub struct PoolOut<
    Input,
    const KERNEL: usize,
    const STRIDE: usize,
    const PADDING: usize,
    const CEIL_MODE: bool = false,
>(PhantomData<fn() -> Input>);

dim_type_traits!(PoolOut<Input; const KERNEL: usize, const STRIDE: usize, const PADDING: usize, const CEIL_MODE: bool>);

impl<
        Input: StaticDim,
        const KERNEL: usize,
        const STRIDE: usize,
        const PADDING: usize,
        const CEIL_MODE: bool,
    > ConstDim for PoolOut<Input, KERNEL, STRIDE, PADDING, CEIL_MODE>
{
    const SIZE: usize = pool_output(Input::SIZE, KERNEL, STRIDE, PADDING, CEIL_MODE);
}

impl<
        Input: StaticDim,
        const KERNEL: usize,
        const STRIDE: usize,
        const PADDING: usize,
        const CEIL_MODE: bool,
    > StaticDim for PoolOut<Input, KERNEL, STRIDE, PADDING, CEIL_MODE>
{
}

/// Output length of a pooling window, PyTorch's `pooling_output_shape`: the floor formula
/// of [`window_output`], or in ceil mode the count rounded up, less a last window that
/// would start in the right padding.
///
/// Returns 0 when the window does not fit or `stride` is 0, as [`window_output`] does.
///
/// ```
/// use shapesafe::shape::pool_output;
/// assert_eq!(pool_output(112, 3, 2, 0, false), 55);
/// assert_eq!(pool_output(112, 3, 2, 0, true), 56);
/// // A window may not start in the right padding: 5 + 2 * 1 with kernel 2, stride 2.
/// assert_eq!(pool_output(5, 2, 2, 1, true), 3);
/// ```
pub const fn pool_output(
    input: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    ceil_mode: bool,
) -> usize {
    let floor = window_output(input, kernel, stride, padding, 1);
    if !ceil_mode || floor == 0 {
        return floor;
    }
    let span = input + 2 * padding - kernel;
    let mut out = span.div_ceil(stride) + 1;
    if (out - 1) * stride >= input + padding {
        out -= 1;
    }
    out
}

/// One dim holding the product of a static shape's dims: what `Flatten` produces.
///
/// # Shapes
/// `Flattened<(C, H, W)>` has `SIZE = C * H * W` and remembers `[C, H, W]`.
///
/// ```
/// use shapesafe::prelude::*;
/// assert_eq!(<Flattened<Rank3<16, 5, 5>> as ConstDim>::SIZE, 400);
/// ```
pub struct Flattened<Dims>(PhantomData<fn() -> Dims>);

dim_type_traits!(Flattened<Dims;>);

impl<Dims: StaticShape> ConstDim for Flattened<Dims> {
    const SIZE: usize = product(Dims::DIMS);
}

impl<Dims: StaticShape> StaticDim for Flattened<Dims> {
    const FACTORS: &'static [usize] = Dims::DIMS;
}

/// The channels each group of a grouped convolution sees: `CHANNELS / GROUPS`.
///
/// Stable Rust cannot write `Const<{ IN / GROUPS }>`, so a conv weight's second
/// dim is this type.
///
/// # Shapes
/// `SIZE = CHANNELS / GROUPS` (0 when `GROUPS` is 0; the layer check reports it).
///
/// ```
/// use shapesafe::prelude::*;
/// assert_eq!(<PerGroup<32, 4> as ConstDim>::SIZE, 8);
/// ```
pub struct PerGroup<const CHANNELS: usize, const GROUPS: usize>(PhantomData<fn()>);

dim_type_traits!(PerGroup<; const CHANNELS: usize, const GROUPS: usize>);

impl<const CHANNELS: usize, const GROUPS: usize> ConstDim for PerGroup<CHANNELS, GROUPS> {
    const SIZE: usize = match CHANNELS.checked_div(GROUPS) {
        Some(n) => n,
        None => 0,
    };
}

impl<const CHANNELS: usize, const GROUPS: usize> StaticDim for PerGroup<CHANNELS, GROUPS> {}

/// The features a `Maxout<K>` leaves: one per group of `K` consecutive input features.
///
/// Stable Rust cannot write `Const<{ F / K }>`, so the output of
/// [`Maxout`](crate::nn::builders::Maxout) is this type.
///
/// # Generics
/// - `Input`: the incoming feature dim (any [`StaticDim`]); `K`: the group size.
///
/// # Shapes
/// `SIZE = Input / K` (0 when `K` is 0; the layer's check reports that, and a `K`
/// that does not divide `Input`).
///
/// ```
/// use shapesafe::prelude::*;
/// assert_eq!(<MaxoutOut<Const<12>, 3> as ConstDim>::SIZE, 4);
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct MaxoutOut<Input, const K: usize>(PhantomData<fn() -> Input>);

impl<Input: StaticDim, const K: usize> ConstDim for MaxoutOut<Input, K> {
    const SIZE: usize = match Input::SIZE.checked_div(K) {
        Some(n) => n,
        None => 0,
    };
}

impl<Input: StaticDim, const K: usize> StaticDim for MaxoutOut<Input, K> {}

impl<Input: StaticDim, const K: usize> Dim for MaxoutOut<Input, K> {
    #[inline(always)]
    fn size(&self) -> usize {
        <Self as ConstDim>::SIZE
    }
    #[inline(always)]
    fn from_size(size: usize) -> Option<Self> {
        (size == <Self as ConstDim>::SIZE).then(Self::default)
    }
}

impl<Input: StaticDim, const K: usize> core::fmt::Debug for MaxoutOut<Input, K> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", <Self as ConstDim>::SIZE)
    }
}
