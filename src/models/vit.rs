//! The Vision Transformer (Dosovitskiy et al., 2020): patches as tokens, a class token and a
//! Transformer encoder, with the patch size checked against the image size at compile time.
// Signatures spell out the (batch, sequence, width) tensors they take; aliases would hide
// the shapes these layers document.
#![allow(clippy::type_complexity)]

use crate::kernels::Conv2dKernel;
use crate::nn::linear::Linear;
use crate::nn::modules::Conv2d;
use crate::nn::transformer::{LayerNorm, TransformerEncoder};
use crate::shape::{check_vision_transformer, ConvOut, Flattened, ShapeInfer, StaticDim, SumDim};
use dfdx::nn::{Module, ModuleMut};
use dfdx::prelude::*;

/// The builder (architecture) type of [`VisionTransformer`].
pub mod builder {
    use super::Tokens;
    use crate::nn::builders::{Conv2d, LayerNorm, Linear, TransformerEncoder};
    use crate::CustomModule;
    use dfdx::shapes::{Const, Rank3};
    /// A Vision Transformer classifier over `(CHANNELS, IMAGE, IMAGE)` images.
    ///
    /// A strided `Conv2d<CHANNELS, D_MODEL, PATCH, PATCH>` embeds each `PATCH x PATCH` patch;
    /// the `(IMAGE / PATCH)^2` patches, after a learned class token, plus a learned position
    /// embedding, go through a pre-norm [`TransformerEncoder`]
    /// (ReLU feed-forward), a final `LayerNorm`, and a `Linear` head on the class token.
    /// torchvision's `VisionTransformer` has the same layout (with GELU); parameters here are
    /// `conv_proj`, `class_token (1, 1, D_MODEL)`, `pos_embedding (1, N + 1, D_MODEL)`,
    /// `encoder.layers.*`, `norm`, `head`. A patch that does not divide the image is a build error:
    ///
    /// ```text
    /// shape mismatch: VisionTransformer: patch 5 does not divide image 28
    /// ```
    ///
    /// # Generics
    /// - `CHANNELS`, `IMAGE`: the input images; `PATCH`: the patch side, dividing `IMAGE`.
    /// - `D_MODEL`, `HEADS`, `FEED_FORWARD`, `LAYERS`: the encoder; `CLASSES`: the logits.
    ///
    /// # Shapes
    /// - `(Const<CHANNELS>, Const<IMAGE>, Const<IMAGE>) -> (Const<CLASSES>,)`
    /// - `(B, Const<CHANNELS>, Const<IMAGE>, Const<IMAGE>) -> (B, Const<CLASSES>)`
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// use shapesafe::models::VisionTransformer;
    /// type Vit = VisionTransformer<1, 28, 7, 16, 2, 32, 2, 10>;
    /// let dev = Cpu::default();
    /// let model = dev.build_module::<Vit, f32>();
    /// let x: Tensor<Rank4<2, 1, 28, 28>, f32, _> = dev.zeros();
    /// let logits: Tensor<Rank2<2, 10>, f32, _> = model.forward(x);
    /// assert_eq!(model.num_trainable_params(), <Vit as ShapeInfer<Rank3<1, 28, 28>>>::PARAMS);
    /// ```
    #[derive(CustomModule, Debug, Clone, Copy, Default)]
    #[built(VisionTransformerModule)]
    pub struct VisionTransformer<
        const CHANNELS: usize,
        const IMAGE: usize,
        const PATCH: usize,
        const D_MODEL: usize,
        const HEADS: usize,
        const FEED_FORWARD: usize,
        const LAYERS: usize,
        const CLASSES: usize,
    > {
        /// The patch embedding: one `PATCH x PATCH` window per token.
        conv_proj: Conv2d<CHANNELS, D_MODEL, PATCH, PATCH>,
        /// `(1, 1, D_MODEL)`; zero, as torchvision.
        #[param(init = zeros)]
        class_token: Rank3<1, 1, D_MODEL>,
        /// `(1, N + 1, D_MODEL)`; normal with std 0.02, as torchvision.
        #[param(init = normal(0.0, 0.02))]
        pos_embedding: (Const<1>, Tokens<IMAGE, PATCH>, Const<D_MODEL>),
        /// The pre-norm encoder.
        encoder: TransformerEncoder<D_MODEL, HEADS, FEED_FORWARD, LAYERS, true>,
        /// The final norm.
        norm: LayerNorm<D_MODEL>,
        /// The classifier on the class token.
        head: Linear<D_MODEL, CLASSES>,
    }
}

/// Patches along one side: `IMAGE / PATCH`.
pub type PatchSide<const IMAGE: usize, const PATCH: usize> =
    ConvOut<Const<IMAGE>, PATCH, PATCH, 0, 1>;
/// The number of patches, `(IMAGE / PATCH)^2`.
pub type Patches<const IMAGE: usize, const PATCH: usize> =
    Flattened<(PatchSide<IMAGE, PATCH>, PatchSide<IMAGE, PATCH>)>;
/// The sequence length: the class token and the patches.
pub type Tokens<const IMAGE: usize, const PATCH: usize> = SumDim<Const<1>, Patches<IMAGE, PATCH>>;

/// A built [`VisionTransformer`](builder::VisionTransformer) on device `D`.
///
/// # Shapes
/// As [`builder::VisionTransformer`].
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::VisionTransformer;
/// let model = Cpu::default().build_module::<VisionTransformer<3, 8, 4, 8, 2, 16, 1, 5>, f32>();
/// assert_eq!(model.pos_embedding.shape().concrete(), [1, 5, 8]);
/// ```
pub use builder::VisionTransformerModule as VisionTransformer;

macro_rules! vit_generics {
    ($($rest:tt)*) => {
        impl<
            const CHANNELS: usize,
            const IMAGE: usize,
            const PATCH: usize,
            const D_MODEL: usize,
            const HEADS: usize,
            const FEED_FORWARD: usize,
            const LAYERS: usize,
            const CLASSES: usize,
            $($rest)*
    };
}

/// The module type with this file's generic names.
macro_rules! vit {
    ($e:ty, $d:ty) => {
        builder::VisionTransformerModule<
            CHANNELS, IMAGE, PATCH, D_MODEL, HEADS, FEED_FORWARD, LAYERS, CLASSES, $e, $d,
            Conv2d<CHANNELS, D_MODEL, PATCH, PATCH, 0, 1, 1, $e, $d>,
            TransformerEncoder<D_MODEL, HEADS, FEED_FORWARD, LAYERS, true, $e, $d>,
            LayerNorm<D_MODEL, $e, $d>,
            Linear<D_MODEL, CLASSES, $e, $d>,
        >
    };
}

/// The builder type with this file's generic names.
macro_rules! vit_builder {
    () => {
        builder::VisionTransformer<CHANNELS, IMAGE, PATCH, D_MODEL, HEADS, FEED_FORWARD, LAYERS, CLASSES>
    };
}

/// The parameters of a `VisionTransformer`; `patch` is kept non-zero so that a failing
/// check reports instead of dividing by zero.
const fn vit_params(generics: [usize; 8]) -> usize {
    let [channels, image, patch, d_model, _, feed_forward, layers, classes] = generics;
    let side = image / if patch == 0 { 1 } else { patch };
    let tokens = side * side + 1;
    let conv = d_model * channels * patch * patch + d_model;
    let layer = 4 * d_model * d_model
        + 4 * d_model
        + 2 * d_model * feed_forward
        + feed_forward
        + d_model
        + 4 * d_model;
    conv + d_model + tokens * d_model + layers * layer + 2 * d_model + d_model * classes + classes
}

vit_generics!(C: StaticDim, H: StaticDim, W: StaticDim> ShapeInfer<(C, H, W)> for vit_builder!() {
    type Output = (Const<CLASSES>,);
    const CHECK: () = check_vision_transformer(CHANNELS, IMAGE, PATCH, [C::SIZE, H::SIZE, W::SIZE]);
    const PARAMS: usize =
        vit_params([CHANNELS, IMAGE, PATCH, D_MODEL, HEADS, FEED_FORWARD, LAYERS, CLASSES]);
    fn name() -> String {
        format!(
            "VisionTransformer<{CHANNELS}, {IMAGE}, {PATCH}, {D_MODEL}, {HEADS}, {FEED_FORWARD}, {LAYERS}, {CLASSES}>"
        )
    }
});

vit_generics!(E, D> vit!(E, D)
where
    E: Dtype + num_traits::Float,
    D: Conv2dKernel<E>,
{
    /// The classifier on a batch, with the encoder's dropout when `train`.
    fn run<B: Dim, C: StaticDim, H: StaticDim, W: StaticDim, T: Tape<E, D> + Merge<T>>(
        &self,
        x: Tensor<(B, C, H, W), E, D, T>,
        train: bool,
    ) -> Result<Tensor<(B, Const<CLASSES>), E, D, T>, D::Err> {
        const { <vit_builder!() as ShapeInfer<(C, H, W)>>::CHECK };
        let batch = x.shape().0;
        let x = match x.try_realize::<(B, Const<CHANNELS>, Const<IMAGE>, Const<IMAGE>)>() {
            Ok(x) => x,
            Err(_) => unreachable!("the image shape was checked at compile time"),
        };
        let patches = self.conv_proj.try_forward(x)?;
        let count = <Patches<IMAGE, PATCH> as ConstDim>::SIZE;
        // Sequence dims as usize for the concatenation, then named again.
        let patches = patches
            .try_reshape_like(&(batch, Const::<D_MODEL>, count))?
            .try_permute::<_, Axes3<0, 2, 1>>()?;
        let class = self
            .class_token
            .retaped::<T>()
            .try_reshape_like(&(1usize, Const::<D_MODEL>))?
            .try_broadcast_like::<_, Axis<0>>(&(batch, 1usize, Const::<D_MODEL>))?;
        let tokens = (class, patches).try_concat_along(Axis::<1>)?;
        let shape = (batch, Tokens::<IMAGE, PATCH>::default(), Const::<D_MODEL>);
        let tokens = tokens.try_reshape_like(&shape)?;
        let position = self
            .pos_embedding
            .retaped::<T>()
            .try_reshape_like(&(Tokens::<IMAGE, PATCH>::default(), Const::<D_MODEL>))?
            .try_broadcast_like::<_, Axis<0>>(&shape)?;
        let tokens = tokens.try_add(position)?;
        let tokens = self.encoder.sequence(tokens, None, false, train)?;
        let tokens = self.norm.norm3(tokens)?;
        let class = tokens
            .try_slice((.., 0..1, ..))?
            .try_reshape_like(&(batch, Const::<D_MODEL>))?;
        self.head.try_forward(class)
    }
});

vit_generics!(B: Dim, C: StaticDim, H: StaticDim, W: StaticDim, E, D, T>
    Module<Tensor<(B, C, H, W), E, D, T>> for vit!(E, D)
where
    E: Dtype + num_traits::Float,
    D: Conv2dKernel<E>,
    T: Tape<E, D> + Merge<T>,
{
    type Output = Tensor<(B, Const<CLASSES>), E, D, T>;
    type Error = D::Err;

    fn try_forward(&self, x: Tensor<(B, C, H, W), E, D, T>) -> Result<Self::Output, D::Err> {
        self.run(x, false)
    }
});

vit_generics!(B: Dim, C: StaticDim, H: StaticDim, W: StaticDim, E, D, T>
    ModuleMut<Tensor<(B, C, H, W), E, D, T>> for vit!(E, D)
where
    E: Dtype + num_traits::Float,
    D: Conv2dKernel<E>,
    T: Tape<E, D> + Merge<T>,
{
    type Output = Tensor<(B, Const<CLASSES>), E, D, T>;
    type Error = D::Err;

    fn try_forward_mut(&mut self, x: Tensor<(B, C, H, W), E, D, T>) -> Result<Self::Output, D::Err> {
        self.run(x, true)
    }
});

vit_generics!(C: StaticDim, H: StaticDim, W: StaticDim, E, D, T>
    Module<Tensor<(C, H, W), E, D, T>> for vit!(E, D)
where
    E: Dtype + num_traits::Float,
    D: Conv2dKernel<E>,
    T: Tape<E, D> + Merge<T>,
{
    type Output = Tensor<(Const<CLASSES>,), E, D, T>;
    type Error = D::Err;

    fn try_forward(&self, x: Tensor<(C, H, W), E, D, T>) -> Result<Self::Output, D::Err> {
        let x = x.try_reshape_like(&(Const::<1>, C::default(), H::default(), W::default()))?;
        self.run(x, false)?.try_reshape_like(&(Const::<CLASSES>,))
    }
});
