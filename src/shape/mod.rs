//! The shape engine: computed dim types, compile-time checks and their messages, shape inference.

mod attention;
mod blocks;
mod channels;
mod checks;
mod contract;
mod dims;
mod infer;
mod message;
mod recurrent;
mod resample;
mod rows;
mod transpose;
mod unflatten;

pub use attention::{
    check_attention, check_input_width, check_positional, check_vision_transformer, check_width,
    multi_head_attention_name, transformer_decoder_layer_name, transformer_encoder_layer_name,
    SequenceDim,
};
pub use blocks::{
    batchnorm2d_name, check_batchnorm2d, check_concat, check_repeated, check_residual,
    check_residual_projection, SumDim,
};
pub use channels::{check_channel_shuffle, check_channel_split, Halved};
pub use checks::*;
pub use dims::{
    pool_output, product, window_output, ConvOut, Flattened, MaxoutOut, PerGroup, PoolOut,
    StaticDim, StaticShape,
};
pub use infer::{name_rows, thousands, ShapeInfer, Summary, SummaryRow};
pub use message::Message;
pub use recurrent::{
    check_last_step, check_recurrent, check_recurrent_layers, directions, recurrent_name,
    Directions, Gates, LayerDirections,
};
pub use resample::*;
pub use rows::check_rows;
pub use transpose::{
    check_conv_transpose2d, conv_transpose2d_name, transpose_output, ConvTransposeOut,
};
pub use unflatten::{check_unflatten, unflatten_name};
