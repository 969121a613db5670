//! CPU batch normalisation over `(B, H, W)` per channel: statistics in one pass over each
//! channel's values, the output in one pass, and a backward that recomputes the normalised
//! input from the saved statistics (two passes, no saved activations).

use num_traits::Float;
use rayon::prelude::*;

/// The layout of one batch-norm input: `batch` images of `channels` planes of `plane` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchNormDims {
    /// Images.
    pub batch: usize,
    /// Channels (the statistics are per channel).
    pub channels: usize,
    /// Values per channel per image: `H * W`.
    pub plane: usize,
}

impl BatchNormDims {
    /// Values per channel over the batch: `batch * plane`.
    pub fn count(&self) -> usize {
        self.batch * self.plane
    }

    /// The planes of channel `c`, one per image.
    fn planes<'a, E>(&self, x: &'a [E], c: usize) -> impl Iterator<Item = &'a [E]> + 'a {
        let (stride, plane) = (self.channels * self.plane, self.plane);
        (0..self.batch).map(move |b| &x[b * stride + c * plane..][..plane])
    }
}

/// Per-channel mean and biased variance of `x` (`(B, C, H, W)`), into `mean` and `var`;
/// the variance from the centred values, as dfdx and PyTorch compute it.
pub fn batch_stats<E: Float + Send + Sync>(
    d: BatchNormDims,
    x: &[E],
    mean: &mut [E],
    var: &mut [E],
) {
    let n = E::from(d.count().max(1)).unwrap_or(E::one());
    mean.par_iter_mut()
        .zip(var.par_iter_mut())
        .enumerate()
        .for_each(|(c, (m, v))| {
            let sum = d
                .planes(x, c)
                .fold(E::zero(), |acc, p| p.iter().fold(acc, |a, &x| a + x));
            *m = sum / n;
            let sq = d.planes(x, c).fold(E::zero(), |acc, p| {
                p.iter().fold(acc, |a, &x| a + (x - *m) * (x - *m))
            });
            *v = sq / n;
        });
}

/// `y = (x - mean) * inv_std * weight + bias` per channel, written plane by plane.
pub fn batch_norm_apply<E: Float + Send + Sync>(
    d: BatchNormDims,
    x: &[E],
    mean: &[E],
    inv_std: &[E],
    weight: &[E],
    bias: &[E],
    y: &mut [E],
) {
    y.par_chunks_mut(d.plane.max(1))
        .zip(x.par_chunks(d.plane.max(1)))
        .enumerate()
        .for_each(|(i, (yp, xp))| {
            let c = i % d.channels;
            let scale = inv_std[c] * weight[c];
            let shift = bias[c] - mean[c] * scale;
            for (o, &v) in yp.iter_mut().zip(xp) {
                *o = v * scale + shift;
            }
        });
}

/// Backward of [`batch_norm_apply`]. With `x_hat = (x - mean) * inv_std`, adds
/// `sum(dy * x_hat)` to `grad_weight` and `sum(dy)` to `grad_bias` per channel, and to
/// `grad_x` either the training-mode gradient (the statistics depend on `x`:
/// `weight * inv_std * (dy - mean(dy) - x_hat * mean(dy * x_hat))`) or, when
/// `batch_stats` is false (running statistics), `weight * inv_std * dy`.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_backward<E: Float + Send + Sync>(
    d: BatchNormDims,
    batch_stats: bool,
    x: &[E],
    mean: &[E],
    inv_std: &[E],
    weight: &[E],
    grad_y: &[E],
    grad_x: &mut [E],
    grad_weight: &mut [E],
    grad_bias: &mut [E],
) {
    let n = E::from(d.count().max(1)).unwrap_or(E::one());
    // Per-channel sums, each over its own values in a fixed order.
    let sums: Vec<(E, E)> = (0..d.channels)
        .into_par_iter()
        .map(|c| {
            d.planes(x, c).zip(d.planes(grad_y, c)).fold(
                (E::zero(), E::zero()),
                |(sg, sgx), (xp, gp)| {
                    xp.iter().zip(gp).fold((sg, sgx), |(a, b), (&xv, &g)| {
                        (a + g, b + g * (xv - mean[c]) * inv_std[c])
                    })
                },
            )
        })
        .collect();
    for (c, &(sg, sgx)) in sums.iter().enumerate() {
        grad_weight[c] = grad_weight[c] + sgx;
        grad_bias[c] = grad_bias[c] + sg;
    }
    grad_x
        .par_chunks_mut(d.plane.max(1))
        .zip(x.par_chunks(d.plane.max(1)))
        .zip(grad_y.par_chunks(d.plane.max(1)))
        .enumerate()
        .for_each(|(i, ((gxp, xp), gyp))| {
            let c = i % d.channels;
            let k = weight[c] * inv_std[c];
            if batch_stats {
                let (mg, mgx) = (sums[c].0 / n, sums[c].1 / n);
                for ((o, &xv), &g) in gxp.iter_mut().zip(xp).zip(gyp) {
                    let xh = (xv - mean[c]) * inv_std[c];
                    *o = *o + k * (g - mg - xh * mgx);
                }
            } else {
                for (o, &g) in gxp.iter_mut().zip(gyp) {
                    *o = *o + k * g;
                }
            }
        });
}
