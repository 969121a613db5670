//! `Trainer`: the training loop for any model and [`Objective`], with validation, metrics,
//! schedules, clipping, regularization, early stopping, progress, curves and checkpoints.

use super::{
    load_checkpoint, load_weights, save_atomic, save_checkpoint, Classification, EarlyStopping,
    EpochRecord, History, LearningRate, LrSchedule, Metrics, Objective, Report, TrainingState,
};
use crate::data::{Batchable, DataLoader, Dataset, Loader};
use crate::distributed::agree::exchange;
use crate::distributed::{all_reduce_gradients, broadcast_module, check_same_model, DataParallel};
use crate::optim::{add_l1, add_l2, clip_grad_norm, first_non_finite_grad, OptimizerState};
use crate::shape::Summary;
use crate::{Error, Result};
use dfdx::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// How [`Trainer::fit`] trains. `Default` is 10 epochs at a constant rate, no
/// clipping or regularization, no early stopping, progress bars on.
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
    /// Draw progress bars (on a terminal only).
    pub progress: bool,
    /// Where `metrics.csv`, `curves.svg` (and `curves.png` where the system has fonts) and
    /// `checkpoint.safetensors` go; `None` writes nothing.
    pub out_dir: Option<PathBuf>,
    /// Seed recorded in checkpoints (the loaders carry their own).
    pub seed: u64,
    /// A wall-clock budget in seconds for one `fit`, training and validation together, as
    /// Lightning's `Trainer(max_time=...)`: when it is spent, the epoch under way ends after
    /// its current batch, is validated and recorded like any other, and `fit` returns. That
    /// last epoch may have seen only part of the data. `None`: no limit.
    pub max_seconds: Option<f64>,
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
            progress: true,
            out_dir: None,
            seed: 0,
            max_seconds: None,
        }
    }
}

/// Trains any model on any [`Objective`]: `Trainer::new(model, optimizer, device)
/// .fit(&train, &valid)` for a classifier, `.with_objective(...)` for anything else.
///
/// PyTorch users know the loop from Lightning's `Trainer.fit` or burn's `Learner`: each
/// epoch runs the objective's training step on every batch (backward, regularization,
/// clipping, optimizer step), then its validation step on every validation batch, and
/// records the losses and the objective's metrics; progress bars, `metrics.csv`, curves,
/// checkpoints, learning-rate schedules and early stopping work the same for every
/// objective. A non-finite loss or gradient stops the run with [`Error::NonFinite`]
/// naming the step.
///
/// # Shapes
/// Whatever the objective feeds the model: for the default [`Classification`], inputs
/// `(usize, ...V::Shape)` -> logits `(usize, V::Classes)`.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::data::{DataLoader, MnistSplit};
/// use shapesafe::train::{Regression, TrainConfig, Trainer};
/// let split = MnistSplit::new(vec![0; 784 * 8], vec![1; 8]).unwrap();
/// let dev = Cpu::default();
/// let model = dev.build_module::<(Flatten, Linear<784, 10>), f32>();
/// let opt = shapesafe::optim::Sgd::new(&model, SgdConfig { lr: 0.5, ..Default::default() });
/// let config = TrainConfig { epochs: 3, progress: false, ..Default::default() };
/// let mut trainer = Trainer::new(model, opt, dev.clone()).with_config(config.clone());
/// let loader = DataLoader::new(&split, 4).unwrap();
/// let history = trainer.fit(&loader, &loader).unwrap();
/// assert_eq!(history.records.len(), 3);
/// assert_eq!(history.records[2].metric("valid_accuracy"), Some(1.0));
///
/// // Regression on fixed batches: y = 2x.
/// let model = dev.build_module::<Linear<1, 1>, f32>();
/// let opt = shapesafe::optim::Sgd::new(&model, SgdConfig { lr: 0.1, ..Default::default() });
/// let batches = vec![(dev.tensor([[1.0f32], [-1.0]]), dev.tensor([[2.0f32], [-2.0]]))];
/// let config = TrainConfig { epochs: 100, ..config };
/// let mut trainer = Trainer::new(model, opt, dev).with_objective(Regression).with_config(config);
/// let history = trainer.fit(&batches, &batches).unwrap();
/// assert!(history.records[99].valid_loss < 1e-6);
/// ```
pub struct Trainer<M, O, D, J = Classification> {
    /// The model being trained.
    pub model: M,
    /// Its optimizer.
    pub optimizer: O,
    /// What is minimised and reported.
    pub objective: J,
    /// How to train.
    pub config: TrainConfig,
    dev: D,
    history: History,
    summary: Option<Summary>,
    base_lr: Option<f64>,
    /// Completed epochs and optimizer steps, for checkpoints and error messages.
    epochs_done: usize,
    steps_done: usize,
    /// The ranks this trainer shares its work with, if any.
    parallel: Option<DataParallel>,
    /// Rank 0's seconds since `fit` began, as of the last step: in a distributed run every
    /// rank times its budget and schedule by this one clock, so all decide alike.
    agreed_seconds: f64,
}

impl<M, O, D> Trainer<M, O, D, Classification>
where
    D: Device<f32>,
    M: TensorCollection<f32, D>
        + ZeroGrads<f32, D>
        + Clone
        + SaveToSafetensors<f32, D>
        + LoadFromSafetensors<f32, D>,
    O: Optimizer<M, D, f32> + LearningRate + OptimizerState,
{
    /// A classifier's trainer (objective [`Classification`] with top-5 accuracy) with the
    /// default [`TrainConfig`].
    pub fn new(model: M, optimizer: O, dev: D) -> Self {
        Self {
            model,
            optimizer,
            objective: Classification::default(),
            config: TrainConfig::default(),
            dev,
            history: History::new(),
            summary: None,
            base_lr: None,
            epochs_done: 0,
            steps_done: 0,
            parallel: None,
            agreed_seconds: 0.0,
        }
    }

    /// Cross-entropy, top-1 and top-k accuracy and the confusion matrix on `loader`.
    ///
    /// # Errors
    /// A batch the loader cannot build, or a device failure.
    pub fn evaluate<V>(&self, loader: &DataLoader<'_, V>) -> Result<Report>
    where
        V: Dataset,
        M: Module<
            Tensor<<V::Shape as Batchable>::Batched, f32, D>,
            Output = Tensor<(usize, V::Classes), f32, D>,
        >,
    {
        self.objective.report(&self.model, loader, &self.dev)
    }
}

impl<M, O, D, J> Trainer<M, O, D, J>
where
    D: Device<f32>,
    M: TensorCollection<f32, D>
        + ZeroGrads<f32, D>
        + Clone
        + SaveToSafetensors<f32, D>
        + LoadFromSafetensors<f32, D>,
    O: Optimizer<M, D, f32> + LearningRate + OptimizerState,
{
    /// The same trainer minimising `objective` instead.
    pub fn with_objective<J2>(self, objective: J2) -> Trainer<M, O, D, J2> {
        Trainer {
            model: self.model,
            optimizer: self.optimizer,
            objective,
            config: self.config,
            dev: self.dev,
            history: self.history,
            summary: self.summary,
            base_lr: self.base_lr,
            epochs_done: self.epochs_done,
            steps_done: self.steps_done,
            parallel: self.parallel,
            agreed_seconds: self.agreed_seconds,
        }
    }

    /// Replaces the configuration.
    pub fn with_config(mut self, config: TrainConfig) -> Self {
        self.config = config;
        self
    }

    /// Trains data-parallel over `parallel`'s ranks, as PyTorch's `DistributedDataParallel`
    /// with a `DistributedSampler`: `fit` checks that every rank built the same model,
    /// broadcasts rank 0's weights and buffers, averages the gradients across ranks after
    /// every backward pass (in buckets of [`DataParallel::bucket_bytes`]), and sums the
    /// losses and metrics of all ranks, so every rank takes the same optimizer steps, keeps
    /// the same weights and makes the same early-stopping decision. Rank 0 alone draws
    /// progress, prints and writes files. A rank whose batch, loss or file fails stops every
    /// rank with [`Error::Distributed`] naming it.
    ///
    /// Give each rank its own share of the training data ([`DataLoader::shard`]), and the
    /// validation data too unless every rank should see all of it. Run every rank with the
    /// same configuration; [`Self::resume`] them all from the same checkpoint file, which
    /// may have been written with any number of ranks.
    pub fn data_parallel(mut self, parallel: DataParallel) -> Self {
        self.parallel = Some(parallel);
        self
    }

    /// Whether this process prints and writes files: rank 0, or any process that is not
    /// part of a distributed run.
    pub fn is_main(&self) -> bool {
        self.parallel.as_ref().is_none_or(DataParallel::is_main)
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

    /// The objective's validation loss (mean per example) and metrics on every batch of
    /// `loader`, without a tape.
    ///
    /// # Errors
    /// A batch the loader cannot build, or what the objective reports.
    pub fn validate<L>(&mut self, loader: &L) -> Result<(f64, Metrics)>
    where
        L: Loader<D>,
        J: Objective<M, D, L::Batch>,
    {
        let mut metrics = Metrics::new();
        let mut loss = Metrics::new();
        for batch in loader.batches(0, &self.dev) {
            let batch = batch?;
            let n = self.objective.examples(&batch) as f64;
            let value = self
                .objective
                .validation_step(&self.model, batch, &mut metrics)?;
            loss.add("loss", value * n, n);
        }
        if let Some(p) = &self.parallel {
            metrics.all_reduce(&*p.comm)?;
            loss.all_reduce(&*p.comm)?;
        }
        Ok((loss.mean("loss").unwrap_or(0.0), metrics))
    }

    /// Trains for the configured epochs (or until early stopping, or until
    /// [`TrainConfig::max_seconds`] is spent), validating after each; returns the history.
    /// After a [`Self::resume`], it continues where the checkpoint left off.
    ///
    /// # Errors
    /// A `max_seconds` that is not a positive number ([`Error::Usage`]), a batch a loader
    /// cannot build, a non-finite loss or gradient
    /// ([`Error::NonFinite`]), an early-stopping metric the objective does not report, a
    /// device failure, or a file that cannot be written.
    pub fn fit<Tr, Va>(&mut self, train: &Tr, valid: &Va) -> Result<&History>
    where
        Tr: Loader<D>,
        Va: Loader<D>,
        J: Objective<M, D, Tr::Batch> + Objective<M, D, Va::Batch>,
    {
        let fit_start = Instant::now();
        if let Some(budget) = self.config.max_seconds {
            if !(budget.is_finite() && budget > 0.0) {
                return Err(Error::Usage(format!(
                    "max_seconds must be a positive number of seconds, got {budget}"
                )));
            }
        }
        if matches!(self.config.schedule, LrSchedule::CosineOverBudget { .. })
            && self.config.max_seconds.is_none()
        {
            return Err(Error::Usage(
                "LrSchedule::CosineOverBudget needs a budget: set TrainConfig::max_seconds".into(),
            ));
        }
        self.agreed_seconds = 0.0;
        // In a distributed run, rank 0's clock as of the last step, so that all ranks stop
        // and schedule alike; otherwise this process's own.
        let seconds = |agreed: f64, parallel: bool| {
            if parallel {
                agreed
            } else {
                fit_start.elapsed().as_secs_f64()
            }
        };
        let out_of_time = |config: &TrainConfig, spent: f64| {
            config.max_seconds.is_some_and(|budget| spent >= budget)
        };
        if let Some(p) = &self.parallel {
            check_same_model(&self.model, &*p.comm)?;
            broadcast_module(&mut self.model, &*p.comm, 0)?;
        }
        let parallel = self.parallel.is_some();
        if let (Some(summary), true) = (&self.summary, self.is_main()) {
            println!("{summary}\n");
        }
        let base_lr = *self.base_lr.get_or_insert(self.optimizer.learning_rate());
        let mut stopper = self.config.early_stopping.clone();
        let mut best_model: Option<M> = None;
        let dev = self.dev.clone();
        let mut grads = self.model.try_alloc_grads().map_err(Error::device)?;
        if let Some(dir) = &self.config.out_dir {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                path: dir.clone(),
                source,
            })?;
        }

        for epoch in self.epochs_done..self.config.epochs {
            let lr = self
                .config
                .max_seconds
                .and_then(|budget| {
                    let spent = seconds(self.agreed_seconds, parallel) / budget;
                    self.config.schedule.lr_over_budget(base_lr, spent)
                })
                .unwrap_or_else(|| self.config.schedule.lr(base_lr, epoch));
            self.optimizer.set_learning_rate(lr);
            // A rank with more batches than the others would wait for them forever.
            if let Some(p) = &self.parallel {
                let counts = p.comm.all_gather_u64(&[train.num_batches() as u64])?;
                if let Some(rank) = counts.iter().position(|&c| c != counts[0]) {
                    return Err(Error::Distributed {
                        rank,
                        reason: format!(
                            "it has {} training batches per epoch where rank 0 has {}: give \
                             every rank the same number (DataLoader::shard does)",
                            counts[rank], counts[0]
                        ),
                    });
                }
            }
            let start = Instant::now();
            let bar = self.progress_bar(train.num_batches() as u64, epoch);
            let mut metrics = Metrics::new();
            let (mut loss_sum, mut seen) = (0.0f64, 0usize);
            for batch in train.batches(epoch as u64, &dev) {
                if let Some(budget) = self.config.max_seconds {
                    let spent = seconds(self.agreed_seconds, parallel) / budget;
                    if let Some(lr) = self.config.schedule.lr_over_budget(base_lr, spent) {
                        self.optimizer.set_learning_rate(lr);
                    }
                }
                let step = self.steps_done + 1;
                let outcome = batch.and_then(|batch| {
                    let n = Objective::<M, D, Tr::Batch>::examples(&self.objective, &batch);
                    let loss = self.objective.training_step(
                        &mut self.model,
                        batch,
                        grads,
                        &mut metrics,
                    )?;
                    Ok((loss, n))
                });
                let outcome = outcome.and_then(|(loss, n)| {
                    let value = loss.as_vec()[0] as f64;
                    if value.is_finite() {
                        Ok((loss, n, value))
                    } else {
                        Err(self.non_finite(epoch, step, "loss".to_string()))
                    }
                });
                // Every rank learns whether any failed before anyone waits on gradients.
                let (loss, n, loss_value) = match &self.parallel {
                    None => outcome?,
                    Some(p) => {
                        let clock = fit_start.elapsed().as_secs_f64().to_bits();
                        let (value, clocks) = exchange(&*p.comm, outcome, clock)?;
                        self.agreed_seconds = f64::from_bits(clocks[0]);
                        value
                    }
                };
                grads = loss.backward();
                if let Some(p) = &self.parallel {
                    all_reduce_gradients(&self.model, &mut grads, &*p.comm, p.bucket_bytes)?;
                }
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
                    .map_err(Error::device)?;
                self.steps_done = step;

                loss_sum += loss_value * n as f64;
                seen += n;
                if let Some(bar) = &bar {
                    bar.inc(1);
                    bar.set_message(format!("loss {:.4}", loss_sum / seen as f64));
                }
                if out_of_time(&self.config, seconds(self.agreed_seconds, parallel)) {
                    break;
                }
            }
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            if let Some(p) = &self.parallel {
                metrics.all_reduce(&*p.comm)?;
                let mut totals = [loss_sum, seen as f64];
                p.comm.all_reduce_sum_f64(&mut totals)?;
                (loss_sum, seen) = (totals[0], totals[1] as usize);
            }
            let epoch_seconds = start.elapsed().as_secs_f64();
            let (valid_loss, valid_metrics) = self.validate(valid)?;
            let prefixed = |prefix: &'static str, m: &Metrics| {
                m.means()
                    .into_iter()
                    .map(move |(name, v)| (format!("{prefix}{name}"), v))
                    .collect::<Vec<_>>()
            };
            let record = EpochRecord {
                epoch: epoch + 1,
                lr,
                train_loss: loss_sum / seen.max(1) as f64,
                valid_loss,
                seconds: epoch_seconds,
                metrics: [
                    prefixed("train_", &metrics),
                    prefixed("valid_", &valid_metrics),
                ]
                .concat(),
            };
            if self.is_main() {
                println!(
                    "epoch {:>3}/{}  lr {:.2e}  train loss {:.4}{}  valid loss {:.4}{}  {:.1} s ({:.0} ex/s)",
                    record.epoch,
                    self.config.epochs,
                    lr,
                    record.train_loss,
                    show(&metrics),
                    record.valid_loss,
                    show(&valid_metrics),
                    epoch_seconds,
                    seen as f64 / epoch_seconds
                );
            }
            self.history.records.push(record);
            self.epochs_done = epoch + 1;

            let mut stop = false;
            if let Some(stopper) = stopper.as_mut() {
                let record = &self.history.records[self.history.records.len() - 1];
                let value = stopper.monitor.value(record).ok_or_else(|| {
                    Error::Usage(format!(
                        "early stopping watches {:?}, which this objective does not report \
                         (it reports valid_loss and {:?})",
                        stopper.monitor,
                        valid_metrics
                            .means()
                            .into_iter()
                            .map(|(n, _)| n)
                            .collect::<Vec<_>>()
                    ))
                })?;
                let decision = stopper.update(epoch + 1, value);
                if decision.improved && stopper.restore_best {
                    best_model = Some(self.model.clone());
                    if let (Some(dir), true) = (&self.config.out_dir, self.is_main()) {
                        save_atomic(&self.model, dir.join("best.safetensors"))?;
                    }
                }
                stop = decision.should_stop;
            }
            if self.is_main() {
                self.write_outputs(stopper.as_ref())?;
            }
            let spent = seconds(self.agreed_seconds, parallel);
            if !stop && out_of_time(&self.config, spent) && epoch + 1 < self.config.epochs {
                if self.is_main() {
                    println!(
                        "time budget of {} s spent after {spent:.1} s: stopping after epoch {}",
                        self.config.max_seconds.unwrap_or(0.0),
                        epoch + 1
                    );
                }
                break;
            }
            if stop && self.is_main() {
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
            if self.is_main() {
                println!(
                    "restoring the weights of epoch {} (best {:?} {:.4})",
                    stopper.best_epoch().unwrap_or(0),
                    stopper.monitor,
                    stopper.best_value().unwrap_or(f64::NAN)
                );
            }
            self.model = best;
        }
        // Ranks on other hosts may not see rank 0's `best.safetensors`; rank 0's weights
        // are the run's result.
        if let Some(p) = &self.parallel {
            broadcast_module(&mut self.model, &*p.comm, 0)?;
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
            self.history = History::from_csv(csv)?;
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
        if !self.config.progress || !self.is_main() {
            return None;
        }
        Some(progress_bar(
            len,
            format!("epoch {}/{}", epoch + 1, self.config.epochs),
        ))
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

/// `  accuracy 97.12%  kl 3.2100`: accuracies as percentages, the rest as they are.
fn show(metrics: &Metrics) -> String {
    metrics
        .means()
        .into_iter()
        .map(|(name, v)| {
            if name.ends_with("accuracy") {
                format!(" {name} {:.2}%", 100.0 * v)
            } else {
                format!(" {name} {v:.4}")
            }
        })
        .collect()
}

/// The `Trainer`'s progress bar over `len` batches, for loops of your own (a GAN's two
/// steps): `prefix [=====>    ] pos/len batches  msg  rate  eta`, drawn on a terminal only.
///
/// # Shapes
/// Not a layer: `len` batches.
///
/// ```
/// let bar = shapesafe::train::progress_bar(10, "epoch 1/3".to_string());
/// bar.inc(1);
/// bar.set_message("loss 0.5");
/// assert_eq!(bar.position(), 1);
/// bar.finish_and_clear();
/// ```
pub fn progress_bar(len: u64, prefix: String) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let style = ProgressStyle::with_template(
        "{prefix} [{bar:30}] {pos}/{len} batches  {msg}  {per_sec}  eta {eta}",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(prefix);
    bar
}
