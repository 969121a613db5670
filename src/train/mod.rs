//! Training: the epoch loop, evaluation, metrics, schedules, early stopping, curves, weights on disk.

mod checkpoint;
mod early_stopping;
mod heatmap;
mod history;
mod image_grid;
mod learning_rate;
mod metric_sums;
mod metrics;
mod objective;
pub mod plot;
mod schedule;
mod trainer;

pub use checkpoint::{load_checkpoint, load_weights, save_atomic, save_checkpoint, TrainingState};
pub use early_stopping::{EarlyStopping, Monitor, StopDecision};
pub use heatmap::Heatmap;
pub use history::{EpochRecord, History};
pub use image_grid::{GridRow, ImageGrid};
pub use learning_rate::LearningRate;
pub use metric_sums::Metrics;
pub use metrics::{argmax, in_top_k, ConfusionMatrix};
pub use objective::{Classification, LanguageModeling, Objective, Regression, Report};
pub use schedule::LrSchedule;
pub use trainer::{progress_bar, TrainConfig, Trainer};
