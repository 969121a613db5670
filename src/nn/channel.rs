//! ShuffleNet's channel operations as layers: `ChannelSplit` (half the channels through a
//! branch, half untouched) and `ChannelShuffle` (interleave the groups' channels).

use super::relabel::relabel;
use super::residual::nested_rows;
use crate::shape::{
    check_channel_shuffle, check_channel_split, Halved, ShapeInfer, StaticDim, StaticShape,
    SummaryRow,
};
use dfdx::nn::{BuildOnDevice, Module, ModuleMut, ModuleVisitor, NonMutableModule};
use dfdx::nn::{TensorCollection, ZeroSizedModule};
use dfdx::prelude::*;

/// Interleaves the channels of `GROUPS` groups, so that the next grouped or split layer
/// sees channels from every group: channel `g * (C / GROUPS) + i` moves to
/// `i * GROUPS + g`.
///
/// PyTorch equivalent: torchvision's `channel_shuffle(x, GROUPS)` (`view` as
/// `(B, GROUPS, C / GROUPS, H, W)`, `transpose(1, 2)`, `view` back). The channel count
/// must be a multiple of `GROUPS`, which is checked at compile time:
///
/// ```text
/// shape mismatch: ChannelShuffle<3> needs channels divisible by 3, but got 116 (its input is (116, 28, 28))
/// ```
///
/// # Generics
/// - `GROUPS`: the number of groups, at least 1.
///
/// # Shapes
/// - `(C, H, W) -> (C, H, W)`
/// - `(B, C, H, W) -> (B, C, H, W)`, `B` a `Const` or `usize`.
///
/// ```
/// use shapesafe::prelude::*;
/// let dev = Cpu::default();
/// let x: Tensor<Rank3<4, 1, 1>, f32, _> = dev.tensor([[[0.0]], [[1.0]], [[2.0]], [[3.0]]]);
/// // Groups (0, 1) and (2, 3) interleave.
/// assert_eq!(ChannelShuffle::<2>.forward(x).as_vec(), [0.0, 2.0, 1.0, 3.0]);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ChannelShuffle<const GROUPS: usize>;

impl<const GROUPS: usize> ZeroSizedModule for ChannelShuffle<GROUPS> {}
impl<const GROUPS: usize> NonMutableModule for ChannelShuffle<GROUPS> {}

impl<const GROUPS: usize, C: StaticDim, H: StaticDim, W: StaticDim> ShapeInfer<(C, H, W)>
    for ChannelShuffle<GROUPS>
{
    type Output = (C, H, W);
    const CHECK: () = check_channel_shuffle(GROUPS, [C::SIZE, H::SIZE, W::SIZE]);
    const PARAMS: usize = 0;
    fn name() -> String {
        format!("ChannelShuffle<{GROUPS}>")
    }
}

impl<const GROUPS: usize, B: Dim, C: StaticDim, H: StaticDim, W: StaticDim, E, D, T>
    Module<Tensor<(B, C, H, W), E, D, T>> for ChannelShuffle<GROUPS>
where
    E: Dtype,
    D: Device<E>,
    T: Tape<E, D>,
{
    type Output = Tensor<(B, C, H, W), E, D, T>;
    type Error = D::Err;

    fn try_forward(&self, x: Tensor<(B, C, H, W), E, D, T>) -> Result<Self::Output, D::Err> {
        const { <Self as ShapeInfer<(C, H, W)>>::CHECK };
        let batch = x.shape().0;
        let grouped = (batch.size(), GROUPS, C::SIZE / GROUPS, H::SIZE * W::SIZE);
        x.try_reshape_like(&grouped)?
            .try_permute::<_, Axes4<0, 2, 1, 3>>()?
            .try_reshape_like(&(batch, C::default(), H::default(), W::default()))
    }
}

impl<const GROUPS: usize, C: StaticDim, H: StaticDim, W: StaticDim, E, D, T>
    Module<Tensor<(C, H, W), E, D, T>> for ChannelShuffle<GROUPS>
where
    E: Dtype,
    D: Device<E>,
    T: Tape<E, D>,
{
    type Output = Tensor<(C, H, W), E, D, T>;
    type Error = D::Err;

    fn try_forward(&self, x: Tensor<(C, H, W), E, D, T>) -> Result<Self::Output, D::Err> {
        let x = x.try_reshape_like(&(Const::<1>, C::default(), H::default(), W::default()))?;
        self.try_forward(x)?.try_reshape_like(&Default::default())
    }
}

/// ShuffleNet V2's channel split: the first half of the channels passes through unchanged,
/// the second half through `Branch`, and the two are concatenated, first half first.
///
/// PyTorch equivalent: `x1, x2 = x.chunk(2, dim=1); torch.cat((x1, branch(x2)), dim=1)`
/// (torchvision's `InvertedResidual` with stride 1, before its channel shuffle). The
/// channel count must be even, and the branch must keep the shape of its half (so the
/// unit keeps its input's, and units stack, as in `Repeated`); both are checked at
/// compile time:
///
/// ```text
/// shape mismatch: ChannelSplit of (7, 8, 8): 7 channels do not split into two halves
/// ```
///
/// The branch is visited as `branch` (parameters `branch.0.weight`, ...).
///
/// # Generics
/// - `Branch`: the layers applied to the second half, `(C / 2, H, W) -> (C / 2, H, W)`.
///
/// # Shapes
/// - `(C, H, W) -> (C, H, W)`
/// - `(B, C, H, W) -> (B, C, H, W)`, `B` a `Const` or `usize`.
///
/// ```
/// use shapesafe::prelude::*;
/// type Unit = ChannelSplit<(Conv2d<4, 4, 3, 1, 1>, ReLU)>;
/// shapesafe::assert_shapes!(Unit: Rank3<8, 6, 6> => Rank3<8, 6, 6>);
/// let dev = Cpu::default();
/// let unit = dev.build_module::<Unit, f32>();
/// let x: Tensor<Rank4<2, 8, 6, 6>, f32, _> = dev.sample_normal();
/// let y = unit.forward(x.clone());
/// // The first image's first four channels pass through untouched.
/// assert_eq!(y.as_vec()[..4 * 36], x.as_vec()[..4 * 36]);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ChannelSplit<Branch> {
    /// The layers the second half goes through.
    pub branch: Branch,
}

impl<D: Device<E>, E: Dtype, Branch: BuildOnDevice<D, E>> BuildOnDevice<D, E>
    for ChannelSplit<Branch>
{
    type Built = ChannelSplit<Branch::Built>;
}

impl<E: Dtype, D: Device<E>, Branch: TensorCollection<E, D>> TensorCollection<E, D>
    for ChannelSplit<Branch>
{
    type To<E2: Dtype, D2: Device<E2>> = ChannelSplit<Branch::To<E2, D2>>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            Self::module("branch", |s| &s.branch, |s| &mut s.branch),
            |branch| ChannelSplit { branch },
        )
    }
}

impl<C, H, W, CB, HB, WB, Branch> ShapeInfer<(C, H, W)> for ChannelSplit<Branch>
where
    C: StaticDim,
    H: StaticDim,
    W: StaticDim,
    CB: StaticDim,
    HB: StaticDim,
    WB: StaticDim,
    Branch: ShapeInfer<(Halved<C>, H, W), Output = (CB, HB, WB)>,
{
    type Output = (C, H, W);
    const CHECK: () = {
        // The split first: an odd count is the mistake, not what the branch makes of it.
        // Constants a constant uses are evaluated before its body runs, so the split's
        // check is a constant too, named before the branch's.
        let () = SplitCheck::<(C, H, W), (CB, HB, WB)>::CHECK;
        let () = Branch::CHECK;
    };
    const PARAMS: usize = Branch::PARAMS;
    fn name() -> String {
        format!("ChannelSplit<{}>", Branch::name())
    }
    /// A `ChannelSplit` row for the joined output, then the branch's rows, indented.
    fn summarize(rows: &mut Vec<SummaryRow>) {
        rows.push(SummaryRow {
            layer: "ChannelSplit".to_string(),
            output: <Self::Output as StaticShape>::DIMS.to_vec(),
            params: 0,
        });
        nested_rows::<Branch, (Halved<C>, H, W)>("  branch: ", rows);
    }
}

/// [`check_channel_split`] as a constant of the input and branch shapes.
struct SplitCheck<Input, BranchOutput>(core::marker::PhantomData<(Input, BranchOutput)>);

impl<Input: StaticShape, BranchOutput: StaticShape> SplitCheck<Input, BranchOutput> {
    const CHECK: () = {
        let (i, b) = (Input::DIMS, BranchOutput::DIMS);
        check_channel_split([i[0], i[1], i[2]], [b[0], b[1], b[2]]);
    };
}

/// `Module` and `ModuleMut` of `ChannelSplit` on a batch.
macro_rules! split_forward {
    ($Trait:ident, $method:ident, $($self_ref:tt)+) => {
        impl<N, C, H, W, CB, HB, WB, E, D, T, Branch> $Trait<Tensor<(N, C, H, W), E, D, T>>
            for ChannelSplit<Branch>
        where
            N: Dim,
            C: StaticDim,
            H: StaticDim,
            W: StaticDim,
            CB: StaticDim,
            HB: StaticDim,
            WB: StaticDim,
            E: Dtype,
            D: Device<E>,
            T: Tape<E, D>,
            Branch: $Trait<
                Tensor<(N, Halved<C>, H, W), E, D, T>,
                Output = Tensor<(N, CB, HB, WB), E, D, T>,
                Error = D::Err,
            >,
        {
            type Output = Tensor<(N, C, H, W), E, D, T>;
            type Error = D::Err;

            fn $method(
                $($self_ref)+ self,
                x: Tensor<(N, C, H, W), E, D, T>,
            ) -> Result<Self::Output, D::Err> {
                const {
                    check_channel_split(
                        [C::SIZE, H::SIZE, W::SIZE],
                        [CB::SIZE, HB::SIZE, WB::SIZE],
                    )
                };
                let half = C::SIZE / 2;
                let kept = x.with_empty_tape().try_slice((.., ..half, .., ..))?;
                let second = x.try_slice((.., half.., .., ..))?;
                let processed = self.branch.$method(relabel::<_, (N, Halved<C>, H, W), _, _, _>(second))?;
                let processed = relabel::<_, (N, usize, H, W), _, _, _>(processed);
                let joined = (kept, processed).try_concat_along(Axis::<1>)?;
                Ok(relabel::<_, (N, C, H, W), _, _, _>(joined))
            }
        }
    };
}

split_forward!(Module, try_forward, &);
split_forward!(ModuleMut, try_forward_mut, &mut);
