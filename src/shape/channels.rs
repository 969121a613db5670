//! Shape checks and the computed dim of ShuffleNet's channel operations: split and shuffle.

use super::checks::has_zero;
use super::dims::StaticDim;
use super::message::Message;
use core::marker::PhantomData;
use dfdx::shapes::{ConstDim, Dim};

/// Half of a channel dim: what each side of a [`ChannelSplit`](crate::nn::builders::ChannelSplit)
/// holds.
///
/// # Generics
/// - `Channels`: the split dim (any [`StaticDim`]); its size must be even, which the split
///   checks at compile time.
///
/// # Shapes
/// `SIZE = Channels::SIZE / 2`.
///
/// ```
/// use shapesafe::prelude::*;
/// assert_eq!(<Halved<Const<116>> as ConstDim>::SIZE, 58);
/// ```
pub struct Halved<Channels>(PhantomData<fn() -> Channels>);

impl<C> Clone for Halved<C> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<C> Copy for Halved<C> {}

impl<C> Default for Halved<C> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<C> PartialEq for Halved<C> {
    fn eq(&self, _: &Self) -> bool {
        // A compile-time dim has one value, so any two are equal.
        true
    }
}

impl<C> Eq for Halved<C> {}

impl<C: StaticDim> ConstDim for Halved<C> {
    const SIZE: usize = C::SIZE / 2;
}

impl<C: StaticDim> StaticDim for Halved<C> {}

impl<C: StaticDim> Dim for Halved<C> {
    #[inline(always)]
    fn size(&self) -> usize {
        <Self as ConstDim>::SIZE
    }
    #[inline(always)]
    fn from_size(size: usize) -> Option<Self> {
        (size == <Self as ConstDim>::SIZE).then(Self::default)
    }
}

impl<C: StaticDim> core::fmt::Debug for Halved<C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", <Self as ConstDim>::SIZE)
    }
}

/// Checks that a `ChannelSplit`'s input `(channels, height, width)` has an even channel
/// count, and that its branch keeps the shape of the half it is given.
pub const fn check_channel_split(input: [usize; 3], branch: [usize; 3]) {
    if has_zero(&input) {
        return;
    }
    if !input[0].is_multiple_of(2) {
        Message::new()
            .text("shape mismatch: ChannelSplit of ")
            .dims(&input)
            .text(": ")
            .number(input[0])
            .text(" channels do not split into two halves")
            .fail();
    }
    let half = [input[0] / 2, input[1], input[2]];
    if has_zero(&branch) || (branch[0] == half[0] && branch[1] == half[1] && branch[2] == half[2]) {
        return;
    }
    Message::new()
        .text("shape mismatch: ChannelSplit of ")
        .dims(&input)
        .text(": its branch gives ")
        .dims(&branch)
        .text(", but the half it passes through is ")
        .dims(&half)
        .text(": a split's branch must keep its half's shape")
        .fail();
}

/// Checks that `ChannelShuffle<GROUPS>`'s input `(channels, height, width)` has a
/// channel count that `groups` divides.
pub const fn check_channel_shuffle(groups: usize, input: [usize; 3]) {
    if groups == 0 {
        Message::new()
            .text("shape mismatch: ChannelShuffle<0>: groups must be at least 1")
            .fail();
    }
    if has_zero(&input) || input[0].is_multiple_of(groups) {
        return;
    }
    Message::new()
        .text("shape mismatch: ChannelShuffle<")
        .number(groups)
        .text("> needs channels divisible by ")
        .number(groups)
        .text(", but got ")
        .number(input[0])
        .text(" (its input is ")
        .dims(&input)
        .text(")")
        .fail();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_inputs_pass() {
        check_channel_split([116, 28, 28], [58, 28, 28]);
        check_channel_split([0, 28, 28], [7, 28, 28]);
        check_channel_shuffle(2, [116, 28, 28]);
        check_channel_shuffle(3, [240, 7, 7]);
    }

    #[test]
    #[should_panic(
        expected = "shape mismatch: ChannelSplit of (7, 8, 8): 7 channels do not split into two halves"
    )]
    fn an_odd_split_names_the_count() {
        check_channel_split([7, 8, 8], [4, 8, 8]);
    }

    #[test]
    #[should_panic(
        expected = "its branch gives (3, 4, 4), but the half it passes through is (3, 8, 8)"
    )]
    fn a_branch_that_resizes_is_named() {
        check_channel_split([6, 8, 8], [3, 4, 4]);
    }

    #[test]
    #[should_panic(
        expected = "its branch gives (60, 8, 8), but the half it passes through is (58, 8, 8)"
    )]
    fn a_branch_that_widens_is_named() {
        check_channel_split([116, 8, 8], [60, 8, 8]);
    }

    #[test]
    #[should_panic(
        expected = "shape mismatch: ChannelShuffle<3> needs channels divisible by 3, but got 116"
    )]
    fn a_shuffle_that_does_not_divide_is_named() {
        check_channel_shuffle(3, [116, 28, 28]);
    }
}
