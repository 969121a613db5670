//! Recurrent layers' sequence op: the device trait, its CPU impl on dfdx's tape, and the
//! composed version.

mod activation;
mod chunk;
pub mod composed;
mod cpu;
mod gates;

use super::{accumulate, host_input, host_values};
use cpu::{Initial, Outputs, RecurrentGeometry, Weights};
use dfdx::prelude::{
    Const, Cpu, Device, Dim, Dtype, HasShape, PutTape, Storage, Tape, Tensor, TensorFromVec,
};

/// Which recurrence a layer runs, with PyTorch's equations and gate order.
///
/// # Shapes
/// Not a tensor; [`gates`](Self::gates) is how many `HIDDEN`-row blocks the weights stack.
///
/// ```
/// use shapesafe::kernels::RecurrentMode;
/// assert_eq!(RecurrentMode::Lstm.gates(), 4);
/// assert_eq!(RecurrentMode::Gru.gates(), 3);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecurrentMode {
    /// `h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)`: `torch.nn.RNN`.
    Tanh,
    /// As `Tanh` with ReLU: `torch.nn.RNN(nonlinearity='relu')`.
    Relu,
    /// Gates `i, f, g, o`; `c' = f * c + i * g`, `h' = o * tanh(c')`: `torch.nn.LSTM`.
    Lstm,
    /// Gates `r, z, n`; `n = tanh(W_in x + b_in + r * (W_hn h + b_hn))`,
    /// `h' = (1 - z) * n + z * h`: `torch.nn.GRU`.
    Gru,
}

impl RecurrentMode {
    /// How many gates the weights stack: 1, 1, 4 or 3.
    ///
    /// # Shapes
    /// `weight_ih` has `gates() * HIDDEN` rows.
    ///
    /// ```
    /// assert_eq!(shapesafe::kernels::RecurrentMode::Relu.gates(), 1);
    /// ```
    pub const fn gates(self) -> usize {
        match self {
            RecurrentMode::Tanh | RecurrentMode::Relu => 1,
            RecurrentMode::Lstm => 4,
            RecurrentMode::Gru => 3,
        }
    }
}

/// One layer-direction's parameters, borrowed, in PyTorch's layout.
///
/// # Shapes
/// `weight_ih: (G, I)`, `weight_hh: (G, HIDDEN)`, `bias_ih`, `bias_hh: (G,)`, where
/// `G` has size `mode.gates() * HIDDEN`.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::kernels::RecurrentParams;
/// let cell = Cpu::default().build_module::<GruCell<3, 4>, f32>();
/// let params = RecurrentParams {
///     weight_ih: &cell.weight_ih,
///     weight_hh: &cell.weight_hh,
///     bias_ih: &cell.bias_ih,
///     bias_hh: &cell.bias_hh,
/// };
/// assert_eq!(params.weight_ih.shape().concrete(), [12, 3]);
/// ```
pub struct RecurrentParams<'a, G: Dim, I: Dim, const HIDDEN: usize, E: Dtype, D: Storage<E>> {
    /// `(GATES * HIDDEN, I)`.
    pub weight_ih: &'a Tensor<(G, I), E, D>,
    /// `(GATES * HIDDEN, HIDDEN)`.
    pub weight_hh: &'a Tensor<(G, Const<HIDDEN>), E, D>,
    /// `(GATES * HIDDEN,)`.
    pub bias_ih: &'a Tensor<(G,), E, D>,
    /// `(GATES * HIDDEN,)`.
    pub bias_hh: &'a Tensor<(G,), E, D>,
}

/// A recurrent state without a tape: `h` and, for an LSTM, `c`, each `(B, HIDDEN)`.
pub type RecurrentState<B, const HIDDEN: usize, E, D> = (
    Tensor<(B, Const<HIDDEN>), E, D>,
    Option<Tensor<(B, Const<HIDDEN>), E, D>>,
);

/// What [`RecurrentKernel::try_recurrent`] returns: the output sequence `(B, S, HIDDEN)` on
/// the input's tape and the final state.
pub type RecurrentOutput<B, S, const HIDDEN: usize, E, D, T> = (
    Tensor<(B, S, Const<HIDDEN>), E, D, T>,
    RecurrentState<B, HIDDEN, E, D>,
);

/// A device that can run one direction of one recurrent layer over a sequence, with autodiff.
///
/// PyTorch equivalent: one layer-direction of `torch.nn.RNN` / `LSTM` / `GRU` with
/// `batch_first=True`.
///
/// # Shapes
/// `input (B, S, I)`, parameters as [`RecurrentParams`], optional initial state
/// `(B, HIDDEN)` -> output `(B, S, HIDDEN)` (the `h` of every step, at its time index) and
/// the final state `(B, HIDDEN)`.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::kernels::{RecurrentKernel, RecurrentMode, RecurrentParams};
/// let dev = Cpu::default();
/// let x: Tensor<Rank3<2, 5, 3>, f32, _> = dev.ones();
/// let (w_ih, w_hh) = (dev.zeros::<Rank2<4, 3>>(), dev.zeros::<Rank2<4, 4>>());
/// let (b_ih, b_hh) = (dev.ones::<Rank1<4>>(), dev.zeros::<Rank1<4>>());
/// let params = RecurrentParams { weight_ih: &w_ih, weight_hh: &w_hh, bias_ih: &b_ih, bias_hh: &b_hh };
/// let (y, (h, c)) = Cpu::try_recurrent(x, params, None, RecurrentMode::Relu, false).unwrap();
/// assert_eq!(y.shape().concrete(), [2, 5, 4]);
/// assert_eq!(h.array(), [[1.0; 4]; 2]);
/// assert!(c.is_none());
/// ```
pub trait RecurrentKernel<E: Dtype>: Device<E> {
    /// Runs `mode` over `input`, from the last step to the first when `reverse`, starting
    /// from `initial` (zeros when `None`; `c` zeros when missing), and records the backward
    /// op (gradients of the input and the four parameters) on the input's tape. The initial
    /// state is a constant: it gets no gradient, and the final state has no tape.
    ///
    /// # Panics
    /// If `G`'s size is not `mode.gates() * HIDDEN`.
    fn try_recurrent<B: Dim, S: Dim, I: Dim, G: Dim, const HIDDEN: usize, T: Tape<E, Self>>(
        input: Tensor<(B, S, I), E, Self, T>,
        params: RecurrentParams<'_, G, I, HIDDEN, E, Self>,
        initial: Option<RecurrentState<B, HIDDEN, E, Self>>,
        mode: RecurrentMode,
        reverse: bool,
    ) -> Result<RecurrentOutput<B, S, HIDDEN, E, Self, T>, Self::Err>;
}

macro_rules! cpu_recurrent_impl {
    ($($dtype:ty),*) => {$(
        impl RecurrentKernel<$dtype> for Cpu {
            fn try_recurrent<B: Dim, S: Dim, I: Dim, G: Dim, const HIDDEN: usize, T: Tape<$dtype, Self>>(
                input: Tensor<(B, S, I), $dtype, Self, T>,
                params: RecurrentParams<'_, G, I, HIDDEN, $dtype, Self>,
                initial: Option<RecurrentState<B, HIDDEN, $dtype, Self>>,
                mode: RecurrentMode,
                reverse: bool,
            ) -> Result<RecurrentOutput<B, S, HIDDEN, $dtype, Self, T>, Self::Err> {
                let (batch, steps, features) = *input.shape();
                let g = RecurrentGeometry {
                    batch: batch.size(),
                    steps: steps.size(),
                    input: features.size(),
                    hidden: HIDDEN,
                    mode,
                    reverse,
                };
                assert_eq!(
                    params.weight_ih.shape().0.size(),
                    mode.gates() * HIDDEN,
                    "{mode:?} with hidden size {HIDDEN}: the weights need {} rows",
                    mode.gates() * HIDDEN,
                );
                let (input, mut tape, x) = host_input(input)?;
                let (w_ih, w_hh) = (host_values(params.weight_ih)?, host_values(params.weight_hh)?);
                let (b_ih, b_hh) = (host_values(params.bias_ih)?, host_values(params.bias_hh)?);
                let (h0, c0) = match &initial {
                    Some((h, c)) => (Some(host_values(h)?), c.as_ref().map(host_values).transpose()?),
                    None => (None, None),
                };
                let lstm = mode == RecurrentMode::Lstm;
                let mut out = vec![0.0; g.batch * g.steps * HIDDEN];
                let mut h_n = vec![0.0; g.batch * HIDDEN];
                let mut c_n = vec![0.0; if lstm { g.batch * HIDDEN } else { 0 }];
                let weights = Weights { ih: &w_ih, hh: &w_hh, bias_ih: &b_ih, bias_hh: &b_hh };
                let saved = cpu::recurrent_forward(
                    &g,
                    &x,
                    weights,
                    Initial { h: h0.as_deref(), c: c0.as_deref() },
                    Outputs { out: &mut out, h: &mut h_n, c: &mut c_n },
                );
                let dev = input.device().clone();
                let out = dev.try_tensor_from_vec(out, (batch, steps, Const::<HIDDEN>))?;
                let h_n = dev.try_tensor_from_vec(h_n, (batch, Const::<HIDDEN>))?;
                let c_n = if lstm {
                    Some(dev.try_tensor_from_vec(c_n, (batch, Const::<HIDDEN>))?)
                } else {
                    None
                };
                if T::OWNS_TAPE {
                    let out_id = out.clone();
                    let weight_ih = params.weight_ih.clone();
                    let weight_hh = params.weight_hh.clone();
                    let bias_ih = params.bias_ih.clone();
                    let bias_hh = params.bias_hh.clone();
                    tape.add_backward_op(move |grads| {
                        let grad_out = grads.get_or_alloc_mut(&out_id)?;
                        let gate_grads = cpu::backward_through_time(&g, &w_hh, saved, grad_out);
                        gate_grads.add_input_grad(&w_ih, grads.get_or_alloc_mut(&input)?);
                        gate_grads.add_weight_ih_grad(&x, grads.get_or_alloc_mut(&weight_ih)?);
                        gate_grads.add_weight_hh_grad(grads.get_or_alloc_mut(&weight_hh)?);
                        let [b_ih, b_hh] = gate_grads.bias_grads();
                        accumulate(grads.get_or_alloc_mut(&bias_ih)?, &b_ih);
                        accumulate(grads.get_or_alloc_mut(&bias_hh)?, &b_hh);
                        Ok(())
                    });
                }
                Ok((out.put_tape(tape), (h_n, c_n)))
            }
        }
    )*};
}
cpu_recurrent_impl!(f32, f64);
