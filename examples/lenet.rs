//! Trains LeNet-5 on the full MNIST set in `data/mnist` with the training toolkit:
//! progress bars, per-epoch validation, early stopping, a learning-rate schedule,
//! checkpoints you can `--resume`, metrics CSV and loss/accuracy curves, and a
//! final test report with a confusion matrix.
//!
//! ```text
//! cargo run --release --example lenet -- [--epochs N] [--batch-size B] [--lr LR]
//!     [--lr-decay GAMMA] [--patience P] [--data DIR] [--out DIR] [--resume FILE] [--seed S]
//!     [--device cpu|cuda|cuda:N]
//! ```

use shapesafe::data::{data_dir, random_split, DataLoader, Dataset, Mnist, Normalize};
use shapesafe::device::DeviceKind;
use shapesafe::models::LeNet5;
use shapesafe::optim::Adam;
use shapesafe::prelude::*;
use shapesafe::train::{save_atomic, EarlyStopping, LrSchedule, Monitor, TrainConfig, Trainer};
use shapesafe::{Error, Result};
use std::path::PathBuf;

struct Args {
    epochs: usize,
    batch_size: usize,
    lr: f64,
    lr_decay: f64,
    patience: usize,
    data: PathBuf,
    out: PathBuf,
    resume: Option<PathBuf>,
    seed: u64,
    device: DeviceKind,
}

const USAGE: &str = "usage: lenet [--epochs N] [--batch-size B] [--lr LR] [--lr-decay GAMMA] \
[--patience P] [--data DIR] [--out DIR] [--resume FILE] [--seed S] [--device cpu|cuda|cuda:N]";

fn parse_args() -> Result<Args> {
    let mut args = Args {
        epochs: 4,
        batch_size: 64,
        lr: 1e-3,
        lr_decay: 0.5,
        patience: 2,
        data: data_dir().join("mnist"),
        out: PathBuf::from("runs/lenet"),
        resume: None,
        seed: 0,
        device: DeviceKind::Cpu,
    };
    let mut device = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = it
            .next()
            .ok_or_else(|| Error::Usage(format!("{flag} needs a value\n{USAGE}")))?;
        let bad = |what: &str| Error::Usage(format!("{flag} expects {what}, got {value:?}"));
        match flag.as_str() {
            "--epochs" => args.epochs = value.parse().map_err(|_| bad("a whole number"))?,
            "--batch-size" => args.batch_size = value.parse().map_err(|_| bad("a whole number"))?,
            "--lr" => args.lr = value.parse().map_err(|_| bad("a number"))?,
            "--lr-decay" => args.lr_decay = value.parse().map_err(|_| bad("a number"))?,
            "--patience" => args.patience = value.parse().map_err(|_| bad("a whole number"))?,
            "--data" => args.data = PathBuf::from(value),
            "--out" => args.out = PathBuf::from(value),
            "--resume" => args.resume = Some(PathBuf::from(value)),
            "--seed" => args.seed = value.parse().map_err(|_| bad("a whole number"))?,
            "--device" => device = Some(value.parse()?),
            _ => return Err(Error::Usage(format!("unknown flag {flag}\n{USAGE}"))),
        }
    }
    // The GPU when this build has CUDA and one answers; probing takes a moment.
    args.device = device.unwrap_or_else(DeviceKind::best_available);
    Ok(args)
}

fn run<D: KernelDevice<f32>>(args: Args, dev: D) -> Result<()> {
    let mnist = Mnist::load(&args.data)?;
    // 55,000 to train on, 5,000 to validate (early stopping watches them); the test set is
    // only used once, at the end.
    let valid_len = mnist.train.len() / 12;
    let split = random_split(
        &mnist.train,
        &[mnist.train.len() - valid_len, valid_len],
        args.seed,
    )?;
    let (train, valid) = (&split[0], &split[1]);
    let model = LeNet5::try_build_on_device(&dev).map_err(|e| Error::Device(format!("{e:?}")))?;
    let optimizer = Adam::new(
        &model,
        AdamConfig {
            lr: args.lr,
            ..Default::default()
        },
    );
    let config = TrainConfig {
        epochs: args.epochs,
        schedule: LrSchedule::Exponential {
            gamma: args.lr_decay,
        },
        early_stopping: Some(EarlyStopping::new(Monitor::ValidLoss, args.patience)),
        top_k: 3,
        out_dir: Some(args.out.clone()),
        seed: args.seed,
        ..Default::default()
    };
    let mut trainer = Trainer::new(model, optimizer, dev)
        .with_config(config)
        .with_summary(Summary::of::<LeNet5, Rank3<1, 28, 28>>());
    if let Some(path) = &args.resume {
        trainer.resume(path)?;
        println!(
            "resumed from {} after epoch {}",
            path.display(),
            trainer.history().records.len()
        );
    }
    let train = DataLoader::new(train, args.batch_size)?
        .shuffle(args.seed)
        .drop_last(true)
        .transform(Normalize::mnist());
    let valid = DataLoader::new(valid, 500)?.transform(Normalize::mnist());
    let test = DataLoader::new(&mnist.test, 500)?.transform(Normalize::mnist());
    println!(
        "device {}: training on {} images, validating on {}, batch {}, Adam lr {} x {} per epoch\n",
        args.device,
        train.dataset().len(),
        valid.dataset().len(),
        args.batch_size,
        args.lr,
        args.lr_decay
    );
    trainer.fit(&train, &valid)?;

    let report = trainer.evaluate(&test)?;
    println!(
        "\ntest: loss {:.4}, accuracy {:.2}%, top-3 {:.2}%\n{}",
        report.loss,
        100.0 * report.accuracy,
        100.0 * report.top_k_accuracy,
        report.confusion
    );
    let weights = args.out.join("lenet5.safetensors");
    save_atomic(&trainer.model, &weights)?;
    println!(
        "\nweights: {}\ncheckpoint (for --resume): {}\nmetrics: {}\ncurves: {}",
        weights.display(),
        args.out.join("checkpoint.safetensors").display(),
        args.out.join("metrics.csv").display(),
        args.out.join("curves.svg").display()
    );
    Ok(())
}

fn main() {
    let on_device =
        |args: Args| shapesafe::with_device!(args.device, args.seed, |dev| run(args, dev));
    if let Err(e) = parse_args().and_then(on_device) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
