//! More activation layers with PyTorch's names: BinaryStep, Arctan, a learnable PReLU, and Maxout.

use crate::shape::{check_maxout, maxout_name, MaxoutOut, ShapeInfer, StaticDim, StaticShape};
use dfdx::nn::{BuildModule, BuildOnDevice, Module, NonMutableModule, ZeroSizedModule};
use dfdx::nn::{ModuleVisitor, TensorCollection, TensorOptions};
use dfdx::prelude::*;

/// The Heaviside step: `1` where `x >= 0`, `0` elsewhere (and for NaN).
///
/// Its gradient is zero everywhere (PyTorch's `torch.heaviside` has none either),
/// so nothing before it learns through it; it is for the perceptron-style
/// threshold units of classic models, not for gradient training. The input's
/// tape is kept, so a model with a step inside still backpropagates into the
/// layers after it.
///
/// # Shapes
/// Any shape, unchanged.
///
/// ```
/// use shapesafe::prelude::*;
/// let y = BinaryStep.forward(Cpu::default().tensor([-0.5f32, 0.0, 2.0]));
/// assert_eq!(y.array(), [0.0, 1.0, 1.0]);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct BinaryStep;

/// Arctangent, `atan(x)`, with derivative `1 / (1 + x^2)`.
///
/// PyTorch equivalent: `torch.atan` as a layer. dfdx 0.13 has no atan kernel, so
/// the values are computed on the host (one copy each way on a GPU device) and the
/// gradient is put on the tape by composing dfdx ops.
///
/// # Shapes
/// Any shape, unchanged.
///
/// ```
/// use shapesafe::prelude::*;
/// let y = Arctan.forward(Cpu::default().tensor([0.0f64, 1.0, f64::INFINITY]));
/// assert_eq!(y.array(), [0.0, std::f64::consts::FRAC_PI_4, std::f64::consts::FRAC_PI_2]);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Arctan;

/// Maxout: the maximum over each group of `K` consecutive features
/// (Goodfellow et al., 2013).
///
/// PyTorch has no layer for it; it is `x.view(B, F // K, K).max(dim=-1).values`.
/// `K` must divide the feature count, which is checked at compile time:
///
/// ```text
/// shape mismatch: Maxout<3> takes the max over groups of 3 features, but 3 does not divide its 10 input features
/// ```
///
/// Where several features of a group tie for the maximum, each of them gets the
/// gradient (dfdx's `max` rule); PyTorch picks one.
///
/// # Generics
/// - `K`: features per group.
///
/// # Shapes
/// - `(F,) -> (MaxoutOut<F, K>,)`, of size `F / K`
/// - `(B, F) -> (B, MaxoutOut<F, K>)`
///
/// ```
/// use shapesafe::prelude::*;
/// type Net = (Linear<8, 12>, Maxout<3>, Linear<4, 2>);
/// shapesafe::assert_shapes!(Net: Rank1<8> => Rank1<2>);
/// let y = Maxout::<2>.forward(Cpu::default().tensor([[1.0f32, 5.0, -3.0, -4.0]]));
/// assert_eq!(y.as_vec(), [5.0, -3.0]);
/// ```
///
/// Groups that do not tile the features do not build:
///
/// ```compile_fail
/// use shapesafe::prelude::*;
/// type Net = (Linear<4, 10>, Maxout<3>);
/// shapesafe::assert_shapes!(Net: Rank1<4> => Rank1<3>);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Maxout<const K: usize>;

impl ZeroSizedModule for BinaryStep {}
impl NonMutableModule for BinaryStep {}
impl ZeroSizedModule for Arctan {}
impl NonMutableModule for Arctan {}
impl<const K: usize> ZeroSizedModule for Maxout<K> {}
impl<const K: usize> NonMutableModule for Maxout<K> {}

impl<S: StaticShape> ShapeInfer<S> for BinaryStep {
    type Output = S;
    const CHECK: () = ();
    const PARAMS: usize = 0;
    fn name() -> String {
        "BinaryStep".to_string()
    }
}

impl<S: StaticShape> ShapeInfer<S> for Arctan {
    type Output = S;
    const CHECK: () = ();
    const PARAMS: usize = 0;
    fn name() -> String {
        "Arctan".to_string()
    }
}

impl<S: StaticShape> ShapeInfer<S> for builder::PReLU {
    type Output = S;
    const CHECK: () = ();
    const PARAMS: usize = 1;
    fn name() -> String {
        "PReLU".to_string()
    }
}

impl<const K: usize, F: StaticDim> ShapeInfer<(F,)> for Maxout<K> {
    type Output = (MaxoutOut<F, K>,);
    const CHECK: () = check_maxout(K, F::SIZE, F::FACTORS);
    const PARAMS: usize = 0;
    fn name() -> String {
        maxout_name(K).as_str().to_string()
    }
}

impl<S: Shape, E: Dtype, D: Device<E>, T: Tape<E, D>> Module<Tensor<S, E, D, T>> for BinaryStep {
    type Output = Tensor<S, E, D, T>;
    type Error = D::Err;
    fn try_forward(&self, x: Tensor<S, E, D, T>) -> Result<Self::Output, D::Err> {
        // The step records no backward op, but the tape must travel on: it owns the
        // gradients of every parameter before this layer.
        let (x, tape) = x.split_tape();
        let ones = x.device().try_ones_like(&x)?;
        let zeros = x.device().try_zeros_like(&x)?;
        let y = x.try_ge(E::default())?.try_choose(ones, zeros)?;
        Ok(y.put_tape(tape))
    }
}

impl<S, E, D, T> Module<Tensor<S, E, D, T>> for Arctan
where
    S: Shape,
    E: Dtype + num_traits::Float,
    D: Device<E>,
    T: Tape<E, D>,
{
    type Output = Tensor<S, E, D, T>;
    type Error = D::Err;
    fn try_forward(&self, x: Tensor<S, E, D, T>) -> Result<Self::Output, D::Err> {
        let dev = x.device().clone();
        let shape = *x.shape();
        let host = x.as_vec();
        let value = dev.try_tensor_from_vec(host.iter().map(|v| v.atan()).collect(), shape)?;
        let slope: Vec<E> = host.iter().map(|&v| (E::one() + v * v).recip()).collect();
        let slope = dev.try_tensor_from_vec(slope, shape)?;
        // `x - c`, with `c` an untaped copy of x, is exactly 0 with derivative 1, so
        // `(x - c) * slope + atan(x)` has atan's value and atan's gradient. The copy
        // must be a new tensor: dfdx's backward rejects a binary op on one tensor id.
        // An infinite x makes `x - c` NaN; zeroing it keeps atan(±inf) = ±pi/2 (the
        // slope there is 0 anyway).
        let constant = dev.try_tensor_from_vec(host, shape)?;
        x.try_sub(constant)?
            .try_nans_to(0.0)?
            .try_mul(slope)?
            .try_add(value)
    }
}

impl<const K: usize, B: Dim, F: StaticDim, E: Dtype, D: Device<E>, T: Tape<E, D>>
    Module<Tensor<(B, F), E, D, T>> for Maxout<K>
{
    type Output = Tensor<(B, MaxoutOut<F, K>), E, D, T>;
    type Error = D::Err;
    fn try_forward(&self, x: Tensor<(B, F), E, D, T>) -> Result<Self::Output, D::Err> {
        const { <Maxout<K> as ShapeInfer<(F,)>>::CHECK };
        let batch = x.shape().0;
        x.try_reshape_like(&(batch, MaxoutOut::<F, K>::default(), Const::<K>))?
            .try_max::<_, Axis<2>>()
    }
}

impl<const K: usize, F: StaticDim, E: Dtype, D: Device<E>, T: Tape<E, D>>
    Module<Tensor<(F,), E, D, T>> for Maxout<K>
{
    type Output = Tensor<(MaxoutOut<F, K>,), E, D, T>;
    type Error = D::Err;
    fn try_forward(&self, x: Tensor<(F,), E, D, T>) -> Result<Self::Output, D::Err> {
        const { <Maxout<K> as ShapeInfer<(F,)>>::CHECK };
        x.try_reshape_like(&(MaxoutOut::<F, K>::default(), Const::<K>))?
            .try_max::<_, Axis<1>>()
    }
}

/// The builder (architecture) type of [`PReLU`].
pub mod builder {
    /// Parametric ReLU: `x` for `x >= 0`, `a * x` otherwise, with one learnable
    /// slope `a` shared by all elements, initialised to 0.25.
    ///
    /// PyTorch equivalent: `torch.nn.PReLU()` (`num_parameters=1, init=0.25`), with
    /// the same parameter name and shape (`weight`, `(1,)`). dfdx's own `PReLU`
    /// starts at 0 and gets no gradient for its slope in dfdx 0.13.
    ///
    /// # Shapes
    /// Any shape, unchanged; 1 parameter.
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// let dev = Cpu::default();
    /// let prelu = dev.build_module::<PReLU, f32>();
    /// let y = prelu.forward(dev.tensor([-2.0f32, 3.0]));
    /// assert_eq!(y.array(), [-0.5, 3.0]);
    /// ```
    #[derive(Debug, Clone, Copy, Default)]
    pub struct PReLU;
}

/// A built [`PReLU`](builder::PReLU) on device `D`.
///
/// # Shapes
/// As [`builder::PReLU`].
///
/// ```
/// use shapesafe::prelude::*;
/// let prelu = Cpu::default().build_module::<PReLU, f64>();
/// assert_eq!(prelu.weight.array(), [0.25]);
/// ```
#[derive(Debug, Clone)]
pub struct PReLU<E: Dtype, D: Storage<E>> {
    /// The negative slope, shape `(1,)` as in PyTorch; initialised to 0.25.
    pub weight: Tensor<Rank1<1>, E, D>,
}

impl<E: Dtype, D: Device<E>> BuildOnDevice<D, E> for builder::PReLU
where
    PReLU<E, D>: BuildModule<D, E>,
{
    type Built = PReLU<E, D>;
}

impl<E: Dtype, D: Storage<E>> NonMutableModule for PReLU<E, D> {}

impl<E: Dtype, D: Device<E>> TensorCollection<E, D> for PReLU<E, D> {
    type To<E2: Dtype, D2: Device<E2>> = PReLU<E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            Self::tensor(
                "weight",
                |s| &s.weight,
                |s| &mut s.weight,
                TensorOptions::reset_with(|t| {
                    t.copy_from(&[E::from_f64(0.25).unwrap_or(E::ONE)]);
                    Ok(())
                }),
            ),
            |weight| PReLU { weight },
        )
    }
}

impl<S: Shape, E: Dtype, D: Device<E>, T: Tape<E, D>> Module<Tensor<S, E, D, T>> for PReLU<E, D> {
    type Output = Tensor<S, E, D, T>;
    type Error = D::Err;
    fn try_forward(&self, x: Tensor<S, E, D, T>) -> Result<Self::Output, D::Err> {
        // Retaping the slope onto the input's tape type is what lets its gradient flow.
        let slope = self
            .weight
            .retaped::<T>()
            .try_reshape::<Rank0>()?
            .try_broadcast_like(x.shape())?;
        x.try_prelu(slope)
    }
}
