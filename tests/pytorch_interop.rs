//! PyTorch interop: state dicts written by Python's safetensors (tests/pytorch/make_golden.py) load
//! through the zoo's name maps, and the loaded models reproduce PyTorch's outputs.

mod common;

use common::TestDevice;

use common::{assert_close, Tolerance};
use shapesafe::models::googlenet::{builder::BasicConv2d, Inception};
use shapesafe::models::mobilenet::{ConvBnReLU6, InvertedResidual, InvertedResidualSkip};
use shapesafe::models::resnet::{BasicBlock, BasicBlockDown, BottleneckDown, ConvBn, Head};
use shapesafe::models::shufflenet::{ShuffleUnit, ShuffleUnitDown};
use shapesafe::models::vgg::{BnStage1, BnStage2};
use shapesafe::models::{googlenet, shufflenet, vgg, Torchvision};
use shapesafe::prelude::*;
use shapesafe::pytorch::{load_state_dict, tensor_shapes, NameMap};
use shapesafe::Error;
use std::collections::BTreeMap;

/// torchvision's ResNet layout at width 8 (see make_golden.py's `TinyResNet`).
type TinyResNet = (
    (ConvBn<3, 8, 3, 1, 1>, ReLU),
    BasicBlock<8>,
    BasicBlockDown<8, 16, 2>,
    BottleneckDown<16, 8, 32, 2>,
    Head<32, 10>,
);

/// torchvision's MobileNetV2 blocks (`TinyMobileNet`).
type TinyMobileNet = (
    ConvBnReLU6<3, 8, 3, 1, 1, 1>,
    InvertedResidualSkip<8, 48>,
    InvertedResidual<8, 48, 16, 2>,
    (GlobalAvgPool2d, DropoutOneIn<5>, Linear<16, 10>),
);

/// torchvision's VGG with batch norm, configuration `[8, M, 16, 16, M]` (`tiny_vgg`).
type TinyVgg<const CLASSES: usize> = (
    (BnStage1<3, 8>, BnStage2<8, 16>),
    Flatten,
    (Linear<256, 32>, ReLU, Dropout),
    (Linear<32, 32>, ReLU, Dropout),
    Linear<32, CLASSES>,
);

/// torchvision's GoogLeNet units at width 8 (`TinyInception`): an Inception block and the
/// ceil-mode max pool, whose last windows are partial on the 16x16 input.
type TinyInception = (
    BasicConv2d<3, 8, 3, 1, 1>,
    Inception<8, 4, 4, 6, 2, 3, 3>,
    MaxPool2d<3, 2, 0, true>,
    (GlobalAvgPool2d, Linear<16, 10>),
);

/// torchvision's ShuffleNetV2 units (`TinyShuffleNet`): a downsampling unit and a split unit.
type TinyShuffleNet = (
    (Conv2d<3, 8, 3, 2, 1, 1, 1, false>, BatchNorm2d<8>, ReLU),
    ShuffleUnitDown<8, 8>,
    ShuffleUnit<8>,
    (GlobalAvgPool2d, Linear<16, 10>),
);

fn tiny_inception_layers() -> Vec<String> {
    let mut names: Vec<String> = ["conv1.conv", "conv1.bn"].map(String::from).to_vec();
    names.extend(googlenet::inception_layers("inception"));
    names.push("fc".to_string());
    names
}

fn tiny_shufflenet_layers() -> Vec<String> {
    let mut names: Vec<String> = ["conv1.0", "conv1.1"].map(String::from).to_vec();
    names.extend(shufflenet::unit_layers("stage2.0", true));
    names.extend(shufflenet::unit_layers("stage2.1", false));
    names.push("fc".to_string());
    names
}

fn tiny_resnet_layers() -> Vec<String> {
    let mut names: Vec<String> = ["conv1", "bn1"].map(String::from).to_vec();
    for block in ["layer1.0", "layer2.0"] {
        for layer in ["conv1", "bn1", "conv2", "bn2"] {
            names.push(format!("{block}.{layer}"));
        }
    }
    names.extend(["layer2.0.downsample.0", "layer2.0.downsample.1"].map(String::from));
    for layer in [
        "conv1",
        "bn1",
        "conv2",
        "bn2",
        "conv3",
        "bn3",
        "downsample.0",
        "downsample.1",
    ] {
        names.push(format!("layer3.0.{layer}"));
    }
    names.push("fc".to_string());
    names
}

fn tiny_mobilenet_layers() -> Vec<String> {
    let mut names: Vec<String> = ["features.0.0", "features.0.1"].map(String::from).to_vec();
    for block in [1, 2] {
        for layer in [
            "conv.0.0", "conv.0.1", "conv.1.0", "conv.1.1", "conv.2", "conv.3",
        ] {
            names.push(format!("features.{block}.{layer}"));
        }
    }
    names.push("classifier.1".to_string());
    names
}

/// The golden file's tensors as f64 vectors.
/// The golden input and every small network's output (both files hold the same input).
fn golden() -> BTreeMap<String, Vec<f64>> {
    let mut golden = common::golden::read("tests/pytorch/small_nets_golden.safetensors");
    golden.extend(common::golden::read(
        "tests/pytorch/zoo_blocks_golden.safetensors",
    ));
    golden
}

/// PyTorch computed in f64 from f32 weights; ours in f64 differs only in summation order.
const F64_MATCH: Tolerance = Tolerance {
    abs: 1e-10,
    rel: 1e-10,
};
/// The same weights in f32 arithmetic.
const F32_MATCH: Tolerance = Tolerance {
    abs: 1e-4,
    rel: 1e-4,
};

/// Loads `file` into `M` in f64 and f32, runs the golden input in eval mode and compares.
fn check_matches_pytorch<M>(what: &str, file: &str, layers: &[String])
where
    M: BuildOnDevice<TestDevice, f64> + BuildOnDevice<TestDevice, f32>,
    <M as BuildOnDevice<TestDevice, f64>>::Built: Module<
            Tensor<Rank4<2, 3, 16, 16>, f64, TestDevice>,
            Output = Tensor<Rank2<2, 10>, f64, TestDevice>,
        > + Clone,
    <M as BuildOnDevice<TestDevice, f32>>::Built: Module<
            Tensor<Rank4<2, 3, 16, 16>, f32, TestDevice>,
            Output = Tensor<Rank2<2, 10>, f32, TestDevice>,
        > + Clone,
{
    let dev = TestDevice::default();
    let golden = golden();
    let input = &golden["input"];
    let expected = &golden[what];

    let mut model = dev.build_module::<M, f64>();
    let map = NameMap::by_order(&model, layers).unwrap();
    load_state_dict(&mut model, file, &map).unwrap();
    let x: Tensor<Rank4<2, 3, 16, 16>, f64, _> =
        dev.tensor_from_vec(input.clone(), Default::default());
    let y = model.forward(x);
    assert_close(&format!("{what} f64"), &y.as_vec(), expected, F64_MATCH);

    let mut model = dev.build_module::<M, f32>();
    load_state_dict(&mut model, file, &map).unwrap();
    let x32: Vec<f32> = input.iter().map(|&v| v as f32).collect();
    let x: Tensor<Rank4<2, 3, 16, 16>, f32, _> = dev.tensor_from_vec(x32, Default::default());
    let y: Vec<f64> = model
        .forward(x)
        .as_vec()
        .iter()
        .map(|&v| v as f64)
        .collect();
    assert_close(&format!("{what} f32"), &y, expected, F32_MATCH);
}

#[test]
fn resnet_blocks_match_pytorch() {
    check_matches_pytorch::<TinyResNet>(
        "resnet",
        "tests/pytorch/small_resnet.safetensors",
        &tiny_resnet_layers(),
    );
}

#[test]
fn mobilenet_blocks_match_pytorch() {
    check_matches_pytorch::<TinyMobileNet>(
        "mobilenet",
        "tests/pytorch/small_mobilenet.safetensors",
        &tiny_mobilenet_layers(),
    );
}

#[test]
fn vgg_with_batch_norm_matches_pytorch() {
    check_matches_pytorch::<TinyVgg<10>>(
        "vgg",
        "tests/pytorch/small_vgg.safetensors",
        &vgg::torchvision_layers(&[1, 2], true),
    );
}

#[test]
fn inception_block_and_ceil_mode_pool_match_pytorch() {
    check_matches_pytorch::<TinyInception>(
        "inception",
        "tests/pytorch/small_inception.safetensors",
        &tiny_inception_layers(),
    );
}

#[test]
fn shufflenet_units_match_pytorch() {
    check_matches_pytorch::<TinyShuffleNet>(
        "shufflenet",
        "tests/pytorch/small_shufflenet.safetensors",
        &tiny_shufflenet_layers(),
    );
}

#[test]
fn wrong_files_are_errors_and_leave_the_model_unchanged() {
    let dev = TestDevice::default();
    // A classifier with 12 outputs cannot take the 10-class weights.
    let mut model = dev.build_module::<TinyVgg<12>, f32>();
    let before = model.clone();
    let map = NameMap::by_order(&model, &vgg::torchvision_layers(&[1, 2], true)).unwrap();
    match load_state_dict(&mut model, "tests/pytorch/small_vgg.safetensors", &map) {
        Err(Error::ShapeMismatch {
            what,
            expected,
            found,
        }) => {
            assert!(what.contains("classifier.6.weight"), "{what}");
            assert_eq!((expected, found), (vec![12, 32], vec![10, 32]));
        }
        other => panic!("expected a shape mismatch, got {other:?}"),
    }
    assert_eq!(model.4.weight.as_vec(), before.4.weight.as_vec());
    assert_eq!(
        model.0 .0 .0 .0.weight.as_vec(),
        before.0 .0 .0 .0.weight.as_vec()
    );

    // The ResNet's weights under the MobileNet's names: a named missing tensor.
    let mut mobile = dev.build_module::<TinyMobileNet, f32>();
    let map = NameMap::by_order(&mobile, &tiny_mobilenet_layers()).unwrap();
    let err = load_state_dict(&mut mobile, "tests/pytorch/small_resnet.safetensors", &map)
        .unwrap_err()
        .to_string();
    assert!(err.contains("features.0.0.weight"), "{err}");

    // A model that leaves file tensors unused (the features without the classifier) is
    // rejected, naming them.
    let mut features = dev.build_module::<(BnStage1<3, 8>, BnStage2<8, 16>), f32>();
    let layers = vgg::torchvision_layers(&[1, 2], true);
    let map = NameMap::by_order(&features, &layers[..6]).unwrap();
    let err = load_state_dict(&mut features, "tests/pytorch/small_vgg.safetensors", &map)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("6 tensors") && err.contains("classifier.0.bias"),
        "{err}"
    );
    let mut model = dev.build_module::<TinyVgg<10>, f32>();

    // Wrong layer counts, a missing file and a file that is not safetensors.
    assert!(matches!(
        NameMap::by_order(&model, &["features.0"]),
        Err(Error::Usage(_))
    ));
    assert!(matches!(
        load_state_dict(
            &mut model,
            "tests/pytorch/missing.safetensors",
            &NameMap::new()
        ),
        Err(Error::Io { .. })
    ));
    assert!(matches!(
        load_state_dict(&mut model, "tests/pytorch/make_golden.py", &NameMap::new()),
        Err(Error::Weights { .. })
    ));
}

/// torchvision's full-size state-dict names and shapes, from tests/pytorch/torchvision_keys.txt.
fn torchvision_keys(model: &str) -> BTreeMap<String, Vec<usize>> {
    let text = std::fs::read_to_string("tests/pytorch/torchvision_keys.txt").unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .filter(|f| f[0] == model && f[1] != "parameters" && !f[1].ends_with("num_batches_tracked"))
        .map(|f| {
            let shape = f[2].split('x').map(|d| d.parse().unwrap()).collect();
            (f[1].to_string(), shape)
        })
        .collect()
}

/// Every tensor of the zoo model maps, through its `Torchvision` names, to a torchvision
/// tensor of the same shape, and every torchvision tensor is used.
fn check_name_map<M>()
where
    M: BuildOnDevice<TestDevice, f32> + Torchvision,
{
    let dev = TestDevice::default();
    let model = dev.build_module::<M, f32>();
    let map = M::torchvision_names(&model).unwrap();
    let theirs = torchvision_keys(M::NAME);
    assert!(!theirs.is_empty(), "{} is in torchvision_keys.txt", M::NAME);
    let mut used = 0;
    for (ours, shape) in tensor_shapes(&model) {
        let key = map.torch_name(&ours);
        assert_eq!(
            theirs.get(&key),
            Some(&shape),
            "{}: {ours} -> {key}",
            M::NAME
        );
        used += 1;
    }
    assert_eq!(
        used,
        theirs.len(),
        "{}: every torchvision tensor is used",
        M::NAME
    );
}

#[test]
fn zoo_name_maps_cover_torchvision() {
    use shapesafe::models::*;
    check_name_map::<ResNet18>();
    check_name_map::<ResNet34>();
    check_name_map::<ResNet50>();
    check_name_map::<ResNet101>();
    check_name_map::<ResNet152>();
    check_name_map::<MobileNetV2>();
    check_name_map::<AlexNet>();
    check_name_map::<GoogLeNet>();
    check_name_map::<ShuffleNetV2>();
    check_name_map::<Vgg11>();
    check_name_map::<Vgg11Bn>();
    check_name_map::<Vgg13>();
    check_name_map::<Vgg13Bn>();
    check_name_map::<Vgg16>();
    check_name_map::<Vgg16Bn>();
    check_name_map::<Vgg19>();
    check_name_map::<Vgg19Bn>();
}

#[test]
fn state_dicts_load_from_bytes_with_the_same_checks() {
    let dev = TestDevice::default();
    let bytes = std::fs::read("tests/pytorch/small_vgg.safetensors").unwrap();
    let from_file = {
        let mut model = dev.build_module::<TinyVgg<10>, f32>();
        let map = NameMap::by_order(&model, &vgg::torchvision_layers(&[1, 2], true)).unwrap();
        load_state_dict(&mut model, "tests/pytorch/small_vgg.safetensors", &map).unwrap();
        model.4.weight.as_vec()
    };
    let mut model = dev.build_module::<TinyVgg<10>, f32>();
    let map = NameMap::by_order(&model, &vgg::torchvision_layers(&[1, 2], true)).unwrap();
    shapesafe::pytorch::load_state_dict_from_bytes(&mut model, &bytes, &map).unwrap();
    assert_eq!(model.4.weight.as_vec(), from_file);

    // A wrong shape is named, says where the data came from, and changes nothing.
    let mut wrong = dev.build_module::<TinyVgg<12>, f32>();
    let before = wrong.4.weight.as_vec();
    let map = NameMap::by_order(&wrong, &vgg::torchvision_layers(&[1, 2], true)).unwrap();
    let err = shapesafe::pytorch::load_state_dict_from_bytes(&mut wrong, &bytes, &map)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("classifier.6.weight") && err.contains("in-memory data"),
        "{err}"
    );
    assert_eq!(wrong.4.weight.as_vec(), before);
}

/// `model`'s tensors under torchvision's names, as `safetensors.torch.save_file` writes them.
fn torchvision_state_dict<
    M: TensorCollection<f32, TestDevice> + SaveToSafetensors<f32, TestDevice>,
>(
    model: &M,
    map: &NameMap,
) -> Vec<u8> {
    let path =
        std::env::temp_dir().join(format!("shapesafe-tv-{}.safetensors", std::process::id()));
    model.save_safetensors(&path).unwrap();
    let ours = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let file = ::safetensors::SafeTensors::deserialize(&ours).unwrap();
    let views: Vec<(String, ::safetensors::tensor::TensorView)> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| (map.torch_name(&name), view))
        .collect();
    ::safetensors::serialize(views, &None).unwrap()
}

#[test]
fn torchvision_weights_load_in_one_call_and_wrong_files_name_the_first_misfit() {
    use shapesafe::models::{ResNet18, ResNet34};
    let dev = TestDevice::default();
    let source = dev.build_module::<ResNet18, f32>();
    let bytes = torchvision_state_dict(&source, &<ResNet18>::torchvision_names(&source).unwrap());
    let dir = std::env::temp_dir().join(format!("shapesafe-tv-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };

    // ResNet-18's weights into a fresh ResNet-18: every tensor arrives.
    let mut model = dev.build_module::<ResNet18, f32>();
    <ResNet18>::load_torchvision(&mut model, write("resnet18.safetensors", &bytes)).unwrap();
    assert_eq!(
        model.0 .0 .0.weight.as_vec(),
        source.0 .0 .0.weight.as_vec()
    );
    assert_eq!(model.5 .1.weight.as_vec(), source.5 .1.weight.as_vec());

    // Into ResNet-34: the first block ResNet-18 lacks is named, and nothing changes.
    let mut other = dev.build_module::<ResNet34, f32>();
    let before = other.0 .0 .0.weight.as_vec();
    let err = <ResNet34>::load_torchvision(&mut other, dir.join("resnet18.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"layer1.2.conv1.weight\"") && err.contains("missing"),
        "{err}"
    );
    assert_eq!(other.0 .0 .0.weight.as_vec(), before);

    // A truncated file.
    let path = write("truncated.safetensors", &bytes[..bytes.len() / 2]);
    let err = <ResNet18>::load_torchvision(&mut model, path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a safetensors file"), "{err}");

    // An integer tensor where a float belongs: the first one is named.
    let file = ::safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let views: Vec<(String, ::safetensors::tensor::TensorView)> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let dtype = if name == "conv1.weight" {
                ::safetensors::Dtype::I32
            } else {
                view.dtype()
            };
            let view =
                ::safetensors::tensor::TensorView::new(dtype, view.shape().to_vec(), view.data())
                    .unwrap();
            (name, view)
        })
        .collect();
    let ints = ::safetensors::serialize(views, &None).unwrap();
    let fresh = dev.build_module::<ResNet18, f32>();
    let mut model = fresh.clone();
    let err = <ResNet18>::load_torchvision(&mut model, write("int.safetensors", &ints))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"conv1.weight\"") && err.contains("not a float type"),
        "{err}"
    );
    assert_eq!(model.0 .0 .0.weight.as_vec(), fresh.0 .0 .0.weight.as_vec());
    std::fs::remove_dir_all(&dir).unwrap();
}
