// The model from issue 12: a recurrent layer's computed `Directions<32, false>` features go
// into a Transformer encoder layer, which accepts any dim of the right size.
use shapesafe::prelude::*;

type Net = (
    Lstm<16, 32>,
    TransformerEncoderLayer<32, 4, 64>,
    SequenceMean,
    Linear<32, 5>,
);
shapesafe::assert_shapes!(Net: Rank2<10, 16> => Rank1<5>);

#[derive(Sequential, Clone, Copy, Default)]
#[built(Tagger)]
#[shapes(input = Rank2<10, 16>, output = Rank2<10, 32>)]
struct TaggerConfig {
    lstm: Lstm<16, 32, 1, true>,
    norm: LayerNorm<64>,
    attention: MultiHeadAttention<64, 4>,
    position: SinusoidalPositionalEncoding<16, 64>,
    encoder: TransformerEncoder<64, 4, 128, 1>,
    out: Linear<64, 32>,
}

fn main() {
    let dev = Cpu::default();
    let mut model = dev.build_module::<Net, f32>();
    let x: Tensor<Rank3<2, 10, 16>, f32, _> = dev.sample_normal();
    let y: Tensor<Rank2<2, 5>, f32, _> = model.forward(x.clone());
    assert_eq!(y.shape().concrete(), [2, 5]);
    let _: Tensor<Rank2<2, 5>, f32, _> = model.forward_mut(x.clone());

    let tagger = dev.build_module::<TaggerConfig, f32>();
    let tags = tagger.forward(x);
    assert_eq!(tags.shape().concrete(), [2, 10, 32]);
}
