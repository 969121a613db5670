//! GoogLeNet (Inception v1, Szegedy et al., 2014) as torchvision builds it: batch-normed
//! convolutions, Inception blocks of four branches, no auxiliary heads; and its
//! torchvision layer names for loading PyTorch weights.

use crate::nn::builders::{
    BatchNorm2d, Concat, Conv2d, DropoutOneIn, GlobalAvgPool2d, Linear, MaxPool2d, ReLU,
};
use crate::nn::modules::BatchNorm2d as BatchNorm2dModule;
use crate::nn::modules::ReLU as ReLUModule;
use crate::shape::{layer_name, ShapeInfer, StaticShape};
use dfdx::nn::{BuildOnDevice, Module, ModuleMut, ModuleVisitor, TensorCollection};
use dfdx::prelude::{Device, Dtype};
use dfdx::shapes::{Rank1, Rank3};

/// torchvision's GoogLeNet normalises with `eps=0.001`, not PyTorch's default 1e-5.
const GOOGLENET_BATCH_NORM_EPSILON: f64 = 1e-3;

/// The builder (architecture) type of [`BasicConv2d`].
pub mod builder {
    /// GoogLeNet's convolution unit: a bias-free convolution, batch norm with
    /// `eps = 0.001`, ReLU.
    ///
    /// PyTorch equivalent: `torchvision.models.googlenet.BasicConv2d(IN, OUT,
    /// kernel_size=KERNEL, stride=STRIDE, padding=PADDING)`, with its state-dict names
    /// `conv.weight` and `bn.*`.
    ///
    /// # Shapes
    /// `(IN, H, W) -> (OUT, H', W')` as `Conv2d<IN, OUT, KERNEL, STRIDE, PADDING>`.
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// use shapesafe::models::googlenet::builder::BasicConv2d;
    /// type Unit = BasicConv2d<3, 64, 7, 2, 3>;
    /// shapesafe::assert_shapes!(Unit: Rank3<3, 224, 224> => Rank3<64, 112, 112>, params = 9_536);
    /// let unit = Cpu::default().build_module::<Unit, f32>();
    /// assert_eq!(unit.bn.epsilon, 1e-3);
    /// ```
    #[derive(Debug, Clone, Copy, Default)]
    pub struct BasicConv2d<
        const IN: usize,
        const OUT: usize,
        const KERNEL: usize,
        const STRIDE: usize = 1,
        const PADDING: usize = 0,
    >;
}

/// The layers of a [`builder::BasicConv2d`].
type BasicParts<
    const IN: usize,
    const OUT: usize,
    const KERNEL: usize,
    const STRIDE: usize,
    const PADDING: usize,
> = (
    Conv2d<IN, OUT, KERNEL, STRIDE, PADDING, 1, 1, false>,
    BatchNorm2d<OUT>,
    ReLU,
);

/// A built [`builder::BasicConv2d`]: its convolution and its batch norm (`epsilon` 1e-3).
///
/// # Shapes
/// As [`builder::BasicConv2d`].
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::googlenet::builder::BasicConv2d;
/// let dev = Cpu::default();
/// let unit = dev.build_module::<BasicConv2d<3, 8, 1>, f32>();
/// let y = unit.forward(dev.sample_normal::<Rank4<2, 3, 5, 5>>());
/// assert!(y.as_vec().iter().all(|&v| v >= 0.0));
/// ```
#[derive(Debug, Clone)]
pub struct BasicConv2d<Conv, Norm> {
    /// The bias-free convolution.
    pub conv: Conv,
    /// Its batch norm.
    pub bn: Norm,
}

impl<
        const IN: usize,
        const OUT: usize,
        const KERNEL: usize,
        const STRIDE: usize,
        const PADDING: usize,
        E: Dtype,
        D: Device<E>,
    > BuildOnDevice<D, E> for builder::BasicConv2d<IN, OUT, KERNEL, STRIDE, PADDING>
where
    Conv2d<IN, OUT, KERNEL, STRIDE, PADDING, 1, 1, false>: BuildOnDevice<D, E>,
{
    type Built = BasicConv2d<
        <Conv2d<IN, OUT, KERNEL, STRIDE, PADDING, 1, 1, false> as BuildOnDevice<D, E>>::Built,
        BatchNorm2dModule<OUT, E, D>,
    >;
}

impl<E: Dtype, D: Device<E>, Conv: TensorCollection<E, D>, const OUT: usize> TensorCollection<E, D>
    for BasicConv2d<Conv, BatchNorm2dModule<OUT, E, D>>
{
    type To<E2: Dtype, D2: Device<E2>> =
        BasicConv2d<Conv::To<E2, D2>, BatchNorm2dModule<OUT, E2, D2>>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::module("conv", |s| &s.conv, |s| &mut s.conv),
                Self::module("bn", |s| &s.bn, |s| &mut s.bn),
            ),
            |(conv, mut bn): (_, BatchNorm2dModule<OUT, V::E2, V::D2>)| {
                // Built or rebuilt (`to_device`, `to_dtype`), the unit keeps its epsilon.
                bn.epsilon = GOOGLENET_BATCH_NORM_EPSILON;
                BasicConv2d { conv, bn }
            },
        )
    }
}

impl<
        S: StaticShape,
        const IN: usize,
        const OUT: usize,
        const KERNEL: usize,
        const STRIDE: usize,
        const PADDING: usize,
    > ShapeInfer<S> for builder::BasicConv2d<IN, OUT, KERNEL, STRIDE, PADDING>
where
    BasicParts<IN, OUT, KERNEL, STRIDE, PADDING>: ShapeInfer<S>,
{
    type Output = <BasicParts<IN, OUT, KERNEL, STRIDE, PADDING> as ShapeInfer<S>>::Output;
    const CHECK: () = <BasicParts<IN, OUT, KERNEL, STRIDE, PADDING> as ShapeInfer<S>>::CHECK;
    const PARAMS: usize = <BasicParts<IN, OUT, KERNEL, STRIDE, PADDING> as ShapeInfer<S>>::PARAMS;
    fn name() -> String {
        layer_name("BasicConv2d", &[IN, OUT, KERNEL, STRIDE, PADDING], &[1, 0])
            .as_str()
            .to_string()
    }
}

impl<X, Conv, Norm> Module<X> for BasicConv2d<Conv, Norm>
where
    Conv: Module<X>,
    Norm: Module<Conv::Output, Error = Conv::Error>,
    ReLUModule: Module<Norm::Output, Error = Conv::Error>,
{
    type Output = <ReLUModule as Module<Norm::Output>>::Output;
    type Error = Conv::Error;

    fn try_forward(&self, x: X) -> Result<Self::Output, Self::Error> {
        let x = self.conv.try_forward(x)?;
        ReLUModule.try_forward(self.bn.try_forward(x)?)
    }
}

impl<X, Conv, Norm> ModuleMut<X> for BasicConv2d<Conv, Norm>
where
    Conv: ModuleMut<X>,
    Norm: ModuleMut<Conv::Output, Error = Conv::Error>,
    ReLUModule: Module<Norm::Output, Error = Conv::Error>,
{
    type Output = <ReLUModule as Module<Norm::Output>>::Output;
    type Error = Conv::Error;

    fn try_forward_mut(&mut self, x: X) -> Result<Self::Output, Self::Error> {
        let x = self.conv.try_forward_mut(x)?;
        ReLUModule.try_forward(self.bn.try_forward_mut(x)?)
    }
}

use builder::BasicConv2d as Unit;

/// Four branches on one input, their outputs concatenated along the channels: the shape
/// of every Inception block. The branches must agree on the spatial size, which is checked
/// at compile time, and the output's channels are their sum:
///
/// ```text
/// shape mismatch: Concat of (64, 14, 14) and (128, 28, 28): spatial sizes differ
/// ```
///
/// PyTorch equivalent: `torch.cat([b1(x), b2(x), b3(x), b4(x)], 1)`, the `forward` of
/// torchvision's `Inception`. Branches are visited in order (`0.0`, `0.1`, `1.0`, `1.1`).
///
/// # Shapes
/// `(C, H, W) -> (C1 + C2 + C3 + C4, H', W')` where branch `i` gives `(Ci, H', W')`.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::googlenet::InceptionBranches;
/// type Block = InceptionBranches<
///     Conv2d<8, 4, 1>,
///     Conv2d<8, 6, 3, 1, 1>,
///     Conv2d<8, 2, 5, 1, 2>,
///     (MaxPool2d<3, 1, 1>, Conv2d<8, 3, 1>),
/// >;
/// shapesafe::assert_shapes!(Block: Rank3<8, 10, 10> => Rank3<15, 10, 10>);
/// ```
pub type InceptionBranches<B1, B2, B3, B4> = Concat<Concat<B1, B2>, Concat<B3, B4>>;

/// torchvision's Inception block: a 1x1 branch, a 1x1-reduced 3x3 branch, a 1x1-reduced
/// "5x5" branch (a 3x3 in torchvision, kept for its weights), and a 3x3 max pool with a 1x1
/// projection; `CH1X1 + CH3X3 + CH5X5 + POOL_PROJECTION` channels out.
///
/// PyTorch equivalent: `torchvision.models.googlenet.Inception(IN, CH1X1, CH3X3_REDUCE,
/// CH3X3, CH5X5_REDUCE, CH5X5, POOL_PROJECTION)`.
///
/// # Shapes
/// `(IN, H, W) -> (CH1X1 + CH3X3 + CH5X5 + POOL_PROJECTION, H, W)`.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::googlenet::Inception;
/// type Block3a = Inception<192, 64, 96, 128, 16, 32, 32>;
/// shapesafe::assert_shapes!(Block3a: Rank3<192, 28, 28> => Rank3<256, 28, 28>, params = 155_872);
/// ```
pub type Inception<
    const IN: usize,
    const CH1X1: usize,
    const CH3X3_REDUCE: usize,
    const CH3X3: usize,
    const CH5X5_REDUCE: usize,
    const CH5X5: usize,
    const POOL_PROJECTION: usize,
> = InceptionBranches<
    Unit<IN, CH1X1, 1>,
    (
        Unit<IN, CH3X3_REDUCE, 1>,
        Unit<CH3X3_REDUCE, CH3X3, 3, 1, 1>,
    ),
    (
        Unit<IN, CH5X5_REDUCE, 1>,
        Unit<CH5X5_REDUCE, CH5X5, 3, 1, 1>,
    ),
    (MaxPool2d<3, 1, 1, true>, Unit<IN, POOL_PROJECTION, 1>),
>;

/// GoogLeNet, torchvision's `googlenet(aux_logits=False)`: the stem, nine Inception
/// blocks between ceil-mode max pools, global average pooling, dropout 0.2 and the
/// classifier.
///
/// PyTorch equivalent: `torchvision.models.googlenet(aux_logits=False,
/// init_weights=True)`; its weights load with [`torchvision_layers`]. torchvision's
/// ImageNet weights expect `transform_input=True` (re-normalised inputs, which it sets
/// when it loads them): apply that to the images before this model.
///
/// # Shapes
/// `(3, 224, 224) -> (CLASSES,)`, batched `(B, 3, 224, 224) -> (B, CLASSES)`.
/// 6,624,904 parameters with 1000 classes, checked at compile time.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::GoogLeNet;
/// assert_eq!(<GoogLeNet as ShapeInfer<Rank3<3, 224, 224>>>::PARAMS, 6_624_904);
/// ```
pub type GoogLeNet<const CLASSES: usize = 1000> = (
    (
        Unit<3, 64, 7, 2, 3>,
        MaxPool2d<3, 2, 0, true>,
        Unit<64, 64, 1>,
        Unit<64, 192, 3, 1, 1>,
        MaxPool2d<3, 2, 0, true>,
    ),
    (
        Inception<192, 64, 96, 128, 16, 32, 32>,
        Inception<256, 128, 128, 192, 32, 96, 64>,
        MaxPool2d<3, 2, 0, true>,
    ),
    (
        Inception<480, 192, 96, 208, 16, 48, 64>,
        Inception<512, 160, 112, 224, 24, 64, 64>,
        Inception<512, 128, 128, 256, 24, 64, 64>,
    ),
    (
        Inception<512, 112, 144, 288, 32, 64, 64>,
        Inception<528, 256, 160, 320, 32, 128, 128>,
        MaxPool2d<2, 2, 0, true>,
    ),
    (
        Inception<832, 256, 160, 320, 32, 128, 128>,
        Inception<832, 384, 192, 384, 48, 128, 128>,
    ),
    (GlobalAvgPool2d, DropoutOneIn<5>, Linear<1024, CLASSES>),
);

crate::assert_shapes!(GoogLeNet: Rank3<3, 224, 224> => Rank1<1000>, params = 6_624_904);

/// The layers with tensors of torchvision's `Inception` block named `block`, in the order
/// they run (`block.branch1.conv`, `block.branch1.bn`, `block.branch2.0.conv`, ...).
///
/// # Shapes
/// Not a layer.
///
/// ```
/// use shapesafe::models::googlenet::inception_layers;
/// let names = inception_layers("inception3a");
/// assert_eq!(names[..3], ["inception3a.branch1.conv", "inception3a.branch1.bn", "inception3a.branch2.0.conv"]);
/// assert_eq!(names.len(), 12);
/// ```
pub fn inception_layers(block: &str) -> Vec<String> {
    let units = [
        "branch1",
        "branch2.0",
        "branch2.1",
        "branch3.0",
        "branch3.1",
        "branch4.1",
    ];
    units
        .iter()
        .flat_map(|unit| ["conv", "bn"].map(|part| format!("{block}.{unit}.{part}")))
        .collect()
}

/// torchvision's names for GoogLeNet's layers with tensors, in the order they run:
/// `conv1.conv`, `conv1.bn`, ..., `inception5b.branch4.1.bn`, `fc`.
///
/// # Shapes
/// Not a layer.
///
/// ```
/// use shapesafe::models::googlenet::torchvision_layers;
/// let names = torchvision_layers();
/// assert_eq!(names[..2], ["conv1.conv", "conv1.bn"]);
/// assert_eq!(names.len(), 6 + 9 * 12 + 1);
/// ```
pub fn torchvision_layers() -> Vec<String> {
    let stem = ["conv1", "conv2", "conv3"]
        .iter()
        .flat_map(|unit| ["conv", "bn"].map(|part| format!("{unit}.{part}")));
    let blocks = ["3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b"]
        .iter()
        .flat_map(|block| inception_layers(&format!("inception{block}")));
    stem.chain(blocks).chain(["fc".to_string()]).collect()
}
