//! Losses against hand-computed f64 references, and their gradients against central finite differences.

use shapesafe::nn::loss::{
    binary_cross_entropy_with_logits, cross_entropy, hinge_loss, huber_loss, kl_div, mse_loss,
    perceptron_loss,
};
use shapesafe::prelude::*;

mod common;

use common::TestDevice;
use common::{assert_close_scalar, check_input_gradient};

fn logistic_log(x: f64) -> f64 {
    // ln(1 + exp(x)) without overflow.
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

#[test]
fn mse_loss_is_the_mean_square_with_its_gradient() {
    let dev = TestDevice::default();
    let pred = dev.tensor([[0.3f64, -1.2, 2.0], [0.5, 0.0, -0.7]]);
    let targ = dev.tensor([[0.1f64, 1.0, 2.5], [-0.5, 0.2, -0.7]]);
    let (p, t) = (pred.array(), targ.array());
    let mut want = 0.0;
    for r in 0..2 {
        for c in 0..3 {
            want += (p[r][c] - t[r][c]).powi(2);
        }
    }
    want /= 6.0;
    assert_close_scalar(
        "mse",
        mse_loss(pred.clone(), targ.clone()).array(),
        want,
        1e-14,
    );
    check_input_gradient("mse", &pred, |x| mse_loss(x, targ.clone()));
}

#[test]
fn huber_loss_is_quadratic_inside_delta_and_linear_outside() {
    let dev = TestDevice::default();
    let delta = 0.8;
    let pred = dev.tensor([0.3, -1.2, 2.0, 0.5, 4.0, -0.1]);
    let targ = dev.tensor([0.1, 1.0, 2.5, -0.5, 0.2, -0.3]);
    let want: f64 = pred
        .array()
        .iter()
        .zip(targ.array())
        .map(|(p, t)| {
            let d: f64 = p - t;
            if d.abs() < delta {
                0.5 * d * d
            } else {
                delta * (d.abs() - 0.5 * delta)
            }
        })
        .sum::<f64>()
        / 6.0;
    let got = huber_loss(pred.clone(), targ.clone(), delta).array();
    assert_close_scalar("huber", got, want, 1e-14);
    check_input_gradient("huber", &pred, |x| huber_loss(x, targ.clone(), delta));
}

#[test]
fn bce_with_logits_matches_the_formula_and_is_stable() {
    let dev = TestDevice::default();
    let logits = dev.tensor([[0.3f64], [-1.2], [2.0], [0.0], [-3.5]]);
    let targets = dev.tensor([[1.0f64], [0.0], [0.0], [1.0], [0.25]]);
    let want: f64 = logits
        .array()
        .iter()
        .zip(targets.array())
        .map(|(x, y)| {
            let p = 1.0 / (1.0 + (-x[0]).exp());
            -(y[0] * p.ln() + (1.0 - y[0]) * (1.0 - p).ln())
        })
        .sum::<f64>()
        / 5.0;
    let got = binary_cross_entropy_with_logits(logits.clone(), targets.clone()).array();
    assert_close_scalar("bce", got, want, 1e-13);
    check_input_gradient("bce", &logits, |x| {
        binary_cross_entropy_with_logits(x, targets.clone())
    });

    // Logits far past where exp overflows still give the exact softplus values.
    let big = dev.tensor([800.0, -800.0]);
    let labels = dev.tensor([0.0, 0.0]);
    let got = binary_cross_entropy_with_logits(big, labels).array();
    assert_close_scalar(
        "bce at ±800",
        got,
        (logistic_log(800.0) + logistic_log(-800.0)) / 2.0,
        1e-14,
    );
}

/// `-sum(t * log_softmax(x))` per row, mean over rows, in plain f64.
fn cross_entropy_reference<const C: usize>(logits: &[[f64; C]], targets: &[[f64; C]]) -> f64 {
    let mut total = 0.0;
    for (x, t) in logits.iter().zip(targets) {
        let max = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let log_z = max + x.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        total -= x.iter().zip(t).map(|(v, p)| p * (v - log_z)).sum::<f64>();
    }
    total / logits.len() as f64
}

#[test]
fn cross_entropy_with_one_hot_targets_is_the_negative_log_likelihood() {
    let dev = TestDevice::default();
    let logits = dev.tensor([[1.0, 2.0, 0.5, -1.0], [0.2, -0.3, 3.0, 0.0], [0.0; 4]]);
    let one_hot = dev.tensor([
        [0.0, 1.0, 0.0, 0.0],
        [1.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ]);
    let want = cross_entropy_reference(&logits.array(), &one_hot.array());
    let got = cross_entropy(logits.clone(), one_hot.clone()).array();
    assert_close_scalar("cross entropy, one-hot", got, want, 1e-14);
    // The last row is uniform over 4 classes: its share is ln 4.
    let row3 = cross_entropy(
        dev.tensor([[0.0f64; 4]]),
        dev.tensor([[0.0, 0.0, 0.0, 1.0]]),
    );
    assert_close_scalar("uniform row", row3.array(), 4f64.ln(), 1e-14);
    check_input_gradient("cross entropy, one-hot", &logits, |x| {
        cross_entropy(x, one_hot.clone())
    });
}

#[test]
fn cross_entropy_with_probability_targets() {
    let dev = TestDevice::default();
    let logits = dev.tensor([[1.0, 2.0, 0.5], [0.2, -0.3, 3.0]]);
    let probs = dev.tensor([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]]);
    let want = cross_entropy_reference(&logits.array(), &probs.array());
    let got = cross_entropy(logits.clone(), probs.clone()).array();
    assert_close_scalar("cross entropy, soft", got, want, 1e-14);
    check_input_gradient("cross entropy, soft", &logits, |x| {
        cross_entropy(x, probs.clone())
    });
    // Unbatched logits: PyTorch returns the one row's loss.
    let row = cross_entropy(dev.tensor([1.0, 2.0, 0.5]), dev.tensor([0.2, 0.5, 0.3]));
    let want_row = cross_entropy_reference(&[[1.0, 2.0, 0.5]], &[[0.2, 0.5, 0.3]]);
    assert_close_scalar("cross entropy, unbatched", row.array(), want_row, 1e-14);
}

#[test]
fn kl_div_is_batchmean_and_ignores_zero_targets() {
    let dev = TestDevice::default();
    let raw = [[1.0, 2.0, 0.5], [0.2, -0.3, 3.0]];
    let log_probs: [[f64; 3]; 2] = raw.map(|row| {
        let log_z = row.iter().map(|v: &f64| v.exp()).sum::<f64>().ln();
        row.map(|v| v - log_z)
    });
    let targets: [[f64; 3]; 2] = [[0.2, 0.8, 0.0], [0.6, 0.1, 0.3]];
    let mut want = 0.0;
    for (lp, t) in log_probs.iter().zip(&targets) {
        for (l, p) in lp.iter().zip(t) {
            if *p > 0.0 {
                want += p * (p.ln() - l);
            }
        }
    }
    want /= 2.0; // batchmean: divide by the batch, not by the element count
    let input = dev.tensor(log_probs);
    let target = dev.tensor(targets);
    let got = kl_div(input.clone(), target.clone()).array();
    assert!(got.is_finite(), "a zero target must not give NaN");
    assert_close_scalar("kl_div", got, want, 1e-14);
    check_input_gradient("kl_div", &input, |x| kl_div(x, target.clone()));
    // The gradient is exactly -targets / batch.
    let g = kl_div(input.leaky_trace(), target.clone()).backward();
    assert_eq!(g.get(&input).array()[0], [-0.1, -0.4, 0.0]);
}

#[test]
fn hinge_loss_is_the_mean_margin_violation() {
    let dev = TestDevice::default();
    // Margins y * s: 2.0 (no loss), 0.4, -0.7, 1.3 (no loss), -2.5.
    let scores = dev.tensor([[2.0], [0.4], [0.7], [-1.3], [2.5]]);
    let labels = dev.tensor([[1.0], [1.0], [-1.0], [-1.0], [-1.0]]);
    let want = (0.6 + 1.7 + 3.5) / 5.0;
    assert_close_scalar(
        "hinge",
        hinge_loss(scores.clone(), labels.clone()).array(),
        want,
        1e-14,
    );
    check_input_gradient("hinge", &scores, |x| hinge_loss(x, labels.clone()));
    // Only points inside the margin pull, each by -y / B.
    let g = hinge_loss(scores.leaky_trace(), labels.clone()).backward();
    assert_eq!(g.get(&scores).array(), [[0.0], [-0.2], [0.2], [0.0], [0.2]]);
}

#[test]
fn perceptron_loss_counts_only_misclassified_points() {
    let dev = TestDevice::default();
    // Margins y * s: 0.4 and 2.0 (right, however small), -0.7 and -2.5 (wrong).
    let scores = dev.tensor([0.4, 0.7, -2.0, 2.5]);
    let labels = dev.tensor([1.0, -1.0, -1.0, -1.0]);
    let want = (0.7 + 2.5) / 4.0;
    assert_close_scalar(
        "perceptron",
        perceptron_loss(scores.clone(), labels.clone()).array(),
        want,
        1e-14,
    );
    check_input_gradient("perceptron", &scores, |x| {
        perceptron_loss(x, labels.clone())
    });
    let g = perceptron_loss(scores.leaky_trace(), labels.clone()).backward();
    assert_eq!(g.get(&scores).array(), [0.0, 0.25, 0.0, 0.25]);
}

#[test]
fn losses_work_in_f32_too() {
    let dev = TestDevice::default();
    let s = dev.tensor([[0.5f32], [-0.5]]);
    let y = dev.tensor([[1.0f32], [1.0]]);
    assert!((hinge_loss(s.clone(), y.clone()).array() - 1.0).abs() < 1e-6);
    assert!((perceptron_loss(s.clone(), y.clone()).array() - 0.25).abs() < 1e-6);
    let p = dev.tensor([[0.0f32, 1.0]]);
    let lp = dev.tensor([[0.5f32.ln(), 0.5f32.ln()]]);
    assert!((kl_div(lp, p).array() - 2f32.ln()).abs() < 1e-6);
}
