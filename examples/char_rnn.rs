//! A character-level LSTM language model on four Shakespeare tragedies (`data/text`): it reads
//! 64 characters at a time and learns to predict each next one. Prints the training loss and the
//! held-out loss and perplexity per epoch, then samples text with temperature.
//!
//! ```text
//! cargo run --release --example char_rnn -- [--epochs N] [--batch-size B] [--lr LR]
//!     [--text FILE] [--prompt TEXT] [--length N] [--temperature T] [--seed S]
//!     [--device cpu|cuda|cuda:N]
//! ```

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shapesafe::data::{data_dir, CharText, SHAKESPEARE_FILE};
use shapesafe::device::DeviceKind;
use shapesafe::nn::loss::cross_entropy;
use shapesafe::optim::clip_grad_norm;
use shapesafe::prelude::*;
use shapesafe::{Error, Result};
use std::path::PathBuf;
use std::time::Instant;

/// One-hot width: the shipped text's 70 distinct characters (a text with more is refused
/// with both numbers; one with fewer leaves columns unused).
const VOCAB: usize = 70;
const HIDDEN: usize = 256;
/// Characters per training window (the length backpropagation runs through).
const SEQUENCE: usize = 64;

/// One-hot characters -> LSTM -> next-character logits at every step.
type CharLstm = (Lstm<VOCAB, HIDDEN>, Linear<HIDDEN, VOCAB>);
type Model<D> = <CharLstm as BuildOnDevice<D, f32>>::Built;

shapesafe::assert_shapes!(CharLstm: Rank2<SEQUENCE, VOCAB> => Rank2<SEQUENCE, VOCAB>);

struct Args {
    epochs: usize,
    batch_size: usize,
    lr: f64,
    text: PathBuf,
    prompt: String,
    length: usize,
    temperature: f64,
    seed: u64,
    device: DeviceKind,
}

const USAGE: &str = "usage: char_rnn [--epochs N] [--batch-size B] [--lr LR] [--text FILE] \
[--prompt TEXT] [--length N] [--temperature T] [--seed S] [--device cpu|cuda|cuda:N]";

fn parse_args() -> Result<Args> {
    let mut args = Args {
        epochs: 3,
        batch_size: 64,
        lr: 3e-3,
        text: data_dir().join(SHAKESPEARE_FILE),
        prompt: "Ham.\n".to_string(),
        length: 400,
        temperature: 0.7,
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
            "--text" => args.text = PathBuf::from(value),
            "--prompt" => args.prompt = value.replace("\\n", "\n"),
            "--length" => args.length = value.parse().map_err(|_| bad("a whole number"))?,
            "--temperature" => {
                args.temperature = value
                    .parse()
                    .ok()
                    .filter(|t: &f64| *t > 0.0)
                    .ok_or_else(|| bad("a number above 0"))?
            }
            "--seed" => args.seed = value.parse().map_err(|_| bad("a whole number"))?,
            "--device" => device = Some(value.parse()?),
            _ => return Err(Error::Usage(format!("unknown flag {flag}\n{USAGE}"))),
        }
    }
    // The GPU when this build has CUDA and one answers; probing takes a moment.
    args.device = device.unwrap_or_else(DeviceKind::best_available);
    Ok(args)
}

fn device_error(e: impl std::fmt::Debug) -> Error {
    Error::Device(format!("{e:?}"))
}

/// Mean next-character cross-entropy (nats) of `model` over every window of `text`.
fn evaluate<D: KernelDevice<f32>>(model: &Model<D>, text: &CharText, dev: &D) -> Result<f64> {
    let (mut total, mut count) = (0.0, 0);
    for windows in text.batches(SEQUENCE, 256, None, false)? {
        let (x, y) = text.one_hot_batch::<SEQUENCE, VOCAB, _>(&windows, dev)?;
        let loss = cross_entropy(model.forward(x), y);
        total += f64::from(loss.as_vec()[0]) * windows.len() as f64;
        count += windows.len();
    }
    Ok(total / count as f64)
}

/// Continues `prompt` by `length` characters, each drawn from the model's next-character
/// distribution sharpened by `temperature` (below 1: safer, above 1: wilder).
fn sample<D: KernelDevice<f32>>(
    model: &Model<D>,
    text: &CharText,
    prompt: &str,
    length: usize,
    temperature: f64,
    rng: &mut StdRng,
    dev: &D,
) -> Result<String> {
    let (lstm, head) = model;
    let x = text.one_hot_sequence::<VOCAB, _>(&text.encode(prompt)?, dev)?;
    // The state carries the whole history, so each later step feeds one character.
    let (out, mut state) = lstm.forward_with_state(x, None);
    let mut last = LastStep.forward(out);
    let mut generated = Vec::with_capacity(length);
    for _ in 0..length {
        let logits = head.forward(last).as_vec();
        // Only the text's own characters can be drawn; the rest of VOCAB is padding.
        let logits = &logits[..text.vocab_size()];
        let max = logits.iter().copied().fold(f32::MIN, f32::max);
        let weights: Vec<f64> = logits
            .iter()
            .map(|&l| ((f64::from(l - max)) / temperature).exp())
            .collect();
        let mut pick = rng.gen::<f64>() * weights.iter().sum::<f64>();
        let mut next = weights.len() - 1;
        for (i, w) in weights.iter().enumerate() {
            if pick < *w {
                next = i;
                break;
            }
            pick -= w;
        }
        generated.push(next);
        let x = text.one_hot_sequence::<VOCAB, _>(&[next], dev)?;
        let (out, new_state) = lstm.forward_with_state(x, Some(state));
        state = new_state;
        last = LastStep.forward(out);
    }
    text.decode(&generated)
}

fn run<D: KernelDevice<f32>>(args: Args, dev: D) -> Result<()> {
    let text = CharText::load(&args.text)?;
    let (train, valid) = text.split(0.9)?;
    println!(
        "{}: {} characters, {} distinct; training on {}, validating on {}",
        args.text.display(),
        text.len(),
        text.vocab_size(),
        train.len(),
        valid.len()
    );
    println!("{}\n", Summary::of::<CharLstm, Rank2<SEQUENCE, VOCAB>>());
    let mut model = CharLstm::try_build_on_device(&dev).map_err(device_error)?;
    let mut optimizer = Adam::new(
        &model,
        AdamConfig {
            lr: args.lr,
            ..Default::default()
        },
    );
    let mut grads = model.alloc_grads();
    println!(
        "device {}: windows of {SEQUENCE} characters, batch {}, Adam lr {}, {} epochs\n",
        args.device, args.batch_size, args.lr, args.epochs
    );
    let start = Instant::now();
    for epoch in 1..=args.epochs {
        let epoch_start = Instant::now();
        let batches = train.batches(
            SEQUENCE,
            args.batch_size,
            Some(args.seed + epoch as u64),
            true,
        )?;
        let (mut total, mut seen) = (0.0, 0);
        for (i, windows) in batches.iter().enumerate() {
            let (x, y) = train.one_hot_batch::<SEQUENCE, VOCAB, _>(windows, &dev)?;
            let logits = model.forward_mut(x.traced(grads));
            let loss = cross_entropy(logits, y);
            let value = f64::from(loss.as_vec()[0]);
            if !value.is_finite() {
                return Err(Error::NonFinite {
                    epoch,
                    step: i + 1,
                    what: "loss".to_string(),
                });
            }
            total += value;
            seen += 1;
            grads = loss.backward();
            // Gradients through 64 LSTM steps can spike; PyTorch's char-RNNs clip them too.
            clip_grad_norm(&model, &mut grads, 1.0)?;
            optimizer.update(&mut model, &grads).map_err(device_error)?;
            model.zero_grads(&mut grads);
            if (i + 1) % 50 == 0 {
                println!(
                    "  epoch {epoch} batch {:>4}/{}  loss {:.4}",
                    i + 1,
                    batches.len(),
                    total / seen as f64
                );
            }
        }
        let valid_loss = evaluate(&model, &valid, &dev)?;
        println!(
            "epoch {epoch:>2}/{}  train loss {:.4}  valid loss {:.4}  perplexity {:.2}  ({:.2} bits/char)  {:.1} s",
            args.epochs,
            total / seen as f64,
            valid_loss,
            valid_loss.exp(),
            valid_loss / std::f64::consts::LN_2,
            epoch_start.elapsed().as_secs_f64()
        );
    }
    println!("\ntrained in {:.1} s\n", start.elapsed().as_secs_f64());
    let mut rng = StdRng::seed_from_u64(args.seed);
    for temperature in [args.temperature, 1.0] {
        let generated = sample(
            &model,
            &text,
            &args.prompt,
            args.length,
            temperature,
            &mut rng,
            &dev,
        )?;
        println!(
            "--- sample at temperature {temperature} ---\n{}{generated}\n",
            args.prompt
        );
    }
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
