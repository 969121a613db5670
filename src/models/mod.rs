//! The model zoo: classic architectures as types, each with its shape contract asserted.

pub mod classic;
pub mod lenet;
pub mod mobilenet;
pub mod resnet;
pub mod unet;
pub mod vgg;

pub use lenet::LeNet5;
pub use mobilenet::MobileNetV2;
pub use resnet::{ResNet18, ResNet34, ResNet50};
pub use unet::{UNet, UNetSmall};
pub use vgg::{Vgg11, Vgg11Bn, Vgg13, Vgg13Bn, Vgg16, Vgg16Bn, Vgg19, Vgg19Bn, VggCifar};
