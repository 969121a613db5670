//! Learning-rate schedules by epoch (constant, step, exponential, cosine with linear warm-up)
//! and by the share of a wall-clock budget spent (cosine).

/// How the learning rate changes from epoch to epoch (epochs count from 0).
///
/// PyTorch equivalents: `StepLR`, `ExponentialLR`, and `LinearLR` warm-up
/// followed by `CosineAnnealingLR` (chained with `SequentialLR`).
///
/// # Shapes
/// Not a layer: a map from epoch to learning rate.
///
/// ```
/// use shapesafe::train::LrSchedule;
/// let s = LrSchedule::Step { step_size: 2, gamma: 0.1 };
/// assert_eq!(s.lr(0.1, 0), 0.1);
/// assert!((s.lr(0.1, 2) - 0.01).abs() < 1e-15);
/// let c = LrSchedule::CosineWarmup { warmup_epochs: 1, total_epochs: 5, min_lr: 0.0 };
/// assert!(c.lr(1.0, 0) < 1.0);
/// assert_eq!(c.lr(1.0, 1), 1.0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LrSchedule {
    /// The base rate throughout.
    Constant,
    /// Multiply by `gamma` every `step_size` epochs.
    Step {
        /// Epochs between decays.
        step_size: usize,
        /// Factor per decay.
        gamma: f64,
    },
    /// Multiply by `gamma` every epoch.
    Exponential {
        /// Factor per epoch.
        gamma: f64,
    },
    /// Rise linearly to the base rate over `warmup_epochs` (starting at
    /// `base / (warmup_epochs + 1)`), then follow a half cosine down to `min_lr`
    /// at `total_epochs`.
    CosineWarmup {
        /// Epochs of linear warm-up.
        warmup_epochs: usize,
        /// Epochs of the whole run, warm-up included.
        total_epochs: usize,
        /// Rate at the end of the cosine.
        min_lr: f64,
    },
    /// Half a cosine from the base rate down to `min_lr` over the wall-clock budget of
    /// [`TrainConfig::max_seconds`](crate::train::TrainConfig::max_seconds), set before every
    /// step from the share of the budget spent: the schedule for runs measured by time
    /// rather than epochs, which ends annealed however many steps the machine gave it.
    /// [`Self::lr`] (by epoch) gives the base rate; the `Trainer` refuses this schedule
    /// without a budget.
    CosineOverBudget {
        /// Rate when the budget is spent.
        min_lr: f64,
    },
}

impl LrSchedule {
    /// The learning rate for `epoch` given the optimizer's `base` rate.
    pub fn lr(&self, base: f64, epoch: usize) -> f64 {
        match *self {
            LrSchedule::Constant | LrSchedule::CosineOverBudget { .. } => base,
            LrSchedule::Step { step_size, gamma } => {
                base * gamma.powi((epoch / step_size.max(1)) as i32)
            }
            LrSchedule::Exponential { gamma } => base * gamma.powi(epoch as i32),
            LrSchedule::CosineWarmup {
                warmup_epochs,
                total_epochs,
                min_lr,
            } => {
                if epoch < warmup_epochs {
                    base * (epoch + 1) as f64 / (warmup_epochs + 1) as f64
                } else {
                    let span = total_epochs.saturating_sub(warmup_epochs).max(1) as f64;
                    let t = ((epoch - warmup_epochs) as f64 / span).min(1.0);
                    cosine(base, min_lr, t)
                }
            }
        }
    }

    /// The rate once the share `spent` (0 to 1) of the time budget is gone: the cosine for
    /// [`Self::CosineOverBudget`], `None` for the schedules by epoch.
    ///
    /// ```
    /// use shapesafe::train::LrSchedule;
    /// let s = LrSchedule::CosineOverBudget { min_lr: 0.0 };
    /// assert_eq!(s.lr_over_budget(1.0, 0.0), Some(1.0));
    /// assert!((s.lr_over_budget(1.0, 0.5).unwrap() - 0.5).abs() < 1e-12);
    /// assert_eq!(s.lr_over_budget(1.0, 2.0), Some(0.0));
    /// assert_eq!(LrSchedule::Constant.lr_over_budget(1.0, 0.5), None);
    /// ```
    pub fn lr_over_budget(&self, base: f64, spent: f64) -> Option<f64> {
        match *self {
            LrSchedule::CosineOverBudget { min_lr } => {
                Some(cosine(base, min_lr, spent.clamp(0.0, 1.0)))
            }
            _ => None,
        }
    }
}

/// Half a cosine from `base` at `t = 0` to `min_lr` at `t = 1`.
fn cosine(base: f64, min_lr: f64, t: f64) -> f64 {
    min_lr + (base - min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_follow_pytorch_formulas() {
        let e = LrSchedule::Exponential { gamma: 0.5 };
        assert_eq!(e.lr(1.0, 3), 0.125);
        let s = LrSchedule::Step {
            step_size: 3,
            gamma: 0.5,
        };
        assert_eq!(
            [0, 2, 3, 5, 6].map(|i| s.lr(1.0, i)),
            [1.0, 1.0, 0.5, 0.5, 0.25]
        );
        let c = LrSchedule::CosineWarmup {
            warmup_epochs: 2,
            total_epochs: 6,
            min_lr: 0.1,
        };
        let lrs: Vec<f64> = (0..7).map(|i| c.lr(1.0, i)).collect();
        assert!((lrs[0] - 1.0 / 3.0).abs() < 1e-12 && (lrs[1] - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(lrs[2], 1.0);
        assert!(
            (lrs[4] - 0.55).abs() < 1e-12,
            "halfway down the cosine: {}",
            lrs[4]
        );
        assert!((lrs[6] - 0.1).abs() < 1e-12);
        assert!(lrs[2..].windows(2).all(|w| w[1] <= w[0]));
    }
}
