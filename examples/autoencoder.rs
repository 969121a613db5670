//! Trains a convolutional autoencoder on MNIST (or, with `--vae`, a variational
//! autoencoder), prints the loss per epoch and the test reconstruction error, and draws
//! test digits over their reconstructions (and, for the VAE, digits decoded from
//! `z ~ N(0, I)`) to `runs/autoencoder/reconstructions.png` and `.svg`
//! (`vae-reconstructions.*` with `--vae`).
//!
//! ```text
//! cargo run --release --example autoencoder -- [--vae] [--epochs N] [--train-images N]
//!     [--batch-size B] [--lr LR] [--beta BETA] [--data DIR] [--out DIR] [--seed S]
//!     [--device cpu|cuda|cuda:N]
//! ```

use indicatif::{ProgressBar, ProgressStyle};
use shapesafe::data::{data_dir, DataLoader, Dataset, Mnist, MnistSplit, Subset};
use shapesafe::device::DeviceKind;
use shapesafe::models::{kl_divergence, reconstruction_loss, vae_loss, ConvAutoencoder, ConvVae};
use shapesafe::optim::Adam;
use shapesafe::prelude::*;
use shapesafe::train::ImageGrid;
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

/// The value of a one-number tensor (a loss), read back from the device.
fn scalar<D: Device<f32>, T>(t: &Tensor<(), f32, D, T>) -> f32 {
    t.as_vec()[0]
}

/// Runs `args.epochs` epochs of `step` (one optimiser step on a batch, returning its
/// loss) over the first `args.train_images` training digits, with a progress bar, and
/// prints the mean loss of each epoch.
fn fit<S: Dataset<Shape = Rank3<1, 28, 28>> + ?Sized, D: Device<f32>>(
    args: &Args,
    train: &S,
    dev: &D,
    mut step: impl FnMut(Images<D>) -> Result<f32>,
) -> Result<()> {
    // Pixels stay in [0, 1] (no normalisation): the decoder's sigmoid predicts them.
    let loader = DataLoader::new(train, args.batch_size)?
        .shuffle(args.seed)
        .drop_last(true);
    for epoch in 0..args.epochs {
        let started = Instant::now();
        let bar = ProgressBar::new(loader.len() as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} batches  {msg}  {per_sec}  eta {eta}",
            )
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_prefix(format!("epoch {}/{}", epoch + 1, args.epochs));
        let (mut loss_sum, mut batches) = (0.0f64, 0usize);
        for batch in loader.epoch(epoch as u64, dev) {
            let loss = step(batch?.inputs)?;
            if !loss.is_finite() {
                return Err(Error::Usage(format!(
                    "the loss became {loss} in epoch {}; try a smaller --lr",
                    epoch + 1
                )));
            }
            loss_sum += loss as f64;
            batches += 1;
            bar.inc(1);
            if batches % 10 == 0 {
                bar.set_message(format!("loss {:.2}", loss_sum / batches as f64));
            }
        }
        bar.finish_and_clear();
        println!(
            "epoch {}/{}: train loss {:.3} per image ({:.1}s)",
            epoch + 1,
            args.epochs,
            loss_sum / batches.max(1) as f64,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Reconstruction error on the whole test set: binary cross-entropy summed per image
/// and mean squared error per pixel, both averaged over the images, plus the mean KL
/// divergence that `reconstruct` reports (the VAE's).
fn test_error<D: Device<f32>>(
    test: &MnistSplit,
    dev: &D,
    mut reconstruct: impl FnMut(Images<D>) -> (Images<D>, Option<f32>),
) -> Result<(f64, f64, Option<f64>)> {
    let loader = DataLoader::new(test, 500)?;
    let (mut bce, mut squared, mut kl, mut images) = (0.0f64, 0.0f64, None, 0usize);
    for batch in loader.epoch(0, dev) {
        let x = batch?.inputs;
        let n = x.shape().0;
        let (y, batch_kl) = reconstruct(x.clone());
        squared += x
            .as_vec()
            .iter()
            .zip(y.as_vec())
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum::<f64>();
        bce += scalar(&reconstruction_loss(y, x)) as f64 * n as f64;
        if let Some(k) = batch_kl {
            *kl.get_or_insert(0.0) += k as f64 * n as f64;
        }
        images += n;
    }
    let images = images.max(1) as f64;
    Ok((
        bce / images,
        squared / (images * 784.0),
        kl.map(|k| k / images),
    ))
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

fn run<D: KernelDevice<f32>>(args: Args, dev: D) -> Result<()> {
    let mnist = Mnist::load(&args.data)?;
    let count = args.train_images.min(mnist.train.len());
    let train = Subset::new(&mnist.train, (0..count).collect())?;
    std::fs::create_dir_all(&args.out).map_err(|source| Error::Io {
        path: args.out.clone(),
        source,
    })?;
    let started = Instant::now();
    let digits = shown_digits(&mnist.test, &dev)?;
    let mut grid = ImageGrid::new(28, 28);
    grid.push_row("test digits", images_of(&digits))?;
    let name = if args.vae {
        "vae-reconstructions"
    } else {
        "reconstructions"
    };

    if args.vae {
        let mut model = ConvVae::<VAE_LATENT>::try_build_on_device(&dev).map_err(device_err)?;
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
        let mut opt = Adam::new(
            &model,
            AdamConfig {
                lr: args.lr,
                ..Default::default()
            },
        );
        let mut grads = model.alloc_grads();
        fit(&args, &train, &dev, |x| {
            let out = model.forward_mut(x.clone().traced(grads.clone()));
            let loss = vae_loss(out, x, args.beta);
            let value = scalar(&loss);
            grads = loss.backward();
            opt.update(&mut model, &grads).map_err(device_err)?;
            model.zero_grads(&mut grads);
            Ok(value)
        })?;
        let (bce, mse, kl) = test_error(&mnist.test, &dev, |x| {
            // Evaluation decodes the mean code, z = mu.
            let out = model.forward(x);
            let kl = scalar(&kl_divergence(out.mu, out.log_var));
            (out.reconstruction.realize(), Some(kl))
        })?;
        println!(
            "test: reconstruction BCE {bce:.2} per image, MSE {mse:.4} per pixel, KL {:.2} \
             per image",
            kl.unwrap_or(0.0)
        );
        let shown: Images<D> = model.forward(digits).reconstruction.realize();
        grid.push_row("reconstructions", images_of(&shown))?;
        let z: Tensor<(usize, Const<VAE_LATENT>), f32, _> = dev.sample_normal_like(&(SHOWN, Const));
        let samples: Images<D> = model.decoder.forward(z).realize();
        grid.push_row("samples z ~ N(0, I)", images_of(&samples))?;
    } else {
        let mut model =
            ConvAutoencoder::<AE_LATENT>::try_build_on_device(&dev).map_err(device_err)?;
        println!(
            "{}\n\nConvAutoencoder<{AE_LATENT}>: {} parameters; device {}: training on {count} \
             images, batch {}, Adam lr {}\n",
            Summary::of::<ConvAutoencoder<AE_LATENT>, Rank3<1, 28, 28>>(),
            model.num_trainable_params(),
            args.device,
            args.batch_size,
            args.lr
        );
        let mut opt = Adam::new(
            &model,
            AdamConfig {
                lr: args.lr,
                ..Default::default()
            },
        );
        let mut grads = model.alloc_grads();
        fit(&args, &train, &dev, |x| {
            let y = model.forward_mut(x.clone().traced(grads.clone()));
            let loss = reconstruction_loss(y, x);
            let value = scalar(&loss);
            grads = loss.backward();
            opt.update(&mut model, &grads).map_err(device_err)?;
            model.zero_grads(&mut grads);
            Ok(value)
        })?;
        let (bce, mse, _) = test_error(&mnist.test, &dev, |x| (model.forward(x).realize(), None))?;
        println!("test: reconstruction BCE {bce:.2} per image, MSE {mse:.4} per pixel");
        let shown: Images<D> = model.forward(digits).realize();
        grid.push_row("reconstructions", images_of(&shown))?;
    }

    let (svg, png) = (
        args.out.join(format!("{name}.svg")),
        args.out.join(format!("{name}.png")),
    );
    grid.write_svg(&svg)?;
    grid.write_png(&png)?;
    println!(
        "\npicture: {} (and {})\ntotal time {:.1}s",
        png.display(),
        svg.display(),
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
