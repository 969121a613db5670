//! The compile-time check of `Rows`, and the sentence it fails with.

use super::message::Message;

/// Checks a `Rows` layer against its input's channel count: an image becomes a sequence of
/// rows only when it has one channel. A `channels` of 0 means an earlier layer already failed
/// its own check, so this one stays quiet.
///
/// ```
/// shapesafe::shape::check_rows(1, &[1, 28, 28]);
/// ```
pub const fn check_rows(channels: usize, input: &[usize]) {
    if channels == 0 || channels == 1 {
        return;
    }
    Message::new()
        .text("shape mismatch: Rows reads a one-channel image (1, H, W) as H steps of W features, but its input ")
        .dims(input)
        .text(" has ")
        .number(channels)
        .text(" channels")
        .fail();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_channel_passes_and_zero_stays_quiet() {
        check_rows(1, &[1, 28, 28]);
        check_rows(0, &[0, 28, 28]);
    }

    #[test]
    #[should_panic(expected = "but its input (3, 32, 32) has 3 channels")]
    fn more_channels_name_the_input() {
        check_rows(3, &[3, 32, 32]);
    }
}
