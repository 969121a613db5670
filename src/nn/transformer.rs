//! The Transformer encoder with PyTorch's names and semantics: `LayerNorm`, `TransformerEncoderLayer`
//! (post-norm or pre-norm), `TransformerEncoder`, and `SequenceMean` pooling for classifiers.
// Signatures spell out the (batch, sequence, width) tensors they take; aliases would hide
// the shapes these layers document.
#![allow(clippy::type_complexity)]

use super::attention::MultiHeadAttention;
use super::linear::Linear;
use super::relabel::relabel;
use crate::shape::Message;
use crate::shape::{
    check_attention, check_width, transformer_encoder_layer_name, ShapeInfer, StaticDim,
};
use dfdx::nn::{BuildModule, BuildOnDevice, Module, ModuleMut, NonMutableModule, ZeroSizedModule};
use dfdx::nn::{ModuleVisitor, ScalarOptions, TensorCollection, TensorOptions};
use dfdx::prelude::*;
use rand_distr::uniform::SampleUniform;

/// The builder (architecture) types of this module's layers.
pub mod builder {
    /// Layer normalisation over the last dim, with a learned scale and shift.
    ///
    /// PyTorch equivalent: `torch.nn.LayerNorm(D_MODEL)` (eps `1e-5`, parameters `weight`
    /// initialised to one and `bias` to zero; the variance is the biased one).
    ///
    /// # Generics
    /// - `D_MODEL`: the size of the normalised last dim.
    ///
    /// # Shapes
    /// - `(Const<D_MODEL>,)`, `(S, Const<D_MODEL>)`, `(B, S, Const<D_MODEL>)`: shape kept.
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// let dev = Cpu::default();
    /// let norm = dev.build_module::<LayerNorm<4>, f64>();
    /// let y = norm.forward(dev.tensor([[1.0, 2.0, 3.0, 4.0]]));
    /// assert!(y.as_vec().iter().sum::<f64>().abs() < 1e-12);
    /// ```
    #[derive(Debug, Clone, Copy, Default)]
    pub struct LayerNorm<const D_MODEL: usize>;

    /// One Transformer encoder layer: self-attention and a ReLU feed-forward block, each
    /// with a residual connection and a layer norm.
    ///
    /// PyTorch equivalent: `torch.nn.TransformerEncoderLayer(D_MODEL, HEADS, FEED_FORWARD,
    /// batch_first=True, norm_first=NORM_FIRST)` with its parameter names (`self_attn.*`,
    /// `linear1`, `linear2`, `norm1`, `norm2`). Post-norm (`x = norm(x + f(x))`) by default,
    /// pre-norm (`x = x + f(norm(x))`) when `NORM_FIRST`. Dropout (the module's `dropout`,
    /// default 0.1) acts only in `forward_mut`, where PyTorch's acts in training mode: on the
    /// attention weights, after attention, after the ReLU and after `linear2`.
    ///
    /// # Generics
    /// - `D_MODEL`: token width; `HEADS`: attention heads (dividing `D_MODEL`, checked at
    ///   compile time); `FEED_FORWARD`: the hidden width of the feed-forward block;
    ///   `NORM_FIRST`: pre-norm instead of post-norm.
    ///
    /// # Shapes
    /// - `(S, Const<D_MODEL>) -> (S, Const<D_MODEL>)`
    /// - `(B, S, Const<D_MODEL>) -> (B, S, Const<D_MODEL>)`
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// let dev = Cpu::default();
    /// let layer = dev.build_module::<TransformerEncoderLayer<8, 2, 16>, f32>();
    /// let x: Tensor<Rank3<2, 5, 8>, f32, _> = dev.sample_normal();
    /// let y: Tensor<Rank3<2, 5, 8>, f32, _> = layer.forward(x);
    /// assert_eq!(<TransformerEncoderLayer<8, 2, 16> as ShapeInfer<Rank2<5, 8>>>::PARAMS, 600);
    /// ```
    #[derive(Debug, Clone, Copy, Default)]
    pub struct TransformerEncoderLayer<
        const D_MODEL: usize,
        const HEADS: usize,
        const FEED_FORWARD: usize,
        const NORM_FIRST: bool = false,
    >;

    /// A stack of `LAYERS` [`TransformerEncoderLayer`]s.
    ///
    /// PyTorch equivalent: `torch.nn.TransformerEncoder(layer, LAYERS)` without a final
    /// norm, parameters named `layers.0.self_attn.in_proj_weight`, ...
    ///
    /// # Generics
    /// As [`TransformerEncoderLayer`], plus `LAYERS`: the number of layers.
    ///
    /// # Shapes
    /// - `(S, Const<D_MODEL>) -> (S, Const<D_MODEL>)`
    /// - `(B, S, Const<D_MODEL>) -> (B, S, Const<D_MODEL>)`
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// let dev = Cpu::default();
    /// let encoder = dev.build_module::<TransformerEncoder<8, 2, 16, 3>, f32>();
    /// let x: Tensor<(usize, Const<8>), f32, _> = dev.sample_normal_like(&(7, Const));
    /// let y = encoder.forward(x);
    /// assert_eq!(shapesafe::pytorch::tensor_names(&encoder)[0], "layers.0.self_attn.in_proj_weight");
    /// ```
    #[derive(Debug, Clone, Copy, Default)]
    pub struct TransformerEncoder<
        const D_MODEL: usize,
        const HEADS: usize,
        const FEED_FORWARD: usize,
        const LAYERS: usize,
        const NORM_FIRST: bool = false,
    >;
}

/// The mean over the sequence dim, for classifiers on top of an encoder.
///
/// PyTorch equivalent: `x.mean(dim=1)` (batched) or `x.mean(dim=0)` (unbatched).
///
/// # Shapes
/// - `(S, F) -> (F,)`
/// - `(B, S, F) -> (B, F)`
///
/// ```
/// use shapesafe::prelude::*;
/// let dev = Cpu::default();
/// let x = dev.tensor([[[1.0, 2.0], [3.0, 4.0]]]);
/// let y: Tensor<Rank2<1, 2>, f64, _> = SequenceMean.forward(x);
/// assert_eq!(y.array(), [[2.0, 3.0]]);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SequenceMean;

/// Another name of [`SequenceMean`].
///
/// # Shapes
/// As [`SequenceMean`].
///
/// ```
/// use shapesafe::prelude::*;
/// let y = MeanPool.forward(Cpu::default().tensor([[1.0f32], [3.0]]));
/// assert_eq!(y.array(), [2.0]);
/// ```
pub use self::SequenceMean as MeanPool;

impl ZeroSizedModule for SequenceMean {}
impl NonMutableModule for SequenceMean {}

impl<S: StaticDim, F: StaticDim> ShapeInfer<(S, F)> for SequenceMean {
    type Output = (F,);
    const CHECK: () = ();
    const PARAMS: usize = 0;
    fn name() -> String {
        "SequenceMean".to_string()
    }
}

impl<B: Dim, S: Dim, F: Dim, E: Dtype, D: Device<E>, T: Tape<E, D>>
    Module<Tensor<(B, S, F), E, D, T>> for SequenceMean
{
    type Output = Tensor<(B, F), E, D, T>;
    type Error = D::Err;

    fn try_forward(&self, x: Tensor<(B, S, F), E, D, T>) -> Result<Self::Output, D::Err> {
        x.try_mean::<_, Axis<1>>()
    }
}

impl<S: Dim, F: Dim, E: Dtype, D: Device<E>, T: Tape<E, D>> Module<Tensor<(S, F), E, D, T>>
    for SequenceMean
{
    type Output = Tensor<(F,), E, D, T>;
    type Error = D::Err;

    fn try_forward(&self, x: Tensor<(S, F), E, D, T>) -> Result<Self::Output, D::Err> {
        x.try_mean::<_, Axis<0>>()
    }
}

/// A built [`LayerNorm`](builder::LayerNorm) on device `D`.
///
/// # Shapes
/// As [`builder::LayerNorm`].
///
/// ```
/// use shapesafe::prelude::*;
/// let norm = Cpu::default().build_module::<LayerNorm<3>, f32>();
/// assert_eq!((norm.weight.array(), norm.bias.array(), norm.eps), ([1.0; 3], [0.0; 3], 1e-5));
/// ```
#[derive(Debug, Clone)]
pub struct LayerNorm<const D_MODEL: usize, E: Dtype, D: Storage<E>> {
    /// `(D_MODEL,)`, the scale; initialised to one.
    pub weight: Tensor<Rank1<D_MODEL>, E, D>,
    /// `(D_MODEL,)`, the shift; initialised to zero.
    pub bias: Tensor<Rank1<D_MODEL>, E, D>,
    /// Added to the variance; PyTorch's default `1e-5`.
    pub eps: f64,
}

impl<const D_MODEL: usize, E: Dtype, D: Device<E>> BuildOnDevice<D, E>
    for builder::LayerNorm<D_MODEL>
where
    LayerNorm<D_MODEL, E, D>: BuildModule<D, E>,
{
    type Built = LayerNorm<D_MODEL, E, D>;
}

impl<const D_MODEL: usize, E: Dtype, D: Storage<E>> NonMutableModule for LayerNorm<D_MODEL, E, D> {}

impl<const D_MODEL: usize, E: Dtype, D: Device<E>> TensorCollection<E, D>
    for LayerNorm<D_MODEL, E, D>
{
    type To<E2: Dtype, D2: Device<E2>> = LayerNorm<D_MODEL, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::tensor(
                    "weight",
                    |s| &s.weight,
                    |s| &mut s.weight,
                    TensorOptions::reset_to_ones(),
                ),
                Self::tensor(
                    "bias",
                    |s| &s.bias,
                    |s| &mut s.bias,
                    TensorOptions::reset_to_zeros(),
                ),
                Self::scalar(
                    "eps",
                    |s| &s.eps,
                    |s| &mut s.eps,
                    ScalarOptions::from_default(1e-5),
                ),
            ),
            |(weight, bias, eps)| LayerNorm { weight, bias, eps },
        )
    }
}

/// The name of `LayerNorm<D_MODEL>`.
const fn layer_norm_name(d_model: usize) -> Message {
    Message::new().text("LayerNorm<").number(d_model).text(">")
}

impl<const D_MODEL: usize, S: StaticDim, F: StaticDim> ShapeInfer<(S, F)>
    for builder::LayerNorm<D_MODEL>
{
    type Output = (S, Const<D_MODEL>);
    const CHECK: () = check_width(layer_norm_name(D_MODEL), D_MODEL, &[S::SIZE, F::SIZE]);
    const PARAMS: usize = 2 * D_MODEL;
    fn name() -> String {
        layer_norm_name(D_MODEL).as_str().to_string()
    }
}

impl<const D_MODEL: usize, F: StaticDim> ShapeInfer<(F,)> for builder::LayerNorm<D_MODEL> {
    type Output = (Const<D_MODEL>,);
    const CHECK: () = check_width(layer_norm_name(D_MODEL), D_MODEL, &[1, F::SIZE]);
    const PARAMS: usize = 2 * D_MODEL;
    fn name() -> String {
        layer_norm_name(D_MODEL).as_str().to_string()
    }
}

impl<const D_MODEL: usize, E: Dtype, D: Device<E>> LayerNorm<D_MODEL, E, D> {
    /// Normalises the last dim of `(B, S, D_MODEL)`.
    pub(crate) fn norm3<B: Dim, S: Dim, T: Tape<E, D>>(
        &self,
        x: Tensor<(B, S, Const<D_MODEL>), E, D, T>,
    ) -> Result<Tensor<(B, S, Const<D_MODEL>), E, D, T>, D::Err> {
        self.add_norm3::<B, S, T, NoneTape>(x, None)
    }

    /// Normalises the last dim of `a + b` (a residual sum), or of `a`, in one op.
    pub(crate) fn add_norm3<B: Dim, S: Dim, T: Tape<E, D> + Merge<T2>, T2: Tape<E, D>>(
        &self,
        a: Tensor<(B, S, Const<D_MODEL>), E, D, T>,
        b: Option<Tensor<(B, S, Const<D_MODEL>), E, D, T2>>,
    ) -> Result<Tensor<(B, S, Const<D_MODEL>), E, D, T>, D::Err> {
        let shape = *a.shape();
        let rows = (shape.0.size() * shape.1.size(), Const::<D_MODEL>);
        let a = a.try_reshape_like(&rows)?;
        let b = match b {
            Some(b) => Some(b.try_reshape_like(&rows)?),
            None => None,
        };
        let y = crate::kernels::layer_norm::try_add_layer_norm(
            a,
            b,
            &self.weight,
            &self.bias,
            self.eps,
        )?;
        y.try_reshape_like(&shape)
    }
}

impl<const D_MODEL: usize, B: Dim, S: Dim, F: StaticDim, E: Dtype, D: Device<E>, T: Tape<E, D>>
    Module<Tensor<(B, S, F), E, D, T>> for LayerNorm<D_MODEL, E, D>
{
    type Output = Tensor<(B, S, Const<D_MODEL>), E, D, T>;
    type Error = D::Err;

    fn try_forward(&self, x: Tensor<(B, S, F), E, D, T>) -> Result<Self::Output, D::Err> {
        const { <builder::LayerNorm<D_MODEL> as ShapeInfer<(Const<1>, F)>>::CHECK };
        let x: Tensor<(B, S, Const<D_MODEL>), E, D, T> = relabel(x);
        self.norm3(x)
    }
}

impl<const D_MODEL: usize, S: Dim, F: StaticDim, E: Dtype, D: Device<E>, T: Tape<E, D>>
    Module<Tensor<(S, F), E, D, T>> for LayerNorm<D_MODEL, E, D>
{
    type Output = Tensor<(S, Const<D_MODEL>), E, D, T>;
    type Error = D::Err;

    fn try_forward(&self, x: Tensor<(S, F), E, D, T>) -> Result<Self::Output, D::Err> {
        const { <builder::LayerNorm<D_MODEL> as ShapeInfer<(Const<1>, F)>>::CHECK };
        let x: Tensor<(S, Const<D_MODEL>), E, D, T> = relabel(x);
        let s = x.shape().0;
        let y = self.norm3(x.try_reshape_like(&(Const::<1>, s, Const::<D_MODEL>))?)?;
        y.try_reshape_like(&(s, Const::<D_MODEL>))
    }
}

impl<const D_MODEL: usize, F: StaticDim, E: Dtype, D: Device<E>, T: Tape<E, D>>
    Module<Tensor<(F,), E, D, T>> for LayerNorm<D_MODEL, E, D>
{
    type Output = Tensor<(Const<D_MODEL>,), E, D, T>;
    type Error = D::Err;

    fn try_forward(&self, x: Tensor<(F,), E, D, T>) -> Result<Self::Output, D::Err> {
        const { <builder::LayerNorm<D_MODEL> as ShapeInfer<(Const<1>, F)>>::CHECK };
        let x: Tensor<(Const<D_MODEL>,), E, D, T> = relabel(x);
        let y = self.norm3(x.try_reshape_like(&(Const::<1>, Const::<1>, Const::<D_MODEL>))?)?;
        y.try_reshape_like(&(Const::<D_MODEL>,))
    }
}

/// A built [`TransformerEncoderLayer`](builder::TransformerEncoderLayer) on device `D`.
///
/// # Shapes
/// As [`builder::TransformerEncoderLayer`].
///
/// ```
/// use shapesafe::prelude::*;
/// let layer = Cpu::default().build_module::<TransformerEncoderLayer<8, 2, 16, true>, f32>();
/// assert_eq!(layer.dropout, 0.1);
/// assert_eq!(shapesafe::pytorch::tensor_names(&layer)[4], "linear1.weight");
/// ```
#[derive(Debug, Clone)]
pub struct TransformerEncoderLayer<
    const D_MODEL: usize,
    const HEADS: usize,
    const FEED_FORWARD: usize,
    const NORM_FIRST: bool,
    E: Dtype,
    D: Storage<E>,
> {
    /// The self-attention.
    pub self_attn: MultiHeadAttention<D_MODEL, HEADS, E, D>,
    /// The feed-forward block's first layer, `D_MODEL -> FEED_FORWARD`.
    pub linear1: Linear<D_MODEL, FEED_FORWARD, E, D>,
    /// The feed-forward block's second layer, `FEED_FORWARD -> D_MODEL`.
    pub linear2: Linear<FEED_FORWARD, D_MODEL, E, D>,
    /// The norm around the attention.
    pub norm1: LayerNorm<D_MODEL, E, D>,
    /// The norm around the feed-forward block.
    pub norm2: LayerNorm<D_MODEL, E, D>,
    /// Dropout probability of `forward_mut`; PyTorch's default 0.1.
    pub dropout: f64,
}

impl<
        const D_MODEL: usize,
        const HEADS: usize,
        const FEED_FORWARD: usize,
        const NORM_FIRST: bool,
        E: Dtype,
        D: Device<E>,
    > BuildOnDevice<D, E>
    for builder::TransformerEncoderLayer<D_MODEL, HEADS, FEED_FORWARD, NORM_FIRST>
where
    TransformerEncoderLayer<D_MODEL, HEADS, FEED_FORWARD, NORM_FIRST, E, D>: BuildModule<D, E>,
{
    type Built = TransformerEncoderLayer<D_MODEL, HEADS, FEED_FORWARD, NORM_FIRST, E, D>;
}

impl<
        const D_MODEL: usize,
        const HEADS: usize,
        const FEED_FORWARD: usize,
        const NORM_FIRST: bool,
        E,
        D,
    > TensorCollection<E, D>
    for TransformerEncoderLayer<D_MODEL, HEADS, FEED_FORWARD, NORM_FIRST, E, D>
where
    E: Dtype + num_traits::Float + SampleUniform,
    D: Device<E>,
{
    type To<E2: Dtype, D2: Device<E2>> =
        TransformerEncoderLayer<D_MODEL, HEADS, FEED_FORWARD, NORM_FIRST, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::module("self_attn", |s| &s.self_attn, |s| &mut s.self_attn),
                Self::module("linear1", |s| &s.linear1, |s| &mut s.linear1),
                Self::module("linear2", |s| &s.linear2, |s| &mut s.linear2),
                Self::module("norm1", |s| &s.norm1, |s| &mut s.norm1),
                Self::module("norm2", |s| &s.norm2, |s| &mut s.norm2),
                Self::scalar(
                    "dropout",
                    |s| &s.dropout,
                    |s| &mut s.dropout,
                    ScalarOptions::from_default(0.1),
                ),
            ),
            |(self_attn, linear1, linear2, norm1, norm2, dropout)| TransformerEncoderLayer {
                self_attn,
                linear1,
                linear2,
                norm1,
                norm2,
                dropout,
            },
        )
    }
}

/// The parameters of one encoder layer.
pub(crate) const fn encoder_layer_params(d_model: usize, feed_forward: usize) -> usize {
    let attention = 4 * d_model * d_model + 4 * d_model;
    let feed = 2 * d_model * feed_forward + feed_forward + d_model;
    attention + feed + 4 * d_model
}

impl<
        const D_MODEL: usize,
        const HEADS: usize,
        const FEED_FORWARD: usize,
        const NORM_FIRST: bool,
        S: StaticDim,
        F: StaticDim,
    > ShapeInfer<(S, F)>
    for builder::TransformerEncoderLayer<D_MODEL, HEADS, FEED_FORWARD, NORM_FIRST>
{
    type Output = (S, Const<D_MODEL>);
    const CHECK: () = check_attention(
        transformer_encoder_layer_name([D_MODEL, HEADS, FEED_FORWARD], NORM_FIRST),
        D_MODEL,
        HEADS,
        &[S::SIZE, F::SIZE],
    );
    const PARAMS: usize = encoder_layer_params(D_MODEL, FEED_FORWARD);
    fn name() -> String {
        transformer_encoder_layer_name([D_MODEL, HEADS, FEED_FORWARD], NORM_FIRST)
            .as_str()
            .to_string()
    }
}

/// The feed-forward block of a Transformer layer, `linear2(dropout(relu(linear1(x))))`.
pub(crate) fn feed_forward<const D_MODEL: usize, const FEED_FORWARD: usize, B, S, E, D, T>(
    linear1: &Linear<D_MODEL, FEED_FORWARD, E, D>,
    linear2: &Linear<FEED_FORWARD, D_MODEL, E, D>,
    x: Tensor<(B, S, Const<D_MODEL>), E, D, T>,
    dropout: f64,
) -> Result<Tensor<(B, S, Const<D_MODEL>), E, D, T>, D::Err>
where
    B: Dim,
    S: Dim,
    E: Dtype + num_traits::Float,
    D: Device<E>,
    T: Tape<E, D> + Merge<T>,
{
    // The ReLU runs inside linear1's kernel, in the pass that writes its output.
    let h: Tensor<(B, S, Const<FEED_FORWARD>), E, D, T> =
        crate::nn::attention::linear_last(x, &linear1.weight, &linear1.bias, 0, true)?;
    let h = maybe_dropout(h, dropout)?;
    linear2.try_forward(h)
}

/// `x` with dropout `p`, or `x` itself when `p` is 0.
pub(crate) fn maybe_dropout<S: Shape, E: Dtype, D: Device<E>, T: Tape<E, D>>(
    x: Tensor<S, E, D, T>,
    p: f64,
) -> Result<Tensor<S, E, D, T>, D::Err> {
    if p > 0.0 {
        crate::kernels::dropout::try_dropout(x, p)
    } else {
        Ok(x)
    }
}

impl<
        const D_MODEL: usize,
        const HEADS: usize,
        const FEED_FORWARD: usize,
        const NORM_FIRST: bool,
        E,
        D,
    > TransformerEncoderLayer<D_MODEL, HEADS, FEED_FORWARD, NORM_FIRST, E, D>
where
    E: Dtype + num_traits::Float,
    D: Device<E>,
{
    fn feed_forward<B: Dim, S: Dim, T: Tape<E, D> + Merge<T>>(
        &self,
        x: Tensor<(B, S, Const<D_MODEL>), E, D, T>,
        dropout: f64,
    ) -> Result<Tensor<(B, S, Const<D_MODEL>), E, D, T>, D::Err> {
        feed_forward(&self.linear1, &self.linear2, x, dropout)
    }

    /// The layer on `(B, S, D_MODEL)` with masks and dropout `p`.
    pub(crate) fn run<B: Dim, S: Dim, T: Tape<E, D> + Merge<T>>(
        &self,
        x: Tensor<(B, S, Const<D_MODEL>), E, D, T>,
        key_padding_mask: Option<&Tensor<(B, S), bool, D>>,
        causal: bool,
        p: f64,
    ) -> Result<Tensor<(B, S, Const<D_MODEL>), E, D, T>, D::Err> {
        const {
            <builder::TransformerEncoderLayer<D_MODEL, HEADS, FEED_FORWARD, NORM_FIRST> as ShapeInfer<(
                Const<1>,
                Const<D_MODEL>,
            )>>::CHECK
        };
        // The residual input keeps no tape: the sums' backward still reaches it through its id.
        let (x, tape) = x.split_tape();
        let branch = x.clone().put_tape(tape);
        if NORM_FIRST {
            let h = self.norm1.norm3(branch)?;
            let h = self
                .self_attn
                .self_attention(h, key_padding_mask, causal, p)?;
            let x = maybe_dropout(h, p)?.try_add(x)?;
            let (x, tape) = x.split_tape();
            let h = self.norm2.norm3(x.clone().put_tape(tape))?;
            let h = self.feed_forward(h, p)?;
            maybe_dropout(h, p)?.try_add(x)
        } else {
            let h = self
                .self_attn
                .self_attention(branch, key_padding_mask, causal, p)?;
            let x = self.norm1.add_norm3(maybe_dropout(h, p)?, Some(x))?;
            let (x, tape) = x.split_tape();
            let h = self.feed_forward(x.clone().put_tape(tape), p)?;
            self.norm2.add_norm3(maybe_dropout(h, p)?, Some(x))
        }
    }

    /// The layer, with its dropout when `train`.
    pub(crate) fn sequence<B: Dim, S: Dim, T: Tape<E, D> + Merge<T>>(
        &self,
        x: Tensor<(B, S, Const<D_MODEL>), E, D, T>,
        key_padding_mask: Option<&Tensor<(B, S), bool, D>>,
        causal: bool,
        train: bool,
    ) -> Result<Tensor<(B, S, Const<D_MODEL>), E, D, T>, D::Err> {
        let p = if train { self.dropout } else { 0.0 };
        self.run(x, key_padding_mask, causal, p)
    }

    /// The layer with PyTorch's `src_key_padding_mask` (`true` = ignore that key) and a
    /// causal mask (`is_causal`), without dropout.
    ///
    /// # Shapes
    /// `x (B, S, D_MODEL)`, mask `(B, S)` -> `(B, S, D_MODEL)`.
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// let dev = Cpu::default();
    /// let layer = dev.build_module::<TransformerEncoderLayer<4, 2, 8>, f32>();
    /// let x: Tensor<Rank3<1, 3, 4>, f32, _> = dev.sample_normal();
    /// let pad = dev.tensor([[false, false, true]]);
    /// let y = layer.try_forward_masked(x, Some(&pad), false).unwrap();
    /// ```
    pub fn try_forward_masked<B: Dim, S: Dim, T: Tape<E, D> + Merge<T>>(
        &self,
        x: Tensor<(B, S, Const<D_MODEL>), E, D, T>,
        key_padding_mask: Option<&Tensor<(B, S), bool, D>>,
        causal: bool,
    ) -> Result<Tensor<(B, S, Const<D_MODEL>), E, D, T>, D::Err> {
        self.run(x, key_padding_mask, causal, 0.0)
    }
}

/// `Module` and `ModuleMut` on batched and unbatched input for a type with a
/// `sequence(x, mask, causal, train)` on `(B, S, D_MODEL)`; only `forward_mut` trains.
macro_rules! sequence_modules {
    ([$($generics:tt)*], $module:ty, $builder:ty) => {
        impl<$($generics)*, B: Dim, S: Dim, F: StaticDim, E, D, T>
            Module<Tensor<(B, S, F), E, D, T>> for $module
        where
            E: Dtype + num_traits::Float,
            D: Device<E>,
            T: Tape<E, D> + Merge<T>,
        {
            type Output = Tensor<(B, S, Const<D_MODEL>), E, D, T>;
            type Error = D::Err;

            fn try_forward(
                &self,
                x: Tensor<(B, S, F), E, D, T>,
            ) -> Result<Self::Output, D::Err> {
                const { <$builder as ShapeInfer<(Const<1>, F)>>::CHECK };
                let x: Tensor<(B, S, Const<D_MODEL>), E, D, T> = relabel(x);
                self.sequence(x, None, false, false)
            }
        }

        impl<$($generics)*, S: Dim, F: StaticDim, E, D, T> Module<Tensor<(S, F), E, D, T>>
            for $module
        where
            E: Dtype + num_traits::Float,
            D: Device<E>,
            T: Tape<E, D> + Merge<T>,
        {
            type Output = Tensor<(S, Const<D_MODEL>), E, D, T>;
            type Error = D::Err;

            fn try_forward(
                &self,
                x: Tensor<(S, F), E, D, T>,
            ) -> Result<Self::Output, D::Err> {
                const { <$builder as ShapeInfer<(Const<1>, F)>>::CHECK };
                let x: Tensor<(S, Const<D_MODEL>), E, D, T> = relabel(x);
                let s = x.shape().0;
                let x = x.try_reshape_like(&(Const::<1>, s, Const::<D_MODEL>))?;
                self.sequence(x, None, false, false)?
                    .try_reshape_like(&(s, Const::<D_MODEL>))
            }
        }

        impl<$($generics)*, B: Dim, S: Dim, F: StaticDim, E, D, T>
            ModuleMut<Tensor<(B, S, F), E, D, T>> for $module
        where
            E: Dtype + num_traits::Float,
            D: Device<E>,
            T: Tape<E, D> + Merge<T>,
        {
            type Output = Tensor<(B, S, Const<D_MODEL>), E, D, T>;
            type Error = D::Err;

            fn try_forward_mut(
                &mut self,
                x: Tensor<(B, S, F), E, D, T>,
            ) -> Result<Self::Output, D::Err> {
                const { <$builder as ShapeInfer<(Const<1>, F)>>::CHECK };
                let x: Tensor<(B, S, Const<D_MODEL>), E, D, T> = relabel(x);
                self.sequence(x, None, false, true)
            }
        }

        impl<$($generics)*, S: Dim, F: StaticDim, E, D, T> ModuleMut<Tensor<(S, F), E, D, T>>
            for $module
        where
            E: Dtype + num_traits::Float,
            D: Device<E>,
            T: Tape<E, D> + Merge<T>,
        {
            type Output = Tensor<(S, Const<D_MODEL>), E, D, T>;
            type Error = D::Err;

            fn try_forward_mut(
                &mut self,
                x: Tensor<(S, F), E, D, T>,
            ) -> Result<Self::Output, D::Err> {
                const { <$builder as ShapeInfer<(Const<1>, F)>>::CHECK };
                let x: Tensor<(S, Const<D_MODEL>), E, D, T> = relabel(x);
                let s = x.shape().0;
                let x = x.try_reshape_like(&(Const::<1>, s, Const::<D_MODEL>))?;
                self.sequence(x, None, false, true)?
                    .try_reshape_like(&(s, Const::<D_MODEL>))
            }
        }
    };
}

sequence_modules!(
    [
        const D_MODEL: usize,
        const HEADS: usize,
        const FEED_FORWARD: usize,
        const NORM_FIRST: bool
    ],
    TransformerEncoderLayer<D_MODEL, HEADS, FEED_FORWARD, NORM_FIRST, E, D>,
    builder::TransformerEncoderLayer<D_MODEL, HEADS, FEED_FORWARD, NORM_FIRST>
);

/// A built [`TransformerEncoder`](builder::TransformerEncoder) on device `D`.
///
/// # Shapes
/// As [`builder::TransformerEncoder`].
///
/// ```
/// use shapesafe::prelude::*;
/// let encoder = Cpu::default().build_module::<TransformerEncoder<8, 2, 16, 2>, f32>();
/// assert_eq!(encoder.layers.len(), 2);
/// ```
#[derive(Debug, Clone)]
pub struct TransformerEncoder<
    const D_MODEL: usize,
    const HEADS: usize,
    const FEED_FORWARD: usize,
    const LAYERS: usize,
    const NORM_FIRST: bool,
    E: Dtype,
    D: Storage<E>,
> {
    /// The `LAYERS` layers, applied in order.
    pub layers: Vec<TransformerEncoderLayer<D_MODEL, HEADS, FEED_FORWARD, NORM_FIRST, E, D>>,
}

/// `BuildOnDevice` and `TensorCollection` for a stack of `LAYERS` Transformer layers kept
/// in a `layers: Vec<_>` field, visited as `layers.0`, `layers.1`, ... (PyTorch's names).
macro_rules! layer_stack {
    ($stack:ident, $builder:ty) => {
        impl<
                const D_MODEL: usize,
                const HEADS: usize,
                const FEED_FORWARD: usize,
                const LAYERS: usize,
                const NORM_FIRST: bool,
                E: Dtype,
                D: Device<E>,
            > BuildOnDevice<D, E> for $builder
        where
            $stack<D_MODEL, HEADS, FEED_FORWARD, LAYERS, NORM_FIRST, E, D>: BuildModule<D, E>,
        {
            type Built = $stack<D_MODEL, HEADS, FEED_FORWARD, LAYERS, NORM_FIRST, E, D>;
        }

        impl<
                const D_MODEL: usize,
                const HEADS: usize,
                const FEED_FORWARD: usize,
                const LAYERS: usize,
                const NORM_FIRST: bool,
                E,
                D,
            > TensorCollection<E, D>
            for $stack<D_MODEL, HEADS, FEED_FORWARD, LAYERS, NORM_FIRST, E, D>
        where
            E: Dtype + num_traits::Float + SampleUniform,
            D: Device<E>,
        {
            type To<E2: Dtype, D2: Device<E2>> =
                $stack<D_MODEL, HEADS, FEED_FORWARD, LAYERS, NORM_FIRST, E2, D2>;

            fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
                visitor: &mut V,
            ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
                let names: Vec<String> = (0..LAYERS).map(|i| format!("layers.{i}")).collect();
                visitor.visit_fields(
                    names
                        .iter()
                        .enumerate()
                        .map(|(i, name)| {
                            Self::module(name, move |s| &s.layers[i], move |s| &mut s.layers[i])
                        })
                        .collect::<Vec<_>>(),
                    |layers| $stack { layers },
                )
            }
        }
    };
}
pub(crate) use layer_stack;

layer_stack!(
    TransformerEncoder,
    builder::TransformerEncoder<D_MODEL, HEADS, FEED_FORWARD, LAYERS, NORM_FIRST>
);

impl<
        const D_MODEL: usize,
        const HEADS: usize,
        const FEED_FORWARD: usize,
        const LAYERS: usize,
        const NORM_FIRST: bool,
        S: StaticDim,
        F: StaticDim,
    > ShapeInfer<(S, F)>
    for builder::TransformerEncoder<D_MODEL, HEADS, FEED_FORWARD, LAYERS, NORM_FIRST>
{
    type Output = (S, Const<D_MODEL>);
    const CHECK: () = <builder::TransformerEncoderLayer<D_MODEL, HEADS, FEED_FORWARD, NORM_FIRST> as ShapeInfer<(S, F)>>::CHECK;
    const PARAMS: usize = LAYERS * encoder_layer_params(D_MODEL, FEED_FORWARD);
    fn name() -> String {
        let flag = if NORM_FIRST { ", true" } else { "" };
        format!("TransformerEncoder<{D_MODEL}, {HEADS}, {FEED_FORWARD}, {LAYERS}{flag}>")
    }
}

impl<
        const D_MODEL: usize,
        const HEADS: usize,
        const FEED_FORWARD: usize,
        const LAYERS: usize,
        const NORM_FIRST: bool,
        E,
        D,
    > TransformerEncoder<D_MODEL, HEADS, FEED_FORWARD, LAYERS, NORM_FIRST, E, D>
where
    E: Dtype + num_traits::Float,
    D: Device<E>,
{
    /// Every layer in turn, with the same masks, each with its own dropout when `train`.
    pub(crate) fn sequence<B: Dim, S: Dim, T: Tape<E, D> + Merge<T>>(
        &self,
        mut x: Tensor<(B, S, Const<D_MODEL>), E, D, T>,
        key_padding_mask: Option<&Tensor<(B, S), bool, D>>,
        causal: bool,
        train: bool,
    ) -> Result<Tensor<(B, S, Const<D_MODEL>), E, D, T>, D::Err> {
        for layer in &self.layers {
            x = layer.sequence(x, key_padding_mask, causal, train)?;
        }
        Ok(x)
    }

    /// The encoder with PyTorch's `src_key_padding_mask` and a causal mask, without dropout.
    ///
    /// # Shapes
    /// `x (B, S, D_MODEL)`, mask `(B, S)` -> `(B, S, D_MODEL)`.
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// let dev = Cpu::default();
    /// let encoder = dev.build_module::<TransformerEncoder<4, 2, 8, 2>, f32>();
    /// let x: Tensor<Rank3<1, 3, 4>, f32, _> = dev.sample_normal();
    /// let y = encoder.try_forward_masked(x, None, true).unwrap();
    /// ```
    pub fn try_forward_masked<B: Dim, S: Dim, T: Tape<E, D> + Merge<T>>(
        &self,
        x: Tensor<(B, S, Const<D_MODEL>), E, D, T>,
        key_padding_mask: Option<&Tensor<(B, S), bool, D>>,
        causal: bool,
    ) -> Result<Tensor<(B, S, Const<D_MODEL>), E, D, T>, D::Err> {
        self.sequence(x, key_padding_mask, causal, false)
    }
}

sequence_modules!(
    [
        const D_MODEL: usize,
        const HEADS: usize,
        const FEED_FORWARD: usize,
        const LAYERS: usize,
        const NORM_FIRST: bool
    ],
    TransformerEncoder<D_MODEL, HEADS, FEED_FORWARD, LAYERS, NORM_FIRST, E, D>,
    builder::TransformerEncoder<D_MODEL, HEADS, FEED_FORWARD, LAYERS, NORM_FIRST>
);
