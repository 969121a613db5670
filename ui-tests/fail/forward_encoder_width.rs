// Mistake: a `Linear<16, 6>` feeds 6 features per position into an encoder layer of width 32.
use shapesafe::prelude::*;

type Net = (Linear<16, 6>, TransformerEncoderLayer<32, 4, 64>);

fn main() {
    let dev = Cpu::default();
    let model = dev.build_module::<Net, f32>();
    let x: Tensor<Rank3<2, 10, 16>, f32, _> = dev.zeros();
    let _ = model.forward(x);
}
