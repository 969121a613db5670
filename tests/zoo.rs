//! The model zoo at native input sizes: every model builds with its torchvision parameter count,
//! runs forward on the CPU, and trains (gradients reach every parameter).

mod common;

use common::TestDevice;
use shapesafe::models::*;
use shapesafe::prelude::*;

/// Builds `M`, checks its parameter count against the value torchvision reports, and runs
/// one eval-mode forward on a normal-random batch of `B` images of shape `(C, H, W)`.
fn forward_at<M, const B: usize, const C: usize, const H: usize, const W: usize, const OUT: usize>(
    params: usize,
) -> Vec<f32>
where
    M: BuildOnDevice<TestDevice, f32> + ShapeInfer<Rank3<C, H, W>>,
    M::Built: NumParams<f32, TestDevice>
        + Module<
            Tensor<Rank4<B, C, H, W>, f32, TestDevice>,
            Output = Tensor<Rank2<B, OUT>, f32, TestDevice>,
        >,
{
    let dev = TestDevice::seed_from_u64(0);
    let model = dev.build_module::<M, f32>();
    assert_eq!(model.num_trainable_params(), params);
    assert_eq!(<M as ShapeInfer<Rank3<C, H, W>>>::PARAMS, params);
    let y = model.forward(dev.sample_normal()).as_vec();
    assert_eq!(y.len(), B * OUT);
    assert!(y.iter().all(|v| v.is_finite()), "non-finite logits");
    // Random weights still separate random inputs: the logits are not all equal.
    assert!(y.iter().any(|&v| (v - y[0]).abs() > 1e-6));
    y
}

#[test]
fn resnets_run_at_224() {
    forward_at::<ResNet18, 1, 3, 224, 224, 1000>(11_689_512);
    forward_at::<ResNet34, 1, 3, 224, 224, 1000>(21_797_672);
    forward_at::<ResNet50, 1, 3, 224, 224, 1000>(25_557_032);
    forward_at::<ResNet101, 1, 3, 224, 224, 1000>(44_549_160);
    forward_at::<ResNet152, 1, 3, 224, 224, 1000>(60_192_808);
}

#[test]
fn alexnet_googlenet_and_shufflenet_run_at_224() {
    forward_at::<AlexNet, 1, 3, 224, 224, 1000>(61_100_840);
    forward_at::<GoogLeNet, 1, 3, 224, 224, 1000>(6_624_904);
    forward_at::<ShuffleNetV2, 1, 3, 224, 224, 1000>(2_278_604);
}

#[test]
fn mobilenet_v2_runs_at_224() {
    forward_at::<MobileNetV2, 1, 3, 224, 224, 1000>(3_504_872);
}

#[test]
fn vgg16_runs_at_224() {
    forward_at::<Vgg16, 1, 3, 224, 224, 1000>(138_357_544);
    forward_at::<Vgg11Bn, 1, 3, 224, 224, 1000>(132_868_840);
}

#[test]
fn cifar_vgg_runs_at_32() {
    forward_at::<VggCifar, 2, 3, 32, 32, 10>(14_728_266);
}

#[test]
fn unet_keeps_the_image_size() {
    let dev = TestDevice::seed_from_u64(0);
    let net = dev.build_module::<UNet<3, 2>, f32>();
    assert_eq!(net.num_trainable_params(), 31_037_698);
    let y = net.forward(dev.sample_normal::<Rank4<1, 3, 64, 64>>());
    assert_eq!(y.shape().concrete(), [1, 2, 64, 64]);
    assert!(y.as_vec().iter().all(|v| v.is_finite()));
}

/// The names of trainable tensors an SGD step on `grads` leaves unchanged.
fn untouched<M>(model: &M, grads: &Gradients<f64, TestDevice>) -> Vec<String>
where
    M: TensorCollection<f64, TestDevice> + Clone,
{
    let mut stepped = model.clone();
    let mut sgd = dfdx::optim::Sgd::new(
        &stepped,
        SgdConfig {
            lr: 1.0,
            ..Default::default()
        },
    );
    sgd.update(&mut stepped, grads).unwrap();
    let dir = std::env::temp_dir();
    let (a, b) = (
        dir.join("shapesafe-zoo-a.safetensors"),
        dir.join("shapesafe-zoo-b.safetensors"),
    );
    model.save_safetensors(&a).unwrap();
    stepped.save_safetensors(&b).unwrap();
    let (a, b) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let (a, b) = (
        ::safetensors::SafeTensors::deserialize(&a).unwrap(),
        ::safetensors::SafeTensors::deserialize(&b).unwrap(),
    );
    shapesafe::pytorch::tensor_names(model)
        .into_iter()
        .filter(|n| !n.contains("running_"))
        .filter(|n| a.tensor(n).unwrap().data() == b.tensor(n).unwrap().data())
        .collect()
}

/// A training step reaches every parameter of a ResNet (through both residual kinds and the
/// batch norms in training mode) and of a U-Net (through the skip concatenations and the
/// transposed convolutions).
#[test]
fn gradients_reach_every_parameter() {
    use shapesafe::models::resnet::{BasicBlock, BasicBlockDown, BottleneckDown, ConvBn, Head};
    type Small = (
        (ConvBn<3, 8, 3, 1, 1>, ReLU),
        BasicBlock<8>,
        BasicBlockDown<8, 16, 2>,
        BottleneckDown<16, 8, 32, 2>,
        Head<32, 10>,
    );
    let dev = TestDevice::seed_from_u64(1);
    let mut model = dev.build_module::<Small, f64>();
    let x = dev.sample_normal::<Rank4<4, 3, 16, 16>>();
    let grads = model
        .forward_mut(x.leaky_trace())
        .square()
        .mean()
        .backward();
    assert_eq!(untouched(&model, &grads), Vec::<String>::new());

    let mut unet = dev.build_module::<UNetSmall<1, 2>, f64>();
    let x = dev.sample_normal::<Rank4<2, 1, 16, 16>>();
    let grads = unet.forward_mut(x.leaky_trace()).square().mean().backward();
    assert_eq!(untouched(&unet, &grads), Vec::<String>::new());
}
