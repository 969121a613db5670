//! Views of a data set through a list of indices, and seeded random splits of one:
//! PyTorch's `Subset` and `random_split`, and scikit-learn's `train_test_split`.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::dataset::Dataset;
use crate::error::{Error, Result};

/// The examples of `dataset` at `indices`, in that order: PyTorch's
/// `torch.utils.data.Subset`.
///
/// Indices are checked when the subset is made, so `get` on a subset fails only where the
/// underlying data set's own `get` does. The same index may appear more than once.
///
/// ```
/// use shapesafe::data::{Dataset, Subset};
/// # use shapesafe::prelude::*;
/// # struct Count;
/// # impl Dataset for Count {
/// #     type Shape = Rank1<1>;
/// #     type Classes = Const<10>;
/// #     fn len(&self) -> usize { 10 }
/// #     fn get(&self, i: usize, out: &mut [f32]) -> shapesafe::Result<usize> {
/// #         out[0] = i as f32;
/// #         Ok(i)
/// #     }
/// # }
/// let evens = Subset::new(&Count, vec![0, 2, 4])?;
/// let mut x = [0.0];
/// assert_eq!(evens.len(), 3);
/// assert_eq!(evens.get(2, &mut x)?, 4);
/// assert!(Subset::new(&Count, vec![10]).is_err());
/// # Ok::<(), shapesafe::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Subset<'a, D: ?Sized> {
    dataset: &'a D,
    indices: Vec<usize>,
}

impl<'a, D: Dataset + ?Sized> Subset<'a, D> {
    /// The examples of `dataset` at `indices`.
    ///
    /// # Errors
    /// [`Error::IndexOutOfRange`] for the first index that is not below `dataset.len()`.
    ///
    /// ```
    /// # use shapesafe::data::{Digits, Subset};
    /// # let digits = Digits::from_rows(vec![0; 64 * 3], vec![1, 2, 3])?;
    /// let first_two = Subset::new(&digits, vec![0, 1])?;
    /// assert_eq!(first_two.indices(), [0, 1]);
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn new(dataset: &'a D, indices: Vec<usize>) -> Result<Self> {
        let len = dataset.len();
        if let Some(&index) = indices.iter().find(|&&i| i >= len) {
            return Err(Error::IndexOutOfRange { index, len });
        }
        Ok(Subset { dataset, indices })
    }

    /// The indices into the underlying data set, in this subset's order.
    ///
    /// ```
    /// # use shapesafe::data::{Digits, Subset};
    /// # let digits = Digits::from_rows(vec![0; 64 * 3], vec![1, 2, 3])?;
    /// assert_eq!(Subset::new(&digits, vec![2, 0])?.indices(), [2, 0]);
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }

    /// The underlying data set.
    ///
    /// ```
    /// # use shapesafe::data::{Dataset, Digits, Subset};
    /// # let digits = Digits::from_rows(vec![0; 64 * 3], vec![1, 2, 3])?;
    /// assert_eq!(Subset::new(&digits, vec![1])?.dataset().len(), 3);
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn dataset(&self) -> &'a D {
        self.dataset
    }
}

impl<D: Dataset + ?Sized> Dataset for Subset<'_, D> {
    type Shape = D::Shape;
    type Classes = D::Classes;

    fn len(&self) -> usize {
        self.indices.len()
    }

    fn get(&self, index: usize, out: &mut [f32]) -> Result<usize> {
        let &inner = self.indices.get(index).ok_or(Error::IndexOutOfRange {
            index,
            len: self.indices.len(),
        })?;
        self.dataset.get(inner, out)
    }
}

/// A split size for [`random_split`]: an exact count (`usize`) or a fraction (`f64`).
///
/// ```
/// use shapesafe::data::SplitLength;
/// assert_eq!(SplitLength::lengths(&[0.5f64, 0.5], 5)?, [3, 2]);
/// assert_eq!(SplitLength::lengths(&[4usize, 1], 5)?, [4, 1]);
/// # Ok::<(), shapesafe::Error>(())
/// ```
pub trait SplitLength: Copy {
    /// Turns `sizes` into counts that sum to `total`, PyTorch's way.
    ///
    /// # Errors
    /// [`Error::Usage`] if the sizes cannot split `total` examples.
    fn lengths(sizes: &[Self], total: usize) -> Result<Vec<usize>>;
}

impl SplitLength for usize {
    /// Counts must sum to `total` exactly.
    fn lengths(sizes: &[usize], total: usize) -> Result<Vec<usize>> {
        let sum = sizes.iter().try_fold(0usize, |a, &n| a.checked_add(n));
        if sum != Some(total) {
            return Err(Error::Usage(format!(
                "random_split: the lengths {sizes:?} do not add up to the data set's {total} examples"
            )));
        }
        Ok(sizes.to_vec())
    }
}

impl SplitLength for f64 {
    /// Fractions in `[0, 1]` summing to 1 (within 1e-9); each split gets `floor(f * total)`
    /// and the examples left over go one each to the first splits, as in PyTorch.
    fn lengths(sizes: &[f64], total: usize) -> Result<Vec<usize>> {
        let sum: f64 = sizes.iter().sum();
        let in_range = sizes.iter().all(|f| (0.0..=1.0).contains(f));
        if !in_range || (sum - 1.0).abs() > 1e-9 {
            return Err(Error::Usage(format!(
                "random_split: the fractions {sizes:?} must each be in [0, 1] and add up to 1"
            )));
        }
        let mut lengths: Vec<usize> = sizes
            .iter()
            .map(|f| ((total as f64) * f).floor() as usize)
            .collect();
        // Rounding down never overshoots by more than one example per split, so the
        // remainder is below `sizes.len()` and the round-robin below is one pass.
        let assigned: usize = lengths.iter().sum();
        let remainder = total.saturating_sub(assigned);
        for l in lengths.iter_mut().take(remainder) {
            *l += 1;
        }
        Ok(lengths)
    }
}

/// Splits `dataset` into disjoint random subsets of the given sizes: PyTorch's
/// `torch.utils.data.random_split(dataset, lengths, generator=torch.Generator().manual_seed(seed))`.
///
/// `lengths` are counts (`&[usize]`, summing to `dataset.len()`) or fractions (`&[f64]`,
/// summing to 1). The indices are one seeded permutation of `0..len`, cut into consecutive
/// pieces, so the same seed always gives the same split.
///
/// # Errors
/// [`Error::Usage`] if the lengths do not fit the data set, or there are none.
///
/// ```
/// use shapesafe::data::{random_split, Dataset, Digits};
/// let digits = Digits::from_rows(vec![0; 64 * 10], vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9])?;
/// let parts = random_split(&digits, &[0.8, 0.2], 42)?;
/// assert_eq!((parts[0].len(), parts[1].len()), (8, 2));
/// let again = random_split(&digits, &[8, 2], 42)?;
/// assert_eq!(parts[1].indices(), again[1].indices());
/// # Ok::<(), shapesafe::Error>(())
/// ```
pub fn random_split<'a, D, L>(
    dataset: &'a D,
    lengths: &[L],
    seed: u64,
) -> Result<Vec<Subset<'a, D>>>
where
    D: Dataset + ?Sized,
    L: SplitLength,
{
    if lengths.is_empty() {
        return Err(Error::Usage(
            "random_split: at least one length is needed".to_string(),
        ));
    }
    let total = dataset.len();
    let lengths = L::lengths(lengths, total)?;
    let mut order: Vec<usize> = (0..total).collect();
    order.shuffle(&mut StdRng::seed_from_u64(seed));
    let mut rest = order.as_slice();
    let mut subsets = Vec::with_capacity(lengths.len());
    for n in lengths {
        // `lengths` sums to `total`, so this never runs short; `min` keeps it panic-free anyway.
        let (piece, tail) = rest.split_at(n.min(rest.len()));
        rest = tail;
        subsets.push(Subset {
            dataset,
            indices: piece.to_vec(),
        });
    }
    Ok(subsets)
}

/// Splits `dataset` into a training and a test subset, with `ceil(test_fraction * len)`
/// examples for testing: scikit-learn's `train_test_split(test_size=test_fraction,
/// random_state=seed)` (not stratified).
///
/// # Errors
/// [`Error::Usage`] if `test_fraction` is not in `[0, 1]`.
///
/// ```
/// use shapesafe::data::{train_test_split, Dataset, Digits};
/// let digits = Digits::from_rows(vec![0; 64 * 10], vec![0; 10])?;
/// let (train, test) = train_test_split(&digits, 0.25, 0)?;
/// assert_eq!((train.len(), test.len()), (7, 3));
/// # Ok::<(), shapesafe::Error>(())
/// ```
pub fn train_test_split<D>(
    dataset: &D,
    test_fraction: f64,
    seed: u64,
) -> Result<(Subset<'_, D>, Subset<'_, D>)>
where
    D: Dataset + ?Sized,
{
    if !(0.0..=1.0).contains(&test_fraction) {
        return Err(Error::Usage(format!(
            "train_test_split: the test fraction {test_fraction} is not in [0, 1]"
        )));
    }
    let total = dataset.len();
    let test = ((total as f64) * test_fraction).ceil().min(total as f64) as usize;
    let mut parts = random_split(dataset, &[total - test, test], seed)?.into_iter();
    match (parts.next(), parts.next()) {
        (Some(train), Some(test)) => Ok((train, test)),
        _ => Err(Error::Usage(
            "train_test_split: random_split returned too few parts".to_string(),
        )),
    }
}
