//! `Concat`: two branches on one input, joined along the channel dim (U-Net's skip connection).

use super::relabel::relabel;
use super::residual::nested_rows;
use crate::shape::{check_concat, ShapeInfer, StaticDim, StaticShape, SumDim, SummaryRow};
use dfdx::nn::{BuildOnDevice, Module, ModuleMut, ModuleVisitor, TensorCollection};
use dfdx::prelude::*;

/// Runs `A` and `B` on the same input and concatenates their outputs along the
/// channel dim.
///
/// PyTorch equivalent: `torch.cat([a(x), b(x)], dim=1)` (batched) or `dim=0`
/// (one image). With [`Identity`](crate::nn::builders::Identity) as `A` it is
/// U-Net's skip connection, `cat([x, up(x)])`; with two convolutions it is an
/// Inception-style split. The branches' spatial sizes must be equal, which is
/// checked at compile time:
///
/// ```text
/// shape mismatch: Concat of (64, 28, 28) and (64, 27, 27): spatial sizes differ
/// ```
///
/// The output's channel dim is [`SumDim<CA, CB>`](crate::shape::SumDim), of size
/// `CA + CB`; its spatial dims are `A`'s types. Gradients flow into both branches
/// and, through both, into the input. [`Module::forward`] and
/// [`ModuleMut::forward_mut`] run the branches in the same mode. The branches are
/// visited as `0` and `1` (parameters `0.weight`, `1.weight`, ...).
///
/// At most one branch may be a bare `Identity`: with `Identity` on both sides,
/// dfdx's backward would see one tensor twice and panic.
///
/// # Generics
/// - `A`, `B`: the branches, layers or tuples of layers.
///
/// # Shapes
/// - `(C, H, W) -> (SumDim<CA, CB>, HA, WA)` where `A` gives `(CA, HA, WA)` and
///   `B` gives `(CB, HB, WB)` with `HB == HA`, `WB == WA`;
/// - `(N, C, H, W) -> (N, SumDim<CA, CB>, HA, WA)`, `N` a `Const` or `usize`.
///
/// ```
/// use shapesafe::prelude::*;
/// type Skip = Concat<Identity, (Conv2d<4, 6, 3, 1, 1>, ReLU)>;
/// shapesafe::assert_shapes!(Skip: Rank3<4, 8, 8> => Rank3<10, 8, 8>);
/// let dev = Cpu::default();
/// let skip = dev.build_module::<Skip, f32>();
/// let x: Tensor<Rank4<2, 4, 8, 8>, f32, _> = dev.sample_normal();
/// let y: Tensor<(Const<2>, SumDim<Const<4>, Const<6>>, Const<8>, Const<8>), f32, _> =
///     skip.forward(x.clone());
/// assert_eq!(y.shape().concrete(), [2, 10, 8, 8]);
/// // The first 4 channels are the input itself.
/// assert_eq!(y.as_vec()[..64], x.as_vec()[..64]);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Concat<A, B>(
    /// The first branch; its channels come first.
    pub A,
    /// The second branch.
    pub B,
);

impl<D: Device<E>, E: Dtype, A: BuildOnDevice<D, E>, B: BuildOnDevice<D, E>> BuildOnDevice<D, E>
    for Concat<A, B>
{
    type Built = Concat<A::Built, B::Built>;
}

impl<E: Dtype, D: Device<E>, A: TensorCollection<E, D>, B: TensorCollection<E, D>>
    TensorCollection<E, D> for Concat<A, B>
{
    type To<E2: Dtype, D2: Device<E2>> = Concat<A::To<E2, D2>, B::To<E2, D2>>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::module("0", |s| &s.0, |s| &mut s.0),
                Self::module("1", |s| &s.1, |s| &mut s.1),
            ),
            |(a, b)| Concat(a, b),
        )
    }
}

impl<S, A, B, CA, HA, WA, CB, HB, WB> ShapeInfer<S> for Concat<A, B>
where
    S: StaticShape,
    A: ShapeInfer<S, Output = (CA, HA, WA)>,
    B: ShapeInfer<S, Output = (CB, HB, WB)>,
    CA: StaticDim,
    HA: StaticDim,
    WA: StaticDim,
    CB: StaticDim,
    HB: StaticDim,
    WB: StaticDim,
{
    type Output = (SumDim<CA, CB>, HA, WA);
    const CHECK: () = {
        let () = A::CHECK;
        let () = B::CHECK;
        check_concat(
            <(CA, HA, WA) as StaticShape>::DIMS,
            <(CB, HB, WB) as StaticShape>::DIMS,
        );
    };
    const PARAMS: usize = A::PARAMS + B::PARAMS;
    fn name() -> String {
        format!("Concat<{}, {}>", A::name(), B::name())
    }
    /// A `Concat` row for the joined output, then each branch's rows, indented and
    /// labelled `0:` and `1:`.
    fn summarize(rows: &mut Vec<SummaryRow>) {
        rows.push(SummaryRow {
            layer: "Concat".to_string(),
            output: <Self::Output as StaticShape>::DIMS.to_vec(),
            params: 0,
        });
        nested_rows::<A, S>("  0: ", rows);
        nested_rows::<B, S>("  1: ", rows);
    }
}

/// `Module` and `ModuleMut` for one input rank. dfdx 0.13 concatenates `Const`
/// dims only on nightly, so the channels travel as `usize` through its concat
/// and come back as `SumDim`.
macro_rules! concat_forward {
    ($Trait:ident, $method:ident, [$($batch:ident)?], $axis:literal, $($self_ref:tt)+) => {
        impl<
                $($batch: Dim,)?
                C: StaticDim,
                H: StaticDim,
                W: StaticDim,
                CA: StaticDim,
                HA: StaticDim,
                WA: StaticDim,
                CB: StaticDim,
                HB: StaticDim,
                WB: StaticDim,
                E: Dtype,
                D: Device<E>,
                T: Tape<E, D>,
                A,
                B,
            > $Trait<Tensor<($($batch,)? C, H, W), E, D, T>> for Concat<A, B>
        where
            A: $Trait<
                Tensor<($($batch,)? C, H, W), E, D, T>,
                Output = Tensor<($($batch,)? CA, HA, WA), E, D, T>,
                Error = D::Err,
            >,
            B: $Trait<
                Tensor<($($batch,)? C, H, W), E, D, T>,
                Output = Tensor<($($batch,)? CB, HB, WB), E, D, T>,
                Error = D::Err,
            >,
        {
            type Output = Tensor<($($batch,)? SumDim<CA, CB>, HA, WA), E, D, T>;
            type Error = D::Err;

            fn $method(
                $($self_ref)+ self,
                x: Tensor<($($batch,)? C, H, W), E, D, T>,
            ) -> Result<Self::Output, D::Err> {
                const {
                    check_concat(
                        <(CA, HA, WA) as StaticShape>::DIMS,
                        <(CB, HB, WB) as StaticShape>::DIMS,
                    )
                };
                let a = self.0.$method(x.with_empty_tape())?;
                let b = self.1.$method(x)?;
                let a = relabel::<_, ($($batch,)? usize, HA, WA), _, _, _>(a);
                let b = relabel::<_, ($($batch,)? usize, HA, WA), _, _, _>(b);
                let y = (a, b).try_concat_along(Axis::<$axis>)?;
                Ok(relabel::<_, ($($batch,)? SumDim<CA, CB>, HA, WA), _, _, _>(y))
            }
        }
    };
}

concat_forward!(Module, try_forward, [N], 1, &);
concat_forward!(ModuleMut, try_forward_mut, [N], 1, &mut);
concat_forward!(Module, try_forward, [], 0, &);
concat_forward!(ModuleMut, try_forward_mut, [], 0, &mut);
