//! VGG (Simonyan & Zisserman, 2014) as torchvision builds it: VGG11/13/16/19 for 224x224x3 with the
//! 4096-wide head, and their torchvision layer names for loading PyTorch weights.

use crate::nn::builders::{Conv2d, Dropout, Flatten, Linear, MaxPool2d, ReLU};
use dfdx::shapes::{Rank1, Rank3};

/// A 3x3 convolution with padding 1 and its ReLU, VGG's unit.
pub type Conv3x3<const IN: usize, const OUT: usize> = (Conv2d<IN, OUT, 3, 1, 1>, ReLU);

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
    Head<CLASSES>,
);

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
