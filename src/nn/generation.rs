//! Incremental decoding: a Transformer decoder that runs one new target position at a time,
//! with the keys and values of the earlier positions (and of the memory) cached.
// Signatures spell out the (batch, sequence, width) tensors they take; aliases would hide
// the shapes these layers document.
#![allow(clippy::type_complexity)]

use super::decoder::{TransformerDecoder, TransformerDecoderLayer};
use super::seq2seq::Transformer;
use super::transformer::feed_forward;
use dfdx::prelude::*;

/// What a decoder has computed for generation so far: per layer, the self-attention's keys
/// and values of every position decoded, and the memory's projected keys and values.
///
/// Made by `try_start_generation` on a [`TransformerDecoder`] or a [`Transformer`]; each
/// `try_forward_step` then costs one position's work instead of a forward over the whole
/// prefix, and gives the same numbers as that forward with a causal target mask.
///
/// # Shapes
/// `B` is the batch, `S2` the memory's length.
///
/// ```
/// use shapesafe::prelude::*;
/// let dev = Cpu::default();
/// let decoder = dev.build_module::<TransformerDecoder<8, 2, 16, 2>, f64>();
/// let memory: Tensor<Rank3<1, 5, 8>, f64, _> = dev.sample_normal();
/// let mut cache = decoder.try_start_generation(memory, None)?;
/// let token: Tensor<Rank3<1, 1, 8>, f64, _> = dev.sample_normal();
/// let y = decoder.try_forward_step(token, &mut cache)?;
/// assert_eq!((y.shape().concrete(), cache.len()), ([1, 1, 8], 1));
/// # Ok::<(), CpuError>(())
/// ```
#[derive(Debug, Clone)]
pub struct DecoderCache<B: Dim, S2: Dim, const D_MODEL: usize, E: Dtype, D: Device<E>> {
    layers: Vec<LayerCache<B, S2, D_MODEL, E, D>>,
    memory_key_padding_mask: Option<Tensor<(B, S2), bool, D>>,
    len: usize,
    record_cross_attention: bool,
}

/// One layer's part of a [`DecoderCache`].
#[derive(Debug, Clone)]
struct LayerCache<B: Dim, S2: Dim, const D_MODEL: usize, E: Dtype, D: Device<E>> {
    keys: Option<Tensor<(B, usize, Const<D_MODEL>), E, D>>,
    values: Option<Tensor<(B, usize, Const<D_MODEL>), E, D>>,
    memory_keys: Tensor<(B, S2, Const<D_MODEL>), E, D>,
    memory_values: Tensor<(B, S2, Const<D_MODEL>), E, D>,
    /// The cross-attention weights of the steps recorded, averaged over the heads.
    cross_weights: Option<Tensor<(B, usize, S2), E, D>>,
}

impl<B: Dim, S2: Dim, const D_MODEL: usize, E: Dtype, D: Device<E>>
    DecoderCache<B, S2, D_MODEL, E, D>
{
    /// How many target positions have been decoded.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no position has been decoded yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// From the next step on, keeps every layer's cross-attention weights (what each new
    /// position attends to in the memory), for [`Self::cross_attention`]. Off by default:
    /// it costs one more product of the queries and the memory keys per layer and step.
    ///
    /// # Shapes
    /// Not a layer: see [`Self::cross_attention`].
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// let dev = Cpu::default();
    /// let decoder = dev.build_module::<TransformerDecoder<4, 2, 8, 1>, f64>();
    /// let memory: Tensor<Rank3<1, 3, 4>, f64, _> = dev.sample_normal();
    /// let pad = dev.tensor([[false, false, true]]);
    /// let mut cache = decoder.try_start_generation(memory, Some(pad))?;
    /// cache.record_cross_attention();
    /// for _ in 0..2 {
    ///     decoder.try_forward_step(dev.sample_normal::<Rank3<1, 1, 4>>(), &mut cache)?;
    /// }
    /// let w = cache.cross_attention(0).unwrap();
    /// assert_eq!(w.shape().concrete(), [1, 2, 3]);
    /// let w = w.as_vec();
    /// assert!((w[0] + w[1] - 1.0).abs() < 1e-12 && w[2] == 0.0);
    /// # Ok::<(), CpuError>(())
    /// ```
    pub fn record_cross_attention(&mut self) {
        self.record_cross_attention = true;
    }

    /// Layer `layer`'s cross-attention weights of every step decoded since
    /// [`Self::record_cross_attention`], averaged over the heads (PyTorch's
    /// `average_attn_weights=True`): row `t` of an item is how much step `t` attended to
    /// each memory position. `None` before the first recorded step or past the last layer.
    ///
    /// # Shapes
    /// `(B, steps, S2)`.
    pub fn cross_attention(&self, layer: usize) -> Option<&Tensor<(B, usize, S2), E, D>> {
        self.layers.get(layer)?.cross_weights.as_ref()
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
    /// Projects the memory's keys and values once.
    fn start<B: Dim, S2: Dim>(
        &self,
        memory: &Tensor<(B, S2, Const<D_MODEL>), E, D>,
    ) -> Result<LayerCache<B, S2, D_MODEL, E, D>, D::Err> {
        Ok(LayerCache {
            keys: None,
            values: None,
            memory_keys: self.multihead_attn.project(memory.clone(), 1)?,
            memory_values: self.multihead_attn.project(memory.clone(), 2)?,
            cross_weights: None,
        })
    }

    /// The new position's self-attention over every position so far, the new one's key and
    /// value appended to the cache.
    fn cached_self_attention<B: Dim, S2: Dim>(
        &self,
        h: Tensor<(B, Const<1>, Const<D_MODEL>), E, D>,
        cache: &mut LayerCache<B, S2, D_MODEL, E, D>,
    ) -> Result<Tensor<(B, Const<1>, Const<D_MODEL>), E, D>, D::Err> {
        let mha = &self.self_attn;
        let batch = h.shape().0;
        let one = (batch, 1usize, Const::<D_MODEL>);
        let q = mha.project(h.clone(), 0)?;
        let k = mha.project(h.clone(), 1)?.try_reshape_like(&one)?;
        let v = mha.project(h, 2)?.try_reshape_like(&one)?;
        let keys = match cache.keys.take() {
            Some(old) => (old, k).try_concat_along(Axis::<1>)?,
            None => k,
        };
        let values = match cache.values.take() {
            Some(old) => (old, v).try_concat_along(Axis::<1>)?,
            None => v,
        };
        cache.keys = Some(keys.clone());
        cache.values = Some(values.clone());
        // Only earlier positions are cached, so no causal mask is needed.
        let tokens = mha.attend_projected(q, keys, values, None, false, 0.0)?;
        mha.out_project(tokens)
    }

    /// The new position's attention to the cached memory keys and values.
    fn cached_cross<B: Dim, S2: Dim>(
        &self,
        h: Tensor<(B, Const<1>, Const<D_MODEL>), E, D>,
        cache: &mut LayerCache<B, S2, D_MODEL, E, D>,
        memory_key_padding_mask: Option<&Tensor<(B, S2), bool, D>>,
        record: bool,
    ) -> Result<Tensor<(B, Const<1>, Const<D_MODEL>), E, D>, D::Err> {
        let mha = &self.multihead_attn;
        let q = mha.project(h, 0)?;
        let keys = cache.memory_keys.clone();
        if record {
            let mask = memory_key_padding_mask;
            let step = mha.projected_attention_weights(q.clone(), keys.clone(), mask, false)?;
            let (batch, _, s2) = *step.shape();
            let step = step.try_reshape_like(&(batch, 1usize, s2))?;
            cache.cross_weights = Some(match cache.cross_weights.take() {
                Some(old) => (old, step).try_concat_along(Axis::<1>)?,
                None => step,
            });
        }
        let values = cache.memory_values.clone();
        let tokens = mha.attend_projected(q, keys, values, memory_key_padding_mask, false, 0.0)?;
        mha.out_project(tokens)
    }

    /// The layer on one new position, as [`Self::try_forward_masked`] with a causal mask
    /// would compute it for the last position of the whole prefix.
    fn step<B: Dim, S2: Dim>(
        &self,
        x: Tensor<(B, Const<1>, Const<D_MODEL>), E, D>,
        cache: &mut LayerCache<B, S2, D_MODEL, E, D>,
        memory_key_padding_mask: Option<&Tensor<(B, S2), bool, D>>,
        record: bool,
    ) -> Result<Tensor<(B, Const<1>, Const<D_MODEL>), E, D>, D::Err> {
        let mask = memory_key_padding_mask;
        if NORM_FIRST {
            let h = self.norm1.norm3(x.clone())?;
            let x = self.cached_self_attention(h, cache)?.try_add(x)?;
            let h = self.norm2.norm3(x.clone())?;
            let x = self.cached_cross(h, cache, mask, record)?.try_add(x)?;
            let h = self.norm3.norm3(x.clone())?;
            feed_forward(&self.linear1, &self.linear2, h, 0.0)?.try_add(x)
        } else {
            let h = self.cached_self_attention(x.clone(), cache)?;
            let x = self.norm1.add_norm3(h, Some(x))?;
            let h = self.cached_cross(x.clone(), cache, mask, record)?;
            let x = self.norm2.add_norm3(h, Some(x))?;
            let h = feed_forward(&self.linear1, &self.linear2, x.clone(), 0.0)?;
            self.norm3.add_norm3(h, Some(x))
        }
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
    /// A cache for generating targets against `memory`, whose padded positions
    /// `memory_key_padding_mask` marks with `true`.
    ///
    /// # Shapes
    /// `memory (B, S2, D_MODEL)`, mask `(B, S2)`.
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// let dev = Cpu::default();
    /// let decoder = dev.build_module::<TransformerDecoder<4, 2, 8, 1>, f32>();
    /// let memory: Tensor<Rank3<2, 3, 4>, f32, _> = dev.sample_normal();
    /// let pad = dev.tensor([[false, false, true], [false, false, false]]);
    /// let cache = decoder.try_start_generation(memory, Some(pad))?;
    /// assert!(cache.is_empty());
    /// # Ok::<(), CpuError>(())
    /// ```
    pub fn try_start_generation<B: Dim, S2: Dim>(
        &self,
        memory: Tensor<(B, S2, Const<D_MODEL>), E, D>,
        memory_key_padding_mask: Option<Tensor<(B, S2), bool, D>>,
    ) -> Result<DecoderCache<B, S2, D_MODEL, E, D>, D::Err> {
        let layers = self
            .layers
            .iter()
            .map(|layer| layer.start(&memory))
            .collect::<Result<_, _>>()?;
        Ok(DecoderCache {
            layers,
            memory_key_padding_mask,
            len: 0,
            record_cross_attention: false,
        })
    }

    /// The decoder's output for the next target position, given that position's input;
    /// equal to the last position of [`Self::try_forward_masked`] on the whole prefix with a
    /// causal mask (and the cache's memory mask).
    ///
    /// # Shapes
    /// `tgt (B, 1, D_MODEL) -> (B, 1, D_MODEL)`.
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// let dev = Cpu::default();
    /// let decoder = dev.build_module::<TransformerDecoder<4, 2, 8, 2>, f64>();
    /// let memory: Tensor<Rank3<1, 3, 4>, f64, _> = dev.sample_normal();
    /// let tgt: Tensor<Rank3<1, 2, 4>, f64, _> = dev.sample_normal();
    /// let full = decoder.try_forward_masked(tgt.clone(), memory.clone(), None, None, true)?;
    /// let mut cache = decoder.try_start_generation(memory, None)?;
    /// let first = decoder.try_forward_step(tgt.clone().slice((.., 0..1, ..)).realize(), &mut cache)?;
    /// let second = decoder.try_forward_step(tgt.slice((.., 1..2, ..)).realize(), &mut cache)?;
    /// let full = full.as_vec();
    /// assert!(second.as_vec().iter().zip(&full[4..]).all(|(a, b)| (a - b).abs() < 1e-12));
    /// # Ok::<(), CpuError>(())
    /// ```
    pub fn try_forward_step<B: Dim, S2: Dim>(
        &self,
        tgt: Tensor<(B, Const<1>, Const<D_MODEL>), E, D>,
        cache: &mut DecoderCache<B, S2, D_MODEL, E, D>,
    ) -> Result<Tensor<(B, Const<1>, Const<D_MODEL>), E, D>, D::Err> {
        let mask = cache.memory_key_padding_mask.as_ref();
        let mut x = tgt;
        for (layer, layer_cache) in self.layers.iter().zip(cache.layers.iter_mut()) {
            x = layer.step(x, layer_cache, mask, cache.record_cross_attention)?;
        }
        cache.len += 1;
        Ok(x)
    }
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
    > Transformer<D_MODEL, HEADS, ENCODER_LAYERS, DECODER_LAYERS, FEED_FORWARD, NORM_FIRST, E, D>
where
    E: Dtype + num_traits::Float,
    D: Device<E>,
{
    /// Encodes `src` once and returns the decoder's generation cache for it; the source's
    /// padding mask serves the encoder and the memory, as PyTorch's usual
    /// `memory_key_padding_mask=src_key_padding_mask`.
    ///
    /// # Shapes
    /// `src (B, S1, D_MODEL)`, mask `(B, S1)`.
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// let dev = Cpu::default();
    /// let model = dev.build_module::<Transformer<4, 2, 1, 1, 8>, f64>();
    /// let src: Tensor<Rank3<1, 5, 4>, f64, _> = dev.sample_normal();
    /// let mut cache = model.try_start_generation(src, None)?;
    /// let y = model.try_forward_step(dev.sample_normal(), &mut cache)?;
    /// assert_eq!(y.shape().concrete(), [1, 1, 4]);
    /// # Ok::<(), CpuError>(())
    /// ```
    pub fn try_start_generation<B: Dim, S1: Dim>(
        &self,
        src: Tensor<(B, S1, Const<D_MODEL>), E, D>,
        src_key_padding_mask: Option<Tensor<(B, S1), bool, D>>,
    ) -> Result<DecoderCache<B, S1, D_MODEL, E, D>, D::Err> {
        let memory = self
            .encoder
            .sequence(src, src_key_padding_mask.as_ref(), false, false)?;
        let memory = self.encoder_norm.norm3(memory)?;
        self.decoder
            .try_start_generation(memory, src_key_padding_mask)
    }

    /// The model's output for the next target position: the last position of
    /// [`Self::try_forward_masked`] on the whole target prefix with a causal mask.
    ///
    /// # Shapes
    /// `tgt (B, 1, D_MODEL) -> (B, 1, D_MODEL)`.
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// let dev = Cpu::default();
    /// let model = dev.build_module::<Transformer<4, 2, 1, 1, 8>, f32>();
    /// let mut cache = model.try_start_generation(dev.sample_normal::<Rank3<1, 3, 4>>(), None)?;
    /// for _ in 0..3 {
    ///     model.try_forward_step(dev.sample_normal(), &mut cache)?;
    /// }
    /// assert_eq!(cache.len(), 3);
    /// # Ok::<(), CpuError>(())
    /// ```
    pub fn try_forward_step<B: Dim, S1: Dim>(
        &self,
        tgt: Tensor<(B, Const<1>, Const<D_MODEL>), E, D>,
        cache: &mut DecoderCache<B, S1, D_MODEL, E, D>,
    ) -> Result<Tensor<(B, Const<1>, Const<D_MODEL>), E, D>, D::Err> {
        let y = self.decoder.try_forward_step(tgt, cache)?;
        self.decoder_norm.norm3(y)
    }
}
