// LeNet5 builds, keeps its contract, and runs batched (Const and usize batch) and unbatched.
use shapesafe::models::LeNet5;
use shapesafe::prelude::*;

shapesafe::assert_shapes!(LeNet5: Rank3<1, 28, 28> => Rank1<10>, params = 61_706);

fn main() {
    let dev = Cpu::default();
    let model = dev.build_module::<LeNet5, f32>();
    let x: Tensor<Rank4<4, 1, 28, 28>, f32, _> = dev.zeros();
    let _: Tensor<Rank2<4, 10>, f32, _> = model.forward(x);
    let x: Tensor<(usize, Const<1>, Const<28>, Const<28>), f32, _> = dev.zeros_like(&(3, Const, Const, Const));
    let _: Tensor<(usize, Const<10>), f32, _> = model.forward(x);
    let x: Tensor<Rank3<1, 28, 28>, f32, _> = dev.zeros();
    let _: Tensor<Rank1<10>, f32, _> = model.forward(x);
}
