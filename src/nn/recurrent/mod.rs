//! Recurrent layers: `Rnn`, `Lstm`, `Gru` over sequences, their one-step cells, and `LastStep`.
//!
//! PyTorch's equations, gate order and parameter names (`weight_ih_l0`, `bias_hh_l1_reverse`, ...),
//! so PyTorch state dicts load by name. A sequence layer runs each layer-direction through
//! the device's [`RecurrentKernel`](crate::kernels::RecurrentKernel) (on the CPU one fused
//! kernel per sequence); the one-step cells are composed from dfdx ops.

pub mod cell;
pub mod gru;
pub mod last_step;
pub mod lstm;
pub mod rnn;
pub mod sequence;

use crate::kernels::recurrent::composed;
use crate::kernels::RecurrentMode;
use dfdx::prelude::*;

/// One time step's `(B, HIDDEN)` tensor.
pub type Hidden<B, const HIDDEN: usize, E, D, T> = Tensor<(B, Const<HIDDEN>), E, D, T>;

/// What distinguishes a plain RNN, an LSTM and a GRU: the gate count, the state and
/// the step equations. Implemented by the marker types [`rnn::TanhMode`], [`rnn::ReluMode`],
/// [`lstm::LstmMode`] and [`gru::GruMode`].
///
/// # Shapes
/// Every tensor a step sees is `(B, HIDDEN)`.
///
/// ```
/// use shapesafe::nn::recurrent::{lstm::LstmMode, CellMode};
/// assert_eq!(LstmMode::GATES, 4);
/// ```
pub trait CellMode: 'static + Copy + Default + core::fmt::Debug + Send + Sync {
    /// Gates stacked in the weights' rows (1, 4 or 3).
    const GATES: usize;
    /// The sequence layer's name, as in error messages: `Lstm`.
    const NAME: &'static str;
    /// The equations, as the kernels name them.
    const KIND: RecurrentMode;
    /// The state PyTorch passes around: `h` for RNN and GRU, `(h, c)` for LSTM.
    type State<S: Shape, E: Dtype, D: Storage<E>, T>;

    /// Builds a state from `h` and, for an LSTM, `c`.
    fn pack<S: Shape, E: Dtype, D: Storage<E>, T>(
        h: Tensor<S, E, D, T>,
        c: Option<Tensor<S, E, D, T>>,
    ) -> Self::State<S, E, D, T>;

    /// Splits a state into `h` and, for an LSTM, `c`.
    #[allow(clippy::type_complexity)]
    fn unpack<S: Shape, E: Dtype, D: Storage<E>, T>(
        state: Self::State<S, E, D, T>,
    ) -> (Tensor<S, E, D, T>, Option<Tensor<S, E, D, T>>);

    /// One step: `from_input[k]` is `x W_ik^T + b_ik` and `from_hidden[k]` is
    /// `h W_hk^T + b_hk` for gate `k`; `previous` is `h` (with an empty tape) and
    /// `cell` is `c` for an LSTM. Returns the new `h` and `c`.
    // Gate vectors plus the previous state: the count is the equations', not accidental.
    #[allow(clippy::type_complexity)]
    fn step<B: Dim, const HIDDEN: usize, E: Dtype, D: Device<E>, T: Tape<E, D>>(
        from_input: Vec<Hidden<B, HIDDEN, E, D, T>>,
        from_hidden: Vec<Hidden<B, HIDDEN, E, D, T>>,
        previous: Hidden<B, HIDDEN, E, D, T>,
        cell: Option<Hidden<B, HIDDEN, E, D, T>>,
    ) -> Result<
        (
            Hidden<B, HIDDEN, E, D, T>,
            Option<Hidden<B, HIDDEN, E, D, T>>,
        ),
        D::Err,
    > {
        composed::step(Self::KIND, from_input, from_hidden, previous, cell)
    }
}
