//! Per-epoch training records, written as CSV and drawn as loss/accuracy curves.

use super::plot::{svg, Panel, Series};
use crate::{Error, Result};
use std::path::Path;

/// What one epoch measured.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochRecord {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Learning rate used.
    pub lr: f64,
    /// Mean training loss over the epoch's batches.
    pub train_loss: f64,
    /// Training accuracy over the epoch (measured while the weights changed).
    pub train_accuracy: f64,
    /// Validation loss after the epoch.
    pub valid_loss: f64,
    /// Validation top-1 accuracy after the epoch.
    pub valid_accuracy: f64,
    /// Validation top-k accuracy after the epoch (k is [`History::top_k`]).
    pub valid_top_k: f64,
    /// Wall-clock seconds of training (not validation).
    pub seconds: f64,
}

/// The records of a run.
///
/// # Shapes
/// Not a layer: one record per epoch.
///
/// ```
/// use shapesafe::train::{EpochRecord, History};
/// let mut h = History::new(5);
/// h.records.push(EpochRecord {
///     epoch: 1, lr: 1e-3, train_loss: 0.5, train_accuracy: 0.8,
///     valid_loss: 0.4, valid_accuracy: 0.85, valid_top_k: 0.99, seconds: 1.0,
/// });
/// assert!(h.to_csv().starts_with("epoch,lr,"));
/// assert!(h.to_svg().contains("<polyline"));
/// let back = History::from_csv(&h.to_csv(), 5).unwrap();
/// assert_eq!(back.records[0].valid_top_k, 0.99);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    /// The `k` of the top-k column.
    pub top_k: usize,
    /// One per completed epoch, in order.
    pub records: Vec<EpochRecord>,
}

impl History {
    /// An empty history whose top-k column uses `top_k`.
    pub fn new(top_k: usize) -> Self {
        Self {
            top_k,
            records: Vec::new(),
        }
    }

    /// The records as CSV with a header line.
    pub fn to_csv(&self) -> String {
        let mut out = format!(
            "epoch,lr,train_loss,train_accuracy,valid_loss,valid_accuracy,valid_top{}_accuracy,seconds\n",
            self.top_k
        );
        for r in &self.records {
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{:.3}\n",
                r.epoch,
                r.lr,
                r.train_loss,
                r.train_accuracy,
                r.valid_loss,
                r.valid_accuracy,
                r.valid_top_k,
                r.seconds
            ));
        }
        out
    }

    /// Loss (train, valid) and accuracy (train, valid) curves side by side, as SVG.
    pub fn to_svg(&self) -> String {
        let pick = |f: fn(&EpochRecord) -> f64| -> Vec<(f64, f64)> {
            self.records
                .iter()
                .map(|r| (r.epoch as f64, f(r)))
                .collect()
        };
        svg(&[
            Panel {
                title: "Loss",
                x_label: "epoch",
                y_label: "cross-entropy",
                series: vec![
                    Series {
                        label: "train",
                        color: "#1f77b4",
                        points: pick(|r| r.train_loss),
                    },
                    Series {
                        label: "valid",
                        color: "#d62728",
                        points: pick(|r| r.valid_loss),
                    },
                ],
            },
            Panel {
                title: "Accuracy",
                x_label: "epoch",
                y_label: "accuracy",
                series: vec![
                    Series {
                        label: "train",
                        color: "#1f77b4",
                        points: pick(|r| r.train_accuracy),
                    },
                    Series {
                        label: "valid",
                        color: "#d62728",
                        points: pick(|r| r.valid_accuracy),
                    },
                ],
            },
        ])
    }

    /// Parses what [`Self::to_csv`] wrote (a checkpoint stores it, so a resumed run
    /// keeps its earlier epochs).
    pub fn from_csv(text: &str, top_k: usize) -> Result<Self> {
        let bad = |line: usize, why: &str| Error::BadHeader {
            path: Default::default(),
            reason: format!("training history line {line}: {why}"),
        };
        let mut records = Vec::new();
        for (i, line) in text.lines().enumerate().skip(1) {
            let fields: Vec<&str> = line.split(',').collect();
            if fields.len() != 8 {
                return Err(bad(i + 1, "expected 8 comma-separated fields"));
            }
            let num = |j: usize| -> Result<f64> {
                fields[j]
                    .parse()
                    .map_err(|_| bad(i + 1, "a field is not a number"))
            };
            records.push(EpochRecord {
                epoch: fields[0].parse().map_err(|_| bad(i + 1, "bad epoch"))?,
                lr: num(1)?,
                train_loss: num(2)?,
                train_accuracy: num(3)?,
                valid_loss: num(4)?,
                valid_accuracy: num(5)?,
                valid_top_k: num(6)?,
                seconds: num(7)?,
            });
        }
        Ok(Self { top_k, records })
    }

    /// Writes [`Self::to_csv`] to `path`.
    pub fn write_csv(&self, path: impl AsRef<Path>) -> Result<()> {
        write(path.as_ref(), self.to_csv())
    }

    /// Writes [`Self::to_svg`] to `path`.
    pub fn write_svg(&self, path: impl AsRef<Path>) -> Result<()> {
        write(path.as_ref(), self.to_svg())
    }

    /// Renders the curves to a PNG at `path` when the system has a font for the
    /// labels; returns whether it wrote the file (without fonts the SVG is the picture).
    pub fn write_png(&self, path: impl AsRef<Path>) -> Result<bool> {
        let path = path.as_ref();
        let fail = |why: String| Error::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(why),
        };
        let mut options = resvg::usvg::Options::default();
        let fonts = options.fontdb_mut();
        fonts.load_system_fonts();
        // The SVG asks for "sans-serif", which fontdb maps to Arial: point it at a sans
        // face this system has (DejaVu Sans on Debian), or any face at all.
        let families: Vec<String> = fonts
            .faces()
            .flat_map(|face| face.families.iter().map(|(name, _)| name.clone()))
            .collect();
        let family = families
            .iter()
            .find(|f| f.contains("Sans") && !f.contains("Mono"))
            .or(families.first());
        match family {
            Some(family) => fonts.set_sans_serif_family(family.clone()),
            None => return Ok(false),
        }
        let tree = resvg::usvg::Tree::from_str(&self.to_svg(), &options)
            .map_err(|e| fail(format!("the curves do not parse as SVG: {e}")))?;
        let size = tree.size().to_int_size();
        let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height())
            .ok_or_else(|| fail("the picture has no pixels".to_string()))?;
        resvg::render(
            &tree,
            resvg::tiny_skia::Transform::default(),
            &mut pixmap.as_mut(),
        );
        let png = pixmap
            .encode_png()
            .map_err(|e| fail(format!("PNG encoding failed: {e}")))?;
        std::fs::write(path, png).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(true)
    }
}

fn write(path: &Path, text: String) -> Result<()> {
    std::fs::write(path, text).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_is_a_png_where_fonts_exist() {
        let mut h = History::new(3);
        for epoch in 1..=3 {
            h.records.push(EpochRecord {
                epoch,
                lr: 1e-3,
                train_loss: 1.0 / epoch as f64,
                train_accuracy: 0.9,
                valid_loss: 1.2 / epoch as f64,
                valid_accuracy: 0.85,
                valid_top_k: 0.99,
                seconds: 1.0,
            });
        }
        let path =
            std::env::temp_dir().join(format!("shapesafe-curves-{}.png", std::process::id()));
        if h.write_png(&path).unwrap() {
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
            std::fs::remove_file(&path).unwrap();
        } else {
            assert!(!path.exists(), "no fonts, so no file");
        }
    }
}
