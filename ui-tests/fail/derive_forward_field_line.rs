// Mistake: a derived model whose fc1 expects 400 features after a conv stack that gives 256,
// caught by a plain forward call: the error shows the field's line.
use shapesafe::prelude::*;

#[derive(Sequential, Clone, Copy, Default)]
#[built(Net)]
struct NetConfig {
    conv1: Conv2d<1, 6, 5>,
    pool1: MaxPool2d<2>,
    conv2: Conv2d<6, 16, 5>,
    pool2: MaxPool2d<2>,
    flatten: Flatten,
    fc1: Linear<400, 120>,
    fc2: Linear<120, 10>,
}

fn main() {
    let dev = Cpu::default();
    let model = dev.build_module::<NetConfig, f32>();
    let x: Tensor<Rank4<8, 1, 28, 28>, f32, _> = dev.zeros();
    let _ = model.forward(x);
}
