//! The encoder-decoder Transformer for dates, as a struct model (`#[derive(CustomModule)]`),
//! its training objective, and greedy decoding with the KV cache.

use crate::dates::{BOS, EOS, SOURCE_LEN, SOURCE_VOCAB, TARGET_LEN, TARGET_VOCAB};
use shapesafe::prelude::*;
use shapesafe::train::{argmax, Metrics, Objective};
use shapesafe::{Error, Result};

pub const D_MODEL: usize = 64;
pub const HEADS: usize = 4;
pub const LAYERS: usize = 2;
pub const FEED_FORWARD: usize = 256;

/// Source and target embeddings with learned positions, `nn.Transformer`, and a linear head
/// over the target vocabulary.
#[derive(CustomModule, Debug, Clone, Copy, Default)]
#[built(DateTransformer)]
pub struct DateTransformerConfig {
    src_embed: Embedding<SOURCE_VOCAB, D_MODEL>,
    src_pos: LearnedPositionalEmbedding<SOURCE_LEN, D_MODEL>,
    tgt_embed: Embedding<TARGET_VOCAB, D_MODEL>,
    tgt_pos: LearnedPositionalEmbedding<TARGET_LEN, D_MODEL>,
    transformer: Transformer<D_MODEL, HEADS, LAYERS, LAYERS, FEED_FORWARD>,
    head: Linear<D_MODEL, TARGET_VOCAB>,
}

pub type Model<D> = DateTransformer<f32, D>;

pub type SourceTokens<D> = Tensor<(usize, Const<SOURCE_LEN>), usize, D>;
pub type SourcePadding<D> = Tensor<(usize, Const<SOURCE_LEN>), bool, D>;
pub type TargetTokens<D> = Tensor<(usize, Const<TARGET_LEN>), usize, D>;
pub type Logits<D, T> = Tensor<(usize, Const<TARGET_LEN>, Const<TARGET_VOCAB>), f32, D, T>;

/// A batch: padded sources and their padding mask, the target shifted right (BOS first) as
/// the decoder's input, and the target (EOS last) one-hot.
#[derive(Clone, Debug)]
pub struct DateBatch<D: KernelDevice<f32>> {
    pub source: SourceTokens<D>,
    pub padding: SourcePadding<D>,
    pub target_in: TargetTokens<D>,
    pub target_out: Logits<D, NoneTape>,
}

/// What the training objective and the evaluation need of a date translator.
pub trait Translator<D: KernelDevice<f32>> {
    /// Teacher-forced logits of every target position, without dropout.
    fn logits(
        &self,
        source: SourceTokens<D>,
        target_in: TargetTokens<D>,
        padding: &SourcePadding<D>,
    ) -> Result<Logits<D, NoneTape>>;

    /// [`Translator::logits`] on the tape, with dropout, as in training.
    fn logits_mut(
        &mut self,
        source: Tensor<(usize, Const<SOURCE_LEN>), usize, D, OwnedTape<f32, D>>,
        target_in: Tensor<(usize, Const<TARGET_LEN>), usize, D, OwnedTape<f32, D>>,
        padding: &SourcePadding<D>,
    ) -> Result<Logits<D, OwnedTape<f32, D>>>;

    /// Greedy decoding: each source's output tokens (EOS included when produced) and the
    /// attention weights of the steps over the source, `(batch, steps, SOURCE_LEN)`.
    fn translate(
        &self,
        source: SourceTokens<D>,
        padding: SourcePadding<D>,
    ) -> Result<(Vec<Vec<usize>>, Vec<f32>)>;
}

impl<D: KernelDevice<f32>> Model<D> {
    /// The model with PyTorch's default dropout (0.1) switched off in every layer: the
    /// pairs are generated without end, so there is nothing to regularize against, and
    /// without dropout the attention runs on the fused kernel.
    pub fn without_dropout(mut self) -> Self {
        for layer in &mut self.transformer.encoder.layers {
            layer.dropout = 0.0;
        }
        for layer in &mut self.transformer.decoder.layers {
            layer.dropout = 0.0;
        }
        self
    }

    /// Source and target tokens embedded at their positions.
    #[allow(clippy::type_complexity)]
    fn embed<T: Tape<f32, D>>(
        &self,
        source: Tensor<(usize, Const<SOURCE_LEN>), usize, D, T>,
        target_in: Tensor<(usize, Const<TARGET_LEN>), usize, D, T>,
    ) -> Result<(
        Tensor<(usize, Const<SOURCE_LEN>, Const<D_MODEL>), f32, D, T>,
        Tensor<(usize, Const<TARGET_LEN>, Const<D_MODEL>), f32, D, T>,
    )> {
        let src = self.src_embed.try_forward(source).map_err(Error::device)?;
        let src = self.src_pos.try_forward(src).map_err(Error::device)?;
        let tgt = self
            .tgt_embed
            .try_forward(target_in)
            .map_err(Error::device)?;
        let tgt = self.tgt_pos.try_forward(tgt).map_err(Error::device)?;
        Ok((src, tgt))
    }
}

impl<D: KernelDevice<f32>> Translator<D> for Model<D> {
    /// Teacher-forced logits of every target position (causal self-attention in the
    /// decoder), without dropout.
    fn logits(
        &self,
        source: SourceTokens<D>,
        target_in: TargetTokens<D>,
        padding: &SourcePadding<D>,
    ) -> Result<Logits<D, NoneTape>> {
        let (src, tgt) = self.embed(source, target_in)?;
        let pad = Some(padding);
        let y = self
            .transformer
            .try_forward_masked(src, tgt, pad, None, pad, true)
            .map_err(Error::device)?;
        self.head.try_forward(y).map_err(Error::device)
    }

    /// [`Self::logits`] on the tape, with dropout, as in training.
    fn logits_mut(
        &mut self,
        source: Tensor<(usize, Const<SOURCE_LEN>), usize, D, OwnedTape<f32, D>>,
        target_in: Tensor<(usize, Const<TARGET_LEN>), usize, D, OwnedTape<f32, D>>,
        padding: &SourcePadding<D>,
    ) -> Result<Logits<D, OwnedTape<f32, D>>> {
        let (src, tgt) = self.embed(source, target_in)?;
        let pad = Some(padding);
        let y = self
            .transformer
            .try_forward_masked_mut(src, tgt, pad, None, pad, true)
            .map_err(Error::device)?;
        self.head.try_forward(y).map_err(Error::device)
    }

    /// Greedy decoding with the KV cache: each step embeds the previous output at its
    /// position and runs one position through the decoder. Returns each source's output
    /// tokens (EOS included when produced) and the last decoder layer's cross-attention
    /// weights, `(batch, steps, SOURCE_LEN)`, row by row.
    fn translate(
        &self,
        source: SourceTokens<D>,
        padding: SourcePadding<D>,
    ) -> Result<(Vec<Vec<usize>>, Vec<f32>)> {
        let dev = source.device().clone();
        let batch = source.shape().0;
        let src = self.src_embed.try_forward(source).map_err(Error::device)?;
        let src = self.src_pos.try_forward(src).map_err(Error::device)?;
        let mut cache = self
            .transformer
            .try_start_generation(src, Some(padding))
            .map_err(Error::device)?;
        cache.record_cross_attention();
        let mut previous = vec![BOS; batch];
        let mut outputs = vec![Vec::new(); batch];
        for step in 0..TARGET_LEN {
            let tokens = dev
                .try_tensor_from_vec(previous.clone(), (batch, Const::<1>))
                .map_err(Error::device)?;
            let position = self
                .tgt_pos
                .weight
                .clone()
                .try_slice((step..step + 1, ..))
                .map_err(Error::device)?
                .try_reshape_like(&(Const::<1>, Const::<D_MODEL>))
                .map_err(Error::device)?
                .try_broadcast_like(&(batch, Const::<1>, Const::<D_MODEL>))
                .map_err(Error::device)?;
            let x = self
                .tgt_embed
                .try_forward(tokens)
                .map_err(Error::device)?
                .try_add(position)
                .map_err(Error::device)?;
            let y = self
                .transformer
                .try_forward_step(x, &mut cache)
                .map_err(Error::device)?;
            let logits = self.head.try_forward(y).map_err(Error::device)?.as_vec();
            for (i, row) in logits.chunks(TARGET_VOCAB).enumerate() {
                let next = argmax(row).unwrap_or(EOS);
                previous[i] = next;
                if outputs[i].last() != Some(&EOS) {
                    outputs[i].push(next);
                }
            }
        }
        let weights = cache
            .cross_attention(LAYERS - 1)
            .map(|w| w.as_vec())
            .unwrap_or_default();
        Ok((outputs, weights))
    }
}

/// Cross-entropy of the next target token at every position; reports token `accuracy` and
/// `sequence_accuracy` (every token of the date right, teacher-forced).
pub struct Translation;

fn count(logits: &[f32], targets: &[f32], metrics: &mut Metrics) {
    let rows = logits
        .chunks(TARGET_VOCAB)
        .zip(targets.chunks(TARGET_VOCAB));
    let right: Vec<bool> = rows
        .map(|(row, target)| argmax(row).is_some_and(|i| target[i] == 1.0))
        .collect();
    let tokens = right.len() as f64;
    metrics.add(
        "accuracy",
        right.iter().filter(|r| **r).count() as f64,
        tokens,
    );
    let sequences = right.chunks(TARGET_LEN);
    let n = sequences.len() as f64;
    let exact = right
        .chunks(TARGET_LEN)
        .filter(|s| s.iter().all(|r| *r))
        .count();
    metrics.add("sequence_accuracy", exact as f64, n);
}

impl<D: KernelDevice<f32>, M: Translator<D>> Objective<M, D, DateBatch<D>> for Translation {
    fn examples(&self, batch: &DateBatch<D>) -> usize {
        batch.source.shape().0
    }

    fn training_step(
        &mut self,
        model: &mut M,
        batch: DateBatch<D>,
        grads: Gradients<f32, D>,
        metrics: &mut Metrics,
    ) -> Result<Tensor<(), f32, D, OwnedTape<f32, D>>> {
        // Both token tensors go on the one tape, so both embeddings learn.
        let source = batch.source.traced(grads);
        let target_in = batch.target_in.leaky_traced();
        let logits = model.logits_mut(source, target_in, &batch.padding)?;
        count(&logits.as_vec(), &batch.target_out.as_vec(), metrics);
        Ok(shapesafe::nn::loss::cross_entropy(logits, batch.target_out))
    }

    fn validation_step(
        &mut self,
        model: &M,
        batch: DateBatch<D>,
        metrics: &mut Metrics,
    ) -> Result<f64> {
        let logits = model.logits(batch.source, batch.target_in, &batch.padding)?;
        count(&logits.as_vec(), &batch.target_out.as_vec(), metrics);
        let loss = shapesafe::nn::loss::cross_entropy(logits, batch.target_out);
        Ok(f64::from(loss.as_vec()[0]))
    }
}
