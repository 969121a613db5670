//! `Torchvision`: the zoo models torchvision also builds know its state-dict names, so its
//! weights load in one call without the user counting layers.

use super::{alexnet, googlenet, mobilenet, resnet, shufflenet, vgg};
use super::{
    AlexNet, GoogLeNet, MobileNetV2, ResNet101, ResNet152, ResNet18, ResNet34, ResNet50,
    ShuffleNetV2, Vgg11, Vgg11Bn, Vgg13, Vgg13Bn, Vgg16, Vgg16Bn, Vgg19, Vgg19Bn,
};
use crate::pytorch::{load_state_dict, NameMap};
use crate::Result;
use dfdx::nn::tensor_collection::TensorCollection;
use dfdx::prelude::{Device, Dtype};
use std::path::Path;

/// A zoo model with a torchvision counterpart: it knows torchvision's layer names, so a state
/// dict torchvision saved loads with one call.
///
/// On the Python side, two lines export the weights:
///
/// ```text
/// import torchvision, safetensors.torch
/// safetensors.torch.save_file(torchvision.models.resnet50(weights="DEFAULT").state_dict(), "resnet50.safetensors")
/// ```
///
/// Loading is [`load_state_dict`]'s: strict and all or nothing. A file of another
/// architecture, a truncated file, or an integer tensor where a float belongs is an error
/// that names the first tensor that does not fit, and the model is left as it was.
///
/// ViT-B/16 has no implementation: shapesafe's `VisionTransformer` uses ReLU in its
/// feed-forward layers where torchvision's uses GELU, so torchvision's weights would not give
/// its logits.
///
/// # Shapes
/// Not a layer: names only; each tensor's shape is checked as it loads.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::{ResNet18, Torchvision};
/// // `<ResNet18>` is `ResNet18<1000>`, torchvision's ImageNet head.
/// assert_eq!(<ResNet18>::NAME, "resnet18");
/// let layers = <ResNet18>::torchvision_layers();
/// assert_eq!((layers[0].as_str(), layers.last().unwrap().as_str()), ("conv1", "fc"));
///
/// let dev = Cpu::default();
/// let mut model = dev.build_module::<ResNet18, f32>();
/// let names = <ResNet18>::torchvision_names(&model)?;
/// assert_eq!(names.torch_name("0.0.0.weight"), "conv1.weight");
/// // A file that is not there: an error, and the model is untouched.
/// let before = model.0.0.0.weight.as_vec();
/// assert!(<ResNet18>::load_torchvision(&mut model, "no-such-file.safetensors").is_err());
/// assert_eq!(model.0.0.0.weight.as_vec(), before);
/// # Ok::<(), shapesafe::Error>(())
/// ```
pub trait Torchvision {
    /// torchvision's builder function (`torchvision.models.resnet50`).
    const NAME: &'static str;

    /// torchvision's paths of the layers that hold tensors, in the order they run.
    fn torchvision_layers() -> Vec<String>;

    /// The name map from `model`'s tensors to torchvision's state-dict keys.
    ///
    /// # Errors
    /// `model` has another number of layers with tensors than this architecture.
    fn torchvision_names<E, D, M>(model: &M) -> Result<NameMap>
    where
        E: Dtype,
        D: Device<E>,
        M: TensorCollection<E, D>,
    {
        NameMap::by_order(model, &Self::torchvision_layers())
    }

    /// Loads the state dict torchvision saved at `path` (safetensors) into `model`.
    ///
    /// # Errors
    /// As [`load_state_dict`]: an unreadable or corrupt file, or the first tensor that is
    /// missing, of another shape or not a float; the model is then unchanged.
    fn load_torchvision<E, D, M>(model: &mut M, path: impl AsRef<Path>) -> Result<()>
    where
        E: Dtype,
        D: Device<E>,
        M: TensorCollection<E, D> + Clone,
    {
        let map = Self::torchvision_names(model)?;
        load_state_dict(model, path, &map)
    }
}

macro_rules! torchvision {
    ($($model:ident => $name:literal, $layers:expr;)*) => {$(
        impl<const CLASSES: usize> Torchvision for $model<CLASSES> {
            const NAME: &'static str = $name;
            fn torchvision_layers() -> Vec<String> {
                $layers
            }
        }
    )*};
}

torchvision! {
    AlexNet => "alexnet", alexnet::torchvision_layers();
    GoogLeNet => "googlenet", googlenet::torchvision_layers();
    MobileNetV2 => "mobilenet_v2", mobilenet::torchvision_layers();
    ShuffleNetV2 => "shufflenet_v2_x1_0", shufflenet::torchvision_layers();
    ResNet18 => "resnet18", resnet::torchvision_layers(&[2, 2, 2, 2], false);
    ResNet34 => "resnet34", resnet::torchvision_layers(&[3, 4, 6, 3], false);
    ResNet50 => "resnet50", resnet::torchvision_layers(&[3, 4, 6, 3], true);
    ResNet101 => "resnet101", resnet::torchvision_layers(&[3, 4, 23, 3], true);
    ResNet152 => "resnet152", resnet::torchvision_layers(&[3, 8, 36, 3], true);
    Vgg11 => "vgg11", vgg::torchvision_layers(&[1, 1, 2, 2, 2], false);
    Vgg11Bn => "vgg11_bn", vgg::torchvision_layers(&[1, 1, 2, 2, 2], true);
    Vgg13 => "vgg13", vgg::torchvision_layers(&[2, 2, 2, 2, 2], false);
    Vgg13Bn => "vgg13_bn", vgg::torchvision_layers(&[2, 2, 2, 2, 2], true);
    Vgg16 => "vgg16", vgg::torchvision_layers(&[2, 2, 3, 3, 3], false);
    Vgg16Bn => "vgg16_bn", vgg::torchvision_layers(&[2, 2, 3, 3, 3], true);
    Vgg19 => "vgg19", vgg::torchvision_layers(&[2, 2, 4, 4, 4], false);
    Vgg19Bn => "vgg19_bn", vgg::torchvision_layers(&[2, 2, 4, 4, 4], true);
}
