//! The Transformer decoder layer against PyTorch (tests/pytorch/make_decoder_golden.py): outputs
//! and gradients of `sum(out * R)` with respect to the target, the memory and every parameter,
//! post- and pre-norm, with and without a causal target mask and a memory padding mask, a
//! target of length 4 attending to a memory of length 5; in f64 to 1e-10 and f32 to 1e-5.

mod common;

use common::golden::{check_param_grads, load, r_times};
use common::{assert_close, assert_close_f32, finite_differences, TestDevice, Tolerance};
use shapesafe::prelude::*;
use std::collections::BTreeMap;

const D: usize = 8;
const HEADS: usize = 2;
const FF: usize = 16;
const T: usize = 4;
const S: usize = 5;
const B: usize = 2;

/// PyTorch and ours, both in f64, differ only in summation order.
const F64_MATCH: Tolerance = common::F64_TIGHT;
/// Ours in f32 against PyTorch in f64.
const F32_MATCH: Tolerance = common::F32_VS_F64;

type Post = TransformerDecoderLayer<D, HEADS, FF>;
type Pre = TransformerDecoderLayer<D, HEADS, FF, true>;

fn golden() -> BTreeMap<String, Vec<f64>> {
    common::golden::read("tests/pytorch/decoder_golden.safetensors")
}

fn weights(norm: &str) -> String {
    format!("tests/pytorch/decoder_{norm}_weights.safetensors")
}

fn memory_pad(g: &BTreeMap<String, Vec<f64>>) -> Tensor<Rank2<B, S>, bool, TestDevice> {
    let values: Vec<bool> = g["memory_pad"].iter().map(|&v| v != 0.0).collect();
    TestDevice::default().tensor_from_vec(values, (Const, Const))
}

/// Compares one case's output, input gradients and parameter gradients with PyTorch's.
fn check_case<const NORM_FIRST: bool>(norm: &str, masked: bool) {
    let g = golden();
    let case = if masked {
        format!("{norm}_masked")
    } else {
        norm.to_string()
    };
    let dev = TestDevice::default();
    let layer = load::<TransformerDecoderLayer<D, HEADS, FF, NORM_FIRST>, f64>(&weights(norm));
    let tgt: Tensor<Rank3<B, T, D>, f64, _> =
        dev.tensor_from_vec(g[&format!("{case}.input0")].clone(), Default::default());
    let memory: Tensor<Rank3<B, S, D>, f64, _> =
        dev.tensor_from_vec(g[&format!("{case}.input1")].clone(), Default::default());
    // The memory keeps no tape of its own (as in dfdx's Transformer, the target carries it);
    // its gradient lands on its id in the same (leaky) gradients.
    let tgt_traced = tgt.leaky_trace();
    let pad = memory_pad(&g);
    let y = if masked {
        layer
            .try_forward_masked(tgt_traced, memory.clone(), None, Some(&pad), true)
            .unwrap()
    } else {
        layer.forward((tgt_traced, memory.clone()))
    };
    let expected = &g[&format!("{case}.output")];
    assert_close(&format!("{case} output"), &y.as_vec(), expected, F64_MATCH);
    let grads = r_times(y, &g[&format!("{case}.r")]).backward();
    assert_close(
        &format!("{case} tgt grad"),
        &grads.get(&tgt).as_vec(),
        &g[&format!("{case}.input0_grad")],
        F64_MATCH,
    );
    assert_close(
        &format!("{case} memory grad"),
        &grads.get(&memory).as_vec(),
        &g[&format!("{case}.input1_grad")],
        F64_MATCH,
    );
    check_param_grads(&case, &layer, &grads, &g, F64_MATCH);

    // f32 against the same reference.
    let layer32 = load::<TransformerDecoderLayer<D, HEADS, FF, NORM_FIRST>, f32>(&weights(norm));
    let to32 = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    let tgt32: Tensor<Rank3<B, T, D>, f32, _> =
        dev.tensor_from_vec(to32(&tgt.as_vec()), Default::default());
    let memory32: Tensor<Rank3<B, S, D>, f32, _> =
        dev.tensor_from_vec(to32(&memory.as_vec()), Default::default());
    let pad = memory_pad(&g);
    let y32 = if masked {
        layer32
            .try_forward_masked(tgt32, memory32, None, Some(&pad), true)
            .unwrap()
    } else {
        layer32.forward((tgt32, memory32))
    };
    assert_close_f32(&format!("{case} f32"), &y32.as_vec(), expected, F32_MATCH);
}

#[test]
fn decoder_layer_post_norm_matches_pytorch() {
    check_case::<false>("post", false);
}

#[test]
fn decoder_layer_post_norm_with_masks_matches_pytorch() {
    check_case::<false>("post", true);
}

#[test]
fn decoder_layer_norm_first_matches_pytorch() {
    check_case::<true>("pre", false);
}

#[test]
fn decoder_layer_norm_first_with_masks_matches_pytorch() {
    check_case::<true>("pre", true);
}

#[test]
fn decoder_parameter_count_and_names_match_pytorch() {
    let g = golden();
    let layer = TestDevice::default().build_module::<Post, f64>();
    let pytorch: usize = g
        .keys()
        .filter(|k| k.starts_with("post.grad."))
        .map(|k| g[k].len())
        .sum();
    assert_eq!(layer.num_trainable_params(), pytorch);
    assert_eq!(<Post as ShapeInfer<Rank2<T, D>>>::PARAMS, pytorch);
    assert_eq!(<Pre as ShapeInfer<Rank2<T, D>>>::PARAMS, pytorch);
}

/// The causal mask: changing a later target position leaves earlier outputs unchanged.
#[test]
fn causal_target_positions_do_not_see_the_future() {
    let dev = TestDevice::seed_from_u64(3);
    let layer = dev.build_module::<Post, f64>();
    let tgt: Tensor<Rank3<1, T, D>, f64, _> = dev.sample_normal();
    let memory: Tensor<Rank3<1, S, D>, f64, _> = dev.sample_normal();
    let y = layer
        .try_forward_masked(tgt.clone(), memory.clone(), None, None, true)
        .unwrap()
        .as_vec();
    let mut changed = tgt.as_vec();
    for v in &mut changed[(T - 1) * D..] {
        *v += 1.0;
    }
    let tgt2: Tensor<Rank3<1, T, D>, f64, _> = dev.tensor_from_vec(changed, Default::default());
    let y2 = layer
        .try_forward_masked(tgt2, memory, None, None, true)
        .unwrap()
        .as_vec();
    assert_eq!(y[..(T - 1) * D], y2[..(T - 1) * D]);
    assert_ne!(y[(T - 1) * D..], y2[(T - 1) * D..]);
}

/// Central differences in f64 on a small layer with runtime lengths: the gradients of
/// `sum(y * r)` for the target, the memory and two of the parameters.
#[test]
fn decoder_gradients_match_finite_differences() {
    let dev = TestDevice::seed_from_u64(5);
    let layer = dev.build_module::<TransformerDecoderLayer<4, 2, 6>, f64>();
    let (t, s) = (3usize, 2usize);
    let tgt: Tensor<(usize, usize, Const<4>), f64, _> = dev.sample_normal_like(&(1, t, Const));
    let memory: Tensor<(usize, usize, Const<4>), f64, _> = dev.sample_normal_like(&(1, s, Const));
    let r: Vec<f64> = dev
        .sample_normal_like::<(usize, usize, Const<4>)>(&(1, t, Const))
        .as_vec();
    let f = |tv: &[f64], mv: &[f64]| -> f64 {
        let tg = dev.tensor_from_vec(tv.to_vec(), (1usize, t, Const::<4>));
        let mm = dev.tensor_from_vec(mv.to_vec(), (1usize, s, Const::<4>));
        let y = layer
            .try_forward_masked(tg, mm, None, None, true)
            .unwrap()
            .as_vec();
        y.iter().zip(&r).map(|(a, b)| a * b).sum()
    };
    let grads = {
        let y = layer
            .try_forward_masked(tgt.leaky_trace(), memory.clone(), None, None, true)
            .unwrap();
        let shape = *y.shape();
        (y * dev.tensor_from_vec(r.clone(), shape)).sum().backward()
    };
    let (tv, mv) = (tgt.as_vec(), memory.as_vec());
    let numeric = finite_differences(&tv, |x| f(x, &mv));
    assert_close(
        "tgt grad",
        &grads.get(&tgt).as_vec(),
        &numeric,
        common::FINITE_DIFF,
    );
    let numeric = finite_differences(&mv, |x| f(&tv, x));
    assert_close(
        "memory grad",
        &grads.get(&memory).as_vec(),
        &numeric,
        common::FINITE_DIFF,
    );

    // Parameters: the cross-attention's packed projection and the feed-forward's first layer.
    let with = |edit: &dyn Fn(&mut TransformerDecoderLayerModel)| -> f64 {
        let mut l = layer.clone();
        edit(&mut l);
        let tg = dev.tensor_from_vec(tv.clone(), (1usize, t, Const::<4>));
        let mm = dev.tensor_from_vec(mv.clone(), (1usize, s, Const::<4>));
        let y = l
            .try_forward_masked(tg, mm, None, None, true)
            .unwrap()
            .as_vec();
        y.iter().zip(&r).map(|(a, b)| a * b).sum()
    };
    let w = layer.multihead_attn.in_proj_weight.clone();
    let numeric = finite_differences(&w.as_vec(), |v| {
        with(&|l| l.multihead_attn.in_proj_weight = dev.tensor_from_vec(v.to_vec(), *w.shape()))
    });
    assert_close(
        "multihead_attn.in_proj_weight grad",
        &grads.get(&w).as_vec(),
        &numeric,
        common::FINITE_DIFF,
    );
    let w = layer.linear1.weight.clone();
    let numeric = finite_differences(&w.as_vec(), |v| {
        with(&|l| l.linear1.weight = dev.tensor_from_vec(v.to_vec(), *w.shape()))
    });
    assert_close(
        "linear1.weight grad",
        &grads.get(&w).as_vec(),
        &numeric,
        common::FINITE_DIFF,
    );
}

/// The small layer of the finite-difference test, built.
type TransformerDecoderLayerModel =
    <TransformerDecoderLayer<4, 2, 6> as BuildOnDevice<TestDevice, f64>>::Built;

/// `nn.TransformerDecoder` of two post-norm layers with both masks: output and every gradient.
#[test]
fn decoder_of_two_layers_matches_pytorch() {
    let g = golden();
    let case = "stack_masked";
    let dev = TestDevice::default();
    let decoder = load::<TransformerDecoder<D, HEADS, FF, 2>, f64>(&weights("stack"));
    let tgt: Tensor<Rank3<B, T, D>, f64, _> =
        dev.tensor_from_vec(g[&format!("{case}.input0")].clone(), Default::default());
    let memory: Tensor<Rank3<B, S, D>, f64, _> =
        dev.tensor_from_vec(g[&format!("{case}.input1")].clone(), Default::default());
    let pad = memory_pad(&g);
    let y = decoder
        .try_forward_masked(tgt.leaky_trace(), memory.clone(), None, Some(&pad), true)
        .unwrap();
    let expected = &g[&format!("{case}.output")];
    assert_close("stack output", &y.as_vec(), expected, F64_MATCH);
    let grads = r_times(y, &g[&format!("{case}.r")]).backward();
    assert_close(
        "stack tgt grad",
        &grads.get(&tgt).as_vec(),
        &g[&format!("{case}.input0_grad")],
        F64_MATCH,
    );
    assert_close(
        "stack memory grad",
        &grads.get(&memory).as_vec(),
        &g[&format!("{case}.input1_grad")],
        F64_MATCH,
    );
    check_param_grads(case, &decoder, &grads, &g, F64_MATCH);
    assert_eq!(
        decoder.num_trainable_params(),
        <TransformerDecoder<D, HEADS, FF, 2> as ShapeInfer<Rank2<T, D>>>::PARAMS
    );
}

/// `nn.Transformer(8, 2, 2, 2, 16)` with all three padding masks and a causal target:
/// output, source and target gradients and every parameter's gradient.
fn check_transformer<const NORM_FIRST: bool>(name: &str) {
    let g = golden();
    let case = format!("{name}_masked");
    let dev = TestDevice::default();
    let model = load::<Transformer<D, HEADS, 2, 2, FF, NORM_FIRST>, f64>(&format!(
        "tests/pytorch/{name}_weights.safetensors"
    ));
    let src: Tensor<Rank3<B, S, D>, f64, _> =
        dev.tensor_from_vec(g[&format!("{case}.input0")].clone(), Default::default());
    let tgt: Tensor<Rank3<B, T, D>, f64, _> =
        dev.tensor_from_vec(g[&format!("{case}.input1")].clone(), Default::default());
    let pad = memory_pad(&g);
    let y = model
        .try_forward_masked(
            src.leaky_trace(),
            tgt.clone(),
            Some(&pad),
            None,
            Some(&pad),
            true,
        )
        .unwrap();
    let expected = &g[&format!("{case}.output")];
    assert_close(&format!("{case} output"), &y.as_vec(), expected, F64_MATCH);
    let grads = r_times(y, &g[&format!("{case}.r")]).backward();
    assert_close(
        &format!("{case} src grad"),
        &grads.get(&src).as_vec(),
        &g[&format!("{case}.input0_grad")],
        F64_MATCH,
    );
    assert_close(
        &format!("{case} tgt grad"),
        &grads.get(&tgt).as_vec(),
        &g[&format!("{case}.input1_grad")],
        F64_MATCH,
    );
    check_param_grads(&case, &model, &grads, &g, F64_MATCH);
}

#[test]
fn transformer_post_norm_matches_pytorch() {
    check_transformer::<false>("transformer");
}

#[test]
fn transformer_norm_first_matches_pytorch() {
    check_transformer::<true>("transformer_pre");
}

/// One position at a time with the key/value cache gives the full causal forward's numbers,
/// position by position, with a memory padding mask; for both norm placements and for the
/// whole Transformer.
fn check_incremental<const NORM_FIRST: bool>() {
    let dev = TestDevice::seed_from_u64(11);
    let decoder = dev.build_module::<TransformerDecoder<D, HEADS, FF, 2, NORM_FIRST>, f64>();
    let tgt: Tensor<Rank3<B, T, D>, f64, _> = dev.sample_normal();
    let memory: Tensor<Rank3<B, S, D>, f64, _> = dev.sample_normal();
    let g = golden();
    let pad = memory_pad(&g);
    let full = decoder
        .try_forward_masked(tgt.clone(), memory.clone(), None, Some(&pad), true)
        .unwrap()
        .as_vec();
    let mut cache = decoder.try_start_generation(memory, Some(pad)).unwrap();
    for t in 0..T {
        let step: Tensor<Rank3<B, 1, D>, f64, _> = tgt.clone().slice((.., t..t + 1, ..)).realize();
        let y = decoder.try_forward_step(step, &mut cache).unwrap().as_vec();
        for b in 0..B {
            let want = &full[(b * T + t) * D..][..D];
            assert_close(
                &format!("decoder step {t}, item {b}"),
                &y[b * D..][..D],
                want,
                Tolerance {
                    abs: 1e-12,
                    rel: 1e-12,
                },
            );
        }
    }
    assert_eq!(cache.len(), T);

    let model = dev.build_module::<Transformer<D, HEADS, 2, 2, FF, NORM_FIRST>, f64>();
    let src: Tensor<Rank3<B, S, D>, f64, _> = dev.sample_normal();
    let pad = memory_pad(&g);
    let full = model
        .try_forward_masked(src.clone(), tgt.clone(), Some(&pad), None, Some(&pad), true)
        .unwrap()
        .as_vec();
    let mut cache = model.try_start_generation(src, Some(pad)).unwrap();
    for t in 0..T {
        let step: Tensor<Rank3<B, 1, D>, f64, _> = tgt.clone().slice((.., t..t + 1, ..)).realize();
        let y = model.try_forward_step(step, &mut cache).unwrap().as_vec();
        for b in 0..B {
            assert_close(
                &format!("transformer step {t}, item {b}"),
                &y[b * D..][..D],
                &full[(b * T + t) * D..][..D],
                Tolerance {
                    abs: 1e-12,
                    rel: 1e-12,
                },
            );
        }
    }
}

#[test]
fn incremental_decoding_matches_the_full_forward() {
    check_incremental::<false>();
    check_incremental::<true>();
}
