//! `TransformerDecoderLayer`: self-attention on the target, attention to the encoder's memory,
//! and a feed-forward block, as `torch.nn.TransformerDecoderLayer`.
// Signatures spell out the (batch, sequence, width) tensors they take; aliases would hide
// the shapes these layers document.
#![allow(clippy::type_complexity)]

use super::attention::MultiHeadAttention;
use super::linear::Linear;
use super::relabel::relabel;
use super::transformer::{
    encoder_layer_params, feed_forward, layer_stack, maybe_dropout, LayerNorm,
};
use crate::shape::{
    check_attention, check_input_width, transformer_decoder_layer_name, ShapeInfer, StaticDim,
};
use dfdx::nn::{BuildModule, BuildOnDevice, Module, ModuleMut};
use dfdx::nn::{ModuleVisitor, ScalarOptions, TensorCollection};
use dfdx::prelude::*;
use rand_distr::uniform::SampleUniform;

/// The builder (architecture) type of [`TransformerDecoderLayer`].
pub mod builder {
    /// One Transformer decoder layer: causal-or-not self-attention on the target, attention
    /// from the target to a memory (the encoder's output, of any length), and a feed-forward
    /// block `linear2(relu(linear1(x)))`, each with a residual sum and a layer norm (after
    /// the sum, or before the branch when `NORM_FIRST`).
    ///
    /// PyTorch equivalent: `nn.TransformerDecoderLayer(D_MODEL, HEADS, FEED_FORWARD,
    /// dropout=0.1, activation="relu", batch_first=True, norm_first=NORM_FIRST)`, with its
    /// parameter names (`self_attn`, `multihead_attn`, `linear1`, `linear2`, `norm1`..`norm3`),
    /// so state dicts load by name. `forward` on `(tgt, memory)` is PyTorch's
    /// `layer(tgt, memory)`; masks go through
    /// [`try_forward_masked`](super::TransformerDecoderLayer::try_forward_masked).
    /// `forward_mut` applies the layer's dropout (PyTorch's 0.1 by default).
    ///
    /// `HEADS` must divide `D_MODEL`, the target must have width `D_MODEL` (any dim of that
    /// size) and so must the memory; each is checked at compile time.
    ///
    /// # Shapes
    /// `(tgt (B, S1, D_MODEL), memory (B, S2, D_MODEL)) -> (B, S1, D_MODEL)`, `B`, `S1` and
    /// `S2` each a `Const` or `usize`.
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// let dev = Cpu::default();
    /// let layer = dev.build_module::<TransformerDecoderLayer<8, 2, 16>, f32>();
    /// let tgt: Tensor<Rank3<2, 3, 8>, f32, _> = dev.sample_normal();
    /// let memory: Tensor<Rank3<2, 5, 8>, f32, _> = dev.sample_normal();
    /// let y = layer.forward((tgt, memory));
    /// assert_eq!(y.shape().concrete(), [2, 3, 8]);
    /// shapesafe::assert_shapes!(TransformerDecoderLayer<8, 2, 16>: Rank2<3, 8> => Rank2<3, 8>,
    ///     params = 2 * (4 * 64 + 32) + 2 * 8 * 16 + 16 + 8 + 3 * 16);
    /// ```
    #[derive(Debug, Clone, Copy, Default)]
    pub struct TransformerDecoderLayer<
        const D_MODEL: usize,
        const HEADS: usize,
        const FEED_FORWARD: usize,
        const NORM_FIRST: bool = false,
    >;

    /// `LAYERS` [`TransformerDecoderLayer`]s in turn, each attending to the same memory.
    ///
    /// PyTorch equivalent: `nn.TransformerDecoder(decoder_layer, LAYERS)` (no final norm;
    /// parameters `layers.0.self_attn.in_proj_weight`, ...).
    ///
    /// # Shapes
    /// `(tgt (B, S1, D_MODEL), memory (B, S2, D_MODEL)) -> (B, S1, D_MODEL)`.
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// let dev = Cpu::default();
    /// let decoder = dev.build_module::<TransformerDecoder<8, 2, 16, 2>, f32>();
    /// let tgt: Tensor<Rank3<2, 3, 8>, f32, _> = dev.sample_normal();
    /// let memory: Tensor<Rank3<2, 5, 8>, f32, _> = dev.sample_normal();
    /// assert_eq!(decoder.forward((tgt, memory)).shape().concrete(), [2, 3, 8]);
    /// ```
    #[derive(Debug, Clone, Copy, Default)]
    pub struct TransformerDecoder<
        const D_MODEL: usize,
        const HEADS: usize,
        const FEED_FORWARD: usize,
        const LAYERS: usize,
        const NORM_FIRST: bool = false,
    >;
}

/// A built [`TransformerDecoderLayer`](builder::TransformerDecoderLayer) on device `D`.
///
/// # Shapes
/// As [`builder::TransformerDecoderLayer`].
///
/// ```
/// use shapesafe::prelude::*;
/// let layer = Cpu::default().build_module::<TransformerDecoderLayer<8, 2, 16>, f32>();
/// assert_eq!(shapesafe::pytorch::tensor_names(&layer)[4], "multihead_attn.in_proj_weight");
/// ```
#[derive(Debug, Clone)]
pub struct TransformerDecoderLayer<
    const D_MODEL: usize,
    const HEADS: usize,
    const FEED_FORWARD: usize,
    const NORM_FIRST: bool,
    E: Dtype,
    D: Storage<E>,
> {
    /// The target's self-attention.
    pub self_attn: MultiHeadAttention<D_MODEL, HEADS, E, D>,
    /// The target's attention to the memory.
    pub multihead_attn: MultiHeadAttention<D_MODEL, HEADS, E, D>,
    /// The feed-forward block's first layer, `D_MODEL -> FEED_FORWARD`.
    pub linear1: Linear<D_MODEL, FEED_FORWARD, E, D>,
    /// The feed-forward block's second layer, `FEED_FORWARD -> D_MODEL`.
    pub linear2: Linear<FEED_FORWARD, D_MODEL, E, D>,
    /// The norm around the self-attention.
    pub norm1: LayerNorm<D_MODEL, E, D>,
    /// The norm around the attention to the memory.
    pub norm2: LayerNorm<D_MODEL, E, D>,
    /// The norm around the feed-forward block.
    pub norm3: LayerNorm<D_MODEL, E, D>,
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
    for builder::TransformerDecoderLayer<D_MODEL, HEADS, FEED_FORWARD, NORM_FIRST>
where
    TransformerDecoderLayer<D_MODEL, HEADS, FEED_FORWARD, NORM_FIRST, E, D>: BuildModule<D, E>,
{
    type Built = TransformerDecoderLayer<D_MODEL, HEADS, FEED_FORWARD, NORM_FIRST, E, D>;
}

impl<
        const D_MODEL: usize,
        const HEADS: usize,
        const FEED_FORWARD: usize,
        const NORM_FIRST: bool,
        E,
        D,
    > TensorCollection<E, D>
    for TransformerDecoderLayer<D_MODEL, HEADS, FEED_FORWARD, NORM_FIRST, E, D>
where
    E: Dtype + num_traits::Float + SampleUniform,
    D: Device<E>,
{
    type To<E2: Dtype, D2: Device<E2>> =
        TransformerDecoderLayer<D_MODEL, HEADS, FEED_FORWARD, NORM_FIRST, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        // PyTorch's state-dict order: both attentions, the feed-forward, the norms.
        visitor.visit_fields(
            (
                Self::module("self_attn", |s| &s.self_attn, |s| &mut s.self_attn),
                Self::module(
                    "multihead_attn",
                    |s| &s.multihead_attn,
                    |s| &mut s.multihead_attn,
                ),
                Self::module("linear1", |s| &s.linear1, |s| &mut s.linear1),
                Self::module("linear2", |s| &s.linear2, |s| &mut s.linear2),
                (
                    Self::module("norm1", |s| &s.norm1, |s| &mut s.norm1),
                    Self::module("norm2", |s| &s.norm2, |s| &mut s.norm2),
                    Self::module("norm3", |s| &s.norm3, |s| &mut s.norm3),
                ),
                Self::scalar(
                    "dropout",
                    |s| &s.dropout,
                    |s| &mut s.dropout,
                    ScalarOptions::from_default(0.1),
                ),
            ),
            |(self_attn, multihead_attn, linear1, linear2, (norm1, norm2, norm3), dropout)| {
                TransformerDecoderLayer {
                    self_attn,
                    multihead_attn,
                    linear1,
                    linear2,
                    norm1,
                    norm2,
                    norm3,
                    dropout,
                }
            },
        )
    }
}

/// The parameters of one decoder layer: an encoder layer's, a second attention and a third norm.
pub(crate) const fn decoder_layer_params(d_model: usize, feed_forward: usize) -> usize {
    encoder_layer_params(d_model, feed_forward) + 4 * d_model * d_model + 4 * d_model + 2 * d_model
}

/// Shape inference on the target `(sequence, width)`; the memory is a second input that
/// `forward` checks against `D_MODEL`.
impl<
        const D_MODEL: usize,
        const HEADS: usize,
        const FEED_FORWARD: usize,
        const NORM_FIRST: bool,
        S: StaticDim,
        F: StaticDim,
    > ShapeInfer<(S, F)>
    for builder::TransformerDecoderLayer<D_MODEL, HEADS, FEED_FORWARD, NORM_FIRST>
{
    type Output = (S, Const<D_MODEL>);
    const CHECK: () = check_attention(
        transformer_decoder_layer_name([D_MODEL, HEADS, FEED_FORWARD], NORM_FIRST),
        D_MODEL,
        HEADS,
        &[S::SIZE, F::SIZE],
    );
    const PARAMS: usize = decoder_layer_params(D_MODEL, FEED_FORWARD);
    fn name() -> String {
        transformer_decoder_layer_name([D_MODEL, HEADS, FEED_FORWARD], NORM_FIRST)
            .as_str()
            .to_string()
    }
}

impl<
        const D_MODEL: usize,
        const HEADS: usize,
        const FEED_FORWARD: usize,
        const NORM_FIRST: bool,
        E,
        D,
    > TransformerDecoderLayer<D_MODEL, HEADS, FEED_FORWARD, NORM_FIRST, E, D>
where
    E: Dtype + num_traits::Float,
    D: Device<E>,
{
    /// The target's attention to the memory (which keeps no tape: the attention's backward
    /// reaches it through its id, on the target's tape).
    fn cross<B: Dim, S1: Dim, S2: Dim, T: Tape<E, D> + Merge<T>>(
        &self,
        x: Tensor<(B, S1, Const<D_MODEL>), E, D, T>,
        memory: &Tensor<(B, S2, Const<D_MODEL>), E, D>,
        memory_key_padding_mask: Option<&Tensor<(B, S2), bool, D>>,
        p: f64,
    ) -> Result<Tensor<(B, S1, Const<D_MODEL>), E, D, T>, D::Err> {
        let key = memory.clone().retaped::<T>();
        let value = memory.clone().retaped::<T>();
        self.multihead_attn
            .attention(x, key, value, memory_key_padding_mask, false, p)
    }

    /// The layer on `(B, S1, D_MODEL)` attending to `(B, S2, D_MODEL)`, with masks and dropout `p`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn run<B: Dim, S1: Dim, S2: Dim, T, T2>(
        &self,
        tgt: Tensor<(B, S1, Const<D_MODEL>), E, D, T>,
        memory: Tensor<(B, S2, Const<D_MODEL>), E, D, T2>,
        tgt_key_padding_mask: Option<&Tensor<(B, S1), bool, D>>,
        memory_key_padding_mask: Option<&Tensor<(B, S2), bool, D>>,
        causal: bool,
        p: f64,
    ) -> Result<Tensor<(B, S1, Const<D_MODEL>), E, D, T>, D::Err>
    where
        T: Tape<E, D> + Merge<T> + Merge<T2>,
        T2: Tape<E, D>,
    {
        const {
            <builder::TransformerDecoderLayer<D_MODEL, HEADS, FEED_FORWARD, NORM_FIRST> as ShapeInfer<(
                Const<1>,
                Const<D_MODEL>,
            )>>::CHECK
        };
        // One tape for the whole layer: the memory's ops (the encoder's) join the target's.
        let (memory, memory_tape) = memory.split_tape();
        let (x, tape) = tgt.split_tape();
        let branch = x.clone().put_tape(tape.merge(memory_tape));
        let mask = tgt_key_padding_mask;
        let memory_mask = memory_key_padding_mask;
        if NORM_FIRST {
            let h = self.norm1.norm3(branch)?;
            let h = self.self_attn.self_attention(h, mask, causal, p)?;
            let x = maybe_dropout(h, p)?.try_add(x)?;
            let (x, tape) = x.split_tape();
            let h = self.norm2.norm3(x.clone().put_tape(tape))?;
            let h = self.cross(h, &memory, memory_mask, p)?;
            let x = maybe_dropout(h, p)?.try_add(x)?;
            let (x, tape) = x.split_tape();
            let h = self.norm3.norm3(x.clone().put_tape(tape))?;
            let h = feed_forward(&self.linear1, &self.linear2, h, p)?;
            maybe_dropout(h, p)?.try_add(x)
        } else {
            let h = self.self_attn.self_attention(branch, mask, causal, p)?;
            let x = self.norm1.add_norm3(maybe_dropout(h, p)?, Some(x))?;
            let (x, tape) = x.split_tape();
            let h = self.cross(x.clone().put_tape(tape), &memory, memory_mask, p)?;
            let x = self.norm2.add_norm3(maybe_dropout(h, p)?, Some(x))?;
            let (x, tape) = x.split_tape();
            let h = feed_forward(&self.linear1, &self.linear2, x.clone().put_tape(tape), p)?;
            self.norm3.add_norm3(maybe_dropout(h, p)?, Some(x))
        }
    }

    /// The layer with PyTorch's masks and without dropout: `tgt_key_padding_mask` and
    /// `memory_key_padding_mask` mark with `true` the positions to ignore, and `causal`
    /// (PyTorch's `tgt_mask` from `generate_square_subsequent_mask`, `tgt_is_causal=True`)
    /// lets target position `i` attend only to positions `j <= i`.
    ///
    /// # Shapes
    /// `tgt (B, S1, D_MODEL)`, `memory (B, S2, D_MODEL)`, masks `(B, S1)` and `(B, S2)` ->
    /// `(B, S1, D_MODEL)`.
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// let dev = Cpu::default();
    /// let layer = dev.build_module::<TransformerDecoderLayer<4, 2, 8>, f32>();
    /// let tgt: Tensor<Rank3<1, 3, 4>, f32, _> = dev.sample_normal();
    /// let memory: Tensor<Rank3<1, 2, 4>, f32, _> = dev.sample_normal();
    /// let pad = dev.tensor([[false, true]]);
    /// let y = layer.try_forward_masked(tgt, memory, None, Some(&pad), true)?;
    /// assert_eq!(y.shape().concrete(), [1, 3, 4]);
    /// # Ok::<(), CpuError>(())
    /// ```
    pub fn try_forward_masked<B: Dim, S1: Dim, S2: Dim, T, T2>(
        &self,
        tgt: Tensor<(B, S1, Const<D_MODEL>), E, D, T>,
        memory: Tensor<(B, S2, Const<D_MODEL>), E, D, T2>,
        tgt_key_padding_mask: Option<&Tensor<(B, S1), bool, D>>,
        memory_key_padding_mask: Option<&Tensor<(B, S2), bool, D>>,
        causal: bool,
    ) -> Result<Tensor<(B, S1, Const<D_MODEL>), E, D, T>, D::Err>
    where
        T: Tape<E, D> + Merge<T> + Merge<T2>,
        T2: Tape<E, D>,
    {
        self.run(
            tgt,
            memory,
            tgt_key_padding_mask,
            memory_key_padding_mask,
            causal,
            0.0,
        )
    }

    /// [`try_forward_masked`](Self::try_forward_masked) with the layer's dropout, as in training.
    ///
    /// # Shapes
    /// As [`try_forward_masked`](Self::try_forward_masked).
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// let dev = Cpu::default();
    /// let mut layer = dev.build_module::<TransformerDecoderLayer<4, 2, 8>, f32>();
    /// layer.dropout = 0.0;
    /// let tgt: Tensor<Rank3<1, 3, 4>, f32, _> = dev.sample_normal();
    /// let memory: Tensor<Rank3<1, 2, 4>, f32, _> = dev.sample_normal();
    /// let a = layer.try_forward_masked_mut(tgt.clone(), memory.clone(), None, None, true)?;
    /// let b = layer.try_forward_masked(tgt, memory, None, None, true)?;
    /// assert_eq!(a.as_vec(), b.as_vec());
    /// # Ok::<(), CpuError>(())
    /// ```
    pub fn try_forward_masked_mut<B: Dim, S1: Dim, S2: Dim, T, T2>(
        &mut self,
        tgt: Tensor<(B, S1, Const<D_MODEL>), E, D, T>,
        memory: Tensor<(B, S2, Const<D_MODEL>), E, D, T2>,
        tgt_key_padding_mask: Option<&Tensor<(B, S1), bool, D>>,
        memory_key_padding_mask: Option<&Tensor<(B, S2), bool, D>>,
        causal: bool,
    ) -> Result<Tensor<(B, S1, Const<D_MODEL>), E, D, T>, D::Err>
    where
        T: Tape<E, D> + Merge<T> + Merge<T2>,
        T2: Tape<E, D>,
    {
        let p = self.dropout;
        self.run(
            tgt,
            memory,
            tgt_key_padding_mask,
            memory_key_padding_mask,
            causal,
            p,
        )
    }
}

/// `Module` (inference) and `ModuleMut` (with dropout) on `(tgt, memory)` for a decoder
/// type with `try_forward_masked(_mut)`, each input of any dims of the right widths,
/// checked at compile time.
macro_rules! decoder_modules {
    ([$($generics:tt)*], $module:ty, $builder:ty) => {
        decoder_modules!(@one [$($generics)*], $module, $builder, Module, try_forward, try_forward_masked, &);
        decoder_modules!(@one [$($generics)*], $module, $builder, ModuleMut, try_forward_mut, try_forward_masked_mut, &mut);
    };
    (@one [$($generics:tt)*], $module:ty, $builder:ty, $Trait:ident, $method:ident, $run:ident, $($self_ref:tt)+) => {
        impl<$($generics)*, B: Dim, S1: Dim, S2: Dim, F1: StaticDim, F2: StaticDim, E, D, T, T2>
            $Trait<(Tensor<(B, S1, F1), E, D, T>, Tensor<(B, S2, F2), E, D, T2>)> for $module
        where
            E: Dtype + num_traits::Float,
            D: Device<E>,
            T: Tape<E, D> + Merge<T> + Merge<T2>,
            T2: Tape<E, D>,
        {
            type Output = Tensor<(B, S1, Const<D_MODEL>), E, D, T>;
            type Error = D::Err;

            fn $method(
                $($self_ref)+ self,
                (tgt, memory): (Tensor<(B, S1, F1), E, D, T>, Tensor<(B, S2, F2), E, D, T2>),
            ) -> Result<Self::Output, D::Err> {
                const { <$builder as ShapeInfer<(Const<1>, F1)>>::CHECK };
                const {
                    check_input_width(
                        transformer_decoder_layer_name([D_MODEL, HEADS, FEED_FORWARD], NORM_FIRST),
                        "memory",
                        D_MODEL,
                        F2::SIZE,
                    )
                };
                let tgt: Tensor<(B, S1, Const<D_MODEL>), E, D, T> = relabel(tgt);
                let memory: Tensor<(B, S2, Const<D_MODEL>), E, D, T2> = relabel(memory);
                self.$run(tgt, memory, None, None, false)
            }
        }
    };
}

decoder_modules!(
    [
        const D_MODEL: usize,
        const HEADS: usize,
        const FEED_FORWARD: usize,
        const NORM_FIRST: bool
    ],
    TransformerDecoderLayer<D_MODEL, HEADS, FEED_FORWARD, NORM_FIRST, E, D>,
    builder::TransformerDecoderLayer<D_MODEL, HEADS, FEED_FORWARD, NORM_FIRST>
);

/// A built [`TransformerDecoder`](builder::TransformerDecoder) on device `D`.
///
/// # Shapes
/// As [`builder::TransformerDecoder`].
///
/// ```
/// use shapesafe::prelude::*;
/// let decoder = Cpu::default().build_module::<TransformerDecoder<8, 2, 16, 3>, f32>();
/// assert_eq!(decoder.layers.len(), 3);
/// ```
#[derive(Debug, Clone)]
pub struct TransformerDecoder<
    const D_MODEL: usize,
    const HEADS: usize,
    const FEED_FORWARD: usize,
    const LAYERS: usize,
    const NORM_FIRST: bool,
    E: Dtype,
    D: Storage<E>,
> {
    /// The `LAYERS` layers, applied in order.
    pub layers: Vec<TransformerDecoderLayer<D_MODEL, HEADS, FEED_FORWARD, NORM_FIRST, E, D>>,
}

layer_stack!(
    TransformerDecoder,
    builder::TransformerDecoder<D_MODEL, HEADS, FEED_FORWARD, LAYERS, NORM_FIRST>
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
    for builder::TransformerDecoder<D_MODEL, HEADS, FEED_FORWARD, LAYERS, NORM_FIRST>
{
    type Output = (S, Const<D_MODEL>);
    const CHECK: () = <builder::TransformerDecoderLayer<D_MODEL, HEADS, FEED_FORWARD, NORM_FIRST> as ShapeInfer<(S, F)>>::CHECK;
    const PARAMS: usize = LAYERS * decoder_layer_params(D_MODEL, FEED_FORWARD);
    fn name() -> String {
        let flag = if NORM_FIRST { ", true" } else { "" };
        format!("TransformerDecoder<{D_MODEL}, {HEADS}, {FEED_FORWARD}, {LAYERS}{flag}>")
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
    > TransformerDecoder<D_MODEL, HEADS, FEED_FORWARD, LAYERS, NORM_FIRST, E, D>
where
    E: Dtype + num_traits::Float,
    D: Device<E>,
{
    /// Every layer in turn on the same memory, each with its own dropout when `train`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn run<B: Dim, S1: Dim, S2: Dim, T, T2>(
        &self,
        tgt: Tensor<(B, S1, Const<D_MODEL>), E, D, T>,
        memory: Tensor<(B, S2, Const<D_MODEL>), E, D, T2>,
        tgt_key_padding_mask: Option<&Tensor<(B, S1), bool, D>>,
        memory_key_padding_mask: Option<&Tensor<(B, S2), bool, D>>,
        causal: bool,
        train: bool,
    ) -> Result<Tensor<(B, S1, Const<D_MODEL>), E, D, T>, D::Err>
    where
        T: Tape<E, D> + Merge<T> + Merge<T2>,
        T2: Tape<E, D>,
    {
        // The memory's tape joins the target's once; every layer then reads the same
        // tape-free memory, whose gradients add up on its id.
        let (memory, memory_tape) = memory.split_tape();
        let (x, tape) = tgt.split_tape();
        let mut x = x.put_tape(tape.merge(memory_tape));
        for layer in &self.layers {
            let p = if train { layer.dropout } else { 0.0 };
            x = layer.run(
                x,
                memory.clone(),
                tgt_key_padding_mask,
                memory_key_padding_mask,
                causal,
                p,
            )?;
        }
        Ok(x)
    }

    /// The decoder with PyTorch's masks and without dropout (see
    /// [`TransformerDecoderLayer::try_forward_masked`]).
    ///
    /// # Shapes
    /// `tgt (B, S1, D_MODEL)`, `memory (B, S2, D_MODEL)`, masks `(B, S1)` and `(B, S2)` ->
    /// `(B, S1, D_MODEL)`.
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// let dev = Cpu::default();
    /// let decoder = dev.build_module::<TransformerDecoder<4, 2, 8, 2>, f32>();
    /// let tgt: Tensor<Rank3<1, 3, 4>, f32, _> = dev.sample_normal();
    /// let memory: Tensor<Rank3<1, 2, 4>, f32, _> = dev.sample_normal();
    /// let y = decoder.try_forward_masked(tgt, memory, None, None, true)?;
    /// # Ok::<(), CpuError>(())
    /// ```
    pub fn try_forward_masked<B: Dim, S1: Dim, S2: Dim, T, T2>(
        &self,
        tgt: Tensor<(B, S1, Const<D_MODEL>), E, D, T>,
        memory: Tensor<(B, S2, Const<D_MODEL>), E, D, T2>,
        tgt_key_padding_mask: Option<&Tensor<(B, S1), bool, D>>,
        memory_key_padding_mask: Option<&Tensor<(B, S2), bool, D>>,
        causal: bool,
    ) -> Result<Tensor<(B, S1, Const<D_MODEL>), E, D, T>, D::Err>
    where
        T: Tape<E, D> + Merge<T> + Merge<T2>,
        T2: Tape<E, D>,
    {
        let (t, m) = (tgt_key_padding_mask, memory_key_padding_mask);
        self.run(tgt, memory, t, m, causal, false)
    }

    /// [`try_forward_masked`](Self::try_forward_masked) with each layer's dropout, as in training.
    ///
    /// # Shapes
    /// As [`try_forward_masked`](Self::try_forward_masked).
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// let dev = Cpu::default();
    /// let mut decoder = dev.build_module::<TransformerDecoder<4, 2, 8, 2>, f32>();
    /// let tgt: Tensor<Rank3<1, 3, 4>, f32, _> = dev.sample_normal();
    /// let memory: Tensor<Rank3<1, 2, 4>, f32, _> = dev.sample_normal();
    /// let y = decoder.try_forward_masked_mut(tgt, memory, None, None, true)?;
    /// # Ok::<(), CpuError>(())
    /// ```
    pub fn try_forward_masked_mut<B: Dim, S1: Dim, S2: Dim, T, T2>(
        &mut self,
        tgt: Tensor<(B, S1, Const<D_MODEL>), E, D, T>,
        memory: Tensor<(B, S2, Const<D_MODEL>), E, D, T2>,
        tgt_key_padding_mask: Option<&Tensor<(B, S1), bool, D>>,
        memory_key_padding_mask: Option<&Tensor<(B, S2), bool, D>>,
        causal: bool,
    ) -> Result<Tensor<(B, S1, Const<D_MODEL>), E, D, T>, D::Err>
    where
        T: Tape<E, D> + Merge<T> + Merge<T2>,
        T2: Tape<E, D>,
    {
        let (t, m) = (tgt_key_padding_mask, memory_key_padding_mask);
        self.run(tgt, memory, t, m, causal, true)
    }
}

decoder_modules!(
    [
        const D_MODEL: usize,
        const HEADS: usize,
        const FEED_FORWARD: usize,
        const LAYERS: usize,
        const NORM_FIRST: bool
    ],
    TransformerDecoder<D_MODEL, HEADS, FEED_FORWARD, LAYERS, NORM_FIRST, E, D>,
    builder::TransformerDecoder<D_MODEL, HEADS, FEED_FORWARD, LAYERS, NORM_FIRST>
);
