//! ShuffleNet V2 (Ma et al., 2018) as torchvision builds it: channel-split and
//! downsampling units with channel shuffles, ShuffleNetV2 x1.0 for 224x224x3, and its
//! torchvision layer names for loading PyTorch weights.

use crate::nn::builders::{
    BatchNorm2d, ChannelShuffle, ChannelSplit, Concat, Conv2d, GlobalAvgPool2d, Linear, MaxPool2d,
    ReLU, Repeated,
};
use dfdx::shapes::{Rank1, Rank3};

/// A bias-free 1x1 convolution, batch norm, ReLU.
///
/// # Shapes
/// `(IN, H, W) -> (OUT, H, W)`.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::shufflenet::PointwiseBnReLU;
/// shapesafe::assert_shapes!(PointwiseBnReLU<464, 1024>: Rank3<464, 7, 7> => Rank3<1024, 7, 7>);
/// ```
pub type PointwiseBnReLU<const IN: usize, const OUT: usize> = (
    Conv2d<IN, OUT, 1, 1, 0, 1, 1, false>,
    BatchNorm2d<OUT>,
    ReLU,
);

/// A bias-free 3x3 depthwise convolution (one filter per channel) and batch norm, no ReLU.
///
/// # Shapes
/// `(CHANNELS, H, W) -> (CHANNELS, ceil(H / STRIDE), ceil(W / STRIDE))`.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::shufflenet::DepthwiseBn;
/// shapesafe::assert_shapes!(DepthwiseBn<24, 2>: Rank3<24, 56, 56> => Rank3<24, 28, 28>, params = 264);
/// ```
pub type DepthwiseBn<const CHANNELS: usize, const STRIDE: usize> = (
    Conv2d<CHANNELS, CHANNELS, 3, STRIDE, 1, 1, CHANNELS, false>,
    BatchNorm2d<CHANNELS>,
);

/// torchvision's `branch2`: 1x1, 3x3 depthwise (strided), 1x1.
///
/// # Shapes
/// `(IN, H, W) -> (BRANCH, ceil(H / STRIDE), ceil(W / STRIDE))`.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::shufflenet::ShuffleBranch;
/// shapesafe::assert_shapes!(ShuffleBranch<24, 58, 2>: Rank3<24, 56, 56> => Rank3<58, 28, 28>);
/// ```
pub type ShuffleBranch<const IN: usize, const BRANCH: usize, const STRIDE: usize> = (
    PointwiseBnReLU<IN, BRANCH>,
    DepthwiseBn<BRANCH, STRIDE>,
    PointwiseBnReLU<BRANCH, BRANCH>,
);

/// ShuffleNet V2's basic unit: half the channels through [`ShuffleBranch`], half
/// untouched, then a channel shuffle of two groups. `2 * BRANCH` channels in and out.
///
/// PyTorch equivalent: `torchvision.models.shufflenetv2.InvertedResidual(2 * BRANCH,
/// 2 * BRANCH, 1)`.
///
/// # Shapes
/// `(2 * BRANCH, H, W) -> (2 * BRANCH, H, W)`.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::shufflenet::ShuffleUnit;
/// shapesafe::assert_shapes!(ShuffleUnit<58>: Rank3<116, 28, 28> => Rank3<116, 28, 28>, params = 7_598);
/// ```
pub type ShuffleUnit<const BRANCH: usize> = (
    ChannelSplit<ShuffleBranch<BRANCH, BRANCH, 1>>,
    ChannelShuffle<2>,
);

/// ShuffleNet V2's downsampling unit: both branches see the whole input with stride 2
/// (`branch1`: depthwise then 1x1; `branch2`: [`ShuffleBranch`]), are concatenated to
/// `2 * BRANCH` channels, and shuffled.
///
/// PyTorch equivalent: `torchvision.models.shufflenetv2.InvertedResidual(IN, 2 * BRANCH, 2)`.
///
/// # Shapes
/// `(IN, H, W) -> (2 * BRANCH, ceil(H / 2), ceil(W / 2))`.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::shufflenet::ShuffleUnitDown;
/// shapesafe::assert_shapes!(ShuffleUnitDown<24, 58>: Rank3<24, 56, 56> => Rank3<116, 28, 28>);
/// ```
pub type ShuffleUnitDown<const IN: usize, const BRANCH: usize> = (
    Concat<(DepthwiseBn<IN, 2>, PointwiseBnReLU<IN, BRANCH>), ShuffleBranch<IN, BRANCH, 2>>,
    ChannelShuffle<2>,
);

/// ShuffleNet V2 x1.0, torchvision's `shufflenet_v2_x1_0`: a 3x3 stride-2 stem and max
/// pool, three stages of 4, 8 and 4 units (116, 232 and 464 channels), a 1x1 convolution
/// to 1024, global average pooling and the classifier.
///
/// PyTorch equivalent: `torchvision.models.shufflenet_v2_x1_0()`; its weights load with
/// [`torchvision_layers`] and [`crate::pytorch::load_state_dict`].
///
/// # Shapes
/// `(3, 224, 224) -> (CLASSES,)`, batched `(B, 3, 224, 224) -> (B, CLASSES)`.
/// 2,278,604 parameters with 1000 classes, checked at compile time.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::ShuffleNetV2;
/// assert_eq!(<ShuffleNetV2 as ShapeInfer<Rank3<3, 224, 224>>>::PARAMS, 2_278_604);
/// ```
pub type ShuffleNetV2<const CLASSES: usize = 1000> = (
    (
        Conv2d<3, 24, 3, 2, 1, 1, 1, false>,
        BatchNorm2d<24>,
        ReLU,
        MaxPool2d<3, 2, 1>,
    ),
    (ShuffleUnitDown<24, 58>, Repeated<ShuffleUnit<58>, 3>),
    (ShuffleUnitDown<116, 116>, Repeated<ShuffleUnit<116>, 7>),
    (ShuffleUnitDown<232, 232>, Repeated<ShuffleUnit<232>, 3>),
    PointwiseBnReLU<464, 1024>,
    (GlobalAvgPool2d, Linear<1024, CLASSES>),
);

crate::assert_shapes!(ShuffleNetV2: Rank3<3, 224, 224> => Rank1<1000>, params = 2_278_604);

/// torchvision's names for the layers with tensors of one `InvertedResidual` named
/// `unit`, in the order they run; `downsample` adds its `branch1`.
///
/// # Shapes
/// Not a layer.
///
/// ```
/// use shapesafe::models::shufflenet::unit_layers;
/// assert_eq!(unit_layers("stage2.1", false)[0], "stage2.1.branch2.0");
/// assert_eq!(unit_layers("stage2.0", true).len(), 4 + 6);
/// ```
pub fn unit_layers(unit: &str, downsample: bool) -> Vec<String> {
    let branch1: &[usize] = if downsample { &[0, 1, 2, 3] } else { &[] };
    let branch1 = branch1.iter().map(|i| format!("{unit}.branch1.{i}"));
    let branch2 = [0, 1, 3, 4, 5, 6].map(|i| format!("{unit}.branch2.{i}"));
    branch1.chain(branch2).collect()
}

/// torchvision's names for ShuffleNetV2's layers with tensors, in the order they run:
/// `conv1.0`, `conv1.1`, `stage2.0.branch1.0`, ..., `conv5.1`, `fc`.
///
/// # Shapes
/// Not a layer.
///
/// ```
/// use shapesafe::models::shufflenet::torchvision_layers;
/// let names = torchvision_layers();
/// assert_eq!(names[..3], ["conv1.0", "conv1.1", "stage2.0.branch1.0"]);
/// assert_eq!(names.last().unwrap(), "fc");
/// ```
pub fn torchvision_layers() -> Vec<String> {
    let mut names = vec!["conv1.0".to_string(), "conv1.1".to_string()];
    for (stage, units) in [(2, 4), (3, 8), (4, 4)] {
        for unit in 0..units {
            names.extend(unit_layers(&format!("stage{stage}.{unit}"), unit == 0));
        }
    }
    names.extend(["conv5.0", "conv5.1", "fc"].map(String::from));
    names
}
