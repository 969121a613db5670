//! Convolution composed from dfdx ops (gather im2col + batched matmul): runs on any dfdx device.

use crate::kernels::geometry::Window;
use crate::kernels::Conv2dGeometry;
use dfdx::prelude::*;

/// Runtime-shaped rank-4 tensor, the currency of the composed ops.
pub type Dyn4<E, D, T = NoneTape> = Tensor<(usize, usize, usize, usize), E, D, T>;

/// Runtime-shaped rank-3 tensor.
pub type Dyn3<E, D, T = NoneTape> = Tensor<(usize, usize, usize), E, D, T>;

/// For each output position and kernel tap (tap fastest), the flat `y * width + x`
/// input position it reads, or `height * width` (an appended fill row) when the
/// tap falls into the padding.
pub fn window_indices(
    (height, width): (usize, usize),
    (out_height, out_width): (usize, usize),
    window: Window,
) -> Vec<usize> {
    let Window {
        kernel,
        stride,
        padding,
        dilation,
    } = window;
    let fill = height * width;
    let mut idx = Vec::with_capacity(out_height * out_width * kernel * kernel);
    for oy in 0..out_height {
        for ox in 0..out_width {
            for ky in 0..kernel {
                for kx in 0..kernel {
                    let y = (oy * stride + ky * dilation).checked_sub(padding);
                    let x = (ox * stride + kx * dilation).checked_sub(padding);
                    idx.push(match (y, x) {
                        (Some(y), Some(x)) if y < height && x < width => y * width + x,
                        _ => fill,
                    });
                }
            }
        }
    }
    idx
}

/// Gathers every window of `input` into `(OH * OW * K * K, B, C)`, padding with `fill`.
///
/// The input is moved to spatial-major `(H * W, B, C)` so one 1-D index tensor
/// can gather along axis 0 for all images and channels at once.
pub(crate) fn gather_windows<E: Dtype, D: Device<E>, T: Tape<E, D>>(
    input: Dyn4<E, D, T>,
    indices: Vec<usize>,
    fill: E,
) -> Result<Dyn3<E, D, T>, D::Err> {
    let (b, c, h, w) = *input.shape();
    let dev = input.device().clone();
    let spatial = input
        .try_permute::<_, Axes4<2, 3, 0, 1>>()?
        .try_reshape_like(&(h * w, b, c))?;
    let pad = dev.try_zeros_like(&(1usize, b, c))?.try_add(fill)?;
    let padded = (spatial, pad).try_concat_along(Axis::<0>)?;
    let n = indices.len();
    let idx = dev.try_tensor_from_vec(indices, (n,))?;
    padded.try_gather(idx)
}

/// 2-D convolution with bias, built from dfdx ops; dfdx differentiates it.
///
/// PyTorch equivalent: `torch.nn.functional.conv2d`.
///
/// # Shapes
/// `input (B, IN, H, W)`, `weight (OUT, IN / GROUPS, K, K)`, `bias (OUT,)` -> `(B, OUT, OH, OW)`.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::kernels::{conv2d::composed, Conv2dGeometry};
/// let dev = Cpu::default();
/// let x = dev.ones_like(&(1, 1, 3, 3));
/// let w = dev.ones_like(&(1, 1, 2, 2));
/// let b = dev.zeros_like(&(1,));
/// let g = Conv2dGeometry {
///     batch: 1, in_channels: 1, out_channels: 1, in_height: 3, in_width: 3,
///     out_height: 2, out_width: 2, kernel: 2, stride: 1, padding: 0, dilation: 1, groups: 1,
/// };
/// let y: Tensor<_, f32, _> = composed::conv2d(x, w, b, &g).unwrap();
/// assert_eq!(y.as_vec(), [4.0; 4]);
/// ```
pub fn conv2d<E: Dtype, D: Device<E>, T: Tape<E, D>>(
    input: Dyn4<E, D, T>,
    weight: Dyn4<E, D>,
    bias: Tensor<(usize,), E, D>,
    g: &Conv2dGeometry,
) -> Result<Dyn4<E, D, T>, D::Err> {
    let (batch, groups) = (g.batch, g.groups);
    let (cg, og) = (g.in_channels / groups, g.out_channels / groups);
    let (n, kk) = (g.out_height * g.out_width, g.kernel * g.kernel);
    let indices = window_indices(
        (g.in_height, g.in_width),
        (g.out_height, g.out_width),
        g.window(),
    );
    // (N * KK, B, C) -> (G, B * N, Cg * KK): one matmul per group.
    let cols = gather_windows(input, indices, E::default())?
        .try_reshape_like(&(n, kk, batch, groups, cg))?
        .try_permute::<_, Axes5<3, 2, 0, 4, 1>>()?
        .try_reshape_like(&(groups, batch * n, cg * kk))?;
    let weight = weight
        .retaped::<T>()
        .try_reshape_like(&(groups, og, cg * kk))?
        .try_permute::<_, Axes3<0, 2, 1>>()?;
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
