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

mod cli;

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

/// Trains a convolutional autoencoder (or, with --vae, a variational one) on MNIST and draws
/// its reconstructions (and the VAE's samples).
#[derive(clap::Parser)]
#[command(name = "autoencoder")]
struct Args {
    /// Train the variational autoencoder instead of the plain one.
    #[arg(long)]
    vae: bool,
    /// Epochs to train.
    #[arg(long, default_value_t = 3, value_parser = cli::count)]
    epochs: usize,
    /// How many of MNIST's 60,000 training images to use.
    #[arg(long, default_value_t = 60_000, value_parser = cli::count)]
    train_images: usize,
    /// Images per batch.
    #[arg(long, default_value_t = 64, value_parser = cli::count)]
    batch_size: usize,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 2e-3, value_parser = cli::positive, allow_negative_numbers = true)]
    lr: f64,
    /// The VAE's weight on the KL term (beta-VAE; 1 is the plain VAE).
    #[arg(long, default_value_t = 1.0, value_parser = cli::non_negative, allow_negative_numbers = true)]
    beta: f64,
    /// The MNIST folder.
    #[arg(long, default_value_os_t = data_dir().join("mnist"))]
    data: PathBuf,
    /// Where pictures, curves and checkpoints go.
    #[arg(long, default_value = "runs/autoencoder")]
    out: PathBuf,
    /// Seed of the weights, the shuffling and the sampling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// cpu, cuda, cuda:N, or auto (the GPU when this build has CUDA and one answers).
    #[arg(long, value_parser = cli::device, default_value = "auto")]
    device: DeviceKind,
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
    if let Err(e) = on_device(<Args as clap::Parser>::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
