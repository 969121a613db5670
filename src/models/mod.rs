//! The model zoo: classic architectures as types, each with its shape contract asserted.

pub mod alexnet;
pub mod autoencoder;
mod autoencoder_objective;
pub mod classic;
pub mod googlenet;
pub mod lenet;
pub mod mobilenet;
pub mod resnet;
pub mod shufflenet;
mod torchvision;
pub mod unet;
pub mod vgg;
pub mod vit;

pub use alexnet::AlexNet;
pub use googlenet::GoogLeNet;
pub use lenet::LeNet5;
pub use mobilenet::MobileNetV2;
pub use resnet::{ResNet101, ResNet152, ResNet18, ResNet34, ResNet50};
pub use shufflenet::ShuffleNetV2;
pub use torchvision::Torchvision;
pub use unet::{UNet, UNetSmall};
pub use vgg::{Vgg11, Vgg11Bn, Vgg13, Vgg13Bn, Vgg16, Vgg16Bn, Vgg19, Vgg19Bn, VggCifar};
pub use vit::builder::VisionTransformer;

pub use autoencoder::builder::Vae;
pub use autoencoder::{
    kl_divergence, reconstruction_loss, reparameterize, try_kl_divergence, try_reconstruction_loss,
    try_reparameterize, try_vae_loss, vae_loss, ConvAutoencoder, ConvDecoder, ConvEncoder,
    ConvFeatures, ConvVae, VaeOutput,
};
pub use autoencoder_objective::{AutoencoderObjective, VaeObjective};
