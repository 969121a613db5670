//! Compile-time checks of the attention layers: head counts, sequence lengths, ViT patches.

use super::checks::{has_zero, layer_name};
use super::message::Message;
use dfdx::shapes::{Const, Dim};

/// A sequence dim whose length may be known at compile time.
///
/// Positional layers accept sequences up to `MAX_LEN` long: a [`Const`] length is
/// checked at compile time through [`STATIC`](SequenceDim::STATIC), a `usize` one
/// when the layer runs.
///
/// # Shapes
/// `STATIC` is `Some(N)` for `Const<N>` and `None` for `usize`.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::shape::SequenceDim;
/// assert_eq!(<Const<5> as SequenceDim>::STATIC, Some(5));
/// assert_eq!(<usize as SequenceDim>::STATIC, None);
/// ```
pub trait SequenceDim: Dim {
    /// The length when the type fixes it.
    const STATIC: Option<usize>;
}

impl<const N: usize> SequenceDim for Const<N> {
    const STATIC: Option<usize> = Some(N);
}

impl SequenceDim for usize {
    const STATIC: Option<usize> = None;
}

/// The name of `MultiHeadAttention<D_MODEL, HEADS>`.
pub const fn multi_head_attention_name(d_model: usize, heads: usize) -> Message {
    layer_name("MultiHeadAttention", &[d_model, heads], &[])
}

/// The name of `TransformerEncoderLayer<D_MODEL, HEADS, FEED_FORWARD, NORM_FIRST>`.
pub const fn transformer_encoder_layer_name(generics: [usize; 3], norm_first: bool) -> Message {
    sequence_layer_name("TransformerEncoderLayer", generics, norm_first)
}

/// The name of `TransformerDecoderLayer<D_MODEL, HEADS, FEED_FORWARD, NORM_FIRST>`.
pub const fn transformer_decoder_layer_name(generics: [usize; 3], norm_first: bool) -> Message {
    sequence_layer_name("TransformerDecoderLayer", generics, norm_first)
}

/// `Kind<D_MODEL, HEADS, FEED_FORWARD>`, with `, true>` when the layer normalises first.
const fn sequence_layer_name(kind: &str, generics: [usize; 3], norm_first: bool) -> Message {
    let m = layer_name(kind, &generics, &[]);
    if !norm_first {
        return m;
    }
    Message::new()
        .text(kind)
        .text("<")
        .number(generics[0])
        .text(", ")
        .number(generics[1])
        .text(", ")
        .number(generics[2])
        .text(", true>")
}

/// Checks that a layer's second input (a decoder's `memory`, a Transformer's `target`) has
/// the layer's width.
pub const fn check_input_width(name: Message, role: &str, d_model: usize, width: usize) {
    if width == 0 || width == d_model {
        return;
    }
    Message::new()
        .text("shape mismatch: ")
        .text(name.as_str())
        .text("'s ")
        .text(role)
        .text(" must have width ")
        .number(d_model)
        .text(", but it has width ")
        .number(width)
        .fail();
}

/// Checks that `heads` divide the model width of the layer named `name`, and that the
/// input's last dim is that width. `input` is the unbatched input `(sequence, width)`.
pub const fn check_attention(name: Message, d_model: usize, heads: usize, input: &[usize]) {
    if heads == 0 || !d_model.is_multiple_of(heads) {
        Message::new()
            .text("shape mismatch: ")
            .text(name.as_str())
            .text(": ")
            .number(heads)
            .text(" heads do not divide the model width ")
            .number(d_model)
            .fail();
    }
    check_width(name, d_model, input);
}

/// Checks that a sequence layer's input `(sequence, width)` has width `d_model`.
pub const fn check_width(name: Message, d_model: usize, input: &[usize]) {
    if has_zero(input) || input.len() != 2 || input[1] == d_model {
        return;
    }
    Message::new()
        .text("shape mismatch: ")
        .text(name.as_str())
        .text(" expects sequences of width ")
        .number(d_model)
        .text(", but its input has width ")
        .number(input[1])
        .fail();
}

/// Checks a positional layer with `max_len` positions of width `d_model` against its input
/// `(sequence, width)`; `sequence` is `None` when only known at run time.
pub const fn check_positional(
    name: Message,
    max_len: usize,
    d_model: usize,
    sequence: Option<usize>,
    width: usize,
) {
    if let Some(len) = sequence {
        if len > max_len {
            Message::new()
                .text("shape mismatch: ")
                .text(name.as_str())
                .text(" holds ")
                .number(max_len)
                .text(" positions, but the sequence is ")
                .number(len)
                .text(" long")
                .fail();
        }
        check_width(name, d_model, &[len, width]);
    } else {
        check_width(name, d_model, &[1, width]);
    }
}

/// Checks a `VisionTransformer`: `patch` must divide `image`, and the input
/// `(channels, height, width)` must be `(channels, image, image)`.
pub const fn check_vision_transformer(
    channels: usize,
    image: usize,
    patch: usize,
    input: [usize; 3],
) {
    if patch == 0 || !image.is_multiple_of(patch) {
        Message::new()
            .text("shape mismatch: VisionTransformer: patch ")
            .number(patch)
            .text(" does not divide image ")
            .number(image)
            .fail();
    }
    if has_zero(&input) || (input[0] == channels && input[1] == image && input[2] == image) {
        return;
    }
    Message::new()
        .text("shape mismatch: VisionTransformer expects ")
        .dims(&[channels, image, image])
        .text(" images, but got ")
        .dims(&input)
        .fail();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_like_types() {
        assert_eq!(
            multi_head_attention_name(8, 2).as_str(),
            "MultiHeadAttention<8, 2>"
        );
        assert_eq!(
            transformer_encoder_layer_name([8, 2, 16], false).as_str(),
            "TransformerEncoderLayer<8, 2, 16>"
        );
        assert_eq!(
            transformer_encoder_layer_name([8, 2, 16], true).as_str(),
            "TransformerEncoderLayer<8, 2, 16, true>"
        );
    }

    #[test]
    #[should_panic(
        expected = "shape mismatch: MultiHeadAttention<100, 3>: 3 heads do not divide the model width 100"
    )]
    fn heads_must_divide() {
        check_attention(multi_head_attention_name(100, 3), 100, 3, &[5, 100]);
    }

    #[test]
    #[should_panic(
        expected = "shape mismatch: MultiHeadAttention<8, 2> expects sequences of width 8, but its input has width 6"
    )]
    fn width_must_match() {
        check_attention(multi_head_attention_name(8, 2), 8, 2, &[5, 6]);
    }

    #[test]
    #[should_panic(expected = "holds 4 positions, but the sequence is 5 long")]
    fn sequence_must_fit() {
        check_positional(Message::new().text("P<4, 8>"), 4, 8, Some(5), 8);
    }

    #[test]
    #[should_panic(
        expected = "shape mismatch: VisionTransformer: patch 5 does not divide image 28"
    )]
    fn patch_must_divide() {
        check_vision_transformer(1, 28, 5, [1, 28, 28]);
    }

    #[test]
    fn fitting_shapes_pass() {
        check_attention(multi_head_attention_name(8, 2), 8, 2, &[5, 8]);
        check_positional(Message::new(), 5, 8, Some(5), 8);
        check_positional(Message::new(), 5, 8, None, 8);
        check_vision_transformer(1, 28, 7, [1, 28, 28]);
    }
}
