//! The widest vector instructions the CPU has, and `dispatch!`, which compiles a pass once per
//! instruction set and calls the one the CPU runs.
//!
//! The passes compiled this way only contain IEEE adds, multiplies, divides and min/max,
//! which the compiler widens but never fuses, so every instruction set computes the same bits.

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

impl Simd {
    /// Asks the CPU (the standard library caches the answer).
    pub(crate) fn detect() -> Self {
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

/// Defines `$name(simd, arg)`, which runs `$body(arg)` compiled for `simd`. `$body` must be
/// `#[inline(always)]`, with everything it calls, so that it compiles into each version.
macro_rules! dispatch {
    ($(#[$doc:meta])* $name:ident => $body:ident($arg:ident: $ty:ident)) => {
        $(#[$doc])*
        pub(crate) fn $name<E: GateFloat>(simd: Simd, $arg: $ty<'_, E>) {
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
            fn avx512<E: GateFloat>($arg: $ty<'_, E>) {
                $body($arg)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            fn avx2<E: GateFloat>($arg: $ty<'_, E>) {
                $body($arg)
            }
            match simd {
                Simd::Baseline => $body($arg),
                // SAFETY: `Simd::detect` found AVX-512 F/VL/BW/DQ, AVX2 and FMA on this CPU.
                #[cfg(target_arch = "x86_64")]
                Simd::Avx512 => unsafe { avx512($arg) },
                // SAFETY: `Simd::detect` found AVX2 and FMA on this CPU.
                #[cfg(target_arch = "x86_64")]
                Simd::Avx2 => unsafe { avx2($arg) },
            }
        }
    };
}

pub(crate) use dispatch;
