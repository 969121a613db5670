//! Walking a model's trainable parameters by name, with their gradients.
//!
//! dfdx 0.13 keeps gradients in a map keyed by process-local tensor ids and exposes no
//! way to ask whether a gradient is present, nor to write a tensor into a gradient buffer.
//! This file works around both with public API only, so every other file in `optim` can
//! think in terms of "parameter name, parameter tensor, gradient tensor".
//!
//! Presence: `Gradients::get` clones the entry or panics on a missing one, and the lookup
//! that returns `None` is private to dfdx. With `panic = "unwind"` each walk asks `get`
//! under `catch_unwind`, silencing the panic message of that probe only; it costs nothing
//! when the gradient is there, and the clone is the gradient every caller reads anyway.
//! With `panic = "abort"` nothing can be caught, so a throwaway dfdx SGD over a clone of the
//! model lists the missing ones first ([`missing_grads`]), at the price of a copy of every
//! parameter.

use dfdx::nn::tensor_collection::{
    RecursiveWalker, TensorCollection, TensorOptions, TensorVisitor, ViewTensorMut, ViewTensorName,
    ViewTensorRef,
};
use dfdx::optim::{Optimizer, OptimizerUpdateError, SgdConfig, UnusedTensors};
use dfdx::prelude::{Backward, Device, Dtype, Gradients, HasShape, Shape, SumTo, Tensor, Trace};
use dfdx::tensor_ops::TryMul;
use std::collections::BTreeSet;
use std::convert::Infallible;

/// `x` as the element type. Every float dtype dfdx has a device for can hold any f64
/// (possibly rounded), so the fallback is never taken; it only avoids an `unwrap`.
pub(crate) fn scalar<E: Dtype>(x: f64) -> E {
    E::from_f64(x).unwrap_or_default()
}

/// The process-local id dfdx keys gradients by; `UnusedTensors::add` is the one public
/// way to read it.
pub(crate) fn tensor_id<S: Shape, E: Dtype, D: Device<E>>(
    t: &Tensor<S, E, D>,
) -> dfdx::prelude::UniqueId {
    let mut probe = UnusedTensors::default();
    probe.add(t);
    probe.ids[0]
}

/// Name, shape and whether it is trained, for every tensor of a model, in walk order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ParamInfo {
    /// dfdx's dotted name, e.g. `0.weight`.
    pub name: String,
    /// The concrete dims.
    pub shape: Vec<usize>,
}

struct Registry<D> {
    params: Vec<ParamInfo>,
    device: Option<D>,
}

impl<E: Dtype, D: Device<E>> TensorVisitor<E, D> for Registry<D> {
    type Viewer = (ViewTensorRef, ViewTensorName);
    type Err = Infallible;
    type E2 = E;
    type D2 = D;

    fn visit<S: Shape>(
        &mut self,
        opts: TensorOptions<S, E, D>,
        (t, name): (&Tensor<S, E, D>, String),
    ) -> Result<Option<Tensor<S, E, D>>, Self::Err> {
        if opts.do_gradient_update {
            self.params.push(ParamInfo {
                name,
                shape: t.shape().concrete().into(),
            });
            if self.device.is_none() {
                self.device = Some(t.device().clone());
            }
        }
        Ok(None)
    }
}

/// The trainable parameters of `model` (those dfdx's optimizers update) and the device
/// they live on (`None` for a model without parameters).
pub(crate) fn trainable_params<M, E, D>(model: &M) -> (Vec<ParamInfo>, Option<D>)
where
    M: TensorCollection<E, D>,
    E: Dtype,
    D: Device<E>,
{
    let mut registry = Registry {
        params: Vec::new(),
        device: None,
    };
    // The error type is `Infallible`, so there is nothing to handle.
    let _ = M::iter_tensors(&mut RecursiveWalker {
        m: (model, String::new()),
        f: &mut registry,
    });
    (registry.params, registry.device)
}

/// Ids of trainable parameters that have no gradient in `grads`.
///
/// `Gradients::get` panics on a missing entry and the lookup that does not is private
/// to dfdx, but dfdx's own optimizers report missing entries. So a throwaway dfdx SGD
/// with `lr = 0` runs over a clone of the model (the clone shares ids, and writes only
/// to its own copy-on-write buffers) and its `UnusedParams` answer is the list. This is
/// the fallback where a panic cannot be caught; see [`Presence`].
pub(crate) fn missing_grads<M, E, D>(
    model: &M,
    grads: &Gradients<E, D>,
) -> Result<BTreeSet<dfdx::prelude::UniqueId>, D::Err>
where
    M: TensorCollection<E, D> + Clone,
    E: Dtype,
    D: Device<E>,
{
    let mut probe = model.clone();
    let cfg = SgdConfig {
        lr: 0.0,
        momentum: None,
        weight_decay: None,
    };
    let mut sgd = dfdx::optim::Sgd::new(&probe, cfg);
    match sgd.update(&mut probe, grads) {
        Ok(()) => Ok(BTreeSet::new()),
        Err(OptimizerUpdateError::UnusedParams(unused)) => Ok(unused.ids.into_iter().collect()),
        Err(OptimizerUpdateError::DeviceError(e)) => Err(e),
    }
}

/// `grads.get(param)`, or `None` where `param` has no gradient, without printing the
/// panic that `get` raises then.
///
/// The panic hook is process-wide, so a hook is installed once that forwards to the
/// previous one except on a thread that is inside this probe. A hook the program sets
/// later replaces it and then sees these panics (only ever for missing gradients).
#[cfg(panic = "unwind")]
fn probe_grad<S: Shape, E: Dtype, D: Device<E>>(
    grads: &Gradients<E, D>,
    param: &Tensor<S, E, D>,
) -> Option<Tensor<S, E, D>> {
    use std::cell::Cell;
    use std::panic::{catch_unwind, set_hook, take_hook, AssertUnwindSafe};
    use std::sync::Once;

    thread_local! {
        static PROBING: Cell<bool> = const { Cell::new(false) };
    }
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = take_hook();
        set_hook(Box::new(move |info| {
            if !PROBING.with(Cell::get) {
                previous(info);
            }
        }));
    });
    PROBING.with(|p| p.set(true));
    // `get` panics before it touches anything (an `unwrap` on the map lookup), so
    // nothing is left half-done when it unwinds.
    let found = catch_unwind(AssertUnwindSafe(|| grads.get(param)));
    PROBING.with(|p| p.set(false));
    found.ok()
}

/// How a walk tells which trainable parameters have a gradient.
pub(crate) enum Presence {
    /// Ask `Gradients::get` under `catch_unwind`, per parameter (no extra work).
    #[cfg(panic = "unwind")]
    Probe,
    /// The ids [`missing_grads`] listed up front.
    Missing(BTreeSet<dfdx::prelude::UniqueId>),
}

impl Presence {
    /// The cheapest way that works in this build and on this thread: the probe, unless
    /// panics abort or the thread is already unwinding (where a hook cannot be set and a
    /// second panic would abort).
    pub fn of<M, E, D>(model: &M, grads: &Gradients<E, D>) -> Result<Self, D::Err>
    where
        M: TensorCollection<E, D> + Clone,
        E: Dtype,
        D: Device<E>,
    {
        #[cfg(panic = "unwind")]
        if !std::thread::panicking() {
            return Ok(Presence::Probe);
        }
        Ok(Presence::Missing(missing_grads(model, grads)?))
    }

    /// The gradient of `param` (a copy), or `None` if it has none.
    pub fn grad<S: Shape, E: Dtype, D: Device<E>>(
        &self,
        grads: &Gradients<E, D>,
        param: &Tensor<S, E, D>,
    ) -> Option<Tensor<S, E, D>> {
        match self {
            #[cfg(panic = "unwind")]
            Presence::Probe => probe_grad(grads, param),
            Presence::Missing(missing) => {
                (!missing.contains(&tensor_id(param))).then(|| grads.get(param))
            }
        }
    }
}

/// Replaces the gradient of `param` in `grads` with `value`, exactly.
///
/// dfdx has no public way to move a tensor into a gradient buffer, but backprop writes
/// one: d/dp sum(p * value) = value, accumulated into a fresh zero buffer (0 + v = v).
/// That buffer is then swapped into `grads`, so `grads` gains no temporaries.
pub(crate) fn set_grad<S: Shape, E: Dtype, D: Device<E>>(
    grads: &mut Gradients<E, D>,
    param: &Tensor<S, E, D>,
    value: Tensor<S, E, D>,
) -> Result<(), D::Err> {
    let loss = param
        .trace(Gradients::leaky())
        .try_mul(value)?
        .try_sum::<(), S::AllAxes>()?;
    let mut fresh = loss.try_backward()?;
    std::mem::swap(
        grads.get_or_alloc_mut(param)?,
        fresh.get_or_alloc_mut(param)?,
    );
    Ok(())
}

/// What to do with each trainable parameter that has a gradient, given read access
/// to all gradients (`G = &Gradients`) or write access (`G = &mut Gradients`).
pub(crate) trait GradVisitor<E: Dtype, D: Device<E>, G> {
    /// Called once per trainable parameter whose gradient is present in `grads`, with a
    /// copy of that gradient.
    fn visit<S: Shape>(
        &mut self,
        name: &str,
        param: &Tensor<S, E, D>,
        grad: Tensor<S, E, D>,
        grads: &mut G,
    ) -> Result<(), D::Err>;
}

struct GradWalker<'v, V, G> {
    visitor: &'v mut V,
    grads: G,
    presence: Presence,
}

impl<'v, E: Dtype, D: Device<E>, V: GradVisitor<E, D, G>, G> TensorVisitor<E, D>
    for GradWalker<'v, V, G>
where
    G: std::borrow::Borrow<Gradients<E, D>>,
{
    type Viewer = (ViewTensorRef, ViewTensorName);
    type Err = D::Err;
    type E2 = E;
    type D2 = D;

    fn visit<S: Shape>(
        &mut self,
        opts: TensorOptions<S, E, D>,
        (p, name): (&Tensor<S, E, D>, String),
    ) -> Result<Option<Tensor<S, E, D>>, Self::Err> {
        if opts.do_gradient_update {
            if let Some(grad) = self.presence.grad(self.grads.borrow(), p) {
                self.visitor.visit(&name, p, grad, &mut self.grads)?;
            }
        }
        Ok(None)
    }
}

/// Calls `visitor` on every trainable parameter of `model` that has a gradient in
/// `grads`, in dfdx's walk order. Parameters without a gradient are skipped, as
/// PyTorch skips parameters whose `.grad` is `None`.
pub(crate) fn walk_grads<M, E, D, V, G>(model: &M, grads: G, visitor: &mut V) -> Result<(), D::Err>
where
    M: TensorCollection<E, D> + Clone,
    E: Dtype,
    D: Device<E>,
    G: std::borrow::Borrow<Gradients<E, D>>,
    V: GradVisitor<E, D, G>,
{
    let presence = Presence::of(model, grads.borrow())?;
    let mut walker = GradWalker {
        visitor,
        grads,
        presence,
    };
    M::iter_tensors(&mut RecursiveWalker {
        m: (model, String::new()),
        f: &mut walker,
    })?;
    Ok(())
}

/// An optimizer's rule for one parameter: given its name, the tensor (to update in place,
/// keeping its id) and its gradient.
pub(crate) trait ParamUpdate<E: Dtype, D: Device<E>> {
    /// Updates `param` from `grad`.
    fn update_param<S: Shape>(
        &mut self,
        name: &str,
        param: &mut Tensor<S, E, D>,
        grad: Tensor<S, E, D>,
    ) -> Result<(), D::Err>;
}

struct UpdateWalker<'a, U, E: Dtype, D: Device<E>> {
    rule: &'a mut U,
    grads: &'a Gradients<E, D>,
    presence: Presence,
    unused: UnusedTensors,
}

impl<'a, E: Dtype, D: Device<E>, U: ParamUpdate<E, D>> TensorVisitor<E, D>
    for UpdateWalker<'a, U, E, D>
{
    type Viewer = (ViewTensorMut, ViewTensorName);
    type Err = D::Err;
    type E2 = E;
    type D2 = D;

    fn visit<S: Shape>(
        &mut self,
        opts: TensorOptions<S, E, D>,
        (p, name): (&mut Tensor<S, E, D>, String),
    ) -> Result<Option<Tensor<S, E, D>>, Self::Err> {
        if !opts.do_gradient_update {
            return Ok(None);
        }
        match self.presence.grad(self.grads, p) {
            Some(grad) => self.rule.update_param(&name, p, grad)?,
            None => self.unused.add(p),
        }
        Ok(None)
    }
}

/// Runs `rule` over every trainable parameter of `model`, with dfdx's contract: parameters
/// with a gradient are updated, and if any had none the result is `UnusedParams` listing them.
pub(crate) fn apply_update<M, E, D, U>(
    model: &mut M,
    grads: &Gradients<E, D>,
    rule: &mut U,
) -> Result<(), OptimizerUpdateError<D::Err>>
where
    M: TensorCollection<E, D> + Clone,
    E: Dtype,
    D: Device<E>,
    U: ParamUpdate<E, D>,
{
    let presence = Presence::of(model, grads).map_err(OptimizerUpdateError::DeviceError)?;
    let mut walker = UpdateWalker {
        rule,
        grads,
        presence,
        unused: UnusedTensors::default(),
    };
    M::iter_tensors(&mut RecursiveWalker {
        m: (model, String::new()),
        f: &mut walker,
    })
    .map_err(OptimizerUpdateError::DeviceError)?;
    walker.unused.into()
}

/// `param -= step`, in place, so the parameter keeps its id (and so its gradient slot).
///
/// `axpy` computes `param * 1 + step * -1`; both products are exact, so this rounds once,
/// exactly like dfdx's `*p -= g`.
pub(crate) fn subtract_in_place<S: Shape, E: Dtype, D: Device<E>>(
    param: &mut Tensor<S, E, D>,
    step: &Tensor<S, E, D>,
) -> Result<(), D::Err> {
    param.try_axpy(1.0, step, -1.0)
}
