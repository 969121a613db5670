//! The crate's runtime error type: everything that can go wrong when reading data or weights.
//!
//! Shape errors inside a model are caught at compile time; this type covers what can only be
//! known at run time (files on disk, their contents, and device failures).

use std::fmt;
use std::path::{Path, PathBuf};

/// Everything that can go wrong at run time in `shapesafe`.
///
/// Variants are structured so callers can react to a specific failure with `matches!`, and
/// [`Display`](fmt::Display) writes a full sentence naming the file and the numbers involved.
#[non_exhaustive]
#[derive(Debug)]
pub enum Error {
    /// A file could not be opened or read.
    Io {
        /// The file that was being read.
        path: PathBuf,
        /// The underlying operating-system error.
        source: std::io::Error,
    },
    /// A gzip-compressed file is corrupt (bad header, bad deflate data, or a bad checksum).
    Decompress {
        /// The compressed file.
        path: PathBuf,
        /// The error reported by the gzip decoder.
        source: std::io::Error,
    },
    /// A file does not start with the magic number its format requires.
    BadMagic {
        /// The file that was being read.
        path: PathBuf,
        /// The magic number the format requires.
        expected: u32,
        /// The first four bytes of the file, read as a big-endian number.
        found: u32,
    },
    /// A file ends before all the data its header promises.
    Truncated {
        /// The file that was being read.
        path: PathBuf,
        /// How many (uncompressed) bytes the file should hold; when the header itself is cut
        /// short this is the header's length.
        expected_bytes: u64,
        /// How many (uncompressed) bytes it actually holds.
        found_bytes: u64,
    },
    /// A file holds more bytes than its header accounts for.
    TrailingBytes {
        /// The file that was being read.
        path: PathBuf,
        /// How many (uncompressed) bytes the header accounts for.
        expected_bytes: u64,
        /// How many extra bytes follow. Counting stops at a cap so that a huge or endless
        /// stream cannot stall the reader, so this is a lower bound when `at_least` is set.
        extra_bytes: u64,
        /// Whether counting stopped at the cap (there may be more extra bytes).
        at_least: bool,
    },
    /// A file's header is well-formed but describes something unusable, such as a zero
    /// dimension or a size that overflows or exceeds the reader's limit.
    BadHeader {
        /// The file that was being read.
        path: PathBuf,
        /// What is wrong with the header, as a sentence fragment.
        reason: String,
    },
    /// An image file and its label file hold different numbers of items.
    CountMismatch {
        /// The image file.
        images_path: PathBuf,
        /// The label file.
        labels_path: PathBuf,
        /// How many images the image file holds.
        images: usize,
        /// How many labels the label file holds.
        labels: usize,
    },
    /// A label is not a valid class index.
    LabelOutOfRange {
        /// The label file (empty for data that was built in memory).
        path: PathBuf,
        /// The position of the offending label.
        index: usize,
        /// The offending label.
        label: u8,
        /// The number of classes; valid labels are `0..classes`.
        classes: usize,
    },
    /// Data has a different shape from the one required (e.g. images that are not 28x28, or a
    /// stored weight whose dimensions do not match the model).
    ShapeMismatch {
        /// What was being checked, e.g. a file or parameter name.
        what: String,
        /// The required dimensions.
        expected: Vec<usize>,
        /// The dimensions actually found.
        found: Vec<usize>,
    },
    /// A tensor device (dfdx) reported an error; this holds its message.
    Device(String),
    /// A weights file could not be written or read as safetensors.
    Weights {
        /// The weights file.
        path: PathBuf,
        /// What went wrong, from the safetensors reader or writer.
        reason: String,
    },
    /// A line of a text data file (CSV) is malformed.
    Parse {
        /// The file that was being read.
        path: PathBuf,
        /// The line, counted from 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A command-line argument is missing, unknown or malformed.
    Usage(String),
    /// Training produced a NaN or infinity.
    NonFinite {
        /// Epoch (from 1) in which it happened.
        epoch: usize,
        /// Optimizer step (from 1, counted over the whole run) at which it happened.
        step: usize,
        /// What was not finite: the loss, or the gradient of a named parameter.
        what: String,
    },
    /// An image file could not be decoded (corrupt, truncated, or not an image).
    Image {
        /// The image file.
        path: PathBuf,
        /// What the decoder said.
        reason: String,
    },
    /// A rank of a distributed run failed, or the ranks disagree (different models, a
    /// collective that did not complete). Every rank stops with this error.
    Distributed {
        /// The rank that failed: on a rank that failed itself, that rank; on the others, the
        /// lowest that failed.
        rank: usize,
        /// What went wrong: the failing rank's own message there, a pointer to it elsewhere.
        reason: String,
    },
    /// An example was asked for past the end of a data set.
    IndexOutOfRange {
        /// The index asked for.
        index: usize,
        /// How many examples there are.
        len: usize,
    },
}

impl Error {
    /// A device's error (dfdx's `CpuError`, `CudaError`, a module's `Error`) as
    /// [`Error::Device`], for `map_err`.
    ///
    /// # Shapes
    /// Not about shapes: any error that prints with `{:?}`.
    ///
    /// ```
    /// let e = shapesafe::Error::device(dfdx::tensor::CpuError::OutOfMemory);
    /// assert!(matches!(e, shapesafe::Error::Device(m) if m == "OutOfMemory"));
    /// ```
    pub fn device(e: impl std::fmt::Debug) -> Self {
        Error::Device(format!("{e:?}"))
    }
}

/// `Result` with this crate's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Names a path in a message, so in-memory data (an empty path) still reads naturally.
fn describe(path: &Path) -> String {
    if path.as_os_str().is_empty() {
        "in-memory data".to_string()
    } else {
        format!("file {}", path.display())
    }
}

/// Pluralises "byte" so messages read as sentences.
fn bytes(n: u64) -> String {
    if n == 1 {
        "1 byte".to_string()
    } else {
        format!("{n} bytes")
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, source } => {
                write!(f, "Could not read {}: {source}.", describe(path))
            }
            Error::Decompress { path, source } => write!(
                f,
                "The gzip data in {} is corrupt or could not be decompressed: {source}.",
                describe(path)
            ),
            Error::BadMagic {
                path,
                expected,
                found,
            } => write!(
                f,
                "The {} starts with magic number {found:#010x}, but {expected:#010x} was expected.",
                describe(path)
            ),
            Error::Truncated {
                path,
                expected_bytes,
                found_bytes,
            } => write!(
                f,
                "The {} is truncated: it should hold {} but holds only {}.",
                describe(path),
                bytes(*expected_bytes),
                bytes(*found_bytes)
            ),
            Error::TrailingBytes {
                path,
                expected_bytes,
                extra_bytes,
                at_least,
            } => write!(
                f,
                "The {} has {}{} of unexpected data after the {} its header accounts for.",
                describe(path),
                if *at_least { "at least " } else { "" },
                bytes(*extra_bytes),
                bytes(*expected_bytes)
            ),
            Error::BadHeader { path, reason } => {
                write!(f, "The {} has an unusable header: {reason}.", describe(path))
            }
            Error::CountMismatch {
                images_path,
                labels_path,
                images,
                labels,
            } => write!(
                f,
                "The image {} holds {images} images but the label {} holds {labels} labels.",
                describe(images_path),
                describe(labels_path)
            ),
            Error::LabelOutOfRange {
                path,
                index,
                label,
                classes,
            } => write!(
                f,
                "Label {label} at index {index} of the {} is out of range: there are {classes} classes, so labels must be below {classes}.",
                describe(path)
            ),
            Error::Weights { path, reason } => {
                write!(f, "The weights {} could not be used: {reason}.", describe(path))
            }
            Error::Usage(message) => write!(f, "{message}"),
            Error::Parse { path, line, reason } => {
                write!(f, "The {} is malformed at line {line}: {reason}.", describe(path))
            }
            Error::NonFinite { epoch, step, what } => write!(
                f,
                "Training stopped at epoch {epoch}, step {step}: the {what} is not finite (NaN or infinity). Lower the learning rate or clip gradients."
            ),
            Error::Image { path, reason } => {
                write!(f, "The image {} could not be decoded: {reason}.", describe(path))
            }
            Error::Distributed { rank, reason } => {
                write!(f, "Rank {rank} of the distributed run failed: {reason}")
            }
            Error::IndexOutOfRange { index, len } => write!(
                f,
                "Example {index} was asked for, but the data set has only {len} examples."
            ),
            Error::ShapeMismatch {
                what,
                expected,
                found,
            } => write!(
                f,
                "Shape mismatch for {what}: expected {expected:?}, found {found:?}."
            ),
            Error::Device(msg) => write!(f, "The tensor device reported an error: {msg}."),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } | Error::Decompress { source, .. } => Some(source),
            _ => None,
        }
    }
}
