//! Layer normalisation over the last dim, with an optional residual sum first, as one op on
//! dfdx's tape: the kernels of [`cpu`] on `Cpu` in f32/f64, dfdx's `normalize` elsewhere.

pub mod cpu;

use crate::kernels::dispatch::{cast, cast_ref, has_cpu_kernel, record, same, CpuBackward};
use crate::kernels::{accumulate, host_values, scratch};
use dfdx::prelude::{
    Axis, BroadcastTo, Const, Cpu, CpuError, Device, Dim, Dtype, HasShape, Merge, NoneTape,
    PutTape, Rank1, SplitTape, Storage, Tape, Tensor, TensorFromVec, TryAdd, TryMul,
};

/// `R` rows of `F` features.
type Rows<R, const F: usize, E, D, T = NoneTape> = Tensor<(R, Const<F>), E, D, T>;

/// `layer_norm(a + b)` over the last dim (or of `a` alone), with PyTorch's biased variance
/// and `eps` inside the square root, then `* weight + bias`.
///
/// PyTorch equivalent: `torch.nn.functional.layer_norm(a + b, (F,), weight, bias, eps)`, the
/// "add & norm" of a post-norm Transformer layer.
///
/// # Shapes
/// `a`, `b (R, F)`, `weight`, `bias (F,)` -> `(R, F)`.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::kernels::layer_norm::try_add_layer_norm;
/// let dev = Cpu::default();
/// let a = dev.tensor([[1.0f64, 2.0, 3.0]]);
/// let b = dev.tensor([[1.0f64, 0.0, -1.0]]);
/// let (w, c) = (dev.ones::<Rank1<3>>(), dev.zeros::<Rank1<3>>());
/// // a + b is constant: every value sits at the mean.
/// let y = try_add_layer_norm(a, Some(b), &w, &c, 1e-5).unwrap();
/// assert_eq!(y.array(), [[0.0; 3]]);
/// ```
pub fn try_add_layer_norm<R, const F: usize, E, D, T, T2>(
    a: Rows<R, F, E, D, T>,
    b: Option<Rows<R, F, E, D, T2>>,
    weight: &Tensor<Rank1<F>, E, D>,
    bias: &Tensor<Rank1<F>, E, D>,
    eps: f64,
) -> Result<Rows<R, F, E, D, T>, D::Err>
where
    R: Dim,
    E: Dtype,
    D: Device<E>,
    T: Tape<E, D> + Merge<T2>,
    T2: Tape<E, D>,
{
    if !has_cpu_kernel::<E, D>() {
        let s = match b {
            Some(b) => a.try_add(b)?,
            None => a,
        };
        let shape = *s.shape();
        let x = s.try_normalize::<Axis<1>>(eps)?;
        let x = x.try_mul(
            weight
                .retaped::<T>()
                .try_broadcast_like::<_, Axis<0>>(&shape)?,
        )?;
        return x.try_add(
            bias.retaped::<T>()
                .try_broadcast_like::<_, Axis<0>>(&shape)?,
        );
    }
    let (a, ta) = a.split_tape();
    let (b, tape) = match b {
        Some(b) => {
            let (b, tb) = b.split_tape();
            (Some(b), ta.merge(tb))
        }
        None => (None, ta),
    };
    let mut tape = tape;
    macro_rules! run {
        ($f:ty, $a:expr) => {{
            let b: Option<Rows<R, F, $f, Cpu>> = b.map(same);
            let w: &Tensor<Rank1<F>, $f, Cpu> =
                cast_ref(weight).expect("weight on the op's device");
            let c: &Tensor<Rank1<F>, $f, Cpu> = cast_ref(bias).expect("bias on the op's device");
            let (out, back) = on_cpu::<$f, R, F>($a, b, w, c, eps, T::OWNS_TAPE).map_err(same)?;
            record(&mut tape, back);
            same::<_, Rows<R, F, E, D>>(out)
        }};
    }
    let out = match cast::<_, Rows<R, F, f32, Cpu>>(a) {
        Ok(a) => run!(f32, a),
        Err(a) => run!(f64, same::<_, Rows<R, F, f64, Cpu>>(a)),
    };
    Ok(out.put_tape(tape))
}

/// Runs the forward kernel; returns the output and, when `taped`, its backward op.
#[allow(clippy::type_complexity)]
fn on_cpu<F, R, const N: usize>(
    a: Rows<R, N, F, Cpu>,
    b: Option<Rows<R, N, F, Cpu>>,
    weight: &Tensor<Rank1<N>, F, Cpu>,
    bias: &Tensor<Rank1<N>, F, Cpu>,
    eps: f64,
    taped: bool,
) -> Result<(Rows<R, N, F, Cpu>, Option<CpuBackward<F>>), CpuError>
where
    F: Dtype + num_traits::Float,
    Cpu: Device<F>,
    <Cpu as Storage<F>>::Vec: std::ops::DerefMut<Target = Vec<F>>,
    R: Dim,
{
    let rows = a.shape().0.size();
    let av = host_values(&a)?;
    let bv = match &b {
        Some(b) => Some(host_values(b)?),
        None => None,
    };
    let (w, c) = (host_values(weight)?, host_values(bias)?);
    let mut y = vec![F::zero(); rows * N];
    let mut x_hat = scratch::take_for_overwrite(rows * N);
    let mut inv_std = scratch::take_for_overwrite(rows);
    let eps = F::from(eps).unwrap_or(F::zero());
    cpu::layer_norm_forward(
        N,
        eps,
        &av,
        bv.as_deref(),
        &w,
        &c,
        &mut y,
        &mut x_hat,
        &mut inv_std,
    );
    let out = a.device().try_tensor_from_vec(y, *a.shape())?;
    scratch::give(av);
    if let Some(bv) = bv {
        scratch::give(bv);
    }
    scratch::give(c);
    if !taped {
        for v in [w, x_hat, inv_std] {
            scratch::give(v);
        }
        return Ok((out, None));
    }
    let (a_id, b_id, out_id) = (a.ghost(), b.map(|b| b.ghost()), out.ghost());
    let (w_id, c_id) = (weight.ghost(), bias.ghost());
    let backward: CpuBackward<F> = Box::new(move |grads| {
        let gy = scratch::copy_of(grads.get_or_alloc_mut(&out_id)?);
        let mut gs = scratch::take(gy.len());
        let (mut gw, mut gc) = (vec![F::zero(); N], vec![F::zero(); N]);
        cpu::layer_norm_backward(N, &w, &x_hat, &inv_std, &gy, &mut gs, &mut gw, &mut gc);
        accumulate(grads.get_or_alloc_mut(&w_id)?, &gw);
        accumulate(grads.get_or_alloc_mut(&c_id)?, &gc);
        // The sum's gradient reaches both of its terms.
        if let Some(b_id) = &b_id {
            accumulate(grads.get_or_alloc_mut(b_id)?, &gs);
        }
        accumulate(grads.get_or_alloc_mut(&a_id)?, &gs);
        for v in [gy, gs, w, x_hat, inv_std] {
            scratch::give(v);
        }
        Ok(())
    });
    Ok((out, Some(backward)))
}
