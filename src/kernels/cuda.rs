//! The kernels on dfdx's `Cuda` device, through the device-generic compositions of dfdx ops.
//!
//! dfdx 0.13 does not expose a CUDA tensor's device buffer, so shapesafe cannot launch its
//! own kernels on it. Each op here reshapes its typed tensors to the runtime-shaped ones the
//! `composed` functions take (zero-copy for contiguous tensors), runs the composition (gathers,
//! cuBLAS matmuls, reductions, all on the GPU, differentiated by dfdx's tape) and reshapes the
//! result back. Activations never pass through the host; only the small index and
//! interpolation tables built from the geometry are uploaded.

use super::conv2d::composed::{self as conv_composed, Dyn4};
use super::conv_transpose2d::composed as transpose_composed;
use super::pool2d::composed as pool_composed;
use super::recurrent::composed as recurrent_composed;
use super::resample::composed_resample2d;
use super::{
    Conv2dGeometry, Conv2dKernel, ConvTranspose2dGeometry, ConvTranspose2dKernel, Pool2dGeometry,
    Pool2dKernel, PoolKind, RecurrentKernel, RecurrentMode, RecurrentOutput, RecurrentParams,
    RecurrentState, Resample2dKernel, ResampleAxis,
};
use dfdx::prelude::{Cuda, Device, Dim, Dtype, HasShape, ReshapeTo, Shape, Tape, Tensor};

/// Views `t` as `(a, b, c, d)`, the layout the compositions take.
fn as_dyn4<S: Shape, E: Dtype, T: Tape<E, Cuda>>(
    t: Tensor<S, E, Cuda, T>,
    dims: (usize, usize, usize, usize),
) -> Result<Dyn4<E, Cuda, T>, <Cuda as dfdx::prelude::HasErr>::Err>
where
    Cuda: Device<E>,
{
    t.try_reshape_like(&dims)
}

impl<E: Dtype> Conv2dKernel<E> for Cuda
where
    Cuda: Device<E>,
{
    fn try_conv2d<S: Shape, W: Shape, B: Shape, O: Shape, T: Tape<E, Self>>(
        input: Tensor<S, E, Self, T>,
        weight: &Tensor<W, E, Self>,
        bias: &Tensor<B, E, Self>,
        g: Conv2dGeometry,
        out_shape: O,
    ) -> Result<Tensor<O, E, Self, T>, Self::Err> {
        let input = as_dyn4(input, (g.batch, g.in_channels, g.in_height, g.in_width))?;
        let per_group = g.in_channels / g.groups.max(1);
        let weight = as_dyn4(
            weight.clone(),
            (g.out_channels, per_group, g.kernel, g.kernel),
        )?;
        let bias = bias.clone().try_reshape_like(&(g.out_channels,))?;
        conv_composed::conv2d(input, weight, bias, &g)?.try_reshape_like(&out_shape)
    }
}

impl<E: Dtype + num_traits::Float> Pool2dKernel<E> for Cuda
where
    Cuda: Device<E>,
{
    fn try_pool2d<S: Shape, O: Shape, T: Tape<E, Self>>(
        input: Tensor<S, E, Self, T>,
        kind: PoolKind,
        g: Pool2dGeometry,
        out_shape: O,
    ) -> Result<Tensor<O, E, Self, T>, Self::Err> {
        let input = as_dyn4(input, (g.batch, g.channels, g.in_height, g.in_width))?;
        pool_composed::pool2d(input, kind, &g)?.try_reshape_like(&out_shape)
    }
}

impl<E: Dtype> ConvTranspose2dKernel<E> for Cuda
where
    Cuda: Device<E>,
{
    fn try_conv_transpose2d<S: Shape, W: Shape, B: Shape, O: Shape, T: Tape<E, Self>>(
        input: Tensor<S, E, Self, T>,
        weight: &Tensor<W, E, Self>,
        bias: &Tensor<B, E, Self>,
        g: ConvTranspose2dGeometry,
        out_shape: O,
    ) -> Result<Tensor<O, E, Self, T>, Self::Err> {
        let input = as_dyn4(input, (g.batch, g.in_channels, g.in_height, g.in_width))?;
        let per_group = g.out_channels / g.groups.max(1);
        let weight = as_dyn4(
            weight.clone(),
            (g.in_channels, per_group, g.kernel, g.kernel),
        )?;
        let bias = bias.clone().try_reshape_like(&(g.out_channels,))?;
        transpose_composed::conv_transpose2d(input, weight, bias, &g)?.try_reshape_like(&out_shape)
    }
}

impl<E: Dtype> Resample2dKernel<E> for Cuda
where
    Cuda: Device<E>,
{
    fn try_resample2d<S: Shape, O: Shape, T: Tape<E, Self>>(
        input: Tensor<S, E, Self, T>,
        rows: ResampleAxis,
        cols: ResampleAxis,
        out_shape: O,
    ) -> Result<Tensor<O, E, Self, T>, Self::Err> {
        // Every leading dim is a plane: view them as (planes, 1, H, W).
        let plane = rows.input_len() * cols.input_len();
        let planes = input.shape().num_elements() / plane.max(1);
        let input = as_dyn4(input, (planes, 1, rows.input_len(), cols.input_len()))?;
        composed_resample2d(input, &rows, &cols)?.try_reshape_like(&out_shape)
    }
}

impl<E: Dtype> RecurrentKernel<E> for Cuda
where
    Cuda: Device<E>,
{
    fn try_recurrent<B: Dim, S: Dim, I: Dim, G: Dim, const HIDDEN: usize, T: Tape<E, Self>>(
        input: Tensor<(B, S, I), E, Self, T>,
        params: RecurrentParams<'_, G, I, HIDDEN, E, Self>,
        initial: Option<RecurrentState<B, HIDDEN, E, Self>>,
        mode: RecurrentMode,
        reverse: bool,
    ) -> Result<RecurrentOutput<B, S, HIDDEN, E, Self, T>, Self::Err> {
        recurrent_composed::recurrent(input, params, initial, mode, reverse)
    }
}
