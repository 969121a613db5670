//! The widest vector instructions the CPU has, and `vectorized!`, which runs a pass compiled
//! for them.
//!
//! The crate is compiled for the target's baseline (SSE2 on x86-64), so a loop the compiler
//! could widen to AVX-512 runs four lanes at a time unless it is compiled again with the
//! wider instructions enabled and picked at run time. The passes run this way only contain
//! IEEE adds, multiplies, divides and min/max, which the compiler widens but never fuses
//! (Rust does not contract `a * b + c` into an FMA) or reorders (sums keep their order), so
//! every instruction set computes the same bits.

use num_traits::Float;
use std::sync::atomic::{AtomicU8, Ordering};

/// The widest vector instructions this CPU has, among those the passes are compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Simd {
    /// The target's baseline (SSE2 on x86-64).
    Baseline,
    /// AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// AVX-512 (F, VL, BW, DQ) with AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

/// [`Simd::detect`]'s answer, once known: 0 unknown, then 1 + the variant's index.
static DETECTED: AtomicU8 = AtomicU8::new(0);

impl Simd {
    /// Asks the CPU once per process.
    pub(crate) fn detect() -> Self {
        match DETECTED.load(Ordering::Relaxed) {
            1 => return Simd::Baseline,
            #[cfg(target_arch = "x86_64")]
            2 => return Simd::Avx2,
            #[cfg(target_arch = "x86_64")]
            3 => return Simd::Avx512,
            _ => {}
        }
        let found = Self::ask();
        let code = match found {
            Simd::Baseline => 1,
            #[cfg(target_arch = "x86_64")]
            Simd::Avx2 => 2,
            #[cfg(target_arch = "x86_64")]
            Simd::Avx512 => 3,
        };
        DETECTED.store(code, Ordering::Relaxed);
        found
    }

    fn ask() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
            if avx2
                && is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512dq")
            {
                return Simd::Avx512;
            }
            if avx2 {
                return Simd::Avx2;
            }
        }
        Simd::Baseline
    }
}

/// Runs `pass` compiled for the widest instructions this CPU has; call it through
/// [`vectorized!`], which marks the closure `#[inline(always)]`.
///
/// The closure must be inlined into the function compiled with those instructions enabled
/// (an ordinary closure with a loop nest inside is not: it stays a call, compiled for the
/// baseline), and so must everything it calls that should be widened: keep a pass's loops
/// in `#[inline(always)]` functions. Calls that stay calls (into gemm, into rayon) run their
/// own code, compiled as it was.
#[inline(always)]
pub(crate) fn run_vectorized<R>(pass: impl FnOnce() -> R) -> R {
    match Simd::detect() {
        Simd::Baseline => pass(),
        // SAFETY: `Simd::detect` found AVX-512 F/VL/BW/DQ, AVX2 and FMA on this CPU.
        #[cfg(target_arch = "x86_64")]
        Simd::Avx512 => unsafe { avx512(pass) },
        // SAFETY: `Simd::detect` found AVX2 and FMA on this CPU.
        #[cfg(target_arch = "x86_64")]
        Simd::Avx2 => unsafe { avx2(pass) },
    }
}

/// `vectorized!(expr)` evaluates `expr` compiled for the widest instructions this CPU has
/// (see [`run_vectorized`]); `expr` should be a call of an `#[inline(always)]`
/// function.
macro_rules! vectorized {
    ($pass:expr) => {
        $crate::kernels::simd::run_vectorized(
            #[inline(always)]
            || $pass,
        )
    };
}
pub(crate) use vectorized;

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
fn avx512<R>(pass: impl FnOnce() -> R) -> R {
    pass()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn avx2<R>(pass: impl FnOnce() -> R) -> R {
    pass()
}

/// A float the CPU kernels' vectorised passes run on: `f32` or `f64` (sealed).
///
/// # Shapes
///
/// Not a tensor: an element type.
///
/// ```
/// use shapesafe::kernels::simd::SimdFloat;
///
/// fn runs_on_the_cpu_kernels<E: SimdFloat>() {}
/// runs_on_the_cpu_kernels::<f32>();
/// runs_on_the_cpu_kernels::<f64>();
/// assert!((1.0f32.exp_fast() - std::f32::consts::E).abs() < 1e-6);
/// ```
pub trait SimdFloat: Float + Default + Send + Sync + 'static + sealed::Sealed {
    /// `exp(self)`: for f32 a branch-free polynomial (Cephes' `expf`, about 2 ulp) that
    /// vectorises, where a call to libm's `expf` per element would not; for f64 the
    /// standard library's, so f64 results track PyTorch's to the last bits.
    fn exp_fast(self) -> Self;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

impl SimdFloat for f32 {
    #[inline(always)]
    fn exp_fast(self) -> Self {
        exp_f32(self)
    }
}

impl SimdFloat for f64 {
    #[inline(always)]
    fn exp_fast(self) -> Self {
        self.exp()
    }
}

/// Partial sums kept side by side by the reductions below: one AVX-512 register of f32.
/// A fixed count, not the CPU's width, so every CPU adds in the same order.
pub(crate) const LANES: usize = 16;

/// `sum_i term(a[i], b[i], c[i])` over the shortest slice, in [`LANES`] partial sums
/// that vectorise, then the tail in order: the one reduction order of [`dot`], [`dot3`],
/// [`sum`] and [`sum_sq_dev`]. A slice passed twice is loaded once.
#[inline(always)]
fn lane_sum<E: Float>(a: &[E], b: &[E], c: &[E], term: impl Fn(E, E, E) -> E) -> E {
    let n = a.len().min(b.len()).min(c.len());
    let (a, b, c) = (&a[..n], &b[..n], &c[..n]);
    let mut acc = [E::zero(); LANES];
    for ((x, y), z) in a
        .chunks_exact(LANES)
        .zip(b.chunks_exact(LANES))
        .zip(c.chunks_exact(LANES))
    {
        for j in 0..LANES {
            acc[j] = acc[j] + term(x[j], y[j], z[j]);
        }
    }
    let tail = n / LANES * LANES;
    let rest = (tail..n).fold(E::zero(), |s, i| s + term(a[i], b[i], c[i]));
    acc.iter().fold(E::zero(), |s, &v| s + v) + rest
}

/// `sum_i a[i] * b[i]` over the shorter slice.
#[inline(always)]
pub(crate) fn dot<E: Float>(a: &[E], b: &[E]) -> E {
    lane_sum(a, b, b, |x, y, _| x * y)
}

/// `sum_i a[i]`.
#[inline(always)]
pub(crate) fn sum<E: Float>(a: &[E]) -> E {
    lane_sum(a, a, a, |x, _, _| x)
}

/// `sum_i (a[i] - center)^2`.
#[inline(always)]
pub(crate) fn sum_sq_dev<E: Float>(a: &[E], center: E) -> E {
    lane_sum(a, a, a, |x, _, _| (x - center) * (x - center))
}

/// `sum_i a[i] * b[i] * c[i]` over the shortest slice.
#[inline(always)]
pub(crate) fn dot3<E: Float>(a: &[E], b: &[E], c: &[E]) -> E {
    lane_sum(a, b, c, |x, y, z| x * y * z)
}

/// `max_i a[i]`, ignoring NaNs as `Float::max` does (`-inf` when empty or all NaN), in
/// [`LANES`] partial maxima that vectorise; the maximum does not depend on the order.
#[inline(always)]
pub(crate) fn max<E: Float>(a: &[E]) -> E {
    let mut acc = [E::neg_infinity(); LANES];
    for x in a.chunks_exact(LANES) {
        for j in 0..LANES {
            acc[j] = acc[j].max(x[j]);
        }
    }
    let rest = a.chunks_exact(LANES).remainder();
    let m = acc.iter().fold(E::neg_infinity(), |m, &v| m.max(v));
    rest.iter().fold(m, |m, &v| m.max(v))
}

/// `exp(x)` to about 2 ulp (Cephes' `expf`), without branches or calls so that loops over
/// it vectorise. Below -87 the result is 0 (the true value is under `f32::MIN_POSITIVE`),
/// above 88 it is `exp(88)`; NaN stays NaN.
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    // Adding and subtracting 1.5 * 2^23 rounds to the nearest integer without `round`,
    // which SSE2 has no instruction for.
    const ROUND: f32 = 12_582_912.0;
    let clamped = x.clamp(-87.0, 88.0);
    let shifted = clamped * core::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    // ln 2 in two parts, so `n * ln 2` is subtracted without losing the low bits of `r`.
    let r = clamped - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // 2^n built from its exponent bits. `n` is read from `shifted`'s low mantissa bits
    // rather than by `n as i32`, whose saturating conversion does not vectorise; `n + 127`
    // lies in 1..=254 after the clamp.
    let n_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    let e = y * f32::from_bits(n_bits.wrapping_add(127) << 23);
    // A select, not a branch: masked attention scores are -inf and must weigh exactly 0.
    if x < -87.0 {
        0.0
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_f32_is_within_3_ulp_of_f64_and_flushes_underflow() {
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = (x as f64).exp();
            let got = exp_f32(x) as f64;
            let ulp = (want as f32).abs() * f32::EPSILON;
            assert!(
                (got - want).abs() <= 3.0 * ulp as f64,
                "exp({x}) = {got}, want {want}"
            );
            x += 0.013;
        }
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(-100.0), 0.0);
        assert!(exp_f32(f32::NAN).is_nan());
    }

    #[test]
    fn lane_reductions_match_plain_loops() {
        for n in [0usize, 1, 15, 16, 17, 40, 100] {
            let a: Vec<f64> = (0..n)
                .map(|i| ((i * 37 % 11) as f64 - 5.0) * 0.25)
                .collect();
            let b: Vec<f64> = (0..n).map(|i| ((i * 13 % 7) as f64 - 3.0) * 0.5).collect();
            // Quarter and half steps: every partial sum is exact, so any order agrees.
            let want_dot: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert_eq!(dot(&a, &b), want_dot);
            assert_eq!(sum(&a), a.iter().sum::<f64>());
            let want_dot3: f64 = a.iter().zip(&b).map(|(x, y)| x * y * 0.5).sum();
            assert_eq!(dot3(&a, &b, &vec![0.5; n]), want_dot3);
            let want_sq: f64 = a.iter().map(|x| (x - 0.5) * (x - 0.5)).sum();
            assert_eq!(sum_sq_dev(&a, 0.5), want_sq);
            let want_max = a.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
            assert_eq!(max(&a), want_max);
        }
        assert_eq!(max(&[f64::NAN, 1.0, f64::NAN]), 1.0);
    }
}
