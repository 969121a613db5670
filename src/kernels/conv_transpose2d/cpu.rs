//! CPU `conv_transpose2d` kernels (forward and backward): `gemm` + col2im / im2col,
//! parallel over the batch.
//!
//! A transposed convolution scatters: input pixel `(iy, ix)` adds `weight * x` to every
//! output pixel `(iy * stride + ky * dilation - padding, ix * stride + kx * dilation -
//! padding)`. Per image and group the forward pass is one matrix product
//! `cols = weight^T x` followed by a col2im that adds each column onto the output pixels
//! it reaches; the backward pass gathers the output gradient back with the matching
//! im2col and needs two products, one for the input and one for the weight gradient.

use super::ConvTranspose2dGeometry;
use crate::kernels::gemm::{matmul, Mat, MatMut};
use num_traits::Float;
use rayon::prelude::*;

/// Computes `out = conv_transpose2d(input, weight) + bias` with PyTorch semantics.
///
/// `input` is `(batch, in_channels, in_height, in_width)`, `weight` is
/// `(in_channels, out_channels / groups, kernel, kernel)`, `bias` is `(out_channels,)` and
/// `out` is `(batch, out_channels, out_height, out_width)`, all contiguous NCHW. `out` is
/// fully overwritten; contributions that land outside `out_height x out_width` (in the
/// padding) are dropped.
///
/// # Panics
///
/// If a slice's length differs from what the geometry requires, if `groups` is 0 or does
/// not divide both channel counts, or if `stride` is 0.
///
/// # Shapes
/// As above; the output size is whatever `g` says (the layers pass PyTorch's).
///
/// ```
/// use shapesafe::kernels::conv_transpose2d::{cpu, ConvTranspose2dGeometry};
/// let g = ConvTranspose2dGeometry {
///     batch: 1, in_channels: 1, out_channels: 1, in_height: 1, in_width: 2,
///     out_height: 2, out_width: 3, kernel: 2, stride: 1, padding: 0, dilation: 1, groups: 1,
/// };
/// let mut y = [0.0f32; 6];
/// cpu::conv_transpose2d_forward(&g, &[1.0, 2.0], &[1.0; 4], &[0.5], &mut y);
/// assert_eq!(y, [1.5, 3.5, 2.5, 1.5, 3.5, 2.5]);
/// ```
pub fn conv_transpose2d_forward<E>(
    g: &ConvTranspose2dGeometry,
    input: &[E],
    weight: &[E],
    bias: &[E],
    out: &mut [E],
) where
    E: Float + Send + Sync + 'static,
{
    let d = Dims::new(g);
    assert_eq!(
        input.len(),
        g.batch * d.img_in,
        "conv_transpose2d: input length"
    );
    assert_eq!(
        weight.len(),
        d.weight_len,
        "conv_transpose2d: weight length"
    );
    assert_eq!(bias.len(), g.out_channels, "conv_transpose2d: bias length");
    assert_eq!(
        out.len(),
        g.batch * d.img_out,
        "conv_transpose2d: output length"
    );
    if g.batch == 0 || d.img_out == 0 {
        return;
    }
    if d.img_in == 0 {
        // Nothing to scatter: every output pixel is its channel's bias.
        for (plane, &b) in out.chunks_exact_mut(d.out_plane).zip(bias.iter().cycle()) {
            plane.fill(b);
        }
        return;
    }
    if batch_parallel(g.batch) {
        out.par_chunks_mut(d.img_out)
            .zip(input.par_chunks(d.img_in))
            .for_each_init(Vec::new, |cols, (y, x)| {
                forward_image(g, &d, x, weight, bias, y, cols, false);
            });
    } else {
        let mut cols = Vec::new();
        for (y, x) in out.chunks_mut(d.img_out).zip(input.chunks(d.img_in)) {
            forward_image(g, &d, x, weight, bias, y, &mut cols, true);
        }
    }
}

/// Backward pass of [`conv_transpose2d_forward`]: given `grad_out` (shaped like `out`),
/// adds the gradients of the loss to `grad_input`, `grad_weight` and `grad_bias`.
///
/// Gradients are accumulated (`+=`), never overwritten, as dfdx sums the contributions of
/// every use of a tensor.
///
/// # Panics
///
/// As [`conv_transpose2d_forward`].
///
/// # Shapes
/// `grad_out` like `out`, each other gradient like its tensor.
///
/// ```
/// use shapesafe::kernels::conv_transpose2d::{cpu, ConvTranspose2dGeometry};
/// let g = ConvTranspose2dGeometry {
///     batch: 1, in_channels: 1, out_channels: 1, in_height: 1, in_width: 2,
///     out_height: 2, out_width: 3, kernel: 2, stride: 1, padding: 0, dilation: 1, groups: 1,
/// };
/// let (mut gx, mut gw, mut gb) = ([0.0f64; 2], [0.0; 4], [0.0; 1]);
/// cpu::conv_transpose2d_backward(&g, &[1.0, 2.0], &[1.0; 4], &[1.0; 6], &mut gx, &mut gw, &mut gb);
/// // Every input pixel reaches four outputs; every tap sees both inputs.
/// assert_eq!((gx, gw, gb), ([4.0; 2], [3.0; 4], [6.0]));
/// ```
pub fn conv_transpose2d_backward<E>(
    g: &ConvTranspose2dGeometry,
    input: &[E],
    weight: &[E],
    grad_out: &[E],
    grad_input: &mut [E],
    grad_weight: &mut [E],
    grad_bias: &mut [E],
) where
    E: Float + Send + Sync + 'static,
{
    let d = Dims::new(g);
    assert_eq!(
        input.len(),
        g.batch * d.img_in,
        "conv_transpose2d: input length"
    );
    assert_eq!(
        weight.len(),
        d.weight_len,
        "conv_transpose2d: weight length"
    );
    assert_eq!(
        grad_out.len(),
        g.batch * d.img_out,
        "conv_transpose2d: grad_out length"
    );
    assert_eq!(
        grad_input.len(),
        input.len(),
        "conv_transpose2d: grad_input length"
    );
    assert_eq!(
        grad_weight.len(),
        weight.len(),
        "conv_transpose2d: grad_weight length"
    );
    assert_eq!(
        grad_bias.len(),
        g.out_channels,
        "conv_transpose2d: grad_bias length"
    );
    if g.batch == 0 || d.img_in == 0 || d.img_out == 0 {
        // No input pixel reaches any output pixel: only the bias can have a gradient.
        if d.out_plane > 0 {
            for (plane, gb) in grad_out
                .chunks_exact(d.out_plane)
                .zip((0..g.out_channels).cycle())
            {
                grad_bias[gb] = plane.iter().fold(grad_bias[gb], |acc, &v| acc + v);
            }
        }
        return;
    }
    if batch_parallel(g.batch) {
        // The weight and bias gradients are shared by all images: each task sums a fixed
        // run of images into private buffers, added in order afterwards, so the result is
        // the same bit for bit whatever the scheduling.
        let per_chunk = g.batch.div_ceil(REDUCTION_CHUNKS);
        let partials: Vec<(Vec<E>, Vec<E>)> = grad_input
            .par_chunks_mut(d.img_in * per_chunk)
            .zip(input.par_chunks(d.img_in * per_chunk))
            .zip(grad_out.par_chunks(d.img_out * per_chunk))
            .map(|((gx_run, x_run), gy_run)| {
                let mut cols = Vec::new();
                let mut gw = vec![E::zero(); d.weight_len];
                let mut gb = vec![E::zero(); g.out_channels];
                for ((gx, x), gy) in gx_run
                    .chunks_mut(d.img_in)
                    .zip(x_run.chunks(d.img_in))
                    .zip(gy_run.chunks(d.img_out))
                {
                    backward_image(g, &d, x, weight, gy, gx, &mut gw, &mut gb, &mut cols, false);
                }
                (gw, gb)
            })
            .collect();
        for (gw, gb) in partials {
            add_assign(grad_weight, &gw);
            add_assign(grad_bias, &gb);
        }
    } else {
        let mut cols = Vec::new();
        for ((gx, x), gy) in grad_input
            .chunks_mut(d.img_in)
            .zip(input.chunks(d.img_in))
            .zip(grad_out.chunks(d.img_out))
        {
            backward_image(
                g,
                &d,
                x,
                weight,
                gy,
                gx,
                grad_weight,
                grad_bias,
                &mut cols,
                true,
            );
        }
    }
}

/// How many runs of images the batch-parallel backward splits the batch into: fixed, so
/// the order of the floating-point sums never depends on scheduling.
const REDUCTION_CHUNKS: usize = 8;

/// Whether each image gets its own rayon task (single-threaded gemm inside) rather than
/// the images running in order with a multi-threaded gemm: one task per image only keeps
/// every thread busy when there are at least as many images as threads.
fn batch_parallel(batch: usize) -> bool {
    batch > 1 && batch >= rayon::current_num_threads()
}

/// Sizes derived from the geometry that every per-image step needs.
struct Dims {
    /// Input channels per group.
    cg: usize,
    /// Output channels per group.
    og: usize,
    /// Rows of the column matrix: `og * kernel * kernel` (also a weight row's length).
    rows: usize,
    /// Input pixels per channel: the columns of the column matrix.
    in_plane: usize,
    /// Output pixels per channel.
    out_plane: usize,
    /// Elements of one input image.
    img_in: usize,
    /// Elements of one output image.
    img_out: usize,
    /// Elements of the weight.
    weight_len: usize,
    /// Whether the column matrix of a group is exactly its output block (1x1 kernel, unit
    /// stride, no padding, output as large as the input), so col2im and im2col are copies
    /// that can be skipped.
    direct: bool,
}

impl Dims {
    fn new(g: &ConvTranspose2dGeometry) -> Self {
        // The layers' compile-time checks rule these out; a hand-made geometry gets a
        // clear panic instead of a silently partial result.
        assert!(
            g.groups > 0
                && g.in_channels.is_multiple_of(g.groups)
                && g.out_channels.is_multiple_of(g.groups)
                && g.stride > 0,
            "conv_transpose2d: invalid geometry {g:?}"
        );
        let cg = g.in_channels / g.groups;
        let og = g.out_channels / g.groups;
        let rows = og * g.kernel * g.kernel;
        let in_plane = g.in_height * g.in_width;
        let out_plane = g.out_height * g.out_width;
        Dims {
            cg,
            og,
            rows,
            in_plane,
            out_plane,
            img_in: g.in_channels * in_plane,
            img_out: g.out_channels * out_plane,
            weight_len: g.in_channels * rows,
            direct: g.kernel == 1
                && g.stride == 1
                && g.padding == 0
                && g.out_height == g.in_height
                && g.out_width == g.in_width,
        }
    }
}

/// Forward pass of one image. `par` selects the multi-threaded gemm.
#[allow(clippy::too_many_arguments)]
fn forward_image<E>(
    g: &ConvTranspose2dGeometry,
    d: &Dims,
    x: &[E],
    weight: &[E],
    bias: &[E],
    y: &mut [E],
    cols: &mut Vec<E>,
    par: bool,
) where
    E: Float + Send + Sync + 'static,
{
    for grp in 0..g.groups {
        let y_g = &mut y[grp * d.og * d.out_plane..][..d.og * d.out_plane];
        for (plane, &b) in y_g
            .chunks_exact_mut(d.out_plane)
            .zip(&bias[grp * d.og..][..d.og])
        {
            plane.fill(b);
        }
        let x_g = &x[grp * d.cg * d.in_plane..][..d.cg * d.in_plane];
        // weight_g is (cg, rows) row-major; its transpose is the same memory read column-major.
        let w_t = Mat::col_major(&weight[grp * d.cg * d.rows..][..d.cg * d.rows], d.rows);
        let x_m = Mat::row_major(x_g, d.in_plane);
        if d.direct {
            // The column matrix is the output block itself: accumulate onto the bias.
            let dst = MatMut::row_major(y_g, d.in_plane);
            matmul(d.rows, d.in_plane, d.cg, dst, true, w_t, x_m, par);
        } else {
            cols.resize(d.rows * d.in_plane, E::zero());
            let dst = MatMut::row_major(cols, d.in_plane);
            matmul(d.rows, d.in_plane, d.cg, dst, false, w_t, x_m, par);
            let per_channel = g.kernel * g.kernel * d.in_plane;
            for (plane, rows) in y_g
                .chunks_exact_mut(d.out_plane)
                .zip(cols.chunks_exact(per_channel))
            {
                col2im_channel(g, rows, plane);
            }
        }
    }
}

/// Backward pass of one image, adding into the given gradients. `par` selects the
/// multi-threaded gemm.
#[allow(clippy::too_many_arguments)]
fn backward_image<E>(
    g: &ConvTranspose2dGeometry,
    d: &Dims,
    x: &[E],
    weight: &[E],
    gy: &[E],
    gx: &mut [E],
    grad_weight: &mut [E],
    grad_bias: &mut [E],
    cols: &mut Vec<E>,
    par: bool,
) where
    E: Float + Send + Sync + 'static,
{
    for (gb, plane) in grad_bias.iter_mut().zip(gy.chunks_exact(d.out_plane)) {
        *gb = plane.iter().fold(*gb, |acc, &v| acc + v);
    }
    for grp in 0..g.groups {
        let gy_g = &gy[grp * d.og * d.out_plane..][..d.og * d.out_plane];
        // The column matrix of the output gradient: row (o, ky, kx), column (iy, ix) holds
        // the gradient of the output pixel that input pixel (iy, ix) reaches through tap
        // (ky, kx), or zero where that pixel lies in the padding.
        let gcols: &[E] = if d.direct {
            gy_g
        } else {
            cols.resize(d.rows * d.in_plane, E::zero());
            let per_channel = g.kernel * g.kernel * d.in_plane;
            for (plane, rows) in gy_g
                .chunks_exact(d.out_plane)
                .zip(cols.chunks_exact_mut(per_channel))
            {
                im2col_channel(g, plane, rows);
            }
            cols
        };
        let w_g = &weight[grp * d.cg * d.rows..][..d.cg * d.rows];
        let gcols_m = Mat::row_major(gcols, d.in_plane);

        // grad_x_g (cg x in_plane) += weight_g (cg x rows) * gcols (rows x in_plane)
        let gx_g = &mut gx[grp * d.cg * d.in_plane..][..d.cg * d.in_plane];
        let dst = MatMut::row_major(gx_g, d.in_plane);
        let w_m = Mat::row_major(w_g, d.rows);
        matmul(d.cg, d.in_plane, d.rows, dst, true, w_m, gcols_m, par);

        // grad_weight_g (cg x rows) += x_g (cg x in_plane) * gcols^T (in_plane x rows)
        let x_g = &x[grp * d.cg * d.in_plane..][..d.cg * d.in_plane];
        let gw_g = &mut grad_weight[grp * d.cg * d.rows..][..d.cg * d.rows];
        let dst = MatMut::row_major(gw_g, d.rows);
        let gcols_t = Mat::col_major(gcols, d.in_plane);
        let x_m = Mat::row_major(x_g, d.in_plane);
        matmul(d.cg, d.rows, d.in_plane, dst, true, x_m, gcols_t, par);
    }
}

/// The input positions `i` in `0..source_len` whose tap lands on an output position
/// `i * stride + offset - padding` inside `0..target_len`, as a half-open range.
fn reached(
    offset: usize,
    padding: usize,
    stride: usize,
    target_len: usize,
    source_len: usize,
) -> (usize, usize) {
    let lo = padding.saturating_sub(offset).div_ceil(stride);
    let hi = (target_len + padding)
        .saturating_sub(offset)
        .div_ceil(stride)
        .min(source_len);
    (lo.min(hi), hi)
}

/// Adds one output channel's `kernel * kernel` column rows onto its output `plane`.
fn col2im_channel<E: Float>(g: &ConvTranspose2dGeometry, rows: &[E], plane: &mut [E]) {
    let (k, s, p, dil) = (g.kernel, g.stride, g.padding, g.dilation);
    let (in_w, in_plane, out_w) = (g.in_width, g.in_height * g.in_width, g.out_width);
    for ky in 0..k {
        let (iy_lo, iy_hi) = reached(ky * dil, p, s, g.out_height, g.in_height);
        for kx in 0..k {
            let (ix_lo, ix_hi) = reached(kx * dil, p, s, out_w, in_w);
            if ix_lo == ix_hi {
                continue;
            }
            let row = &rows[(ky * k + kx) * in_plane..][..in_plane];
            let ox_lo = ix_lo * s + kx * dil - p;
            for iy in iy_lo..iy_hi {
                let oy = iy * s + ky * dil - p;
                let dst = &mut plane[oy * out_w + ox_lo..(oy + 1) * out_w];
                let src = &row[iy * in_w + ix_lo..iy * in_w + ix_hi];
                for (o, &v) in dst.iter_mut().step_by(s).zip(src) {
                    *o = *o + v;
                }
            }
        }
    }
}

/// The adjoint of [`col2im_channel`]: fills one output channel's `kernel * kernel`
/// column rows from `plane`, zero where a tap lands in the padding.
fn im2col_channel<E: Float>(g: &ConvTranspose2dGeometry, plane: &[E], rows: &mut [E]) {
    let (k, s, p, dil) = (g.kernel, g.stride, g.padding, g.dilation);
    let (in_w, in_plane, out_w) = (g.in_width, g.in_height * g.in_width, g.out_width);
    for ky in 0..k {
        let (iy_lo, iy_hi) = reached(ky * dil, p, s, g.out_height, g.in_height);
        for kx in 0..k {
            let (ix_lo, ix_hi) = reached(kx * dil, p, s, out_w, in_w);
            let row = &mut rows[(ky * k + kx) * in_plane..][..in_plane];
            row.fill(E::zero());
            if ix_lo == ix_hi {
                continue;
            }
            let ox_lo = ix_lo * s + kx * dil - p;
            for iy in iy_lo..iy_hi {
                let oy = iy * s + ky * dil - p;
                let src = &plane[oy * out_w + ox_lo..(oy + 1) * out_w];
                let dst = &mut row[iy * in_w + ix_lo..iy * in_w + ix_hi];
                for (o, &v) in dst.iter_mut().zip(src.iter().step_by(s)) {
                    *o = v;
                }
            }
        }
    }
}

/// `acc += other`, elementwise.
fn add_assign<E: Float>(acc: &mut [E], other: &[E]) {
    for (a, &b) in acc.iter_mut().zip(other) {
        *a = *a + b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both batch strategies, whatever the host's core count: a two-thread pool makes
    /// batch 1 take the multi-threaded-gemm path and batch 3 the image-per-task path.
    fn in_pool(f: impl FnOnce() + Send) {
        rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .expect("building a two-thread rayon pool")
            .install(f);
    }

    /// Transposed convolution by its scatter definition.
    fn reference(g: &ConvTranspose2dGeometry, x: &[f64], w: &[f64], b: &[f64]) -> Vec<f64> {
        let (cg, og) = (g.in_channels / g.groups, g.out_channels / g.groups);
        let (oh, ow) = (g.out_height, g.out_width);
        let mut y: Vec<f64> = (0..g.batch * g.out_channels * oh * ow)
            .map(|i| b[(i / (oh * ow)) % g.out_channels])
            .collect();
        for n in 0..g.batch {
            for c in 0..g.in_channels {
                let grp = c / cg;
                for iy in 0..g.in_height {
                    for ix in 0..g.in_width {
                        let v = x[((n * g.in_channels + c) * g.in_height + iy) * g.in_width + ix];
                        for o in 0..og {
                            for ky in 0..g.kernel {
                                for kx in 0..g.kernel {
                                    let oy = (iy * g.stride + ky * g.dilation) as isize
                                        - g.padding as isize;
                                    let ox = (ix * g.stride + kx * g.dilation) as isize
                                        - g.padding as isize;
                                    if oy < 0 || ox < 0 || oy >= oh as isize || ox >= ow as isize {
                                        continue;
                                    }
                                    let oc = grp * og + o;
                                    let yi = ((n * g.out_channels + oc) * oh + oy as usize) * ow
                                        + ox as usize;
                                    let wi = ((c * og + o) * g.kernel + ky) * g.kernel + kx;
                                    y[yi] += v * w[wi];
                                }
                            }
                        }
                    }
                }
            }
        }
        y
    }

    /// A deterministic pseudo-random vector in [-1, 1).
    fn values(n: usize, seed: u64) -> Vec<f64> {
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn forward_and_backward_match_the_definition() {
        in_pool(|| {
            // (batch, in, out, h, w, kernel, stride, padding, output_padding, dilation, groups)
            let cases = [
                (1, 2, 3, 3, 4, 3, 2, 1, 1, 1, 1),
                (3, 4, 2, 2, 3, 2, 3, 0, 2, 1, 2),
                (3, 2, 2, 4, 4, 1, 1, 0, 0, 1, 1),
                (1, 2, 4, 3, 3, 3, 1, 2, 1, 2, 2),
                (2, 3, 3, 1, 1, 3, 1, 0, 0, 1, 3),
            ];
            for (i, &(batch, cin, cout, h, w, k, s, p, op, dil, groups)) in cases.iter().enumerate()
            {
                let size = |n: usize| (n - 1) * s + dil * (k - 1) + op + 1 - 2 * p;
                let g = ConvTranspose2dGeometry {
                    batch,
                    in_channels: cin,
                    out_channels: cout,
                    in_height: h,
                    in_width: w,
                    out_height: size(h),
                    out_width: size(w),
                    kernel: k,
                    stride: s,
                    padding: p,
                    dilation: dil,
                    groups,
                };
                let x = values(batch * cin * h * w, 10 * i as u64);
                let wt = values(cin * cout / groups * k * k, 10 * i as u64 + 1);
                let b = values(cout, 10 * i as u64 + 2);
                let mut y = vec![f64::NAN; batch * cout * g.out_height * g.out_width];
                conv_transpose2d_forward(&g, &x, &wt, &b, &mut y);
                let expected = reference(&g, &x, &wt, &b);
                crate::test_util::assert_close(&format!("{g:?}"), &y, &expected, 1e-12);

                // The loss sum(y * r) is linear, so its gradient is exact by linearity:
                // d/dx_j = sum(reference(e_j) * r) with zero bias.
                let r = values(y.len(), 10 * i as u64 + 3);
                let (mut gx, mut gw, mut gb) =
                    (vec![0.0; x.len()], vec![0.0; wt.len()], vec![0.0; cout]);
                conv_transpose2d_backward(&g, &x, &wt, &r, &mut gx, &mut gw, &mut gb);
                let zero_b = vec![0.0; cout];
                let dot = |v: &[f64]| v.iter().zip(&r).map(|(a, b)| a * b).sum::<f64>();
                let unit = |n: usize, j: usize| {
                    let mut e = vec![0.0; n];
                    e[j] = 1.0;
                    e
                };
                let ex: Vec<f64> = (0..x.len())
                    .map(|j| dot(&reference(&g, &unit(x.len(), j), &wt, &zero_b)))
                    .collect();
                let ew: Vec<f64> = (0..wt.len())
                    .map(|j| dot(&reference(&g, &x, &unit(wt.len(), j), &zero_b)))
                    .collect();
                let eb: Vec<f64> = (0..cout)
                    .map(|j| dot(&reference(&g, &vec![0.0; x.len()], &wt, &unit(cout, j))))
                    .collect();
                crate::test_util::assert_close(&format!("gx {g:?}"), &gx, &ex, 1e-12);
                crate::test_util::assert_close(&format!("gw {g:?}"), &gw, &ew, 1e-12);
                crate::test_util::assert_close(&format!("gb {g:?}"), &gb, &eb, 1e-12);
            }
        });
    }
}
