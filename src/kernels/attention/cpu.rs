//! CPU scaled dot-product attention over heads, forward and backward: per batch item and
//! head, `QK^T` and `PV` as gemm calls on strided views of the `(B, S, D_MODEL)` inputs
//! (no head transposes), the scale, masks and softmax fused in one pass over each row.

use crate::kernels::gemm::{matmul, Mat, MatMut};
use crate::kernels::scratch;
use crate::kernels::simd::{self, vectorized, SimdFloat};
use rayon::prelude::*;

/// The sizes of one attention op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionDims {
    /// Batch items.
    pub batch: usize,
    /// Heads; the model width is `heads * head_dim`.
    pub heads: usize,
    /// Query positions (`S1`).
    pub queries: usize,
    /// Key and value positions (`S2`).
    pub keys: usize,
    /// Features per head.
    pub head_dim: usize,
}

impl AttentionDims {
    /// The model width: the row length of queries, keys, values and output.
    pub fn width(&self) -> usize {
        self.heads * self.head_dim
    }

    /// Elements of the attention weights of one batch item: `heads * queries * keys`.
    pub fn probs_per_item(&self) -> usize {
        self.heads * self.queries * self.keys
    }
}

/// Which scores are masked to `-inf` before the softmax: PyTorch's `key_padding_mask`
/// (`(B, S2)`, `true` = ignore that key) and causal masking (query `i` sees keys `j <= i`).
#[derive(Clone, Copy, Debug)]
pub struct Masks<'a> {
    /// `(batch, keys)` flags, `true` for keys to ignore.
    pub key_padding: Option<&'a [bool]>,
    /// Whether query `i` may attend only to keys `j <= i`.
    pub causal: bool,
}

/// Whether the batch items run as parallel tasks (each with single-threaded products).
fn parallel(d: &AttentionDims) -> bool {
    d.batch > 1
}

/// `out = softmax(Q K^T * scale + mask) V` per head, writing the attention weights to
/// `probs` (`(B, heads, S1, S2)`), which the backward pass reads.
///
/// `q` and `out` are `(B, S1, width)`, `k` and `v` are `(B, S2, width)`, row-major; head `h`
/// owns columns `h * head_dim..(h + 1) * head_dim`. A query whose every key is masked gets
/// NaN weights, as in PyTorch.
///
/// # Panics
/// If a slice is shorter than the dims require.
#[allow(clippy::too_many_arguments)]
pub fn attention_forward<E: SimdFloat>(
    d: AttentionDims,
    q: &[E],
    k: &[E],
    v: &[E],
    masks: Masks<'_>,
    out: &mut [E],
    probs: &mut [E],
) {
    let (w, s1, s2) = (d.width(), d.queries, d.keys);
    if d.batch == 0 || s1 == 0 || w == 0 {
        return;
    }
    let item = |b: usize, out: &mut [E], probs: &mut [E]| {
        let pad = masks.key_padding.map(|m| &m[b * s2..(b + 1) * s2]);
        vectorized!(forward_item(
            d,
            &q[b * s1 * w..(b + 1) * s1 * w],
            &k[b * s2 * w..(b + 1) * s2 * w],
            &v[b * s2 * w..(b + 1) * s2 * w],
            pad,
            masks.causal,
            out,
            probs,
        ));
    };
    if parallel(&d) {
        out.par_chunks_mut(s1 * w)
            .zip(probs.par_chunks_mut(d.probs_per_item().max(1)))
            .enumerate()
            .take(d.batch)
            .for_each(|(b, (o, p))| item(b, o, p));
    } else {
        let prob_chunks = probs.chunks_mut(d.probs_per_item().max(1));
        for (b, (o, p)) in out.chunks_mut(s1 * w).zip(prob_chunks).enumerate() {
            item(b, o, p);
        }
    }
}

/// [`attention_forward`] for one batch item.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn forward_item<E: SimdFloat>(
    d: AttentionDims,
    q: &[E],
    k: &[E],
    v: &[E],
    pad: Option<&[bool]>,
    causal: bool,
    out: &mut [E],
    probs: &mut [E],
) {
    let (w, hd, s1, s2) = (d.width(), d.head_dim, d.queries, d.keys);
    let scale = E::one() / E::from(hd as f64).unwrap_or(E::one()).sqrt();
    for h in 0..d.heads {
        let p = &mut probs[h * s1 * s2..(h + 1) * s1 * s2];
        // scores (S1 x S2) = Q_h (S1 x hd, row stride w) * K_h^T (hd x S2)
        matmul(
            s1,
            s2,
            hd,
            MatMut::row_major(p, s2),
            false,
            Mat {
                data: &q[h * hd..],
                rs: w,
                cs: 1,
            },
            Mat {
                data: &k[h * hd..],
                rs: 1,
                cs: w,
            },
            false,
        );
        for (i, row) in p.chunks_exact_mut(s2.max(1)).enumerate() {
            softmax_row(row, scale, pad, causal.then_some(i));
        }
        // out_h (S1 x hd, row stride w) = P (S1 x S2) * V_h (S2 x hd)
        matmul(
            s1,
            hd,
            s2,
            MatMut {
                data: &mut out[h * hd..],
                rs: w,
                cs: 1,
            },
            false,
            Mat::row_major(p, s2),
            Mat {
                data: &v[h * hd..],
                rs: w,
                cs: 1,
            },
            false,
        );
    }
}

/// Scales a row of scores, masks it, and replaces it by its softmax. `causal_row` is the
/// query's position when keys after it are masked.
#[inline(always)]
fn softmax_row<E: SimdFloat>(
    row: &mut [E],
    scale: E,
    pad: Option<&[bool]>,
    causal_row: Option<usize>,
) {
    for s in row.iter_mut() {
        *s = *s * scale;
    }
    if let Some(m) = pad {
        for (s, &masked) in row.iter_mut().zip(m) {
            *s = if masked { E::neg_infinity() } else { *s };
        }
    }
    if let Some(i) = causal_row {
        row.iter_mut()
            .skip(i + 1)
            .for_each(|s| *s = E::neg_infinity());
    }
    // With every key masked, max is -inf and every weight becomes NaN, as in PyTorch.
    let max = simd::max(row);
    for s in row.iter_mut() {
        *s = (*s - max).exp_fast();
    }
    let inv = E::one() / simd::sum(row);
    for s in row.iter_mut() {
        *s = *s * inv;
    }
}

/// Backward of [`attention_forward`]: given `grad_out` (shaped like `out`), adds the
/// gradients of the loss to `grad_q`, `grad_k` and `grad_v`.
///
/// With `P` the weights and `dO` the output gradient, per head: `dV += P^T dO`,
/// `dP = dO V^T`, `dS = P * (dP - rowsum(dP * P)) * scale`, `dQ += dS K`, `dK += dS^T Q`.
///
/// # Panics
/// If a slice is shorter than the dims require.
#[allow(clippy::too_many_arguments)]
pub fn attention_backward<E: SimdFloat>(
    d: AttentionDims,
    q: &[E],
    k: &[E],
    v: &[E],
    probs: &[E],
    grad_out: &[E],
    grad_q: &mut [E],
    grad_k: &mut [E],
    grad_v: &mut [E],
) {
    let (w, s1, s2) = (d.width(), d.queries, d.keys);
    if d.batch == 0 || s1 == 0 || s2 == 0 || w == 0 {
        return;
    }
    // Each batch item owns its rows of every gradient, so items run in parallel without
    // sharing a sum: the result does not depend on scheduling.
    let item = |b: usize, gq: &mut [E], gk: &mut [E], gv: &mut [E]| {
        let (qs, ks) = (b * s1 * w..(b + 1) * s1 * w, b * s2 * w..(b + 1) * s2 * w);
        let pp = d.probs_per_item();
        vectorized!(backward_item(
            d,
            &q[qs.clone()],
            &k[ks.clone()],
            &v[ks],
            &probs[b * pp..(b + 1) * pp],
            &grad_out[qs],
            gq,
            gk,
            gv,
        ));
    };
    if parallel(&d) {
        grad_q
            .par_chunks_mut(s1 * w)
            .zip(grad_k.par_chunks_mut(s2 * w))
            .zip(grad_v.par_chunks_mut(s2 * w))
            .enumerate()
            .take(d.batch)
            .for_each(|(b, ((gq, gk), gv))| item(b, gq, gk, gv));
    } else {
        for (b, ((gq, gk), gv)) in grad_q
            .chunks_mut(s1 * w)
            .zip(grad_k.chunks_mut(s2 * w))
            .zip(grad_v.chunks_mut(s2 * w))
            .enumerate()
            .take(d.batch)
        {
            item(b, gq, gk, gv);
        }
    }
}

/// [`attention_backward`] for one batch item.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn backward_item<E: SimdFloat>(
    d: AttentionDims,
    q: &[E],
    k: &[E],
    v: &[E],
    probs: &[E],
    grad_out: &[E],
    grad_q: &mut [E],
    grad_k: &mut [E],
    grad_v: &mut [E],
) {
    let (w, hd, s1, s2) = (d.width(), d.head_dim, d.queries, d.keys);
    let scale = E::one() / E::from(hd as f64).unwrap_or(E::one()).sqrt();
    // Overwritten by the first product of every head.
    let mut ds = scratch::take_for_overwrite(s1 * s2);
    for h in 0..d.heads {
        let p = &probs[h * s1 * s2..(h + 1) * s1 * s2];
        let go = Mat {
            data: &grad_out[h * hd..],
            rs: w,
            cs: 1,
        };
        // dV_h (S2 x hd) += P^T (S2 x S1) * dO_h (S1 x hd)
        matmul(
            s2,
            hd,
            s1,
            MatMut {
                data: &mut grad_v[h * hd..],
                rs: w,
                cs: 1,
            },
            true,
            Mat::col_major(p, s2),
            go,
            false,
        );
        // dP (S1 x S2) = dO_h (S1 x hd) * V_h^T (hd x S2)
        matmul(
            s1,
            s2,
            hd,
            MatMut::row_major(&mut ds, s2),
            false,
            go,
            Mat {
                data: &v[h * hd..],
                rs: 1,
                cs: w,
            },
            false,
        );
        // dS = P * (dP - sum_j dP_j P_j) * scale, row by row
        for (ds_row, p_row) in ds.chunks_exact_mut(s2).zip(p.chunks_exact(s2)) {
            let dot = simd::dot(ds_row, p_row);
            for (g, &pv) in ds_row.iter_mut().zip(p_row) {
                *g = pv * (*g - dot) * scale;
            }
        }
        // dQ_h (S1 x hd) += dS (S1 x S2) * K_h (S2 x hd)
        matmul(
            s1,
            hd,
            s2,
            MatMut {
                data: &mut grad_q[h * hd..],
                rs: w,
                cs: 1,
            },
            true,
            Mat::row_major(&ds, s2),
            Mat {
                data: &k[h * hd..],
                rs: w,
                cs: 1,
            },
            false,
        );
        // dK_h (S2 x hd) += dS^T (S2 x S1) * Q_h (S1 x hd)
        matmul(
            s2,
            hd,
            s1,
            MatMut {
                data: &mut grad_k[h * hd..],
                rs: w,
                cs: 1,
            },
            true,
            Mat::col_major(&ds, s2),
            Mat {
                data: &q[h * hd..],
                rs: w,
                cs: 1,
            },
            false,
        );
    }
    scratch::give(ds);
}
