//! 2-D batch normalisation (per channel over `(B, H, W)`) as one op on dfdx's tape: the
//! kernels of [`cpu`] on `Cpu` in f32/f64; the layer composes dfdx ops elsewhere.

pub mod cpu;

use crate::kernels::dispatch::{cast, cast_ref, has_cpu_kernel, record, same, CpuBackward};
use crate::kernels::host_values;
use cpu::BatchNormDims;
use dfdx::prelude::{
    Cpu, CpuError, Device, Dtype, HasShape, PutTape, Rank1, Shape, SplitTape, Storage, Tape,
    Tensor, TensorFromVec,
};
use num_traits::Float;

/// A per-channel vector.
type Channels<const C: usize, E, D> = Tensor<Rank1<C>, E, D>;

/// The output and, in training mode, the batch's mean and biased variance.
type Normalised<S, const C: usize, E, D, T> = (Tensor<S, E, D, T>, Option<Stats<C, E, D>>);

/// A batch's per-channel mean and biased variance.
pub(crate) type Stats<const C: usize, E, D> = (Channels<C, E, D>, Channels<C, E, D>);

/// Batch normalisation of `x` laid out as `d` says, with the batch's statistics
/// (`running` is `None`: training) or the running ones (`Some((mean, var))`: inference);
/// `Err(x)` when the kernel does not apply to the device or dtype.
///
/// In training the result carries the batch's mean and biased variance for the caller's
/// running update.
#[allow(clippy::type_complexity)]
pub(crate) fn try_batch_norm<S, const C: usize, E, D, T>(
    x: Tensor<S, E, D, T>,
    d: BatchNormDims,
    weight: &Channels<C, E, D>,
    bias: &Channels<C, E, D>,
    eps: f64,
    running: Option<(&Channels<C, E, D>, &Channels<C, E, D>)>,
) -> Result<Result<Normalised<S, C, E, D, T>, D::Err>, Tensor<S, E, D, T>>
where
    S: Shape,
    E: Dtype,
    D: Device<E>,
    T: Tape<E, D>,
{
    if !has_cpu_kernel::<E, D>() {
        return Err(x);
    }
    let (x, mut tape) = x.split_tape();
    macro_rules! run {
        ($f:ty, $x:expr) => {{
            fn r<const C: usize, E: Dtype, D: Device<E>>(
                t: &Channels<C, E, D>,
            ) -> &Channels<C, $f, Cpu> {
                cast_ref(t).expect("the layer's tensors are on the input's device")
            }
            let running = running.map(|(m, v)| (r(m), r(v)));
            match on_cpu::<$f, S, C>($x, d, r(weight), r(bias), eps, running, T::OWNS_TAPE) {
                Ok((y, stats, back)) => {
                    record(&mut tape, back);
                    let stats = stats.map(|(m, v)| (same(m), same(v)));
                    Ok((same::<_, Tensor<S, E, D>>(y).put_tape(tape), stats))
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

/// Runs the forward kernel; returns the output, the batch statistics in training, and
/// when `taped` the backward op.
#[allow(clippy::type_complexity)]
fn on_cpu<F, S: Shape, const C: usize>(
    x: Tensor<S, F, Cpu>,
    d: BatchNormDims,
    weight: &Channels<C, F, Cpu>,
    bias: &Channels<C, F, Cpu>,
    eps: f64,
    running: Option<(&Channels<C, F, Cpu>, &Channels<C, F, Cpu>)>,
    taped: bool,
) -> Result<
    (
        Tensor<S, F, Cpu>,
        Option<Stats<C, F, Cpu>>,
        Option<CpuBackward<F>>,
    ),
    CpuError,
>
where
    F: Dtype + Float + Send + Sync,
    Cpu: Device<F>,
    <Cpu as Storage<F>>::Vec: std::ops::DerefMut<Target = Vec<F>>,
{
    let xv = host_values(&x)?;
    let (w, b) = (host_values(weight)?, host_values(bias)?);
    let eps = F::from(eps).unwrap_or(F::zero());
    let dev = x.device().clone();
    let (mean, var, batch_stats) = match running {
        Some((m, v)) => (host_values(m)?, host_values(v)?, false),
        None => {
            let (mut m, mut v) = (vec![F::zero(); C], vec![F::zero(); C]);
            cpu::batch_stats(d, &xv, &mut m, &mut v);
            (m, v, true)
        }
    };
    let inv_std: Vec<F> = var.iter().map(|&v| F::one() / (v + eps).sqrt()).collect();
    let mut y = vec![F::zero(); xv.len()];
    cpu::batch_norm_apply(d, &xv, &mean, &inv_std, &w, &b, &mut y);
    let out = dev.try_tensor_from_vec(y, *x.shape())?;
    let stats = if batch_stats {
        Some((
            dev.try_tensor_from_vec(mean.clone(), Rank1::<C>::default())?,
            dev.try_tensor_from_vec(var, Rank1::<C>::default())?,
        ))
    } else {
        None
    };
    if !taped {
        return Ok((out, stats, None));
    }
    let (x_id, out_id, w_id, b_id) = (x.ghost(), out.ghost(), weight.ghost(), bias.ghost());
    let backward: CpuBackward<F> = Box::new(move |grads| {
        let gy = grads.get_or_alloc_mut(&out_id)?.to_vec();
        let (mut gw, mut gb) = (vec![F::zero(); C], vec![F::zero(); C]);
        let gx = grads.get_or_alloc_mut(&x_id)?;
        cpu::batch_norm_backward(
            d,
            batch_stats,
            &xv,
            &mean,
            &inv_std,
            &w,
            &gy,
            gx,
            &mut gw,
            &mut gb,
        );
        crate::kernels::accumulate(grads.get_or_alloc_mut(&w_id)?, &gw);
        crate::kernels::accumulate(grads.get_or_alloc_mut(&b_id)?, &gb);
        Ok(())
    });
    Ok((out, stats, Some(backward)))
}
