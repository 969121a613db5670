//! Trains a 784-256-10 multilayer perceptron on full MNIST with the training toolkit
//! and prints its test accuracy (at least 97.5%), a confusion matrix and the curves' path.
//!
//! ```text
//! cargo run --release --example mlp -- [--epochs N] [--batch-size B] [--lr LR] [--out DIR] [--seed S]
//!     [--device cpu|cuda|cuda:N]
//! ```

mod cli;

use shapesafe::data::{data_dir, random_split, DataLoader, Mnist, Normalize};
use shapesafe::device::DeviceKind;
use shapesafe::optim::Adam;
use shapesafe::prelude::*;
use shapesafe::train::{Classification, EarlyStopping, LrSchedule, Monitor, TrainConfig, Trainer};
use shapesafe::{Error, Result};
use std::path::PathBuf;

/// Flatten the 28x28 digit, one hidden layer of 256 ReLUs, 10 logits.
type Mlp = (Flatten, Linear<784, 256>, ReLU, Linear<256, 10>);
shapesafe::assert_shapes!(Mlp: Rank3<1, 28, 28> => Rank1<10>, params = 203_530);

/// Trains a 784-256-10 MLP on MNIST and reports its test accuracy.
#[derive(clap::Parser)]
#[command(name = "mlp")]
struct Args {
    /// Epochs to train (early stopping may end sooner).
    #[arg(long, default_value_t = 5, value_parser = cli::count)]
    epochs: usize,
    /// Images per batch.
    #[arg(long = "batch-size", default_value_t = 64, value_parser = cli::count)]
    batch: usize,
    /// Adam's learning rate at the start (x 0.6 per epoch).
    #[arg(long, default_value_t = 1e-3, value_parser = cli::positive, allow_negative_numbers = true)]
    lr: f64,
    /// Where metrics, curves and checkpoints go.
    #[arg(long, default_value = "runs/mlp")]
    out: PathBuf,
    /// Seed of the weights, the shuffling and the split.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// cpu, cuda, cuda:N, or auto (the GPU when this build has CUDA and one answers).
    #[arg(long, value_parser = cli::device, default_value = "auto")]
    device: DeviceKind,
}

fn main() {
    let on_device = |a: Args| shapesafe::with_device!(a.device, a.seed, |dev| run(a, dev));
    if let Err(e) = on_device(<Args as clap::Parser>::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run<D: KernelDevice<f32>>(args: Args, dev: D) -> Result<()> {
    let Args {
        epochs,
        batch,
        lr,
        out,
        seed,
        device,
    } = args;
    println!("device {device}");
    let mnist = Mnist::load(data_dir().join("mnist"))?;
    let split = random_split(&mnist.train, &[55_000, 5_000], seed)?;
    let model = Mlp::try_build_on_device(&dev).map_err(|e| Error::Device(format!("{e:?}")))?;
    let optimizer = Adam::new(
        &model,
        AdamConfig {
            lr,
            ..Default::default()
        },
    );
    let config = TrainConfig {
        epochs,
        schedule: LrSchedule::Exponential { gamma: 0.6 },
        early_stopping: Some(EarlyStopping::new(Monitor::ValidLoss, 2)),
        out_dir: Some(out.clone()),
        seed,
        ..Default::default()
    };
    let mut trainer = Trainer::new(model, optimizer, dev)
        .with_objective(Classification::top(3))
        .with_config(config)
        .with_summary(Summary::of::<Mlp, Rank3<1, 28, 28>>());
    let train = DataLoader::new(&split[0], batch)?
        .shuffle(seed)
        .transform(Normalize::mnist());
    let valid = DataLoader::new(&split[1], 1000)?.transform(Normalize::mnist());
    let test = DataLoader::new(&mnist.test, 1000)?.transform(Normalize::mnist());
    trainer.fit(&train, &valid)?;
    let report = trainer.evaluate(&test)?;
    println!(
        "\ntest: loss {:.4}, accuracy {:.2}%, top-3 {:.2}%, macro F1 {:.4}\n{}\n\ncurves: {}",
        report.loss,
        100.0 * report.accuracy,
        100.0 * report.top_k_accuracy,
        report.confusion.macro_f1(),
        report.confusion,
        out.join("curves.svg").display()
    );
    Ok(())
}
