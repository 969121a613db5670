//! The MNIST handwritten-digit data set: loading the four standard IDX files into memory.
//!
//! Pixels stay as `u8` (a quarter of the memory of `f32`); a
//! [`DataLoader`](super::DataLoader) turns them into normalised `f32` tensors one batch at a time.

use std::path::{Path, PathBuf};

use super::idx::{read_idx_images, read_idx_labels};
use crate::error::{Error, Result};

/// Height of an MNIST image in pixels.
pub const MNIST_ROWS: usize = 28;

/// Width of an MNIST image in pixels.
pub const MNIST_COLS: usize = 28;

/// Pixels in one MNIST image (28 × 28 = 784).
pub const MNIST_PIXELS: usize = MNIST_ROWS * MNIST_COLS;

/// Number of MNIST classes (the digits 0–9).
pub const MNIST_CLASSES: usize = 10;

/// Mean pixel value of the 60,000 MNIST training images after dividing by 255.
///
/// Used with [`MNIST_STD`] to normalise inputs to roughly zero mean and unit variance.
pub const MNIST_MEAN: f32 = 0.1307;

/// Standard deviation of the pixel values of the 60,000 MNIST training images after dividing
/// by 255.
pub const MNIST_STD: f32 = 0.3081;

/// File name of the training images (gzip); the same name without `.gz` is also accepted.
pub const TRAIN_IMAGES: &str = "train-images-idx3-ubyte.gz";
/// File name of the training labels (gzip); the same name without `.gz` is also accepted.
pub const TRAIN_LABELS: &str = "train-labels-idx1-ubyte.gz";
/// File name of the test images (gzip); the same name without `.gz` is also accepted.
pub const TEST_IMAGES: &str = "t10k-images-idx3-ubyte.gz";
/// File name of the test labels (gzip); the same name without `.gz` is also accepted.
pub const TEST_LABELS: &str = "t10k-labels-idx1-ubyte.gz";

/// The folder of data sets shipped with the repository: `<crate root>/data`.
///
/// It holds `mnist/` (full MNIST) and `mnist-small/` (the first 5,000 training and 1,000 test
/// images). The path is fixed at compile time, so it suits examples and tests run from a
/// checkout. A binary copied to another machine (a CUDA build run on a GPU machine, see
/// `docs/cuda.md`) finds the folder through the `SHAPESAFE_DATA` environment variable,
/// which takes precedence when set.
///
/// # Example
/// ```
/// let dir = shapesafe::data::data_dir().join("mnist-small");
/// # if std::env::var_os("SHAPESAFE_DATA").is_none() {
/// assert!(dir.ends_with("data/mnist-small"));
/// # }
/// ```
pub fn data_dir() -> PathBuf {
    match std::env::var_os("SHAPESAFE_DATA") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/data")),
    }
}

/// MNIST's training and test splits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mnist {
    /// The training split (60,000 images in full MNIST).
    pub train: MnistSplit,
    /// The test split (10,000 images in full MNIST).
    pub test: MnistSplit,
}

impl Mnist {
    /// Loads both splits from `dir`, which must hold the four standard MNIST files
    /// (`train-images-idx3-ubyte.gz` and so on, gzip-compressed or not).
    ///
    /// # Errors
    /// Any error of [`MnistSplit::load`].
    ///
    /// # Example
    /// ```no_run
    /// use shapesafe::data::{data_dir, Mnist};
    /// let mnist = Mnist::load(data_dir().join("mnist-small"))?;
    /// assert_eq!((mnist.train.len(), mnist.test.len()), (5000, 1000));
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn load(dir: impl AsRef<Path>) -> Result<Mnist> {
        let dir = dir.as_ref();
        Ok(Mnist {
            train: MnistSplit::load(find(dir, TRAIN_IMAGES), find(dir, TRAIN_LABELS))?,
            test: MnistSplit::load(find(dir, TEST_IMAGES), find(dir, TEST_LABELS))?,
        })
    }
}

/// The ten Fashion-MNIST classes, by label: torchvision's `FashionMNIST.classes`.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Where Debian's `dataset-fashion-mnist` package (`apt-get install dataset-fashion-mnist`)
/// puts the four Fashion-MNIST files.
pub const FASHION_MNIST_DEBIAN_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// Zalando's Fashion-MNIST: 28x28 grey images of clothing in 10 classes, a drop-in
/// replacement for MNIST in the same IDX format and file names.
///
/// Nothing is downloaded: point [`FashionMnist::load`] at a folder that holds the files, such
/// as [`FASHION_MNIST_DEBIAN_DIR`] once Debian's `dataset-fashion-mnist` package is installed.
/// The splits are [`MnistSplit`]s, so everything that takes MNIST takes Fashion-MNIST.
/// Normalise with [`Normalize::fashion_mnist`](super::Normalize::fashion_mnist).
///
/// ```no_run
/// use shapesafe::data::{FashionMnist, FASHION_MNIST_DEBIAN_DIR};
/// let fashion = FashionMnist::load(FASHION_MNIST_DEBIAN_DIR)?;
/// assert_eq!((fashion.train.len(), fashion.test.len()), (60_000, 10_000));
/// println!("first label: {}", fashion.class_name(fashion.train.labels[0]).unwrap());
/// # Ok::<(), shapesafe::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FashionMnist {
    /// The training split (60,000 images).
    pub train: MnistSplit,
    /// The test split (10,000 images).
    pub test: MnistSplit,
}

impl FashionMnist {
    /// Loads both splits from `dir`, which must hold the four files under MNIST's standard
    /// names (`train-images-idx3-ubyte.gz` and so on, gzip-compressed or not).
    ///
    /// # Errors
    /// Any error of [`MnistSplit::load`].
    ///
    /// ```
    /// use shapesafe::data::{data_dir, FashionMnist};
    /// // Any folder of MNIST-format files loads; here, MNIST itself.
    /// let data = FashionMnist::load(data_dir().join("mnist-small"))?;
    /// assert_eq!(data.test.len(), 1000);
    /// assert!(FashionMnist::load(data_dir().join("no-such-folder")).is_err());
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn load(dir: impl AsRef<Path>) -> Result<FashionMnist> {
        let Mnist { train, test } = Mnist::load(dir)?;
        Ok(FashionMnist { train, test })
    }

    /// The name of class `label` (`"Ankle boot"` for 9), or `None` if there is no such class.
    ///
    /// ```
    /// # use shapesafe::data::{FashionMnist, MnistSplit};
    /// # let s = MnistSplit::new(vec![], vec![])?;
    /// # let fashion = FashionMnist { train: s.clone(), test: s };
    /// assert_eq!(fashion.class_name(0), Some("T-shirt/top"));
    /// assert_eq!(fashion.class_name(10), None);
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn class_name(&self, label: u8) -> Option<&'static str> {
        FASHION_MNIST_CLASSES.get(usize::from(label)).copied()
    }
}

/// Picks `dir/name` if it exists, else `dir/name` without `.gz` if that exists; otherwise
/// `dir/name`, so the "not found" error names the standard file.
fn find(dir: &Path, name: &str) -> PathBuf {
    let gz = dir.join(name);
    if gz.exists() {
        return gz;
    }
    match name.strip_suffix(".gz").map(|raw| dir.join(raw)) {
        Some(raw) if raw.exists() => raw,
        _ => gz,
    }
}

/// One MNIST split: images as raw `u8` pixels and their labels.
///
/// The fields are public for easy access; [`MnistSplit::new`] and [`MnistSplit::load`] guarantee
/// `images.len() == labels.len() * MNIST_PIXELS` and every label below [`MNIST_CLASSES`]. Code
/// that consumes a split (such as a [`DataLoader`](super::DataLoader)) re-checks rather than panics if
/// the fields were later changed to break that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MnistSplit {
    /// All pixels, [`MNIST_PIXELS`] per image, each image in row-major order, values 0–255.
    pub images: Vec<u8>,
    /// One label (0–9) per image.
    pub labels: Vec<u8>,
}

impl MnistSplit {
    /// Builds a split from in-memory pixels and labels, checking that they agree.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `images.len() != labels.len() * 784`,
    /// [`Error::LabelOutOfRange`] if a label is 10 or more.
    ///
    /// # Example
    /// ```
    /// use shapesafe::data::{MnistSplit, MNIST_PIXELS};
    /// let split = MnistSplit::new(vec![0; 2 * MNIST_PIXELS], vec![3, 7])?;
    /// assert_eq!(split.len(), 2);
    /// assert!(MnistSplit::new(vec![0; 5], vec![3]).is_err());
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn new(images: Vec<u8>, labels: Vec<u8>) -> Result<MnistSplit> {
        let expected = labels.len().checked_mul(MNIST_PIXELS);
        if expected != Some(images.len()) {
            return Err(Error::ShapeMismatch {
                what: "MNIST pixel buffer".to_string(),
                expected: vec![labels.len(), MNIST_PIXELS],
                found: vec![images.len()],
            });
        }
        if let Some((index, &label)) = labels
            .iter()
            .enumerate()
            .find(|(_, &l)| usize::from(l) >= MNIST_CLASSES)
        {
            return Err(Error::LabelOutOfRange {
                path: PathBuf::new(),
                index,
                label,
                classes: MNIST_CLASSES,
            });
        }
        Ok(MnistSplit { images, labels })
    }

    /// Loads a split from an IDX image file and an IDX label file (each raw or gzip).
    ///
    /// # Errors
    /// Any error of [`read_idx_images`](super::read_idx_images) or
    /// [`read_idx_labels`](super::read_idx_labels); [`Error::ShapeMismatch`] if the images are
    /// not 28×28; [`Error::CountMismatch`] if the files hold different numbers of items.
    ///
    /// # Example
    /// ```no_run
    /// use shapesafe::data::{data_dir, MnistSplit};
    /// let dir = data_dir().join("mnist-small");
    /// let test = MnistSplit::load(
    ///     dir.join("t10k-images-idx3-ubyte.gz"),
    ///     dir.join("t10k-labels-idx1-ubyte.gz"),
    /// )?;
    /// assert_eq!(test.len(), 1000);
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn load(
        images_path: impl AsRef<Path>,
        labels_path: impl AsRef<Path>,
    ) -> Result<MnistSplit> {
        let (images_path, labels_path) = (images_path.as_ref(), labels_path.as_ref());
        let images = read_idx_images(images_path)?;
        if (images.rows, images.cols) != (MNIST_ROWS, MNIST_COLS) {
            return Err(Error::ShapeMismatch {
                what: format!("the MNIST images in {}", images_path.display()),
                expected: vec![images.count, MNIST_ROWS, MNIST_COLS],
                found: vec![images.count, images.rows, images.cols],
            });
        }
        let labels = read_idx_labels(labels_path, MNIST_CLASSES)?;
        if images.count != labels.len() {
            return Err(Error::CountMismatch {
                images_path: images_path.to_path_buf(),
                labels_path: labels_path.to_path_buf(),
                images: images.count,
                labels: labels.len(),
            });
        }
        Ok(MnistSplit {
            images: images.pixels,
            labels,
        })
    }

    /// Number of images (and labels).
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the split holds no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The 784 pixels of image `i`, row-major.
    ///
    /// # Panics
    /// If `i >= self.len()`, like slice indexing; use [`MnistSplit::get_image`] to avoid that.
    ///
    /// # Example
    /// ```
    /// use shapesafe::data::{MnistSplit, MNIST_PIXELS};
    /// let split = MnistSplit::new(vec![9; MNIST_PIXELS], vec![1])?;
    /// assert_eq!(split.image(0)[0], 9);
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn image(&self, i: usize) -> &[u8] {
        &self.images[i * MNIST_PIXELS..(i + 1) * MNIST_PIXELS]
    }

    /// The 784 pixels of image `i`, or `None` if there is no such image.
    pub fn get_image(&self, i: usize) -> Option<&[u8]> {
        let start = i.checked_mul(MNIST_PIXELS)?;
        self.images.get(start..start.checked_add(MNIST_PIXELS)?)
    }

    /// How many images of each class the split holds (labels of 10 or more are not counted).
    ///
    /// # Example
    /// ```
    /// use shapesafe::data::{MnistSplit, MNIST_PIXELS};
    /// let split = MnistSplit::new(vec![0; 3 * MNIST_PIXELS], vec![2, 0, 2])?;
    /// assert_eq!(split.class_counts(), [1, 0, 2, 0, 0, 0, 0, 0, 0, 0]);
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn class_counts(&self) -> [usize; MNIST_CLASSES] {
        let mut counts = [0; MNIST_CLASSES];
        for &l in &self.labels {
            if let Some(c) = counts.get_mut(usize::from(l)) {
                *c += 1;
            }
        }
        counts
    }
}

/// Normalises one pixel as `(p / 255 - MNIST_MEAN) / MNIST_STD`, the input scaling
/// a [`DataLoader`](super::DataLoader) gives MNIST images (and [`Normalize::mnist`](super::Normalize::mnist) matches).
///
/// # Example
/// ```
/// use shapesafe::data::{normalize_pixel, MNIST_MEAN, MNIST_STD};
/// assert_eq!(normalize_pixel(0), -MNIST_MEAN / MNIST_STD);
/// assert!((normalize_pixel(255) - 2.8215).abs() < 1e-3);
/// ```
pub fn normalize_pixel(p: u8) -> f32 {
    (f32::from(p) / 255.0 - MNIST_MEAN) / MNIST_STD
}
