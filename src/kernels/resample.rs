//! Separable linear resampling (upsampling, adaptive average pooling): the per-axis maps,
//! the device trait, its CPU kernel on dfdx's tape, and a composed matmul version.
//!
//! Every layer here computes, for each `(image, channel)` plane, `y = A_h · x · A_wᵀ` with
//! small constant matrices. The matrices are sparse (one tap for nearest, two for
//! bilinear, one window for adaptive pooling), so the CPU kernel walks the taps instead of
//! multiplying dense matrices: nearest 2x upsampling of a 112x112 plane would otherwise
//! cost ~100 multiply-adds per output instead of one.

use super::conv2d::composed::Dyn4;
use super::host_input;
use dfdx::prelude::*;
use rayon::prelude::*;

/// A linear map along one axis: output index `i` is the weighted sum of the input
/// indices in `taps(i)`.
///
/// # Shapes
/// `input_len() -> output_len()` along one axis; as a matrix `(output_len, input_len)`.
///
/// ```
/// use shapesafe::kernels::ResampleAxis;
/// let a = ResampleAxis::adaptive_average(5, 3);
/// assert_eq!(a.taps(1), &[(1, 1.0 / 3.0), (2, 1.0 / 3.0), (3, 1.0 / 3.0)]);
/// let n = ResampleAxis::nearest(2, 2);
/// assert_eq!(n.to_dense(), vec![1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0]);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ResampleAxis {
    input_len: usize,
    /// Output `i` reads `taps[starts[i]..starts[i + 1]]`.
    starts: Vec<usize>,
    taps: Vec<(usize, f64)>,
}

impl ResampleAxis {
    /// Builds the map from each output's taps, in output order.
    fn from_rows(input_len: usize, rows: impl IntoIterator<Item = Vec<(usize, f64)>>) -> Self {
        let mut starts = vec![0];
        let mut taps = Vec::new();
        for row in rows {
            debug_assert!(row.iter().all(|&(i, _)| i < input_len));
            taps.extend(row);
            starts.push(taps.len());
        }
        Self {
            input_len,
            starts,
            taps,
        }
    }

    /// Nearest-neighbour upsampling by an integer `scale`: output `i` copies input `i / scale`.
    ///
    /// PyTorch equivalent: `nn.Upsample(scale_factor=scale, mode="nearest")` along one axis,
    /// whose `floor(i * (1 / scale))` equals `i / scale` for integer scales. A `scale` of 0
    /// counts as 1 (the layers reject it at compile time).
    pub fn nearest(input_len: usize, scale: usize) -> Self {
        let scale = scale.max(1);
        Self::from_rows(
            input_len,
            (0..input_len * scale).map(|i| vec![(i / scale, 1.0)]),
        )
    }

    /// Linear interpolation upsampling by an integer `scale`.
    ///
    /// PyTorch equivalent: `nn.Upsample(scale_factor=scale, mode="bilinear",
    /// align_corners=align_corners)` along one axis. Without `align_corners`, output `i`
    /// samples the source coordinate `(i + 0.5) / scale - 0.5`, clamped below at 0; with it,
    /// `i * (input_len - 1) / (output_len - 1)`. The lower neighbour is the coordinate's
    /// integer part and the upper one is clamped to the last input, as PyTorch does. A
    /// `scale` of 0 counts as 1.
    pub fn linear(input_len: usize, scale: usize, align_corners: bool) -> Self {
        let output_len = input_len * scale.max(1);
        let ratio = if align_corners {
            if output_len > 1 {
                (input_len as f64 - 1.0) / (output_len as f64 - 1.0)
            } else {
                0.0
            }
        } else {
            1.0 / scale.max(1) as f64
        };
        Self::from_rows(
            input_len,
            (0..output_len).map(|i| {
                if output_len == input_len {
                    return vec![(i, 1.0)];
                }
                let source = if align_corners {
                    ratio * i as f64
                } else {
                    (ratio * (i as f64 + 0.5) - 0.5).max(0.0)
                };
                let lower = (source as usize).min(input_len - 1);
                let upper_weight = (source - lower as f64).clamp(0.0, 1.0);
                let upper = if lower + 1 < input_len {
                    lower + 1
                } else {
                    lower
                };
                vec![(lower, 1.0 - upper_weight), (upper, upper_weight)]
            }),
        )
    }

    /// Adaptive average pooling from `input_len` to `output_len`: output `i` is the mean of
    /// inputs `floor(i * input_len / output_len) .. ceil((i + 1) * input_len / output_len)`.
    ///
    /// PyTorch equivalent: `nn.AdaptiveAvgPool1d(output_len)`, one axis of `AdaptiveAvgPool2d`.
    pub fn adaptive_average(input_len: usize, output_len: usize) -> Self {
        Self::from_rows(
            input_len,
            (0..output_len).map(|i| {
                let start = i * input_len / output_len;
                let end = ((i + 1) * input_len).div_ceil(output_len);
                let weight = 1.0 / (end - start) as f64;
                (start..end).map(|k| (k, weight)).collect()
            }),
        )
    }

    /// Length of the axis before the map.
    pub fn input_len(&self) -> usize {
        self.input_len
    }

    /// Length of the axis after the map.
    pub fn output_len(&self) -> usize {
        self.starts.len() - 1
    }

    /// `(input index, weight)` pairs that output `i` sums.
    pub fn taps(&self, i: usize) -> &[(usize, f64)] {
        &self.taps[self.starts[i]..self.starts[i + 1]]
    }

    /// The map as a row-major `(output_len, input_len)` matrix.
    pub fn to_dense(&self) -> Vec<f64> {
        let mut dense = vec![0.0; self.output_len() * self.input_len];
        for i in 0..self.output_len() {
            for &(k, w) in self.taps(i) {
                dense[i * self.input_len + k] += w;
            }
        }
        dense
    }

    /// The transposed matrix, row-major `(input_len, output_len)`: the right factor of `x · Aᵀ`.
    fn to_dense_transposed(&self) -> Vec<f64> {
        let out = self.output_len();
        let mut dense = vec![0.0; self.input_len * out];
        for i in 0..out {
            for &(k, w) in self.taps(i) {
                dense[k * out + i] += w;
            }
        }
        dense
    }

    /// The taps with weights converted to the kernel's dtype.
    fn rows_as<E: Copy>(&self, convert: impl Fn(f64) -> E) -> Vec<Vec<(usize, E)>> {
        (0..self.output_len())
            .map(|i| self.taps(i).iter().map(|&(k, w)| (k, convert(w))).collect())
            .collect()
    }
}

/// A device that can apply a separable linear resampling `y = A_h · x · A_wᵀ` to every
/// plane of a tensor, with autodiff.
///
/// PyTorch equivalent: the kernels behind `nn.Upsample` and `nn.AdaptiveAvgPool2d`.
///
/// # Shapes
/// `input (..., rows.input_len(), cols.input_len())` -> `(..., rows.output_len(), cols.output_len())`:
/// the trailing two dims are resampled, the leading ones (batch, channels) are planes.
///
/// # Panics
/// If `input` or `out_shape` do not hold a whole number of planes of those sizes.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::kernels::{Resample2dKernel, ResampleAxis};
/// let dev = Cpu::default();
/// let x: Tensor<Rank3<1, 2, 2>, f32, _> = dev.tensor([[[1.0, 2.0], [3.0, 4.0]]]);
/// let rows = ResampleAxis::adaptive_average(2, 1);
/// let cols = ResampleAxis::adaptive_average(2, 1);
/// let y = Cpu::try_resample2d(x, rows, cols, Rank3::<1, 1, 1>::default()).unwrap();
/// assert_eq!(y.array(), [[[2.5]]]);
/// ```
pub trait Resample2dKernel<E: Dtype>: Device<E> {
    /// Resamples the trailing two dims of `input` and records the backward op on its tape.
    fn try_resample2d<S: Shape, O: Shape, T: Tape<E, Self>>(
        input: Tensor<S, E, Self, T>,
        rows: ResampleAxis,
        cols: ResampleAxis,
        out_shape: O,
    ) -> Result<Tensor<O, E, Self, T>, Self::Err>;
}

/// Plane sizes `(in, out)` and the plane count, after checking both shapes hold whole planes.
fn plane_sizes(
    input_len: usize,
    output_len: usize,
    rows: &ResampleAxis,
    cols: &ResampleAxis,
) -> (usize, usize, usize) {
    let in_plane = rows.input_len() * cols.input_len();
    let out_plane = rows.output_len() * cols.output_len();
    let planes = input_len.checked_div(in_plane).unwrap_or(0);
    assert!(
        planes * in_plane == input_len && planes * out_plane == output_len,
        "resample2d: {input_len} inputs and {output_len} outputs are not whole planes of \
         {}x{} -> {}x{}",
        rows.input_len(),
        cols.input_len(),
        rows.output_len(),
        cols.output_len()
    );
    (in_plane, out_plane, planes)
}

/// Planes per rayon task, so a task does at least ~16k multiply-adds.
fn min_planes_per_task(work_per_plane: usize) -> usize {
    (16 * 1024 / work_per_plane.max(1)).max(1)
}

/// Forward of one plane: first along the width into `tmp` `(in_h, out_w)`, then along the
/// height, so each pass touches every tap once.
fn resample_plane<E>(
    rows: &[Vec<(usize, E)>],
    cols: &[Vec<(usize, E)>],
    in_width: usize,
    x: &[E],
    y: &mut [E],
    tmp: &mut Vec<E>,
) where
    E: Copy + Default + core::ops::Mul<Output = E> + core::ops::AddAssign,
{
    let out_width = cols.len();
    let in_height = x.len() / in_width.max(1);
    tmp.clear();
    tmp.resize(in_height * out_width, E::default());
    for (x_row, tmp_row) in x
        .chunks_exact(in_width)
        .zip(tmp.chunks_exact_mut(out_width))
    {
        for (t, taps) in tmp_row.iter_mut().zip(cols) {
            let mut acc = E::default();
            for &(s, b) in taps {
                acc += b * x_row[s];
            }
            *t = acc;
        }
    }
    for (y_row, taps) in y.chunks_exact_mut(out_width).zip(rows) {
        y_row.fill(E::default());
        for &(r, a) in taps {
            let tmp_row = &tmp[r * out_width..(r + 1) * out_width];
            for (o, &t) in y_row.iter_mut().zip(tmp_row) {
                *o += a * t;
            }
        }
    }
}

/// Backward of one plane: the transposed passes, accumulating into `gx`.
fn resample_plane_backward<E>(
    rows: &[Vec<(usize, E)>],
    cols: &[Vec<(usize, E)>],
    in_width: usize,
    gy: &[E],
    gx: &mut [E],
    tmp: &mut Vec<E>,
) where
    E: Copy + Default + core::ops::Mul<Output = E> + core::ops::AddAssign,
{
    let out_width = cols.len();
    let in_height = gx.len() / in_width.max(1);
    tmp.clear();
    tmp.resize(in_height * out_width, E::default());
    for (gy_row, taps) in gy.chunks_exact(out_width).zip(rows) {
        for &(r, a) in taps {
            let tmp_row = &mut tmp[r * out_width..(r + 1) * out_width];
            for (t, &g) in tmp_row.iter_mut().zip(gy_row) {
                *t += a * g;
            }
        }
    }
    for (gx_row, tmp_row) in gx
        .chunks_exact_mut(in_width)
        .zip(tmp.chunks_exact(out_width))
    {
        for (&t, taps) in tmp_row.iter().zip(cols) {
            for &(s, b) in taps {
                gx_row[s] += b * t;
            }
        }
    }
}

/// Applies `rows` and `cols` to every plane of `x` (contiguous, row-major) into `y`.
///
/// # Panics
/// If the slices are not whole planes of the maps' sizes.
fn resample2d_forward<E>(rows: &ResampleAxis, cols: &ResampleAxis, x: &[E], y: &mut [E])
where
    E: Copy + Default + Send + Sync + 'static + core::ops::Mul<Output = E> + core::ops::AddAssign,
    f64: num_traits::AsPrimitive<E>,
{
    use num_traits::AsPrimitive;
    let (in_plane, out_plane, _) = plane_sizes(x.len(), y.len(), rows, cols);
    if out_plane == 0 || in_plane == 0 {
        return;
    }
    let (rows_e, cols_e) = (rows.rows_as(|w| w.as_()), cols.rows_as(|w| w.as_()));
    let in_width = cols.input_len();
    y.par_chunks_mut(out_plane)
        .zip(x.par_chunks(in_plane))
        .with_min_len(min_planes_per_task(in_plane + out_plane))
        .for_each_init(Vec::new, |tmp, (y, x)| {
            resample_plane(&rows_e, &cols_e, in_width, x, y, tmp)
        });
}

/// Backward of [`resample2d_forward`]: `grad_x += A_hᵀ · grad_y · A_w` per plane.
///
/// # Panics
/// If the slices are not whole planes of the maps' sizes.
fn resample2d_backward<E>(rows: &ResampleAxis, cols: &ResampleAxis, grad_y: &[E], grad_x: &mut [E])
where
    E: Copy + Default + Send + Sync + 'static + core::ops::Mul<Output = E> + core::ops::AddAssign,
    f64: num_traits::AsPrimitive<E>,
{
    use num_traits::AsPrimitive;
    let (in_plane, out_plane, _) = plane_sizes(grad_x.len(), grad_y.len(), rows, cols);
    if out_plane == 0 || in_plane == 0 {
        return;
    }
    let (rows_e, cols_e) = (rows.rows_as(|w| w.as_()), cols.rows_as(|w| w.as_()));
    let in_width = cols.input_len();
    grad_x
        .par_chunks_mut(in_plane)
        .zip(grad_y.par_chunks(out_plane))
        .with_min_len(min_planes_per_task(in_plane + out_plane))
        .for_each_init(Vec::new, |tmp, (gx, gy)| {
            resample_plane_backward(&rows_e, &cols_e, in_width, gy, gx, tmp)
        });
}

macro_rules! cpu_resample2d_impl {
    ($($dtype:ty),*) => {$(
        impl Resample2dKernel<$dtype> for Cpu {
            fn try_resample2d<S: Shape, O: Shape, T: Tape<$dtype, Self>>(
                input: Tensor<S, $dtype, Self, T>,
                rows: ResampleAxis,
                cols: ResampleAxis,
                out_shape: O,
            ) -> Result<Tensor<O, $dtype, Self, T>, Self::Err> {
                let (input, mut tape, x) = host_input(input)?;
                let mut y = vec![0.0; out_shape.num_elements()];
                resample2d_forward(&rows, &cols, &x, &mut y);
                drop(x);
                let out = input.device().try_tensor_from_vec(y, out_shape)?;
                if T::OWNS_TAPE {
                    let out_id = out.clone();
                    tape.add_backward_op(move |grads| {
                        let grad_out = grads.get_or_alloc_mut(&out_id)?.to_vec();
                        let grad_x = grads.get_or_alloc_mut(&input)?;
                        resample2d_backward(&rows, &cols, &grad_out, grad_x);
                        Ok(())
                    });
                }
                Ok(out.put_tape(tape))
            }
        }
    )*};
}
cpu_resample2d_impl!(f32, f64);

/// Separable resampling built from dfdx ops (two broadcast matmuls); dfdx differentiates it
/// and it runs on any dfdx device.
///
/// # Shapes
/// `input (B, C, rows.input_len(), cols.input_len())` -> `(B, C, rows.output_len(), cols.output_len())`.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::kernels::{resample::composed_resample2d, ResampleAxis};
/// let dev = Cpu::default();
/// let x: Tensor<_, f32, _> = dev.tensor_from_vec(vec![1.0, 2.0, 3.0, 4.0], (1, 1, 2, 2));
/// let up = ResampleAxis::nearest(2, 2);
/// let y = composed_resample2d(x, &up, &up).unwrap();
/// assert_eq!(y.as_vec()[..4], [1.0, 1.0, 2.0, 2.0]);
/// ```
pub fn composed_resample2d<E: Dtype, D: Device<E>, T: Tape<E, D>>(
    input: Dyn4<E, D, T>,
    rows: &ResampleAxis,
    cols: &ResampleAxis,
) -> Result<Dyn4<E, D, T>, D::Err> {
    let (batch, channels, height, width) = *input.shape();
    assert_eq!(
        (height, width),
        (rows.input_len(), cols.input_len()),
        "composed_resample2d: input planes are not the maps' input size"
    );
    let (out_height, out_width) = (rows.output_len(), cols.output_len());
    let dev = input.device().clone();
    let matrix = |values: Vec<f64>, shape: (usize, usize)| {
        let values = values
            .into_iter()
            .map(|v| E::from_f64(v).expect("resample weight fits the dtype"))
            .collect();
        dev.try_tensor_from_vec(values, shape)
    };
    let rows_t = matrix(rows.to_dense_transposed(), (height, out_height))?;
    let cols_t = matrix(cols.to_dense_transposed(), (width, out_width))?;
    // The traced input must be the left operand (only it may carry a tape), so the height
    // pass works on the transposed planes: (x_pᵀ · A_hᵀ)ᵀ = A_h · x_p.
    let planes = input.try_reshape_like(&(batch * channels, height, width))?;
    let by_rows = planes
        .try_permute::<_, Axes3<0, 2, 1>>()?
        .try_matmul(rows_t)?
        .try_permute::<_, Axes3<0, 2, 1>>()?;
    by_rows
        .try_matmul(cols_t)?
        .try_reshape_like(&(batch, channels, out_height, out_width))
}
