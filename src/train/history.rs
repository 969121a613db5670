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
    /// Mean training loss over the epoch's examples.
    pub train_loss: f64,
    /// Validation loss after the epoch.
    pub valid_loss: f64,
    /// Wall-clock seconds of training (not validation).
    pub seconds: f64,
    /// The objective's other metrics by name, `train_` or `valid_` first, in the order
    /// reported: `train_accuracy`, `valid_accuracy`, `valid_top5_accuracy` for a classifier
    /// (training metrics are measured while the weights change).
    pub metrics: Vec<(String, f64)>,
}

impl EpochRecord {
    /// The metric called `name` (with its `train_`/`valid_` prefix), if this epoch has it.
    ///
    /// ```
    /// use shapesafe::train::EpochRecord;
    /// let r = EpochRecord { epoch: 1, lr: 0.1, train_loss: 0.5, valid_loss: 0.4, seconds: 1.0,
    ///     metrics: vec![("valid_accuracy".into(), 0.9)] };
    /// assert_eq!(r.metric("valid_accuracy"), Some(0.9));
    /// assert_eq!(r.metric("valid_kl"), None);
    /// ```
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics
            .iter()
            .find(|(n, _)| n == name)
            .map(|&(_, v)| v)
    }
}

/// The records of a run.
///
/// # Shapes
/// Not a layer: one record per epoch.
///
/// ```
/// use shapesafe::train::{EpochRecord, History};
/// let mut h = History::default();
/// h.records.push(EpochRecord {
///     epoch: 1, lr: 1e-3, train_loss: 0.5, valid_loss: 0.4, seconds: 1.0,
///     metrics: vec![("train_accuracy".into(), 0.8), ("valid_top5_accuracy".into(), 0.99)],
/// });
/// assert!(h.to_csv().starts_with("epoch,lr,train_loss,valid_loss,train_accuracy,"));
/// assert!(h.to_svg().contains("<polyline"));
/// let back = History::from_csv(&h.to_csv()).unwrap();
/// assert_eq!(back.records[0].metric("valid_top5_accuracy"), Some(0.99));
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    /// One per completed epoch, in order.
    pub records: Vec<EpochRecord>,
}

const COLORS: [&str; 2] = ["#1f77b4", "#d62728"];

impl History {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every metric name of the run, in the order first seen.
    pub fn metric_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for (name, _) in self.records.iter().flat_map(|r| &r.metrics) {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        names
    }

    /// The records as CSV with a header line: `epoch,lr,train_loss,valid_loss`, the
    /// metrics, then `seconds`. A metric an epoch lacks is an empty field.
    pub fn to_csv(&self) -> String {
        let names = self.metric_names();
        let mut out = String::from("epoch,lr,train_loss,valid_loss,");
        for name in &names {
            out.push_str(name);
            out.push(',');
        }
        out.push_str("seconds\n");
        for r in &self.records {
            out.push_str(&format!(
                "{},{},{},{},",
                r.epoch, r.lr, r.train_loss, r.valid_loss
            ));
            for name in &names {
                if let Some(v) = r.metric(name) {
                    out.push_str(&v.to_string());
                }
                out.push(',');
            }
            out.push_str(&format!("{:.3}\n", r.seconds));
        }
        out
    }

    /// Loss curves (train, valid) and, beside them, a panel per other metric, as SVG.
    pub fn to_svg(&self) -> String {
        let series = |name: &str| -> Vec<(f64, f64)> {
            self.records
                .iter()
                .filter_map(|r| {
                    let v = match name {
                        "train_loss" => Some(r.train_loss),
                        "valid_loss" => Some(r.valid_loss),
                        _ => r.metric(name),
                    };
                    v.map(|v| (r.epoch as f64, v))
                })
                .collect()
        };
        // One panel per metric, its training and validation curves together, so that
        // metrics of different scales (a KL of 20, an MSE of 0.01) each fill their own.
        let mut bases: Vec<&str> = Vec::new();
        let names = self.metric_names();
        for name in &names {
            let base = name
                .strip_prefix("train_")
                .or_else(|| name.strip_prefix("valid_"))
                .unwrap_or(name);
            if !bases.contains(&base) {
                bases.push(base);
            }
        }
        let curves = |train: String, valid: String| {
            [("train", COLORS[0], train), ("valid", COLORS[1], valid)]
                .into_iter()
                .filter(|(_, _, name)| {
                    name == "train_loss" || name == "valid_loss" || names.contains(name)
                })
                .map(|(label, color, name)| Series {
                    label,
                    color,
                    points: series(&name),
                })
                .collect::<Vec<_>>()
        };
        let mut panels = vec![Panel {
            title: "loss",
            x_label: "epoch",
            y_label: "loss",
            series: curves("train_loss".into(), "valid_loss".into()),
        }];
        for base in &bases {
            panels.push(Panel {
                title: base,
                x_label: "epoch",
                y_label: base,
                series: curves(format!("train_{base}"), format!("valid_{base}")),
            });
        }
        svg(&panels)
    }

    /// Parses what [`Self::to_csv`] wrote (a checkpoint stores it, so a resumed run
    /// keeps its earlier epochs).
    ///
    /// # Errors
    /// [`Error::BadHeader`] naming the line for a header or row that is not the format above.
    pub fn from_csv(text: &str) -> Result<Self> {
        let bad = |line: usize, why: &str| Error::BadHeader {
            path: Default::default(),
            reason: format!("training history line {line}: {why}"),
        };
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
        let fixed = ["epoch", "lr", "train_loss", "valid_loss"];
        if header.len() < 5 || header[..4] != fixed || header.last() != Some(&"seconds") {
            return Err(bad(
                1,
                "expected epoch,lr,train_loss,valid_loss,...,seconds",
            ));
        }
        let names = &header[4..header.len() - 1];
        let mut records = Vec::new();
        for (i, line) in lines.enumerate() {
            let line_no = i + 2;
            let fields: Vec<&str> = line.split(',').collect();
            if fields.len() != header.len() {
                return Err(bad(
                    line_no,
                    &format!("expected {} comma-separated fields", header.len()),
                ));
            }
            let num = |j: usize| -> Result<f64> {
                fields[j]
                    .parse()
                    .map_err(|_| bad(line_no, "a field is not a number"))
            };
            let mut metrics = Vec::new();
            for (j, name) in names.iter().enumerate() {
                if !fields[4 + j].is_empty() {
                    metrics.push((name.to_string(), num(4 + j)?));
                }
            }
            records.push(EpochRecord {
                epoch: fields[0].parse().map_err(|_| bad(line_no, "bad epoch"))?,
                lr: num(1)?,
                train_loss: num(2)?,
                valid_loss: num(3)?,
                seconds: num(fields.len() - 1)?,
                metrics,
            });
        }
        Ok(Self { records })
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
        super::plot::write_png(&self.to_svg(), path)
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
        let mut h = History::new();
        for epoch in 1..=3 {
            h.records.push(EpochRecord {
                epoch,
                lr: 1e-3,
                train_loss: 1.0 / epoch as f64,
                valid_loss: 1.2 / epoch as f64,
                seconds: 1.0,
                metrics: vec![("valid_accuracy".to_string(), 0.85)],
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
