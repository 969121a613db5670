//! L1 and L2 penalties, added straight to the gradients of a model's trainable parameters.
//!
//! Conventions, per parameter `w` with gradient `g`:
//!
//! - [`add_l2`]: `g += lambda * w`, the gradient of the penalty `lambda / 2 * ||w||^2`.
//!   This is PyTorch's `weight_decay=lambda` (and dfdx's `WeightDecay::L2(lambda)`).
//! - [`add_l1`]: `g += lambda * sign(w)`, the gradient of `lambda * ||w||_1`, with
//!   `sign(0) = 0` (the subgradient PyTorch's autograd gives `abs` at 0).
//!
//! Both apply to every trainable parameter that has a gradient, biases included, as a
//! PyTorch parameter group with `weight_decay` does.

use crate::optim::params::{scalar, set_grad, walk_grads, GradVisitor};
use crate::{Error, Result};
use dfdx::nn::tensor_collection::TensorCollection;
use dfdx::prelude::{Device, Dtype, Gradients, HasShape, Shape, Tensor};
use dfdx::tensor_ops::{ChooseFrom, TryAdd, TryGt, TryLt, TryMul};

#[derive(Clone, Copy)]
enum Penalty {
    L1,
    L2,
}

struct AddPenalty<E> {
    penalty: Penalty,
    lambda: E,
}

impl<'g, E: Dtype, D: Device<E>> GradVisitor<E, D, &'g mut Gradients<E, D>> for AddPenalty<E> {
    fn visit<S: Shape>(
        &mut self,
        _name: &str,
        w: &Tensor<S, E, D>,
        grad: Tensor<S, E, D>,
        grads: &mut &'g mut Gradients<E, D>,
    ) -> Result<(), D::Err> {
        let extra = match self.penalty {
            Penalty::L2 => w.clone().try_mul(self.lambda)?,
            Penalty::L1 => {
                let dev = w.device();
                let zero = scalar::<E>(0.0);
                let plus = dev.try_ones_like(w.shape())?.try_mul(self.lambda)?;
                let minus = dev
                    .try_ones_like(w.shape())?
                    .try_mul(scalar::<E>(0.0) - self.lambda)?;
                let zeros = dev.try_zeros_like(w.shape())?;
                let positive = w.try_gt(zero)?.try_choose(plus, zeros)?;
                w.try_lt(zero)?.try_choose(minus, positive)?
            }
        };
        let g = grad.try_add(extra)?;
        set_grad(grads, w, g)
    }
}

fn add_penalty<M, E, D>(
    model: &M,
    grads: &mut Gradients<E, D>,
    lambda: f64,
    penalty: Penalty,
) -> Result<()>
where
    M: TensorCollection<E, D> + Clone,
    E: Dtype,
    D: Device<E>,
{
    if !lambda.is_finite() {
        return Err(Error::Usage(format!(
            "a regularization strength must be a finite number, but got {lambda}"
        )));
    }
    let mut visitor = AddPenalty {
        penalty,
        lambda: scalar::<E>(lambda),
    };
    walk_grads(model, grads, &mut visitor).map_err(Error::device)
}

/// Adds the gradient of the L2 penalty `lambda / 2 * ||w||^2` to every trainable
/// parameter's gradient: `g += lambda * w`, which is PyTorch's `weight_decay=lambda`.
/// Parameters without a gradient are skipped; a non-finite `lambda` is an [`Error::Usage`].
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::optim::add_l2;
/// let dev = Cpu::default();
/// let model = dev.build_module::<Linear<2, 1>, f64>();
/// let mut grads = model.alloc_grads();
/// add_l2(&model, &mut grads, 0.5).unwrap();
/// let w = model.weight.array();
/// assert_eq!(grads.get(&model.weight).array(), [[0.5 * w[0][0], 0.5 * w[0][1]]]);
/// ```
pub fn add_l2<M, E, D>(model: &M, grads: &mut Gradients<E, D>, lambda: f64) -> Result<()>
where
    M: TensorCollection<E, D> + Clone,
    E: Dtype,
    D: Device<E>,
{
    add_penalty(model, grads, lambda, Penalty::L2)
}

/// Adds the gradient of the L1 penalty `lambda * ||w||_1` to every trainable parameter's
/// gradient: `g += lambda * sign(w)`, with `sign(0) = 0`. Parameters without a gradient
/// are skipped; a non-finite `lambda` is an [`Error::Usage`].
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::optim::add_l1;
/// let dev = Cpu::default();
/// let mut model = dev.build_module::<Linear<2, 1>, f64>();
/// model.weight = dev.tensor([[-3.0, 0.0]]);
/// let mut grads = model.alloc_grads();
/// add_l1(&model, &mut grads, 0.25).unwrap();
/// assert_eq!(grads.get(&model.weight).array(), [[-0.25, 0.0]]);
/// ```
pub fn add_l1<M, E, D>(model: &M, grads: &mut Gradients<E, D>, lambda: f64) -> Result<()>
where
    M: TensorCollection<E, D> + Clone,
    E: Dtype,
    D: Device<E>,
{
    add_penalty(model, grads, lambda, Penalty::L1)
}
