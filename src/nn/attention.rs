//! `MultiHeadAttention`: PyTorch's `nn.MultiheadAttention` (batch first) with its parameter names,
//! key-padding and causal masks, and a head count checked against the model width at compile time.
// Signatures spell out the (batch, sequence, width) tensors they take; aliases would hide
// the shapes these layers document.
#![allow(clippy::type_complexity)]

use super::init::uniform_fan_in;
use super::relabel::relabel;
use crate::shape::{check_attention, multi_head_attention_name, Scaled, ShapeInfer, StaticDim};
use dfdx::nn::{BuildModule, BuildOnDevice, Module, ModuleMut};
use dfdx::nn::{ModuleVisitor, ScalarOptions, TensorCollection, TensorOptions};
use dfdx::prelude::*;
use rand_distr::uniform::SampleUniform;
use rand_distr::Uniform;

/// The builder (architecture) type of [`MultiHeadAttention`].
pub mod builder {
    /// Multi-head scaled dot-product attention.
    ///
    /// PyTorch equivalent: `torch.nn.MultiheadAttention(D_MODEL, HEADS, batch_first=True)`,
    /// with the same parameters (`in_proj_weight`, `in_proj_bias`, `out_proj.weight`,
    /// `out_proj.bias`) and the same scaling `1/sqrt(D_MODEL / HEADS)`. A head count that does
    /// not divide the width is a build error:
    ///
    /// ```text
    /// shape mismatch: MultiHeadAttention<100, 3>: 3 heads do not divide the model width 100
    /// ```
    ///
    /// `forward` is self-attention; [`attend`](super::MultiHeadAttention::attend) takes query,
    /// key and value separately, a key-padding mask and a causal flag.
    ///
    /// # Generics
    /// - `D_MODEL`: the width of every token; `HEADS`: the number of heads, dividing `D_MODEL`.
    ///
    /// # Shapes
    /// - `(S, Const<D_MODEL>) -> (S, Const<D_MODEL>)`
    /// - `(B, S, Const<D_MODEL>) -> (B, S, Const<D_MODEL>)`, `B` and `S` `Const` or `usize`.
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// let dev = Cpu::default();
    /// let mha = dev.build_module::<MultiHeadAttention<8, 2>, f32>();
    /// let x: Tensor<Rank3<2, 5, 8>, f32, _> = dev.sample_normal();
    /// let y: Tensor<Rank3<2, 5, 8>, f32, _> = mha.forward(x);
    /// assert_eq!(<MultiHeadAttention<8, 2> as ShapeInfer<Rank2<5, 8>>>::PARAMS, 288);
    /// ```
    ///
    /// ```compile_fail
    /// use shapesafe::prelude::*;
    /// let dev = Cpu::default();
    /// let mha = dev.build_module::<MultiHeadAttention<100, 3>, f32>();
    /// let y = mha.forward(dev.zeros::<Rank2<5, 100>>());
    /// ```
    #[derive(Debug, Clone, Copy, Default)]
    pub struct MultiHeadAttention<const D_MODEL: usize, const HEADS: usize>;
}

/// The packed query, key and value projection's row dim: `3 * D_MODEL`.
pub type InProj<const D_MODEL: usize> = Scaled<Const<D_MODEL>, 3>;

/// A built [`MultiHeadAttention`](builder::MultiHeadAttention) on device `D`.
///
/// # Shapes
/// As [`builder::MultiHeadAttention`].
///
/// ```
/// use shapesafe::prelude::*;
/// let mha = Cpu::default().build_module::<MultiHeadAttention<8, 2>, f64>();
/// assert_eq!(mha.in_proj_weight.shape().concrete(), [24, 8]);
/// assert_eq!(
///     shapesafe::pytorch::tensor_names(&mha),
///     ["in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"]
/// );
/// ```
#[derive(Debug, Clone)]
pub struct MultiHeadAttention<const D_MODEL: usize, const HEADS: usize, E: Dtype, D: Storage<E>> {
    /// `(3 * D_MODEL, D_MODEL)`: the query, key and value projections stacked, as PyTorch;
    /// initialised Xavier-uniform.
    pub in_proj_weight: Tensor<(InProj<D_MODEL>, Const<D_MODEL>), E, D>,
    /// `(3 * D_MODEL,)`; initialised to zero.
    pub in_proj_bias: Tensor<(InProj<D_MODEL>,), E, D>,
    /// The output projection (PyTorch's `out_proj`).
    pub out_proj: OutProjection<D_MODEL, E, D>,
    /// Dropout on the attention weights, applied only by `forward_mut` (PyTorch's `dropout`,
    /// default 0).
    pub dropout: f64,
}

/// The output projection of a [`MultiHeadAttention`]: PyTorch's `out_proj`, a `Linear`
/// whose bias starts at zero.
///
/// # Shapes
/// `weight (D_MODEL, D_MODEL)`, `bias (D_MODEL,)`.
///
/// ```
/// use shapesafe::prelude::*;
/// let mha = Cpu::default().build_module::<MultiHeadAttention<4, 2>, f32>();
/// assert_eq!(mha.out_proj.bias.array(), [0.0; 4]);
/// ```
#[derive(Debug, Clone)]
pub struct OutProjection<const D_MODEL: usize, E: Dtype, D: Storage<E>> {
    /// `(D_MODEL, D_MODEL)`; initialised uniform in `±1/sqrt(D_MODEL)`, as PyTorch's `Linear`.
    pub weight: Tensor<Rank2<D_MODEL, D_MODEL>, E, D>,
    /// `(D_MODEL,)`; initialised to zero, as PyTorch's `MultiheadAttention`.
    pub bias: Tensor<Rank1<D_MODEL>, E, D>,
}

impl<const D_MODEL: usize, E, D> TensorCollection<E, D> for OutProjection<D_MODEL, E, D>
where
    E: Dtype + num_traits::Float + SampleUniform,
    D: Device<E>,
{
    type To<E2: Dtype, D2: Device<E2>> = OutProjection<D_MODEL, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::tensor(
                    "weight",
                    |s| &s.weight,
                    |s| &mut s.weight,
                    TensorOptions::reset_with(|t| uniform_fan_in(t, D_MODEL)),
                ),
                Self::tensor(
                    "bias",
                    |s| &s.bias,
                    |s| &mut s.bias,
                    TensorOptions::reset_to_zeros(),
                ),
            ),
            |(weight, bias)| OutProjection { weight, bias },
        )
    }
}

impl<const D_MODEL: usize, const HEADS: usize, E: Dtype, D: Device<E>> BuildOnDevice<D, E>
    for builder::MultiHeadAttention<D_MODEL, HEADS>
where
    MultiHeadAttention<D_MODEL, HEADS, E, D>: BuildModule<D, E>,
{
    type Built = MultiHeadAttention<D_MODEL, HEADS, E, D>;
}

impl<const D_MODEL: usize, const HEADS: usize, E, D> TensorCollection<E, D>
    for MultiHeadAttention<D_MODEL, HEADS, E, D>
where
    E: Dtype + num_traits::Float + SampleUniform,
    D: Device<E>,
{
    type To<E2: Dtype, D2: Device<E2>> = MultiHeadAttention<D_MODEL, HEADS, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::tensor(
                    "in_proj_weight",
                    |s| &s.in_proj_weight,
                    |s| &mut s.in_proj_weight,
                    TensorOptions::reset_with(|t| {
                        // xavier_uniform_ on the stacked (3D, D) matrix, as PyTorch does.
                        let bound = (6.0 / (4 * D_MODEL).max(1) as f64).sqrt();
                        let bound = E::from(bound).unwrap_or(E::one());
                        t.try_fill_with_distr(Uniform::new(-bound, bound))
                    }),
                ),
                Self::tensor(
                    "in_proj_bias",
                    |s| &s.in_proj_bias,
                    |s| &mut s.in_proj_bias,
                    TensorOptions::reset_to_zeros(),
                ),
                Self::module("out_proj", |s| &s.out_proj, |s| &mut s.out_proj),
                Self::scalar(
                    "dropout",
                    |s| &s.dropout,
                    |s| &mut s.dropout,
                    ScalarOptions::from_default(0.0),
                ),
            ),
            |(in_proj_weight, in_proj_bias, out_proj, dropout)| MultiHeadAttention {
                in_proj_weight,
                in_proj_bias,
                out_proj,
                dropout,
            },
        )
    }
}

impl<const D_MODEL: usize, const HEADS: usize, S: StaticDim, F: StaticDim> ShapeInfer<(S, F)>
    for builder::MultiHeadAttention<D_MODEL, HEADS>
{
    type Output = (S, Const<D_MODEL>);
    const CHECK: () = check_attention(
        multi_head_attention_name(D_MODEL, HEADS),
        D_MODEL,
        HEADS,
        &[S::SIZE, F::SIZE],
    );
    const PARAMS: usize = 4 * D_MODEL * D_MODEL + 4 * D_MODEL;
    fn name() -> String {
        multi_head_attention_name(D_MODEL, HEADS)
            .as_str()
            .to_string()
    }
}

/// `x W^T + b` over the last dim of a `(B, S, IN)` tensor, with rows `first..first + OUT`
/// of `weight` and `bias` (attention's packed `in_proj`, or a whole `out_proj`).
pub(crate) fn linear_last<B, S, WR, const IN: usize, const OUT: usize, E, D, T>(
    x: Tensor<(B, S, Const<IN>), E, D, T>,
    weight: &Tensor<(WR, Const<IN>), E, D>,
    bias: &Tensor<(WR,), E, D>,
    first: usize,
    relu: bool,
) -> Result<Tensor<(B, S, Const<OUT>), E, D, T>, D::Err>
where
    B: Dim,
    S: Dim,
    WR: Dim,
    E: Dtype,
    D: Device<E>,
    T: Tape<E, D>,
{
    let (b, s, _) = *x.shape();
    // One (B * S, IN) product rather than a broadcast batched one.
    let flat = x.try_reshape_like(&(b.size() * s.size(), Const::<IN>))?;
    let y = crate::kernels::linear::try_linear_rows::<_, _, IN, OUT, _, _, _>(
        flat, weight, bias, first, relu,
    )?;
    y.try_reshape_like(&(b, s, Const::<OUT>))
}

impl<const D_MODEL: usize, const HEADS: usize, E, D> MultiHeadAttention<D_MODEL, HEADS, E, D>
where
    E: Dtype + num_traits::Float,
    D: Device<E>,
{
    /// The `part`-th (0 query, 1 key, 2 value) projection of `x`, taped so that its
    /// gradient reaches the packed `in_proj_*` tensors.
    pub(crate) fn project<B: Dim, S: Dim, T: Tape<E, D> + Merge<T>>(
        &self,
        x: Tensor<(B, S, Const<D_MODEL>), E, D, T>,
        part: usize,
    ) -> Result<Tensor<(B, S, Const<D_MODEL>), E, D, T>, D::Err> {
        linear_last(
            x,
            &self.in_proj_weight,
            &self.in_proj_bias,
            part * D_MODEL,
            false,
        )
    }

    /// `out_proj` on the attended tokens.
    pub(crate) fn out_project<B: Dim, S: Dim, T: Tape<E, D>>(
        &self,
        tokens: Tensor<(B, S, Const<D_MODEL>), E, D, T>,
    ) -> Result<Tensor<(B, S, Const<D_MODEL>), E, D, T>, D::Err> {
        linear_last(tokens, &self.out_proj.weight, &self.out_proj.bias, 0, false)
    }

    /// Attention of `query` over `key`/`value`, with `dropout` on the attention weights.
    pub(crate) fn attention<B: Dim, S1: Dim, S2: Dim, T: Tape<E, D> + Merge<T>>(
        &self,
        query: Tensor<(B, S1, Const<D_MODEL>), E, D, T>,
        key: Tensor<(B, S2, Const<D_MODEL>), E, D, T>,
        value: Tensor<(B, S2, Const<D_MODEL>), E, D, T>,
        key_padding_mask: Option<&Tensor<(B, S2), bool, D>>,
        causal: bool,
        dropout: f64,
    ) -> Result<Tensor<(B, S1, Const<D_MODEL>), E, D, T>, D::Err> {
        const {
            <builder::MultiHeadAttention<D_MODEL, HEADS> as ShapeInfer<(
                Const<1>,
                Const<D_MODEL>,
            )>>::CHECK
        };
        let batch = query.shape().0;
        assert_eq!(
            (key.shape().0.size(), key.shape().1.size()),
            (value.shape().0.size(), value.shape().1.size()),
            "MultiHeadAttention: key and value must have the same batch and length"
        );
        assert_eq!(
            batch.size(),
            key.shape().0.size(),
            "MultiHeadAttention: query and key must have the same batch"
        );
        let q = self.project(query, 0)?;
        let k = self.project(key, 1)?;
        let v = self.project(value, 2)?;
        let tokens = self.attend_projected(q, k, v, key_padding_mask, causal, dropout)?;
        self.out_project(tokens)
    }

    /// The heads' scaled dot-product attention of projected queries over projected keys and
    /// values, before `out_proj`: the fused kernel where it applies, dfdx ops elsewhere (and
    /// with dropout on the weights).
    pub(crate) fn attend_projected<B: Dim, S1: Dim, S2: Dim, T: Tape<E, D> + Merge<T>>(
        &self,
        q: Tensor<(B, S1, Const<D_MODEL>), E, D, T>,
        k: Tensor<(B, S2, Const<D_MODEL>), E, D, T>,
        v: Tensor<(B, S2, Const<D_MODEL>), E, D, T>,
        key_padding_mask: Option<&Tensor<(B, S2), bool, D>>,
        causal: bool,
        dropout: f64,
    ) -> Result<Tensor<(B, S1, Const<D_MODEL>), E, D, T>, D::Err> {
        if dropout <= 0.0 && crate::kernels::attention::applies::<E, D>() {
            let tokens =
                crate::kernels::attention::try_attention(q, k, v, HEADS, key_padding_mask, causal)?
                    .expect("the kernel applies to this device and dtype");
            return Ok(tokens);
        }
        let (batch, s1, _) = *q.shape();
        let s2 = k.shape().1;
        let head_dim = D_MODEL / HEADS;
        let v = v
            .try_reshape_like(&(batch, s2, HEADS, head_dim))?
            .try_permute::<_, Axes4<0, 2, 1, 3>>()?;
        let weights = self.head_weights(q, k, key_padding_mask, causal)?;
        let weights = if dropout > 0.0 {
            crate::kernels::dropout::try_dropout(weights, dropout)?
        } else {
            weights
        };
        weights
            .try_matmul(v)?
            .try_permute::<_, Axes4<0, 2, 1, 3>>()?
            .try_reshape_like(&(batch, s1, Const::<D_MODEL>))
    }

    /// Each head's softmax of scaled, masked scores of projected queries over projected keys.
    fn head_weights<B: Dim, S1: Dim, S2: Dim, T: Tape<E, D> + Merge<T>>(
        &self,
        q: Tensor<(B, S1, Const<D_MODEL>), E, D, T>,
        k: Tensor<(B, S2, Const<D_MODEL>), E, D, T>,
        key_padding_mask: Option<&Tensor<(B, S2), bool, D>>,
        causal: bool,
    ) -> Result<Tensor<(B, usize, S1, S2), E, D, T>, D::Err> {
        let (batch, s1, _) = *q.shape();
        let s2 = k.shape().1;
        let head_dim = D_MODEL / HEADS;
        let dev = q.device().clone();
        let q = q
            .try_reshape_like(&(batch, s1, HEADS, head_dim))?
            .try_permute::<_, Axes4<0, 2, 1, 3>>()?;
        let k = k
            .try_reshape_like(&(batch, s2, HEADS, head_dim))?
            .try_permute::<_, Axes4<0, 2, 3, 1>>()?;
        let scale = 1.0 / (head_dim as f64).sqrt();
        let scores = q
            .try_matmul(k)?
            .try_mul(E::from(scale).unwrap_or(E::one()))?;
        let shape = *scores.shape();
        let scores = match additive_mask(&dev, shape, key_padding_mask, causal)? {
            Some(mask) => scores.try_add(mask)?,
            None => scores,
        };
        scores.try_softmax::<Axis<3>>()
    }

    /// The attention weights of `query` over `key`, averaged over the heads: PyTorch's
    /// `mha(query, key, value, need_weights=True)[1]` (`average_attn_weights=True`). Row `i`
    /// holds how much query `i` attends to each key; masked keys get 0.
    ///
    /// # Shapes
    /// `query (B, S1, D_MODEL)`, `key (B, S2, D_MODEL)`, mask `(B, S2)` -> `(B, S1, S2)`.
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// let dev = Cpu::default();
    /// let mha = dev.build_module::<MultiHeadAttention<8, 2>, f64>();
    /// let q: Tensor<Rank3<1, 2, 8>, f64, _> = dev.sample_normal();
    /// let k: Tensor<Rank3<1, 3, 8>, f64, _> = dev.sample_normal();
    /// let pad = dev.tensor([[false, false, true]]);
    /// let w = mha.try_attention_weights(q, k, Some(&pad), false)?.as_vec();
    /// assert!((w[0] + w[1] - 1.0).abs() < 1e-12 && w[2] == 0.0);
    /// # Ok::<(), CpuError>(())
    /// ```
    pub fn try_attention_weights<B: Dim, S1: Dim, S2: Dim>(
        &self,
        query: Tensor<(B, S1, Const<D_MODEL>), E, D>,
        key: Tensor<(B, S2, Const<D_MODEL>), E, D>,
        key_padding_mask: Option<&Tensor<(B, S2), bool, D>>,
        causal: bool,
    ) -> Result<Tensor<(B, S1, S2), E, D>, D::Err> {
        let q = self.project(query, 0)?;
        let k = self.project(key, 1)?;
        self.projected_attention_weights(q, k, key_padding_mask, causal)
    }

    /// [`try_attention_weights`](Self::try_attention_weights) of queries and keys already
    /// projected (as a generation cache holds them).
    pub(crate) fn projected_attention_weights<B: Dim, S1: Dim, S2: Dim>(
        &self,
        q: Tensor<(B, S1, Const<D_MODEL>), E, D>,
        k: Tensor<(B, S2, Const<D_MODEL>), E, D>,
        key_padding_mask: Option<&Tensor<(B, S2), bool, D>>,
        causal: bool,
    ) -> Result<Tensor<(B, S1, S2), E, D>, D::Err> {
        self.head_weights(q, k, key_padding_mask, causal)?
            .try_mean::<_, Axis<1>>()
    }

    /// Attention of `query` over `key` and `value` (PyTorch's `mha(query, key, value,
    /// key_padding_mask=..., attn_mask=causal)[0]`).
    ///
    /// `key_padding_mask` marks with `true` the keys to ignore, as PyTorch; `causal` lets
    /// query `i` attend only to keys `j <= i`. A query that may attend to no key gives NaN,
    /// as in PyTorch. Panics if key and value differ in batch or length.
    ///
    /// # Shapes
    /// `query (B, S1, D_MODEL)`, `key`/`value (B, S2, D_MODEL)`, mask `(B, S2)` -> `(B, S1, D_MODEL)`.
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// let dev = Cpu::default();
    /// let mha = dev.build_module::<MultiHeadAttention<8, 2>, f64>();
    /// let q: Tensor<Rank3<2, 3, 8>, f64, _> = dev.sample_normal();
    /// let kv: Tensor<Rank3<2, 4, 8>, f64, _> = dev.sample_normal();
    /// let pad = dev.tensor([[false, false, true, true], [false, false, false, false]]);
    /// let y = mha.attend(q, kv.clone(), kv, Some(&pad), false);
    /// assert_eq!(y.shape().concrete(), [2, 3, 8]);
    /// ```
    pub fn try_attend<B: Dim, S1: Dim, S2: Dim, T: Tape<E, D> + Merge<T>>(
        &self,
        query: Tensor<(B, S1, Const<D_MODEL>), E, D, T>,
        key: Tensor<(B, S2, Const<D_MODEL>), E, D, T>,
        value: Tensor<(B, S2, Const<D_MODEL>), E, D, T>,
        key_padding_mask: Option<&Tensor<(B, S2), bool, D>>,
        causal: bool,
    ) -> Result<Tensor<(B, S1, Const<D_MODEL>), E, D, T>, D::Err> {
        self.attention(query, key, value, key_padding_mask, causal, 0.0)
    }

    /// [`try_attend`](Self::try_attend), panicking on a device error.
    ///
    /// # Shapes
    /// As [`try_attend`](Self::try_attend).
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// let dev = Cpu::default();
    /// let mha = dev.build_module::<MultiHeadAttention<4, 4>, f32>();
    /// let x: Tensor<(Const<1>, usize, Const<4>), f32, _> = dev.sample_normal_like(&(Const, 6, Const));
    /// let y = mha.attend(x.clone(), x.clone(), x, None, true);
    /// assert_eq!(y.shape().concrete(), [1, 6, 4]);
    /// ```
    pub fn attend<B: Dim, S1: Dim, S2: Dim, T: Tape<E, D> + Merge<T>>(
        &self,
        query: Tensor<(B, S1, Const<D_MODEL>), E, D, T>,
        key: Tensor<(B, S2, Const<D_MODEL>), E, D, T>,
        value: Tensor<(B, S2, Const<D_MODEL>), E, D, T>,
        key_padding_mask: Option<&Tensor<(B, S2), bool, D>>,
        causal: bool,
    ) -> Tensor<(B, S1, Const<D_MODEL>), E, D, T> {
        match self.try_attend(query, key, value, key_padding_mask, causal) {
            Ok(y) => y,
            Err(e) => panic!("MultiHeadAttention: device error: {e:?}"),
        }
    }

    /// Self-attention of `x` with masks: [`try_attend`](Self::try_attend)`(x, x, x, ..)`.
    ///
    /// # Shapes
    /// `x (B, S, D_MODEL)`, mask `(B, S)` -> `(B, S, D_MODEL)`.
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// let dev = Cpu::default();
    /// let mha = dev.build_module::<MultiHeadAttention<8, 2>, f32>();
    /// let x: Tensor<Rank3<1, 3, 8>, f32, _> = dev.sample_normal();
    /// let y = mha.try_self_attend(x, None, true).unwrap();
    /// ```
    pub fn try_self_attend<B: Dim, S: Dim, T: Tape<E, D> + Merge<T>>(
        &self,
        x: Tensor<(B, S, Const<D_MODEL>), E, D, T>,
        key_padding_mask: Option<&Tensor<(B, S), bool, D>>,
        causal: bool,
    ) -> Result<Tensor<(B, S, Const<D_MODEL>), E, D, T>, D::Err> {
        self.self_attention(x, key_padding_mask, causal, 0.0)
    }

    pub(crate) fn self_attention<B: Dim, S: Dim, T: Tape<E, D> + Merge<T>>(
        &self,
        x: Tensor<(B, S, Const<D_MODEL>), E, D, T>,
        key_padding_mask: Option<&Tensor<(B, S), bool, D>>,
        causal: bool,
        dropout: f64,
    ) -> Result<Tensor<(B, S, Const<D_MODEL>), E, D, T>, D::Err> {
        // One tape: the key and value copies' gradients land on x through its id.
        let (x, tape) = x.split_tape();
        let query = x.clone().put_tape(tape);
        let key = x.clone().retaped::<T>();
        let value = x.retaped::<T>();
        self.attention(query, key, value, key_padding_mask, causal, dropout)
    }
}

/// The additive mask (`0` or `-inf`) of the attention scores `(B, HEADS, S1, S2)`, if any.
#[allow(clippy::type_complexity)]
fn additive_mask<B: Dim, S1: Dim, S2: Dim, E, D>(
    dev: &D,
    shape: (B, usize, S1, S2),
    key_padding_mask: Option<&Tensor<(B, S2), bool, D>>,
    causal: bool,
) -> Result<Option<Tensor<(B, usize, S1, S2), E, D>>, D::Err>
where
    E: Dtype + num_traits::Float,
    D: Device<E>,
{
    let (batch, _, s1, s2) = shape;
    let mut mask: Option<Tensor<(B, usize, S1, S2), E, D>> = None;
    if let Some(pad) = key_padding_mask {
        let ignored = dev
            .try_ones_like(&(batch, s2))?
            .try_mul(E::neg_infinity())?;
        let kept = dev.try_zeros_like(&(batch, s2))?;
        let pad = pad.clone().try_choose(ignored, kept)?;
        mask = Some(pad.try_broadcast_like::<_, Axes2<1, 2>>(&shape)?);
    }
    if causal {
        let values: Vec<E> = (0..s1.size())
            .flat_map(|i| {
                (0..s2.size()).map(move |j| if j > i { E::neg_infinity() } else { E::zero() })
            })
            .collect();
        let future = dev
            .try_tensor_from_vec(values, (s1, s2))?
            .try_broadcast_like::<_, Axes2<0, 1>>(&shape)?;
        mask = Some(match mask {
            Some(m) => m.try_add(future)?,
            None => future,
        });
    }
    Ok(mask)
}

impl<const D_MODEL: usize, const HEADS: usize, B: Dim, S: Dim, F: StaticDim, E, D, T>
    Module<Tensor<(B, S, F), E, D, T>> for MultiHeadAttention<D_MODEL, HEADS, E, D>
where
    E: Dtype + num_traits::Float,
    D: Device<E>,
    T: Tape<E, D> + Merge<T>,
{
    type Output = Tensor<(B, S, Const<D_MODEL>), E, D, T>;
    type Error = D::Err;

    fn try_forward(&self, x: Tensor<(B, S, F), E, D, T>) -> Result<Self::Output, D::Err> {
        const { <builder::MultiHeadAttention<D_MODEL, HEADS> as ShapeInfer<(Const<1>, F)>>::CHECK };
        let x: Tensor<(B, S, Const<D_MODEL>), E, D, T> = relabel(x);
        self.self_attention(x, None, false, 0.0)
    }
}

impl<const D_MODEL: usize, const HEADS: usize, S: Dim, F: StaticDim, E, D, T>
    Module<Tensor<(S, F), E, D, T>> for MultiHeadAttention<D_MODEL, HEADS, E, D>
where
    E: Dtype + num_traits::Float,
    D: Device<E>,
    T: Tape<E, D> + Merge<T>,
{
    type Output = Tensor<(S, Const<D_MODEL>), E, D, T>;
    type Error = D::Err;

    fn try_forward(&self, x: Tensor<(S, F), E, D, T>) -> Result<Self::Output, D::Err> {
        const { <builder::MultiHeadAttention<D_MODEL, HEADS> as ShapeInfer<(Const<1>, F)>>::CHECK };
        let x: Tensor<(S, Const<D_MODEL>), E, D, T> = relabel(x);
        let s = x.shape().0;
        let x = x.try_reshape_like(&(Const::<1>, s, Const::<D_MODEL>))?;
        self.try_forward(x)?
            .try_reshape_like(&(s, Const::<D_MODEL>))
    }
}

impl<const D_MODEL: usize, const HEADS: usize, B: Dim, S: Dim, F: StaticDim, E, D, T>
    ModuleMut<Tensor<(B, S, F), E, D, T>> for MultiHeadAttention<D_MODEL, HEADS, E, D>
where
    E: Dtype + num_traits::Float,
    D: Device<E>,
    T: Tape<E, D> + Merge<T>,
{
    type Output = Tensor<(B, S, Const<D_MODEL>), E, D, T>;
    type Error = D::Err;

    fn try_forward_mut(&mut self, x: Tensor<(B, S, F), E, D, T>) -> Result<Self::Output, D::Err> {
        const { <builder::MultiHeadAttention<D_MODEL, HEADS> as ShapeInfer<(Const<1>, F)>>::CHECK };
        let x: Tensor<(B, S, Const<D_MODEL>), E, D, T> = relabel(x);
        self.self_attention(x, None, false, self.dropout)
    }
}

impl<const D_MODEL: usize, const HEADS: usize, S: Dim, F: StaticDim, E, D, T>
    ModuleMut<Tensor<(S, F), E, D, T>> for MultiHeadAttention<D_MODEL, HEADS, E, D>
where
    E: Dtype + num_traits::Float,
    D: Device<E>,
    T: Tape<E, D> + Merge<T>,
{
    type Output = Tensor<(S, Const<D_MODEL>), E, D, T>;
    type Error = D::Err;

    fn try_forward_mut(&mut self, x: Tensor<(S, F), E, D, T>) -> Result<Self::Output, D::Err> {
        const { <builder::MultiHeadAttention<D_MODEL, HEADS> as ShapeInfer<(Const<1>, F)>>::CHECK };
        let x: Tensor<(S, Const<D_MODEL>), E, D, T> = relabel(x);
        let s = x.shape().0;
        let x = x.try_reshape_like(&(Const::<1>, s, Const::<D_MODEL>))?;
        let y = self.self_attention(x, None, false, self.dropout)?;
        y.try_reshape_like(&(s, Const::<D_MODEL>))
    }
}
