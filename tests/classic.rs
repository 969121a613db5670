//! Classic models, the extra activations and selectable initialisation: values, gradients against
//! finite differences, statistics of initial weights, and small training runs.

use rand::{rngs::StdRng, Rng, SeedableRng};
use shapesafe::models::classic::{
    predict_binary, predict_class, predict_sign, svm_objective, LinearSvm, LogisticRegression, Mlp,
    Perceptron, SoftmaxRegression,
};
use shapesafe::nn::init::{fan_in_and_fan_out, init_weights, Init};
use shapesafe::nn::loss::{
    binary_cross_entropy_with_logits, cross_entropy, hinge_loss, perceptron_loss,
};
use shapesafe::prelude::*;

mod common;

use common::TestDevice;
use common::{assert_close_scalar, check_input_gradient};

/// Central-difference step and tolerance for the hand-rolled parameter checks below.
const EPS: f64 = 1e-6;
const FD_TOL: f64 = 1e-7;
use shapesafe::shape::{check_maxout, maxout_name};

// ---------------------------------------------------------------- activations

#[test]
fn binary_step_thresholds_at_zero() {
    let dev = TestDevice::default();
    let x = dev.tensor([
        [-2.0f64, -1e-300, 0.0, 1e-300, 3.0],
        [f64::NAN, -0.0, 5.0, -5.0, 0.5],
    ]);
    let y = BinaryStep.forward(x);
    assert_eq!(
        y.array(),
        [[0.0, 0.0, 1.0, 1.0, 1.0], [0.0, 1.0, 1.0, 0.0, 1.0]]
    );
}

#[test]
fn binary_step_has_zero_gradient_but_keeps_the_tape() {
    let dev = TestDevice::default();
    let mut model = dev.build_module::<(Linear<3, 4>, BinaryStep, Linear<4, 2>), f64>();
    let x: Tensor<Rank2<5, 3>, f64, _> = dev.sample_normal();
    let grads = model.alloc_grads();
    let loss = model.forward(x.traced(grads)).square().mean();
    let grads = loss.backward();
    // Nothing flows back through the step ...
    assert!(grads
        .get(&model.0.weight)
        .array()
        .iter()
        .flatten()
        .all(|&g| g == 0.0));
    // ... but the layer after it learns, and an optimizer accepts the gradients.
    assert!(grads
        .get(&model.2.weight)
        .array()
        .iter()
        .flatten()
        .any(|&g| g != 0.0));
    let mut sgd = Sgd::new(&model, SgdConfig::default());
    sgd.update(&mut model, &grads)
        .expect("every parameter has a gradient");
}

/// Arctan's inputs for the value checks: zeros, tiny and subnormal numbers, a dense grid
/// on [-10, 10], a few ulp either side of the branch points (1, where 1/x takes over, and
/// tan(pi/8) and its reciprocal, where the pi/4 shift starts), large numbers, and f64::MAX.
fn arctan_sweep() -> Vec<f64> {
    let mut values = vec![0.0, 1e-300, f64::from_bits(1), 1e-310, 1e-8, 1e-4, 0.1, 0.5];
    values.extend((0..=2000).map(|i| -10.0 + 0.01 * i as f64));
    let tan_eighth_pi = std::f64::consts::SQRT_2 - 1.0;
    for branch in [1.0, tan_eighth_pi, 1.0 / tan_eighth_pi, 0.8, 1.25, 2.0] {
        for step in -4i64..=4 {
            values.push(f64::from_bits((branch.to_bits() as i64 + step) as u64));
        }
        for offset in [1e-12, 1e-9, 1e-6, 1e-3] {
            values.extend([branch - offset, branch + offset]);
        }
    }
    values.extend([1e3, 12345.678, 1e8, 1e17, 1e154, 1e300, f64::MAX]);
    let negatives: Vec<f64> = values.iter().map(|v| -v).collect();
    values.extend(negatives);
    values
}

/// The distance from `v` to the next float away from zero in f64 (f32 when `single`).
fn ulp(v: f64, single: bool) -> f64 {
    if single {
        let a = (v as f32).abs();
        (f32::from_bits(a.to_bits() + 1) - a) as f64
    } else {
        let a = v.abs();
        f64::from_bits(a.to_bits() + 1) - a
    }
}

/// Arctan is composed from dfdx ops (a range reduction and a Taylor series), measured
/// within 2 ulp of `f64::atan`; 3 ulp of the expected value is asserted, relative at
/// every magnitude, subnormal results included.
const ARCTAN_ULPS: f64 = 3.0;

#[test]
fn arctan_matches_atan_within_3_ulp() {
    let dev = TestDevice::default();
    let values = arctan_sweep();
    let x = dev.tensor_from_vec(values.clone(), (values.len(),));
    let y = Arctan.forward(x).as_vec();
    for (got, v) in y.iter().zip(&values) {
        let expected = v.atan();
        let tolerance = ARCTAN_ULPS * ulp(expected, false);
        assert!(
            (got - expected).abs() <= tolerance,
            "atan({v:e}) = {expected:e}, got {got:e}, difference {:e} exceeds {tolerance:e}",
            (got - expected).abs()
        );
    }
    // Odd, so exactly antisymmetric, and -0 keeps its sign as in PyTorch.
    let half = values.len() / 2;
    for i in 0..half {
        assert_eq!(y[i], -y[half + i], "atan(-{:e})", values[i]);
    }
    assert!(
        y[half].is_sign_negative() && y[half] == 0.0,
        "atan(-0) is -0"
    );
    // Values that atan returns unchanged in f64 come back unchanged.
    assert_eq!(&y[1..4], &values[1..4]);
}

#[test]
fn arctan_in_f32_matches_atan_within_3_ulp() {
    let dev = TestDevice::default();
    let mut values: Vec<f32> = arctan_sweep().iter().map(|&v| v as f32).collect();
    values.extend([f32::from_bits(1), -f32::from_bits(1), f32::MAX, -f32::MAX]);
    let x = dev.tensor_from_vec(values.clone(), (values.len(),));
    let y = Arctan.forward(x).as_vec();
    for (got, v) in y.iter().zip(&values) {
        let expected = (*v as f64).atan();
        let tolerance = ARCTAN_ULPS * ulp(expected, true);
        let difference = (*got as f64 - expected).abs();
        assert!(
            difference <= tolerance,
            "f32 atan({v:e}) = {expected:e}, got {got:e}, difference {difference:e} exceeds {tolerance:e}"
        );
    }
}

#[test]
fn arctan_gradient_is_atan_derivative() {
    let dev = TestDevice::default();
    let values = [
        -40.0, -3.0, -2.4142, -1.0, -0.7, -0.4142, -0.2, 0.0, 0.3, 0.42, 1.0, 1.0001, 2.5, 1e3,
    ];
    let x = dev.tensor(values);
    check_input_gradient("arctan", &x, |t| Arctan.forward(t));

    let sweep = arctan_sweep();
    let x = dev.tensor_from_vec(sweep.clone(), (sweep.len(),));
    let g = Arctan.forward(x.leaky_trace()).sum().backward();
    for (got, v) in g.get(&x).as_vec().iter().zip(&sweep) {
        assert_close_scalar("atan'", *got, 1.0 / (1.0 + v * v), 1e-15);
    }
    let x32 = dev.tensor_from_vec(
        sweep.iter().map(|&v| v as f32).collect::<Vec<_>>(),
        (sweep.len(),),
    );
    let g = Arctan.forward(x32.leaky_trace()).sum().backward();
    for (got, v) in g.get(&x32).as_vec().iter().zip(x32.as_vec()) {
        let v = v as f64;
        assert_close_scalar("f32 atan'", *got as f64, 1.0 / (1.0 + v * v), 3e-7);
    }
}

#[test]
fn arctan_handles_infinities_and_nan() {
    let dev = TestDevice::default();
    let x = dev.tensor([f64::NEG_INFINITY, f64::INFINITY, f64::NAN]);
    let y = Arctan.forward(x.leaky_trace());
    let values = y.array();
    assert_eq!(values[0], -std::f64::consts::FRAC_PI_2);
    assert_eq!(values[1], std::f64::consts::FRAC_PI_2);
    assert!(values[2].is_nan());
    let g = y.sum().backward().get(&x).array();
    assert_eq!(&g[..2], &[0.0, 0.0]);

    let x = dev.tensor([f32::NEG_INFINITY, f32::INFINITY, f32::NAN]);
    let y = Arctan.forward(x).array();
    assert_eq!(y[0], -std::f32::consts::FRAC_PI_2);
    assert_eq!(y[1], std::f32::consts::FRAC_PI_2);
    assert!(y[2].is_nan());
}

#[test]
fn arctan_works_unbatched_and_batched() {
    let dev = TestDevice::default();
    let x: Tensor<Rank3<2, 3, 4>, f32, _> = dev.sample_normal();
    let flat = Arctan.forward(dev.tensor_from_vec(x.as_vec(), (24,)));
    assert_eq!(Arctan.forward(x.clone()).as_vec(), flat.as_vec());
    let batched: Tensor<Rank4<1, 2, 3, 4>, f32, _> = x.clone().reshape();
    assert_eq!(Arctan.forward(batched).as_vec(), flat.as_vec());
    let dynamic = x.reshape_like(&(1usize, Const::<2>, Const::<3>, Const::<4>));
    assert_eq!(Arctan.forward(dynamic).as_vec(), flat.as_vec());
}

#[test]
fn prelu_starts_at_a_quarter_and_learns_its_slope() {
    let dev = TestDevice::default();
    let prelu = dev.build_module::<PReLU, f64>();
    assert_eq!(prelu.weight.array(), [0.25]);
    assert_eq!(prelu.num_trainable_params(), 1);
    let x = dev.tensor([[-2.0, -0.5, 0.7], [3.0, -1.5, 0.2]]);
    assert_eq!(
        prelu.forward(x.clone()).array(),
        [[-0.5, -0.125, 0.7], [3.0, -0.375, 0.2]]
    );
    check_input_gradient("prelu, input", &x, |t| prelu.forward(t));

    // d/da of sum(w * prelu(x)) is sum(w * min(x, 0)): check against differences in `a`.
    let w = dev.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]);
    let objective = |m: &shapesafe::nn::modules::PReLU<f64, TestDevice>| {
        (m.forward(x.clone()) * w.clone()).sum::<Rank0, _>().array()
    };
    let grads = (prelu.forward(x.leaky_trace()) * w.clone())
        .sum()
        .backward();
    let analytic = grads.get(&prelu.weight).array()[0];
    let mut plus = prelu.clone();
    plus.weight = dev.tensor([0.25 + EPS]);
    let mut minus = prelu.clone();
    minus.weight = dev.tensor([0.25 - EPS]);
    let numeric = (objective(&plus) - objective(&minus)) / (2.0 * EPS);
    assert_close_scalar("prelu, slope", analytic, numeric, FD_TOL);
    assert_close_scalar("prelu, slope exact", analytic, -2.0 - 1.0 - 7.5, 1e-12);

    // In a model, an optimizer moves the slope.
    let mut model = dev.build_module::<(Linear<3, 3>, PReLU), f64>();
    let mut opt = Sgd::new(&model, SgdConfig::default());
    let before = model.1.weight.array();
    let xs: Tensor<Rank2<8, 3>, f64, _> = dev.sample_normal();
    let grads = model
        .forward(xs.traced(model.alloc_grads()))
        .square()
        .mean()
        .backward();
    opt.update(&mut model, &grads).unwrap();
    assert_ne!(model.1.weight.array(), before);
}

#[test]
fn maxout_takes_the_max_of_each_group() {
    let dev = TestDevice::default();
    let x = dev.tensor([
        [1.0f64, 5.0, -3.0, 0.5, 2.0, 2.5],
        [-1.0, -2.0, -3.0, 9.0, 8.0, 7.0],
    ]);
    let pairs: Tensor<(Const<2>, MaxoutOut<Const<6>, 2>), f64, _> = Maxout::<2>.forward(x.clone());
    assert_eq!(pairs.as_vec(), [5.0, 0.5, 2.5, -1.0, 9.0, 8.0]);
    let triples = Maxout::<3>.forward(x.clone());
    assert_eq!(triples.as_vec(), [5.0, 2.5, -1.0, 9.0]);
    let unbatched = Maxout::<3>.forward(dev.tensor([4.0f64, 1.0, 2.0]));
    assert_eq!(unbatched.as_vec(), [4.0]);
    check_input_gradient("maxout<2>", &x, |t| Maxout::<2>.forward(t));
    check_input_gradient("maxout<3>", &x, |t| Maxout::<3>.forward(t));
}

#[test]
fn maxout_feeds_a_linear_layer_and_shows_in_summaries() {
    type Net = (Linear<8, 12>, Maxout<3>, Linear<4, 2>);
    shapesafe::assert_shapes!(Net: Rank1<8> => Rank1<2>, params = 118);
    let dev = TestDevice::default();
    let model = dev.build_module::<Net, f32>();
    let x: Tensor<Rank2<5, 8>, f32, _> = dev.sample_normal();
    let y: Tensor<Rank2<5, 2>, f32, _> = model.forward(x);
    assert_eq!(y.shape().concrete(), [5, 2]);
    let summary = Summary::of::<Net, Rank1<8>>();
    assert_eq!(summary.rows[1].layer, "Maxout<3>");
    assert_eq!(summary.rows[1].output, vec![4]);
    assert_eq!(summary.total_params(), 118);
    // After a Flatten the dim keeps its factors: (2, 3, 2) has 12 features.
    type Conv = (Flatten, Maxout<4>);
    assert_eq!(
        <<Conv as ShapeInfer<Rank3<2, 3, 2>>>::Output as StaticShape>::DIMS,
        &[3]
    );
    assert_eq!(maxout_name(4).as_str(), "Maxout<4>");
}

#[test]
fn maxout_check_accepts_divisors() {
    check_maxout(3, 12, &[]);
    check_maxout(4, 12, &[3, 2, 2]);
    // A 0 dim was already reported by an earlier layer: stay quiet.
    check_maxout(5, 0, &[]);
}

#[test]
#[should_panic(
    expected = "shape mismatch: Maxout<3> takes the max over groups of 3 features, but 3 does not divide its 10 input features"
)]
fn maxout_check_names_the_layer_and_numbers() {
    check_maxout(3, 10, &[]);
}

#[test]
#[should_panic(
    expected = "shape mismatch: Maxout<5> takes the max over groups of 5 features, but 5 does not divide the 12 features that Flatten of (3, 2, 2) gives"
)]
fn maxout_check_names_flatten_factors() {
    check_maxout(5, 12, &[3, 2, 2]);
}

#[test]
#[should_panic(expected = "shape mismatch: Maxout<0>: the group size must be at least 1")]
fn maxout_check_rejects_empty_groups() {
    check_maxout(0, 12, &[]);
}

#[test]
fn new_activations_report_their_shapes() {
    type Net = (Linear<4, 6>, PReLU, Arctan, BinaryStep, Maxout<2>);
    shapesafe::assert_shapes!(Net: Rank1<4> => Rank1<3>, params = 31);
    let summary = Summary::of::<Net, Rank1<4>>();
    let names: Vec<&str> = summary.rows.iter().map(|r| r.layer.as_str()).collect();
    assert_eq!(
        names,
        ["Linear<4, 6>", "PReLU", "Arctan", "BinaryStep", "Maxout<2>"]
    );
    assert_eq!(summary.rows[1].params, 1);
}

// ------------------------------------------------------------- initialisation

#[test]
fn fans_follow_pytorch() {
    assert_eq!(fan_in_and_fan_out(&[500, 1000]), Some((1000, 500)));
    // Grouped conv weight (OUT, IN / GROUPS, K, K) = (16, 2, 3, 3).
    assert_eq!(fan_in_and_fan_out(&[16, 2, 3, 3]), Some((18, 144)));
    assert_eq!(fan_in_and_fan_out(&[7]), None);
    assert_eq!(fan_in_and_fan_out(&[]), None);
}

/// Sample mean and variance.
fn moments(v: &[f32]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean, var)
}

#[test]
fn every_scheme_draws_its_variance() {
    const FAN_IN: usize = 1000;
    const FAN_OUT: usize = 500;
    let dev = TestDevice::default();
    let n = (FAN_IN * FAN_OUT) as f64;
    for init in Init::ALL {
        let mut layer = dev.build_module::<Linear<FAN_IN, FAN_OUT>, f32>();
        init_weights(&mut layer, init, 11).unwrap();
        let w = layer.weight.as_vec();
        let (mean, var) = moments(&w);
        let want = init.std(FAN_IN, FAN_OUT).powi(2);
        let expected = match init {
            Init::KaimingUniform | Init::KaimingNormal => 2.0 / FAN_IN as f64,
            Init::XavierUniform | Init::XavierNormal => 2.0 / (FAN_IN + FAN_OUT) as f64,
            Init::LeCunUniform | Init::LeCunNormal => 1.0 / FAN_IN as f64,
        };
        assert_close_scalar(&format!("{init:?} formula"), want, expected, 1e-12);
        // Five standard errors: the sample mean's is sqrt(var / n), the sample
        // variance's at most sqrt(2 / n) * var (normal; a uniform's is smaller).
        assert!(
            mean.abs() < 5.0 * (want / n).sqrt(),
            "{init:?}: mean {mean}"
        );
        assert!(
            (var - want).abs() < 5.0 * (2.0 / n).sqrt() * want,
            "{init:?}: variance {var}, want {want}"
        );
        if let Some(bound) = init.bound(FAN_IN, FAN_OUT) {
            let max = w.iter().fold(0.0f64, |m, &x| m.max(x.abs() as f64));
            assert!(max <= bound * (1.0 + 1e-6), "{init:?}: {max} > {bound}");
            assert!(
                max > 0.99 * bound,
                "{init:?}: the draw should fill ±{bound}"
            );
        } else {
            // A normal has 4th moment 3 var^2; a uniform only 1.8 var^2.
            let m4 = w.iter().map(|&x| (x as f64).powi(4)).sum::<f64>() / n;
            assert!(
                (m4 / (var * var) - 3.0).abs() < 0.1,
                "{init:?}: kurtosis {}",
                m4 / (var * var)
            );
        }
        assert!(layer.bias.as_vec().iter().all(|&b| b == 0.0));
    }
}

#[test]
fn conv_weights_use_the_receptive_field() {
    let dev = TestDevice::default();
    let mut conv = dev.build_module::<Conv2d<32, 64, 3>, f32>();
    init_weights(&mut conv, Init::XavierNormal, 3).unwrap();
    let (fan_in, fan_out) = (32 * 9, 64 * 9);
    let (_, var) = moments(&conv.weight.as_vec());
    let want = 2.0 / (fan_in + fan_out) as f64;
    assert!(
        (var / want - 1.0).abs() < 0.03,
        "variance {var}, want {want}"
    );

    let mut grouped = dev.build_module::<Conv2d<32, 64, 3, 1, 0, 1, 4>, f32>();
    init_weights(&mut grouped, Init::KaimingUniform, 3).unwrap();
    let bound = (6.0 / (8.0 * 9.0f64)).sqrt();
    let max = grouped
        .weight
        .as_vec()
        .iter()
        .fold(0.0f64, |m, &x| m.max(x.abs() as f64));
    assert!(
        max <= bound * (1.0 + 1e-6) && max > 0.95 * bound,
        "{max} vs {bound}"
    );
}

#[test]
fn init_is_seeded_and_skips_one_dimensional_weights() {
    let dev = TestDevice::default();
    type Net = (Linear<20, 30>, PReLU, Linear<30, 5>);
    let mut a = dev.build_module::<Net, f64>();
    let mut b = dev.build_module::<Net, f64>();
    init_weights(&mut a, Init::LeCunNormal, 42).unwrap();
    init_weights(&mut b, Init::LeCunNormal, 42).unwrap();
    assert_eq!(a.0.weight.array(), b.0.weight.array());
    assert_eq!(a.2.weight.array(), b.2.weight.array());
    // The second layer does not repeat the first one's draw.
    assert_ne!(a.0.weight.as_vec()[..5], a.2.weight.as_vec()[..5]);
    init_weights(&mut b, Init::LeCunNormal, 43).unwrap();
    assert_ne!(a.0.weight.array(), b.0.weight.array());
    // PyTorch cannot compute fans for a 1-D weight; the PReLU slope stays 0.25.
    assert_eq!(a.1.weight.array(), [0.25]);
}

// ---------------------------------------------------------------------- models

/// Two Gaussian clouds in 4 dimensions, centred at ±(1.5, -1, 0.5, 2): linearly
/// separable in practice. Labels are ±1.
fn two_clouds<const N: usize>(seed: u64) -> (Vec<[f64; 4]>, Vec<f64>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let centre = [1.5, -1.0, 0.5, 2.0];
    let mut xs = Vec::with_capacity(N);
    let mut ys = Vec::with_capacity(N);
    for i in 0..N {
        let y = if i % 2 == 0 { 1.0 } else { -1.0 };
        xs.push(centre.map(|c| y * c + rng.gen_range(-0.5..0.5)));
        ys.push(y);
    }
    (xs, ys)
}

fn to_tensors<const N: usize>(
    dev: &TestDevice,
    xs: &[[f64; 4]],
    ys: &[f64],
) -> (
    Tensor<Rank2<N, 4>, f64, TestDevice>,
    Tensor<Rank2<N, 1>, f64, TestDevice>,
) {
    let x = dev.tensor_from_vec(xs.iter().flatten().copied().collect(), (Const, Const));
    let y = dev.tensor_from_vec(ys.to_vec(), (Const, Const));
    (x, y)
}

fn accuracy<T: PartialEq>(predicted: &[T], truth: &[T]) -> f64 {
    let right = predicted.iter().zip(truth).filter(|(p, t)| p == t).count();
    right as f64 / truth.len() as f64
}

#[test]
fn classic_contracts_hold() {
    assert_eq!(
        Summary::of::<Perceptron<784>, Rank1<784>>().total_params(),
        785
    );
    assert_eq!(
        Summary::of::<LinearSvm<784>, Rank1<784>>().total_params(),
        785
    );
    assert_eq!(
        Summary::of::<LogisticRegression<784>, Rank1<784>>().total_params(),
        785
    );
    assert_eq!(
        Summary::of::<SoftmaxRegression<784, 10>, Rank1<784>>().total_params(),
        7_850
    );
    let mlp = Summary::of::<Mlp<784, 256, 10>, Rank1<784>>();
    assert_eq!(mlp.total_params(), 203_530);
    assert_eq!(mlp.rows.len(), 3);
    assert_eq!(mlp.rows[2].output, vec![10]);
    // The feature dim may be a Flatten of images.
    shapesafe::assert_shapes!((Flatten, Perceptron<784>): Rank3<1, 28, 28> => Rank1<1>);
}

#[test]
fn perceptron_separates_two_clouds() {
    let dev = TestDevice::default();
    let (xs, ys) = two_clouds::<64>(1);
    let (x, y) = to_tensors::<64>(&dev, &xs, &ys);
    let mut model = dev.build_module::<Perceptron<4>, f64>();
    let mut sgd = Sgd::new(
        &model,
        SgdConfig {
            lr: 1.0,
            ..Default::default()
        },
    );
    let mut grads = model.alloc_grads();
    for _ in 0..50 {
        let loss = perceptron_loss(model.forward(x.trace(grads)), y.clone());
        grads = loss.backward();
        sgd.update(&mut model, &grads).unwrap();
        model.zero_grads(&mut grads);
    }
    let truth: Vec<i8> = ys.iter().map(|&v| v as i8).collect();
    assert_eq!(accuracy(&predict_sign(&model, x), &truth), 1.0);
}

#[test]
fn svm_objective_gradient_matches_finite_differences() {
    let dev = TestDevice::default();
    let (xs, ys) = two_clouds::<8>(2);
    let (x, y) = to_tensors::<8>(&dev, &xs, &ys);
    let mut model = dev.build_module::<LinearSvm<4>, f64>();
    // Small weights keep every point inside the margin, away from the hinge's kink.
    model.weight = dev.tensor([[0.05, -0.02, 0.01, 0.03]]);
    model.bias = dev.tensor([0.01]);
    let l2 = 0.3;
    let loss_of = |m: &shapesafe::nn::modules::Linear<4, 1, f64, TestDevice>| {
        svm_objective(m, m.forward(x.clone()), y.clone(), l2).array()
    };
    let grads = svm_objective(
        &model,
        model.forward(x.trace(model.alloc_grads())),
        y.clone(),
        l2,
    )
    .backward();
    let analytic = grads.get(&model.weight).as_vec();
    for i in 0..4 {
        let mut w = model.weight.as_vec();
        w[i] += EPS;
        let mut plus = model.clone();
        plus.weight = dev.tensor_from_vec(w.clone(), (Const, Const));
        w[i] -= 2.0 * EPS;
        let mut minus = model.clone();
        minus.weight = dev.tensor_from_vec(w, (Const, Const));
        let numeric = (loss_of(&plus) - loss_of(&minus)) / (2.0 * EPS);
        assert_close_scalar(&format!("svm d/dw[{i}]"), analytic[i], numeric, FD_TOL);
    }
    // The bias has no penalty: its gradient is the hinge loss's alone.
    let hinge_grads = hinge_loss(model.forward(x.trace(model.alloc_grads())), y.clone()).backward();
    assert_close_scalar(
        "svm d/db",
        grads.get(&model.bias).array()[0],
        hinge_grads.get(&model.bias).array()[0],
        1e-15,
    );
}

#[test]
fn linear_svm_and_logistic_regression_separate_two_clouds() {
    let dev = TestDevice::default();
    let (xs, ys) = two_clouds::<64>(3);
    let (x, y_pm1) = to_tensors::<64>(&dev, &xs, &ys);
    let y01 = dev.tensor_from_vec(
        ys.iter().map(|&v| (v + 1.0) / 2.0).collect(),
        (Const::<64>, Const::<1>),
    );

    let mut svm = dev.build_module::<LinearSvm<4>, f64>();
    let mut opt = Sgd::new(
        &svm,
        SgdConfig {
            lr: 0.1,
            ..Default::default()
        },
    );
    for _ in 0..100 {
        let scores = svm.forward(x.trace(svm.alloc_grads()));
        let grads = svm_objective(&svm, scores, y_pm1.clone(), 1e-3).backward();
        opt.update(&mut svm, &grads).unwrap();
    }
    let truth: Vec<i8> = ys.iter().map(|&v| v as i8).collect();
    assert_eq!(accuracy(&predict_sign(&svm, x.clone()), &truth), 1.0);

    let mut logistic = dev.build_module::<LogisticRegression<4>, f64>();
    let mut opt = Adam::new(
        &logistic,
        AdamConfig {
            lr: 0.05,
            ..Default::default()
        },
    );
    let mut first_loss = None;
    let mut last_loss = 0.0;
    for _ in 0..100 {
        let logits = logistic.forward(x.trace(logistic.alloc_grads()));
        let loss = binary_cross_entropy_with_logits(logits, y01.clone());
        last_loss = loss.array();
        first_loss.get_or_insert(last_loss);
        let grads = loss.backward();
        opt.update(&mut logistic, &grads).unwrap();
    }
    assert!(
        last_loss < 0.1 * first_loss.unwrap(),
        "{first_loss:?} -> {last_loss}"
    );
    let truth01: Vec<u8> = ys.iter().map(|&v| u8::from(v > 0.0)).collect();
    assert_eq!(accuracy(&predict_binary(&logistic, x), &truth01), 1.0);
}

#[test]
fn softmax_regression_and_mlp_learn_three_classes() {
    let dev = TestDevice::default();
    let mut rng = StdRng::seed_from_u64(5);
    let centres = [[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]];
    let mut xs = Vec::new();
    let mut one_hot = Vec::new();
    let mut labels = Vec::new();
    for i in 0..60 {
        let c = i % 3;
        xs.extend(centres[c].map(|v| v + rng.gen_range(-0.6..0.6)));
        let mut row = [0.0; 3];
        row[c] = 1.0;
        one_hot.extend(row);
        labels.push(c);
    }
    let x: Tensor<Rank2<60, 2>, f64, _> = dev.tensor_from_vec(xs, (Const, Const));
    let t: Tensor<Rank2<60, 3>, f64, _> = dev.tensor_from_vec(one_hot, (Const, Const));

    let mut softmax = dev.build_module::<SoftmaxRegression<2, 3>, f64>();
    let mut opt = Adam::new(
        &softmax,
        AdamConfig {
            lr: 0.05,
            ..Default::default()
        },
    );
    for _ in 0..150 {
        let loss = cross_entropy(softmax.forward(x.trace(softmax.alloc_grads())), t.clone());
        opt.update(&mut softmax, &loss.backward()).unwrap();
    }
    assert_eq!(accuracy(&predict_class(&softmax, x.clone()), &labels), 1.0);

    let mut mlp = dev.build_module::<Mlp<2, 16, 3>, f64>();
    init_weights(&mut mlp, Init::KaimingUniform, 0).unwrap();
    let mut opt = Adam::new(
        &mlp,
        AdamConfig {
            lr: 0.02,
            ..Default::default()
        },
    );
    for _ in 0..150 {
        let loss = cross_entropy(mlp.forward(x.trace(mlp.alloc_grads())), t.clone());
        opt.update(&mut mlp, &loss.backward()).unwrap();
    }
    assert_eq!(accuracy(&predict_class(&mlp, x), &labels), 1.0);
}
