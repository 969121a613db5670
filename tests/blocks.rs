//! Building blocks against plain-loop f64 references: BatchNorm2d (train and eval, running
//! statistics over several steps, gradients), Residual, ResidualProjection and Concat (values
//! and finite-difference gradients through conv branches), training with BatchNorm, safetensors.

mod common;

use common::TestDevice;

use common::*;
use rand::Rng;
use shapesafe::prelude::*;
use shapesafe::shape::SummaryRow;

type Taped<S> = Tensor<S, f64, TestDevice, OwnedTape<f64, TestDevice>>;

const EPS: f64 = 1e-5;
const MOMENTUM: f64 = 0.1;

/// BatchNorm2d in training mode by its definition, on `(batch, channels, plane)` data;
/// updates `running_mean` and `running_var` as PyTorch does.
#[allow(clippy::too_many_arguments)]
fn batchnorm_train_reference(
    x: &[f64],
    batch: usize,
    channels: usize,
    plane: usize,
    weight: &[f64],
    bias: &[f64],
    running_mean: &mut [f64],
    running_var: &mut [f64],
) -> Vec<f64> {
    let n = (batch * plane) as f64;
    let mut y = vec![0.0; x.len()];
    for c in 0..channels {
        let index = |b: usize, i: usize| (b * channels + c) * plane + i;
        let mut sum = 0.0;
        for b in 0..batch {
            for i in 0..plane {
                sum += x[index(b, i)];
            }
        }
        let mean = sum / n;
        let mut squares = 0.0;
        for b in 0..batch {
            for i in 0..plane {
                squares += (x[index(b, i)] - mean).powi(2);
            }
        }
        let var = squares / n;
        for b in 0..batch {
            for i in 0..plane {
                let k = index(b, i);
                y[k] = (x[k] - mean) / (var + EPS).sqrt() * weight[c] + bias[c];
            }
        }
        running_mean[c] = (1.0 - MOMENTUM) * running_mean[c] + MOMENTUM * mean;
        running_var[c] = (1.0 - MOMENTUM) * running_var[c] + MOMENTUM * var * n / (n - 1.0);
    }
    y
}

/// BatchNorm2d in inference mode: the running statistics normalise.
fn batchnorm_eval_reference(
    x: &[f64],
    channels: usize,
    plane: usize,
    weight: &[f64],
    bias: &[f64],
    running_mean: &[f64],
    running_var: &[f64],
) -> Vec<f64> {
    x.iter()
        .enumerate()
        .map(|(k, &v)| {
            let c = (k / plane) % channels;
            (v - running_mean[c]) / (running_var[c] + EPS).sqrt() * weight[c] + bias[c]
        })
        .collect()
}

/// Random weights in [0.5, 1.5) so every output element counts differently.
fn output_weights(n: usize) -> Vec<f64> {
    let mut r = rng(7);
    (0..n).map(|_| r.gen_range(0.5..1.5)).collect()
}

/// d(sum(w * f(x)))/dx against central differences, for any input and output shape
/// (`usize` dims included, unlike `common::check_input_gradient`).
#[track_caller]
fn check_gradient<S: Shape, O: Shape>(
    what: &str,
    x: &Tensor<S, f64, TestDevice>,
    f: impl Fn(Taped<S>) -> Taped<O>,
) {
    let dev = x.device().clone();
    let out_shape = *f(x.leaky_trace()).shape();
    let w = dev.tensor_from_vec(output_weights(out_shape.num_elements()), out_shape);
    let objective = |t: Taped<S>| (f(t) * w.clone()).sum();
    let analytic = objective(x.leaky_trace()).backward().get(x).as_vec();
    let numeric = finite_differences(&x.as_vec(), |v| {
        objective(dev.tensor_from_vec(v.to_vec(), *x.shape()).leaky_trace()).array()
    });
    assert_close(what, &analytic, &numeric, FINITE_DIFF);
}

/// The gradient of `objective` with respect to one parameter of `model` (picked by
/// `param`), against central differences on copies of the model.
#[track_caller]
fn check_param_gradient<M: Clone, P: Shape>(
    what: &str,
    model: &M,
    param: impl Fn(&mut M) -> &mut Tensor<P, f64, TestDevice>,
    objective: impl Fn(&mut M) -> Taped<Rank0>,
) {
    let mut m = model.clone();
    let grads = objective(&mut m).backward();
    let analytic = grads.get(param(&mut m)).as_vec();
    let mut m = model.clone();
    let at = param(&mut m).as_vec();
    let numeric = finite_differences(&at, |v| {
        let mut m = model.clone();
        param(&mut m).copy_from(v);
        objective(&mut m).array()
    });
    assert_close(what, &analytic, &numeric, FINITE_DIFF);
}

fn randomise<S: Shape>(t: &mut Tensor<S, f64, TestDevice>, seed: u64) {
    let n = t.shape().num_elements();
    t.copy_from(&random_vec(&mut rng(seed), n));
}

fn conv_case(
    batch: usize,
    channels: (usize, usize),
    size: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
) -> ConvCase {
    ConvCase {
        batch,
        in_channels: channels.0,
        out_channels: channels.1,
        height: size,
        width: size,
        kernel,
        stride,
        padding,
        dilation: 1,
        groups: 1,
    }
}

fn tanh_all(v: Vec<f64>) -> Vec<f64> {
    v.into_iter().map(f64::tanh).collect()
}

fn add(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

/// `torch.cat([a, b], dim=1)` of `(batch, ca, plane)` and `(batch, cb, plane)` data.
fn cat_channels(a: &[f64], b: &[f64], batch: usize, plane: usize) -> Vec<f64> {
    let (ca, cb) = (a.len() / batch / plane, b.len() / batch / plane);
    let mut out = Vec::with_capacity(a.len() + b.len());
    for n in 0..batch {
        out.extend_from_slice(&a[n * ca * plane..(n + 1) * ca * plane]);
        out.extend_from_slice(&b[n * cb * plane..(n + 1) * cb * plane]);
    }
    out
}

#[test]
fn batchnorm_train_and_eval_match_reference_over_steps() {
    const C: usize = 3;
    let dev = TestDevice::default();
    let mut bn = dev.build_module::<BatchNorm2d<C>, f64>();
    assert_eq!(bn.weight.array(), [1.0; C]);
    assert_eq!(bn.bias.array(), [0.0; C]);
    assert_eq!(bn.running_mean.array(), [0.0; C]);
    assert_eq!(bn.running_var.array(), [1.0; C]);
    randomise(&mut bn.weight, 1);
    randomise(&mut bn.bias, 2);
    let (weight, bias) = (bn.weight.as_vec(), bn.bias.as_vec());
    let (mut mean, mut var) = (vec![0.0; C], vec![1.0; C]);
    let mut r = rng(3);

    // Several training steps, the batch as a Const, as a usize, and one image alone;
    // inputs off-centre so the running statistics move visibly.
    for step in 0..3 {
        let x: Vec<f64> = random_vec(&mut r, 4 * C * 5 * 6)
            .iter()
            .map(|v| 3.0 * v + step as f64)
            .collect();
        let expected = batchnorm_train_reference(&x, 4, C, 30, &weight, &bias, &mut mean, &mut var);
        let xt: Tensor<Rank4<4, C, 5, 6>, f64, _> = dev.tensor_from_vec(x, Default::default());
        let y = bn.forward_mut(xt);
        assert_close(
            &format!("train step {step}"),
            &y.as_vec(),
            &expected,
            F64_TIGHT,
        );
        assert_close("running_mean", &bn.running_mean.as_vec(), &mean, F64_TIGHT);
        assert_close("running_var", &bn.running_var.as_vec(), &var, F64_TIGHT);
    }
    let x = random_vec(&mut r, 2 * C * 5 * 6);
    let expected = batchnorm_train_reference(&x, 2, C, 30, &weight, &bias, &mut mean, &mut var);
    let xt: Tensor<(usize, Const<C>, Const<5>, Const<6>), f64, _> =
        dev.tensor_from_vec(x, (2, Const, Const, Const));
    let y = bn.forward_mut(xt.leaky_trace());
    assert_close("train usize batch", &y.as_vec(), &expected, F64_TIGHT);
    assert_close("running_mean", &bn.running_mean.as_vec(), &mean, F64_TIGHT);
    assert_close("running_var", &bn.running_var.as_vec(), &var, F64_TIGHT);
    let x = random_vec(&mut r, C * 5 * 6);
    let expected = batchnorm_train_reference(&x, 1, C, 30, &weight, &bias, &mut mean, &mut var);
    let xt: Tensor<Rank3<C, 5, 6>, f64, _> = dev.tensor_from_vec(x, Default::default());
    let y = bn.forward_mut(xt);
    assert_close("train unbatched", &y.as_vec(), &expected, F64_TIGHT);
    assert_close("running_var", &bn.running_var.as_vec(), &var, F64_TIGHT);

    // Inference uses the running statistics and leaves them alone.
    let x = random_vec(&mut r, 2 * C * 5 * 6);
    let expected = batchnorm_eval_reference(&x, C, 30, &weight, &bias, &mean, &var);
    let xt: Tensor<Rank4<2, C, 5, 6>, f64, _> = dev.tensor_from_vec(x.clone(), Default::default());
    assert_close("eval", &bn.forward(xt).as_vec(), &expected, F64_TIGHT);
    let xt: Tensor<(usize, Const<C>, Const<5>, Const<6>), f64, _> =
        dev.tensor_from_vec(x.clone(), (2, Const, Const, Const));
    let y = bn.forward(xt.leaky_trace());
    assert_close("eval usize batch", &y.as_vec(), &expected, F64_TIGHT);
    let xt: Tensor<Rank3<C, 5, 6>, f64, _> =
        dev.tensor_from_vec(x[..C * 30].to_vec(), Default::default());
    let y = bn.forward(xt);
    assert_close(
        "eval unbatched",
        &y.as_vec(),
        &expected[..C * 30],
        F64_TIGHT,
    );
    assert_close(
        "running_mean after eval",
        &bn.running_mean.as_vec(),
        &mean,
        Tolerance { abs: 0.0, rel: 0.0 },
    );
    assert_close(
        "running_var after eval",
        &bn.running_var.as_vec(),
        &var,
        F64_TIGHT,
    );

    // f32 against the same reference.
    let mut bn32 = dev.build_module::<BatchNorm2d<C>, f32>();
    let x = random_vec(&mut r, 4 * C * 7 * 7);
    let (mut mean, mut var) = (vec![0.0; C], vec![1.0; C]);
    let ones = vec![1.0; C];
    let zeros = vec![0.0; C];
    let expected = batchnorm_train_reference(&x, 4, C, 49, &ones, &zeros, &mut mean, &mut var);
    let xt: Tensor<Rank4<4, C, 7, 7>, f32, _> =
        dev.tensor_from_vec(x.iter().map(|&v| v as f32).collect(), Default::default());
    assert_close_f32("f32 train", &bn32.forward_mut(xt).as_vec(), &expected, F32);
    assert_close_f32("f32 running_var", &bn32.running_var.as_vec(), &var, F32);
}

/// Modules built by Conv2d's output (computed spatial dims) and fed a Concat's `SumDim` channels.
#[test]
fn batchnorm_accepts_computed_dims() {
    let dev = TestDevice::default();
    type Net = (
        Conv2d<2, 3, 3, 2>,
        BatchNorm2d<3>,
        Concat<Identity, Conv2d<3, 2, 3, 1, 1>>,
        BatchNorm2d<5>,
    );
    shapesafe::assert_shapes!(Net: Rank3<2, 9, 9> => Rank3<5, 4, 4>, params = 57 + 6 + 56 + 10);
    let mut net = dev.build_module::<Net, f64>();
    let x: Tensor<(usize, Const<2>, Const<9>, Const<9>), f64, _> =
        dev.sample_normal_like(&(3, Const, Const, Const));
    let y = net.forward_mut(x.clone());
    assert_eq!(y.shape().concrete(), [3, 5, 4, 4]);
    // Training output is normalised per channel: mean 0, biased variance 1 (bias 0, weight 1).
    let v = y.as_vec();
    for c in 0..5 {
        let values: Vec<f64> = (0..3)
            .flat_map(|n| v[(n * 5 + c) * 16..(n * 5 + c + 1) * 16].to_vec())
            .collect();
        let mean = values.iter().sum::<f64>() / 48.0;
        let var = values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 48.0;
        assert!(mean.abs() < 1e-12, "channel {c}: mean {mean}");
        assert!((var - 1.0).abs() < 1e-3, "channel {c}: variance {var}");
    }
    assert_eq!(net.num_trainable_params(), 57 + 6 + 56 + 10);
    assert_eq!(
        <Net as ShapeInfer<Rank3<2, 9, 9>>>::PARAMS,
        net.num_trainable_params()
    );
}

#[test]
fn batchnorm_gradients_match_finite_differences() {
    const C: usize = 2;
    let dev = TestDevice::default();
    let mut bn = dev.build_module::<BatchNorm2d<C>, f64>();
    randomise(&mut bn.weight, 4);
    randomise(&mut bn.bias, 5);
    randomise(&mut bn.running_mean, 6);
    bn.running_var.copy_from(&[0.5, 2.0]);
    let mut r = rng(8);

    // Training mode: the batch statistics depend on the input, so every input element
    // moves every output of its channel.
    let x: Tensor<Rank4<3, C, 3, 4>, f64, _> =
        dev.tensor_from_vec(random_vec(&mut r, 3 * C * 12), Default::default());
    check_gradient("train input, const batch", &x, |t| {
        bn.clone().forward_mut(t)
    });
    let xu: Tensor<(usize, Const<C>, Const<3>, Const<4>), f64, _> =
        dev.tensor_from_vec(x.as_vec(), (3, Const, Const, Const));
    check_gradient("train input, usize batch", &xu, |t| {
        bn.clone().forward_mut(t)
    });
    let x1: Tensor<Rank3<C, 3, 4>, f64, _> =
        dev.tensor_from_vec(random_vec(&mut r, C * 12), Default::default());
    check_gradient("train input, unbatched", &x1, |t| bn.clone().forward_mut(t));

    let w = dev.tensor_from_vec(
        output_weights(3 * C * 12),
        (Const::<3>, Const::<C>, Const::<3>, Const::<4>),
    );
    let train = |m: &mut shapesafe::nn::modules::BatchNorm2d<C, f64, TestDevice>| {
        (m.forward_mut(x.leaky_trace()) * w.clone()).sum()
    };
    check_param_gradient("train weight", &bn, |m| &mut m.weight, train);
    check_param_gradient("train bias", &bn, |m| &mut m.bias, train);

    // Inference mode backpropagates too (fine-tuning with frozen statistics).
    check_gradient("eval input", &x, |t| bn.forward(t));
    check_gradient("eval input, unbatched", &x1, |t| bn.forward(t));
    let eval = |m: &mut shapesafe::nn::modules::BatchNorm2d<C, f64, TestDevice>| {
        (m.forward(x.leaky_trace()) * w.clone()).sum()
    };
    check_param_gradient("eval weight", &bn, |m| &mut m.weight, eval);
    check_param_gradient("eval bias", &bn, |m| &mut m.bias, eval);
}

#[test]
fn batchnorm_kernel_equals_its_composed_version() {
    // The CPU kernel against dfdx's composition (the CUDA version): outputs, running
    // statistics over three training steps, and the input and parameter gradients.
    use shapesafe::kernels::with_composed_ops;
    const C: usize = 3;
    let dev = TestDevice::default();
    let mut fast = dev.build_module::<BatchNorm2d<C>, f64>();
    randomise(&mut fast.weight, 11);
    randomise(&mut fast.bias, 12);
    let mut slow = fast.clone();
    let mut r = rng(13);
    for step in 0..3 {
        let x: Tensor<(usize, Const<C>, Const<4>, Const<5>), f64, _> =
            dev.tensor_from_vec(random_vec(&mut r, 2 * C * 20), (2, Const, Const, Const));
        let w = dev.tensor_from_vec(output_weights(2 * C * 20), *x.shape());
        let run = |m: &mut shapesafe::nn::modules::BatchNorm2d<C, f64, TestDevice>, train: bool| {
            let y = if train {
                m.forward_mut(x.leaky_trace())
            } else {
                m.forward(x.leaky_trace())
            };
            let out = y.as_vec();
            let g = (y * w.clone()).sum().backward();
            [
                out,
                g.get(&x).as_vec(),
                g.get(&m.weight).as_vec(),
                g.get(&m.bias).as_vec(),
            ]
        };
        for train in [true, false] {
            let a = run(&mut fast, train);
            let b = with_composed_ops(|| run(&mut slow, train));
            for (k, (p, q)) in a.iter().zip(&b).enumerate() {
                assert_close(
                    &format!("step {step} train {train}: tensor {k}"),
                    p,
                    q,
                    F64_TIGHT,
                );
            }
        }
        assert_close(
            "running mean",
            &fast.running_mean.as_vec(),
            &slow.running_mean.as_vec(),
            F64_TIGHT,
        );
        assert_close(
            "running var",
            &fast.running_var.as_vec(),
            &slow.running_var.as_vec(),
            F64_TIGHT,
        );
    }
}

#[test]
#[should_panic(expected = "Expected more than 1 value per channel when training")]
fn batchnorm_training_on_one_value_per_channel_panics_like_pytorch() {
    let dev = TestDevice::default();
    let mut bn = dev.build_module::<BatchNorm2d<2>, f32>();
    let x: Tensor<(usize, Const<2>, Const<1>, Const<1>), f32, _> =
        dev.zeros_like(&(1, Const, Const, Const));
    let _ = bn.forward_mut(x);
}

/// `Residual<(Conv2d, Tanh, Conv2d)>` = torchvision's BasicBlock shape, smooth for finite differences.
type Block = Residual<(Conv2d<2, 2, 3, 1, 1>, Tanh, Conv2d<2, 2, 3, 1, 1>)>;

fn block_reference(
    block: &<Block as BuildOnDevice<TestDevice, f64>>::Built,
    x: &[f64],
    batch: usize,
) -> Vec<f64> {
    let (c1, _, c2) = &block.branch;
    let case = conv_case(batch, (2, 2), 5, 3, 1, 1);
    let h = tanh_all(conv2d_reference(
        &case,
        x,
        &c1.weight.as_vec(),
        &c1.bias.as_vec(),
    ));
    let f = conv2d_reference(&case, &h, &c2.weight.as_vec(), &c2.bias.as_vec());
    add(&f, x)
}

#[test]
fn residual_matches_reference_and_finite_differences() {
    let dev = TestDevice::default();
    let mut block = dev.build_module::<Block, f64>();
    let mut r = rng(10);
    let x = random_vec(&mut r, 3 * 2 * 25);
    let expected = block_reference(&block, &x, 3);

    let xc: Tensor<Rank4<3, 2, 5, 5>, f64, _> = dev.tensor_from_vec(x.clone(), Default::default());
    let y: Tensor<Rank4<3, 2, 5, 5>, f64, _> = block.forward(xc.clone());
    assert_close("const batch", &y.as_vec(), &expected, F64_TIGHT);
    let y = block.forward_mut(xc.clone());
    assert_close(
        "const batch, forward_mut",
        &y.as_vec(),
        &expected,
        F64_TIGHT,
    );
    let xu: Tensor<(usize, Const<2>, Const<5>, Const<5>), f64, _> =
        dev.tensor_from_vec(x.clone(), (3, Const, Const, Const));
    let y = block.forward(xu.clone());
    assert_eq!(y.shape().0, 3);
    assert_close("usize batch", &y.as_vec(), &expected, F64_TIGHT);
    let x1: Tensor<Rank3<2, 5, 5>, f64, _> =
        dev.tensor_from_vec(x[..50].to_vec(), Default::default());
    assert_close(
        "unbatched",
        &block.forward(x1.clone()).as_vec(),
        &expected[..50],
        F64_TIGHT,
    );

    check_gradient("input, const batch", &xc, |t| block.forward(t));
    check_gradient("input, usize batch", &xu, |t| block.forward(t));
    check_gradient("input, unbatched", &x1, |t| block.forward(t));
    let w = dev.tensor_from_vec(output_weights(150), Default::default());
    let objective = |m: &mut <Block as BuildOnDevice<TestDevice, f64>>::Built| {
        let y: Taped<Rank4<3, 2, 5, 5>> = m.forward(xc.leaky_trace());
        (y * w.clone()).sum()
    };
    check_param_gradient(
        "first conv weight",
        &block,
        |m| &mut m.branch.0.weight,
        objective,
    );
    check_param_gradient(
        "last conv bias",
        &block,
        |m| &mut m.branch.2.bias,
        objective,
    );
}

/// Inside a residual block, `forward_mut` trains the BatchNorm (batch statistics,
/// running update) and `forward` runs it in inference.
#[test]
fn residual_forwards_modes_to_its_branch() {
    let dev = TestDevice::default();
    type Net = Residual<(Conv2d<2, 2, 3, 1, 1>, BatchNorm2d<2>)>;
    let mut block = dev.build_module::<Net, f64>();
    let x: Tensor<Rank4<4, 2, 5, 5>, f64, _> = dev.sample_normal();
    let conv_out = block.branch.0.forward(x.clone()).as_vec();

    let y = block.forward(x.clone());
    assert_eq!(block.branch.1.running_mean.array(), [0.0; 2]);
    // Fresh running statistics (0, 1): inference is conv(x) / sqrt(1 + eps) + x.
    let expected: Vec<f64> = conv_out
        .iter()
        .zip(x.as_vec())
        .map(|(c, x)| c / (1.0 + EPS).sqrt() + x)
        .collect();
    assert_close("eval", &y.as_vec(), &expected, F64_TIGHT);

    let (mut mean, mut var) = (vec![0.0; 2], vec![1.0; 2]);
    let normalised = batchnorm_train_reference(
        &conv_out, 4, 2, 25, &[1.0; 2], &[0.0; 2], &mut mean, &mut var,
    );
    let y = block.forward_mut(x.clone());
    assert_close(
        "train",
        &y.as_vec(),
        &add(&normalised, &x.as_vec()),
        F64_TIGHT,
    );
    assert_close(
        "running_mean",
        &block.branch.1.running_mean.as_vec(),
        &mean,
        F64_TIGHT,
    );
    assert_close(
        "running_var",
        &block.branch.1.running_var.as_vec(),
        &var,
        F64_TIGHT,
    );

    // Features: a residual MLP layer.
    let mlp = dev.build_module::<Residual<(Linear<4, 4>, Tanh)>, f64>();
    let v: Tensor<Rank2<3, 4>, f64, _> = dev.sample_normal();
    let expected = add(&mlp.branch.forward(v.clone()).as_vec(), &v.as_vec());
    assert_close(
        "features",
        &mlp.forward(v.clone()).as_vec(),
        &expected,
        F64_TIGHT,
    );
    check_gradient("features input", &v, |t| mlp.forward(t));
}

type Down = ResidualProjection<(Conv2d<2, 4, 3, 2, 1>, Tanh), Conv2d<2, 4, 1, 2>>;

#[test]
fn residual_projection_matches_reference_and_finite_differences() {
    let dev = TestDevice::default();
    let block = dev.build_module::<Down, f64>();
    let mut r = rng(11);
    let x = random_vec(&mut r, 2 * 2 * 25);
    let branch = &block.branch.0;
    let branch_out = tanh_all(conv2d_reference(
        &conv_case(2, (2, 4), 5, 3, 2, 1),
        &x,
        &branch.weight.as_vec(),
        &branch.bias.as_vec(),
    ));
    let shortcut_out = conv2d_reference(
        &conv_case(2, (2, 4), 5, 1, 2, 0),
        &x,
        &block.shortcut.weight.as_vec(),
        &block.shortcut.bias.as_vec(),
    );
    let expected = add(&branch_out, &shortcut_out);
    assert_eq!(expected.len(), 2 * 4 * 9);

    let xc: Tensor<Rank4<2, 2, 5, 5>, f64, _> = dev.tensor_from_vec(x.clone(), Default::default());
    let y = block.forward(xc.clone());
    assert_eq!(y.shape().concrete(), [2, 4, 3, 3]);
    assert_close("const batch", &y.as_vec(), &expected, F64_TIGHT);
    let xu: Tensor<(usize, Const<2>, Const<5>, Const<5>), f64, _> =
        dev.tensor_from_vec(x.clone(), (2, Const, Const, Const));
    assert_close(
        "usize batch",
        &block.forward(xu.clone()).as_vec(),
        &expected,
        F64_TIGHT,
    );
    let x1: Tensor<Rank3<2, 5, 5>, f64, _> =
        dev.tensor_from_vec(x[..50].to_vec(), Default::default());
    assert_close(
        "unbatched",
        &block.forward(x1.clone()).as_vec(),
        &expected[..36],
        F64_TIGHT,
    );

    check_gradient("input, const batch", &xc, |t| block.forward(t));
    check_gradient("input, usize batch", &xu, |t| block.forward(t));
    check_gradient("input, unbatched", &x1, |t| block.forward(t));
    let w = dev.tensor_from_vec(
        output_weights(72),
        (
            Const::<2>,
            Const::<4>,
            Default::default(),
            Default::default(),
        ),
    );
    let objective = |m: &mut <Down as BuildOnDevice<TestDevice, f64>>::Built| {
        (m.forward(xc.leaky_trace()) * w.clone()).sum()
    };
    check_param_gradient(
        "branch weight",
        &block,
        |m| &mut m.branch.0.weight,
        objective,
    );
    check_param_gradient(
        "shortcut weight",
        &block,
        |m| &mut m.shortcut.weight,
        objective,
    );
    check_param_gradient("shortcut bias", &block, |m| &mut m.shortcut.bias, objective);
}

#[test]
fn concat_matches_reference_and_finite_differences() {
    let dev = TestDevice::default();
    let mut r = rng(12);
    let x = random_vec(&mut r, 2 * 2 * 16);

    // U-Net's skip: the input itself, then a conv branch.
    type Skip = Concat<Identity, (Conv2d<2, 3, 3, 1, 1>, Tanh)>;
    let skip = dev.build_module::<Skip, f64>();
    let conv = &skip.1 .0;
    let branch = tanh_all(conv2d_reference(
        &conv_case(2, (2, 3), 4, 3, 1, 1),
        &x,
        &conv.weight.as_vec(),
        &conv.bias.as_vec(),
    ));
    let expected = cat_channels(&x, &branch, 2, 16);
    let xc: Tensor<Rank4<2, 2, 4, 4>, f64, _> = dev.tensor_from_vec(x.clone(), Default::default());
    type Joined = (Const<2>, SumDim<Const<2>, Const<3>>, Const<4>, Const<4>);
    let y: Tensor<Joined, f64, _> = skip.forward(xc.clone());
    assert_close("skip, const batch", &y.as_vec(), &expected, F64_TIGHT);
    let xu: Tensor<(usize, Const<2>, Const<4>, Const<4>), f64, _> =
        dev.tensor_from_vec(x.clone(), (2, Const, Const, Const));
    let y = skip.forward(xu.clone());
    assert_eq!(y.shape().concrete(), [2, 5, 4, 4]);
    assert_close("skip, usize batch", &y.as_vec(), &expected, F64_TIGHT);
    let x1: Tensor<Rank3<2, 4, 4>, f64, _> =
        dev.tensor_from_vec(x[..32].to_vec(), Default::default());
    let y = skip.forward(x1.clone());
    assert_close("skip, unbatched", &y.as_vec(), &expected[..80], F64_TIGHT);
    // The input's gradient has both paths: 1 from the copy plus the conv's.
    check_gradient("skip input, const batch", &xc, |t| skip.forward(t));
    check_gradient("skip input, usize batch", &xu, |t| skip.forward(t));
    check_gradient("skip input, unbatched", &x1, |t| skip.forward(t));

    // Two convolutions with different kernels (an Inception-style split).
    type Split = Concat<Conv2d<2, 3, 1>, (Conv2d<2, 2, 3, 1, 1>, Tanh)>;
    let split = dev.build_module::<Split, f64>();
    let first = conv2d_reference(
        &conv_case(2, (2, 3), 4, 1, 1, 0),
        &x,
        &split.0.weight.as_vec(),
        &split.0.bias.as_vec(),
    );
    let second = tanh_all(conv2d_reference(
        &conv_case(2, (2, 2), 4, 3, 1, 1),
        &x,
        &split.1 .0.weight.as_vec(),
        &split.1 .0.bias.as_vec(),
    ));
    let expected = cat_channels(&first, &second, 2, 16);
    assert_close(
        "split",
        &split.forward(xc.clone()).as_vec(),
        &expected,
        F64_TIGHT,
    );
    assert_close(
        "split, forward_mut",
        &split.clone().forward_mut(xc.clone()).as_vec(),
        &expected,
        F64_TIGHT,
    );
    check_gradient("split input", &xc, |t| split.forward(t));
    check_gradient("split input, unbatched", &x1, |t| split.forward(t));
    let w = dev.tensor_from_vec(output_weights(160), *split.forward(xc.clone()).shape());
    let objective = |m: &mut <Split as BuildOnDevice<TestDevice, f64>>::Built| {
        (m.forward(xc.leaky_trace()) * w.clone()).sum()
    };
    check_param_gradient(
        "first branch weight",
        &split,
        |m| &mut m.0.weight,
        objective,
    );
    check_param_gradient(
        "second branch weight",
        &split,
        |m| &mut m.1 .0.weight,
        objective,
    );
    check_param_gradient(
        "second branch bias",
        &split,
        |m| &mut m.1 .0.bias,
        objective,
    );
}

#[test]
fn summaries_and_parameter_counts() {
    // torchvision's BasicBlock(64, 64) has 73,984 parameters with bias-free convs;
    // shapesafe's convs have biases: 2 * 64 more.
    type Basic = Residual<(
        Conv2d<64, 64, 3, 1, 1>,
        BatchNorm2d<64>,
        ReLU,
        Conv2d<64, 64, 3, 1, 1>,
        BatchNorm2d<64>,
    )>;
    assert_eq!(
        <Basic as ShapeInfer<Rank3<64, 56, 56>>>::PARAMS,
        73_984 + 128
    );
    type Down = ResidualProjection<
        (
            Conv2d<64, 128, 3, 2, 1>,
            BatchNorm2d<128>,
            ReLU,
            Conv2d<128, 128, 3, 1, 1>,
            BatchNorm2d<128>,
        ),
        (Conv2d<64, 128, 1, 2>, BatchNorm2d<128>),
    >;
    // torchvision's BasicBlock(64, 128, stride=2, downsample): 230,144 without conv biases.
    assert_eq!(
        <Down as ShapeInfer<Rank3<64, 56, 56>>>::PARAMS,
        230_144 + 3 * 128
    );
    shapesafe::assert_shapes!((Basic, Down): Rank3<64, 56, 56> => Rank3<128, 28, 28>);
    let dev = TestDevice::default();
    let built = dev.build_module::<(Basic, Down), f32>();
    assert_eq!(built.num_trainable_params(), 74_112 + 230_528);

    let s = Summary::of::<(Basic, Down), Rank3<64, 56, 56>>();
    assert_eq!(s.total_params(), 74_112 + 230_528);
    let layers: Vec<&str> = s.rows.iter().map(|r| r.layer.as_str()).collect();
    assert_eq!(
        layers,
        [
            "Residual",
            "  Conv2d<64, 64, 3, 1, 1>",
            "  BatchNorm2d<64>",
            "  ReLU",
            "  Conv2d<64, 64, 3, 1, 1>",
            "  BatchNorm2d<64>",
            "ResidualProjection",
            "  branch: Conv2d<64, 128, 3, 2, 1>",
            "  branch: BatchNorm2d<128>",
            "  branch: ReLU",
            "  branch: Conv2d<128, 128, 3, 1, 1>",
            "  branch: BatchNorm2d<128>",
            "  shortcut: Conv2d<64, 128, 1, 2>",
            "  shortcut: BatchNorm2d<128>",
        ]
    );
    assert_eq!(
        s.rows[6],
        SummaryRow {
            layer: "ResidualProjection".to_string(),
            output: vec![128, 28, 28],
            params: 0
        }
    );
    assert_eq!(s.rows[13].params, 256);
    assert_eq!(s.rows[12].output, vec![128, 28, 28]);
    let text = s.to_string();
    assert!(text.contains("  shortcut: Conv2d<64, 128, 1, 2>"), "{text}");

    type Unet = (
        Concat<Identity, (Conv2d<4, 4, 3, 1, 1>, Dropout)>,
        BatchNorm2d<8>,
    );
    let s = Summary::of::<Unet, Rank3<4, 8, 8>>();
    let layers: Vec<&str> = s.rows.iter().map(|r| r.layer.as_str()).collect();
    assert_eq!(
        layers,
        [
            "Concat",
            "  0: Identity",
            "  1: Conv2d<4, 4, 3, 1, 1>",
            "  1: Dropout",
            "BatchNorm2d<8>"
        ]
    );
    assert_eq!(s.rows[0].output, vec![8, 8, 8]);
    assert_eq!(s.total_params(), 4 * 4 * 9 + 4 + 16);
    assert_eq!(
        <Residual<Tanh> as ShapeInfer<Rank1<3>>>::name(),
        "Residual<Tanh>"
    );
    assert_eq!(
        <Concat<Identity, DropoutOneIn<2>> as ShapeInfer<Rank3<1, 2, 2>>>::name(),
        "Concat<Identity, DropoutOneIn<2>>"
    );
}

#[test]
fn dropout_is_identity_in_inference_and_drops_in_training() {
    let dev = TestDevice::default();
    type Net = (
        Conv2d<1, 2, 3>,
        Dropout,
        Flatten,
        DropoutOneIn<3>,
        Linear<8, 2>,
    );
    shapesafe::assert_shapes!(Net: Rank3<1, 4, 4> => Rank1<2>, params = 20 + 18);
    let mut net = dev.build_module::<Net, f64>();
    let x: Tensor<Rank4<2, 1, 4, 4>, f64, _> = dev.sample_normal();
    let plain = net.4.forward(Flatten.forward(net.0.forward(x.clone())));
    assert_close(
        "eval",
        &net.forward(x.clone()).as_vec(),
        &plain.as_vec(),
        F64_TIGHT,
    );
    // Training: some elements zeroed, the rest scaled by 1 / (1 - p).
    let mut dropout = Dropout { p: 0.25 };
    let ones: Tensor<Rank1<4000>, f64, _> = dev.ones();
    let y = dropout.forward_mut(ones.leaky_trace()).as_vec();
    assert!(y
        .iter()
        .all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-12));
    let dropped = y.iter().filter(|&&v| v == 0.0).count();
    assert!((800..1200).contains(&dropped), "dropped {dropped} of 4000");
    let y = net.forward_mut(x.leaky_trace());
    assert_eq!(y.shape().concrete(), [2, 2]);
}

/// A small network with BatchNorm, trained with SGD in training mode: the loss falls,
/// the optimizer never touches the running statistics, and they follow the batches.
#[test]
fn network_with_batchnorm_trains() {
    let dev = TestDevice::default();
    type Net = (
        Conv2d<1, 4, 3, 1, 1>,
        BatchNorm2d<4>,
        ReLU,
        Residual<(Conv2d<4, 4, 3, 1, 1>, BatchNorm2d<4>, ReLU)>,
        Flatten,
        Linear<144, 2>,
    );
    let mut net = dev.build_module::<Net, f32>();
    let x: Tensor<Rank4<8, 1, 6, 6>, f32, _> = dev.sample_normal();
    let target: Tensor<Rank2<8, 2>, f32, _> = dev.sample_normal();
    let mut opt = Sgd::new(
        &net,
        SgdConfig {
            lr: 0.05,
            momentum: None,
            weight_decay: None,
        },
    );
    let mut grads = net.alloc_grads();
    let mut losses = Vec::new();
    for _ in 0..30 {
        let loss = mse_loss(net.forward_mut(x.clone().traced(grads)), target.clone());
        losses.push(loss.array());
        grads = loss.backward();
        let stats = (
            net.1.running_mean.as_vec(),
            net.3.branch.1.running_var.as_vec(),
        );
        opt.update(&mut net, &grads).unwrap();
        assert_eq!(
            net.1.running_mean.as_vec(),
            stats.0,
            "SGD moved a running mean"
        );
        assert_eq!(
            net.3.branch.1.running_var.as_vec(),
            stats.1,
            "SGD moved a running var"
        );
        net.zero_grads(&mut grads);
    }
    assert!(
        losses[29] < 0.5 * losses[0],
        "loss went from {} to {}",
        losses[0],
        losses[29]
    );
    // After 30 steps of momentum 0.1 the running mean is within 0.9^30 = 4% of the batch's.
    let conv_out = net.0.forward(x.clone()).as_vec();
    for c in 0..4 {
        let values: Vec<f32> = (0..8)
            .flat_map(|n| conv_out[(n * 4 + c) * 36..(n * 4 + c + 1) * 36].to_vec())
            .collect();
        let mean = values.iter().sum::<f32>() / values.len() as f32;
        let running = net.1.running_mean.as_vec()[c];
        // The conv moved during training, so allow for the drift as well.
        assert!(
            (running - mean).abs() < 0.1 + 0.1 * mean.abs(),
            "channel {c}: {running} vs {mean}"
        );
    }
    // Inference on the training batch is close to the last training loss.
    let eval_loss = mse_loss(net.forward(x.clone()), target.clone()).array();
    assert!(eval_loss.is_finite());
}

#[test]
fn safetensors_keep_running_statistics() {
    let dev = TestDevice::default();
    type Net = (Conv2d<1, 3, 3>, BatchNorm2d<3>);
    let mut net = dev.build_module::<Net, f32>();
    randomise_f32(&mut net.1.weight, 1);
    randomise_f32(&mut net.1.bias, 2);
    for _ in 0..3 {
        let x: Tensor<Rank4<4, 1, 5, 5>, f32, _> = dev.sample_normal();
        let _ = net.forward_mut(x);
    }
    assert_ne!(net.1.running_mean.array(), [0.0; 3]);
    let path = std::env::temp_dir().join(format!(
        "shapesafe-blocks-{}.safetensors",
        std::process::id()
    ));
    net.save_safetensors(&path).unwrap();

    // PyTorch's state-dict names, and nothing else for the batch norm.
    let bytes = std::fs::read(&path).unwrap();
    let file = ::safetensors::tensor::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = file.names().into_iter().cloned().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "0.bias",
            "0.weight",
            "1.bias",
            "1.running_mean",
            "1.running_var",
            "1.weight"
        ]
    );

    let mut loaded = dev.build_module::<Net, f32>();
    loaded.load_safetensors(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(loaded.1.running_mean.array(), net.1.running_mean.array());
    assert_eq!(loaded.1.running_var.array(), net.1.running_var.array());
    assert_eq!(loaded.1.weight.array(), net.1.weight.array());
    assert_eq!(loaded.1.bias.array(), net.1.bias.array());
    let x: Tensor<Rank4<2, 1, 5, 5>, f32, _> = dev.sample_normal();
    assert_eq!(loaded.forward(x.clone()).as_vec(), net.forward(x).as_vec());
}

fn randomise_f32<S: Shape>(t: &mut Tensor<S, f32, TestDevice>, seed: u64) {
    let n = t.shape().num_elements();
    let v: Vec<f32> = random_vec(&mut rng(seed), n)
        .iter()
        .map(|&v| v as f32)
        .collect();
    t.copy_from(&v);
}
