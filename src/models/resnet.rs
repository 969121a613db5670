//! ResNet (He et al., 2015) as torchvision builds it: basic and bottleneck blocks, ResNet-18, 34,
//! 50, 101 and 152 for 224x224x3, and their torchvision layer names for loading PyTorch weights.

use crate::nn::builders::{
    BatchNorm2d, Conv2d, GlobalAvgPool2d, Linear, MaxPool2d, ReLU, Repeated, Residual,
    ResidualProjection,
};
use dfdx::shapes::{Rank1, Rank3};

/// A bias-free convolution and its batch norm: every ResNet convolution.
pub type ConvBn<
    const IN: usize,
    const OUT: usize,
    const KERNEL: usize,
    const STRIDE: usize,
    const PADDING: usize,
> = (
    Conv2d<IN, OUT, KERNEL, STRIDE, PADDING, 1, 1, false>,
    BatchNorm2d<OUT>,
);

/// The two 3x3 convolutions of a basic block (the first one strided), without the shortcut.
pub type BasicBranch<const IN: usize, const OUT: usize, const STRIDE: usize> = (
    ConvBn<IN, OUT, 3, STRIDE, 1>,
    ReLU,
    ConvBn<OUT, OUT, 3, 1, 1>,
);

/// ResNet's basic block with an identity shortcut: `relu(x + bn(conv(relu(bn(conv(x))))))`.
///
/// PyTorch equivalent: `torchvision.models.resnet.BasicBlock(CHANNELS, CHANNELS)`.
///
/// # Shapes
/// `(CHANNELS, H, W) -> (CHANNELS, H, W)`.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::resnet::BasicBlock;
/// assert_eq!(<BasicBlock<64> as ShapeInfer<Rank3<64, 56, 56>>>::PARAMS, 73_984);
/// ```
pub type BasicBlock<const CHANNELS: usize> = (Residual<BasicBranch<CHANNELS, CHANNELS, 1>>, ReLU);

/// ResNet's basic block that changes width or size, with a projection shortcut
/// (a strided 1x1 convolution and batch norm, torchvision's `downsample`).
///
/// # Shapes
/// `(IN, H, W) -> (OUT, ceil(H / STRIDE), ceil(W / STRIDE))`.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::resnet::BasicBlockDown;
/// type Out = <BasicBlockDown<64, 128, 2> as ShapeInfer<Rank3<64, 56, 56>>>::Output;
/// assert_eq!(<Out as StaticShape>::DIMS, &[128, 28, 28]);
/// ```
pub type BasicBlockDown<const IN: usize, const OUT: usize, const STRIDE: usize> = (
    ResidualProjection<BasicBranch<IN, OUT, STRIDE>, ConvBn<IN, OUT, 1, STRIDE, 0>>,
    ReLU,
);

/// The 1x1, 3x3 (strided), 1x1 convolutions of a bottleneck block, without the shortcut.
pub type BottleneckBranch<
    const IN: usize,
    const WIDTH: usize,
    const OUT: usize,
    const STRIDE: usize,
> = (
    (ConvBn<IN, WIDTH, 1, 1, 0>, ReLU),
    (ConvBn<WIDTH, WIDTH, 3, STRIDE, 1>, ReLU),
    ConvBn<WIDTH, OUT, 1, 1, 0>,
);

/// ResNet's bottleneck block with an identity shortcut (torchvision's ResNet v1.5 form).
///
/// PyTorch equivalent: `torchvision.models.resnet.Bottleneck(CHANNELS, WIDTH)` with
/// `CHANNELS = 4 * WIDTH`.
///
/// # Shapes
/// `(CHANNELS, H, W) -> (CHANNELS, H, W)`.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::resnet::Bottleneck;
/// assert_eq!(<Bottleneck<256, 64> as ShapeInfer<Rank3<256, 56, 56>>>::PARAMS, 70_400);
/// ```
pub type Bottleneck<const CHANNELS: usize, const WIDTH: usize> = (
    Residual<BottleneckBranch<CHANNELS, WIDTH, CHANNELS, 1>>,
    ReLU,
);

/// ResNet's bottleneck block with a projection shortcut; the stride sits on the 3x3
/// convolution, as in torchvision.
///
/// # Shapes
/// `(IN, H, W) -> (OUT, ceil(H / STRIDE), ceil(W / STRIDE))`.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::resnet::BottleneckDown;
/// type Out = <BottleneckDown<256, 128, 512, 2> as ShapeInfer<Rank3<256, 56, 56>>>::Output;
/// assert_eq!(<Out as StaticShape>::DIMS, &[512, 28, 28]);
/// ```
pub type BottleneckDown<
    const IN: usize,
    const WIDTH: usize,
    const OUT: usize,
    const STRIDE: usize,
> = (
    ResidualProjection<BottleneckBranch<IN, WIDTH, OUT, STRIDE>, ConvBn<IN, OUT, 1, STRIDE, 0>>,
    ReLU,
);

/// The ImageNet stem: 7x7 stride-2 convolution, batch norm, ReLU, 3x3 stride-2 max pool.
///
/// # Shapes
/// `(3, 224, 224) -> (64, 56, 56)`.
///
/// ```
/// use shapesafe::prelude::*;
/// type Out = <shapesafe::models::resnet::Stem as ShapeInfer<Rank3<3, 224, 224>>>::Output;
/// assert_eq!(<Out as StaticShape>::DIMS, &[64, 56, 56]);
/// ```
pub type Stem = (ConvBn<3, 64, 7, 2, 3>, ReLU, MaxPool2d<3, 2, 1>);

/// Global average pooling and the fully connected classifier.
pub type Head<const FEATURES: usize, const CLASSES: usize> =
    (GlobalAvgPool2d, Linear<FEATURES, CLASSES>);

/// ResNet-18, torchvision's `resnet18`.
///
/// PyTorch equivalent: `torchvision.models.resnet18()`; its weights load with
/// [`torchvision_layers`] and [`crate::pytorch::load_state_dict`].
///
/// # Shapes
/// `(3, 224, 224) -> (CLASSES,)`, batched `(B, 3, 224, 224) -> (B, CLASSES)`; other
/// sizes work too (the head pools globally). 11,689,512 parameters with 1000 classes,
/// checked at compile time.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::ResNet18;
/// assert_eq!(<ResNet18 as ShapeInfer<Rank3<3, 224, 224>>>::PARAMS, 11_689_512);
/// ```
pub type ResNet18<const CLASSES: usize = 1000> = (
    Stem,
    (BasicBlock<64>, BasicBlock<64>),
    (BasicBlockDown<64, 128, 2>, BasicBlock<128>),
    (BasicBlockDown<128, 256, 2>, BasicBlock<256>),
    (BasicBlockDown<256, 512, 2>, BasicBlock<512>),
    Head<512, CLASSES>,
);

/// ResNet-34, torchvision's `resnet34`.
///
/// # Shapes
/// `(3, 224, 224) -> (CLASSES,)`, batched `(B, 3, 224, 224) -> (B, CLASSES)`.
/// 21,797,672 parameters with 1000 classes, checked at compile time.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::ResNet34;
/// assert_eq!(<ResNet34 as ShapeInfer<Rank3<3, 224, 224>>>::PARAMS, 21_797_672);
/// ```
pub type ResNet34<const CLASSES: usize = 1000> = (
    Stem,
    (BasicBlock<64>, BasicBlock<64>, BasicBlock<64>),
    (
        BasicBlockDown<64, 128, 2>,
        BasicBlock<128>,
        BasicBlock<128>,
        BasicBlock<128>,
    ),
    (
        BasicBlockDown<128, 256, 2>,
        BasicBlock<256>,
        BasicBlock<256>,
        BasicBlock<256>,
        BasicBlock<256>,
        BasicBlock<256>,
    ),
    (
        BasicBlockDown<256, 512, 2>,
        BasicBlock<512>,
        BasicBlock<512>,
    ),
    Head<512, CLASSES>,
);

/// ResNet-50, torchvision's `resnet50` (v1.5: stride on the 3x3 convolutions).
///
/// # Shapes
/// `(3, 224, 224) -> (CLASSES,)`, batched `(B, 3, 224, 224) -> (B, CLASSES)`.
/// 25,557,032 parameters with 1000 classes, checked at compile time.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::ResNet50;
/// assert_eq!(<ResNet50 as ShapeInfer<Rank3<3, 224, 224>>>::PARAMS, 25_557_032);
/// ```
pub type ResNet50<const CLASSES: usize = 1000> = (
    Stem,
    (
        BottleneckDown<64, 64, 256, 1>,
        Bottleneck<256, 64>,
        Bottleneck<256, 64>,
    ),
    (
        BottleneckDown<256, 128, 512, 2>,
        Bottleneck<512, 128>,
        Bottleneck<512, 128>,
        Bottleneck<512, 128>,
    ),
    (
        BottleneckDown<512, 256, 1024, 2>,
        Bottleneck<1024, 256>,
        Bottleneck<1024, 256>,
        Bottleneck<1024, 256>,
        Bottleneck<1024, 256>,
        Bottleneck<1024, 256>,
    ),
    (
        BottleneckDown<1024, 512, 2048, 2>,
        Bottleneck<2048, 512>,
        Bottleneck<2048, 512>,
    ),
    Head<2048, CLASSES>,
);

/// ResNet-101, torchvision's `resnet101`: ResNet-50 with 23 blocks in its third stage.
///
/// # Shapes
/// `(3, 224, 224) -> (CLASSES,)`, batched `(B, 3, 224, 224) -> (B, CLASSES)`.
/// 44,549,160 parameters with 1000 classes, checked at compile time.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::ResNet101;
/// assert_eq!(<ResNet101 as ShapeInfer<Rank3<3, 224, 224>>>::PARAMS, 44_549_160);
/// ```
pub type ResNet101<const CLASSES: usize = 1000> = (
    Stem,
    (
        BottleneckDown<64, 64, 256, 1>,
        Repeated<Bottleneck<256, 64>, 2>,
    ),
    (
        BottleneckDown<256, 128, 512, 2>,
        Repeated<Bottleneck<512, 128>, 3>,
    ),
    (
        BottleneckDown<512, 256, 1024, 2>,
        Repeated<Bottleneck<1024, 256>, 22>,
    ),
    (
        BottleneckDown<1024, 512, 2048, 2>,
        Repeated<Bottleneck<2048, 512>, 2>,
    ),
    Head<2048, CLASSES>,
);

/// ResNet-152, torchvision's `resnet152`: 8 blocks in the second stage, 36 in the third.
///
/// # Shapes
/// `(3, 224, 224) -> (CLASSES,)`, batched `(B, 3, 224, 224) -> (B, CLASSES)`.
/// 60,192,808 parameters with 1000 classes, checked at compile time.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::ResNet152;
/// assert_eq!(<ResNet152 as ShapeInfer<Rank3<3, 224, 224>>>::PARAMS, 60_192_808);
/// ```
pub type ResNet152<const CLASSES: usize = 1000> = (
    Stem,
    (
        BottleneckDown<64, 64, 256, 1>,
        Repeated<Bottleneck<256, 64>, 2>,
    ),
    (
        BottleneckDown<256, 128, 512, 2>,
        Repeated<Bottleneck<512, 128>, 7>,
    ),
    (
        BottleneckDown<512, 256, 1024, 2>,
        Repeated<Bottleneck<1024, 256>, 35>,
    ),
    (
        BottleneckDown<1024, 512, 2048, 2>,
        Repeated<Bottleneck<2048, 512>, 2>,
    ),
    Head<2048, CLASSES>,
);

crate::assert_shapes!(ResNet18: Rank3<3, 224, 224> => Rank1<1000>, params = 11_689_512);
crate::assert_shapes!(ResNet34: Rank3<3, 224, 224> => Rank1<1000>, params = 21_797_672);
crate::assert_shapes!(ResNet50: Rank3<3, 224, 224> => Rank1<1000>, params = 25_557_032);
crate::assert_shapes!(ResNet101: Rank3<3, 224, 224> => Rank1<1000>, params = 44_549_160);
crate::assert_shapes!(ResNet152: Rank3<3, 224, 224> => Rank1<1000>, params = 60_192_808);

/// torchvision's names for a ResNet's layers with tensors, in the order they run:
/// `conv1`, `bn1`, `layer1.0.conv1`, ... `layer4.1.bn2`, `fc`.
///
/// `blocks` is the number of blocks per stage (`[2, 2, 2, 2]` for ResNet-18);
/// `bottleneck` selects three convolutions per block; a stage's first block has a
/// `downsample` projection when its input width or size changes.
///
/// # Shapes
/// Not a layer.
///
/// ```
/// use shapesafe::models::resnet::torchvision_layers;
/// let names = torchvision_layers(&[2, 2, 2, 2], false);
/// assert_eq!(names[..4], ["conv1", "bn1", "layer1.0.conv1", "layer1.0.bn1"]);
/// assert_eq!(names.last().unwrap(), "fc");
/// ```
pub fn torchvision_layers(blocks: &[usize], bottleneck: bool) -> Vec<String> {
    let mut names = vec!["conv1".to_string(), "bn1".to_string()];
    let convs = if bottleneck { 3 } else { 2 };
    for (stage, &count) in blocks.iter().enumerate() {
        for block in 0..count {
            let prefix = format!("layer{}.{block}", stage + 1);
            for conv in 1..=convs {
                names.push(format!("{prefix}.conv{conv}"));
                names.push(format!("{prefix}.bn{conv}"));
            }
            // Every stage but a basic ResNet's first changes width or size in its first block.
            if block == 0 && (stage > 0 || bottleneck) {
                names.push(format!("{prefix}.downsample.0"));
                names.push(format!("{prefix}.downsample.1"));
            }
        }
    }
    names.push("fc".to_string());
    names
}
