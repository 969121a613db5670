//! CPU recurrent kernel: one layer-direction over a whole sequence, forward and backward
//! through time, as a few large GEMMs plus one GEMM and one fused elementwise pass per step.
//!
//! Every sequence-shaped buffer is batch-major `(batch, steps, width)` like the input, with
//! the row of batch `b` at time `t` at `b * steps + t`: the input projection and the weight
//! gradients are then single GEMMs over all `batch * steps` rows, a step's rows are one
//! strided matrix that `gemm` reads in place, and a run of batch rows is one slice, which is
//! how `chunk.rs` hands them to threads.

use super::activation::GateFloat;
use super::chunk::{
    chunk_rows, run_backward, run_forward, BackwardChunk, ForwardChunk, Rows, StepWeights,
};
use super::RecurrentMode;
use crate::kernels::gemm::{matmul, Mat, MatMut};
use rayon::prelude::*;

/// The sizes of one layer-direction's run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RecurrentGeometry {
    pub(crate) batch: usize,
    pub(crate) steps: usize,
    pub(crate) input: usize,
    pub(crate) hidden: usize,
    pub(crate) mode: RecurrentMode,
    /// Whether time runs from the last step to the first.
    pub(crate) reverse: bool,
}

impl RecurrentGeometry {
    /// Length of a gate row: `GATES * hidden`.
    pub(crate) fn width(&self) -> usize {
        self.mode.gates() * self.hidden
    }

    /// The time index of the `n`-th step taken.
    pub(crate) fn time(&self, n: usize) -> usize {
        if self.reverse {
            self.steps - 1 - n
        } else {
            n
        }
    }

    /// Offset of the row of batch `b` at time `t` in a sequence buffer of row length `len`.
    pub(crate) fn row(&self, b: usize, t: usize, len: usize) -> core::ops::Range<usize> {
        let start = (b * self.steps + t) * len;
        start..start + len
    }

    /// The rows of time `t` of a sequence buffer of row length `len`, as a strided matrix.
    pub(crate) fn at_time<'a, E>(&self, buf: &'a [E], t: usize, len: usize) -> Mat<'a, E> {
        Mat {
            data: &buf[t * len..],
            rs: self.steps * len,
            cs: 1,
        }
    }
}

/// Whether a GEMM is large enough to be worth gemm's threads.
fn parallel(m: usize, n: usize, k: usize) -> bool {
    m * n * k >= 1 << 20
}

/// Whether each chunk's per-step GEMM should use gemm's threads: only when the chunks leave
/// threads idle (gemm sums each element in the same order either way).
fn parallel_steps(chunks: usize, rows: usize, g: &RecurrentGeometry) -> bool {
    chunks < rayon::current_num_threads() && parallel(rows, g.width(), g.hidden)
}

/// One layer-direction's parameters in PyTorch's layout (row-major).
#[derive(Clone, Copy)]
pub(crate) struct Weights<'a, E> {
    /// `(GATES * hidden, input)`.
    pub(crate) ih: &'a [E],
    /// `(GATES * hidden, hidden)`.
    pub(crate) hh: &'a [E],
    /// `(GATES * hidden,)`.
    pub(crate) bias_ih: &'a [E],
    /// `(GATES * hidden,)`.
    pub(crate) bias_hh: &'a [E],
}

/// What the forward pass keeps for the backward pass.
pub(crate) struct Saved<E> {
    /// `(batch, steps, GATES * hidden)`: the gate activations.
    acts: Vec<E>,
    /// `(batch, steps, hidden)`: the state each step started from, `h_{t-1}`.
    h_prev: Vec<E>,
    /// LSTM: `c_{t-1}`; GRU: the `n` part of `h W_hh^T + b_hh`; `(batch, steps, hidden)`.
    aux: Vec<E>,
    /// LSTM: `tanh(c_t)`, `(batch, steps, hidden)`.
    tanh_c: Vec<E>,
}

/// The initial state, `(batch, hidden)` each; zeros where `None`.
#[derive(Clone, Copy, Default)]
pub(crate) struct Initial<'a, E> {
    pub(crate) h: Option<&'a [E]>,
    pub(crate) c: Option<&'a [E]>,
}

/// Where the forward pass writes: `out (batch, steps, hidden)`, the final `h` and, for an
/// LSTM, the final `c` (`(batch, hidden)` each; `c` is ignored by the other modes).
pub(crate) struct Outputs<'a, E> {
    pub(crate) out: &'a mut [E],
    pub(crate) h: &'a mut [E],
    pub(crate) c: &'a mut [E],
}

/// Runs the recurrence over `x (batch, steps, input)` with PyTorch's equations.
///
/// # Panics
/// If a slice's length does not match the geometry.
pub(crate) fn recurrent_forward<E: GateFloat>(
    g: &RecurrentGeometry,
    x: &[E],
    w: Weights<'_, E>,
    initial: Initial<'_, E>,
    o: Outputs<'_, E>,
) -> Saved<E> {
    let (batch, steps, hidden, width) = (g.batch, g.steps, g.hidden, g.width());
    let rows = batch * steps;
    let lstm = g.mode == RecurrentMode::Lstm;
    let seq = |len: usize| vec![E::zero(); rows * len];
    assert_eq!(x.len(), rows * g.input);
    assert_eq!(o.out.len(), rows * hidden);
    assert_eq!(o.h.len(), batch * hidden);

    // The input side of every step at once; its bias is added in the step's fused pass.
    let mut acts = seq(width);
    let (m, k) = (rows, g.input);
    matmul(
        m,
        width,
        k,
        MatMut::row_major(&mut acts, width),
        false,
        Mat::row_major(x, k),
        Mat::col_major(w.ih, k),
        parallel(m, width, k),
    );

    // W_hh^T, row-major: the layout gemm reads without repacking it at every step.
    let w_hh_t = transpose(w.hh, width, hidden);

    let mut h_prev = seq(hidden);
    let mut aux = if needs_aux(g.mode) {
        seq(hidden)
    } else {
        Vec::new()
    };
    let mut tanh_c = if lstm { seq(hidden) } else { Vec::new() };
    let mut c = vec![E::zero(); if lstm { batch * hidden } else { 0 }];
    let mut hidden_side = vec![E::zero(); batch * width];
    if steps > 0 {
        let t = g.time(0);
        for b in 0..batch {
            let state = b * hidden..(b + 1) * hidden;
            if let Some(h0) = initial.h {
                h_prev[g.row(b, t, hidden)].copy_from_slice(&h0[state.clone()]);
            }
            if let (true, Some(c0)) = (lstm, initial.c) {
                aux[g.row(b, t, hidden)].copy_from_slice(&c0[state]);
            }
        }
    }
    let whole = ForwardChunk {
        g: *g,
        acts: &mut acts,
        out: &mut *o.out,
        h_prev: &mut h_prev,
        aux: &mut aux,
        tanh_c: &mut tanh_c,
        c: &mut c,
        hidden_side: &mut hidden_side,
    };
    let step_weights = StepWeights {
        hh: &w_hh_t,
        bias_ih: w.bias_ih,
        bias_hh: w.bias_hh,
    };
    let per = chunk_rows(batch);
    let chunks = whole.chunks(per);
    let par = parallel_steps(chunks.len(), per, g);
    let has_h0 = initial.h.is_some();
    chunks
        .into_par_iter()
        .for_each(|chunk| run_forward(chunk, step_weights, has_h0, par));

    // The final state: the last step's h (and c), or the initial one for an empty sequence.
    for b in 0..batch {
        let state = b * hidden..(b + 1) * hidden;
        if steps > 0 {
            o.h[state.clone()].copy_from_slice(&o.out[g.row(b, g.time(steps - 1), hidden)]);
        } else if let Some(h0) = initial.h {
            o.h[state.clone()].copy_from_slice(&h0[state.clone()]);
        }
        if lstm {
            if steps > 0 {
                o.c[state.clone()].copy_from_slice(&c[state]);
            } else if let Some(c0) = initial.c {
                o.c[state.clone()].copy_from_slice(&c0[state]);
            }
        }
    }
    Saved {
        acts,
        h_prev,
        aux,
        tanh_c,
    }
}

/// The transpose of the row-major `rows x cols` matrix `m`, in 8 x 8 tiles: each tile's
/// writes are 8 runs of 8 elements, and its 8 destination rows (often 4 KiB apart) fit in
/// one L1 set's ways.
fn transpose<E: GateFloat>(m: &[E], rows: usize, cols: usize) -> Vec<E> {
    const TILE: usize = 8;
    assert_eq!(m.len(), rows * cols);
    let mut t = vec![E::zero(); rows * cols];
    for r0 in (0..rows).step_by(TILE) {
        let r1 = (r0 + TILE).min(rows);
        for c0 in (0..cols).step_by(TILE) {
            for c in c0..(c0 + TILE).min(cols) {
                let column = m[r0 * cols + c..].iter().step_by(cols);
                for (d, &v) in t[c * rows + r0..c * rows + r1].iter_mut().zip(column) {
                    *d = v;
                }
            }
        }
    }
    t
}

/// Whether a mode keeps a second per-step sequence (`c_{t-1}` or the GRU's `n` product).
fn needs_aux(mode: RecurrentMode) -> bool {
    matches!(mode, RecurrentMode::Lstm | RecurrentMode::Gru)
}

/// The gradients of the pre-activations of every step, from which the parameter and input
/// gradients are single GEMMs.
pub(crate) struct GateGrads<E> {
    g: RecurrentGeometry,
    /// `(batch, steps, GATES * hidden)`: of `x W_ih^T + b_ih`.
    input_side: Vec<E>,
    /// GRU only: of `h W_hh^T + b_hh` (for the other modes it equals `input_side`).
    hidden_side: Vec<E>,
    /// `(batch, steps, hidden)`: `h_{t-1}` of every step.
    h_prev: Vec<E>,
}

/// Backpropagates `grad_out (batch, steps, hidden)` through time, step by step from the
/// last one taken. The initial state gets no gradient (it is a constant to the layer).
pub(crate) fn backward_through_time<E: GateFloat>(
    g: &RecurrentGeometry,
    w_hh: &[E],
    saved: Saved<E>,
    grad_out: &[E],
) -> GateGrads<E> {
    let (batch, steps, hidden) = (g.batch, g.steps, g.hidden);
    let gru = g.mode == RecurrentMode::Gru;
    let Saved {
        mut acts,
        h_prev,
        aux,
        tanh_c,
    } = saved;
    assert_eq!(grad_out.len(), batch * steps * hidden);
    let mut hidden_grads = if gru {
        vec![E::zero(); acts.len()]
    } else {
        Vec::new()
    };
    // Per batch row: h_t's gradient through step t + 1's matmul, the buffer the next one
    // goes to, and c_t's gradient.
    let mut dh_rec = vec![E::zero(); batch * hidden];
    let mut dh_next = vec![E::zero(); batch * hidden];
    let mut dc = vec![
        E::zero();
        if g.mode == RecurrentMode::Lstm {
            batch * hidden
        } else {
            0
        }
    ];
    let whole = BackwardChunk {
        g: *g,
        acts: &mut acts,
        hidden_grads: &mut hidden_grads,
        h_prev: &h_prev,
        aux: &aux,
        tanh_c: &tanh_c,
        grad_out,
        dh_rec: &mut dh_rec,
        dh_next: &mut dh_next,
        dc: &mut dc,
    };
    let per = chunk_rows(batch);
    let chunks = whole.chunks(per);
    let par = parallel_steps(chunks.len(), per, g);
    chunks
        .into_par_iter()
        .for_each(|chunk| run_backward(chunk, w_hh, par));
    GateGrads {
        g: *g,
        input_side: acts,
        hidden_side: hidden_grads,
        h_prev,
    }
}

impl<E: GateFloat> GateGrads<E> {
    /// The gradients of the hidden side's pre-activations.
    fn hidden(&self) -> &[E] {
        if self.g.mode == RecurrentMode::Gru {
            &self.hidden_side
        } else {
            &self.input_side
        }
    }

    /// `grad_x (batch, steps, input) += dG W_ih`.
    pub(crate) fn add_input_grad(&self, w_ih: &[E], grad_x: &mut [E]) {
        let (m, n, k) = (self.g.batch * self.g.steps, self.g.input, self.g.width());
        matmul(
            m,
            n,
            k,
            MatMut::row_major(grad_x, n),
            true,
            Mat::row_major(&self.input_side, k),
            Mat::row_major(w_ih, n),
            parallel(m, n, k),
        );
    }

    /// `grad_w_ih (GATES * hidden, input) += dG^T x`, summed over every row at once.
    pub(crate) fn add_weight_ih_grad(&self, x: &[E], grad_w_ih: &mut [E]) {
        let (m, n, k) = (self.g.width(), self.g.input, self.g.batch * self.g.steps);
        matmul(
            m,
            n,
            k,
            MatMut::row_major(grad_w_ih, n),
            true,
            Mat::col_major(&self.input_side, m),
            Mat::row_major(x, n),
            parallel(m, n, k),
        );
    }

    /// `grad_w_hh (GATES * hidden, hidden) += dG_h^T h_prev`, summed over every row at once.
    pub(crate) fn add_weight_hh_grad(&self, grad_w_hh: &mut [E]) {
        let (m, n, k) = (self.g.width(), self.g.hidden, self.g.batch * self.g.steps);
        matmul(
            m,
            n,
            k,
            MatMut::row_major(grad_w_hh, n),
            true,
            Mat::col_major(self.hidden(), m),
            Mat::row_major(&self.h_prev, n),
            parallel(m, n, k),
        );
    }

    /// The gradients of `b_ih` and `b_hh`: the column sums of the pre-activation gradients,
    /// rows summed in order so the result is the same bits on every run. They are equal
    /// but for the GRU's `n` gate, so the other modes sum once.
    pub(crate) fn bias_grads(&self) -> [Vec<E>; 2] {
        let input = column_sums(&self.input_side, self.g.width());
        let hidden = if self.g.mode == RecurrentMode::Gru {
            column_sums(&self.hidden_side, self.g.width())
        } else {
            input.clone()
        };
        [input, hidden]
    }
}

/// The sum of the rows of `m`, rows of `width`, in row order.
fn column_sums<E: GateFloat>(m: &[E], width: usize) -> Vec<E> {
    let mut sums = vec![E::zero(); width];
    for row in m.chunks_exact(width.max(1)) {
        for (s, &v) in sums.iter_mut().zip(row) {
            *s = *s + v;
        }
    }
    sums
}
