//! `linear`: `x W^T + b`, optionally followed by a ReLU, as one op on dfdx's tape.
//!
//! On `Cpu` in f32 and f64 it runs the slice kernels of [`cpu`] (gemm 0.19 with AVX-512,
//! the bias and ReLU applied in the same pass), with one backward op for the input, weight
//! and bias gradients. Any other device or dtype (CUDA) composes dfdx's matmul, broadcast
//! add and ReLU, which dfdx differentiates. See [`crate::kernels::dispatch`] for why the
//! choice is made at run time.

pub mod cpu;

use crate::kernels::dispatch::{cast, cast_ref, has_cpu_kernel, record, same, CpuBackward};
use crate::kernels::{host_values, scratch};
use cpu::LinearDims;
use dfdx::prelude::{
    Axes2, BroadcastTo, Const, Cpu, CpuError, Device, Dim, Dtype, HasShape, NoneTape, PermuteTo,
    PutTape, Rank1, Rank2, RealizeTo, SplitTape, Storage, Tape, Tensor, TensorFromVec, TryAdd,
    TryMatMul,
};

/// `x W^T + b` with PyTorch's layouts, then `max(., 0)` when `relu`, on `x`'s tape.
///
/// PyTorch equivalent: `torch.nn.functional.linear(x, weight, bias)` (and `relu` of it).
///
/// # Shapes
/// `x (R, IN)`, `weight (OUT, IN)`, `bias (OUT,)` -> `(R, OUT)`; `R` is a `Const` or `usize`.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::kernels::linear::try_linear;
/// let dev = Cpu::default();
/// let x = dev.tensor([[1.0f32, -2.0]]);
/// let w = dev.tensor([[1.0f32, 1.0], [0.0, 1.0]]);
/// let b = dev.tensor([0.5f32, 0.0]);
/// assert_eq!(try_linear(x.clone(), &w, &b, false).unwrap().array(), [[-0.5, -2.0]]);
/// assert_eq!(try_linear(x, &w, &b, true).unwrap().array(), [[0.0, 0.0]]);
/// ```
pub fn try_linear<R, const IN: usize, const OUT: usize, E, D, T>(
    x: Tensor<(R, Const<IN>), E, D, T>,
    weight: &Tensor<Rank2<OUT, IN>, E, D>,
    bias: &Tensor<Rank1<OUT>, E, D>,
    relu: bool,
) -> Result<Rows<R, OUT, E, D, T>, D::Err>
where
    R: Dim,
    E: Dtype,
    D: Device<E>,
    T: Tape<E, D>,
{
    try_linear_rows(x, weight, bias, 0, relu)
}

/// [`try_linear`] with rows `first..first + OUT` of a larger `weight` and `bias`, as
/// attention's query, key and value projections use their packed `in_proj` tensors; the
/// gradients land in those rows.
pub(crate) fn try_linear_rows<R, WR, const IN: usize, const OUT: usize, E, D, T>(
    x: Tensor<(R, Const<IN>), E, D, T>,
    weight: &Tensor<(WR, Const<IN>), E, D>,
    bias: &Tensor<(WR,), E, D>,
    first: usize,
    relu: bool,
) -> Result<Rows<R, OUT, E, D, T>, D::Err>
where
    R: Dim,
    WR: Dim,
    E: Dtype,
    D: Device<E>,
    T: Tape<E, D>,
{
    assert!(
        first + OUT <= weight.shape().0.size(),
        "linear: rows {first}..{} of a weight with {} rows",
        first + OUT,
        weight.shape().0.size()
    );
    let (x, tape) = x.split_tape();
    if has_cpu_kernel::<E, D>() {
        let x = match cast::<_, Tensor<(R, Const<IN>), f32, Cpu>>(x) {
            Ok(x) => return on_cpu(x, weight, bias, first, relu, tape),
            Err(x) => x,
        };
        let x: Tensor<(R, Const<IN>), f64, Cpu> = same(x);
        return on_cpu(x, weight, bias, first, relu, tape);
    }
    let x = x.put_tape(tape);
    if first == 0 && weight.shape().0.size() == OUT {
        // The whole weight: relabel it, zero-copy.
        let w = weight.clone().try_realize::<Rank2<OUT, IN>>();
        let b = bias.clone().try_realize::<Rank1<OUT>>();
        if let (Ok(w), Ok(b)) = (w, b) {
            return try_linear_composed(x, &w, &b, relu);
        }
    }
    // A slice of the rows on the tape, so its gradient reaches the whole tensors.
    let rows = first..first + OUT;
    let w = weight.retaped::<T>().try_slice((rows.clone(), ..))?;
    let b = bias.retaped::<T>().try_slice((rows,))?;
    let (w, b) = match (
        w.try_realize::<Rank2<OUT, IN>>(),
        b.try_realize::<Rank1<OUT>>(),
    ) {
        (Ok(w), Ok(b)) => (w, b),
        _ => unreachable!("the slices have OUT rows"),
    };
    let n = x.shape().0;
    let y = x.try_matmul(w.try_permute::<_, Axes2<1, 0>>()?)?;
    let y = y.try_add(b.try_broadcast_like(&(n, Const::<OUT>))?)?;
    if relu {
        y.try_relu()
    } else {
        Ok(y)
    }
}

/// [`try_linear`] composed from dfdx's matmul, broadcast add and ReLU, which run and are
/// differentiated on every device: what CUDA runs, and the CPU kernel's cross-check.
///
/// # Shapes
/// As [`try_linear`].
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::kernels::linear::{try_linear, try_linear_composed};
/// let dev = Cpu::default();
/// let x: Tensor<Rank2<3, 4>, f64, _> = dev.sample_normal();
/// let w: Tensor<Rank2<2, 4>, f64, _> = dev.sample_normal();
/// let b: Tensor<Rank1<2>, f64, _> = dev.sample_normal();
/// let kernel = try_linear(x.clone(), &w, &b, true).unwrap().as_vec();
/// let composed = try_linear_composed(x, &w, &b, true).unwrap().as_vec();
/// assert!(kernel.iter().zip(&composed).all(|(a, b)| (a - b).abs() < 1e-12));
/// ```
pub fn try_linear_composed<R, const IN: usize, const OUT: usize, E, D, T>(
    x: Tensor<(R, Const<IN>), E, D, T>,
    weight: &Tensor<Rank2<OUT, IN>, E, D>,
    bias: &Tensor<Rank1<OUT>, E, D>,
    relu: bool,
) -> Result<Rows<R, OUT, E, D, T>, D::Err>
where
    R: Dim,
    E: Dtype,
    D: Device<E>,
    T: Tape<E, D>,
{
    let rows = x.shape().0;
    let y = x.try_matmul(weight.retaped::<T>().try_permute::<_, Axes2<1, 0>>()?)?;
    let y = y.try_add(
        bias.retaped::<T>()
            .try_broadcast_like(&(rows, Const::<OUT>))?,
    )?;
    if relu {
        y.try_relu()
    } else {
        Ok(y)
    }
}

/// The CPU kernel for `x` already known to be on `Cpu` in dtype `F` (so `E = F`, `D = Cpu`).
fn on_cpu<F, R, WR, const IN: usize, const OUT: usize, E, D, T>(
    x: Tensor<(R, Const<IN>), F, Cpu>,
    weight: &Tensor<(WR, Const<IN>), E, D>,
    bias: &Tensor<(WR,), E, D>,
    first: usize,
    relu: bool,
    mut tape: T,
) -> Result<Rows<R, OUT, E, D, T>, D::Err>
where
    F: Dtype + num_traits::Float + Send + Sync,
    Cpu: Device<F>,
    <Cpu as Storage<F>>::Vec: std::ops::DerefMut<Target = Vec<F>>,
    R: Dim,
    WR: Dim,
    E: Dtype,
    D: Device<E>,
    T: Tape<E, D>,
{
    let weight: &Tensor<(WR, Const<IN>), F, Cpu> =
        cast_ref(weight).expect("the weight is on the input's device, in its dtype");
    let bias: &Tensor<(WR,), F, Cpu> =
        cast_ref(bias).expect("the bias is on the input's device, in its dtype");
    let (out, backward) =
        cpu_forward::<F, R, WR, IN, OUT>(x, weight, bias, first, relu, T::OWNS_TAPE)
            .map_err(same)?;
    record(&mut tape, backward);
    Ok(same::<_, Tensor<(R, Const<OUT>), E, D>>(out).put_tape(tape))
}

/// `R` rows of `N` features: what [`try_linear`] takes and returns.
///
/// # Shapes
/// `(R, N)`.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::kernels::linear::Rows;
/// let x: Rows<usize, 3, f32, Cpu> = Cpu::default().zeros_like(&(2, Const));
/// assert_eq!(x.shape().concrete(), [2, 3]);
/// ```
pub type Rows<R, const N: usize, E, D, T = NoneTape> = Tensor<(R, Const<N>), E, D, T>;

/// `values[rows]`, reusing `values` when the range is all of it.
fn rows_of<F: Copy + Default + 'static>(values: Vec<F>, rows: std::ops::Range<usize>) -> Vec<F> {
    if rows == (0..values.len()) {
        return values;
    }
    let part = scratch::copy_of(&values[rows]);
    scratch::give(values);
    part
}

/// A CPU linear's output and, when taped, its backward op.
type CpuForward<R, const OUT: usize, F> = (Rows<R, OUT, F, Cpu>, Option<CpuBackward<F>>);

/// Runs the forward kernel; returns the output and, when `taped`, its backward op.
fn cpu_forward<F, R, WR, const IN: usize, const OUT: usize>(
    x: Tensor<(R, Const<IN>), F, Cpu>,
    weight: &Tensor<(WR, Const<IN>), F, Cpu>,
    bias: &Tensor<(WR,), F, Cpu>,
    first: usize,
    relu: bool,
    taped: bool,
) -> Result<CpuForward<R, OUT, F>, CpuError>
where
    F: Dtype + num_traits::Float + Send + Sync,
    Cpu: Device<F>,
    <Cpu as Storage<F>>::Vec: std::ops::DerefMut<Target = Vec<F>>,
    R: Dim,
    WR: Dim,
{
    let rows = x.shape().0;
    let d = LinearDims {
        rows: rows.size(),
        input: IN,
        output: OUT,
    };
    let xv = host_values(&x)?;
    let (w_rows, b_rows) = (first * IN..(first + OUT) * IN, first..first + OUT);
    let (w, b) = (
        rows_of(host_values(weight)?, w_rows.clone()),
        rows_of(host_values(bias)?, b_rows.clone()),
    );
    let mut y = vec![F::default(); d.rows * OUT];
    cpu::linear_forward(d, &xv, &w, &b, relu, &mut y);
    scratch::give(b);
    let saved_y = (taped && relu).then(|| scratch::copy_of(&y));
    let out = x.device().try_tensor_from_vec(y, (rows, Const::<OUT>))?;
    if !taped {
        scratch::give(xv);
        scratch::give(w);
        return Ok((out, None));
    }
    let (x_id, out_id) = (x.ghost(), out.ghost());
    let (weight, bias) = (weight.ghost(), bias.ghost());
    let backward: CpuBackward<F> = Box::new(move |grads| {
        let mut gy = scratch::copy_of(grads.get_or_alloc_mut(&out_id)?);
        if let Some(y) = saved_y {
            cpu::relu_backward_in_place(&y, &mut gy);
            scratch::give(y);
        }
        cpu::linear_backward_input(d, &w, &gy, grads.get_or_alloc_mut(&x_id)?);
        let grad_w = &mut grads.get_or_alloc_mut(&weight)?[w_rows];
        cpu::linear_backward_weight(d, &xv, &gy, grad_w);
        cpu::linear_backward_bias(d, &gy, &mut grads.get_or_alloc_mut(&bias)?[b_rows]);
        scratch::give(gy);
        scratch::give(xv);
        scratch::give(w);
        Ok(())
    });
    Ok((out, Some(backward)))
}
