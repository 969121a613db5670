// Odd strides, paddings, dilations and groups whose floor-division sizes line up must build.
use shapesafe::prelude::*;

// 31 -> (31 + 2 - 3) / 2 + 1 = 16 -> (16 + 0 - 2*(3-1) - 1) / 1 + 1 = 12 -> 12 / 3 = 4
type Odd = (
    (Conv2d<3, 8, 3, 2, 1>, ReLU),
    (Conv2d<8, 8, 3, 1, 0, 2, 4>, Tanh),
    AvgPool2d<3>,
    Flatten,
    Linear<128, 5>,
);
shapesafe::assert_shapes!(Odd: Rank3<3, 31, 31> => Rank1<5>);

// Non-square input, kernel 1, pooling with padding, stride larger than the kernel:
// 20x33 -> 20x33 -> 10x17 -> 3x6, and 6 * 3 * 6 = 108.
type Wide = (Conv2d<2, 4, 1>, MaxPool2d<3, 2, 1>, Conv2d<4, 6, 2, 3>, GELU, Flatten, Linear<108, 2>);
shapesafe::assert_shapes!(Wide: Rank3<2, 20, 33> => Rank1<2>);

fn main() {
    let dev = Cpu::default();
    let odd = dev.build_module::<Odd, f32>();
    let x: Tensor<Rank4<2, 3, 31, 31>, f32, _> = dev.zeros();
    let _: Tensor<Rank2<2, 5>, f32, _> = odd.forward(x);
    let wide = dev.build_module::<Wide, f32>();
    let x: Tensor<Rank4<1, 2, 20, 33>, f32, _> = dev.zeros();
    let _: Tensor<Rank2<1, 2>, f32, _> = wide.forward(x);
}
