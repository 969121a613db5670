//! The plain (Elman) RNN: `h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)`, or with ReLU.

use super::CellMode;
use crate::kernels::RecurrentMode;
use dfdx::prelude::*;

/// The builder types of the plain RNN.
pub mod builder {
    /// A plain RNN over sequences: `h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)`.
    ///
    /// PyTorch equivalent: `torch.nn.RNN(INPUT, HIDDEN, LAYERS, bidirectional=BIDIRECTIONAL,
    /// batch_first=True)`, with the same parameter names (`weight_ih_l0`, ...), layout and
    /// initialisation (uniform in `±1/sqrt(HIDDEN)`). See [`Lstm`](crate::nn::builders::Lstm)
    /// for the sequence API, which all recurrent layers share.
    ///
    /// # Shapes
    /// - `(B, T, F) -> (B, T, Directions<HIDDEN, BIDIRECTIONAL>)`, `F::SIZE == INPUT`.
    /// - `(T, F) -> (T, Directions<HIDDEN, BIDIRECTIONAL>)`.
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// let dev = Cpu::default();
    /// let rnn = dev.build_module::<Rnn<3, 8>, f32>();
    /// let y = rnn.forward(dev.zeros::<Rank3<2, 5, 3>>());
    /// assert_eq!(y.shape().concrete(), [2, 5, 8]);
    /// ```
    #[derive(Debug, Clone, Copy, Default)]
    pub struct Rnn<
        const INPUT: usize,
        const HIDDEN: usize,
        const LAYERS: usize = 1,
        const BIDIRECTIONAL: bool = false,
    >;

    /// [`Rnn`] with ReLU instead of tanh: PyTorch's `nonlinearity='relu'`.
    ///
    /// # Shapes
    /// As [`Rnn`].
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// let dev = Cpu::default();
    /// let rnn = dev.build_module::<RnnRelu<3, 8, 2>, f32>();
    /// let y = rnn.forward(dev.zeros::<Rank2<5, 3>>());
    /// assert!(y.as_vec().iter().all(|&v| v >= 0.0));
    /// ```
    #[derive(Debug, Clone, Copy, Default)]
    pub struct RnnRelu<
        const INPUT: usize,
        const HIDDEN: usize,
        const LAYERS: usize = 1,
        const BIDIRECTIONAL: bool = false,
    >;

    /// One step of a tanh RNN: `h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)`.
    ///
    /// PyTorch equivalent: `torch.nn.RNNCell(INPUT, HIDDEN)` (names `weight_ih`,
    /// `weight_hh`, `bias_ih`, `bias_hh`).
    ///
    /// # Shapes
    /// `((B, F), h: (B, HIDDEN)) -> h': (B, HIDDEN)`, `F::SIZE == INPUT`.
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// let dev = Cpu::default();
    /// let cell = dev.build_module::<RnnCell<3, 4>, f32>();
    /// let h = cell.forward((dev.zeros::<Rank2<2, 3>>(), dev.zeros::<Rank2<2, 4>>()));
    /// assert_eq!(h.shape().concrete(), [2, 4]);
    /// ```
    #[derive(Debug, Clone, Copy, Default)]
    pub struct RnnCell<const INPUT: usize, const HIDDEN: usize>;
}

/// The tanh RNN's step.
///
/// # Shapes
/// One gate; state `h: (B, HIDDEN)`.
///
/// ```
/// use shapesafe::nn::recurrent::{rnn::TanhMode, CellMode};
/// assert_eq!(TanhMode::GATES, 1);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct TanhMode;

/// The ReLU RNN's step.
///
/// # Shapes
/// One gate; state `h: (B, HIDDEN)`.
///
/// ```
/// use shapesafe::nn::recurrent::{rnn::ReluMode, CellMode};
/// assert_eq!(ReluMode::NAME, "RnnRelu");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ReluMode;

macro_rules! plain_mode {
    ($mode:ident, $name:literal, $kind:ident) => {
        impl CellMode for $mode {
            const GATES: usize = 1;
            const NAME: &'static str = $name;
            const KIND: RecurrentMode = RecurrentMode::$kind;
            type State<S: Shape, E: Dtype, D: Storage<E>, T> = Tensor<S, E, D, T>;

            fn pack<S: Shape, E: Dtype, D: Storage<E>, T>(
                h: Tensor<S, E, D, T>,
                _: Option<Tensor<S, E, D, T>>,
            ) -> Self::State<S, E, D, T> {
                h
            }

            fn unpack<S: Shape, E: Dtype, D: Storage<E>, T>(
                state: Self::State<S, E, D, T>,
            ) -> (Tensor<S, E, D, T>, Option<Tensor<S, E, D, T>>) {
                (state, None)
            }
        }
    };
}

plain_mode!(TanhMode, "Rnn", Tanh);
plain_mode!(ReluMode, "RnnRelu", Relu);
