//! Recurrent layers' computed dims (gates, directions, stacked states) and their shape checks.

use super::checks::has_zero;
use super::message::Message;
use dfdx::shapes::{ConstDim, Dim};

/// Writes `Dim`, `Debug` for a unit-struct dim type whose size is its `ConstDim::SIZE`.
macro_rules! unit_dim {
    ($name:ident < $(const $c:ident : $t:ty),* >) => {
        impl<$(const $c: $t),*> Dim for $name<$($c),*> {
            #[inline(always)]
            fn size(&self) -> usize {
                <Self as ConstDim>::SIZE
            }
            #[inline(always)]
            fn from_size(size: usize) -> Option<Self> {
                (size == <Self as ConstDim>::SIZE).then_some(Self)
            }
        }
        impl<$(const $c: $t),*> core::fmt::Debug for $name<$($c),*> {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, "{}", <Self as ConstDim>::SIZE)
            }
        }
        impl<$(const $c: $t),*> super::StaticDim for $name<$($c),*> {}
    };
}

/// The features a recurrent layer outputs per time step: `HIDDEN`, or `2 * HIDDEN`
/// when it is bidirectional (the forward and the reverse direction side by side).
///
/// Stable Rust cannot write `Const<{ 2 * HIDDEN }>`, so the output of
/// [`Lstm`](crate::nn::builders::Lstm) and its kin is this type.
///
/// # Shapes
/// `SIZE = HIDDEN * (1 + BIDIRECTIONAL)`.
///
/// ```
/// use shapesafe::prelude::*;
/// assert_eq!(<Directions<128, true> as ConstDim>::SIZE, 256);
/// assert_eq!(<Directions<128, false> as ConstDim>::SIZE, 128);
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Directions<const HIDDEN: usize, const BIDIRECTIONAL: bool>;

impl<const HIDDEN: usize, const BIDIRECTIONAL: bool> ConstDim
    for Directions<HIDDEN, BIDIRECTIONAL>
{
    const SIZE: usize = HIDDEN * directions(BIDIRECTIONAL);
}
unit_dim!(Directions<const HIDDEN: usize, const BIDIRECTIONAL: bool>);

/// The rows of a recurrent weight: `COUNT` gates of `HIDDEN` each, stacked as PyTorch
/// stacks them (LSTM `i, f, g, o`; GRU `r, z, n`; a plain RNN has one).
///
/// # Shapes
/// `SIZE = COUNT * HIDDEN`.
///
/// ```
/// use shapesafe::prelude::*;
/// assert_eq!(<Gates<16, 4> as ConstDim>::SIZE, 64);
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Gates<const HIDDEN: usize, const COUNT: usize>;

impl<const HIDDEN: usize, const COUNT: usize> ConstDim for Gates<HIDDEN, COUNT> {
    const SIZE: usize = HIDDEN * COUNT;
}
unit_dim!(Gates<const HIDDEN: usize, const COUNT: usize>);

/// The first dim of a recurrent layer's state, PyTorch's `num_layers * num_directions`.
///
/// # Shapes
/// `SIZE = LAYERS * (1 + BIDIRECTIONAL)`; rows are layer-major, the forward
/// direction before the reverse one.
///
/// ```
/// use shapesafe::prelude::*;
/// assert_eq!(<LayerDirections<2, true> as ConstDim>::SIZE, 4);
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct LayerDirections<const LAYERS: usize, const BIDIRECTIONAL: bool>;

impl<const LAYERS: usize, const BIDIRECTIONAL: bool> ConstDim
    for LayerDirections<LAYERS, BIDIRECTIONAL>
{
    const SIZE: usize = LAYERS * directions(BIDIRECTIONAL);
}
unit_dim!(LayerDirections<const LAYERS: usize, const BIDIRECTIONAL: bool>);

/// 2 for a bidirectional layer, else 1.
pub const fn directions(bidirectional: bool) -> usize {
    if bidirectional {
        2
    } else {
        1
    }
}

/// The name of a recurrent layer as written: `Lstm<28, 128>`, `Gru<8, 16, 2, true>`;
/// trailing defaults (`LAYERS = 1`, `BIDIRECTIONAL = false`) are left out.
///
/// ```
/// assert_eq!(shapesafe::shape::recurrent_name("Lstm", 28, 128, 1, false).as_str(), "Lstm<28, 128>");
/// assert_eq!(shapesafe::shape::recurrent_name("Gru", 8, 16, 1, true).as_str(), "Gru<8, 16, 1, true>");
/// ```
pub const fn recurrent_name(
    name: &str,
    input: usize,
    hidden: usize,
    layers: usize,
    bidirectional: bool,
) -> Message {
    let mut m = Message::new()
        .text(name)
        .text("<")
        .number(input)
        .text(", ")
        .number(hidden);
    if layers != 1 || bidirectional {
        m = m.text(", ").number(layers);
    }
    if bidirectional {
        m = m.text(", true");
    }
    m.text(">")
}

/// Checks a recurrent layer (or cell, `layers == 0`) against its input features
/// `got`, the flattened product of `factors` when that is non-empty.
pub const fn check_recurrent(
    name: &str,
    generics: (usize, usize, usize, bool),
    got: usize,
    factors: &[usize],
) {
    let (input, hidden, layers, bidirectional) = generics;
    let title = if layers == 0 {
        Message::new()
            .text(name)
            .text("<")
            .number(input)
            .text(", ")
            .number(hidden)
            .text(">")
    } else {
        recurrent_name(name, input, hidden, layers, bidirectional)
    };
    let head = Message::new().text("shape mismatch: ").text(title.as_str());
    if hidden == 0 {
        head.text(": the hidden size must be at least 1").fail();
    }
    if got == 0 || got == input {
        return;
    }
    let m = head
        .text(" expects ")
        .number(input)
        .text(" input features, but got ")
        .number(got);
    if factors.is_empty() || has_zero(factors) {
        m.fail();
    } else {
        m.text(" (Flatten of ").dims(factors).text(")").fail();
    }
}

/// Checks a recurrent sequence layer's generics: at least one layer.
pub const fn check_recurrent_layers(name: &str, generics: (usize, usize, usize, bool)) {
    let (input, hidden, layers, bidirectional) = generics;
    if layers == 0 {
        Message::new()
            .text("shape mismatch: ")
            .text(recurrent_name(name, input, hidden, layers, bidirectional).as_str())
            .text(": LAYERS must be at least 1")
            .fail();
    }
}

/// Checks `LastStep` against a sequence of `steps` time steps.
pub const fn check_last_step(steps: usize) {
    if steps == 0 {
        Message::new()
            .text("shape mismatch: LastStep takes the last time step, but the sequence has 0 steps")
            .fail();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_sizes() {
        assert_eq!(
            recurrent_name("Lstm", 28, 128, 2, false).as_str(),
            "Lstm<28, 128, 2>"
        );
        assert_eq!(<Directions<4, true> as ConstDim>::SIZE, 8);
        assert_eq!(<LayerDirections<3, false> as ConstDim>::SIZE, 3);
        check_recurrent("Lstm", (28, 128, 1, false), 28, &[]);
        check_last_step(3);
    }
}
