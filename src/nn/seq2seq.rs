//! `Transformer`: the encoder-decoder model of "Attention Is All You Need", as `torch.nn.Transformer`.
// Signatures spell out the (batch, sequence, width) tensors they take; aliases would hide
// the shapes these layers document.
#![allow(clippy::type_complexity)]

use super::decoder::TransformerDecoder;
use super::relabel::relabel;
use super::transformer::{LayerNorm, TransformerEncoder};
use crate::shape::{check_attention, check_input_width, Message};
use dfdx::nn::{BuildModule, BuildOnDevice, Module, ModuleMut};
use dfdx::nn::{ModuleVisitor, TensorCollection};
use dfdx::prelude::*;
use rand_distr::uniform::SampleUniform;

/// The builder (architecture) type of [`Transformer`].
pub mod builder {
    /// The encoder-decoder Transformer: `ENCODER_LAYERS` encoder layers and a final norm
    /// turn the source into a memory; `DECODER_LAYERS` decoder layers and a final norm turn
    /// the target, attending to that memory, into the output. Embeddings, positions and the
    /// output projection are the model's around it, as in PyTorch.
    ///
    /// PyTorch equivalent: `nn.Transformer(D_MODEL, HEADS, ENCODER_LAYERS, DECODER_LAYERS,
    /// FEED_FORWARD, dropout=0.1, batch_first=True, norm_first=NORM_FIRST)`, with its
    /// parameter names (`encoder.layers.0.self_attn.in_proj_weight`, `encoder.norm.weight`,
    /// `decoder.layers.1.multihead_attn.out_proj.bias`, `decoder.norm.bias`, ...), so its
    /// state dicts load by name. `forward((src, tgt))` is `model(src, tgt)` without masks;
    /// masks go through [`try_forward_masked`](super::Transformer::try_forward_masked).
    ///
    /// `HEADS` must divide `D_MODEL`, and the source and the target must both have width
    /// `D_MODEL`; each is checked at compile time.
    ///
    /// # Shapes
    /// `(src (B, S1, D_MODEL), tgt (B, S2, D_MODEL)) -> (B, S2, D_MODEL)`; the output has the
    /// target's length, and carries the source's tape.
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// let dev = Cpu::default();
    /// let model = dev.build_module::<Transformer<8, 2, 2, 2, 16>, f32>();
    /// let src: Tensor<Rank3<2, 5, 8>, f32, _> = dev.sample_normal();
    /// let tgt: Tensor<Rank3<2, 3, 8>, f32, _> = dev.sample_normal();
    /// assert_eq!(model.forward((src, tgt)).shape().concrete(), [2, 3, 8]);
    /// ```
    #[derive(Debug, Clone, Copy, Default)]
    pub struct Transformer<
        const D_MODEL: usize,
        const HEADS: usize,
        const ENCODER_LAYERS: usize,
        const DECODER_LAYERS: usize,
        const FEED_FORWARD: usize,
        const NORM_FIRST: bool = false,
    >;
}

/// A built [`Transformer`](builder::Transformer) on device `D`.
///
/// # Shapes
/// As [`builder::Transformer`].
///
/// ```
/// use shapesafe::prelude::*;
/// let model = Cpu::default().build_module::<Transformer<8, 2, 1, 1, 16>, f32>();
/// let names = shapesafe::pytorch::tensor_names(&model);
/// assert!(names.contains(&"encoder.norm.weight".to_string()));
/// assert!(names.contains(&"decoder.layers.0.norm3.bias".to_string()));
/// ```
#[derive(Debug, Clone)]
pub struct Transformer<
    const D_MODEL: usize,
    const HEADS: usize,
    const ENCODER_LAYERS: usize,
    const DECODER_LAYERS: usize,
    const FEED_FORWARD: usize,
    const NORM_FIRST: bool,
    E: Dtype,
    D: Storage<E>,
> {
    /// The encoder's layers (`encoder.layers.N`).
    pub encoder: TransformerEncoder<D_MODEL, HEADS, FEED_FORWARD, ENCODER_LAYERS, NORM_FIRST, E, D>,
    /// The encoder's final norm (`encoder.norm`).
    pub encoder_norm: LayerNorm<D_MODEL, E, D>,
    /// The decoder's layers (`decoder.layers.N`).
    pub decoder: TransformerDecoder<D_MODEL, HEADS, FEED_FORWARD, DECODER_LAYERS, NORM_FIRST, E, D>,
    /// The decoder's final norm (`decoder.norm`).
    pub decoder_norm: LayerNorm<D_MODEL, E, D>,
}

/// The built type with this file's generic names.
macro_rules! transformer {
    ($e:ty, $d:ty) => {
        Transformer<D_MODEL, HEADS, ENCODER_LAYERS, DECODER_LAYERS, FEED_FORWARD, NORM_FIRST, $e, $d>
    };
}

impl<
        const D_MODEL: usize,
        const HEADS: usize,
        const ENCODER_LAYERS: usize,
        const DECODER_LAYERS: usize,
        const FEED_FORWARD: usize,
        const NORM_FIRST: bool,
        E: Dtype,
        D: Device<E>,
    > BuildOnDevice<D, E>
    for builder::Transformer<
        D_MODEL,
        HEADS,
        ENCODER_LAYERS,
        DECODER_LAYERS,
        FEED_FORWARD,
        NORM_FIRST,
    >
where
    transformer!(E, D): BuildModule<D, E>,
{
    type Built = transformer!(E, D);
}

impl<
        const D_MODEL: usize,
        const HEADS: usize,
        const ENCODER_LAYERS: usize,
        const DECODER_LAYERS: usize,
        const FEED_FORWARD: usize,
        const NORM_FIRST: bool,
        E,
        D,
    > TensorCollection<E, D> for transformer!(E, D)
where
    E: Dtype + num_traits::Float + SampleUniform,
    D: Device<E>,
{
    type To<E2: Dtype, D2: Device<E2>> = transformer!(E2, D2);

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        // PyTorch nests the final norms inside `encoder` and `decoder`.
        visitor.visit_fields(
            (
                Self::module("encoder", |s| &s.encoder, |s| &mut s.encoder),
                Self::module("encoder.norm", |s| &s.encoder_norm, |s| &mut s.encoder_norm),
                Self::module("decoder", |s| &s.decoder, |s| &mut s.decoder),
                Self::module("decoder.norm", |s| &s.decoder_norm, |s| &mut s.decoder_norm),
            ),
            |(encoder, encoder_norm, decoder, decoder_norm)| Transformer {
                encoder,
                encoder_norm,
                decoder,
                decoder_norm,
            },
        )
    }
}

/// `Transformer<D_MODEL, HEADS, ENCODER_LAYERS, DECODER_LAYERS, FEED_FORWARD>` (`, true>`
/// when it normalises first).
const fn transformer_name(generics: [usize; 5], norm_first: bool) -> Message {
    let mut m = Message::new().text("Transformer<");
    let mut i = 0;
    while i < generics.len() {
        if i > 0 {
            m = m.text(", ");
        }
        m = m.number(generics[i]);
        i += 1;
    }
    if norm_first {
        m = m.text(", true");
    }
    m.text(">")
}

impl<
        const D_MODEL: usize,
        const HEADS: usize,
        const ENCODER_LAYERS: usize,
        const DECODER_LAYERS: usize,
        const FEED_FORWARD: usize,
        const NORM_FIRST: bool,
        E,
        D,
    > transformer!(E, D)
where
    E: Dtype + num_traits::Float,
    D: Device<E>,
{
    /// The source's and the target's widths, checked at compile time.
    const fn check(source: usize, target: usize) {
        let name = transformer_name(
            [D_MODEL, HEADS, ENCODER_LAYERS, DECODER_LAYERS, FEED_FORWARD],
            NORM_FIRST,
        );
        check_attention(name, D_MODEL, HEADS, &[1, source]);
        check_input_width(name, "target", D_MODEL, target);
    }

    /// Encoder, then decoder on the memory, with masks and each layer's dropout when `train`.
    #[allow(clippy::too_many_arguments)]
    fn run<B: Dim, S1: Dim, S2: Dim, T, T2>(
        &self,
        src: Tensor<(B, S1, Const<D_MODEL>), E, D, T>,
        tgt: Tensor<(B, S2, Const<D_MODEL>), E, D, T2>,
        src_key_padding_mask: Option<&Tensor<(B, S1), bool, D>>,
        tgt_key_padding_mask: Option<&Tensor<(B, S2), bool, D>>,
        memory_key_padding_mask: Option<&Tensor<(B, S1), bool, D>>,
        tgt_causal: bool,
        train: bool,
    ) -> Result<Tensor<(B, S2, Const<D_MODEL>), E, D, T>, D::Err>
    where
        T: Tape<E, D> + Merge<T> + Merge<T2>,
        T2: Tape<E, D>,
    {
        let memory = self
            .encoder
            .sequence(src, src_key_padding_mask, false, train)?;
        let memory = self.encoder_norm.norm3(memory)?;
        // The target joins the memory's tape, which the output carries (as dfdx's Transformer).
        let (memory, memory_tape) = memory.split_tape();
        let (tgt, tgt_tape) = tgt.split_tape();
        let tgt = tgt.put_tape(memory_tape.merge(tgt_tape));
        let y = self.decoder.run(
            tgt,
            memory,
            tgt_key_padding_mask,
            memory_key_padding_mask,
            tgt_causal,
            train,
        )?;
        self.decoder_norm.norm3(y)
    }

    /// The model with PyTorch's masks and without dropout: `src_key_padding_mask`,
    /// `tgt_key_padding_mask` and `memory_key_padding_mask` mark with `true` the positions to
    /// ignore, and `tgt_causal` is PyTorch's `tgt_mask=generate_square_subsequent_mask(..)`
    /// (`tgt_is_causal=True`).
    ///
    /// # Shapes
    /// `src (B, S1, D_MODEL)`, `tgt (B, S2, D_MODEL)`, masks `(B, S1)`, `(B, S2)`, `(B, S1)`
    /// -> `(B, S2, D_MODEL)`.
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// let dev = Cpu::default();
    /// let model = dev.build_module::<Transformer<4, 2, 1, 1, 8>, f32>();
    /// let src: Tensor<Rank3<1, 5, 4>, f32, _> = dev.sample_normal();
    /// let tgt: Tensor<Rank3<1, 2, 4>, f32, _> = dev.sample_normal();
    /// let pad = dev.tensor([[false, false, false, true, true]]);
    /// let y = model.try_forward_masked(src, tgt, Some(&pad), None, Some(&pad), true)?;
    /// assert_eq!(y.shape().concrete(), [1, 2, 4]);
    /// # Ok::<(), CpuError>(())
    /// ```
    #[allow(clippy::too_many_arguments)]
    pub fn try_forward_masked<B: Dim, S1: Dim, S2: Dim, T, T2>(
        &self,
        src: Tensor<(B, S1, Const<D_MODEL>), E, D, T>,
        tgt: Tensor<(B, S2, Const<D_MODEL>), E, D, T2>,
        src_key_padding_mask: Option<&Tensor<(B, S1), bool, D>>,
        tgt_key_padding_mask: Option<&Tensor<(B, S2), bool, D>>,
        memory_key_padding_mask: Option<&Tensor<(B, S1), bool, D>>,
        tgt_causal: bool,
    ) -> Result<Tensor<(B, S2, Const<D_MODEL>), E, D, T>, D::Err>
    where
        T: Tape<E, D> + Merge<T> + Merge<T2>,
        T2: Tape<E, D>,
    {
        let masks = (src_key_padding_mask, tgt_key_padding_mask);
        let memory_mask = memory_key_padding_mask;
        self.run(src, tgt, masks.0, masks.1, memory_mask, tgt_causal, false)
    }

    /// [`try_forward_masked`](Self::try_forward_masked) with each layer's dropout, as in
    /// training.
    ///
    /// # Shapes
    /// As [`try_forward_masked`](Self::try_forward_masked).
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// let dev = Cpu::default();
    /// let mut model = dev.build_module::<Transformer<4, 2, 1, 1, 8>, f32>();
    /// let src: Tensor<Rank3<1, 5, 4>, f32, _> = dev.sample_normal();
    /// let tgt: Tensor<Rank3<1, 2, 4>, f32, _> = dev.sample_normal();
    /// let y = model.try_forward_masked_mut(src.leaky_trace(), tgt, None, None, None, true)?;
    /// # Ok::<(), CpuError>(())
    /// ```
    #[allow(clippy::too_many_arguments)]
    pub fn try_forward_masked_mut<B: Dim, S1: Dim, S2: Dim, T, T2>(
        &mut self,
        src: Tensor<(B, S1, Const<D_MODEL>), E, D, T>,
        tgt: Tensor<(B, S2, Const<D_MODEL>), E, D, T2>,
        src_key_padding_mask: Option<&Tensor<(B, S1), bool, D>>,
        tgt_key_padding_mask: Option<&Tensor<(B, S2), bool, D>>,
        memory_key_padding_mask: Option<&Tensor<(B, S1), bool, D>>,
        tgt_causal: bool,
    ) -> Result<Tensor<(B, S2, Const<D_MODEL>), E, D, T>, D::Err>
    where
        T: Tape<E, D> + Merge<T> + Merge<T2>,
        T2: Tape<E, D>,
    {
        let masks = (src_key_padding_mask, tgt_key_padding_mask);
        let memory_mask = memory_key_padding_mask;
        self.run(src, tgt, masks.0, masks.1, memory_mask, tgt_causal, true)
    }
}

/// `Module` (inference) and `ModuleMut` (with dropout) on `(src, tgt)`, each of any dims of
/// width `D_MODEL`, checked at compile time.
macro_rules! transformer_modules {
    ($Trait:ident, $method:ident, $run:ident, $($self_ref:tt)+) => {
        impl<
                const D_MODEL: usize,
                const HEADS: usize,
                const ENCODER_LAYERS: usize,
                const DECODER_LAYERS: usize,
                const FEED_FORWARD: usize,
                const NORM_FIRST: bool,
                B: Dim,
                S1: Dim,
                S2: Dim,
                F1: crate::shape::StaticDim,
                F2: crate::shape::StaticDim,
                E,
                D,
                T,
                T2,
            > $Trait<(Tensor<(B, S1, F1), E, D, T>, Tensor<(B, S2, F2), E, D, T2>)>
            for transformer!(E, D)
        where
            E: Dtype + num_traits::Float,
            D: Device<E>,
            T: Tape<E, D> + Merge<T> + Merge<T2>,
            T2: Tape<E, D>,
        {
            type Output = Tensor<(B, S2, Const<D_MODEL>), E, D, T>;
            type Error = D::Err;

            fn $method(
                $($self_ref)+ self,
                (src, tgt): (Tensor<(B, S1, F1), E, D, T>, Tensor<(B, S2, F2), E, D, T2>),
            ) -> Result<Self::Output, D::Err> {
                const { Self::check(F1::SIZE, F2::SIZE) };
                let src: Tensor<(B, S1, Const<D_MODEL>), E, D, T> = relabel(src);
                let tgt: Tensor<(B, S2, Const<D_MODEL>), E, D, T2> = relabel(tgt);
                self.$run(src, tgt, None, None, None, false)
            }
        }
    };
}

transformer_modules!(Module, try_forward, try_forward_masked, &);
transformer_modules!(ModuleMut, try_forward_mut, try_forward_masked_mut, &mut);
