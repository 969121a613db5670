//! Cross-entropy of logits against target probabilities as one op on dfdx's tape: on `Cpu`
//! in f32/f64 one pass per row for the loss (log-sum-exp) and one for its gradient
//! (`softmax * sum(t) - t`), instead of dfdx's chain of log-softmax, product, sum and mean.

use crate::kernels::dispatch::{cast, has_cpu_kernel, record, same, CpuBackward};
use crate::kernels::host_values;
use dfdx::prelude::{
    Cpu, CpuError, Device, Dtype, HasShape, PutTape, Rank0, Shape, SplitTape, Storage, Tape,
    Tensor, TensorFromVec,
};
use num_traits::Float;

/// `mean over rows of -sum_j t_j * log_softmax(x)_j`, rows of `classes` values; writes each
/// row's `softmax` to `probs` for the backward pass and returns the mean.
pub fn cross_entropy_forward<E: Float>(classes: usize, x: &[E], t: &[E], probs: &mut [E]) -> E {
    let mut total = E::zero();
    let mut rows = 0usize;
    for ((xr, tr), pr) in x
        .chunks_exact(classes)
        .zip(t.chunks_exact(classes))
        .zip(probs.chunks_exact_mut(classes))
    {
        let max = xr.iter().fold(E::neg_infinity(), |m, &v| m.max(v));
        let mut sum = E::zero();
        for (p, &v) in pr.iter_mut().zip(xr) {
            *p = (v - max).exp();
            sum = sum + *p;
        }
        let lse = max + sum.ln();
        let inv = E::one() / sum;
        let mut row = E::zero();
        for ((p, &v), &tv) in pr.iter_mut().zip(xr).zip(tr) {
            *p = *p * inv;
            row = row + tv * (lse - v);
        }
        total = total + row;
        rows += 1;
    }
    total / E::from(rows.max(1)).unwrap_or(E::one())
}

/// Adds `scale * (probs * sum(t) - t)` per row to `grad_x`: the gradient of
/// [`cross_entropy_forward`] times the loss's gradient `g`, with `scale = g / rows`.
pub fn cross_entropy_backward<E: Float>(
    classes: usize,
    probs: &[E],
    t: &[E],
    scale: E,
    grad_x: &mut [E],
) {
    for ((pr, tr), gr) in probs
        .chunks_exact(classes)
        .zip(t.chunks_exact(classes))
        .zip(grad_x.chunks_exact_mut(classes))
    {
        let mass = tr.iter().fold(E::zero(), |s, &v| s + v);
        for ((g, &p), &tv) in gr.iter_mut().zip(pr).zip(tr) {
            *g = *g + scale * (p * mass - tv);
        }
    }
}

/// Cross-entropy of `logits` (classes on the last axis) against `targets`, mean over the
/// other axes, on the CPU kernel; `Err` gives the inputs back when the kernel does not
/// apply (another device or dtype, or a scalar), for the caller to compose dfdx ops.
#[allow(clippy::type_complexity)]
pub(crate) fn try_cross_entropy<S: Shape, E: Dtype, D: Device<E>, T: Tape<E, D>>(
    logits: Tensor<S, E, D, T>,
    targets: Tensor<S, E, D>,
) -> Result<Result<Tensor<Rank0, E, D, T>, D::Err>, (Tensor<S, E, D, T>, Tensor<S, E, D>)> {
    if !has_cpu_kernel::<E, D>() || S::NUM_DIMS == 0 {
        return Err((logits, targets));
    }
    let (x, mut tape) = logits.split_tape();
    macro_rules! run {
        ($f:ty, $x:expr) => {{
            let t: Tensor<S, $f, Cpu> = same(targets);
            match on_cpu::<$f, S>($x, t, T::OWNS_TAPE) {
                Ok((loss, back)) => {
                    record(&mut tape, back);
                    Ok(same::<_, Tensor<Rank0, E, D>>(loss).put_tape(tape))
                }
                Err(e) => Err(same(e)),
            }
        }};
    }
    Ok(match cast::<_, Tensor<S, f32, Cpu>>(x) {
        Ok(x) => run!(f32, x),
        Err(x) => run!(f64, same::<_, Tensor<S, f64, Cpu>>(x)),
    })
}

/// Runs the forward kernel; returns the loss and, when `taped`, its backward op.
#[allow(clippy::type_complexity)]
fn on_cpu<F, S: Shape>(
    x: Tensor<S, F, Cpu>,
    t: Tensor<S, F, Cpu>,
    taped: bool,
) -> Result<(Tensor<Rank0, F, Cpu>, Option<CpuBackward<F>>), CpuError>
where
    F: Dtype + Float,
    Cpu: Device<F>,
    <Cpu as Storage<F>>::Vec: std::ops::DerefMut<Target = Vec<F>>,
{
    let dims = x.shape().concrete();
    let classes = dims.into_iter().last().unwrap_or(1).max(1);
    let (xv, tv) = (host_values(&x)?, host_values(&t)?);
    let rows = xv.len() / classes;
    let mut probs = vec![F::zero(); xv.len()];
    let loss = cross_entropy_forward(classes, &xv, &tv, &mut probs);
    let out = x.device().try_tensor_from_vec(vec![loss], ())?;
    if !taped {
        return Ok((out, None));
    }
    let (x_id, out_id) = (x.ghost(), out.ghost());
    let backward: CpuBackward<F> = Box::new(move |grads| {
        let g = grads.get_or_alloc_mut(&out_id)?[0];
        let scale = g / F::from(rows.max(1)).unwrap_or(F::one());
        cross_entropy_backward(classes, &probs, &tv, scale, grads.get_or_alloc_mut(&x_id)?);
        Ok(())
    });
    Ok((out, Some(backward)))
}
