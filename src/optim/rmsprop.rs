//! RMSprop, plain or centered, with optional momentum, with state that can be saved and restored.

use crate::optim::cpu;
use crate::optim::params::{apply_update, scalar, subtract_in_place, ParamUpdate};
use crate::optim::state::{
    check_range, decode_weight_decay, encode_weight_decay, kind_code, HostSlot, Init, Layout,
    OptimizerState, ParamStates, StateDict, StateDtype,
};
use crate::Result;
use dfdx::nn::tensor_collection::TensorCollection;
use dfdx::optim::{Optimizer, OptimizerUpdateError, RMSpropConfig, WeightDecay};
use dfdx::prelude::{Device, Dtype, Gradients, Shape, Tensor};
use dfdx::tensor_ops::{TryAdd, TryDiv, TryMul, TrySub};
use std::marker::PhantomData;

/// RMSprop with dfdx's semantics (which follow `timm`'s `RMSpropTF`, not `torch.optim.RMSprop`):
/// `square_avg` starts at 1, not 0, and `eps` goes inside the square root. It takes
/// dfdx's config, gives dfdx's numbers step for step, and has state that
/// [`OptimizerState`] can save and restore.
///
/// Per parameter: `g += wd * p` (L2); `sa += (1 - alpha) * (g^2 - sa)`; the denominator is
/// `sqrt(sa + eps)`, or `sqrt(sa - ga^2 + eps)` when centered with
/// `ga += (1 - alpha) * (g - ga)`; `g /= denominator`; with momentum `u`, `buf = u * buf + g`
/// and the step is `lr * buf`, else `lr * g`; `p -= step + lr * wd * p` (decoupled decay).
/// The state is `square_avg`, `momentum_buffer` (with momentum), `grad_avg` (when
/// centered) and `step` per parameter.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::optim::RMSprop;
/// let dev = Cpu::default();
/// let mut model = dev.build_module::<Linear<3, 2>, f32>();
/// let cfg = RMSpropConfig { centered: true, momentum: Some(0.9), ..Default::default() };
/// let mut opt = RMSprop::new(&model, cfg);
/// let x: Tensor<Rank2<4, 3>, f32, _> = dev.sample_normal();
/// let loss = model.forward(x.traced(model.alloc_grads())).square().mean();
/// opt.update(&mut model, &loss.backward()).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct RMSprop<M, E: Dtype, D: Device<E>> {
    /// The hyperparameters; change `cfg.lr` between steps for a schedule.
    pub cfg: RMSpropConfig,
    state: ParamStates<E, D>,
    marker: PhantomData<fn() -> M>,
}

impl<M: TensorCollection<E, D>, E: Dtype, D: Device<E>> RMSprop<M, E, D> {
    /// An optimizer for `model`'s trainable parameters with hyperparameters `cfg`.
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// let model = Cpu::default().build_module::<Linear<3, 2>, f32>();
    /// let opt = shapesafe::optim::RMSprop::new(&model, RMSpropConfig::default());
    /// assert!(!opt.cfg.centered);
    /// ```
    pub fn new(model: &M, cfg: RMSpropConfig) -> Self {
        Self {
            cfg,
            state: ParamStates::new(model),
            marker: PhantomData,
        }
    }
}

/// Buffer order: `square_avg`, then `momentum_buffer` if momentum is on, then `grad_avg`
/// if centered.
fn layout(cfg: &RMSpropConfig) -> Layout {
    let mut buffers = vec![("square_avg", Init::Ones)];
    if cfg.momentum.is_some() {
        buffers.push(("momentum_buffer", Init::Zeros));
    }
    if cfg.centered {
        buffers.push(("grad_avg", Init::Zeros));
    }
    Layout {
        buffers,
        counts_steps: true,
    }
}

struct Rule<'a, E: Dtype, D: Device<E>> {
    cfg: RMSpropConfig,
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
        let Some(slot) = self.state.host_slot(name, p, &self.layout)? else {
            return Ok(false);
        };
        let HostSlot {
            step,
            mut buffers,
            scratch,
        } = slot;
        if !cpu::rmsprop(&cfg, p, g, &mut buffers, scratch) {
            return Ok(false);
        }
        *step = step.saturating_add(1);
        Ok(true)
    }

    /// The device-generic tensor ops, one op per term.
    fn composed<S: Shape>(
        &mut self,
        name: &str,
        p: &mut Tensor<S, E, D>,
        g: Tensor<S, E, D>,
    ) -> Result<(), D::Err> {
        let cfg = self.cfg;
        let keep = scalar::<E>(1.0 - cfg.alpha);
        let eps = scalar::<E>(cfg.eps);
        let momentum_index = 1;
        let grad_avg_index = 1 + usize::from(cfg.momentum.is_some());
        let state = self.state.get_or_init(name, p, &self.layout)?;
        let t = state.step.saturating_add(1);
        let sa = state.buffer(0, p)?;
        let buf = match cfg.momentum {
            Some(_) => Some(state.buffer(momentum_index, p)?),
            None => None,
        };
        let ga = match cfg.centered {
            true => Some(state.buffer(grad_avg_index, p)?),
            false => None,
        };

        let mut g = g;
        if let Some(WeightDecay::L2(wd)) = cfg.weight_decay {
            g = g.try_add(p.clone().try_mul(scalar::<E>(wd))?)?;
        }
        let sa = sa
            .clone()
            .try_add(g.clone().try_square()?.try_sub(sa)?.try_mul(keep)?)?;
        let (denominator, ga) = match ga {
            Some(ga) => {
                let ga = ga.clone().try_add(g.clone().try_sub(ga)?.try_mul(keep)?)?;
                let var = sa.clone().try_sub(ga.clone().try_square()?)?;
                (var.try_add(eps)?.try_sqrt()?, Some(ga))
            }
            None => (sa.clone().try_add(eps)?.try_sqrt()?, None),
        };
        let g = g.try_div(denominator)?;
        let lr = scalar::<E>(cfg.lr);
        let (mut step, buf) = match (cfg.momentum, buf) {
            (Some(u), Some(buf)) => {
                let buf = buf.try_mul(scalar::<E>(u))?.try_add(g)?;
                (buf.clone().try_mul(lr)?, Some(buf))
            }
            _ => (g.try_mul(lr)?, None),
        };
        if let Some(WeightDecay::Decoupled(wd)) = cfg.weight_decay {
            step = step.try_add(p.clone().try_mul(scalar::<E>(wd * cfg.lr))?)?;
        }
        subtract_in_place(p, &step)?;

        let state = self.state.get_or_init(name, p, &self.layout)?;
        state.set_buffer(0, sa)?;
        if let Some(buf) = buf {
            state.set_buffer(momentum_index, buf)?;
        }
        if let Some(ga) = ga {
            state.set_buffer(grad_avg_index, ga)?;
        }
        state.step = t;
        Ok(())
    }
}

impl<M, E, D> Optimizer<M, D, E> for RMSprop<M, E, D>
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

const GROUP: [&str; 8] = [
    "lr",
    "alpha",
    "eps",
    "momentum_kind",
    "momentum",
    "centered",
    "weight_decay_kind",
    "weight_decay",
];

fn decode(h: &[f64]) -> Result<RMSpropConfig> {
    check_range("lr", h[0], 0.0, None)?;
    check_range("alpha", h[1], 0.0, None)?;
    check_range("eps", h[2], 0.0, None)?;
    check_range("momentum", h[4], 0.0, None)?;
    let momentum = match kind_code("momentum_kind", h[3], 2)? {
        0 => None,
        _ => Some(h[4]),
    };
    Ok(RMSpropConfig {
        lr: h[0],
        alpha: h[1],
        eps: h[2],
        momentum,
        centered: kind_code("centered", h[5], 2)? == 1,
        weight_decay: decode_weight_decay(h[6], h[7])?,
    })
}

impl<M, E: StateDtype, D: Device<E>> OptimizerState for RMSprop<M, E, D> {
    fn state_dict(&self) -> Result<StateDict> {
        let c = &self.cfg;
        let [wk, w] = encode_weight_decay(c.weight_decay);
        let (mk, m) = match c.momentum {
            Some(u) => (1.0, u),
            None => (0.0, 0.0),
        };
        let centered = if c.centered { 1.0 } else { 0.0 };
        let values = [c.lr, c.alpha, c.eps, mk, m, centered, wk, w];
        let group: Vec<(&str, f64)> = GROUP.iter().copied().zip(values).collect();
        self.state.to_dict(&layout(c), &group)
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
