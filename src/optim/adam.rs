//! Adam and AdamW, with state that can be saved and restored.

use crate::optim::cpu;
use crate::optim::params::{apply_update, scalar, subtract_in_place, ParamUpdate};
use crate::optim::state::{
    check_range, decode_weight_decay, encode_weight_decay, HostSlot, Init, Layout, OptimizerState,
    ParamStates, StateDict, StateDtype,
};
use crate::Result;
use dfdx::nn::tensor_collection::TensorCollection;
use dfdx::optim::{AdamConfig, Optimizer, OptimizerUpdateError, WeightDecay};
use dfdx::prelude::{Device, Dtype, Gradients, Shape, Tensor};
use dfdx::tensor_ops::{TryAdd, TryDiv, TryMul};
use std::marker::PhantomData;

/// Adam ([Kingma & Ba](https://arxiv.org/abs/1412.6980)), as PyTorch's `torch.optim.Adam`
/// and dfdx's `Adam`, whose config it takes, with state that [`OptimizerState`] can save
/// and restore. With `weight_decay: Some(WeightDecay::Decoupled(wd))` it is AdamW
/// (PyTorch's `torch.optim.AdamW`).
///
/// Per parameter, at its `t`-th update: `g += wd * p` (L2); `m = b1 * m + (1 - b1) * g`;
/// `v = b2 * v + (1 - b2) * g^2`; `p -= lr * m_hat / (sqrt(v_hat) + eps) + lr * wd * p`
/// (the last term for decoupled decay), where `m_hat = m / (1 - b1^t)` and
/// `v_hat = v / (1 - b2^t)`. The state is `exp_avg` (m), `exp_avg_sq` (v) and `step` (t)
/// per parameter; `t` counts per parameter as in PyTorch (dfdx counts calls, which is the
/// same whenever every parameter gets a gradient).
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::optim::Adam;
/// let dev = Cpu::default();
/// let mut model = dev.build_module::<Linear<3, 2>, f32>();
/// let adamw = AdamConfig { weight_decay: Some(WeightDecay::Decoupled(1e-2)), ..Default::default() };
/// let mut opt = Adam::new(&model, adamw);
/// let x: Tensor<Rank2<4, 3>, f32, _> = dev.sample_normal();
/// let loss = model.forward(x.traced(model.alloc_grads())).square().mean();
/// opt.update(&mut model, &loss.backward()).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct Adam<M, E: Dtype, D: Device<E>> {
    /// The hyperparameters; change `cfg.lr` between steps for a schedule.
    pub cfg: AdamConfig,
    state: ParamStates<E, D>,
    marker: PhantomData<fn() -> M>,
}

impl<M: TensorCollection<E, D>, E: Dtype, D: Device<E>> Adam<M, E, D> {
    /// An optimizer for `model`'s trainable parameters with hyperparameters `cfg`.
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// let model = Cpu::default().build_module::<Linear<3, 2>, f32>();
    /// let opt = shapesafe::optim::Adam::new(&model, AdamConfig::default());
    /// assert_eq!(opt.cfg.betas, [0.9, 0.999]);
    /// ```
    pub fn new(model: &M, cfg: AdamConfig) -> Self {
        Self {
            cfg,
            state: ParamStates::new(model),
            marker: PhantomData,
        }
    }
}

fn layout() -> Layout {
    Layout {
        buffers: vec![("exp_avg", Init::Zeros), ("exp_avg_sq", Init::Zeros)],
        counts_steps: true,
    }
}

/// `beta^t` for any step count: `powi` (what dfdx uses) while `t` fits an `i32`.
pub(crate) fn power(beta: f64, t: u64) -> f64 {
    match i32::try_from(t) {
        Ok(t) => beta.powi(t),
        Err(_) => beta.powf(t as f64),
    }
}

struct Rule<'a, E: Dtype, D: Device<E>> {
    cfg: AdamConfig,
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
        let t = step.saturating_add(1);
        if !cpu::adam(&cfg, t, p, g, &mut buffers, scratch) {
            return Ok(false);
        }
        *step = t;
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
        let [b1, b2] = cfg.betas;
        let state = self.state.get_or_init(name, p, &self.layout)?;
        let t = state.step.saturating_add(1);
        let m = state.buffer(0, p)?;
        let v = state.buffer(1, p)?;

        let mut g = g;
        if let Some(WeightDecay::L2(wd)) = cfg.weight_decay {
            g = g.try_add(p.clone().try_mul(scalar::<E>(wd))?)?;
        }
        let m = m
            .try_mul(scalar::<E>(b1))?
            .try_add(g.clone().try_mul(scalar::<E>(1.0 - b1))?)?;
        let v = v
            .try_mul(scalar::<E>(b2))?
            .try_add(g.try_square()?.try_mul(scalar::<E>(1.0 - b2))?)?;
        // Bias corrections in f64, as PyTorch computes them in Python floats.
        let m_hat = m
            .clone()
            .try_mul(scalar::<E>((1.0 - power(b1, t)).recip()))?;
        let v_hat = v
            .clone()
            .try_mul(scalar::<E>((1.0 - power(b2, t)).recip()))?;
        let mut step = m_hat
            .try_mul(scalar::<E>(cfg.lr))?
            .try_div(v_hat.try_sqrt()?.try_add(scalar::<E>(cfg.eps))?)?;
        if let Some(WeightDecay::Decoupled(wd)) = cfg.weight_decay {
            step = step.try_add(p.clone().try_mul(scalar::<E>(wd * cfg.lr))?)?;
        }
        subtract_in_place(p, &step)?;

        let state = self.state.get_or_init(name, p, &self.layout)?;
        state.set_buffer(0, m)?;
        state.set_buffer(1, v)?;
        state.step = t;
        Ok(())
    }
}

impl<M, E, D> Optimizer<M, D, E> for Adam<M, E, D>
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
            layout: layout(),
            state: &mut self.state,
        };
        apply_update(module, gradients, &mut rule)
    }
}

const GROUP: [&str; 6] = [
    "lr",
    "beta1",
    "beta2",
    "eps",
    "weight_decay_kind",
    "weight_decay",
];

fn decode(h: &[f64]) -> Result<AdamConfig> {
    check_range("lr", h[0], 0.0, None)?;
    check_range("beta1", h[1], 0.0, Some(1.0))?;
    check_range("beta2", h[2], 0.0, Some(1.0))?;
    check_range("eps", h[3], 0.0, None)?;
    Ok(AdamConfig {
        lr: h[0],
        betas: [h[1], h[2]],
        eps: h[3],
        weight_decay: decode_weight_decay(h[4], h[5])?,
    })
}

impl<M, E: StateDtype, D: Device<E>> OptimizerState for Adam<M, E, D> {
    fn state_dict(&self) -> Result<StateDict> {
        let c = &self.cfg;
        let [wk, w] = encode_weight_decay(c.weight_decay);
        let values = [c.lr, c.betas[0], c.betas[1], c.eps, wk, w];
        let group: Vec<(&str, f64)> = GROUP.iter().copied().zip(values).collect();
        self.state.to_dict(&layout(), &group)
    }

    fn load_state_dict(&mut self, state: &StateDict) -> Result<()> {
        let (h, states) = self
            .state
            .parse_dict(state, &GROUP, |h| decode(h).map(|_| layout()))?;
        self.cfg = decode(&h)?;
        self.state.commit(states);
        Ok(())
    }
}
