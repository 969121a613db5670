//! A reader for IDX files (the MNIST format), raw or gzip-compressed, that never trusts the header.
//!
//! An IDX file is a big-endian header — a magic number `0x0000_TTNN` (`TT` the element type,
//! `NN` the number of dimensions) followed by one `u32` per dimension — and then the elements in
//! row-major order. Only unsigned bytes (`TT = 0x08`) are supported, which is what MNIST uses.
//!
//! The header is attacker-controlled: a 16-byte file can claim to hold terabytes. So the reader
//! checks the header first, computes the payload size with checked arithmetic, refuses anything
//! above [`MAX_PAYLOAD_BYTES`], and only then reads, through a reader bounded to that size. Gzip
//! input is detected by its magic bytes `1f 8b`, so callers need not care which form they have.

use std::fs::File;
use std::io::{self, BufReader, Cursor, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;

use crate::error::{Error, Result};

/// Magic number of an IDX file of unsigned bytes with three dimensions (count, rows, columns).
pub const IDX_IMAGES_MAGIC: u32 = 0x0000_0803;

/// Magic number of an IDX file of unsigned bytes with one dimension (count).
pub const IDX_LABELS_MAGIC: u32 = 0x0000_0801;

/// The largest payload (in uncompressed bytes) the reader accepts: 1 GiB.
///
/// Full MNIST training images are 47 MB, so this is far above any real use yet low enough that a
/// lying header cannot exhaust memory.
pub const MAX_PAYLOAD_BYTES: u64 = 1 << 30;

/// The first two bytes of every gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Up-front allocation is capped below the payload size because a header can still lie within
/// [`MAX_PAYLOAD_BYTES`]; beyond this the buffer grows only as real data arrives. Small, so a
/// 16-byte file that lies costs no more than this; doubling from here to the 47 MB of full
/// MNIST takes six reallocations.
const PREALLOC_LIMIT: u64 = 1 << 20;

/// Trailing data is counted (not stored) for the error message, but a gzip bomb could make even
/// counting slow, so counting stops here.
const TRAILING_COUNT_CAP: u64 = 64 << 20;

/// The images of an IDX image file (magic `0x00000803`), as raw `u8` pixels.
///
/// `pixels` holds `count * rows * cols` bytes, one image after another, each in row-major order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxImages {
    /// How many images the file holds.
    pub count: usize,
    /// Height of each image in pixels.
    pub rows: usize,
    /// Width of each image in pixels.
    pub cols: usize,
    /// All pixels, `count * rows * cols` of them.
    pub pixels: Vec<u8>,
}

impl IdxImages {
    /// Number of pixels in one image (`rows * cols`).
    pub fn image_len(&self) -> usize {
        self.rows * self.cols
    }

    /// The pixels of image `i`, or `None` if `i` is out of range.
    ///
    /// # Example
    /// ```
    /// use shapesafe::data::IdxImages;
    /// let imgs = IdxImages { count: 2, rows: 1, cols: 2, pixels: vec![1, 2, 3, 4] };
    /// assert_eq!(imgs.image(1), Some(&[3u8, 4][..]));
    /// assert_eq!(imgs.image(2), None);
    /// ```
    pub fn image(&self, i: usize) -> Option<&[u8]> {
        let len = self.image_len();
        let start = i.checked_mul(len)?;
        self.pixels.get(start..start.checked_add(len)?)
    }
}

/// Reads an IDX image file (raw or gzip-compressed).
///
/// # Errors
/// [`Error::Io`] if the file cannot be read, [`Error::Decompress`] for corrupt gzip data,
/// [`Error::BadMagic`], [`Error::BadHeader`] (zero or oversized dimensions),
/// [`Error::Truncated`] or [`Error::TrailingBytes`] if the size does not match the header.
///
/// # Example
/// ```no_run
/// use shapesafe::data::{data_dir, read_idx_images};
/// let imgs = read_idx_images(data_dir().join("mnist-small/t10k-images-idx3-ubyte.gz"))?;
/// assert_eq!((imgs.count, imgs.rows, imgs.cols), (1000, 28, 28));
/// # Ok::<(), shapesafe::Error>(())
/// ```
pub fn read_idx_images(path: impl AsRef<Path>) -> Result<IdxImages> {
    let path = path.as_ref();
    let (reader, gzip) = open(path)?;
    let (dims, pixels) = read_idx(reader, gzip, path, IDX_IMAGES_MAGIC)?;
    Ok(images_from(dims, pixels))
}

/// Reads an IDX label file (raw or gzip-compressed) and checks every label is below `classes`.
///
/// # Errors
/// As [`read_idx_images`], plus [`Error::LabelOutOfRange`] for a label `>= classes`.
///
/// # Example
/// ```no_run
/// use shapesafe::data::{data_dir, read_idx_labels};
/// let labels = read_idx_labels(data_dir().join("mnist-small/t10k-labels-idx1-ubyte.gz"), 10)?;
/// assert_eq!(labels.len(), 1000);
/// # Ok::<(), shapesafe::Error>(())
/// ```
pub fn read_idx_labels(path: impl AsRef<Path>, classes: usize) -> Result<Vec<u8>> {
    let path = path.as_ref();
    let (reader, gzip) = open(path)?;
    let (_, labels) = read_idx(reader, gzip, path, IDX_LABELS_MAGIC)?;
    check_labels(labels, classes, path)
}

/// Parses the bytes of an IDX image file held in memory (raw, or gzip if they start `1f 8b`).
///
/// `path_for_messages` only names the data in errors; nothing is read from it.
///
/// # Errors
/// As [`read_idx_images`], except that no [`Error::Io`] can arise from the file system.
///
/// # Example
/// ```
/// use std::path::Path;
/// use shapesafe::data::parse_idx_images;
/// // Two 1x2 images.
/// let bytes = [0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2, 10, 20, 30, 40];
/// let imgs = parse_idx_images(&bytes, Path::new("tiny.idx"))?;
/// assert_eq!((imgs.count, imgs.rows, imgs.cols), (2, 1, 2));
/// assert_eq!(imgs.pixels, [10, 20, 30, 40]);
///
/// // One byte short: the error names the exact sizes.
/// let err = parse_idx_images(&bytes[..19], Path::new("tiny.idx")).unwrap_err();
/// assert!(matches!(err, shapesafe::Error::Truncated { expected_bytes: 20, found_bytes: 19, .. }));
/// # Ok::<(), shapesafe::Error>(())
/// ```
pub fn parse_idx_images(bytes: &[u8], path_for_messages: &Path) -> Result<IdxImages> {
    let (dims, pixels) = parse(bytes, path_for_messages, IDX_IMAGES_MAGIC)?;
    Ok(images_from(dims, pixels))
}

/// Parses the bytes of an IDX label file held in memory (raw, or gzip if they start `1f 8b`)
/// and checks every label is below `classes`.
///
/// `path_for_messages` only names the data in errors; nothing is read from it.
///
/// # Errors
/// As [`read_idx_labels`], except that no [`Error::Io`] can arise from the file system.
///
/// # Example
/// ```
/// use std::path::Path;
/// use shapesafe::data::parse_idx_labels;
/// let bytes = [0, 0, 8, 1, 0, 0, 0, 3, 7, 0, 9];
/// assert_eq!(parse_idx_labels(&bytes, Path::new("l.idx"), 10)?, [7, 0, 9]);
/// let err = parse_idx_labels(&bytes, Path::new("l.idx"), 8).unwrap_err();
/// assert!(matches!(err, shapesafe::Error::LabelOutOfRange { index: 2, label: 9, .. }));
/// # Ok::<(), shapesafe::Error>(())
/// ```
pub fn parse_idx_labels(bytes: &[u8], path_for_messages: &Path, classes: usize) -> Result<Vec<u8>> {
    let (_, labels) = parse(bytes, path_for_messages, IDX_LABELS_MAGIC)?;
    check_labels(labels, classes, path_for_messages)
}

fn images_from(dims: Vec<usize>, pixels: Vec<u8>) -> IdxImages {
    // `read_idx` returns exactly as many dims as the magic number's low byte says (3 here).
    IdxImages {
        count: dims[0],
        rows: dims[1],
        cols: dims[2],
        pixels,
    }
}

fn check_labels(labels: Vec<u8>, classes: usize, path: &Path) -> Result<Vec<u8>> {
    if let Some((index, &label)) = labels
        .iter()
        .enumerate()
        .find(|(_, &l)| usize::from(l) >= classes)
    {
        return Err(Error::LabelOutOfRange {
            path: path.to_path_buf(),
            index,
            label,
            classes,
        });
    }
    Ok(labels)
}

fn parse(bytes: &[u8], path: &Path, magic: u32) -> Result<(Vec<usize>, Vec<u8>)> {
    if bytes.starts_with(&GZIP_MAGIC) {
        read_idx(MultiGzDecoder::new(bytes), true, path, magic)
    } else {
        read_idx(bytes, false, path, magic)
    }
}

/// Opens `path` and returns a reader of its uncompressed bytes, and whether it is gzip.
fn open(path: &Path) -> Result<(Box<dyn Read>, bool)> {
    let io_err = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io_err)?;
    // Sniff the first two bytes, then put them back in front of the rest of the file.
    let mut prefix = [0u8; 2];
    let n = read_up_to(&mut file, &mut prefix).map_err(io_err)?;
    let whole = Cursor::new(prefix[..n].to_vec()).chain(BufReader::new(file));
    if prefix[..n] == GZIP_MAGIC {
        Ok((Box::new(MultiGzDecoder::new(whole)), true))
    } else {
        Ok((Box::new(whole), false))
    }
}

/// Fills `buf` as far as the reader allows; returns how many bytes were read (short only at EOF).
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Reads a whole IDX stream of `u8` elements whose magic must be `magic`; returns its dimensions
/// and elements. The number of dimensions is the low byte of `magic`.
fn read_idx(
    mut r: impl Read,
    gzip: bool,
    path: &Path,
    magic: u32,
) -> Result<(Vec<usize>, Vec<u8>)> {
    // With gzip every read goes through the decoder, so a failure is most likely corrupt data.
    let io_err = |source| {
        let path = path.to_path_buf();
        if gzip {
            Error::Decompress { path, source }
        } else {
            Error::Io { path, source }
        }
    };
    let ndims = (magic & 0xff) as usize;
    let header_len = 4 + 4 * ndims as u64;
    let truncated = |found: usize| Error::Truncated {
        path: path.to_path_buf(),
        expected_bytes: header_len,
        found_bytes: found as u64,
    };

    let mut magic_bytes = [0u8; 4];
    let n = read_up_to(&mut r, &mut magic_bytes).map_err(io_err)?;
    if n < 4 {
        return Err(truncated(n));
    }
    let found = u32::from_be_bytes(magic_bytes);
    if found != magic {
        return Err(Error::BadMagic {
            path: path.to_path_buf(),
            expected: magic,
            found,
        });
    }

    let mut dim_bytes = vec![0u8; 4 * ndims];
    let n = read_up_to(&mut r, &mut dim_bytes).map_err(io_err)?;
    if n < dim_bytes.len() {
        return Err(truncated(4 + n));
    }
    let dims: Vec<u32> = dim_bytes
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let bad_header = |reason: String| Error::BadHeader {
        path: path.to_path_buf(),
        reason,
    };
    if let Some(i) = dims.iter().position(|&d| d == 0) {
        return Err(bad_header(format!(
            "dimension {i} of {dims:?} is zero, so it holds no data"
        )));
    }
    let payload_len = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(u64::from(d)))
        .ok_or_else(|| {
            bad_header(format!(
                "the dimensions {dims:?} multiply to more than 2^64 elements"
            ))
        })?;
    if payload_len > MAX_PAYLOAD_BYTES {
        return Err(bad_header(format!(
            "the dimensions {dims:?} describe {payload_len} bytes of data, more than the limit of {MAX_PAYLOAD_BYTES}"
        )));
    }

    let mut payload = Vec::with_capacity(payload_len.min(PREALLOC_LIMIT) as usize);
    (&mut r)
        .take(payload_len)
        .read_to_end(&mut payload)
        .map_err(io_err)?;
    if (payload.len() as u64) < payload_len {
        return Err(Error::Truncated {
            path: path.to_path_buf(),
            expected_bytes: header_len + payload_len,
            found_bytes: header_len + payload.len() as u64,
        });
    }

    // Reading on to the end also makes the gzip decoder verify its CRC and length trailer.
    let extra =
        io::copy(&mut (&mut r).take(TRAILING_COUNT_CAP), &mut io::sink()).map_err(io_err)?;
    if extra > 0 {
        return Err(Error::TrailingBytes {
            path: path.to_path_buf(),
            expected_bytes: header_len + payload_len,
            extra_bytes: extra,
            at_least: extra == TRAILING_COUNT_CAP,
        });
    }

    Ok((dims.into_iter().map(|d| d as usize).collect(), payload))
}
