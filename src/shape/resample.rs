//! Dims and compile-time checks of the resampling layers: `Upsample2d`, `AdaptiveAvgPool2d`, `GlobalAvgPool2d`.

use super::dims::StaticDim;
use super::message::Message;
use core::marker::PhantomData;
use dfdx::shapes::{ConstDim, Dim};

/// The spatial size after upsampling `Input` by an integer factor.
///
/// PyTorch equivalent: the output size of `nn.Upsample(scale_factor=SCALE)`, `floor(Input * SCALE)`.
///
/// # Generics
/// - `Input`: the incoming dim (any [`StaticDim`], e.g. a [`ConvOut`](super::ConvOut)).
/// - `SCALE`: the factor.
///
/// # Shapes
/// `SIZE = Input * SCALE`.
///
/// ```
/// use shapesafe::prelude::*;
/// assert_eq!(<Scaled<Const<7>, 2> as ConstDim>::SIZE, 14);
/// assert_eq!(<Scaled<ConvOut<Const<28>, 5, 1, 0, 1>, 3> as ConstDim>::SIZE, 72);
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Scaled<Input, const SCALE: usize>(PhantomData<fn() -> Input>);

impl<Input: StaticDim, const SCALE: usize> ConstDim for Scaled<Input, SCALE> {
    // Saturating, as `product` does, so an absurd size reports instead of overflowing.
    const SIZE: usize = Input::SIZE.saturating_mul(SCALE);
}

impl<Input: StaticDim, const SCALE: usize> StaticDim for Scaled<Input, SCALE> {}

impl<Input: StaticDim, const SCALE: usize> Dim for Scaled<Input, SCALE> {
    #[inline(always)]
    fn size(&self) -> usize {
        <Self as ConstDim>::SIZE
    }
    #[inline(always)]
    fn from_size(size: usize) -> Option<Self> {
        (size == <Self as ConstDim>::SIZE).then(Self::default)
    }
}

impl<Input: StaticDim, const SCALE: usize> core::fmt::Debug for Scaled<Input, SCALE> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", <Self as ConstDim>::SIZE)
    }
}

/// The name of `Upsample2d<SCALE, Mode>`; `mode` is empty for the default `Nearest`.
pub const fn upsample2d_name(scale: usize, mode: &str) -> Message {
    let m = Message::new().text("Upsample2d<").number(scale);
    let m = if mode.is_empty() {
        m
    } else {
        m.text(", ").text(mode)
    };
    m.text(">")
}

/// Checks an `Upsample2d<SCALE, Mode>` (`mode` as [`upsample2d_name`] takes it).
///
/// Any input works: an empty one can only come from an earlier layer's failed check.
pub const fn check_upsample2d(scale: usize, mode: &str) {
    if scale == 0 {
        Message::new()
            .text("shape mismatch: ")
            .text(upsample2d_name(scale, mode).as_str())
            .text(": the scale factor must be at least 1")
            .fail();
    }
}

/// The name of `AdaptiveAvgPool2d<OUT_HEIGHT, OUT_WIDTH>`.
pub const fn adaptive_avg_pool2d_name(output: [usize; 2]) -> Message {
    Message::new()
        .text("AdaptiveAvgPool2d<")
        .number(output[0])
        .text(", ")
        .number(output[1])
        .text(">")
}

/// Fails unless the input `(channels, height, width)` has at least one row and one column.
const fn check_not_empty(name: Message, input: [usize; 3]) {
    if input[1] == 0 || input[2] == 0 {
        Message::new()
            .text("shape mismatch: ")
            .text(name.as_str())
            .text(" averages over its input's height and width, which must be at least 1x1, but its input is ")
            .dims(&input)
            .fail();
    }
}

/// Checks an `AdaptiveAvgPool2d<OUT_HEIGHT, OUT_WIDTH>` (`output`) against its input
/// `(channels, height, width)`: both must be at least 1x1.
///
/// An output larger than the input is allowed, as in PyTorch: windows then overlap.
pub const fn check_adaptive_avg_pool2d(output: [usize; 2], input: [usize; 3]) {
    let name = adaptive_avg_pool2d_name(output);
    if output[0] == 0 || output[1] == 0 {
        Message::new()
            .text("shape mismatch: ")
            .text(name.as_str())
            .text(": the output size must be at least 1x1")
            .fail();
    }
    check_not_empty(name, input);
}

/// Checks a `GlobalAvgPool2d` against its input `(channels, height, width)`: at least 1x1.
pub const fn check_global_avg_pool2d(input: [usize; 3]) {
    check_not_empty(Message::new().text("GlobalAvgPool2d"), input);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(upsample2d_name(2, "").as_str(), "Upsample2d<2>");
        assert_eq!(
            upsample2d_name(3, "Bilinear").as_str(),
            "Upsample2d<3, Bilinear>"
        );
        assert_eq!(
            adaptive_avg_pool2d_name([7, 7]).as_str(),
            "AdaptiveAvgPool2d<7, 7>"
        );
    }

    #[test]
    fn valid_shapes_pass() {
        check_upsample2d(1, "");
        check_adaptive_avg_pool2d([7, 7], [512, 1, 1]);
        check_adaptive_avg_pool2d([7, 7], [512, 224, 3]);
        check_global_avg_pool2d([512, 7, 7]);
    }
}
