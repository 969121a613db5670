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

//! The optimizers' CPU fast path: each parameter and its state updated by one fused,
//! vectorisable loop, instead of one dfdx op (and one temporary) per term of the update.
//!
//! dfdx 0.13 gives no `&mut` view of a tensor's memory outside its own kernels, and no
//! by-reference read of a gradient. So on `Cpu` with f32 or f64:
//!
//! - state buffers are the device's own storage (`Raw<E, D>`, a `Vec` underneath on `Cpu`),
//!   which this file views as slices and updates in place;
//! - the gradient (a copy already, from the presence probe) and the parameter are copied
//!   (`copy_into`, a `memcpy`) into two scratch buffers; one loop updates the state and
//!   the parameter's values there, and `copy_from` (a `memcpy`) writes them back. dfdx's
//!   own fused kernels would update the parameter in place, but they branch on the config
//!   per element, so they run scalar and cost more than the two copies; and for Adam and
//!   RMSprop they round `1 - beta` and the bias corrections in the element type, so their
//!   f32 numbers would differ from the composed ones;
//! - plain SGD (no momentum, no decay) is dfdx's `axpy` straight from the gradient.
//!
//! Every loop does the composed ops' arithmetic: the same operations on the same constants
//! (each rounded once from f64), in the same order. So the two paths agree bit for bit
//! (`tests/optim_fused.rs` checks f32 and f64), and a run resumes exactly whichever path
//! wrote its state.

use crate::optim::adam::power;
use dfdx::optim::{AdamConfig, Momentum, RMSpropConfig, SgdConfig, WeightDecay};
use dfdx::prelude::{Cpu, Device, Dtype, HasShape, ReshapeTo, Shape, Storage, Tensor};
use dfdx::shapes::Unit;
use num_traits::{Float, FromPrimitive};
use std::any::{Any, TypeId};
use std::cell::RefCell;

/// Device `D`'s own storage for `E` (dfdx's `Storage::Vec`), named in full because
/// `Device<E>` is also `Storage` of other element types.
pub(crate) type Raw<E, D> = <D as Storage<E>>::Vec;

/// The CPU's storage for `E`, a `Vec<E>` underneath.
type CpuVec<E> = <Cpu as Storage<E>>::Vec;

/// Whether the fused path serves element type `E` on device `D`: `Cpu` with f32 or f64,
/// unless [`crate::kernels::with_composed_ops`] turned the CPU kernels off on this thread.
pub(crate) fn serves<E: 'static, D: 'static>() -> bool {
    crate::kernels::dispatch::has_cpu_kernel::<E, D>()
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

/// Calls `f` with a copy of `t`'s values, made in a per-thread buffer kept between calls:
/// a check that runs every step then neither allocates nor faults in a parameter-sized
/// buffer each time (with the gradient's own copy also alive, freeing two such buffers
/// makes the allocator give the memory back to the system, and take it again next step).
/// `None`, without calling `f`, unless `t` is a CPU f32 or f64 tensor laid out as its shape
/// says. The buffer keeps the size of the largest tensor copied so far.
pub(crate) fn with_host_copy<S: Shape, E: Dtype, D: Device<E>, R>(
    t: &Tensor<S, E, D>,
    f: impl FnOnce(&[E]) -> R,
) -> Result<Option<R>, D::Err> {
    thread_local! {
        static F32: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
        static F64: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
    }
    fn run<E: Dtype, S: Shape, D: Device<E>, R>(
        buffer: &mut dyn Any,
        t: &Tensor<S, E, D>,
        f: impl FnOnce(&[E]) -> R,
    ) -> Option<R> {
        let buffer = buffer.downcast_mut::<Vec<E>>()?;
        let n = t.shape().num_elements();
        if buffer.len() < n {
            buffer.resize(n, E::default());
        }
        t.copy_into(&mut buffer[..n]);
        Some(f(&buffer[..n]))
    }
    if !serves::<E, D>() || !is_contiguous(t)? {
        return Ok(None);
    }
    Ok(if TypeId::of::<E>() == TypeId::of::<f32>() {
        F32.with_borrow_mut(|b| run(b, t, f))
    } else {
        F64.with_borrow_mut(|b| run(b, t, f))
    })
}

/// `x` in the element type, as `optim::params::scalar` converts it.
fn c<F: FromPrimitive + Float>(x: f64) -> F {
    F::from_f64(x).unwrap_or_else(F::zero)
}

/// Two buffers the fused path reuses across parameters and steps, each as long as the
/// largest parameter so far: the gradient, and the parameter's values.
#[derive(Clone, Debug)]
pub(crate) struct Scratch<E, D: Storage<E>> {
    buffers: Option<GradAndValues<E, D>>,
}

/// The gradient's buffer, then the parameter values'.
pub(crate) type GradAndValues<E, D> = (Raw<E, D>, Raw<E, D>);

impl<E, D: Storage<E>> Default for Scratch<E, D> {
    fn default() -> Self {
        Self { buffers: None }
    }
}

impl<E, D: Storage<E>> Scratch<E, D> {
    /// The two buffers, at least `n` long.
    pub fn reserve(&mut self, dev: &D, n: usize) -> Result<&mut GradAndValues<E, D>, D::Err> {
        let buffers = match self.buffers.take() {
            Some((g, p)) if dev.len(&g) >= n && dev.len(&p) >= n => (g, p),
            _ => (dev.try_alloc_len(n)?, dev.try_alloc_len(n)?),
        };
        Ok(self.buffers.insert(buffers))
    }
}

/// One fused update at element type `F`: the parameter, and as slices of its length the
/// gradient and the parameter's values (copied into the scratch buffers) and the state.
struct Job<'a, F: Unit, S: Shape> {
    param: &'a mut Tensor<S, F, Cpu>,
    grad: &'a mut [F],
    values: &'a mut [F],
    state: Vec<&'a mut [F]>,
}

impl<'a, F: Unit, S: Shape> Job<'a, F, S> {
    /// The job, with the gradient and the parameter copied in; `None`, with nothing
    /// changed, unless all of it is CPU storage of `F` and long enough.
    fn new<E: Unit, D: Storage<E>>(
        param: &'a mut Tensor<S, E, D>,
        grad: &Tensor<S, E, D>,
        state: &'a mut [&mut Raw<E, D>],
        scratch: &'a mut GradAndValues<E, D>,
    ) -> Option<Self> {
        let n = param.shape().num_elements();
        let param: &mut dyn Any = param;
        let param = param.downcast_mut::<Tensor<S, F, Cpu>>()?;
        let source: &dyn Any = grad;
        let source = source.downcast_ref::<Tensor<S, F, Cpu>>()?;
        let (g, p) = scratch;
        let grad = prefix_mut::<F, E, D>(g, n)?;
        let values = prefix_mut::<F, E, D>(p, n)?;
        let state = state
            .iter_mut()
            .map(|b| prefix_mut::<F, E, D>(b, n))
            .collect::<Option<Vec<_>>>()?;
        source.copy_into(grad);
        param.copy_into(values);
        Some(Self {
            param,
            grad,
            values,
            state,
        })
    }

    /// Writes the parameter's new values back.
    fn finish(self) {
        self.param.copy_from(self.values);
    }
}

/// `p - (step + p * decoupled)`: the composed ops' last two terms, decoupled decay
/// (`wd * lr`, zero when off, which adds an exact zero) and the subtraction, which
/// `axpy` there computes as `p * 1 + step * -1`, the same rounding.
#[inline(always)]
fn descend<F: Float>(p: F, step: F, decoupled: Option<F>) -> F {
    match decoupled {
        Some(c) => p - (step + p * c),
        None => p - step,
    }
}

/// The decoupled decay factor `wd * lr`, rounded once, if decay is decoupled.
fn decoupled<F: Float + FromPrimitive>(decay: Option<WeightDecay>, lr: f64) -> Option<F> {
    match decay {
        Some(WeightDecay::Decoupled(wd)) => Some(c::<F>(wd * lr)),
        _ => None,
    }
}

/// The L2 decay factor, if decay is L2.
fn l2<F: Float + FromPrimitive>(decay: Option<WeightDecay>) -> Option<F> {
    match decay {
        Some(WeightDecay::L2(wd)) => Some(c::<F>(wd)),
        _ => None,
    }
}

/// SGD on one parameter, with `velocity` the momentum buffer when there is momentum;
/// `false`, with nothing changed, where the buffers are not CPU f32 or f64 ones of the
/// parameter's length.
pub(crate) fn sgd<S: Shape, E: Unit, D: Storage<E>>(
    cfg: &SgdConfig,
    param: &mut Tensor<S, E, D>,
    grad: &Tensor<S, E, D>,
    state: &mut [&mut Raw<E, D>],
    scratch: &mut GradAndValues<E, D>,
) -> bool {
    sgd_as::<f32, _, _, _>(cfg, param, grad, state, scratch)
        || sgd_as::<f64, _, _, _>(cfg, param, grad, state, scratch)
}

fn sgd_as<F: Float + FromPrimitive + Unit, S: Shape, E: Unit, D: Storage<E>>(
    cfg: &SgdConfig,
    param: &mut Tensor<S, E, D>,
    grad: &Tensor<S, E, D>,
    state: &mut [&mut Raw<E, D>],
    scratch: &mut GradAndValues<E, D>,
) -> bool {
    if state.len() != usize::from(cfg.momentum.is_some()) {
        return false;
    }
    let Some(mut job) = Job::<F, S>::new(param, grad, state, scratch) else {
        return false;
    };
    let lr = c::<F>(cfg.lr);
    let (l2, decoupled) = (
        l2::<F>(cfg.weight_decay),
        decoupled::<F>(cfg.weight_decay, cfg.lr),
    );
    let with_l2 = |g: F, p: F| l2.map_or(g, |wd| g + p * wd);
    let (g, p) = (&*job.grad, &mut *job.values);
    match (cfg.momentum, job.state.first_mut()) {
        (Some(Momentum::Classic(u)), Some(v)) => {
            let u = c::<F>(u);
            for ((p, &g), v) in p.iter_mut().zip(g).zip(v.iter_mut()) {
                *v = with_l2(g, *p) + *v * u;
                *p = descend(*p, *v * lr, decoupled);
            }
        }
        (Some(Momentum::Nesterov(u)), Some(v)) => {
            let u = c::<F>(u);
            for ((p, &g), v) in p.iter_mut().zip(g).zip(v.iter_mut()) {
                let g = with_l2(g, *p);
                *v = g + *v * u;
                *p = descend(*p, (g + *v * u) * lr, decoupled);
            }
        }
        _ => {
            for (p, &g) in p.iter_mut().zip(g) {
                *p = descend(*p, with_l2(g, *p) * lr, decoupled);
            }
        }
    }
    job.finish();
    true
}

/// Adam on one parameter at its `t`-th update, with `state` its `exp_avg` and `exp_avg_sq`;
/// `false`, with nothing changed, where the buffers are not CPU f32 or f64 ones of the
/// parameter's length.
pub(crate) fn adam<S: Shape, E: Unit, D: Storage<E>>(
    cfg: &AdamConfig,
    t: u64,
    param: &mut Tensor<S, E, D>,
    grad: &Tensor<S, E, D>,
    state: &mut [&mut Raw<E, D>],
    scratch: &mut GradAndValues<E, D>,
) -> bool {
    adam_as::<f32, _, _, _>(cfg, t, param, grad, state, scratch)
        || adam_as::<f64, _, _, _>(cfg, t, param, grad, state, scratch)
}

fn adam_as<F: Float + FromPrimitive + Unit, S: Shape, E: Unit, D: Storage<E>>(
    cfg: &AdamConfig,
    t: u64,
    param: &mut Tensor<S, E, D>,
    grad: &Tensor<S, E, D>,
    state: &mut [&mut Raw<E, D>],
    scratch: &mut GradAndValues<E, D>,
) -> bool {
    if state.len() != 2 {
        return false;
    }
    let Some(mut job) = Job::<F, S>::new(param, grad, state, scratch) else {
        return false;
    };
    let [b1, b2] = cfg.betas;
    // Each constant rounded once from f64, the bias corrections included (as PyTorch
    // computes them in Python floats).
    let (b1, b2, one_minus_b1, one_minus_b2, correction1, correction2) = (
        c::<F>(b1),
        c::<F>(b2),
        c::<F>(1.0 - b1),
        c::<F>(1.0 - b2),
        c::<F>((1.0 - power(b1, t)).recip()),
        c::<F>((1.0 - power(b2, t)).recip()),
    );
    let (lr, eps) = (c::<F>(cfg.lr), c::<F>(cfg.eps));
    let (l2, decoupled) = (
        l2::<F>(cfg.weight_decay),
        decoupled::<F>(cfg.weight_decay, cfg.lr),
    );
    let (g, p) = (&*job.grad, &mut *job.values);
    let [m, v] = &mut job.state[..] else {
        return false;
    };
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let g = l2.map_or(g, |wd| g + *p * wd);
        *m = *m * b1 + g * one_minus_b1;
        *v = *v * b2 + g.powi(2) * one_minus_b2;
        let m_hat = *m * correction1;
        let v_hat = *v * correction2;
        *p = descend(*p, m_hat * lr / (v_hat.sqrt() + eps), decoupled);
    }
    job.finish();
    true
}

/// RMSprop on one parameter, with `state` its buffers in the layout's order (`square_avg`,
/// then `momentum_buffer` with momentum, then `grad_avg` when centered); `false`, with
/// nothing changed, where the buffers are not CPU f32 or f64 ones of the parameter's length.
pub(crate) fn rmsprop<S: Shape, E: Unit, D: Storage<E>>(
    cfg: &RMSpropConfig,
    param: &mut Tensor<S, E, D>,
    grad: &Tensor<S, E, D>,
    state: &mut [&mut Raw<E, D>],
    scratch: &mut GradAndValues<E, D>,
) -> bool {
    rmsprop_as::<f32, _, _, _>(cfg, param, grad, state, scratch)
        || rmsprop_as::<f64, _, _, _>(cfg, param, grad, state, scratch)
}

fn rmsprop_as<F: Float + FromPrimitive + Unit, S: Shape, E: Unit, D: Storage<E>>(
    cfg: &RMSpropConfig,
    param: &mut Tensor<S, E, D>,
    grad: &Tensor<S, E, D>,
    state: &mut [&mut Raw<E, D>],
    scratch: &mut GradAndValues<E, D>,
) -> bool {
    let (momentum, centered) = (cfg.momentum.is_some(), cfg.centered);
    if state.len() != 1 + usize::from(momentum) + usize::from(centered) {
        return false;
    }
    let Some(mut job) = Job::<F, S>::new(param, grad, state, scratch) else {
        return false;
    };
    let k = RmsConstants {
        keep: c::<F>(1.0 - cfg.alpha),
        eps: c::<F>(cfg.eps),
        lr: c::<F>(cfg.lr),
        momentum: c::<F>(cfg.momentum.unwrap_or(0.0)),
        l2: l2::<F>(cfg.weight_decay),
        decoupled: decoupled::<F>(cfg.weight_decay, cfg.lr),
    };
    let (g, p) = (&*job.grad, &mut *job.values);
    let mut state = job.state.iter_mut();
    let mut next = || state.next().map(|s| &mut **s);
    let sa = next().unwrap_or_default();
    // An absent buffer is an empty slice that the loop, told so by a const flag, never indexes.
    let buf = if momentum { next() } else { None }.unwrap_or_default();
    let ga = if centered { next() } else { None }.unwrap_or_default();
    match (momentum, centered) {
        (false, false) => rms_loop::<F, false, false>(&k, g, p, sa, buf, ga),
        (true, false) => rms_loop::<F, true, false>(&k, g, p, sa, buf, ga),
        (false, true) => rms_loop::<F, false, true>(&k, g, p, sa, buf, ga),
        (true, true) => rms_loop::<F, true, true>(&k, g, p, sa, buf, ga),
    }
    job.finish();
    true
}

struct RmsConstants<F> {
    keep: F,
    eps: F,
    lr: F,
    momentum: F,
    l2: Option<F>,
    decoupled: Option<F>,
}

/// The RMSprop pass over `g` and `p` and the equally long `sa`, `buf` (when `MOMENTUM`)
/// and `ga` (when `CENTERED`). The flags are consts so each variant compiles to its own
/// branch-free loop.
fn rms_loop<F: Float, const MOMENTUM: bool, const CENTERED: bool>(
    k: &RmsConstants<F>,
    g: &[F],
    p: &mut [F],
    sa: &mut [F],
    buf: &mut [F],
    ga: &mut [F],
) {
    let n = p.len();
    let (g, sa) = (&g[..n], &mut sa[..n]);
    let buf = if MOMENTUM { &mut buf[..n] } else { buf };
    let ga = if CENTERED { &mut ga[..n] } else { ga };
    for i in 0..n {
        let g = k.l2.map_or(g[i], |wd| g[i] + p[i] * wd);
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
        let step = if MOMENTUM {
            let b = buf[i] * k.momentum + g;
            buf[i] = b;
            b * k.lr
        } else {
            g * k.lr
        };
        p[i] = descend(p[i], step, k.decoupled);
    }
}
