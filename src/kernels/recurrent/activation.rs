//! The gate activations of the CPU recurrent kernel: `sigmoid` and `tanh` per element type.
//!
//! f32 uses branch-free polynomial forms that the compiler vectorises (a call to libm's
//! `expf` per element would cost as much as the recurrent matmul itself); f64 uses the
//! standard library, the formulas dfdx's own ops use, so f64 results track PyTorch's to the
//! last bits.

use crate::kernels::simd::{exp_f32, SimdFloat};

/// A float the CPU recurrent kernel runs on: f32 or f64.
pub(crate) trait GateFloat: SimdFloat {
    /// `1 / (1 + exp(-x))`.
    fn sigmoid(self) -> Self;
    /// The hyperbolic tangent.
    fn tanh_gate(self) -> Self;
}

impl GateFloat for f64 {
    #[inline(always)]
    fn sigmoid(self) -> Self {
        1.0 / (1.0 + (-self).exp())
    }

    #[inline(always)]
    fn tanh_gate(self) -> Self {
        self.tanh()
    }
}

impl GateFloat for f32 {
    #[inline(always)]
    fn sigmoid(self) -> Self {
        1.0 / (1.0 + exp_f32(-self))
    }

    #[inline(always)]
    fn tanh_gate(self) -> Self {
        tanh_f32(self)
    }
}

/// `tanh(x)` to a few ulp (Cephes' `tanhf`): an odd polynomial near 0, where `1 - 2/(e^2x + 1)`
/// would cancel, and that formula elsewhere. Both are computed and one selected, so loops
/// over it vectorise.
#[inline(always)]
fn tanh_f32(x: f32) -> f32 {
    let z = x * x;
    let mut p = -5.704_988_7e-3_f32;
    p = p * z + 2.063_909e-2;
    p = p * z - 5.373_971_6e-2;
    p = p * z + 1.333_144_2e-1;
    p = p * z - 3.333_328e-1;
    let small = p * z * x + x;
    let large = 1.0 - 2.0 / (exp_f32(2.0 * x) + 1.0);
    if x.abs() < 0.625 {
        small
    } else {
        large
    }
}

#[cfg(test)]
mod tests {
    use super::GateFloat;

    #[test]
    fn f32_activations_match_f64() {
        let mut worst = (0.0f64, 0.0f64);
        for i in -20_000..=20_000 {
            // The reference at the f32 input, so only the functions' own error counts.
            let x32 = i as f32 * 1e-3;
            let x = x32 as f64;
            let (s, t) = (x32.sigmoid() as f64, x32.tanh_gate() as f64);
            let sx = 1.0 / (1.0 + (-x).exp());
            worst.0 = worst.0.max((s - sx).abs() / sx);
            worst.1 = worst
                .1
                .max((t - x.tanh()).abs() / x.tanh().abs().max(1e-30));
        }
        // A few f32 ulp (2^-23 is 1.2e-7) of relative error.
        assert!(worst.0 < 6e-7, "sigmoid: relative error {}", worst.0);
        assert!(worst.1 < 6e-7, "tanh: relative error {}", worst.1);
        assert_eq!(100.0f32.sigmoid(), 1.0);
        assert!((-100.0f32).sigmoid() < 1e-37);
        assert_eq!(20.0f32.tanh_gate(), 1.0);
        assert_eq!((-20.0f32).tanh_gate(), -1.0);
        assert_eq!(0.0f32.tanh_gate(), 0.0);
    }
}
