//! A DCGAN on MNIST: a generator of transposed convolutions and a discriminator of strided
//! convolutions (`model.rs`, each with its shape contract) trained against each other with
//! Adam, as in Radford et al. and PyTorch's DCGAN tutorial. Both are conditioned on one of 100
//! k-means clusters of the training digits' pixels (`clusters.rs`; self-conditioned GANs, Liu
//! et al., 2020), found without labels before training: a real digit comes with its own
//! cluster, a generated one with a cluster drawn as often as in the data. Each cluster is one
//! tight family of shapes, so the generator has no reason to morph between digits. The
//! discriminator judges packs of two digits (PacGAN), which keeps the generator from dropping
//! digits, and samples come from a moving average of the generator's weights. After every
//! epoch it draws a 10x10 grid, one sample per cluster, to `runs/gan/epoch-NN.png`, and asks
//! the LeNet-5 of `--example lenet` (trained first when its weights are missing) to classify
//! 1,000 fresh samples: the share it is at least 90% sure of, and which digits those are (for
//! scale, it is that sure of 95.6% of MNIST's real test digits). Losses and scores go to
//! `runs/gan/metrics.csv` and `curves.png`; the weights to `generator.safetensors` (the
//! average), `generator-raw.safetensors` and `discriminator.safetensors`.
//!
//! ```text
//! cargo run --release --example gan -- [--epochs N] [--train-images N] [--batch-size B]
//!     [--lr LR] [--samples N] [--lenet FILE] [--data DIR] [--out DIR] [--seed S]
//!     [--device cpu|cuda|cuda:N]
//! ```

#[path = "../cli/mod.rs"]
mod cli;
mod clusters;
// The LeNet referee's training; this example has flags of its own.
#[allow(dead_code)]
#[path = "../common/mod.rs"]
mod common;
mod model;
mod score;

use dfdx::nn::ModelEMA;
use model::{discriminator, GeneratorConfig, PackedClusters, CLUSTERS, LATENT, NOISE, PACK};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use shapesafe::data::{data_dir, DataLoader, Mnist, Normalize, Subset};
use shapesafe::device::DeviceKind;
use shapesafe::nn::loss::binary_cross_entropy_with_logits as bce;
use shapesafe::optim::Adam;
use shapesafe::prelude::*;
use shapesafe::train::plot::{svg, write_png, Panel, Series};
use shapesafe::train::{progress_bar, save_atomic, ImageGrid};
use shapesafe::{Error, Result};
use std::path::PathBuf;
use std::time::Instant;

/// The classifier's probability a sample must reach to count as a clear digit.
const THRESHOLD: f32 = 0.9;
/// The weight of the running average in the generator's exponential moving average, per
/// step (a half-life of about 700 steps).
const EMA_DECAY: f64 = 0.999;
/// The grid's side: `GRID * GRID` samples from fixed codes.
const GRID: usize = 10;

/// A DCGAN on MNIST: trains, draws a grid of samples per epoch, and reports how many samples
/// the trained LeNet-5 finds clearly a digit.
#[derive(clap::Parser)]
#[command(name = "gan")]
struct Args {
    /// Epochs to train.
    #[arg(long, default_value_t = 8, value_parser = cli::count)]
    epochs: usize,
    /// How many of MNIST's 60,000 training images to use.
    #[arg(long, default_value_t = 60_000, value_parser = cli::count)]
    train_images: usize,
    /// Images per batch, a multiple of the discriminator's pack of 2.
    #[arg(long, default_value_t = 64, value_parser = packs)]
    batch_size: usize,
    /// Adam's learning rate for both networks (constant for half the run, then down to 0).
    #[arg(long, default_value_t = 2e-4, value_parser = cli::positive, allow_negative_numbers = true)]
    lr: f64,
    /// One-sided label smoothing: the discriminator's target for real digits is 1 minus this,
    /// in [0, 0.5).
    #[arg(long, default_value_t = 0.0, value_parser = smoothing, allow_negative_numbers = true)]
    label_smoothing: f32,
    /// Samples the LeNet-5 scores after every epoch.
    #[arg(long, default_value_t = 1000, value_parser = cli::count)]
    samples: usize,
    /// The referee's weights (trained first when missing, as `--example lenet` does).
    #[arg(long, default_value = "runs/lenet/lenet5.safetensors")]
    lenet: PathBuf,
    /// The MNIST folder.
    #[arg(long, default_value_os_t = data_dir().join("mnist"))]
    data: PathBuf,
    /// Where the grids, curves and weights go.
    #[arg(long, default_value = "runs/gan")]
    out: PathBuf,
    /// Seed of the weights, codes and shuffling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// cpu, cuda, cuda:N, or auto (the GPU when this build has CUDA and one answers).
    #[arg(long, value_parser = cli::device, default_value = "auto")]
    device: DeviceKind,
}

/// A batch size that splits into whole packs for the discriminator.
fn packs(s: &str) -> Result<usize, String> {
    let n = cli::count(s)?;
    if n % PACK == 0 {
        Ok(n)
    } else {
        Err(format!(
            "must be a multiple of the discriminator's pack of {PACK}, got {n}"
        ))
    }
}

/// A label-smoothing amount in [0, 0.5).
fn smoothing(s: &str) -> Result<f32, String> {
    let v = cli::fraction(s)?;
    if v < 0.5 {
        Ok(v as f32)
    } else {
        Err(format!("must be in [0, 0.5), got {v}"))
    }
}

/// One epoch's means and its LeNet score.
struct EpochStats {
    d_loss: f64,
    g_loss: f64,
    d_real: f64,
    d_fake: f64,
    confident: f64,
    raw_confident: f64,
    classes: usize,
    seconds: f64,
}

/// Generator inputs: `n` rows of standard-normal noise and a cluster one-hot, and the
/// clusters packed for the discriminator.
struct Latent<D: KernelDevice<f32>> {
    input: Tensor<(usize, Const<LATENT>), f32, D>,
    clusters: PackedClusters<D>,
}

/// The latent codes of `clusters.len()` samples, row `i` with standard-normal noise drawn
/// from `rng` and cluster `clusters[i]`.
fn latent<D: KernelDevice<f32>>(dev: &D, rng: &mut StdRng, clusters: &[usize]) -> Latent<D> {
    let mut input = Vec::with_capacity(clusters.len() * LATENT);
    for &cluster in clusters {
        input.extend((0..NOISE).map(|_| rng.sample::<f32, _>(StandardNormal)));
        input.extend((0..CLUSTERS).map(|k| if k == cluster { 1.0 } else { 0.0 }));
    }
    Latent {
        input: dev.tensor_from_vec(input, (clusters.len(), Const)),
        clusters: packed_one_hot(dev, clusters),
    }
}

/// `clusters` one-hot, `PACK` to a row; a batch that does not fill its last pack is cut.
fn packed_one_hot<D: KernelDevice<f32>>(dev: &D, clusters: &[usize]) -> PackedClusters<D> {
    let packs = clusters.len() / PACK;
    let mut one_hot = vec![0.0; packs * PACK * CLUSTERS];
    for (i, &cluster) in clusters[..packs * PACK].iter().enumerate() {
        one_hot[i * CLUSTERS + cluster] = 1.0;
    }
    dev.tensor_from_vec(one_hot, (packs, Const))
}

/// `n` latent codes from the prior: the cluster of a training digit drawn at random (so
/// clusters come as often as in the data), standard-normal noise.
fn prior<D: KernelDevice<f32>>(
    dev: &D,
    rng: &mut StdRng,
    assigned: &[usize],
    n: usize,
) -> Latent<D> {
    let clusters: Vec<usize> = (0..n)
        .map(|_| assigned[rng.gen_range(0..assigned.len())])
        .collect();
    latent(dev, rng, &clusters)
}

type Images<D> = Tensor<(usize, Const<1>, Const<28>, Const<28>), f32, D>;
/// What the discriminator reads: `(n, PACK, 28, 28)`.
type Packs<D, T> = Tensor<(usize, Const<PACK>, Const<28>, Const<28>), f32, D, T>;

/// Consecutive digits stacked as the channels of one discriminator input: `(n, 1, 28, 28)`
/// to `(n / PACK, PACK, 28, 28)`, with the tape, so gradients reach each digit.
fn pack<S: Shape<Concrete = [usize; 4]>, D: KernelDevice<f32>, T: Tape<f32, D>>(
    images: Tensor<S, f32, D, T>,
) -> Result<Packs<D, T>> {
    let packs = images.shape().concrete()[0] / PACK;
    images
        .try_reshape_like(&(packs, Const, Const, Const))
        .map_err(Error::device)
}

/// `images` in `[-1, 1]` as rows of `GRID` pictures in `[0, 1]`.
fn grid_of<D: KernelDevice<f32>>(images: &Images<D>) -> Result<ImageGrid> {
    let pixels = images.as_vec();
    let mut grid = ImageGrid::new(28, 28);
    for row in pixels.chunks(GRID * 28 * 28) {
        let row: Vec<Vec<f32>> = row
            .chunks(28 * 28)
            .map(|im| im.iter().map(|p| (p + 1.0) / 2.0).collect::<Vec<f32>>())
            .collect();
        grid.push_row("", row)?;
    }
    Ok(grid)
}

fn write_metrics(args: &Args, stats: &[EpochStats]) -> Result<()> {
    let mut csv =
        String::from("epoch,d_loss,g_loss,d_real,d_fake,lenet_confident,lenet_confident_raw,lenet_classes,seconds\n");
    for (i, s) in stats.iter().enumerate() {
        csv.push_str(&format!(
            "{},{:.5},{:.5},{:.4},{:.4},{:.4},{:.4},{},{:.1}\n",
            i + 1,
            s.d_loss,
            s.g_loss,
            s.d_real,
            s.d_fake,
            s.confident,
            s.raw_confident,
            s.classes,
            s.seconds
        ));
    }
    let path = args.out.join("metrics.csv");
    std::fs::write(&path, csv).map_err(|source| Error::Io { path, source })?;
    let points = |f: fn(&EpochStats) -> f64| -> Vec<(f64, f64)> {
        stats
            .iter()
            .enumerate()
            .map(|(i, s)| ((i + 1) as f64, f(s)))
            .collect()
    };
    let series = |label, color, f| Series {
        label,
        color,
        points: points(f),
    };
    let doc = svg(&[
        Panel {
            title: "losses",
            x_label: "epoch",
            y_label: "BCE",
            series: vec![
                series("discriminator", "#1f77b4", |s| s.d_loss),
                series("generator", "#ff7f0e", |s| s.g_loss),
            ],
        },
        Panel {
            title: "discriminator's belief",
            x_label: "epoch",
            y_label: "mean P(real)",
            series: vec![
                series("D(x)", "#1f77b4", |s| s.d_real),
                series("D(G(z))", "#ff7f0e", |s| s.d_fake),
            ],
        },
        Panel {
            title: "LeNet-5 on 1,000 samples",
            x_label: "epoch",
            y_label: "share with p >= 0.9",
            series: vec![
                series("averaged generator", "#2ca02c", |s| s.confident),
                series("raw generator", "#d62728", |s| s.raw_confident),
            ],
        },
    ]);
    write_png(&doc, args.out.join("curves.png"))?;
    Ok(())
}

fn run<D: KernelDevice<f32>>(args: Args, dev: D) -> Result<()> {
    let started = Instant::now();
    let mnist = Mnist::load(&args.data)?;
    let lenet = score::classifier(&args.lenet, &dev, args.device, args.seed)?;
    // The referee's yardstick: how many real digits it is that sure of.
    let real = mnist.test.images.len().min(args.samples * 784) / 784;
    let pixels = mnist.test.images[..real * 784]
        .iter()
        .map(|&p| p as f32 / 127.5 - 1.0)
        .collect();
    let real = score::score(
        &lenet,
        dev.tensor_from_vec(pixels, (real, Const, Const, Const)),
        THRESHOLD,
    )?;
    println!(
        "LeNet-5 is sure (p >= {THRESHOLD}) of {:.1}% of {} real test digits\n",
        100.0 * real.confident_share(),
        real.samples
    );
    let count = args.train_images.min(mnist.train.len());
    if count < CLUSTERS {
        return Err(Error::Usage(format!(
            "--train-images {count} is fewer than the {CLUSTERS} clusters to find"
        )));
    }
    let train = Subset::new(&mnist.train, (0..count).collect())?;
    let started_kmeans = Instant::now();
    let assigned = clusters::kmeans(&mnist.train.images[..count * 784], CLUSTERS, args.seed);
    println!(
        "k-means: {CLUSTERS} clusters of the {count} training digits in {:.1} s; {:.1}% of the \
         digits have their cluster's most common label (the labels are used for nothing else)\n",
        started_kmeans.elapsed().as_secs_f64(),
        100.0 * clusters::purity(&assigned, &mnist.train.labels[..count], CLUSTERS)
    );
    // Pixels to [-1, 1], the range of the generator's tanh.
    let loader = DataLoader::new(&train, args.batch_size)?
        .shuffle(args.seed)
        .drop_last(true)
        .transform(Normalize::new(vec![0.5], vec![0.5])?);
    if loader.is_empty() {
        return Err(Error::Usage(format!(
            "--batch-size {} is larger than the {count} training images",
            args.batch_size
        )));
    }
    std::fs::create_dir_all(&args.out).map_err(|source| Error::Io {
        path: args.out.clone(),
        source,
    })?;

    let mut g = GeneratorConfig::try_build_on_device(&dev).map_err(Error::device)?;
    let mut d = discriminator(&dev).map_err(Error::device)?;
    // The weights sampled from: an exponential moving average of the generator's, which
    // smooths out the oscillation of adversarial training (Yazici et al., 2019; what
    // `torch.optim.swa_utils.AveragedModel` with an EMA does). It runs its batch norm on
    // the batch's own statistics, so it needs no running averages of its own.
    let mut ema = g.clone();
    println!(
        "{}\n\ndiscriminator: features, then a linear logit plus the features' agreement with \
         the clusters' embedding\n{}\n\ndevice {}: {count} images, batch {}, Adam lr {} betas (0.5, 0.999), \
         real label {}, the discriminator judging packs of {PACK}\n",
        Summary::of::<GeneratorConfig, Rank1<LATENT>>(),
        Summary::of::<model::FeaturesConfig, Rank3<PACK, 28, 28>>(),
        args.device,
        args.batch_size,
        args.lr,
        1.0 - args.label_smoothing,
    );
    let adam = AdamConfig {
        lr: args.lr,
        betas: [0.5, 0.999],
        ..Default::default()
    };
    let mut g_opt = Adam::new(&g, adam);
    let mut d_opt = Adam::new(&d, adam);
    let mut rng = StdRng::seed_from_u64(args.seed);
    // The grid: one sample of each cluster.
    let grid_clusters: Vec<usize> = (0..GRID * GRID).map(|i| i % CLUSTERS).collect();
    let fixed = latent(&dev, &mut rng, &grid_clusters).input;
    let mut g_grads = g.try_alloc_grads().map_err(Error::device)?;
    let mut d_grads = d.try_alloc_grads().map_err(Error::device)?;
    let mut stats = Vec::new();
    // Every batch is full (`drop_last`), so the labels are made once. One-sided label
    // smoothing (Salimans et al., 2016) lowers only the discriminator's target for real
    // digits, so that it cannot grow overconfident; the generator still aims at 1.
    let packs = args.batch_size / PACK;
    let ones: Tensor<(usize, Const<1>), f32, D> = dev.ones_like(&(packs, Const));
    let real_targets = ones.clone() * (1.0 - args.label_smoothing);
    let zeros: Tensor<(usize, Const<1>), f32, D> = dev.zeros_like(&(packs, Const));

    for epoch in 0..args.epochs {
        let start = Instant::now();
        let bar = progress_bar(
            loader.len() as u64,
            format!("epoch {}/{}", epoch + 1, args.epochs),
        );
        let (mut d_sum, mut g_sum, mut real_sum, mut fake_sum, mut steps) = (0.0, 0.0, 0.0, 0.0, 0);
        for batch in loader.epoch(epoch as u64, &dev) {
            // Constant for the first half of the run, then down linearly to 0, as pix2pix
            // and CycleGAN schedule theirs: the last steps refine rather than chase.
            let progress =
                (epoch * loader.len() + steps) as f64 / (args.epochs * loader.len()) as f64;
            let lr = args.lr * (2.0 * (1.0 - progress)).min(1.0);
            d_opt.cfg.lr = lr;
            g_opt.cfg.lr = lr;
            let batch = batch?;
            let real = batch.inputs;
            let real_clusters = packed_one_hot(
                &dev,
                &batch
                    .indices
                    .iter()
                    .map(|&i| assigned[i])
                    .collect::<Vec<_>>(),
            );
            let z = prior(&dev, &mut rng, &assigned, args.batch_size);
            // One generator forward serves both steps: the discriminator's on a copy
            // without the tape, the generator's through the tape kept aside.
            let fake = g
                .try_forward_mut(z.input.traced(g_grads))
                .map_err(Error::device)?;
            let (fake, g_tape) = fake.split_tape();

            // Discriminator: real digits are 1, generated ones 0.
            let real_logits = d
                .judge(pack(real.traced(d_grads))?, real_clusters)
                .map_err(Error::device)?;
            let d_real = real_logits
                .retaped::<NoneTape>()
                .sigmoid()
                .mean::<Rank0, _>()
                .as_vec()[0];
            let (loss_real, tape) = bce(real_logits, real_targets.clone()).split_tape();
            let fake_logits = d
                .judge(pack(fake.clone().put_tape(tape))?, z.clusters.clone())
                .map_err(Error::device)?;
            let d_fake = fake_logits
                .retaped::<NoneTape>()
                .sigmoid()
                .mean::<Rank0, _>()
                .as_vec()[0];
            let d_loss = bce(fake_logits, zeros.clone()) + loss_real;
            let d_value = d_loss.as_vec()[0];
            d_grads = d_loss.backward();
            d_opt
                .update(&mut d, &d_grads)
                .map_err(|e| Error::Device(format!("optimizer: {e:?}")))?;
            d.try_zero_grads(&mut d_grads).map_err(Error::device)?;

            // Generator: the non-saturating loss, its samples called real members of their
            // clusters by the updated discriminator.
            let logits = d
                .judge(pack(fake.put_tape(g_tape))?, z.clusters)
                .map_err(Error::device)?;
            let g_loss = bce(logits, ones.clone());
            let g_value = g_loss.as_vec()[0];
            g_grads = g_loss.backward();
            g_opt
                .update(&mut g, &g_grads)
                .map_err(|e| Error::Device(format!("optimizer: {e:?}")))?;
            g.try_zero_grads(&mut g_grads).map_err(Error::device)?;
            ema.try_ema(&g, EMA_DECAY).map_err(Error::device)?;

            if !(d_value.is_finite() && g_value.is_finite()) {
                return Err(Error::NonFinite {
                    epoch: epoch + 1,
                    step: steps + 1,
                    what: "GAN loss".into(),
                });
            }
            d_sum += d_value as f64;
            g_sum += g_value as f64;
            real_sum += d_real as f64;
            fake_sum += d_fake as f64;
            steps += 1;
            bar.inc(1);
            let k = steps as f64;
            bar.set_message(format!(
                "D {:.3}  G {:.3}  D(x) {:.2}  D(G(z)) {:.2}",
                d_sum / k,
                g_sum / k,
                real_sum / k,
                fake_sum / k
            ));
        }
        bar.finish_and_clear();
        let seconds = start.elapsed().as_secs_f64();

        let shown: Images<D> = ema
            .try_forward_mut(fixed.clone())
            .map_err(Error::device)?
            .realize();
        let picture = args.out.join(format!("epoch-{:02}.png", epoch + 1));
        grid_of(&shown)?.write_png(&picture)?;
        let z = prior(&dev, &mut rng, &assigned, args.samples);
        let raw: Images<D> = g
            .try_forward(z.input.clone())
            .map_err(Error::device)?
            .realize();
        let raw = score::score(&lenet, raw, THRESHOLD)?;
        let samples: Images<D> = ema
            .try_forward_mut(z.input)
            .map_err(Error::device)?
            .realize();
        let s = score::score(&lenet, samples, THRESHOLD)?;
        let k = steps.max(1) as f64;
        println!(
            "epoch {}/{}: D loss {:.3}, G loss {:.3}, D(x) {:.2}, D(G(z)) {:.2} \
             ({seconds:.0} s); LeNet-5 sure (p >= {THRESHOLD}) of {:.1}% of {} samples (raw weights \
             {:.1}%), {} classes: {:?}; {}",
            epoch + 1,
            args.epochs,
            d_sum / k,
            g_sum / k,
            real_sum / k,
            fake_sum / k,
            100.0 * s.confident_share(),
            s.samples,
            100.0 * raw.confident_share(),
            s.classes_present(),
            s.per_class,
            picture.display()
        );
        stats.push(EpochStats {
            d_loss: d_sum / k,
            g_loss: g_sum / k,
            d_real: real_sum / k,
            d_fake: fake_sum / k,
            confident: s.confident_share(),
            raw_confident: raw.confident_share(),
            classes: s.classes_present(),
            seconds,
        });
        write_metrics(&args, &stats)?;
    }

    save_atomic(&ema, args.out.join("generator.safetensors"))?;
    save_atomic(&g, args.out.join("generator-raw.safetensors"))?;
    save_atomic(&d, args.out.join("discriminator.safetensors"))?;
    println!(
        "\nsamples: {}\ncurves and metrics: {} and metrics.csv\nweights: generator.safetensors \
         (averaged), generator-raw.safetensors, discriminator.safetensors\ntotal time {:.1} s",
        args.out
            .join(format!("epoch-{:02}.png", args.epochs))
            .display(),
        args.out.join("curves.png").display(),
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
