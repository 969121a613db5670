//! CPU `conv2d` kernels (forward and backward): im2col + `gemm`, parallel over the batch.

use crate::kernels::gemm::{matmul, Mat, MatMut};
use crate::kernels::geometry::Conv2dGeometry;
use crate::kernels::simd::{self, vectorized};
use num_traits::Float;
use rayon::prelude::*;

/// Computes `out = conv2d(input, weight) + bias` with PyTorch semantics.
///
/// `input` is `(batch, in_channels, in_height, in_width)`, `weight` is
/// `(out_channels, in_channels / groups, kernel, kernel)`, `bias` is `(out_channels,)` and
/// `out` is `(batch, out_channels, out_height, out_width)`, all contiguous. `out` is fully
/// overwritten. Padding is with zeros.
///
/// # Panics
///
/// If a slice is shorter than the geometry requires.
pub fn conv2d_forward<E>(g: &Conv2dGeometry, input: &[E], weight: &[E], bias: &[E], out: &mut [E])
where
    E: Float + Send + Sync + 'static,
{
    let d = Dims::new(g);
    debug_assert_eq!(input.len(), g.batch * d.img_in);
    debug_assert_eq!(weight.len(), g.out_channels * d.kk);
    debug_assert_eq!(bias.len(), g.out_channels);
    debug_assert_eq!(out.len(), g.batch * d.img_out);
    if g.batch == 0 || d.img_out == 0 {
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

/// Backward pass of [`conv2d_forward`]: given `grad_out` (shaped like `out`), adds the
/// gradients of the loss to `grad_input`, `grad_weight` and `grad_bias`.
///
/// The gradients are accumulated (`+=`), never overwritten, so several uses of the same
/// tensor sum their contributions.
///
/// # Panics
///
/// If a slice is shorter than the geometry requires.
pub fn conv2d_backward<E>(
    g: &Conv2dGeometry,
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
    debug_assert_eq!(input.len(), g.batch * d.img_in);
    debug_assert_eq!(weight.len(), g.out_channels * d.kk);
    debug_assert_eq!(grad_out.len(), g.batch * d.img_out);
    debug_assert_eq!(grad_input.len(), g.batch * d.img_in);
    debug_assert_eq!(grad_weight.len(), g.out_channels * d.kk);
    debug_assert_eq!(grad_bias.len(), g.out_channels);
    if g.batch == 0 || d.img_out == 0 {
        return;
    }

    // The weight gradient is accumulated transposed, `(kk, og)` per group, because that
    // layout lets gemm read both of its factors without a slow transposing pack; it is
    // transposed back once at the end.
    let wlen = g.out_channels * d.kk;
    if batch_parallel(g.batch) {
        // Each task owns a run of images' grad_input; the weight and bias gradients are
        // shared by all images, so every task sums into private copies. The runs are a
        // fixed split of the batch (not rayon's work-stealing splits) and their partial
        // sums are added in order, so the result is the same bit for bit on every run.
        let per_chunk = g.batch.div_ceil(REDUCTION_CHUNKS);
        let partials: Vec<(Vec<E>, Vec<E>)> = grad_input
            .par_chunks_mut(d.img_in * per_chunk)
            .zip(input.par_chunks(d.img_in * per_chunk))
            .zip(grad_out.par_chunks(d.img_out * per_chunk))
            .map(|((gx_run, x_run), gy_run)| {
                let mut bufs = Buffers::default();
                let mut gw_t = vec![E::zero(); wlen];
                let mut gb = vec![E::zero(); g.out_channels];
                for ((gx, x), gy) in gx_run
                    .chunks_mut(d.img_in)
                    .zip(x_run.chunks(d.img_in))
                    .zip(gy_run.chunks(d.img_out))
                {
                    backward_image(
                        g, &d, x, weight, gy, gx, &mut gw_t, &mut gb, &mut bufs, false,
                    );
                }
                (gw_t, gb)
            })
            .collect();
        let mut parts = partials.into_iter();
        if let Some((mut gw_t, mut gb)) = parts.next() {
            for (gw2, gb2) in parts {
                add_assign(&mut gw_t, &gw2);
                add_assign(&mut gb, &gb2);
            }
            add_transposed(&d, g.groups, &gw_t, grad_weight);
            add_assign(grad_bias, &gb);
        }
    } else {
        let mut bufs = Buffers::default();
        let mut gw_t = vec![E::zero(); wlen];
        for ((gx, x), gy) in grad_input
            .chunks_mut(d.img_in)
            .zip(input.chunks(d.img_in))
            .zip(grad_out.chunks(d.img_out))
        {
            backward_image(
                g, &d, x, weight, gy, gx, &mut gw_t, grad_bias, &mut bufs, true,
            );
        }
        add_transposed(&d, g.groups, &gw_t, grad_weight);
    }
}

/// How many runs of images the batch-parallel backward splits the batch into: fixed,
/// so the order of the floating-point sums never depends on scheduling.
const REDUCTION_CHUNKS: usize = 8;

/// Whether to give each image its own rayon task (single-threaded gemm inside) rather than
/// walking the images in order with a multi-threaded gemm: one task per image only keeps
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
    /// Rows of the im2col matrix: `cg * kernel * kernel` (also a weight row's length).
    kk: usize,
    /// Output pixels per channel: the columns of the im2col matrix.
    spatial: usize,
    /// Input pixels per channel.
    in_plane: usize,
    /// Elements of one input image.
    img_in: usize,
    /// Elements of one output image.
    img_out: usize,
    /// Whether the im2col matrix of a group is exactly its slice of the input, so the copy
    /// can be skipped (1x1 kernel, unit stride, no padding).
    direct: bool,
}

impl Dims {
    fn new(g: &Conv2dGeometry) -> Self {
        let cg = g.in_channels / g.groups;
        let og = g.out_channels / g.groups;
        let spatial = g.out_height * g.out_width;
        let in_plane = g.in_height * g.in_width;
        Dims {
            cg,
            og,
            kk: cg * g.kernel * g.kernel,
            spatial,
            in_plane,
            img_in: g.in_channels * in_plane,
            img_out: g.out_channels * spatial,
            direct: g.kernel == 1 && g.stride == 1 && g.padding == 0,
        }
    }
}

/// Scratch matrices of the backward pass of one image, reused from image to image.
struct Buffers<E> {
    /// im2col matrix of the current group.
    cols: Vec<E>,
    /// Gradient of `cols`.
    grad_cols: Vec<E>,
    /// The current group's output gradient, transposed to `(spatial, og)`.
    grad_out_t: Vec<E>,
}

impl<E> Default for Buffers<E> {
    fn default() -> Self {
        Buffers {
            cols: Vec::new(),
            grad_cols: Vec::new(),
            grad_out_t: Vec::new(),
        }
    }
}

/// Forward pass of one image. `par` selects the multi-threaded gemm and im2col.
#[allow(clippy::too_many_arguments)]
fn forward_image<E>(
    g: &Conv2dGeometry,
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
        let y_g = &mut y[grp * d.og * d.spatial..][..d.og * d.spatial];
        // Starting from the bias lets the gemm add the product in place, saving a pass.
        for (row, &b) in y_g
            .chunks_exact_mut(d.spatial)
            .zip(&bias[grp * d.og..][..d.og])
        {
            row.fill(b);
        }
        let x_g = &x[grp * d.cg * d.in_plane..][..d.cg * d.in_plane];
        let rhs: &[E] = if d.direct {
            x_g
        } else {
            im2col(g, d, x_g, cols, par);
            cols
        };
        let w_g = &weight[grp * d.og * d.kk..][..d.og * d.kk];
        matmul(
            d.og,
            d.spatial,
            d.kk,
            MatMut::row_major(y_g, d.spatial),
            true,
            Mat::row_major(w_g, d.kk),
            Mat::row_major(rhs, d.spatial),
            par,
        );
    }
}

/// Backward pass of one image, adding into the given gradient buffers. `par` selects the
/// multi-threaded gemm, im2col and col2im.
///
/// `grad_weight_t` holds, for group `grp`, the `(kk, og)` row-major transpose of that
/// group's `(og, kk)` weight-gradient block, at the same offset `grp * og * kk`.
#[allow(clippy::too_many_arguments)]
fn backward_image<E>(
    g: &Conv2dGeometry,
    d: &Dims,
    x: &[E],
    weight: &[E],
    gy: &[E],
    gx: &mut [E],
    grad_weight_t: &mut [E],
    grad_bias: &mut [E],
    bufs: &mut Buffers<E>,
    par: bool,
) where
    E: Float + Send + Sync + 'static,
{
    for grp in 0..g.groups {
        let gy_g = &gy[grp * d.og * d.spatial..][..d.og * d.spatial];
        vectorized!({
            for (gb, row) in grad_bias[grp * d.og..][..d.og]
                .iter_mut()
                .zip(gy_g.chunks_exact(d.spatial))
            {
                *gb = *gb + simd::sum(row);
            }
        });

        let x_g = &x[grp * d.cg * d.in_plane..][..d.cg * d.in_plane];
        let cols_g: &[E] = if d.direct {
            x_g
        } else {
            im2col(g, d, x_g, &mut bufs.cols, par);
            &bufs.cols
        };

        // grad_weight_g (og x kk) += grad_out_g (og x spatial) * cols^T (spatial x kk),
        // computed into the column-major (transposed) block: gemm then streams an
        // og-contiguous left factor, whereas grad_out_g itself is spatial-contiguous and
        // would make gemm's packing transpose it, at a third of the speed.
        transpose(gy_g, d.og, d.spatial, &mut bufs.grad_out_t);
        matmul(
            d.og,
            d.kk,
            d.spatial,
            MatMut::col_major(&mut grad_weight_t[grp * d.og * d.kk..][..d.og * d.kk], d.og),
            true,
            Mat::col_major(&bufs.grad_out_t, d.og),
            Mat::col_major(cols_g, d.spatial),
            par,
        );

        // grad_cols (kk x spatial) = weight_g^T (kk x og) * grad_out_g (og x spatial)
        let w_g = &weight[grp * d.og * d.kk..][..d.og * d.kk];
        let gx_g = &mut gx[grp * d.cg * d.in_plane..][..d.cg * d.in_plane];
        let w_t = Mat::col_major(w_g, d.kk);
        let gy_m = Mat::row_major(gy_g, d.spatial);
        if d.direct {
            // The im2col matrix aliases the input, so its gradient is the input gradient.
            let dst = MatMut::row_major(gx_g, d.spatial);
            matmul(d.kk, d.spatial, d.og, dst, true, w_t, gy_m, par);
        } else {
            bufs.grad_cols.resize(d.kk * d.spatial, E::zero());
            let dst = MatMut::row_major(&mut bufs.grad_cols, d.spatial);
            matmul(d.kk, d.spatial, d.og, dst, false, w_t, gy_m, par);
            col2im(g, d, &bufs.grad_cols, gx_g, par);
        }
    }
}

/// `dst = src^T` for a row-major `rows x cols` `src`.
fn transpose<E: Float>(src: &[E], rows: usize, cols: usize, dst: &mut Vec<E>) {
    // Tiles keep both the reads and the strided writes within a few cache lines.
    const TILE: usize = 16;
    dst.resize(rows * cols, E::zero());
    for r0 in (0..rows).step_by(TILE) {
        for c0 in (0..cols).step_by(TILE) {
            for r in r0..(r0 + TILE).min(rows) {
                for c in c0..(c0 + TILE).min(cols) {
                    dst[c * rows + r] = src[r * cols + c];
                }
            }
        }
    }
}

/// Adds the per-group transposed weight gradient of [`backward_image`] to `grad_weight`.
fn add_transposed<E: Float>(d: &Dims, groups: usize, gw_t: &[E], grad_weight: &mut [E]) {
    let block = d.og * d.kk;
    for (dst, src) in grad_weight
        .chunks_exact_mut(block)
        .zip(gw_t.chunks_exact(block))
        .take(groups)
    {
        for (o, row) in dst.chunks_exact_mut(d.kk).enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                *v = *v + src[j * d.og + o];
            }
        }
    }
}

/// The outputs `o` in `0..out_len` whose tap `o * stride + offset - padding` lands inside
/// `0..in_len`, as a half-open range.
#[inline]
fn valid_range(
    offset: usize,
    padding: usize,
    stride: usize,
    in_len: usize,
    out_len: usize,
) -> (usize, usize) {
    let lo = padding.saturating_sub(offset).div_ceil(stride);
    let hi = (in_len + padding)
        .saturating_sub(offset)
        .div_ceil(stride)
        .min(out_len);
    (lo.min(hi), hi)
}

/// Fills `cols` with the im2col matrix of one group: row `(c, ki, kj)`, column `(oh, ow)`
/// holds the input pixel that tap `(ki, kj)` of output pixel `(oh, ow)` reads, or zero in
/// the padding.
fn im2col<E>(g: &Conv2dGeometry, d: &Dims, x_g: &[E], cols: &mut Vec<E>, par: bool)
where
    E: Float + Send + Sync,
{
    let rows_per_channel = g.kernel * g.kernel * d.spatial;
    cols.resize(d.kk * d.spatial, E::zero());
    if par {
        cols.par_chunks_mut(rows_per_channel)
            .zip(x_g.par_chunks(d.in_plane))
            .for_each(|(rows, plane)| vectorized!(im2col_channel(g, plane, rows)));
    } else {
        cols.chunks_mut(rows_per_channel)
            .zip(x_g.chunks(d.in_plane))
            .for_each(|(rows, plane)| vectorized!(im2col_channel(g, plane, rows)));
    }
}

/// The im2col rows of one input channel: `kernel * kernel` rows of `out_h * out_w`.
#[inline(always)]
fn im2col_channel<E: Float>(g: &Conv2dGeometry, plane: &[E], rows: &mut [E]) {
    let (k, s, p, dil) = (g.kernel, g.stride, g.padding, g.dilation);
    let (ow_n, spatial) = (g.out_width, g.out_height * g.out_width);
    for ki in 0..k {
        let (oh_lo, oh_hi) = valid_range(ki * dil, p, s, g.in_height, g.out_height);
        for kj in 0..k {
            let (ow_lo, ow_hi) = valid_range(kj * dil, p, s, g.in_width, ow_n);
            let row = &mut rows[(ki * k + kj) * spatial..][..spatial];
            row[..oh_lo * ow_n].fill(E::zero());
            row[oh_hi * ow_n..].fill(E::zero());
            if ow_lo == ow_hi {
                row[oh_lo * ow_n..oh_hi * ow_n].fill(E::zero());
                continue;
            }
            let iw_lo = ow_lo * s + kj * dil - p;
            for oh in oh_lo..oh_hi {
                let ih = oh * s + ki * dil - p;
                let src = &plane[ih * g.in_width + iw_lo..(ih + 1) * g.in_width];
                let dst = &mut row[oh * ow_n..][..ow_n];
                dst[..ow_lo].fill(E::zero());
                dst[ow_hi..].fill(E::zero());
                let dst = &mut dst[ow_lo..ow_hi];
                if s == 1 {
                    copy_row(dst, &src[..dst.len()]);
                } else {
                    for (o, &v) in dst.iter_mut().zip(src.iter().step_by(s)) {
                        *o = v;
                    }
                }
            }
        }
    }
}

/// `dst.copy_from_slice(src)` for the short rows of im2col (a few dozen elements), in
/// fixed-size blocks the compiler copies with vector moves: a call into `memcpy` per row
/// cost more than the copy (LeNet's first layer copies 700 rows of 28 per image).
#[inline(always)]
fn copy_row<E: Copy>(dst: &mut [E], src: &[E]) {
    const BLOCK: usize = 8;
    let n = dst.len().min(src.len());
    if n < BLOCK {
        for (d, &v) in dst.iter_mut().zip(src) {
            *d = v;
        }
        return;
    }
    let mut at = 0;
    while at + BLOCK <= n {
        copy_block::<E, BLOCK>(&mut dst[at..at + BLOCK], &src[at..at + BLOCK]);
        at += BLOCK;
    }
    if at < n {
        // The last block overlaps the one before: same values to the same places.
        copy_block::<E, BLOCK>(&mut dst[n - BLOCK..n], &src[n - BLOCK..n]);
    }
}

#[inline(always)]
fn copy_block<E: Copy, const N: usize>(dst: &mut [E], src: &[E]) {
    if let (Ok(d), Ok(s)) = (<&mut [E; N]>::try_from(dst), <&[E; N]>::try_from(src)) {
        *d = *s;
    }
}

/// Adds the gradient of one group's im2col matrix back onto the input pixels it was read
/// from (the adjoint of [`im2col`]).
fn col2im<E>(g: &Conv2dGeometry, d: &Dims, grad_cols: &[E], gx_g: &mut [E], par: bool)
where
    E: Float + Send + Sync,
{
    let rows_per_channel = g.kernel * g.kernel * d.spatial;
    if par {
        gx_g.par_chunks_mut(d.in_plane)
            .zip(grad_cols.par_chunks(rows_per_channel))
            .for_each(|(plane, rows)| vectorized!(col2im_channel(g, rows, plane)));
    } else {
        gx_g.chunks_mut(d.in_plane)
            .zip(grad_cols.chunks(rows_per_channel))
            .for_each(|(plane, rows)| vectorized!(col2im_channel(g, rows, plane)));
    }
}

/// The col2im of one input channel: adds its `kernel * kernel` rows onto `plane`.
#[inline(always)]
fn col2im_channel<E: Float>(g: &Conv2dGeometry, rows: &[E], plane: &mut [E]) {
    let (k, s, p, dil) = (g.kernel, g.stride, g.padding, g.dilation);
    let (ow_n, spatial) = (g.out_width, g.out_height * g.out_width);
    for ki in 0..k {
        let (oh_lo, oh_hi) = valid_range(ki * dil, p, s, g.in_height, g.out_height);
        for kj in 0..k {
            let (ow_lo, ow_hi) = valid_range(kj * dil, p, s, g.in_width, ow_n);
            if ow_lo == ow_hi {
                continue;
            }
            let row = &rows[(ki * k + kj) * spatial..][..spatial];
            let iw_lo = ow_lo * s + kj * dil - p;
            for oh in oh_lo..oh_hi {
                let ih = oh * s + ki * dil - p;
                let dst = &mut plane[ih * g.in_width + iw_lo..(ih + 1) * g.in_width];
                let src = &row[oh * ow_n + ow_lo..oh * ow_n + ow_hi];
                if s == 1 {
                    // A separate unit-stride loop: `step_by` keeps the compiler from
                    // vectorising, and stride 1 is nearly every convolution.
                    add_assign(&mut dst[..src.len()], src);
                } else {
                    for (o, &v) in dst.iter_mut().step_by(s).zip(src) {
                        *o = *o + v;
                    }
                }
            }
        }
    }
}

/// `acc += other`, elementwise.
#[inline(always)]
fn add_assign<E: Float>(acc: &mut [E], other: &[E]) {
    for (a, &b) in acc.iter_mut().zip(other) {
        *a = *a + b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::assert_close;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// Output side length, or `None` when the kernel does not fit.
    fn out_len(n: usize, k: usize, s: usize, p: usize, dil: usize) -> Option<usize> {
        let span = dil * (k - 1) + 1;
        (n + 2 * p >= span).then(|| (n + 2 * p - span) / s + 1)
    }

    /// `(batch, in_channels, out_channels, height, width, kernel, stride, padding, dilation, groups)`
    type Case = (
        usize,
        usize,
        usize,
        usize,
        usize,
        usize,
        usize,
        usize,
        usize,
        usize,
    );

    fn geometry(c: Case) -> Option<Conv2dGeometry> {
        let (batch, cin, cout, h, w, k, s, p, dil, groups) = c;
        Some(Conv2dGeometry {
            batch,
            in_channels: cin,
            out_channels: cout,
            in_height: h,
            in_width: w,
            out_height: out_len(h, k, s, p, dil)?,
            out_width: out_len(w, k, s, p, dil)?,
            kernel: k,
            stride: s,
            padding: p,
            dilation: dil,
            groups,
        })
    }

    fn random(rng: &mut StdRng, n: usize) -> Vec<f64> {
        (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect()
    }

    /// Visits every (output element, input element, weight element) triple that the
    /// convolution multiplies together, by direct loops over the definition.
    fn for_each_tap(g: &Conv2dGeometry, mut f: impl FnMut(usize, usize, usize)) {
        let cg = g.in_channels / g.groups;
        let og = g.out_channels / g.groups;
        for n in 0..g.batch {
            for o in 0..g.out_channels {
                let grp = o / og;
                for oh in 0..g.out_height {
                    for ow in 0..g.out_width {
                        let yi = ((n * g.out_channels + o) * g.out_height + oh) * g.out_width + ow;
                        for c in 0..cg {
                            let ci = grp * cg + c;
                            for ki in 0..g.kernel {
                                for kj in 0..g.kernel {
                                    let ih = (oh * g.stride + ki * g.dilation) as isize
                                        - g.padding as isize;
                                    let iw = (ow * g.stride + kj * g.dilation) as isize
                                        - g.padding as isize;
                                    if ih < 0
                                        || iw < 0
                                        || ih >= g.in_height as isize
                                        || iw >= g.in_width as isize
                                    {
                                        continue;
                                    }
                                    let xi = ((n * g.in_channels + ci) * g.in_height + ih as usize)
                                        * g.in_width
                                        + iw as usize;
                                    let wi = ((o * cg + c) * g.kernel + ki) * g.kernel + kj;
                                    f(yi, xi, wi);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    fn ref_forward(g: &Conv2dGeometry, x: &[f64], w: &[f64], b: &[f64]) -> Vec<f64> {
        let spatial = g.out_height * g.out_width;
        let mut y: Vec<f64> = (0..g.batch * g.out_channels * spatial)
            .map(|i| b[(i / spatial) % g.out_channels])
            .collect();
        for_each_tap(g, |yi, xi, wi| y[yi] += x[xi] * w[wi]);
        y
    }

    fn ref_backward(
        g: &Conv2dGeometry,
        x: &[f64],
        w: &[f64],
        gy: &[f64],
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let spatial = g.out_height * g.out_width;
        let mut gx = vec![0.0; x.len()];
        let mut gw = vec![0.0; w.len()];
        let mut gb = vec![0.0; g.out_channels];
        for (i, &v) in gy.iter().enumerate() {
            gb[(i / spatial) % g.out_channels] += v;
        }
        for_each_tap(g, |yi, xi, wi| {
            gx[xi] += gy[yi] * w[wi];
            gw[wi] += gy[yi] * x[xi];
        });
        (gx, gw, gb)
    }

    /// Both batch strategies must be exercised whatever the host's core count, so the
    /// tests run on a fixed two-thread pool: batch 1 takes the multi-threaded-gemm path,
    /// batches 3 and 5 the image-per-task path.
    fn in_pool(f: impl FnOnce() + Send) {
        rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .expect("building a two-thread rayon pool")
            .install(f);
    }

    /// Runs the fast kernels in `T` against the reference on one geometry.
    fn check_case<T>(g: &Conv2dGeometry, seed: u64, tol: f64)
    where
        T: Float + Send + Sync + 'static + Into<f64>,
    {
        let mut rng = StdRng::seed_from_u64(seed);
        let cg = g.in_channels / g.groups;
        let x = random(&mut rng, g.batch * g.in_channels * g.in_height * g.in_width);
        let w = random(&mut rng, g.out_channels * cg * g.kernel * g.kernel);
        let b = random(&mut rng, g.out_channels);
        let gy = random(
            &mut rng,
            g.batch * g.out_channels * g.out_height * g.out_width,
        );
        // Non-zero starting gradients check that the backward pass adds rather than writes.
        let gx0 = random(&mut rng, x.len());
        let gw0 = random(&mut rng, w.len());
        let gb0 = random(&mut rng, b.len());
        let cast = |v: &[f64]| -> Vec<T> {
            v.iter()
                .map(|&a| T::from(a).expect("f64 to float"))
                .collect()
        };
        // The reference sees exactly the rounded values the fast path sees.
        let back = |v: &[T]| -> Vec<f64> { v.iter().map(|&a| a.into()).collect() };
        let (xt, wt, bt, gyt) = (cast(&x), cast(&w), cast(&b), cast(&gy));
        let (x, w, b, gy) = (back(&xt), back(&wt), back(&bt), back(&gyt));

        let mut y = vec![T::nan(); gy.len()];
        conv2d_forward(g, &xt, &wt, &bt, &mut y);
        assert_close(&format!("{g:?} out"), &y, &ref_forward(g, &x, &w, &b), tol);

        let (mut gx, mut gw, mut gb) = (cast(&gx0), cast(&gw0), cast(&gb0));
        conv2d_backward(g, &xt, &wt, &gyt, &mut gx, &mut gw, &mut gb);
        let (rgx, rgw, rgb) = ref_backward(g, &x, &w, &gy);
        let plus = |a: &[T], b: &[f64]| -> Vec<f64> {
            a.iter().zip(b).map(|(&a, &b)| a.into() + b).collect()
        };
        let gx0 = cast(&gx0);
        let gw0 = cast(&gw0);
        let gb0 = cast(&gb0);
        assert_close(&format!("{g:?} grad_input"), &gx, &plus(&gx0, &rgx), tol);
        assert_close(&format!("{g:?} grad_weight"), &gw, &plus(&gw0, &rgw), tol);
        assert_close(&format!("{g:?} grad_bias"), &gb, &plus(&gb0, &rgb), tol);
    }

    /// Every valid geometry of the test grid, on a 7x9 input.
    fn grid() -> Vec<Conv2dGeometry> {
        let mut out = Vec::new();
        for k in [1, 2, 3, 5] {
            for s in [1, 2, 3] {
                for p in [0, 1, 2] {
                    for dil in [1, 2] {
                        for groups in [1, 2, 4] {
                            for batch in [1, 3, 5] {
                                let case = (batch, 4, 8, 7, 9, k, s, p, dil, groups);
                                out.extend(geometry(case));
                            }
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn grid_covers_skipped_and_direct_cases() {
        let all = grid();
        assert!(all.len() > 500, "only {} geometries", all.len());
        assert!(all
            .iter()
            .any(|g| g.kernel == 1 && g.stride == 1 && g.padding == 0));
        // kernel 5 with dilation 2 spans 9 > 7 + 2 * 0 rows, so some combinations are skipped.
        assert!(geometry((1, 4, 8, 7, 9, 5, 1, 0, 2, 1)).is_none());
    }

    #[test]
    fn matches_reference_f64() {
        in_pool(|| {
            for (i, g) in grid().iter().enumerate() {
                check_case::<f64>(g, i as u64, 1e-10);
            }
        });
    }

    #[test]
    fn matches_reference_f32() {
        in_pool(|| {
            for (i, g) in grid().iter().enumerate() {
                check_case::<f32>(g, 1000 + i as u64, 1e-4);
            }
        });
    }

    #[test]
    fn larger_channels_and_odd_sizes() {
        in_pool(|| {
            let cases = [
                (2, 6, 9, 11, 5, 3, 1, 1, 1, 3),
                (3, 16, 8, 13, 10, 3, 2, 1, 1, 1),
                (1, 8, 8, 6, 17, 1, 2, 0, 1, 4),
                (4, 12, 4, 5, 5, 1, 1, 0, 1, 2),
            ];
            for (i, &c) in cases.iter().enumerate() {
                let g = geometry(c).expect("valid case");
                check_case::<f64>(&g, 50 + i as u64, 1e-10);
                check_case::<f32>(&g, 60 + i as u64, 1e-4);
            }
        });
    }

    #[test]
    fn gradients_match_finite_differences() {
        in_pool(|| {
            let g = geometry((3, 4, 6, 7, 9, 3, 2, 1, 2, 2)).expect("valid case");
            let mut rng = StdRng::seed_from_u64(7);
            let x = random(&mut rng, g.batch * g.in_channels * g.in_height * g.in_width);
            let w = random(&mut rng, g.out_channels * 2 * 9);
            let b = random(&mut rng, g.out_channels);
            let r = random(
                &mut rng,
                g.batch * g.out_channels * g.out_height * g.out_width,
            );
            let loss = |x: &[f64], w: &[f64], b: &[f64]| -> f64 {
                let mut y = vec![0.0; r.len()];
                conv2d_forward(&g, x, w, b, &mut y);
                y.iter().zip(&r).map(|(a, b)| a * b).sum()
            };
            let eps = 1e-6;
            let numeric = |v: &[f64], at: &dyn Fn(&[f64]) -> f64| -> Vec<f64> {
                (0..v.len())
                    .map(|i| {
                        let (mut hi, mut lo) = (v.to_vec(), v.to_vec());
                        hi[i] += eps;
                        lo[i] -= eps;
                        (at(&hi) - at(&lo)) / (2.0 * eps)
                    })
                    .collect()
            };
            let (mut gx, mut gw, mut gb) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; 6]);
            conv2d_backward(&g, &x, &w, &r, &mut gx, &mut gw, &mut gb);
            // The loss is linear in each argument, so central differences are exact up to
            // rounding, about 1e-16 * |loss| / eps.
            let tol = 1e-7;
            assert_close("grad_input", &gx, &numeric(&x, &|v| loss(v, &w, &b)), tol);
            assert_close("grad_weight", &gw, &numeric(&w, &|v| loss(&x, v, &b)), tol);
            assert_close("grad_bias", &gb, &numeric(&b, &|v| loss(&x, &w, v)), tol);
        });
    }

    #[test]
    fn empty_batch_is_a_no_op() {
        let g = geometry((0, 2, 2, 4, 4, 3, 1, 1, 1, 1)).expect("valid case");
        let mut y: Vec<f32> = Vec::new();
        conv2d_forward(&g, &[], &[0.5; 18 * 2], &[1.0; 2], &mut y);
        let (mut gw, mut gb) = (vec![1.0f32; 36], vec![2.0f32; 2]);
        conv2d_backward(&g, &[], &[0.5; 36], &[], &mut [], &mut gw, &mut gb);
        assert!(gw.iter().all(|&v| v == 1.0) && gb.iter().all(|&v| v == 2.0));
    }
}
