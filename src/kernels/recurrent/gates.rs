//! The recurrent kernel's elementwise work for one batch row of one time step: the gate
//! equations forward, and their derivatives backward, fused into a few passes over the row.
//!
//! A row of gate values is `GATES * hidden` long, gates in PyTorch's order (`i, f, g, o` for
//! the LSTM, `r, z, n` for the GRU). Every loop that reads or writes several slices is a
//! function of its own that takes them as parameters: the compiler then knows that the
//! `&mut` ones alias nothing and vectorises without run-time overlap checks (which it gives
//! up on past a few pointers), and reslicing them to one length removes the bounds checks.
//! All are `inline(always)` so that they compile into the callers that `chunk.rs` builds for
//! AVX2 and AVX-512.

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
    cell_update(i, f, g, o, s.c_prev, s.c, s.tanh_c, s.h);
}

/// `c = f * c_prev + i * g`, `h = o * tanh(c)`, one unit at a time.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn cell_update<E: GateFloat>(
    i: &[E],
    f: &[E],
    g: &[E],
    o: &[E],
    c_prev: &[E],
    c: &mut [E],
    tanh_c: &mut [E],
    h: &mut [E],
) {
    let n = h.len();
    let (i, f, g, o, c_prev) = (&i[..n], &f[..n], &g[..n], &o[..n], &c_prev[..n]);
    let (c, tanh_c) = (&mut c[..n], &mut tanh_c[..n]);
    for j in 0..n {
        let cj = f[j] * c_prev[j] + i[j] * g[j];
        let tc = cj.tanh_gate();
        c[j] = cj;
        tanh_c[j] = tc;
        h[j] = o[j] * tc;
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
    lstm_derivatives(i, f, g, o, s.c_prev, s.tanh_c, s.dh, s.dc);
}

/// The LSTM's derivatives, one unit at a time: the gates' activations in, the gradients of
/// their pre-activations out.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn lstm_derivatives<E: GateFloat>(
    i: &mut [E],
    f: &mut [E],
    g: &mut [E],
    o: &mut [E],
    c_prev: &[E],
    tanh_c: &[E],
    dh: &[E],
    dc: &mut [E],
) {
    let n = dh.len();
    let (i, f, g, o) = (&mut i[..n], &mut f[..n], &mut g[..n], &mut o[..n]);
    let (c_prev, tanh_c, dc) = (&c_prev[..n], &tanh_c[..n], &mut dc[..n]);
    let one = E::one();
    for j in 0..n {
        let (ij, fj, gj, oj, tc) = (i[j], f[j], g[j], o[j], tanh_c[j]);
        let dcj = dh[j] * oj * (one - tc * tc) + dc[j];
        dc[j] = dcj * fj;
        i[j] = dcj * gj * ij * (one - ij);
        f[j] = dcj * c_prev[j] * fj * (one - fj);
        g[j] = dcj * ij * (one - gj * gj);
        o[j] = dh[j] * tc * oj * (one - oj);
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
    candidate(n, xn, r, pn, hn, hidden_n);
    map(n, E::tanh_gate);
    blend(h, n, z, h_prev);
}

/// `n = (x W_in^T + b_in) + r * (h W_hn^T + b_hn)` before its tanh, keeping the hidden part.
#[inline(always)]
fn candidate<E: GateFloat>(
    n: &mut [E],
    bias_in: &[E],
    r: &[E],
    product: &[E],
    bias_hn: &[E],
    hidden_n: &mut [E],
) {
    let len = n.len();
    let (bias_in, r, product) = (&bias_in[..len], &r[..len], &product[..len]);
    let (bias_hn, hidden_n) = (&bias_hn[..len], &mut hidden_n[..len]);
    for j in 0..len {
        let from_hidden = product[j] + bias_hn[j];
        hidden_n[j] = from_hidden;
        n[j] = (n[j] + bias_in[j]) + r[j] * from_hidden;
    }
}

/// `h = n + z * (h_prev - n)`.
#[inline(always)]
fn blend<E: GateFloat>(h: &mut [E], n: &[E], z: &[E], h_prev: &[E]) {
    let len = h.len();
    let (n, z, h_prev) = (&n[..len], &z[..len], &h_prev[..len]);
    for j in 0..len {
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
    gru_derivatives(r, z, n, hr, hz, hn, s.h_prev, s.hidden_n, s.dh);
}

/// The GRU's derivatives, one unit at a time: `r, z, n` in, the input side's gradients out
/// in their place and the hidden side's in `hr, hz, hn`; `dh` becomes `dh * z`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn gru_derivatives<E: GateFloat>(
    r: &mut [E],
    z: &mut [E],
    n: &mut [E],
    hr: &mut [E],
    hz: &mut [E],
    hn: &mut [E],
    h_prev: &[E],
    hidden_n: &[E],
    dh: &mut [E],
) {
    let len = dh.len();
    let (r, z, n) = (&mut r[..len], &mut z[..len], &mut n[..len]);
    let (hr, hz, hn) = (&mut hr[..len], &mut hz[..len], &mut hn[..len]);
    let (h_prev, hidden_n) = (&h_prev[..len], &hidden_n[..len]);
    let one = E::one();
    for j in 0..len {
        let (rj, zj, nj, d) = (r[j], z[j], n[j], dh[j]);
        let dn = d * (one - zj) * (one - nj * nj);
        let dz = d * (h_prev[j] - nj) * zj * (one - zj);
        let dr = dn * hidden_n[j] * rj * (one - rj);
        dh[j] = d * zj;
        r[j] = dr;
        z[j] = dz;
        n[j] = dn;
        hr[j] = dr;
        hz[j] = dz;
        hn[j] = dn * rj;
    }
}
