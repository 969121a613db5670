//! One epoch of classifier training and an evaluation pass over a split.

use crate::data::{Batcher, DynImageBatch, ImageBatch, MnistSplit};
use crate::nn::loss::cross_entropy;
use crate::{Error, Result};
use dfdx::prelude::*;
use std::time::Instant;

/// Loss and accuracy of a model over a whole split.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    /// Mean cross-entropy over every example.
    pub loss: f32,
    /// Fraction of examples whose largest logit is the label.
    pub accuracy: f32,
}

/// What one training epoch did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochStats {
    /// Mean training loss over the epoch's batches.
    pub loss: f32,
    /// Images seen.
    pub images: usize,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// How many rows of `logits` have their largest entry at `labels[row]`.
///
/// # Shapes
/// `logits (B, Const<CLASSES>)`, `labels` of length `B`.
///
/// ```
/// use shapesafe::prelude::*;
/// let logits = Cpu::default().tensor([[0.1f32, 2.0], [3.0, -1.0]]);
/// assert_eq!(shapesafe::train::count_correct(&logits, &[1, 1]), 1);
/// ```
pub fn count_correct<B: Dim, const CLASSES: usize, D: Device<f32>, T>(
    logits: &Tensor<(B, Const<CLASSES>), f32, D, T>,
    labels: &[usize],
) -> usize {
    let values = logits.as_vec();
    values
        .chunks(CLASSES)
        .zip(labels)
        .filter(|(row, &label)| super::argmax(row) == Some(label))
        .count()
}

fn device_error(e: impl std::fmt::Debug) -> Error {
    Error::Device(format!("{e:?}"))
}

/// Trains `model` for one epoch over `batcher`'s order with cross-entropy, calling
/// `progress(step, steps, running_mean_loss)` after every step.
///
/// The last incomplete batch is skipped, as PyTorch's `drop_last=True` does.
///
/// # Shapes
/// Images `(Const<B>, Const<1>, Const<28>, Const<28>)` -> logits `(Const<B>, Const<10>)`.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::data::{Batcher, MnistSplit};
/// let split = MnistSplit::new(vec![0; 784 * 4], vec![0, 1, 2, 3]).unwrap();
/// let dev = Cpu::default();
/// let mut model = dev.build_module::<(Flatten, Linear<784, 10>), f32>();
/// let mut opt = Sgd::new(&model, SgdConfig::default());
/// let stats = shapesafe::train::train_epoch::<2, _, _, _>(
///     &mut model, &mut opt, &Batcher::new(&split), &dev, |_, _, _| {},
/// ).unwrap();
/// assert_eq!(stats.images, 4);
/// ```
pub fn train_epoch<const B: usize, D, M, O>(
    model: &mut M,
    optimizer: &mut O,
    batcher: &Batcher<'_>,
    dev: &D,
    mut progress: impl FnMut(usize, usize, f32),
) -> Result<EpochStats>
where
    D: Device<f32>,
    M: ModuleMut<
            Tensor<(Const<B>, Const<1>, Const<28>, Const<28>), f32, D, OwnedTape<f32, D>>,
            Output = Tensor<(Const<B>, Const<10>), f32, D, OwnedTape<f32, D>>,
        > + ZeroGrads<f32, D>,
    O: Optimizer<M, D, f32>,
{
    let start = Instant::now();
    let steps = batcher.num_batches::<B>();
    let mut grads = model.try_alloc_grads().map_err(device_error)?;
    let mut total = 0.0;
    for (step, batch) in batcher.batches::<B, D>(dev).enumerate() {
        let (images, targets, _) = batch?;
        let images: ImageBatch<B, D> = images;
        let logits = model
            .try_forward_mut(images.traced(grads))
            .map_err(device_error)?;
        let loss = cross_entropy(logits, targets);
        total += loss.as_vec()[0];
        grads = loss.backward();
        optimizer
            .update(model, &grads)
            .map_err(|e| Error::Device(format!("optimizer: {e:?}")))?;
        model.try_zero_grads(&mut grads).map_err(device_error)?;
        progress(step + 1, steps, total / (step + 1) as f32);
    }
    Ok(EpochStats {
        loss: total / steps.max(1) as f32,
        images: steps * B,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Mean cross-entropy and accuracy of `model` on every image of `split`, in
/// batches of `B` plus one smaller final batch.
///
/// # Shapes
/// Images `(Const<B>, ...)` and `(usize, ...)` -> logits `(.., Const<10>)`.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::data::MnistSplit;
/// let split = MnistSplit::new(vec![0; 784 * 3], vec![0, 0, 0]).unwrap();
/// let dev = Cpu::default();
/// let mut model = dev.build_module::<(Flatten, Linear<784, 10>), f32>();
/// model.1.bias = dev.tensor([5.0, 0., 0., 0., 0., 0., 0., 0., 0., 0.]);
/// let eval = shapesafe::train::evaluate::<2, _, _>(&model, &split, &dev).unwrap();
/// assert_eq!(eval.accuracy, 1.0);
/// ```
pub fn evaluate<const B: usize, D, M>(model: &M, split: &MnistSplit, dev: &D) -> Result<Evaluation>
where
    D: Device<f32>,
    M: Module<ImageBatch<B, D>, Output = Tensor<(Const<B>, Const<10>), f32, D>>
        + Module<DynImageBatch<D>, Output = Tensor<(usize, Const<10>), f32, D>>,
    <M as Module<ImageBatch<B, D>>>::Error: std::fmt::Debug,
{
    let batcher = Batcher::new(split);
    let (mut loss_sum, mut correct) = (0.0f64, 0usize);
    for batch in batcher.batches::<B, D>(dev) {
        let (images, targets, labels) = batch?;
        let logits = model.try_forward(images).map_err(device_error)?;
        correct += count_correct(&logits, &labels);
        loss_sum += cross_entropy(logits, targets).as_vec()[0] as f64 * B as f64;
    }
    if let Some((images, targets, labels)) = batcher.tail::<B, D>(dev)? {
        let logits = model.try_forward(images).map_err(device_error)?;
        correct += count_correct(&logits, &labels);
        loss_sum += cross_entropy(logits, targets).as_vec()[0] as f64 * labels.len() as f64;
    }
    let n = split.len().max(1) as f64;
    Ok(Evaluation {
        loss: (loss_sum / n) as f32,
        accuracy: (correct as f64 / n) as f32,
    })
}
