//! The DCGAN's two networks as struct models, each with its shape contract: a generator
//! that upsamples noise and a cluster one-hot to a 28x28 digit with transposed convolutions,
//! and a discriminator that downsamples a pack of digits with strided convolutions to one
//! logit, conditioned on their clusters by projection.

use shapesafe::prelude::*;

/// The noise part of the latent code.
pub const NOISE: usize = 64;

/// The k-means clusters of the training digits that the generator and the discriminator are
/// conditioned on (`clusters.rs`): the generator draws a digit of a given cluster, and the
/// discriminator judges whether a digit is a real member of its cluster.
pub const CLUSTERS: usize = 100;

/// The generator's input: noise, then the cluster one-hot.
pub const LATENT: usize = NOISE + CLUSTERS;

/// Digits the discriminator judges together, stacked as channels (PacGAN, Lin et al., 2018):
/// a generator that drops modes makes packs less varied than real ones, which a packed
/// discriminator sees and a one-digit discriminator cannot.
pub const PACK: usize = 2;

/// `noise and cluster one-hot (LATENT) -> 128x7x7 -> 128x7x7 -> 64x14x14 -> 1x28x28`,
/// pixels in `[-1, 1]`.
///
/// PyTorch equivalent: `nn.Sequential(nn.Linear(164, 6272), nn.Unflatten(1, (128, 7, 7)),
/// nn.BatchNorm2d(128), nn.ReLU(), nn.Conv2d(128, 128, 3, 1, 1), nn.BatchNorm2d(128),
/// nn.ReLU(), nn.ConvTranspose2d(128, 64, 4, 2, 1),
/// nn.BatchNorm2d(64), nn.ReLU(), nn.ConvTranspose2d(64, 1, 4, 2, 1), nn.Tanh())`.
#[derive(Sequential, Debug, Clone, Copy, Default)]
#[built(Generator)]
#[shapes(input = Rank1<LATENT>, output = Rank3<1, 28, 28>, params = 1_315_265)]
pub struct GeneratorConfig {
    project: Linear<LATENT, 6272>,
    unflatten: Unflatten<128, 7, 7>,
    bn0: BatchNorm2d<128>,
    relu0: ReLU,
    refine: Conv2d<128, 128, 3, 1, 1>,
    bn_refine: BatchNorm2d<128>,
    relu_refine: ReLU,
    up1: ConvTranspose2d<128, 64, 4, 2, 1>,
    bn1: BatchNorm2d<64>,
    relu1: ReLU,
    up2: ConvTranspose2d<64, 1, 4, 2, 1>,
    tanh: Tanh,
}

/// `PACKx28x28 -> 64x14x14 -> 128x7x7 -> 6272` features, which the discriminator's two
/// heads share.
///
/// PyTorch equivalent: `nn.Sequential(nn.Conv2d(2, 64, 4, 2, 1), nn.LeakyReLU(0.2),
/// nn.Conv2d(64, 128, 4, 2, 1), nn.BatchNorm2d(128), nn.LeakyReLU(0.2), nn.Flatten())`;
/// [`discriminator`] sets the slopes to DCGAN's 0.2.
#[derive(Sequential, Debug, Clone, Copy, Default)]
#[built(Features)]
#[shapes(input = Rank3<PACK, 28, 28>, output = Rank1<6272>, params = 133_568)]
pub struct FeaturesConfig {
    down1: Conv2d<PACK, 64, 4, 2, 1>,
    act1: LeakyReLU,
    down2: Conv2d<64, 128, 4, 2, 1>,
    bn2: BatchNorm2d<128>,
    act2: LeakyReLU,
    flatten: Flatten,
}

/// The discriminator: shared features of a pack of [`PACK`] digits, and a logit saying
/// whether they are real members of their clusters (positive) or generated (negative): a
/// linear score of the features plus their agreement with an embedding of the clusters
/// (the projection discriminator, Miyato and Koyama, 2018).
///
/// PyTorch equivalent: a module whose `forward(x, y)` is `f = self.features(x);
/// return self.classify(f) + (f * self.project(y)).sum(1, keepdim=True)`, `y` the packed
/// cluster one-hots.
#[derive(CustomModule, Debug, Clone, Copy, Default)]
#[built(Discriminator)]
pub struct DiscriminatorConfig {
    features: FeaturesConfig,
    classify: Linear<6272, 1>,
    project: Linear<{ PACK * CLUSTERS }, 6272>,
}

/// The cluster one-hots of a batch, `PACK` digits' to a row: `(n, PACK * CLUSTERS)` for
/// `n` packs.
pub type PackedClusters<D, E = f32> = Tensor<(usize, Const<{ PACK * CLUSTERS }>), E, D>;

/// The discriminator's logits, one per pack: `(n, 1)`.
pub type Logits<D, T, E = f32> = Tensor<(usize, Const<1>), E, D, T>;

impl<E, D> Discriminator<E, D>
where
    E: Dtype + num_traits::Float + rand_distr::uniform::SampleUniform,
    D: KernelDevice<E>,
{
    /// Judges `n` packs of digits of the given clusters in training mode (batch
    /// statistics).
    ///
    /// # Shapes
    /// `(n, PACK, 28, 28)` and `(n, PACK * CLUSTERS) -> (n, 1)`.
    pub fn judge<T: Tape<E, D> + Merge<T>>(
        &mut self,
        packs: Tensor<(usize, Const<PACK>, Const<28>, Const<28>), E, D, T>,
        clusters: PackedClusters<D, E>,
    ) -> Result<Logits<D, T, E>, D::Err> {
        let n = packs.shape().0;
        let features = self.features.try_forward_mut(packs)?;
        // The projection records on tapes of its own; the sum below merges them back.
        let embedded = self.project.try_forward_mut(clusters.retaped::<T>())?;
        let agreement = features
            .with_empty_tape()
            .try_reshape_like(&(n, Const::<6272>))?
            .try_mul(embedded)?
            .try_sum::<(usize,), _>()?
            .try_reshape_like(&(n, Const::<1>))?;
        self.classify.try_forward_mut(features)?.try_add(agreement)
    }
}

/// Builds the discriminator with DCGAN's leaky slope of 0.2.
pub fn discriminator<D: KernelDevice<f32>>(dev: &D) -> Result<Discriminator<f32, D>, D::Err> {
    let mut d = DiscriminatorConfig::try_build_on_device(dev)?;
    d.features.act1.negative_slope = 0.2;
    d.features.act2.negative_slope = 0.2;
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The logit's gradients through both paths (the linear score and the projection of
    /// the clusters) against central finite differences in f64, for weights of the features,
    /// the linear score and the projection.
    #[test]
    fn judge_gradients_match_finite_differences() {
        let dev = Cpu::default();
        let mut d = DiscriminatorConfig::try_build_on_device(&dev).unwrap();
        let packs: Tensor<(usize, Const<PACK>, Const<28>, Const<28>), f64, Cpu> =
            dev.sample_normal_like(&(3, Const, Const, Const));
        let mut one_hot = vec![0.0; 3 * PACK * CLUSTERS];
        for (i, cluster) in [4, 17, 4, 99, 0, 52].into_iter().enumerate() {
            one_hot[i * CLUSTERS + cluster] = 1.0;
        }
        let clusters: PackedClusters<Cpu, f64> = dev.tensor_from_vec(one_hot, (3, Const));
        let weights = dev.tensor_from_vec(vec![0.7, -1.3, 0.4], (3, Const::<1>));
        let loss = |d: &mut Discriminator<f64, Cpu>| -> f64 {
            let logits = d.judge(packs.clone(), clusters.clone()).unwrap();
            (logits * weights.clone()).sum::<Rank0, _>().array()
        };
        let grads = {
            let logits = d.judge(packs.leaky_trace(), clusters.clone()).unwrap();
            (logits * weights.clone()).sum::<Rank0, _>().backward()
        };
        let project = grads.get(&d.project.weight).as_vec();
        let classify = grads.get(&d.classify.weight).as_vec();
        let down1 = grads.get(&d.features.down1.weight).as_vec();
        // A small step, so that no leaky ReLU's input crosses 0 between the two sides.
        let h = 1e-7;
        type Read = dyn Fn(&mut Discriminator<f64, Cpu>) -> Vec<f64>;
        type Write = dyn Fn(&mut Discriminator<f64, Cpu>, &[f64]);
        /// A parameter: its name, its gradient, the entries checked, a read and a write.
        type Case<'a> = (&'a str, &'a [f64], &'a [usize], &'a Read, &'a Write);
        let mut check = |name: &str, analytic: &[f64], index: usize, get: &Read, set: &Write| {
            let base = get(&mut d);
            let mut plus = base.clone();
            plus[index] += h;
            set(&mut d, &plus);
            let up = loss(&mut d);
            let mut minus = base.clone();
            minus[index] -= h;
            set(&mut d, &minus);
            let down = loss(&mut d);
            set(&mut d, &base);
            let numeric = (up - down) / (2.0 * h);
            assert!(
                (analytic[index] - numeric).abs() <= 1e-5 * (1.0 + numeric.abs()),
                "{name}[{index}]: backward {} against finite differences {numeric}",
                analytic[index]
            );
        };
        // Columns 4 and CLUSTERS + 17 of row 0 are the first pack's clusters; row 5's too.
        let cases: [Case; 3] = [
            (
                "project.weight",
                &project,
                &[4, CLUSTERS + 17, 5 * 2 * CLUSTERS + 4],
                &|d| d.project.weight.as_vec(),
                &|d, v| d.project.weight.copy_from(v),
            ),
            (
                "classify.weight",
                &classify,
                &[0, 3000],
                &|d| d.classify.weight.as_vec(),
                &|d, v| d.classify.weight.copy_from(v),
            ),
            (
                "features.down1.weight",
                &down1,
                &[0, 77, 1000],
                &|d| d.features.down1.weight.as_vec(),
                &|d, v| d.features.down1.weight.copy_from(v),
            ),
        ];
        for (name, analytic, indices, get, set) in cases {
            for &index in indices {
                check(name, analytic, index, get, set);
            }
        }
    }
}
