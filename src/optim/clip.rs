//! Gradient clipping by global norm, and finiteness checks, over a model's trainable parameters.

use crate::optim::cpu;
use crate::optim::params::{set_grad, walk_grads, GradVisitor};
use crate::{Error, Result};
use dfdx::nn::tensor_collection::TensorCollection;
use dfdx::prelude::{Device, Dtype, Gradients, Shape, SumTo, Tensor};
use dfdx::tensor_ops::{TryAdd, TryMul};
use num_traits::ToPrimitive;

/// The single number of a rank-0 tensor, as f64 (NaN if it does not convert).
fn value<E: Dtype, D: Device<E>>(t: Tensor<(), E, D>) -> f64 {
    t.as_vec()
        .first()
        .and_then(ToPrimitive::to_f64)
        .unwrap_or(f64::NAN)
}

struct SumOfSquares {
    total: f64,
}

impl<'g, E: Dtype, D: Device<E>> GradVisitor<E, D, &'g Gradients<E, D>> for SumOfSquares {
    fn visit<S: Shape>(
        &mut self,
        _name: &str,
        _param: &Tensor<S, E, D>,
        grad: Tensor<S, E, D>,
        _grads: &mut &'g Gradients<E, D>,
    ) -> Result<(), D::Err> {
        let squares = grad.try_square()?;
        self.total += value(squares.try_sum::<(), S::AllAxes>()?);
        Ok(())
    }
}

struct Scale<E> {
    factor: E,
}

impl<'g, E: Dtype, D: Device<E>> GradVisitor<E, D, &'g mut Gradients<E, D>> for Scale<E> {
    fn visit<S: Shape>(
        &mut self,
        _name: &str,
        param: &Tensor<S, E, D>,
        grad: Tensor<S, E, D>,
        grads: &mut &'g mut Gradients<E, D>,
    ) -> Result<(), D::Err> {
        let scaled = grad.try_mul(self.factor)?;
        set_grad(grads, param, scaled)
    }
}

/// Scales the gradients of `model`'s trainable parameters so that their global L2 norm is
/// at most `max_norm`, and returns the norm before clipping — PyTorch's
/// `torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)` (norm type 2).
///
/// The norm is taken over all gradients together, as if concatenated. When it exceeds
/// `max_norm`, every gradient is multiplied by `max_norm / (norm + 1e-6)`. Parameters
/// without a gradient are skipped, as PyTorch skips `grad is None`. As in PyTorch (with
/// `error_if_nonfinite=False`), a non-finite norm is returned and the gradients are
/// scaled by the resulting 0 or NaN; call [`grads_are_finite`] first to skip such a step.
/// A `max_norm` that is negative or NaN is an [`Error::Usage`].
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::optim::clip_grad_norm;
/// let dev = Cpu::default();
/// let model = dev.build_module::<Linear<3, 2>, f64>();
/// let x: Tensor<Rank2<4, 3>, f64, _> = dev.sample_normal();
/// let loss = (model.forward(x.traced(model.alloc_grads())) * 100.0).square().sum();
/// let mut grads = loss.backward();
/// let before = clip_grad_norm(&model, &mut grads, 1.0).unwrap();
/// assert!(before > 1.0);
/// let after = clip_grad_norm(&model, &mut grads, f64::INFINITY).unwrap();
/// assert!((after - 1.0).abs() < 1e-5);
/// ```
pub fn clip_grad_norm<M, E, D>(model: &M, grads: &mut Gradients<E, D>, max_norm: f64) -> Result<f64>
where
    M: TensorCollection<E, D> + Clone,
    E: Dtype,
    D: Device<E>,
{
    if max_norm.is_nan() || max_norm < 0.0 {
        return Err(Error::Usage(format!(
            "clip_grad_norm needs a max_norm of at least 0, but got {max_norm}"
        )));
    }
    let mut sum = SumOfSquares { total: 0.0 };
    walk_grads(model, &*grads, &mut sum).map_err(Error::device)?;
    let norm = sum.total.sqrt();
    let factor = max_norm / (norm + 1e-6);
    // PyTorch clamps the factor to at most 1 and always multiplies; multiplying by exactly
    // 1 changes nothing, so only smaller (or NaN) factors are applied.
    if factor.is_nan() || factor < 1.0 {
        let mut scale = Scale {
            factor: crate::optim::params::scalar::<E>(factor),
        };
        walk_grads(model, grads, &mut scale).map_err(Error::device)?;
    }
    Ok(norm)
}

/// Adds up `g * 0` over every gradient on the device: the total is NaN exactly when some
/// entry is not finite. It reads back one number per step instead of one per parameter,
/// which matters on a GPU, where each read waits for the device. On the CPU (f32, f64),
/// where dfdx's strided `sum` is the slow part, it scans a copy of each gradient instead.
struct AnyNonFinite<E: Dtype, D: Device<E>> {
    total: Option<Tensor<(), E, D>>,
    /// Whether the CPU scan found a non-finite entry.
    found: bool,
}

impl<'g, E: Dtype, D: Device<E>> GradVisitor<E, D, &'g Gradients<E, D>> for AnyNonFinite<E, D> {
    fn visit<S: Shape>(
        &mut self,
        _name: &str,
        _param: &Tensor<S, E, D>,
        grad: Tensor<S, E, D>,
        _grads: &mut &'g Gradients<E, D>,
    ) -> Result<(), D::Err> {
        // `x * 0` is 0 for every finite x and NaN otherwise (see `FirstNonFinite`); an or
        // of comparisons, unlike a float sum, vectorises.
        let zero = E::default();
        let scan = |values: &[E]| {
            values
                .iter()
                .fold(false, |bad, &x| bad | (x * zero != zero))
        };
        if let Some(bad) = cpu::with_host_copy(&grad, scan)? {
            self.found |= bad;
            return Ok(());
        }
        let zeros = grad
            .try_mul(crate::optim::params::scalar::<E>(0.0))?
            .try_sum::<(), S::AllAxes>()?;
        self.total = Some(match self.total.take() {
            Some(total) => total.try_add(zeros)?,
            None => zeros,
        });
        Ok(())
    }
}

struct FirstNonFinite {
    found: Option<String>,
}

impl<'g, E: Dtype, D: Device<E>> GradVisitor<E, D, &'g Gradients<E, D>> for FirstNonFinite {
    fn visit<S: Shape>(
        &mut self,
        name: &str,
        _param: &Tensor<S, E, D>,
        grad: Tensor<S, E, D>,
        _grads: &mut &'g Gradients<E, D>,
    ) -> Result<(), D::Err> {
        if self.found.is_some() {
            return Ok(());
        }
        // x * 0 is 0 for every finite x and NaN for inf and NaN, so the sum is NaN exactly
        // when some entry is not finite (a sum of squares would overflow on large finite values).
        let zeros = grad.try_mul(crate::optim::params::scalar::<E>(0.0))?;
        if value(zeros.try_sum::<(), S::AllAxes>()?).is_nan() {
            self.found = Some(name.to_string());
        }
        Ok(())
    }
}

/// The name of the first trainable parameter (in dfdx's walk order, e.g. `0.weight`) whose
/// gradient holds an infinity or NaN, or `None` if all are finite. Parameters without a
/// gradient are skipped.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::optim::first_non_finite_grad;
/// let dev = Cpu::default();
/// let model = dev.build_module::<Linear<3, 2>, f32>();
/// let x: Tensor<Rank1<3>, f32, _> = dev.tensor([1.0, f32::INFINITY, 0.0]);
/// let grads = model.forward(x.traced(model.alloc_grads())).sum().backward();
/// assert_eq!(first_non_finite_grad(&model, &grads).unwrap().as_deref(), Some("weight"));
/// ```
pub fn first_non_finite_grad<M, E, D>(model: &M, grads: &Gradients<E, D>) -> Result<Option<String>>
where
    M: TensorCollection<E, D> + Clone,
    E: Dtype,
    D: Device<E>,
{
    let mut any = AnyNonFinite {
        total: None,
        found: false,
    };
    walk_grads(model, grads, &mut any).map_err(Error::device)?;
    let nan_total = any.total.map(value).is_some_and(f64::is_nan);
    if any.found || nan_total {
        search_non_finite(model, grads)
    } else {
        Ok(None)
    }
}

/// The name of the first parameter with a non-finite gradient: rare, so one walk that reads
/// back a number per parameter.
fn search_non_finite<M, E, D>(model: &M, grads: &Gradients<E, D>) -> Result<Option<String>>
where
    M: TensorCollection<E, D> + Clone,
    E: Dtype,
    D: Device<E>,
{
    let mut search = FirstNonFinite { found: None };
    walk_grads(model, grads, &mut search).map_err(Error::device)?;
    Ok(search.found)
}

/// Whether every gradient of `model`'s trainable parameters is finite (no infinity, no NaN),
/// for skipping a step after an overflow. Parameters without a gradient are skipped.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::optim::grads_are_finite;
/// let dev = Cpu::default();
/// let model = dev.build_module::<Linear<3, 2>, f32>();
/// let x: Tensor<Rank1<3>, f32, _> = dev.tensor([1.0, 2.0, 3.0]);
/// let grads = model.forward(x.traced(model.alloc_grads())).sum().backward();
/// assert!(grads_are_finite(&model, &grads).unwrap());
/// ```
pub fn grads_are_finite<M, E, D>(model: &M, grads: &Gradients<E, D>) -> Result<bool>
where
    M: TensorCollection<E, D> + Clone,
    E: Dtype,
    D: Device<E>,
{
    Ok(first_non_finite_grad(model, grads)?.is_none())
}
