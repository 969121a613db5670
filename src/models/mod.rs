//! The model zoo: classic architectures as types, each with its shape contract asserted.

pub mod classic;
pub mod lenet;

pub use lenet::LeNet5;
pub mod autoencoder;

pub use autoencoder::builder::Vae;
pub use autoencoder::{
    kl_divergence, reconstruction_loss, reparameterize, try_kl_divergence, try_reconstruction_loss,
    try_reparameterize, try_vae_loss, vae_loss, ConvAutoencoder, ConvDecoder, ConvEncoder,
    ConvFeatures, ConvVae, VaeOutput,
};
