// Mistake: a split unit whose branch widens its half from 4 to 6 channels, so the unit
// would not keep its input's shape.
use shapesafe::prelude::*;

type Unit = ChannelSplit<(Conv2d<4, 6, 3, 1, 1>, ReLU)>;

fn main() {
    let dev = Cpu::default();
    let unit = dev.build_module::<Unit, f32>();
    let x: Tensor<Rank4<1, 8, 6, 6>, f32, _> = dev.zeros();
    let _ = unit.forward(x);
}
