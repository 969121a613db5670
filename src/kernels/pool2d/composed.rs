//! Pooling composed from dfdx ops (gather windows + max/mean reduction): runs on any dfdx device.

use super::PoolKind;
use crate::kernels::conv2d::composed::{gather_windows, window_indices, Dyn4};
use crate::kernels::Pool2dGeometry;
use dfdx::prelude::*;

/// 2-D max or average pooling built from dfdx ops; dfdx differentiates it.
///
/// PyTorch equivalent: `torch.nn.functional.max_pool2d` / `avg_pool2d`.
///
/// # Shapes
/// `input (B, C, H, W)` -> `(B, C, OH, OW)`.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::kernels::{pool2d::composed, Pool2dGeometry, PoolKind};
/// let dev = Cpu::default();
/// let x: Tensor<_, f32, _> = dev.tensor_from_vec(vec![1.0, 5.0, 3.0, 2.0], (1, 1, 2, 2));
/// let g = Pool2dGeometry {
///     batch: 1, channels: 1, in_height: 2, in_width: 2, out_height: 1, out_width: 1,
///     kernel: 2, stride: 2, padding: 0,
/// };
/// assert_eq!(composed::pool2d(x.clone(), PoolKind::Max, &g).unwrap().as_vec(), [5.0]);
/// assert_eq!(composed::pool2d(x, PoolKind::Avg, &g).unwrap().as_vec(), [2.75]);
/// ```
pub fn pool2d<E: Dtype + num_traits::Float, D: Device<E>, T: Tape<E, D>>(
    input: Dyn4<E, D, T>,
    kind: PoolKind,
    g: &Pool2dGeometry,
) -> Result<Dyn4<E, D, T>, D::Err> {
    let n = g.out_height * g.out_width;
    let kk = g.kernel * g.kernel;
    let indices = window_indices(
        (g.in_height, g.in_width),
        (g.out_height, g.out_width),
        g.window(),
    );
    let fill = match kind {
        PoolKind::Max => E::neg_infinity(),
        PoolKind::Avg => E::zero(),
    };
    let windows =
        gather_windows(input, indices, fill)?.try_reshape_like(&(n, kk, g.batch, g.channels))?;
    let pooled = match kind {
        PoolKind::Max => windows.try_max::<_, Axis<1>>()?,
        PoolKind::Avg => windows.try_mean::<_, Axis<1>>()?,
    };
    pooled
        .try_permute::<_, Axes3<1, 2, 0>>()?
        .try_reshape_like(&(g.batch, g.channels, g.out_height, g.out_width))
}
