//! Layers: builder types (architectures) and the modules they build on a device.

pub mod activation;
pub mod activation_extra;
pub mod adaptive_pool;
pub mod attention;
pub mod batchnorm;
pub mod channel;
pub mod concat;
pub mod conv;
pub mod conv_transpose;
pub mod decoder;
pub mod dropout;
pub mod embedding;
pub mod flatten;
pub mod generation;
mod sampling;
pub use sampling::sample_logits;
pub mod init;
pub mod linear;
pub mod linear_sequence;
pub mod loss;
pub mod policy_value;
pub mod pool;
pub mod positional;
pub mod recurrent;
mod relabel;
mod repeated;
pub mod residual;
pub mod rows;
pub mod seq2seq;
pub mod transformer;
pub mod unflatten;
pub mod upsample;

/// Zero-sized types that name an architecture; `dev.build_module::<M, f32>()` allocates them.
pub mod builders {
    pub use super::activation::{
        Identity, LeakyReLU, ReLU, ReLU6, Sigmoid, Softmax, Softplus, Tanh, ELU, GELU,
    };
    pub use super::activation_extra::builder::PReLU;
    pub use super::activation_extra::{Arctan, BinaryStep, Maxout};
    pub use super::adaptive_pool::{AdaptiveAvgPool2d, GlobalAvgPool2d};
    pub use super::attention::builder::MultiHeadAttention;
    pub use super::batchnorm::builder::BatchNorm2d;
    pub use super::channel::{ChannelShuffle, ChannelSplit};
    pub use super::concat::Concat;
    pub use super::conv::builder::Conv2d;
    pub use super::conv_transpose::builder::ConvTranspose2d;
    pub use super::decoder::builder::{TransformerDecoder, TransformerDecoderLayer};
    pub use super::dropout::{Dropout, DropoutOneIn};
    pub use super::embedding::builder::Embedding;
    pub use super::flatten::Flatten;
    pub use super::linear::builder::Linear;
    pub use super::policy_value::PolicyValue;
    pub use super::pool::{AvgPool2d, MaxPool2d};
    pub use super::positional::builder::LearnedPositionalEmbedding;
    pub use super::positional::SinusoidalPositionalEncoding;
    pub use super::recurrent::gru::builder::{Gru, GruCell};
    pub use super::recurrent::last_step::LastStep;
    pub use super::recurrent::lstm::builder::{Lstm, LstmCell};
    pub use super::recurrent::rnn::builder::{Rnn, RnnCell, RnnRelu};
    pub use super::residual::{Residual, ResidualProjection};
    pub use super::rows::Rows;
    pub use super::seq2seq::builder::Transformer;
    pub use super::transformer::builder::{LayerNorm, TransformerEncoder, TransformerEncoderLayer};
    pub use super::transformer::{MeanPool, SequenceMean};
    pub use super::unflatten::Unflatten;
    pub use super::upsample::{Bilinear, BilinearAlignCorners, Nearest, Upsample2d};
    pub use dfdx::nn::builders::Repeated;
}

/// The modules builders build: tensors on a device, ready for `forward`.
pub mod modules {
    pub use super::activation::{
        Identity, LeakyReLU, ReLU, ReLU6, Sigmoid, Softmax, Softplus, Tanh, ELU, GELU,
    };
    pub use super::activation_extra::{Arctan, BinaryStep, Maxout, PReLU};
    pub use super::adaptive_pool::{AdaptiveAvgPool2d, GlobalAvgPool2d};
    pub use super::attention::{MultiHeadAttention, OutProjection};
    pub use super::batchnorm::BatchNorm2d;
    pub use super::channel::{ChannelShuffle, ChannelSplit};
    pub use super::concat::Concat;
    pub use super::conv::{Conv2d, Conv2dNoBias};
    pub use super::conv_transpose::ConvTranspose2d;
    pub use super::decoder::{TransformerDecoder, TransformerDecoderLayer};
    pub use super::dropout::{Dropout, DropoutOneIn};
    pub use super::embedding::Embedding;
    pub use super::flatten::Flatten;
    pub use super::linear::Linear;
    pub use super::policy_value::PolicyValue;
    pub use super::pool::{AvgPool2d, MaxPool2d};
    pub use super::positional::{LearnedPositionalEmbedding, SinusoidalPositionalEncoding};
    pub use super::recurrent::cell::Cell;
    pub use super::recurrent::last_step::LastStep;
    pub use super::recurrent::sequence::{Gru, Lstm, Recurrent, Rnn, RnnRelu};
    pub use super::residual::{Residual, ResidualProjection};
    pub use super::rows::Rows;
    pub use super::seq2seq::Transformer;
    pub use super::transformer::{
        LayerNorm, MeanPool, SequenceMean, TransformerEncoder, TransformerEncoderLayer,
    };
    pub use super::unflatten::Unflatten;
    pub use super::upsample::{Bilinear, BilinearAlignCorners, Nearest, Upsample2d};
    pub use dfdx::nn::modules::Repeated;
}
