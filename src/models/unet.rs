//! U-Net (Ronneberger et al., 2015): an encoder-decoder whose skip connections concatenate
//! feature maps, built level by level so the compiler checks every skip's spatial size.

use crate::nn::builders::{
    BatchNorm2d, Concat, Conv2d, ConvTranspose2d, Identity, MaxPool2d, ReLU,
};
use dfdx::shapes::Rank3;

/// Two 3x3 convolutions (padding 1, no bias), each with batch norm and ReLU: U-Net's unit,
/// which keeps the spatial size.
///
/// # Shapes
/// `(IN, H, W) -> (OUT, H, W)`.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::unet::DoubleConv;
/// assert_eq!(<DoubleConv<3, 64> as ShapeInfer<Rank3<3, 32, 32>>>::PARAMS, 3 * 64 * 9 + 64 * 64 * 9 + 4 * 64);
/// ```
pub type DoubleConv<const IN: usize, const OUT: usize> = (
    (
        Conv2d<IN, OUT, 3, 1, 1, 1, 1, false>,
        BatchNorm2d<OUT>,
        ReLU,
    ),
    (
        Conv2d<OUT, OUT, 3, 1, 1, 1, 1, false>,
        BatchNorm2d<OUT>,
        ReLU,
    ),
);

/// One U-Net level around a deeper part `Inner`:
/// `DoubleConv<IN, WIDTH>`, then the skip connection `cat(x, up(Inner(pool(x))))`, then
/// `DoubleConv<2 * WIDTH, WIDTH>`. `Inner` returns `DEEP` channels at half the size; a
/// 2x2 stride-2 transposed convolution brings them back to `WIDTH` channels at full size.
///
/// `DOUBLE` must be `2 * WIDTH` (stable Rust cannot compute it in a type); the second
/// `DoubleConv` checks it against the concatenation at compile time, as the concatenation
/// checks that both maps have the same height and width (so the input size must be
/// divisible by 2 at every level).
///
/// # Shapes
/// `(IN, H, W) -> (WIDTH, H, W)`.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::unet::{DoubleConv, Level};
/// type TwoLevels = Level<1, 8, 16, 16, DoubleConv<8, 16>>;
/// type Out = <TwoLevels as ShapeInfer<Rank3<1, 28, 28>>>::Output;
/// assert_eq!(<Out as StaticShape>::DIMS, &[8, 28, 28]);
/// ```
pub type Level<const IN: usize, const WIDTH: usize, const DOUBLE: usize, const DEEP: usize, Inner> = (
    DoubleConv<IN, WIDTH>,
    Concat<Identity, (MaxPool2d<2>, Inner, ConvTranspose2d<DEEP, WIDTH, 2, 2>)>,
    DoubleConv<DOUBLE, WIDTH>,
);

/// The original U-Net's four levels at widths 64 to 1024 (with batch norm and transposed
/// convolutions, as the widely used PyTorch re-implementation `milesial/Pytorch-UNet`
/// with `bilinear=False`), then a 1x1 convolution to `CLASSES` per-pixel logits.
///
/// A shallower or narrower U-Net is written the same way with [`Level`]s; see [`UNetSmall`].
///
/// # Shapes
/// `(IN, H, W) -> (CLASSES, H, W)` for `H`, `W` divisible by 16; batched likewise.
/// 31,037,698 parameters for `UNet<3, 2>`, checked at compile time.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::UNet;
/// type Out = <UNet<3, 2> as ShapeInfer<Rank3<3, 64, 64>>>::Output;
/// assert_eq!(<Out as StaticShape>::DIMS, &[2, 64, 64]);
/// ```
pub type UNet<const IN: usize, const CLASSES: usize> = (
    Level<
        IN,
        64,
        128,
        128,
        Level<
            64,
            128,
            256,
            256,
            Level<128, 256, 512, 512, Level<256, 512, 1024, 1024, DoubleConv<512, 1024>>>,
        >,
    >,
    Conv2d<64, CLASSES, 1>,
);

/// A small U-Net, three levels at widths 16, 32, 64 around a 128-wide bottom, for
/// experiments on small images.
///
/// # Shapes
/// `(IN, H, W) -> (CLASSES, H, W)` for `H`, `W` divisible by 8.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::UNetSmall;
/// let dev = Cpu::default();
/// let net = dev.build_module::<UNetSmall<1, 2>, f32>();
/// let y = net.forward(dev.zeros::<Rank4<1, 1, 32, 32>>());
/// assert_eq!(y.shape().concrete(), [1, 2, 32, 32]);
/// ```
pub type UNetSmall<const IN: usize, const CLASSES: usize> = (
    Level<IN, 16, 32, 32, Level<16, 32, 64, 64, Level<32, 64, 128, 128, DoubleConv<64, 128>>>>,
    Conv2d<16, CLASSES, 1>,
);

crate::assert_shapes!(UNet<3, 2>: Rank3<3, 256, 256> => Rank3<2, 256, 256>, params = 31_037_698);
crate::assert_shapes!(UNetSmall<1, 2>: Rank3<1, 32, 32> => Rank3<2, 32, 32>);
