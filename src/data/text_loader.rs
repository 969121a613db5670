//! `TextLoader`: a [`CharText`] served as shuffled batches of next-character windows.

use dfdx::shapes::Const;
use dfdx::tensor::{Storage, Tensor, TensorFromVec};

use super::batches::Loader;
use super::loader::{derive_seed, ORDER_STREAM};
use super::text::CharText;
use crate::error::{Error, Result};

/// One batch of windows: the characters as token ids and, one-hot, the character that
/// follows each.
///
/// # Shapes
/// `inputs` `(n, SEQUENCE)` token ids for an `Embedding`; `targets` `(n, SEQUENCE, VOCAB)`
/// one-hot, for `cross_entropy` against logits of the same shape.
///
/// ```
/// use dfdx::prelude::*;
/// use shapesafe::data::{CharText, Loader, TextBatch, TextLoader};
/// let text = CharText::from_text("abcabca")?;
/// let dev = Cpu::default();
/// let loader = TextLoader::<3, 4>::new(&text, 2)?;
/// let batch: TextBatch<3, 4, Cpu> = loader.batches(0, &dev).next().unwrap()?;
/// assert_eq!(batch.inputs.as_vec(), [0, 1, 2, 0, 1, 2]);
/// assert_eq!(&batch.targets.as_vec()[..4], [0.0, 1.0, 0.0, 0.0]);
/// # Ok::<(), shapesafe::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct TextBatch<const SEQUENCE: usize, const VOCAB: usize, Dev: Storage<f32> + Storage<usize>>
{
    /// Token ids, `(n, SEQUENCE)`.
    pub inputs: Tensor<(usize, Const<SEQUENCE>), usize, Dev>,
    /// The next character of every position, one-hot: `(n, SEQUENCE, VOCAB)`.
    pub targets: Tensor<(usize, Const<SEQUENCE>, Const<VOCAB>), f32, Dev>,
    /// Which windows of the text these are.
    pub windows: Vec<usize>,
}

impl<const SEQUENCE: usize, const VOCAB: usize, Dev: Storage<f32> + Storage<usize>>
    TextBatch<SEQUENCE, VOCAB, Dev>
{
    /// Windows in the batch.
    ///
    /// ```
    /// use dfdx::prelude::*;
    /// use shapesafe::data::{CharText, Loader, TextLoader};
    /// let text = CharText::from_text("abcdefg")?;
    /// let loader = TextLoader::<2, 7>::new(&text, 2)?;
    /// let sizes: Vec<usize> = loader.batches(0, &Cpu::default()).map(|b| b.unwrap().len()).collect();
    /// assert_eq!(sizes, [2, 1]);
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    /// Whether the batch holds no windows (a loader never yields one).
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }
}

/// Batches of the non-overlapping `SEQUENCE`-character windows of a text, each with its
/// target (the window shifted on by one character), for next-character language models.
///
/// PyTorch equivalent: a `DataLoader` over a char-RNN tutorial's window data set. Shuffled
/// with [`TextLoader::shuffle`], each epoch's order is a function of the seed and the epoch
/// only. `VOCAB` is the one-hot width of the targets: at least the text's vocabulary.
///
/// # Shapes
/// Yields [`TextBatch`]: `(n, SEQUENCE)` ids and `(n, SEQUENCE, VOCAB)` one-hot targets.
///
/// ```
/// use dfdx::prelude::*;
/// use shapesafe::data::{CharText, Loader, TextLoader};
/// let text = CharText::from_text("abcdefghijklm")?;
/// let loader = TextLoader::<3, 13>::new(&text, 2)?.shuffle(1).drop_last(true);
/// assert_eq!(Loader::<Cpu>::num_batches(&loader), 2);
/// let dev = Cpu::default();
/// let first: Vec<usize> = loader.batches(0, &dev).flat_map(|b| b.unwrap().windows).collect();
/// let again: Vec<usize> = loader.batches(0, &dev).flat_map(|b| b.unwrap().windows).collect();
/// assert_eq!(first, again);
/// assert!(TextLoader::<3, 2>::new(&text, 2).is_err(), "13 characters need VOCAB >= 13");
/// # Ok::<(), shapesafe::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct TextLoader<'a, const SEQUENCE: usize, const VOCAB: usize> {
    text: &'a CharText,
    batch_size: usize,
    seed: Option<u64>,
    drop_last: bool,
}

impl<'a, const SEQUENCE: usize, const VOCAB: usize> TextLoader<'a, SEQUENCE, VOCAB> {
    /// Every window of `text` in order, `batch_size` at a time, keeping a short last batch.
    ///
    /// # Errors
    /// [`Error::Usage`] for a `batch_size` of 0 or a text too short for one window;
    /// [`Error::ShapeMismatch`] if the text has more distinct characters than `VOCAB`.
    pub fn new(text: &'a CharText, batch_size: usize) -> Result<Self> {
        if VOCAB < text.vocab_size() {
            return Err(Error::ShapeMismatch {
                what: format!(
                    "the one-hot width of a text with {} distinct characters",
                    text.vocab_size()
                ),
                expected: vec![text.vocab_size()],
                found: vec![VOCAB],
            });
        }
        text.batches(SEQUENCE, batch_size, None, false)?;
        Ok(Self {
            text,
            batch_size,
            seed: None,
            drop_last: false,
        })
    }

    /// Shuffles the windows anew each epoch, from `seed`.
    pub fn shuffle(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Leaves out an epoch's last batch when it is short.
    pub fn drop_last(mut self, drop_last: bool) -> Self {
        self.drop_last = drop_last;
        self
    }

    /// The text served.
    pub fn text(&self) -> &'a CharText {
        self.text
    }

    fn build<Dev>(&self, windows: Vec<usize>, dev: &Dev) -> Result<TextBatch<SEQUENCE, VOCAB, Dev>>
    where
        Dev: TensorFromVec<f32> + TensorFromVec<usize>,
    {
        let n = windows.len();
        let mut inputs = Vec::with_capacity(n * SEQUENCE);
        let mut targets = vec![0.0f32; n * SEQUENCE * VOCAB];
        for (row, &w) in windows.iter().enumerate() {
            let (input, target) = self.text.window(w, SEQUENCE)?;
            inputs.extend_from_slice(input);
            for (step, &t) in target.iter().enumerate() {
                targets[(row * SEQUENCE + step) * VOCAB + t] = 1.0;
            }
        }
        Ok(TextBatch {
            inputs: dev
                .try_tensor_from_vec(inputs, (n, Const))
                .map_err(Error::device)?,
            targets: dev
                .try_tensor_from_vec(targets, (n, Const, Const))
                .map_err(Error::device)?,
            windows,
        })
    }
}

impl<const SEQUENCE: usize, const VOCAB: usize, Dev> Loader<Dev> for TextLoader<'_, SEQUENCE, VOCAB>
where
    Dev: TensorFromVec<f32> + TensorFromVec<usize>,
{
    type Batch = TextBatch<SEQUENCE, VOCAB, Dev>;

    fn num_batches(&self) -> usize {
        let windows = self.text.num_windows(SEQUENCE);
        if self.drop_last {
            windows / self.batch_size
        } else {
            windows.div_ceil(self.batch_size)
        }
    }

    fn batches<'b>(
        &'b self,
        epoch: u64,
        dev: &'b Dev,
    ) -> Box<dyn Iterator<Item = Result<Self::Batch>> + 'b> {
        let seed = self
            .seed
            .map(|seed| derive_seed(&[ORDER_STREAM, seed, epoch]));
        match self
            .text
            .batches(SEQUENCE, self.batch_size, seed, self.drop_last)
        {
            Ok(batches) => Box::new(batches.into_iter().map(move |w| self.build(w, dev))),
            Err(e) => Box::new(std::iter::once(Err(e))),
        }
    }
}
