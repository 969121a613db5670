//! Autoencoders for 28x28 digits and a variational autoencoder (Kingma & Welling, 2014).

use crate::nn::builders::{
    Conv2d, ConvTranspose2d, Flatten, Linear as LinearBuilder, ReLU, Sigmoid, Unflatten,
};
use crate::nn::modules::Linear;
use crate::shape::{ShapeInfer, StaticShape, SummaryRow};
use dfdx::nn::{Module, ModuleMut};
use dfdx::prelude::*;
use dfdx::shapes::{Rank1, Rank3};
use rand_distr::{Distribution, StandardNormal};

/// The convolutional half of [`ConvEncoder`]: two stride-2 convolutions take a 28x28
/// digit to 32 maps of 7x7, flattened to 1,568 features. It is the encoder of
/// [`ConvVae`], whose two heads take the place of `ConvEncoder`'s last `Linear`.
///
/// PyTorch equivalent: `nn.Sequential(nn.Conv2d(1, 16, 3, 2, 1), nn.ReLU(),
/// nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(), nn.Flatten())`.
///
/// # Shapes
/// - `(Const<1>, Const<28>, Const<28>) -> (Flattened<(32, 7, 7)>,)` (1,568 features)
/// - `(B, Const<1>, Const<28>, Const<28>) -> (B, Flattened<(32, 7, 7)>)`
///
/// 4,800 parameters: `16 * 1 * 3 * 3 + 16 = 160` and `32 * 16 * 3 * 3 + 32 = 4,640`.
///
/// ```
/// use shapesafe::models::ConvFeatures;
/// use shapesafe::prelude::*;
/// let dev = Cpu::default();
/// let features = dev.build_module::<ConvFeatures, f32>();
/// let x: Tensor<Rank4<2, 1, 28, 28>, f32, _> = dev.zeros();
/// assert_eq!(features.forward(x).shape().concrete(), [2, 1568]);
/// ```
pub type ConvFeatures = (
    Conv2d<1, 16, 3, 2, 1>,
    ReLU,
    Conv2d<16, 32, 3, 2, 1>,
    ReLU,
    Flatten,
);

crate::assert_shapes!(ConvFeatures: Rank3<1, 28, 28> => Rank1<1568>, params = 4_800);

/// The encoder of [`ConvAutoencoder`]: 28x28 digit to a `LATENT`-dim code.
///
/// PyTorch equivalent: `nn.Sequential(nn.Conv2d(1, 16, 3, 2, 1), nn.ReLU(),
/// nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(), nn.Flatten(), nn.Linear(1568, LATENT))`.
///
/// # Shapes
/// - `(Const<1>, Const<28>, Const<28>) -> (Const<LATENT>,)`
/// - `(B, Const<1>, Const<28>, Const<28>) -> (B, Const<LATENT>)`
///
/// `4,800 + 1,569 * LATENT` parameters: 55,008 for `LATENT = 32`
/// (160 + 4,640 in the convolutions, `1568 * 32 + 32 = 50,208` in the `Linear`), checked
/// at compile time.
///
/// ```
/// use shapesafe::models::ConvEncoder;
/// use shapesafe::prelude::*;
/// let dev = Cpu::default();
/// let encoder = dev.build_module::<ConvEncoder<32>, f32>();
/// let x: Tensor<Rank4<2, 1, 28, 28>, f32, _> = dev.zeros();
/// let code: Tensor<Rank2<2, 32>, f32, _> = encoder.forward(x);
/// assert_eq!(encoder.num_trainable_params(), 55_008);
/// ```
pub type ConvEncoder<const LATENT: usize> = (
    Conv2d<1, 16, 3, 2, 1>,
    ReLU,
    Conv2d<16, 32, 3, 2, 1>,
    ReLU,
    Flatten,
    LinearBuilder<1568, LATENT>,
);

crate::assert_shapes!(ConvEncoder<32>: Rank3<1, 28, 28> => Rank1<32>, params = 55_008);

/// The decoder of [`ConvAutoencoder`] and [`ConvVae`]: a `LATENT`-dim code to a 28x28
/// image of probabilities, mirroring [`ConvEncoder`] with transposed convolutions.
///
/// PyTorch equivalent: `nn.Sequential(nn.Linear(LATENT, 1568), nn.ReLU(),
/// nn.Unflatten(1, (32, 7, 7)), nn.ConvTranspose2d(32, 16, 3, 2, 1, 1), nn.ReLU(),
/// nn.ConvTranspose2d(16, 1, 3, 2, 1, 1), nn.Sigmoid())`. dfdx implements modules for
/// tuples of up to six elements, so the layers are grouped.
///
/// # Shapes
/// - `(Const<LATENT>,) -> (Const<1>, Const<28>, Const<28>)` (as `ConvTransposeOut` dims of size 28)
/// - `(B, Const<LATENT>) -> (B, Const<1>, Const<28>, Const<28>)`
///
/// `1,568 * LATENT + 6,337` parameters: 56,513 for `LATENT = 32` (`32 * 1568 + 1568 =
/// 51,744` in the `Linear`, `32 * 16 * 3 * 3 + 16 = 4,624` and `16 * 1 * 3 * 3 + 1 = 145`
/// in the transposed convolutions), checked at compile time.
///
/// ```
/// use shapesafe::models::ConvDecoder;
/// use shapesafe::prelude::*;
/// let dev = Cpu::default();
/// let decoder = dev.build_module::<ConvDecoder<32>, f32>();
/// let z: Tensor<Rank2<2, 32>, f32, _> = dev.sample_normal();
/// let image = decoder.forward(z);
/// assert_eq!(image.shape().concrete(), [2, 1, 28, 28]);
/// assert!(image.as_vec().iter().all(|p| (0.0..=1.0).contains(p)));
/// ```
pub type ConvDecoder<const LATENT: usize> = (
    (LinearBuilder<LATENT, 1568>, ReLU),
    Unflatten<32, 7, 7>,
    (ConvTranspose2d<32, 16, 3, 2, 1, 1>, ReLU),
    (ConvTranspose2d<16, 1, 3, 2, 1, 1>, Sigmoid),
);

crate::assert_shapes!(ConvDecoder<32>: Rank1<32> => Rank3<1, 28, 28>, params = 56_513);

/// A convolutional autoencoder for 28x28 greyscale digits: [`ConvEncoder`] then
/// [`ConvDecoder`]; train it with [`reconstruction_loss`] against its input.
///
/// PyTorch equivalent: `nn.Sequential(encoder, decoder)` of the two documented there.
///
/// # Shapes
/// - `(Const<1>, Const<28>, Const<28>) -> (Const<1>, Const<28>, Const<28>)` (probabilities)
/// - `(B, Const<1>, Const<28>, Const<28>) -> (B, Const<1>, Const<28>, Const<28>)`
///
/// `11,137 + 3,137 * LATENT` parameters: 111,521 for `LATENT = 32` (55,008 + 56,513),
/// checked at compile time.
///
/// ```
/// use shapesafe::models::{reconstruction_loss, ConvAutoencoder};
/// use shapesafe::prelude::*;
/// let dev = Cpu::default();
/// let mut model = dev.build_module::<ConvAutoencoder<32>, f32>();
/// let x: Tensor<Rank4<2, 1, 28, 28>, f32, _> = dev.sample_uniform();
/// let y = model.forward_mut(x.trace(model.alloc_grads()));
/// let loss = reconstruction_loss(y, x.clone());
/// let grads = loss.backward();
/// assert_eq!(model.num_trainable_params(), 111_521);
/// ```
pub type ConvAutoencoder<const LATENT: usize> = (ConvEncoder<LATENT>, ConvDecoder<LATENT>);

crate::assert_shapes!(ConvAutoencoder<32>: Rank3<1, 28, 28> => Rank3<1, 28, 28>, params = 111_521);

/// A convolutional VAE for 28x28 greyscale digits: [`ConvFeatures`] (1,568 features),
/// heads `mu` and `log_var` of `Linear<1568, LATENT>`, and [`ConvDecoder`]. Train it with
/// [`vae_loss`]; decode `z ~ N(0, I)` with its `decoder` to draw new digits.
///
/// # Shapes
/// - `(Const<1>, Const<28>, Const<28>) -> VaeOutput { reconstruction: (1, 28, 28), mu, log_var: (LATENT,) }`
/// - `(B, Const<1>, Const<28>, Const<28>) -> VaeOutput { reconstruction: (B, 1, 28, 28), mu, log_var: (B, LATENT) }`
///
/// `11,137 + 4,706 * LATENT` parameters: 86,433 for `LATENT = 16` (4,800 in the
/// convolutions, `2 * (1568 * 16 + 16) = 50,208` in the heads, `16 * 1568 + 1568 + 4,624
/// + 145 = 31,425` in the decoder), checked at compile time.
///
/// ```
/// use shapesafe::models::{vae_loss, ConvVae};
/// use shapesafe::prelude::*;
/// let dev = Cpu::default();
/// let mut model = dev.build_module::<ConvVae<16>, f32>();
/// let x: Tensor<Rank4<2, 1, 28, 28>, f32, _> = dev.sample_uniform();
/// let out = model.forward_mut(x.trace(model.alloc_grads()));
/// let grads = vae_loss(out, x.clone(), 1.0).backward();
/// let z: Tensor<Rank2<4, 16>, f32, _> = dev.sample_normal();
/// assert_eq!(model.decoder.forward(z).shape().concrete(), [4, 1, 28, 28]);
/// ```
pub type ConvVae<const LATENT: usize> =
    builder::Vae<ConvFeatures, ConvDecoder<LATENT>, 1568, LATENT>;

crate::assert_shapes!(ConvVae<16>: Rank3<1, 28, 28> => Rank3<1, 28, 28>, params = 86_433);

/// The builder (architecture) type of [`Vae`].
pub mod builder {
    use crate::nn::builders::Linear;
    use crate::CustomModule;

    /// A variational autoencoder: `Encoder` maps the input to `FEATURES` features, two
    /// `Linear<FEATURES, LATENT>` heads give the mean `mu` and the log-variance `log_var` of
    /// the latent code, and `Decoder` maps a latent code back to the input's space.
    ///
    /// Training (`ModuleMut::forward_mut`) decodes `z = mu + exp(0.5 * log_var) * eps` with
    /// `eps ~ N(0, 1)` drawn on the device (the reparameterisation trick, Kingma & Welling,
    /// "Auto-Encoding Variational Bayes", 2014); evaluation (`Module::forward`) decodes
    /// `z = mu`. Both return a [`VaeOutput`](super::VaeOutput); train with
    /// [`vae_loss`](super::vae_loss).
    ///
    /// PyTorch equivalent: the usual hand-written `nn.Module` with `fc_mu` and `fc_var`
    /// heads and `reparameterize(mu, logvar)`.
    ///
    /// # Generics
    /// - `Encoder`: any layer (builder type) whose output is `(F,)` with `F::SIZE == FEATURES`
    ///   (a `Flatten` output is fine).
    /// - `Decoder`: any layer taking `(Const<LATENT>,)`.
    /// - `FEATURES`: the encoder's output features; `LATENT`: the latent code's size.
    ///
    /// # Shapes
    /// - `X -> VaeOutput { reconstruction: Decoder output, mu: (Const<LATENT>,), log_var: (Const<LATENT>,) }`
    /// - `(B, ...X) -> VaeOutput { reconstruction: (B, ...), mu: (B, Const<LATENT>), log_var: (B, Const<LATENT>) }`,
    ///   `B` a `Const` or `usize`.
    ///
    /// ```
    /// use shapesafe::models::{vae_loss, Vae};
    /// use shapesafe::prelude::*;
    /// type Model = Vae<(Flatten, Linear<16, 8>, ReLU), (Linear<2, 16>, Sigmoid), 8, 2>;
    /// shapesafe::assert_shapes!(Model: Rank3<1, 4, 4> => Rank1<16>, params = 136 + 2 * 18 + 48);
    ///
    /// let dev = Cpu::default();
    /// let mut model = dev.build_module::<Model, f32>();
    /// let x: Tensor<Rank4<3, 1, 4, 4>, f32, _> = dev.sample_uniform();
    /// let target: Tensor<Rank2<3, 16>, f32, _> = x.clone().reshape();
    /// let out = model.forward_mut(x.trace(model.alloc_grads()));
    /// assert_eq!(out.mu.shape().concrete(), [3, 2]);
    /// let loss = vae_loss(out, target, 1.0);
    /// let grads = loss.backward();
    /// ```
    #[derive(CustomModule, Clone, Copy, Debug, Default)]
    #[built(VaeModule)]
    pub struct Vae<Encoder, Decoder, const FEATURES: usize, const LATENT: usize> {
        encoder: Encoder,
        mu: Linear<FEATURES, LATENT>,
        log_var: Linear<FEATURES, LATENT>,
        decoder: Decoder,
    }
}

/// What a [`Vae`] returns: the decoded reconstruction and the latent distribution's
/// parameters.
///
/// The whole computation's tape (encoder, both heads, sampling, decoder) travels with
/// `reconstruction`; `mu` and `log_var` carry empty tapes whose gradients flow through it
/// once a loss combines all three, as [`vae_loss`] does. A KL term alone, without the
/// reconstruction, would not reach the encoder.
///
/// # Shapes
/// `mu` and `log_var` are `(B, Const<LATENT>)` (or `(Const<LATENT>,)` unbatched);
/// `reconstruction` is whatever the decoder gives.
///
/// ```
/// use shapesafe::models::{Vae, VaeOutput};
/// use shapesafe::prelude::*;
/// let dev = Cpu::default();
/// let model = dev.build_module::<Vae<Linear<4, 3>, Linear<2, 4>, 3, 2>, f64>();
/// let out: VaeOutput<Tensor<Rank1<4>, f64, Cpu>, Tensor<Rank1<2>, f64, Cpu>> =
///     model.forward(dev.tensor([1.0, 2.0, 3.0, 4.0]));
/// assert_eq!(out.log_var.shape().concrete(), [2]);
/// ```
#[derive(Debug, Clone)]
pub struct VaeOutput<Reconstruction, Latent> {
    /// The decoder's output for the latent code.
    pub reconstruction: Reconstruction,
    /// The mean of the latent code's Gaussian.
    pub mu: Latent,
    /// The log-variance of the latent code's Gaussian.
    pub log_var: Latent,
}

/// A built [`Vae`](builder::Vae) on device `D`: `encoder`, the heads `mu` and `log_var`,
/// and `decoder` (made by `#[derive(CustomModule)]`; the forward passes are below).
///
/// # Shapes
/// As [`builder::Vae`].
///
/// ```
/// use shapesafe::models::Vae;
/// use shapesafe::prelude::*;
/// let model = Cpu::default().build_module::<Vae<Linear<4, 3>, Linear<2, 4>, 3, 2>, f32>();
/// assert_eq!(model.mu.weight.shape().concrete(), [2, 3]);
/// assert_eq!(model.num_trainable_params(), 15 + 2 * 8 + 12);
/// ```
pub use builder::VaeModule as Vae;

/// The built [`Vae`] with its heads as the `Linear` layers they are, for the forward passes:
/// `Encoder` and `Decoder` are the built sub-models, `EncoderB` and `DecoderB` their builders.
type BuiltVae<
    EncoderB,
    DecoderB,
    Encoder,
    Decoder,
    const FEATURES: usize,
    const LATENT: usize,
    E,
    D,
> = builder::VaeModule<
    EncoderB,
    DecoderB,
    FEATURES,
    LATENT,
    E,
    D,
    Encoder,
    Linear<FEATURES, LATENT, E, D>,
    Linear<FEATURES, LATENT, E, D>,
    Decoder,
>;

impl<EncoderB, DecoderB, Encoder, Decoder, const FEATURES: usize, const LATENT: usize, E, D>
    BuiltVae<EncoderB, DecoderB, Encoder, Decoder, FEATURES, LATENT, E, D>
where
    E: Dtype,
    D: Device<E>,
{
    /// Applies both heads to the encoder's output `h`; `mu` keeps `h`'s tape, `log_var`
    /// records its own ops on a fresh one.
    #[allow(clippy::type_complexity)]
    fn try_heads<S: Shape, Z: Shape, T: Tape<E, D>>(
        &self,
        h: Tensor<S, E, D, T>,
    ) -> Result<(Tensor<Z, E, D, T>, Tensor<Z, E, D, T>), D::Err>
    where
        Linear<FEATURES, LATENT, E, D>:
            Module<Tensor<S, E, D, T>, Output = Tensor<Z, E, D, T>, Error = D::Err>,
    {
        let log_var = self.log_var.try_forward(h.retaped::<T>())?;
        let mu = self.mu.try_forward(h)?;
        Ok((mu, log_var))
    }

    /// The training forward pass with the noise `eps` given instead of drawn: decodes
    /// `z = mu + exp(0.5 * log_var) * eps`. Submodules run in evaluation mode
    /// (`Module::forward`), so the result is a deterministic function of `x` and `eps`:
    /// what gradient checks need.
    ///
    /// # Shapes
    /// `eps` has the shape of `mu`: `(B, Const<LATENT>)`, or `(Const<LATENT>,)` unbatched.
    ///
    /// ```
    /// use shapesafe::models::Vae;
    /// use shapesafe::prelude::*;
    /// let dev = Cpu::default();
    /// let model = dev.build_module::<Vae<Linear<4, 3>, Linear<2, 4>, 3, 2>, f64>();
    /// let x: Tensor<Rank2<5, 4>, f64, _> = dev.sample_normal();
    /// let noisy = model.forward_with_noise(x.clone(), dev.zeros());
    /// // With eps = 0 the sample is the mean, which is what evaluation decodes.
    /// assert_eq!(noisy.reconstruction.as_vec(), model.forward(x).reconstruction.as_vec());
    /// ```
    pub fn forward_with_noise<X, S, Z, R, T>(
        &self,
        x: X,
        eps: Tensor<Z, E, D>,
    ) -> VaeOutput<R, Tensor<Z, E, D, T>>
    where
        S: Shape,
        Z: Shape,
        T: Tape<E, D>,
        Encoder: Module<X, Output = Tensor<S, E, D, T>, Error = D::Err>,
        Linear<FEATURES, LATENT, E, D>:
            Module<Tensor<S, E, D, T>, Output = Tensor<Z, E, D, T>, Error = D::Err>,
        Decoder: Module<Tensor<Z, E, D, T>, Output = R, Error = D::Err>,
    {
        self.try_forward_with_noise(x, eps).unwrap()
    }

    /// Fallible [`Self::forward_with_noise`].
    ///
    /// # Shapes
    /// As [`Self::forward_with_noise`].
    ///
    /// ```
    /// use shapesafe::models::Vae;
    /// use shapesafe::prelude::*;
    /// let dev = Cpu::default();
    /// let model = dev.build_module::<Vae<Linear<4, 3>, Linear<2, 4>, 3, 2>, f32>();
    /// let x: Tensor<Rank1<4>, f32, _> = dev.sample_normal();
    /// let out = model.try_forward_with_noise(x, dev.ones())?;
    /// assert_eq!(out.reconstruction.shape().concrete(), [4]);
    /// # Ok::<(), CpuError>(())
    /// ```
    #[allow(clippy::type_complexity)] // the output of a generic Vae, spelled out
    pub fn try_forward_with_noise<X, S, Z, R, T>(
        &self,
        x: X,
        eps: Tensor<Z, E, D>,
    ) -> Result<VaeOutput<R, Tensor<Z, E, D, T>>, D::Err>
    where
        S: Shape,
        Z: Shape,
        T: Tape<E, D>,
        Encoder: Module<X, Output = Tensor<S, E, D, T>, Error = D::Err>,
        Linear<FEATURES, LATENT, E, D>:
            Module<Tensor<S, E, D, T>, Output = Tensor<Z, E, D, T>, Error = D::Err>,
        Decoder: Module<Tensor<Z, E, D, T>, Output = R, Error = D::Err>,
    {
        let (mu, log_var) = self.try_heads(self.encoder.try_forward(x)?)?;
        let (mu_out, log_var_out) = (mu.retaped::<T>(), log_var.retaped::<T>());
        let z = try_reparameterize(mu, log_var, eps)?;
        Ok(VaeOutput {
            reconstruction: self.decoder.try_forward(z)?,
            mu: mu_out,
            log_var: log_var_out,
        })
    }
}

/// Evaluation: decodes the mean, `z = mu`, with no noise.
impl<
        X,
        S,
        Z,
        R,
        EncoderB,
        DecoderB,
        Encoder,
        Decoder,
        const FEATURES: usize,
        const LATENT: usize,
        E,
        D,
        T,
    > Module<X> for BuiltVae<EncoderB, DecoderB, Encoder, Decoder, FEATURES, LATENT, E, D>
where
    E: Dtype,
    D: Device<E>,
    S: Shape,
    Z: Shape,
    T: Tape<E, D>,
    Encoder: Module<X, Output = Tensor<S, E, D, T>, Error = D::Err>,
    Linear<FEATURES, LATENT, E, D>:
        Module<Tensor<S, E, D, T>, Output = Tensor<Z, E, D, T>, Error = D::Err>,
    Decoder: Module<Tensor<Z, E, D, T>, Output = R, Error = D::Err>,
{
    type Output = VaeOutput<R, Tensor<Z, E, D, T>>;
    type Error = D::Err;

    fn try_forward(&self, x: X) -> Result<Self::Output, D::Err> {
        let (mu, log_var) = self.try_heads(self.encoder.try_forward(x)?)?;
        // The reconstruction carries every op, the log-variance head's included, so a
        // loss that uses `log_var` still reaches the encoder.
        let (log_var, log_var_tape) = log_var.split_tape();
        let (mu, mu_tape) = mu.split_tape();
        let mu_out = mu.clone().put_tape(T::default());
        let reconstruction = self
            .decoder
            .try_forward(mu.put_tape(mu_tape.merge(log_var_tape)))?;
        Ok(VaeOutput {
            reconstruction,
            mu: mu_out,
            log_var: log_var.put_tape(T::default()),
        })
    }
}

/// Training: decodes `z = mu + exp(0.5 * log_var) * eps` with `eps ~ N(0, 1)` drawn on
/// the device, and runs the encoder and decoder in training mode.
impl<
        X,
        S,
        Z,
        R,
        EncoderB,
        DecoderB,
        Encoder,
        Decoder,
        const FEATURES: usize,
        const LATENT: usize,
        E,
        D,
        T,
    > ModuleMut<X> for BuiltVae<EncoderB, DecoderB, Encoder, Decoder, FEATURES, LATENT, E, D>
where
    E: Dtype,
    D: Device<E>,
    StandardNormal: Distribution<E>,
    S: Shape,
    Z: Shape,
    T: Tape<E, D>,
    Encoder: ModuleMut<X, Output = Tensor<S, E, D, T>, Error = D::Err>,
    Linear<FEATURES, LATENT, E, D>:
        Module<Tensor<S, E, D, T>, Output = Tensor<Z, E, D, T>, Error = D::Err>,
    Decoder: ModuleMut<Tensor<Z, E, D, T>, Output = R, Error = D::Err>,
{
    type Output = VaeOutput<R, Tensor<Z, E, D, T>>;
    type Error = D::Err;

    fn try_forward_mut(&mut self, x: X) -> Result<Self::Output, D::Err> {
        let h = self.encoder.try_forward_mut(x)?;
        let (mu, log_var) = self.try_heads(h)?;
        let eps = mu.device().try_sample_like(mu.shape(), StandardNormal)?;
        let (mu_out, log_var_out) = (mu.retaped::<T>(), log_var.retaped::<T>());
        let z = try_reparameterize(mu, log_var, eps)?;
        Ok(VaeOutput {
            reconstruction: self.decoder.try_forward_mut(z)?,
            mu: mu_out,
            log_var: log_var_out,
        })
    }
}

impl<Input, Encoder, Decoder, const FEATURES: usize, const LATENT: usize> ShapeInfer<Input>
    for builder::Vae<Encoder, Decoder, FEATURES, LATENT>
where
    Input: StaticShape,
    Encoder: ShapeInfer<Input>,
    LinearBuilder<FEATURES, LATENT>: ShapeInfer<Encoder::Output>,
    Decoder: ShapeInfer<<LinearBuilder<FEATURES, LATENT> as ShapeInfer<Encoder::Output>>::Output>,
{
    type Output = <Decoder as ShapeInfer<
        <LinearBuilder<FEATURES, LATENT> as ShapeInfer<Encoder::Output>>::Output,
    >>::Output;
    const CHECK: () = {
        let () = Encoder::CHECK;
        let () = <LinearBuilder<FEATURES, LATENT> as ShapeInfer<Encoder::Output>>::CHECK;
        let () = Decoder::CHECK;
    };
    const PARAMS: usize = Encoder::PARAMS
        + 2 * <LinearBuilder<FEATURES, LATENT> as ShapeInfer<Encoder::Output>>::PARAMS
        + Decoder::PARAMS;
    fn name() -> String {
        format!(
            "Vae<{}, {}, {FEATURES}, {LATENT}>",
            Encoder::name(),
            Decoder::name()
        )
    }
    /// The encoder's rows, one row per head, then the decoder's rows.
    fn summarize(rows: &mut Vec<SummaryRow>) {
        type Head<Out, const F: usize, const L: usize> =
            <LinearBuilder<F, L> as ShapeInfer<Out>>::Output;
        Encoder::summarize(rows);
        for head in ["mu", "log_var"] {
            rows.push(SummaryRow {
                layer: format!(
                    "{head}: {}",
                    <LinearBuilder<FEATURES, LATENT> as ShapeInfer<Encoder::Output>>::name()
                ),
                output: <Head<Encoder::Output, FEATURES, LATENT> as StaticShape>::DIMS.to_vec(),
                params: <LinearBuilder<FEATURES, LATENT> as ShapeInfer<Encoder::Output>>::PARAMS,
            });
        }
        Decoder::summarize(rows);
    }
}

/// The reparameterisation trick: `z = mu + exp(0.5 * log_var) * eps`, differentiable in
/// `mu` and `log_var` with the noise `eps` held fixed.
///
/// # Shapes
/// All three share a shape `S`; so does `z`.
///
/// ```
/// use shapesafe::models::reparameterize;
/// use shapesafe::prelude::*;
/// let dev = Cpu::default();
/// let z = reparameterize(dev.tensor([1.0, 0.0]), dev.tensor([0.0, 2.0f64.ln()]), dev.tensor([2.0, 3.0]));
/// let z = z.as_vec();
/// assert!((z[0] - 3.0).abs() < 1e-12 && (z[1] - 3.0 * 2.0f64.sqrt()).abs() < 1e-12);
/// ```
pub fn reparameterize<S, E, D, T1, T2>(
    mu: Tensor<S, E, D, T1>,
    log_var: Tensor<S, E, D, T2>,
    eps: Tensor<S, E, D>,
) -> Tensor<S, E, D, T1>
where
    S: Shape,
    E: Dtype,
    D: Device<E>,
    T1: Tape<E, D> + Merge<T2>,
    T2: Tape<E, D>,
{
    try_reparameterize(mu, log_var, eps).unwrap()
}

/// Fallible [`reparameterize`].
///
/// # Shapes
/// As [`reparameterize`].
///
/// ```
/// use shapesafe::models::try_reparameterize;
/// use shapesafe::prelude::*;
/// let dev = Cpu::default();
/// let z = try_reparameterize(dev.tensor([1.0f32]), dev.tensor([0.0f32]), dev.tensor([-1.0f32]))?;
/// assert_eq!(z.as_vec(), [0.0]);
/// # Ok::<(), CpuError>(())
/// ```
pub fn try_reparameterize<S, E, D, T1, T2>(
    mu: Tensor<S, E, D, T1>,
    log_var: Tensor<S, E, D, T2>,
    eps: Tensor<S, E, D>,
) -> Result<Tensor<S, E, D, T1>, D::Err>
where
    S: Shape,
    E: Dtype,
    D: Device<E>,
    T1: Tape<E, D> + Merge<T2>,
    T2: Tape<E, D>,
{
    let half = E::from_f64(0.5).expect("every dtype holds 0.5");
    let spread = log_var.try_mul(half)?.try_exp()?.try_mul(eps)?;
    mu.try_add(spread)
}

/// The KL divergence from `N(mu, exp(log_var))` to `N(0, 1)`, summed over the latent
/// dims and averaged over the batch (Kingma & Welling, appendix B):
/// `mean_b -0.5 * sum_j (1 + log_var - mu^2 - exp(log_var))`.
///
/// PyTorch equivalent:
/// `(-0.5 * torch.sum(1 + log_var - mu.pow(2) - log_var.exp(), dim=1)).mean()`.
///
/// # Shapes
/// `mu`, `log_var`: `(B, Z)` with `B >= 1`; the result is a scalar.
///
/// ```
/// use shapesafe::models::kl_divergence;
/// use shapesafe::prelude::*;
/// let dev = Cpu::default();
/// let mu = dev.tensor([[0.0, 0.0], [1.0, 0.0]]);
/// let log_var = dev.tensor([[0.0, 0.0], [0.0, 0.0]]);
/// // Only the second sample is off the prior, by 0.5 * 1^2; the batch mean halves it.
/// assert!((kl_divergence(mu, log_var).array() - 0.25f64).abs() < 1e-12);
/// ```
pub fn kl_divergence<B, Z, E, D, T1, T2>(
    mu: Tensor<(B, Z), E, D, T1>,
    log_var: Tensor<(B, Z), E, D, T2>,
) -> Tensor<Rank0, E, D, T1>
where
    B: Dim,
    Z: Dim,
    E: Dtype,
    D: Device<E>,
    T1: Tape<E, D> + Merge<T2>,
    T2: Tape<E, D>,
{
    try_kl_divergence(mu, log_var).unwrap()
}

/// Fallible [`kl_divergence`].
///
/// # Shapes
/// As [`kl_divergence`].
///
/// ```
/// use shapesafe::models::try_kl_divergence;
/// use shapesafe::prelude::*;
/// let dev = Cpu::default();
/// let kl = try_kl_divergence(dev.tensor([[0.0f32; 3]]), dev.tensor([[0.0f32; 3]]))?;
/// assert_eq!(kl.array(), 0.0);
/// # Ok::<(), CpuError>(())
/// ```
pub fn try_kl_divergence<B, Z, E, D, T1, T2>(
    mu: Tensor<(B, Z), E, D, T1>,
    log_var: Tensor<(B, Z), E, D, T2>,
) -> Result<Tensor<Rank0, E, D, T1>, D::Err>
where
    B: Dim,
    Z: Dim,
    E: Dtype,
    D: Device<E>,
    T1: Tape<E, D> + Merge<T2>,
    T2: Tape<E, D>,
{
    let (batch, latent) = (mu.shape().0.size(), mu.shape().1.size());
    let number = |v: f64| E::from_f64(v).expect("every dtype holds a batch size");
    let variance = log_var.retaped::<T2>().try_exp()?;
    // sum(mu^2 + exp(log_var) - log_var) - latent per sample; the constant leaves the
    // sum so that it costs one scalar op rather than one per element.
    let per_element = mu.try_square()?.try_add(variance)?.try_sub(log_var)?;
    per_element
        .try_sum::<Rank0, _>()?
        .try_sub(number((batch * latent) as f64))?
        .try_mul(number(0.5 / batch as f64))
}

/// The probability below which a reconstruction pixel is clamped before its logarithm,
/// so a saturated sigmoid (exactly 0 or 1 in `f32`) gives a finite loss.
const PROBABILITY_FLOOR: f64 = 1e-7;

/// Binary cross-entropy of probabilities `reconstruction` against `target` (both in
/// `[0, 1]`), summed over each example and averaged over the batch (the first dim).
///
/// Probabilities are clamped to `[1e-7, 1 - 1e-7]` first, so a saturated sigmoid gives
/// a finite loss (PyTorch's `BCELoss` clamps the logarithm at -100 for the same reason).
///
/// PyTorch equivalent: `F.binary_cross_entropy(x_hat, x, reduction="sum") / x.shape[0]`.
///
/// # Shapes
/// `reconstruction`: any shape `S` whose first dim is the batch; `target`: a shape of the
/// same rank and sizes, whose dim types may differ (`Const<28>` against the
/// `ConvTransposeOut<..>` of size 28 a decoder gives). A scalar out.
///
/// # Panics
/// If the sizes differ, which the types can leave open only for `usize` dims or dims
/// computed by different formulas.
///
/// ```
/// use shapesafe::models::reconstruction_loss;
/// use shapesafe::prelude::*;
/// let dev = Cpu::default();
/// let p = dev.tensor([[0.5, 0.5], [0.5, 0.5]]);
/// let t = dev.tensor([[1.0, 0.0], [0.0, 1.0]]);
/// assert!((reconstruction_loss(p, t).array() - 2.0 * 2.0f64.ln()).abs() < 1e-12);
/// ```
pub fn reconstruction_loss<S, Target, E, D, T>(
    reconstruction: Tensor<S, E, D, T>,
    target: Tensor<Target, E, D>,
) -> Tensor<Rank0, E, D, T>
where
    S: Shape,
    Target: Shape<Concrete = S::Concrete>,
    E: Dtype,
    D: Device<E>,
    T: Tape<E, D>,
{
    try_reconstruction_loss(reconstruction, target).unwrap()
}

/// Fallible [`reconstruction_loss`]: device errors are returned.
///
/// # Shapes
/// As [`reconstruction_loss`].
///
/// # Panics
/// As [`reconstruction_loss`].
///
/// ```
/// use shapesafe::models::try_reconstruction_loss;
/// use shapesafe::prelude::*;
/// let dev = Cpu::default();
/// let loss = try_reconstruction_loss(dev.tensor([[1.0f32, 0.0]]), dev.tensor([[1.0f32, 0.0]]))?;
/// assert!(loss.array() < 1e-6);
/// # Ok::<(), CpuError>(())
/// ```
pub fn try_reconstruction_loss<S, Target, E, D, T>(
    reconstruction: Tensor<S, E, D, T>,
    target: Tensor<Target, E, D>,
) -> Result<Tensor<Rank0, E, D, T>, D::Err>
where
    S: Shape,
    Target: Shape<Concrete = S::Concrete>,
    E: Dtype,
    D: Device<E>,
    T: Tape<E, D>,
{
    let number = |v: f64| E::from_f64(v).expect("every dtype holds a batch size");
    let batch = reconstruction
        .shape()
        .concrete()
        .into_iter()
        .next()
        .unwrap_or(1)
        .max(1);
    let target = match target.try_realize::<S>() {
        Ok(target) => target,
        Err(target) => panic!(
            "reconstruction_loss: the target's shape {:?} differs from the reconstruction's {:?}",
            target.shape().concrete(),
            reconstruction.shape().concrete()
        ),
    };
    let p = reconstruction.try_clamp(PROBABILITY_FLOOR, 1.0 - PROBABILITY_FLOOR)?;
    let log_p = p.retaped::<T>().try_ln()?;
    let log_not_p = p.try_negate()?.try_add(E::ONE)?.try_ln()?;
    let not_target = target.clone().try_negate()?.try_add(E::ONE)?;
    let log_likelihood = log_p
        .try_mul(target)?
        .try_add(log_not_p.try_mul(not_target)?)?;
    log_likelihood
        .try_sum::<Rank0, _>()?
        .try_mul(number(-1.0 / batch as f64))
}

/// The VAE's negative evidence lower bound (Kingma & Welling, 2014), with Higgins et al.'s
/// `beta` weight on the KL term: [`reconstruction_loss`] (binary cross-entropy summed per
/// example, averaged over the batch) `+ beta *` [`kl_divergence`].
///
/// `beta = 1` is the plain VAE; larger values trade reconstruction for a smoother latent
/// space. The reconstruction must be probabilities (a decoder ending in `Sigmoid`).
///
/// # Shapes
/// `output.reconstruction` and `target`: `(B, ...)`, as in [`reconstruction_loss`];
/// `output.mu`, `output.log_var`: `(B, Z)`.
///
/// # Panics
/// As [`reconstruction_loss`].
///
/// ```
/// use shapesafe::models::{vae_loss, VaeOutput};
/// use shapesafe::prelude::*;
/// let dev = Cpu::default();
/// let output = VaeOutput {
///     reconstruction: dev.tensor([[0.5, 0.5]]),
///     mu: dev.tensor([[1.0]]),
///     log_var: dev.tensor([[0.0]]),
/// };
/// let loss = vae_loss(output, dev.tensor([[1.0, 0.0]]), 2.0);
/// assert!((loss.array() - (2.0 * 2.0f64.ln() + 2.0 * 0.5)).abs() < 1e-12);
/// ```
#[allow(clippy::type_complexity)] // the output of a generic Vae, spelled out
pub fn vae_loss<S, Target, B, Z, E, D, T>(
    output: VaeOutput<Tensor<S, E, D, T>, Tensor<(B, Z), E, D, T>>,
    target: Tensor<Target, E, D>,
    beta: f64,
) -> Tensor<Rank0, E, D, T>
where
    S: Shape,
    Target: Shape<Concrete = S::Concrete>,
    B: Dim,
    Z: Dim,
    E: Dtype,
    D: Device<E>,
    T: Tape<E, D>,
{
    try_vae_loss(output, target, beta).unwrap()
}

/// Fallible [`vae_loss`]: device errors are returned.
///
/// # Shapes
/// As [`vae_loss`].
///
/// # Panics
/// As [`reconstruction_loss`].
///
/// ```
/// use shapesafe::models::{try_vae_loss, VaeOutput};
/// use shapesafe::prelude::*;
/// let dev = Cpu::default();
/// let output = VaeOutput {
///     reconstruction: dev.tensor([[1.0f32]]),
///     mu: dev.tensor([[0.0f32]]),
///     log_var: dev.tensor([[0.0f32]]),
/// };
/// assert!(try_vae_loss(output, dev.tensor([[1.0f32]]), 1.0)?.array() < 1e-6);
/// # Ok::<(), CpuError>(())
/// ```
#[allow(clippy::type_complexity)] // the output of a generic Vae, spelled out
pub fn try_vae_loss<S, Target, B, Z, E, D, T>(
    output: VaeOutput<Tensor<S, E, D, T>, Tensor<(B, Z), E, D, T>>,
    target: Tensor<Target, E, D>,
    beta: f64,
) -> Result<Tensor<Rank0, E, D, T>, D::Err>
where
    S: Shape,
    Target: Shape<Concrete = S::Concrete>,
    B: Dim,
    Z: Dim,
    E: Dtype,
    D: Device<E>,
    T: Tape<E, D>,
{
    let beta = E::from_f64(beta).expect("beta fits the dtype");
    let reconstruction = try_reconstruction_loss(output.reconstruction, target)?;
    let kl = try_kl_divergence(output.mu, output.log_var)?;
    reconstruction.try_add(kl.try_mul(beta)?)
}
