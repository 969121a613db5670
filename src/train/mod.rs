//! Training: the epoch loop, evaluation, metrics, schedules, early stopping, curves, weights on disk.

mod checkpoint;
mod early_stopping;
mod history;
mod image_grid;
mod learning_rate;
mod metrics;
pub mod plot;
mod schedule;
mod trainer;

pub use checkpoint::{load_checkpoint, load_weights, save_atomic, save_checkpoint, TrainingState};
pub use early_stopping::{EarlyStopping, Monitor, StopDecision};
pub use history::{EpochRecord, History};
pub use image_grid::{GridRow, ImageGrid};
pub use learning_rate::LearningRate;
pub use metrics::{argmax, in_top_k, ConfusionMatrix};
pub use schedule::LrSchedule;
pub use trainer::{Report, TrainConfig, Trainer};
