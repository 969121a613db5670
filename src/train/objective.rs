//! `Objective`: what the `Trainer` minimises on a batch and what it reports, with the
//! objectives of classifiers, regressors and next-token language models.

use super::{argmax, in_top_k, ConfusionMatrix, Metrics};
use crate::data::{Batch, Batchable, DataLoader, Dataset, TextBatch};
use crate::nn::loss::cross_entropy;
use crate::{Error, Result};
use dfdx::prelude::*;

/// The loss a [`Trainer`](super::Trainer) minimises, written once per kind of model, as
/// Lightning's `training_step` and `validation_step`.
///
/// `B` is the batch a [`Loader`](crate::data::Loader) yields. A training step runs the
/// model on the tape it is given (`x.traced(grads)`, and `forward_mut`, so dropout and
/// batch norm train) and returns the scalar loss (a mean over the batch); a validation
/// step runs plain `forward` and returns the loss's value. Either adds what else it
/// measures to `metrics` as sums and counts; the trainer reports their means per epoch
/// with a `train_` or `valid_` prefix, writes them to `metrics.csv` and draws them.
///
/// The objectives here: [`Classification`] (cross-entropy, accuracy, top-k),
/// [`Regression`] (mean squared error), [`LanguageModeling`] (next-token cross-entropy);
/// `models::AutoencoderObjective` and `models::VaeObjective` for autoencoders.
///
/// # Shapes
/// Whatever the model maps `B`'s inputs to; the loss is a scalar `()`.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::train::{Metrics, Objective};
///
/// /// Mean absolute error, reported beside the squared error it trains on.
/// struct L1Report;
/// type Pair = (Tensor<Rank2<4, 2>, f32, Cpu>, Tensor<Rank2<4, 1>, f32, Cpu>);
/// impl<M> Objective<M, Cpu, Pair> for L1Report
/// where
///     M: ModuleMut<Tensor<Rank2<4, 2>, f32, Cpu, OwnedTape<f32, Cpu>>,
///             Output = Tensor<Rank2<4, 1>, f32, Cpu, OwnedTape<f32, Cpu>>>
///         + Module<Tensor<Rank2<4, 2>, f32, Cpu>, Output = Tensor<Rank2<4, 1>, f32, Cpu>>,
/// {
///     fn examples(&self, _: &Pair) -> usize { 4 }
///     fn training_step(&mut self, model: &mut M, (x, y): Pair, grads: Gradients<f32, Cpu>,
///         _: &mut Metrics) -> shapesafe::Result<Tensor<(), f32, Cpu, OwnedTape<f32, Cpu>>> {
///         Ok(mse_loss(model.forward_mut(x.traced(grads)), y))
///     }
///     fn validation_step(&mut self, model: &M, (x, y): Pair, metrics: &mut Metrics)
///         -> shapesafe::Result<f64> {
///         let out = model.forward(x);
///         let abs: f32 = (out.clone() - y.clone()).abs().sum::<Rank0, _>().array();
///         metrics.add("mae", abs as f64, 4.0);
///         Ok(mse_loss(out, y).array() as f64)
///     }
/// }
/// let dev = Cpu::default();
/// let mut model = dev.build_module::<Linear<2, 1>, f32>();
/// let batch: Pair = (dev.ones(), dev.zeros());
/// let mut metrics = Metrics::new();
/// let loss = L1Report.validation_step(&model, batch, &mut metrics).unwrap();
/// assert!(loss >= 0.0 && metrics.mean("mae").unwrap() >= 0.0);
/// ```
pub trait Objective<M, D: Device<f32>, B> {
    /// The examples in `batch`: the weight of its loss in the epoch's mean.
    fn examples(&self, batch: &B) -> usize;

    /// The training loss of `model` on `batch`, on the tape of `grads` (which the trainer
    /// zeroed after the previous step).
    ///
    /// # Errors
    /// Whatever the model or device reports, as [`Error::Device`].
    fn training_step(
        &mut self,
        model: &mut M,
        batch: B,
        grads: Gradients<f32, D>,
        metrics: &mut Metrics,
    ) -> Result<Tensor<(), f32, D, OwnedTape<f32, D>>>;

    /// The loss of `model` on `batch` without a tape (and without dropout).
    ///
    /// # Errors
    /// As [`Objective::training_step`].
    fn validation_step(&mut self, model: &M, batch: B, metrics: &mut Metrics) -> Result<f64>;
}

/// Classifiers: cross-entropy on logits against the one-hot targets of a
/// [`DataLoader`]'s batches; reports `accuracy` (training and validation) and
/// `top{k}_accuracy` (validation).
///
/// PyTorch equivalent: `F.cross_entropy(model(x), y)` with `torchmetrics` accuracy.
/// The [`Trainer`](super::Trainer)'s default objective, with `top_k` 5.
///
/// # Shapes
/// Inputs `(usize, ...V::Shape)` -> logits `(usize, V::Classes)`.
///
/// ```
/// use shapesafe::train::Classification;
/// assert_eq!(Classification::default().top_k, 5);
/// assert_eq!(Classification::top(3).metric_names(), ["accuracy", "top3_accuracy"]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Classification {
    /// The k of the top-k validation accuracy.
    pub top_k: usize,
}

impl Default for Classification {
    fn default() -> Self {
        Self { top_k: 5 }
    }
}

/// Loss and metrics of a classifier over a whole loader.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Mean cross-entropy per example.
    pub loss: f64,
    /// Top-1 accuracy.
    pub accuracy: f64,
    /// Top-k accuracy, with the objective's `k`.
    pub top_k_accuracy: f64,
    /// Actual against predicted labels.
    pub confusion: ConfusionMatrix,
}

impl Classification {
    /// Top-`k` accuracy besides top-1.
    pub fn top(k: usize) -> Self {
        Self { top_k: k }
    }

    /// The validation metrics' names, without the `valid_` prefix.
    pub fn metric_names(&self) -> [String; 2] {
        [
            "accuracy".to_string(),
            format!("top{}_accuracy", self.top_k),
        ]
    }

    /// Cross-entropy, top-1 and top-k accuracy and the confusion matrix of `model` on every
    /// batch of `loader`.
    ///
    /// # Errors
    /// A batch the loader cannot build, or a device failure.
    ///
    /// # Shapes
    /// As [`Classification`].
    pub fn report<M, D, V>(&self, model: &M, loader: &DataLoader<'_, V>, dev: &D) -> Result<Report>
    where
        D: Device<f32>,
        V: Dataset + ?Sized,
        M: Module<
            Tensor<<V::Shape as Batchable>::Batched, f32, D>,
            Output = Tensor<(usize, V::Classes), f32, D>,
        >,
    {
        let classes = <V::Classes as ConstDim>::SIZE;
        let mut confusion = ConfusionMatrix::new(classes);
        let mut metrics = Metrics::new();
        for batch in loader.epoch(0, dev) {
            let batch = batch?;
            let logits = model.try_forward(batch.inputs).map_err(Error::device)?;
            let values = logits.as_vec();
            for (row, &label) in values.chunks(classes).zip(&batch.labels) {
                confusion.add(label, argmax(row).unwrap_or(0));
            }
            let n = batch.labels.len() as f64;
            self.count(&values, &batch.labels, classes, &mut metrics, true);
            let loss = cross_entropy(logits, batch.targets).as_vec()[0] as f64;
            metrics.add("loss", loss * n, n);
        }
        let [_, top_k] = self.metric_names();
        Ok(Report {
            loss: metrics.mean("loss").unwrap_or(0.0),
            accuracy: confusion.accuracy(),
            top_k_accuracy: metrics.mean(&top_k).unwrap_or(0.0),
            confusion,
        })
    }

    fn count(
        &self,
        values: &[f32],
        labels: &[usize],
        classes: usize,
        metrics: &mut Metrics,
        top_k: bool,
    ) {
        let rows = || values.chunks(classes).zip(labels);
        let n = labels.len() as f64;
        let correct = rows().filter(|(row, &l)| argmax(row) == Some(l)).count();
        metrics.add("accuracy", correct as f64, n);
        if top_k {
            let hits = rows()
                .filter(|(row, &l)| in_top_k(row, l, self.top_k))
                .count();
            metrics.add(&format!("top{}_accuracy", self.top_k), hits as f64, n);
        }
    }
}

impl<M, D, V> Objective<M, D, Batch<V, D>> for Classification
where
    D: Device<f32>,
    V: Dataset + ?Sized,
    M: ModuleMut<
            Tensor<<V::Shape as Batchable>::Batched, f32, D, OwnedTape<f32, D>>,
            Output = Tensor<(usize, V::Classes), f32, D, OwnedTape<f32, D>>,
        > + Module<
            Tensor<<V::Shape as Batchable>::Batched, f32, D>,
            Output = Tensor<(usize, V::Classes), f32, D>,
        >,
{
    fn examples(&self, batch: &Batch<V, D>) -> usize {
        batch.len()
    }

    fn training_step(
        &mut self,
        model: &mut M,
        batch: Batch<V, D>,
        grads: Gradients<f32, D>,
        metrics: &mut Metrics,
    ) -> Result<Tensor<(), f32, D, OwnedTape<f32, D>>> {
        let logits = model
            .try_forward_mut(batch.inputs.traced(grads))
            .map_err(Error::device)?;
        let classes = <V::Classes as ConstDim>::SIZE;
        self.count(&logits.as_vec(), &batch.labels, classes, metrics, false);
        Ok(cross_entropy(logits, batch.targets))
    }

    fn validation_step(
        &mut self,
        model: &M,
        batch: Batch<V, D>,
        metrics: &mut Metrics,
    ) -> Result<f64> {
        let logits = model.try_forward(batch.inputs).map_err(Error::device)?;
        let classes = <V::Classes as ConstDim>::SIZE;
        self.count(&logits.as_vec(), &batch.labels, classes, metrics, true);
        Ok(cross_entropy(logits, batch.targets).as_vec()[0] as f64)
    }
}

/// Regression: mean squared error between the model's output and the target of
/// `(input, target)` batches; reports `mae`, the mean absolute error per element.
///
/// PyTorch equivalent: `F.mse_loss(model(x), y)`.
///
/// # Shapes
/// Input `S` -> output `T`, the target's shape; the first dim (if any) counts examples.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::train::{Metrics, Objective, Regression};
/// let dev = Cpu::default();
/// let model = dev.build_module::<Linear<1, 1>, f32>();
/// let batch = (dev.tensor([[1.0f32], [2.0]]), dev.tensor([[0.0f32], [0.0]]));
/// let mut m = Metrics::new();
/// let mse = Regression.validation_step(&model, batch, &mut m).unwrap();
/// assert!(mse >= m.mean("mae").unwrap().powi(2) - 1e-6);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Regression;

fn first_dim<S: Shape>(shape: &S) -> usize {
    if S::NUM_DIMS == 0 {
        1
    } else {
        shape.concrete()[0]
    }
}

impl<M, D, S, T> Objective<M, D, (Tensor<S, f32, D>, Tensor<T, f32, D>)> for Regression
where
    D: Device<f32>,
    S: Shape,
    T: Shape,
    M: ModuleMut<
            Tensor<S, f32, D, OwnedTape<f32, D>>,
            Output = Tensor<T, f32, D, OwnedTape<f32, D>>,
        > + Module<Tensor<S, f32, D>, Output = Tensor<T, f32, D>>,
{
    fn examples(&self, batch: &(Tensor<S, f32, D>, Tensor<T, f32, D>)) -> usize {
        first_dim(batch.0.shape())
    }

    fn training_step(
        &mut self,
        model: &mut M,
        (x, y): (Tensor<S, f32, D>, Tensor<T, f32, D>),
        grads: Gradients<f32, D>,
        _metrics: &mut Metrics,
    ) -> Result<Tensor<(), f32, D, OwnedTape<f32, D>>> {
        let out = model
            .try_forward_mut(x.traced(grads))
            .map_err(Error::device)?;
        Ok(mse_loss(out, y))
    }

    fn validation_step(
        &mut self,
        model: &M,
        (x, y): (Tensor<S, f32, D>, Tensor<T, f32, D>),
        metrics: &mut Metrics,
    ) -> Result<f64> {
        let out = model.try_forward(x).map_err(Error::device)?;
        let abs: f64 = out
            .as_vec()
            .iter()
            .zip(y.as_vec())
            .map(|(a, b)| f64::from((a - b).abs()))
            .sum();
        metrics.add("mae", abs, y.shape().num_elements() as f64);
        Ok(mse_loss(out, y).as_vec()[0] as f64)
    }
}

/// Next-token language models on a [`TextLoader`](crate::data::TextLoader)'s batches:
/// cross-entropy of the logits at every position against the next character (nats per
/// character); reports `accuracy`, the fraction of next characters ranked first.
///
/// PyTorch equivalent: `F.cross_entropy(logits.view(-1, V), targets.view(-1))`.
///
/// # Shapes
/// Token ids `(usize, SEQUENCE)` -> logits `(usize, SEQUENCE, VOCAB)`.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::data::{CharText, Loader, TextLoader};
/// use shapesafe::train::{LanguageModeling, Metrics, Objective};
/// let text = CharText::from_text("abababab")?;
/// let dev = Cpu::default();
/// let model = dev.build_module::<(Embedding<2, 4>, Linear<4, 2>), f32>();
/// let batch = TextLoader::<3, 2>::new(&text, 2)?.batches(0, &dev).next().unwrap()?;
/// let mut m = Metrics::new();
/// let loss = LanguageModeling.validation_step(&model, batch, &mut m)?;
/// assert!(loss > 0.0 && m.mean("accuracy").is_some());
/// # Ok::<(), shapesafe::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LanguageModeling;

fn count_next<const VOCAB: usize>(values: &[f32], targets: &[f32], metrics: &mut Metrics) {
    let correct = values
        .chunks(VOCAB)
        .zip(targets.chunks(VOCAB))
        .filter(|(row, target)| argmax(row).is_some_and(|i| target[i] == 1.0))
        .count();
    metrics.add("accuracy", correct as f64, (values.len() / VOCAB) as f64);
}

impl<M, D, const SEQUENCE: usize, const VOCAB: usize> Objective<M, D, TextBatch<SEQUENCE, VOCAB, D>>
    for LanguageModeling
where
    D: Device<f32> + Storage<usize>,
    M: ModuleMut<
            Tensor<(usize, Const<SEQUENCE>), usize, D, OwnedTape<f32, D>>,
            Output = Tensor<(usize, Const<SEQUENCE>, Const<VOCAB>), f32, D, OwnedTape<f32, D>>,
        > + Module<
            Tensor<(usize, Const<SEQUENCE>), usize, D>,
            Output = Tensor<(usize, Const<SEQUENCE>, Const<VOCAB>), f32, D>,
        >,
{
    fn examples(&self, batch: &TextBatch<SEQUENCE, VOCAB, D>) -> usize {
        batch.len()
    }

    fn training_step(
        &mut self,
        model: &mut M,
        batch: TextBatch<SEQUENCE, VOCAB, D>,
        grads: Gradients<f32, D>,
        metrics: &mut Metrics,
    ) -> Result<Tensor<(), f32, D, OwnedTape<f32, D>>> {
        let logits = model
            .try_forward_mut(batch.inputs.traced(grads))
            .map_err(Error::device)?;
        count_next::<VOCAB>(&logits.as_vec(), &batch.targets.as_vec(), metrics);
        Ok(cross_entropy(logits, batch.targets))
    }

    fn validation_step(
        &mut self,
        model: &M,
        batch: TextBatch<SEQUENCE, VOCAB, D>,
        metrics: &mut Metrics,
    ) -> Result<f64> {
        let logits = model.try_forward(batch.inputs).map_err(Error::device)?;
        count_next::<VOCAB>(&logits.as_vec(), &batch.targets.as_vec(), metrics);
        Ok(cross_entropy(logits, batch.targets).as_vec()[0] as f64)
    }
}
