//! Integration tests for `shapesafe::optim`: the optimizers match dfdx's step for step, their
//! state round-trips strictly, and the gradient utilities match PyTorch's definitions and
//! finite differences.

mod common;

use common::TestDevice;
use shapesafe::optim::{
    self, add_l1, add_l2, clip_grad_norm, first_non_finite_grad, grads_are_finite, OptimizerState,
    OptimizerUpdateError, StateData, StateDict, StateTensor,
};
use shapesafe::prelude::*;
use shapesafe::Error;

type Net = (Linear<3, 5>, Tanh, Linear<5, 2>);
type Model = <Net as BuildOnDevice<TestDevice, f64>>::Built;

fn model(seed: u64) -> Model {
    TestDevice::seed_from_u64(seed).build_module::<Net, f64>()
}

/// Batch `i` of a fixed, seeded data stream.
fn batch(
    i: u64,
) -> (
    Tensor<Rank2<4, 3>, f64, TestDevice>,
    Tensor<Rank2<4, 2>, f64, TestDevice>,
) {
    let dev = TestDevice::seed_from_u64(1_000 + i);
    (dev.sample_normal(), dev.sample_normal())
}

fn loss_grads(m: &Model, i: u64) -> Gradients<f64, TestDevice> {
    let (x, y) = batch(i);
    mse_loss(m.forward(x.traced(m.alloc_grads())), y).backward()
}

fn params(m: &Model) -> Vec<f64> {
    [
        m.0.weight.as_vec(),
        m.0.bias.as_vec(),
        m.2.weight.as_vec(),
        m.2.bias.as_vec(),
    ]
    .concat()
}

fn set_params(m: &mut Model, values: &[f64]) {
    let (a, rest) = values.split_at(15);
    let (b, rest) = rest.split_at(5);
    let (c, d) = rest.split_at(10);
    m.0.weight.copy_from(a);
    m.0.bias.copy_from(b);
    m.2.weight.copy_from(c);
    m.2.bias.copy_from(d);
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// Runs the same 5 steps with dfdx's optimizer and with ours and checks the parameters
/// after every step.
fn assert_matches_dfdx<A, B>(what: &str, mut theirs: A, mut ours: B)
where
    A: Optimizer<Model, TestDevice, f64>,
    B: Optimizer<Model, TestDevice, f64>,
{
    let start = model(0);
    let (mut a, mut b) = (start.clone(), start.clone());
    for step in 0..5 {
        let ga = loss_grads(&a, step);
        let gb = loss_grads(&b, step);
        theirs.update(&mut a, &ga).unwrap();
        ours.update(&mut b, &gb).unwrap();
        let d = max_diff(&params(&a), &params(&b));
        assert!(
            d <= 1e-12,
            "{what}: step {step}: parameters differ by {d:e}"
        );
    }
    let moved = max_diff(&params(&start), &params(&b));
    assert!(
        moved > 1e-3,
        "{what}: the parameters barely moved ({moved:e})"
    );
}

fn sgd_both(
    cfg: SgdConfig,
) -> (
    dfdx::optim::Sgd<Model, f64, TestDevice>,
    optim::Sgd<Model, f64, TestDevice>,
) {
    let m = model(0);
    (dfdx::optim::Sgd::new(&m, cfg), optim::Sgd::new(&m, cfg))
}

fn adam_both(
    cfg: AdamConfig,
) -> (
    dfdx::optim::Adam<Model, f64, TestDevice>,
    optim::Adam<Model, f64, TestDevice>,
) {
    let m = model(0);
    (dfdx::optim::Adam::new(&m, cfg), optim::Adam::new(&m, cfg))
}

fn rmsprop_both(
    cfg: RMSpropConfig,
) -> (
    dfdx::optim::RMSprop<Model, f64, TestDevice>,
    optim::RMSprop<Model, f64, TestDevice>,
) {
    let m = model(0);
    (
        dfdx::optim::RMSprop::new(&m, cfg),
        optim::RMSprop::new(&m, cfg),
    )
}

fn sgd(momentum: Option<Momentum>, weight_decay: Option<WeightDecay>) -> SgdConfig {
    SgdConfig {
        lr: 0.1,
        momentum,
        weight_decay,
    }
}

#[test]
fn sgd_plain_matches_dfdx() {
    let (a, b) = sgd_both(sgd(None, None));
    assert_matches_dfdx("sgd", a, b);
}

#[test]
fn sgd_momentum_matches_dfdx() {
    let (a, b) = sgd_both(sgd(Some(Momentum::Classic(0.9)), None));
    assert_matches_dfdx("sgd momentum", a, b);
}

#[test]
fn sgd_nesterov_matches_dfdx() {
    let (a, b) = sgd_both(sgd(Some(Momentum::Nesterov(0.9)), None));
    assert_matches_dfdx("sgd nesterov", a, b);
}

#[test]
fn sgd_l2_weight_decay_matches_dfdx() {
    let (a, b) = sgd_both(sgd(
        Some(Momentum::Classic(0.5)),
        Some(WeightDecay::L2(0.1)),
    ));
    assert_matches_dfdx("sgd l2", a, b);
}

#[test]
fn sgd_decoupled_weight_decay_matches_dfdx() {
    let (a, b) = sgd_both(sgd(
        Some(Momentum::Nesterov(0.5)),
        Some(WeightDecay::Decoupled(0.1)),
    ));
    assert_matches_dfdx("sgd decoupled", a, b);
}

#[test]
fn adam_matches_dfdx() {
    let (a, b) = adam_both(AdamConfig::default());
    assert_matches_dfdx("adam", a, b);
}

#[test]
fn adam_l2_weight_decay_matches_dfdx() {
    let (a, b) = adam_both(AdamConfig {
        lr: 1e-2,
        betas: [0.8, 0.95],
        eps: 1e-6,
        weight_decay: Some(WeightDecay::L2(0.1)),
    });
    assert_matches_dfdx("adam l2", a, b);
}

#[test]
fn adamw_matches_dfdx() {
    let (a, b) = adam_both(AdamConfig {
        weight_decay: Some(WeightDecay::Decoupled(0.1)),
        ..Default::default()
    });
    assert_matches_dfdx("adamw", a, b);
}

#[test]
fn rmsprop_matches_dfdx() {
    let (a, b) = rmsprop_both(RMSpropConfig::default());
    assert_matches_dfdx("rmsprop", a, b);
}

#[test]
fn rmsprop_centered_matches_dfdx() {
    let (a, b) = rmsprop_both(RMSpropConfig {
        centered: true,
        ..Default::default()
    });
    assert_matches_dfdx("rmsprop centered", a, b);
}

#[test]
fn rmsprop_momentum_matches_dfdx() {
    let (a, b) = rmsprop_both(RMSpropConfig {
        momentum: Some(0.9),
        ..Default::default()
    });
    assert_matches_dfdx("rmsprop momentum", a, b);
}

#[test]
fn rmsprop_centered_momentum_weight_decay_matches_dfdx() {
    let l2 = RMSpropConfig {
        centered: true,
        momentum: Some(0.5),
        weight_decay: Some(WeightDecay::L2(0.1)),
        ..Default::default()
    };
    let (a, b) = rmsprop_both(l2);
    assert_matches_dfdx("rmsprop centered momentum l2", a, b);
    let decoupled = RMSpropConfig {
        weight_decay: Some(WeightDecay::Decoupled(0.1)),
        ..l2
    };
    let (a, b) = rmsprop_both(decoupled);
    assert_matches_dfdx("rmsprop centered momentum decoupled", a, b);
}

#[test]
fn missing_gradients_are_reported_like_dfdx() {
    let start = model(0);
    let (mut a, mut b) = (start.clone(), start.clone());
    let cfg = AdamConfig::default();
    let mut theirs = dfdx::optim::Adam::new(&a, cfg);
    let mut ours = optim::Adam::new(&b, cfg);
    // Only the first layer takes part, so the second has no gradients at all.
    let grads_for = |m: &Model| {
        let (x, _) = batch(0);
        m.0.forward(x.traced(Gradients::leaky()))
            .square()
            .sum()
            .backward()
    };
    let (ga, gb) = (grads_for(&a), grads_for(&b));
    let ea = theirs.update(&mut a, &ga).unwrap_err();
    let eb = ours.update(&mut b, &gb).unwrap_err();
    match (ea, eb) {
        (OptimizerUpdateError::UnusedParams(x), OptimizerUpdateError::UnusedParams(y)) => {
            assert_eq!(x.ids, y.ids);
            assert_eq!(y.ids.len(), 2);
        }
        other => panic!("expected UnusedParams from both, got {other:?}"),
    }
    assert!(max_diff(&params(&a), &params(&b)) <= 1e-12);
    assert_ne!(params(&b)[..20], params(&start)[..20]);
    assert_eq!(params(&b)[20..], params(&start)[20..]);
}

#[test]
fn a_bare_tensor_is_a_model_too() {
    // dfdx treats a tensor as a one-parameter collection named ""; the walk must cope.
    let dev = TestDevice::default();
    let mut t: Tensor<Rank1<3>, f64, TestDevice> = dev.tensor([1.0, 2.0, 3.0]);
    let mut opt = optim::Sgd::new(&t, sgd(None, None));
    let grads = t.leaky_trace().sum().backward();
    opt.update(&mut t, &grads).unwrap();
    assert!(max_diff(&t.as_vec(), &[0.9, 1.9, 2.9]) < 1e-15);
    assert_eq!(opt.state_dict().unwrap().scalars["group.lr"], 0.1);
}

#[test]
fn works_as_the_optimizer_of_the_trainer() {
    use shapesafe::data::{DataLoader, MnistSplit};
    use shapesafe::train::{TrainConfig, Trainer};
    let split = MnistSplit::new(vec![7; 784 * 4], vec![0, 1, 2, 3]).unwrap();
    let dev = TestDevice::default();
    let model = dev.build_module::<(Flatten, Linear<784, 10>), f32>();
    let opt = optim::Adam::new(&model, AdamConfig::default());
    let config = TrainConfig {
        epochs: 1,
        progress: false,
        ..Default::default()
    };
    let mut trainer = Trainer::new(model, opt, dev).with_config(config);
    let loader = DataLoader::new(&split, 2).unwrap();
    trainer.fit(&loader, &loader).unwrap();
    assert_eq!(trainer.history().records.len(), 1);
    assert_eq!(
        trainer.optimizer.state_dict().unwrap().scalars["state.1.weight.step"],
        2.0
    );
}

/// Trains 3 steps, moves the state through a `StateDict` into a fresh optimizer, and
/// checks both then take the same 2 further steps bit for bit.
fn assert_state_round_trips<O>(what: &str, make: impl Fn(&Model) -> O)
where
    O: Optimizer<Model, TestDevice, f64> + OptimizerState,
{
    let mut a = model(0);
    let mut opt_a = make(&a);
    for step in 0..3 {
        let g = loss_grads(&a, step);
        opt_a.update(&mut a, &g).unwrap();
    }
    let dict = opt_a.state_dict().unwrap();
    let mut b = a.clone();
    let mut opt_b = make(&b);
    opt_b.load_state_dict(&dict).unwrap();
    assert_eq!(
        opt_b.state_dict().unwrap(),
        dict,
        "{what}: state differs after loading"
    );
    for step in 3..5 {
        let ga = loss_grads(&a, step);
        let gb = loss_grads(&b, step);
        opt_a.update(&mut a, &ga).unwrap();
        opt_b.update(&mut b, &gb).unwrap();
    }
    assert_eq!(params(&a), params(&b), "{what}: resumed run differs");
}

#[test]
fn state_dict_round_trips_for_every_optimizer() {
    assert_state_round_trips("sgd nesterov", |m| {
        optim::Sgd::new(
            m,
            sgd(Some(Momentum::Nesterov(0.9)), Some(WeightDecay::L2(0.01))),
        )
    });
    assert_state_round_trips("adamw", |m| {
        optim::Adam::new(
            m,
            AdamConfig {
                weight_decay: Some(WeightDecay::Decoupled(0.01)),
                ..Default::default()
            },
        )
    });
    assert_state_round_trips("rmsprop", |m| {
        optim::RMSprop::new(
            m,
            RMSpropConfig {
                centered: true,
                momentum: Some(0.9),
                ..Default::default()
            },
        )
    });
}

#[test]
fn state_dict_names_follow_pytorch() {
    let m = model(0);
    let opt = optim::Adam::new(&m, AdamConfig::default());
    let dict = opt.state_dict().unwrap();
    let tensors: Vec<&str> = dict.tensors.keys().map(String::as_str).collect();
    assert_eq!(
        tensors,
        [
            "state.0.bias.exp_avg",
            "state.0.bias.exp_avg_sq",
            "state.0.weight.exp_avg",
            "state.0.weight.exp_avg_sq",
            "state.2.bias.exp_avg",
            "state.2.bias.exp_avg_sq",
            "state.2.weight.exp_avg",
            "state.2.weight.exp_avg_sq",
        ]
    );
    assert_eq!(dict.tensors["state.0.weight.exp_avg"].shape, vec![5, 3]);
    assert_eq!(dict.scalars["state.2.bias.step"], 0.0);
    assert_eq!(dict.scalars["group.lr"], 1e-3);
    assert_eq!(dict.scalars["group.beta2"], 0.999);
    // RMSprop's square average starts at one, as dfdx's does.
    let rms = optim::RMSprop::new(&m, RMSpropConfig::default());
    let dict = rms.state_dict().unwrap();
    assert_eq!(
        dict.tensors["state.0.bias.square_avg"].data,
        StateData::F64(vec![1.0; 5])
    );
    assert!(!dict.tensors.contains_key("state.0.bias.grad_avg"));
}

#[test]
fn load_state_dict_restores_hyperparameters() {
    let m = model(0);
    let saved = optim::Sgd::new(
        &m,
        sgd(
            Some(Momentum::Nesterov(0.7)),
            Some(WeightDecay::Decoupled(0.3)),
        ),
    );
    let mut opt = optim::Sgd::new(&m, SgdConfig::default());
    opt.load_state_dict(&saved.state_dict().unwrap()).unwrap();
    assert_eq!(opt.cfg.lr, 0.1);
    assert!(matches!(opt.cfg.momentum, Some(Momentum::Nesterov(u)) if u == 0.7));
    assert!(matches!(opt.cfg.weight_decay, Some(WeightDecay::Decoupled(w)) if w == 0.3));
}

/// A trained Adam's state, the optimizer it came from, and a checker that a failed load
/// changed nothing.
fn trained_adam() -> (optim::Adam<Model, f64, TestDevice>, StateDict) {
    let mut m = model(0);
    let mut opt = optim::Adam::new(&m, AdamConfig::default());
    let g = loss_grads(&m, 0);
    opt.update(&mut m, &g).unwrap();
    let dict = opt.state_dict().unwrap();
    (opt, dict)
}

fn assert_load_fails(what: &str, dict: &StateDict, check: impl Fn(&Error) -> bool) {
    let (mut opt, _) = trained_adam();
    opt.cfg.lr = 0.5;
    let before = opt.state_dict().unwrap();
    let err = opt.load_state_dict(dict).unwrap_err();
    assert!(check(&err), "{what}: wrong error: {err}");
    assert_eq!(
        opt.state_dict().unwrap(),
        before,
        "{what}: the optimizer changed"
    );
    assert_eq!(opt.cfg.lr, 0.5);
}

#[test]
fn load_state_dict_is_strict_and_all_or_nothing() {
    let (_, good) = trained_adam();
    let weights = |e: &Error| matches!(e, Error::Weights { .. });

    let mut missing = good.clone();
    missing.tensors.remove("state.2.weight.exp_avg_sq");
    assert_load_fails("missing tensor", &missing, |e| {
        weights(e) && e.to_string().contains("state.2.weight.exp_avg_sq")
    });

    let mut missing_step = good.clone();
    missing_step.scalars.remove("state.0.bias.step");
    assert_load_fails("missing step", &missing_step, weights);

    let mut missing_group = good.clone();
    missing_group.scalars.remove("group.eps");
    assert_load_fails("missing hyperparameter", &missing_group, weights);

    let mut unexpected = good.clone();
    unexpected.scalars.insert("group.amsgrad".into(), 0.0);
    assert_load_fails("unexpected scalar", &unexpected, |e| {
        weights(e) && e.to_string().contains("group.amsgrad")
    });

    let mut unexpected_tensor = good.clone();
    let extra = StateTensor::new(vec![1], StateData::F64(vec![0.0])).unwrap();
    unexpected_tensor
        .tensors
        .insert("state.0.weight.momentum_buffer".into(), extra);
    assert_load_fails("unexpected tensor", &unexpected_tensor, weights);

    let mut shape = good.clone();
    shape.tensors.insert(
        "state.0.weight.exp_avg".into(),
        StateTensor::new(vec![3, 5], StateData::F64(vec![0.0; 15])).unwrap(),
    );
    assert_load_fails(
        "wrong shape",
        &shape,
        |e| matches!(e, Error::ShapeMismatch { expected, found, .. } if expected == &vec![5, 3] && found == &vec![3, 5]),
    );

    let mut inconsistent = good.clone();
    inconsistent.tensors.insert(
        "state.0.weight.exp_avg".into(),
        StateTensor {
            shape: vec![5, 3],
            data: StateData::F64(vec![0.0; 14]),
        },
    );
    assert_load_fails("data of the wrong length", &inconsistent, |e| {
        matches!(e, Error::ShapeMismatch { .. })
    });

    let mut dtype = good.clone();
    dtype.tensors.insert(
        "state.0.bias.exp_avg".into(),
        StateTensor::new(vec![5], StateData::F32(vec![0.0; 5])).unwrap(),
    );
    assert_load_fails("wrong dtype", &dtype, |e| {
        weights(e) && e.to_string().contains("f32")
    });

    let mut bad_step = good.clone();
    bad_step.scalars.insert("state.0.bias.step".into(), 1.5);
    assert_load_fails("fractional step", &bad_step, weights);

    let mut bad_beta = good.clone();
    bad_beta.scalars.insert("group.beta1".into(), 1.0);
    assert_load_fails("beta of 1", &bad_beta, weights);

    let mut nan = good.clone();
    nan.scalars.insert("group.lr".into(), f64::NAN);
    assert_load_fails("NaN learning rate", &nan, weights);

    let mut bad_kind = good.clone();
    bad_kind
        .scalars
        .insert("group.weight_decay_kind".into(), 3.0);
    assert_load_fails("unknown weight decay kind", &bad_kind, weights);

    // Another optimizer's state does not fit.
    let m = model(0);
    let sgd_state = optim::Sgd::new(&m, sgd(Some(Momentum::Classic(0.9)), None))
        .state_dict()
        .unwrap();
    assert_load_fails("sgd state into adam", &sgd_state, weights);

    // A model with other parameters does not fit either.
    let other = TestDevice::default().build_module::<(Linear<3, 5>, Tanh, Linear<5, 3>), f64>();
    let other_state = optim::Adam::new(&other, AdamConfig::default())
        .state_dict()
        .unwrap();
    assert_load_fails("another model's state", &other_state, |e| {
        matches!(e, Error::ShapeMismatch { .. })
    });
}

#[test]
fn an_f32_optimizer_rejects_f64_state() {
    let dev = TestDevice::default();
    let m32 = dev.build_module::<Net, f32>();
    let mut opt32 = optim::Sgd::new(&m32, sgd(Some(Momentum::Classic(0.9)), None));
    let m64 = model(0);
    let state64 = optim::Sgd::new(&m64, sgd(Some(Momentum::Classic(0.9)), None))
        .state_dict()
        .unwrap();
    let err = opt32.load_state_dict(&state64).unwrap_err();
    assert!(err.to_string().contains("f64"), "{err}");
}

/// Global L2 norm of all gradients, on the host.
fn host_norm(m: &Model, g: &Gradients<f64, TestDevice>) -> f64 {
    let all = [
        g.get(&m.0.weight).as_vec(),
        g.get(&m.0.bias).as_vec(),
        g.get(&m.2.weight).as_vec(),
        g.get(&m.2.bias).as_vec(),
    ]
    .concat();
    all.iter().map(|x| x * x).sum::<f64>().sqrt()
}

fn all_grads(m: &Model, g: &Gradients<f64, TestDevice>) -> Vec<f64> {
    [
        g.get(&m.0.weight).as_vec(),
        g.get(&m.0.bias).as_vec(),
        g.get(&m.2.weight).as_vec(),
        g.get(&m.2.bias).as_vec(),
    ]
    .concat()
}

#[test]
fn clip_grad_norm_scales_like_pytorch() {
    let m = model(0);
    let mut g = loss_grads(&m, 0);
    let before = all_grads(&m, &g);
    let norm = host_norm(&m, &g);
    let max_norm = norm / 4.0;
    let returned = clip_grad_norm(&m, &mut g, max_norm).unwrap();
    assert!(
        (returned - norm).abs() <= 1e-12 * norm,
        "{returned} vs {norm}"
    );
    let coef = max_norm / (norm + 1e-6);
    let after = all_grads(&m, &g);
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(*a, b * coef);
    }
    assert!((host_norm(&m, &g) - max_norm).abs() < 1e-6);

    // Below the threshold nothing changes, bit for bit.
    let again = clip_grad_norm(&m, &mut g, 10.0 * norm).unwrap();
    assert!((again - max_norm).abs() < 1e-6);
    assert_eq!(all_grads(&m, &g), after);
}

#[test]
fn clip_grad_norm_skips_missing_gradients_and_rejects_bad_max_norm() {
    let m = model(0);
    let (x, _) = batch(0);
    let mut g =
        m.0.forward(x.traced(Gradients::leaky()))
            .square()
            .sum()
            .backward();
    let w = g.get(&m.0.weight).as_vec();
    let b = g.get(&m.0.bias).as_vec();
    let norm = w.iter().chain(&b).map(|v| v * v).sum::<f64>().sqrt();
    let returned = clip_grad_norm(&m, &mut g, 1.0).unwrap();
    assert!((returned - norm).abs() <= 1e-12 * norm);
    assert!(matches!(
        clip_grad_norm(&m, &mut g, -1.0),
        Err(Error::Usage(_))
    ));
    assert!(matches!(
        clip_grad_norm(&m, &mut g, f64::NAN),
        Err(Error::Usage(_))
    ));
}

#[test]
fn finds_the_first_non_finite_gradient() {
    let m = model(0);
    let g = loss_grads(&m, 0);
    assert!(grads_are_finite(&m, &g).unwrap());
    assert_eq!(first_non_finite_grad(&m, &g).unwrap(), None);

    // Huge but finite gradients are still finite (a sum of squares would overflow).
    let mut big = loss_grads(&m, 0);
    add_l2(&m, &mut big, 1e300).unwrap();
    assert!(grads_are_finite(&m, &big).unwrap());

    let (mut x, y) = batch(0);
    let mut xs = x.as_vec();
    xs[0] = f64::NAN;
    x.copy_from(&xs);
    let bad = mse_loss(m.forward(x.traced(m.alloc_grads())), y).backward();
    assert!(!grads_are_finite(&m, &bad).unwrap());
    assert_eq!(
        first_non_finite_grad(&m, &bad).unwrap().as_deref(),
        Some("0.weight")
    );
}

/// The mean-squared-error loss plus `penalty(params)`, on the host.
fn penalised_loss(m: &Model, penalty: &dyn Fn(&[f64]) -> f64) -> f64 {
    let (x, y) = batch(0);
    mse_loss(m.forward(x), y).array() + penalty(&params(m))
}

/// Compares the gradient after `regularize` with central differences of the penalised loss.
fn assert_matches_finite_differences(
    what: &str,
    regularize: impl Fn(&Model, &mut Gradients<f64, TestDevice>),
    penalty: &dyn Fn(&[f64]) -> f64,
) {
    let mut m = model(3);
    let mut g = loss_grads(&m, 0);
    regularize(&m, &mut g);
    let analytic = all_grads(&m, &g);
    let base = params(&m);
    let eps = 1e-6;
    for i in 0..base.len() {
        let mut p = base.clone();
        p[i] = base[i] + eps;
        set_params(&mut m, &p);
        let up = penalised_loss(&m, penalty);
        p[i] = base[i] - eps;
        set_params(&mut m, &p);
        let down = penalised_loss(&m, penalty);
        let numeric = (up - down) / (2.0 * eps);
        assert!(
            (numeric - analytic[i]).abs() <= 1e-7 * (1.0 + numeric.abs()),
            "{what}: parameter {i}: analytic {} vs numeric {numeric}",
            analytic[i]
        );
    }
}

#[test]
fn add_l2_is_the_gradient_of_half_lambda_squared_norm() {
    let lambda = 0.3;
    assert_matches_finite_differences("l2", |m, g| add_l2(m, g, lambda).unwrap(), &|w| {
        lambda / 2.0 * w.iter().map(|x| x * x).sum::<f64>()
    });
}

#[test]
fn add_l1_is_the_gradient_of_lambda_abs_norm() {
    let lambda = 0.2;
    assert!(params(&model(3)).iter().all(|w| w.abs() > 1e-4));
    assert_matches_finite_differences("l1", |m, g| add_l1(m, g, lambda).unwrap(), &|w| {
        lambda * w.iter().map(|x| x.abs()).sum::<f64>()
    });
}

#[test]
fn regularizers_are_exact_and_validate_lambda() {
    let m = model(0);
    let mut g = loss_grads(&m, 0);
    let before = all_grads(&m, &g);
    add_l2(&m, &mut g, 0.0).unwrap();
    add_l1(&m, &mut g, 0.0).unwrap();
    assert_eq!(all_grads(&m, &g), before);
    add_l2(&m, &mut g, 0.5).unwrap();
    let expected: Vec<f64> = before
        .iter()
        .zip(params(&m))
        .map(|(g, w)| g + w * 0.5)
        .collect();
    assert_eq!(all_grads(&m, &g), expected);
    assert!(matches!(
        add_l2(&m, &mut g, f64::INFINITY),
        Err(Error::Usage(_))
    ));
    assert!(matches!(add_l1(&m, &mut g, f64::NAN), Err(Error::Usage(_))));
}

#[test]
fn named_grads_lists_the_present_gradients_by_name() {
    use shapesafe::optim::named_grads;
    let dev = TestDevice::default();
    let model = dev.build_module::<(Linear<3, 2>, Linear<3, 2>), f64>();
    let x: Tensor<Rank1<3>, f64, _> = dev.tensor([1.0, -2.0, 0.5]);
    // Only the first layer is used, from an empty gradient map: the second has no gradient.
    let grads = model
        .0
        .forward(x.traced(Gradients::leaky()))
        .sum()
        .backward();
    let named = named_grads(&model, &grads).unwrap();
    let names: Vec<&str> = named.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["0.weight", "0.bias"]);
    // d(sum(W x + b))/dW[o][i] = x[i]; d/db = 1.
    assert_eq!(named[0].shape, [2, 3]);
    assert_eq!(named[0].values, [1.0, -2.0, 0.5, 1.0, -2.0, 0.5]);
    assert_eq!(
        (named[1].shape.clone(), named[1].values.clone()),
        (vec![2], vec![1.0, 1.0])
    );
}
