//! LeNet-5 for 28x28 greyscale digits, with its contract and parameter count asserted.

use crate::nn::builders::{Conv2d, Flatten, Linear, MaxPool2d, ReLU};

/// LeNet-5 (LeCun et al., 1998) in its common modern form: ReLU and max pooling,
/// `padding = 2` on the first convolution so 28x28 MNIST digits keep LeCun's 32x32 geometry.
///
/// PyTorch equivalent:
/// `nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))`.
///
/// dfdx implements modules for tuples of up to six elements, so the layers are grouped.
///
/// # Shapes
/// - `(Const<1>, Const<28>, Const<28>) -> (Const<10>,)` (logits)
/// - `(B, Const<1>, Const<28>, Const<28>) -> (B, Const<10>)`
///
/// 61,706 parameters, checked at compile time.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::LeNet5;
/// let dev = Cpu::default();
/// let model = dev.build_module::<LeNet5, f32>();
/// let x: Tensor<Rank4<2, 1, 28, 28>, f32, _> = dev.zeros();
/// let logits: Tensor<Rank2<2, 10>, f32, _> = model.forward(x);
/// assert_eq!(model.num_trainable_params(), 61_706);
/// ```
pub type LeNet5 = (
    (Conv2d<1, 6, 5, 1, 2>, ReLU, MaxPool2d<2>),
    (Conv2d<6, 16, 5>, ReLU, MaxPool2d<2>),
    Flatten,
    (Linear<400, 120>, ReLU),
    (Linear<120, 84>, ReLU),
    Linear<84, 10>,
);

crate::assert_shapes!(LeNet5: Rank3<1, 28, 28> => Rank1<10>, params = 61_706);

use dfdx::shapes::{Rank1, Rank3};
