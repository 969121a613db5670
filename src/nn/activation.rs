//! Activation layers with PyTorch's names: ReLU, ReLU6, Sigmoid, Tanh, LeakyReLU, ELU, Softplus, GELU, Identity, Softmax.

use crate::shape::{ShapeInfer, StaticShape};
use dfdx::nn::{Module, NonMutableModule, ZeroSizedModule};
use dfdx::prelude::*;

/// `max(0, x)`. PyTorch equivalent: `torch.nn.ReLU`.
///
/// dfdx's layer of the same name, on shapesafe's CPU kernel (`kernels::relu`): one
/// vectorised pass forward and backward in f32/f64 on `Cpu`, dfdx's `relu` elsewhere. The
/// derivative is 0 at 0, and a NaN input gives 0, as dfdx's.
///
/// # Shapes
/// Any shape, unchanged.
///
/// ```
/// use shapesafe::prelude::*;
/// let x = Cpu::default().tensor([-1.0f32, 2.0]);
/// assert_eq!(ReLU.forward(x).array(), [0.0, 2.0]);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ReLU;

impl<S: Shape, E: Dtype, D: Device<E>, T: Tape<E, D>> Module<Tensor<S, E, D, T>> for ReLU {
    type Output = Tensor<S, E, D, T>;
    type Error = D::Err;
    fn try_forward(&self, x: Tensor<S, E, D, T>) -> Result<Self::Output, D::Err> {
        crate::kernels::relu::try_relu(x)
    }
}

/// `1 / (1 + exp(-x))`, dfdx's own layer. PyTorch equivalent: `torch.nn.Sigmoid`.
///
/// # Shapes
/// Any shape, unchanged.
///
/// ```
/// use shapesafe::prelude::*;
/// let x = Cpu::default().tensor([0.0f32]);
/// assert_eq!(Sigmoid.forward(x).array(), [0.5]);
/// ```
pub use dfdx::nn::modules::Sigmoid;

/// Hyperbolic tangent, dfdx's own layer. PyTorch equivalent: `torch.nn.Tanh`.
///
/// # Shapes
/// Any shape, unchanged.
///
/// ```
/// use shapesafe::prelude::*;
/// let x = Cpu::default().tensor([0.0f32]);
/// assert_eq!(Tanh.forward(x).array(), [0.0]);
/// ```
pub use dfdx::nn::modules::Tanh;

/// Softmax over the last dim, dfdx's own layer. PyTorch equivalent: `torch.nn.Softmax(dim=-1)`.
///
/// # Shapes
/// Any shape, unchanged.
///
/// ```
/// use shapesafe::prelude::*;
/// let x = Cpu::default().tensor([[0.0f32, 0.0]]);
/// assert_eq!(Softmax.forward(x).array(), [[0.5, 0.5]]);
/// ```
pub use dfdx::nn::modules::Softmax;

macro_rules! shape_preserving {
    ($($layer:ty => $name:expr),* $(,)?) => {$(
        impl<S: StaticShape> ShapeInfer<S> for $layer {
            type Output = S;
            const CHECK: () = ();
            const PARAMS: usize = 0;
            fn name() -> String {
                $name.to_string()
            }
        }
    )*};
}

shape_preserving!(
    ReLU => "ReLU",
    Sigmoid => "Sigmoid",
    Tanh => "Tanh",
    Softmax => "Softmax",
    GELU => "GELU",
    Identity => "Identity",
    Softplus => "Softplus",
    LeakyReLU => "LeakyReLU",
    ELU => "ELU",
    ReLU6 => "ReLU6",
);

/// Gaussian error linear unit `x * Phi(x)`, exact (erf) form.
///
/// PyTorch equivalent: `torch.nn.GELU()` (default `approximate='none'`).
///
/// # Shapes
/// Any shape, unchanged.
///
/// ```
/// use shapesafe::prelude::*;
/// let y = GELU.forward(Cpu::default().tensor([1.0f64]));
/// assert!((y.array()[0] - 0.8413447460685429).abs() < 1e-12);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct GELU;

/// `min(max(x, 0), 6)`: the ReLU capped at 6 that MobileNet uses, so activations
/// stay in a range low-precision arithmetic can hold.
///
/// PyTorch equivalent: `torch.nn.ReLU6()`.
///
/// # Shapes
/// Any shape, unchanged.
///
/// ```
/// use shapesafe::prelude::*;
/// let y = ReLU6.forward(Cpu::default().tensor([-1.0f32, 3.0, 7.5]));
/// assert_eq!(y.array(), [0.0, 3.0, 6.0]);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ReLU6;

/// Returns its input unchanged. PyTorch equivalent: `torch.nn.Identity`.
///
/// # Shapes
/// Any shape, unchanged.
///
/// ```
/// use shapesafe::prelude::*;
/// let x = Cpu::default().tensor([3.0f32]);
/// assert_eq!(Identity.forward(x).array(), [3.0]);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Identity;

/// `ln(1 + exp(x))`, computed as `max(x, 0) + ln(1 + exp(-|x|))` so it never overflows.
///
/// PyTorch equivalent: `torch.nn.Softplus()` (`beta=1`).
///
/// # Shapes
/// Any shape, unchanged.
///
/// ```
/// use shapesafe::prelude::*;
/// let y = Softplus.forward(Cpu::default().tensor([0.0f64, 1000.0]));
/// assert!((y.array()[0] - 2f64.ln()).abs() < 1e-12);
/// assert_eq!(y.array()[1], 1000.0);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Softplus;

/// `x` for `x >= 0`, `negative_slope * x` otherwise.
///
/// PyTorch equivalent: `torch.nn.LeakyReLU(negative_slope=0.01)`; built modules
/// start with PyTorch's default slope, set the field to change it. Taped on the CPU it is
/// one fused pass each way, and its gradient at exactly 0 is the slope, as PyTorch's; on
/// other devices it is dfdx's `prelu`, whose gradient at 0 is 1.
///
/// # Shapes
/// Any shape, unchanged.
///
/// ```
/// use shapesafe::prelude::*;
/// let y = LeakyReLU::default().forward(Cpu::default().tensor([-2.0f64, 3.0]));
/// assert_eq!(y.array(), [-0.02, 3.0]);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct LeakyReLU {
    /// Slope for negative inputs.
    pub negative_slope: f64,
}

impl Default for LeakyReLU {
    fn default() -> Self {
        Self {
            negative_slope: 0.01,
        }
    }
}

/// Exponential linear unit: `x` for `x > 0`, `alpha * (exp(x) - 1)` otherwise.
///
/// PyTorch equivalent: `torch.nn.ELU(alpha=1.0)`; set the field to change `alpha`.
///
/// # Shapes
/// Any shape, unchanged.
///
/// ```
/// use shapesafe::prelude::*;
/// let y = ELU::default().forward(Cpu::default().tensor([-1.0f64, 2.0]));
/// assert!((y.array()[0] - (-1f64).exp_m1()).abs() < 1e-12);
/// assert_eq!(y.array()[1], 2.0);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ELU {
    /// Scale of the negative branch.
    pub alpha: f64,
}

impl Default for ELU {
    fn default() -> Self {
        Self { alpha: 1.0 }
    }
}

macro_rules! zero_sized {
    ($($layer:ty),*) => {$(
        impl ZeroSizedModule for $layer {}
        impl NonMutableModule for $layer {}
    )*};
}
zero_sized!(ReLU, GELU, Identity, Softplus, LeakyReLU, ELU, ReLU6);

impl<S: Shape, E: Dtype, D: Device<E>, T: Tape<E, D>> Module<Tensor<S, E, D, T>> for GELU {
    type Output = Tensor<S, E, D, T>;
    type Error = D::Err;
    fn try_forward(&self, x: Tensor<S, E, D, T>) -> Result<Self::Output, D::Err> {
        // dfdx 0.13's accurate_gelu has the right value but its derivative drops the
        // 1/sqrt(2) of d/dx erf(x/sqrt(2)). Adding g(x) - g(x), with g's gradient taped
        // only once, changes no value and restores the missing part of the gradient:
        // g(x) = (1 - 1/sqrt(2)) / sqrt(pi) * exp(-x^2 / 2).
        let scale = (1.0 - core::f64::consts::FRAC_1_SQRT_2) / core::f64::consts::PI.sqrt();
        let scale = E::from_f64(scale).unwrap_or_default();
        let correction = |t: Tensor<S, E, D, T>| -> Result<Tensor<S, E, D, T>, D::Err> {
            t.try_square()?
                .try_mul(E::from_f64(-0.5).unwrap_or_default())?
                .try_exp()?
                .try_mul(scale)
        };
        let taped = correction(x.with_empty_tape())?;
        let untaped = correction(x.retaped::<T>())?;
        let (untaped, _) = untaped.split_tape();
        x.try_accurate_gelu()?.try_add(taped)?.try_sub(untaped)
    }
}

impl<S: Shape, E: Dtype, D: Device<E>, T: Tape<E, D>> Module<Tensor<S, E, D, T>> for Identity {
    type Output = Tensor<S, E, D, T>;
    type Error = D::Err;
    fn try_forward(&self, x: Tensor<S, E, D, T>) -> Result<Self::Output, D::Err> {
        Ok(x)
    }
}

impl<S: Shape, E: Dtype, D: Device<E>, T: Tape<E, D>> Module<Tensor<S, E, D, T>> for Softplus {
    type Output = Tensor<S, E, D, T>;
    type Error = D::Err;
    fn try_forward(&self, x: Tensor<S, E, D, T>) -> Result<Self::Output, D::Err> {
        let tail = x
            .with_empty_tape()
            .try_abs()?
            .try_negate()?
            .try_exp()?
            .try_add(E::ONE)?
            .try_ln()?;
        x.try_relu()?.try_add(tail)
    }
}

impl<S: Shape, E: Dtype, D: Device<E>, T: Tape<E, D>> Module<Tensor<S, E, D, T>> for LeakyReLU {
    type Output = Tensor<S, E, D, T>;
    type Error = D::Err;
    fn try_forward(&self, x: Tensor<S, E, D, T>) -> Result<Self::Output, D::Err> {
        crate::kernels::relu::try_leaky_relu(x, self.negative_slope)
    }
}

impl<S: Shape, E: Dtype, D: Device<E>, T: Tape<E, D>> Module<Tensor<S, E, D, T>> for ELU {
    type Output = Tensor<S, E, D, T>;
    type Error = D::Err;
    fn try_forward(&self, x: Tensor<S, E, D, T>) -> Result<Self::Output, D::Err> {
        let alpha = E::from_f64(self.alpha).unwrap_or(E::ONE);
        // min(x, 0) = -relu(-x); exp of it is at most 1, so nothing overflows.
        let negative = x
            .with_empty_tape()
            .try_negate()?
            .try_relu()?
            .try_negate()?
            .try_exp()?
            .try_sub(E::ONE)?
            .try_mul(alpha)?;
        x.try_relu()?.try_add(negative)
    }
}

impl<S: Shape, E: Dtype, D: Device<E>, T: Tape<E, D>> Module<Tensor<S, E, D, T>> for ReLU6 {
    type Output = Tensor<S, E, D, T>;
    type Error = D::Err;
    fn try_forward(&self, x: Tensor<S, E, D, T>) -> Result<Self::Output, D::Err> {
        x.try_clamp(0.0, 6.0)
    }
}
