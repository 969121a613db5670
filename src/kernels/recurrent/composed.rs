//! The recurrent op composed from dfdx ops, one step at a time: runs on any dfdx device and
//! dfdx differentiates it. CUDA runs sequences through it; the one-step cells use its `step`
//! on every device.

use super::{RecurrentMode, RecurrentOutput, RecurrentParams, RecurrentState};
use dfdx::prelude::*;

/// One time step's `(B, HIDDEN)` tensor.
type Step<B, const HIDDEN: usize, E, D, T> = Tensor<(B, Const<HIDDEN>), E, D, T>;

/// A sequence laid out time first, `(S, B, HIDDEN)`, so a step is a `select` on axis 0.
type TimeMajor<S, B, const HIDDEN: usize> = (S, B, Const<HIDDEN>);

/// A tensor used several times on one tape: the first use takes the tape, the
/// others an empty one, so the tape's operations are kept exactly once.
pub(crate) struct Shared<S: Shape, E: Dtype, D: Storage<E>, T> {
    taped: Option<Tensor<S, E, D, T>>,
    plain: Tensor<S, E, D, T>,
}

impl<S: Shape, E: Dtype, D: Storage<E>, T: Default> Shared<S, E, D, T> {
    pub(crate) fn new(t: Tensor<S, E, D, T>) -> Self {
        Self {
            plain: t.with_empty_tape(),
            taped: Some(t),
        }
    }

    pub(crate) fn take(&mut self) -> Tensor<S, E, D, T> {
        self.taped
            .take()
            .unwrap_or_else(|| self.plain.with_empty_tape())
    }
}

/// One side of a cell, per gate: `W_k^T` and `b_k` on the tape `T`.
pub(crate) struct GateParams<In: Dim, const HIDDEN: usize, E: Dtype, D: Storage<E>, T> {
    pub(crate) weights: Vec<Tensor<(In, Const<HIDDEN>), E, D, T>>,
    pub(crate) biases: Vec<Tensor<(Const<HIDDEN>,), E, D, T>>,
}

impl<In: Dim, const HIDDEN: usize, E: Dtype, D: Device<E>, T: Tape<E, D>>
    GateParams<In, HIDDEN, E, D, T>
{
    /// Splits `(gates * HIDDEN, In)` weight rows and a `(gates * HIDDEN,)` bias into
    /// `gates` weights, transposed to `(In, HIDDEN)` for a right-hand matmul, and biases.
    pub(crate) fn split<G: Dim>(
        weight: Tensor<(G, In), E, D, T>,
        bias: Tensor<(G,), E, D, T>,
        gates: usize,
    ) -> Result<Self, D::Err> {
        let dev = weight.device().clone();
        let in_dim = weight.shape().1;
        let weight = weight.try_reshape_like(&(gates, Const::<HIDDEN>, in_dim))?;
        let bias = bias.try_reshape_like(&(gates, Const::<HIDDEN>))?;
        let (mut weight, mut bias) = (Shared::new(weight), Shared::new(bias));
        let weights = (0..gates)
            .map(|k| {
                weight
                    .take()
                    .try_select(dev.tensor(k))?
                    .try_permute::<(In, Const<HIDDEN>), _>()
            })
            .collect::<Result<_, _>>()?;
        let biases = (0..gates)
            .map(|k| bias.take().try_select(dev.tensor(k)))
            .collect::<Result<_, _>>()?;
        Ok(GateParams { weights, biases })
    }
}

/// `x W_k^T + b_k` for every gate `k`.
#[allow(clippy::type_complexity)]
pub(crate) fn project<N: Dim, In: Dim, const HIDDEN: usize, E, D, T>(
    x: Tensor<(N, In), E, D, T>,
    params: GateParams<In, HIDDEN, E, D, T>,
) -> Result<Vec<Step<N, HIDDEN, E, D, T>>, D::Err>
where
    E: Dtype,
    D: Device<E>,
    T: Tape<E, D>,
{
    let rows = x.shape().0;
    let mut x = Shared::new(x);
    params
        .weights
        .into_iter()
        .zip(params.biases)
        .map(|(w, b)| {
            x.take()
                .try_matmul(w)?
                .try_add(b.try_broadcast_like(&(rows, Const::<HIDDEN>))?)
        })
        .collect()
}

/// One step of `mode` from dfdx ops: `from_input[k]` is `x W_ik^T + b_ik` and
/// `from_hidden[k]` is `h W_hk^T + b_hk` for gate `k`; `previous` is `h` (with an empty
/// tape) and `cell` is `c` for an LSTM (zeros when `None`). Returns the new `h` and, for an
/// LSTM, the new `c`, whose operations travel on `h`'s tape.
///
/// # Shapes
/// Every tensor is `(B, HIDDEN)`; `mode.gates()` of each gate vector.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::kernels::{recurrent::composed::step, RecurrentMode};
/// let dev = Cpu::default();
/// let ones = || -> Tensor<Rank2<2, 3>, f32, Cpu> { dev.ones() };
/// let (h, c) = step(RecurrentMode::Tanh, vec![ones()], vec![ones()], dev.zeros(), None).unwrap();
/// assert!((h.array()[0][0] - 2.0f32.tanh()).abs() < 1e-6);
/// assert!(c.is_none());
/// ```
#[allow(clippy::type_complexity)]
pub fn step<B: Dim, const HIDDEN: usize, E: Dtype, D: Device<E>, T: Tape<E, D>>(
    mode: RecurrentMode,
    from_input: Vec<Step<B, HIDDEN, E, D, T>>,
    from_hidden: Vec<Step<B, HIDDEN, E, D, T>>,
    previous: Step<B, HIDDEN, E, D, T>,
    cell: Option<Step<B, HIDDEN, E, D, T>>,
) -> Result<(Step<B, HIDDEN, E, D, T>, Option<Step<B, HIDDEN, E, D, T>>), D::Err> {
    assert!(
        from_input.len() == mode.gates() && from_hidden.len() == mode.gates(),
        "{mode:?} takes {} gates",
        mode.gates()
    );
    let mut pre = from_input.into_iter().zip(from_hidden);
    let mut gate = || pre.next().expect("one pair per gate");
    match mode {
        RecurrentMode::Tanh => {
            let (x, h) = gate();
            Ok((x.try_add(h)?.try_tanh()?, None))
        }
        RecurrentMode::Relu => {
            let (x, h) = gate();
            Ok((x.try_add(h)?.try_relu()?, None))
        }
        RecurrentMode::Lstm => {
            let mut act = |sigmoid: bool| {
                let (x, h) = gate();
                let sum = x.try_add(h)?;
                if sigmoid {
                    sum.try_sigmoid()
                } else {
                    sum.try_tanh()
                }
            };
            let input = act(true)?;
            let forget = act(true)?;
            let candidate = act(false)?;
            let output = act(true)?;
            let cell = match cell {
                Some(c) => c,
                None => previous
                    .device()
                    .try_zeros_like(previous.shape())?
                    .retaped::<T>(),
            };
            let cell = forget.try_mul(cell)?.try_add(input.try_mul(candidate)?)?;
            // The returned c carries an empty tape: its operations travel on h', which uses it.
            let kept = cell.with_empty_tape();
            let h = output.try_mul(cell.try_tanh()?)?;
            Ok((h, Some(kept)))
        }
        RecurrentMode::Gru => {
            let (xr, hr) = gate();
            let reset = xr.try_add(hr)?.try_sigmoid()?;
            let (xz, hz) = gate();
            let update = xz.try_add(hz)?.try_sigmoid()?;
            let (xn, hn) = gate();
            let new = xn.try_add(reset.try_mul(hn)?)?.try_tanh()?;
            // (1 - z) * n + z * h, written as n + z * (h - n) to use n and z once each on the tape.
            let new_plain = new.with_empty_tape();
            let h = new.try_add(update.try_mul(previous.try_sub(new_plain)?)?)?;
            Ok((h, None))
        }
    }
}

/// One direction of one recurrent layer over a sequence, one step at a time from dfdx ops:
/// [`RecurrentKernel::try_recurrent`](super::RecurrentKernel::try_recurrent) on devices
/// without a kernel of their own.
///
/// # Shapes
/// `input (B, S, I)` -> `(B, S, HIDDEN)` and the final state `(B, HIDDEN)`.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::kernels::{recurrent::composed, RecurrentMode, RecurrentParams};
/// let dev = Cpu::default();
/// let cell = dev.build_module::<LstmCell<3, 4>, f32>();
/// let params = RecurrentParams {
///     weight_ih: &cell.weight_ih, weight_hh: &cell.weight_hh,
///     bias_ih: &cell.bias_ih, bias_hh: &cell.bias_hh,
/// };
/// let x: Tensor<Rank3<2, 5, 3>, f32, _> = dev.zeros();
/// let (y, (h, c)) = composed::recurrent(x, params, None, RecurrentMode::Lstm, false).unwrap();
/// assert_eq!(y.shape().concrete(), [2, 5, 4]);
/// assert_eq!(c.unwrap().shape().concrete(), [2, 4]);
/// ```
pub fn recurrent<B, S, I, G, const HIDDEN: usize, E, D, T>(
    input: Tensor<(B, S, I), E, D, T>,
    params: RecurrentParams<'_, G, I, HIDDEN, E, D>,
    initial: Option<RecurrentState<B, HIDDEN, E, D>>,
    mode: RecurrentMode,
    reverse: bool,
) -> Result<RecurrentOutput<B, S, HIDDEN, E, D, T>, D::Err>
where
    B: Dim,
    S: Dim,
    I: Dim,
    G: Dim,
    E: Dtype,
    D: Device<E>,
    T: Tape<E, D>,
{
    let dev = input.device().clone();
    let (batch, steps, features) = *input.shape();
    let zeros = || dev.try_zeros_like(&(batch, Const::<HIDDEN>));
    let lstm = mode == RecurrentMode::Lstm;
    if steps.size() == 0 {
        // Nothing to run (and nothing to stack): an empty output on the input's tape, and
        // the initial state as the final one.
        let (_, tape) = input.split_tape();
        let out = dev.try_zeros_like(&(batch, steps, Const::<HIDDEN>))?;
        let (h, c) = match initial {
            Some((h, c)) => (h, c),
            None => (zeros()?, None),
        };
        let c = match c {
            Some(c) if lstm => Some(c),
            _ if lstm => Some(zeros()?),
            _ => None,
        };
        return Ok((out.put_tape(tape), (h, c)));
    }
    let gates = mode.gates();
    let rows = batch.size() * steps.size();
    // The input side of every step at once: one matmul per gate over all B * S rows.
    let x = input.try_reshape_like(&(rows, features))?;
    let input_side = GateParams::<I, HIDDEN, E, D, T>::split(
        params.weight_ih.retaped::<T>(),
        params.bias_ih.retaped::<T>(),
        gates,
    )?;
    let mut from_input: Vec<Shared<TimeMajor<S, B, HIDDEN>, E, D, T>> = project(x, input_side)?
        .into_iter()
        .map(|p| {
            let p = p.try_reshape_like(&(batch, steps, Const::<HIDDEN>))?;
            Ok(Shared::new(p.try_permute::<_, Axes3<1, 0, 2>>()?))
        })
        .collect::<Result<_, D::Err>>()?;
    let hidden = GateParams::<Const<HIDDEN>, HIDDEN, E, D, T>::split(
        params.weight_hh.retaped::<T>(),
        params.bias_hh.retaped::<T>(),
        gates,
    )?;
    let mut weights: Vec<_> = hidden.weights.into_iter().map(Shared::new).collect();
    let mut biases: Vec<_> = hidden
        .biases
        .into_iter()
        .map(|b| {
            Ok(Shared::new(
                b.try_broadcast_like(&(batch, Const::<HIDDEN>))?,
            ))
        })
        .collect::<Result<_, D::Err>>()?;

    let (h0, c0) = match initial {
        Some((h, c)) => (h, c),
        None => (zeros()?, None),
    };
    let mut h: Step<B, HIDDEN, E, D, T> = h0.retaped::<T>();
    let mut c = match c0 {
        Some(c) if lstm => Some(c.retaped::<T>()),
        _ if lstm => Some(zeros()?.retaped()),
        _ => None,
    };
    let count = steps.size();
    let mut outputs: Vec<Option<Step<B, HIDDEN, E, D, T>>> = (0..count).map(|_| None).collect();
    let mut last = None;
    for n in 0..count {
        let t = if reverse { count - 1 - n } else { n };
        let index = dev.tensor(t);
        let gx = from_input
            .iter_mut()
            .map(|p| p.take().try_select(index.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut h_shared = Shared::new(h);
        let gh = weights
            .iter_mut()
            .zip(biases.iter_mut())
            .map(|(w, b)| h_shared.take().try_matmul(w.take())?.try_add(b.take()))
            .collect::<Result<Vec<_>, _>>()?;
        let (h_new, c_new) = step(mode, gx, gh, h_shared.take(), c)?;
        c = c_new;
        outputs[t] = Some(h_new.with_empty_tape());
        last = Some(t);
        h = h_new;
    }
    let finals = (
        h.retaped::<NoneTape>(),
        c.as_ref().map(|c| c.retaped::<NoneTape>()),
    );
    // The last step's h carries the whole tape: it goes into the output in its place.
    if let Some(t) = last {
        outputs[t] = Some(h);
    }
    let outputs: Vec<_> = outputs.into_iter().flatten().collect();
    let out = outputs
        .try_stack()?
        .try_reshape_like(&(steps, batch, Const::<HIDDEN>))?
        .try_permute::<_, Axes3<1, 0, 2>>()?;
    Ok((out, finals))
}
