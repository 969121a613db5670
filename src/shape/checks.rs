//! The compile-time shape checks of every layer, and the sentences they fail with.
//!
//! Each check is a `const fn` that the layer's `forward` and its [`ShapeInfer`]
//! impl evaluate in a const context, so a mismatch stops the build with the
//! message written here. A dim of size 0 means an earlier layer already failed
//! its own check; later checks then stay quiet to keep one error per mistake.
//!
//! [`ShapeInfer`]: crate::shape::ShapeInfer

use super::message::Message;

/// Writes a layer's name with its generics, leaving out trailing ones that equal
/// their defaults, so it reads like the type the user wrote: `Conv2d<1, 6, 5, 1, 2>`.
pub const fn layer_name(name: &str, values: &[usize], defaults: &[usize]) -> Message {
    append_layer_name(Message::new(), name, values, defaults)
}

/// Starts a layer's error: `shape mismatch: ` and the layer's name.
pub(crate) const fn mismatch(name: &str, values: &[usize], defaults: &[usize]) -> Message {
    append_layer_name(
        Message::new().text("shape mismatch: "),
        name,
        values,
        defaults,
    )
}

/// [`layer_name`], appended to `m`.
const fn append_layer_name(
    m: Message,
    name: &str,
    values: &[usize],
    defaults: &[usize],
) -> Message {
    let first_default = values.len() - defaults.len();
    let mut shown = values.len();
    while shown > first_default && values[shown - 1] == defaults[shown - 1 - first_default] {
        shown -= 1;
    }
    let mut m = m.text(name).text("<");
    let mut i = 0;
    while i < shown {
        if i > 0 {
            m = m.text(", ");
        }
        m = m.number(values[i]);
        i += 1;
    }
    m.text(">")
}

pub(crate) const fn has_zero(dims: &[usize]) -> bool {
    let mut i = 0;
    while i < dims.len() {
        if dims[i] == 0 {
            return true;
        }
        i += 1;
    }
    false
}

const CONV2D_DEFAULTS: [usize; 4] = [1, 0, 1, 1];

/// The name of `Conv2d<IN, OUT, KERNEL, STRIDE, PADDING, DILATION, GROUPS>`.
pub const fn conv2d_name(generics: [usize; 7]) -> Message {
    layer_name("Conv2d", &generics, &CONV2D_DEFAULTS)
}

/// Checks a `Conv2d` against its unbatched input `(channels, height, width)`.
///
/// `generics` is `[IN, OUT, KERNEL, STRIDE, PADDING, DILATION, GROUPS]`.
pub const fn check_conv2d(generics: [usize; 7], input: [usize; 3]) {
    let [in_channels, out_channels, kernel, stride, padding, dilation, groups] = generics;
    let name = mismatch("Conv2d", &generics, &CONV2D_DEFAULTS);
    if kernel == 0 || stride == 0 || dilation == 0 || groups == 0 {
        name.text(": kernel, stride, dilation and groups must be at least 1")
            .fail();
    }
    if in_channels % groups != 0 || out_channels % groups != 0 {
        name.text(" splits channels into ")
            .number(groups)
            .text(" groups, but ")
            .number(groups)
            .text(" does not divide ")
            .number(if in_channels % groups != 0 {
                in_channels
            } else {
                out_channels
            })
            .text(if in_channels % groups != 0 {
                " input channels"
            } else {
                " output channels"
            })
            .fail();
    }
    if has_zero(&input) {
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
    check_window(name, "kernel", kernel, padding, dilation, input);
}

/// Fails when a `kernel`-wide window (with `dilation`) is wider than the padded input.
const fn check_window(
    name: Message,
    what: &str,
    kernel: usize,
    padding: usize,
    dilation: usize,
    input: [usize; 3],
) {
    let span = dilation * (kernel - 1) + 1;
    let mut axis = 1;
    while axis < 3 {
        if span > input[axis] + 2 * padding {
            let mut m = name
                .text(": ")
                .text(what)
                .text(" spans ")
                .number(span)
                .text(" pixels");
            if dilation > 1 {
                m = m
                    .text(" (")
                    .number(kernel)
                    .text(" taps, dilation ")
                    .number(dilation)
                    .text(")");
            }
            m.text(", but the padded input ")
                .text(if axis == 1 { "height" } else { "width" })
                .text(" is only ")
                .number(input[axis] + 2 * padding)
                .text(" = ")
                .number(input[axis])
                .text(" + 2 * ")
                .number(padding)
                .text(" (input ")
                .dims(&input)
                .text(")")
                .fail();
        }
        axis += 1;
    }
}

/// Checks a `MaxPool2d` or `AvgPool2d` (`name`) against its input `(channels, height, width)`.
///
/// `generics` is `[KERNEL, STRIDE, PADDING]`; `ceil_mode` is the fourth, `CEIL_MODE`.
pub const fn check_pool2d(name: &str, generics: [usize; 3], ceil_mode: bool, input: [usize; 3]) {
    let [kernel, stride, padding] = generics;
    let layer = Message::new().text("shape mismatch: ");
    let layer = append_pool_name(layer, name, generics, ceil_mode);
    if kernel == 0 || stride == 0 {
        layer.text(": kernel and stride must be at least 1").fail();
    }
    if 2 * padding > kernel {
        // PyTorch's rule: wider padding would make windows of padding only.
        layer
            .text(": padding ")
            .number(padding)
            .text(" is more than half the window ")
            .number(kernel)
            .fail();
    }
    if ceil_mode && !const_str_eq(name, "MaxPool2d") {
        // An average's divisor changes for ceil mode's partial last window; only max
        // pooling, which needs no divisor, supports it.
        layer
            .text(": ceil mode is supported by MaxPool2d only")
            .fail();
    }
    if has_zero(&input) {
        return;
    }
    check_window(layer, "window", kernel, padding, 1, input);
}

/// The name of a pooling layer: `MaxPool2d<3, 2>`, or with ceil mode `MaxPool2d<3, 2, 0, true>`.
pub const fn pool_name(name: &str, generics: [usize; 3], ceil_mode: bool) -> Message {
    append_pool_name(Message::new(), name, generics, ceil_mode)
}

const fn append_pool_name(
    m: Message,
    name: &str,
    generics: [usize; 3],
    ceil_mode: bool,
) -> Message {
    let [kernel, stride, padding] = generics;
    if !ceil_mode {
        return append_layer_name(m, name, &generics, &[kernel, 0]);
    }
    m.text(name)
        .text("<")
        .number(kernel)
        .text(", ")
        .number(stride)
        .text(", ")
        .number(padding)
        .text(", true>")
}

/// `a == b` in a const context.
const fn const_str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
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

/// The name of `Linear<IN, OUT>`.
pub const fn linear_name(generics: [usize; 2]) -> Message {
    layer_name("Linear", &generics, &[])
}

/// Checks a `Linear<IN, OUT>` against its input features `got`, which are the
/// flattened product of `factors` when that is non-empty.
pub const fn check_linear(generics: [usize; 2], got: usize, factors: &[usize]) {
    let [in_features, _] = generics;
    if got == 0 || got == in_features {
        return;
    }
    let m = mismatch("Linear", &generics, &[])
        .text(" expects ")
        .number(in_features)
        .text(" input features, but ");
    if factors.is_empty() {
        m.text("its input has ").number(got).fail();
    } else {
        m.text("Flatten of ")
            .dims(factors)
            .text(" gives ")
            .number(got)
            .fail();
    }
}

/// Checks that a model maps `input` to `expected`; `model` is its name as written.
pub const fn check_contract(model: &str, input: &[usize], actual: &[usize], expected: &[usize]) {
    if has_zero(actual) {
        return;
    }
    let mut same = actual.len() == expected.len();
    let mut i = 0;
    while same && i < actual.len() {
        same = actual[i] == expected[i];
        i += 1;
    }
    if !same {
        Message::new()
            .text("contract broken: ")
            .text(model)
            .text(" maps ")
            .dims(input)
            .text(" to ")
            .dims(actual)
            .text(", but the contract says ")
            .dims(expected)
            .fail();
    }
}

/// Checks a model's parameter count against a published reference.
pub const fn check_params(model: &str, actual: usize, expected: usize) {
    if actual != expected {
        Message::new()
            .text("contract broken: ")
            .text(model)
            .text(" has ")
            .number(actual)
            .text(" parameters, but the contract says ")
            .number(expected)
            .fail();
    }
}

/// The name of `Maxout<K>`.
pub const fn maxout_name(group: usize) -> Message {
    layer_name("Maxout", &[group], &[])
}

/// Checks a `Maxout<K>` (`group` is `K`) against its input features `got`, which
/// are the flattened product of `factors` when that is non-empty.
pub const fn check_maxout(group: usize, got: usize, factors: &[usize]) {
    let name = Message::new()
        .text("shape mismatch: Maxout<")
        .number(group)
        .text(">");
    if group == 0 {
        name.text(": the group size must be at least 1").fail();
    }
    if got == 0 || got.is_multiple_of(group) {
        return;
    }
    let m = name
        .text(" takes the max over groups of ")
        .number(group)
        .text(" features, but ")
        .number(group)
        .text(" does not divide ");
    if factors.is_empty() {
        m.text("its ").number(got).text(" input features").fail();
    } else {
        m.text("the ")
            .number(got)
            .text(" features that Flatten of ")
            .dims(factors)
            .text(" gives")
            .fail();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_drop_trailing_defaults() {
        assert_eq!(
            conv2d_name([1, 6, 5, 1, 2, 1, 1]).as_str(),
            "Conv2d<1, 6, 5, 1, 2>"
        );
        assert_eq!(
            conv2d_name([1, 6, 5, 1, 0, 1, 1]).as_str(),
            "Conv2d<1, 6, 5>"
        );
        assert_eq!(
            conv2d_name([8, 8, 3, 1, 0, 1, 4]).as_str(),
            "Conv2d<8, 8, 3, 1, 0, 1, 4>"
        );
        assert_eq!(
            layer_name("MaxPool2d", &[2, 2, 0], &[2, 0]).as_str(),
            "MaxPool2d<2>"
        );
        assert_eq!(
            layer_name("MaxPool2d", &[3, 2, 0], &[3, 0]).as_str(),
            "MaxPool2d<3, 2>"
        );
        assert_eq!(linear_name([400, 120]).as_str(), "Linear<400, 120>");
    }

    #[test]
    fn valid_shapes_pass() {
        check_conv2d([1, 6, 5, 1, 2, 1, 1], [1, 28, 28]);
        check_pool2d("MaxPool2d", [2, 2, 0], false, [6, 28, 28]);
        check_linear([400, 120], 400, &[16, 5, 5]);
        check_contract("M", &[1, 28, 28], &[10], &[10]);
        check_params("M", 5, 5);
    }
}
