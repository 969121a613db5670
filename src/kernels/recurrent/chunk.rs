//! The time loop over one chunk of batch rows, forward and backward: per step one GEMM
//! against the recurrent weights and one elementwise pass of the gate equations.
//!
//! Batch rows never interact, so the kernel cuts the batch into chunks that run on rayon's
//! threads from the first step to the last without meeting: no fork and join per step. How
//! the batch is cut depends on its size alone, so every run sums in the same order.

use super::activation::GateFloat;
use super::cpu::RecurrentGeometry;
use super::gates::{self, GruGrad, HiddenSide, LstmGrad, LstmState};
use super::RecurrentMode;
use crate::kernels::gemm::{matmul, Mat, MatMut};
use crate::kernels::simd::vectorized;

/// Batch rows per chunk at most: a chunk's per-step GEMM still reuses each weight it loads
/// for this many rows.
const CHUNK_ROWS: usize = 16;

/// Batch rows per chunk for a batch of `batch`: as even a cut as `CHUNK_ROWS` allows.
pub(crate) fn chunk_rows(batch: usize) -> usize {
    let chunks = batch.div_ceil(CHUNK_ROWS).max(1);
    batch.div_ceil(chunks).max(1)
}

/// Splits `s`, a buffer of `row_len` elements per batch row (possibly empty), after `batch` rows.
fn split_rows<E>(s: &mut [E], batch: usize, row_len: usize) -> (&mut [E], &mut [E]) {
    s.split_at_mut((batch * row_len).min(s.len()))
}

/// Read-only [`split_rows`].
fn split_rows_ref<E>(s: &[E], batch: usize, row_len: usize) -> (&[E], &[E]) {
    s.split_at((batch * row_len).min(s.len()))
}

/// Buffers that cut between batch rows.
pub(crate) trait Rows: Sized {
    /// The batch rows they hold.
    fn batch(&self) -> usize;
    /// The first `at` rows and the rest.
    fn split(self, at: usize) -> (Self, Self);

    /// Cut into runs of `per` rows (the last may be shorter).
    fn chunks(self, per: usize) -> Vec<Self> {
        let mut out = Vec::new();
        let mut rest = self;
        while rest.batch() > per {
            let (head, tail) = rest.split(per);
            out.push(head);
            rest = tail;
        }
        out.push(rest);
        out
    }
}

/// The geometry of the first `at` rows of `g`, and of the rest.
fn split_geometry(g: RecurrentGeometry, at: usize) -> (RecurrentGeometry, RecurrentGeometry) {
    let head = RecurrentGeometry { batch: at, ..g };
    let tail = RecurrentGeometry {
        batch: g.batch - at,
        ..g
    };
    (head, tail)
}

/// The recurrent weights and the biases a step reads.
#[derive(Clone, Copy)]
pub(crate) struct StepWeights<'a, E> {
    /// Forward: `W_hh^T`, `(hidden, width)`; backward: `W_hh`, `(width, hidden)`.
    pub(crate) hh: &'a [E],
    pub(crate) bias_ih: &'a [E],
    pub(crate) bias_hh: &'a [E],
}

/// A chunk's forward buffers: `(batch, steps, len)` sequences and `(batch, len)` states.
pub(crate) struct ForwardChunk<'a, E> {
    /// The geometry with this chunk's batch.
    pub(crate) g: RecurrentGeometry,
    /// `(batch, steps, width)`: `x W_ih^T`, which becomes the gate activations.
    pub(crate) acts: &'a mut [E],
    /// `(batch, steps, hidden)`: the output, `h_t` at `t`.
    pub(crate) out: &'a mut [E],
    /// `(batch, steps, hidden)`: each step's `h_{t-1}`, the initial state already in place.
    pub(crate) h_prev: &'a mut [E],
    /// LSTM: `c_{t-1}` of each step, the initial one in place; GRU: receives
    /// `h W_hn^T + b_hn`; else empty.
    pub(crate) aux: &'a mut [E],
    /// LSTM: `tanh(c_t)`; else empty.
    pub(crate) tanh_c: &'a mut [E],
    /// LSTM, `(batch, hidden)`: `c_t` of the latest step; else empty.
    pub(crate) c: &'a mut [E],
    /// `(batch, width)`: scratch for `h W_hh^T`, zeros on entry.
    pub(crate) hidden_side: &'a mut [E],
}

impl<E> Rows for ForwardChunk<'_, E> {
    fn batch(&self) -> usize {
        self.g.batch
    }

    fn split(self, at: usize) -> (Self, Self) {
        let g = self.g;
        let (seq_w, seq_h) = (g.steps * g.width(), g.steps * g.hidden);
        let (ga, gb) = split_geometry(g, at);
        let (acts, acts2) = split_rows(self.acts, at, seq_w);
        let (out, out2) = split_rows(self.out, at, seq_h);
        let (h_prev, h_prev2) = split_rows(self.h_prev, at, seq_h);
        let (aux, aux2) = split_rows(self.aux, at, seq_h);
        let (tanh_c, tanh_c2) = split_rows(self.tanh_c, at, seq_h);
        let (c, c2) = split_rows(self.c, at, g.hidden);
        let (hs, hs2) = split_rows(self.hidden_side, at, g.width());
        (
            ForwardChunk {
                g: ga,
                acts,
                out,
                h_prev,
                aux,
                tanh_c,
                c,
                hidden_side: hs,
            },
            ForwardChunk {
                g: gb,
                acts: acts2,
                out: out2,
                h_prev: h_prev2,
                aux: aux2,
                tanh_c: tanh_c2,
                c: c2,
                hidden_side: hs2,
            },
        )
    }
}

/// Runs every step of `c`; `has_h0` says whether the first step's `h` may be non-zero.
/// `par` lets the per-step GEMM use gemm's threads.
pub(crate) fn run_forward<E: GateFloat>(
    c: ForwardChunk<'_, E>,
    w: StepWeights<'_, E>,
    has_h0: bool,
    par: bool,
) {
    let g = c.g;
    for n in 0..g.steps {
        // With no initial state the first step's h is zero, and so is its product.
        if n > 0 || has_h0 {
            matmul(
                g.batch,
                g.width(),
                g.hidden,
                MatMut::row_major(&mut *c.hidden_side, g.width()),
                false,
                g.at_time(c.h_prev, g.time(n), g.hidden),
                Mat::row_major(w.hh, g.width()),
                par,
            );
        }
        let rows = ForwardRows {
            g,
            n,
            bias_ih: w.bias_ih,
            bias_hh: w.bias_hh,
            acts: &mut *c.acts,
            hidden_side: &*c.hidden_side,
            out: &mut *c.out,
            h_prev: &mut *c.h_prev,
            aux: &mut *c.aux,
            tanh_c: &mut *c.tanh_c,
            c: &mut *c.c,
        };
        vectorized!(forward_rows(rows));
    }
}

/// One step's view of a [`ForwardChunk`].
pub(crate) struct ForwardRows<'a, E> {
    g: RecurrentGeometry,
    /// The step, counted in the direction of travel.
    n: usize,
    bias_ih: &'a [E],
    bias_hh: &'a [E],
    acts: &'a mut [E],
    hidden_side: &'a [E],
    out: &'a mut [E],
    h_prev: &'a mut [E],
    aux: &'a mut [E],
    tanh_c: &'a mut [E],
    c: &'a mut [E],
}

/// The gate equations of one step for every row, then `h` (and `c`) handed to the next
/// step's slot.
#[inline(always)]
fn forward_rows<E: GateFloat>(r: ForwardRows<'_, E>) {
    let g = r.g;
    let (h, w, t) = (g.hidden, g.width(), g.time(r.n));
    for b in 0..g.batch {
        let here = g.row(b, t, h);
        let gate_row = &mut r.acts[g.row(b, t, w)];
        let side = HiddenSide {
            bias_ih: r.bias_ih,
            bias_hh: r.bias_hh,
            product: &r.hidden_side[b * w..(b + 1) * w],
        };
        let out = &mut r.out[here.clone()];
        match g.mode {
            RecurrentMode::Tanh => gates::plain_forward(false, gate_row, side, out),
            RecurrentMode::Relu => gates::plain_forward(true, gate_row, side, out),
            RecurrentMode::Lstm => gates::lstm_forward(
                gate_row,
                side,
                LstmState {
                    c_prev: &r.aux[here.clone()],
                    c: &mut r.c[b * h..(b + 1) * h],
                    tanh_c: &mut r.tanh_c[here.clone()],
                    h: out,
                },
            ),
            RecurrentMode::Gru => {
                let h_prev = &r.h_prev[here.clone()];
                gates::gru_forward(gate_row, side, h_prev, &mut r.aux[here.clone()], out)
            }
        }
        if r.n + 1 < g.steps {
            let slot = g.row(b, g.time(r.n + 1), h);
            r.h_prev[slot.clone()].copy_from_slice(&r.out[here]);
            if g.mode == RecurrentMode::Lstm {
                r.aux[slot].copy_from_slice(&r.c[b * h..(b + 1) * h]);
            }
        }
    }
}

/// A chunk's backward buffers, laid out as [`ForwardChunk`]'s.
pub(crate) struct BackwardChunk<'a, E> {
    pub(crate) g: RecurrentGeometry,
    /// `(batch, steps, width)`: the activations, which become the gradients of the input
    /// side's pre-activations.
    pub(crate) acts: &'a mut [E],
    /// GRU, `(batch, steps, width)`: receives the hidden side's pre-activation gradients.
    pub(crate) hidden_grads: &'a mut [E],
    /// `(batch, steps, hidden)` each, as the forward pass left them.
    pub(crate) h_prev: &'a [E],
    pub(crate) aux: &'a [E],
    pub(crate) tanh_c: &'a [E],
    /// `(batch, steps, hidden)`: the gradient of the output.
    pub(crate) grad_out: &'a [E],
    /// `(batch, hidden)` scratch: `h_t`'s gradient through step `t + 1`'s matmul (zeros on
    /// entry), and the buffer the next one is written to.
    pub(crate) dh_rec: &'a mut [E],
    pub(crate) dh_next: &'a mut [E],
    /// LSTM, `(batch, hidden)`: `c_t`'s gradient, zeros on entry.
    pub(crate) dc: &'a mut [E],
}

impl<E> Rows for BackwardChunk<'_, E> {
    fn batch(&self) -> usize {
        self.g.batch
    }

    fn split(self, at: usize) -> (Self, Self) {
        let g = self.g;
        let (seq_w, seq_h) = (g.steps * g.width(), g.steps * g.hidden);
        let (ga, gb) = split_geometry(g, at);
        let (acts, acts2) = split_rows(self.acts, at, seq_w);
        let (hg, hg2) = split_rows(self.hidden_grads, at, seq_w);
        let (h_prev, h_prev2) = split_rows_ref(self.h_prev, at, seq_h);
        let (aux, aux2) = split_rows_ref(self.aux, at, seq_h);
        let (tanh_c, tanh_c2) = split_rows_ref(self.tanh_c, at, seq_h);
        let (grad_out, grad_out2) = split_rows_ref(self.grad_out, at, seq_h);
        let (dh_rec, dh_rec2) = split_rows(self.dh_rec, at, g.hidden);
        let (dh_next, dh_next2) = split_rows(self.dh_next, at, g.hidden);
        let (dc, dc2) = split_rows(self.dc, at, g.hidden);
        (
            BackwardChunk {
                g: ga,
                acts,
                hidden_grads: hg,
                h_prev,
                aux,
                tanh_c,
                grad_out,
                dh_rec,
                dh_next,
                dc,
            },
            BackwardChunk {
                g: gb,
                acts: acts2,
                hidden_grads: hg2,
                h_prev: h_prev2,
                aux: aux2,
                tanh_c: tanh_c2,
                grad_out: grad_out2,
                dh_rec: dh_rec2,
                dh_next: dh_next2,
                dc: dc2,
            },
        )
    }
}

/// Backpropagates through every step of `c`, from the last one taken; `w_hh` is
/// `(width, hidden)`. `par` lets the per-step GEMM use gemm's threads.
pub(crate) fn run_backward<E: GateFloat>(mut c: BackwardChunk<'_, E>, w_hh: &[E], par: bool) {
    let g = c.g;
    let gru = g.mode == RecurrentMode::Gru;
    for n in (0..g.steps).rev() {
        let rows = BackwardRows {
            g,
            n,
            acts: &mut *c.acts,
            hidden_grads: &mut *c.hidden_grads,
            h_prev: c.h_prev,
            aux: c.aux,
            tanh_c: c.tanh_c,
            grad_out: c.grad_out,
            dh_rec: &*c.dh_rec,
            dh_next: &mut *c.dh_next,
            dc: &mut *c.dc,
        };
        vectorized!(backward_rows(rows));
        if n > 0 {
            // The GRU's dh_next holds the direct path dh * z; the others' is scratch.
            let grads = if gru { &*c.hidden_grads } else { &*c.acts };
            matmul(
                g.batch,
                g.hidden,
                g.width(),
                MatMut::row_major(&mut *c.dh_next, g.hidden),
                gru,
                g.at_time(grads, g.time(n), g.width()),
                Mat::row_major(w_hh, g.hidden),
                par,
            );
            core::mem::swap(&mut c.dh_rec, &mut c.dh_next);
        }
    }
}

/// One step's view of a [`BackwardChunk`].
pub(crate) struct BackwardRows<'a, E> {
    g: RecurrentGeometry,
    n: usize,
    acts: &'a mut [E],
    hidden_grads: &'a mut [E],
    h_prev: &'a [E],
    aux: &'a [E],
    tanh_c: &'a [E],
    grad_out: &'a [E],
    dh_rec: &'a [E],
    dh_next: &'a mut [E],
    dc: &'a mut [E],
}

/// The gate derivatives of one step for every row.
#[inline(always)]
fn backward_rows<E: GateFloat>(r: BackwardRows<'_, E>) {
    let g = r.g;
    let (h, w, t) = (g.hidden, g.width(), g.time(r.n));
    for b in 0..g.batch {
        let here = g.row(b, t, h);
        let state = b * h..(b + 1) * h;
        // dh = the output's gradient plus what step t + 1 sent back (zeros at the last step).
        let dh = &mut r.dh_next[state.clone()];
        let (y, rec) = (&r.grad_out[here.clone()], &r.dh_rec[state.clone()]);
        for ((d, &y), &rec) in dh.iter_mut().zip(y).zip(rec) {
            *d = y + rec;
        }
        let gate_row = &mut r.acts[g.row(b, t, w)];
        match g.mode {
            RecurrentMode::Tanh => gates::plain_backward(false, gate_row, dh),
            RecurrentMode::Relu => gates::plain_backward(true, gate_row, dh),
            RecurrentMode::Lstm => gates::lstm_backward(
                gate_row,
                LstmGrad {
                    c_prev: &r.aux[here.clone()],
                    tanh_c: &r.tanh_c[here],
                    dh,
                    dc: &mut r.dc[state],
                },
            ),
            RecurrentMode::Gru => gates::gru_backward(
                gate_row,
                GruGrad {
                    h_prev: &r.h_prev[here.clone()],
                    hidden_n: &r.aux[here],
                    dh,
                    hidden_side: &mut r.hidden_grads[g.row(b, t, w)],
                },
            ),
        }
    }
}
