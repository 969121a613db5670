//! Transposed convolution composed from dfdx ops (gather + batched matmul): runs on any
//! dfdx device, and dfdx's autodiff differentiates it.
//!
//! The scatter of a transposed convolution is rewritten as a gather: output pixel
//! `(oy, ox)` receives, through tap `(ky, kx)`, the input pixel `(iy, ix)` with
//! `iy * stride + ky * dilation - padding == oy` (likewise for `x`) when that `iy` is a
//! whole number inside the input, and nothing otherwise. Gathering those pixels (a fill
//! row of zeros standing in for "nothing") gives a column matrix per output pixel, and
//! one matmul per group with the weight finishes the job.

use super::ConvTranspose2dGeometry;
use crate::kernels::conv2d::composed::{gather_windows, Dyn4};
use dfdx::prelude::*;

/// For each output position and kernel tap (tap fastest), the flat `iy * width + ix`
/// input position whose value reaches that output through that tap, or `height * width`
/// (an appended fill row) when none does.
///
/// # Shapes
/// Returns `out_height * out_width * kernel * kernel` indices.
///
/// ```
/// use shapesafe::kernels::conv_transpose2d::composed::transposed_window_indices;
/// // A 1x2 input, a 2x2 kernel, stride 1, the output's first row of 3: output 1 is
/// // reached by input 1 through tap (0, 0) and by input 0 through tap (0, 1); fill is 2.
/// let idx = transposed_window_indices((1, 2), (1, 3), 2, 1, 0, 1);
/// assert_eq!(idx, [0, 2, 2, 2, 1, 0, 2, 2, 2, 1, 2, 2]);
/// ```
pub fn transposed_window_indices(
    (height, width): (usize, usize),
    (out_height, out_width): (usize, usize),
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
) -> Vec<usize> {
    // The input position that reaches output `o` through a tap at `offset`, if any.
    let source = |o: usize, offset: usize, len: usize| -> Option<usize> {
        let shifted = (o + padding).checked_sub(offset)?;
        (shifted.is_multiple_of(stride) && shifted / stride < len).then_some(shifted / stride)
    };
    let fill = height * width;
    let mut idx = Vec::with_capacity(out_height * out_width * kernel * kernel);
    for oy in 0..out_height {
        for ox in 0..out_width {
            for ky in 0..kernel {
                for kx in 0..kernel {
                    idx.push(
                        match (
                            source(oy, ky * dilation, height),
                            source(ox, kx * dilation, width),
                        ) {
                            (Some(iy), Some(ix)) => iy * width + ix,
                            _ => fill,
                        },
                    );
                }
            }
        }
    }
    idx
}

/// 2-D transposed convolution with bias, built from dfdx ops; dfdx differentiates it.
///
/// PyTorch equivalent: `torch.nn.functional.conv_transpose2d`.
///
/// # Errors
/// The device's error, e.g. when it cannot allocate.
///
/// # Shapes
/// `input (B, IN, H, W)`, `weight (IN, OUT / GROUPS, K, K)`, `bias (OUT,)` -> `(B, OUT, OH, OW)`.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::kernels::{conv_transpose2d::composed, ConvTranspose2dGeometry};
/// let dev = Cpu::default();
/// let x = dev.tensor_from_vec(vec![1.0f32, 2.0], (1, 1, 1, 2));
/// let w = dev.ones_like(&(1, 1, 2, 2));
/// let b = dev.zeros_like(&(1,));
/// let g = ConvTranspose2dGeometry {
///     batch: 1, in_channels: 1, out_channels: 1, in_height: 1, in_width: 2,
///     out_height: 2, out_width: 3, kernel: 2, stride: 1, padding: 0, dilation: 1, groups: 1,
/// };
/// let y = composed::conv_transpose2d(x, w, b, &g).unwrap();
/// assert_eq!(y.as_vec(), [1.0, 3.0, 2.0, 1.0, 3.0, 2.0]);
/// ```
pub fn conv_transpose2d<E: Dtype, D: Device<E>, T: Tape<E, D>>(
    input: Dyn4<E, D, T>,
    weight: Dyn4<E, D>,
    bias: Tensor<(usize,), E, D>,
    g: &ConvTranspose2dGeometry,
) -> Result<Dyn4<E, D, T>, D::Err> {
    let (batch, groups) = (g.batch, g.groups);
    let (cg, og) = (g.in_channels / groups, g.out_channels / groups);
    let (n, kk) = (g.out_height * g.out_width, g.kernel * g.kernel);
    let indices = transposed_window_indices(
        (g.in_height, g.in_width),
        (g.out_height, g.out_width),
        g.kernel,
        g.stride,
        g.padding,
        g.dilation,
    );
    // (N * KK, B, C) -> (G, B * N, Cg * KK): one matmul per group.
    let cols = gather_windows(input, indices, E::default())?
        .try_reshape_like(&(n, kk, batch, groups, cg))?
        .try_permute::<_, Axes5<3, 2, 0, 4, 1>>()?
        .try_reshape_like(&(groups, batch * n, cg * kk))?;
    // (IN, Og, K, K) = (G, Cg, Og, KK) -> (G, Cg * KK, Og), rows ordered like the columns.
    let weight = weight
        .retaped::<T>()
        .try_reshape_like(&(groups, cg, og, kk))?
        .try_permute::<_, Axes4<0, 1, 3, 2>>()?
        .try_reshape_like(&(groups, cg * kk, og))?;
    let out = cols
        .try_matmul(weight)?
        .try_reshape_like(&(groups, batch, n, og))?
        .try_permute::<_, Axes4<1, 0, 3, 2>>()?
        .try_reshape_like(&(batch, g.out_channels, g.out_height, g.out_width))?;
    let shape = *out.shape();
    let bias = bias
        .retaped::<T>()
        .try_broadcast_like::<_, Axes3<0, 2, 3>>(&shape)?;
    out.try_add(bias)
}
