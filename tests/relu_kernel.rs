//! The `ReLU` layer's CPU kernel against a plain-loop f64 reference and central finite
//! differences, batched (`Const` and `usize` rows) and unbatched, taped and untaped, and
//! against dfdx's own `relu` (the version other devices run).

mod common;

use common::{
    assert_close, finite_differences, random_vec, rng, TestDevice, F64_TIGHT, FINITE_DIFF,
};
use shapesafe::kernels::with_composed_ops;
use shapesafe::prelude::*;

/// Inputs kept at least 0.05 away from the kink at 0, where finite differences of width
/// 1e-6 would straddle it.
fn inputs(seed: u64, n: usize) -> Vec<f64> {
    random_vec(&mut rng(seed), n)
        .into_iter()
        .map(|v| if v.abs() < 0.05 { v + 0.1 } else { v })
        .collect()
}

fn reference(x: &[f64]) -> Vec<f64> {
    x.iter().map(|&v| if v > 0.0 { v } else { 0.0 }).collect()
}

/// Fixed weights of the scalar objective `sum(v * y)`.
fn objective_weights(n: usize) -> Vec<f64> {
    (0..n).map(|k| 0.5 + (k % 5) as f64 / 5.0).collect()
}

#[test]
fn batched_and_unbatched_match_the_reference_and_finite_differences() {
    let dev = TestDevice::default();
    // 4 x 37: the vector loop and its remainder.
    let xv = inputs(1, 4 * 37);
    let v = objective_weights(xv.len());
    let want = reference(&xv);
    let fd = finite_differences(&xv, |p| {
        reference(p).iter().zip(&v).map(|(a, b)| a * b).sum()
    });
    for composed in [false, true] {
        let run = |f: &dyn Fn() -> (Vec<f64>, Vec<f64>)| {
            if composed {
                with_composed_ops(f)
            } else {
                f()
            }
        };
        let what = |form: &str| format!("{form}, composed={composed}");
        let (y, g) = run(&|| {
            let x: Tensor<Rank2<4, 37>, f64, _> =
                dev.tensor_from_vec(xv.clone(), Default::default());
            let vt: Tensor<Rank2<4, 37>, f64, _> =
                dev.tensor_from_vec(v.clone(), Default::default());
            let y = ReLU.forward(x.leaky_trace());
            let values = y.as_vec();
            let grads = (y * vt).sum().backward();
            (values, grads.get(&x).as_vec())
        });
        assert_close(&what("Const batch forward"), &y, &want, F64_TIGHT);
        assert_close(&what("Const batch gradient"), &g, &fd, FINITE_DIFF);

        let (y, g) = run(&|| {
            let x: Tensor<(usize, Const<37>), f64, _> = dev.tensor_from_vec(xv.clone(), (4, Const));
            let vt: Tensor<(usize, Const<37>), f64, _> = dev.tensor_from_vec(v.clone(), (4, Const));
            let y = ReLU.forward(x.leaky_trace());
            let values = y.as_vec();
            let grads = (y * vt).sum().backward();
            (values, grads.get(&x).as_vec())
        });
        assert_close(&what("usize batch forward"), &y, &want, F64_TIGHT);
        assert_close(&what("usize batch gradient"), &g, &fd, FINITE_DIFF);

        let (y, g) = run(&|| {
            let x: Tensor<Rank1<37>, f64, _> =
                dev.tensor_from_vec(xv[..37].to_vec(), Default::default());
            let vt: Tensor<Rank1<37>, f64, _> =
                dev.tensor_from_vec(v[..37].to_vec(), Default::default());
            let y = ReLU.forward(x.leaky_trace());
            let values = y.as_vec();
            let grads = (y * vt).sum().backward();
            (values, grads.get(&x).as_vec())
        });
        assert_close(&what("unbatched forward"), &y, &want[..37], F64_TIGHT);
        assert_close(&what("unbatched gradient"), &g, &fd[..37], FINITE_DIFF);

        let untaped = run(&|| {
            let x: Tensor<Rank2<4, 37>, f64, _> =
                dev.tensor_from_vec(xv.clone(), Default::default());
            (ReLU.forward(x).as_vec(), Vec::new())
        });
        assert_close(&what("untaped forward"), &untaped.0, &want, F64_TIGHT);
    }
}

#[test]
fn f32_gradients_accumulate_over_uses_and_read_a_transposed_input() {
    // x used twice (ReLU of x and of its transpose): both uses' gradients add up, and the
    // permuted view is read as its shape says.
    let dev = TestDevice::default();
    let xv: Vec<f32> = inputs(2, 6 * 5).into_iter().map(|v| v as f32).collect();
    let x: Tensor<Rank2<6, 5>, f32, _> = dev.tensor_from_vec(xv.clone(), Default::default());
    let g = x.leaky_trace();
    let a = ReLU.forward(g.with_empty_tape()).sum();
    let b = ReLU.forward(g.permute::<Rank2<5, 6>, _>()).sum() * 2.0;
    let grads = (a + b).backward();
    let want: Vec<f64> = xv
        .iter()
        .map(|&v| if v > 0.0 { 3.0 } else { 0.0 })
        .collect();
    let got: Vec<f64> = grads.get(&x).as_vec().into_iter().map(f64::from).collect();
    assert_close("x used twice", &got, &want, F64_TIGHT);
}
