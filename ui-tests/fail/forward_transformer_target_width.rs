// Mistake: the target embeddings have width 6, the Transformer width 8.
use shapesafe::prelude::*;

fn main() {
    let dev = Cpu::default();
    let model = dev.build_module::<Transformer<8, 2, 1, 1, 16>, f32>();
    let src: Tensor<Rank3<2, 5, 8>, f32, _> = dev.zeros();
    let tgt: Tensor<Rank3<2, 3, 6>, f32, _> = dev.zeros();
    let _ = model.forward((src, tgt));
}
