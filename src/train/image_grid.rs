//! A labelled grid of greyscale images (digits, reconstructions, samples) as SVG and PNG.

use crate::error::{Error, Result};
use std::fmt::Write;
use std::path::Path;

/// Width of the row-label column, in drawn pixels, when a row has a label.
const LABEL_WIDTH: usize = 132;
/// Space around the grid and between images, in drawn pixels.
const MARGIN: usize = 8;
const GAP: usize = 4;

/// One row of a grid: a label and its images.
#[derive(Clone, Debug, PartialEq)]
pub struct GridRow {
    /// Text at the left of the row, e.g. `"test digits"`.
    pub label: String,
    /// Row-major images of the grid's `height * width` values each.
    pub images: Vec<Vec<f32>>,
}

/// Rows of greyscale images, each row labelled: `0` draws black and `1` white (MNIST's
/// convention), values in between are grey and values outside `[0, 1]` are clamped.
///
/// The SVG draws every image pixel as a square of `scale` pixels and needs no fonts but
/// for the labels; the PNG is that SVG rendered by resvg (labels are left out where the
/// system has no font).
///
/// # Shapes
/// Not a layer: every image is `height x width` values, row-major.
///
/// ```
/// use shapesafe::train::ImageGrid;
/// let mut grid = ImageGrid::new(2, 2);
/// grid.push_row("inputs", vec![vec![0.0, 1.0, 1.0, 0.0], vec![0.5; 4]])?;
/// grid.push_row("outputs", vec![vec![0.1, 0.9, 0.8, 0.0]])?;
/// let svg = grid.to_svg();
/// assert!(svg.starts_with("<svg") && svg.contains("inputs"));
/// assert!(grid.push_row("bad", vec![vec![0.0; 3]]).is_err());
/// # Ok::<(), shapesafe::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ImageGrid {
    /// Image height in image pixels.
    pub height: usize,
    /// Image width in image pixels.
    pub width: usize,
    /// Drawn pixels per image pixel (3 by default).
    pub scale: usize,
    /// The rows, top to bottom.
    pub rows: Vec<GridRow>,
}

impl ImageGrid {
    /// An empty grid of `height x width` images, drawn at 3x.
    ///
    /// ```
    /// let grid = shapesafe::train::ImageGrid::new(28, 28);
    /// assert!(grid.rows.is_empty());
    /// ```
    pub fn new(height: usize, width: usize) -> Self {
        Self {
            height,
            width,
            scale: 3,
            rows: Vec::new(),
        }
    }

    /// Appends a row of images under `label`.
    ///
    /// # Errors
    /// [`Error::Usage`] if an image does not hold `height * width` values; the grid is
    /// then unchanged.
    ///
    /// ```
    /// let mut grid = shapesafe::train::ImageGrid::new(1, 3);
    /// grid.push_row("a", vec![vec![0.0, 0.5, 1.0]])?;
    /// assert_eq!(grid.rows[0].images.len(), 1);
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn push_row(
        &mut self,
        label: impl Into<String>,
        images: impl IntoIterator<Item = Vec<f32>>,
    ) -> Result<&mut Self> {
        let label = label.into();
        let images: Vec<Vec<f32>> = images.into_iter().collect();
        let wanted = self.height * self.width;
        if let Some((i, image)) = images.iter().enumerate().find(|(_, im)| im.len() != wanted) {
            return Err(Error::Usage(format!(
                "image {i} of row {label:?} holds {} values, but the grid's images are {}x{} = {wanted}",
                image.len(),
                self.height,
                self.width
            )));
        }
        self.rows.push(GridRow { label, images });
        Ok(self)
    }

    /// The drawing's `(width, height)` in pixels; the label column takes no room when
    /// every label is empty.
    ///
    /// ```
    /// let mut grid = shapesafe::train::ImageGrid::new(28, 28);
    /// grid.push_row("", vec![vec![0.0; 784]; 2])?;
    /// assert_eq!(grid.size(), (8 + 2 * 84 + 4 + 8, 8 + 84 + 8));
    /// grid.push_row("a", vec![vec![0.0; 784]; 2])?;
    /// assert_eq!(grid.size(), (132 + 8 + 2 * 84 + 4 + 8, 8 + 2 * 84 + 4 + 8));
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn size(&self) -> (usize, usize) {
        let columns = self.rows.iter().map(|r| r.images.len()).max().unwrap_or(0);
        let (cell_w, cell_h) = (self.width * self.scale, self.height * self.scale);
        let width =
            self.label_width() + 2 * MARGIN + columns * cell_w + columns.saturating_sub(1) * GAP;
        let height =
            2 * MARGIN + self.rows.len() * cell_h + self.rows.len().saturating_sub(1) * GAP;
        (width, height)
    }

    /// The label column's width: none when no row has a label.
    fn label_width(&self) -> usize {
        if self.rows.iter().all(|r| r.label.is_empty()) {
            0
        } else {
            LABEL_WIDTH
        }
    }

    /// The grid as an SVG document.
    ///
    /// ```
    /// let mut grid = shapesafe::train::ImageGrid::new(1, 2);
    /// grid.push_row("row", vec![vec![0.0, 1.0]])?;
    /// assert!(grid.to_svg().contains(r#"fill="rgb(255,255,255)""#));
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn to_svg(&self) -> String {
        let (width, height) = self.size();
        let (cell_w, cell_h) = (self.width * self.scale, self.height * self.scale);
        let mut out = String::new();
        let _ = writeln!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="13" shape-rendering="crispEdges">"#
        );
        let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let label_width = self.label_width();
        for (r, row) in self.rows.iter().enumerate() {
            let top = MARGIN + r * (cell_h + GAP);
            let _ = writeln!(
                out,
                r#"<text x="{MARGIN}" y="{}" dominant-baseline="middle">{}</text>"#,
                top + cell_h / 2,
                escape(&row.label)
            );
            for (c, image) in row.images.iter().enumerate() {
                let left = MARGIN + label_width + c * (cell_w + GAP);
                let _ = writeln!(
                    out,
                    r#"<rect x="{left}" y="{top}" width="{cell_w}" height="{cell_h}" fill="black"/>"#
                );
                for (i, &value) in image.iter().enumerate() {
                    let level = grey(value);
                    // The background is already black; most digit pixels are.
                    if level == 0 {
                        continue;
                    }
                    let (y, x) = (i / self.width, i % self.width);
                    let _ = writeln!(
                        out,
                        r#"<rect x="{}" y="{}" width="{s}" height="{s}" fill="rgb({level},{level},{level})"/>"#,
                        left + x * self.scale,
                        top + y * self.scale,
                        s = self.scale
                    );
                }
            }
        }
        out.push_str("</svg>\n");
        out
    }

    /// Writes [`Self::to_svg`] to `path`.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be written.
    ///
    /// ```
    /// let mut grid = shapesafe::train::ImageGrid::new(1, 1);
    /// grid.push_row("x", vec![vec![1.0]])?;
    /// let path = std::env::temp_dir().join(format!("grid-doc-{}.svg", std::process::id()));
    /// grid.write_svg(&path)?;
    /// std::fs::remove_file(&path).unwrap();
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn write_svg(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, self.to_svg()).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Renders the grid to PNG bytes; the row labels need a system font and are left
    /// out without one.
    ///
    /// # Errors
    /// [`Error::Io`] (with no file named) if rendering or encoding fails.
    ///
    /// ```
    /// let mut grid = shapesafe::train::ImageGrid::new(2, 2);
    /// grid.push_row("x", vec![vec![1.0, 0.0, 0.0, 1.0]])?;
    /// assert_eq!(&grid.to_png()?[..4], b"\x89PNG");
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn to_png(&self) -> Result<Vec<u8>> {
        let fail = |why: String| Error::Io {
            path: "<image grid>".into(),
            source: std::io::Error::other(why),
        };
        let mut options = resvg::usvg::Options::default();
        let fonts = options.fontdb_mut();
        fonts.load_system_fonts();
        // "sans-serif" maps to Arial in fontdb: use a sans face this system has, if any.
        let family = fonts
            .faces()
            .flat_map(|face| face.families.iter().map(|(name, _)| name.clone()))
            .find(|f| f.contains("Sans") && !f.contains("Mono"));
        if let Some(family) = family {
            fonts.set_sans_serif_family(family);
        }
        let tree = resvg::usvg::Tree::from_str(&self.to_svg(), &options)
            .map_err(|e| fail(format!("the grid does not parse as SVG: {e}")))?;
        let size = tree.size().to_int_size();
        let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height())
            .ok_or_else(|| fail("the grid has no pixels".to_string()))?;
        resvg::render(
            &tree,
            resvg::tiny_skia::Transform::default(),
            &mut pixmap.as_mut(),
        );
        pixmap
            .encode_png()
            .map_err(|e| fail(format!("PNG encoding failed: {e}")))
    }

    /// Writes [`Self::to_png`] to `path`.
    ///
    /// # Errors
    /// As [`Self::to_png`], and [`Error::Io`] if the file cannot be written.
    ///
    /// ```
    /// let mut grid = shapesafe::train::ImageGrid::new(1, 1);
    /// grid.push_row("x", vec![vec![0.5]])?;
    /// let path = std::env::temp_dir().join(format!("grid-doc-{}.png", std::process::id()));
    /// grid.write_png(&path)?;
    /// std::fs::remove_file(&path).unwrap();
    /// # Ok::<(), shapesafe::Error>(())
    /// ```
    pub fn write_png(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let png = self.to_png()?;
        std::fs::write(path, png).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// `value` in `[0, 1]` as a grey level 0..=255; NaN is black.
fn grey(value: f32) -> u8 {
    if value.is_nan() {
        0
    } else {
        (value.clamp(0.0, 1.0) * 255.0).round() as u8
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_pixels_are_the_image_values() {
        let mut grid = ImageGrid::new(2, 2);
        grid.scale = 5;
        grid.push_row("row", vec![vec![0.0, 1.0, 0.5, 2.0]])
            .unwrap();
        let png = grid.to_png().unwrap();
        let pixmap = resvg::tiny_skia::Pixmap::decode_png(&png).unwrap();
        let at = |image_y: usize, image_x: usize| {
            let x = (MARGIN + LABEL_WIDTH + image_x * 5 + 2) as u32;
            let y = (MARGIN + image_y * 5 + 2) as u32;
            pixmap.pixel(x, y).unwrap().red()
        };
        assert_eq!([at(0, 0), at(0, 1), at(1, 0), at(1, 1)], [0, 255, 128, 255]);
        // Outside the images the page is white.
        assert_eq!(pixmap.pixel(1, 1).unwrap().red(), 255);
    }

    #[test]
    fn unlabelled_rows_start_at_the_margin() {
        let mut grid = ImageGrid::new(1, 1);
        grid.scale = 5;
        grid.push_row("", vec![vec![0.0]]).unwrap();
        let pixmap = resvg::tiny_skia::Pixmap::decode_png(&grid.to_png().unwrap()).unwrap();
        assert_eq!(pixmap.width() as usize, 2 * MARGIN + 5);
        // The black image, right after the margin, where a label column would be white.
        let x = (MARGIN + 2) as u32;
        assert_eq!(pixmap.pixel(x, x).unwrap().red(), 0);
        assert_eq!(pixmap.pixel(1, 1).unwrap().red(), 255);
    }

    #[test]
    fn grey_levels_clamp() {
        assert_eq!(
            [grey(-1.0), grey(0.0), grey(1.0), grey(7.0), grey(f32::NAN)],
            [0, 0, 255, 255, 0]
        );
    }
}
