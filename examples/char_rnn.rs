//! A character-level LSTM language model on four Shakespeare tragedies (`data/text`): it reads
//! 64 characters at a time and learns to predict each next one, trained by the `Trainer` with
//! the `LanguageModeling` objective. Prints the training and held-out loss per epoch (curves in
//! `runs/char_rnn`), the held-out perplexity, then samples text with temperature.
//!
//! ```text
//! cargo run --release --example char_rnn -- [--epochs N] [--seconds S] [--batch-size B]
//!     [--lr LR] [--text FILE] [--prompt TEXT] [--length N] [--temperature T] [--out DIR] [--seed S]
//!     [--device cpu|cuda|cuda:N]
//! ```

use rand::rngs::StdRng;
use rand::SeedableRng;
use shapesafe::data::{data_dir, CharText, TextLoader, SHAKESPEARE_FILE};
use shapesafe::device::DeviceKind;
use shapesafe::nn::sample_logits;
use shapesafe::optim::Adam;
use shapesafe::prelude::*;
use shapesafe::train::{LanguageModeling, TrainConfig, Trainer};
use shapesafe::{Error, Result};
use std::path::PathBuf;
use std::time::Instant;

/// Vocabulary size: the shipped text's 70 distinct characters (a text with more is refused
/// with both numbers; one with fewer leaves ids unused).
const VOCAB: usize = 70;
const EMBEDDING: usize = 64;
const HIDDEN: usize = 256;
/// Characters per training window (the length backpropagation runs through).
const SEQUENCE: usize = 64;

/// Character ids -> embedding -> LSTM -> next-character logits at every step.
type CharLstm = (
    Embedding<VOCAB, EMBEDDING>,
    Lstm<EMBEDDING, HIDDEN>,
    Linear<HIDDEN, VOCAB>,
);
type Model<D> = <CharLstm as BuildOnDevice<D, f32>>::Built;

shapesafe::assert_shapes!(CharLstm: Rank1<SEQUENCE> => Rank2<SEQUENCE, VOCAB>);

struct Args {
    epochs: usize,
    /// A wall-clock budget that may end training before `epochs` (`TrainConfig::max_seconds`).
    seconds: Option<f64>,
    batch_size: usize,
    lr: f64,
    text: PathBuf,
    prompt: String,
    length: usize,
    temperature: f64,
    out: PathBuf,
    seed: u64,
    device: DeviceKind,
}

const USAGE: &str =
    "usage: char_rnn [--epochs N] [--seconds S] [--batch-size B] [--lr LR] [--text FILE] \
[--prompt TEXT] [--length N] [--temperature T] [--out DIR] [--seed S] [--device cpu|cuda|cuda:N]";

fn parse_args() -> Result<Args> {
    let mut args = Args {
        epochs: 3,
        seconds: None,
        batch_size: 64,
        lr: 3e-3,
        text: data_dir().join(SHAKESPEARE_FILE),
        prompt: "Ham.\n".to_string(),
        length: 400,
        temperature: 0.7,
        out: PathBuf::from("runs/char_rnn"),
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
            "--seconds" => {
                args.seconds = Some(
                    value
                        .parse()
                        .ok()
                        .filter(|s: &f64| *s > 0.0 && s.is_finite())
                        .ok_or_else(|| bad("a number above 0"))?,
                )
            }
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
    let (embedding, lstm, head) = model;
    let ids = |ids: Vec<usize>| {
        let n = ids.len();
        dev.try_tensor_from_vec(ids, (1, n)).map_err(Error::device)
    };
    let prompt = text.encode(prompt)?;
    if prompt.is_empty() {
        return Err(Error::Usage(
            "--prompt needs at least one character".to_string(),
        ));
    }
    let x = embedding.forward(ids(prompt)?);
    // The state carries the whole history, so each later step feeds one character.
    let (out, mut state) = lstm.forward_with_state(x, None);
    let mut last = LastStep.forward(out);
    let mut generated = Vec::with_capacity(length);
    for _ in 0..length {
        let logits = head.forward(last).as_vec();
        // Only the text's own characters can be drawn; the rest of VOCAB is padding.
        let next = sample_logits(&logits[..text.vocab_size()], temperature, None, rng)
            .ok_or_else(|| Error::Usage(format!("cannot sample at temperature {temperature}")))?;
        generated.push(next);
        let x = embedding.forward(ids(vec![next])?);
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
    println!("{}\n", Summary::of::<CharLstm, Rank1<SEQUENCE>>());
    let model = CharLstm::try_build_on_device(&dev).map_err(Error::device)?;
    let optimizer = Adam::new(
        &model,
        AdamConfig {
            lr: args.lr,
            ..Default::default()
        },
    );
    println!(
        "device {}: windows of {SEQUENCE} characters, batch {}, Adam lr {}, {} epochs{}\n",
        args.device,
        args.batch_size,
        args.lr,
        args.epochs,
        args.seconds.map_or(String::new(), |s| format!(
            " or {s} s, whichever ends first"
        ))
    );
    let config = TrainConfig {
        epochs: args.epochs,
        max_seconds: args.seconds,
        // Gradients through 64 LSTM steps can spike; PyTorch's char-RNNs clip them too.
        clip_grad_norm: Some(1.0),
        out_dir: Some(args.out.clone()),
        seed: args.seed,
        ..Default::default()
    };
    let mut trainer = Trainer::new(model, optimizer, dev.clone())
        .with_objective(LanguageModeling)
        .with_config(config);
    let train = TextLoader::<SEQUENCE, VOCAB>::new(&train, args.batch_size)?
        .shuffle(args.seed)
        .drop_last(true);
    let valid = TextLoader::<SEQUENCE, VOCAB>::new(&valid, 256)?;
    let start = Instant::now();
    trainer.fit(&train, &valid)?;
    println!("\ntrained in {:.1} s", start.elapsed().as_secs_f64());
    if let Some(last) = trainer.history().records.last() {
        println!(
            "held-out loss {:.4} nats/char, perplexity {:.2} ({:.2} bits/char); curves in {}\n",
            last.valid_loss,
            last.valid_loss.exp(),
            last.valid_loss / std::f64::consts::LN_2,
            args.out.join("curves.png").display()
        );
    }
    let model = &trainer.model;
    let mut rng = StdRng::seed_from_u64(args.seed);
    for temperature in [args.temperature, 1.0] {
        let generated = sample(
            model,
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
