//! Layers as modules: const-generic plumbing against the f64 reference, batched vs
//! unbatched, activations against PyTorch values, end-to-end gradients, dfdx interop, weights on disk.

mod common;

use common::TestDevice;

use common::*;
use shapesafe::models::LeNet5;
use shapesafe::prelude::*;
use shapesafe::train::{load_weights, save_atomic};
use shapesafe::Error;

fn conv_case<const IN: usize, const OUT: usize>(
    batch: usize,
    size: (usize, usize),
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
    groups: usize,
) -> ConvCase {
    ConvCase {
        batch,
        in_channels: IN,
        out_channels: OUT,
        height: size.0,
        width: size.1,
        kernel,
        stride,
        padding,
        dilation,
        groups,
    }
}

/// One layer instance per line: generics, input size, and the batch as a `Const` and as `usize`.
macro_rules! conv_layer_case {
    ($in:literal, $out:literal, $k:literal, $s:literal, $p:literal, $d:literal, $g:literal, $h:literal x $w:literal) => {{
        let dev = TestDevice::default();
        let conv = dev.build_module::<Conv2d<$in, $out, $k, $s, $p, $d, $g>, f64>();
        let c = conv_case::<$in, $out>(2, ($h, $w), $k, $s, $p, $d, $g);
        let mut r = rng(20);
        let x = random_vec(&mut r, c.input_len());
        let expected = conv2d_reference(&c, &x, &conv.weight.as_vec(), &conv.bias.as_vec());
        let what = format!("{c:?}");
        // Batch as a Const.
        let xt: Tensor<Rank4<2, $in, $h, $w>, f64, _> =
            dev.tensor_from_vec(x.clone(), Default::default());
        let y = conv.forward(xt);
        assert_close(
            &format!("const batch {what}"),
            &y.as_vec(),
            &expected,
            F64_TIGHT,
        );
        // Batch as a usize.
        let xt: Tensor<(usize, Const<$in>, Const<$h>, Const<$w>), f64, _> =
            dev.tensor_from_vec(x.clone(), (2, Const, Const, Const));
        let y = conv.forward(xt);
        assert_eq!(y.shape().0, 2);
        assert_close(
            &format!("usize batch {what}"),
            &y.as_vec(),
            &expected,
            F64_TIGHT,
        );
        // Unbatched: the first image alone.
        let one = x.len() / 2;
        let xt: Tensor<Rank3<$in, $h, $w>, f64, _> =
            dev.tensor_from_vec(x[..one].to_vec(), Default::default());
        let y = conv.forward(xt);
        assert_close(
            &format!("unbatched {what}"),
            &y.as_vec(),
            &expected[..expected.len() / 2],
            F64_TIGHT,
        );
    }};
}

#[test]
fn conv2d_layers_match_reference() {
    conv_layer_case!(1, 6, 5, 1, 2, 1, 1, 28 x 28);
    conv_layer_case!(3, 4, 3, 2, 1, 1, 1, 9 x 8);
    conv_layer_case!(4, 6, 3, 1, 2, 2, 2, 7 x 7);
    conv_layer_case!(4, 4, 3, 1, 1, 1, 4, 5 x 6);
    conv_layer_case!(2, 3, 1, 1, 0, 1, 1, 4 x 4);
    conv_layer_case!(3, 2, 4, 3, 0, 1, 1, 10 x 11);
}

#[test]
fn pool_layers_match_reference() {
    let dev = TestDevice::default();
    let c = PoolCase {
        batch: 2,
        channels: 3,
        height: 7,
        width: 6,
        kernel: 3,
        stride: 2,
        padding: 1,
    };
    let x = random_vec(&mut rng(21), c.input_len());
    let xt: Tensor<Rank4<2, 3, 7, 6>, f64, _> = dev.tensor_from_vec(x.clone(), Default::default());
    let y = MaxPool2d::<3, 2, 1>.forward(xt.clone());
    assert_eq!(y.shape().concrete(), [2, 3, 4, 3]);
    assert_close(
        "max",
        &y.as_vec(),
        &pool2d_reference(&c, &x, true),
        F64_TIGHT,
    );
    let y = AvgPool2d::<3, 2, 1>.forward(xt);
    assert_close(
        "avg",
        &y.as_vec(),
        &pool2d_reference(&c, &x, false),
        F64_TIGHT,
    );
    // STRIDE defaults to KERNEL.
    let xt: Tensor<Rank3<3, 7, 6>, f64, _> =
        dev.tensor_from_vec(x[..126].to_vec(), Default::default());
    assert_eq!(MaxPool2d::<2>.forward(xt).shape().concrete(), [3, 3, 3]);
}

#[test]
fn flatten_then_linear_is_a_matmul() {
    let dev = TestDevice::default();
    let model = dev.build_module::<(Flatten, Linear<12, 5>), f64>();
    let x = random_vec(&mut rng(22), 2 * 12);
    let xt: Tensor<Rank4<2, 3, 2, 2>, f64, _> = dev.tensor_from_vec(x.clone(), Default::default());
    let y = model.forward(xt);
    let (w, b) = (model.1.weight.as_vec(), model.1.bias.as_vec());
    let expected: Vec<f64> = (0..2)
        .flat_map(|n| {
            let (x, w, b) = (&x, &w, &b);
            (0..5).map(move |o| b[o] + dot(&x[n * 12..(n + 1) * 12], &w[o * 12..(o + 1) * 12]))
        })
        .collect();
    assert_close("linear", &y.as_vec(), &expected, F64_TIGHT);
    // Unbatched gives the first row.
    let xt: Tensor<Rank3<3, 2, 2>, f64, _> =
        dev.tensor_from_vec(x[..12].to_vec(), Default::default());
    assert_close(
        "unbatched linear",
        &model.forward(xt).as_vec(),
        &expected[..5],
        F64_TIGHT,
    );
}

// torch.nn.functional.{gelu, elu, softplus, leaky_relu}(torch.tensor([-2., -0.5, 0., 0.5, 2.], dtype=torch.float64))
const INPUTS: [f64; 5] = [-2.0, -0.5, 0.0, 0.5, 2.0];
const GELU_TORCH: [f64; 5] = [
    -0.04550026389635842,
    -0.15426876936299344,
    0.0,
    0.34573123063700656,
    1.9544997361036416,
];

#[test]
fn activations_match_pytorch() {
    let dev = TestDevice::default();
    let x = || dev.tensor(INPUTS);
    assert_close("GELU", &GELU.forward(x()).as_vec(), &GELU_TORCH, F64_TIGHT);
    let elu: Vec<f64> = INPUTS
        .iter()
        .map(|&v| if v > 0.0 { v } else { v.exp_m1() })
        .collect();
    assert_close(
        "ELU",
        &ELU::default().forward(x()).as_vec(),
        &elu,
        F64_TIGHT,
    );
    let elu2: Vec<f64> = INPUTS
        .iter()
        .map(|&v| if v > 0.0 { v } else { 2.0 * v.exp_m1() })
        .collect();
    assert_close(
        "ELU alpha 2",
        &ELU { alpha: 2.0 }.forward(x()).as_vec(),
        &elu2,
        F64_TIGHT,
    );
    let softplus: Vec<f64> = INPUTS.iter().map(|&v| v.exp().ln_1p()).collect();
    assert_close(
        "Softplus",
        &Softplus.forward(x()).as_vec(),
        &softplus,
        F64_TIGHT,
    );
    let leaky: Vec<f64> = INPUTS
        .iter()
        .map(|&v| if v > 0.0 { v } else { 0.01 * v })
        .collect();
    assert_close(
        "LeakyReLU",
        &LeakyReLU::default().forward(x()).as_vec(),
        &leaky,
        F64_TIGHT,
    );
    let relu: Vec<f64> = INPUTS.iter().map(|&v| v.max(0.0)).collect();
    assert_close("ReLU", &ReLU.forward(x()).as_vec(), &relu, F64_TIGHT);
    let sigmoid: Vec<f64> = INPUTS.iter().map(|&v| 1.0 / (1.0 + (-v).exp())).collect();
    assert_close(
        "Sigmoid",
        &Sigmoid.forward(x()).as_vec(),
        &sigmoid,
        F64_TIGHT,
    );
    let tanh: Vec<f64> = INPUTS.iter().map(|&v| v.tanh()).collect();
    assert_close("Tanh", &Tanh.forward(x()).as_vec(), &tanh, F64_TIGHT);
    assert_close(
        "Identity",
        &Identity.forward(x()).as_vec(),
        &INPUTS,
        F64_TIGHT,
    );
    let total: f64 = INPUTS.iter().map(|v| v.exp()).sum();
    let softmax: Vec<f64> = INPUTS.iter().map(|v| v.exp() / total).collect();
    assert_close(
        "Softmax",
        &Softmax.forward(x()).as_vec(),
        &softmax,
        F64_TIGHT,
    );
}

#[test]
fn activation_gradients_match_finite_differences() {
    let dev = TestDevice::default();
    let r = [0.3, -1.2, 0.7, 2.0, -0.4];
    // Away from the kinks at 0, where the derivative is not defined.
    let at = [-2.0, -0.5, 0.25, 0.5, 2.0];
    fn check<
        M: Module<
                Tensor<Rank1<5>, f64, TestDevice, OwnedTape<f64, TestDevice>>,
                Output = Tensor<Rank1<5>, f64, TestDevice, OwnedTape<f64, TestDevice>>,
            > + Module<Tensor<Rank1<5>, f64, TestDevice>, Output = Tensor<Rank1<5>, f64, TestDevice>>,
    >(
        name: &str,
        layer: M,
        dev: &TestDevice,
        at: [f64; 5],
        r: [f64; 5],
    ) where
        <M as Module<Tensor<Rank1<5>, f64, TestDevice, OwnedTape<f64, TestDevice>>>>::Error:
            std::fmt::Debug,
    {
        let x = dev.tensor(at);
        let y = layer.forward(x.leaky_trace());
        let g = (y * dev.tensor(r)).sum().backward().get(&x).as_vec();
        let fd = finite_differences(&at, |v| {
            let v: [f64; 5] = v.try_into().unwrap();
            dot(&layer.forward(dev.tensor(v)).as_vec(), &r)
        });
        assert_close(name, &g, &fd, FINITE_DIFF);
    }
    check("GELU", GELU, &dev, at, r);
    check("ELU", ELU::default(), &dev, at, r);
    check("Softplus", Softplus, &dev, at, r);
    check("LeakyReLU", LeakyReLU::default(), &dev, at, r);
    check("Softmax", Softmax, &dev, at, r);
    check("ReLU6", ReLU6, &dev, [-2.0, -0.5, 0.25, 5.5, 7.0], r);
}

#[test]
fn relu6_clamps_to_zero_and_six() {
    let at = [-3.0, 0.5, 5.9, 6.5, 10.0];
    let y = ReLU6.forward(TestDevice::default().tensor(at)).as_vec();
    let expected: Vec<f64> = at.iter().map(|v: &f64| v.clamp(0.0, 6.0)).collect();
    assert_close("ReLU6", &y, &expected, F64_TIGHT);
}

/// `bias=False` builds a weight-only conv that equals the biased conv with a zero bias.
#[test]
fn conv_without_bias_is_the_conv_with_a_zero_bias() {
    type NoBias = Conv2d<4, 6, 3, 2, 1, 1, 2, false>;
    type WithBias = Conv2d<4, 6, 3, 2, 1, 1, 2>;
    assert_eq!(<NoBias as ShapeInfer<Rank3<4, 9, 9>>>::PARAMS, 6 * 2 * 9);
    assert_eq!(
        <NoBias as ShapeInfer<Rank3<4, 9, 9>>>::name(),
        "Conv2d<4, 6, 3, 2, 1, 1, 2, false>"
    );
    let dev = TestDevice::default();
    let plain = dev.build_module::<NoBias, f64>();
    let mut biased = dev.build_module::<WithBias, f64>();
    biased.weight = plain.weight.clone();
    biased.bias = dev.zeros();
    let x: Tensor<Rank4<2, 4, 9, 9>, f64, _> = dev.sample_normal();
    let (a, b) = (plain.forward(x.clone()), biased.forward(x.clone()));
    assert_close("no-bias conv", &a.as_vec(), &b.as_vec(), F64_TIGHT);
    let ga = plain.forward(x.leaky_trace()).sum().backward();
    let gb = biased.forward(x.leaky_trace()).sum().backward();
    assert_close(
        "weight grad",
        &ga.get(&plain.weight).as_vec(),
        &gb.get(&biased.weight).as_vec(),
        F64_TIGHT,
    );
    assert_close(
        "input grad",
        &ga.get(&x).as_vec(),
        &gb.get(&x).as_vec(),
        F64_TIGHT,
    );
    assert_eq!(plain.num_trainable_params(), 108);
}

type Small = (
    Conv2d<2, 3, 3, 1, 1>,
    Tanh,
    MaxPool2d<2>,
    Flatten,
    Linear<12, 4>,
);

/// The whole model's parameter gradients against central differences of its own forward.
#[test]
fn model_gradients_match_finite_differences() {
    let dev = TestDevice::seed_from_u64(5);
    let model = dev.build_module::<Small, f64>();
    let x: Tensor<Rank4<2, 2, 4, 4>, f64, _> = dev.sample_normal();
    let r: Tensor<Rank2<2, 4>, f64, _> = dev.sample_normal();
    let grads = (model.forward(x.leaky_trace()) * r.clone())
        .sum()
        .backward();
    let loss_with = |m: &<Small as BuildOnDevice<TestDevice, f64>>::Built| {
        dot(&m.forward(x.clone()).as_vec(), &r.as_vec())
    };
    let conv_w = model.0.weight.as_vec();
    let fd = finite_differences(&conv_w, |w| {
        let mut m = model.clone();
        m.0.weight.copy_from(w);
        loss_with(&m)
    });
    assert_close(
        "conv weight",
        &grads.get(&model.0.weight).as_vec(),
        &fd,
        FINITE_DIFF,
    );
    let conv_b = model.0.bias.as_vec();
    let fd = finite_differences(&conv_b, |b| {
        let mut m = model.clone();
        m.0.bias.copy_from(b);
        loss_with(&m)
    });
    assert_close(
        "conv bias",
        &grads.get(&model.0.bias).as_vec(),
        &fd,
        FINITE_DIFF,
    );
    let lin_w = model.4.weight.as_vec();
    let fd = finite_differences(&lin_w, |w| {
        let mut m = model.clone();
        m.4.weight.copy_from(w);
        loss_with(&m)
    });
    assert_close(
        "linear weight",
        &grads.get(&model.4.weight).as_vec(),
        &fd,
        FINITE_DIFF,
    );
    let xs = x.as_vec();
    let fd = finite_differences(&xs, |v| {
        let xv: Tensor<Rank4<2, 2, 4, 4>, f64, _> =
            dev.tensor_from_vec(v.to_vec(), Default::default());
        dot(&model.forward(xv).as_vec(), &r.as_vec())
    });
    assert_close("input", &grads.get(&x).as_vec(), &fd, FINITE_DIFF);
}

/// shapesafe layers and dfdx layers share one tuple, and dfdx's optimizer trains it.
#[test]
fn mixes_with_dfdx_layers_and_optimizers() {
    type Mixed = (
        Conv2d<1, 2, 3>,
        ReLU,
        Flatten,
        Linear<18, 8>,
        dfdx::nn::builders::Linear<8, 3>,
        dfdx::nn::builders::Dropout,
    );
    let dev = TestDevice::seed_from_u64(6);
    let mut model = dev.build_module::<Mixed, f64>();
    assert_eq!(
        model.num_trainable_params(),
        2 * 9 + 2 + 18 * 8 + 8 + 8 * 3 + 3
    );
    let x: Tensor<Rank4<4, 1, 5, 5>, f64, _> = dev.sample_normal();
    let y: Tensor<Rank2<4, 3>, f64, _> = dev.sample_normal();
    let manual = model.4.forward(
        model
            .3
            .forward(model.2.forward(model.1.forward(model.0.forward(x.clone())))),
    );
    assert_close(
        "inference",
        &model.forward(x.clone()).as_vec(),
        &manual.as_vec(),
        F64_TIGHT,
    );
    let mut opt = Sgd::new(
        &model,
        SgdConfig {
            lr: 0.05,
            ..Default::default()
        },
    );
    let mut losses = Vec::new();
    for _ in 0..30 {
        let out = model.4.forward(
            model.3.forward(
                model
                    .2
                    .forward(model.1.forward(model.0.forward(x.leaky_trace()))),
            ),
        );
        let loss = mse_loss(out, y.clone());
        losses.push(loss.array());
        let grads = loss.backward();
        opt.update(&mut model, &grads).unwrap();
    }
    assert!(
        losses[29] < 0.5 * losses[0],
        "loss did not fall: {} -> {}",
        losses[0],
        losses[29]
    );
}

#[test]
fn summary_of_lenet() {
    let s = Summary::of::<LeNet5, Rank3<1, 28, 28>>();
    assert_eq!(s.total_params(), 61_706);
    assert_eq!(s.rows.len(), 12);
    assert_eq!(s.rows[0].layer, "Conv2d<1, 6, 5, 1, 2>");
    assert_eq!(s.rows[5].output, vec![16, 5, 5]);
    assert_eq!(s.rows[6].output, vec![400]);
    let text = s.to_string();
    assert!(
        text.contains("Linear<400, 120>") && text.contains("Total params: 61,706"),
        "{text}"
    );
}

fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("shapesafe-test-{}-{name}", std::process::id()))
}

#[test]
fn lenet_weights_round_trip_and_bad_files_are_errors() {
    let dev = TestDevice::seed_from_u64(7);
    let model = dev.build_module::<LeNet5, f32>();
    let path = temp_path("lenet.safetensors");
    save_atomic(&model, &path).unwrap();
    let mut other = dev.build_module::<LeNet5, f32>();
    let x: Tensor<Rank4<3, 1, 28, 28>, f32, _> = dev.sample_normal();
    assert_ne!(
        model.forward(x.clone()).array(),
        other.forward(x.clone()).array()
    );
    load_weights(&mut other, &path).unwrap();
    assert_eq!(
        model.forward(x.clone()).array(),
        other.forward(x.clone()).array()
    );

    // Wrong shapes: a LeNet with 8 first-layer filters. The model is left as it was.
    type Wider = (
        (Conv2d<1, 8, 5, 1, 2>, ReLU, MaxPool2d<2>),
        (Conv2d<8, 16, 5>, ReLU, MaxPool2d<2>),
        Flatten,
        (Linear<400, 120>, ReLU),
        (Linear<120, 84>, ReLU),
        Linear<84, 10>,
    );
    let mut wider = dev.build_module::<Wider, f32>();
    let before = wider.0 .0.weight.as_vec();
    let err = load_weights(&mut wider, &path).unwrap_err();
    assert!(matches!(err, Error::Weights { .. }), "{err}");
    assert_eq!(
        wider.0 .0.weight.as_vec(),
        before,
        "a failed load changed the model"
    );

    // Wrong dtype: an f64 file into an f32 model (dfdx alone would panic).
    let path64 = temp_path("lenet64.safetensors");
    save_atomic(&dev.build_module::<LeNet5, f64>(), &path64).unwrap();
    let err = load_weights(&mut other, &path64).unwrap_err();
    assert!(err.to_string().contains("F64"), "{err}");

    // Not a safetensors file, and a missing file.
    let junk = temp_path("junk.safetensors");
    std::fs::write(&junk, b"definitely not safetensors").unwrap();
    assert!(matches!(
        load_weights(&mut other, &junk),
        Err(Error::Weights { .. })
    ));
    assert!(matches!(
        load_weights(&mut other, temp_path("missing")),
        Err(Error::Io { .. })
    ));
    assert_eq!(model.forward(x.clone()).array(), other.forward(x).array());
    for p in [path, path64, junk] {
        std::fs::remove_file(p).unwrap();
    }
}
