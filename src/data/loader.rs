//! `DataLoader`: batches of any [`Dataset`] as typed dfdx tensors, shuffled and augmented
//! reproducibly, with PyTorch's `DataLoader` semantics.
//!
//! Everything random is a pure function of the loader's seed: the order of an epoch depends
//! only on `(seed, epoch)`, and the transform randomness of an example only on
//! `(seed, epoch, example index)`. So a run stopped after batch `k` can resume with
//! [`DataLoader::epoch_from`] and see bit-identical batches, without building the `k` it skips.

use std::sync::Arc;

use dfdx::shapes::ConstDim;
use dfdx::tensor::{Storage, Tensor, TensorFromVec};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::dataset::{Batchable, Dataset};
use super::transforms::Transform;
use crate::error::{Error, Result};
use crate::shape::StaticShape;

/// One batch: inputs `(n, ...D::Shape)`, one-hot targets `(n, D::Classes)`, the labels as
/// numbers (for counting correct answers), and which examples they are.
///
/// `n` is a runtime `usize`: every batch has the loader's batch size except, without
/// `drop_last`, the last one of an epoch.
///
/// ```
/// use dfdx::prelude::*;
/// use shapesafe::data::{Batch, DataLoader, Digits};
///
/// let digits = Digits::from_rows(vec![0; 64 * 3], vec![4, 1, 2])?;
/// let dev = Cpu::default();
/// let loader = DataLoader::new(&digits, 2)?;
/// let batch: Batch<Digits, Cpu> = loader.epoch(0, &dev).next().unwrap()?;
/// assert_eq!(batch.inputs.shape().concrete(), [2, 1, 8, 8]);
/// assert_eq!(batch.labels, [4, 1]);
/// assert_eq!(batch.targets.as_vec()[4], 1.0);
/// # Ok::<(), shapesafe::Error>(())
/// ```
pub struct Batch<D: Dataset + ?Sized, Dev: Storage<f32>> {
    /// The examples, after the loader's transform: `(n, ...D::Shape)`.
    pub inputs: Tensor<<D::Shape as Batchable>::Batched, f32, Dev>,
    /// One-hot targets, `(n, D::Classes)`, for dfdx's `cross_entropy_with_logits_loss`.
    pub targets: Tensor<(usize, D::Classes), f32, Dev>,
    /// The label of each example.
    pub labels: Vec<usize>,
    /// The index of each example in the data set.
    pub indices: Vec<usize>,
}

impl<D: Dataset + ?Sized, Dev: Storage<f32>> Batch<D, Dev> {
    /// How many examples the batch holds.
    ///
    /// ```
    /// use dfdx::prelude::*;
    /// use shapesafe::data::{DataLoader, Digits};
    /// let digits = Digits::from_rows(vec![0; 64 * 3], vec![0, 1, 2])?;
    /// let dev = Cpu::default();
    /// let sizes: Vec<usize> = DataLoader::new(&digits, 2)?
    ///     .epoch(0, &dev)
    ///     .map(|b| b.map(|b| b.len()))
    ///     .collect::<Result<_, _>>()?;
    /// assert_eq!(sizes, [2, 1]);
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the batch holds no examples (a loader never yields one).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

impl<D: Dataset + ?Sized, Dev: Storage<f32>> Clone for Batch<D, Dev> {
    fn clone(&self) -> Self {
        Batch {
            inputs: self.inputs.clone(),
            targets: self.targets.clone(),
            labels: self.labels.clone(),
            indices: self.indices.clone(),
        }
    }
}

impl<D: Dataset + ?Sized, Dev: Storage<f32>> std::fmt::Debug for Batch<D, Dev> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("labels", &self.labels)
            .field("indices", &self.indices)
            .finish_non_exhaustive()
    }
}

/// One-hot encodes `labels` as a `(labels.len(), C)` tensor.
///
/// # Errors
/// [`Error::Usage`] if a label is not below `C::SIZE`; [`Error::Device`] if the device fails.
///
/// ```
/// use dfdx::prelude::*;
/// use shapesafe::data::one_hot;
/// let dev = Cpu::default();
/// let t = one_hot::<Const<3>, _>(&[2, 0], &dev)?;
/// assert_eq!(t.as_vec(), [0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
/// assert!(one_hot::<Const<3>, _>(&[3], &dev).is_err());
/// # Ok::<(), shapesafe::Error>(())
/// ```
pub fn one_hot<C: ConstDim, Dev: TensorFromVec<f32>>(
    labels: &[usize],
    dev: &Dev,
) -> Result<Tensor<(usize, C), f32, Dev>> {
    let classes = C::SIZE;
    let mut data = vec![0.0f32; labels.len().saturating_mul(classes)];
    for (row, &label) in labels.iter().enumerate() {
        if label >= classes {
            return Err(label_error(row, label, classes));
        }
        data[row * classes + label] = 1.0;
    }
    dev.try_tensor_from_vec(data, (labels.len(), C::default()))
        .map_err(device_err)
}

/// `LabelOutOfRange` holds a `u8`, so wider labels are reported as a usage error.
fn label_error(index: usize, label: usize, classes: usize) -> Error {
    match u8::try_from(label) {
        Ok(label) => Error::LabelOutOfRange {
            path: Default::default(),
            index,
            label,
            classes,
        },
        Err(_) => Error::Usage(format!(
            "label {label} of example {index} is out of range: there are {classes} classes"
        )),
    }
}

fn device_err(e: impl std::fmt::Display) -> Error {
    Error::Device(format!("could not build a batch tensor: {e}"))
}

/// Serves a [`Dataset`] as [`Batch`]es: PyTorch's `torch.utils.data.DataLoader` with
/// `batch_size`, `shuffle`, `drop_last`, a per-example `transform`, and a seed.
///
/// By default examples come in order and the last batch may be smaller. `shuffle(seed)`
/// draws a fresh permutation each epoch, a pure function of `(seed, epoch)`. The transform
/// gets a generator seeded from `(seed, epoch, example index)`
/// ([`DataLoader::example_rng`]), so augmentation differs between epochs but never between
/// runs.
///
/// ```
/// use dfdx::prelude::*;
/// use shapesafe::data::{DataLoader, Digits, Normalize, RandomAffine};
///
/// let digits = Digits::from_rows(vec![8; 64 * 10], (0..10).collect())?;
/// let dev = Cpu::default();
/// let loader = DataLoader::new(&digits, 4)?
///     .shuffle(7)
///     .transform((RandomAffine::new(10.0), Normalize::new(vec![0.5], vec![0.5])?));
/// assert_eq!(loader.len(), 3); // 4 + 4 + 2
/// for epoch in 0..2 {
///     for batch in loader.epoch(epoch, &dev) {
///         let batch = batch?;
///         assert!(batch.len() <= 4);
///     }
/// }
/// // Resume epoch 1 at its third batch: the same batch as the first time round.
/// let resumed = loader.epoch_from(1, 2, &dev).next().unwrap()?;
/// let full = loader.epoch(1, &dev).nth(2).unwrap()?;
/// assert_eq!(resumed.inputs.as_vec(), full.inputs.as_vec());
/// # Ok::<(), shapesafe::Error>(())
/// ```
pub struct DataLoader<'a, D: Dataset + ?Sized> {
    dataset: &'a D,
    batch_size: usize,
    shuffle: bool,
    seed: u64,
    drop_last: bool,
    transform: Option<Arc<dyn Transform>>,
    /// `(rank, ranks)`: this loader serves one rank's share of every epoch.
    shard: Option<(usize, usize)>,
}

impl<D: Dataset + ?Sized> Clone for DataLoader<'_, D> {
    fn clone(&self) -> Self {
        DataLoader {
            transform: self.transform.clone(),
            ..*self
        }
    }
}

impl<D: Dataset + ?Sized> std::fmt::Debug for DataLoader<'_, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataLoader")
            .field("examples", &self.dataset.len())
            .field("batch_size", &self.batch_size)
            .field("shuffle", &self.shuffle)
            .field("seed", &self.seed)
            .field("drop_last", &self.drop_last)
            .field("transform", &self.transform.is_some())
            .field("shard", &self.shard)
            .finish()
    }
}

/// Domain tags, so the shuffle and the per-example streams never share a seed.
pub(crate) const ORDER_STREAM: u64 = 0x6f72_6465_7200_0001;
const EXAMPLE_STREAM: u64 = 0x6578_616d_706c_6502;

/// SplitMix64's finaliser: a bijection on `u64` that spreads every input bit over the output.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One seed from several, each part changing every bit of the result.
pub(crate) fn derive_seed(parts: &[u64]) -> u64 {
    parts.iter().fold(0, |h, &p| mix(h ^ p))
}

impl<'a, D: Dataset + ?Sized> DataLoader<'a, D> {
    /// A loader serving `dataset` in order, `batch_size` examples at a time, keeping the
    /// smaller last batch.
    ///
    /// # Errors
    /// [`Error::Usage`] if `batch_size` is 0 (PyTorch raises `ValueError`).
    ///
    /// ```
    /// use shapesafe::data::{DataLoader, Digits};
    /// let digits = Digits::from_rows(vec![0; 64 * 5], vec![0; 5])?;
    /// assert_eq!(DataLoader::new(&digits, 2)?.len(), 3);
    /// assert!(DataLoader::new(&digits, 0).is_err());
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn new(dataset: &'a D, batch_size: usize) -> Result<Self> {
        if batch_size == 0 {
            return Err(Error::Usage(
                "the batch size must be at least 1, but is 0".to_string(),
            ));
        }
        Ok(DataLoader {
            dataset,
            batch_size,
            shuffle: false,
            seed: 0,
            drop_last: false,
            transform: None,
            shard: None,
        })
    }

    /// Shuffles each epoch, with a permutation that is a pure function of `(seed, epoch)`.
    /// `seed` also seeds the transforms.
    ///
    /// ```
    /// use shapesafe::data::{DataLoader, Digits};
    /// let digits = Digits::from_rows(vec![0; 64 * 5], vec![0; 5])?;
    /// let loader = DataLoader::new(&digits, 2)?.shuffle(3);
    /// assert_eq!(loader.order(0), DataLoader::new(&digits, 4)?.shuffle(3).order(0));
    /// assert_ne!(loader.order(0), loader.order(1));
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn shuffle(mut self, seed: u64) -> Self {
        self.shuffle = true;
        self.seed = seed;
        self
    }

    /// Sets the seed of the transforms without shuffling (the default seed is 0).
    ///
    /// ```
    /// use shapesafe::data::{DataLoader, Digits};
    /// let digits = Digits::from_rows(vec![0; 64 * 2], vec![0; 2])?;
    /// let loader = DataLoader::new(&digits, 2)?.seed(9);
    /// assert_eq!(loader.order(5), [0, 1]);
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Whether to drop the last batch of an epoch when it is smaller than the batch size.
    ///
    /// ```
    /// use shapesafe::data::{DataLoader, Digits};
    /// let digits = Digits::from_rows(vec![0; 64 * 5], vec![0; 5])?;
    /// assert_eq!(DataLoader::new(&digits, 2)?.drop_last(true).len(), 2);
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn drop_last(mut self, drop_last: bool) -> Self {
        self.drop_last = drop_last;
        self
    }

    /// Applies `transform` to every example as it is loaded (replacing any earlier one; pass
    /// a tuple or a [`Compose`](super::Compose) for several).
    ///
    /// ```
    /// use shapesafe::data::{DataLoader, Digits, Normalize};
    /// let digits = Digits::from_rows(vec![0; 64], vec![0])?;
    /// let loader = DataLoader::new(&digits, 1)?.transform(Normalize::new(vec![0.5], vec![0.5])?);
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn transform(mut self, transform: impl Transform + 'static) -> Self {
        self.transform = Some(Arc::new(transform));
        self
    }

    /// Batches per epoch.
    ///
    /// ```
    /// use shapesafe::data::{DataLoader, Digits};
    /// let digits = Digits::from_rows(vec![0; 64 * 7], vec![0; 7])?;
    /// assert_eq!(DataLoader::new(&digits, 3)?.len(), 3);
    /// assert_eq!(DataLoader::new(&digits, 3)?.drop_last(true).len(), 2);
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        let n = self.examples_per_epoch();
        if self.drop_last {
            n / self.batch_size
        } else {
            n.div_ceil(self.batch_size)
        }
    }

    /// Whether an epoch yields no batches.
    ///
    /// ```
    /// use shapesafe::data::{DataLoader, Digits};
    /// let digits = Digits::from_rows(vec![0; 64], vec![0])?;
    /// assert!(DataLoader::new(&digits, 2)?.drop_last(true).is_empty());
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The batch size.
    ///
    /// ```
    /// use shapesafe::data::{DataLoader, Digits};
    /// let digits = Digits::from_rows(vec![0; 64], vec![0])?;
    /// assert_eq!(DataLoader::new(&digits, 32)?.batch_size(), 32);
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The data set.
    ///
    /// ```
    /// use shapesafe::data::{DataLoader, Dataset, Digits};
    /// let digits = Digits::from_rows(vec![0; 64], vec![0])?;
    /// assert_eq!(DataLoader::new(&digits, 32)?.dataset().len(), 1);
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn dataset(&self) -> &'a D {
        self.dataset
    }

    /// The order in which epoch `epoch` visits the examples (all of them, before any are
    /// dropped by `drop_last`): `0..len` without shuffling; for a [`Self::shard`], this rank's
    /// share of that order.
    ///
    /// ```
    /// use shapesafe::data::{DataLoader, Digits};
    /// let digits = Digits::from_rows(vec![0; 64 * 3], vec![0; 3])?;
    /// let mut order = DataLoader::new(&digits, 1)?.shuffle(1).order(4);
    /// order.sort();
    /// assert_eq!(order, [0, 1, 2]);
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.dataset.len()).collect();
        if self.shuffle {
            let seed = derive_seed(&[ORDER_STREAM, self.seed, epoch]);
            order.shuffle(&mut StdRng::seed_from_u64(seed));
        }
        match self.shard {
            Some((rank, ranks)) if !order.is_empty() => {
                let total = self.examples_per_epoch() * ranks;
                (rank..total)
                    .step_by(ranks)
                    .map(|i| order[i % order.len()])
                    .collect()
            }
            _ => order,
        }
    }

    /// Examples this loader serves per epoch: the whole data set, or one rank's share of
    /// it rounded up.
    fn examples_per_epoch(&self) -> usize {
        match self.shard {
            Some((_, ranks)) => self.dataset.len().div_ceil(ranks),
            None => self.dataset.len(),
        }
    }

    /// This loader serves only rank `rank`'s share of every epoch of `ranks`, as PyTorch's
    /// `DistributedSampler`: every rank draws the same epoch order (the same seed), and rank
    /// `r` takes its positions `r, r + ranks, r + 2 * ranks, ...`. The order is padded by
    /// repeating its start until it divides evenly, so every rank gets the same number of
    /// batches. With batches of `B` per rank, batch `k` of all ranks together holds exactly
    /// batch `k` of a one-process loader with batches of `ranks * B`: data-parallel training
    /// sees the data of a larger batch.
    ///
    /// # Errors
    /// `ranks` is 0, or `rank` is not below it.
    ///
    /// ```
    /// use shapesafe::data::{DataLoader, Digits};
    /// let digits = Digits::from_rows(vec![0; 64 * 5], vec![0; 5])?;
    /// let rank0 = DataLoader::new(&digits, 2)?.shard(0, 2)?;
    /// let rank1 = DataLoader::new(&digits, 2)?.shard(1, 2)?;
    /// assert_eq!((rank0.order(0), rank1.order(0)), (vec![0, 2, 4], vec![1, 3, 0]));
    /// assert_eq!(rank1.len(), 2);
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn shard(mut self, rank: usize, ranks: usize) -> Result<Self> {
        if rank >= ranks {
            return Err(Error::Usage(format!(
                "cannot serve rank {rank} of {ranks}: ranks are numbered from 0 to one less \
                 than their count"
            )));
        }
        self.shard = Some((rank, ranks));
        Ok(self)
    }

    /// The generator the transform gets for example `index` in epoch `epoch`.
    ///
    /// ```
    /// use rand::Rng;
    /// use shapesafe::data::{DataLoader, Digits};
    /// let digits = Digits::from_rows(vec![0; 64], vec![0])?;
    /// let loader = DataLoader::new(&digits, 1)?.shuffle(5);
    /// let a: u64 = loader.example_rng(2, 0).gen();
    /// let b: u64 = loader.example_rng(2, 0).gen();
    /// assert_eq!(a, b);
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn example_rng(&self, epoch: u64, index: usize) -> StdRng {
        StdRng::seed_from_u64(derive_seed(&[
            EXAMPLE_STREAM,
            self.seed,
            epoch,
            index as u64,
        ]))
    }

    /// The batches of epoch `epoch`, built one at a time on `dev`.
    ///
    /// # Errors
    /// Each item is an error if the data set's `get` fails for an example in it, a label is
    /// not below `D::Classes::SIZE`, or the device fails. If the transform cannot apply to
    /// `D::Shape` ([`Transform::check`]), the first item is that error and nothing follows.
    ///
    /// ```
    /// use dfdx::prelude::*;
    /// use shapesafe::data::{DataLoader, Digits};
    /// let digits = Digits::from_rows(vec![0; 64 * 5], vec![0, 1, 2, 3, 4])?;
    /// let dev = Cpu::default();
    /// let labels: Vec<Vec<usize>> = DataLoader::new(&digits, 2)?
    ///     .epoch(0, &dev)
    ///     .map(|b| b.map(|b| b.labels))
    ///     .collect::<Result<_, _>>()?;
    /// assert_eq!(labels, [vec![0, 1], vec![2, 3], vec![4]]);
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn epoch<'l, Dev>(&self, epoch: u64, dev: &'l Dev) -> Epoch<'l, D, Dev>
    where
        'a: 'l,
        Dev: TensorFromVec<f32>,
    {
        self.epoch_from(epoch, 0, dev)
    }

    /// The batches of epoch `epoch` from batch `first_batch` on, exactly as
    /// [`DataLoader::epoch`] would yield them; the batches skipped are not built.
    ///
    /// # Errors
    /// As [`DataLoader::epoch`]. A `first_batch` at or past [`DataLoader::len`] gives no
    /// batches.
    ///
    /// ```
    /// use dfdx::prelude::*;
    /// use shapesafe::data::{DataLoader, Digits};
    /// let digits = Digits::from_rows(vec![0; 64 * 5], vec![0, 1, 2, 3, 4])?;
    /// let dev = Cpu::default();
    /// let loader = DataLoader::new(&digits, 2)?.shuffle(0);
    /// let rest = loader.epoch_from(3, 1, &dev);
    /// assert_eq!(rest.len(), 2);
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn epoch_from<'l, Dev>(
        &self,
        epoch: u64,
        first_batch: usize,
        dev: &'l Dev,
    ) -> Epoch<'l, D, Dev>
    where
        'a: 'l,
        Dev: TensorFromVec<f32>,
    {
        let pending = self
            .transform
            .as_ref()
            .and_then(|t| t.check(<D::Shape as StaticShape>::DIMS).err());
        let end = if pending.is_some() { 0 } else { self.len() };
        Epoch {
            loader: DataLoader {
                dataset: self.dataset,
                transform: self.transform.clone(),
                ..*self
            },
            order: self.order(epoch),
            epoch,
            next: first_batch.min(end),
            end,
            pending,
            dev,
        }
    }

    /// Loads the examples at `indices` (of the data set) into one batch.
    fn build<Dev: TensorFromVec<f32>>(
        &self,
        epoch: u64,
        indices: &[usize],
        dev: &Dev,
    ) -> Result<Batch<D, Dev>> {
        let numel = <D::Shape as StaticShape>::NUMEL;
        let dims = <D::Shape as StaticShape>::DIMS;
        let total = indices.len().checked_mul(numel).ok_or_else(|| {
            Error::Usage(format!(
                "a batch of {} examples of {numel} values does not fit in memory",
                indices.len()
            ))
        })?;
        let mut inputs = vec![0.0f32; total];
        let mut labels = Vec::with_capacity(indices.len());
        // A zero-sized example shape has nothing to chunk; every example is then empty.
        let mut slots = inputs.chunks_exact_mut(numel.max(1));
        for &index in indices {
            let out = match slots.next() {
                Some(slot) if numel > 0 => slot,
                _ => &mut [][..],
            };
            let label = self.dataset.get(index, out)?;
            if let Some(t) = &self.transform {
                t.apply(out, dims, &mut self.example_rng(epoch, index));
            }
            labels.push(label);
        }
        let targets = one_hot::<D::Classes, Dev>(&labels, dev).map_err(|e| match e {
            // Report the data set's index, not the position in the batch.
            Error::LabelOutOfRange {
                index,
                label,
                classes,
                path,
            } => Error::LabelOutOfRange {
                index: indices.get(index).copied().unwrap_or(index),
                label,
                classes,
                path,
            },
            e => e,
        })?;
        let inputs = dev
            .try_tensor_from_vec(inputs, <D::Shape as Batchable>::batched(indices.len()))
            .map_err(device_err)?;
        Ok(Batch {
            inputs,
            targets,
            labels,
            indices: indices.to_vec(),
        })
    }
}

/// The batches of one epoch, from [`DataLoader::epoch`] or [`DataLoader::epoch_from`].
///
/// ```
/// use dfdx::prelude::*;
/// use shapesafe::data::{DataLoader, Digits};
/// let digits = Digits::from_rows(vec![0; 64 * 5], vec![0; 5])?;
/// let dev = Cpu::default();
/// let loader = DataLoader::new(&digits, 2)?;
/// let mut epoch = loader.epoch(0, &dev);
/// assert_eq!(epoch.len(), 3);
/// epoch.next();
/// assert_eq!(epoch.next_batch_index(), 1);
/// # Ok::<(), shapesafe::Error>(())
/// ```
pub struct Epoch<'l, D: Dataset + ?Sized, Dev> {
    loader: DataLoader<'l, D>,
    order: Vec<usize>,
    epoch: u64,
    next: usize,
    end: usize,
    pending: Option<Error>,
    dev: &'l Dev,
}

impl<D: Dataset + ?Sized, Dev> Epoch<'_, D, Dev> {
    /// The index within the epoch of the batch `next` will yield: pass it to
    /// [`DataLoader::epoch_from`] to resume from here.
    pub fn next_batch_index(&self) -> usize {
        self.next
    }
}

impl<D: Dataset + ?Sized, Dev: TensorFromVec<f32>> Iterator for Epoch<'_, D, Dev> {
    type Item = Result<Batch<D, Dev>>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.pending.take() {
            return Some(Err(e));
        }
        if self.next >= self.end {
            return None;
        }
        let bs = self.loader.batch_size;
        let start = self.next.saturating_mul(bs).min(self.order.len());
        let stop = start.saturating_add(bs).min(self.order.len());
        self.next += 1;
        Some(
            self.loader
                .build(self.epoch, &self.order[start..stop], self.dev),
        )
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.end - self.next + usize::from(self.pending.is_some());
        (n, Some(n))
    }
}

impl<D: Dataset + ?Sized, Dev: TensorFromVec<f32>> ExactSizeIterator for Epoch<'_, D, Dev> {}

impl<D: Dataset + ?Sized, Dev: TensorFromVec<f32>> std::iter::FusedIterator for Epoch<'_, D, Dev> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_seeds_differ_per_part() {
        let a = derive_seed(&[EXAMPLE_STREAM, 0, 0, 1]);
        let b = derive_seed(&[EXAMPLE_STREAM, 0, 1, 0]);
        let c = derive_seed(&[ORDER_STREAM, 0, 0]);
        assert!(a != b && b != c && a != c);
    }
}
