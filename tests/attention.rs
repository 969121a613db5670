//! Attention and the Transformer encoder against PyTorch (tests/pytorch/make_transformer_golden.py):
//! outputs and gradients of `sum(out * R)` with respect to inputs and parameters, in f64 to 1e-10
//! and in f32 to 1e-5 relative; plus embeddings, positional encodings and a tiny ViT.

mod common;

use common::{assert_close, assert_close_f32, finite_differences, Tolerance};
use shapesafe::prelude::*;
use shapesafe::pytorch::{load_state_dict, tensor_names, NameMap};
use std::collections::BTreeMap;

const D: usize = 8;
const HEADS: usize = 2;
const FF: usize = 16;
const S: usize = 5;
const B: usize = 2;

/// PyTorch and ours, both in f64, differ only in summation order.
const F64_MATCH: Tolerance = Tolerance {
    abs: 1e-10,
    rel: 1e-10,
};
/// Ours in f32 against PyTorch in f64: f32 rounding through softmax and layer norm.
const F32_MATCH: Tolerance = Tolerance {
    abs: 1e-5,
    rel: 1e-5,
};

fn golden() -> BTreeMap<String, Vec<f64>> {
    let bytes = std::fs::read("tests/pytorch/transformer_golden.safetensors").unwrap();
    let file = ::safetensors::SafeTensors::deserialize(&bytes).unwrap();
    file.tensors()
        .into_iter()
        .map(|(name, view)| {
            let values = view
                .data()
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                .collect();
            (name, values)
        })
        .collect()
}

fn weights(name: &str) -> String {
    format!("tests/pytorch/{name}_weights.safetensors")
}

fn load<M, E>(name: &str) -> M::Built
where
    E: Dtype,
    Cpu: Device<E>,
    M: BuildOnDevice<Cpu, E>,
    M::Built: TensorCollection<E, Cpu> + Clone,
{
    let mut model = Cpu::default().build_module::<M, E>();
    load_state_dict(&mut model, weights(name), &NameMap::new()).unwrap();
    model
}

type Mha = MultiHeadAttention<D, HEADS>;
type Seq<const L: usize> = Rank3<B, L, D>;

fn mask(g: &BTreeMap<String, Vec<f64>>) -> Tensor<Rank2<B, S>, bool, Cpu> {
    let values: Vec<bool> = g["mha_pad.mask"].iter().map(|&v| v != 0.0).collect();
    Cpu::default().tensor_from_vec(values, (Const, Const))
}

/// Compares the model's parameter gradients with PyTorch's `<case>.grad.<name>`.
fn check_param_grads<M: TensorCollection<f64, Cpu>>(
    case: &str,
    model: &M,
    grads: &Gradients<f64, Cpu>,
    g: &BTreeMap<String, Vec<f64>>,
) {
    let mut values = Vec::new();
    collect_grads(model, grads, &mut values);
    let names = tensor_names(model);
    assert_eq!(names.len(), values.len());
    for (name, actual) in names.iter().zip(&values) {
        let key = format!("{case}.grad.{name}");
        let expected = g
            .get(&key)
            .unwrap_or_else(|| panic!("no PyTorch gradient {key}"));
        assert_close(&key, actual, expected, F64_MATCH);
    }
}

/// Every parameter's gradient, in visiting order.
fn collect_grads<M: TensorCollection<f64, Cpu>>(
    model: &M,
    grads: &Gradients<f64, Cpu>,
    out: &mut Vec<Vec<f64>>,
) {
    use dfdx::nn::tensor_collection::{RecursiveWalker, TensorVisitor, ViewTensorRef};
    use dfdx::nn::{ScalarOptions, TensorOptions};
    struct Collect<'a>(&'a Gradients<f64, Cpu>, &'a mut Vec<Vec<f64>>);
    impl TensorVisitor<f64, Cpu> for Collect<'_> {
        type Viewer = ViewTensorRef;
        type Err = std::convert::Infallible;
        type E2 = f64;
        type D2 = Cpu;
        fn visit<Sh: Shape>(
            &mut self,
            _: TensorOptions<Sh, f64, Cpu>,
            t: &Tensor<Sh, f64, Cpu>,
        ) -> Result<Option<Tensor<Sh, f64, Cpu>>, Self::Err> {
            self.1.push(self.0.get(t).as_vec());
            Ok(None)
        }
        fn visit_scalar<N: num_traits::NumCast>(
            &mut self,
            _: ScalarOptions<N>,
            _: &N,
        ) -> Result<Option<N>, Self::Err> {
            Ok(None)
        }
    }
    let _ = M::iter_tensors(&mut RecursiveWalker {
        m: model,
        f: &mut Collect(grads, out),
    });
}

fn seq<const L: usize>(g: &BTreeMap<String, Vec<f64>>, key: &str) -> Tensor<Seq<L>, f64, Cpu> {
    Cpu::default().tensor_from_vec(g[key].clone(), Default::default())
}

fn r_times<Sh: Shape>(
    y: Tensor<Sh, f64, Cpu, OwnedTape<f64, Cpu>>,
    r: &[f64],
) -> Tensor<Rank0, f64, Cpu, OwnedTape<f64, Cpu>> {
    let shape = *y.shape();
    let r = Cpu::default().tensor_from_vec(r.to_vec(), shape);
    (y * r).sum()
}

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
    let dev = Cpu::default();
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
    let x: Tensor<Seq<S>, f32, _> = Cpu::default().tensor_from_vec(x, Default::default());
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
    M: BuildOnDevice<Cpu, f64> + BuildOnDevice<Cpu, f32>,
    <M as BuildOnDevice<Cpu, f64>>::Built: TensorCollection<f64, Cpu>
        + Clone
        + Module<
            Tensor<Seq<S>, f64, Cpu, OwnedTape<f64, Cpu>>,
            Output = Tensor<Seq<S>, f64, Cpu, OwnedTape<f64, Cpu>>,
        > + Module<Tensor<(usize, Const<D>), f64, Cpu>, Output = Tensor<(usize, Const<D>), f64, Cpu>>,
    <M as BuildOnDevice<Cpu, f32>>::Built: TensorCollection<f32, Cpu>
        + Clone
        + Module<Tensor<Seq<S>, f32, Cpu>, Output = Tensor<Seq<S>, f32, Cpu>>,
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
    let dev = Cpu::default();
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
    let dev = Cpu::default();
    assert_eq!(
        dev.build_module::<Encoder, f32>().num_trainable_params(),
        count("encoder")
    );
}

#[test]
fn encoder_forward_mut_drops_out_only_with_positive_p() {
    let dev = Cpu::default();
    let mut layer = dev.build_module::<TransformerEncoderLayer<D, HEADS, FF>, f64>();
    let x: Tensor<Seq<S>, f64, _> = dev.sample_normal();
    let eval = layer.forward(x.clone()).as_vec();
    let train = layer.forward_mut(x.leaky_trace()).as_vec();
    assert_ne!(eval, train, "dropout 0.1 changes the training output");
    layer.dropout = 0.0;
    let train = layer.forward_mut(x.leaky_trace()).as_vec();
    assert_close("dropout 0", &train, &eval, F64_MATCH);
}
