//! The `Trainer` objectives of autoencoders: reconstruction (binary cross-entropy) and the
//! VAE's reconstruction + beta * KL, each reporting its parts.

use super::autoencoder::{try_kl_divergence, try_reconstruction_loss, VaeOutput};
use crate::data::{Batch, Batchable, Dataset};
use crate::train::{Metrics, Objective};
use crate::{Error, Result};
use dfdx::prelude::*;

fn value<D: Device<f32>, T>(t: &Tensor<(), f32, D, T>) -> f64 {
    f64::from(t.as_vec()[0])
}

/// Mean squared error per pixel between a reconstruction and its input, summed over the
/// batch, for the `mse` metric.
fn squared_error<S: Shape, X: Shape, D: Device<f32>, T>(
    reconstruction: &Tensor<S, f32, D, T>,
    input: &Tensor<X, f32, D>,
    metrics: &mut Metrics,
) {
    let sum: f64 = reconstruction
        .as_vec()
        .iter()
        .zip(input.as_vec())
        .map(|(a, b)| f64::from(a - b).powi(2))
        .sum();
    metrics.add("mse", sum, input.shape().num_elements() as f64);
}

/// Autoencoders: the model reconstructs its input batch (the labels are ignored), trained
/// on [`reconstruction_loss`](super::reconstruction_loss) (binary cross-entropy summed per
/// image, mean over images); validation also reports `mse`, per pixel.
///
/// PyTorch equivalent: `F.binary_cross_entropy(model(x), x, reduction='sum') / len(x)`.
///
/// # Shapes
/// Inputs `(usize, ...V::Shape)` -> a reconstruction with the same dims.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::data::{Batch, DataLoader, Loader, MnistSplit};
/// use shapesafe::models::AutoencoderObjective;
/// use shapesafe::train::{Metrics, Objective};
/// let split = MnistSplit::new(vec![255; 784 * 2], vec![0, 1]).unwrap();
/// let dev = Cpu::default();
/// let model = dev.build_module::<(Flatten, Linear<784, 784>, Sigmoid, Unflatten<1, 28, 28>), f32>();
/// let loader = DataLoader::new(&split, 2).unwrap();
/// let batch: Batch<MnistSplit, Cpu> = loader.batches(0, &dev).next().unwrap().unwrap();
/// let mut m = Metrics::new();
/// let bce = AutoencoderObjective.validation_step(&model, batch, &mut m).unwrap();
/// assert!(bce > 0.0 && m.mean("mse").unwrap() > 0.0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AutoencoderObjective;

impl<M, D, V, S, S2> Objective<M, D, Batch<V, D>> for AutoencoderObjective
where
    D: Device<f32>,
    V: Dataset + ?Sized,
    S: Shape<Concrete = <<V::Shape as Batchable>::Batched as Shape>::Concrete>,
    S2: Shape<Concrete = S::Concrete>,
    M: ModuleMut<
            Tensor<<V::Shape as Batchable>::Batched, f32, D, OwnedTape<f32, D>>,
            Output = Tensor<S, f32, D, OwnedTape<f32, D>>,
        > + Module<Tensor<<V::Shape as Batchable>::Batched, f32, D>, Output = Tensor<S2, f32, D>>,
{
    fn examples(&self, batch: &Batch<V, D>) -> usize {
        batch.len()
    }

    fn training_step(
        &mut self,
        model: &mut M,
        batch: Batch<V, D>,
        grads: Gradients<f32, D>,
        _metrics: &mut Metrics,
    ) -> Result<Tensor<(), f32, D, OwnedTape<f32, D>>> {
        let x = batch.inputs;
        let y = model
            .try_forward_mut(x.clone().traced(grads))
            .map_err(Error::device)?;
        try_reconstruction_loss(y, x).map_err(Error::device)
    }

    fn validation_step(
        &mut self,
        model: &M,
        batch: Batch<V, D>,
        metrics: &mut Metrics,
    ) -> Result<f64> {
        let x = batch.inputs;
        let y = model.try_forward(x.clone()).map_err(Error::device)?;
        squared_error(&y, &x, metrics);
        Ok(value(
            &try_reconstruction_loss(y, x).map_err(Error::device)?,
        ))
    }
}

/// Variational autoencoders: [`vae_loss`](super::vae_loss), the reconstruction's binary
/// cross-entropy plus `beta` times the KL divergence of the code from `N(0, I)` (both per
/// image); reports `reconstruction` and `kl` separately, and `mse` per pixel in validation.
/// Training samples the code (`z = mu + sigma * eps`), validation decodes `z = mu`, as the
/// model's `forward_mut` and `forward` do.
///
/// PyTorch equivalent: the loss of PyTorch's VAE example, with `beta` as in beta-VAE.
///
/// # Shapes
/// Inputs `(usize, ...V::Shape)` -> `VaeOutput` of a reconstruction with the same dims and
/// codes `(usize, LATENT)`.
///
/// ```
/// use shapesafe::models::VaeObjective;
/// assert_eq!(VaeObjective::default().beta, 1.0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VaeObjective {
    /// Weight of the KL term (1 for the plain VAE).
    pub beta: f64,
}

impl Default for VaeObjective {
    fn default() -> Self {
        Self { beta: 1.0 }
    }
}

type Code<B, Z, D, T> = Tensor<(B, Z), f32, D, T>;

impl<M, D, V, S, S2, B, Z> Objective<M, D, Batch<V, D>> for VaeObjective
where
    D: Device<f32>,
    V: Dataset + ?Sized,
    S: Shape<Concrete = <<V::Shape as Batchable>::Batched as Shape>::Concrete>,
    S2: Shape<Concrete = S::Concrete>,
    B: Dim,
    Z: Dim,
    M: ModuleMut<
            Tensor<<V::Shape as Batchable>::Batched, f32, D, OwnedTape<f32, D>>,
            Output = VaeOutput<
                Tensor<S, f32, D, OwnedTape<f32, D>>,
                Code<B, Z, D, OwnedTape<f32, D>>,
            >,
        > + Module<
            Tensor<<V::Shape as Batchable>::Batched, f32, D>,
            Output = VaeOutput<Tensor<S2, f32, D>, Code<B, Z, D, NoneTape>>,
        >,
{
    fn examples(&self, batch: &Batch<V, D>) -> usize {
        batch.len()
    }

    fn training_step(
        &mut self,
        model: &mut M,
        batch: Batch<V, D>,
        grads: Gradients<f32, D>,
        metrics: &mut Metrics,
    ) -> Result<Tensor<(), f32, D, OwnedTape<f32, D>>> {
        let n = batch.len() as f64;
        let x = batch.inputs;
        let out = model
            .try_forward_mut(x.clone().traced(grads))
            .map_err(Error::device)?;
        let reconstruction =
            try_reconstruction_loss(out.reconstruction, x).map_err(Error::device)?;
        let kl = try_kl_divergence(out.mu, out.log_var).map_err(Error::device)?;
        metrics.add("reconstruction", value(&reconstruction) * n, n);
        metrics.add("kl", value(&kl) * n, n);
        let weighted = kl.try_mul(self.beta as f32).map_err(Error::device)?;
        reconstruction.try_add(weighted).map_err(Error::device)
    }

    fn validation_step(
        &mut self,
        model: &M,
        batch: Batch<V, D>,
        metrics: &mut Metrics,
    ) -> Result<f64> {
        let n = batch.len() as f64;
        let x = batch.inputs;
        let out = model.try_forward(x.clone()).map_err(Error::device)?;
        squared_error(&out.reconstruction, &x, metrics);
        let reconstruction =
            value(&try_reconstruction_loss(out.reconstruction, x).map_err(Error::device)?);
        let kl = value(&try_kl_divergence(out.mu, out.log_var).map_err(Error::device)?);
        metrics.add("reconstruction", reconstruction * n, n);
        metrics.add("kl", kl * n, n);
        Ok(reconstruction + self.beta * kl)
    }
}
