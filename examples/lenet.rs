//! Trains LeNet-5 on the full MNIST data set that ships in `data/mnist`, prints progress,
//! loss and test accuracy per epoch, and saves the trained weights as safetensors.
//!
//! ```text
//! cargo run --release --example lenet -- [--epochs N] [--batch-size B] [--lr LR]
//!     [--lr-decay GAMMA] [--data DIR] [--save FILE] [--seed S]
//! ```
//!
//! The learning rate is multiplied by GAMMA after every epoch (PyTorch's
//! `ExponentialLR`): Adam at a fixed rate keeps oscillating at the end, and
//! a decaying rate settles it.
//!
//! ```text
//! ```

use rand::{rngs::StdRng, SeedableRng};
use shapesafe::data::{data_dir, Batcher, Mnist};
use shapesafe::models::LeNet5;
use shapesafe::prelude::*;
use shapesafe::train::{evaluate, save_atomic, train_epoch};
use shapesafe::{Error, Result};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

/// Batch sizes the example is compiled for: the batch is a type-level `Const<B>`.
const BATCH_SIZES: [usize; 8] = [8, 16, 32, 50, 64, 100, 128, 256];

struct Args {
    epochs: usize,
    batch_size: usize,
    lr: f64,
    lr_decay: f64,
    data: PathBuf,
    save: PathBuf,
    seed: u64,
}

const USAGE: &str =
    "usage: lenet [--epochs N] [--batch-size B] [--lr LR] [--data DIR] [--save FILE] [--seed S]";

fn parse_args() -> Result<Args> {
    let mut args = Args {
        epochs: 4,
        batch_size: 64,
        lr: 1e-3,
        lr_decay: 0.5,
        data: data_dir().join("mnist"),
        save: PathBuf::from("lenet5.safetensors"),
        seed: 0,
    };
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
            "--batch-size" => {
                args.batch_size = value.parse().map_err(|_| bad("a whole number"))?;
                if !BATCH_SIZES.contains(&args.batch_size) {
                    return Err(bad(&format!("one of {BATCH_SIZES:?}")));
                }
            }
            "--lr" => args.lr = value.parse().map_err(|_| bad("a number"))?,
            "--lr-decay" => args.lr_decay = value.parse().map_err(|_| bad("a number"))?,
            "--data" => args.data = PathBuf::from(value),
            "--save" => args.save = PathBuf::from(value),
            "--seed" => args.seed = value.parse().map_err(|_| bad("a whole number"))?,
            _ => return Err(Error::Usage(format!("unknown flag {flag}\n{USAGE}"))),
        }
    }
    Ok(args)
}

fn run<const B: usize>(args: &Args, mnist: &Mnist) -> Result<()> {
    let dev = Cpu::seed_from_u64(args.seed);
    let mut rng = StdRng::seed_from_u64(args.seed);
    let mut model = dev.build_module::<LeNet5, f32>();
    let mut opt = Adam::new(
        &model,
        AdamConfig {
            lr: args.lr,
            ..Default::default()
        },
    );
    println!("{}", Summary::of::<LeNet5, Rank3<1, 28, 28>>());
    println!(
        "\ntraining on {} images, testing on {}, batch {B}, Adam lr {} x {} per epoch, {} epochs\n",
        mnist.train.len(),
        mnist.test.len(),
        args.lr,
        args.lr_decay,
        args.epochs
    );
    let start = Instant::now();
    for epoch in 1..=args.epochs {
        opt.cfg.lr = args.lr * args.lr_decay.powi(epoch as i32 - 1);
        let batcher = Batcher::shuffled(&mnist.train, &mut rng);
        let epoch_start = Instant::now();
        let stats = train_epoch::<B, _, _, _>(
            &mut model,
            &mut opt,
            &batcher,
            &dev,
            |step, steps, loss| {
                if step % 20 == 0 || step == steps {
                    let rate = (step * B) as f64 / epoch_start.elapsed().as_secs_f64();
                    print!(
                        "\repoch {epoch}/{} [{:>5}/{}] loss {loss:.4}  {rate:>6.0} img/s",
                        args.epochs,
                        step * B,
                        steps * B
                    );
                    let _ = std::io::stdout().flush();
                }
            },
        )?;
        let test = evaluate::<B, _, _>(&model, &mnist.test, &dev)?;
        println!(
            "\repoch {epoch}/{} (lr {:.2e}): train loss {:.4}, test loss {:.4}, test accuracy {:.2}%  ({:.1} s, {:.0} img/s)",
            args.epochs,
            opt.cfg.lr,
            stats.loss,
            test.loss,
            100.0 * test.accuracy,
            stats.seconds,
            stats.images as f64 / stats.seconds
        );
    }
    save_atomic(&model, &args.save)?;
    println!(
        "\ndone in {:.1} s; weights saved to {}",
        start.elapsed().as_secs_f64(),
        args.save.display()
    );
    Ok(())
}

fn main() {
    let result = parse_args().and_then(|args| {
        let mnist = Mnist::load(&args.data)?;
        match args.batch_size {
            8 => run::<8>(&args, &mnist),
            16 => run::<16>(&args, &mnist),
            32 => run::<32>(&args, &mnist),
            50 => run::<50>(&args, &mnist),
            64 => run::<64>(&args, &mnist),
            100 => run::<100>(&args, &mnist),
            128 => run::<128>(&args, &mnist),
            _ => run::<256>(&args, &mnist),
        }
    });
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
