//! Stochastic gradient descent with momentum, Nesterov momentum and weight decay, with
//! state that can be saved and restored.

use crate::optim::cpu;
use crate::optim::params::{apply_update, scalar, subtract_in_place, ParamUpdate};
use crate::optim::state::{
    check_range, decode_weight_decay, encode_weight_decay, kind_code, HostSlot, Init, Layout,
    OptimizerState, ParamStates, StateDict, StateDtype,
};
use crate::Result;
use dfdx::nn::tensor_collection::TensorCollection;
use dfdx::optim::{Momentum, Optimizer, OptimizerUpdateError, SgdConfig, WeightDecay};
use dfdx::prelude::{Device, Dtype, Gradients, Shape, Tensor};
use dfdx::tensor_ops::{TryAdd, TryMul};
use std::marker::PhantomData;

/// SGD, as PyTorch's `torch.optim.SGD` (no dampening) and dfdx's `Sgd`, whose config it
/// takes: the same numbers, step for step, but with state that [`OptimizerState`] can
/// save and restore.
///
/// Per parameter, with gradient `g` and learning rate `lr`:
/// `g += wd * p` (for `WeightDecay::L2`); with momentum `u`, `v = u * v + g` and the step is
/// `lr * v` (classic) or `lr * (g + u * v)` (Nesterov); `p -= step + lr * wd * p` (the last
/// term for `WeightDecay::Decoupled`). The state is `state.<param>.momentum_buffer`, only
/// when momentum is on.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::optim::Sgd;
/// let dev = Cpu::default();
/// let mut model = dev.build_module::<Linear<3, 2>, f32>();
/// let cfg = SgdConfig { lr: 0.1, momentum: Some(Momentum::Nesterov(0.9)), weight_decay: None };
/// let mut opt = Sgd::new(&model, cfg);
/// let x: Tensor<Rank2<4, 3>, f32, _> = dev.sample_normal();
/// let loss = model.forward(x.traced(model.alloc_grads())).square().mean();
/// opt.update(&mut model, &loss.backward()).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct Sgd<M, E: Dtype, D: Device<E>> {
    /// The hyperparameters; change `cfg.lr` between steps for a schedule.
    pub cfg: SgdConfig,
    state: ParamStates<E, D>,
    marker: PhantomData<fn() -> M>,
}

impl<M: TensorCollection<E, D>, E: Dtype, D: Device<E>> Sgd<M, E, D> {
    /// An optimizer for `model`'s trainable parameters with hyperparameters `cfg`.
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// let model = Cpu::default().build_module::<Linear<3, 2>, f64>();
    /// let opt = shapesafe::optim::Sgd::new(&model, SgdConfig::default());
    /// assert_eq!(opt.cfg.lr, 1e-2);
    /// ```
    pub fn new(model: &M, cfg: SgdConfig) -> Self {
        Self {
            cfg,
            state: ParamStates::new(model),
            marker: PhantomData,
        }
    }
}

fn layout(cfg: &SgdConfig) -> Layout {
    Layout {
        buffers: match cfg.momentum {
            Some(_) => vec![("momentum_buffer", Init::Zeros)],
            None => Vec::new(),
        },
        counts_steps: false,
    }
}

struct Rule<'a, E: Dtype, D: Device<E>> {
    cfg: SgdConfig,
    layout: Layout,
    state: &'a mut ParamStates<E, D>,
}

impl<'a, E: Dtype, D: Device<E>> ParamUpdate<E, D> for Rule<'a, E, D> {
    fn update_param<S: Shape>(
        &mut self,
        name: &str,
        p: &mut Tensor<S, E, D>,
        g: Tensor<S, E, D>,
    ) -> Result<(), D::Err> {
        if self.state.fused_for(p)? && self.fused(name, p, &g)? {
            return Ok(());
        }
        self.composed(name, p, g)
    }
}

impl<'a, E: Dtype, D: Device<E>> Rule<'a, E, D> {
    /// The CPU's one pass (see `optim::cpu`); `false`, with nothing changed, where the
    /// device has no host storage.
    fn fused<S: Shape>(
        &mut self,
        name: &str,
        p: &mut Tensor<S, E, D>,
        g: &Tensor<S, E, D>,
    ) -> Result<bool, D::Err> {
        let cfg = self.cfg;
        if cfg.momentum.is_none() && cfg.weight_decay.is_none() {
            // `p * 1 + g * -lr` is the composed `p * 1 + (g * lr) * -1` (rounding is
            // symmetric), read straight from the gradient, without the scratch copy.
            p.try_axpy(1.0, g, -cfg.lr)?;
            return Ok(true);
        }
        let Some(slot) = self.state.host_slot(name, p, &self.layout)? else {
            return Ok(false);
        };
        let HostSlot {
            mut buffers,
            scratch,
            ..
        } = slot;
        Ok(cpu::sgd(&cfg, p, g, &mut buffers, scratch))
    }

    /// The device-generic tensor ops, one op per term.
    fn composed<S: Shape>(
        &mut self,
        name: &str,
        p: &mut Tensor<S, E, D>,
        g: Tensor<S, E, D>,
    ) -> Result<(), D::Err> {
        let cfg = self.cfg;
        let lr = scalar::<E>(cfg.lr);
        let mut g = g;
        if let Some(WeightDecay::L2(wd)) = cfg.weight_decay {
            g = g.try_add(p.clone().try_mul(scalar::<E>(wd))?)?;
        }
        let mut new_velocity = None;
        let mut step = match cfg.momentum {
            Some(Momentum::Classic(u)) | Some(Momentum::Nesterov(u)) => {
                let u = scalar::<E>(u);
                let state = self.state.get_or_init(name, p, &self.layout)?;
                let v = state.buffer(0, p)?;
                let v = g.clone().try_add(v.try_mul(u)?)?;
                let step = if matches!(cfg.momentum, Some(Momentum::Nesterov(_))) {
                    g.try_add(v.clone().try_mul(u)?)?.try_mul(lr)?
                } else {
                    v.clone().try_mul(lr)?
                };
                new_velocity = Some(v);
                step
            }
            None => g.try_mul(lr)?,
        };
        if let Some(WeightDecay::Decoupled(wd)) = cfg.weight_decay {
            step = step.try_add(p.clone().try_mul(scalar::<E>(wd * cfg.lr))?)?;
        }
        subtract_in_place(p, &step)?;
        // Only now that the parameter moved does the state advance, so a device error
        // leaves this parameter's state and value consistent.
        if let Some(v) = new_velocity {
            let state = self.state.get_or_init(name, p, &self.layout)?;
            state.set_buffer(0, v)?;
        }
        Ok(())
    }
}

impl<M, E, D> Optimizer<M, D, E> for Sgd<M, E, D>
where
    M: TensorCollection<E, D> + Clone,
    E: Dtype,
    D: Device<E>,
{
    fn update(
        &mut self,
        module: &mut M,
        gradients: &Gradients<E, D>,
    ) -> Result<(), OptimizerUpdateError<D::Err>> {
        let mut rule = Rule {
            cfg: self.cfg,
            layout: layout(&self.cfg),
            state: &mut self.state,
        };
        apply_update(module, gradients, &mut rule)
    }
}

const GROUP: [&str; 5] = [
    "lr",
    "momentum_kind",
    "momentum",
    "weight_decay_kind",
    "weight_decay",
];

/// `group.momentum_kind`: 0 none, 1 classic, 2 Nesterov.
fn encode_momentum(m: Option<Momentum>) -> [f64; 2] {
    match m {
        None => [0.0, 0.0],
        Some(Momentum::Classic(u)) => [1.0, u],
        Some(Momentum::Nesterov(u)) => [2.0, u],
    }
}

fn decode(h: &[f64]) -> Result<SgdConfig> {
    check_range("lr", h[0], 0.0, None)?;
    check_range("momentum", h[2], 0.0, None)?;
    let momentum = match kind_code("momentum_kind", h[1], 3)? {
        0 => None,
        1 => Some(Momentum::Classic(h[2])),
        _ => Some(Momentum::Nesterov(h[2])),
    };
    Ok(SgdConfig {
        lr: h[0],
        momentum,
        weight_decay: decode_weight_decay(h[3], h[4])?,
    })
}

impl<M, E: StateDtype, D: Device<E>> OptimizerState for Sgd<M, E, D> {
    fn state_dict(&self) -> Result<StateDict> {
        let [mk, m] = encode_momentum(self.cfg.momentum);
        let [wk, w] = encode_weight_decay(self.cfg.weight_decay);
        let values = [self.cfg.lr, mk, m, wk, w];
        let group: Vec<(&str, f64)> = GROUP.iter().copied().zip(values).collect();
        self.state.to_dict(&layout(&self.cfg), &group)
    }

    fn load_state_dict(&mut self, state: &StateDict) -> Result<()> {
        let (h, states) = self
            .state
            .parse_dict(state, &GROUP, |h| decode(h).map(|c| layout(&c)))?;
        self.cfg = decode(&h)?;
        self.state.commit(states);
        Ok(())
    }
}
