//! `LastStep`: the last time step of a sequence, to put a classifier head on a recurrent layer.

use crate::shape::{check_last_step, ShapeInfer, StaticDim};
use dfdx::nn::{Module, NonMutableModule, ZeroSizedModule};
use dfdx::prelude::*;

/// Takes the last time step of a batch-first sequence: PyTorch's `output[:, -1]`.
///
/// After a unidirectional layer this is the last layer's final `h`. After a
/// bidirectional one it is what PyTorch users take as `output[:, -1]`: the forward
/// direction's final state beside the reverse direction's state after its *first*
/// step (the reverse direction ends at time 0).
///
/// # Shapes
/// - `(B, T, F) -> (B, F)`; `(T, F) -> (F,)`. `T` must be at least 1 (a `Const<0>` fails
///   the build; an empty `usize` sequence panics).
///
/// ```
/// use shapesafe::prelude::*;
/// let dev = Cpu::default();
/// let x = dev.tensor([[[1.0f32, 2.0], [3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]]]);
/// assert_eq!(LastStep.forward(x).array(), [[3.0, 4.0], [7.0, 8.0]]);
/// type Net = (Lstm<28, 128>, LastStep, Linear<128, 10>);
/// shapesafe::assert_shapes!(Net: Rank2<28, 28> => Rank1<10>);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct LastStep;

impl ZeroSizedModule for LastStep {}
impl NonMutableModule for LastStep {}

impl<Steps: StaticDim, F: StaticDim> ShapeInfer<(Steps, F)> for LastStep {
    type Output = (F,);
    const CHECK: () = check_last_step(Steps::SIZE);
    const PARAMS: usize = 0;
    fn name() -> String {
        "LastStep".to_string()
    }
}

impl<B: Dim, Steps: Dim, F: Dim, E: Dtype, D: Device<E>, T: Tape<E, D>>
    Module<Tensor<(B, Steps, F), E, D, T>> for LastStep
{
    type Output = Tensor<(B, F), E, D, T>;
    type Error = D::Err;

    fn try_forward(&self, x: Tensor<(B, Steps, F), E, D, T>) -> Result<Self::Output, D::Err> {
        let steps = x.shape().1.size();
        assert!(steps > 0, "LastStep: the sequence has 0 steps");
        let index = x.device().tensor(steps - 1);
        x.try_permute::<_, Axes3<1, 0, 2>>()?.try_select(index)
    }
}

impl<Steps: Dim, F: Dim, E: Dtype, D: Device<E>, T: Tape<E, D>> Module<Tensor<(Steps, F), E, D, T>>
    for LastStep
{
    type Output = Tensor<(F,), E, D, T>;
    type Error = D::Err;

    fn try_forward(&self, x: Tensor<(Steps, F), E, D, T>) -> Result<Self::Output, D::Err> {
        let steps = x.shape().0.size();
        assert!(steps > 0, "LastStep: the sequence has 0 steps");
        let index = x.device().tensor(steps - 1);
        x.try_select(index)
    }
}
