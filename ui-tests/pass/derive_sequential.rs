// Derived models that must build: a LeNet with its contract, a ten-layer MLP with a generic
// width, the two nested, and a derived model inside a tuple.
use shapesafe::prelude::*;

#[derive(Sequential, Clone, Copy, Default)]
#[built(LeNet)]
#[shapes(input = Rank3<1, 28, 28>, output = Rank1<10>, params = 61_706)]
struct LeNetConfig {
    conv1: Conv2d<1, 6, 5, 1, 2>,
    relu1: ReLU,
    pool1: MaxPool2d<2>,
    conv2: Conv2d<6, 16, 5>,
    relu2: ReLU,
    pool2: MaxPool2d<2>,
    flatten: Flatten,
    fc1: Linear<400, 120>,
    relu3: ReLU,
    fc2: Linear<120, 84>,
    relu4: ReLU,
    fc3: Linear<84, 10>,
}

#[derive(Sequential, Clone, Copy, Default)]
#[built(Deep)]
struct DeepConfig<const WIDTH: usize> {
    fc1: Linear<10, WIDTH>,
    act1: ReLU,
    fc2: Linear<WIDTH, WIDTH>,
    act2: ReLU,
    fc3: Linear<WIDTH, WIDTH>,
    act3: ReLU,
    fc4: Linear<WIDTH, WIDTH>,
    act4: ReLU,
    fc5: Linear<WIDTH, WIDTH>,
    out: Linear<WIDTH, 10>,
}

shapesafe::assert_shapes!(DeepConfig<32>: Rank1<10> => Rank1<10>);

#[derive(Sequential, Clone, Copy, Default)]
#[built(Both)]
#[shapes(input = Rank3<1, 28, 28>, output = Rank1<10>)]
struct BothConfig {
    lenet: LeNetConfig,
    deep: DeepConfig<16>,
}

type InTuple = (LeNetConfig, (ReLU, DeepConfig<8>));
shapesafe::assert_shapes!(InTuple: Rank3<1, 28, 28> => Rank1<10>);

fn main() {
    let dev = Cpu::default();
    let x: Tensor<Rank4<2, 1, 28, 28>, f32, _> = dev.zeros();
    let both: Both<f32, Cpu> = dev.build_module::<BothConfig, f32>();
    let y: Tensor<Rank2<2, 10>, f32, _> = both.forward(x.clone());
    assert_eq!(y.shape().concrete(), [2, 10]);
    let mut tuple = dev.build_module::<InTuple, f32>();
    let _: Tensor<Rank2<2, 10>, f32, _> = tuple.forward_mut(x);
}
