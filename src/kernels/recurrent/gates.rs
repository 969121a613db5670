//! The recurrent kernel's elementwise work for one batch row of one time step: the gate
//! equations forward, and their derivatives backward, fused into a few passes over the row.
//!
//! A row of gate values is `GATES * hidden` long, gates in PyTorch's order (`i, f, g, o` for
//! the LSTM, `r, z, n` for the GRU). Each function first checks its slices' lengths, so the
//! loops index without bounds checks and vectorise; all are `inline(always)` so that they
//! compile into the callers that `chunk.rs` builds for AVX2 and AVX-512.

use super::activation::GateFloat;

/// Applies `f` to every element of `v` in place.
#[inline(always)]
fn map<E: GateFloat>(v: &mut [E], f: impl Fn(E) -> E) {
    for x in v {
        *x = f(*x);
    }
}

/// What a step adds to a gate row `x W_ih^T`: the input bias and `h W_hh^T + b_hh`.
#[derive(Clone, Copy)]
pub(crate) struct HiddenSide<'a, E> {
    /// `b_ih`, one gate row.
    pub(crate) bias_ih: &'a [E],
    /// `b_hh`, one gate row.
    pub(crate) bias_hh: &'a [E],
    /// `h W_hh^T`, one gate row.
    pub(crate) product: &'a [E],
}

/// `row[k] = (row[k] + b_ih[k]) + (product[k] + b_hh[k])`: PyTorch's
/// `(x W_ih^T + b_ih) + (h W_hh^T + b_hh)`, summed in that order as the composed cells do.
#[inline(always)]
fn add_into<E: GateFloat>(row: &mut [E], bias_ih: &[E], product: &[E], bias_hh: &[E]) {
    let n = row.len();
    assert!(bias_ih.len() == n && product.len() == n && bias_hh.len() == n);
    for k in 0..n {
        row[k] = (row[k] + bias_ih[k]) + (product[k] + bias_hh[k]);
    }
}

/// Splits a gate row into its `N` gates.
#[inline(always)]
fn gates_mut<E, const N: usize>(row: &mut [E], hidden: usize) -> [&mut [E]; N] {
    assert_eq!(row.len(), N * hidden, "gate row of the wrong length");
    let mut rest = row;
    core::array::from_fn(|_| {
        let (gate, tail) = core::mem::take(&mut rest).split_at_mut(hidden);
        rest = tail;
        gate
    })
}

/// Splits a read-only gate row into its `N` gates.
#[inline(always)]
fn gates<E, const N: usize>(row: &[E], hidden: usize) -> [&[E]; N] {
    assert_eq!(row.len(), N * hidden, "gate row of the wrong length");
    core::array::from_fn(|k| &row[k * hidden..(k + 1) * hidden])
}

/// Plain RNN forward: `gates` holds `x W_ih^T` and becomes `h`, which `h` receives too.
#[inline(always)]
pub(crate) fn plain_forward<E: GateFloat>(
    relu: bool,
    gates: &mut [E],
    side: HiddenSide<'_, E>,
    h: &mut [E],
) {
    add_into(gates, side.bias_ih, side.product, side.bias_hh);
    if relu {
        map(gates, |x| x.max(E::zero()));
    } else {
        map(gates, E::tanh_gate);
    }
    h.copy_from_slice(gates);
}

/// Plain RNN backward: `gates` holds `h` and becomes the pre-activation gradient, given the
/// gradient `dh` of `h`.
#[inline(always)]
pub(crate) fn plain_backward<E: GateFloat>(relu: bool, gates: &mut [E], dh: &[E]) {
    assert_eq!(gates.len(), dh.len());
    for (g, &d) in gates.iter_mut().zip(dh) {
        let h = *g;
        *g = if relu {
            // dfdx's (and PyTorch's) ReLU derivative: 1 above 0, else 0.
            if h > E::zero() {
                d
            } else {
                E::zero()
            }
        } else {
            d * (E::one() - h * h)
        };
    }
}

/// What the LSTM's step reads and writes beside its gate row, each `hidden` long.
pub(crate) struct LstmState<'a, E> {
    /// `c_{t-1}`.
    pub(crate) c_prev: &'a [E],
    /// Receives `c_t`.
    pub(crate) c: &'a mut [E],
    /// Receives `tanh(c_t)`, kept for the backward.
    pub(crate) tanh_c: &'a mut [E],
    /// Receives `h_t`.
    pub(crate) h: &'a mut [E],
}

/// LSTM forward: `gates` holds `x W_ih^T` for `i, f, g, o` and becomes their activations.
#[inline(always)]
pub(crate) fn lstm_forward<E: GateFloat>(
    gates: &mut [E],
    side: HiddenSide<'_, E>,
    s: LstmState<'_, E>,
) {
    let hidden = s.h.len();
    add_into(gates, side.bias_ih, side.product, side.bias_hh);
    let [i, f, g, o] = gates_mut::<E, 4>(gates, hidden);
    map(i, E::sigmoid);
    map(f, E::sigmoid);
    map(g, E::tanh_gate);
    map(o, E::sigmoid);
    assert!(s.c_prev.len() == hidden && s.c.len() == hidden && s.tanh_c.len() == hidden);
    for j in 0..hidden {
        let c = f[j] * s.c_prev[j] + i[j] * g[j];
        s.c[j] = c;
        s.tanh_c[j] = c.tanh_gate();
    }
    for ((h, &o), &tc) in s.h.iter_mut().zip(o.iter()).zip(s.tanh_c.iter()) {
        *h = o * tc;
    }
}

/// What the LSTM's backward reads beside its gate row, each `hidden` long.
pub(crate) struct LstmGrad<'a, E> {
    /// `c_{t-1}`.
    pub(crate) c_prev: &'a [E],
    /// `tanh(c_t)`.
    pub(crate) tanh_c: &'a [E],
    /// The gradient of `h_t`.
    pub(crate) dh: &'a [E],
    /// The gradient of `c_t` from the later step; becomes that of `c_{t-1}`.
    pub(crate) dc: &'a mut [E],
}

/// LSTM backward: `gates` holds the activations of `i, f, g, o` and becomes the gradients of
/// their pre-activations.
#[inline(always)]
pub(crate) fn lstm_backward<E: GateFloat>(gates: &mut [E], s: LstmGrad<'_, E>) {
    let hidden = s.dh.len();
    let [i, f, g, o] = gates_mut::<E, 4>(gates, hidden);
    assert!(s.c_prev.len() == hidden && s.tanh_c.len() == hidden && s.dc.len() == hidden);
    let one = E::one();
    for j in 0..hidden {
        let (ij, fj, gj, oj, tc) = (i[j], f[j], g[j], o[j], s.tanh_c[j]);
        let dh = s.dh[j];
        let dc = dh * oj * (one - tc * tc) + s.dc[j];
        s.dc[j] = dc * fj;
        i[j] = dc * gj * ij * (one - ij);
        f[j] = dc * s.c_prev[j] * fj * (one - fj);
        g[j] = dc * ij * (one - gj * gj);
        o[j] = dh * tc * oj * (one - oj);
    }
}

/// GRU forward: `gates` holds `x W_ih^T` for `r, z, n` and becomes their activations;
/// the `n` part of `h W_hh^T + b_hh` is kept in `hidden_n` for the backward.
/// `h = n + z * (h_prev - n)`, which is PyTorch's `(1 - z) * n + z * h_prev`.
#[inline(always)]
pub(crate) fn gru_forward<E: GateFloat>(
    gates: &mut [E],
    side: HiddenSide<'_, E>,
    h_prev: &[E],
    hidden_n: &mut [E],
    h: &mut [E],
) {
    let hidden = h.len();
    let [r, z, n] = gates_mut::<E, 3>(gates, hidden);
    let [xr, xz, xn] = self::gates::<E, 3>(side.bias_ih, hidden);
    let [pr, pz, pn] = self::gates::<E, 3>(side.product, hidden);
    let [hr, hz, hn] = self::gates::<E, 3>(side.bias_hh, hidden);
    add_into(r, xr, pr, hr);
    add_into(z, xz, pz, hz);
    map(r, E::sigmoid);
    map(z, E::sigmoid);
    assert!(h_prev.len() == hidden && hidden_n.len() == hidden && xn.len() == hidden);
    assert!(pn.len() == hidden && hn.len() == hidden);
    for j in 0..hidden {
        let from_hidden = pn[j] + hn[j];
        hidden_n[j] = from_hidden;
        n[j] = (n[j] + xn[j]) + r[j] * from_hidden;
    }
    map(n, E::tanh_gate);
    for j in 0..hidden {
        h[j] = n[j] + z[j] * (h_prev[j] - n[j]);
    }
}

/// What the GRU's backward reads and writes beside its gate row, each `hidden` long.
pub(crate) struct GruGrad<'a, E> {
    /// `h_{t-1}`.
    pub(crate) h_prev: &'a [E],
    /// The `n` part of `h W_hh^T + b_hh`.
    pub(crate) hidden_n: &'a [E],
    /// The gradient of `h_t`; becomes the part of `h_{t-1}`'s gradient that skips the
    /// matmul, `dh * z`.
    pub(crate) dh: &'a mut [E],
    /// Receives the gradient of the hidden side's pre-activations (`3 * hidden`).
    pub(crate) hidden_side: &'a mut [E],
}

/// GRU backward: `gates` holds the activations of `r, z, n` and becomes the gradients of the
/// input side's pre-activations, which differ from the hidden side's in the `n` gate.
#[inline(always)]
pub(crate) fn gru_backward<E: GateFloat>(gates: &mut [E], s: GruGrad<'_, E>) {
    let hidden = s.dh.len();
    let [r, z, n] = gates_mut::<E, 3>(gates, hidden);
    let [hr, hz, hn] = gates_mut::<E, 3>(s.hidden_side, hidden);
    assert!(s.h_prev.len() == hidden && s.hidden_n.len() == hidden);
    let one = E::one();
    for j in 0..hidden {
        let (rj, zj, nj, dh) = (r[j], z[j], n[j], s.dh[j]);
        let dn = dh * (one - zj) * (one - nj * nj);
        let dz = dh * (s.h_prev[j] - nj) * zj * (one - zj);
        let dr = dn * s.hidden_n[j] * rj * (one - rj);
        s.dh[j] = dh * zj;
        r[j] = dr;
        z[j] = dz;
        n[j] = dn;
        hr[j] = dr;
        hz[j] = dz;
        hn[j] = dn * rj;
    }
}
