//! What the MNIST examples share: command-line flags and a train-validate-test run on MNIST.

use shapesafe::data::{data_dir, random_split, DataLoader, Dataset, Mnist, Normalize};
use shapesafe::device::DeviceKind;
use shapesafe::optim::Adam;
use shapesafe::prelude::*;
use shapesafe::train::{
    save_atomic, Classification, EarlyStopping, LrSchedule, Monitor, TrainConfig, Trainer,
};
use shapesafe::{Error, Result};
use std::path::PathBuf;

/// The flags every MNIST example takes.
pub struct Args {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub lr_decay: f64,
    pub data: PathBuf,
    pub out: PathBuf,
    pub seed: u64,
    /// Epochs without a better validation loss before early stopping.
    pub patience: usize,
    /// A checkpoint to continue from (`<out>/checkpoint.safetensors` of an earlier run).
    pub resume: Option<PathBuf>,
    /// Rescale gradients whose global L2 norm exceeds this (recurrent models want it).
    pub clip_grad_norm: Option<f64>,
    /// Where to train: `--device cpu|cuda|cuda:N`, else the GPU when there is one.
    pub device: DeviceKind,
}

/// Parses `--epochs --batch-size --lr --lr-decay --patience --data --out --resume --seed
/// --device`, starting from `defaults`.
pub fn parse_args(name: &str, defaults: Args) -> Result<Args> {
    let usage = format!(
        "usage: {name} [--epochs N] [--batch-size B] [--lr LR] [--lr-decay GAMMA] [--patience P] \
         [--data DIR] [--out DIR] [--resume FILE] [--seed S] [--device cpu|cuda|cuda:N]"
    );
    let mut args = defaults;
    let mut device = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            println!("{usage}");
            std::process::exit(0);
        }
        let value = it
            .next()
            .ok_or_else(|| Error::Usage(format!("{flag} needs a value\n{usage}")))?;
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
            _ => return Err(Error::Usage(format!("unknown flag {flag}\n{usage}"))),
        }
    }
    // Probing for a GPU takes a moment, so only when no device was named.
    args.device = device.unwrap_or_else(DeviceKind::best_available);
    Ok(args)
}

/// Defaults: MNIST from `data/mnist`, Adam with the rate halved each epoch, batch 64, early
/// stopping after 2 epochs without progress, outputs under `runs/<name>`.
pub fn defaults(name: &str, epochs: usize, lr: f64) -> Args {
    Args {
        epochs,
        batch_size: 64,
        lr,
        lr_decay: 0.5,
        data: data_dir().join("mnist"),
        out: PathBuf::from("runs").join(name),
        seed: 0,
        patience: 2,
        resume: None,
        clip_grad_norm: None,
        device: DeviceKind::Cpu,
    }
}

/// Trains `M` on 55,000 MNIST digits (5,000 held out to validate, batch norm and dropout in
/// training mode), then reports test loss, accuracy and the confusion matrix and saves the
/// weights to `<out>/<name>.safetensors`. `dev` is the device `args.device` names (see
/// `shapesafe::with_device!`). With `args.resume`, training continues from that checkpoint.
pub fn train_on_mnist<M, D>(name: &str, args: Args, dev: D) -> Result<f64>
where
    D: Device<f32>,
    M: BuildOnDevice<D, f32> + ShapeInfer<Rank3<1, 28, 28>>,
    M::Built: Clone
        + TensorCollection<f32, D>
        + Module<
            Tensor<(usize, Const<1>, Const<28>, Const<28>), f32, D>,
            Output = Tensor<(usize, Const<10>), f32, D>,
            Error = D::Err,
        > + ModuleMut<
            Tensor<(usize, Const<1>, Const<28>, Const<28>), f32, D, OwnedTape<f32, D>>,
            Output = Tensor<(usize, Const<10>), f32, D, OwnedTape<f32, D>>,
            Error = D::Err,
        >,
{
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
    let model = M::try_build_on_device(&dev).map_err(|e| Error::Device(format!("{e:?}")))?;
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
        out_dir: Some(args.out.clone()),
        seed: args.seed,
        clip_grad_norm: args.clip_grad_norm,
        ..Default::default()
    };
    let mut trainer = Trainer::new(model, optimizer, dev)
        .with_objective(Classification::top(3))
        .with_config(config)
        .with_summary(Summary::of::<M, Rank3<1, 28, 28>>());
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
    let weights = args.out.join(format!("{name}.safetensors"));
    save_atomic(&trainer.model, &weights)?;
    println!(
        "\nweights: {}\ncheckpoint (for --resume): {}\nmetrics: {}\ncurves: {}",
        weights.display(),
        args.out.join("checkpoint.safetensors").display(),
        args.out.join("metrics.csv").display(),
        args.out.join("curves.svg").display()
    );
    Ok(report.accuracy)
}
