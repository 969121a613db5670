//! Recurrent layers against PyTorch (tests/pytorch/make_rnn_golden.py: torch.nn.RNN/LSTM/GRU in
//! float64 with random weights, inputs and initial states) and against finite differences.

mod common;

use common::TestDevice;

use common::{assert_close, assert_close_f32, check_input_gradient, random_vec, rng, Tolerance};
use shapesafe::nn::modules::Recurrent;
use shapesafe::nn::recurrent::cell::Cell;
use shapesafe::nn::recurrent::CellMode;
use shapesafe::nn::recurrent::{gru::GruMode, lstm::LstmMode, rnn::ReluMode, rnn::TanhMode};
use shapesafe::prelude::*;
use shapesafe::pytorch::{load_state_dict, tensor_names, NameMap};
use std::collections::BTreeMap;

const B: usize = 2;
const T: usize = 5;
const I: usize = 3;
const H: usize = 4;

/// PyTorch in f64 against ours in f64: the same arithmetic up to summation order.
const F64_MATCH: Tolerance = Tolerance {
    abs: 1e-10,
    rel: 1e-10,
};
/// The same weights in f32 arithmetic.
const F32_MATCH: Tolerance = Tolerance {
    abs: 1e-5,
    rel: 1e-5,
};

type Golden = BTreeMap<String, (Vec<usize>, Vec<f64>)>;

fn golden() -> Golden {
    common::golden::read_with_shapes("tests/pytorch/rnn_golden.safetensors")
}

const NOT_PARAMS: [&str; 7] = ["x", "h0", "c0", "y", "hn", "cn", "r"];

/// Writes the case's state dict (PyTorch's names, unprefixed) to a temporary file.
fn state_dict_file(golden: &Golden, case: &str) -> std::path::PathBuf {
    let prefix = format!("{case}.");
    let params: Vec<(String, Vec<usize>, Vec<u8>)> = golden
        .iter()
        .filter_map(|(k, (shape, v))| {
            let name = k.strip_prefix(&prefix)?;
            if name.starts_with("grad.") || NOT_PARAMS.contains(&name) {
                return None;
            }
            let bytes = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            Some((name.to_string(), shape.clone(), bytes))
        })
        .collect();
    let views: Vec<(String, ::safetensors::tensor::TensorView)> = params
        .iter()
        .map(|(n, s, b)| {
            let view =
                ::safetensors::tensor::TensorView::new(::safetensors::Dtype::F64, s.clone(), b)
                    .unwrap();
            (n.clone(), view)
        })
        .collect();
    let path = std::env::temp_dir().join(format!(
        "shapesafe-rnn-{case}-{}.safetensors",
        std::process::id()
    ));
    ::safetensors::tensor::serialize_to_file(views, &None, &path).unwrap();
    path
}

/// PyTorch's names for layer-direction `i`, and the cell they name.
fn suffix(i: usize, bidirectional: bool) -> String {
    let dirs = if bidirectional { 2 } else { 1 };
    let reverse = if i % dirs == 1 { "_reverse" } else { "" };
    format!("_l{}{reverse}", i / dirs)
}

fn cell_grads<M, In: Dim, const G: usize>(
    grads: &Gradients<f64, TestDevice>,
    cell: &Cell<M, In, G, H, f64, TestDevice>,
) -> [(&'static str, Vec<f64>); 4] {
    [
        ("weight_ih", grads.get(&cell.weight_ih).as_vec()),
        ("weight_hh", grads.get(&cell.weight_hh).as_vec()),
        ("bias_ih", grads.get(&cell.bias_ih).as_vec()),
        ("bias_hh", grads.get(&cell.bias_hh).as_vec()),
    ]
}

fn check_case<M: CellMode, const G: usize, const L: usize, const BI: bool>(case: &str) {
    let dev = TestDevice::default();
    let golden = golden();
    let get = |name: &str| golden[&format!("{case}.{name}")].1.clone();
    let mut model = <Recurrent<M, G, I, H, L, BI, f64, TestDevice> as BuildModule<
        TestDevice,
        f64,
    >>::build(&dev);

    // The module visits exactly PyTorch's names.
    let mut ours = tensor_names(&model);
    ours.sort();
    let prefix = format!("{case}.");
    let mut theirs: Vec<String> = golden
        .keys()
        .filter_map(|k| k.strip_prefix(&prefix))
        .filter(|k| !k.starts_with("grad.") && !NOT_PARAMS.contains(k))
        .map(String::from)
        .collect();
    theirs.sort();
    assert_eq!(ours, theirs, "{case}: parameter names");

    let path = state_dict_file(&golden, case);
    load_state_dict(&mut model, &path, &NameMap::new()).unwrap();
    std::fs::remove_file(&path).unwrap();

    let x: Tensor<Rank3<B, T, I>, f64, _> = dev.tensor_from_vec(get("x"), Default::default());
    let state = |name: &str| -> Tensor<(LayerDirections<L, BI>, Const<B>, Const<H>), f64, _> {
        dev.tensor_from_vec(get(name), Default::default())
    };
    let lstm = M::GATES == 4;
    let initial = || M::pack(state("h0"), lstm.then(|| state("c0")));

    // Leaky: keep the input's gradient too, not only the parameters'.
    let (y, last) = model.forward_with_state(x.trace(Gradients::leaky()), Some(initial()));
    assert_close(&format!("{case} output"), &y.as_vec(), &get("y"), F64_MATCH);
    let (hn, cn) = M::unpack(last);
    assert_close(&format!("{case} h_n"), &hn.as_vec(), &get("hn"), F64_MATCH);
    if let Some(cn) = cn {
        assert_close(&format!("{case} c_n"), &cn.as_vec(), &get("cn"), F64_MATCH);
    }

    let r = dev.tensor_from_vec(get("r"), *y.shape());
    let grads = (y * r).sum().backward();
    assert_close(
        &format!("{case} d/dx"),
        &grads.get(&x).as_vec(),
        &get("grad.x"),
        F64_MATCH,
    );
    let dirs = if BI { 2 } else { 1 };
    for i in 0..L * dirs {
        let found = if i < dirs {
            cell_grads(&grads, &model.first[i])
        } else {
            cell_grads(&grads, &model.deeper[i - dirs])
        };
        for (field, g) in found {
            let name = format!("{field}{}", suffix(i, BI));
            assert_close(
                &format!("{case} d/d{name}"),
                &g,
                &get(&format!("grad.{name}")),
                F64_MATCH,
            );
        }
    }

    // Without a state the layer starts from zeros, and Module::forward is that output.
    let zeros = M::pack(dev.zeros(), lstm.then(|| dev.zeros()));
    let (from_zeros, _) = model.forward_with_state(x.clone(), Some(zeros));
    assert_close(
        &format!("{case} forward = zero state"),
        &model.forward(x.clone()).as_vec(),
        &from_zeros.as_vec(),
        Tolerance { abs: 0.0, rel: 0.0 },
    );
    // Runtime batch and time sizes, and an unbatched sequence, give the same numbers.
    let dynamic: Tensor<(usize, usize, Const<I>), f64, _> =
        dev.tensor_from_vec(x.as_vec(), (B, T, Const));
    assert_close(
        &format!("{case} usize batch and time"),
        &model.forward(dynamic).as_vec(),
        &from_zeros.as_vec(),
        Tolerance { abs: 0.0, rel: 0.0 },
    );
    let first: Tensor<Rank2<T, I>, f64, _> =
        dev.tensor_from_vec(x.as_vec()[..T * I].to_vec(), Default::default());
    let expected = from_zeros.as_vec()[..T * H * dirs].to_vec();
    assert_close(
        &format!("{case} unbatched"),
        &model.forward(first).as_vec(),
        &expected,
        F64_MATCH,
    );

    // f32: the same weights, PyTorch's numbers to f32 accuracy.
    let model32 = model.to_dtype::<f32>();
    let x32: Tensor<Rank3<B, T, I>, f32, _> = x.to_dtype::<f32>();
    let state32 = |name: &str| state(name).to_dtype::<f32>();
    let (y32, last32) = model32.forward_with_state(
        x32,
        Some(M::pack(state32("h0"), lstm.then(|| state32("c0")))),
    );
    assert_close_f32(
        &format!("{case} f32 output"),
        &y32.as_vec(),
        &get("y"),
        F32_MATCH,
    );
    let (hn32, _) = M::unpack(last32);
    assert_close_f32(
        &format!("{case} f32 h_n"),
        &hn32.as_vec(),
        &get("hn"),
        F32_MATCH,
    );
}

macro_rules! golden_cases {
    ($($test:ident: $mode:ty, $gates:literal, $layers:literal, $bi:literal, $case:literal;)*) => {
        $(
            #[test]
            fn $test() {
                check_case::<$mode, $gates, $layers, $bi>($case);
            }
        )*
    };
}

golden_cases! {
    rnn_one_layer: TanhMode, 1, 1, false, "rnn_l1";
    rnn_two_layers: TanhMode, 1, 2, false, "rnn_l2";
    rnn_bidirectional: TanhMode, 1, 1, true, "rnn_l1_bi";
    rnn_two_layers_bidirectional: TanhMode, 1, 2, true, "rnn_l2_bi";
    rnn_relu_one_layer: ReluMode, 1, 1, false, "rnn_relu_l1";
    rnn_relu_two_layers_bidirectional: ReluMode, 1, 2, true, "rnn_relu_l2_bi";
    lstm_one_layer: LstmMode, 4, 1, false, "lstm_l1";
    lstm_two_layers: LstmMode, 4, 2, false, "lstm_l2";
    lstm_bidirectional: LstmMode, 4, 1, true, "lstm_l1_bi";
    lstm_two_layers_bidirectional: LstmMode, 4, 2, true, "lstm_l2_bi";
    gru_one_layer: GruMode, 3, 1, false, "gru_l1";
    gru_two_layers: GruMode, 3, 2, false, "gru_l2";
    gru_bidirectional: GruMode, 3, 1, true, "gru_l1_bi";
    gru_two_layers_bidirectional: GruMode, 3, 2, true, "gru_l2_bi";
}

fn random_tensor<S: ConstShape>(seed: u64) -> Tensor<S, f64, TestDevice> {
    let n = S::default().num_elements();
    TestDevice::default().tensor_from_vec(random_vec(&mut rng(seed), n), S::default())
}

#[test]
fn lstm_cell_gradients_match_finite_differences() {
    let dev = TestDevice::default();
    let cell = dev.build_module::<LstmCell<I, H>, f64>();
    let x = random_tensor::<Rank2<B, I>>(1);
    let h = random_tensor::<Rank2<B, H>>(2);
    let c = random_tensor::<Rank2<B, H>>(3);
    check_input_gradient("LstmCell d h'/dx", &x, |x| {
        cell.forward((x, (h.retaped(), c.retaped()))).0
    });
    check_input_gradient("LstmCell d h'/dh", &h, |h| {
        cell.forward((x.retaped(), (h, c.retaped()))).0
    });
    check_input_gradient("LstmCell d h'/dc", &c, |c| {
        cell.forward((x.retaped(), (h.retaped(), c))).0
    });
}

#[test]
fn gru_and_rnn_cell_gradients_match_finite_differences() {
    let dev = TestDevice::default();
    let gru = dev.build_module::<GruCell<I, H>, f64>();
    let rnn = dev.build_module::<RnnCell<I, H>, f64>();
    let x = random_tensor::<Rank2<B, I>>(4);
    let h = random_tensor::<Rank2<B, H>>(5);
    check_input_gradient("GruCell d h'/dx", &x, |x| gru.forward((x, h.retaped())));
    check_input_gradient("GruCell d h'/dh", &h, |h| gru.forward((x.retaped(), h)));
    check_input_gradient("RnnCell d h'/dx", &x, |x| rnn.forward((x, h.retaped())));
    check_input_gradient("RnnCell d h'/dh", &h, |h| rnn.forward((x.retaped(), h)));
}

#[test]
fn cells_step_like_one_layer_sequences() {
    // A one-step sequence through Lstm<I, H> is the cell with the same weights. The
    // sequence runs the device's recurrent kernel and the cell dfdx's ops, whose matmuls
    // sum in other orders: equal to f64 rounding, not bit for bit.
    let dev = TestDevice::default();
    let lstm = dev.build_module::<Lstm<I, H>, f64>();
    let cell = &lstm.first[0];
    let x = random_tensor::<Rank2<B, I>>(6);
    let (h, c) = cell.forward((x.clone(), (dev.zeros(), dev.zeros())));
    let seq: Tensor<Rank3<B, 1, I>, f64, _> = x.reshape();
    let (y, (hn, cn)) = lstm.forward_with_state(seq, None);
    let exact = Tolerance { abs: 0.0, rel: 0.0 };
    assert_close("h", &y.as_vec(), &h.as_vec(), F64_MATCH);
    assert_close("h_n", &hn.as_vec(), &y.as_vec(), exact);
    assert_close("c_n", &cn.as_vec(), &c.as_vec(), F64_MATCH);
}

#[test]
fn shapes_and_parameter_counts_match_pytorch() {
    // torch.nn.LSTM(28, 128): 4 * 128 * (28 + 128) + 8 * 128 = 80,896 parameters.
    shapesafe::assert_shapes!((Lstm<28, 128>, LastStep, Linear<128, 10>): Rank2<28, 28> => Rank1<10>, params = 80_896 + 1290);
    // torch.nn.GRU(8, 16, 2, bidirectional=True): 2 * (3*16*(8+16) + 96) + 2 * (3*16*(32+16) + 96).
    shapesafe::assert_shapes!(Gru<8, 16, 2, true>: Rank2<7, 8> => Rank2<7, 32>, params = 7296);
    shapesafe::assert_shapes!(Rnn<8, 16>: Rank2<7, 8> => Rank2<7, 16>, params = 16 * 24 + 32);
    let dev = TestDevice::default();
    assert_eq!(
        dev.build_module::<Gru<8, 16, 2, true>, f32>()
            .num_trainable_params(),
        7296
    );
    assert_eq!(
        dev.build_module::<Lstm<28, 128>, f32>()
            .num_trainable_params(),
        80_896
    );
    assert_eq!(
        <Lstm<28, 128, 2, true> as ShapeInfer<Rank2<5, 28>>>::name(),
        "Lstm<28, 128, 2, true>"
    );
}

#[test]
fn last_step_picks_the_last_time_step() {
    let dev = TestDevice::default();
    let x = random_tensor::<Rank3<B, T, H>>(8);
    let y = LastStep.forward(x.clone());
    let v = x.as_vec();
    let expected: Vec<f64> = (0..B)
        .flat_map(|b| v[(b * T + T - 1) * H..(b * T + T) * H].to_vec())
        .collect();
    assert_close(
        "LastStep",
        &y.as_vec(),
        &expected,
        Tolerance { abs: 0.0, rel: 0.0 },
    );
    let one = LastStep.forward(x.clone().select(dev.tensor(1)));
    assert_close(
        "LastStep unbatched",
        &one.as_vec(),
        &expected[H..],
        Tolerance { abs: 0.0, rel: 0.0 },
    );
    check_input_gradient("LastStep", &x, |x| LastStep.forward(x));
}

#[test]
fn dropout_applies_between_layers_in_training_only() {
    let dev = TestDevice::default();
    let mut lstm = dev.build_module::<Lstm<I, H, 2>, f64>();
    let x = random_tensor::<Rank3<B, T, I>>(9);
    let eval = lstm.forward(x.clone()).as_vec();
    lstm.dropout = 0.9;
    assert_eq!(
        lstm.forward(x.clone()).as_vec(),
        eval,
        "forward ignores dropout"
    );
    let train = lstm.forward_mut(x.trace(Gradients::leaky())).as_vec();
    assert_ne!(train, eval, "forward_mut drops between layers");
    lstm.dropout = 0.0;
    assert_eq!(lstm.forward_mut(x.trace(Gradients::leaky())).as_vec(), eval);
}

#[test]
fn a_sequence_classifier_trains() {
    let dev = TestDevice::default();
    type Net = (Gru<2, 8>, LastStep, Linear<8, 2>);
    let mut model = dev.build_module::<Net, f64>();
    let mut grads = model.alloc_grads();
    let mut opt = Adam::new(
        &model,
        AdamConfig {
            lr: 0.05,
            ..Default::default()
        },
    );
    // The class is whether the sequence's first feature sums positive.
    let x = random_tensor::<Rank3<8, 6, 2>>(10);
    let v = x.as_vec();
    let labels: Vec<f64> = (0..8)
        .flat_map(|b| {
            let s: f64 = (0..6).map(|t| v[(b * 6 + t) * 2]).sum();
            if s > 0.0 {
                [1.0, 0.0]
            } else {
                [0.0, 1.0]
            }
        })
        .collect();
    let y: Tensor<Rank2<8, 2>, f64, _> = dev.tensor_from_vec(labels, Default::default());
    let mut first = None;
    let mut loss_value = 0.0;
    for _ in 0..60 {
        let loss = cross_entropy_with_logits_loss(model.forward_mut(x.trace(grads)), y.clone());
        loss_value = loss.array();
        first.get_or_insert(loss_value);
        grads = loss.backward();
        opt.update(&mut model, &grads).unwrap();
        model.zero_grads(&mut grads);
    }
    assert!(
        loss_value < first.unwrap() * 0.5,
        "loss {first:?} -> {loss_value}"
    );
}
