//! MobileNetV2 (Sandler et al., 2018) as torchvision builds it: inverted residual blocks of
//! depthwise convolutions, and its torchvision layer names for loading PyTorch weights.

use crate::nn::builders::{
    BatchNorm2d, Conv2d, DropoutOneIn, GlobalAvgPool2d, Linear, ReLU6, Residual,
};
use dfdx::shapes::{Rank1, Rank3};

/// Convolution (no bias), batch norm and ReLU6: torchvision's `Conv2dNormActivation`.
pub type ConvBnReLU6<
    const IN: usize,
    const OUT: usize,
    const KERNEL: usize,
    const STRIDE: usize,
    const PADDING: usize,
    const GROUPS: usize,
> = (
    Conv2d<IN, OUT, KERNEL, STRIDE, PADDING, 1, GROUPS, false>,
    BatchNorm2d<OUT>,
    ReLU6,
);

/// An inverted residual's layers without the shortcut: 1x1 expansion to `HIDDEN` channels,
/// 3x3 depthwise convolution (strided), 1x1 linear projection to `OUT`.
///
/// Stable Rust cannot compute `IN * expansion` in a type, so the hidden width is written out.
pub type InvertedBranch<
    const IN: usize,
    const HIDDEN: usize,
    const OUT: usize,
    const STRIDE: usize,
> = (
    ConvBnReLU6<IN, HIDDEN, 1, 1, 0, 1>,
    ConvBnReLU6<HIDDEN, HIDDEN, 3, STRIDE, 1, HIDDEN>,
    Conv2d<HIDDEN, OUT, 1, 1, 0, 1, 1, false>,
    BatchNorm2d<OUT>,
);

/// MobileNetV2's inverted residual block without a shortcut (it changes width or size).
///
/// PyTorch equivalent: `torchvision.models.mobilenetv2.InvertedResidual(IN, OUT, STRIDE, HIDDEN / IN)`.
///
/// # Shapes
/// `(IN, H, W) -> (OUT, ceil(H / STRIDE), ceil(W / STRIDE))`.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::mobilenet::InvertedResidual;
/// type Block = InvertedResidual<16, 96, 24, 2>;
/// type Out = <Block as ShapeInfer<Rank3<16, 112, 112>>>::Output;
/// assert_eq!(<Out as StaticShape>::DIMS, &[24, 56, 56]);
/// assert_eq!(<Block as ShapeInfer<Rank3<16, 112, 112>>>::PARAMS, 5_136);
/// ```
pub type InvertedResidual<
    const IN: usize,
    const HIDDEN: usize,
    const OUT: usize,
    const STRIDE: usize,
> = InvertedBranch<IN, HIDDEN, OUT, STRIDE>;

/// MobileNetV2's inverted residual block with its identity shortcut (stride 1, same width).
///
/// # Shapes
/// `(CHANNELS, H, W) -> (CHANNELS, H, W)`.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::mobilenet::InvertedResidualSkip;
/// type Out = <InvertedResidualSkip<24, 144> as ShapeInfer<Rank3<24, 56, 56>>>::Output;
/// assert_eq!(<Out as StaticShape>::DIMS, &[24, 56, 56]);
/// ```
pub type InvertedResidualSkip<const CHANNELS: usize, const HIDDEN: usize> =
    Residual<InvertedBranch<CHANNELS, HIDDEN, CHANNELS, 1>>;

/// The first block, with expansion 1: no 1x1 expansion layer.
pub type FirstBlock = (
    ConvBnReLU6<32, 32, 3, 1, 1, 32>,
    Conv2d<32, 16, 1, 1, 0, 1, 1, false>,
    BatchNorm2d<16>,
);

/// MobileNetV2 (width 1.0), torchvision's `mobilenet_v2`.
///
/// PyTorch equivalent: `torchvision.models.mobilenet_v2()`; its weights load with
/// [`torchvision_layers`] and [`crate::pytorch::load_state_dict`].
///
/// # Shapes
/// `(3, 224, 224) -> (CLASSES,)`, batched `(B, 3, 224, 224) -> (B, CLASSES)`.
/// 3,504,872 parameters with 1000 classes, checked at compile time.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::MobileNetV2;
/// assert_eq!(<MobileNetV2 as ShapeInfer<Rank3<3, 224, 224>>>::PARAMS, 3_504_872);
/// ```
pub type MobileNetV2<const CLASSES: usize = 1000> = (
    (ConvBnReLU6<3, 32, 3, 2, 1, 1>, FirstBlock),
    (
        InvertedResidual<16, 96, 24, 2>,
        InvertedResidualSkip<24, 144>,
    ),
    (
        InvertedResidual<24, 144, 32, 2>,
        InvertedResidualSkip<32, 192>,
        InvertedResidualSkip<32, 192>,
    ),
    (
        (
            InvertedResidual<32, 192, 64, 2>,
            InvertedResidualSkip<64, 384>,
            InvertedResidualSkip<64, 384>,
            InvertedResidualSkip<64, 384>,
        ),
        (
            InvertedResidual<64, 384, 96, 1>,
            InvertedResidualSkip<96, 576>,
            InvertedResidualSkip<96, 576>,
        ),
    ),
    (
        InvertedResidual<96, 576, 160, 2>,
        InvertedResidualSkip<160, 960>,
        InvertedResidualSkip<160, 960>,
        InvertedResidual<160, 960, 320, 1>,
        ConvBnReLU6<320, 1280, 1, 1, 0, 1>,
    ),
    (GlobalAvgPool2d, DropoutOneIn<5>, Linear<1280, CLASSES>),
);

crate::assert_shapes!(MobileNetV2: Rank3<3, 224, 224> => Rank1<1000>, params = 3_504_872);

/// torchvision's names for MobileNetV2's layers with tensors, in the order they run:
/// `features.0.0`, `features.0.1`, `features.1.conv.0.0`, ... `classifier.1`.
///
/// # Shapes
/// Not a layer.
///
/// ```
/// use shapesafe::models::mobilenet::torchvision_layers;
/// let names = torchvision_layers();
/// assert_eq!(names[..4], ["features.0.0", "features.0.1", "features.1.conv.0.0", "features.1.conv.0.1"]);
/// assert_eq!(names.len(), 2 + 4 + 16 * 6 + 2 + 1);
/// ```
pub fn torchvision_layers() -> Vec<String> {
    let mut names = vec!["features.0.0".to_string(), "features.0.1".to_string()];
    for suffix in ["conv.0.0", "conv.0.1", "conv.1", "conv.2"] {
        names.push(format!("features.1.{suffix}"));
    }
    for block in 2..=17 {
        for suffix in [
            "conv.0.0", "conv.0.1", "conv.1.0", "conv.1.1", "conv.2", "conv.3",
        ] {
            names.push(format!("features.{block}.{suffix}"));
        }
    }
    names.push("features.18.0".to_string());
    names.push("features.18.1".to_string());
    names.push("classifier.1".to_string());
    names
}
