//! Parameter initialisation shared by layers with weights.

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
