//! Transposed convolution's computed output dim and its compile-time check.

use super::checks::mismatch;
use super::dims::{product, StaticDim};
use super::message::Message;
use core::marker::PhantomData;
use dfdx::shapes::{ConstDim, Dim};

/// Output length of a transposed convolution, PyTorch's formula:
/// `(input - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1`.
///
/// Returns 0 when the padding trims away the whole output, or when `input`,
/// `kernel`, `stride` or `dilation` is 0; the layer's own check reports those cases
/// with a sentence, and 0 tells later checks to stay quiet.
///
/// # Shapes
/// One length in, one length out.
///
/// ```
/// use shapesafe::shape::transpose_output;
/// assert_eq!(transpose_output(14, 3, 2, 1, 1, 1), 28);
/// assert_eq!(transpose_output(5, 3, 1, 0, 0, 1), 7);
/// assert_eq!(transpose_output(1, 1, 1, 1, 0, 1), 0);
/// ```
pub const fn transpose_output(
    input: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    output_padding: usize,
    dilation: usize,
) -> usize {
    if input == 0 || kernel == 0 || stride == 0 || dilation == 0 {
        return 0;
    }
    let full = full_output(input, kernel, stride, output_padding, dilation);
    full.saturating_sub(2 * padding)
}

/// The output length before padding trims it: `(input - 1) * stride + dilation * (kernel - 1)
/// + output_padding + 1`, saturating so absurd generics report instead of overflowing.
const fn full_output(
    input: usize,
    kernel: usize,
    stride: usize,
    output_padding: usize,
    dilation: usize,
) -> usize {
    (input - 1)
        .saturating_mul(stride)
        .saturating_add(dilation.saturating_mul(kernel - 1))
        .saturating_add(output_padding)
        .saturating_add(1)
}

/// The spatial size after a transposed convolution of `Input`.
///
/// PyTorch equivalent: the `H_out` formula of `torch.nn.ConvTranspose2d`.
///
/// # Generics
/// - `Input`: the incoming dim (any [`StaticDim`]).
/// - `KERNEL`, `STRIDE`, `PADDING`, `OUTPUT_PADDING`, `DILATION`: the layer's geometry.
///
/// # Shapes
/// `SIZE = (Input - 1) * STRIDE - 2 * PADDING + DILATION * (KERNEL - 1) + OUTPUT_PADDING + 1`
/// (0 when that is not positive; the layer's check reports it).
///
/// ```
/// use shapesafe::prelude::*;
/// type H = ConvTransposeOut<Const<14>, 3, 2, 1, 1, 1>;
/// assert_eq!(<H as ConstDim>::SIZE, 28);
/// ```
pub struct ConvTransposeOut<
    Input,
    const KERNEL: usize,
    const STRIDE: usize,
    const PADDING: usize,
    const OUTPUT_PADDING: usize,
    const DILATION: usize,
>(PhantomData<fn() -> Input>);

// Written out rather than derived: a derive would demand `Input: Clone` and the
// like, which the marker does not need.
impl<
        Input,
        const KERNEL: usize,
        const STRIDE: usize,
        const PADDING: usize,
        const OUTPUT_PADDING: usize,
        const DILATION: usize,
    > Clone for ConvTransposeOut<Input, KERNEL, STRIDE, PADDING, OUTPUT_PADDING, DILATION>
{
    fn clone(&self) -> Self {
        *self
    }
}

impl<
        Input,
        const KERNEL: usize,
        const STRIDE: usize,
        const PADDING: usize,
        const OUTPUT_PADDING: usize,
        const DILATION: usize,
    > Copy for ConvTransposeOut<Input, KERNEL, STRIDE, PADDING, OUTPUT_PADDING, DILATION>
{
}

impl<
        Input,
        const KERNEL: usize,
        const STRIDE: usize,
        const PADDING: usize,
        const OUTPUT_PADDING: usize,
        const DILATION: usize,
    > Default for ConvTransposeOut<Input, KERNEL, STRIDE, PADDING, OUTPUT_PADDING, DILATION>
{
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<
        Input,
        const KERNEL: usize,
        const STRIDE: usize,
        const PADDING: usize,
        const OUTPUT_PADDING: usize,
        const DILATION: usize,
    > PartialEq for ConvTransposeOut<Input, KERNEL, STRIDE, PADDING, OUTPUT_PADDING, DILATION>
{
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl<
        Input,
        const KERNEL: usize,
        const STRIDE: usize,
        const PADDING: usize,
        const OUTPUT_PADDING: usize,
        const DILATION: usize,
    > Eq for ConvTransposeOut<Input, KERNEL, STRIDE, PADDING, OUTPUT_PADDING, DILATION>
{
}

impl<
        Input: StaticDim,
        const KERNEL: usize,
        const STRIDE: usize,
        const PADDING: usize,
        const OUTPUT_PADDING: usize,
        const DILATION: usize,
    > ConstDim for ConvTransposeOut<Input, KERNEL, STRIDE, PADDING, OUTPUT_PADDING, DILATION>
{
    const SIZE: usize = transpose_output(
        Input::SIZE,
        KERNEL,
        STRIDE,
        PADDING,
        OUTPUT_PADDING,
        DILATION,
    );
}

impl<
        Input: StaticDim,
        const KERNEL: usize,
        const STRIDE: usize,
        const PADDING: usize,
        const OUTPUT_PADDING: usize,
        const DILATION: usize,
    > StaticDim for ConvTransposeOut<Input, KERNEL, STRIDE, PADDING, OUTPUT_PADDING, DILATION>
{
}

impl<
        Input: StaticDim,
        const KERNEL: usize,
        const STRIDE: usize,
        const PADDING: usize,
        const OUTPUT_PADDING: usize,
        const DILATION: usize,
    > Dim for ConvTransposeOut<Input, KERNEL, STRIDE, PADDING, OUTPUT_PADDING, DILATION>
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

impl<
        Input: StaticDim,
        const KERNEL: usize,
        const STRIDE: usize,
        const PADDING: usize,
        const OUTPUT_PADDING: usize,
        const DILATION: usize,
    > core::fmt::Debug
    for ConvTransposeOut<Input, KERNEL, STRIDE, PADDING, OUTPUT_PADDING, DILATION>
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", <Self as ConstDim>::SIZE)
    }
}

/// Defaults of `STRIDE, PADDING, OUTPUT_PADDING, DILATION, GROUPS`.
const CONV_TRANSPOSE2D_DEFAULTS: [usize; 5] = [1, 0, 0, 1, 1];

/// The name of
/// `ConvTranspose2d<IN, OUT, KERNEL, STRIDE, PADDING, OUTPUT_PADDING, DILATION, GROUPS>`,
/// trailing generics equal to their defaults left out.
///
/// # Shapes
/// Not a layer; it names one.
///
/// ```
/// use shapesafe::shape::conv_transpose2d_name;
/// assert_eq!(conv_transpose2d_name([8, 1, 3, 2, 1, 1, 1, 1]).as_str(), "ConvTranspose2d<8, 1, 3, 2, 1, 1>");
/// assert_eq!(conv_transpose2d_name([4, 4, 3, 1, 0, 0, 1, 1]).as_str(), "ConvTranspose2d<4, 4, 3>");
/// ```
pub const fn conv_transpose2d_name(generics: [usize; 8]) -> Message {
    super::checks::layer_name("ConvTranspose2d", &generics, &CONV_TRANSPOSE2D_DEFAULTS)
}

/// Checks a `ConvTranspose2d` against its unbatched input `(channels, height, width)`.
///
/// `generics` is `[IN, OUT, KERNEL, STRIDE, PADDING, OUTPUT_PADDING, DILATION, GROUPS]`.
/// PyTorch's rules: groups divide both channel counts, and the output padding is
/// smaller than the stride or the dilation (otherwise it would add rows no input reaches
/// through any stride step); here also the padding must leave at least one output pixel.
///
/// # Shapes
/// `input` is `[C, H, W]`; a 0 in it means an earlier layer failed, and the input checks
/// stay quiet.
///
/// ```
/// use shapesafe::shape::check_conv_transpose2d;
/// check_conv_transpose2d([8, 1, 3, 2, 1, 1, 1, 1], [8, 14, 14]);
/// ```
pub const fn check_conv_transpose2d(generics: [usize; 8], input: [usize; 3]) {
    let [in_channels, out_channels, kernel, stride, padding, output_padding, dilation, groups] =
        generics;
    let name = mismatch("ConvTranspose2d", &generics, &CONV_TRANSPOSE2D_DEFAULTS);
    if kernel == 0 || stride == 0 || dilation == 0 || groups == 0 {
        name.text(": kernel, stride, dilation and groups must be at least 1")
            .fail();
    }
    if in_channels % groups != 0 || out_channels % groups != 0 {
        let input_side = in_channels % groups != 0;
        name.text(" splits channels into ")
            .number(groups)
            .text(" groups, but ")
            .number(groups)
            .text(" does not divide ")
            .number(if input_side {
                in_channels
            } else {
                out_channels
            })
            .text(if input_side {
                " input channels"
            } else {
                " output channels"
            })
            .fail();
    }
    if output_padding >= stride && output_padding >= dilation {
        name.text(": output padding ")
            .number(output_padding)
            .text(" must be smaller than the stride ")
            .number(stride)
            .text(" or the dilation ")
            .number(dilation)
            .fail();
    }
    if product(&input) == 0 {
        return;
    }
    if input[0] != in_channels {
        name.text(" expects ")
            .number(in_channels)
            .text(" input channels, but its input ")
            .dims(&input)
            .text(" has ")
            .number(input[0])
            .fail();
    }
    let mut axis = 1;
    while axis < 3 {
        let full = full_output(input[axis], kernel, stride, output_padding, dilation);
        if full <= 2 * padding {
            name.text(": padding ")
                .number(padding)
                .text(" trims ")
                .number(2 * padding)
                .text(" pixels from an output ")
                .text(if axis == 1 { "height" } else { "width" })
                .text(" of only ")
                .number(full)
                .text(" (input ")
                .dims(&input)
                .text("), leaving no output")
                .fail();
        }
        axis += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_formula_matches_pytorch() {
        // torch.nn.ConvTranspose2d(1, 1, 3, stride=2, padding=1, output_padding=1)(14x14) is 28x28.
        assert_eq!(transpose_output(14, 3, 2, 1, 1, 1), 28);
        // (7 - 1) * 3 - 2 * 2 + 2 * (3 - 1) + 2 + 1 = 21
        assert_eq!(transpose_output(7, 3, 3, 2, 2, 2), 21);
        assert_eq!(transpose_output(1, 1, 1, 0, 0, 1), 1);
        assert_eq!(transpose_output(2, 2, 1, 1, 0, 1), 1);
        assert_eq!(transpose_output(2, 2, 1, 2, 0, 1), 0);
        assert_eq!(transpose_output(0, 3, 1, 0, 0, 1), 0);
        assert_eq!(
            <ConvTransposeOut<dfdx::shapes::Const<5>, 4, 2, 1, 0, 1> as ConstDim>::SIZE,
            10
        );
    }

    #[test]
    fn names_drop_trailing_defaults() {
        assert_eq!(
            conv_transpose2d_name([8, 1, 3, 2, 1, 1, 1, 1]).as_str(),
            "ConvTranspose2d<8, 1, 3, 2, 1, 1>"
        );
        assert_eq!(
            conv_transpose2d_name([4, 6, 3, 1, 0, 0, 1, 2]).as_str(),
            "ConvTranspose2d<4, 6, 3, 1, 0, 0, 1, 2>"
        );
        assert_eq!(
            conv_transpose2d_name([4, 6, 3, 1, 0, 0, 1, 1]).as_str(),
            "ConvTranspose2d<4, 6, 3>"
        );
    }

    #[test]
    fn valid_shapes_pass() {
        check_conv_transpose2d([8, 1, 3, 2, 1, 1, 1, 1], [8, 14, 14]);
        // Output padding 1 with stride 1 is allowed when the dilation is larger.
        check_conv_transpose2d([2, 2, 3, 1, 0, 1, 2, 1], [2, 4, 4]);
        check_conv_transpose2d([4, 6, 3, 1, 0, 0, 1, 2], [4, 5, 5]);
        // The smallest output: one pixel.
        check_conv_transpose2d([1, 1, 2, 1, 1, 0, 1, 1], [1, 2, 2]);
        // A zero dim means an earlier failure: no second error.
        check_conv_transpose2d([3, 1, 3, 1, 0, 0, 1, 1], [0, 4, 4]);
    }

    /// Runs a check at run time, where `fail` is an ordinary panic, and returns its text.
    fn failure(generics: [usize; 8], input: [usize; 3]) -> String {
        let err = std::panic::catch_unwind(|| check_conv_transpose2d(generics, input))
            .expect_err("the check should fail");
        err.downcast_ref::<String>()
            .cloned()
            .expect("a formatted panic message")
    }

    #[test]
    fn invalid_shapes_fail_with_sentences() {
        assert_eq!(
            failure([6, 4, 3, 1, 0, 0, 1, 4], [6, 8, 8]),
            "shape mismatch: ConvTranspose2d<6, 4, 3, 1, 0, 0, 1, 4> splits channels into 4 groups, \
             but 4 does not divide 6 input channels"
        );
        assert_eq!(
            failure([4, 6, 3, 1, 0, 0, 1, 4], [4, 8, 8]),
            "shape mismatch: ConvTranspose2d<4, 6, 3, 1, 0, 0, 1, 4> splits channels into 4 groups, \
             but 4 does not divide 6 output channels"
        );
        assert_eq!(
            failure([8, 1, 3, 2, 1, 1, 1, 1], [3, 14, 14]),
            "shape mismatch: ConvTranspose2d<8, 1, 3, 2, 1, 1> expects 8 input channels, \
             but its input (3, 14, 14) has 3"
        );
        assert_eq!(
            failure([2, 2, 3, 2, 0, 2, 1, 1], [2, 4, 4]),
            "shape mismatch: ConvTranspose2d<2, 2, 3, 2, 0, 2>: output padding 2 must be smaller \
             than the stride 2 or the dilation 1"
        );
        assert_eq!(
            failure([2, 2, 0, 1, 0, 0, 1, 1], [2, 4, 4]),
            "shape mismatch: ConvTranspose2d<2, 2, 0>: kernel, stride, dilation and groups must be at least 1"
        );
        // Full output height (2 - 1) * 1 + 1 * (2 - 1) + 0 + 1 = 3, padding trims 4.
        assert_eq!(
            failure([1, 1, 2, 1, 2, 0, 1, 1], [1, 2, 5]),
            "shape mismatch: ConvTranspose2d<1, 1, 2, 1, 2>: padding 2 trims 4 pixels from an \
             output height of only 3 (input (1, 2, 5)), leaving no output"
        );
    }
}
