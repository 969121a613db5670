//! Attention and the Transformer encoder against PyTorch (tests/pytorch/make_transformer_golden.py):
//! outputs and gradients of `sum(out * R)` with respect to inputs and parameters, in f64 to 1e-10
//! and in f32 to 1e-5 relative; plus embeddings, positional encodings and a tiny ViT.

mod common;

use common::TestDevice;

use common::{assert_close, assert_close_f32, finite_differences, Tolerance};
use shapesafe::prelude::*;
use shapesafe::pytorch::tensor_names;
use std::collections::BTreeMap;

const D: usize = 8;
const HEADS: usize = 2;
const FF: usize = 16;
const S: usize = 5;
const B: usize = 2;

/// PyTorch and ours, both in f64, differ only in summation order.
const F64_MATCH: Tolerance = common::F64_TIGHT;
/// Ours in f32 against PyTorch in f64.
const F32_MATCH: Tolerance = common::F32_VS_F64;

fn golden() -> BTreeMap<String, Vec<f64>> {
    common::golden::read("tests/pytorch/transformer_golden.safetensors")
}

fn load<M, E>(name: &str) -> M::Built
where
    E: Dtype,
    TestDevice: Device<E>,
    M: BuildOnDevice<TestDevice, E>,
    M::Built: TensorCollection<E, TestDevice> + Clone,
{
    common::golden::load::<M, E>(&format!("tests/pytorch/{name}_weights.safetensors"))
}

type Mha = MultiHeadAttention<D, HEADS>;
type Seq<const L: usize> = Rank3<B, L, D>;

fn mask(g: &BTreeMap<String, Vec<f64>>) -> Tensor<Rank2<B, S>, bool, TestDevice> {
    let values: Vec<bool> = g["mha_pad.mask"].iter().map(|&v| v != 0.0).collect();
    TestDevice::default().tensor_from_vec(values, (Const, Const))
}

/// Compares the model's parameter gradients with PyTorch's, to 1e-10.
fn check_param_grads<M: TensorCollection<f64, TestDevice>>(
    case: &str,
    model: &M,
    grads: &Gradients<f64, TestDevice>,
    g: &BTreeMap<String, Vec<f64>>,
) {
    common::golden::check_param_grads(case, model, grads, g, F64_MATCH);
}

fn seq<const L: usize>(
    g: &BTreeMap<String, Vec<f64>>,
    key: &str,
) -> Tensor<Seq<L>, f64, TestDevice> {
    TestDevice::default().tensor_from_vec(g[key].clone(), Default::default())
}

use common::golden::r_times;

#[test]
fn mha_self_attention_matches_pytorch() {
    let g = golden();
    let mha = load::<Mha, f64>("mha");
    let x = seq::<S>(&g, "mha.input0");
    let y = mha.forward(x.leaky_trace());
    assert_close("mha output", &y.as_vec(), &g["mha.output"], F64_MATCH);
    let grads = r_times(y, &g["mha.r"]).backward();
    assert_close(
        "mha input grad",
        &grads.get(&x).as_vec(),
        &g["mha.input0_grad"],
        F64_MATCH,
    );
    check_param_grads("mha", &mha, &grads, &g);
}

#[test]
fn mha_with_usize_dims_and_unbatched_matches_pytorch() {
    let g = golden();
    let mha = load::<Mha, f64>("mha");
    let dev = TestDevice::default();
    let x: Tensor<(usize, usize, Const<D>), f64, _> =
        dev.tensor_from_vec(g["mha.input0"].clone(), (B, S, Const));
    let y = mha.forward(x);
    assert_close("usize dims", &y.as_vec(), &g["mha.output"], F64_MATCH);
    // Each sequence alone, as an unbatched (S, D) input.
    for b in 0..B {
        let part = g["mha.input0"][b * S * D..(b + 1) * S * D].to_vec();
        let x: Tensor<Rank2<S, D>, f64, _> = dev.tensor_from_vec(part, (Const, Const));
        let y = mha.forward(x);
        assert_close(
            "unbatched",
            &y.as_vec(),
            &g["mha.output"][b * S * D..(b + 1) * S * D],
            F64_MATCH,
        );
    }
}

#[test]
fn mha_key_padding_mask_matches_pytorch() {
    let g = golden();
    let mha = load::<Mha, f64>("mha");
    let x = seq::<S>(&g, "mha_pad.input0");
    let pad = mask(&g);
    let y = mha
        .try_self_attend(x.leaky_trace(), Some(&pad), false)
        .unwrap();
    assert_close(
        "padded output",
        &y.as_vec(),
        &g["mha_pad.output"],
        F64_MATCH,
    );
    let grads = r_times(y, &g["mha_pad.r"]).backward();
    assert_close(
        "padded input grad",
        &grads.get(&x).as_vec(),
        &g["mha_pad.input0_grad"],
        F64_MATCH,
    );
    check_param_grads("mha_pad", &mha, &grads, &g);
}

#[test]
fn mha_causal_mask_matches_pytorch() {
    let g = golden();
    let mha = load::<Mha, f64>("mha");
    let x = seq::<S>(&g, "mha_causal.input0");
    let y = mha.try_self_attend(x.leaky_trace(), None, true).unwrap();
    assert_close(
        "causal output",
        &y.as_vec(),
        &g["mha_causal.output"],
        F64_MATCH,
    );
    let grads = r_times(y, &g["mha_causal.r"]).backward();
    assert_close(
        "causal input grad",
        &grads.get(&x).as_vec(),
        &g["mha_causal.input0_grad"],
        F64_MATCH,
    );
    check_param_grads("mha_causal", &mha, &grads, &g);
}

#[test]
fn mha_cross_attention_matches_pytorch() {
    let g = golden();
    let mha = load::<Mha, f64>("mha");
    let q = seq::<3>(&g, "mha_cross.input0");
    let k = seq::<S>(&g, "mha_cross.input1");
    let v = seq::<S>(&g, "mha_cross.input2");
    let pad = mask(&g);
    let y = mha.attend(
        q.leaky_trace(),
        k.leaky_trace(),
        v.leaky_trace(),
        Some(&pad),
        false,
    );
    assert_close(
        "cross output",
        &y.as_vec(),
        &g["mha_cross.output"],
        F64_MATCH,
    );
    let grads = r_times(y, &g["mha_cross.r"]).backward();
    let input_grads = [
        grads.get(&q).as_vec(),
        grads.get(&k).as_vec(),
        grads.get(&v).as_vec(),
    ];
    for (i, actual) in input_grads.iter().enumerate() {
        assert_close(
            &format!("cross input{i} grad"),
            actual,
            &g[&format!("mha_cross.input{i}_grad")],
            F64_MATCH,
        );
    }
    check_param_grads("mha_cross", &mha, &grads, &g);
}

#[test]
fn mha_f32_matches_pytorch() {
    let g = golden();
    let mha = load::<Mha, f32>("mha");
    let x: Vec<f32> = g["mha_pad.input0"].iter().map(|&v| v as f32).collect();
    let x: Tensor<Seq<S>, f32, _> = TestDevice::default().tensor_from_vec(x, Default::default());
    let pad = mask(&g);
    let y = mha.try_self_attend(x, Some(&pad), false).unwrap();
    assert_close_f32(
        "f32 padded output",
        &y.as_vec(),
        &g["mha_pad.output"],
        F32_MATCH,
    );
}

/// Runs `M` (loaded from `<case>_weights`) on the case's input, in f64 against PyTorch's output,
/// input gradient and parameter gradients, and in f32 against its output.
fn check_encoder_case<M>(case: &str)
where
    M: BuildOnDevice<TestDevice, f64> + BuildOnDevice<TestDevice, f32>,
    <M as BuildOnDevice<TestDevice, f64>>::Built: TensorCollection<f64, TestDevice>
        + Clone
        + Module<
            Tensor<Seq<S>, f64, TestDevice, OwnedTape<f64, TestDevice>>,
            Output = Tensor<Seq<S>, f64, TestDevice, OwnedTape<f64, TestDevice>>,
        > + Module<
            Tensor<(usize, Const<D>), f64, TestDevice>,
            Output = Tensor<(usize, Const<D>), f64, TestDevice>,
        >,
    <M as BuildOnDevice<TestDevice, f32>>::Built: TensorCollection<f32, TestDevice>
        + Clone
        + Module<Tensor<Seq<S>, f32, TestDevice>, Output = Tensor<Seq<S>, f32, TestDevice>>,
{
    let g = golden();
    let model = load::<M, f64>(case);
    let x = seq::<S>(&g, &format!("{case}.input0"));
    let y = model.forward(x.leaky_trace());
    let expected = &g[&format!("{case}.output")];
    assert_close(&format!("{case} output"), &y.as_vec(), expected, F64_MATCH);
    let grads = r_times(y, &g[&format!("{case}.r")]).backward();
    assert_close(
        &format!("{case} input grad"),
        &grads.get(&x).as_vec(),
        &g[&format!("{case}.input0_grad")],
        F64_MATCH,
    );
    check_param_grads(case, &model, &grads, &g);

    // Unbatched with a runtime length: the second sequence alone.
    let dev = TestDevice::default();
    let part = g[&format!("{case}.input0")][S * D..].to_vec();
    let y = model.forward(dev.tensor_from_vec(part, (S, Const::<D>)));
    assert_close(
        &format!("{case} unbatched"),
        &y.as_vec(),
        &expected[S * D..],
        F64_MATCH,
    );

    let model32 = load::<M, f32>(case);
    let x32: Vec<f32> = x.as_vec().iter().map(|&v| v as f32).collect();
    let y32 = model32.forward(dev.tensor_from_vec(x32, Default::default()));
    assert_close_f32(&format!("{case} f32"), &y32.as_vec(), expected, F32_MATCH);
}

#[test]
fn encoder_layer_post_norm_matches_pytorch() {
    check_encoder_case::<TransformerEncoderLayer<D, HEADS, FF>>("post");
}

#[test]
fn encoder_layer_norm_first_matches_pytorch() {
    check_encoder_case::<TransformerEncoderLayer<D, HEADS, FF, true>>("pre");
}

#[test]
fn encoder_of_two_layers_matches_pytorch() {
    check_encoder_case::<TransformerEncoder<D, HEADS, FF, 2>>("encoder");
}

#[test]
fn encoder_parameter_counts_match_pytorch() {
    type Layer = TransformerEncoderLayer<D, HEADS, FF>;
    type Encoder = TransformerEncoder<D, HEADS, FF, 2>;
    let g = golden();
    // PyTorch's parameter gradients: one per parameter element.
    let count = |case: &str| -> usize {
        g.iter()
            .filter(|(k, _)| k.starts_with(&format!("{case}.grad.")))
            .map(|(_, v)| v.len())
            .sum()
    };
    assert_eq!(<Mha as ShapeInfer<Rank2<S, D>>>::PARAMS, count("mha"));
    assert_eq!(<Layer as ShapeInfer<Rank2<S, D>>>::PARAMS, count("post"));
    assert_eq!(
        <Encoder as ShapeInfer<Rank2<S, D>>>::PARAMS,
        count("encoder")
    );
    let dev = TestDevice::default();
    assert_eq!(
        dev.build_module::<Encoder, f32>().num_trainable_params(),
        count("encoder")
    );
}

#[test]
fn encoder_forward_mut_drops_out_only_with_positive_p() {
    let dev = TestDevice::default();
    let mut layer = dev.build_module::<TransformerEncoderLayer<D, HEADS, FF>, f64>();
    let x: Tensor<Seq<S>, f64, _> = dev.sample_normal();
    let eval = layer.forward(x.clone()).as_vec();
    let train = layer.forward_mut(x.leaky_trace()).as_vec();
    assert_ne!(eval, train, "dropout 0.1 changes the training output");
    layer.dropout = 0.0;
    let train = layer.forward_mut(x.leaky_trace()).as_vec();
    assert_close("dropout 0", &train, &eval, F64_MATCH);
}

#[test]
fn embedding_looks_up_rows_and_scatters_gradients() {
    let dev = TestDevice::default();
    let embed = dev.build_module::<Embedding<6, 3>, f64>();
    let table = embed.weight.as_vec();
    let ids = dev.tensor([[5usize, 0, 5], [2, 1, 3]]);
    let y = embed.forward(ids.clone());
    let ids_flat = [5usize, 0, 5, 2, 1, 3];
    let expected: Vec<f64> = ids_flat
        .iter()
        .flat_map(|&i| table[i * 3..i * 3 + 3].to_vec())
        .collect();
    assert_close("embedding rows", &y.as_vec(), &expected, F64_MATCH);
    // d sum(y * r) / d weight[i] = sum of r over the positions holding id i.
    let r: Vec<f64> = (0..18).map(|v| v as f64 * 0.25 - 1.0).collect();
    let y = embed.forward(ids.trace(embed.alloc_grads()));
    let grads = r_times(y, &r).backward();
    let mut expected = vec![0.0; 18];
    for (p, &i) in ids_flat.iter().enumerate() {
        for k in 0..3 {
            expected[i * 3 + k] += r[p * 3 + k];
        }
    }
    assert_close(
        "embedding grad",
        &grads.get(&embed.weight).as_vec(),
        &expected,
        F64_MATCH,
    );
    // Unbatched ids (S,) with a runtime length.
    let y = embed.forward(dev.tensor_from_vec(vec![4usize, 4], (2usize,)));
    assert_eq!(y.as_vec(), [&table[12..15], &table[12..15]].concat());
}

#[test]
fn sinusoidal_encoding_matches_the_paper() {
    let dev = TestDevice::default();
    const W: usize = 6;
    let x: Tensor<Rank3<2, 4, W>, f64, _> = dev.sample_normal();
    let y = SinusoidalPositionalEncoding::<10, W>.forward(x.clone());
    let mut expected = x.as_vec();
    for b in 0..2 {
        for pos in 0..4 {
            for i in 0..W / 2 {
                let angle = pos as f64 / 10000f64.powf(2.0 * i as f64 / W as f64);
                expected[(b * 4 + pos) * W + 2 * i] += angle.sin();
                expected[(b * 4 + pos) * W + 2 * i + 1] += angle.cos();
            }
        }
    }
    assert_close("sinusoidal", &y.as_vec(), &expected, F64_MATCH);
    // A runtime length gives the same rows.
    let x2: Tensor<(usize, usize, Const<W>), f64, _> =
        dev.tensor_from_vec(x.as_vec(), (2, 4, Const));
    let y2 = SinusoidalPositionalEncoding::<10, W>.forward(x2);
    assert_close("sinusoidal usize", &y2.as_vec(), &expected, F64_MATCH);
}

#[test]
#[should_panic(
    expected = "SinusoidalPositionalEncoding<4, 6> holds 4 positions, but the sequence is 5 long"
)]
fn positional_runtime_length_is_checked() {
    let dev = TestDevice::default();
    let x: Tensor<(usize, Const<6>), f64, _> = dev.zeros_like(&(5, Const));
    let _ = SinusoidalPositionalEncoding::<4, 6>.forward(x);
}

#[test]
fn learned_positions_add_and_take_gradients() {
    let dev = TestDevice::default();
    let pos = dev.build_module::<LearnedPositionalEmbedding<7, 3>, f64>();
    let table = pos.weight.as_vec();
    let x: Tensor<Rank3<2, 4, 3>, f64, _> = dev.sample_normal();
    let y = pos.forward(x.trace(pos.alloc_grads()));
    let mut expected = x.as_vec();
    for (i, v) in expected.iter_mut().enumerate() {
        *v += table[i % 12];
    }
    assert_close("learned", &y.as_vec(), &expected, F64_MATCH);
    let r: Vec<f64> = (0..24).map(|v| (v as f64).sin()).collect();
    let grads = r_times(y, &r).backward();
    let mut expected = vec![0.0; 21];
    for (i, &ri) in r.iter().enumerate() {
        expected[i % 12] += ri;
    }
    assert_close(
        "learned grad",
        &grads.get(&pos.weight).as_vec(),
        &expected,
        F64_MATCH,
    );
    assert_eq!(
        <LearnedPositionalEmbedding<7, 3> as ShapeInfer<Rank2<4, 3>>>::PARAMS,
        21
    );
}

#[test]
fn sequence_mean_averages_the_sequence() {
    let dev = TestDevice::default();
    let x: Tensor<Rank3<2, 3, 2>, f64, _> = dev.tensor([
        [[1.0, 2.0], [3.0, 4.0], [5.0, 9.0]],
        [[0.0, 0.0], [0.0, 3.0], [3.0, 0.0]],
    ]);
    assert_eq!(MeanPool.forward(x).array(), [[3.0, 5.0], [1.0, 1.0]]);
}

type TinyVit = shapesafe::models::VisionTransformer<2, 4, 2, 4, 2, 6, 1, 3>;

#[test]
fn vit_shapes_and_parameter_count() {
    type Vit = shapesafe::models::VisionTransformer<1, 28, 7, 16, 4, 32, 2, 10>;
    let dev = TestDevice::default();
    let model = dev.build_module::<Vit, f32>();
    // conv 16*49+16, class 16, positions 17*16, 2 layers of 4*256+64 + 2*512+32+16 + 64, norm 32, head 170.
    let layer = 4 * 256 + 64 + 2 * 16 * 32 + 32 + 16 + 64;
    let expected = 16 * 49 + 16 + 16 + 17 * 16 + 2 * layer + 32 + 170;
    assert_eq!(<Vit as ShapeInfer<Rank3<1, 28, 28>>>::PARAMS, expected);
    assert_eq!(model.num_trainable_params(), expected);
    let x: Tensor<Rank4<3, 1, 28, 28>, f32, _> = dev.sample_normal();
    let y: Tensor<Rank2<3, 10>, f32, _> = model.forward(x.clone());
    assert!(y.as_vec().iter().all(|v| v.is_finite()));
    let x2: Tensor<(usize, Const<1>, Const<28>, Const<28>), f32, _> =
        dev.tensor_from_vec(x.as_vec(), (3, Const, Const, Const));
    let y2 = model.forward(x2);
    assert_eq!(y2.shape().concrete(), [3, 10]);
    assert_close_f32(
        "usize batch",
        &y2.as_vec(),
        &y.as_vec().iter().map(|&v| v as f64).collect::<Vec<_>>(),
        F32_MATCH,
    );
    let one: Tensor<Rank3<1, 28, 28>, f32, _> =
        dev.tensor_from_vec(x.as_vec()[..784].to_vec(), Default::default());
    let y1: Tensor<Rank1<10>, f32, _> = model.forward(one);
    assert_close_f32(
        "unbatched",
        &y1.as_vec(),
        &y.as_vec()[..10]
            .iter()
            .map(|&v| v as f64)
            .collect::<Vec<_>>(),
        F32_MATCH,
    );
    let names = tensor_names(&model);
    assert_eq!(
        names[..4],
        [
            "conv_proj.weight",
            "conv_proj.bias",
            "class_token",
            "pos_embedding"
        ]
    );
    assert_eq!(names[4], "encoder.layers.0.self_attn.in_proj_weight");
    assert_eq!(names[names.len() - 1], "head.bias");
}

#[test]
fn tiny_vit_gradients_match_finite_differences() {
    let dev = TestDevice::default();
    let mut model = dev.build_module::<TinyVit, f64>();
    // A nonzero class token, so that its gradient path is exercised off the initial point.
    model.class_token = dev.sample_normal();
    let x: Tensor<Rank4<2, 2, 4, 4>, f64, _> = dev.sample_normal();
    let r: Vec<f64> = (0..6).map(|v| 0.5 + v as f64 * 0.3).collect();
    let objective = |m: &<TinyVit as BuildOnDevice<TestDevice, f64>>::Built,
                     x: &Tensor<Rank4<2, 2, 4, 4>, f64, TestDevice>| {
        let y = m.forward(x.clone());
        y.as_vec().iter().zip(&r).map(|(a, b)| a * b).sum::<f64>()
    };
    let grads = r_times(model.forward(x.leaky_trace()), &r).backward();

    let numeric = finite_differences(&x.as_vec(), |v| {
        objective(&model, &dev.tensor_from_vec(v.to_vec(), Default::default()))
    });
    let fd = Tolerance {
        abs: 1e-7,
        rel: 1e-6,
    };
    assert_close("vit input grad", &grads.get(&x).as_vec(), &numeric, fd);

    let numeric = finite_differences(&model.class_token.as_vec(), |v| {
        let mut m = model.clone();
        m.class_token = dev.tensor_from_vec(v.to_vec(), Default::default());
        objective(&m, &x)
    });
    assert_close(
        "vit class token grad",
        &grads.get(&model.class_token).as_vec(),
        &numeric,
        fd,
    );

    let numeric = finite_differences(&model.pos_embedding.as_vec(), |v| {
        let mut m = model.clone();
        m.pos_embedding = dev.tensor_from_vec(v.to_vec(), Default::default());
        objective(&m, &x)
    });
    assert_close(
        "vit position grad",
        &grads.get(&model.pos_embedding).as_vec(),
        &numeric,
        fd,
    );

    let numeric = finite_differences(&model.conv_proj.weight.as_vec(), |v| {
        let mut m = model.clone();
        m.conv_proj.weight = dev.tensor_from_vec(v.to_vec(), Default::default());
        objective(&m, &x)
    });
    assert_close(
        "vit patch weight grad",
        &grads.get(&model.conv_proj.weight).as_vec(),
        &numeric,
        fd,
    );
}

/// `try_attention_weights` against a plain f64 loop: per head, softmax of the scaled dot
/// products of the projected queries and keys, masked keys at 0, averaged over the heads.
#[test]
fn attention_weights_match_a_plain_loop_and_respect_the_mask() {
    const D: usize = 6;
    const H: usize = 3;
    let dev = TestDevice::seed_from_u64(11);
    let mha = dev.build_module::<MultiHeadAttention<D, H>, f64>();
    let q: Tensor<Rank3<2, 2, D>, f64, _> = dev.sample_normal();
    let k: Tensor<Rank3<2, 4, D>, f64, _> = dev.sample_normal();
    let pad = dev.tensor([[false, true, false, false], [false, false, false, true]]);
    let got = mha
        .try_attention_weights(q.clone(), k.clone(), Some(&pad), false)
        .unwrap()
        .as_vec();
    let (w, b) = (mha.in_proj_weight.as_vec(), mha.in_proj_bias.as_vec());
    let project = |x: &[f64], part: usize| -> Vec<f64> {
        (0..D)
            .map(|o| {
                let row = part * D + o;
                b[row] + (0..D).map(|i| w[row * D + i] * x[i]).sum::<f64>()
            })
            .collect()
    };
    let (qv, kv, mask) = (q.as_vec(), k.as_vec(), pad.as_vec());
    let head = D / H;
    let mut expected = Vec::new();
    for item in 0..2 {
        for i in 0..2 {
            let qi = project(&qv[(item * 2 + i) * D..][..D], 0);
            let mut average = [0.0f64; 4];
            for h in 0..H {
                let scores: Vec<f64> = (0..4)
                    .map(|j| {
                        let kj = project(&kv[(item * 4 + j) * D..][..D], 1);
                        let dot: f64 = (0..head).map(|d| qi[h * head + d] * kj[h * head + d]).sum();
                        if mask[item * 4 + j] {
                            f64::NEG_INFINITY
                        } else {
                            dot / (head as f64).sqrt()
                        }
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let total: f64 = scores.iter().map(|s| (s - max).exp()).sum();
                for j in 0..4 {
                    average[j] += (scores[j] - max).exp() / total / H as f64;
                }
            }
            expected.extend(average);
        }
    }
    assert_close("attention weights", &got, &expected, common::F64_TIGHT);
    for (i, m) in mask.iter().enumerate() {
        if *m {
            assert_eq!(
                (got[i % 4 + (i / 4) * 8], got[i % 4 + (i / 4) * 8 + 4]),
                (0.0, 0.0)
            );
        }
    }
}
