//! `Linear`: a fully connected layer that accepts any computed input dim of the right size.

use super::init::uniform_fan_in;
use super::relabel::relabel;
use crate::shape::{check_linear, linear_name, ShapeInfer, StaticDim};
use dfdx::nn::{BuildModule, BuildOnDevice, Module, NonMutableModule};
use dfdx::nn::{ModuleVisitor, TensorCollection, TensorOptions};
use dfdx::prelude::*;
use rand_distr::uniform::SampleUniform;

/// The builder (architecture) type of [`Linear`].
pub mod builder {
    /// Fully connected layer `y = x W^T + b`.
    ///
    /// PyTorch equivalent: `torch.nn.Linear(IN, OUT)`, with the same weight layout
    /// and initialisation (uniform in `±1/sqrt(IN)`). Unlike dfdx's `Linear`, the
    /// input's feature dim may be any compile-time dim of size `IN` — such as the
    /// `Flattened<(16, 5, 5)>` a [`Flatten`](crate::nn::builders::Flatten) produces — and
    /// a wrong size is a build error naming both numbers.
    ///
    /// # Generics
    /// - `IN`: input features; `OUT`: output features.
    ///
    /// # Shapes
    /// - `(F,) -> (Const<OUT>,)` where `F::SIZE == IN`
    /// - `(B, F) -> (B, Const<OUT>)`
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// let dev = Cpu::default();
    /// let model = dev.build_module::<(Flatten, Linear<400, 120>), f32>();
    /// let x: Tensor<Rank4<4, 16, 5, 5>, f32, _> = dev.zeros();
    /// let y: Tensor<Rank2<4, 120>, f32, _> = model.forward(x);
    /// ```
    #[derive(Debug, Clone, Copy, Default)]
    pub struct Linear<const IN: usize, const OUT: usize>;
}

/// A built [`Linear`](builder::Linear) on device `D`.
///
/// # Shapes
/// As [`builder::Linear`].
///
/// ```
/// use shapesafe::prelude::*;
/// let fc = Cpu::default().build_module::<Linear<3, 2>, f64>();
/// assert_eq!(fc.weight.shape().concrete(), [2, 3]);
/// ```
#[derive(Debug, Clone)]
pub struct Linear<const IN: usize, const OUT: usize, E: Dtype, D: Storage<E>> {
    /// `(OUT, IN)`, PyTorch's layout; initialised uniform in `±1/sqrt(IN)`.
    pub weight: Tensor<Rank2<OUT, IN>, E, D>,
    /// `(OUT,)`; initialised uniform in `±1/sqrt(IN)`.
    pub bias: Tensor<Rank1<OUT>, E, D>,
}

impl<const IN: usize, const OUT: usize, E: Dtype, D: Device<E>> BuildOnDevice<D, E>
    for builder::Linear<IN, OUT>
where
    Linear<IN, OUT, E, D>: BuildModule<D, E>,
{
    type Built = Linear<IN, OUT, E, D>;
}

impl<const IN: usize, const OUT: usize, E: Dtype, D: Storage<E>> NonMutableModule
    for Linear<IN, OUT, E, D>
{
}

impl<const IN: usize, const OUT: usize, E, D> TensorCollection<E, D> for Linear<IN, OUT, E, D>
where
    E: Dtype + num_traits::Float + SampleUniform,
    D: Device<E>,
{
    type To<E2: Dtype, D2: Device<E2>> = Linear<IN, OUT, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::tensor(
                    "weight",
                    |s| &s.weight,
                    |s| &mut s.weight,
                    TensorOptions::reset_with(|t| uniform_fan_in(t, IN)),
                ),
                Self::tensor(
                    "bias",
                    |s| &s.bias,
                    |s| &mut s.bias,
                    TensorOptions::reset_with(|t| uniform_fan_in(t, IN)),
                ),
            ),
            |(weight, bias)| Linear { weight, bias },
        )
    }
}

impl<const IN: usize, const OUT: usize, F: StaticDim> ShapeInfer<(F,)>
    for builder::Linear<IN, OUT>
{
    type Output = (Const<OUT>,);
    const CHECK: () = check_linear([IN, OUT], F::SIZE, F::FACTORS);
    const PARAMS: usize = IN * OUT + OUT;
    fn name() -> String {
        linear_name([IN, OUT]).as_str().to_string()
    }
}

impl<const IN: usize, const OUT: usize, B: Dim, F: StaticDim, E: Dtype, D: Device<E>, T>
    Module<Tensor<(B, F), E, D, T>> for Linear<IN, OUT, E, D>
where
    T: Tape<E, D>,
{
    type Output = Tensor<(B, Const<OUT>), E, D, T>;
    type Error = D::Err;

    fn try_forward(&self, x: Tensor<(B, F), E, D, T>) -> Result<Self::Output, D::Err> {
        const { <builder::Linear<IN, OUT> as ShapeInfer<(F,)>>::CHECK };
        let x: Tensor<(B, Const<IN>), E, D, T> = relabel(x);
        crate::kernels::linear::try_linear(x, &self.weight, &self.bias, false)
    }
}

impl<const IN: usize, const OUT: usize, F: StaticDim, E: Dtype, D: Device<E>, T>
    Module<Tensor<(F,), E, D, T>> for Linear<IN, OUT, E, D>
where
    T: Tape<E, D>,
{
    type Output = Tensor<(Const<OUT>,), E, D, T>;
    type Error = D::Err;

    fn try_forward(&self, x: Tensor<(F,), E, D, T>) -> Result<Self::Output, D::Err> {
        let x = x.try_reshape_like(&(Const::<1>, F::default()))?;
        self.try_forward(x)?.try_reshape_like(&(Const::<OUT>,))
    }
}
