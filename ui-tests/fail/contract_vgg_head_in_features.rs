// Mistake: a VGG head written for 224x224 inputs' 4x4 maps (128 * 4 * 4 = 2048) on 32x32
// images, whose two stages leave 128 * 8 * 8 = 8192 features.
use shapesafe::models::vgg::Stage2;
use shapesafe::prelude::*;

type Net = (
    (Stage2<3, 64>, Stage2<64, 128>),
    Flatten,
    (Linear<2048, 256>, ReLU, Dropout),
    Linear<256, 10>,
);

shapesafe::assert_shapes!(Net: Rank3<3, 32, 32> => Rank1<10>);

fn main() {}
