//! The DCGAN's two networks as struct models, each with its shape contract: a generator
//! that upsamples a latent code to a 28x28 digit with transposed convolutions, and a
//! discriminator that downsamples a digit with strided convolutions to one logit.

use shapesafe::prelude::*;

/// The latent code's width.
pub const LATENT: usize = 64;

/// Digits the discriminator judges together, stacked as channels (PacGAN, Lin et al., 2018):
/// a generator that drops modes makes packs less varied than real ones, which a packed
/// discriminator sees and a one-digit discriminator cannot.
pub const PACK: usize = 2;

/// `z (LATENT) -> 128x7x7 -> 128x7x7 -> 64x14x14 -> 1x28x28`, pixels in `[-1, 1]`.
///
/// PyTorch equivalent: `nn.Sequential(nn.Linear(64, 6272), nn.Unflatten(1, (128, 7, 7)),
/// nn.BatchNorm2d(128), nn.ReLU(), nn.Conv2d(128, 128, 3, 1, 1), nn.BatchNorm2d(128),
/// nn.ReLU(), nn.ConvTranspose2d(128, 64, 4, 2, 1),
/// nn.BatchNorm2d(64), nn.ReLU(), nn.ConvTranspose2d(64, 1, 4, 2, 1), nn.Tanh())`.
#[derive(Sequential, Debug, Clone, Copy, Default)]
#[built(Generator)]
#[shapes(input = Rank1<LATENT>, output = Rank3<1, 28, 28>, params = 688_065)]
pub struct GeneratorConfig {
    project: Linear<LATENT, 6272>,
    unflatten: Unflatten<128, 7, 7>,
    bn0: BatchNorm2d<128>,
    relu0: ReLU,
    refine: Conv2d<128, 128, 3, 1, 1>,
    bn_refine: BatchNorm2d<128>,
    relu_refine: ReLU,
    up1: ConvTranspose2d<128, 64, 4, 2, 1>,
    bn1: BatchNorm2d<64>,
    relu1: ReLU,
    up2: ConvTranspose2d<64, 1, 4, 2, 1>,
    tanh: Tanh,
}

/// `PACKx28x28 -> 64x14x14 -> 128x7x7 -> 1` logit: a pack of [`PACK`] real digits (positive)
/// or generated ones (negative).
///
/// PyTorch equivalent: `nn.Sequential(nn.Conv2d(2, 64, 4, 2, 1), nn.LeakyReLU(0.2),
/// nn.Conv2d(64, 128, 4, 2, 1), nn.BatchNorm2d(128), nn.LeakyReLU(0.2), nn.Flatten(),
/// nn.Linear(6272, 1))`; [`discriminator`] sets the slopes to DCGAN's 0.2.
#[derive(Sequential, Debug, Clone, Copy, Default)]
#[built(Discriminator)]
#[shapes(input = Rank3<PACK, 28, 28>, output = Rank1<1>, params = 139_841)]
pub struct DiscriminatorConfig {
    down1: Conv2d<PACK, 64, 4, 2, 1>,
    act1: LeakyReLU,
    down2: Conv2d<64, 128, 4, 2, 1>,
    bn2: BatchNorm2d<128>,
    act2: LeakyReLU,
    flatten: Flatten,
    classify: Linear<6272, 1>,
}

/// Builds the discriminator with DCGAN's leaky slope of 0.2.
pub fn discriminator<D: KernelDevice<f32>>(dev: &D) -> Result<Discriminator<f32, D>, D::Err> {
    let mut d = DiscriminatorConfig::try_build_on_device(dev)?;
    d.act1.negative_slope = 0.2;
    d.act2.negative_slope = 0.2;
    Ok(d)
}
