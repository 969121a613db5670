//! One time step's elementwise pass over the batch rows, forward and backward: the views of
//! the sequence buffers it works on, their split into batch chunks that run on rayon's
//! threads, and the choice of the widest vector instructions the CPU has.
//!
//! The pass is elementwise per batch row, so every split computes the same bits; so does
//! every instruction set, since the compiler only widens IEEE adds, multiplies, divides and
//! min/max (it never fuses them).

use super::activation::GateFloat;
use super::gates::{self, GruGrad, HiddenSide, LstmGrad, LstmState};
use super::RecurrentMode;

/// The widest vector instructions this CPU has, among those the passes are compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Simd {
    /// The target's baseline (SSE2 on x86-64).
    Baseline,
    /// AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// AVX-512 (F, VL, BW, DQ) with AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Simd {
    /// Asks the CPU (the answer is cached by the standard library).
    pub(crate) fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
            if avx2
                && is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512dq")
            {
                return Simd::Avx512;
            }
            if avx2 {
                return Simd::Avx2;
            }
        }
        Simd::Baseline
    }
}

/// Defines `$name(simd, rows)`, which runs `$body_fn(rows)` compiled for `simd`.
macro_rules! dispatch {
    ($(#[$doc:meta])* $name:ident => $body_fn:ident($rows:ident: $ty:ident)) => {
        $(#[$doc])*
        pub(crate) fn $name<E: GateFloat>(simd: Simd, $rows: $ty<'_, E>) {
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
            fn avx512<E: GateFloat>($rows: $ty<'_, E>) {
                $body_fn($rows)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            fn avx2<E: GateFloat>($rows: $ty<'_, E>) {
                $body_fn($rows)
            }
            match simd {
                Simd::Baseline => $body_fn($rows),
                // SAFETY: `Simd::detect` found AVX-512 F/VL/BW/DQ, AVX2 and FMA on this CPU.
                #[cfg(target_arch = "x86_64")]
                Simd::Avx512 => unsafe { avx512($rows) },
                // SAFETY: `Simd::detect` found AVX2 and FMA on this CPU.
                #[cfg(target_arch = "x86_64")]
                Simd::Avx2 => unsafe { avx2($rows) },
            }
        }
    };
}

/// Splits `s`, a buffer of `row_len` elements per batch row (possibly empty), after `batch` rows.
fn split_rows<E>(s: &mut [E], batch: usize, row_len: usize) -> (&mut [E], &mut [E]) {
    s.split_at_mut((batch * row_len).min(s.len()))
}

/// Read-only [`split_rows`].
fn split_rows_ref<E>(s: &[E], batch: usize, row_len: usize) -> (&[E], &[E]) {
    s.split_at((batch * row_len).min(s.len()))
}

/// The sizes and the time step a pass works on.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StepShape {
    pub(crate) mode: RecurrentMode,
    pub(crate) steps: usize,
    pub(crate) hidden: usize,
    /// The time index of this step.
    pub(crate) t: usize,
    /// The time index of the step after it in the direction of travel, if any.
    pub(crate) next: Option<usize>,
}

impl StepShape {
    fn width(&self) -> usize {
        self.mode.gates() * self.hidden
    }

    /// Range of batch row `b`'s element at time `t` in a `(batch, steps, len)` buffer.
    fn at(&self, b: usize, t: usize, len: usize) -> core::ops::Range<usize> {
        let start = (b * self.steps + t) * len;
        start..start + len
    }

    /// Range of batch row `b` in a `(batch, len)` buffer.
    fn state(&self, b: usize, len: usize) -> core::ops::Range<usize> {
        b * len..(b + 1) * len
    }
}

/// The forward pass's buffers for a run of batch rows: `(batch, steps, len)` sequences and
/// `(batch, len)` states, all starting at the run's first row.
pub(crate) struct ForwardRows<'a, E> {
    pub(crate) shape: StepShape,
    pub(crate) bias_ih: &'a [E],
    /// `(batch, steps, width)`: `x W_ih^T`, which becomes the gate activations at `t`.
    pub(crate) acts: &'a mut [E],
    /// `(batch, width)`: `h W_hh^T + b_hh` of this step.
    pub(crate) hidden_side: &'a [E],
    /// `(batch, steps, hidden)`: the output; receives `h_t` at `t`.
    pub(crate) out: &'a mut [E],
    /// `(batch, steps, hidden)`: each step's `h_{t-1}`; receives `h_t` at `next`.
    pub(crate) h_prev: &'a mut [E],
    /// LSTM: `c_{t-1}`, receives `c_t` at `next`; GRU: receives `h W_hn^T + b_hn` at `t`.
    pub(crate) aux: &'a mut [E],
    /// LSTM: receives `tanh(c_t)` at `t`.
    pub(crate) tanh_c: &'a mut [E],
    /// LSTM, `(batch, hidden)`: receives `c_t`.
    pub(crate) c: &'a mut [E],
}

impl<E> ForwardRows<'_, E> {
    fn batch(&self) -> usize {
        self.hidden_side.len() / self.shape.width().max(1)
    }

    fn split(self, at: usize) -> (Self, Self) {
        let s = self.shape;
        let (seq_w, seq_h) = (s.steps * s.width(), s.steps * s.hidden);
        let (acts, acts2) = split_rows(self.acts, at, seq_w);
        let (hs, hs2) = split_rows_ref(self.hidden_side, at, s.width());
        let (out, out2) = split_rows(self.out, at, seq_h);
        let (h_prev, h_prev2) = split_rows(self.h_prev, at, seq_h);
        let (aux, aux2) = split_rows(self.aux, at, seq_h);
        let (tanh_c, tanh_c2) = split_rows(self.tanh_c, at, seq_h);
        let (c, c2) = split_rows(self.c, at, s.hidden);
        let bias_ih = self.bias_ih;
        (
            ForwardRows {
                shape: s,
                bias_ih,
                acts,
                hidden_side: hs,
                out,
                h_prev,
                aux,
                tanh_c,
                c,
            },
            ForwardRows {
                shape: s,
                bias_ih,
                acts: acts2,
                hidden_side: hs2,
                out: out2,
                h_prev: h_prev2,
                aux: aux2,
                tanh_c: tanh_c2,
                c: c2,
            },
        )
    }
}

/// The gate equations of one step for every row of `r`, then `h` (and `c`) handed to the
/// next step's slot.
#[inline(always)]
fn forward_rows<E: GateFloat>(r: ForwardRows<'_, E>) {
    let s = r.shape;
    let (h, w) = (s.hidden, s.width());
    for b in 0..r.batch() {
        let here = s.at(b, s.t, h);
        let gate_row = &mut r.acts[s.at(b, s.t, w)];
        let side = HiddenSide {
            bias_ih: r.bias_ih,
            product: &r.hidden_side[s.state(b, w)],
        };
        let out = &mut r.out[here.clone()];
        match s.mode {
            RecurrentMode::Tanh => gates::plain_forward(false, gate_row, side, out),
            RecurrentMode::Relu => gates::plain_forward(true, gate_row, side, out),
            RecurrentMode::Lstm => gates::lstm_forward(
                gate_row,
                side,
                LstmState {
                    c_prev: &r.aux[here.clone()],
                    c: &mut r.c[s.state(b, h)],
                    tanh_c: &mut r.tanh_c[here.clone()],
                    h: out,
                },
            ),
            RecurrentMode::Gru => {
                let h_prev = &r.h_prev[here.clone()];
                gates::gru_forward(gate_row, side, h_prev, &mut r.aux[here.clone()], out)
            }
        }
        if let Some(next) = s.next {
            let slot = s.at(b, next, h);
            r.h_prev[slot.clone()].copy_from_slice(&r.out[here]);
            if s.mode == RecurrentMode::Lstm {
                r.aux[slot].copy_from_slice(&r.c[s.state(b, h)]);
            }
        }
    }
}

dispatch!(
    /// [`forward_rows`] compiled for `simd`.
    forward_rows_simd => forward_rows(rows: ForwardRows)
);

/// The backward pass's buffers for a run of batch rows, laid out as [`ForwardRows`].
pub(crate) struct BackwardRows<'a, E> {
    pub(crate) shape: StepShape,
    /// `(batch, steps, width)`: the activations, which become the gradients of the input
    /// side's pre-activations at `t`.
    pub(crate) acts: &'a mut [E],
    /// GRU, `(batch, steps, width)`: receives the hidden side's pre-activation gradients.
    pub(crate) hidden_grads: &'a mut [E],
    /// `(batch, steps, hidden)` each, as the forward pass left them.
    pub(crate) h_prev: &'a [E],
    pub(crate) aux: &'a [E],
    pub(crate) tanh_c: &'a [E],
    /// `(batch, steps, hidden)`: the gradient of the output.
    pub(crate) grad_out: &'a [E],
    /// `(batch, hidden)`: `h_t`'s gradient through step `t + 1`'s matmul.
    pub(crate) dh_rec: &'a [E],
    /// `(batch, hidden)`: receives the GRU's direct part of `h_{t-1}`'s gradient (scratch
    /// for the other modes).
    pub(crate) dh_next: &'a mut [E],
    /// LSTM, `(batch, hidden)`: `c_t`'s gradient, which becomes `c_{t-1}`'s.
    pub(crate) dc: &'a mut [E],
}

impl<E> BackwardRows<'_, E> {
    fn batch(&self) -> usize {
        self.dh_rec.len() / self.shape.hidden.max(1)
    }

    fn split(self, at: usize) -> (Self, Self) {
        let s = self.shape;
        let (seq_w, seq_h) = (s.steps * s.width(), s.steps * s.hidden);
        let (acts, acts2) = split_rows(self.acts, at, seq_w);
        let (hg, hg2) = split_rows(self.hidden_grads, at, seq_w);
        let (h_prev, h_prev2) = split_rows_ref(self.h_prev, at, seq_h);
        let (aux, aux2) = split_rows_ref(self.aux, at, seq_h);
        let (tanh_c, tanh_c2) = split_rows_ref(self.tanh_c, at, seq_h);
        let (grad_out, grad_out2) = split_rows_ref(self.grad_out, at, seq_h);
        let (dh_rec, dh_rec2) = split_rows_ref(self.dh_rec, at, s.hidden);
        let (dh_next, dh_next2) = split_rows(self.dh_next, at, s.hidden);
        let (dc, dc2) = split_rows(self.dc, at, s.hidden);
        (
            BackwardRows {
                shape: s,
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
            BackwardRows {
                shape: s,
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

/// The gate derivatives of one step for every row of `r`.
#[inline(always)]
fn backward_rows<E: GateFloat>(r: BackwardRows<'_, E>) {
    let s = r.shape;
    let (h, w) = (s.hidden, s.width());
    for b in 0..r.batch() {
        let here = s.at(b, s.t, h);
        let state = s.state(b, h);
        // dh = the output's gradient plus what step t + 1 sent back (zeros at the last step).
        let dh = &mut r.dh_next[state.clone()];
        for ((d, &y), &rec) in dh
            .iter_mut()
            .zip(&r.grad_out[here.clone()])
            .zip(&r.dh_rec[state.clone()])
        {
            *d = y + rec;
        }
        let gate_row = &mut r.acts[s.at(b, s.t, w)];
        match s.mode {
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
                    hidden_side: &mut r.hidden_grads[s.at(b, s.t, w)],
                },
            ),
        }
    }
}

dispatch!(
    /// [`backward_rows`] compiled for `simd`.
    backward_rows_simd => backward_rows(rows: BackwardRows)
);

/// Gate elements per rayon task at least: a task costs a few microseconds, about what this
/// many elements of the pass take.
const ELEMENTS_PER_TASK: usize = 8 * 1024;

/// How many batch rows each task of a step's pass takes: all of them when the step is
/// small, else an even share for each of rayon's threads.
pub(crate) fn task_rows(batch: usize, width: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    let by_size = (batch * width).div_ceil(ELEMENTS_PER_TASK).max(1);
    batch.div_ceil(threads.min(by_size)).max(1)
}

/// Runs the forward pass of one step on `rows`, `per_task` batch rows per rayon task.
pub(crate) fn forward_step<E: GateFloat>(simd: Simd, rows: ForwardRows<'_, E>, per_task: usize) {
    if rows.batch() <= per_task {
        forward_rows_simd(simd, rows);
    } else {
        let (a, b) = rows.split(per_task);
        rayon::join(
            || forward_rows_simd(simd, a),
            || forward_step(simd, b, per_task),
        );
    }
}

/// Runs the backward pass of one step on `rows`, `per_task` batch rows per rayon task.
pub(crate) fn backward_step<E: GateFloat>(simd: Simd, rows: BackwardRows<'_, E>, per_task: usize) {
    if rows.batch() <= per_task {
        backward_rows_simd(simd, rows);
    } else {
        let (a, b) = rows.split(per_task);
        rayon::join(
            || backward_rows_simd(simd, a),
            || backward_step(simd, b, per_task),
        );
    }
}
