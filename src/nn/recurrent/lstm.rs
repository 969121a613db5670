//! The LSTM: PyTorch's gates `i, f, g, o`, `c' = f * c + i * g`, `h' = o * tanh(c')`.

use super::CellMode;
use crate::kernels::RecurrentMode;
use dfdx::prelude::*;

/// The builder types of the LSTM.
pub mod builder {
    /// A long short-term memory layer over sequences.
    ///
    /// PyTorch equivalent: `torch.nn.LSTM(INPUT, HIDDEN, LAYERS, bidirectional=BIDIRECTIONAL,
    /// batch_first=True)`: gates `i, f, g, o` stacked in that order in the weights' rows,
    /// `c_t = f * c_{t-1} + i * g`, `h_t = o * tanh(c_t)`; parameters `weight_ih_l{k}`,
    /// `weight_hh_l{k}`, `bias_ih_l{k}`, `bias_hh_l{k}` (and `..._reverse`), initialised
    /// uniform in `±1/sqrt(HIDDEN)`. Layers after the first read the previous layer's
    /// output (both directions, concatenated). The built module's `dropout` field is
    /// PyTorch's `dropout`: applied between layers in `forward_mut` only.
    ///
    /// [`Module::forward`](dfdx::nn::Module::forward) returns the output sequence, so
    /// the layer composes in tuples; `forward_with_state` also takes and returns
    /// PyTorch's `(h, c)`, each `(LAYERS * DIRECTIONS, B, HIDDEN)`.
    ///
    /// # Generics
    /// - `INPUT`: features per time step; `HIDDEN`: hidden size.
    /// - `LAYERS` (default 1): stacked layers; `BIDIRECTIONAL` (default `false`).
    ///
    /// # Shapes
    /// - `(B, T, F) -> (B, T, Directions<HIDDEN, BIDIRECTIONAL>)`, batch first, `B` and `T`
    ///   each a `Const` or `usize`, `F` any static dim of size `INPUT`.
    /// - `(T, F) -> (T, Directions<HIDDEN, BIDIRECTIONAL>)`.
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// let dev = Cpu::default();
    /// type Classifier = (Lstm<28, 32>, LastStep, Linear<32, 10>);
    /// shapesafe::assert_shapes!(Classifier: Rank2<28, 28> => Rank1<10>);
    /// let model = dev.build_module::<Classifier, f32>();
    /// let y = model.forward(dev.zeros::<Rank3<4, 28, 28>>());
    /// assert_eq!(y.shape().concrete(), [4, 10]);
    /// ```
    #[derive(Debug, Clone, Copy, Default)]
    pub struct Lstm<
        const INPUT: usize,
        const HIDDEN: usize,
        const LAYERS: usize = 1,
        const BIDIRECTIONAL: bool = false,
    >;

    /// One LSTM step.
    ///
    /// PyTorch equivalent: `torch.nn.LSTMCell(INPUT, HIDDEN)` (names `weight_ih`,
    /// `weight_hh`, `bias_ih`, `bias_hh`; gates `i, f, g, o`).
    ///
    /// # Shapes
    /// `((B, F), (h, c)) -> (h', c')`, each state `(B, HIDDEN)`, `F::SIZE == INPUT`.
    /// Gradients flow back through the returned `h'`, whose tape holds the step.
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// let dev = Cpu::default();
    /// let cell = dev.build_module::<LstmCell<3, 4>, f32>();
    /// let state = (dev.zeros::<Rank2<2, 4>>(), dev.zeros::<Rank2<2, 4>>());
    /// let (h, c) = cell.forward((dev.zeros::<Rank2<2, 3>>(), state));
    /// assert_eq!(c.shape().concrete(), [2, 4]);
    /// ```
    #[derive(Debug, Clone, Copy, Default)]
    pub struct LstmCell<const INPUT: usize, const HIDDEN: usize>;
}

/// The LSTM's step.
///
/// # Shapes
/// Four gates; state `(h, c)`, each `(B, HIDDEN)`.
///
/// ```
/// use shapesafe::nn::recurrent::{lstm::LstmMode, CellMode};
/// assert_eq!(LstmMode::NAME, "Lstm");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct LstmMode;

impl CellMode for LstmMode {
    const GATES: usize = 4;
    const NAME: &'static str = "Lstm";
    const KIND: RecurrentMode = RecurrentMode::Lstm;
    type State<S: Shape, E: Dtype, D: Storage<E>, T> = (Tensor<S, E, D, T>, Tensor<S, E, D, T>);

    fn pack<S: Shape, E: Dtype, D: Storage<E>, T>(
        h: Tensor<S, E, D, T>,
        c: Option<Tensor<S, E, D, T>>,
    ) -> Self::State<S, E, D, T> {
        match c {
            Some(c) => (h, c),
            None => unreachable!("an LSTM step always returns a cell state"),
        }
    }

    fn unpack<S: Shape, E: Dtype, D: Storage<E>, T>(
        (h, c): Self::State<S, E, D, T>,
    ) -> (Tensor<S, E, D, T>, Option<Tensor<S, E, D, T>>) {
        (h, Some(c))
    }
}
