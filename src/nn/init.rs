//! Parameter initialisation: PyTorch's default for layers with weights, and selectable
//! schemes (Kaiming, Xavier, LeCun) that re-initialise a whole model.

use dfdx::prelude::*;
use rand_distr::{uniform::SampleUniform, Uniform};

/// Fills `t` uniformly in `±1/sqrt(fan_in)`: PyTorch's default for `Linear` and
/// `Conv2d` weights and biases (`kaiming_uniform(a = sqrt(5))` reduces to it).
pub(crate) fn uniform_fan_in<S, E, D>(t: &mut Tensor<S, E, D>, fan_in: usize) -> Result<(), D::Err>
where
    S: Shape,
    E: Dtype + num_traits::Float + SampleUniform,
    D: Device<E>,
{
    let bound = E::one() / E::from(fan_in.max(1)).unwrap_or(E::one()).sqrt();
    t.try_fill_with_distr(Uniform::new(-bound, bound))
}

/// Fills `t` uniformly in `[lo, hi)`: a derived model's `#[param(init = uniform(lo, hi))]`.
#[doc(hidden)]
pub fn fill_uniform<S, E, D>(t: &mut Tensor<S, E, D>, lo: f64, hi: f64) -> Result<(), D::Err>
where
    S: Shape,
    E: Dtype + num_traits::Float + SampleUniform,
    D: Device<E>,
{
    let (lo, hi) = (
        E::from(lo).unwrap_or(E::zero()),
        E::from(hi).unwrap_or(E::one()),
    );
    t.try_fill_with_distr(Uniform::new(lo, hi))
}

/// Fills `t` from a normal distribution: a derived model's `#[param(init = normal(mean, std))]`.
#[doc(hidden)]
pub fn fill_normal<S, E, D>(t: &mut Tensor<S, E, D>, mean: f64, std: f64) -> Result<(), D::Err>
where
    S: Shape,
    E: Dtype + num_traits::Float,
    D: Device<E>,
    rand_distr::StandardNormal: rand_distr::Distribution<E>,
{
    let (mean, std) = (
        E::from(mean).unwrap_or(E::zero()),
        E::from(std).unwrap_or(E::one()),
    );
    match rand_distr::Normal::new(mean, std) {
        Ok(normal) => t.try_fill_with_distr(normal),
        // A negative or NaN std: the attribute is a constant, so this is the user's typo.
        Err(_) => panic!("#[param(init = normal(mean, std))] needs a finite std >= 0"),
    }
}

/// Fills `t` uniformly in `±1/sqrt(fan_in)`: a derived model's `#[param(init = fan_in(n))]`.
#[doc(hidden)]
pub fn fill_fan_in<S, E, D>(t: &mut Tensor<S, E, D>, fan_in: usize) -> Result<(), D::Err>
where
    S: Shape,
    E: Dtype + num_traits::Float + SampleUniform,
    D: Device<E>,
{
    uniform_fan_in(t, fan_in)
}

/// A weight initialisation scheme, with PyTorch's formulas (`torch.nn.init`).
///
/// `fan_in` and `fan_out` come from the weight's shape as in PyTorch's
/// `_calculate_fan_in_and_fan_out`, see [`fan_in_and_fan_out`].
///
/// # Shapes
/// Weights of rank 2 or more: `(out, in)` or `(out, in / groups, k, k)`.
///
/// ```
/// use shapesafe::nn::init::Init;
/// // Kaiming for ReLU: std = sqrt(2 / fan_in).
/// assert!((Init::KaimingNormal.std(50, 10) - 0.2).abs() < 1e-12);
/// // A uniform in ±b has std b / sqrt(3): Xavier's bound is sqrt(6 / (fan_in + fan_out)).
/// assert!((Init::XavierUniform.bound(50, 10).unwrap() - 0.1f64.sqrt()).abs() < 1e-12);
/// assert_eq!(Init::LeCunNormal.bound(50, 10), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Init {
    /// Uniform in `±sqrt(6 / fan_in)`: `kaiming_uniform_(w, nonlinearity='relu')`
    /// (gain `sqrt(2)`, `mode='fan_in'`).
    KaimingUniform,
    /// Normal with std `sqrt(2 / fan_in)`: `kaiming_normal_(w, nonlinearity='relu')`.
    KaimingNormal,
    /// Uniform in `±sqrt(6 / (fan_in + fan_out))`: `xavier_uniform_(w)` (gain 1).
    XavierUniform,
    /// Normal with std `sqrt(2 / (fan_in + fan_out))`: `xavier_normal_(w)` (gain 1).
    XavierNormal,
    /// Uniform in `±sqrt(3 / fan_in)`, variance `1 / fan_in` (LeCun et al., 1998);
    /// `kaiming_uniform_(w, nonlinearity='linear')` in PyTorch's terms.
    LeCunUniform,
    /// Normal with std `sqrt(1 / fan_in)`: `kaiming_normal_(w, nonlinearity='linear')`.
    LeCunNormal,
}

impl Init {
    /// All schemes, in declaration order.
    pub const ALL: [Init; 6] = [
        Init::KaimingUniform,
        Init::KaimingNormal,
        Init::XavierUniform,
        Init::XavierNormal,
        Init::LeCunUniform,
        Init::LeCunNormal,
    ];

    /// The standard deviation of the weights this scheme draws.
    ///
    /// # Shapes
    /// Scalars; see [`fan_in_and_fan_out`] for where the fans come from.
    ///
    /// ```
    /// use shapesafe::nn::init::Init;
    /// assert!((Init::LeCunUniform.std(4, 1) - 0.5).abs() < 1e-12);
    /// ```
    pub fn std(self, fan_in: usize, fan_out: usize) -> f64 {
        let variance = match self {
            Init::KaimingUniform | Init::KaimingNormal => 2.0 / fan_in as f64,
            Init::XavierUniform | Init::XavierNormal => 2.0 / (fan_in + fan_out) as f64,
            Init::LeCunUniform | Init::LeCunNormal => 1.0 / fan_in as f64,
        };
        variance.sqrt()
    }

    /// For the uniform schemes the bound `b` of `U(-b, b)`, which is `sqrt(3) * std`;
    /// `None` for the normal ones.
    ///
    /// # Shapes
    /// Scalars.
    ///
    /// ```
    /// use shapesafe::nn::init::Init;
    /// assert!((Init::KaimingUniform.bound(6, 0).unwrap() - 1.0).abs() < 1e-12);
    /// ```
    pub fn bound(self, fan_in: usize, fan_out: usize) -> Option<f64> {
        match self {
            Init::KaimingUniform | Init::XavierUniform | Init::LeCunUniform => {
                Some(3f64.sqrt() * self.std(fan_in, fan_out))
            }
            Init::KaimingNormal | Init::XavierNormal | Init::LeCunNormal => None,
        }
    }

    /// Draws `n` weights for a tensor with the given fans.
    ///
    /// # Shapes
    /// Returns `n` values, in any order the caller lays them out.
    ///
    /// ```
    /// use rand::{rngs::StdRng, SeedableRng};
    /// use shapesafe::nn::init::Init;
    /// let w = Init::XavierUniform.sample(3, 3, 100, &mut StdRng::seed_from_u64(0));
    /// assert!(w.iter().all(|x| x.abs() <= 1.0));
    /// ```
    pub fn sample<R: rand::Rng + ?Sized>(
        self,
        fan_in: usize,
        fan_out: usize,
        n: usize,
        rng: &mut R,
    ) -> Vec<f64> {
        use rand_distr::{Distribution, StandardNormal};
        // Scaling a unit draw keeps a fan of 0 (an infinite scale) from panicking.
        let std = self.std(fan_in, fan_out);
        match self.bound(fan_in, fan_out) {
            Some(bound) => (0..n).map(|_| bound * rng.gen_range(-1.0..=1.0)).collect(),
            None => (0..n)
                .map(|_| std * <StandardNormal as Distribution<f64>>::sample(&StandardNormal, rng))
                .collect(),
        }
    }
}

/// `(fan_in, fan_out)` of a weight with dims `dims`, as PyTorch's
/// `torch.nn.init._calculate_fan_in_and_fan_out`: dim 0 is the outputs, dim 1 the
/// inputs, and any further dims (a conv kernel) multiply both. `None` below rank 2,
/// where PyTorch raises.
///
/// # Shapes
/// - `(out, in) -> (in, out)`
/// - `(out, in / groups, kh, kw) -> (in / groups * kh * kw, out * kh * kw)`
///
/// ```
/// use shapesafe::nn::init::fan_in_and_fan_out;
/// assert_eq!(fan_in_and_fan_out(&[120, 400]), Some((400, 120)));
/// assert_eq!(fan_in_and_fan_out(&[16, 6, 5, 5]), Some((150, 400)));
/// assert_eq!(fan_in_and_fan_out(&[10]), None);
/// ```
pub fn fan_in_and_fan_out(dims: &[usize]) -> Option<(usize, usize)> {
    match dims {
        [out, input, kernel @ ..] => {
            let receptive: usize = kernel.iter().product();
            Some((input * receptive, out * receptive))
        }
        _ => None,
    }
}

/// Re-initialises a model: every trainable tensor named `weight` of rank 2 or more
/// is drawn from `init`, every trainable tensor named `bias` is set to zero, and
/// everything else (1-D weights such as a PReLU slope, norm scales, running
/// statistics) is left as it is.
///
/// Tensors are found by dfdx's `TensorCollection` walk, in its fixed order, from one
/// `StdRng` seeded with `seed`, so the same model, scheme and seed give the same weights.
/// PyTorch equivalent: `model.apply(f)` with an `f` that calls e.g.
/// `torch.nn.init.xavier_uniform_(m.weight)` and `torch.nn.init.zeros_(m.bias)`.
///
/// # Errors
/// [`Error::Device`](crate::Error::Device) if the device fails to write a tensor.
///
/// # Shapes
/// Any model; see [`fan_in_and_fan_out`] for how each weight's shape sets its scale.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::nn::init::{init_weights, Init};
/// let dev = Cpu::default();
/// let mut model = dev.build_module::<(Linear<784, 256>, ReLU, Linear<256, 10>), f32>();
/// init_weights(&mut model, Init::KaimingUniform, 0)?;
/// let bound = (6.0f32 / 784.0).sqrt();
/// assert!(model.0.weight.as_vec().iter().all(|w| w.abs() <= bound));
/// assert!(model.2.bias.as_vec().iter().all(|&b| b == 0.0));
/// # Ok::<(), shapesafe::Error>(())
/// ```
pub fn init_weights<E, D, M>(model: &mut M, init: Init, seed: u64) -> crate::Result<()>
where
    E: Dtype,
    D: Device<E>,
    M: TensorCollection<E, D>,
{
    use dfdx::nn::RecursiveWalker;
    use rand::SeedableRng;
    let mut initialiser = Initialiser {
        init,
        rng: rand::rngs::StdRng::seed_from_u64(seed),
    };
    M::iter_tensors(&mut RecursiveWalker {
        m: (model, String::new()),
        f: &mut initialiser,
    })
    .map_err(|e| crate::Error::Device(format!("{e:?}")))?;
    Ok(())
}

/// The [`TensorVisitor`](dfdx::nn::TensorVisitor) behind [`init_weights`].
struct Initialiser {
    init: Init,
    rng: rand::rngs::StdRng,
}

impl<E: Dtype, D: Device<E>> dfdx::nn::TensorVisitor<E, D> for Initialiser {
    type Viewer = (dfdx::nn::ViewTensorMut, dfdx::nn::ViewTensorName);
    type Err = D::Err;
    type E2 = E;
    type D2 = D;

    fn visit<S: Shape>(
        &mut self,
        opts: dfdx::nn::TensorOptions<S, E, D>,
        (t, path): (&mut Tensor<S, E, D>, String),
    ) -> Result<Option<Tensor<S, E, D>>, D::Err> {
        if !opts.do_gradient_update {
            return Ok(None);
        }
        let field = path.rsplit('.').next().unwrap_or(&path);
        if field == "bias" {
            t.try_fill_with_zeros()?;
        } else if field == "weight" {
            if let Some((fan_in, fan_out)) = fan_in_and_fan_out(t.shape().concrete().as_ref()) {
                if fan_in > 0 && fan_out > 0 {
                    let values: Vec<E> = self
                        .init
                        .sample(fan_in, fan_out, t.shape().num_elements(), &mut self.rng)
                        .into_iter()
                        .map(|v| E::from_f64(v).unwrap_or_default())
                        .collect();
                    t.copy_from(&values);
                }
            }
        }
        Ok(None)
    }
}
