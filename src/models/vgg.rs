//! VGG (Simonyan & Zisserman, 2014) as torchvision builds it: VGG11/13/16/19 (and `_bn`) for 224x224x3
//! with the 4096-wide head, a CIFAR-size VGG for 32x32, and torchvision layer names for PyTorch weights.

use crate::nn::builders::{
    AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Dropout, Flatten, Linear, MaxPool2d, ReLU,
};
use dfdx::shapes::{Rank1, Rank3};

/// A 3x3 convolution with padding 1 and its ReLU, VGG's unit.
pub type Conv3x3<const IN: usize, const OUT: usize> = (Conv2d<IN, OUT, 3, 1, 1>, ReLU);

/// A 3x3 convolution with padding 1, batch norm and ReLU: the unit of VGG's `_bn` variants.
pub type ConvBn3x3<const IN: usize, const OUT: usize> =
    (Conv2d<IN, OUT, 3, 1, 1>, BatchNorm2d<OUT>, ReLU);

/// A VGG stage of one 3x3 convolution, then 2x2 max pooling (halves the size).
///
/// # Shapes
/// `(IN, H, W) -> (OUT, H / 2, W / 2)`.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::vgg::Stage1;
/// type Out = <Stage1<3, 8> as ShapeInfer<Rank3<3, 32, 32>>>::Output;
/// assert_eq!(<Out as StaticShape>::DIMS, &[8, 16, 16]);
/// ```
pub type Stage1<const IN: usize, const OUT: usize> = (Conv3x3<IN, OUT>, MaxPool2d<2>);
/// A VGG stage of two 3x3 convolutions, then 2x2 max pooling.
///
/// # Shapes
/// `(IN, H, W) -> (OUT, H / 2, W / 2)`.
///
/// ```
/// use shapesafe::prelude::*;
/// type Out = <shapesafe::models::vgg::Stage2<3, 8> as ShapeInfer<Rank3<3, 32, 32>>>::Output;
/// assert_eq!(<Out as StaticShape>::DIMS, &[8, 16, 16]);
/// ```
pub type Stage2<const IN: usize, const OUT: usize> =
    (Conv3x3<IN, OUT>, Conv3x3<OUT, OUT>, MaxPool2d<2>);
/// A VGG stage of three 3x3 convolutions, then 2x2 max pooling.
///
/// # Shapes
/// `(IN, H, W) -> (OUT, H / 2, W / 2)`.
///
/// ```
/// use shapesafe::prelude::*;
/// type Out = <shapesafe::models::vgg::Stage3<3, 8> as ShapeInfer<Rank3<3, 32, 32>>>::Output;
/// assert_eq!(<Out as StaticShape>::DIMS, &[8, 16, 16]);
/// ```
pub type Stage3<const IN: usize, const OUT: usize> = (
    Conv3x3<IN, OUT>,
    Conv3x3<OUT, OUT>,
    Conv3x3<OUT, OUT>,
    MaxPool2d<2>,
);
/// A VGG stage of four 3x3 convolutions, then 2x2 max pooling.
///
/// # Shapes
/// `(IN, H, W) -> (OUT, H / 2, W / 2)`.
///
/// ```
/// use shapesafe::prelude::*;
/// type Out = <shapesafe::models::vgg::Stage4<3, 8> as ShapeInfer<Rank3<3, 32, 32>>>::Output;
/// assert_eq!(<Out as StaticShape>::DIMS, &[8, 16, 16]);
/// ```
pub type Stage4<const IN: usize, const OUT: usize> = (
    Conv3x3<IN, OUT>,
    Conv3x3<OUT, OUT>,
    Conv3x3<OUT, OUT>,
    Conv3x3<OUT, OUT>,
    MaxPool2d<2>,
);

/// torchvision's VGG classifier on the 512x7x7 features: two 4096-wide layers with
/// dropout (p = 0.5), then `CLASSES` logits.
///
/// # Shapes
/// `(512, 7, 7) -> (CLASSES,)`.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::vgg::Head;
/// assert_eq!(<Head<10> as ShapeInfer<Rank3<512, 7, 7>>>::PARAMS, 25_088 * 4096 + 4096 + 4096 * 4097 + 4097 * 10);
/// ```
pub type Head<const CLASSES: usize> = (
    Flatten,
    (Linear<25_088, 4096>, ReLU, Dropout),
    (Linear<4096, 4096>, ReLU, Dropout),
    Linear<4096, CLASSES>,
);

/// VGG-11 (configuration "A"), torchvision's `vgg11`.
///
/// # Shapes
/// `(3, 224, 224) -> (CLASSES,)`, batched `(B, 3, 224, 224) -> (B, CLASSES)`.
/// 132,863,336 parameters with 1000 classes, checked at compile time.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::Vgg11;
/// assert_eq!(<Vgg11 as ShapeInfer<Rank3<3, 224, 224>>>::PARAMS, 132_863_336);
/// ```
pub type Vgg11<const CLASSES: usize = 1000> = (
    (
        Stage1<3, 64>,
        Stage1<64, 128>,
        Stage2<128, 256>,
        Stage2<256, 512>,
        Stage2<512, 512>,
    ),
    AdaptiveAvgPool2d<7, 7>,
    Head<CLASSES>,
);

/// VGG-13 (configuration "B"), torchvision's `vgg13`.
///
/// # Shapes
/// `(3, 224, 224) -> (CLASSES,)`, batched `(B, 3, 224, 224) -> (B, CLASSES)`.
/// 133,047,848 parameters with 1000 classes, checked at compile time.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::Vgg13;
/// assert_eq!(<Vgg13 as ShapeInfer<Rank3<3, 224, 224>>>::PARAMS, 133_047_848);
/// ```
pub type Vgg13<const CLASSES: usize = 1000> = (
    (
        Stage2<3, 64>,
        Stage2<64, 128>,
        Stage2<128, 256>,
        Stage2<256, 512>,
        Stage2<512, 512>,
    ),
    AdaptiveAvgPool2d<7, 7>,
    Head<CLASSES>,
);

/// VGG-16 (configuration "D"), torchvision's `vgg16`.
///
/// PyTorch equivalent: `torchvision.models.vgg16()`; its weights load with
/// [`torchvision_layers`] and [`crate::pytorch::load_state_dict`].
///
/// # Shapes
/// `(3, 224, 224) -> (CLASSES,)`, batched `(B, 3, 224, 224) -> (B, CLASSES)`.
/// 138,357,544 parameters with 1000 classes, checked at compile time.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::Vgg16;
/// assert_eq!(<Vgg16 as ShapeInfer<Rank3<3, 224, 224>>>::PARAMS, 138_357_544);
/// ```
pub type Vgg16<const CLASSES: usize = 1000> = (
    (
        Stage2<3, 64>,
        Stage2<64, 128>,
        Stage3<128, 256>,
        Stage3<256, 512>,
        Stage3<512, 512>,
    ),
    AdaptiveAvgPool2d<7, 7>,
    Head<CLASSES>,
);

/// VGG-19 (configuration "E"), torchvision's `vgg19`.
///
/// # Shapes
/// `(3, 224, 224) -> (CLASSES,)`, batched `(B, 3, 224, 224) -> (B, CLASSES)`.
/// 143,667,240 parameters with 1000 classes, checked at compile time.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::Vgg19;
/// assert_eq!(<Vgg19 as ShapeInfer<Rank3<3, 224, 224>>>::PARAMS, 143_667_240);
/// ```
pub type Vgg19<const CLASSES: usize = 1000> = (
    (
        Stage2<3, 64>,
        Stage2<64, 128>,
        Stage4<128, 256>,
        Stage4<256, 512>,
        Stage4<512, 512>,
    ),
    AdaptiveAvgPool2d<7, 7>,
    Head<CLASSES>,
);

/// [`Stage1`] with batch norm after the convolution.
///
/// # Shapes
/// `(IN, H, W) -> (OUT, H / 2, W / 2)`.
///
/// ```
/// use shapesafe::prelude::*;
/// type Out = <shapesafe::models::vgg::BnStage1<3, 8> as ShapeInfer<Rank3<3, 32, 32>>>::Output;
/// assert_eq!(<Out as StaticShape>::DIMS, &[8, 16, 16]);
/// ```
pub type BnStage1<const IN: usize, const OUT: usize> = (ConvBn3x3<IN, OUT>, MaxPool2d<2>);
/// [`Stage2`] with batch norm after each convolution.
///
/// # Shapes
/// `(IN, H, W) -> (OUT, H / 2, W / 2)`.
///
/// ```
/// use shapesafe::prelude::*;
/// type Out = <shapesafe::models::vgg::BnStage2<3, 8> as ShapeInfer<Rank3<3, 32, 32>>>::Output;
/// assert_eq!(<Out as StaticShape>::DIMS, &[8, 16, 16]);
/// ```
pub type BnStage2<const IN: usize, const OUT: usize> =
    (ConvBn3x3<IN, OUT>, ConvBn3x3<OUT, OUT>, MaxPool2d<2>);
/// [`Stage3`] with batch norm after each convolution.
///
/// # Shapes
/// `(IN, H, W) -> (OUT, H / 2, W / 2)`.
///
/// ```
/// use shapesafe::prelude::*;
/// type Out = <shapesafe::models::vgg::BnStage3<3, 8> as ShapeInfer<Rank3<3, 32, 32>>>::Output;
/// assert_eq!(<Out as StaticShape>::DIMS, &[8, 16, 16]);
/// ```
pub type BnStage3<const IN: usize, const OUT: usize> = (
    ConvBn3x3<IN, OUT>,
    ConvBn3x3<OUT, OUT>,
    ConvBn3x3<OUT, OUT>,
    MaxPool2d<2>,
);
/// [`Stage4`] with batch norm after each convolution.
///
/// # Shapes
/// `(IN, H, W) -> (OUT, H / 2, W / 2)`.
///
/// ```
/// use shapesafe::prelude::*;
/// type Out = <shapesafe::models::vgg::BnStage4<3, 8> as ShapeInfer<Rank3<3, 32, 32>>>::Output;
/// assert_eq!(<Out as StaticShape>::DIMS, &[8, 16, 16]);
/// ```
pub type BnStage4<const IN: usize, const OUT: usize> = (
    ConvBn3x3<IN, OUT>,
    ConvBn3x3<OUT, OUT>,
    ConvBn3x3<OUT, OUT>,
    ConvBn3x3<OUT, OUT>,
    MaxPool2d<2>,
);

/// VGG-11 with batch norm, torchvision's `vgg11_bn`.
///
/// # Shapes
/// `(3, 224, 224) -> (CLASSES,)`. 132,868,840 parameters with 1000 classes, checked at compile time.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::Vgg11Bn;
/// assert_eq!(<Vgg11Bn as ShapeInfer<Rank3<3, 224, 224>>>::PARAMS, 132_868_840);
/// ```
pub type Vgg11Bn<const CLASSES: usize = 1000> = (
    (
        BnStage1<3, 64>,
        BnStage1<64, 128>,
        BnStage2<128, 256>,
        BnStage2<256, 512>,
        BnStage2<512, 512>,
    ),
    AdaptiveAvgPool2d<7, 7>,
    Head<CLASSES>,
);

/// VGG-13 with batch norm, torchvision's `vgg13_bn`.
///
/// # Shapes
/// `(3, 224, 224) -> (CLASSES,)`. 133,053,736 parameters with 1000 classes, checked at compile time.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::Vgg13Bn;
/// assert_eq!(<Vgg13Bn as ShapeInfer<Rank3<3, 224, 224>>>::PARAMS, 133_053_736);
/// ```
pub type Vgg13Bn<const CLASSES: usize = 1000> = (
    (
        BnStage2<3, 64>,
        BnStage2<64, 128>,
        BnStage2<128, 256>,
        BnStage2<256, 512>,
        BnStage2<512, 512>,
    ),
    AdaptiveAvgPool2d<7, 7>,
    Head<CLASSES>,
);

/// VGG-16 with batch norm, torchvision's `vgg16_bn`.
///
/// # Shapes
/// `(3, 224, 224) -> (CLASSES,)`. 138,365,992 parameters with 1000 classes, checked at compile time.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::Vgg16Bn;
/// assert_eq!(<Vgg16Bn as ShapeInfer<Rank3<3, 224, 224>>>::PARAMS, 138_365_992);
/// ```
pub type Vgg16Bn<const CLASSES: usize = 1000> = (
    (
        BnStage2<3, 64>,
        BnStage2<64, 128>,
        BnStage3<128, 256>,
        BnStage3<256, 512>,
        BnStage3<512, 512>,
    ),
    AdaptiveAvgPool2d<7, 7>,
    Head<CLASSES>,
);

/// VGG-19 with batch norm, torchvision's `vgg19_bn`.
///
/// # Shapes
/// `(3, 224, 224) -> (CLASSES,)`. 143,678,248 parameters with 1000 classes, checked at compile time.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::Vgg19Bn;
/// assert_eq!(<Vgg19Bn as ShapeInfer<Rank3<3, 224, 224>>>::PARAMS, 143_678_248);
/// ```
pub type Vgg19Bn<const CLASSES: usize = 1000> = (
    (
        BnStage2<3, 64>,
        BnStage2<64, 128>,
        BnStage4<128, 256>,
        BnStage4<256, 512>,
        BnStage4<512, 512>,
    ),
    AdaptiveAvgPool2d<7, 7>,
    Head<CLASSES>,
);

/// VGG-16 with batch norm for 32x32 images (CIFAR-10), the common adaptation: the five
/// stages shrink 32x32 to 1x1, and one linear layer classifies the 512 features.
///
/// # Shapes
/// `(3, 32, 32) -> (CLASSES,)`, batched `(B, 3, 32, 32) -> (B, CLASSES)`.
/// 14,728,266 parameters with 10 classes, checked at compile time.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::VggCifar;
/// assert_eq!(<VggCifar as ShapeInfer<Rank3<3, 32, 32>>>::PARAMS, 14_728_266);
/// ```
pub type VggCifar<const CLASSES: usize = 10> = (
    (
        BnStage2<3, 64>,
        BnStage2<64, 128>,
        BnStage3<128, 256>,
        BnStage3<256, 512>,
        BnStage3<512, 512>,
    ),
    Flatten,
    Linear<512, CLASSES>,
);

crate::assert_shapes!(Vgg11Bn: Rank3<3, 224, 224> => Rank1<1000>, params = 132_868_840);
crate::assert_shapes!(Vgg13Bn: Rank3<3, 224, 224> => Rank1<1000>, params = 133_053_736);
crate::assert_shapes!(Vgg16Bn: Rank3<3, 224, 224> => Rank1<1000>, params = 138_365_992);
crate::assert_shapes!(Vgg19Bn: Rank3<3, 224, 224> => Rank1<1000>, params = 143_678_248);
crate::assert_shapes!(VggCifar: Rank3<3, 32, 32> => Rank1<10>, params = 14_728_266);
crate::assert_shapes!(Vgg11: Rank3<3, 224, 224> => Rank1<1000>, params = 132_863_336);
crate::assert_shapes!(Vgg13: Rank3<3, 224, 224> => Rank1<1000>, params = 133_047_848);
crate::assert_shapes!(Vgg16: Rank3<3, 224, 224> => Rank1<1000>, params = 138_357_544);
crate::assert_shapes!(Vgg19: Rank3<3, 224, 224> => Rank1<1000>, params = 143_667_240);

/// torchvision's names for a VGG's layers with tensors, in the order they run:
/// `features.0`, `features.2`, ... then `classifier.0`, `classifier.3`, `classifier.6`.
///
/// `convs_per_stage` is the model's configuration (`[2, 2, 3, 3, 3]` for VGG-16);
/// `batch_norm` adds torchvision's `_bn` variants' norms after each convolution.
///
/// # Shapes
/// Not a layer.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::vgg::torchvision_layers;
/// let names = torchvision_layers(&[2, 2, 3, 3, 3], false);
/// assert_eq!(names[..3], ["features.0", "features.2", "features.5"]);
/// assert_eq!(names.len(), 13 + 3);
/// ```
pub fn torchvision_layers(convs_per_stage: &[usize], batch_norm: bool) -> Vec<String> {
    let mut names = Vec::new();
    let mut index = 0;
    for &convs in convs_per_stage {
        for _ in 0..convs {
            names.push(format!("features.{index}"));
            if batch_norm {
                names.push(format!("features.{}", index + 1));
                index += 3;
            } else {
                index += 2;
            }
        }
        index += 1; // the max pool
    }
    names.extend(["classifier.0", "classifier.3", "classifier.6"].map(String::from));
    names
}
