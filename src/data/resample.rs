//! Pillow's antialiased bilinear resampling of 8-bit images, bit for bit: what torchvision's
//! `Resize` does to a PIL image, so a model sees the pixels it saw in PyTorch.
//!
//! Pillow (`libImaging/Resample.c`) resamples in two separable passes, horizontal then
//! vertical, each with a triangle filter widened by the shrink factor (so shrinking averages
//! every source pixel it covers), its weights normalized and then rounded to fixed point with
//! 22 fractional bits, and each pass's result rounded and clamped to 8 bits. The same
//! arithmetic here gives the same bytes.

use image::RgbImage;
use std::borrow::Cow;

/// Fractional bits of Pillow's fixed-point weights for 8-bit images (`32 - 8 - 2`).
const PRECISION_BITS: u32 = 22;

/// One output pixel's source window and its fixed-point weights.
struct Taps {
    first: usize,
    weights: Vec<i32>,
}

/// Pillow's `precompute_coeffs` with the bilinear filter and `normalize_coeffs_8bpc`.
fn taps(in_size: usize, out_size: usize) -> Vec<Taps> {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = filter_scale; // the bilinear filter's support is 1
    (0..out_size)
        .map(|x| {
            let center = (x as f64 + 0.5) * scale;
            let lo = ((center - support + 0.5) as i64).max(0) as usize;
            let hi = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let raw: Vec<f64> = (lo..hi)
                .map(|i| {
                    // Pillow multiplies by the reciprocal, which can round otherwise.
                    let t = ((i as f64 - center + 0.5) * (1.0 / filter_scale)).abs();
                    if t < 1.0 {
                        1.0 - t
                    } else {
                        0.0
                    }
                })
                .collect();
            let total: f64 = raw.iter().sum();
            let weights = raw
                .iter()
                .map(|&w| {
                    let w = if total != 0.0 { w / total } else { w };
                    let fixed = w * f64::from(1u32 << PRECISION_BITS);
                    // C's truncating cast after adding or subtracting one half.
                    if w < 0.0 {
                        (fixed - 0.5) as i32
                    } else {
                        (fixed + 0.5) as i32
                    }
                })
                .collect();
            Taps { first: lo, weights }
        })
        .collect()
}

/// Pillow's `clip8`: a fixed-point sum back to a byte.
fn clip8(sum: i64) -> u8 {
    (sum >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resamples `src` (`width x height`, three bytes a pixel) to `out_width x out_height` as
/// Pillow's `Image.resize(size, Image.BILINEAR)` does, antialiasing when it shrinks.
///
/// # Shapes
/// `(H, W) RGB -> (out_height, out_width) RGB`.
///
/// ```
/// let image = image::RgbImage::from_fn(4, 2, |x, _| image::Rgb([x as u8 * 60, 0, 255]));
/// let half = shapesafe::data::resize_bilinear(&image, 2, 1);
/// assert_eq!(half.dimensions(), (2, 1));
/// // Pillow: Image.frombytes(...).resize((2, 1), Image.BILINEAR) gives the same bytes.
/// assert_eq!(half.get_pixel(0, 0).0[2], 255);
/// ```
pub fn resize_bilinear(src: &RgbImage, out_width: u32, out_height: u32) -> RgbImage {
    let (w, h) = (src.width() as usize, src.height() as usize);
    let (ow, oh) = (out_width as usize, out_height as usize);
    if (w, h) == (ow, oh) {
        return src.clone();
    }
    if w == 0 || h == 0 || ow == 0 || oh == 0 {
        return RgbImage::new(out_width, out_height);
    }
    let vertical = taps(h, oh);
    // Pillow's horizontal pass only computes the rows the vertical pass reads.
    let (row0, row1) = if oh != h {
        let last = &vertical[oh - 1];
        (vertical[0].first, last.first + last.weights.len())
    } else {
        (0, h)
    };
    let pixels = src.as_raw();
    // The vertical pass reads the source rows themselves when the width stays.
    let (middle, middle_width): (Cow<[u8]>, usize) = if ow != w {
        let horizontal = taps(w, ow);
        let mut rows = vec![0u8; (row1 - row0) * ow * 3];
        for y in row0..row1 {
            for (x, tap) in horizontal.iter().enumerate() {
                for c in 0..3 {
                    let mut sum = 1i64 << (PRECISION_BITS - 1);
                    for (k, &weight) in tap.weights.iter().enumerate() {
                        let v = pixels[(y * w + tap.first + k) * 3 + c];
                        sum += i64::from(v) * i64::from(weight);
                    }
                    rows[((y - row0) * ow + x) * 3 + c] = clip8(sum);
                }
            }
        }
        (Cow::Owned(rows), ow)
    } else {
        (Cow::Borrowed(&pixels[row0 * w * 3..row1 * w * 3]), w)
    };
    if oh == h {
        return RgbImage::from_raw(out_width, out_height, middle.into_owned())
            .expect("the buffer has the output's size");
    }
    let mut out = vec![0u8; oh * middle_width * 3];
    for (y, tap) in vertical.iter().enumerate() {
        for x in 0..middle_width {
            for c in 0..3 {
                let mut sum = 1i64 << (PRECISION_BITS - 1);
                for (k, &weight) in tap.weights.iter().enumerate() {
                    let v = middle[((tap.first - row0 + k) * middle_width + x) * 3 + c];
                    sum += i64::from(v) * i64::from(weight);
                }
                out[(y * middle_width + x) * 3 + c] = clip8(sum);
            }
        }
    }
    RgbImage::from_raw(out_width, out_height, out).expect("the buffer has the output's size")
}
