// Mistake: a three-level U-Net needs sizes divisible by 8; at 28x28 the deepest skip
// concatenates a 7x7 map with a 6x6 one (7 pooled to 3, then up to 6).
use shapesafe::models::UNetSmall;
use shapesafe::prelude::*;

fn main() {
    let dev = Cpu::default();
    let net = dev.build_module::<UNetSmall<1, 2>, f32>();
    let _ = net.forward(dev.zeros::<Rank4<1, 1, 28, 28>>());
}
