//! A small SVG line-chart writer for training curves (it needs no fonts or system libraries),
//! and the SVG-to-PNG rendering every picture of the crate goes through.

use crate::{Error, Result};
use std::fmt::Write;
use std::path::Path;

/// One line of a chart.
#[derive(Clone, Debug)]
pub struct Series<'a> {
    /// Legend text.
    pub label: &'a str,
    /// An SVG colour, e.g. `#1f77b4`.
    pub color: &'a str,
    /// `(x, y)` points in drawing order; non-finite points are skipped.
    pub points: Vec<(f64, f64)>,
}

/// A chart panel: title, axis labels and lines.
#[derive(Clone, Debug)]
pub struct Panel<'a> {
    /// Title above the plot.
    pub title: &'a str,
    /// Label under the x axis.
    pub x_label: &'a str,
    /// Label beside the y axis.
    pub y_label: &'a str,
    /// The lines.
    pub series: Vec<Series<'a>>,
}

const PANEL_W: f64 = 480.0;
const PANEL_H: f64 = 340.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 36.0;
const BOTTOM: f64 = 48.0;

/// Panels side by side in one SVG document.
///
/// # Shapes
/// Not a layer: `panels.len()` charts of 480x340 pixels each.
///
/// ```
/// use shapesafe::train::plot::{svg, Panel, Series};
/// let doc = svg(&[Panel {
///     title: "loss",
///     x_label: "epoch",
///     y_label: "loss",
///     series: vec![Series { label: "train", color: "#1f77b4", points: vec![(1.0, 0.5), (2.0, 0.3)] }],
/// }]);
/// assert!(doc.starts_with("<svg") && doc.contains("<polyline"));
/// ```
pub fn svg(panels: &[Panel<'_>]) -> String {
    let width = PANEL_W * panels.len().max(1) as f64;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{PANEL_H}" viewBox="0 0 {width} {PANEL_H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    for (i, panel) in panels.iter().enumerate() {
        draw_panel(&mut out, panel, i as f64 * PANEL_W);
    }
    out.push_str("</svg>\n");
    out
}

/// Round tick positions covering `[lo, hi]`: steps of 1, 2 or 5 times a power of ten.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(f64::EPSILON);
    let raw = span / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(magnitude * 10.0);
    let first = (lo / step).ceil() * step;
    (0..=((hi - first) / step).floor() as usize)
        .map(|i| first + i as f64 * step)
        .collect()
}

/// `s` with the characters SVG text cannot hold as they are escaped.
pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn draw_panel(out: &mut String, panel: &Panel<'_>, x0: f64) {
    let finite = |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite();
    let points: Vec<(f64, f64)> = panel
        .series
        .iter()
        .flat_map(|s| s.points.iter().copied().filter(finite))
        .collect();
    let (mut xlo, mut xhi, mut ylo, mut yhi) = points.iter().fold(
        (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ),
        |(a, b, c, d), &(x, y)| (a.min(x), b.max(x), c.min(y), d.max(y)),
    );
    if points.is_empty() {
        (xlo, xhi, ylo, yhi) = (0.0, 1.0, 0.0, 1.0);
    }
    if xhi - xlo < 1e-12 {
        xhi = xlo + 1.0;
    }
    let pad = ((yhi - ylo) * 0.05).max(1e-6);
    (ylo, yhi) = (ylo - pad, yhi + pad);
    let (pw, ph) = (PANEL_W - LEFT - RIGHT, PANEL_H - TOP - BOTTOM);
    let sx = |x: f64| x0 + LEFT + (x - xlo) / (xhi - xlo) * pw;
    let sy = |y: f64| TOP + (1.0 - (y - ylo) / (yhi - ylo)) * ph;

    let _ = writeln!(
        out,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="14">{}</text>"#,
        x0 + LEFT + pw / 2.0,
        escape(panel.title)
    );
    let _ = writeln!(
        out,
        r##"<rect x="{}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>"##,
        x0 + LEFT
    );
    for t in ticks(ylo, yhi) {
        let y = sy(t);
        let _ = writeln!(
            out,
            r##"<line x1="{}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            x0 + LEFT,
            x0 + LEFT + pw,
            x0 + LEFT - 6.0,
            y + 4.0,
            trim(t)
        );
    }
    // Epochs are whole numbers: a tick at 1.5 would name an epoch that does not exist.
    let whole_x = points.iter().all(|&(x, _)| x.fract() == 0.0);
    for t in ticks(xlo, xhi)
        .into_iter()
        .filter(|t| !whole_x || t.fract() == 0.0)
    {
        let x = sx(t);
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{}" stroke="#444"/><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"##,
            TOP + ph,
            TOP + ph + 5.0,
            TOP + ph + 18.0,
            trim(t)
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        x0 + LEFT + pw / 2.0,
        PANEL_H - 10.0,
        escape(panel.x_label)
    );
    let _ = writeln!(
        out,
        r#"<text transform="translate({},{}) rotate(-90)" text-anchor="middle">{}</text>"#,
        x0 + 16.0,
        TOP + ph / 2.0,
        escape(panel.y_label)
    );
    for s in &panel.series {
        let pts: Vec<String> = s
            .points
            .iter()
            .filter(|p| finite(p))
            .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
            .collect();
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>"#,
            s.color,
            pts.join(" ")
        );
        for p in &pts {
            let (x, y) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(
                out,
                r#"<circle cx="{x}" cy="{y}" r="3" fill="{}"/>"#,
                s.color
            );
        }
    }
    draw_legend(out, panel, x0, sy);
}

/// The legend, drawn last so no line crosses it: top right, or bottom right when the
/// lines end in the upper half (accuracy curves) and would run under it.
fn draw_legend(out: &mut String, panel: &Panel<'_>, x0: f64, sy: impl Fn(f64) -> f64) {
    let (pw, ph) = (PANEL_W - LEFT - RIGHT, PANEL_H - TOP - BOTTOM);
    let height = 8.0 + 16.0 * panel.series.len() as f64;
    let ends_high = panel
        .series
        .iter()
        .filter_map(|s| {
            s.points
                .iter()
                .rev()
                .find(|(x, y)| x.is_finite() && y.is_finite())
        })
        .any(|&(_, y)| sy(y) < TOP + ph / 2.0);
    let legend_x = x0 + LEFT + pw - 118.0;
    let legend_y = if ends_high {
        TOP + ph - height - 6.0
    } else {
        TOP + 6.0
    };
    let _ = writeln!(
        out,
        r##"<rect x="{legend_x}" y="{legend_y}" width="110" height="{height}" fill="white" fill-opacity="0.9" stroke="#bbb"/>"##
    );
    for (i, s) in panel.series.iter().enumerate() {
        let ly = legend_y + 12.0 + i as f64 * 16.0;
        let lx = legend_x + 8.0;
        let _ = writeln!(
            out,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
            lx + 20.0,
            s.color,
            lx + 26.0,
            ly + 4.0,
            escape(s.label)
        );
    }
}

/// A tick label without float noise: `0.30000000000000004` prints as `0.3`.
fn trim(v: f64) -> String {
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// Renders an SVG document to a PNG at `path` when the system has a font for its text;
/// returns whether it wrote the file (without fonts the SVG is the picture).
///
/// # Errors
/// [`Error::Io`] naming `path` if the SVG does not parse, has no pixels, or cannot be
/// written.
///
/// # Shapes
/// Not a layer: the PNG has the SVG's size in pixels.
///
/// ```
/// let doc = r#"<svg xmlns="http://www.w3.org/2000/svg" width="4" height="2"><rect width="4" height="2" fill="red"/></svg>"#;
/// let path = std::env::temp_dir().join(format!("shapesafe-doc-png-{}.png", std::process::id()));
/// if shapesafe::train::plot::write_png(doc, &path)? {
///     assert_eq!(&std::fs::read(&path).unwrap()[..4], b"\x89PNG");
///     std::fs::remove_file(&path).unwrap();
/// }
/// # Ok::<(), shapesafe::Error>(())
/// ```
pub fn write_png(svg: &str, path: impl AsRef<Path>) -> Result<bool> {
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
    let tree = resvg::usvg::Tree::from_str(svg, &options)
        .map_err(|e| fail(format!("the picture does not parse as SVG: {e}")))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(
            ticks(0.0, 1.0),
            vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
        );
        assert_eq!(ticks(1.0, 4.0).first(), Some(&1.0));
        assert_eq!(trim(0.30000000000000004), "0.3");
    }

    #[test]
    fn non_finite_points_are_skipped() {
        let doc = svg(&[Panel {
            title: "a<b",
            x_label: "x",
            y_label: "y",
            series: vec![Series {
                label: "s",
                color: "red",
                points: vec![(0.0, 1.0), (1.0, f64::NAN), (2.0, 2.0)],
            }],
        }]);
        assert!(doc.contains("a&lt;b"));
        assert_eq!(doc.matches("<circle").count(), 2);
        assert!(doc.contains(">s</text>"), "the legend names the series");
        assert!(
            !doc.contains(">0.5</text>"),
            "whole-number x values get whole-number ticks"
        );
        assert!(!doc.contains("NaN"));
    }
}
