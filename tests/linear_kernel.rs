//! The `linear` kernel (`x W^T + b`, optionally ReLU) against a plain-loop f64 reference and
//! central finite differences, batched (`Const` and `usize` rows) and unbatched, on the CPU
//! kernel and the composed dfdx version.

mod common;

use common::{
    assert_close, assert_close_f32, finite_differences, random_vec, rng, TestDevice, F32,
    F64_TIGHT, FINITE_DIFF,
};
use shapesafe::kernels::linear::{try_linear, try_linear_composed};
use shapesafe::prelude::*;

/// `y[r][o] = b[o] + sum_i x[r][i] * w[o][i]`, then ReLU.
fn reference(
    rows: usize,
    inp: usize,
    out: usize,
    x: &[f64],
    w: &[f64],
    b: &[f64],
    relu: bool,
) -> Vec<f64> {
    let mut y = vec![0.0; rows * out];
    for r in 0..rows {
        for o in 0..out {
            let mut acc = b[o];
            for i in 0..inp {
                acc += x[r * inp + i] * w[o * inp + i];
            }
            y[r * out + o] = if relu { acc.max(0.0) } else { acc };
        }
    }
    y
}

/// Fixed weights of the scalar objective `sum(v * y)`, so each output counts differently.
fn objective_weights(n: usize) -> Vec<f64> {
    (0..n).map(|k| 0.5 + (k % 7) as f64 / 7.0).collect()
}

/// The kernel, or the composed version when `composed`.
fn apply<R: Dim, const IN: usize, const OUT: usize, T: Tape<f64, TestDevice>>(
    composed: bool,
    x: Tensor<(R, Const<IN>), f64, TestDevice, T>,
    w: &Tensor<Rank2<OUT, IN>, f64, TestDevice>,
    b: &Tensor<Rank1<OUT>, f64, TestDevice>,
    relu: bool,
) -> Tensor<(R, Const<OUT>), f64, TestDevice, T> {
    if composed {
        try_linear_composed(x, w, b, relu).unwrap()
    } else {
        try_linear(x, w, b, relu).unwrap()
    }
}

/// Checks the op on `rows` rows of `IN` to `OUT` features, forward against the reference and
/// the gradients of x, W and b against finite differences of the reference, for both
/// the kernel and the composed version.
fn check<const ROWS: usize, const IN: usize, const OUT: usize>(seed: u64, relu: bool) {
    let dev = TestDevice::default();
    let mut r = rng(seed);
    let (xv, wv, bv) = (
        random_vec(&mut r, ROWS * IN),
        random_vec(&mut r, OUT * IN),
        random_vec(&mut r, OUT),
    );
    let v = objective_weights(ROWS * OUT);
    let want = reference(ROWS, IN, OUT, &xv, &wv, &bv, relu);
    let x: Tensor<Rank2<ROWS, IN>, f64, _> = dev.tensor_from_vec(xv.clone(), Default::default());
    let w: Tensor<Rank2<OUT, IN>, f64, _> = dev.tensor_from_vec(wv.clone(), Default::default());
    let b: Tensor<Rank1<OUT>, f64, _> = dev.tensor_from_vec(bv.clone(), Default::default());
    let vt: Tensor<Rank2<ROWS, OUT>, f64, _> = dev.tensor_from_vec(v.clone(), Default::default());
    let loss = |y: Vec<f64>| y.iter().zip(&v).map(|(a, b)| a * b).sum::<f64>();
    let fd_x = finite_differences(&xv, |p| loss(reference(ROWS, IN, OUT, p, &wv, &bv, relu)));
    let fd_w = finite_differences(&wv, |p| loss(reference(ROWS, IN, OUT, &xv, p, &bv, relu)));
    let fd_b = finite_differences(&bv, |p| loss(reference(ROWS, IN, OUT, &xv, &wv, p, relu)));
    for composed in [false, true] {
        let what = format!("{ROWS}x{IN}->{OUT} relu={relu} composed={composed}");
        assert_close(
            &format!("{what}: forward"),
            &apply(composed, x.clone(), &w, &b, relu).as_vec(),
            &want,
            F64_TIGHT,
        );
        let grads = (apply(composed, x.leaky_trace(), &w, &b, relu) * vt.clone())
            .sum()
            .backward();
        assert_close(
            &format!("{what}: grad x"),
            &grads.get(&x).as_vec(),
            &fd_x,
            FINITE_DIFF,
        );
        assert_close(
            &format!("{what}: grad weight"),
            &grads.get(&w).as_vec(),
            &fd_w,
            FINITE_DIFF,
        );
        assert_close(
            &format!("{what}: grad bias"),
            &grads.get(&b).as_vec(),
            &fd_b,
            FINITE_DIFF,
        );
    }
}

#[test]
fn small_layers_match_the_reference_and_finite_differences() {
    check::<5, 7, 3>(1, false);
    check::<5, 7, 3>(2, true);
    check::<1, 1, 1>(3, false);
    check::<4, 16, 1>(4, true);
}

#[test]
fn a_multithreaded_layer_matches_the_reference_and_finite_differences() {
    // 64 * 96 * 80 multiply-adds: above the size where the products use every thread.
    // Without the ReLU: among 5,120 outputs some lie within the differences' step of its kink.
    check::<64, 96, 80>(5, false);
}

#[test]
fn the_weight_and_bias_gradients_accumulate_over_uses() {
    // The same layer applied twice: dfdx sums both uses' gradients.
    let dev = TestDevice::default();
    let mut r = rng(6);
    let w: Tensor<Rank2<3, 4>, f64, _> =
        dev.tensor_from_vec(random_vec(&mut r, 12), Default::default());
    let b: Tensor<Rank1<3>, f64, _> =
        dev.tensor_from_vec(random_vec(&mut r, 3), Default::default());
    let x: Tensor<Rank2<2, 4>, f64, _> =
        dev.tensor_from_vec(random_vec(&mut r, 8), Default::default());
    let twice = |f: &dyn Fn(_, &_, &_) -> _| {
        let g = x.leaky_trace();
        let y1: Tensor<Rank2<2, 3>, f64, _, _> = f(g.with_empty_tape(), &w, &b);
        let y2: Tensor<Rank2<2, 3>, f64, _, _> = f(g, &w, &b);
        let grads = (y1.sum() + y2.sum() * 2.0).backward();
        [grads.get(&w).as_vec(), grads.get(&b).as_vec()]
    };
    let kernel = twice(&|x, w, b| try_linear(x, w, b, false).unwrap());
    let composed = twice(&|x, w, b| try_linear_composed(x, w, b, false).unwrap());
    assert_close("weight", &kernel[0], &composed[0], F64_TIGHT);
    assert_close("bias", &kernel[1], &composed[1], F64_TIGHT);
    assert_close("bias is 3 x 2 rows", &kernel[1], &[6.0; 3], F64_TIGHT);
}

#[test]
fn linear_layers_take_const_usize_and_unbatched_input() {
    let dev = TestDevice::default();
    let mut r = rng(7);
    let layer = dev.build_module::<Linear<6, 4>, f64>();
    let (wv, bv) = (layer.weight.as_vec(), layer.bias.as_vec());
    let xv = random_vec(&mut r, 3 * 6);
    let want = reference(3, 6, 4, &xv, &wv, &bv, false);
    let fixed: Tensor<Rank2<3, 6>, f64, _> = dev.tensor_from_vec(xv.clone(), Default::default());
    assert_close(
        "Const batch",
        &layer.forward(fixed).as_vec(),
        &want,
        F64_TIGHT,
    );
    let dynamic: Tensor<(usize, Const<6>), f64, _> = dev.tensor_from_vec(xv.clone(), (3, Const));
    assert_close(
        "usize batch",
        &layer.forward(dynamic).as_vec(),
        &want,
        F64_TIGHT,
    );
    let one: Tensor<Rank1<6>, f64, _> = dev.tensor_from_vec(xv[6..12].to_vec(), Default::default());
    assert_close(
        "unbatched",
        &layer.forward(one).as_vec(),
        &want[4..8],
        F64_TIGHT,
    );
    // A (B, S, F) sequence is the same rows.
    let seq: Tensor<Rank3<1, 3, 6>, f64, _> = dev.tensor_from_vec(xv.clone(), Default::default());
    assert_close("sequence", &layer.forward(seq).as_vec(), &want, F64_TIGHT);
    // The input gradient of the usize-batched and unbatched forms.
    let dynamic: Tensor<(usize, Const<6>), f64, _> = dev.tensor_from_vec(xv.clone(), (3, Const));
    let g = layer
        .forward(dynamic.leaky_trace())
        .sum()
        .backward()
        .get(&dynamic)
        .as_vec();
    let col_sums: Vec<f64> = (0..6)
        .map(|i| (0..4).map(|o| wv[o * 6 + i]).sum())
        .collect();
    assert_close("usize batch grad", &g, &col_sums.repeat(3), F64_TIGHT);
}

#[test]
fn a_transposed_input_is_read_as_its_shape_says() {
    // A permuted (non-contiguous) input must give the same result as its contiguous copy.
    let dev = TestDevice::default();
    let mut r = rng(8);
    let layer = dev.build_module::<Linear<3, 2>, f64>();
    let xt: Tensor<Rank2<3, 4>, f64, _> =
        dev.tensor_from_vec(random_vec(&mut r, 12), Default::default());
    let x = xt.clone().permute::<Rank2<4, 3>, _>();
    let want = layer.forward(dev.tensor_from_vec(x.as_vec(), Rank2::<4, 3>::default()));
    assert_close(
        "permuted",
        &layer.forward(x).as_vec(),
        &want.as_vec(),
        F64_TIGHT,
    );
}

#[test]
fn f32_matches_the_f64_reference() {
    let dev = TestDevice::default();
    let mut r = rng(9);
    let (xv, wv, bv) = (
        random_vec(&mut r, 32 * 50),
        random_vec(&mut r, 20 * 50),
        random_vec(&mut r, 20),
    );
    let f = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
    let x: Tensor<Rank2<32, 50>, f32, _> = dev.tensor_from_vec(f(&xv), Default::default());
    let w: Tensor<Rank2<20, 50>, f32, _> = dev.tensor_from_vec(f(&wv), Default::default());
    let b: Tensor<Rank1<20>, f32, _> = dev.tensor_from_vec(f(&bv), Default::default());
    let want = reference(32, 50, 20, &xv, &wv, &bv, true);
    assert_close_f32(
        "f32",
        &try_linear(x, &w, &b, true).unwrap().as_vec(),
        &want,
        F32,
    );
}

#[test]
fn training_is_bit_for_bit_repeatable() {
    let run = || {
        let dev = TestDevice::seed_from_u64(3);
        let mut model = dev.build_module::<(Linear<96, 128>, ReLU, Linear<128, 10>), f32>();
        let x: Tensor<Rank2<64, 96>, f32, _> = dev.sample_normal();
        let mut opt = Sgd::new(&model, SgdConfig::default());
        for _ in 0..3 {
            let y = model.forward(x.leaky_trace());
            let g = y.square().mean().backward();
            opt.update(&mut model, &g).unwrap();
        }
        model.2.weight.as_vec()
    };
    let (a, b) = (run(), run());
    assert!(a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()));
}
