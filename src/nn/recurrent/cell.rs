//! `Cell`: one layer-direction's weights, PyTorch's `RNNCell`/`LSTMCell`/`GRUCell`, and one step.

use super::{gru, lstm, rnn, CellMode};
use crate::kernels::recurrent::composed::{project, GateParams};
use crate::kernels::RecurrentParams;
use crate::nn::init::uniform_fan_in;
use crate::nn::relabel::relabel;
use crate::shape::{check_recurrent, Gates, StaticDim};
use core::marker::PhantomData;
use dfdx::nn::{BuildModule, BuildOnDevice, Module, NonMutableModule};
use dfdx::nn::{ModuleVisitor, TensorCollection, TensorOptions};
use dfdx::prelude::*;
use rand_distr::uniform::SampleUniform;

/// The weights of one recurrent cell: a built [`RnnCell`](rnn::builder::RnnCell),
/// [`LstmCell`](lstm::builder::LstmCell) or [`GruCell`](gru::builder::GruCell), and
/// one layer-direction of a sequence layer.
///
/// # Generics
/// - `M`: the [`CellMode`]; `In`: the input feature dim (`Const<INPUT>`, or
///   `Directions<HIDDEN, BIDIRECTIONAL>` in a stacked layer's later layers).
/// - `GATES`: `M::GATES`; `HIDDEN`: hidden size.
///
/// # Shapes
/// `weight_ih: (GATES * HIDDEN, In)`, `weight_hh: (GATES * HIDDEN, HIDDEN)`, biases
/// `(GATES * HIDDEN,)`, gates stacked in PyTorch's order. Its forward is the builder's.
///
/// ```
/// use shapesafe::prelude::*;
/// let cell = Cpu::default().build_module::<LstmCell<3, 4>, f64>();
/// assert_eq!(cell.weight_ih.shape().concrete(), [16, 3]);
/// assert_eq!(cell.num_trainable_params(), 4 * 4 * (3 + 4) + 8 * 4);
/// ```
#[derive(Debug, Clone)]
pub struct Cell<M, In: Dim, const GATES: usize, const HIDDEN: usize, E: Dtype, D: Storage<E>> {
    /// `(GATES * HIDDEN, In)`; initialised uniform in `±1/sqrt(HIDDEN)` as PyTorch does.
    pub weight_ih: Tensor<(Gates<HIDDEN, GATES>, In), E, D>,
    /// `(GATES * HIDDEN, HIDDEN)`; initialised uniform in `±1/sqrt(HIDDEN)`.
    pub weight_hh: Tensor<(Gates<HIDDEN, GATES>, Const<HIDDEN>), E, D>,
    /// `(GATES * HIDDEN,)`; initialised uniform in `±1/sqrt(HIDDEN)`.
    pub bias_ih: Tensor<(Gates<HIDDEN, GATES>,), E, D>,
    /// `(GATES * HIDDEN,)`; initialised uniform in `±1/sqrt(HIDDEN)`.
    pub bias_hh: Tensor<(Gates<HIDDEN, GATES>,), E, D>,
    pub(crate) mode: PhantomData<M>,
}

/// PyTorch's initialisation of every recurrent parameter: uniform in `±1/sqrt(HIDDEN)`.
pub(crate) fn reset_uniform<S: ConstShape, E, D, const HIDDEN: usize>(
    t: &mut Tensor<S, E, D>,
) -> Result<(), D::Err>
where
    E: Dtype + num_traits::Float + SampleUniform,
    D: Device<E>,
{
    uniform_fan_in(t, HIDDEN)
}

impl<M, In, const GATES: usize, const HIDDEN: usize, E, D> TensorCollection<E, D>
    for Cell<M, In, GATES, HIDDEN, E, D>
where
    M: CellMode,
    In: StaticDim,
    E: Dtype + num_traits::Float + SampleUniform,
    D: Device<E>,
{
    type To<E2: Dtype, D2: Device<E2>> = Cell<M, In, GATES, HIDDEN, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::tensor(
                    "weight_ih",
                    |s| &s.weight_ih,
                    |s| &mut s.weight_ih,
                    TensorOptions::reset_with(reset_uniform::<_, E, D, HIDDEN>),
                ),
                Self::tensor(
                    "weight_hh",
                    |s| &s.weight_hh,
                    |s| &mut s.weight_hh,
                    TensorOptions::reset_with(reset_uniform::<_, E, D, HIDDEN>),
                ),
                Self::tensor(
                    "bias_ih",
                    |s| &s.bias_ih,
                    |s| &mut s.bias_ih,
                    TensorOptions::reset_with(reset_uniform::<_, E, D, HIDDEN>),
                ),
                Self::tensor(
                    "bias_hh",
                    |s| &s.bias_hh,
                    |s| &mut s.bias_hh,
                    TensorOptions::reset_with(reset_uniform::<_, E, D, HIDDEN>),
                ),
            ),
            |(weight_ih, weight_hh, bias_ih, bias_hh)| Cell {
                weight_ih,
                weight_hh,
                bias_ih,
                bias_hh,
                mode: PhantomData,
            },
        )
    }
}

impl<M: CellMode, In: StaticDim, const GATES: usize, const HIDDEN: usize, E, D>
    Cell<M, In, GATES, HIDDEN, E, D>
where
    E: Dtype,
    D: Device<E>,
{
    /// The input side's per-gate weights and biases, on a fresh tape `T`.
    pub(crate) fn input_side<T: Tape<E, D>>(
        &self,
    ) -> Result<GateParams<In, HIDDEN, E, D, T>, D::Err> {
        GateParams::split(self.weight_ih.retaped(), self.bias_ih.retaped(), GATES)
    }

    /// The hidden side's per-gate weights and biases, on a fresh tape `T`.
    pub(crate) fn hidden_side<T: Tape<E, D>>(
        &self,
    ) -> Result<GateParams<Const<HIDDEN>, HIDDEN, E, D, T>, D::Err> {
        GateParams::split(self.weight_hh.retaped(), self.bias_hh.retaped(), GATES)
    }

    /// The four parameters, borrowed, as the kernels take them.
    pub(crate) fn params(&self) -> RecurrentParams<'_, Gates<HIDDEN, GATES>, In, HIDDEN, E, D> {
        RecurrentParams {
            weight_ih: &self.weight_ih,
            weight_hh: &self.weight_hh,
            bias_ih: &self.bias_ih,
            bias_hh: &self.bias_hh,
        }
    }
}

macro_rules! cell_builder {
    ($builder:path, $mode:ty, $gates:literal, $name:literal) => {
        impl<const INPUT: usize, const HIDDEN: usize, E, D> BuildOnDevice<D, E> for $builder
        where
            E: Dtype,
            D: Device<E>,
            Cell<$mode, Const<INPUT>, $gates, HIDDEN, E, D>: BuildModule<D, E>,
        {
            type Built = Cell<$mode, Const<INPUT>, $gates, HIDDEN, E, D>;
        }
    };
}

cell_builder!(rnn::builder::RnnCell<INPUT, HIDDEN>, rnn::TanhMode, 1, "RnnCell");
cell_builder!(lstm::builder::LstmCell<INPUT, HIDDEN>, lstm::LstmMode, 4, "LstmCell");
cell_builder!(gru::builder::GruCell<INPUT, HIDDEN>, gru::GruMode, 3, "GruCell");

impl<M, const GATES: usize, const INPUT: usize, const HIDDEN: usize, E: Dtype, D: Storage<E>>
    NonMutableModule for Cell<M, Const<INPUT>, GATES, HIDDEN, E, D>
{
}

/// The state type a cell of mode `M` takes and returns for batch `B`.
pub type CellState<M, B, const HIDDEN: usize, E, D, T> =
    <M as CellMode>::State<(B, Const<HIDDEN>), E, D, T>;

impl<M, B, F, const GATES: usize, const INPUT: usize, const HIDDEN: usize, E, D, T>
    Module<(Tensor<(B, F), E, D, T>, CellState<M, B, HIDDEN, E, D, T>)>
    for Cell<M, Const<INPUT>, GATES, HIDDEN, E, D>
where
    M: CellMode,
    B: Dim,
    F: StaticDim,
    E: Dtype,
    D: Device<E>,
    T: Tape<E, D>,
{
    type Output = CellState<M, B, HIDDEN, E, D, T>;
    type Error = D::Err;

    fn try_forward(
        &self,
        (x, state): (Tensor<(B, F), E, D, T>, CellState<M, B, HIDDEN, E, D, T>),
    ) -> Result<Self::Output, D::Err> {
        const {
            check_recurrent(
                cell_name(M::NAME),
                (INPUT, HIDDEN, 0, false),
                F::SIZE,
                F::FACTORS,
            )
        };
        let x: Tensor<(B, Const<INPUT>), E, D, T> = relabel(x);
        let (h, c) = M::unpack(state);
        let previous = h.with_empty_tape();
        let from_input = project(x, self.input_side::<T>()?)?;
        let from_hidden = project(h, self.hidden_side::<T>()?)?;
        let (h, c) = M::step(from_input, from_hidden, previous, c)?;
        Ok(M::pack(h, c))
    }
}

/// The cell's name for a sequence layer's mode name.
const fn cell_name(layer: &str) -> &'static str {
    match layer.as_bytes() {
        b"Lstm" => "LstmCell",
        b"Gru" => "GruCell",
        b"RnnRelu" => "RnnReluCell",
        _ => "RnnCell",
    }
}
