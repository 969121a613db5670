//! The optimizers' CPU fast path: each parameter and its state updated in place by fused
//! loops, instead of one dfdx op (and one temporary) per term of the update.
//!
//! dfdx 0.13 gives no `&mut` view of a tensor's memory outside its own kernels, and no
//! by-reference read of a gradient. So on `Cpu` with f32 or f64:
//!
//! - state buffers are the device's own storage (`Raw<E, D>`, a `Vec` underneath on `Cpu`),
//!   which dfdx's kernels take by `&mut` and this file views as slices;
//! - the gradient (a copy already, from the presence probe) is copied once more, into a
//!   scratch buffer of the same kind;
//! - SGD is dfdx's fused kernel (`SgdConfig::try_update`, or `axpy` straight from the
//!   gradient when there is neither momentum nor decay), whose arithmetic is the composed
//!   ops' (the same operations on the same constants, in the same order);
//! - Adam and RMSprop run the loops here, which update the state and turn the gradient
//!   into the step in place, with the composed ops' arithmetic. dfdx's own kernels for them
//!   round `1 - beta` and the bias corrections in the element type, so their f32 numbers
//!   would differ from the composed ones. dfdx's SGD kernel at `lr = 1` then subtracts the
//!   step from the parameter in place, adding decoupled weight decay as the composed ops do.
//!
//! Bit-identical to the composed path (`tests/optim_fused.rs` checks f32 and f64), so a run
//! resumes exactly whichever path wrote its state.

use crate::optim::adam::power;
use dfdx::optim::{AdamConfig, RMSpropConfig, SgdConfig, WeightDecay};
use dfdx::prelude::{Cpu, Device, Dtype, HasShape, ReshapeTo, Shape, Storage, Tensor};
use dfdx::shapes::Unit;
use num_traits::{Float, FromPrimitive};
use std::any::{Any, TypeId};

/// Device `D`'s own storage for `E` (dfdx's `Storage::Vec`), named in full because
/// `Device<E>` is also `Storage` of other element types.
pub(crate) type Raw<E, D> = <D as Storage<E>>::Vec;

/// The CPU's storage for `E`, a `Vec<E>` underneath.
type CpuVec<E> = <Cpu as Storage<E>>::Vec;

/// Whether the fused path serves element type `E` on device `D`: `Cpu` with f32 or f64.
pub(crate) fn serves<E: 'static, D: 'static>() -> bool {
    let e = TypeId::of::<E>();
    TypeId::of::<D>() == TypeId::of::<Cpu>()
        && (e == TypeId::of::<f32>() || e == TypeId::of::<f64>())
}

/// Whether `param`'s memory is laid out as its shape says, so that buffer index `i` is
/// element `i` (dfdx's fused kernels and the copies here work on whole buffers).
pub(crate) fn is_contiguous<S: Shape, E: Dtype, D: Device<E>>(
    param: &Tensor<S, E, D>,
) -> Result<bool, D::Err> {
    // `contiguous` keeps the tensor (and its id) when it already is, and copies otherwise.
    let same = param.clone().try_contiguous()?;
    let mut ids = dfdx::optim::UnusedTensors::default();
    ids.add(param);
    ids.add(&same);
    Ok(ids.ids[0] == ids.ids[1])
}

/// `v` as a slice of `F`, if `D` is `Cpu` and `E` is `F`.
pub(crate) fn view<F: Unit, E, D: Storage<E>>(v: &Raw<E, D>) -> Option<&[F]> {
    let v: &dyn Any = v;
    v.downcast_ref::<CpuVec<F>>().map(|v| v.as_slice())
}

/// `v` as a mutable slice of `F`, if `D` is `Cpu` and `E` is `F`.
pub(crate) fn view_mut<F: Unit, E, D: Storage<E>>(v: &mut Raw<E, D>) -> Option<&mut [F]> {
    let v: &mut dyn Any = v;
    v.downcast_mut::<CpuVec<F>>().map(|v| v.as_mut_slice())
}

/// The first `n` entries of `v` as a mutable slice of `F`, if `D` is `Cpu`, `E` is `F` and
/// `v` is that long.
fn prefix_mut<F: Unit, E, D: Storage<E>>(v: &mut Raw<E, D>, n: usize) -> Option<&mut [F]> {
    view_mut::<F, E, D>(v).and_then(|s| s.get_mut(..n))
}

/// `t` as a CPU tensor of `F`, if it is one.
fn cpu_tensor<F: Unit, S: Shape, E: Unit, D: Storage<E>>(
    t: &Tensor<S, E, D>,
) -> Option<&Tensor<S, F, Cpu>> {
    let t: &dyn Any = t;
    t.downcast_ref::<Tensor<S, F, Cpu>>()
}

/// `x` in the element type, as `optim::params::scalar` converts it.
fn c<F: FromPrimitive + Float>(x: f64) -> F {
    F::from_f64(x).unwrap_or_else(F::zero)
}

/// Two buffers the fused path reuses across parameters and steps, each as long as the
/// largest parameter so far: the gradient, turned into the step in place, and a spare
/// (the parameter's values where a loop needs them, and the velocity dfdx's SGD kernel
/// takes but, without momentum, never reads or writes).
#[derive(Clone, Debug)]
pub(crate) struct Scratch<E, D: Storage<E>> {
    buffers: Option<StepAndSpare<E, D>>,
}

/// The step buffer, then the spare.
type StepAndSpare<E, D> = (Raw<E, D>, Raw<E, D>);

impl<E, D: Storage<E>> Default for Scratch<E, D> {
    fn default() -> Self {
        Self { buffers: None }
    }
}

impl<E, D: Storage<E>> Scratch<E, D> {
    /// The step and spare buffers, at least `n` long.
    pub fn reserve(&mut self, dev: &D, n: usize) -> Result<&mut StepAndSpare<E, D>, D::Err> {
        let buffers = match self.buffers.take() {
            Some((step, spare)) if dev.len(&step) >= n && dev.len(&spare) >= n => (step, spare),
            _ => (dev.try_alloc_len(n)?, dev.try_alloc_len(n)?),
        };
        Ok(self.buffers.insert(buffers))
    }
}

/// Copies `grad` into `step`; `false` (and nothing copied) if this is not a CPU buffer
/// long enough.
pub(crate) fn load_grad<S: Shape, E: Dtype, D: Device<E>>(
    grad: &Tensor<S, E, D>,
    step: &mut Raw<E, D>,
) -> bool {
    let n = grad.shape().num_elements();
    match prefix_mut::<E, E, D>(step, n) {
        Some(dst) => {
            grad.copy_into(dst);
            true
        }
        None => false,
    }
}

/// `param -= step + lr * wd * param`, the last term for decoupled decay, in place.
///
/// dfdx's fused SGD kernel with `lr = 1`, no momentum and decoupled decay `wd * lr`
/// computes `g = step * 1` (exact), `g += (wd * lr) * param`, `param -= g`: the composed
/// ops' `param - (step + param * (wd * lr))`, rounding for rounding. Without momentum
/// it does not touch `spare` (it only has to be as long as `param`).
pub(crate) fn subtract_step<S: Shape, E: Dtype, D: Device<E>>(
    param: &mut Tensor<S, E, D>,
    step: &Raw<E, D>,
    spare: &mut Raw<E, D>,
    lr: f64,
    decay: Option<WeightDecay>,
) -> Result<(), D::Err> {
    let apply = SgdConfig {
        lr: 1.0,
        momentum: None,
        weight_decay: match decay {
            Some(WeightDecay::Decoupled(wd)) => Some(WeightDecay::Decoupled(wd * lr)),
            _ => None,
        },
    };
    apply.try_update(param, spare, step)
}

/// SGD on one parameter with `grad` already in `step`: dfdx's fused kernel, in place.
/// `velocity` is the momentum buffer, or the spare buffer without momentum.
pub(crate) fn sgd<S: Shape, E: Dtype, D: Device<E>>(
    cfg: &SgdConfig,
    param: &mut Tensor<S, E, D>,
    velocity: &mut Raw<E, D>,
    step: &Raw<E, D>,
) -> Result<(), D::Err> {
    cfg.try_update(param, velocity, step)
}

/// Adam's state update and step for one parameter, in one pass: reads the gradient from
/// `grad` (and `param` for L2 decay), updates `m` and `v`, and leaves the step (without
/// decoupled decay) in `step`. `t` is this parameter's update count, this one included.
/// `false`, with nothing changed, where the buffers are not CPU f32 or f64 ones of the
/// parameter's length.
#[allow(clippy::too_many_arguments)]
pub(crate) fn adam<S: Shape, E: Unit, D: Storage<E>>(
    cfg: &AdamConfig,
    t: u64,
    param: &Tensor<S, E, D>,
    grad: &Tensor<S, E, D>,
    m: &mut Raw<E, D>,
    v: &mut Raw<E, D>,
    step: &mut Raw<E, D>,
    spare: &mut Raw<E, D>,
) -> bool {
    adam_as::<f32, _, _, _>(cfg, t, param, grad, m, v, step, spare)
        || adam_as::<f64, _, _, _>(cfg, t, param, grad, m, v, step, spare)
}

#[allow(clippy::too_many_arguments)]
fn adam_as<F: Float + FromPrimitive + Unit, S: Shape, E: Unit, D: Storage<E>>(
    cfg: &AdamConfig,
    t: u64,
    param: &Tensor<S, E, D>,
    grad: &Tensor<S, E, D>,
    m: &mut Raw<E, D>,
    v: &mut Raw<E, D>,
    step: &mut Raw<E, D>,
    spare: &mut Raw<E, D>,
) -> bool {
    let n = grad.shape().num_elements();
    let (Some(param), Some(grad)) = (
        cpu_tensor::<F, _, _, _>(param),
        cpu_tensor::<F, _, _, _>(grad),
    ) else {
        return false;
    };
    let slices = (
        prefix_mut::<F, E, D>(m, n),
        prefix_mut::<F, E, D>(v, n),
        prefix_mut::<F, E, D>(step, n),
        prefix_mut::<F, E, D>(spare, n),
    );
    let (Some(m), Some(v), Some(step), Some(spare)) = slices else {
        return false;
    };
    let [b1, b2] = cfg.betas;
    // The composed ops' constants: each one rounded once from f64 (the bias corrections
    // in f64, as PyTorch computes them in Python floats).
    let k = AdamConstants {
        b1: c::<F>(b1),
        b2: c::<F>(b2),
        one_minus_b1: c::<F>(1.0 - b1),
        one_minus_b2: c::<F>(1.0 - b2),
        correction1: c::<F>((1.0 - power(b1, t)).recip()),
        correction2: c::<F>((1.0 - power(b2, t)).recip()),
        lr: c::<F>(cfg.lr),
        eps: c::<F>(cfg.eps),
    };
    grad.copy_into(step);
    match cfg.weight_decay {
        Some(WeightDecay::L2(wd)) => {
            let wd = c::<F>(wd);
            param.copy_into(spare);
            for (((s, m), v), &p) in step.iter_mut().zip(m).zip(v).zip(&*spare) {
                *s = k.step(*s + p * wd, m, v);
            }
        }
        _ => {
            for ((s, m), v) in step.iter_mut().zip(m).zip(v) {
                *s = k.step(*s, m, v);
            }
        }
    }
    true
}

struct AdamConstants<F> {
    b1: F,
    b2: F,
    one_minus_b1: F,
    one_minus_b2: F,
    correction1: F,
    correction2: F,
    lr: F,
    eps: F,
}

impl<F: Float> AdamConstants<F> {
    /// The moments' update for gradient `g`, and the step, in the composed ops' order.
    #[inline(always)]
    fn step(&self, g: F, m: &mut F, v: &mut F) -> F {
        *m = *m * self.b1 + g * self.one_minus_b1;
        *v = *v * self.b2 + g.powi(2) * self.one_minus_b2;
        let m_hat = *m * self.correction1;
        let v_hat = *v * self.correction2;
        m_hat * self.lr / (v_hat.sqrt() + self.eps)
    }
}

/// RMSprop's buffers for one parameter, as the layout orders them.
pub(crate) struct RmsBuffers<'a, V> {
    pub square_avg: &'a mut V,
    pub momentum: Option<&'a mut V>,
    pub grad_avg: Option<&'a mut V>,
}

/// RMSprop's state update and step for one parameter, in one pass, as [`adam`] does:
/// reads the gradient (and `param` for L2 decay), updates the buffers and leaves the step
/// (without decoupled decay) in `step`; `false`, with nothing changed, where the buffers
/// are not CPU f32 or f64 ones of the parameter's length.
pub(crate) fn rmsprop<S: Shape, E: Unit, D: Storage<E>>(
    cfg: &RMSpropConfig,
    param: &Tensor<S, E, D>,
    grad: &Tensor<S, E, D>,
    buffers: RmsBuffers<'_, Raw<E, D>>,
    step: &mut Raw<E, D>,
    spare: &mut Raw<E, D>,
) -> bool {
    let RmsBuffers {
        square_avg,
        mut momentum,
        mut grad_avg,
    } = buffers;
    let f32 = RmsBuffers {
        square_avg: &mut *square_avg,
        momentum: momentum.as_deref_mut(),
        grad_avg: grad_avg.as_deref_mut(),
    };
    if rmsprop_as::<f32, _, _, _>(cfg, param, grad, f32, step, spare) {
        return true;
    }
    let f64 = RmsBuffers {
        square_avg,
        momentum,
        grad_avg,
    };
    rmsprop_as::<f64, _, _, _>(cfg, param, grad, f64, step, spare)
}

fn rmsprop_as<F: Float + FromPrimitive + Unit, S: Shape, E: Unit, D: Storage<E>>(
    cfg: &RMSpropConfig,
    param: &Tensor<S, E, D>,
    grad: &Tensor<S, E, D>,
    buffers: RmsBuffers<'_, Raw<E, D>>,
    step: &mut Raw<E, D>,
    spare: &mut Raw<E, D>,
) -> bool {
    let n = grad.shape().num_elements();
    let (Some(param), Some(grad)) = (
        cpu_tensor::<F, _, _, _>(param),
        cpu_tensor::<F, _, _, _>(grad),
    ) else {
        return false;
    };
    let square_avg = prefix_mut::<F, E, D>(buffers.square_avg, n);
    let momentum = buffers.momentum.map(|v| prefix_mut::<F, E, D>(v, n));
    let grad_avg = buffers.grad_avg.map(|v| prefix_mut::<F, E, D>(v, n));
    let step = prefix_mut::<F, E, D>(step, n);
    let spare = prefix_mut::<F, E, D>(spare, n);
    let (Some(square_avg), Some(step), Some(spare)) = (square_avg, step, spare) else {
        return false;
    };
    let (momentum, grad_avg) = match (momentum, grad_avg) {
        (Some(None), _) | (_, Some(None)) => return false,
        (m, g) => (m.flatten(), g.flatten()),
    };
    let k = RmsConstants {
        keep: c::<F>(1.0 - cfg.alpha),
        eps: c::<F>(cfg.eps),
        lr: c::<F>(cfg.lr),
        momentum: c::<F>(cfg.momentum.unwrap_or(0.0)),
    };
    grad.copy_into(step);
    if let Some(WeightDecay::L2(wd)) = cfg.weight_decay {
        let wd = c::<F>(wd);
        param.copy_into(spare);
        for (s, &p) in step.iter_mut().zip(&*spare) {
            *s = *s + p * wd;
        }
    }
    let sa = square_avg;
    // An absent buffer is an empty slice that the loop, told so by a const flag, never indexes.
    match (momentum, grad_avg) {
        (None, None) => rms_loop::<F, false, false>(&k, step, sa, &mut [], &mut []),
        (Some(m), None) => rms_loop::<F, true, false>(&k, step, sa, m, &mut []),
        (None, Some(ga)) => rms_loop::<F, false, true>(&k, step, sa, &mut [], ga),
        (Some(m), Some(ga)) => rms_loop::<F, true, true>(&k, step, sa, m, ga),
    }
    true
}

struct RmsConstants<F> {
    keep: F,
    eps: F,
    lr: F,
    momentum: F,
}

/// The RMSprop pass over equally long `step` (holding the gradient), `sa`, `buf` (when
/// `MOMENTUM`) and `ga` (when `CENTERED`), in the composed ops' order. The flags are
/// consts so each variant compiles to its own branch-free loop.
fn rms_loop<F: Float, const MOMENTUM: bool, const CENTERED: bool>(
    k: &RmsConstants<F>,
    step: &mut [F],
    sa: &mut [F],
    buf: &mut [F],
    ga: &mut [F],
) {
    let n = step.len();
    let sa = &mut sa[..n];
    let buf = if MOMENTUM { &mut buf[..n] } else { buf };
    let ga = if CENTERED { &mut ga[..n] } else { ga };
    for i in 0..n {
        let g = step[i];
        let s = sa[i] + (g.powi(2) - sa[i]) * k.keep;
        sa[i] = s;
        let denominator = if CENTERED {
            let a = ga[i] + (g - ga[i]) * k.keep;
            ga[i] = a;
            (s - a.powi(2) + k.eps).sqrt()
        } else {
            (s + k.eps).sqrt()
        };
        let g = g / denominator;
        step[i] = if MOMENTUM {
            let b = buf[i] * k.momentum + g;
            buf[i] = b;
            b * k.lr
        } else {
            g * k.lr
        };
    }
}
