//! `Heatmap`: a labelled matrix (attention weights, a confusion matrix) drawn as SVG or PNG.

use super::plot::{self, escape};
use crate::{Error, Result};
use std::fmt::Write;
use std::path::Path;

const CELL: f64 = 18.0;
const LABEL: f64 = 120.0;
const TITLE: f64 = 28.0;
const GAP: f64 = 24.0;

/// One labelled matrix, drawn from white (0) to dark blue (its largest value); several
/// stack into one picture with [`Heatmap::svg_of`].
///
/// PyTorch users draw attention maps with matplotlib's `imshow`; this needs no Python.
///
/// # Shapes
/// `values` holds `rows.len() x columns.len()` numbers, row by row.
///
/// ```
/// use shapesafe::train::Heatmap;
/// let map = Heatmap::new("attention", vec!["2".into(), "0".into()], vec!["J".into(), "a".into(), "n".into()],
///     vec![0.9, 0.05, 0.05, 0.1, 0.8, 0.1])?;
/// let svg = Heatmap::svg_of(&[map]);
/// assert_eq!(svg.matches("<rect").count(), 1 + 6); // background and the cells
/// assert!(Heatmap::new("bad", vec!["x".into()], vec!["y".into()], vec![]).is_err());
/// # Ok::<(), shapesafe::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Heatmap {
    title: String,
    rows: Vec<String>,
    columns: Vec<String>,
    values: Vec<f64>,
}

impl Heatmap {
    /// A heatmap titled `title` with a label per row and per column.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `values` does not hold `rows.len() * columns.len()` numbers.
    pub fn new(
        title: &str,
        rows: Vec<String>,
        columns: Vec<String>,
        values: Vec<f64>,
    ) -> Result<Self> {
        if values.len() != rows.len() * columns.len() {
            return Err(Error::ShapeMismatch {
                what: format!("the values of heatmap {title:?}"),
                expected: vec![rows.len(), columns.len()],
                found: vec![values.len()],
            });
        }
        Ok(Self {
            title: title.to_string(),
            rows,
            columns,
            values,
        })
    }

    fn height(&self) -> f64 {
        TITLE + LABEL / 3.0 + CELL * self.rows.len() as f64
    }

    /// `maps` one above the other, as one SVG document.
    pub fn svg_of(maps: &[Heatmap]) -> String {
        let width = maps
            .iter()
            .map(|m| LABEL / 2.0 + CELL * m.columns.len() as f64 + GAP)
            .fold(200.0, f64::max);
        let height: f64 = maps.iter().map(|m| m.height() + GAP).sum::<f64>() + GAP;
        let mut out = String::new();
        let _ = writeln!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">"#
        );
        let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let mut y = GAP;
        for map in maps {
            map.draw(&mut out, y);
            y += map.height() + GAP;
        }
        out.push_str("</svg>\n");
        out
    }

    fn draw(&self, out: &mut String, y0: f64) {
        let max = self
            .values
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max)
            .max(f64::MIN_POSITIVE);
        let x0 = LABEL / 2.0;
        let _ = writeln!(
            out,
            r#"<text x="{x0}" y="{}" font-size="13">{}</text>"#,
            y0 + 14.0,
            escape(&self.title)
        );
        let top = y0 + TITLE + LABEL / 3.0;
        for (c, label) in self.columns.iter().enumerate() {
            let x = x0 + CELL * (c as f64 + 0.5);
            let _ = writeln!(
                out,
                r#"<text x="{x}" y="{}" text-anchor="middle">{}</text>"#,
                top - 6.0,
                escape(label)
            );
        }
        for (r, label) in self.rows.iter().enumerate() {
            let y = top + CELL * r as f64;
            let _ = writeln!(
                out,
                r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
                x0 - 6.0,
                y + CELL * 0.7,
                escape(label)
            );
            for c in 0..self.columns.len() {
                let v = self.values[r * self.columns.len() + c];
                let t = if v.is_finite() {
                    (v / max).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                // White to #08306b (matplotlib's "Blues" end).
                let channel = |end: f64| (255.0 + (end - 255.0) * t).round() as u8;
                let _ = writeln!(
                    out,
                    r##"<rect x="{}" y="{y}" width="{CELL}" height="{CELL}" fill="#{:02x}{:02x}{:02x}"/>"##,
                    x0 + CELL * c as f64,
                    channel(8.0),
                    channel(48.0),
                    channel(107.0)
                );
            }
        }
    }

    /// Writes [`Heatmap::svg_of`]`(maps)` to `path`.
    ///
    /// # Errors
    /// [`Error::Io`] naming `path` if it cannot be written.
    pub fn write_svg(maps: &[Heatmap], path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, Self::svg_of(maps)).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Renders [`Heatmap::svg_of`]`(maps)` to a PNG at `path` where the system has a font;
    /// returns whether it wrote the file.
    ///
    /// # Errors
    /// As [`plot::write_png`].
    pub fn write_png(maps: &[Heatmap], path: impl AsRef<Path>) -> Result<bool> {
        plot::write_png(&Self::svg_of(maps), path)
    }
}
