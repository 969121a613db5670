//! The attention and layer-norm kernels against plain-loop f64 references and central
//! finite differences (inputs and every parameter), with masks, `Const` and `usize` dims,
//! and against the composed dfdx versions.

mod common;

use common::{assert_close, finite_differences, random_vec, rng, TestDevice, F64_TIGHT};
use shapesafe::kernels::attention::try_attention;
use shapesafe::kernels::layer_norm::try_add_layer_norm;
use shapesafe::prelude::*;

/// Central differences through a softmax or a normalisation: good to about 1e-8.
const FD: common::Tolerance = common::Tolerance {
    abs: 1e-7,
    rel: 1e-6,
};

/// Plain-loop multi-head attention: `q (b, s1, w)`, `k`, `v (b, s2, w)`.
#[allow(clippy::too_many_arguments)]
fn attention_reference(
    (b, s1, s2, w, heads): (usize, usize, usize, usize, usize),
    q: &[f64],
    k: &[f64],
    v: &[f64],
    pad: Option<&[bool]>,
    causal: bool,
) -> Vec<f64> {
    let hd = w / heads;
    let mut out = vec![0.0; b * s1 * w];
    for n in 0..b {
        for h in 0..heads {
            for i in 0..s1 {
                let scores: Vec<f64> = (0..s2)
                    .map(|j| {
                        let masked = pad.is_some_and(|m| m[n * s2 + j]) || (causal && j > i);
                        if masked {
                            f64::NEG_INFINITY
                        } else {
                            (0..hd)
                                .map(|c| {
                                    q[(n * s1 + i) * w + h * hd + c]
                                        * k[(n * s2 + j) * w + h * hd + c]
                                })
                                .sum::<f64>()
                                / (hd as f64).sqrt()
                        }
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let sum: f64 = e.iter().sum();
                for c in 0..hd {
                    out[(n * s1 + i) * w + h * hd + c] = (0..s2)
                        .map(|j| e[j] / sum * v[(n * s2 + j) * w + h * hd + c])
                        .sum();
                }
            }
        }
    }
    out
}

/// The tape of a tensor whose gradient is wanted.
type Taped = OwnedTape<f64, TestDevice>;

fn weights(n: usize) -> Vec<f64> {
    (0..n).map(|k| 0.5 + (k % 5) as f64 / 5.0).collect()
}

fn check_attention<const B: usize, const S1: usize, const S2: usize, const W: usize>(
    heads: usize,
    pad: Option<[[bool; S2]; B]>,
    causal: bool,
    seed: u64,
) {
    let dev = TestDevice::default();
    let mut r = rng(seed);
    let (qv, kv, vv) = (
        random_vec(&mut r, B * S1 * W),
        random_vec(&mut r, B * S2 * W),
        random_vec(&mut r, B * S2 * W),
    );
    let flat_pad: Option<Vec<bool>> = pad.map(|p| p.iter().flatten().copied().collect());
    let dims = (B, S1, S2, W, heads);
    let want = attention_reference(dims, &qv, &kv, &vv, flat_pad.as_deref(), causal);
    let q: Tensor<Rank3<B, S1, W>, f64, _> = dev.tensor_from_vec(qv.clone(), Default::default());
    let k: Tensor<Rank3<B, S2, W>, f64, _> = dev.tensor_from_vec(kv.clone(), Default::default());
    let v: Tensor<Rank3<B, S2, W>, f64, _> = dev.tensor_from_vec(vv.clone(), Default::default());
    let mask = pad.map(|p| dev.tensor(p));
    let what = format!(
        "B{B} S1 {S1} S2 {S2} W{W} heads {heads} pad {} causal {causal}",
        pad.is_some()
    );
    let y = try_attention(
        q.clone(),
        k.clone(),
        v.clone(),
        heads,
        mask.as_ref(),
        causal,
    )
    .unwrap()
    .expect("the CPU kernel applies");
    assert_close(&format!("{what}: forward"), &y.as_vec(), &want, F64_TIGHT);

    let ow = weights(B * S1 * W);
    let owt: Tensor<Rank3<B, S1, W>, f64, _> = dev.tensor_from_vec(ow.clone(), Default::default());
    let loss = |y: Vec<f64>| y.iter().zip(&ow).map(|(a, b)| a * b).sum::<f64>();
    let grads = (try_attention(
        q.leaky_trace(),
        k.retaped::<Taped>(),
        v.retaped::<Taped>(),
        heads,
        mask.as_ref(),
        causal,
    )
    .unwrap()
    .unwrap()
        * owt.clone())
    .sum()
    .backward();
    let p = flat_pad.as_deref();
    let fd_q = finite_differences(&qv, |x| {
        loss(attention_reference(dims, x, &kv, &vv, p, causal))
    });
    assert_close(
        &format!("{what}: grad q"),
        &grads.get(&q).as_vec(),
        &fd_q,
        FD,
    );
    let grads = (try_attention(
        q.retaped::<Taped>(),
        k.leaky_trace(),
        v.retaped::<Taped>(),
        heads,
        mask.as_ref(),
        causal,
    )
    .unwrap()
    .unwrap()
        * owt)
        .sum()
        .backward();
    let fd_k = finite_differences(&kv, |x| {
        loss(attention_reference(dims, &qv, x, &vv, p, causal))
    });
    let fd_v = finite_differences(&vv, |x| {
        loss(attention_reference(dims, &qv, &kv, x, p, causal))
    });
    assert_close(
        &format!("{what}: grad k"),
        &grads.get(&k).as_vec(),
        &fd_k,
        FD,
    );
    assert_close(
        &format!("{what}: grad v"),
        &grads.get(&v).as_vec(),
        &fd_v,
        FD,
    );
}

#[test]
fn attention_matches_the_reference_and_finite_differences() {
    check_attention::<2, 3, 4, 4>(2, None, false, 1);
    check_attention::<2, 4, 4, 6>(3, None, true, 2);
    check_attention::<2, 3, 4, 4>(
        1,
        Some([[false, false, true, false], [false, true, true, false]]),
        false,
        3,
    );
    check_attention::<1, 5, 5, 8>(2, Some([[false, false, false, false, true]]), true, 4);
    check_attention::<3, 2, 6, 4>(4, None, false, 5);
}

#[test]
fn a_fully_masked_query_gives_nan_as_pytorch() {
    let dev = TestDevice::default();
    let q: Tensor<Rank3<1, 1, 2>, f64, _> = dev.ones();
    let kv: Tensor<Rank3<1, 2, 2>, f64, _> = dev.ones();
    let all = dev.tensor([[true, true]]);
    let y = try_attention(q, kv.clone(), kv, 1, Some(&all), false)
        .unwrap()
        .unwrap();
    assert!(y.as_vec().iter().all(|v| v.is_nan()));
}

#[test]
fn usize_lengths_and_the_same_tensor_as_query_key_and_value() {
    // Self-attention of one tensor: its gradient sums the query, key and value paths.
    let dev = TestDevice::default();
    let mut r = rng(6);
    let xv = random_vec(&mut r, 2 * 3 * 4);
    let x: Tensor<(usize, usize, Const<4>), f64, _> =
        dev.tensor_from_vec(xv.clone(), (2, 3, Const));
    let y = try_attention(
        x.leaky_trace(),
        x.retaped::<Taped>(),
        x.retaped::<Taped>(),
        2,
        None,
        false,
    )
    .unwrap()
    .unwrap();
    let want = attention_reference((2, 3, 3, 4, 2), &xv, &xv, &xv, None, false);
    assert_close("forward", &y.as_vec(), &want, F64_TIGHT);
    let g = y.sum().backward().get(&x).as_vec();
    let fd = finite_differences(&xv, |p| {
        attention_reference((2, 3, 3, 4, 2), p, p, p, None, false)
            .iter()
            .sum()
    });
    assert_close("grad of one tensor used three times", &g, &fd, FD);
}

/// Outputs, input gradient and every parameter gradient of `layer` on `x` with `mask`.
fn encoder_run<const NF: bool>(
    layer: &shapesafe::nn::modules::TransformerEncoderLayer<8, 2, 16, NF, f64, TestDevice>,
    x: &Tensor<Rank3<2, 5, 8>, f64, TestDevice>,
    mask: Option<&Tensor<Rank2<2, 5>, bool, TestDevice>>,
    causal: bool,
) -> Vec<Vec<f64>> {
    let y = layer
        .try_forward_masked(x.leaky_trace(), mask, causal)
        .unwrap();
    let mut out = vec![y.as_vec()];
    let w: Tensor<Rank3<2, 5, 8>, f64, _> =
        x.device().tensor_from_vec(weights(80), Default::default());
    let grads = (y * w).sum().backward();
    out.push(grads.get(x).as_vec());
    let a = &layer.self_attn;
    out.push(grads.get(&a.in_proj_weight).as_vec());
    out.push(grads.get(&a.in_proj_bias).as_vec());
    out.push(grads.get(&a.out_proj.weight).as_vec());
    out.push(grads.get(&layer.linear1.weight).as_vec());
    out.push(grads.get(&layer.linear2.bias).as_vec());
    out.push(grads.get(&layer.norm1.weight).as_vec());
    out.push(grads.get(&layer.norm2.bias).as_vec());
    out
}

#[test]
fn encoder_layers_on_the_kernels_equal_their_composed_versions() {
    use shapesafe::kernels::with_composed_ops;
    let dev = TestDevice::seed_from_u64(2);
    let x: Tensor<Rank3<2, 5, 8>, f64, _> = dev.sample_normal();
    let pad = dev.tensor([[false, false, false, true, true], [false; 5]]);
    let post = dev.build_module::<TransformerEncoderLayer<8, 2, 16>, f64>();
    let pre = dev.build_module::<TransformerEncoderLayer<8, 2, 16, true>, f64>();
    for (mask, causal) in [(None, false), (Some(&pad), false), (Some(&pad), true)] {
        let fast = encoder_run(&post, &x, mask, causal);
        let slow = with_composed_ops(|| encoder_run(&post, &x, mask, causal));
        for (k, (a, b)) in fast.iter().zip(&slow).enumerate() {
            assert_close(&format!("post-norm, tensor {k}"), a, b, F64_TIGHT);
        }
        let fast = encoder_run(&pre, &x, mask, causal);
        let slow = with_composed_ops(|| encoder_run(&pre, &x, mask, causal));
        for (k, (a, b)) in fast.iter().zip(&slow).enumerate() {
            assert_close(&format!("pre-norm, tensor {k}"), a, b, F64_TIGHT);
        }
    }
}

/// Plain-loop layer norm of `a + b` over rows of `f`.
fn layer_norm_reference(
    f: usize,
    a: &[f64],
    b: &[f64],
    w: &[f64],
    c: &[f64],
    eps: f64,
) -> Vec<f64> {
    let mut y = vec![0.0; a.len()];
    for r in 0..a.len() / f {
        let s: Vec<f64> = (0..f).map(|i| a[r * f + i] + b[r * f + i]).collect();
        let mean = s.iter().sum::<f64>() / f as f64;
        let var = s.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / f as f64;
        for i in 0..f {
            y[r * f + i] = (s[i] - mean) / (var + eps).sqrt() * w[i] + c[i];
        }
    }
    y
}

#[test]
fn add_layer_norm_matches_the_reference_and_finite_differences() {
    const R: usize = 4;
    const F: usize = 6;
    let dev = TestDevice::default();
    let mut r = rng(7);
    let (av, bv, wv, cv) = (
        random_vec(&mut r, R * F),
        random_vec(&mut r, R * F),
        random_vec(&mut r, F),
        random_vec(&mut r, F),
    );
    let eps = 1e-5;
    let a: Tensor<Rank2<R, F>, f64, _> = dev.tensor_from_vec(av.clone(), Default::default());
    let b: Tensor<(usize, Const<F>), f64, _> = dev.tensor_from_vec(bv.clone(), (R, Const));
    let w: Tensor<Rank1<F>, f64, _> = dev.tensor_from_vec(wv.clone(), Default::default());
    let c: Tensor<Rank1<F>, f64, _> = dev.tensor_from_vec(cv.clone(), Default::default());
    let want = layer_norm_reference(F, &av, &bv, &wv, &cv, eps);
    let a_dyn: Tensor<(usize, Const<F>), f64, _> = dev.tensor_from_vec(av.clone(), (R, Const));
    let y = try_add_layer_norm(a_dyn.clone(), Some(b.clone()), &w, &c, eps).unwrap();
    assert_close("forward", &y.as_vec(), &want, F64_TIGHT);
    // Without the sum: b = 0.
    let alone =
        try_add_layer_norm::<_, F, _, _, NoneTape, NoneTape>(a.clone(), None, &w, &c, eps).unwrap();
    let zeros = vec![0.0; R * F];
    assert_close(
        "no residual",
        &alone.as_vec(),
        &layer_norm_reference(F, &av, &zeros, &wv, &cv, eps),
        F64_TIGHT,
    );

    let ow = weights(R * F);
    let owt: Tensor<(usize, Const<F>), f64, _> = dev.tensor_from_vec(ow.clone(), (R, Const));
    let loss = |y: Vec<f64>| y.iter().zip(&ow).map(|(p, q)| p * q).sum::<f64>();
    let grads = (try_add_layer_norm(a_dyn.leaky_trace(), Some(b.clone()), &w, &c, eps).unwrap()
        * owt)
        .sum()
        .backward();
    let fd_a = finite_differences(&av, |x| {
        loss(layer_norm_reference(F, x, &bv, &wv, &cv, eps))
    });
    let fd_b = finite_differences(&bv, |x| {
        loss(layer_norm_reference(F, &av, x, &wv, &cv, eps))
    });
    let fd_w = finite_differences(&wv, |x| {
        loss(layer_norm_reference(F, &av, &bv, x, &cv, eps))
    });
    let fd_c = finite_differences(&cv, |x| {
        loss(layer_norm_reference(F, &av, &bv, &wv, x, eps))
    });
    assert_close("grad a", &grads.get(&a_dyn).as_vec(), &fd_a, FD);
    assert_close("grad b (the residual)", &grads.get(&b).as_vec(), &fd_b, FD);
    assert_close("grad weight", &grads.get(&w).as_vec(), &fd_w, FD);
    assert_close("grad bias", &grads.get(&c).as_vec(), &fd_c, FD);
}

#[test]
fn encoder_training_is_bit_for_bit_repeatable() {
    let run = || {
        let dev = TestDevice::seed_from_u64(4);
        let mut model = dev.build_module::<TransformerEncoder<16, 4, 32, 2>, f32>();
        for layer in &mut model.layers {
            layer.dropout = 0.0;
        }
        let x: Tensor<Rank3<4, 6, 16>, f32, _> = dev.sample_normal();
        let mut opt = Adam::new(&model, AdamConfig::default());
        for _ in 0..3 {
            let g = model
                .forward_mut(x.leaky_trace())
                .square()
                .mean()
                .backward();
            opt.update(&mut model, &g).unwrap();
        }
        model.layers[1].linear2.weight.as_vec()
    };
    let (a, b) = (run(), run());
    assert!(a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()));
}
