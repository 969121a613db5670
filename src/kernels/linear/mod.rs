//! `linear`: `x W^T + b`, optionally followed by a ReLU, as one op on dfdx's tape.
//!
//! On `Cpu` in f32 and f64 it runs the slice kernels of [`cpu`] (gemm 0.19 with AVX-512,
//! the bias and ReLU applied in the same pass), with one backward op for the input, weight
//! and bias gradients. Any other device or dtype (CUDA) composes dfdx's matmul, broadcast
//! add and ReLU, which dfdx differentiates. See [`crate::kernels::dispatch`] for why the
//! choice is made at run time.

pub mod cpu;

use crate::kernels::dispatch::{cast, cast_mut, cast_ref, same};
use crate::kernels::host_values;
use cpu::LinearDims;
use dfdx::prelude::{
    Axes2, BroadcastTo, Const, Cpu, CpuError, Device, Dim, Dtype, Gradients, HasShape, NoneTape,
    PermuteTo, PutTape, Rank1, Rank2, ReshapeTo, SplitTape, Storage, Tape, Tensor, TensorFromVec,
    TryAdd, TryMatMul,
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
    let (x, tape) = x.split_tape();
    let x = match cast::<_, Tensor<(R, Const<IN>), f32, Cpu>>(x) {
        Ok(x) => return on_cpu(x, weight, bias, relu, tape),
        Err(x) => x,
    };
    let x = match cast::<_, Tensor<(R, Const<IN>), f64, Cpu>>(x) {
        Ok(x) => return on_cpu(x, weight, bias, relu, tape),
        Err(x) => x,
    };
    try_linear_composed(x.put_tape(tape), weight, bias, relu)
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
fn on_cpu<F, R, const IN: usize, const OUT: usize, E, D, T>(
    x: Tensor<(R, Const<IN>), F, Cpu>,
    weight: &Tensor<Rank2<OUT, IN>, E, D>,
    bias: &Tensor<Rank1<OUT>, E, D>,
    relu: bool,
    mut tape: T,
) -> Result<Rows<R, OUT, E, D, T>, D::Err>
where
    F: Dtype + num_traits::Float + Send + Sync,
    Cpu: Device<F>,
    <Cpu as Storage<F>>::Vec: std::ops::DerefMut<Target = Vec<F>>,
    R: Dim,
    E: Dtype,
    D: Device<E>,
    T: Tape<E, D>,
{
    let weight: &Tensor<Rank2<OUT, IN>, F, Cpu> =
        cast_ref(weight).expect("the weight is on the input's device, in its dtype");
    let bias: &Tensor<Rank1<OUT>, F, Cpu> =
        cast_ref(bias).expect("the bias is on the input's device, in its dtype");
    let (out, backward) = cpu_forward(x, weight, bias, relu, T::OWNS_TAPE).map_err(same)?;
    if let Some(backward) = backward {
        tape.add_backward_op(move |grads: &mut Gradients<E, D>| {
            let grads: &mut Gradients<F, Cpu> =
                cast_mut(grads).expect("the gradients are on the op's device");
            backward(grads).map_err(same)
        });
    }
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

/// The backward op of one CPU linear.
type CpuBackward<F> = Box<dyn FnOnce(&mut Gradients<F, Cpu>) -> Result<(), CpuError>>;

/// A CPU linear's output and, when taped, its backward op.
type CpuForward<R, const OUT: usize, F> = (Rows<R, OUT, F, Cpu>, Option<CpuBackward<F>>);

/// Runs the forward kernel; returns the output and, when `taped`, its backward op.
fn cpu_forward<F, R, const IN: usize, const OUT: usize>(
    x: Tensor<(R, Const<IN>), F, Cpu>,
    weight: &Tensor<Rank2<OUT, IN>, F, Cpu>,
    bias: &Tensor<Rank1<OUT>, F, Cpu>,
    relu: bool,
    taped: bool,
) -> Result<CpuForward<R, OUT, F>, CpuError>
where
    F: Dtype + num_traits::Float + Send + Sync,
    Cpu: Device<F>,
    <Cpu as Storage<F>>::Vec: std::ops::DerefMut<Target = Vec<F>>,
    R: Dim,
{
    let rows = x.shape().0;
    let d = LinearDims {
        rows: rows.size(),
        input: IN,
        output: OUT,
    };
    // The kernel reads physical memory, so the input must be laid out as its shape says.
    let x = x.try_contiguous()?;
    let mut xv = vec![F::default(); d.rows * IN];
    x.copy_into(&mut xv);
    let w = host_values(weight)?;
    let b = host_values(bias)?;
    let mut y = vec![F::default(); d.rows * OUT];
    cpu::linear_forward(d, &xv, &w, &b, relu, &mut y);
    let saved_y = (taped && relu).then(|| y.clone());
    let out = x.device().try_tensor_from_vec(y, (rows, Const::<OUT>))?;
    if !taped {
        return Ok((out, None));
    }
    let (x_id, out_id) = (x.ghost(), out.ghost());
    let (weight, bias) = (weight.ghost(), bias.ghost());
    let backward: CpuBackward<F> = Box::new(move |grads| {
        let mut gy = grads.get_or_alloc_mut(&out_id)?.to_vec();
        if let Some(y) = &saved_y {
            cpu::relu_backward_in_place(y, &mut gy);
        }
        cpu::linear_backward_input(d, &w, &gy, grads.get_or_alloc_mut(&x_id)?);
        cpu::linear_backward_weight(d, &xv, &gy, grads.get_or_alloc_mut(&weight)?);
        cpu::linear_backward_bias(d, &gy, grads.get_or_alloc_mut(&bias)?);
        Ok(())
    });
    Ok((out, Some(backward)))
}
