//! CPU `linear` kernels (forward and backward) on slices: one GEMM per product, the bias
//! (and a ReLU) applied in the same pass as the output is written.

use crate::kernels::gemm::{matmul, Mat, MatMut};
use crate::kernels::simd::vectorized;
use num_traits::Float;

/// The sizes of one linear op: `rows` inputs of `input` features to `output` features.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinearDims {
    /// Rows of the input (batch, or batch times sequence length).
    pub rows: usize,
    /// Input features (`IN`).
    pub input: usize,
    /// Output features (`OUT`).
    pub output: usize,
}

impl LinearDims {
    /// Multiply-adds of one product: the size that decides whether threads pay off.
    fn work(&self) -> usize {
        self.rows * self.input * self.output
    }
}

/// Below this many multiply-adds a product runs on one thread: waking the pool costs more
/// than it saves (the MLP's and LeNet's small layers).
const PARALLEL_WORK: usize = 1 << 18;

/// `y = x W^T + b`, then `max(y, 0)` when `relu`, with PyTorch's layouts: `x (rows, input)`,
/// `weight (output, input)`, `bias (output,)`, `y (rows, output)`, all row-major.
/// `y` is overwritten.
///
/// # Panics
/// If a slice is shorter than the dims require.
pub fn linear_forward<E: Float + Send + Sync + 'static>(
    d: LinearDims,
    x: &[E],
    weight: &[E],
    bias: &[E],
    relu: bool,
    y: &mut [E],
) {
    assert_eq!(bias.len(), d.output, "linear: bias length");
    for row in y.chunks_exact_mut(d.output.max(1)).take(d.rows) {
        row.copy_from_slice(bias);
    }
    // y += x * W^T; W^T (input x output) is W read column-major.
    matmul(
        d.rows,
        d.output,
        d.input,
        MatMut::row_major(y, d.output),
        true,
        Mat::row_major(x, d.input),
        Mat::col_major(weight, d.input),
        d.work() >= PARALLEL_WORK,
    );
    if relu {
        vectorized!({
            for v in y.iter_mut() {
                *v = v.max(E::zero());
            }
        });
    }
}

/// Zeroes the entries of `grad_y` where the ReLU's output `y` is not positive: the
/// gradient through `max(., 0)`, with PyTorch's zero slope at 0.
pub fn relu_backward_in_place<E: Float>(y: &[E], grad_y: &mut [E]) {
    vectorized!({
        // A select, not a branch, which mispredicted on half of the entries and kept the
        // loop scalar.
        for (g, &v) in grad_y.iter_mut().zip(y) {
            *g = if v <= E::zero() { E::zero() } else { *g };
        }
    })
}

/// Input gradient of [`linear_forward`] (without its ReLU): `grad_x += grad_y W`.
///
/// # Panics
/// If a slice is shorter than the dims require.
pub fn linear_backward_input<E: Float + Send + Sync + 'static>(
    d: LinearDims,
    weight: &[E],
    grad_y: &[E],
    grad_x: &mut [E],
) {
    // grad_x (rows x input) += grad_y (rows x output) * W (output x input)
    matmul(
        d.rows,
        d.input,
        d.output,
        MatMut::row_major(grad_x, d.input),
        true,
        Mat::row_major(grad_y, d.output),
        Mat::row_major(weight, d.input),
        d.work() >= PARALLEL_WORK,
    );
}

/// Weight gradient of [`linear_forward`] (without its ReLU): `grad_weight += grad_y^T x`.
///
/// # Panics
/// If a slice is shorter than the dims require.
pub fn linear_backward_weight<E: Float + Send + Sync + 'static>(
    d: LinearDims,
    x: &[E],
    grad_y: &[E],
    grad_weight: &mut [E],
) {
    // grad_W (output x input) += grad_y^T (output x rows) * x (rows x input); grad_y^T is
    // grad_y read column-major, the layout gemm packs fastest on the left.
    matmul(
        d.output,
        d.input,
        d.rows,
        MatMut::row_major(grad_weight, d.input),
        true,
        Mat::col_major(grad_y, d.output),
        Mat::row_major(x, d.input),
        d.work() >= PARALLEL_WORK,
    );
}

/// Bias gradient of [`linear_forward`] (without its ReLU): adds the column sums of
/// `grad_y` to `grad_bias`, row by row in order, so the sum is the same on every run.
pub fn linear_backward_bias<E: Float>(d: LinearDims, grad_y: &[E], grad_bias: &mut [E]) {
    vectorized!({
        for row in grad_y.chunks_exact(d.output.max(1)).take(d.rows) {
            for (b, &g) in grad_bias.iter_mut().zip(row) {
                *b = *b + g;
            }
        }
    })
}
