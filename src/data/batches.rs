//! `Loader`: anything that serves an epoch's batches, as the `Trainer` consumes them.

use dfdx::tensor::TensorFromVec;

use super::dataset::Dataset;
use super::loader::{Batch, DataLoader};
use crate::error::Result;

/// A source of batches, epoch by epoch: what [`Trainer::fit`](crate::train::Trainer::fit)
/// trains and validates on.
///
/// PyTorch's trainers take any iterable of batches; here the epoch number goes in, so a
/// shuffling loader can make each epoch's order a pure function of its seed and the epoch
/// (and a resumed run sees the same batches). [`DataLoader`] (typed image batches),
/// [`TextLoader`](super::TextLoader) (windows of a text) and a plain `Vec` of batches
/// (the same batches every epoch, for regression or tests) are loaders.
///
/// # Shapes
/// Whatever `Batch` holds; the trainer's objective reads it.
///
/// ```
/// use dfdx::prelude::*;
/// use shapesafe::data::{DataLoader, Digits, Loader};
/// let digits = Digits::from_rows(vec![0; 64 * 5], vec![0, 1, 2, 3, 4])?;
/// let dev = Cpu::default();
/// let loader = DataLoader::new(&digits, 2)?;
/// assert_eq!(Loader::<Cpu>::num_batches(&loader), 3);
/// let sizes: Vec<usize> = loader.batches(0, &dev).map(|b| b.map(|b| b.len())).collect::<Result<_, _>>()?;
/// assert_eq!(sizes, [2, 2, 1]);
///
/// let fixed = vec![(1.0f32, 2.0f32); 4];
/// assert_eq!(Loader::<Cpu>::num_batches(&fixed), 4);
/// # Ok::<(), shapesafe::Error>(())
/// ```
pub trait Loader<Dev> {
    /// One batch, as the objective reads it.
    type Batch;

    /// Batches per epoch (for progress bars).
    fn num_batches(&self) -> usize;

    /// The batches of epoch `epoch` (counted from 0), built on `dev`.
    fn batches<'a>(
        &'a self,
        epoch: u64,
        dev: &'a Dev,
    ) -> Box<dyn Iterator<Item = Result<Self::Batch>> + 'a>;
}

impl<D: Dataset + ?Sized, Dev: TensorFromVec<f32>> Loader<Dev> for DataLoader<'_, D> {
    type Batch = Batch<D, Dev>;

    fn num_batches(&self) -> usize {
        self.len()
    }

    fn batches<'a>(
        &'a self,
        epoch: u64,
        dev: &'a Dev,
    ) -> Box<dyn Iterator<Item = Result<Self::Batch>> + 'a> {
        Box::new(self.epoch(epoch, dev))
    }
}

/// The same batches, in the same order, every epoch: tensors made once by the caller.
impl<B: Clone, Dev> Loader<Dev> for Vec<B> {
    type Batch = B;

    fn num_batches(&self) -> usize {
        self.len()
    }

    fn batches<'a>(
        &'a self,
        _epoch: u64,
        _dev: &'a Dev,
    ) -> Box<dyn Iterator<Item = Result<Self::Batch>> + 'a> {
        Box::new(self.iter().cloned().map(Ok))
    }
}
