//! Scaled dot-product attention over heads as one op on dfdx's tape.
//!
//! On `Cpu` in f32 and f64 it runs the kernels of [`cpu`]: per batch item and head one gemm
//! for the scores and one for the weighted values, the scale, masks and softmax fused in
//! place, and a backward that reuses the saved weights. Other devices (CUDA) keep the
//! composition of dfdx ops in `nn::attention`, which [`applies`] tells the caller to use.

pub mod cpu;

use crate::kernels::dispatch::{cast, record, same, CpuBackward};
use crate::kernels::{accumulate, host_values, scratch};
use cpu::{AttentionDims, Masks};
use dfdx::prelude::{
    Const, Cpu, CpuError, Device, Dim, Dtype, HasShape, Merge, PutTape, SplitTape, Storage, Tape,
    Tensor, TensorFromVec,
};

/// Whether [`try_attention`] has a kernel for dtype `E` on device `D` (`Cpu` in f32 or f64).
///
/// # Shapes
/// Not an op; it answers for the types alone.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::kernels::attention::applies;
/// assert!(applies::<f32, Cpu>());
/// ```
pub fn applies<E: Dtype, D: Device<E>>() -> bool {
    crate::kernels::dispatch::has_cpu_kernel::<E, D>()
}

/// A `(B, S, W)` tensor: a batch of sequences of `W` features.
pub type Seq<B, S, const W: usize, E, D, T> = Tensor<(B, S, Const<W>), E, D, T>;

/// `softmax(Q K^T / sqrt(head_dim) + mask) V` for every head, without dropout, or `None`
/// when [`applies`] is false (the caller composes dfdx ops instead).
///
/// PyTorch equivalent: `torch.nn.functional.scaled_dot_product_attention` on the heads of
/// `q`, `k`, `v` (head `h` owns features `h * W / heads..(h + 1) * W / heads`), with
/// `key_padding_mask` (`true` = ignore that key) and `is_causal`.
///
/// # Shapes
/// `q (B, S1, W)`, `k`/`v (B, S2, W)`, mask `(B, S2)` -> `(B, S1, W)`.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::kernels::attention::try_attention;
/// let dev = Cpu::default();
/// let q: Tensor<Rank3<1, 2, 4>, f32, _> = dev.sample_normal();
/// let kv: Tensor<Rank3<1, 3, 4>, f32, _> = dev.ones();
/// // Identical values: every weighting of them gives the same row.
/// let y = try_attention(q, kv.clone(), kv, 2, None, false).unwrap().unwrap();
/// assert_eq!(y.array(), [[[1.0; 4]; 2]]);
/// ```
#[allow(clippy::type_complexity)]
pub fn try_attention<B, S1, S2, const W: usize, E, D, T>(
    q: Seq<B, S1, W, E, D, T>,
    k: Seq<B, S2, W, E, D, T>,
    v: Seq<B, S2, W, E, D, T>,
    heads: usize,
    key_padding_mask: Option<&Tensor<(B, S2), bool, D>>,
    causal: bool,
) -> Result<Option<Seq<B, S1, W, E, D, T>>, D::Err>
where
    B: Dim,
    S1: Dim,
    S2: Dim,
    E: Dtype,
    D: Device<E>,
    T: Tape<E, D> + Merge<T>,
{
    if !applies::<E, D>() {
        return Ok(None);
    }
    assert!(
        heads > 0 && W.is_multiple_of(heads),
        "attention: {heads} heads do not divide {W}"
    );
    let (batch, s1, _) = *q.shape();
    let s2 = k.shape().1;
    assert_eq!(
        (k.shape().0.size(), k.shape().1.size()),
        (v.shape().0.size(), v.shape().1.size()),
        "attention: key and value must have the same batch and length"
    );
    assert_eq!(
        batch.size(),
        k.shape().0.size(),
        "attention: query and key batches differ"
    );
    let d = AttentionDims {
        batch: batch.size(),
        heads,
        queries: s1.size(),
        keys: s2.size(),
        head_dim: W / heads,
    };
    let pad: Option<Vec<bool>> = key_padding_mask.map(|m| m.as_vec());
    let (q, tq) = q.split_tape();
    let (k, tk) = k.split_tape();
    let (v, tv) = v.split_tape();
    let mut tape = tq.merge(tk).merge(tv);
    let out = match cast::<_, Seq<B, S1, W, f32, Cpu, _>>(q) {
        Ok(q) => {
            let (k, v): (Seq<B, S2, W, f32, Cpu, _>, _) = (same(k), same(v));
            let (out, back) = on_cpu(d, q, k, v, pad, causal, T::OWNS_TAPE).map_err(same)?;
            record(&mut tape, back);
            same::<_, Seq<B, S1, W, E, D, _>>(out)
        }
        Err(q) => {
            let q: Seq<B, S1, W, f64, Cpu, _> = same(q);
            let (k, v): (Seq<B, S2, W, f64, Cpu, _>, _) = (same(k), same(v));
            let (out, back) = on_cpu(d, q, k, v, pad, causal, T::OWNS_TAPE).map_err(same)?;
            record(&mut tape, back);
            same::<_, Seq<B, S1, W, E, D, _>>(out)
        }
    };
    Ok(Some(out.put_tape(tape)))
}

/// Runs the forward kernel; returns the output and, when `taped`, its backward op.
#[allow(clippy::type_complexity)]
fn on_cpu<F, B, S1, S2, const W: usize>(
    d: AttentionDims,
    q: Seq<B, S1, W, F, Cpu, dfdx::prelude::NoneTape>,
    k: Seq<B, S2, W, F, Cpu, dfdx::prelude::NoneTape>,
    v: Seq<B, S2, W, F, Cpu, dfdx::prelude::NoneTape>,
    pad: Option<Vec<bool>>,
    causal: bool,
    taped: bool,
) -> Result<
    (
        Seq<B, S1, W, F, Cpu, dfdx::prelude::NoneTape>,
        Option<CpuBackward<F>>,
    ),
    CpuError,
>
where
    F: Dtype + crate::kernels::simd::SimdFloat,
    Cpu: Device<F>,
    <Cpu as Storage<F>>::Vec: std::ops::DerefMut<Target = Vec<F>>,
    B: Dim,
    S1: Dim,
    S2: Dim,
{
    let (qv, kv, vv) = (host_values(&q)?, host_values(&k)?, host_values(&v)?);
    let mut out = vec![F::zero(); qv.len()];
    let mut probs = scratch::take_for_overwrite(d.batch * d.probs_per_item());
    let masks = Masks {
        key_padding: pad.as_deref(),
        causal,
    };
    cpu::attention_forward(d, &qv, &kv, &vv, masks, &mut out, &mut probs);
    let out = q.device().try_tensor_from_vec(out, *q.shape())?;
    if !taped {
        for v in [qv, kv, vv, probs] {
            scratch::give(v);
        }
        return Ok((out, None));
    }
    let (q_id, k_id, v_id, out_id) = (q.ghost(), k.ghost(), v.ghost(), out.ghost());
    let backward: CpuBackward<F> = Box::new(move |grads| {
        let go = scratch::copy_of(grads.get_or_alloc_mut(&out_id)?);
        // Fresh buffers, added in afterwards: q, k and v may be one tensor.
        let mut gq = scratch::take(qv.len());
        let (mut gk, mut gv) = (scratch::take(kv.len()), scratch::take(vv.len()));
        cpu::attention_backward(d, &qv, &kv, &vv, &probs, &go, &mut gq, &mut gk, &mut gv);
        accumulate(grads.get_or_alloc_mut(&q_id)?, &gq);
        accumulate(grads.get_or_alloc_mut(&k_id)?, &gk);
        accumulate(grads.get_or_alloc_mut(&v_id)?, &gv);
        for v in [go, gq, gk, gv, qv, kv, vv, probs] {
            scratch::give(v);
        }
        Ok(())
    });
    Ok((out, Some(backward)))
}
