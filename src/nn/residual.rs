//! `Residual` and `ResidualProjection`: skip connections whose two sides are checked equal at compile time.

use super::relabel::relabel;
use crate::shape::{check_residual, check_residual_projection, ShapeInfer, StaticShape};
use crate::shape::{StaticDim, SummaryRow};
use dfdx::nn::{BuildOnDevice, Module, ModuleMut, ModuleVisitor, TensorCollection};
use dfdx::prelude::*;

/// A skip connection around `F`: `y = F(x) + x`, ResNet's identity shortcut.
///
/// PyTorch has no layer for it; it is the `out += identity` of torchvision's
/// `BasicBlock` when there is no downsample. The branch must give back the shape it
/// was given, which is checked at compile time:
///
/// ```text
/// shape mismatch: Residual branch gives (128, 16, 16), but its input is (64, 32, 32)
/// ```
///
/// [`Module::forward`] runs the branch's `forward` (inference), and
/// [`ModuleMut::forward_mut`] its `forward_mut` (training, e.g. for a `BatchNorm2d`
/// inside). The branch is visited as `branch` (so a parameter is named
/// `branch.0.weight`), and [`Summary`](crate::shape::Summary) lists its layers indented
/// under a `Residual` row.
///
/// The branch must compute something: with a bare `Identity` as `F`, dfdx's backward
/// would see one tensor on both sides of the sum and panic.
///
/// # Generics
/// - `F`: the branch, a layer or a tuple of layers.
///
/// # Shapes
/// - `(C, H, W) -> (C', H, W)` and `(B, C, H, W) -> (B, C', H, W)` (`B` a `Const` or
///   `usize`), where `F` maps `(C, H, W)` to `(C', H', W')` of the same sizes: the channel
///   dim is the branch's type (usually `Const`), the spatial dims the input's;
/// - likewise `(F,) -> (F',)` and `(B, F) -> (B, F')` for features.
///
/// ```
/// use shapesafe::prelude::*;
/// type Block = Residual<(Conv2d<8, 8, 3, 1, 1>, BatchNorm2d<8>, ReLU, Conv2d<8, 8, 3, 1, 1>, BatchNorm2d<8>)>;
/// shapesafe::assert_shapes!(Block: Rank3<8, 16, 16> => Rank3<8, 16, 16>, params = 2 * (8 * 8 * 9 + 8) + 2 * 16);
/// let dev = Cpu::default();
/// let mut block = dev.build_module::<Block, f32>();
/// let x: Tensor<Rank4<2, 8, 16, 16>, f32, _> = dev.sample_normal();
/// let y: Tensor<Rank4<2, 8, 16, 16>, f32, _> = block.forward_mut(x.clone()); // training
/// let y: Tensor<Rank4<2, 8, 16, 16>, f32, _> = block.forward(x); // inference
/// ```
///
/// A branch that changes the shape does not build:
///
/// ```compile_fail
/// use shapesafe::prelude::*;
/// type Block = Residual<(Conv2d<8, 16, 3, 2, 1>, ReLU)>;
/// shapesafe::assert_shapes!(Block: Rank3<8, 16, 16> => Rank3<8, 16, 16>);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Residual<F> {
    /// The branch `F`.
    pub branch: F,
}

/// A skip connection with a projection: `y = F(x) + Shortcut(x)`, ResNet's
/// downsampling block.
///
/// PyTorch has no layer for it; it is torchvision's `BasicBlock` with
/// `downsample = Sequential(conv1x1(stride), BatchNorm2d)`. The two sides must give
/// equal shapes, which is checked at compile time:
///
/// ```text
/// shape mismatch: ResidualProjection branch gives (128, 16, 16), but its shortcut gives (128, 32, 32) (input (64, 32, 32))
/// ```
///
/// Modes, naming (`branch`, `shortcut`) and summaries as for [`Residual`]. The output
/// has the branch's dim types.
///
/// # Generics
/// - `F`: the branch; `Shortcut`: the projection (typically a 1x1 strided
///   convolution and a batch norm).
///
/// # Shapes
/// - `(C, H, W) -> F's output` and `(B, C, H, W) -> (B, F's output)`, where `F` and
///   `Shortcut` give equal sizes; likewise `(F,)` and `(B, F)` for features.
///
/// ```
/// use shapesafe::prelude::*;
/// type Down = ResidualProjection<
///     (Conv2d<4, 8, 3, 2, 1>, BatchNorm2d<8>, ReLU, Conv2d<8, 8, 3, 1, 1>, BatchNorm2d<8>),
///     (Conv2d<4, 8, 1, 2>, BatchNorm2d<8>),
/// >;
/// shapesafe::assert_shapes!(Down: Rank3<4, 16, 16> => Rank3<8, 8, 8>);
/// let dev = Cpu::default();
/// let block = dev.build_module::<Down, f32>();
/// let x: Tensor<(usize, Const<4>, Const<16>, Const<16>), f32, _> = dev.zeros_like(&(3, Const, Const, Const));
/// let y = block.forward(x);
/// assert_eq!(y.shape().concrete(), [3, 8, 8, 8]);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ResidualProjection<F, Shortcut> {
    /// The branch `F`.
    pub branch: F,
    /// The projection on the skip path.
    pub shortcut: Shortcut,
}

impl<D: Device<E>, E: Dtype, F: BuildOnDevice<D, E>> BuildOnDevice<D, E> for Residual<F> {
    type Built = Residual<F::Built>;
}

impl<D: Device<E>, E: Dtype, F: BuildOnDevice<D, E>, Shortcut: BuildOnDevice<D, E>>
    BuildOnDevice<D, E> for ResidualProjection<F, Shortcut>
{
    type Built = ResidualProjection<F::Built, Shortcut::Built>;
}

impl<E: Dtype, D: Device<E>, F: TensorCollection<E, D>> TensorCollection<E, D> for Residual<F> {
    type To<E2: Dtype, D2: Device<E2>> = Residual<F::To<E2, D2>>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            Self::module("branch", |s| &s.branch, |s| &mut s.branch),
            |branch| Residual { branch },
        )
    }
}

impl<E: Dtype, D: Device<E>, F: TensorCollection<E, D>, Shortcut: TensorCollection<E, D>>
    TensorCollection<E, D> for ResidualProjection<F, Shortcut>
{
    type To<E2: Dtype, D2: Device<E2>> = ResidualProjection<F::To<E2, D2>, Shortcut::To<E2, D2>>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::module("branch", |s| &s.branch, |s| &mut s.branch),
                Self::module("shortcut", |s| &s.shortcut, |s| &mut s.shortcut),
            ),
            |(branch, shortcut)| ResidualProjection { branch, shortcut },
        )
    }
}

/// Appends `M`'s summary rows with `prefix` before each layer name, so the layers of
/// a block read as nested under the block's own row.
pub(crate) fn nested_rows<M: ShapeInfer<S>, S: StaticShape>(
    prefix: &str,
    rows: &mut Vec<SummaryRow>,
) {
    let mut inner = Vec::new();
    M::summarize(&mut inner);
    rows.extend(inner.into_iter().map(|mut row| {
        row.layer = format!("{prefix}{}", row.layer);
        row
    }));
}

impl<S: StaticShape, F: ShapeInfer<S>> ShapeInfer<S> for Residual<F> {
    type Output = S;
    const CHECK: () = {
        let () = F::CHECK;
        check_residual(<F::Output as StaticShape>::DIMS, S::DIMS);
    };
    const PARAMS: usize = F::PARAMS;
    fn name() -> String {
        format!("Residual<{}>", F::name())
    }
    /// A `Residual` row for the sum (no parameters), then the branch's rows indented.
    fn summarize(rows: &mut Vec<SummaryRow>) {
        rows.push(SummaryRow {
            layer: "Residual".to_string(),
            output: S::DIMS.to_vec(),
            params: 0,
        });
        nested_rows::<F, S>("  ", rows);
    }
}

impl<S: StaticShape, F: ShapeInfer<S>, Shortcut: ShapeInfer<S>> ShapeInfer<S>
    for ResidualProjection<F, Shortcut>
{
    type Output = F::Output;
    const CHECK: () = {
        let () = F::CHECK;
        let () = Shortcut::CHECK;
        check_residual_projection(
            <F::Output as StaticShape>::DIMS,
            <Shortcut::Output as StaticShape>::DIMS,
            S::DIMS,
        );
    };
    const PARAMS: usize = F::PARAMS + Shortcut::PARAMS;
    fn name() -> String {
        format!("ResidualProjection<{}, {}>", F::name(), Shortcut::name())
    }
    /// A `ResidualProjection` row for the sum, then the branch's and the shortcut's
    /// rows, indented and labelled.
    fn summarize(rows: &mut Vec<SummaryRow>) {
        rows.push(SummaryRow {
            layer: "ResidualProjection".to_string(),
            output: <F::Output as StaticShape>::DIMS.to_vec(),
            params: 0,
        });
        nested_rows::<F, S>("  branch: ", rows);
        nested_rows::<Shortcut, S>("  shortcut: ", rows);
    }
}

/// `Module` and `ModuleMut` for one input rank: `[$batch]` is the batch dim (or
/// none), `$dim` the input's static dims, `$out` the branch's, `$short` the shortcut's.
///
/// `$sum` is `Residual`'s output: the branch's channel (or feature) dim and the input's
/// other dims. They are the same sizes when the model is right; when the branch changes
/// the channels (a missing projection), the layers after the block then see the channels
/// the branch made, so the one mistake is one error, not one more per layer downstream.
/// The input's spatial dims keep the types flat: the branch's would nest a `ConvOut` per
/// block, which a 50-block ResNet cannot afford.
macro_rules! residual_forward {
    ([$($batch:ident)?], ($($dim:ident),+), ($($out:ident),+), ($($short:ident),+), ($($sum:ident),+)) => {
        residual_forward!(@residual Module, try_forward, [$($batch)?] ($($dim),+) ($($out),+) ($($sum),+) &);
        residual_forward!(@residual ModuleMut, try_forward_mut, [$($batch)?] ($($dim),+) ($($out),+) ($($sum),+) &mut);
        residual_forward!(@projection Module, try_forward, [$($batch)?] ($($dim),+) ($($out),+) ($($short),+) &);
        residual_forward!(@projection ModuleMut, try_forward_mut, [$($batch)?] ($($dim),+) ($($out),+) ($($short),+) &mut);
    };
    (@residual $Trait:ident, $method:ident, [$($batch:ident)?] ($($dim:ident),+) ($($out:ident),+) ($($sum:ident),+) $($self_ref:tt)+) => {
        impl<$($batch: Dim,)? $($dim: StaticDim,)+ $($out: StaticDim,)+ E: Dtype, D: Device<E>, T: Tape<E, D>, F>
            $Trait<Tensor<($($batch,)? $($dim,)+), E, D, T>> for Residual<F>
        where
            F: $Trait<
                Tensor<($($batch,)? $($dim,)+), E, D, T>,
                Output = Tensor<($($batch,)? $($out,)+), E, D, T>,
                Error = D::Err,
            >,
        {
            type Output = Tensor<($($batch,)? $($sum,)+), E, D, T>;
            type Error = D::Err;

            fn $method($($self_ref)+ self, x: Tensor<($($batch,)? $($dim,)+), E, D, T>) -> Result<Self::Output, D::Err> {
                const {
                    check_residual(
                        <($($out,)+) as StaticShape>::DIMS,
                        <($($dim,)+) as StaticShape>::DIMS,
                    )
                };
                let fx = self.branch.$method(x.with_empty_tape())?;
                let x = relabel::<_, ($($batch,)? $($sum,)+), _, _, _>(x);
                relabel::<_, ($($batch,)? $($sum,)+), _, _, _>(fx).try_add(x)
            }
        }
    };
    (@projection $Trait:ident, $method:ident, [$($batch:ident)?] ($($dim:ident),+) ($($out:ident),+) ($($short:ident),+) $($self_ref:tt)+) => {
        impl<
                $($batch: Dim,)?
                $($dim: StaticDim,)+
                $($out: StaticDim,)+
                $($short: StaticDim,)+
                E: Dtype,
                D: Device<E>,
                T: Tape<E, D>,
                F,
                Shortcut,
            > $Trait<Tensor<($($batch,)? $($dim,)+), E, D, T>> for ResidualProjection<F, Shortcut>
        where
            F: $Trait<
                Tensor<($($batch,)? $($dim,)+), E, D, T>,
                Output = Tensor<($($batch,)? $($out,)+), E, D, T>,
                Error = D::Err,
            >,
            Shortcut: $Trait<
                Tensor<($($batch,)? $($dim,)+), E, D, T>,
                Output = Tensor<($($batch,)? $($short,)+), E, D, T>,
                Error = D::Err,
            >,
        {
            type Output = Tensor<($($batch,)? $($out,)+), E, D, T>;
            type Error = D::Err;

            fn $method($($self_ref)+ self, x: Tensor<($($batch,)? $($dim,)+), E, D, T>) -> Result<Self::Output, D::Err> {
                const {
                    check_residual_projection(
                        <($($out,)+) as StaticShape>::DIMS,
                        <($($short,)+) as StaticShape>::DIMS,
                        <($($dim,)+) as StaticShape>::DIMS,
                    )
                };
                let fx = self.branch.$method(x.with_empty_tape())?;
                let sx = self.shortcut.$method(x)?;
                fx.try_add(relabel::<_, ($($batch,)? $($out,)+), _, _, _>(sx))
            }
        }
    };
}

residual_forward!([B], (C, H, W), (C1, H1, W1), (C2, H2, W2), (C1, H, W));
residual_forward!([], (C, H, W), (C1, H1, W1), (C2, H2, W2), (C1, H, W));
residual_forward!([B], (F0), (F1), (F2), (F1));
residual_forward!([], (F0), (F1), (F2), (F1));
