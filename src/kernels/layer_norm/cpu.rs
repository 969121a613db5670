//! CPU layer normalisation over the last dim, forward and backward, one pass over each row
//! (after the row's mean and variance), with an optional residual sum folded in.

use crate::kernels::simd::{self, vectorized};
use num_traits::Float;

/// `y = (s - mean(s)) / sqrt(var(s) + eps) * weight + bias` per row of `features` values,
/// where `s = a + b` (or `a` alone), the variance biased as PyTorch's. Writes the
/// normalised rows `(s - mean) / sqrt(var + eps)` to `x_hat` and each row's
/// `1 / sqrt(var + eps)` to `inv_std`, which the backward pass reads.
///
/// # Panics
/// If a slice is shorter than `rows * features` (or `rows` for `inv_std`).
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_forward<E: Float>(
    features: usize,
    eps: E,
    a: &[E],
    b: Option<&[E]>,
    weight: &[E],
    bias: &[E],
    y: &mut [E],
    x_hat: &mut [E],
    inv_std: &mut [E],
) {
    if features == 0 {
        return;
    }
    // The loops run inside `vectorized!`, compiled for the CPU's widest instructions.
    vectorized!({
        let n = E::from(features).unwrap_or(E::one());
        for (r, ((y, xh), is)) in y
            .chunks_exact_mut(features)
            .zip(x_hat.chunks_exact_mut(features))
            .zip(inv_std.iter_mut())
            .enumerate()
        {
            let a = &a[r * features..(r + 1) * features];
            // x_hat holds the summed row until it is normalised in place.
            match b {
                Some(b) => {
                    let b = &b[r * features..(r + 1) * features];
                    for ((s, &p), &q) in xh.iter_mut().zip(a).zip(b) {
                        *s = p + q;
                    }
                }
                None => xh.copy_from_slice(a),
            }
            let mean = simd::sum(xh) / n;
            let var = simd::sum_sq_dev(xh, mean) / n;
            let inv = E::one() / (var + eps).sqrt();
            *is = inv;
            for (((yv, s), &w), &c) in y.iter_mut().zip(xh.iter_mut()).zip(weight).zip(bias) {
                *s = (*s - mean) * inv;
                *yv = *s * w + c;
            }
        }
    })
}

/// Backward of [`layer_norm_forward`]: given `grad_y`, adds the gradient of the (summed)
/// input to `grad_input` and those of the affine parameters to `grad_weight` and
/// `grad_bias`, summing the rows in order (the same result on every run).
///
/// Per row, with `g = grad_y * weight`: `grad_s = inv_std * (g - mean(g) - x_hat * mean(g * x_hat))`.
///
/// # Panics
/// If a slice is shorter than the dims require.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_backward<E: Float>(
    features: usize,
    weight: &[E],
    x_hat: &[E],
    inv_std: &[E],
    grad_y: &[E],
    grad_input: &mut [E],
    grad_weight: &mut [E],
    grad_bias: &mut [E],
) {
    if features == 0 {
        return;
    }
    vectorized!({
        let n = E::from(features).unwrap_or(E::one());
        for (((gy, xh), &inv), gx) in grad_y
            .chunks_exact(features)
            .zip(x_hat.chunks_exact(features))
            .zip(inv_std)
            .zip(grad_input.chunks_exact_mut(features))
        {
            for (((&dy, &xv), gw), gb) in gy
                .iter()
                .zip(xh)
                .zip(grad_weight.iter_mut())
                .zip(grad_bias.iter_mut())
            {
                *gw = *gw + dy * xv;
                *gb = *gb + dy;
            }
            let mean_g = simd::dot(gy, weight) / n;
            let mean_gx = simd::dot3(gy, weight, xh) / n;
            for (((o, &dy), &xv), &w) in gx.iter_mut().zip(gy).zip(xh).zip(weight) {
                *o = *o + inv * (dy * w - mean_g - xv * mean_gx);
            }
        }
    })
}
