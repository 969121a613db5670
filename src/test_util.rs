//! Helpers shared by the crate's unit tests.

/// Panics naming the first index where `actual` differs from `expected` by more than
/// `tol * (1 + |expected|)`: relative for large values, absolute near zero.
#[track_caller]
pub(crate) fn assert_close<T: Copy + Into<f64>>(
    what: &str,
    actual: &[T],
    expected: &[f64],
    tol: f64,
) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let a: f64 = a.into();
        let diff = (a - e).abs();
        assert!(
            diff <= tol * (1.0 + e.abs()),
            "{what}[{i}]: actual {a}, expected {e}, difference {diff}"
        );
    }
}
