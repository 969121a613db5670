//! Shape checks and computed dims of the building blocks: BatchNorm2d, Residual, Concat.

use super::checks::{has_zero, layer_name};
use super::dims::StaticDim;
use super::message::Message;
use core::marker::PhantomData;
use dfdx::shapes::{ConstDim, Dim};

/// The channels of two feature maps concatenated along the channel dim: `A + B`.
///
/// Stable Rust cannot write `Const<{ A + B }>`, so [`Concat`](crate::nn::builders::Concat)
/// outputs this type; a following layer checks its size like any other dim.
///
/// # Generics
/// - `A`, `B`: the channel dims of the two branches (any [`StaticDim`]s).
///
/// # Shapes
/// `SIZE = A::SIZE + B::SIZE`.
///
/// ```
/// use shapesafe::prelude::*;
/// assert_eq!(<SumDim<Const<64>, Const<32>> as ConstDim>::SIZE, 96);
/// ```
pub struct SumDim<A, B>(PhantomData<fn() -> (A, B)>);

impl<A, B> Clone for SumDim<A, B> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<A, B> Copy for SumDim<A, B> {}

impl<A, B> Default for SumDim<A, B> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<A, B> PartialEq for SumDim<A, B> {
    fn eq(&self, _: &Self) -> bool {
        // A compile-time dim has one value, so any two are equal.
        true
    }
}

impl<A, B> Eq for SumDim<A, B> {}

impl<A: StaticDim, B: StaticDim> ConstDim for SumDim<A, B> {
    const SIZE: usize = A::SIZE.saturating_add(B::SIZE);
}

impl<A: StaticDim, B: StaticDim> StaticDim for SumDim<A, B> {}

impl<A: StaticDim, B: StaticDim> Dim for SumDim<A, B> {
    #[inline(always)]
    fn size(&self) -> usize {
        <Self as ConstDim>::SIZE
    }
    #[inline(always)]
    fn from_size(size: usize) -> Option<Self> {
        (size == <Self as ConstDim>::SIZE).then(Self::default)
    }
}

impl<A: StaticDim, B: StaticDim> core::fmt::Debug for SumDim<A, B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", <Self as ConstDim>::SIZE)
    }
}

const fn same_dims(a: &[usize], b: &[usize]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The name of `BatchNorm2d<CHANNELS>`.
pub const fn batchnorm2d_name(channels: usize) -> Message {
    layer_name("BatchNorm2d", &[channels], &[])
}

/// Checks a `BatchNorm2d<CHANNELS>` against its unbatched input `(channels, height, width)`.
pub const fn check_batchnorm2d(channels: usize, input: [usize; 3]) {
    if has_zero(&input) || input[0] == channels {
        return;
    }
    Message::new()
        .text("shape mismatch: ")
        .text(batchnorm2d_name(channels).as_str())
        .text(" expects ")
        .number(channels)
        .text(" channels, but got ")
        .number(input[0])
        .text(" (its input is ")
        .dims(&input)
        .text(")")
        .fail();
}

/// Checks that a `Residual` branch gives back the shape it was given, so that
/// `branch(x) + x` is defined: `branch` is the branch's output, `input` the block's input.
pub const fn check_residual(branch: &[usize], input: &[usize]) {
    if has_zero(branch) || has_zero(input) || same_dims(branch, input) {
        return;
    }
    Message::new()
        .text("shape mismatch: Residual branch gives ")
        .dims(branch)
        .text(", but its input is ")
        .dims(input)
        .fail();
}

/// Checks that a block stacked `count` times by `Repeated` keeps its input's shape.
pub const fn check_repeated(block: &[usize], input: &[usize], count: usize) {
    if has_zero(block) || has_zero(input) || same_dims(block, input) {
        return;
    }
    Message::new()
        .text("shape mismatch: Repeated block gives ")
        .dims(block)
        .text(", but its input is ")
        .dims(input)
        .text(": the ")
        .number(count)
        .text(" blocks must each keep their input's shape")
        .fail();
}

/// Checks that a `ResidualProjection`'s branch and shortcut give equal shapes, so
/// that `branch(x) + shortcut(x)` is defined.
pub const fn check_residual_projection(branch: &[usize], shortcut: &[usize], input: &[usize]) {
    if has_zero(branch) || has_zero(shortcut) || same_dims(branch, shortcut) {
        return;
    }
    Message::new()
        .text("shape mismatch: ResidualProjection branch gives ")
        .dims(branch)
        .text(", but its shortcut gives ")
        .dims(shortcut)
        .text(" (input ")
        .dims(input)
        .text(")")
        .fail();
}

/// Checks that the two outputs of a `Concat`, `(channels, height, width)` each,
/// agree in every dim but the channels.
pub const fn check_concat(first: &[usize], second: &[usize]) {
    if has_zero(first) || has_zero(second) {
        return;
    }
    let mut same = first.len() == second.len();
    let mut i = 1;
    while same && i < first.len() {
        same = first[i] == second[i];
        i += 1;
    }
    if !same {
        Message::new()
            .text("shape mismatch: Concat of ")
            .dims(first)
            .text(" and ")
            .dims(second)
            .text(": spatial sizes differ")
            .fail();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dfdx::shapes::Const;

    #[test]
    fn valid_shapes_pass() {
        check_batchnorm2d(64, [64, 7, 7]);
        check_residual(&[64, 32, 32], &[64, 32, 32]);
        check_residual_projection(&[128, 16, 16], &[128, 16, 16], &[64, 32, 32]);
        check_concat(&[64, 28, 28], &[32, 28, 28]);
        // A zero dim means an earlier layer failed already: stay quiet.
        check_residual(&[0, 3, 3], &[4, 3, 3]);
        check_concat(&[4, 0, 3], &[4, 3, 3]);
    }

    #[test]
    fn sum_dim_adds() {
        type S = SumDim<Const<3>, SumDim<Const<4>, Const<5>>>;
        assert_eq!(<S as ConstDim>::SIZE, 12);
        assert_eq!(S::from_size(12), Some(S::default()));
        assert_eq!(S::from_size(11), None);
        assert_eq!(format!("{:?}", S::default()), "12");
    }

    // The checks are plain const fns, so calling them at run time panics with the
    // very text the compiler shows.
    #[test]
    #[should_panic(
        expected = "shape mismatch: BatchNorm2d<64> expects 64 channels, but got 32 (its input is (32, 8, 8))"
    )]
    fn batchnorm_channels_message() {
        check_batchnorm2d(64, [32, 8, 8]);
    }

    #[test]
    #[should_panic(
        expected = "shape mismatch: Residual branch gives (128, 16, 16), but its input is (64, 32, 32)"
    )]
    fn residual_message() {
        check_residual(&[128, 16, 16], &[64, 32, 32]);
    }

    #[test]
    #[should_panic(
        expected = "shape mismatch: ResidualProjection branch gives (128, 16, 16), but its shortcut gives (128, 32, 32) (input (64, 32, 32))"
    )]
    fn residual_projection_message() {
        check_residual_projection(&[128, 16, 16], &[128, 32, 32], &[64, 32, 32]);
    }

    #[test]
    #[should_panic(
        expected = "shape mismatch: Concat of (64, 28, 28) and (64, 27, 27): spatial sizes differ"
    )]
    fn concat_message() {
        check_concat(&[64, 28, 28], &[64, 27, 27]);
    }

    #[test]
    fn names() {
        assert_eq!(batchnorm2d_name(64).as_str(), "BatchNorm2d<64>");
    }
}
