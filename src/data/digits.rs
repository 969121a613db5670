//! scikit-learn's 8x8 handwritten digits (`sklearn.datasets.load_digits`), read from its CSV.
//!
//! The file `digits.csv.gz` has no header: each of its 1,797 lines holds 65 comma-separated
//! integers, an 8x8 image in row-major order with values 0..=16, then the label 0..=9. The
//! repository ships it in `data/sklearn-digits/` (see `data/README.md`).
//!
//! The reader trusts nothing in the file. It caps the decompressed size at
//! [`DIGITS_MAX_BYTES`] before reading (a tiny gzip file can expand without bound), grows its
//! buffers only as rows arrive, and reports the line and column of the first bad field.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use super::dataset::Dataset;
use crate::error::{Error, Result};

/// Pixels in one digits image (8 × 8).
pub const DIGITS_PIXELS: usize = 64;

/// The largest pixel value: each pixel counts the "on" cells of a 4 × 4 block.
pub const DIGITS_MAX_VALUE: u8 = 16;

/// Number of classes (the digits 0–9).
pub const DIGITS_CLASSES: usize = 10;

/// File name of the data in `data/sklearn-digits/`.
pub const DIGITS_FILE: &str = "digits.csv.gz";

/// The largest (decompressed) CSV the reader accepts: 64 MiB, about 180 times the real file.
pub const DIGITS_MAX_BYTES: u64 = 64 << 20;

/// Fields per line: the pixels and the label.
const FIELDS: usize = DIGITS_PIXELS + 1;

/// The 1,797 scikit-learn digits: 8x8 images with values 0..=16, and labels 0..=9.
///
/// As a [`Dataset`], an example is `Rank3<1, 8, 8>` with values divided by 16, so they lie in
/// `[0, 1]` like torchvision's `ToTensor` output.
///
/// ```
/// use shapesafe::data::{data_dir, Dataset, Digits, DIGITS_FILE};
///
/// let digits = Digits::load(data_dir().join("sklearn-digits").join(DIGITS_FILE))?;
/// assert_eq!(digits.len(), 1797);
/// let mut x = [0.0f32; 64];
/// assert_eq!(digits.get(0, &mut x)?, 0);
/// assert_eq!(x[2], 5.0 / 16.0);
/// # Ok::<(), shapesafe::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digits {
    images: Vec<u8>,
    labels: Vec<u8>,
}

impl Digits {
    /// Reads the CSV at `path`, gzip-compressed (detected by its magic bytes) or plain.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be read; [`Error::Decompress`] for corrupt or truncated
    /// gzip data; [`Error::LabelOutOfRange`] for a label of 10 or more; and for an empty file,
    /// a line without 65 fields, a field that is not a whole number, or a pixel above 16, an
    /// error naming the line and column ([`Error::Parse`]).
    ///
    /// ```
    /// use shapesafe::data::{data_dir, Digits};
    /// let digits = Digits::load(data_dir().join("sklearn-digits/digits.csv.gz"))?;
    /// assert_eq!(digits.class_counts(), [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]);
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn load(path: impl AsRef<Path>) -> Result<Digits> {
        let path = path.as_ref();
        let io_err = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut raw = Vec::new();
        // The compressed file can be no larger than the decompressed limit either.
        File::open(path)
            .map_err(io_err)?
            .take(DIGITS_MAX_BYTES + 1)
            .read_to_end(&mut raw)
            .map_err(io_err)?;
        Digits::parse(&raw, path)
    }

    /// Parses the bytes of a digits CSV held in memory (gzip if they start `1f 8b`, else plain).
    /// `path_for_messages` only names the data in errors.
    ///
    /// # Errors
    /// As [`Digits::load`], except that no [`Error::Io`] can arise.
    ///
    /// ```
    /// use std::path::Path;
    /// use shapesafe::data::Digits;
    /// let row = format!("{}7\n", "16,".repeat(64));
    /// let digits = Digits::parse(row.as_bytes(), Path::new("one.csv"))?;
    /// assert_eq!(digits.labels(), [7]);
    ///
    /// let err = Digits::parse(b"1,2,3\n", Path::new("short.csv")).unwrap_err();
    /// assert!(err.to_string().contains("line 1"));
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn parse(bytes: &[u8], path_for_messages: &Path) -> Result<Digits> {
        let path = path_for_messages;
        if !bytes.starts_with(&[0x1f, 0x8b]) {
            return parse_csv(bytes, path);
        }
        let mut text = Vec::new();
        MultiGzDecoder::new(bytes)
            .take(DIGITS_MAX_BYTES + 1)
            .read_to_end(&mut text)
            .map_err(|source| Error::Decompress {
                path: path.to_path_buf(),
                source,
            })?;
        parse_csv(&text, path)
    }

    /// Builds the data set from in-memory rows: 64 pixels (0..=16) per label (0..=9).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `images.len() != 64 * labels.len()`; [`Error::LabelOutOfRange`]
    /// for a label of 10 or more; [`Error::Usage`] for a pixel above 16.
    ///
    /// ```
    /// use shapesafe::data::Digits;
    /// assert_eq!(Digits::from_rows(vec![16; 128], vec![0, 9])?.len(), 2);
    /// assert!(Digits::from_rows(vec![17; 64], vec![0]).is_err());
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn from_rows(images: Vec<u8>, labels: Vec<u8>) -> Result<Digits> {
        if labels.len().checked_mul(DIGITS_PIXELS) != Some(images.len()) {
            return Err(Error::ShapeMismatch {
                what: "the digits pixel buffer".to_string(),
                expected: vec![labels.len(), DIGITS_PIXELS],
                found: vec![images.len()],
            });
        }
        if let Some(i) = images.iter().position(|&p| p > DIGITS_MAX_VALUE) {
            return Err(Error::Usage(format!(
                "pixel {} of digits image {} is {}, above the maximum {DIGITS_MAX_VALUE}",
                i % DIGITS_PIXELS,
                i / DIGITS_PIXELS,
                images[i]
            )));
        }
        if let Some((index, &label)) = labels
            .iter()
            .enumerate()
            .find(|(_, &l)| usize::from(l) >= DIGITS_CLASSES)
        {
            return Err(Error::LabelOutOfRange {
                path: PathBuf::new(),
                index,
                label,
                classes: DIGITS_CLASSES,
            });
        }
        Ok(Digits { images, labels })
    }

    /// Writes the data set as the CSV [`Digits::parse`] reads, uncompressed.
    ///
    /// ```
    /// use std::path::Path;
    /// use shapesafe::data::Digits;
    /// let digits = Digits::from_rows(vec![3; 64], vec![4])?;
    /// let mut csv = Vec::new();
    /// digits.write_csv(&mut csv).unwrap();
    /// assert_eq!(Digits::parse(&csv, Path::new(""))?, digits);
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn write_csv(&self, mut out: impl Write) -> std::io::Result<()> {
        for (image, label) in self.images.chunks_exact(DIGITS_PIXELS).zip(&self.labels) {
            for p in image {
                write!(out, "{p},")?;
            }
            writeln!(out, "{label}")?;
        }
        Ok(())
    }

    /// Number of images (and labels).
    ///
    /// ```
    /// use shapesafe::data::Digits;
    /// assert_eq!(Digits::from_rows(vec![0; 128], vec![1, 2])?.len(), 2);
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images (never true of a parsed file).
    ///
    /// ```
    /// use shapesafe::data::Digits;
    /// assert!(Digits::from_rows(vec![], vec![])?.is_empty());
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// All pixels, 64 per image, values 0..=16.
    ///
    /// ```
    /// use shapesafe::data::Digits;
    /// assert_eq!(Digits::from_rows(vec![1; 64], vec![0])?.images().len(), 64);
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn images(&self) -> &[u8] {
        &self.images
    }

    /// One label (0..=9) per image.
    ///
    /// ```
    /// use shapesafe::data::Digits;
    /// assert_eq!(Digits::from_rows(vec![1; 64], vec![5])?.labels(), [5]);
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// The 64 pixels of image `i`, or `None` past the end.
    ///
    /// ```
    /// use shapesafe::data::Digits;
    /// let d = Digits::from_rows(vec![2; 64], vec![0])?;
    /// assert_eq!(d.image(0).map(|p| p[0]), Some(2));
    /// assert!(d.image(1).is_none());
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn image(&self, i: usize) -> Option<&[u8]> {
        let start = i.checked_mul(DIGITS_PIXELS)?;
        self.images.get(start..start.checked_add(DIGITS_PIXELS)?)
    }

    /// How many images of each class there are.
    ///
    /// ```
    /// use shapesafe::data::Digits;
    /// let d = Digits::from_rows(vec![0; 128], vec![3, 3])?;
    /// assert_eq!(d.class_counts()[3], 2);
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn class_counts(&self) -> [usize; DIGITS_CLASSES] {
        let mut counts = [0; DIGITS_CLASSES];
        for &l in &self.labels {
            if let Some(c) = counts.get_mut(usize::from(l)) {
                *c += 1;
            }
        }
        counts
    }
}

impl Dataset for Digits {
    type Shape = dfdx::shapes::Rank3<1, 8, 8>;
    type Classes = dfdx::shapes::Const<DIGITS_CLASSES>;

    fn len(&self) -> usize {
        self.labels.len()
    }

    /// Pixels divided by 16, so they lie in `[0, 1]`.
    fn get(&self, index: usize, out: &mut [f32]) -> Result<usize> {
        let (image, &label) =
            self.image(index)
                .zip(self.labels.get(index))
                .ok_or(Error::IndexOutOfRange {
                    index,
                    len: self.labels.len(),
                })?;
        for (o, &p) in out.iter_mut().zip(image) {
            *o = f32::from(p) / f32::from(DIGITS_MAX_VALUE);
        }
        Ok(usize::from(label))
    }
}

/// The error for a malformed line.
fn malformed(path: &Path, line: usize, reason: String) -> Error {
    Error::Parse {
        path: path.to_path_buf(),
        line,
        reason,
    }
}

fn parse_csv(text: &[u8], path: &Path) -> Result<Digits> {
    if text.len() as u64 > DIGITS_MAX_BYTES {
        return Err(Error::BadHeader {
            path: path.to_path_buf(),
            reason: format!(
                "the CSV text is larger than the reader's limit of {DIGITS_MAX_BYTES} bytes"
            ),
        });
    }
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for (n, line) in text.split(|&b| b == b'\n').enumerate() {
        let line_no = n + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        // numpy's loadtxt, which scikit-learn uses, skips blank lines too.
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let fields = line.split(|&b| b == b',').count();
        if fields != FIELDS {
            return Err(malformed(
                path,
                line_no,
                format!("{fields} comma-separated fields, but a digits row has {FIELDS} (64 pixels and a label)"),
            ));
        }
        for (col, field) in line.split(|&b| b == b',').enumerate() {
            let value = parse_field(field)
                .map_err(|why| malformed(path, line_no, format!("field {}: {why}", col + 1)))?;
            if col < DIGITS_PIXELS {
                if value > DIGITS_MAX_VALUE {
                    return Err(malformed(
                        path,
                        line_no,
                        format!(
                            "pixel {} is {value}, above the maximum {DIGITS_MAX_VALUE}",
                            col + 1
                        ),
                    ));
                }
                images.push(value);
            } else {
                if usize::from(value) >= DIGITS_CLASSES {
                    return Err(Error::LabelOutOfRange {
                        path: path.to_path_buf(),
                        index: labels.len(),
                        label: value,
                        classes: DIGITS_CLASSES,
                    });
                }
                labels.push(value);
            }
        }
    }
    if labels.is_empty() {
        return Err(Error::BadHeader {
            path: path.to_path_buf(),
            reason: "it holds no rows of digits".to_string(),
        });
    }
    Ok(Digits { images, labels })
}

/// Parses a whole number in `0..=255`, allowing spaces around it.
fn parse_field(field: &[u8]) -> std::result::Result<u8, String> {
    let digits = field.trim_ascii();
    let shown = || String::from_utf8_lossy(field).into_owned();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(format!("{:?} is not a whole number", shown()));
    }
    // Saturating, so an absurdly long number reports as out of range instead of overflowing.
    let value = digits.iter().fold(0u32, |acc, &d| {
        acc.saturating_mul(10).saturating_add(u32::from(d - b'0'))
    });
    u8::try_from(value).map_err(|_| format!("{} is out of range", shown()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_parse_strictly() {
        assert_eq!(parse_field(b" 12 "), Ok(12));
        assert_eq!(parse_field(b"007"), Ok(7));
        assert!(parse_field(b"").is_err());
        assert!(parse_field(b"-1").is_err());
        assert!(parse_field(b"1.5").is_err());
        assert!(parse_field(b"256").is_err());
        assert!(parse_field(&[b'9'; 100]).is_err());
    }

    #[test]
    fn crlf_and_blank_lines_are_accepted() {
        let row = format!("{}3", "0,".repeat(64));
        let text = format!("\n{row}\r\n\r\n{row}\n\n");
        let d = parse_csv(text.as_bytes(), Path::new("")).unwrap();
        assert_eq!(d.labels(), [3, 3]);
    }
}
