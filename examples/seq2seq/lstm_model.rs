//! The seeds' recurrent variant: an LSTM encoder and an LSTM decoder with Luong's
//! ("general") attention, as a struct model (`#[derive(CustomModule)]`).

use crate::dates::{BOS, EOS, SOURCE_LEN, SOURCE_VOCAB, TARGET_LEN, TARGET_VOCAB};
use crate::model::{Logits, SourcePadding, SourceTokens, TargetTokens, Translator};
use shapesafe::prelude::*;
use shapesafe::train::argmax;
use shapesafe::{Error, Result};

pub const EMBEDDING: usize = 32;
pub const HIDDEN: usize = 128;

/// Luong et al. (2015), global attention with the "general" score `s_t^T W_a h_s`: the
/// decoder's state at each target step attends over the encoder's outputs, and
/// `tanh(W_c [context; s_t])` predicts the next token (`W_c` as its two halves,
/// `combine_context` and `combine_state`). Every decoder input also gets `bridge` of the
/// mean encoder output, as Bahdanau's decoder starts from a summary of the source: without
/// it, a query made from the target prefix alone cannot know whether the day has one digit
/// or two before it looks (and the decoder then writes "04-20" for April 2).
#[derive(CustomModule, Debug, Clone, Copy, Default)]
#[built(DateLstm)]
pub struct DateLstmConfig {
    src_embed: Embedding<SOURCE_VOCAB, EMBEDDING>,
    encoder: Lstm<EMBEDDING, HIDDEN>,
    tgt_embed: Embedding<TARGET_VOCAB, EMBEDDING>,
    decoder: Lstm<EMBEDDING, HIDDEN>,
    bridge: Linear<HIDDEN, EMBEDDING>,
    score: Linear<HIDDEN, HIDDEN>,
    combine_context: Linear<HIDDEN, HIDDEN>,
    combine_state: Linear<HIDDEN, HIDDEN>,
    head: Linear<HIDDEN, TARGET_VOCAB>,
}

pub type LstmModel<D> = DateLstm<f32, D>;

type Hidden<S, D, T> = Tensor<(usize, S, Const<HIDDEN>), f32, D, T>;
type Embedded<S, D, T> = Tensor<(usize, S, Const<EMBEDDING>), f32, D, T>;

/// `0` for a source character, `-inf` for padding, as an additive mask of the scores.
fn additive_mask<D: KernelDevice<f32>>(
    padding: &SourcePadding<D>,
) -> Result<Tensor<(usize, Const<SOURCE_LEN>), f32, D>> {
    let dev = padding.device().clone();
    let values: Vec<f32> = padding
        .as_vec()
        .into_iter()
        .map(|pad| if pad { f32::NEG_INFINITY } else { 0.0 })
        .collect();
    dev.try_tensor_from_vec(values, *padding.shape())
        .map_err(Error::device)
}

impl<D: KernelDevice<f32>> LstmModel<D> {
    /// The encoder's outputs, `(B, SOURCE_LEN, HIDDEN)`.
    fn encode<T: Tape<f32, D>>(
        &self,
        source: Tensor<(usize, Const<SOURCE_LEN>), usize, D, T>,
    ) -> Result<Hidden<Const<SOURCE_LEN>, D, T>> {
        let batch = source.shape().0;
        let x = self.src_embed.try_forward(source).map_err(Error::device)?;
        let (memory, _) = self.encoder.forward_with_state(x, None);
        memory
            .try_reshape_like(&(batch, Const::<SOURCE_LEN>, Const::<HIDDEN>))
            .map_err(Error::device)
    }

    /// Attention of the decoder states over the memory and the logits of each step, with
    /// the averaged weights `(B, S, SOURCE_LEN)` for pictures.
    #[allow(clippy::type_complexity)]
    fn attend<S: Dim, T: Tape<f32, D> + Merge<T>>(
        &self,
        states: Hidden<S, D, T>,
        memory: Hidden<Const<SOURCE_LEN>, D, T>,
        mask: &Tensor<(usize, Const<SOURCE_LEN>), f32, D>,
    ) -> Result<(
        Tensor<(usize, S, Const<TARGET_VOCAB>), f32, D, T>,
        Tensor<(usize, S, Const<SOURCE_LEN>), f32, D>,
    )> {
        let (batch, steps, _) = *states.shape();
        // Each tensor is read twice: the second reads carry no tape, and the gradient
        // reaches both uses through the tensor's id when the tapes merge.
        let (memory, memory_tape) = memory.split_tape();
        let (states, states_tape) = states.split_tape();
        let keys = self
            .score
            .try_forward(memory.clone().put_tape(memory_tape))
            .map_err(Error::device)?;
        let mask = mask
            .clone()
            .try_broadcast_like::<_, Axis<1>>(&(batch, steps, Const::<SOURCE_LEN>))
            .map_err(Error::device)?;
        let weights = states
            .clone()
            .put_tape(states_tape)
            .try_matmul(
                keys.try_permute::<_, Axes3<0, 2, 1>>()
                    .map_err(Error::device)?,
            )
            .map_err(Error::device)?
            .try_add(mask)
            .map_err(Error::device)?
            .try_softmax::<Axis<2>>()
            .map_err(Error::device)?;
        let shown = weights.retaped::<NoneTape>();
        let context = weights
            .try_matmul(memory.retaped::<T>())
            .map_err(Error::device)?;
        let from_context = self
            .combine_context
            .try_forward(context)
            .map_err(Error::device)?;
        let from_state = self
            .combine_state
            .try_forward(states.retaped::<T>())
            .map_err(Error::device)?;
        let h = from_context
            .try_add(from_state)
            .map_err(Error::device)?
            .try_tanh()
            .map_err(Error::device)?;
        Ok((self.head.try_forward(h).map_err(Error::device)?, shown))
    }

    /// `bridge` of the mean encoder output over the source characters (not the padding),
    /// broadcast to every one of `steps` decoder inputs.
    fn summary<S: Dim, T: Tape<f32, D>>(
        &self,
        memory: Hidden<Const<SOURCE_LEN>, D, T>,
        padding: &SourcePadding<D>,
        steps: S,
    ) -> Result<Embedded<S, D, T>> {
        let dev = padding.device().clone();
        let batch = memory.shape().0;
        let pads = padding.as_vec();
        // Each kept position weighs 1/length, so the sum below is the mean.
        let weights: Vec<f32> = pads
            .chunks(SOURCE_LEN)
            .flat_map(|row| {
                let length = row.iter().filter(|p| !**p).count().max(1) as f32;
                row.iter().map(move |p| if *p { 0.0 } else { 1.0 / length })
            })
            .collect();
        let weights: Tensor<(usize, Const<SOURCE_LEN>), f32, D> = dev
            .try_tensor_from_vec(weights, (batch, Const))
            .map_err(Error::device)?;
        let weights = weights
            .try_broadcast_like::<_, Axis<2>>(memory.shape())
            .map_err(Error::device)?;
        let mean = memory
            .try_mul(weights)
            .map_err(Error::device)?
            .try_sum::<_, Axis<1>>()
            .map_err(Error::device)?;
        self.bridge
            .try_forward(mean)
            .map_err(Error::device)?
            .try_broadcast_like::<_, Axis<1>>(&(batch, steps, Const::<EMBEDDING>))
            .map_err(Error::device)
    }

    fn run<T: Tape<f32, D> + Merge<T>>(
        &self,
        source: Tensor<(usize, Const<SOURCE_LEN>), usize, D, T>,
        target_in: Tensor<(usize, Const<TARGET_LEN>), usize, D, T>,
        padding: &SourcePadding<D>,
    ) -> Result<Logits<D, T>> {
        let batch = source.shape().0;
        let memory = self.encode(source)?;
        let (memory, tape) = memory.split_tape();
        let summary = self.summary(memory.clone().put_tape(tape), padding, Const::<TARGET_LEN>)?;
        let memory = memory.retaped::<T>();
        let y = self
            .tgt_embed
            .try_forward(target_in)
            .map_err(Error::device)?
            .try_add(summary)
            .map_err(Error::device)?;
        let (states, _) = self.decoder.forward_with_state(y, None);
        let states = states
            .try_reshape_like(&(batch, Const::<TARGET_LEN>, Const::<HIDDEN>))
            .map_err(Error::device)?;
        Ok(self.attend(states, memory, &additive_mask(padding)?)?.0)
    }
}

impl<D: KernelDevice<f32>> Translator<D> for LstmModel<D> {
    fn logits(
        &self,
        source: SourceTokens<D>,
        target_in: TargetTokens<D>,
        padding: &SourcePadding<D>,
    ) -> Result<Logits<D, NoneTape>> {
        self.run(source, target_in, padding)
    }

    fn logits_mut(
        &mut self,
        source: Tensor<(usize, Const<SOURCE_LEN>), usize, D, OwnedTape<f32, D>>,
        target_in: Tensor<(usize, Const<TARGET_LEN>), usize, D, OwnedTape<f32, D>>,
        padding: &SourcePadding<D>,
    ) -> Result<Logits<D, OwnedTape<f32, D>>> {
        // One layer each, so no dropout between layers: training runs the same forward.
        self.run(source, target_in, padding)
    }

    fn translate(
        &self,
        source: SourceTokens<D>,
        padding: SourcePadding<D>,
    ) -> Result<(Vec<Vec<usize>>, Vec<f32>)> {
        let dev = source.device().clone();
        let batch = source.shape().0;
        let memory = self.encode(source)?;
        let mask = additive_mask(&padding)?;
        let summary = self.summary(memory.clone(), &padding, Const::<1>)?;
        let mut state = None;
        let mut previous = vec![BOS; batch];
        let mut outputs = vec![Vec::new(); batch];
        let mut weights = vec![Vec::new(); batch];
        for _ in 0..TARGET_LEN {
            let tokens = dev
                .try_tensor_from_vec(previous.clone(), (batch, Const::<1>))
                .map_err(Error::device)?;
            let y = self
                .tgt_embed
                .try_forward(tokens)
                .map_err(Error::device)?
                .try_add(summary.clone())
                .map_err(Error::device)?;
            // The LSTM's state carries the prefix: one step per output token.
            let (h, next_state) = self.decoder.forward_with_state(y, state);
            state = Some(next_state);
            let h = h
                .try_reshape_like(&(batch, Const::<1>, Const::<HIDDEN>))
                .map_err(Error::device)?;
            let (logits, step_weights) = self.attend(h, memory.clone(), &mask)?;
            let step_weights = step_weights.as_vec();
            for (i, row) in logits.as_vec().chunks(TARGET_VOCAB).enumerate() {
                let next = argmax(row).unwrap_or(EOS);
                previous[i] = next;
                if outputs[i].last() != Some(&EOS) {
                    outputs[i].push(next);
                }
                weights[i].extend_from_slice(&step_weights[i * SOURCE_LEN..(i + 1) * SOURCE_LEN]);
            }
        }
        Ok((outputs, weights.concat()))
    }
}
