//! The GRU: PyTorch's gates `r, z, n`, `n = tanh(W_in x + b_in + r * (W_hn h + b_hn))`.

use super::CellMode;
use crate::kernels::RecurrentMode;
use dfdx::prelude::*;

/// The builder types of the GRU.
pub mod builder {
    /// A gated recurrent unit layer over sequences.
    ///
    /// PyTorch equivalent: `torch.nn.GRU(INPUT, HIDDEN, LAYERS, bidirectional=BIDIRECTIONAL,
    /// batch_first=True)`: gates `r, z, n` in that order,
    /// `n = tanh(W_in x + b_in + r * (W_hn h + b_hn))`, `h' = (1 - z) * n + z * h`;
    /// PyTorch's parameter names and initialisation. The sequence API is
    /// [`Lstm`](crate::nn::builders::Lstm)'s, with the state `h` alone.
    ///
    /// # Shapes
    /// - `(B, T, F) -> (B, T, Directions<HIDDEN, BIDIRECTIONAL>)`, `F::SIZE == INPUT`.
    /// - `(T, F) -> (T, Directions<HIDDEN, BIDIRECTIONAL>)`.
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// let dev = Cpu::default();
    /// let gru = dev.build_module::<Gru<3, 4, 2, true>, f64>();
    /// let (y, h) = gru.forward_with_state(dev.zeros::<Rank3<2, 5, 3>>(), None);
    /// assert_eq!(y.shape().concrete(), [2, 5, 8]);
    /// assert_eq!(h.shape().concrete(), [4, 2, 4]);
    /// ```
    #[derive(Debug, Clone, Copy, Default)]
    pub struct Gru<
        const INPUT: usize,
        const HIDDEN: usize,
        const LAYERS: usize = 1,
        const BIDIRECTIONAL: bool = false,
    >;

    /// One GRU step.
    ///
    /// PyTorch equivalent: `torch.nn.GRUCell(INPUT, HIDDEN)`.
    ///
    /// # Shapes
    /// `((B, F), h: (B, HIDDEN)) -> h': (B, HIDDEN)`, `F::SIZE == INPUT`.
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// let dev = Cpu::default();
    /// let cell = dev.build_module::<GruCell<3, 4>, f32>();
    /// let h = cell.forward((dev.zeros::<Rank2<2, 3>>(), dev.zeros::<Rank2<2, 4>>()));
    /// assert_eq!(h.shape().concrete(), [2, 4]);
    /// ```
    #[derive(Debug, Clone, Copy, Default)]
    pub struct GruCell<const INPUT: usize, const HIDDEN: usize>;
}

/// The GRU's step.
///
/// # Shapes
/// Three gates; state `h: (B, HIDDEN)`.
///
/// ```
/// use shapesafe::nn::recurrent::{gru::GruMode, CellMode};
/// assert_eq!(GruMode::GATES, 3);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct GruMode;

impl CellMode for GruMode {
    const GATES: usize = 3;
    const NAME: &'static str = "Gru";
    const KIND: RecurrentMode = RecurrentMode::Gru;
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
