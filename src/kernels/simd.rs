//! The widest vector instructions the CPU has, and [`vectorized!`], which runs a pass compiled
//! for them.
//!
//! The crate is compiled for the target's baseline (SSE2 on x86-64), so a loop the compiler
//! could widen to AVX-512 runs four lanes at a time unless it is compiled again with the
//! wider instructions enabled and picked at run time. The passes run this way only contain
//! IEEE adds, multiplies, divides and min/max, which the compiler widens but never fuses
//! (Rust does not contract `a * b + c` into an FMA) or reorders (sums keep their order), so
//! every instruction set computes the same bits.

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

/// `exp(x)` to about 2 ulp (Cephes' `expf`), without branches or calls so that loops over
/// it vectorise. Inputs are clamped to `[-87, 88]`, where the result stays a normal float
/// (so `exp(-inf)` is `exp(-87)`, about `1.6e-38`, not zero).
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    // Adding and subtracting 1.5 * 2^23 rounds to the nearest integer without `round`,
    // which SSE2 has no instruction for.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * core::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    // ln 2 in two parts, so `n * ln 2` is subtracted without losing the low bits of `r`.
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
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
    y * f32::from_bits(n_bits.wrapping_add(127) << 23)
}
