//! The compile-time check of `Unflatten`, and the sentence it fails with.

use super::checks::layer_name;
use super::message::Message;

/// The name of `Unflatten<CHANNELS, HEIGHT, WIDTH>`.
///
/// ```
/// assert_eq!(shapesafe::shape::unflatten_name([32, 7, 7]).as_str(), "Unflatten<32, 7, 7>");
/// ```
pub const fn unflatten_name(generics: [usize; 3]) -> Message {
    layer_name("Unflatten", &generics, &[])
}

/// Checks an `Unflatten<CHANNELS, HEIGHT, WIDTH>` against its input features `got`,
/// which are the flattened product of `factors` when that is non-empty.
///
/// `generics` is `[CHANNELS, HEIGHT, WIDTH]`; the layer needs
/// `got == CHANNELS * HEIGHT * WIDTH`. A `got` of 0 means an earlier layer already
/// failed its own check, so this one stays quiet.
///
/// ```
/// shapesafe::shape::check_unflatten([32, 7, 7], 1568, &[]);
/// ```
pub const fn check_unflatten(generics: [usize; 3], got: usize, factors: &[usize]) {
    let [channels, height, width] = generics;
    let wanted = channels.saturating_mul(height).saturating_mul(width);
    if got == 0 || got == wanted {
        return;
    }
    let m = Message::new()
        .text("shape mismatch: ")
        .text(unflatten_name(generics).as_str())
        .text(" expects ")
        .number(wanted)
        .text(" = ")
        .number(channels)
        .text(" * ")
        .number(height)
        .text(" * ")
        .number(width)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fitting_sizes_pass_and_zero_stays_quiet() {
        check_unflatten([32, 7, 7], 1568, &[]);
        check_unflatten([2, 3, 4], 24, &[4, 6]);
        check_unflatten([2, 3, 4], 0, &[]);
    }

    #[test]
    #[should_panic(
        expected = "Unflatten<32, 7, 7> expects 1568 = 32 * 7 * 7 input features, but its input has 1500"
    )]
    fn a_wrong_size_names_the_numbers() {
        check_unflatten([32, 7, 7], 1500, &[]);
    }

    #[test]
    #[should_panic(expected = "but Flatten of (16, 4, 4) gives 256")]
    fn a_flattened_input_names_its_factors() {
        check_unflatten([32, 7, 7], 256, &[16, 4, 4]);
    }
}
