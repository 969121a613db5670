//! `Recurrent`: a stacked, optionally bidirectional recurrent layer run over whole sequences.

use super::cell::{reset_uniform, Cell};
use super::{gru, lstm, rnn, CellMode, Hidden};
use crate::kernels::{RecurrentKernel, RecurrentOutput, RecurrentState};
use crate::nn::relabel::relabel;
use crate::shape::{
    check_recurrent, check_recurrent_layers, directions, recurrent_name, Directions, Gates,
    LayerDirections, ShapeInfer, StaticDim,
};
use core::marker::PhantomData;
use dfdx::nn::{BuildModule, BuildOnDevice, Module, ModuleMut};
use dfdx::nn::{ModuleVisitor, TensorCollection, TensorOptions};
use dfdx::prelude::*;
use rand_distr::uniform::SampleUniform;

/// A built [`Rnn`](rnn::builder::Rnn), [`RnnRelu`](rnn::builder::RnnRelu),
/// [`Lstm`](lstm::builder::Lstm) or [`Gru`](gru::builder::Gru): see the builders.
///
/// Its tensors are visited under PyTorch's names (`weight_ih_l0`, `bias_hh_l1_reverse`,
/// ...), so a PyTorch state dict loads with [`crate::pytorch::load_state_dict`] and an
/// empty name map.
///
/// # Shapes
/// - `(B, T, F) -> (B, T, Directions<HIDDEN, BIDIRECTIONAL>)`; `(T, F) -> (T, Directions<..>)`.
/// - State: `(LayerDirections<LAYERS, BIDIRECTIONAL>, B, HIDDEN)` (`h`, and `c` for an LSTM).
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::pytorch::tensor_names;
/// let lstm = Cpu::default().build_module::<Lstm<3, 4, 2, true>, f64>();
/// let names = tensor_names(&lstm);
/// assert!(names.contains(&"weight_ih_l1_reverse".to_string()));
/// assert_eq!(names.len(), 16);
/// ```
#[derive(Debug, Clone)]
pub struct Recurrent<
    M,
    const GATES: usize,
    const INPUT: usize,
    const HIDDEN: usize,
    const LAYERS: usize,
    const BIDIRECTIONAL: bool,
    E: Dtype,
    D: Storage<E>,
> {
    /// The first layer's directions (forward, then reverse when bidirectional).
    pub first: Vec<Cell<M, Const<INPUT>, GATES, HIDDEN, E, D>>,
    /// Later layers' directions, layer by layer, forward before reverse.
    pub deeper: Vec<Cell<M, Directions<HIDDEN, BIDIRECTIONAL>, GATES, HIDDEN, E, D>>,
    /// PyTorch's `dropout`: the probability of zeroing each output of every layer but
    /// the last, in `forward_mut` only. 0 when built.
    pub dropout: f64,
}

/// A built [`Rnn`](rnn::builder::Rnn).
pub type Rnn<const I: usize, const H: usize, const L: usize, const BI: bool, E, D> =
    Recurrent<rnn::TanhMode, 1, I, H, L, BI, E, D>;
/// A built [`RnnRelu`](rnn::builder::RnnRelu).
pub type RnnRelu<const I: usize, const H: usize, const L: usize, const BI: bool, E, D> =
    Recurrent<rnn::ReluMode, 1, I, H, L, BI, E, D>;
/// A built [`Lstm`](lstm::builder::Lstm).
pub type Lstm<const I: usize, const H: usize, const L: usize, const BI: bool, E, D> =
    Recurrent<lstm::LstmMode, 4, I, H, L, BI, E, D>;
/// A built [`Gru`](gru::builder::Gru).
pub type Gru<const I: usize, const H: usize, const L: usize, const BI: bool, E, D> =
    Recurrent<gru::GruMode, 3, I, H, L, BI, E, D>;

/// The state a sequence layer of mode `M` takes and returns:
/// `(LAYERS * DIRECTIONS, B, HIDDEN)` tensors without a tape.
pub type SequenceState<M, const LAYERS: usize, const BI: bool, B, const HIDDEN: usize, E, D> =
    <M as CellMode>::State<(LayerDirections<LAYERS, BI>, B, Const<HIDDEN>), E, D, NoneTape>;

impl<
        M: CellMode,
        const GATES: usize,
        const INPUT: usize,
        const HIDDEN: usize,
        const LAYERS: usize,
        const BIDIRECTIONAL: bool,
        E: Dtype + num_traits::Float + SampleUniform,
        D: Device<E>,
    > TensorCollection<E, D> for Recurrent<M, GATES, INPUT, HIDDEN, LAYERS, BIDIRECTIONAL, E, D>
{
    type To<E2: Dtype, D2: Device<E2>> =
        Recurrent<M, GATES, INPUT, HIDDEN, LAYERS, BIDIRECTIONAL, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        let dirs = directions(BIDIRECTIONAL);
        let total = LAYERS * dirs;
        let name = |field: &str, i: usize| {
            let reverse = if i % dirs == 1 { "_reverse" } else { "" };
            format!("{field}_l{}{reverse}", i / dirs)
        };
        let names: Vec<[String; 4]> = (0..total)
            .map(|i| ["weight_ih", "weight_hh", "bias_ih", "bias_hh"].map(|f| name(f, i)))
            .collect();
        let first = 0..dirs.min(total);
        let deeper = dirs.min(total)..total;
        macro_rules! fields {
            ($range:expr, $vec:ident, $field:ident, $slot:literal, $offset:expr) => {
                $range
                    .clone()
                    .map(|i| {
                        let j = i - $offset;
                        Self::tensor(
                            &names[i][$slot],
                            move |s| &s.$vec[j].$field,
                            move |s| &mut s.$vec[j].$field,
                            TensorOptions::reset_with(reset_uniform::<_, E, D, HIDDEN>),
                        )
                    })
                    .collect::<Vec<_>>()
            };
        }
        visitor.visit_fields(
            (
                (
                    fields!(first, first, weight_ih, 0, 0),
                    fields!(first, first, weight_hh, 1, 0),
                    fields!(first, first, bias_ih, 2, 0),
                    fields!(first, first, bias_hh, 3, 0),
                ),
                (
                    fields!(deeper, deeper, weight_ih, 0, dirs),
                    fields!(deeper, deeper, weight_hh, 1, dirs),
                    fields!(deeper, deeper, bias_ih, 2, dirs),
                    fields!(deeper, deeper, bias_hh, 3, dirs),
                ),
            ),
            |((a, b, c, d), (e, f, g, h))| Recurrent {
                first: assemble(a, b, c, d),
                deeper: assemble(e, f, g, h),
                dropout: 0.0,
            },
        )
    }
}

/// Zips per-field tensors into cells.
#[allow(clippy::type_complexity)]
fn assemble<M, In: Dim, const GATES: usize, const HIDDEN: usize, E: Dtype, D: Storage<E>>(
    weight_ih: Vec<Tensor<(Gates<HIDDEN, GATES>, In), E, D>>,
    weight_hh: Vec<Tensor<(Gates<HIDDEN, GATES>, Const<HIDDEN>), E, D>>,
    bias_ih: Vec<Tensor<(Gates<HIDDEN, GATES>,), E, D>>,
    bias_hh: Vec<Tensor<(Gates<HIDDEN, GATES>,), E, D>>,
) -> Vec<Cell<M, In, GATES, HIDDEN, E, D>> {
    weight_ih
        .into_iter()
        .zip(weight_hh)
        .zip(bias_ih)
        .zip(bias_hh)
        .map(|(((weight_ih, weight_hh), bias_ih), bias_hh)| Cell {
            weight_ih,
            weight_hh,
            bias_ih,
            bias_hh,
            mode: PhantomData,
        })
        .collect()
}

/// One direction's final `h` and `c`, detached.
type Final<B, const HIDDEN: usize, E, D> = RecurrentState<B, HIDDEN, E, D>;

/// Runs one direction of one layer over `x: (B, T, In)` through the device's kernel;
/// returns `(B, T, HIDDEN)` and the final state.
#[allow(clippy::type_complexity)]
fn run_direction<M, In, B, Steps, const GATES: usize, const HIDDEN: usize, E, D, T>(
    cell: &Cell<M, In, GATES, HIDDEN, E, D>,
    x: Tensor<(B, Steps, In), E, D, T>,
    reverse: bool,
    initial: Option<Final<B, HIDDEN, E, D>>,
) -> Result<RecurrentOutput<B, Steps, HIDDEN, E, D, T>, D::Err>
where
    M: CellMode,
    In: StaticDim,
    B: Dim,
    Steps: Dim,
    E: Dtype,
    D: RecurrentKernel<E>,
    T: Tape<E, D>,
{
    D::try_recurrent(x, cell.params(), initial, M::KIND, reverse)
}

/// Runs one layer (both directions when `BIDIRECTIONAL`) over `x: (B, T, In)`.
#[allow(clippy::type_complexity)]
fn run_layer<M, In, B, Steps, const GATES: usize, const HIDDEN: usize, const BI: bool, E, D, T>(
    cells: &[Cell<M, In, GATES, HIDDEN, E, D>],
    x: Tensor<(B, Steps, In), E, D, T>,
    initial: &mut Vec<Option<Final<B, HIDDEN, E, D>>>,
    finals: &mut Vec<Final<B, HIDDEN, E, D>>,
) -> Result<Tensor<(B, Steps, Directions<HIDDEN, BI>), E, D, T>, D::Err>
where
    M: CellMode,
    In: StaticDim,
    B: Dim,
    Steps: Dim,
    E: Dtype,
    D: RecurrentKernel<E>,
    T: Tape<E, D>,
{
    let mut next_initial = || {
        if initial.is_empty() {
            None
        } else {
            initial.remove(0)
        }
    };
    let out = if BI {
        let (forward, f) = run_direction(&cells[0], x.with_empty_tape(), false, next_initial())?;
        let (backward, b) = run_direction(&cells[1], x, true, next_initial())?;
        finals.push(f);
        finals.push(b);
        let forward: Tensor<(B, Steps, usize), E, D, T> = relabel(forward);
        let backward: Tensor<(B, Steps, usize), E, D, T> = relabel(backward);
        let both = (forward, backward).try_concat_along(Axis::<2>)?;
        relabel::<_, (B, Steps, Directions<HIDDEN, BI>), _, _, _>(both)
    } else {
        let (forward, f) = run_direction(&cells[0], x, false, next_initial())?;
        finals.push(f);
        relabel(forward)
    };
    Ok(out)
}

impl<
        M: CellMode,
        const GATES: usize,
        const INPUT: usize,
        const HIDDEN: usize,
        const LAYERS: usize,
        const BIDIRECTIONAL: bool,
        E: Dtype,
        D: RecurrentKernel<E>,
    > Recurrent<M, GATES, INPUT, HIDDEN, LAYERS, BIDIRECTIONAL, E, D>
{
    /// The whole forward pass, with optional initial state and dropout between layers.
    #[allow(clippy::type_complexity)]
    fn run<B: Dim, Steps: Dim, F: StaticDim, T: Tape<E, D>>(
        &self,
        x: Tensor<(B, Steps, F), E, D, T>,
        state: Option<SequenceState<M, LAYERS, BIDIRECTIONAL, B, HIDDEN, E, D>>,
        dropout: f64,
    ) -> Result<
        (
            Tensor<(B, Steps, Directions<HIDDEN, BIDIRECTIONAL>), E, D, T>,
            SequenceState<M, LAYERS, BIDIRECTIONAL, B, HIDDEN, E, D>,
        ),
        D::Err,
    > {
        const {
            check_recurrent_layers(M::NAME, (INPUT, HIDDEN, LAYERS, BIDIRECTIONAL));
            check_recurrent(
                M::NAME,
                (INPUT, HIDDEN, LAYERS, BIDIRECTIONAL),
                F::SIZE,
                F::FACTORS,
            )
        };
        let dev = x.device().clone();
        let x: Tensor<(B, Steps, Const<INPUT>), E, D, T> = relabel(x);
        let rows = LAYERS * directions(BIDIRECTIONAL);
        let mut initial: Vec<Option<Final<B, HIDDEN, E, D>>> = match state {
            None => Vec::new(),
            Some(state) => {
                let (h, c) = M::unpack(state);
                (0..rows)
                    .map(|i| {
                        let row = |s: &Tensor<_, E, D>| s.clone().try_select(dev.tensor(i));
                        let c = match &c {
                            Some(c) => Some(row(c)?),
                            None => None,
                        };
                        Ok(Some((row(&h)?, c)))
                    })
                    .collect::<Result<_, D::Err>>()?
            }
        };
        let mut finals = Vec::with_capacity(rows);
        let mut y = run_layer::<M, _, _, _, GATES, HIDDEN, BIDIRECTIONAL, E, D, T>(
            &self.first,
            x,
            &mut initial,
            &mut finals,
        )?;
        let dirs = directions(BIDIRECTIONAL);
        for layer in 1..LAYERS {
            if dropout > 0.0 {
                y = crate::kernels::dropout::try_dropout(y, dropout)?;
            }
            let cells = &self.deeper[(layer - 1) * dirs..layer * dirs];
            y = run_layer::<M, _, _, _, GATES, HIDDEN, BIDIRECTIONAL, E, D, T>(
                cells,
                y,
                &mut initial,
                &mut finals,
            )?;
        }
        let (hs, cs): (Vec<_>, Vec<_>) = finals.into_iter().unzip();
        let stack = |v: Vec<Hidden<B, HIDDEN, E, D, NoneTape>>| -> Result<_, D::Err> {
            let s = v.try_stack()?;
            Ok(relabel::<
                _,
                (LayerDirections<LAYERS, BIDIRECTIONAL>, B, Const<HIDDEN>),
                _,
                _,
                _,
            >(s))
        };
        let c = if M::GATES == 4 {
            Some(stack(cs.into_iter().flatten().collect())?)
        } else {
            None
        };
        Ok((y, M::pack(stack(hs)?, c)))
    }

    /// Runs the layer over `x` from an initial state (zeros when `None`), returning the
    /// output sequence and the final state, as PyTorch's `lstm(x, (h0, c0))` does.
    ///
    /// The states have no tape: the returned one is detached, ready to carry into the
    /// next batch (truncated backpropagation through time). Gradients flow through
    /// the output; for the last layer's final `h` use [`LastStep`](crate::nn::builders::LastStep)
    /// on the output, which is the same value (forward direction).
    ///
    /// # Shapes
    /// `x: (B, T, F)`, state `(LAYERS * DIRECTIONS, B, HIDDEN)` (`h`, or `(h, c)` for an
    /// LSTM) → `((B, T, Directions<HIDDEN, BIDIRECTIONAL>), state)`.
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// let dev = Cpu::default();
    /// let lstm = dev.build_module::<Lstm<3, 4, 2>, f32>();
    /// let x: Tensor<(usize, usize, Const<3>), f32, _> = dev.zeros_like(&(2, 7, Const));
    /// let (y, (h, c)) = lstm.forward_with_state(x.clone(), None);
    /// assert_eq!(y.shape().concrete(), [2, 7, 4]);
    /// let (_, (h2, _)) = lstm.forward_with_state(x, Some((h, c)));
    /// assert_eq!(h2.shape().concrete(), [2, 2, 4]);
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn forward_with_state<B: Dim, Steps: Dim, F: StaticDim, T: Tape<E, D>>(
        &self,
        x: Tensor<(B, Steps, F), E, D, T>,
        state: Option<SequenceState<M, LAYERS, BIDIRECTIONAL, B, HIDDEN, E, D>>,
    ) -> (
        Tensor<(B, Steps, Directions<HIDDEN, BIDIRECTIONAL>), E, D, T>,
        SequenceState<M, LAYERS, BIDIRECTIONAL, B, HIDDEN, E, D>,
    ) {
        self.run(x, state, 0.0).unwrap()
    }

    /// [`forward_with_state`](Self::forward_with_state) in training: dropout between
    /// layers with probability `self.dropout`.
    ///
    /// # Shapes
    /// As `forward_with_state`.
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// let dev = Cpu::default();
    /// let mut gru = dev.build_module::<Gru<3, 4, 2>, f32>();
    /// gru.dropout = 0.5;
    /// let (y, h) = gru.forward_with_state_mut(dev.zeros::<Rank3<2, 5, 3>>(), None);
    /// assert_eq!(h.shape().concrete(), [2, 2, 4]);
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn forward_with_state_mut<B: Dim, Steps: Dim, F: StaticDim, T: Tape<E, D>>(
        &mut self,
        x: Tensor<(B, Steps, F), E, D, T>,
        state: Option<SequenceState<M, LAYERS, BIDIRECTIONAL, B, HIDDEN, E, D>>,
    ) -> (
        Tensor<(B, Steps, Directions<HIDDEN, BIDIRECTIONAL>), E, D, T>,
        SequenceState<M, LAYERS, BIDIRECTIONAL, B, HIDDEN, E, D>,
    ) {
        self.run(x, state, self.dropout).unwrap()
    }
}

macro_rules! sequence_modules {
    ($method:ident, $trait:ident, $self_ty:ty, $dropout:expr) => {
        impl<
                M: CellMode,
                const GATES: usize,
                const INPUT: usize,
                const HIDDEN: usize,
                const LAYERS: usize,
                const BIDIRECTIONAL: bool,
                B: Dim,
                Steps: Dim,
                F: StaticDim,
                E: Dtype,
                D: RecurrentKernel<E>,
                T: Tape<E, D>,
            > $trait<Tensor<(B, Steps, F), E, D, T>>
            for Recurrent<M, GATES, INPUT, HIDDEN, LAYERS, BIDIRECTIONAL, E, D>
        {
            type Output = Tensor<(B, Steps, Directions<HIDDEN, BIDIRECTIONAL>), E, D, T>;
            type Error = D::Err;

            fn $method(
                self: $self_ty,
                x: Tensor<(B, Steps, F), E, D, T>,
            ) -> Result<Self::Output, D::Err> {
                let dropout: f64 = $dropout(&*self);
                Ok(self.run(x, None, dropout)?.0)
            }
        }

        impl<
                M: CellMode,
                const GATES: usize,
                const INPUT: usize,
                const HIDDEN: usize,
                const LAYERS: usize,
                const BIDIRECTIONAL: bool,
                Steps: Dim,
                F: StaticDim,
                E: Dtype,
                D: RecurrentKernel<E>,
                T: Tape<E, D>,
            > $trait<Tensor<(Steps, F), E, D, T>>
            for Recurrent<M, GATES, INPUT, HIDDEN, LAYERS, BIDIRECTIONAL, E, D>
        {
            type Output = Tensor<(Steps, Directions<HIDDEN, BIDIRECTIONAL>), E, D, T>;
            type Error = D::Err;

            fn $method(
                self: $self_ty,
                x: Tensor<(Steps, F), E, D, T>,
            ) -> Result<Self::Output, D::Err> {
                let steps = x.shape().0;
                let x = x.try_reshape_like(&(Const::<1>, steps, F::default()))?;
                let dropout: f64 = $dropout(&*self);
                let y = self.run(x, None, dropout)?.0;
                y.try_reshape_like(&(steps, Directions::<HIDDEN, BIDIRECTIONAL>))
            }
        }
    };
}

sequence_modules!(try_forward, Module, &Self, |_: &Self| 0.0);
sequence_modules!(try_forward_mut, ModuleMut, &mut Self, |s: &Self| s.dropout);

macro_rules! sequence_builder {
    ($builder:ident, $module:ident, $mode:ty, $gates:literal) => {
        impl<
                const INPUT: usize,
                const HIDDEN: usize,
                const LAYERS: usize,
                const BIDIRECTIONAL: bool,
                E: Dtype,
                D: Device<E>,
            > BuildOnDevice<D, E>
            for $module::builder::$builder<INPUT, HIDDEN, LAYERS, BIDIRECTIONAL>
        where
            Recurrent<$mode, $gates, INPUT, HIDDEN, LAYERS, BIDIRECTIONAL, E, D>: BuildModule<D, E>,
        {
            type Built = Recurrent<$mode, $gates, INPUT, HIDDEN, LAYERS, BIDIRECTIONAL, E, D>;
        }

        impl<
                const INPUT: usize,
                const HIDDEN: usize,
                const LAYERS: usize,
                const BIDIRECTIONAL: bool,
                Steps: StaticDim,
                F: StaticDim,
            > ShapeInfer<(Steps, F)>
            for $module::builder::$builder<INPUT, HIDDEN, LAYERS, BIDIRECTIONAL>
        {
            type Output = (Steps, Directions<HIDDEN, BIDIRECTIONAL>);
            const CHECK: () = {
                check_recurrent_layers(
                    <$mode as CellMode>::NAME,
                    (INPUT, HIDDEN, LAYERS, BIDIRECTIONAL),
                );
                check_recurrent(
                    <$mode as CellMode>::NAME,
                    (INPUT, HIDDEN, LAYERS, BIDIRECTIONAL),
                    F::SIZE,
                    F::FACTORS,
                )
            };
            const PARAMS: usize = recurrent_params($gates, INPUT, HIDDEN, LAYERS, BIDIRECTIONAL);
            fn name() -> String {
                recurrent_name(
                    <$mode as CellMode>::NAME,
                    INPUT,
                    HIDDEN,
                    LAYERS,
                    BIDIRECTIONAL,
                )
                .as_str()
                .to_string()
            }
        }
    };
}

sequence_builder!(Rnn, rnn, rnn::TanhMode, 1);
sequence_builder!(RnnRelu, rnn, rnn::ReluMode, 1);
sequence_builder!(Lstm, lstm, lstm::LstmMode, 4);
sequence_builder!(Gru, gru, gru::GruMode, 3);

/// PyTorch's parameter count: per layer-direction `G*H*(in + H) + 2*G*H`, where `in`
/// is `INPUT` for the first layer and `DIRECTIONS * HIDDEN` after it.
///
/// ```
/// use shapesafe::nn::recurrent::sequence::recurrent_params;
/// // torch.nn.LSTM(28, 128): 4 * 128 * (28 + 128) + 8 * 128
/// assert_eq!(recurrent_params(4, 28, 128, 1, false), 80_896);
/// ```
pub const fn recurrent_params(
    gates: usize,
    input: usize,
    hidden: usize,
    layers: usize,
    bidirectional: bool,
) -> usize {
    let dirs = directions(bidirectional);
    let rows = gates * hidden;
    let first = rows * (input + hidden) + 2 * rows;
    let later = rows * (dirs * hidden + hidden) + 2 * rows;
    dirs * (first + later * layers.saturating_sub(1))
}
