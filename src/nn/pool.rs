//! `MaxPool2d` and `AvgPool2d`: 2-D pooling windows, shapes checked at compile time.

use crate::kernels::{Pool2dGeometry, Pool2dKernel, PoolKind};
use crate::shape::{check_pool2d, pool_name, PoolOut, ShapeInfer, StaticDim};
use dfdx::nn::{Module, NonMutableModule, ZeroSizedModule};
use dfdx::prelude::*;

macro_rules! pool_layer {
    ($(#[$doc:meta])* $name:ident, $kind:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $name<
            const KERNEL: usize,
            const STRIDE: usize = KERNEL,
            const PADDING: usize = 0,
            const CEIL_MODE: bool = false,
        >;

        impl<const KERNEL: usize, const STRIDE: usize, const PADDING: usize, const CEIL_MODE: bool>
            ZeroSizedModule for $name<KERNEL, STRIDE, PADDING, CEIL_MODE>
        {
        }
        impl<const KERNEL: usize, const STRIDE: usize, const PADDING: usize, const CEIL_MODE: bool>
            NonMutableModule for $name<KERNEL, STRIDE, PADDING, CEIL_MODE>
        {
        }

        impl<
                const KERNEL: usize,
                const STRIDE: usize,
                const PADDING: usize,
                const CEIL_MODE: bool,
                C: StaticDim,
                H: StaticDim,
                W: StaticDim,
            > ShapeInfer<(C, H, W)> for $name<KERNEL, STRIDE, PADDING, CEIL_MODE>
        {
            type Output = (
                C,
                PoolOut<H, KERNEL, STRIDE, PADDING, CEIL_MODE>,
                PoolOut<W, KERNEL, STRIDE, PADDING, CEIL_MODE>,
            );
            const CHECK: () =
                check_pool2d(
                    stringify!($name),
                    [KERNEL, STRIDE, PADDING],
                    CEIL_MODE,
                    [C::SIZE, H::SIZE, W::SIZE],
                );
            const PARAMS: usize = 0;
            fn name() -> String {
                pool_name(stringify!($name), [KERNEL, STRIDE, PADDING], CEIL_MODE)
                    .as_str()
                    .to_string()
            }
        }

        impl<
                const KERNEL: usize,
                const STRIDE: usize,
                const PADDING: usize,
                const CEIL_MODE: bool,
                B: Dim,
                C: StaticDim,
                H: StaticDim,
                W: StaticDim,
                E: Dtype,
                D: Pool2dKernel<E>,
                T: Tape<E, D>,
            > Module<Tensor<(B, C, H, W), E, D, T>> for $name<KERNEL, STRIDE, PADDING, CEIL_MODE>
        {
            type Output = Tensor<
                (
                    B,
                    C,
                    PoolOut<H, KERNEL, STRIDE, PADDING, CEIL_MODE>,
                    PoolOut<W, KERNEL, STRIDE, PADDING, CEIL_MODE>,
                ),
                E,
                D,
                T,
            >;
            type Error = D::Err;

            fn try_forward(
                &self,
                x: Tensor<(B, C, H, W), E, D, T>,
            ) -> Result<Self::Output, D::Err> {
                const { <Self as ShapeInfer<(C, H, W)>>::CHECK };
                let batch = x.shape().0;
                let geometry = Pool2dGeometry {
                    batch: batch.size(),
                    channels: C::SIZE,
                    in_height: H::SIZE,
                    in_width: W::SIZE,
                    out_height: <PoolOut<H, KERNEL, STRIDE, PADDING, CEIL_MODE> as ConstDim>::SIZE,
                    out_width: <PoolOut<W, KERNEL, STRIDE, PADDING, CEIL_MODE> as ConstDim>::SIZE,
                    kernel: KERNEL,
                    stride: STRIDE,
                    padding: PADDING,
                };
                let out_shape = (batch, C::default(), Default::default(), Default::default());
                D::try_pool2d(x, $kind, geometry, out_shape)
            }
        }

        impl<
                const KERNEL: usize,
                const STRIDE: usize,
                const PADDING: usize,
                const CEIL_MODE: bool,
                C: StaticDim,
                H: StaticDim,
                W: StaticDim,
                E: Dtype,
                D: Pool2dKernel<E>,
                T: Tape<E, D>,
            > Module<Tensor<(C, H, W), E, D, T>> for $name<KERNEL, STRIDE, PADDING, CEIL_MODE>
        {
            type Output = Tensor<
                (
                    C,
                    PoolOut<H, KERNEL, STRIDE, PADDING, CEIL_MODE>,
                    PoolOut<W, KERNEL, STRIDE, PADDING, CEIL_MODE>,
                ),
                E,
                D,
                T,
            >;
            type Error = D::Err;

            fn try_forward(&self, x: Tensor<(C, H, W), E, D, T>) -> Result<Self::Output, D::Err> {
                let x = x.try_reshape_like(&(Const::<1>, C::default(), H::default(), W::default()))?;
                self.try_forward(x)?.try_reshape_like(&Default::default())
            }
        }
    };
}

pool_layer!(
    /// 2-D max pooling: the largest value of each window; padding never wins.
    ///
    /// PyTorch equivalent: `torch.nn.MaxPool2d(KERNEL, STRIDE, PADDING,
    /// ceil_mode=CEIL_MODE)` (no dilation). `PADDING` may be at most half the window, as
    /// in PyTorch.
    ///
    /// # Generics
    /// - `KERNEL`: square window side.
    /// - `STRIDE`: step between windows, defaults to `KERNEL`.
    /// - `PADDING`: implicit padding on each side, default 0.
    /// - `CEIL_MODE`: count a last, partial window (GoogLeNet's pools), default `false`.
    ///
    /// # Shapes
    /// - `(C, H, W) -> (C, PoolOut<H, KERNEL, STRIDE, PADDING, CEIL_MODE>, PoolOut<W, ...>)`
    /// - `(B, C, H, W) -> (B, C, PoolOut<H, ...>, PoolOut<W, ...>)`
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// let dev = Cpu::default();
    /// let x: Tensor<Rank3<1, 2, 2>, f32, _> = dev.tensor([[[1.0, 5.0], [3.0, 2.0]]]);
    /// let y: Tensor<(Const<1>, PoolOut<Const<2>, 2, 2, 0>, PoolOut<Const<2>, 2, 2, 0>), f32, _> =
    ///     MaxPool2d::<2>.forward(x);
    /// assert_eq!(y.as_vec(), [5.0]);
    /// // Ceil mode keeps the partial window over the last column and row.
    /// let x: Tensor<Rank3<1, 3, 3>, f32, _> = dev.tensor([[[1., 2., 3.], [4., 5., 6.], [7., 8., 9.]]]);
    /// assert_eq!(MaxPool2d::<2, 2, 0, true>.forward(x).as_vec(), [5.0, 6.0, 8.0, 9.0]);
    /// ```
    MaxPool2d,
    PoolKind::Max
);

pool_layer!(
    /// 2-D average pooling: the mean of each window, padding counted as zeros.
    ///
    /// PyTorch equivalent: `torch.nn.AvgPool2d(KERNEL, STRIDE, PADDING)` with its
    /// defaults `count_include_pad=True`, `ceil_mode=False`.
    ///
    /// # Generics
    /// - `KERNEL`: square window side.
    /// - `STRIDE`: step between windows, defaults to `KERNEL`.
    /// - `PADDING`: implicit zero padding on each side, default 0.
    /// - `CEIL_MODE`: must stay `false`; a compile-time error names the layer otherwise.
    ///
    /// # Shapes
    /// - `(C, H, W) -> (C, PoolOut<H, KERNEL, STRIDE, PADDING, CEIL_MODE>, PoolOut<W, ...>)`
    /// - `(B, C, H, W) -> (B, C, PoolOut<H, ...>, PoolOut<W, ...>)`
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// let dev = Cpu::default();
    /// let x: Tensor<Rank3<1, 2, 2>, f32, _> = dev.tensor([[[1.0, 5.0], [3.0, 2.0]]]);
    /// assert_eq!(AvgPool2d::<2>.forward(x).as_vec(), [2.75]);
    /// ```
    AvgPool2d,
    PoolKind::Avg
);
