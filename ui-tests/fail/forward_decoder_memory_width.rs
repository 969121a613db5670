// Mistake: a decoder layer of width 8 attends to a memory of width 6 (say, an encoder built
// with the wrong width).
use shapesafe::prelude::*;

fn main() {
    let dev = Cpu::default();
    let layer = dev.build_module::<TransformerDecoderLayer<8, 2, 16>, f32>();
    let tgt: Tensor<Rank3<2, 3, 8>, f32, _> = dev.zeros();
    let memory: Tensor<Rank3<2, 5, 6>, f32, _> = dev.zeros();
    let _ = layer.forward((tgt, memory));
}
