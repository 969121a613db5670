// Mistake: an LSTM for 28-pixel rows fed 32 features per time step.
use shapesafe::prelude::*;

fn main() {
    let dev = Cpu::default();
    let lstm = dev.build_module::<Lstm<28, 128>, f32>();
    let x: Tensor<Rank3<4, 28, 32>, f32, _> = dev.zeros();
    let _ = lstm.forward(x);
}
