//! Models as structs: `#[derive(Sequential)]` and `#[derive(CustomModule)]` against the same
//! models written as tuples or by hand.

use shapesafe::models::LeNet5;
use shapesafe::prelude::*;
use std::collections::BTreeSet;

/// LeNet-5 as `models::LeNet5` has it, with named fields.
#[derive(Sequential, Debug, Clone, Copy, Default)]
#[built(LeNet)]
#[shapes(input = Rank3<1, 28, 28>, output = Rank1<10>, params = 61_706)]
pub struct LeNetConfig {
    conv1: Conv2d<1, 6, 5, 1, 2>,
    relu1: ReLU,
    pool1: MaxPool2d<2>,
    conv2: Conv2d<6, 16, 5>,
    relu2: ReLU,
    pool2: MaxPool2d<2>,
    flatten: Flatten,
    fc1: Linear<400, 120>,
    relu3: ReLU,
    fc2: Linear<120, 84>,
    relu4: ReLU,
    fc3: Linear<84, 10>,
}

/// A generic width, nested in another derived model and in a tuple.
#[derive(Sequential, Debug, Clone, Copy, Default)]
#[built(Mlp)]
pub struct MlpConfig<const HIDDEN: usize> {
    fc1: Linear<8, HIDDEN>,
    act: Tanh,
    fc2: Linear<HIDDEN, 3>,
}

#[derive(Sequential, Debug, Clone, Copy, Default)]
#[built(Stack)]
pub struct StackConfig {
    body: MlpConfig<5>,
    head: (ReLU, Linear<3, 2>),
}

/// A two-headed model with a parameter of its own and a forward written by hand.
#[derive(CustomModule, Debug, Clone, Copy, Default)]
#[built(TwoHeads)]
#[shapes(input = Rank1<4>, output = Rank1<3>, params = 4 * 3 + 3 + 3 * 4 + 4 + 3)]
pub struct TwoHeadsConfig {
    #[shapes(input = Rank1<4>)]
    trunk: Linear<4, 3>,
    #[shapes(input = Rank1<3>)]
    gate: Linear<3, 4>,
    #[param(init = ones)]
    scale: Rank1<3>,
}

impl<B: Dim, T: Tape<f64, Cpu>> Module<Tensor<(B, Const<4>), f64, Cpu, T>> for TwoHeads<f64, Cpu> {
    type Output = Tensor<(B, Const<3>), f64, Cpu, T>;
    type Error = CpuError;

    fn try_forward(&self, x: Tensor<(B, Const<4>), f64, Cpu, T>) -> Result<Self::Output, CpuError> {
        let h = self.trunk.try_forward(x)?.try_tanh()?;
        let g = self.gate.try_forward(h.retaped::<T>())?;
        let g = g.try_sum::<_, Axis<1>>()?.try_sigmoid()?;
        let (b, _) = *h.shape();
        let scale = self
            .scale
            .retaped::<T>()
            .try_broadcast_like(&(b, Const::<3>))?;
        let g = g.try_broadcast_like(&(b, Const::<3>))?;
        h.try_mul(scale)?.try_mul(g)
    }
}

/// A directory of this test process's own, one per `tag`.
fn scratch_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("derive-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn names<M: TensorCollection<f32, Cpu>>(model: &M, tag: &str) -> BTreeSet<String> {
    let dir = scratch_dir(tag);
    let path = dir.join("m.safetensors");
    model.save_safetensors(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let tensors = ::safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let out = tensors.names().into_iter().cloned().collect();
    std::fs::remove_dir_all(&dir).ok();
    out
}

#[test]
fn derived_lenet_computes_what_the_tuple_does() {
    let dev = Cpu::default();
    let tuple = dev.build_module::<LeNet5, f32>();
    let mut derived = dev.build_module::<LeNetConfig, f32>();
    // Same architecture, same parameter order: copy the tuple's weights over.
    derived.conv1.weight = tuple.0 .0.weight.clone();
    derived.conv1.bias = tuple.0 .0.bias.clone();
    derived.conv2.weight = tuple.1 .0.weight.clone();
    derived.conv2.bias = tuple.1 .0.bias.clone();
    derived.fc1.weight = tuple.3 .0.weight.clone();
    derived.fc1.bias = tuple.3 .0.bias.clone();
    derived.fc2.weight = tuple.4 .0.weight.clone();
    derived.fc2.bias = tuple.4 .0.bias.clone();
    derived.fc3.weight = tuple.5.weight.clone();
    derived.fc3.bias = tuple.5.bias.clone();
    let x: Tensor<Rank4<3, 1, 28, 28>, f32, _> = dev.sample_normal();
    let a = tuple.forward(x.clone()).as_vec();
    let b = derived.forward(x.clone()).as_vec();
    assert_eq!(a, b, "same weights, same kernels: the same bits");
    assert_eq!(derived.num_trainable_params(), 61_706);

    // Training mode and gradients reach every parameter by name.
    let grads = derived
        .forward_mut(x.traced(derived.alloc_grads()))
        .square()
        .mean()
        .backward();
    let named = shapesafe::optim::named_grads(&derived, &grads).unwrap();
    let got: BTreeSet<String> = named.iter().map(|g| g.name.clone()).collect();
    let want: BTreeSet<String> = [
        "conv1.weight",
        "conv1.bias",
        "conv2.weight",
        "conv2.bias",
        "fc1.weight",
        "fc1.bias",
        "fc2.weight",
        "fc2.bias",
        "fc3.weight",
        "fc3.bias",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(got, want);
    assert_eq!(
        names(&derived, "lenet"),
        want,
        "safetensors keys are the field paths"
    );
}

#[test]
fn derived_lenet_summary_names_its_fields() {
    let s = Summary::of::<LeNetConfig, Rank3<1, 28, 28>>();
    assert_eq!(s.total_params(), 61_706);
    assert_eq!(s.rows.len(), 12);
    assert_eq!(s.rows[0].layer, "conv1: Conv2d<1, 6, 5, 1, 2>");
    assert_eq!(s.rows[0].output, vec![6, 28, 28]);
    assert_eq!(s.rows[7].layer, "fc1: Linear<400, 120>");
    assert_eq!(s.rows[7].params, 48_120);
    assert_eq!(s.rows[11].output, vec![10]);
    assert_eq!(
        <LeNetConfig as ShapeInfer<Rank3<1, 28, 28>>>::name(),
        "LeNetConfig"
    );
}

#[test]
fn nested_and_generic_models_build_save_and_load() {
    let dev = Cpu::default();
    let model = dev.build_module::<StackConfig, f32>();
    let want: BTreeSet<String> = [
        "body.fc1.weight",
        "body.fc1.bias",
        "body.fc2.weight",
        "body.fc2.bias",
        "head.1.weight",
        "head.1.bias",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(names(&model, "stack"), want);
    assert_eq!(model.body.fc1.weight.shape().concrete(), [5, 8]);

    // Save, load into a fresh model, same outputs.
    let dir = scratch_dir("load");
    let path = dir.join("stack.safetensors");
    model.save_safetensors(&path).unwrap();
    let mut other = dev.build_module::<StackConfig, f32>();
    other.load_safetensors(&path).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let x: Tensor<Rank2<4, 8>, f32, _> = dev.sample_normal();
    assert_eq!(model.forward(x.clone()).as_vec(), other.forward(x).as_vec());

    // The summary: nested names joined by dots, the tuple's rows under its field.
    let s = Summary::of::<StackConfig, Rank1<8>>();
    let layers: Vec<&str> = s.rows.iter().map(|r| r.layer.as_str()).collect();
    assert_eq!(
        layers,
        [
            "body.fc1: Linear<8, 5>",
            "body.act: Tanh",
            "body.fc2: Linear<5, 3>",
            "head: ReLU",
            "head: Linear<3, 2>",
        ]
    );
    assert_eq!(
        <MlpConfig<7> as ShapeInfer<Rank1<8>>>::name(),
        "MlpConfig<7>"
    );
    assert_eq!(s.total_params(), 8 * 5 + 5 + 5 * 3 + 3 + 3 * 2 + 2);

    // to_dtype goes through the struct's `TensorCollection::To`.
    let wide = model.to_dtype::<f64>();
    let x64: Tensor<Rank1<8>, f64, _> = dev.sample_normal();
    assert_eq!(wide.forward(x64).shape().concrete(), [2]);
}

#[test]
fn custom_module_builds_its_parameters_and_runs_the_users_forward() {
    let dev = Cpu::default();
    let model = dev.build_module::<TwoHeadsConfig, f64>();
    assert_eq!(model.scale.as_vec(), vec![1.0; 3], "init = ones");
    assert_eq!(model.num_trainable_params(), 4 * 3 + 3 + 3 * 4 + 4 + 3);
    let x: Tensor<Rank2<2, 4>, f64, _> = dev.sample_normal();
    let y = model.forward(x.clone());

    // The forward by hand, in f64 plain loops.
    let (w1, b1) = (model.trunk.weight.as_vec(), model.trunk.bias.as_vec());
    let (w2, b2) = (model.gate.weight.as_vec(), model.gate.bias.as_vec());
    let xs = x.as_vec();
    let mut want = Vec::new();
    for row in xs.chunks(4) {
        let h: Vec<f64> = (0..3)
            .map(|o| (b1[o] + (0..4).map(|i| w1[o * 4 + i] * row[i]).sum::<f64>()).tanh())
            .collect();
        let g: f64 = (0..4)
            .map(|o| b2[o] + (0..3).map(|i| w2[o * 3 + i] * h[i]).sum::<f64>())
            .sum();
        let g = 1.0 / (1.0 + (-g).exp());
        want.extend(h.iter().map(|v| v * g));
    }
    for (a, b) in y.as_vec().iter().zip(&want) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }

    let s = Summary::of::<TwoHeadsConfig, Rank1<4>>();
    let layers: Vec<&str> = s.rows.iter().map(|r| r.layer.as_str()).collect();
    assert_eq!(
        layers,
        [
            "trunk: Linear<4, 3>",
            "gate: Linear<3, 4>",
            "scale: Parameter"
        ]
    );
    assert_eq!(s.total_params(), model.num_trainable_params());
}

#[test]
fn pytorch_state_dicts_load_by_field_name() {
    use ::safetensors::tensor::{Dtype as StDtype, TensorView};
    // What `torch.save(model.state_dict())` of a class with attributes `body` (itself with
    // `fc1`, `fc2`) and `head` (an `nn.Sequential` of ReLU and Linear) names its tensors.
    let shapes: [(&str, Vec<usize>); 6] = [
        ("body.fc1.weight", vec![5, 8]),
        ("body.fc1.bias", vec![5]),
        ("body.fc2.weight", vec![3, 5]),
        ("body.fc2.bias", vec![3]),
        ("head.1.weight", vec![2, 3]),
        ("head.1.bias", vec![2]),
    ];
    let values: Vec<Vec<f32>> = shapes
        .iter()
        .enumerate()
        .map(|(t, (_, s))| {
            (0..s.iter().product::<usize>())
                .map(|i| t as f32 + i as f32 / 100.0)
                .collect()
        })
        .collect();
    let bytes: Vec<Vec<u8>> = values
        .iter()
        .map(|v| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views: Vec<(String, TensorView)> = shapes
        .iter()
        .zip(&bytes)
        .map(|((name, shape), b)| {
            let view = TensorView::new(StDtype::F32, shape.clone(), b).unwrap();
            (name.to_string(), view)
        })
        .collect();
    let file = ::safetensors::tensor::serialize(views, &None).unwrap();

    let dev = Cpu::default();
    let mut model = dev.build_module::<StackConfig, f32>();
    let map = shapesafe::pytorch::NameMap::new();
    shapesafe::pytorch::load_state_dict_from_bytes(&mut model, &file, &map).unwrap();
    assert_eq!(model.body.fc1.weight.as_vec(), values[0]);
    assert_eq!(model.body.fc2.bias.as_vec(), values[3]);
    assert_eq!(model.head.1.weight.as_vec(), values[4]);
}

/// The derived models type-check on CUDA (`cargo check --features ci-check`).
#[cfg(feature = "cuda")]
#[allow(dead_code)]
fn derived_models_build_on_cuda(dev: &Cuda) {
    let lenet = dev.build_module::<LeNetConfig, f32>();
    let _: Tensor<Rank2<2, 10>, f32, Cuda> = lenet.forward(dev.zeros::<Rank4<2, 1, 28, 28>>());
    let mut stack = dev.build_module::<StackConfig, f32>();
    let _: Tensor<Rank2<2, 2>, f32, Cuda> = stack.forward_mut(dev.zeros::<Rank2<2, 8>>());
    let on_cpu = stack.to_device(&Cpu::default());
    let _: Tensor<Rank1<2>, f32, Cpu> = on_cpu.forward(Cpu::default().zeros::<Rank1<8>>());
}

/// The issue-12 model with a loss against a target written with plain `Const` dims: the
/// documented `realize` relabels the recurrent features, and the loss matches a plain-loop
/// mean of squares.
#[test]
fn recurrent_features_meet_a_plain_target_through_realize() {
    let dev = Cpu::default();
    let model = dev.build_module::<(Lstm<4, 3>, TransformerEncoderLayer<3, 1, 8>), f64>();
    let x: Tensor<Rank3<2, 5, 4>, f64, _> = dev.sample_normal();
    let target: Tensor<Rank3<2, 5, 3>, f64, _> = dev.sample_normal();
    let y = model.forward(x);
    let want: f64 = y
        .as_vec()
        .iter()
        .zip(target.as_vec())
        .map(|(a, b)| (a - b) * (a - b))
        .sum::<f64>()
        / 30.0;
    let loss = mse_loss(y.realize::<Rank3<2, 5, 3>>(), target);
    assert!((loss.array() - want).abs() < 1e-12);
}

/// A derived ResNet-style model mixing shapesafe's layers with dfdx's `Dropout`, a
/// `Residual`, batch norm (whose running statistics are buffers, not parameters) and a
/// pooled head: training and evaluation modes, and every tensor named by its field path.
#[derive(Sequential, Clone, Default)]
#[built(SmallResNet)]
#[shapes(input = Rank3<3, 16, 16>, output = Rank1<4>)]
pub struct SmallResNetConfig {
    stem: (Conv2d<3, 8, 3, 1, 1>, BatchNorm2d<8>, ReLU),
    block: Residual<(Conv2d<8, 8, 3, 1, 1>, BatchNorm2d<8>, ReLU)>,
    pool: GlobalAvgPool2d,
    drop: Dropout,
    head: Linear<8, 4>,
}

#[test]
fn derived_models_mix_dfdx_layers_norms_and_blocks() {
    let dev = Cpu::default();
    let mut model = dev.build_module::<SmallResNetConfig, f32>();
    let x: Tensor<Rank4<2, 3, 16, 16>, f32, _> = dev.sample_normal();
    // Training mode updates the batch-norm statistics; evaluation mode does not.
    let before = model.stem.1.running_mean.as_vec();
    let _ = model.forward_mut(x.clone().traced(model.alloc_grads()));
    let after = model.stem.1.running_mean.as_vec();
    assert_ne!(before, after, "forward_mut trains the batch norm");
    let a = model.forward(x.clone()).as_vec();
    let b = model.forward(x).as_vec();
    assert_eq!(
        a, b,
        "forward is deterministic: no dropout, no statistics update"
    );
    let names = names(&model, "resnet");
    for want in [
        "stem.0.weight",
        "stem.1.running_mean",
        "block.branch.0.weight",
        "head.bias",
    ] {
        assert!(names.contains(want), "{want} missing from {names:?}");
    }
}
