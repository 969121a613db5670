//! `Linear` on sequences: the same weights applied to every step of a `(B, S, F)` tensor.

use super::linear::{builder, Linear};
use crate::shape::{check_linear, linear_name, ShapeInfer, StaticDim};
use dfdx::nn::Module;
use dfdx::prelude::*;

/// A `Linear` on a sequence maps each step's features and keeps the steps, as PyTorch's
/// `nn.Linear` does on any leading dims.
///
/// # Shapes
/// `(S, F) -> (S, Const<OUT>)` where `F::SIZE == IN`.
///
/// ```
/// use shapesafe::prelude::*;
/// assert_eq!(<Linear<28, 64> as ShapeInfer<Rank2<28, 28>>>::Output::DIMS, [28, 64]);
/// ```
impl<const IN: usize, const OUT: usize, S: StaticDim, F: StaticDim> ShapeInfer<(S, F)>
    for builder::Linear<IN, OUT>
{
    type Output = (S, Const<OUT>);
    const CHECK: () = check_linear([IN, OUT], F::SIZE, F::FACTORS);
    const PARAMS: usize = IN * OUT + OUT;
    fn name() -> String {
        linear_name([IN, OUT]).as_str().to_string()
    }
}

/// Applies `x W^T + b` at every step of a batch of sequences; the steps share the weights.
///
/// # Shapes
/// `(B, S, F) -> (B, S, Const<OUT>)` where `F::SIZE == IN`; `B` and `S` may be `Const` or `usize`.
///
/// ```
/// use shapesafe::prelude::*;
/// let dev = Cpu::default();
/// let linear = dev.build_module::<Linear<3, 2>, f32>();
/// let x: Tensor<Rank3<4, 5, 3>, f32, _> = dev.sample_normal();
/// let y: Tensor<Rank3<4, 5, 2>, f32, _> = linear.forward(x.clone());
/// // Step 2 of sequence 1 is the Linear of that step alone.
/// let step: Tensor<Rank1<3>, f32, _> = x.select(dev.tensor(1)).select(dev.tensor(2));
/// let want = linear.forward(step).as_vec();
/// let got = y.select(dev.tensor(1)).select(dev.tensor(2)).as_vec();
/// assert!(want.iter().zip(&got).all(|(a, b)| (a - b).abs() < 1e-6));
/// ```
impl<
        const IN: usize,
        const OUT: usize,
        B: Dim,
        S: Dim,
        F: StaticDim,
        E: Dtype,
        D: Device<E>,
        T,
    > Module<Tensor<(B, S, F), E, D, T>> for Linear<IN, OUT, E, D>
where
    T: Tape<E, D>,
{
    type Output = Tensor<(B, S, Const<OUT>), E, D, T>;
    type Error = D::Err;

    fn try_forward(&self, x: Tensor<(B, S, F), E, D, T>) -> Result<Self::Output, D::Err> {
        const { <builder::Linear<IN, OUT> as ShapeInfer<(F,)>>::CHECK };
        let (batch, steps, _) = *x.shape();
        // One (B * S, IN) matmul is faster than a broadcast batched one for small IN.
        let flat = x.try_reshape_like(&(batch.size() * steps.size(), Const::<IN>))?;
        self.try_forward(flat)?
            .try_reshape_like(&(batch, steps, Const::<OUT>))
    }
}
