//! The fused cross-entropy against a plain-loop f64 reference, central finite differences
//! and dfdx's composition, for one-hot and soft targets, 2-D and 3-D logits, `Const` and
//! `usize` rows.

mod common;

use common::{assert_close, assert_close_scalar, finite_differences, random_vec, rng, TestDevice};
use shapesafe::kernels::with_composed_ops;
use shapesafe::nn::loss::cross_entropy;
use shapesafe::prelude::*;

/// `mean over rows of -sum_j t_j * log_softmax(x)_j`.
fn reference(classes: usize, x: &[f64], t: &[f64]) -> f64 {
    let rows = x.len() / classes;
    let mut total = 0.0;
    for r in 0..rows {
        let xr = &x[r * classes..(r + 1) * classes];
        let max = xr.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + xr.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        total += (0..classes)
            .map(|j| -t[r * classes + j] * (xr[j] - lse))
            .sum::<f64>();
    }
    total / rows as f64
}

/// Soft targets: each row a distribution (or, with `one_hot`, a single 1).
fn targets(rows: usize, classes: usize, one_hot: bool, seed: u64) -> Vec<f64> {
    let mut r = rng(seed);
    let mut t = random_vec(&mut r, rows * classes);
    for (i, row) in t.chunks_mut(classes).enumerate() {
        if one_hot {
            row.iter_mut().for_each(|v| *v = 0.0);
            row[(i * 7 + 3) % classes] = 1.0;
        } else {
            row.iter_mut().for_each(|v| *v = v.abs() + 0.1);
            let s: f64 = row.iter().sum();
            row.iter_mut().for_each(|v| *v /= s);
        }
    }
    t
}

#[test]
fn two_dimensional_logits_match_the_reference_finite_differences_and_dfdx() {
    const B: usize = 5;
    const C: usize = 7;
    let dev = TestDevice::default();
    for (one_hot, seed) in [(true, 1), (false, 2)] {
        let mut r = rng(seed + 10);
        let xv: Vec<f64> = random_vec(&mut r, B * C).iter().map(|v| 4.0 * v).collect();
        let tv = targets(B, C, one_hot, seed);
        let x: Tensor<Rank2<B, C>, f64, _> = dev.tensor_from_vec(xv.clone(), Default::default());
        let t: Tensor<Rank2<B, C>, f64, _> = dev.tensor_from_vec(tv.clone(), Default::default());
        let loss = cross_entropy(x.leaky_trace(), t.clone());
        assert_close_scalar("loss", loss.array(), reference(C, &xv, &tv), 1e-12);
        let g = loss.backward().get(&x).as_vec();
        let fd = finite_differences(&xv, |p| reference(C, p, &tv));
        assert_close("grad", &g, &fd, common::FINITE_DIFF);
        let composed = with_composed_ops(|| cross_entropy(x.leaky_trace(), t.clone()));
        assert_close_scalar(
            "dfdx's loss",
            composed.array(),
            reference(C, &xv, &tv),
            1e-12,
        );
        let gc = composed.backward().get(&x).as_vec();
        assert_close("dfdx's grad", &g, &gc, common::F64_TIGHT);
    }
}

#[test]
fn sequences_of_logits_and_usize_rows() {
    // (B, S, C): the mean runs over every row of every sequence.
    let dev = TestDevice::default();
    let mut r = rng(3);
    let xv = random_vec(&mut r, 2 * 3 * 4);
    let tv = targets(6, 4, false, 4);
    let x: Tensor<(usize, Const<3>, Const<4>), f64, _> =
        dev.tensor_from_vec(xv.clone(), (2, Const, Const));
    let t: Tensor<(usize, Const<3>, Const<4>), f64, _> =
        dev.tensor_from_vec(tv.clone(), (2, Const, Const));
    let loss = cross_entropy(x.leaky_trace(), t.clone());
    assert_close_scalar("loss", loss.array(), reference(4, &xv, &tv), 1e-12);
    let g = (loss * 3.0).backward().get(&x).as_vec();
    let fd: Vec<f64> = finite_differences(&xv, |p| reference(4, p, &tv))
        .iter()
        .map(|v| 3.0 * v)
        .collect();
    assert_close("grad through a scaled loss", &g, &fd, common::FINITE_DIFF);
    // One unbatched row of classes.
    let one: Tensor<Rank1<4>, f64, _> = dev.tensor_from_vec(xv[..4].to_vec(), Default::default());
    let tone: Tensor<Rank1<4>, f64, _> = dev.tensor_from_vec(tv[..4].to_vec(), Default::default());
    assert_close_scalar(
        "one row",
        cross_entropy(one, tone).array(),
        reference(4, &xv[..4], &tv[..4]),
        1e-12,
    );
}

#[test]
fn f32_and_extreme_logits_stay_finite() {
    let dev = TestDevice::default();
    let x = dev.tensor([[1000.0f32, -1000.0, 0.0]]);
    let t = dev.tensor([[0.0f32, 1.0, 0.0]]);
    let loss = cross_entropy(x.leaky_trace(), t);
    assert!((loss.array() - 2000.0).abs() < 1e-2, "{}", loss.array());
    let g = loss.backward().get(&x).as_vec();
    assert!(g.iter().all(|v| v.is_finite()));
    assert!((g[0] - 1.0).abs() < 1e-6 && (g[1] + 1.0).abs() < 1e-6);
}
