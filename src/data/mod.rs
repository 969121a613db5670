//! Data loading: IDX files, MNIST and Fashion-MNIST, scikit-learn's digits, typed batches,
//! and PyTorch-style data loaders with torchvision-style transforms.
//!
//! Any [`Dataset`] (MNIST splits, [`Digits`], a [`Subset`] of either) goes through a
//! [`DataLoader`], which serves shuffled, augmented [`Batch`]es whose inputs are typed dfdx
//! tensors.
//!
//! # Example
//! ```
//! use dfdx::tensor::Cpu;
//! use shapesafe::data::{data_dir, random_split, DataLoader, Digits, Normalize, RandomAffine};
//!
//! let digits = Digits::load(data_dir().join("sklearn-digits/digits.csv.gz"))?;
//! let parts = random_split(&digits, &[0.8, 0.2], 0)?;
//! let (train, valid) = (&parts[0], &parts[1]);
//! let dev = Cpu::default();
//! let loader = DataLoader::new(train, 64)?
//!     .shuffle(0)
//!     .transform((RandomAffine::new(10.0), Normalize::new(vec![0.3], vec![0.4])?));
//! let mut seen = 0;
//! for batch in loader.epoch(0, &dev) {
//!     seen += batch?.len();
//! }
//! assert_eq!(seen, 1438);
//! assert_eq!(DataLoader::new(valid, 64)?.len(), 6);
//! # Ok::<(), shapesafe::Error>(())
//! ```

mod batches;
mod dataset;
mod digits;
mod idx;
mod image_folder;
mod loader;
mod mnist;
mod resample;
mod subset;
mod text;
mod text_loader;
mod transforms;

pub use batches::Loader;
pub use dataset::{Batchable, Dataset};
pub use digits::{
    Digits, DIGITS_CLASSES, DIGITS_FILE, DIGITS_MAX_BYTES, DIGITS_MAX_VALUE, DIGITS_PIXELS,
};
pub use idx::{
    parse_idx_images, parse_idx_labels, read_idx_images, read_idx_labels, IdxImages,
    IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, MAX_PAYLOAD_BYTES,
};
pub use image_folder::{load_image, to_tensor, CenterCrop, ImageFolder, Resize};
pub use loader::{one_hot, Batch, DataLoader, Epoch};
pub use mnist::{
    data_dir, normalize_pixel, FashionMnist, Mnist, MnistSplit, FASHION_MNIST_CLASSES,
    FASHION_MNIST_DEBIAN_DIR, MNIST_CLASSES, MNIST_COLS, MNIST_MEAN, MNIST_PIXELS, MNIST_ROWS,
    MNIST_STD, TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS,
};
pub use resample::resize_bilinear;
pub use subset::{random_split, train_test_split, SplitLength, Subset};
pub use text::{CharText, SHAKESPEARE_FILE, TEXT_MAX_BYTES};
pub use text_loader::{TextBatch, TextLoader};
pub use transforms::{
    affine, Compose, Lambda, Normalize, RandomAffine, RandomCrop, RandomHorizontalFlip,
    RandomVerticalFlip, Transform,
};
