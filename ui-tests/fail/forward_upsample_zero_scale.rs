// Mistake: an upsampling factor of 0 would erase the image.
use shapesafe::prelude::*;

type Net = (Conv2d<3, 8, 3, 1, 1>, ReLU, Upsample2d<0, Bilinear>);

fn main() {
    let dev = Cpu::default();
    let model = dev.build_module::<Net, f32>();
    let x: Tensor<Rank4<2, 3, 16, 16>, f32, _> = dev.zeros();
    let _ = model.forward(x);
}
