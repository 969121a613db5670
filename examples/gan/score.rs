//! The GAN's referee: the LeNet-5 that `--example lenet` trains, asked how sure it is of
//! each generated digit.

use shapesafe::data::{MNIST_MEAN, MNIST_STD};
use shapesafe::device::DeviceKind;
use shapesafe::models::LeNet5;
use shapesafe::prelude::*;
use shapesafe::train::load_weights;
use shapesafe::{Error, Result};
use std::path::Path;

/// How a batch of generated digits fares with the classifier.
#[derive(Clone, Debug)]
pub struct Score {
    /// Digits scored.
    pub samples: usize,
    /// Digits the classifier gives one class a probability of at least the threshold.
    pub confident: usize,
    /// How many of the confident digits fall in each class.
    pub per_class: [usize; 10],
}

impl Score {
    /// The share of confident digits.
    pub fn confident_share(&self) -> f64 {
        self.confident as f64 / self.samples.max(1) as f64
    }

    /// How many classes have at least one confident digit.
    pub fn classes_present(&self) -> usize {
        self.per_class.iter().filter(|&&n| n > 0).count()
    }
}

/// LeNet-5 with the weights at `path`; when there are none, trains it first exactly as
/// `--example lenet` does (its defaults: four epochs, 98.96% on the test set) and saves them
/// there, so the referee is the README's LeNet.
pub fn classifier<D: KernelDevice<f32>>(
    path: &Path,
    dev: &D,
    device: DeviceKind,
    seed: u64,
) -> Result<<LeNet5 as BuildOnDevice<D, f32>>::Built> {
    if !path.exists() {
        println!(
            "no LeNet-5 weights at {}: training them first (as `--example lenet` does)\n",
            path.display()
        );
        let mut args = crate::common::lenet_defaults();
        args.out = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| Path::new(".").to_path_buf(), Path::to_path_buf);
        args.seed = seed;
        args.device = device;
        crate::common::train_on_mnist::<LeNet5, _>("lenet5", args, dev.clone())?;
        let saved = path.with_file_name("lenet5.safetensors");
        if saved != path {
            std::fs::rename(&saved, path).map_err(|source| Error::Io {
                path: path.to_path_buf(),
                source,
            })?;
        }
        println!();
    }
    let mut lenet = LeNet5::try_build_on_device(dev).map_err(Error::device)?;
    load_weights(&mut lenet, path)?;
    Ok(lenet)
}

/// Classifies `images` (pixels in `[-1, 1]`, as the generator draws them) with LeNet, which
/// was trained on MNIST's normalisation, and counts the digits it gives a class a
/// probability of at least `threshold`.
pub fn score<D, M>(
    lenet: &M,
    images: Tensor<(usize, Const<1>, Const<28>, Const<28>), f32, D>,
    threshold: f32,
) -> Result<Score>
where
    D: KernelDevice<f32>,
    M: Module<
        Tensor<(usize, Const<1>, Const<28>, Const<28>), f32, D>,
        Output = Tensor<(usize, Const<10>), f32, D>,
        Error = D::Err,
    >,
{
    let samples = images.shape().0;
    // [-1, 1] -> [0, 1] -> MNIST's normalisation.
    let x = ((images + 1.0) * 0.5 - MNIST_MEAN) / MNIST_STD;
    let probs = lenet
        .try_forward(x)
        .map_err(Error::device)?
        .softmax::<Axis<1>>()
        .as_vec();
    let mut result = Score {
        samples,
        confident: 0,
        per_class: [0; 10],
    };
    for row in probs.chunks(10) {
        let (class, &p) = row
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap_or((0, &0.0));
        if p >= threshold {
            result.confident += 1;
            result.per_class[class] += 1;
        }
    }
    Ok(result)
}
