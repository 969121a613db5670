//! Trains a convolutional autoencoder on MNIST (or, with `--vae`, a variational
//! autoencoder) with the `Trainer`, prints the losses per epoch and the test reconstruction
//! error, and draws test digits over their reconstructions (and, for the VAE, digits decoded
//! from `z ~ N(0, I)`) to `runs/autoencoder/reconstructions.png` and `.svg`
//! (`vae-reconstructions.*` with `--vae`); curves and metrics go to `runs/autoencoder/ae/`
//! (`vae/`).
//!
//! ```text
//! cargo run --release --example autoencoder -- [--vae] [--epochs N] [--train-images N]
//!     [--batch-size B] [--lr LR] [--beta BETA] [--data DIR] [--out DIR] [--seed S]
//!     [--device cpu|cuda|cuda:N]
//! ```

use shapesafe::data::{data_dir, DataLoader, Dataset, Mnist, MnistSplit, Subset};
use shapesafe::device::DeviceKind;
use shapesafe::models::{AutoencoderObjective, ConvAutoencoder, ConvVae, VaeObjective};
use shapesafe::optim::Adam;
use shapesafe::prelude::*;
use shapesafe::train::{History, ImageGrid, TrainConfig, Trainer};
use shapesafe::{Error, Result};
use std::path::PathBuf;
use std::time::Instant;

/// The autoencoder's code size.
const AE_LATENT: usize = 32;
/// The VAE's code size: smaller, so that samples from the prior look like digits.
const VAE_LATENT: usize = 16;
/// How many test digits the picture shows.
const SHOWN: usize = 10;

type Images<D> = Tensor<(usize, Const<1>, Const<28>, Const<28>), f32, D>;

struct Args {
    vae: bool,
    epochs: usize,
    train_images: usize,
    batch_size: usize,
    lr: f64,
    beta: f64,
    data: PathBuf,
    out: PathBuf,
    seed: u64,
    device: DeviceKind,
}

const USAGE: &str = "usage: autoencoder [--vae] [--epochs N] [--train-images N] [--batch-size B] \
[--lr LR] [--beta BETA] [--data DIR] [--out DIR] [--seed S] [--device cpu|cuda|cuda:N]";

fn parse_args() -> Result<Args> {
    let mut args = Args {
        vae: false,
        epochs: 3,
        train_images: 60_000,
        batch_size: 64,
        lr: 2e-3,
        beta: 1.0,
        data: data_dir().join("mnist"),
        out: PathBuf::from("runs/autoencoder"),
        seed: 0,
        device: DeviceKind::Cpu,
    };
    let mut device = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--vae" => {
                args.vae = true;
                continue;
            }
            _ => {}
        }
        let value = it
            .next()
            .ok_or_else(|| Error::Usage(format!("{flag} needs a value\n{USAGE}")))?;
        let bad = |what: &str| Error::Usage(format!("{flag} expects {what}, got {value:?}"));
        match flag.as_str() {
            "--epochs" => args.epochs = value.parse().map_err(|_| bad("a whole number"))?,
            "--train-images" => {
                args.train_images = value.parse().map_err(|_| bad("a whole number"))?
            }
            "--batch-size" => args.batch_size = value.parse().map_err(|_| bad("a whole number"))?,
            "--lr" => args.lr = value.parse().map_err(|_| bad("a number"))?,
            "--beta" => args.beta = value.parse().map_err(|_| bad("a number"))?,
            "--data" => args.data = PathBuf::from(value),
            "--out" => args.out = PathBuf::from(value),
            "--seed" => args.seed = value.parse().map_err(|_| bad("a whole number"))?,
            "--device" => device = Some(value.parse()?),
            _ => return Err(Error::Usage(format!("unknown flag {flag}\n{USAGE}"))),
        }
    }
    // The GPU when this build has CUDA and one answers; probing takes a moment.
    args.device = device.unwrap_or_else(DeviceKind::best_available);
    Ok(args)
}

fn device_err(e: impl std::fmt::Debug) -> Error {
    Error::Device(format!("{e:?}"))
}

/// The first `SHOWN` test digits, as a batch.
fn shown_digits<D: Device<f32>>(test: &MnistSplit, dev: &D) -> Result<Images<D>> {
    let mut values = vec![0.0f32; SHOWN * 784];
    for (i, out) in values.chunks_exact_mut(784).enumerate() {
        test.get(i, out)?;
    }
    dev.try_tensor_from_vec(values, (SHOWN, Const, Const, Const))
        .map_err(device_err)
}

fn images_of<D: Device<f32>>(t: &Images<D>) -> Vec<Vec<f32>> {
    t.as_vec().chunks_exact(784).map(<[f32]>::to_vec).collect()
}

/// Prints the test figures of the last epoch (the trainer validates on the test set).
fn print_test(history: &History) {
    let Some(last) = history.records.last() else {
        return;
    };
    let metric = |name: &str| last.metric(name).unwrap_or(f64::NAN);
    match last.metric("valid_kl") {
        Some(kl) => println!(
            "test: reconstruction BCE {:.2} per image, MSE {:.4} per pixel, KL {kl:.2} per image",
            metric("valid_reconstruction"),
            metric("valid_mse")
        ),
        None => println!(
            "test: reconstruction BCE {:.2} per image, MSE {:.4} per pixel",
            last.valid_loss,
            metric("valid_mse")
        ),
    }
}

fn run<D: KernelDevice<f32>>(args: Args, dev: D) -> Result<()> {
    let mnist = Mnist::load(&args.data)?;
    let count = args.train_images.min(mnist.train.len());
    let train = Subset::new(&mnist.train, (0..count).collect())?;
    let started = Instant::now();
    let digits = shown_digits(&mnist.test, &dev)?;
    let mut grid = ImageGrid::new(28, 28);
    grid.push_row("test digits", images_of(&digits))?;
    let name = if args.vae {
        "vae-reconstructions"
    } else {
        "reconstructions"
    };
    // Pixels stay in [0, 1] (no normalisation): the decoder's sigmoid predicts them. The
    // test set is the validation set: nothing is selected on it.
    let train = DataLoader::new(&train, args.batch_size)?
        .shuffle(args.seed)
        .drop_last(true);
    let test = DataLoader::new(&mnist.test, 500)?;
    let config = TrainConfig {
        epochs: args.epochs,
        out_dir: Some(args.out.join(if args.vae { "vae" } else { "ae" })),
        seed: args.seed,
        ..Default::default()
    };
    let adam = AdamConfig {
        lr: args.lr,
        ..Default::default()
    };

    if args.vae {
        let model = ConvVae::<VAE_LATENT>::try_build_on_device(&dev).map_err(device_err)?;
        println!(
            "{}\n\nConvVae<{VAE_LATENT}>: {} parameters; device {}: training on {count} images, \
             batch {}, Adam lr {}, beta {}\n",
            Summary::of::<ConvVae<VAE_LATENT>, Rank3<1, 28, 28>>(),
            model.num_trainable_params(),
            args.device,
            args.batch_size,
            args.lr,
            args.beta
        );
        let optimizer = Adam::new(&model, adam);
        let mut trainer = Trainer::new(model, optimizer, dev.clone())
            .with_objective(VaeObjective { beta: args.beta })
            .with_config(config);
        trainer.fit(&train, &test)?;
        print_test(trainer.history());
        // Evaluation decodes the mean code, z = mu.
        let shown: Images<D> = trainer.model.forward(digits).reconstruction.realize();
        grid.push_row("reconstructions", images_of(&shown))?;
        let z: Tensor<(usize, Const<VAE_LATENT>), f32, _> = dev.sample_normal_like(&(SHOWN, Const));
        let samples: Images<D> = trainer.model.decoder.forward(z).realize();
        grid.push_row("samples z ~ N(0, I)", images_of(&samples))?;
    } else {
        let model = ConvAutoencoder::<AE_LATENT>::try_build_on_device(&dev).map_err(device_err)?;
        println!(
            "{}\n\nConvAutoencoder<{AE_LATENT}>: {} parameters; device {}: training on {count} \
             images, batch {}, Adam lr {}\n",
            Summary::of::<ConvAutoencoder<AE_LATENT>, Rank3<1, 28, 28>>(),
            model.num_trainable_params(),
            args.device,
            args.batch_size,
            args.lr
        );
        let optimizer = Adam::new(&model, adam);
        let mut trainer = Trainer::new(model, optimizer, dev.clone())
            .with_objective(AutoencoderObjective)
            .with_config(config);
        trainer.fit(&train, &test)?;
        print_test(trainer.history());
        let shown: Images<D> = trainer.model.forward(digits).realize();
        grid.push_row("reconstructions", images_of(&shown))?;
    }

    let (svg, png) = (
        args.out.join(format!("{name}.svg")),
        args.out.join(format!("{name}.png")),
    );
    grid.write_svg(&svg)?;
    grid.write_png(&png)?;
    println!(
        "\npicture: {} (and {})\ncurves and metrics: {}\ntotal time {:.1}s",
        png.display(),
        svg.display(),
        args.out
            .join(if args.vae { "vae" } else { "ae" })
            .join("curves.png")
            .display(),
        started.elapsed().as_secs_f64()
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
