// Mistake: the same 256-vs-400 model, caught by a plain forward call (no contract).
use shapesafe::prelude::*;

type Net = (
    (Conv2d<1, 6, 5>, ReLU, MaxPool2d<2>),
    (Conv2d<6, 16, 5>, ReLU, MaxPool2d<2>),
    Flatten,
    (Linear<400, 120>, ReLU),
    Linear<120, 10>,
);

fn main() {
    let dev = Cpu::default();
    let model = dev.build_module::<Net, f32>();
    let x: Tensor<Rank4<8, 1, 28, 28>, f32, _> = dev.zeros();
    let _ = model.forward(x);
}
