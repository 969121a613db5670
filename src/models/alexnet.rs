//! AlexNet (Krizhevsky et al., 2012) as torchvision builds it (the one-GPU variant of
//! "One weird trick"), and its torchvision layer names for loading PyTorch weights.

use crate::nn::builders::{AdaptiveAvgPool2d, Conv2d, Dropout, Flatten, Linear, MaxPool2d, ReLU};
use dfdx::shapes::{Rank1, Rank3};

/// AlexNet, torchvision's `alexnet`: five convolutions (11x11 stride 4, 5x5, three 3x3)
/// with three 3x3 stride-2 max pools, an adaptive average pool to 6x6, and a classifier of
/// two 4096-wide layers behind dropout.
///
/// PyTorch equivalent: `torchvision.models.alexnet()`; its weights load with
/// [`torchvision_layers`] and [`crate::pytorch::load_state_dict`].
///
/// # Shapes
/// `(3, 224, 224) -> (CLASSES,)`, batched `(B, 3, 224, 224) -> (B, CLASSES)`; the
/// adaptive pool makes any input of at least 63x63 end in `(256, 6, 6)`. 61,100,840
/// parameters with 1000 classes, checked at compile time.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::AlexNet;
/// assert_eq!(<AlexNet as ShapeInfer<Rank3<3, 224, 224>>>::PARAMS, 61_100_840);
/// type Features = <AlexNet as ShapeInfer<Rank3<3, 224, 224>>>::Output;
/// assert_eq!(<Features as StaticShape>::DIMS, &[1000]);
/// ```
pub type AlexNet<const CLASSES: usize = 1000> = (
    (Conv2d<3, 64, 11, 4, 2>, ReLU, MaxPool2d<3, 2>),
    (Conv2d<64, 192, 5, 1, 2>, ReLU, MaxPool2d<3, 2>),
    (
        Conv2d<192, 384, 3, 1, 1>,
        ReLU,
        Conv2d<384, 256, 3, 1, 1>,
        ReLU,
    ),
    (Conv2d<256, 256, 3, 1, 1>, ReLU, MaxPool2d<3, 2>),
    (AdaptiveAvgPool2d<6, 6>, Flatten),
    (
        (Dropout, Linear<9216, 4096>, ReLU),
        (Dropout, Linear<4096, 4096>, ReLU),
        Linear<4096, CLASSES>,
    ),
);

crate::assert_shapes!(AlexNet: Rank3<3, 224, 224> => Rank1<1000>, params = 61_100_840);

/// torchvision's names for AlexNet's layers with tensors, in the order they run:
/// `features.0`, `features.3`, ..., `classifier.6`.
///
/// # Shapes
/// Not a layer.
///
/// ```
/// use shapesafe::models::alexnet::torchvision_layers;
/// assert_eq!(torchvision_layers()[..2], ["features.0", "features.3"]);
/// assert_eq!(torchvision_layers().len(), 8);
/// ```
pub fn torchvision_layers() -> Vec<String> {
    let features = [0, 3, 6, 8, 10].map(|i| format!("features.{i}"));
    let classifier = [1, 4, 6].map(|i| format!("classifier.{i}"));
    features.into_iter().chain(classifier).collect()
}
