//! Early stopping on a validation metric, with patience and a minimum improvement.

/// The validation metric early stopping watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Monitor {
    /// Validation loss; lower is better.
    ValidLoss,
    /// Validation accuracy (the objective's `accuracy`); higher is better.
    ValidAccuracy,
    /// Another validation metric the objective reports, by name without the `valid_`
    /// prefix (`"kl"`, `"top5_accuracy"`, ...).
    ValidMetric {
        /// The metric's name.
        name: &'static str,
        /// Whether larger values are better.
        higher_is_better: bool,
    },
}

impl Monitor {
    /// The watched value in `record`; `None` if the epoch did not report it.
    ///
    /// # Shapes
    /// Not a layer: one number per epoch.
    ///
    /// ```
    /// use shapesafe::train::{EpochRecord, Monitor};
    /// let r = EpochRecord { epoch: 1, lr: 0.1, train_loss: 0.5, valid_loss: 0.4, seconds: 1.0,
    ///     metrics: vec![("valid_kl".into(), 3.0)] };
    /// assert_eq!(Monitor::ValidLoss.value(&r), Some(0.4));
    /// assert_eq!(Monitor::ValidMetric { name: "kl", higher_is_better: false }.value(&r), Some(3.0));
    /// assert_eq!(Monitor::ValidAccuracy.value(&r), None);
    /// ```
    pub fn value(&self, record: &super::EpochRecord) -> Option<f64> {
        match self {
            Monitor::ValidLoss => Some(record.valid_loss),
            Monitor::ValidAccuracy => record.metric("valid_accuracy"),
            Monitor::ValidMetric { name, .. } => record.metric(&format!("valid_{name}")),
        }
    }

    /// Whether larger values of the watched metric are better.
    pub fn higher_is_better(&self) -> bool {
        match self {
            Monitor::ValidLoss => false,
            Monitor::ValidAccuracy => true,
            Monitor::ValidMetric {
                higher_is_better, ..
            } => *higher_is_better,
        }
    }
}

/// Stops training when the monitored metric has not improved by `min_delta` for
/// `patience` epochs, and remembers the best epoch (so the trainer can restore its weights).
///
/// PyTorch users know it from Lightning's `EarlyStopping(monitor, patience, min_delta)`.
///
/// # Shapes
/// Not a layer: fed one value per epoch.
///
/// ```
/// use shapesafe::train::{EarlyStopping, Monitor};
/// let mut stop = EarlyStopping::new(Monitor::ValidLoss, 2);
/// assert!(stop.update(0, 1.0).improved);
/// assert!(!stop.update(1, 1.1).should_stop);
/// assert!(stop.update(2, 1.2).should_stop);
/// assert_eq!(stop.best_epoch(), Some(0));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct EarlyStopping {
    /// What is watched.
    pub monitor: Monitor,
    /// Epochs without improvement tolerated before stopping.
    pub patience: usize,
    /// The smallest change that counts as an improvement.
    pub min_delta: f64,
    /// Whether the trainer should put back the best epoch's weights at the end.
    pub restore_best: bool,
    best: Option<(usize, f64)>,
    waited: usize,
}

/// What one [`EarlyStopping::update`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StopDecision {
    /// This epoch is the new best.
    pub improved: bool,
    /// Patience has run out.
    pub should_stop: bool,
}

impl EarlyStopping {
    /// Watches `monitor` with the given patience, `min_delta` 0, restoring the best weights.
    pub fn new(monitor: Monitor, patience: usize) -> Self {
        Self {
            monitor,
            patience,
            min_delta: 0.0,
            restore_best: true,
            best: None,
            waited: 0,
        }
    }

    /// Records `value` for `epoch`.
    pub fn update(&mut self, epoch: usize, value: f64) -> StopDecision {
        let better = match self.best {
            None => true,
            Some((_, best)) if self.monitor.higher_is_better() => value > best + self.min_delta,
            Some((_, best)) => value < best - self.min_delta,
        };
        if better {
            self.best = Some((epoch, value));
            self.waited = 0;
        } else {
            self.waited += 1;
        }
        StopDecision {
            improved: better,
            should_stop: self.waited >= self.patience.max(1),
        }
    }

    /// The best epoch so far.
    pub fn best_epoch(&self) -> Option<usize> {
        self.best.map(|(e, _)| e)
    }

    /// The best value so far.
    pub fn best_value(&self) -> Option<f64> {
        self.best.map(|(_, v)| v)
    }

    /// Puts back a state saved with [`Self::best_epoch`], [`Self::best_value`] and
    /// [`Self::waited`], so a resumed run decides exactly as an uninterrupted one.
    pub fn restore(&mut self, best: Option<(usize, f64)>, waited: usize) {
        self.best = best;
        self.waited = waited;
    }

    /// Epochs since the last improvement.
    pub fn waited(&self) -> usize {
        self.waited
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_must_rise_by_min_delta() {
        let mut s = EarlyStopping::new(Monitor::ValidAccuracy, 2);
        s.min_delta = 0.01;
        assert!(s.update(0, 0.90).improved);
        assert!(!s.update(1, 0.905).improved, "within min_delta");
        assert!(s.update(2, 0.92).improved);
        assert!(!s.update(3, 0.5).should_stop);
        let d = s.update(4, 0.5);
        assert!(d.should_stop && !d.improved);
        assert_eq!((s.best_epoch(), s.best_value()), (Some(2), Some(0.92)));
    }
}
