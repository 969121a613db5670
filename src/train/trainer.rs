//! `Trainer`: the classifier training loop with validation, metrics, schedules,
//! clipping, regularization, early stopping, progress, curves and checkpoints.

use super::{
    argmax, in_top_k, load_checkpoint, load_weights, save_atomic, save_checkpoint, ConfusionMatrix,
    EarlyStopping, EpochRecord, History, LearningRate, LrSchedule, TrainingState,
};
use crate::data::{Batchable, DataLoader, Dataset};
use crate::nn::loss::cross_entropy;
use crate::optim::{add_l1, add_l2, clip_grad_norm, first_non_finite_grad, OptimizerState};
use crate::shape::Summary;
use crate::{Error, Result};
use dfdx::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// How [`Trainer::fit`] trains. `Default` is 10 epochs at a constant rate, no
/// clipping or regularization, no early stopping, top-5 accuracy, progress bars on.
#[derive(Clone, Debug)]
pub struct TrainConfig {
    /// Epochs to train (early stopping may end sooner).
    pub epochs: usize,
    /// Learning rate per epoch, from the optimizer's rate at the start.
    pub schedule: LrSchedule,
    /// Rescale gradients whose global L2 norm exceeds this (`clip_grad_norm_`).
    pub clip_grad_norm: Option<f64>,
    /// L1 penalty `l1 * sum |w|` added to the loss's gradient.
    pub l1: f64,
    /// L2 penalty `l2 / 2 * sum w^2` added to the loss's gradient.
    pub l2: f64,
    /// Stop when a validation metric stops improving.
    pub early_stopping: Option<EarlyStopping>,
    /// The k of the top-k validation accuracy.
    pub top_k: usize,
    /// Draw progress bars (on a terminal only).
    pub progress: bool,
    /// Where `metrics.csv`, `curves.svg` (and `curves.png` where the system has fonts) and
    /// `checkpoint.safetensors` go; `None` writes nothing.
    pub out_dir: Option<PathBuf>,
    /// Seed recorded in checkpoints (the loaders carry their own).
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 10,
            schedule: LrSchedule::Constant,
            clip_grad_norm: None,
            l1: 0.0,
            l2: 0.0,
            early_stopping: None,
            top_k: 5,
            progress: true,
            out_dir: None,
            seed: 0,
        }
    }
}

/// Loss and metrics of a model over a whole loader.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Mean cross-entropy per example.
    pub loss: f64,
    /// Top-1 accuracy.
    pub accuracy: f64,
    /// Top-k accuracy, with the `k` the trainer was configured with.
    pub top_k_accuracy: f64,
    /// Actual against predicted labels.
    pub confusion: ConfusionMatrix,
}

/// Trains a classifier: `Trainer::new(model, optimizer, device).fit(&train, &valid)`.
///
/// PyTorch users know the loop from Lightning's `Trainer.fit` or burn's `Learner`:
/// each epoch trains on every batch (cross-entropy on logits), then validates and
/// records loss, accuracy and top-k; a non-finite loss or gradient stops the run
/// with [`Error::NonFinite`] naming the step.
///
/// # Shapes
/// Inputs `(usize, ...D::Shape)` -> logits `(usize, D::Classes)`.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::data::{DataLoader, MnistSplit};
/// use shapesafe::train::{TrainConfig, Trainer};
/// let split = MnistSplit::new(vec![0; 784 * 8], vec![1; 8]).unwrap();
/// let dev = Cpu::default();
/// let model = dev.build_module::<(Flatten, Linear<784, 10>), f32>();
/// let opt = shapesafe::optim::Sgd::new(&model, SgdConfig { lr: 0.5, ..Default::default() });
/// let config = TrainConfig { epochs: 3, progress: false, ..Default::default() };
/// let mut trainer = Trainer::new(model, opt, dev).with_config(config);
/// let loader = DataLoader::new(&split, 4).unwrap();
/// let history = trainer.fit(&loader, &loader).unwrap();
/// assert_eq!(history.records.len(), 3);
/// assert_eq!(history.records[2].valid_accuracy, 1.0);
/// ```
pub struct Trainer<M, O, D> {
    /// The model being trained.
    pub model: M,
    /// Its optimizer.
    pub optimizer: O,
    /// How to train.
    pub config: TrainConfig,
    dev: D,
    history: History,
    summary: Option<Summary>,
    base_lr: Option<f64>,
    /// Completed epochs and optimizer steps, for checkpoints and error messages.
    epochs_done: usize,
    steps_done: usize,
}

impl<M, O, D> Trainer<M, O, D>
where
    D: Device<f32>,
    M: TensorCollection<f32, D>
        + ZeroGrads<f32, D>
        + Clone
        + SaveToSafetensors<f32, D>
        + LoadFromSafetensors<f32, D>,
    O: Optimizer<M, D, f32> + LearningRate + OptimizerState,
{
    /// A trainer with the default [`TrainConfig`].
    pub fn new(model: M, optimizer: O, dev: D) -> Self {
        Self {
            model,
            optimizer,
            config: TrainConfig::default(),
            dev,
            history: History::new(5),
            summary: None,
            base_lr: None,
            epochs_done: 0,
            steps_done: 0,
        }
    }

    /// Replaces the configuration.
    pub fn with_config(mut self, config: TrainConfig) -> Self {
        self.history.top_k = config.top_k;
        self.config = config;
        self
    }

    /// A model summary to print when training starts.
    pub fn with_summary(mut self, summary: Summary) -> Self {
        self.summary = Some(summary);
        self
    }

    /// The records of the epochs trained so far.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// Cross-entropy, top-1 and top-k accuracy and the confusion matrix on `loader`.
    pub fn evaluate<V>(&self, loader: &DataLoader<'_, V>) -> Result<Report>
    where
        V: Dataset,
        M: Module<
            Tensor<<V::Shape as Batchable>::Batched, f32, D>,
            Output = Tensor<(usize, V::Classes), f32, D>,
        >,
    {
        let classes = <V::Classes as ConstDim>::SIZE;
        let mut confusion = ConfusionMatrix::new(classes);
        let (mut loss_sum, mut top_k, mut seen) = (0.0f64, 0usize, 0usize);
        for batch in loader.epoch(0, &self.dev) {
            let batch = batch?;
            let logits = self
                .model
                .try_forward(batch.inputs)
                .map_err(|e| Error::Device(format!("{e:?}")))?;
            let values = logits.as_vec();
            let n = batch.labels.len();
            loss_sum += cross_entropy(logits, batch.targets).as_vec()[0] as f64 * n as f64;
            for (row, &label) in values.chunks(classes).zip(&batch.labels) {
                confusion.add(label, argmax(row).unwrap_or(0));
                top_k += in_top_k(row, label, self.config.top_k) as usize;
            }
            seen += n;
        }
        let n = seen.max(1) as f64;
        Ok(Report {
            loss: loss_sum / n,
            accuracy: confusion.accuracy(),
            top_k_accuracy: top_k as f64 / n,
            confusion,
        })
    }

    /// Trains for the configured epochs (or until early stopping), validating after
    /// each; returns the history. After a [`Self::resume`], it continues where the
    /// checkpoint left off.
    pub fn fit<Tr, Va>(
        &mut self,
        train: &DataLoader<'_, Tr>,
        valid: &DataLoader<'_, Va>,
    ) -> Result<&History>
    where
        Tr: Dataset,
        Va: Dataset,
        M: ModuleMut<
                Tensor<<Tr::Shape as Batchable>::Batched, f32, D, OwnedTape<f32, D>>,
                Output = Tensor<(usize, Tr::Classes), f32, D, OwnedTape<f32, D>>,
            > + Module<
                Tensor<<Va::Shape as Batchable>::Batched, f32, D>,
                Output = Tensor<(usize, Va::Classes), f32, D>,
            >,
    {
        if let Some(summary) = &self.summary {
            println!("{summary}\n");
        }
        let base_lr = *self.base_lr.get_or_insert(self.optimizer.learning_rate());
        let mut stopper = self.config.early_stopping.clone();
        let mut best_model: Option<M> = None;
        let classes = <Tr::Classes as ConstDim>::SIZE;
        let dev = self.dev.clone();
        let mut grads = self.model.try_alloc_grads().map_err(device_error)?;
        if let Some(dir) = &self.config.out_dir {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                path: dir.clone(),
                source,
            })?;
        }

        for epoch in self.epochs_done..self.config.epochs {
            let lr = self.config.schedule.lr(base_lr, epoch);
            self.optimizer.set_learning_rate(lr);
            let start = Instant::now();
            let bar = self.progress_bar(train.len() as u64, epoch);
            let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
            for batch in train.epoch(epoch as u64, &dev) {
                let batch = batch?;
                let n = batch.labels.len();
                let logits = self
                    .model
                    .try_forward_mut(batch.inputs.traced(grads))
                    .map_err(device_error)?;
                let values = logits.as_vec();
                let loss = cross_entropy(logits, batch.targets);
                let loss_value = loss.as_vec()[0] as f64;
                let step = self.steps_done + 1;
                if !loss_value.is_finite() {
                    return Err(self.non_finite(epoch, step, "loss".to_string()));
                }
                grads = loss.backward();
                if let Some(name) = first_non_finite_grad(&self.model, &grads)? {
                    return Err(self.non_finite(epoch, step, format!("gradient of {name}")));
                }
                if self.config.l1 > 0.0 {
                    add_l1(&self.model, &mut grads, self.config.l1)?;
                }
                if self.config.l2 > 0.0 {
                    add_l2(&self.model, &mut grads, self.config.l2)?;
                }
                if let Some(max_norm) = self.config.clip_grad_norm {
                    clip_grad_norm(&self.model, &mut grads, max_norm)?;
                }
                self.optimizer
                    .update(&mut self.model, &grads)
                    .map_err(|e| Error::Device(format!("optimizer: {e:?}")))?;
                self.model
                    .try_zero_grads(&mut grads)
                    .map_err(device_error)?;
                self.steps_done = step;

                loss_sum += loss_value * n as f64;
                correct += values
                    .chunks(classes)
                    .zip(&batch.labels)
                    .filter(|(row, &label)| argmax(row) == Some(label))
                    .count();
                seen += n;
                if let Some(bar) = &bar {
                    bar.inc(1);
                    bar.set_message(format!("loss {:.4}", loss_sum / seen as f64));
                }
            }
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            let seconds = start.elapsed().as_secs_f64();
            let report = self.evaluate(valid)?;
            let record = EpochRecord {
                epoch: epoch + 1,
                lr,
                train_loss: loss_sum / seen.max(1) as f64,
                train_accuracy: correct as f64 / seen.max(1) as f64,
                valid_loss: report.loss,
                valid_accuracy: report.accuracy,
                valid_top_k: report.top_k_accuracy,
                seconds,
            };
            println!(
                "epoch {:>3}/{}  lr {:.2e}  train loss {:.4} acc {:.2}%  valid loss {:.4} acc {:.2}% top{} {:.2}%  {:.1} s ({:.0} ex/s)",
                record.epoch,
                self.config.epochs,
                lr,
                record.train_loss,
                100.0 * record.train_accuracy,
                record.valid_loss,
                100.0 * record.valid_accuracy,
                self.config.top_k,
                100.0 * record.valid_top_k,
                seconds,
                seen as f64 / seconds
            );
            self.history.records.push(record);
            self.epochs_done = epoch + 1;

            let mut stop = false;
            if let Some(stopper) = stopper.as_mut() {
                let value = match stopper.monitor {
                    super::Monitor::ValidLoss => report.loss,
                    super::Monitor::ValidAccuracy => report.accuracy,
                };
                let decision = stopper.update(epoch + 1, value);
                if decision.improved && stopper.restore_best {
                    best_model = Some(self.model.clone());
                    if let Some(dir) = &self.config.out_dir {
                        save_atomic(&self.model, dir.join("best.safetensors"))?;
                    }
                }
                stop = decision.should_stop;
            }
            self.write_outputs(stopper.as_ref())?;
            if stop {
                println!(
                    "early stopping: no improvement for {} epochs",
                    self.config
                        .early_stopping
                        .as_ref()
                        .map_or(0, |s| s.patience)
                );
                break;
            }
        }
        // A resumed run may have found its best epoch before the checkpoint.
        if let (None, Some(stopper), Some(dir)) =
            (&best_model, stopper.as_ref(), &self.config.out_dir)
        {
            let path = dir.join("best.safetensors");
            if stopper.restore_best && stopper.best_epoch().is_some() && path.exists() {
                let mut best = self.model.clone();
                load_weights(&mut best, path)?;
                best_model = Some(best);
            }
        }
        if let (Some(best), Some(stopper)) = (best_model, stopper.as_ref()) {
            println!(
                "restoring the weights of epoch {} (best {:?} {:.4})",
                stopper.best_epoch().unwrap_or(0),
                stopper.monitor,
                stopper.best_value().unwrap_or(f64::NAN)
            );
            self.model = best;
        }
        self.config.early_stopping = stopper;
        Ok(&self.history)
    }

    /// Loads `path` (written by a previous run's `fit` with an `out_dir`) so the
    /// next `fit` continues from its epoch with the same weights and optimizer state.
    pub fn resume(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let state = load_checkpoint(path, &mut self.model, &mut self.optimizer)?;
        self.epochs_done = state.epoch as usize;
        self.steps_done = state.step as usize;
        if let Some(lr) = state.extra.get("base_lr").and_then(|v| v.parse().ok()) {
            self.base_lr = Some(lr);
        }
        if let Some(csv) = state.extra.get("history") {
            self.history = History::from_csv(csv, self.config.top_k)?;
        }
        if let Some(stopper) = self.config.early_stopping.as_mut() {
            let best_epoch = state.extra.get("best_epoch").and_then(|v| v.parse().ok());
            let best_value = state.extra.get("best_value").and_then(|v| v.parse().ok());
            let waited = state
                .extra
                .get("waited")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            stopper.restore(best_epoch.zip(best_value), waited);
        }
        Ok(())
    }

    fn progress_bar(&self, len: u64, epoch: usize) -> Option<ProgressBar> {
        if !self.config.progress {
            return None;
        }
        let bar = ProgressBar::new(len);
        let style = ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} batches  {msg}  {per_sec}  eta {eta}",
        )
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_prefix(format!("epoch {}/{}", epoch + 1, self.config.epochs));
        Some(bar)
    }

    fn non_finite(&self, epoch: usize, step: usize, what: String) -> Error {
        Error::NonFinite {
            epoch: epoch + 1,
            step,
            what,
        }
    }

    /// Metrics CSV, curves SVG and a checkpoint, each written whole or not at all.
    fn write_outputs(&self, stopper: Option<&EarlyStopping>) -> Result<()> {
        let Some(dir) = &self.config.out_dir else {
            return Ok(());
        };
        self.history.write_csv(dir.join("metrics.csv"))?;
        self.history.write_svg(dir.join("curves.svg"))?;
        self.history.write_png(dir.join("curves.png"))?;
        let mut extra = BTreeMap::new();
        extra.insert("history".to_string(), self.history.to_csv());
        if let Some(lr) = self.base_lr {
            extra.insert("base_lr".to_string(), lr.to_string());
        }
        if let Some(s) = stopper {
            if let (Some(e), Some(v)) = (s.best_epoch(), s.best_value()) {
                extra.insert("best_epoch".to_string(), e.to_string());
                extra.insert("best_value".to_string(), v.to_string());
            }
            extra.insert("waited".to_string(), s.waited().to_string());
        }
        let state = TrainingState {
            epoch: self.epochs_done as u64,
            step: self.steps_done as u64,
            seed: self.config.seed,
            extra,
        };
        save_checkpoint(
            dir.join("checkpoint.safetensors"),
            &self.model,
            &self.optimizer,
            &state,
        )
    }
}

fn device_error(e: impl std::fmt::Debug) -> Error {
    Error::Device(format!("{e:?}"))
}
