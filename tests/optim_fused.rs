//! The optimizers' fused CPU path: against plain f64 loops of the documented equations, bit
//! for bit against the composed tensor ops, through a state round trip, and with parameters
//! that have no gradient.

mod common;

use common::{assert_close, Tolerance};
use shapesafe::kernels::with_composed_ops;
use shapesafe::optim::{self, OptimizerState, OptimizerUpdateError, StateData};
use shapesafe::prelude::*;

type Net = (Linear<3, 5>, Tanh, Linear<5, 2>);
type Model<E> = <Net as BuildOnDevice<Cpu, E>>::Built;

/// The names dfdx's walk gives the parameters, in the order `params` lists them.
const NAMES: [&str; 4] = ["0.weight", "0.bias", "2.weight", "2.bias"];

/// Steps per run: enough for momentum and bias corrections to matter.
const STEPS: u64 = 6;

/// Rounding-level agreement between two f64 computations of the same equations.
const SAME_EQUATIONS: Tolerance = Tolerance {
    abs: 1e-13,
    rel: 1e-11,
};

/// The model, its seeded loss gradients and its parameters, for one element type.
struct Harness<E: Dtype, M> {
    model: fn(u64) -> M,
    /// The gradients of a seeded MSE loss at step `i`.
    grads: fn(&M, u64) -> Gradients<E, Cpu>,
    /// Each parameter's values, in `NAMES` order.
    params: fn(&M) -> [Vec<E>; 4],
}

macro_rules! harness {
    ($module:ident, $e:ty) => {
        mod $module {
            use super::*;

            pub fn model(seed: u64) -> Model<$e> {
                Cpu::seed_from_u64(seed).build_module::<Net, $e>()
            }

            pub fn loss_grads(m: &Model<$e>, i: u64) -> Gradients<$e, Cpu> {
                let dev = Cpu::seed_from_u64(1_000 + i);
                let x: Tensor<Rank2<4, 3>, $e, Cpu> = dev.sample_normal();
                let y: Tensor<Rank2<4, 2>, $e, Cpu> = dev.sample_normal();
                mse_loss(m.forward(x.traced(m.alloc_grads())), y).backward()
            }

            pub fn params(m: &Model<$e>) -> [Vec<$e>; 4] {
                [
                    m.0.weight.as_vec(),
                    m.0.bias.as_vec(),
                    m.2.weight.as_vec(),
                    m.2.bias.as_vec(),
                ]
            }

            pub const HARNESS: Harness<$e, Model<$e>> = Harness {
                model,
                grads: loss_grads,
                params,
            };
        }
    };
}

harness!(single, f32);
harness!(double, f64);
use double::{loss_grads, model, params};

/// Each parameter's gradient, in `NAMES` order.
fn grads_of(m: &Model<f64>, g: &Gradients<f64, Cpu>) -> [Vec<f64>; 4] {
    [
        g.get(&m.0.weight).as_vec(),
        g.get(&m.0.bias).as_vec(),
        g.get(&m.2.weight).as_vec(),
        g.get(&m.2.bias).as_vec(),
    ]
}

/// A plain-loop reference optimizer over one parameter's values.
trait Reference {
    /// Updates `p` in place from gradient `g`.
    fn step(&mut self, p: &mut [f64], g: &[f64]);
    /// Buffer `name` of the state, as the optimizer's state dict names it.
    fn buffer(&self, name: &str) -> Vec<f64>;
}

/// `torch.optim.SGD` as `optim::Sgd` documents it.
struct SgdRef {
    cfg: SgdConfig,
    v: Vec<f64>,
}

impl Reference for SgdRef {
    fn step(&mut self, p: &mut [f64], g: &[f64]) {
        let lr = self.cfg.lr;
        for i in 0..p.len() {
            let mut g = g[i];
            if let Some(WeightDecay::L2(wd)) = self.cfg.weight_decay {
                g += wd * p[i];
            }
            let mut step = match self.cfg.momentum {
                None => lr * g,
                Some(Momentum::Classic(u)) => {
                    self.v[i] = u * self.v[i] + g;
                    lr * self.v[i]
                }
                Some(Momentum::Nesterov(u)) => {
                    self.v[i] = u * self.v[i] + g;
                    lr * (g + u * self.v[i])
                }
            };
            if let Some(WeightDecay::Decoupled(wd)) = self.cfg.weight_decay {
                step += lr * wd * p[i];
            }
            p[i] -= step;
        }
    }
    fn buffer(&self, name: &str) -> Vec<f64> {
        assert_eq!(name, "momentum_buffer");
        self.v.clone()
    }
}

/// Adam / AdamW as `optim::Adam` documents it.
struct AdamRef {
    cfg: AdamConfig,
    t: i32,
    m: Vec<f64>,
    v: Vec<f64>,
}

impl Reference for AdamRef {
    fn step(&mut self, p: &mut [f64], g: &[f64]) {
        let [b1, b2] = self.cfg.betas;
        let (lr, eps) = (self.cfg.lr, self.cfg.eps);
        self.t += 1;
        for i in 0..p.len() {
            let mut g = g[i];
            if let Some(WeightDecay::L2(wd)) = self.cfg.weight_decay {
                g += wd * p[i];
            }
            self.m[i] = b1 * self.m[i] + (1.0 - b1) * g;
            self.v[i] = b2 * self.v[i] + (1.0 - b2) * g * g;
            let m_hat = self.m[i] / (1.0 - b1.powi(self.t));
            let v_hat = self.v[i] / (1.0 - b2.powi(self.t));
            let mut step = lr * m_hat / (v_hat.sqrt() + eps);
            if let Some(WeightDecay::Decoupled(wd)) = self.cfg.weight_decay {
                step += lr * wd * p[i];
            }
            p[i] -= step;
        }
    }
    fn buffer(&self, name: &str) -> Vec<f64> {
        match name {
            "exp_avg" => self.m.clone(),
            "exp_avg_sq" => self.v.clone(),
            _ => panic!("Adam has no buffer {name}"),
        }
    }
}

/// dfdx's RMSprop (`square_avg` starts at 1, eps inside the root) as `optim::RMSprop`
/// documents it.
struct RmsRef {
    cfg: RMSpropConfig,
    sa: Vec<f64>,
    ga: Vec<f64>,
    buf: Vec<f64>,
}

impl Reference for RmsRef {
    fn step(&mut self, p: &mut [f64], g: &[f64]) {
        let c = self.cfg;
        for i in 0..p.len() {
            let mut g = g[i];
            if let Some(WeightDecay::L2(wd)) = c.weight_decay {
                g += wd * p[i];
            }
            self.sa[i] += (1.0 - c.alpha) * (g * g - self.sa[i]);
            let denominator = if c.centered {
                self.ga[i] += (1.0 - c.alpha) * (g - self.ga[i]);
                (self.sa[i] - self.ga[i] * self.ga[i] + c.eps).sqrt()
            } else {
                (self.sa[i] + c.eps).sqrt()
            };
            let g = g / denominator;
            let mut step = match c.momentum {
                Some(u) => {
                    self.buf[i] = u * self.buf[i] + g;
                    c.lr * self.buf[i]
                }
                None => c.lr * g,
            };
            if let Some(WeightDecay::Decoupled(wd)) = c.weight_decay {
                step += c.lr * wd * p[i];
            }
            p[i] -= step;
        }
    }
    fn buffer(&self, name: &str) -> Vec<f64> {
        match name {
            "square_avg" => self.sa.clone(),
            "grad_avg" => self.ga.clone(),
            "momentum_buffer" => self.buf.clone(),
            _ => panic!("RMSprop has no buffer {name}"),
        }
    }
}

fn tensor_data(dict: &shapesafe::optim::StateDict, key: &str) -> Vec<f64> {
    match &dict.tensors[key].data {
        StateData::F64(v) => v.clone(),
        other => panic!("{key} holds {}", other.dtype_name()),
    }
}

/// Runs `STEPS` updates of `opt` (fused, the default) and of one reference per parameter on
/// the same gradients, checking parameters and state buffers after every step.
fn assert_matches_reference<O, R>(
    what: &str,
    mut opt: O,
    mut reference: impl FnMut(usize) -> R,
    buffers: &[&str],
) where
    O: Optimizer<Model<f64>, Cpu, f64> + OptimizerState,
    R: Reference,
{
    let mut m = model(0);
    let start = params(&m);
    let mut expected = start.clone();
    let mut refs: Vec<R> = start.iter().map(|p| reference(p.len())).collect();
    for step in 0..STEPS {
        let g = loss_grads(&m, step);
        let host = grads_of(&m, &g);
        opt.update(&mut m, &g).unwrap();
        for (i, r) in refs.iter_mut().enumerate() {
            r.step(&mut expected[i], &host[i]);
        }
        let dict = opt.state_dict().unwrap();
        for (i, name) in NAMES.iter().enumerate() {
            let at = format!("{what}: step {step}: {name}");
            assert_close(&at, &params(&m)[i], &expected[i], SAME_EQUATIONS);
            for b in buffers {
                let key = format!("state.{name}.{b}");
                assert_close(
                    &key,
                    &tensor_data(&dict, &key),
                    &refs[i].buffer(b),
                    SAME_EQUATIONS,
                );
            }
        }
    }
    let moved = params(&m)[0]
        .iter()
        .zip(&start[0])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(
        moved > 1e-3,
        "{what}: the parameters barely moved ({moved:e})"
    );
}

fn sgd_configs() -> Vec<SgdConfig> {
    let mut all = Vec::new();
    for momentum in [
        None,
        Some(Momentum::Classic(0.9)),
        Some(Momentum::Nesterov(0.8)),
    ] {
        for weight_decay in [
            None,
            Some(WeightDecay::L2(0.05)),
            Some(WeightDecay::Decoupled(0.1)),
        ] {
            all.push(SgdConfig {
                lr: 0.1,
                momentum,
                weight_decay,
            });
        }
    }
    all
}

fn adam_configs() -> Vec<AdamConfig> {
    [
        None,
        Some(WeightDecay::L2(0.05)),
        Some(WeightDecay::Decoupled(0.1)),
    ]
    .into_iter()
    .map(|weight_decay| AdamConfig {
        lr: 1e-2,
        betas: [0.8, 0.95],
        eps: 1e-6,
        weight_decay,
    })
    .collect()
}

fn rmsprop_configs() -> Vec<RMSpropConfig> {
    let mut all = Vec::new();
    for centered in [false, true] {
        for momentum in [None, Some(0.7)] {
            for weight_decay in [
                None,
                Some(WeightDecay::L2(0.05)),
                Some(WeightDecay::Decoupled(0.1)),
            ] {
                all.push(RMSpropConfig {
                    lr: 1e-2,
                    alpha: 0.9,
                    eps: 1e-6,
                    momentum,
                    centered,
                    weight_decay,
                });
            }
        }
    }
    all
}

#[test]
fn fused_sgd_follows_its_equations() {
    for cfg in sgd_configs() {
        let buffers: &[&str] = match cfg.momentum {
            Some(_) => &["momentum_buffer"],
            None => &[],
        };
        assert_matches_reference(
            &format!("{cfg:?}"),
            optim::Sgd::new(&model(0), cfg),
            |n| SgdRef {
                cfg,
                v: vec![0.0; n],
            },
            buffers,
        );
    }
}

#[test]
fn fused_adam_follows_its_equations() {
    for cfg in adam_configs() {
        assert_matches_reference(
            &format!("{cfg:?}"),
            optim::Adam::new(&model(0), cfg),
            |n| AdamRef {
                cfg,
                t: 0,
                m: vec![0.0; n],
                v: vec![0.0; n],
            },
            &["exp_avg", "exp_avg_sq"],
        );
    }
}

#[test]
fn fused_rmsprop_follows_its_equations() {
    for cfg in rmsprop_configs() {
        let mut buffers = vec!["square_avg"];
        if cfg.momentum.is_some() {
            buffers.push("momentum_buffer");
        }
        if cfg.centered {
            buffers.push("grad_avg");
        }
        assert_matches_reference(
            &format!("{cfg:?}"),
            optim::RMSprop::new(&model(0), cfg),
            |n| RmsRef {
                cfg,
                sa: vec![1.0; n],
                ga: vec![0.0; n],
                buf: vec![0.0; n],
            },
            &buffers,
        );
    }
}

/// Trains two copies `STEPS` steps, one with the fused path and one with the composed ops,
/// and requires the same bits in parameters and state after every step. Halfway, the two
/// swap paths, so each path also continues from state the other one wrote.
fn assert_fused_is_composed<E, M, O>(what: &str, h: &Harness<E, M>, make: impl Fn(&M) -> O)
where
    E: Dtype,
    M: Clone,
    O: Optimizer<M, Cpu, E> + OptimizerState,
{
    let start = (h.model)(0);
    let (mut a, mut b) = (start.clone(), start.clone());
    let (mut fused, mut composed) = (make(&a), make(&b));
    for step in 0..STEPS {
        // Halfway the two swap: each continues from state the other path wrote.
        let swapped = step >= STEPS / 2;
        let (ga, gb) = ((h.grads)(&a, step), (h.grads)(&b, step));
        let run = |o: &mut O, m: &mut M, g: &_, composed: bool| {
            if composed {
                with_composed_ops(|| o.update(m, g)).unwrap();
            } else {
                o.update(m, g).unwrap();
            }
        };
        run(&mut fused, &mut a, &ga, swapped);
        run(&mut composed, &mut b, &gb, !swapped);
        assert!(
            (h.params)(&a) == (h.params)(&b),
            "{what}: step {step}: parameters differ"
        );
        assert_eq!(
            fused.state_dict().unwrap(),
            composed.state_dict().unwrap(),
            "{what}: step {step}: state differs"
        );
    }
    assert!(
        (h.params)(&a) != (h.params)(&start),
        "{what}: nothing moved"
    );
}

#[test]
fn fused_is_bit_identical_to_composed_in_f32_and_f64() {
    for cfg in sgd_configs() {
        let what = format!("{cfg:?}");
        assert_fused_is_composed(&what, &single::HARNESS, |m| optim::Sgd::new(m, cfg));
        assert_fused_is_composed(&what, &double::HARNESS, |m| optim::Sgd::new(m, cfg));
    }
    // PyTorch's defaults too: betas 0.9 and 0.999 round differently from 1 - beta in f32.
    let defaults = AdamConfig {
        weight_decay: Some(WeightDecay::Decoupled(1e-2)),
        ..Default::default()
    };
    for cfg in adam_configs().into_iter().chain([defaults]) {
        let what = format!("{cfg:?}");
        assert_fused_is_composed(&what, &single::HARNESS, |m| optim::Adam::new(m, cfg));
        assert_fused_is_composed(&what, &double::HARNESS, |m| optim::Adam::new(m, cfg));
    }
    for cfg in rmsprop_configs() {
        let what = format!("{cfg:?}");
        assert_fused_is_composed(&what, &single::HARNESS, |m| optim::RMSprop::new(m, cfg));
        assert_fused_is_composed(&what, &double::HARNESS, |m| optim::RMSprop::new(m, cfg));
    }
}

/// Trains 3 steps fused, saves the state, loads it into a fresh optimizer (fused, and one
/// running the composed ops), and requires all three to take the same next 3 steps bit for bit.
fn assert_resumes_exactly<O>(what: &str, make: impl Fn(&Model<f32>) -> O)
where
    O: Optimizer<Model<f32>, Cpu, f32> + OptimizerState,
{
    use single::{loss_grads, model, params};
    let mut a = model(0);
    let mut opt_a = make(&a);
    for step in 0..3 {
        let g = loss_grads(&a, step);
        opt_a.update(&mut a, &g).unwrap();
    }
    let dict = opt_a.state_dict().unwrap();
    let (mut b, mut c) = (a.clone(), a.clone());
    let (mut opt_b, mut opt_c) = (make(&b), make(&c));
    opt_b.load_state_dict(&dict).unwrap();
    opt_c.load_state_dict(&dict).unwrap();
    assert_eq!(
        opt_b.state_dict().unwrap(),
        dict,
        "{what}: state differs after loading"
    );
    for step in 3..6 {
        let (ga, gb, gc) = (
            loss_grads(&a, step),
            loss_grads(&b, step),
            loss_grads(&c, step),
        );
        opt_a.update(&mut a, &ga).unwrap();
        opt_b.update(&mut b, &gb).unwrap();
        with_composed_ops(|| opt_c.update(&mut c, &gc)).unwrap();
    }
    assert_eq!(params(&a), params(&b), "{what}: the resumed run differs");
    assert_eq!(
        params(&a),
        params(&c),
        "{what}: the composed resumed run differs"
    );
    assert_eq!(opt_a.state_dict().unwrap(), opt_b.state_dict().unwrap());
}

#[test]
fn fused_state_round_trips_and_resumes_bit_for_bit() {
    assert_resumes_exactly("sgd", |m| {
        optim::Sgd::new(
            m,
            SgdConfig {
                lr: 0.1,
                momentum: Some(Momentum::Nesterov(0.9)),
                weight_decay: Some(WeightDecay::L2(1e-2)),
            },
        )
    });
    assert_resumes_exactly("adamw", |m| {
        optim::Adam::new(
            m,
            AdamConfig {
                weight_decay: Some(WeightDecay::Decoupled(1e-2)),
                ..Default::default()
            },
        )
    });
    assert_resumes_exactly("rmsprop", |m| {
        optim::RMSprop::new(
            m,
            RMSpropConfig {
                centered: true,
                momentum: Some(0.9),
                weight_decay: Some(WeightDecay::Decoupled(1e-2)),
                ..Default::default()
            },
        )
    });
}

/// Gradients for the first layer only (the second takes no part), from a leaky tape.
fn first_layer_grads(m: &Model<f64>) -> Gradients<f64, Cpu> {
    let x: Tensor<Rank2<4, 3>, f64, Cpu> = Cpu::seed_from_u64(7).sample_normal();
    m.0.forward(x.traced(Gradients::leaky()))
        .square()
        .sum()
        .backward()
}

/// Updates with gradients for the first layer only: the result must name exactly the
/// second layer's parameters as unused, the first layer must move as the reference does,
/// the second must not move, and its state must stay at its start; a full step afterwards
/// must then work and count that layer's first update.
fn assert_skips_unused<O, R>(
    what: &str,
    mut opt: O,
    mut reference: impl FnMut(usize) -> R,
    counts_steps: bool,
) where
    O: Optimizer<Model<f64>, Cpu, f64> + OptimizerState,
    R: Reference,
{
    let mut m = model(0);
    let start = params(&m);
    let g = first_layer_grads(&m);
    let host = [g.get(&m.0.weight).as_vec(), g.get(&m.0.bias).as_vec()];
    let before = opt.state_dict().unwrap();
    match opt.update(&mut m, &g) {
        Err(OptimizerUpdateError::UnusedParams(unused)) => {
            let mut expected = dfdx::optim::UnusedTensors::default();
            expected.add(&m.2.weight);
            expected.add(&m.2.bias);
            assert_eq!(
                unused.ids, expected.ids,
                "{what}: wrong parameters reported"
            );
        }
        other => panic!("{what}: expected UnusedParams, got {other:?}"),
    }
    let now = params(&m);
    for i in 0..2 {
        let mut expected = start[i].clone();
        reference(expected.len()).step(&mut expected, &host[i]);
        assert_close(what, &now[i], &expected, SAME_EQUATIONS);
    }
    assert_eq!(
        now[2..],
        start[2..],
        "{what}: a parameter without a gradient moved"
    );
    let after = opt.state_dict().unwrap();
    for name in &NAMES[2..] {
        for (key, value) in &before.tensors {
            if key.starts_with(&format!("state.{name}.")) {
                assert_eq!(&after.tensors[key], value, "{what}: {key} changed");
            }
        }
    }
    if counts_steps {
        assert_eq!(after.scalars["state.0.weight.step"], 1.0);
        assert_eq!(after.scalars["state.2.weight.step"], 0.0);
    }
    let g = loss_grads(&m, 0);
    opt.update(&mut m, &g).unwrap();
    if counts_steps {
        let after = opt.state_dict().unwrap();
        assert_eq!(after.scalars["state.0.weight.step"], 2.0);
        assert_eq!(after.scalars["state.2.weight.step"], 1.0);
    }
}

#[test]
fn parameters_without_gradients_are_reported_and_the_rest_updated() {
    let sgd = SgdConfig {
        lr: 0.1,
        momentum: Some(Momentum::Classic(0.9)),
        weight_decay: Some(WeightDecay::Decoupled(0.1)),
    };
    let plain = SgdConfig {
        momentum: None,
        weight_decay: None,
        ..sgd
    };
    for cfg in [sgd, plain] {
        let reference = |n| SgdRef {
            cfg,
            v: vec![0.0; n],
        };
        assert_skips_unused("sgd", optim::Sgd::new(&model(0), cfg), reference, false);
    }
    let adam = AdamConfig {
        lr: 1e-2,
        weight_decay: Some(WeightDecay::L2(0.05)),
        ..Default::default()
    };
    let reference = |n| AdamRef {
        cfg: adam,
        t: 0,
        m: vec![0.0; n],
        v: vec![0.0; n],
    };
    assert_skips_unused("adam", optim::Adam::new(&model(0), adam), reference, true);
    let rms = RMSpropConfig {
        centered: true,
        momentum: Some(0.5),
        ..Default::default()
    };
    let reference = |n| RmsRef {
        cfg: rms,
        sa: vec![1.0; n],
        ga: vec![0.0; n],
        buf: vec![0.0; n],
    };
    assert_skips_unused(
        "rmsprop",
        optim::RMSprop::new(&model(0), rms),
        reference,
        true,
    );
}

/// Puts `value` at index `at` of the gradient of `param`, in place.
fn poison<S: Shape>(
    grads: &mut Gradients<f32, Cpu>,
    param: &Tensor<S, f32, Cpu>,
    at: usize,
    value: f32,
) {
    grads.get_or_alloc_mut(param).unwrap()[at] = value;
}

#[test]
fn a_single_non_finite_gradient_entry_is_found_anywhere() {
    let m = single::model(0);
    let clean = single::loss_grads(&m, 0);
    assert_eq!(optim::first_non_finite_grad(&m, &clean).unwrap(), None);
    for value in [f32::INFINITY, f32::NEG_INFINITY, f32::NAN] {
        for (at, name) in [
            (14, "0.weight"),
            (0, "0.bias"),
            (9, "2.weight"),
            (1, "2.bias"),
        ] {
            let mut g = clean.clone();
            match name {
                "0.weight" => poison(&mut g, &m.0.weight, at, value),
                "0.bias" => poison(&mut g, &m.0.bias, at, value),
                "2.weight" => poison(&mut g, &m.2.weight, at, value),
                _ => poison(&mut g, &m.2.bias, at, value),
            }
            let found = optim::first_non_finite_grad(&m, &g).unwrap();
            assert_eq!(found.as_deref(), Some(name), "{value} at {name}[{at}]");
        }
    }
    // The largest finite values are finite (a sum of squares would overflow).
    let mut big = clean.clone();
    poison(&mut big, &m.0.weight, 3, f32::MAX);
    poison(&mut big, &m.2.bias, 0, -f32::MAX);
    assert_eq!(optim::first_non_finite_grad(&m, &big).unwrap(), None);
}
