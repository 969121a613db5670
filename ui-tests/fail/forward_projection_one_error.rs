// Mistake: a downsampling block whose shortcut keeps the full size while the branch halves
// it. One mistake, one error: the layers after the block do not report knock-on errors.
use shapesafe::prelude::*;

type Net = (
    Conv2d<3, 64, 3, 1, 1>,
    ResidualProjection<
        (Conv2d<64, 128, 3, 2, 1>, BatchNorm2d<128>, ReLU),
        (Conv2d<64, 128, 1>, BatchNorm2d<128>),
    >,
    Conv2d<128, 128, 3, 1, 1>,
    GlobalAvgPool2d,
    Linear<128, 10>,
);

fn main() {
    let dev = Cpu::default();
    let model = dev.build_module::<Net, f32>();
    let x: Tensor<Rank4<2, 3, 32, 32>, f32, _> = dev.zeros();
    let _ = model.forward(x);
}
