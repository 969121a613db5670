//! CPU `max_pool2d` and `avg_pool2d` kernels (forward and backward), parallel over planes.

use crate::kernels::geometry::Pool2dGeometry;
use crate::kernels::scratch;
use crate::kernels::simd::vectorized;
use num_traits::Float;
use rayon::prelude::*;

/// Computes the maximum over each window with PyTorch semantics.
///
/// `input` is `(batch, channels, in_height, in_width)` and `out` is
/// `(batch, channels, out_height, out_width)`, both contiguous. Padded positions never
/// win. `argmax[i]` is set to the flat index into `input` of the element chosen for
/// `out[i]`: the first maximum in row-major window order, or the first NaN if the window
/// holds one. `out` and `argmax` are fully overwritten.
///
/// # Panics
///
/// If a slice is shorter than the geometry requires.
pub fn max_pool2d_forward<E>(g: &Pool2dGeometry, input: &[E], out: &mut [E], argmax: &mut [u32])
where
    E: Float + Default + Send + Sync + 'static,
{
    let (in_plane, out_plane) = planes(g);
    debug_assert_eq!(input.len(), g.batch * g.channels * in_plane);
    debug_assert_eq!(out.len(), g.batch * g.channels * out_plane);
    debug_assert_eq!(argmax.len(), out.len());
    debug_assert!(
        u32::try_from(input.len()).is_ok(),
        "max_pool2d: input too large for u32 indices"
    );
    if out_plane == 0 {
        return;
    }
    let col_windows = col_windows(g);
    out.par_chunks_mut(out_plane)
        .zip(argmax.par_chunks_mut(out_plane))
        .zip(input.par_chunks(in_plane))
        .enumerate()
        .with_min_len(min_planes_per_task(g, out_plane))
        .for_each(|(plane, ((out, argmax), input))| {
            max_plane(g, &col_windows, input, out, argmax, plane * in_plane);
        });
}

/// Backward pass of [`max_pool2d_forward`]: `grad_input[argmax[i]] += grad_out[i]`.
///
/// `argmax` must come from the forward pass on the same geometry, so each output's
/// winner lies in the same `(image, channel)` plane.
///
/// # Panics
///
/// If a slice is shorter than the geometry requires, or an `argmax` entry lies outside its
/// plane.
pub fn max_pool2d_backward<E>(
    g: &Pool2dGeometry,
    argmax: &[u32],
    grad_out: &[E],
    grad_input: &mut [E],
) where
    E: Float + Send + Sync + 'static,
{
    let (in_plane, out_plane) = planes(g);
    debug_assert_eq!(grad_input.len(), g.batch * g.channels * in_plane);
    debug_assert_eq!(grad_out.len(), g.batch * g.channels * out_plane);
    debug_assert_eq!(argmax.len(), grad_out.len());
    if out_plane == 0 || in_plane == 0 {
        return;
    }
    // Winners never leave their plane, so planes are independent and need no locking.
    grad_input
        .par_chunks_mut(in_plane)
        .zip(grad_out.par_chunks(out_plane))
        .zip(argmax.par_chunks(out_plane))
        .enumerate()
        .with_min_len(min_planes_per_task(g, out_plane))
        .for_each(|(plane, ((gx, gy), idx))| {
            let base = plane * in_plane;
            for (&i, &v) in idx.iter().zip(gy) {
                let local = (i as usize)
                    .checked_sub(base)
                    .expect("max_pool2d: argmax outside its plane");
                gx[local] = gx[local] + v;
            }
        });
}

/// Computes the mean over each window with PyTorch `AvgPool2d` semantics
/// (`count_include_pad = true`, `ceil_mode = false`): padded positions count as zeros and
/// the divisor is always `kernel * kernel`. `out` is fully overwritten.
///
/// # Panics
///
/// If a slice is shorter than the geometry requires.
pub fn avg_pool2d_forward<E>(g: &Pool2dGeometry, input: &[E], out: &mut [E])
where
    E: Float + Send + Sync + 'static,
{
    let (in_plane, out_plane) = planes(g);
    debug_assert_eq!(input.len(), g.batch * g.channels * in_plane);
    debug_assert_eq!(out.len(), g.batch * g.channels * out_plane);
    if out_plane == 0 {
        return;
    }
    let scale = window_scale::<E>(g);
    let col_windows = col_windows(g);
    // The window sum is separable: summing the window's rows first is a contiguous,
    // vectorisable pass, leaving only `kernel` taps per output for the short horizontal sum.
    out.par_chunks_mut(out_plane)
        .zip(input.par_chunks(in_plane))
        .with_min_len(min_planes_per_task(g, out_plane))
        .for_each_init(
            || vec![E::zero(); g.in_width],
            |row_sum, (out, input)| {
                for (oh, out_row) in out.chunks_exact_mut(g.out_width).enumerate() {
                    let (h0, h1) = window(oh, g, g.in_height);
                    row_sum.fill(E::zero());
                    for in_row in input.chunks_exact(g.in_width).take(h1).skip(h0) {
                        for (acc, &v) in row_sum.iter_mut().zip(in_row) {
                            *acc = *acc + v;
                        }
                    }
                    for (o, &(w0, w1)) in out_row.iter_mut().zip(&col_windows) {
                        *o = row_sum[w0..w1].iter().fold(E::zero(), |a, &v| a + v) * scale;
                    }
                }
            },
        );
}

/// Backward pass of [`avg_pool2d_forward`]: spreads each output gradient evenly (divided
/// by `kernel * kernel`) over the unpadded positions of its window, adding into
/// `grad_input`.
///
/// # Panics
///
/// If a slice is shorter than the geometry requires.
pub fn avg_pool2d_backward<E>(g: &Pool2dGeometry, grad_out: &[E], grad_input: &mut [E])
where
    E: Float + Send + Sync + 'static,
{
    let (in_plane, out_plane) = planes(g);
    debug_assert_eq!(grad_input.len(), g.batch * g.channels * in_plane);
    debug_assert_eq!(grad_out.len(), g.batch * g.channels * out_plane);
    if out_plane == 0 || in_plane == 0 {
        return;
    }
    let scale = window_scale::<E>(g);
    let col_windows = col_windows(g);
    // The adjoint of the forward's separable sum: spread each output row horizontally into
    // one input-width row, then add that row to every input row of the window.
    grad_input
        .par_chunks_mut(in_plane)
        .zip(grad_out.par_chunks(out_plane))
        .with_min_len(min_planes_per_task(g, out_plane))
        .for_each_init(
            || vec![E::zero(); g.in_width],
            |spread, (gx, gy)| {
                for (oh, gy_row) in gy.chunks_exact(g.out_width).enumerate() {
                    let (h0, h1) = window(oh, g, g.in_height);
                    spread.fill(E::zero());
                    for (&v, &(w0, w1)) in gy_row.iter().zip(&col_windows) {
                        let v = v * scale;
                        for acc in &mut spread[w0..w1] {
                            *acc = *acc + v;
                        }
                    }
                    for gx_row in gx.chunks_exact_mut(g.in_width).take(h1).skip(h0) {
                        for (o, &v) in gx_row.iter_mut().zip(spread.iter()) {
                            *o = *o + v;
                        }
                    }
                }
            },
        );
}

/// The unpadded input columns of every output column's window.
fn col_windows(g: &Pool2dGeometry) -> Vec<(usize, usize)> {
    (0..g.out_width)
        .map(|ow| window(ow, g, g.in_width))
        .collect()
}

/// Elements per input plane and per output plane.
fn planes(g: &Pool2dGeometry) -> (usize, usize) {
    (g.in_height * g.in_width, g.out_height * g.out_width)
}

/// `1 / (kernel * kernel)`.
fn window_scale<E: Float>(g: &Pool2dGeometry) -> E {
    let area = E::from(g.kernel * g.kernel).unwrap_or_else(E::one);
    E::one() / area
}

/// Planes per rayon task: small planes are grouped so that each task does enough work
/// (roughly 16k window taps) to amortise the scheduling cost.
fn min_planes_per_task(g: &Pool2dGeometry, out_plane: usize) -> usize {
    (16 * 1024 / (out_plane * g.kernel * g.kernel).max(1)).max(1)
}

/// The unpadded input positions `lo..hi` along one axis of the window of output `o`.
#[inline]
fn window(o: usize, g: &Pool2dGeometry, in_len: usize) -> (usize, usize) {
    let start = o * g.stride;
    let lo = start.saturating_sub(g.padding).min(in_len);
    let hi = (start + g.kernel).saturating_sub(g.padding).min(in_len);
    (lo, hi.max(lo))
}

/// Max pool of one plane; `base` is the plane's offset in the whole input, for `argmax`.
fn max_plane<E: Float + Default + 'static>(
    g: &Pool2dGeometry,
    col_windows: &[(usize, usize)],
    input: &[E],
    out: &mut [E],
    argmax: &mut [u32],
    base: usize,
) {
    // Ceil mode's partial last window (an odd side) takes the general path.
    let whole_windows = 2 * g.out_height <= g.in_height && 2 * g.out_width <= g.in_width;
    if g.kernel == 2 && g.stride == 2 && g.padding == 0 && whole_windows {
        return vectorized!(max_plane_2x2(g, input, out, argmax, base));
    }
    for oh in 0..g.out_height {
        let (h0, h1) = window(oh, g, g.in_height);
        for (ow, &(w0, w1)) in col_windows.iter().enumerate() {
            debug_assert!(h0 < h1 && w0 < w1, "max_pool2d: window entirely in padding");
            // Starting from the first tap makes a window of equal values, or of -inf,
            // report its first position.
            let first = h0 * g.in_width + w0;
            let mut best = input[first];
            let mut best_at = first;
            for ih in h0..h1 {
                let row_start = ih * g.in_width + w0;
                let row = &input[row_start..row_start + (w1 - w0)];
                for (j, &v) in row.iter().enumerate() {
                    // Strictly greater keeps the first of equal maxima; a NaN wins over any
                    // number (it propagates, as in PyTorch) but not over an earlier NaN.
                    if v > best || (v.is_nan() && !best.is_nan()) {
                        best = v;
                        best_at = row_start + j;
                    }
                }
            }
            let i = oh * g.out_width + ow;
            out[i] = best;
            // The input length was checked to fit u32 in debug builds; `as` only matters
            // for inputs over 4G elements, which the caller never creates.
            argmax[i] = (base + best_at) as u32;
        }
    }
}

/// [`max_plane`] for the common 2x2 window with stride 2 and no padding (LeNet's, VGG's).
///
/// With an even width every horizontal pair of the plane's rows is a pair of neighbours in
/// memory, so the first pass takes the maximum of each pair over the whole plane in one
/// long loop that vectorises however narrow the rows are (LeNet's are 14 and 5 windows
/// wide); the second takes the maximum of each vertical pair of those. Pair first, then
/// top over bottom on ties, is the row-major "first maximum" order of `max_plane`.
#[inline(always)]
fn max_plane_2x2<E: Float + Default + 'static>(
    g: &Pool2dGeometry,
    input: &[E],
    out: &mut [E],
    argmax: &mut [u32],
    base: usize,
) {
    let (w, ow_n) = (g.in_width, g.out_width);
    if w % 2 != 0 {
        return max_plane_2x2_rows(g, input, out, argmax, base);
    }
    let pairs = g.out_height * 2 * ow_n;
    let mut pair_max = scratch::take_for_overwrite::<E>(pairs);
    let mut pair_at = scratch::take_for_overwrite::<u32>(pairs);
    for ((m, at), pair) in pair_max
        .iter_mut()
        .zip(pair_at.iter_mut())
        .zip(input[..2 * pairs].chunks_exact(2))
    {
        let t = takes(pair[1], pair[0]);
        *m = if t { pair[1] } else { pair[0] };
        *at = u32::from(t);
    }
    let w_at = w as u32;
    for (oh, (out_row, arg_row)) in out
        .chunks_exact_mut(ow_n)
        .zip(argmax.chunks_exact_mut(ow_n))
        .enumerate()
        .take(g.out_height)
    {
        let (upper, lower) = pair_max[2 * oh * ow_n..][..2 * ow_n].split_at(ow_n);
        let (upper_at, lower_at) = pair_at[2 * oh * ow_n..][..2 * ow_n].split_at(ow_n);
        // See `max_plane_2x2_rows` on `as`.
        let row_at = (base + 2 * oh * w) as u32;
        for (ow, (((o, a), (&u, &l)), (&ua, &la))) in out_row
            .iter_mut()
            .zip(arg_row.iter_mut())
            .zip(upper.iter().zip(lower))
            .zip(upper_at.iter().zip(lower_at))
            .enumerate()
        {
            let t = takes(l, u);
            *o = if t { l } else { u };
            *a = row_at + 2 * ow as u32 + if t { w_at + la } else { ua };
        }
    }
    scratch::give(pair_max);
    scratch::give(pair_at);
}

/// [`max_plane_2x2`] for an odd width, row by row: four taps at known offsets, with no
/// window arithmetic per output.
#[inline(always)]
fn max_plane_2x2_rows<E: Float>(
    g: &Pool2dGeometry,
    input: &[E],
    out: &mut [E],
    argmax: &mut [u32],
    base: usize,
) {
    let w = g.in_width;
    let ow_n = g.out_width;
    for (oh, (out_row, arg_row)) in out
        .chunks_exact_mut(ow_n)
        .zip(argmax.chunks_exact_mut(ow_n))
        .enumerate()
        .take(g.out_height)
    {
        let top = 2 * oh * w;
        let upper = &input[top..][..2 * ow_n];
        let lower = &input[top + w..][..2 * ow_n];
        // The row's first tap as a u32; `as` only matters for inputs over 4G elements,
        // which the caller never creates (checked in debug builds).
        let row_at = (base + top) as u32;
        let (w_at, w1_at) = (w as u32, w as u32 + 1);
        // Selects, not branches: on real data the winner's position is random.
        for ow in 0..ow_n {
            let c = 2 * ow;
            let (mut best, mut at) = (upper[c], 0u32);
            for (v, offset) in [(upper[c + 1], 1), (lower[c], w_at), (lower[c + 1], w1_at)] {
                let t = takes(v, best);
                best = if t { v } else { best };
                at = if t { offset } else { at };
            }
            out_row[ow] = best;
            arg_row[ow] = row_at + c as u32 + at;
        }
    }
}

/// Whether tap `v` replaces the window's `best` so far, the rule of `max_plane`: strictly
/// greater keeps the first of equal maxima, and a NaN wins over a number but not over an
/// earlier NaN.
#[inline(always)]
fn takes<E: Float>(v: E, best: E) -> bool {
    (v > best) | (v.is_nan() & !best.is_nan())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::assert_close;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn geometry(
        batch: usize,
        channels: usize,
        h: usize,
        w: usize,
        k: usize,
        s: usize,
        p: usize,
    ) -> Option<Pool2dGeometry> {
        // PyTorch's own limits: padding at most half the window, window inside padded input.
        if 2 * p > k || h + 2 * p < k || w + 2 * p < k {
            return None;
        }
        Some(Pool2dGeometry {
            batch,
            channels,
            in_height: h,
            in_width: w,
            out_height: (h + 2 * p - k) / s + 1,
            out_width: (w + 2 * p - k) / s + 1,
            kernel: k,
            stride: s,
            padding: p,
        })
    }

    /// Calls `f(output index, input index)` for every unpadded window tap, in row-major
    /// window order, by direct loops over the definition.
    fn for_each_tap(g: &Pool2dGeometry, mut f: impl FnMut(usize, usize)) {
        for n in 0..g.batch {
            for c in 0..g.channels {
                let plane = n * g.channels + c;
                for oh in 0..g.out_height {
                    for ow in 0..g.out_width {
                        let yi = (plane * g.out_height + oh) * g.out_width + ow;
                        for ki in 0..g.kernel {
                            for kj in 0..g.kernel {
                                let ih = (oh * g.stride + ki) as isize - g.padding as isize;
                                let iw = (ow * g.stride + kj) as isize - g.padding as isize;
                                if ih < 0
                                    || iw < 0
                                    || ih >= g.in_height as isize
                                    || iw >= g.in_width as isize
                                {
                                    continue;
                                }
                                let xi =
                                    (plane * g.in_height + ih as usize) * g.in_width + iw as usize;
                                f(yi, xi);
                            }
                        }
                    }
                }
            }
        }
    }

    fn out_len(g: &Pool2dGeometry) -> usize {
        g.batch * g.channels * g.out_height * g.out_width
    }

    fn ref_max(g: &Pool2dGeometry, x: &[f64]) -> (Vec<f64>, Vec<usize>) {
        let mut best = vec![f64::NEG_INFINITY; out_len(g)];
        let mut at = vec![usize::MAX; out_len(g)];
        for_each_tap(g, |yi, xi| {
            if at[yi] == usize::MAX || x[xi] > best[yi] {
                best[yi] = x[xi];
                at[yi] = xi;
            }
        });
        (best, at)
    }

    fn ref_max_backward(g: &Pool2dGeometry, x: &[f64], gy: &[f64]) -> Vec<f64> {
        let (_, at) = ref_max(g, x);
        let mut gx = vec![0.0; x.len()];
        for (yi, &xi) in at.iter().enumerate() {
            gx[xi] += gy[yi];
        }
        gx
    }

    fn ref_avg(g: &Pool2dGeometry, x: &[f64]) -> Vec<f64> {
        let mut y = vec![0.0; out_len(g)];
        for_each_tap(g, |yi, xi| y[yi] += x[xi]);
        let area = (g.kernel * g.kernel) as f64;
        y.iter().map(|v| v / area).collect()
    }

    fn ref_avg_backward(g: &Pool2dGeometry, gy: &[f64]) -> Vec<f64> {
        let mut gx = vec![0.0; g.batch * g.channels * g.in_height * g.in_width];
        let area = (g.kernel * g.kernel) as f64;
        for_each_tap(g, |yi, xi| gx[xi] += gy[yi] / area);
        gx
    }

    /// Every valid geometry of the test grid, on a 7x9 input.
    fn grid() -> Vec<Pool2dGeometry> {
        let mut out = Vec::new();
        for k in [1, 2, 3, 5] {
            for s in [1, 2, 3] {
                for p in [0, 1, 2] {
                    for batch in [1, 3, 5] {
                        out.extend(geometry(batch, 3, 7, 9, k, s, p));
                    }
                }
            }
        }
        out
    }

    /// Runs all four fast kernels in `T` against the reference (only max pooling's two in
    /// ceil mode, `avg` false). With `ties`, inputs come from a handful of values so
    /// windows hold equal maxima.
    fn check_case<T>(g: &Pool2dGeometry, seed: u64, ties: bool, tol: f64)
    where
        T: Float + Default + Send + Sync + 'static + Into<f64>,
    {
        check_kernels::<T>(g, seed, ties, tol, true)
    }

    fn check_kernels<T>(g: &Pool2dGeometry, seed: u64, ties: bool, tol: f64, avg: bool)
    where
        T: Float + Default + Send + Sync + 'static + Into<f64>,
    {
        let mut rng = StdRng::seed_from_u64(seed);
        let n_in = g.batch * g.channels * g.in_height * g.in_width;
        let x: Vec<f64> = (0..n_in)
            .map(|_| {
                if ties {
                    f64::from(rng.gen_range(-2i32..=2))
                } else {
                    rng.gen_range(-1.0..1.0)
                }
            })
            .collect();
        let gy: Vec<f64> = (0..out_len(g)).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let gx0: Vec<f64> = (0..n_in).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let cast = |v: &[f64]| -> Vec<T> {
            v.iter()
                .map(|&a| T::from(a).expect("f64 to float"))
                .collect()
        };
        let back = |v: &[T]| -> Vec<f64> { v.iter().map(|&a| a.into()).collect() };
        let (xt, gyt, gx0t) = (cast(&x), cast(&gy), cast(&gx0));
        let (x, gy, gx0) = (back(&xt), back(&gyt), back(&gx0t));
        let plus =
            |a: &[f64], b: &[f64]| -> Vec<f64> { a.iter().zip(b).map(|(a, b)| a + b).collect() };

        let mut y = vec![T::nan(); out_len(g)];
        let mut idx = vec![u32::MAX; out_len(g)];
        max_pool2d_forward(g, &xt, &mut y, &mut idx);
        let (ry, rat) = ref_max(g, &x);
        assert_close(&format!("{g:?} max out"), &y, &ry, 0.0);
        let idx_usize: Vec<usize> = idx.iter().map(|&i| i as usize).collect();
        assert_eq!(idx_usize, rat, "{g:?} argmax");

        let mut gx = gx0t.clone();
        max_pool2d_backward(g, &idx, &gyt, &mut gx);
        let rgx = ref_max_backward(g, &x, &gy);
        assert_close(&format!("{g:?} max grad"), &gx, &plus(&gx0, &rgx), tol);
        if !avg {
            return;
        }

        let mut y = vec![T::nan(); out_len(g)];
        avg_pool2d_forward(g, &xt, &mut y);
        assert_close(&format!("{g:?} avg out"), &y, &ref_avg(g, &x), tol);

        let mut gx = gx0t;
        avg_pool2d_backward(g, &gyt, &mut gx);
        let rgx = ref_avg_backward(g, &gy);
        assert_close(&format!("{g:?} avg grad"), &gx, &plus(&gx0, &rgx), tol);
    }

    #[test]
    fn grid_is_populated() {
        let all = grid();
        assert!(all.len() > 50, "only {} geometries", all.len());
        // Padding over half the window is rejected, as in PyTorch.
        assert!(geometry(1, 1, 7, 9, 2, 1, 2).is_none());
    }

    #[test]
    fn matches_reference_f64() {
        for (i, g) in grid().iter().enumerate() {
            check_case::<f64>(g, i as u64, false, 1e-10);
            check_case::<f64>(g, 500 + i as u64, true, 1e-10);
        }
    }

    #[test]
    fn ceil_mode_max_matches_reference() {
        // Every grid geometry whose ceil-mode count differs, on odd and even sides, so
        // the 2x2 fast path's partial windows are covered too.
        let mut checked = 0;
        for (h, w) in [(7, 9), (6, 8), (7, 8)] {
            for k in [2, 3, 5] {
                for s in [2, 3] {
                    for p in [0, 1, 2] {
                        let Some(mut g) = geometry(2, 3, h, w, k, s, p) else {
                            continue;
                        };
                        g.out_height = crate::shape::pool_output(h, k, s, p, true);
                        g.out_width = crate::shape::pool_output(w, k, s, p, true);
                        checked += 1;
                        check_kernels::<f64>(&g, checked, false, 1e-10, false);
                        check_kernels::<f32>(&g, 100 + checked, true, 1e-4, false);
                    }
                }
            }
        }
        assert!(checked > 30, "only {checked} geometries");
    }

    #[test]
    fn matches_reference_f32() {
        for (i, g) in grid().iter().enumerate() {
            check_case::<f32>(g, 1000 + i as u64, false, 1e-4);
            check_case::<f32>(g, 1500 + i as u64, true, 1e-4);
        }
    }

    #[test]
    fn large_planes_and_many_channels() {
        // Enough work for several rayon tasks, so plane offsets in argmax are exercised
        // across task boundaries.
        for (i, g) in [
            geometry(3, 17, 33, 31, 2, 2, 0),
            geometry(2, 64, 16, 16, 3, 2, 1),
            geometry(5, 7, 40, 9, 5, 3, 2),
            // Rows of 35 windows: two blocks of the 2x2 path and a remainder.
            geometry(2, 5, 12, 70, 2, 2, 0),
            // An even width and an odd height: the last row is in no window.
            geometry(3, 4, 9, 12, 2, 2, 0),
        ]
        .iter()
        .flatten()
        .enumerate()
        {
            check_case::<f64>(g, 90 + i as u64, false, 1e-10);
            check_case::<f32>(g, 95 + i as u64, true, 1e-4);
        }
    }

    #[test]
    fn wide_rows_keep_the_first_maximum_and_nan() {
        // 40 windows in one row, through the 2x2 path's blocks and its remainder; window
        // `j` puts a tie, a NaN or a strict maximum at a position that depends on `j`.
        let g = geometry(1, 1, 2, 80, 2, 2, 0).expect("valid case");
        let mut x = vec![0.0f32; 160];
        for j in 0..40 {
            let taps = [2 * j, 2 * j + 1, 80 + 2 * j, 80 + 2 * j + 1];
            match j % 4 {
                0 => x[taps[j % 3 + 1]] = 5.0,
                1 => {
                    x[taps[1]] = f32::NAN;
                    x[taps[3]] = f32::NAN;
                }
                2 => x[taps[2]] = -1.0,
                _ => {
                    x[taps[0]] = 2.0;
                    x[taps[3]] = 2.0;
                }
            }
        }
        let (mut y, mut idx) = (vec![0.0f32; 40], vec![0u32; 40]);
        max_pool2d_forward(&g, &x, &mut y, &mut idx);
        for j in 0..40 {
            let taps = [2 * j, 2 * j + 1, 80 + 2 * j, 80 + 2 * j + 1];
            let (want, at) = match j % 4 {
                0 => (5.0, taps[j % 3 + 1]),
                1 => (f32::NAN, taps[1]),
                2 => (0.0, taps[0]),
                _ => (2.0, taps[0]),
            };
            assert_eq!(idx[j] as usize, at, "window {j}");
            assert!(
                y[j] == want || (want.is_nan() && y[j].is_nan()),
                "window {j}"
            );
        }
    }

    #[test]
    fn first_maximum_wins_and_nan_propagates() {
        let g = geometry(1, 1, 2, 4, 2, 2, 0).expect("valid case");
        let x = [1.0f32, 3.0, 3.0, f32::NAN, 3.0, 3.0, 2.0, 7.0];
        let (mut y, mut idx) = ([0.0f32; 2], [0u32; 2]);
        max_pool2d_forward(&g, &x, &mut y, &mut idx);
        assert_eq!(y[0], 3.0);
        assert_eq!(idx[0], 1);
        assert!(y[1].is_nan());
        assert_eq!(idx[1], 3);
    }

    #[test]
    fn gradients_match_finite_differences() {
        let g = geometry(2, 3, 7, 9, 3, 2, 1).expect("valid case");
        let mut rng = StdRng::seed_from_u64(3);
        let x: Vec<f64> = (0..2 * 3 * 63).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let r: Vec<f64> = (0..out_len(&g)).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let eps = 1e-6;
        let numeric = |loss: &dyn Fn(&[f64]) -> f64| -> Vec<f64> {
            (0..x.len())
                .map(|i| {
                    let (mut hi, mut lo) = (x.clone(), x.clone());
                    hi[i] += eps;
                    lo[i] -= eps;
                    (loss(&hi) - loss(&lo)) / (2.0 * eps)
                })
                .collect()
        };
        let dot = |y: &[f64]| -> f64 { y.iter().zip(&r).map(|(a, b)| a * b).sum() };
        let max_loss = |v: &[f64]| {
            let (mut y, mut idx) = (vec![0.0; r.len()], vec![0; r.len()]);
            max_pool2d_forward(&g, v, &mut y, &mut idx);
            dot(&y)
        };
        let avg_loss = |v: &[f64]| {
            let mut y = vec![0.0; r.len()];
            avg_pool2d_forward(&g, v, &mut y);
            dot(&y)
        };

        let (mut y, mut idx) = (vec![0.0; r.len()], vec![0; r.len()]);
        max_pool2d_forward(&g, &x, &mut y, &mut idx);
        let mut gx = vec![0.0; x.len()];
        max_pool2d_backward(&g, &idx, &r, &mut gx);
        // Random continuous inputs keep every window's winner well clear of eps, so the
        // loss is locally linear and central differences are exact up to rounding.
        assert_close("max grad_input", &gx, &numeric(&max_loss), 1e-7);

        let mut gx = vec![0.0; x.len()];
        avg_pool2d_backward(&g, &r, &mut gx);
        assert_close("avg grad_input", &gx, &numeric(&avg_loss), 1e-7);
    }
}
