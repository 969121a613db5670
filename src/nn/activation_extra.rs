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
/// the values are composed from dfdx's elementwise ops on the tensor's own device
/// (no copy to the host, also on `Cuda`): a range reduction to `|t| <= tan(pi/8)`
/// and a Taylor series, within about 2 ulp of `f64::atan` in f64 and of the exact
/// value in f32. `atan(±inf)` is `±pi/2` exactly, NaN stays NaN, `-0` stays `-0`.
/// The gradient is atan's exact derivative `1 / (1 + x^2)`, one tape entry rather
/// than the series' chain of ops.
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
        let (x, tape) = x.split_tape();
        let value = atan_untaped(x.clone())?;
        let slope = x.clone().try_square()?.try_add(E::one())?.try_recip()?;
        // `x - c`, with `c` an untaped copy of x, is exactly 0 with derivative 1, so
        // `(x - c) * slope + atan(x)` has atan's value and atan's gradient. The copy
        // must be a new tensor: dfdx's backward rejects a binary op on one tensor id,
        // and a clone keeps the id, while every op (here `+ 0`) makes a new one.
        // An infinite x makes `x - c` NaN; zeroing it keeps atan(±inf) = ±pi/2 (the
        // slope there is 0 anyway).
        let constant = x.clone().try_add(E::zero())?;
        x.put_tape(tape)
            .try_sub(constant)?
            .try_nans_to(0.0)?
            .try_mul(slope)?
            .try_add(value)
    }
}

/// `atan` of every element, from dfdx's elementwise ops only, so that it runs on the
/// tensor's device.
///
/// Accuracy: with `a = |x|`, `r = min(a, 1/a)` lies in `[0, 1]` and
/// `atan(a) = pi/2 - atan(r)` where `a > 1`; where `r > tan(pi/8)`,
/// `t = (r - 1) / (r + 1)` and `atan(r) = pi/4 + atan(t)`, else `t = r`, so
/// `|t| <= tan(pi/8) = 0.4142` and `t^2 <= 3 - 2 sqrt(2) = 0.1716`. The odd Taylor
/// series of `atan(t)` alternates with decreasing terms, so cutting it after `n`
/// terms errs by less than the first omitted one, `|t|^(2n+1) / (2n+1)`; relative to
/// `atan(t) >= 0.94 |t|` that is below `0.1716^n / (0.94 (2n+1))`, and
/// [`atan_series_terms`] takes the smallest `n` that makes it a quarter of the
/// dtype's epsilon (20 terms for f64, 9 for f32), leaving the rounding of the
/// reductions: a scalar replay of these same operations over 4 million inputs
/// came within 2 ulp of `f64::atan` in f64 and 2.1 f32-ulp of the exact value in
/// f32. The reduction by `pi/4` was
/// chosen over repeated halvings `atan(u) = 2 atan(u / (1 + sqrt(1 + u^2)))`, which
/// round at every step (3 to 5 ulp measured) and cost more ops for the same series.
/// `pi/2` and `pi/4` are added as a rounded head and a small tail, which keeps their
/// own rounding out of the results near `pi/8` where `pi/4 + atan(t)` cancels.
fn atan_untaped<S, E, D>(x: Tensor<S, E, D>) -> Result<Tensor<S, E, D>, D::Err>
where
    S: Shape,
    E: Dtype + num_traits::Float,
    D: Device<E>,
{
    // pi - f64's PI, so `(head, tail)` below carries pi/2 and pi/4 past any dtype's precision.
    const PI_TAIL: f64 = 1.2246467991473532e-16;
    let (half_pi, half_pi_tail) = split_constant::<E>(std::f64::consts::FRAC_PI_2, PI_TAIL / 2.0);
    let (quarter_pi, quarter_pi_tail) =
        split_constant::<E>(std::f64::consts::FRAC_PI_4, PI_TAIL / 4.0);
    let tan_eighth_pi = constant::<E>(std::f64::consts::SQRT_2 - 1.0);

    // The regions are picked with `choose`, and NaN compares false everywhere, so a
    // NaN travels through the `else` branches as itself.
    let magnitude = x.clone().try_abs()?;
    let beyond_one = magnitude.try_gt(E::one())?;
    // 1/0 = inf on the branch not taken is harmless: `choose` only copies values.
    let reciprocal = magnitude.clone().try_recip()?;
    let r = beyond_one.clone().try_choose(reciprocal, magnitude)?;
    let above_eighth = r.try_gt(tan_eighth_pi)?;
    let shifted = r
        .clone()
        .try_sub(E::one())?
        .try_div(r.clone().try_add(E::one())?)?;
    let t = above_eighth.clone().try_choose(shifted, r)?;

    let series = atan_series(t, atan_series_terms(E::epsilon().to_f64().unwrap_or(0.0)))?;
    let plus_quarter = series
        .clone()
        .try_add(quarter_pi_tail)?
        .try_add(quarter_pi)?;
    let at_most_one = above_eighth.try_choose(plus_quarter, series)?;
    // 1/inf = 0 makes this exactly pi/2 for infinite x: the tail is below half an ulp.
    let complement = at_most_one
        .clone()
        .try_negate()?
        .try_add(half_pi_tail)?
        .try_add(half_pi)?;
    let positive = beyond_one.try_choose(complement, at_most_one)?;

    // atan is odd; zeros and NaN are their own atan, which keeps -0 as -0.
    let negative = x.try_lt(E::zero())?;
    let nonzero_positive = x.try_gt(E::zero())?;
    let signed = nonzero_positive.try_choose(positive.clone(), x)?;
    negative.try_choose(positive.try_negate()?, signed)
}

/// `t - t^3/3 + t^5/5 - ...`, `terms` terms, by Horner's rule in `t^2` with the
/// leading `t` added last, so the small correction's rounding barely reaches it.
fn atan_series<S, E, D>(t: Tensor<S, E, D>, terms: usize) -> Result<Tensor<S, E, D>, D::Err>
where
    S: Shape,
    E: Dtype + num_traits::Float,
    D: Device<E>,
{
    let coefficient = |k: usize| {
        let sign = if k.is_multiple_of(2) { 1.0 } else { -1.0 };
        constant::<E>(sign / (2 * k + 1) as f64)
    };
    let squared = t.clone().try_square()?;
    let mut tail = squared.clone().try_mul(coefficient(terms - 1))?;
    for k in (1..terms - 1).rev() {
        tail = tail.try_add(coefficient(k))?.try_mul(squared.clone())?;
    }
    // Here tail = t^2 (c_1 + t^2 (c_2 + ...)) and the series is t + t * tail.
    let correction = t.clone().try_mul(tail)?;
    t.try_add(correction)
}

/// The smallest term count (at least 3) whose truncation bound `q^n / (0.94 (2n+1))`,
/// with `q = tan(pi/8)^2`, is at most a quarter of `epsilon`; see [`atan_untaped`].
fn atan_series_terms(epsilon: f64) -> usize {
    let q = 3.0 - 2.0 * std::f64::consts::SQRT_2;
    (3..64)
        .find(|&n| q.powi(n as i32) / (0.94 * (2 * n + 1) as f64) <= epsilon / 4.0)
        .unwrap_or(64)
}

/// A constant in the dtype, rounded to nearest.
fn constant<E: Dtype>(value: f64) -> E {
    E::from_f64(value).expect("a float dtype represents every finite f64, rounded")
}

/// `value + tail` as a head (`value` rounded to the dtype) and the rest, also rounded.
fn split_constant<E: Dtype>(value: f64, tail: f64) -> (E, E) {
    let head = constant::<E>(value);
    let rest = (value - head.to_f64().unwrap_or(value)) + tail;
    (head, constant::<E>(rest))
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
