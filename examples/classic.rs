//! Trains a perceptron, a linear SVM and logistic regression to tell two MNIST digits apart (3 vs 8 by default) and prints each one's test accuracy.
//!
//! ```text
//! cargo run --release --example classic -- [--digits A B] [--epochs N] [--data DIR] [--seed S]
//!     [--device cpu|cuda|cuda:N]
//! ```
//!
//! All three are the same type, one affine score over the 784 pixels; they differ
//! only in their loss (perceptron criterion, hinge + L2, binary cross-entropy) and
//! decision rule. Each trains with a plain loop over shuffled mini-batches.

mod cli;

use rand::{rngs::StdRng, seq::SliceRandom, SeedableRng};
use shapesafe::data::{data_dir, normalize_pixel, Mnist, MnistSplit, MNIST_PIXELS};
use shapesafe::device::DeviceKind;
use shapesafe::models::classic::{
    predict_binary, predict_sign, svm_objective, LinearSvm, LogisticRegression, Perceptron,
};
use shapesafe::nn::init::{init_weights, Init};
use shapesafe::nn::loss::{binary_cross_entropy_with_logits, perceptron_loss};
use shapesafe::prelude::*;
use shapesafe::{Error, Result};
use std::path::PathBuf;
use std::time::Instant;

const BATCH: usize = 64;

shapesafe::assert_shapes!(Perceptron<784>: Rank1<784> => Rank1<1>, params = 785);

/// A batch of flattened, normalised images and their `{-1, +1}` labels.
type Features<B, D> = Tensor<(B, Const<MNIST_PIXELS>), f32, D>;
type Scores<B, D> = Tensor<(B, Const<1>), f32, D>;

/// A perceptron, a linear SVM and logistic regression telling two MNIST digits apart.
#[derive(clap::Parser)]
#[command(name = "classic")]
struct Args {
    /// The two digits to tell apart (the first is the negative class).
    #[arg(long = "digits", num_args = 2, value_names = ["A", "B"], default_values_t = [3, 8],
          value_parser = clap::value_parser!(u8).range(0..10))]
    digit_pair: Vec<u8>,
    /// Epochs to train each model.
    #[arg(long, default_value_t = 5, value_parser = cli::count)]
    epochs: usize,
    /// The MNIST folder.
    #[arg(long, default_value_os_t = data_dir().join("mnist"))]
    data: PathBuf,
    /// Seed of the weights and the shuffling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// cpu, cuda, cuda:N, or auto (the GPU when this build has CUDA and one answers).
    #[arg(long, value_parser = cli::device, default_value = "auto")]
    device: DeviceKind,
    /// `digit_pair` as a pair, checked to differ.
    #[arg(skip)]
    digits: (u8, u8),
}

/// The command line, with the two digits checked to differ (clap's error and status 2).
fn parse_args() -> Args {
    use clap::{CommandFactory, Parser};
    let mut args = Args::parse();
    args.digits = (args.digit_pair[0], args.digit_pair[1]);
    if args.digits.0 == args.digits.1 {
        Args::command()
            .error(
                clap::error::ErrorKind::ValueValidation,
                "the two --digits must differ",
            )
            .exit();
    }
    args
}

/// The images of the two digits, normalised, with label -1 for the first and +1 for the second.
struct Binary {
    pixels: Vec<f32>,
    labels: Vec<f32>,
}

impl Binary {
    fn select(split: &MnistSplit, (neg, pos): (u8, u8)) -> Binary {
        let mut pixels = Vec::new();
        let mut labels = Vec::new();
        for (i, &label) in split.labels.iter().enumerate() {
            if label == neg || label == pos {
                pixels.extend(split.image(i).iter().map(|&p| normalize_pixel(p)));
                labels.push(if label == pos { 1.0 } else { -1.0 });
            }
        }
        Binary { pixels, labels }
    }

    fn len(&self) -> usize {
        self.labels.len()
    }

    /// Full batches of `BATCH` in a fresh random order; the few left over sit out this epoch.
    fn batches<D: Device<f32>>(
        &self,
        dev: &D,
        rng: &mut StdRng,
    ) -> Vec<(Features<Const<BATCH>, D>, Scores<Const<BATCH>, D>)> {
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.shuffle(rng);
        order
            .chunks_exact(BATCH)
            .map(|rows| {
                let x = rows
                    .iter()
                    .flat_map(|&r| &self.pixels[r * MNIST_PIXELS..(r + 1) * MNIST_PIXELS])
                    .copied()
                    .collect();
                let y = rows.iter().map(|&r| self.labels[r]).collect();
                (
                    dev.tensor_from_vec(x, (Const, Const)),
                    dev.tensor_from_vec(y, (Const, Const)),
                )
            })
            .collect()
    }

    /// The whole split as one runtime-sized batch.
    fn all<D: Device<f32>>(&self, dev: &D) -> Features<usize, D> {
        dev.tensor_from_vec(self.pixels.clone(), (self.len(), Const))
    }
}

fn accuracy<T: PartialEq>(predicted: &[T], truth: &[T]) -> f64 {
    let right = predicted.iter().zip(truth).filter(|(p, t)| p == t).count();
    100.0 * right as f64 / truth.len().max(1) as f64
}

fn device_error(e: impl std::fmt::Debug) -> Error {
    Error::Device(format!("{e:?}"))
}

fn main() -> Result<()> {
    let args = parse_args();
    shapesafe::with_device!(args.device, args.seed, |dev| run(args, dev))
}

fn run<D: Device<f32>>(args: Args, dev: D) -> Result<()> {
    let (neg, pos) = args.digits;
    let start = Instant::now();
    let mnist = Mnist::load(&args.data)?;
    let train = Binary::select(&mnist.train, args.digits);
    let test = Binary::select(&mnist.test, args.digits);
    println!(
        "MNIST {neg} (label -1) vs {pos} (label +1): {} training and {} test images, {} epochs of \
         batch {BATCH}, device {}",
        train.len(),
        test.len(),
        args.epochs,
        args.device
    );
    println!("{}\n", Summary::of::<Perceptron<784>, Rank1<784>>());

    let x_test = test.all(&dev);
    let truth_pm1: Vec<i8> = test.labels.iter().map(|&y| y as i8).collect();
    let truth_01: Vec<u8> = test.labels.iter().map(|&y| u8::from(y > 0.0)).collect();
    let mut rng = StdRng::seed_from_u64(args.seed);

    // Perceptron: plain SGD on the perceptron criterion; only mistakes move it.
    let t = Instant::now();
    let mut perceptron = Perceptron::<784>::try_build_on_device(&dev).map_err(device_error)?;
    init_weights(&mut perceptron, Init::LeCunUniform, args.seed)?;
    let mut sgd = Sgd::new(
        &perceptron,
        SgdConfig {
            lr: 0.1,
            ..Default::default()
        },
    );
    let mut grads = perceptron.alloc_grads();
    for _ in 0..args.epochs {
        for (x, y) in train.batches(&dev, &mut rng) {
            let loss = perceptron_loss(perceptron.forward(x.traced(grads)), y);
            grads = loss.backward();
            sgd.update(&mut perceptron, &grads).map_err(device_error)?;
            perceptron.zero_grads(&mut grads);
        }
    }
    let perceptron_acc = accuracy(&predict_sign(&perceptron, x_test.clone()), &truth_pm1);
    println!(
        "perceptron           test accuracy {perceptron_acc:6.2}%   ({:.1}s)",
        t.elapsed().as_secs_f64()
    );

    // Linear SVM: SGD on the hinge loss plus an L2 penalty on the weights.
    let t = Instant::now();
    let mut svm = LinearSvm::<784>::try_build_on_device(&dev).map_err(device_error)?;
    init_weights(&mut svm, Init::LeCunUniform, args.seed)?;
    let mut sgd = Sgd::new(
        &svm,
        SgdConfig {
            lr: 0.01,
            ..Default::default()
        },
    );
    let mut grads = svm.alloc_grads();
    for _ in 0..args.epochs {
        for (x, y) in train.batches(&dev, &mut rng) {
            let scores = svm.forward(x.traced(grads));
            grads = svm_objective(&svm, scores, y, 1e-3).backward();
            sgd.update(&mut svm, &grads).map_err(device_error)?;
            svm.zero_grads(&mut grads);
        }
    }
    let svm_acc = accuracy(&predict_sign(&svm, x_test.clone()), &truth_pm1);
    println!(
        "linear SVM           test accuracy {svm_acc:6.2}%   ({:.1}s)",
        t.elapsed().as_secs_f64()
    );

    // Logistic regression: Adam on binary cross-entropy, with the labels as {0, 1}.
    let t = Instant::now();
    let mut logistic =
        LogisticRegression::<784>::try_build_on_device(&dev).map_err(device_error)?;
    init_weights(&mut logistic, Init::LeCunUniform, args.seed)?;
    let mut adam = Adam::new(
        &logistic,
        AdamConfig {
            lr: 1e-3,
            ..Default::default()
        },
    );
    let mut grads = logistic.alloc_grads();
    for _ in 0..args.epochs {
        for (x, y) in train.batches(&dev, &mut rng) {
            let targets = (y + 1.0) * 0.5;
            let logits = logistic.forward(x.traced(grads));
            grads = binary_cross_entropy_with_logits(logits, targets).backward();
            adam.update(&mut logistic, &grads).map_err(device_error)?;
            logistic.zero_grads(&mut grads);
        }
    }
    let logistic_acc = accuracy(&predict_binary(&logistic, x_test), &truth_01);
    println!(
        "logistic regression  test accuracy {logistic_acc:6.2}%   ({:.1}s)",
        t.elapsed().as_secs_f64()
    );
    println!("\ntotal {:.1}s", start.elapsed().as_secs_f64());
    Ok(())
}
