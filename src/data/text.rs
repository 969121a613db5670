//! `CharText`: a text as a sequence of character indices, cut into (input, target) windows for
//! character-level language models.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use dfdx::shapes::Const;
use dfdx::tensor::{Tensor, TensorFromVec};
use flate2::read::MultiGzDecoder;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::error::{Error, Result};

/// The largest text, in (decompressed) bytes, that [`CharText::load`] reads. A tiny gzip file
/// can expand without bound, so the reader stops here instead of exhausting memory.
pub const TEXT_MAX_BYTES: u64 = 64 << 20;

/// The text shipped for the `char_rnn` example, relative to [`data_dir`](super::data_dir):
/// four Shakespeare tragedies (Hamlet, Macbeth, King Lear, Othello) from Project Gutenberg.
pub const SHAKESPEARE_FILE: &str = "text/shakespeare-tragedies.txt.gz";

/// A text and its character vocabulary, served as windows for next-character prediction.
///
/// PyTorch equivalent: the `Dataset` of a char-RNN tutorial: the sorted set of distinct
/// characters is the vocabulary, every character becomes its index in it, and window `i`
/// is the `SEQUENCE` characters starting at `i * SEQUENCE` as input with the same span
/// shifted one character on as target. Windows do not overlap, so an epoch sees each
/// character once.
///
/// # Shapes
/// A batch of `n` windows of `SEQUENCE` characters is either
/// - indices: input and target `(usize, Const<SEQUENCE>)` of `usize` ([`CharText::index_batch`]),
///   for an embedding; or
/// - one-hot: input and target `(usize, Const<SEQUENCE>, Const<VOCAB>)` of `f32`
///   ([`CharText::one_hot_batch`]), for a recurrent layer reading `VOCAB` features and for
///   `cross_entropy_with_logits_loss`. `VOCAB` may exceed the text's vocabulary (the extra
///   columns stay zero) but not fall short of it.
///
/// ```
/// use dfdx::prelude::*;
/// use shapesafe::data::CharText;
///
/// let text = CharText::from_text("abcabcab")?;
/// assert_eq!(text.vocab(), ['a', 'b', 'c']);
/// assert_eq!(text.num_windows(3), 2); // "abc"->"bca", "abc"->"bca"; the last "ab" has no target
/// let dev = Cpu::default();
/// let (x, y) = text.index_batch::<3, _>(&[1], &dev)?;
/// assert_eq!(x.as_vec(), [0, 1, 2]);
/// assert_eq!(y.as_vec(), [1, 2, 0]);
/// let (x, _) = text.one_hot_batch::<3, 4, _>(&[0], &dev)?;
/// assert_eq!(x.shape().concrete(), [1, 3, 4]);
/// # Ok::<(), shapesafe::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CharText {
    vocab: Vec<char>,
    indices: Vec<usize>,
}

impl CharText {
    /// Reads a UTF-8 text file, gzip-compressed (detected by its magic bytes) or plain.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be read (e.g. it is missing); [`Error::Decompress`] for
    /// corrupt gzip data; [`Error::Parse`] for an empty text, bytes that are not UTF-8 (naming
    /// the line), or a text larger than [`TEXT_MAX_BYTES`].
    ///
    /// # Shapes
    /// None yet: shapes come with the batches.
    ///
    /// ```
    /// use shapesafe::data::{data_dir, CharText, SHAKESPEARE_FILE};
    /// let text = CharText::load(data_dir().join(SHAKESPEARE_FILE))?;
    /// assert_eq!(text.len(), 583_820);
    /// assert_eq!(text.vocab_size(), 70);
    /// assert!(CharText::load(data_dir().join("text/missing.txt")).is_err());
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn load(path: impl AsRef<Path>) -> Result<CharText> {
        let path = path.as_ref();
        let io_err = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut raw = Vec::new();
        // The compressed file can be no larger than the decompressed limit either.
        File::open(path)
            .map_err(io_err)?
            .take(TEXT_MAX_BYTES + 1)
            .read_to_end(&mut raw)
            .map_err(io_err)?;
        CharText::parse(&raw, path)
    }

    /// Builds the text from bytes held in memory (gzip if they start `1f 8b`, else plain).
    /// `path_for_messages` only names the data in errors.
    ///
    /// # Errors
    /// As [`CharText::load`], except that no [`Error::Io`] can arise.
    ///
    /// # Shapes
    /// None yet: shapes come with the batches.
    ///
    /// ```
    /// use std::path::Path;
    /// use shapesafe::data::CharText;
    /// assert_eq!(CharText::parse(b"to be", Path::new("t.txt"))?.vocab_size(), 5);
    /// let err = CharText::parse(b"ok\n\xff", Path::new("bad.txt")).unwrap_err();
    /// assert!(err.to_string().contains("line 2"));
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn parse(bytes: &[u8], path_for_messages: &Path) -> Result<CharText> {
        let path = path_for_messages;
        let mut decompressed = Vec::new();
        let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
            MultiGzDecoder::new(bytes)
                .take(TEXT_MAX_BYTES + 1)
                .read_to_end(&mut decompressed)
                .map_err(|source| Error::Decompress {
                    path: path.to_path_buf(),
                    source,
                })?;
            &decompressed[..]
        } else {
            bytes
        };
        if bytes.len() as u64 > TEXT_MAX_BYTES {
            return Err(parse_error(
                path,
                1,
                format!("the text is larger than the reader's limit of {TEXT_MAX_BYTES} bytes"),
            ));
        }
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let at = e.valid_up_to();
            let line = 1 + bytes[..at].iter().filter(|&&b| b == b'\n').count();
            parse_error(
                path,
                line,
                format!(
                    "byte {at} ({:#04x}) is not valid UTF-8",
                    bytes.get(at).copied().unwrap_or(0)
                ),
            )
        })?;
        CharText::from_str_for(text, path)
    }

    /// Builds the text from a string.
    ///
    /// # Errors
    /// [`Error::Parse`] if `text` is empty.
    ///
    /// # Shapes
    /// None yet: shapes come with the batches.
    ///
    /// ```
    /// use shapesafe::data::CharText;
    /// let text = CharText::from_text("hello")?;
    /// assert_eq!(text.vocab(), ['e', 'h', 'l', 'o']);
    /// assert_eq!(text.indices(), [1, 0, 2, 2, 3]);
    /// assert!(CharText::from_text("").is_err());
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn from_text(text: &str) -> Result<CharText> {
        CharText::from_str_for(text, Path::new(""))
    }

    fn from_str_for(text: &str, path: &Path) -> Result<CharText> {
        if text.is_empty() {
            return Err(parse_error(path, 1, "the text is empty".to_string()));
        }
        let mut vocab: Vec<char> = text.chars().collect();
        vocab.sort_unstable();
        vocab.dedup();
        let indices = text
            .chars()
            .map(|c| vocab.binary_search(&c).unwrap_or_default())
            .collect();
        Ok(CharText { vocab, indices })
    }

    /// The distinct characters, sorted; a character's index here is its token.
    ///
    /// # Shapes
    /// `vocab_size()` characters.
    ///
    /// ```
    /// assert_eq!(shapesafe::data::CharText::from_text("baa")?.vocab(), ['a', 'b']);
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn vocab(&self) -> &[char] {
        &self.vocab
    }

    /// How many distinct characters the text holds.
    ///
    /// # Shapes
    /// The least `VOCAB` that [`CharText::one_hot_batch`] accepts.
    ///
    /// ```
    /// assert_eq!(shapesafe::data::CharText::from_text("baa")?.vocab_size(), 2);
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    /// The text as character indices.
    ///
    /// # Shapes
    /// `len()` indices, each below `vocab_size()`.
    ///
    /// ```
    /// assert_eq!(shapesafe::data::CharText::from_text("baa")?.indices(), [1, 0, 0]);
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }

    /// The number of characters (not bytes) in the text.
    ///
    /// # Shapes
    /// A scalar count.
    ///
    /// ```
    /// assert_eq!(shapesafe::data::CharText::from_text("héé")?.len(), 3);
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Always `false`: an empty text is refused when it is built.
    ///
    /// # Shapes
    /// A flag.
    ///
    /// ```
    /// assert!(!shapesafe::data::CharText::from_text("a")?.is_empty());
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// The index of character `c`, or `None` if the text never uses it.
    ///
    /// # Shapes
    /// A scalar index below `vocab_size()`.
    ///
    /// ```
    /// let text = shapesafe::data::CharText::from_text("abc")?;
    /// assert_eq!(text.encode_char('c'), Some(2));
    /// assert_eq!(text.encode_char('z'), None);
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn encode_char(&self, c: char) -> Option<usize> {
        self.vocab.binary_search(&c).ok()
    }

    /// Encodes a string as character indices.
    ///
    /// # Errors
    /// [`Error::Usage`] naming the first character that is not in the vocabulary and its
    /// position (from 1).
    ///
    /// # Shapes
    /// One index per character of `s`.
    ///
    /// ```
    /// let text = shapesafe::data::CharText::from_text("abc")?;
    /// assert_eq!(text.encode("cab")?, [2, 0, 1]);
    /// assert!(text.encode("abz").is_err());
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn encode(&self, s: &str) -> Result<Vec<usize>> {
        s.chars()
            .enumerate()
            .map(|(i, c)| {
                self.encode_char(c).ok_or_else(|| {
                    Error::Usage(format!(
                        "character {c:?} at position {} is not in the text's vocabulary",
                        i + 1
                    ))
                })
            })
            .collect()
    }

    /// Decodes character indices back to a string.
    ///
    /// # Errors
    /// [`Error::IndexOutOfRange`] for an index at or past `vocab_size()`.
    ///
    /// # Shapes
    /// One character per index.
    ///
    /// ```
    /// let text = shapesafe::data::CharText::from_text("abc")?;
    /// assert_eq!(text.decode(&[2, 0, 1])?, "cab");
    /// assert!(text.decode(&[3]).is_err());
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn decode(&self, indices: &[usize]) -> Result<String> {
        indices
            .iter()
            .map(|&i| {
                self.vocab.get(i).copied().ok_or(Error::IndexOutOfRange {
                    index: i,
                    len: self.vocab.len(),
                })
            })
            .collect()
    }

    /// Splits the text at `fraction` of its characters into a head and a tail that share this
    /// text's vocabulary (so a model trained on one reads the other), e.g. train and
    /// validation parts.
    ///
    /// # Errors
    /// [`Error::Usage`] unless `fraction` is strictly between 0 and 1 and both parts hold at
    /// least two characters (one window of one character).
    ///
    /// # Shapes
    /// The parts hold `round(len * fraction)` and the remaining characters.
    ///
    /// ```
    /// let text = shapesafe::data::CharText::from_text("abcdefghij")?;
    /// let (head, tail) = text.split(0.8)?;
    /// assert_eq!((head.len(), tail.len()), (8, 2));
    /// assert_eq!(tail.vocab(), text.vocab());
    /// assert!(text.split(1.0).is_err());
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn split(&self, fraction: f64) -> Result<(CharText, CharText)> {
        let at = (self.len() as f64 * fraction).round();
        if !(fraction > 0.0 && fraction < 1.0) || at < 2.0 || self.len() as f64 - at < 2.0 {
            return Err(Error::Usage(format!(
                "cannot split a text of {} characters at fraction {fraction}: both parts need at least 2",
                self.len()
            )));
        }
        let at = at as usize;
        let part = |indices: &[usize]| CharText {
            vocab: self.vocab.clone(),
            indices: indices.to_vec(),
        };
        Ok((part(&self.indices[..at]), part(&self.indices[at..])))
    }

    /// How many non-overlapping windows of `sequence` characters (each with its target, the
    /// window shifted on by one) the text holds: `(len - 1) / sequence`.
    ///
    /// # Shapes
    /// A scalar count; 0 for a `sequence` of 0.
    ///
    /// ```
    /// let text = shapesafe::data::CharText::from_text("abcdefghij")?;
    /// assert_eq!(text.num_windows(3), 3);
    /// assert_eq!(text.num_windows(9), 1);
    /// assert_eq!(text.num_windows(10), 0);
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn num_windows(&self, sequence: usize) -> usize {
        (self.len() - 1).checked_div(sequence).unwrap_or(0)
    }

    /// Window `index` of `sequence` characters: its input and its target indices.
    ///
    /// # Errors
    /// [`Error::IndexOutOfRange`] for an index at or past [`CharText::num_windows`].
    ///
    /// # Shapes
    /// Two slices of `sequence` indices each.
    ///
    /// ```
    /// let text = shapesafe::data::CharText::from_text("abcdefg")?;
    /// let (input, target) = text.window(1, 3)?;
    /// assert_eq!(text.decode(input)?, "def");
    /// assert_eq!(text.decode(target)?, "efg");
    /// assert!(text.window(2, 3).is_err());
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn window(&self, index: usize, sequence: usize) -> Result<(&[usize], &[usize])> {
        let len = self.num_windows(sequence);
        if index >= len {
            return Err(Error::IndexOutOfRange { index, len });
        }
        let start = index * sequence;
        Ok((
            &self.indices[start..start + sequence],
            &self.indices[start + 1..start + sequence + 1],
        ))
    }

    /// The window indices of one epoch in batches of `batch_size`: in order without a seed,
    /// shuffled by `seed` with one (the same seed gives the same order). The last, short
    /// batch is kept unless `drop_last`.
    ///
    /// # Errors
    /// [`Error::Usage`] for a `batch_size` or `sequence` of 0, or a text too short for one
    /// window.
    ///
    /// # Shapes
    /// `num_windows(sequence) / batch_size` batches (rounded up unless `drop_last`).
    ///
    /// ```
    /// let text = shapesafe::data::CharText::from_text("abcdefghijk")?;
    /// assert_eq!(text.batches(2, 3, None, false)?, [vec![0, 1, 2], vec![3, 4]]);
    /// assert_eq!(text.batches(2, 3, Some(7), true)?.len(), 1);
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn batches(
        &self,
        sequence: usize,
        batch_size: usize,
        seed: Option<u64>,
        drop_last: bool,
    ) -> Result<Vec<Vec<usize>>> {
        let windows = self.num_windows(sequence);
        if batch_size == 0 || windows == 0 {
            return Err(Error::Usage(format!(
                "cannot batch a text of {} characters in windows of {sequence} and batches of {batch_size}",
                self.len()
            )));
        }
        let mut order: Vec<usize> = (0..windows).collect();
        if let Some(seed) = seed {
            order.shuffle(&mut StdRng::seed_from_u64(seed));
        }
        Ok(order
            .chunks(batch_size)
            .filter(|chunk| !drop_last || chunk.len() == batch_size)
            .map(<[usize]>::to_vec)
            .collect())
    }

    /// The given windows as index tensors: input and target, one row per window.
    ///
    /// # Errors
    /// [`Error::IndexOutOfRange`] for a window past the end; [`Error::Device`] if the device
    /// cannot allocate.
    ///
    /// # Shapes
    /// `(usize, Const<SEQUENCE>)` each, the batch dim `windows.len()`.
    ///
    /// ```
    /// use dfdx::prelude::*;
    /// let text = shapesafe::data::CharText::from_text("abcabc")?;
    /// let (x, y) = text.index_batch::<2, _>(&[1, 0], &Cpu::default())?;
    /// assert_eq!(x.as_vec(), [2, 0, 0, 1]);
    /// assert_eq!(y.as_vec(), [0, 1, 1, 2]);
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn index_batch<const SEQUENCE: usize, Dev: TensorFromVec<usize>>(
        &self,
        windows: &[usize],
        dev: &Dev,
    ) -> Result<(
        Tensor<(usize, Const<SEQUENCE>), usize, Dev>,
        Tensor<(usize, Const<SEQUENCE>), usize, Dev>,
    )> {
        let mut inputs = Vec::with_capacity(windows.len() * SEQUENCE);
        let mut targets = Vec::with_capacity(windows.len() * SEQUENCE);
        for &w in windows {
            let (input, target) = self.window(w, SEQUENCE)?;
            inputs.extend_from_slice(input);
            targets.extend_from_slice(target);
        }
        let shape = (windows.len(), Const::<SEQUENCE>);
        Ok((
            dev.try_tensor_from_vec(inputs, shape).map_err(device_err)?,
            dev.try_tensor_from_vec(targets, shape)
                .map_err(device_err)?,
        ))
    }

    /// The given windows as one-hot tensors: input and target, one row per window, one
    /// column per character of a vocabulary of `VOCAB` (at least [`CharText::vocab_size`];
    /// columns past it stay zero, so a model can be sized for a family of texts).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `VOCAB < vocab_size()`; [`Error::IndexOutOfRange`] for a
    /// window past the end; [`Error::Device`] if the device cannot allocate.
    ///
    /// # Shapes
    /// `(usize, Const<SEQUENCE>, Const<VOCAB>)` each, the batch dim `windows.len()`.
    ///
    /// ```
    /// use dfdx::prelude::*;
    /// let text = shapesafe::data::CharText::from_text("abab")?;
    /// let (x, y) = text.one_hot_batch::<2, 3, _>(&[0], &Cpu::default())?;
    /// assert_eq!(x.as_vec(), [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
    /// assert_eq!(y.as_vec(), [0.0, 1.0, 0.0, 1.0, 0.0, 0.0]);
    /// assert!(text.one_hot_batch::<2, 1, _>(&[0], &Cpu::default()).is_err());
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn one_hot_batch<const SEQUENCE: usize, const VOCAB: usize, Dev: TensorFromVec<f32>>(
        &self,
        windows: &[usize],
        dev: &Dev,
    ) -> Result<(
        Tensor<(usize, Const<SEQUENCE>, Const<VOCAB>), f32, Dev>,
        Tensor<(usize, Const<SEQUENCE>, Const<VOCAB>), f32, Dev>,
    )> {
        self.check_vocab(VOCAB)?;
        let size = windows.len() * SEQUENCE * VOCAB;
        let (mut inputs, mut targets) = (vec![0.0f32; size], vec![0.0f32; size]);
        for (row, &w) in windows.iter().enumerate() {
            let (input, target) = self.window(w, SEQUENCE)?;
            for (step, (&i, &t)) in input.iter().zip(target).enumerate() {
                let at = (row * SEQUENCE + step) * VOCAB;
                inputs[at + i] = 1.0;
                targets[at + t] = 1.0;
            }
        }
        let shape = (windows.len(), Const::<SEQUENCE>, Const::<VOCAB>);
        Ok((
            dev.try_tensor_from_vec(inputs, shape).map_err(device_err)?,
            dev.try_tensor_from_vec(targets, shape)
                .map_err(device_err)?,
        ))
    }

    /// Character indices (e.g. a sampling prompt) as a one-hot batch of one sequence.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `VOCAB < vocab_size()`; [`Error::IndexOutOfRange`] for an
    /// index at or past `vocab_size()`; [`Error::Device`] if the device cannot allocate.
    ///
    /// # Shapes
    /// `(usize, usize, Const<VOCAB>)` = `(1, indices.len(), VOCAB)`.
    ///
    /// ```
    /// use dfdx::prelude::*;
    /// let text = shapesafe::data::CharText::from_text("ab")?;
    /// let x = text.one_hot_sequence::<2, _>(&[1, 0], &Cpu::default())?;
    /// assert_eq!(x.shape().concrete(), [1, 2, 2]);
    /// assert_eq!(x.as_vec(), [0.0, 1.0, 1.0, 0.0]);
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn one_hot_sequence<const VOCAB: usize, Dev: TensorFromVec<f32>>(
        &self,
        indices: &[usize],
        dev: &Dev,
    ) -> Result<Tensor<(usize, usize, Const<VOCAB>), f32, Dev>> {
        self.check_vocab(VOCAB)?;
        let mut data = vec![0.0f32; indices.len() * VOCAB];
        for (step, &i) in indices.iter().enumerate() {
            if i >= self.vocab_size() {
                return Err(Error::IndexOutOfRange {
                    index: i,
                    len: self.vocab_size(),
                });
            }
            data[step * VOCAB + i] = 1.0;
        }
        dev.try_tensor_from_vec(data, (1, indices.len(), Const::<VOCAB>))
            .map_err(device_err)
    }

    fn check_vocab(&self, vocab: usize) -> Result<()> {
        if vocab < self.vocab_size() {
            return Err(Error::ShapeMismatch {
                what: format!(
                    "the one-hot width of a text with {} distinct characters",
                    self.vocab_size()
                ),
                expected: vec![self.vocab_size()],
                found: vec![vocab],
            });
        }
        Ok(())
    }
}

fn parse_error(path: &Path, line: usize, reason: String) -> Error {
    Error::Parse {
        path: PathBuf::from(path),
        line,
        reason,
    }
}

fn device_err(e: impl std::fmt::Display) -> Error {
    Error::Device(format!("could not build a text batch tensor: {e}"))
}
