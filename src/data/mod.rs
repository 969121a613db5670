//! Data loading: IDX files, the MNIST data set, and typed tensor batches for dfdx.
//!
//! The usual path is [`Mnist::load`] to read the files once, then a [`Batcher`] per epoch to
//! serve them as `(Const<B>, Const<1>, Const<28>, Const<28>)` image tensors with one-hot targets.
//!
//! # Example
//! ```no_run
//! use dfdx::tensor::Cpu;
//! use shapesafe::data::{data_dir, Batcher, Mnist};
//!
//! let mnist = Mnist::load(data_dir().join("mnist-small"))?;
//! let dev = Cpu::default();
//! let batcher = Batcher::new(&mnist.test);
//! let mut seen = 0;
//! for batch in batcher.batches::<64, _>(&dev) {
//!     let (_images, _targets, labels) = batch?;
//!     seen += labels.len();
//! }
//! if let Some((_images, _targets, labels)) = batcher.tail::<64, _>(&dev)? {
//!     seen += labels.len();
//! }
//! assert_eq!(seen, 1000);
//! # Ok::<(), shapesafe::Error>(())
//! ```

mod batcher;
mod dataset;
mod idx;
mod mnist;

pub use batcher::{
    normalize_pixel, Batch, Batcher, DynBatch, DynImageBatch, DynTargetBatch, ImageBatch,
    TargetBatch,
};
pub use dataset::{Batchable, Dataset};
pub use idx::{
    parse_idx_images, parse_idx_labels, read_idx_images, read_idx_labels, IdxImages,
    IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, MAX_PAYLOAD_BYTES,
};
pub use mnist::{
    data_dir, Mnist, MnistSplit, MNIST_CLASSES, MNIST_COLS, MNIST_MEAN, MNIST_PIXELS, MNIST_ROWS,
    MNIST_STD, TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS,
};
