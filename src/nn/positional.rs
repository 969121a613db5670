//! Position information for sequences: fixed sinusoidal encodings and learned position embeddings.

use super::relabel::relabel;
use crate::shape::{check_positional, Message, SequenceDim, ShapeInfer, StaticDim};
use dfdx::nn::{BuildModule, BuildOnDevice, Module, NonMutableModule, ZeroSizedModule};
use dfdx::nn::{ModuleVisitor, TensorCollection, TensorOptions};
use dfdx::prelude::*;
use rand_distr::{Normal, StandardNormal};

/// The builder (architecture) type of [`LearnedPositionalEmbedding`].
pub mod builder {
    /// Adds a learned vector per position: `x[.., s, :] + weight[s, :]`.
    ///
    /// PyTorch equivalent: `x + self.weight[:S]` with `weight = nn.Parameter(torch.randn(MAX_LEN,
    /// D_MODEL) * 0.02)` (BERT's and ViT's position embeddings). A `Const` sequence longer than
    /// `MAX_LEN` is a build error; a `usize` one panics with the two lengths.
    ///
    /// # Generics
    /// - `MAX_LEN`: the number of positions; `D_MODEL`: the token width.
    ///
    /// # Shapes
    /// - `(S, Const<D_MODEL>) -> (S, Const<D_MODEL>)`, `S <= MAX_LEN`
    /// - `(B, S, Const<D_MODEL>) -> (B, S, Const<D_MODEL>)`
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// let dev = Cpu::default();
    /// let pos = dev.build_module::<LearnedPositionalEmbedding<16, 8>, f32>();
    /// let x: Tensor<Rank3<2, 5, 8>, f32, _> = dev.zeros();
    /// let y = pos.forward(x);
    /// assert_eq!(y.as_vec()[..8], pos.weight.as_vec()[..8]);
    /// ```
    ///
    /// ```compile_fail
    /// use shapesafe::prelude::*;
    /// let dev = Cpu::default();
    /// let pos = dev.build_module::<LearnedPositionalEmbedding<4, 8>, f32>();
    /// let y = pos.forward(dev.zeros::<Rank2<5, 8>>()); // 5 positions, 4 learned
    /// ```
    #[derive(Debug, Clone, Copy, Default)]
    pub struct LearnedPositionalEmbedding<const MAX_LEN: usize, const D_MODEL: usize>;
}

/// Adds the fixed sinusoidal encoding of "Attention is all you need":
/// `pe[s, 2i] = sin(s / 10000^(2i / D_MODEL))`, `pe[s, 2i + 1] = cos(s / 10000^(2i / D_MODEL))`.
///
/// No parameters. A `Const` sequence longer than `MAX_LEN` is a build error; a `usize` one
/// panics with the two lengths.
///
/// # Generics
/// - `MAX_LEN`: the longest sequence accepted; `D_MODEL`: the token width.
///
/// # Shapes
/// - `(S, Const<D_MODEL>) -> (S, Const<D_MODEL>)`, `S <= MAX_LEN`
/// - `(B, S, Const<D_MODEL>) -> (B, S, Const<D_MODEL>)`
///
/// ```
/// use shapesafe::prelude::*;
/// let dev = Cpu::default();
/// let x: Tensor<Rank2<3, 4>, f64, _> = dev.zeros();
/// let y = SinusoidalPositionalEncoding::<512, 4>.forward(x).array();
/// assert_eq!(y[0], [0.0, 1.0, 0.0, 1.0]);
/// assert!((y[1][0] - 1f64.sin()).abs() < 1e-15 && (y[1][3] - 0.01f64.cos()).abs() < 1e-15);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SinusoidalPositionalEncoding<const MAX_LEN: usize, const D_MODEL: usize>;

impl<const MAX_LEN: usize, const D_MODEL: usize> ZeroSizedModule
    for SinusoidalPositionalEncoding<MAX_LEN, D_MODEL>
{
}
impl<const MAX_LEN: usize, const D_MODEL: usize> NonMutableModule
    for SinusoidalPositionalEncoding<MAX_LEN, D_MODEL>
{
}

/// `Name<MAX_LEN, D_MODEL>`.
const fn positional_name(name: &str, max_len: usize, d_model: usize) -> Message {
    Message::new()
        .text(name)
        .text("<")
        .number(max_len)
        .text(", ")
        .number(d_model)
        .text(">")
}

const SINUSOIDAL: &str = "SinusoidalPositionalEncoding";
const LEARNED: &str = "LearnedPositionalEmbedding";

/// The sinusoidal table's first `len` rows, row-major.
fn sinusoidal_table<E: Dtype>(len: usize, d_model: usize) -> Vec<E> {
    let mut values = Vec::with_capacity(len * d_model);
    for pos in 0..len {
        for j in 0..d_model {
            let pair = (j - j % 2) as f64;
            let angle = pos as f64 / 10000f64.powf(pair / d_model as f64);
            let v = if j % 2 == 0 { angle.sin() } else { angle.cos() };
            values.push(E::from_f64(v).unwrap_or_default());
        }
    }
    values
}

/// Panics when a run-time sequence length exceeds `max_len`; a `Const` one was checked when
/// the program was built. dfdx's generic device error has no variant to report it with.
fn check_length(name: &str, max_len: usize, d_model: usize, len: usize) {
    assert!(
        len <= max_len,
        "shape mismatch: {name}<{max_len}, {d_model}> holds {max_len} positions, but the sequence is {len} long"
    );
}

impl<const MAX_LEN: usize, const D_MODEL: usize, S: StaticDim, F: StaticDim> ShapeInfer<(S, F)>
    for SinusoidalPositionalEncoding<MAX_LEN, D_MODEL>
{
    type Output = (S, Const<D_MODEL>);
    const CHECK: () = check_positional(
        positional_name(SINUSOIDAL, MAX_LEN, D_MODEL),
        MAX_LEN,
        D_MODEL,
        Some(S::SIZE),
        F::SIZE,
    );
    const PARAMS: usize = 0;
    fn name() -> String {
        positional_name(SINUSOIDAL, MAX_LEN, D_MODEL)
            .as_str()
            .to_string()
    }
}

impl<const MAX_LEN: usize, const D_MODEL: usize, B: Dim, S: SequenceDim, F: StaticDim, E, D, T>
    Module<Tensor<(B, S, F), E, D, T>> for SinusoidalPositionalEncoding<MAX_LEN, D_MODEL>
where
    E: Dtype,
    D: Device<E>,
    T: Tape<E, D>,
{
    type Output = Tensor<(B, S, Const<D_MODEL>), E, D, T>;
    type Error = D::Err;

    fn try_forward(&self, x: Tensor<(B, S, F), E, D, T>) -> Result<Self::Output, D::Err> {
        const {
            check_positional(
                positional_name(SINUSOIDAL, MAX_LEN, D_MODEL),
                MAX_LEN,
                D_MODEL,
                S::STATIC,
                F::SIZE,
            )
        };
        let x: Tensor<(B, S, Const<D_MODEL>), E, D, T> = relabel(x);
        let shape = *x.shape();
        let len = shape.1;
        check_length(SINUSOIDAL, MAX_LEN, D_MODEL, len.size());
        let table = x
            .device()
            .try_tensor_from_vec(sinusoidal_table(len.size(), D_MODEL), (len, Const))?;
        x.try_add(table.try_broadcast_like::<_, Axis<0>>(&shape)?)
    }
}

impl<const MAX_LEN: usize, const D_MODEL: usize, S: SequenceDim, F: StaticDim, E, D, T>
    Module<Tensor<(S, F), E, D, T>> for SinusoidalPositionalEncoding<MAX_LEN, D_MODEL>
where
    E: Dtype,
    D: Device<E>,
    T: Tape<E, D>,
{
    type Output = Tensor<(S, Const<D_MODEL>), E, D, T>;
    type Error = D::Err;

    fn try_forward(&self, x: Tensor<(S, F), E, D, T>) -> Result<Self::Output, D::Err> {
        const {
            check_positional(
                positional_name(SINUSOIDAL, MAX_LEN, D_MODEL),
                MAX_LEN,
                D_MODEL,
                S::STATIC,
                F::SIZE,
            )
        };
        let x: Tensor<(S, Const<D_MODEL>), E, D, T> = relabel(x);
        let len = x.shape().0;
        let y = self.try_forward(x.try_reshape_like(&(Const::<1>, len, Const::<D_MODEL>))?)?;
        y.try_reshape_like(&(len, Const::<D_MODEL>))
    }
}

/// A built [`LearnedPositionalEmbedding`](builder::LearnedPositionalEmbedding) on device `D`.
///
/// # Shapes
/// As [`builder::LearnedPositionalEmbedding`].
///
/// ```
/// use shapesafe::prelude::*;
/// let pos = Cpu::default().build_module::<LearnedPositionalEmbedding<16, 8>, f32>();
/// assert_eq!(shapesafe::pytorch::tensor_shapes(&pos), [("weight".to_string(), vec![16, 8])]);
/// ```
#[derive(Debug, Clone)]
pub struct LearnedPositionalEmbedding<
    const MAX_LEN: usize,
    const D_MODEL: usize,
    E: Dtype,
    D: Storage<E>,
> {
    /// `(MAX_LEN, D_MODEL)`: position `s`'s vector; initialised normal with std 0.02.
    pub weight: Tensor<Rank2<MAX_LEN, D_MODEL>, E, D>,
}

impl<const MAX_LEN: usize, const D_MODEL: usize, E: Dtype, D: Device<E>> BuildOnDevice<D, E>
    for builder::LearnedPositionalEmbedding<MAX_LEN, D_MODEL>
where
    LearnedPositionalEmbedding<MAX_LEN, D_MODEL, E, D>: BuildModule<D, E>,
{
    type Built = LearnedPositionalEmbedding<MAX_LEN, D_MODEL, E, D>;
}

impl<const MAX_LEN: usize, const D_MODEL: usize, E: Dtype, D: Storage<E>> NonMutableModule
    for LearnedPositionalEmbedding<MAX_LEN, D_MODEL, E, D>
{
}

impl<const MAX_LEN: usize, const D_MODEL: usize, E, D> TensorCollection<E, D>
    for LearnedPositionalEmbedding<MAX_LEN, D_MODEL, E, D>
where
    E: Dtype + num_traits::Float,
    D: Device<E>,
    StandardNormal: rand_distr::Distribution<E>,
{
    type To<E2: Dtype, D2: Device<E2>> = LearnedPositionalEmbedding<MAX_LEN, D_MODEL, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            Self::tensor(
                "weight",
                |s| &s.weight,
                |s| &mut s.weight,
                TensorOptions::reset_with(|t| {
                    let std = E::from(0.02).unwrap_or(E::one());
                    match Normal::new(E::zero(), std) {
                        Ok(normal) => t.try_fill_with_distr(normal),
                        Err(_) => unreachable!("0.02 is a valid standard deviation"),
                    }
                }),
            ),
            |weight| LearnedPositionalEmbedding { weight },
        )
    }
}

impl<const MAX_LEN: usize, const D_MODEL: usize, S: StaticDim, F: StaticDim> ShapeInfer<(S, F)>
    for builder::LearnedPositionalEmbedding<MAX_LEN, D_MODEL>
{
    type Output = (S, Const<D_MODEL>);
    const CHECK: () = check_positional(
        positional_name(LEARNED, MAX_LEN, D_MODEL),
        MAX_LEN,
        D_MODEL,
        Some(S::SIZE),
        F::SIZE,
    );
    const PARAMS: usize = MAX_LEN * D_MODEL;
    fn name() -> String {
        positional_name(LEARNED, MAX_LEN, D_MODEL)
            .as_str()
            .to_string()
    }
}

impl<const MAX_LEN: usize, const D_MODEL: usize, B: Dim, S: SequenceDim, F: StaticDim, E, D, T>
    Module<Tensor<(B, S, F), E, D, T>> for LearnedPositionalEmbedding<MAX_LEN, D_MODEL, E, D>
where
    E: Dtype,
    D: Device<E>,
    T: Tape<E, D>,
{
    type Output = Tensor<(B, S, Const<D_MODEL>), E, D, T>;
    type Error = D::Err;

    fn try_forward(&self, x: Tensor<(B, S, F), E, D, T>) -> Result<Self::Output, D::Err> {
        const {
            check_positional(
                positional_name(LEARNED, MAX_LEN, D_MODEL),
                MAX_LEN,
                D_MODEL,
                S::STATIC,
                F::SIZE,
            )
        };
        let x: Tensor<(B, S, Const<D_MODEL>), E, D, T> = relabel(x);
        let shape = *x.shape();
        let len = shape.1;
        check_length(LEARNED, MAX_LEN, D_MODEL, len.size());
        let rows = self
            .weight
            .retaped::<T>()
            .try_slice((0..len.size(), ..))?
            .try_reshape_like(&(len, Const::<D_MODEL>))?;
        x.try_add(rows.try_broadcast_like::<_, Axis<0>>(&shape)?)
    }
}

impl<const MAX_LEN: usize, const D_MODEL: usize, S: SequenceDim, F: StaticDim, E, D, T>
    Module<Tensor<(S, F), E, D, T>> for LearnedPositionalEmbedding<MAX_LEN, D_MODEL, E, D>
where
    E: Dtype,
    D: Device<E>,
    T: Tape<E, D>,
{
    type Output = Tensor<(S, Const<D_MODEL>), E, D, T>;
    type Error = D::Err;

    fn try_forward(&self, x: Tensor<(S, F), E, D, T>) -> Result<Self::Output, D::Err> {
        const {
            check_positional(
                positional_name(LEARNED, MAX_LEN, D_MODEL),
                MAX_LEN,
                D_MODEL,
                S::STATIC,
                F::SIZE,
            )
        };
        let x: Tensor<(S, Const<D_MODEL>), E, D, T> = relabel(x);
        let len = x.shape().0;
        let y = self.try_forward(x.try_reshape_like(&(Const::<1>, len, Const::<D_MODEL>))?)?;
        y.try_reshape_like(&(len, Const::<D_MODEL>))
    }
}
