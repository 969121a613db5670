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

mod cli;

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

/// Trains a character-level LSTM on Shakespeare and samples from it.
#[derive(clap::Parser)]
#[command(name = "char_rnn")]
struct Args {
    /// Epochs to train (--seconds may end sooner).
    #[arg(long, default_value_t = 3, value_parser = cli::count)]
    epochs: usize,
    /// A wall-clock budget in seconds that may end training before --epochs
    /// (`TrainConfig::max_seconds`) [default: none].
    #[arg(long, value_parser = cli::positive, allow_negative_numbers = true)]
    seconds: Option<f64>,
    /// Sequences per batch.
    #[arg(long, default_value_t = 64, value_parser = cli::count)]
    batch_size: usize,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 3e-3, value_parser = cli::positive, allow_negative_numbers = true)]
    lr: f64,
    /// The text to learn (gzipped or plain).
    #[arg(long, default_value_os_t = data_dir().join(SHAKESPEARE_FILE))]
    text: PathBuf,
    /// The sample's opening (`\n` for a new line).
    #[arg(long, default_value = "Ham.\\n", value_parser = cli::prompt)]
    prompt: String,
    /// Characters to sample.
    #[arg(long, default_value_t = 400)]
    length: usize,
    /// Sampling temperature, above 0 (lower is more conservative).
    #[arg(long, default_value_t = 0.7, value_parser = cli::positive, allow_negative_numbers = true)]
    temperature: f64,
    /// Where metrics, curves and checkpoints go.
    #[arg(long, default_value = "runs/char_rnn")]
    out: PathBuf,
    /// Seed of the weights, the batches and the sampling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// cpu, cuda, cuda:N, or auto (the GPU when this build has CUDA and one answers).
    #[arg(long, value_parser = cli::device, default_value = "auto")]
    device: DeviceKind,
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
    if let Err(e) = on_device(<Args as clap::Parser>::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
