//! Turns an [`MnistSplit`] into typed dfdx tensor batches, in order or shuffled.
//!
//! Full batches have the batch size in their type, `(Const<B>, Const<1>, Const<28>, Const<28>)`,
//! so a model's shape checks reach all the way to the data. The few images left over when the
//! split's size is not a multiple of `B` come from [`Batcher::tail`] as a batch whose first
//! dimension is a runtime `usize`, so evaluation can still cover every image.

use dfdx::shapes::Const;
use dfdx::tensor::{Tensor, TensorFromVec};
use rand::seq::SliceRandom;
use rand::Rng;

use super::mnist::{MnistSplit, MNIST_CLASSES, MNIST_MEAN, MNIST_PIXELS, MNIST_STD};
use crate::error::{Error, Result};

/// A batch of `B` normalised MNIST images: `(B, 1, 28, 28)` (channels first).
pub type ImageBatch<const B: usize, D> = Tensor<(Const<B>, Const<1>, Const<28>, Const<28>), f32, D>;

/// One-hot targets for a batch of `B` images: `(B, 10)`, for dfdx's
/// `cross_entropy_with_logits_loss`.
pub type TargetBatch<const B: usize, D> = Tensor<(Const<B>, Const<10>), f32, D>;

/// A batch of normalised MNIST images whose size is known only at run time: `(n, 1, 28, 28)`.
pub type DynImageBatch<D> = Tensor<(usize, Const<1>, Const<28>, Const<28>), f32, D>;

/// One-hot targets for a batch whose size is known only at run time: `(n, 10)`.
pub type DynTargetBatch<D> = Tensor<(usize, Const<10>), f32, D>;

/// A full batch: images, one-hot targets, and the raw labels (for counting correct answers).
///
/// (Named `StaticBatch` so that [`Batch`](super::Batch) can be the
/// [`DataLoader`](super::DataLoader)'s batch of any data set.)
pub type StaticBatch<const B: usize, D> = (ImageBatch<B, D>, TargetBatch<B, D>, Vec<usize>);

/// A runtime-sized batch: images, one-hot targets, and the raw labels.
pub type DynBatch<D> = (DynImageBatch<D>, DynTargetBatch<D>, Vec<usize>);

/// Normalises one pixel as `(p / 255 - MNIST_MEAN) / MNIST_STD`, the input scaling the batches use.
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

/// Serves an [`MnistSplit`] as tensor batches in a fixed order (sequential or shuffled).
///
/// The order is fixed when the batcher is made; make a new [`Batcher::shuffled`] each epoch for
/// a fresh shuffle.
///
/// # Example
/// ```
/// use dfdx::tensor::Cpu;
/// use rand::{rngs::StdRng, SeedableRng};
/// use shapesafe::data::{Batcher, MnistSplit, MNIST_PIXELS};
///
/// let split = MnistSplit::new(vec![0; 5 * MNIST_PIXELS], vec![0, 1, 2, 3, 4])?;
/// let dev = Cpu::default();
/// let batcher = Batcher::shuffled(&split, &mut StdRng::seed_from_u64(0));
/// assert_eq!(batcher.num_batches::<2>(), 2);
/// for batch in batcher.batches::<2, _>(&dev) {
///     let (images, targets, labels) = batch?;
///     assert_eq!(labels.len(), 2);
/// }
/// // The fifth image is not in a full batch of 2; it comes from `tail`.
/// let (images, _, labels) = batcher.tail::<2, _>(&dev)?.expect("one image left over");
/// assert_eq!(labels.len(), 1);
/// # Ok::<(), shapesafe::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Batcher<'a> {
    split: &'a MnistSplit,
    order: Vec<usize>,
}

impl<'a> Batcher<'a> {
    /// A batcher that serves `split` in its stored order.
    pub fn new(split: &'a MnistSplit) -> Self {
        Batcher {
            split,
            order: (0..split.len()).collect(),
        }
    }

    /// A batcher that serves `split` in a random order drawn from `rng` (a Fisher–Yates
    /// shuffle); the same seed gives the same order.
    pub fn shuffled<R: Rng + ?Sized>(split: &'a MnistSplit, rng: &mut R) -> Self {
        let mut batcher = Self::new(split);
        batcher.order.shuffle(rng);
        batcher
    }

    /// The order in which images are served, as indices into the split.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// Number of images served, full batches and tail together.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether there are no images to serve.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Number of full batches of `B` images ([`Batcher::batches`] yields exactly this many).
    ///
    /// `B = 0` is rejected at compile time.
    pub fn num_batches<const B: usize>(&self) -> usize {
        const { assert!(B > 0, "the batch size B must be at least 1") };
        self.order.len() / B
    }

    /// Yields every full batch of `B` images, in this batcher's order.
    ///
    /// Images are normalised with [`normalize_pixel`]; targets are one-hot. If the split's size
    /// is not a multiple of `B`, the last `len() % B` images are **not** yielded (so every batch
    /// has the static size `B`); get them from [`Batcher::tail`]. `B = 0` is rejected at
    /// compile time.
    ///
    /// # Errors
    /// Each item is [`Error::Device`] if the device cannot make the tensors, or
    /// [`Error::ShapeMismatch`] / [`Error::LabelOutOfRange`] if the split's public fields were
    /// edited into an inconsistent state.
    pub fn batches<'s, const B: usize, D>(
        &'s self,
        dev: &'s D,
    ) -> impl Iterator<Item = Result<StaticBatch<B, D>>> + 's
    where
        D: TensorFromVec<f32>,
    {
        const { assert!(B > 0, "the batch size B must be at least 1") };
        // Reborrow for 's so the returned iterator does not also have to name 'a.
        let split: &'s MnistSplit = self.split;
        self.order.chunks_exact(B).map(move |indices| {
            let (pixels, onehot, labels) = gather(split, indices)?;
            let images = dev
                .try_tensor_from_vec(pixels, (Const::<B>, Const::<1>, Const::<28>, Const::<28>))
                .map_err(device_err)?;
            let targets = dev
                .try_tensor_from_vec(onehot, (Const::<B>, Const::<10>))
                .map_err(device_err)?;
            Ok((images, targets, labels))
        })
    }

    /// The images left over after the full batches of `B` (the last `len() % B`), as one
    /// runtime-sized batch, or `None` if there are none.
    ///
    /// # Errors
    /// As for the items of [`Batcher::batches`].
    pub fn tail<const B: usize, D>(&self, dev: &D) -> Result<Option<DynBatch<D>>>
    where
        D: TensorFromVec<f32>,
    {
        let rest = &self.order[self.num_batches::<B>() * B..];
        if rest.is_empty() {
            return Ok(None);
        }
        let n = rest.len();
        let (pixels, onehot, labels) = gather(self.split, rest)?;
        let images = dev
            .try_tensor_from_vec(pixels, (n, Const::<1>, Const::<28>, Const::<28>))
            .map_err(device_err)?;
        let targets = dev
            .try_tensor_from_vec(onehot, (n, Const::<10>))
            .map_err(device_err)?;
        Ok(Some((images, targets, labels)))
    }
}

fn device_err(e: impl std::fmt::Display) -> Error {
    Error::Device(format!("could not build an MNIST batch tensor: {e}"))
}

/// Collects the normalised pixels, one-hot targets and labels of the images at `indices`.
fn gather(split: &MnistSplit, indices: &[usize]) -> Result<(Vec<f32>, Vec<f32>, Vec<usize>)> {
    let mut pixels = Vec::with_capacity(indices.len() * MNIST_PIXELS);
    let mut onehot = vec![0.0f32; indices.len() * MNIST_CLASSES];
    let mut labels = Vec::with_capacity(indices.len());
    for (row, &i) in indices.iter().enumerate() {
        let (Some(image), Some(&label)) = (split.get_image(i), split.labels.get(i)) else {
            return Err(Error::ShapeMismatch {
                what: format!("the MNIST split's pixel buffer (while fetching image {i})"),
                expected: vec![split.len() * MNIST_PIXELS],
                found: vec![split.images.len()],
            });
        };
        let class = usize::from(label);
        if class >= MNIST_CLASSES {
            return Err(Error::LabelOutOfRange {
                path: Default::default(),
                index: i,
                label,
                classes: MNIST_CLASSES,
            });
        }
        pixels.extend(image.iter().map(|&p| normalize_pixel(p)));
        onehot[row * MNIST_CLASSES + class] = 1.0;
        labels.push(class);
    }
    Ok((pixels, onehot, labels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dfdx::shapes::HasShape;
    use dfdx::tensor::Cpu;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    /// Seven images; image `i` has every pixel equal to `i * 40` and label `(i * 3) % 10`.
    fn toy_split() -> MnistSplit {
        let n = 7;
        let images = (0..n)
            .flat_map(|i| std::iter::repeat_n(i as u8 * 40, MNIST_PIXELS))
            .collect();
        let labels = (0..n).map(|i| (i as u8 * 3) % 10).collect();
        MnistSplit::new(images, labels).unwrap()
    }

    #[test]
    fn full_batches_and_tail_cover_every_image_once() {
        let split = toy_split();
        let dev = Cpu::default();
        let b = Batcher::new(&split);
        assert_eq!(b.num_batches::<3>(), 2);
        let batches: Vec<_> = b.batches::<3, _>(&dev).collect::<Result<_>>().unwrap();
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[0].2, [0, 3, 6]);
        assert_eq!(batches[1].2, [9, 2, 5]);
        let (x, y, labels) = b.tail::<3, _>(&dev).unwrap().unwrap();
        assert_eq!(*x.shape(), (1, Const::<1>, Const::<28>, Const::<28>));
        assert_eq!(*y.shape(), (1, Const::<10>));
        assert_eq!(labels, [8]);
        assert!(b.tail::<7, _>(&dev).unwrap().is_none());
    }

    #[test]
    fn pixels_are_normalised_and_targets_one_hot() {
        let split = toy_split();
        let dev = Cpu::default();
        let (x, y, labels) = Batcher::new(&split)
            .batches::<2, _>(&dev)
            .nth(1)
            .unwrap()
            .unwrap();
        let x = x.as_vec();
        // Second batch holds images 2 and 3: pixels 80 and 120.
        let want = (80.0 / 255.0 - 0.1307) / 0.3081;
        assert!((x[0] - want).abs() < 1e-6, "{} vs {want}", x[0]);
        assert!((x[MNIST_PIXELS] - normalize_pixel(120)).abs() < 1e-6);
        assert_eq!(labels, [6, 9]);
        let y = y.as_vec();
        for (row, &label) in labels.iter().enumerate() {
            let row = &y[row * 10..(row + 1) * 10];
            for (c, &v) in row.iter().enumerate() {
                assert_eq!(v, if c == label { 1.0 } else { 0.0 });
            }
        }
    }

    #[test]
    fn shuffle_is_a_seeded_permutation() {
        let split = toy_split();
        let a = Batcher::shuffled(&split, &mut StdRng::seed_from_u64(42));
        let b = Batcher::shuffled(&split, &mut StdRng::seed_from_u64(42));
        assert_eq!(a.order(), b.order());
        let mut sorted = a.order().to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..7).collect::<Vec<_>>());
        let differs = (0..20)
            .any(|s| Batcher::shuffled(&split, &mut StdRng::seed_from_u64(s)).order() != a.order());
        assert!(differs, "different seeds should give different orders");
    }

    #[test]
    fn inconsistent_split_is_an_error_not_a_panic() {
        let mut split = toy_split();
        split.images.truncate(3 * MNIST_PIXELS);
        let dev = Cpu::default();
        let results: Vec<_> = Batcher::new(&split).batches::<2, _>(&dev).collect();
        assert!(results[0].is_ok());
        assert!(matches!(results[1], Err(Error::ShapeMismatch { .. })));

        let mut split = toy_split();
        split.labels[6] = 10;
        let err = Batcher::new(&split).tail::<2, _>(&dev).unwrap_err();
        assert!(matches!(
            err,
            Error::LabelOutOfRange {
                index: 6,
                label: 10,
                ..
            }
        ));
    }
}
