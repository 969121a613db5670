//! A GPT-style character language model on four Shakespeare tragedies (`data/text`): token and
//! learned position embeddings, pre-norm Transformer blocks with causal self-attention, a final
//! layer norm and a linear head, trained by the `Trainer` with the `LanguageModeling` objective
//! for a wall-clock budget (`--seconds`, 45 s by default, training and validation together;
//! the last epoch may be cut short), then sampled with temperature and top-k. `char_rnn
//! --seconds S` trains the LSTM for the same budget, for comparison.
//!
//! ```text
//! cargo run --release --example gpt -- [--seconds S] [--batch-size B] [--lr LR]
//!     [--prompt TEXT] [--length N] [--temperature T] [--top-k K] [--out DIR] [--seed S]
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
use shapesafe::shape::SequenceDim;
use shapesafe::train::{LanguageModeling, LrSchedule, TrainConfig, Trainer};
use shapesafe::{Error, Result};
use std::path::PathBuf;
use std::time::Instant;

/// The shipped text's 70 distinct characters.
const VOCAB: usize = 70;
/// Characters of context (the training window and the sampling window).
const CONTEXT: usize = 64;
const D_MODEL: usize = 64;
const HEADS: usize = 4;
const LAYERS: usize = 2;
/// More epochs than any budget here buys (the last one may be cut short by the budget).
const MAX_EPOCHS: usize = 50;
/// Where the cosine schedule ends when the budget is spent.
const MIN_LR: f64 = 1e-4;

/// GPT-2's layout at a small size: pre-norm blocks (`NORM_FIRST`), causal attention.
#[derive(CustomModule, Debug, Clone, Copy, Default)]
#[built(CharGpt)]
pub struct CharGptConfig {
    embed: Embedding<VOCAB, D_MODEL>,
    pos: LearnedPositionalEmbedding<CONTEXT, D_MODEL>,
    blocks: TransformerEncoder<D_MODEL, HEADS, { 4 * D_MODEL }, LAYERS, true>,
    norm: LayerNorm<D_MODEL>,
    head: Linear<D_MODEL, VOCAB>,
}

type Model<D> = CharGpt<f32, D>;
type Ids<S, D, T> = Tensor<(usize, S), usize, D, T>;
type NextLogits<S, D, T> = Tensor<(usize, S, Const<VOCAB>), f32, D, T>;

impl<S: SequenceDim, D: KernelDevice<f32>, T: Tape<f32, D> + Merge<T>> Module<Ids<S, D, T>>
    for Model<D>
{
    type Output = NextLogits<S, D, T>;
    type Error = D::Err;

    /// Logits of the next character at every position, each seeing only the positions up
    /// to itself. At most `CONTEXT` positions (the positional table panics past it).
    fn try_forward(&self, ids: Ids<S, D, T>) -> std::result::Result<Self::Output, D::Err> {
        let x = self.embed.try_forward(ids)?;
        let x = self.pos.try_forward(x)?;
        let x = self.blocks.try_forward_masked(x, None, true)?;
        let x = self.norm.try_forward(x)?;
        self.head.try_forward(x)
    }
}

/// Training runs the same forward: the blocks' dropout is 0 (set at build), as in
/// nanoGPT's small character model, so the fused attention kernel serves.
impl<S: SequenceDim, D: KernelDevice<f32>, T: Tape<f32, D> + Merge<T>> ModuleMut<Ids<S, D, T>>
    for Model<D>
{
    type Output = NextLogits<S, D, T>;
    type Error = D::Err;

    fn try_forward_mut(&mut self, ids: Ids<S, D, T>) -> std::result::Result<Self::Output, D::Err> {
        self.try_forward(ids)
    }
}

/// Trains a GPT-style character model on Shakespeare for a wall-clock budget and samples
/// from it.
#[derive(clap::Parser)]
#[command(name = "gpt")]
struct Args {
    /// The training budget in seconds (`TrainConfig::max_seconds`).
    #[arg(long, default_value_t = 45.0, value_parser = cli::positive, allow_negative_numbers = true)]
    seconds: f64,
    /// Sequences per batch.
    #[arg(long, default_value_t = 32, value_parser = cli::count)]
    batch_size: usize,
    /// Adam's learning rate at the start.
    #[arg(long, default_value_t = 7e-3, value_parser = cli::positive, allow_negative_numbers = true)]
    lr: f64,
    /// The sample's opening (`\n` for a new line).
    #[arg(long, default_value = "Ham.\\n", value_parser = cli::prompt)]
    prompt: String,
    /// Characters to sample.
    #[arg(long, default_value_t = 400)]
    length: usize,
    /// Sampling temperature, above 0 (lower is more conservative).
    #[arg(long, default_value_t = 0.8, value_parser = cli::positive, allow_negative_numbers = true)]
    temperature: f64,
    /// Sample among the k most likely characters, 1 to the vocabulary's size.
    #[arg(long, default_value_t = 10, value_parser = top_k)]
    top_k: usize,
    /// Where metrics, curves and checkpoints go.
    #[arg(long, default_value = "runs/gpt")]
    out: PathBuf,
    /// Seed of the weights, the batches and the sampling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// cpu, cuda, cuda:N, or auto (the GPU when this build has CUDA and one answers).
    #[arg(long, value_parser = cli::device, default_value = "auto")]
    device: DeviceKind,
}

/// A top-k from 1 to the vocabulary's size.
fn top_k(s: &str) -> Result<usize, String> {
    let k = cli::count(s)?;
    if k <= VOCAB {
        Ok(k)
    } else {
        Err(format!(
            "must be at most the vocabulary's {VOCAB} characters, got {k}"
        ))
    }
}

/// The prompt's character ids.
///
/// # Errors
/// [`Error::Usage`] for an empty prompt, or one with a character the text never uses
/// (naming it and its position).
fn encode_prompt(text: &CharText, prompt: &str) -> Result<Vec<usize>> {
    if prompt.is_empty() {
        return Err(Error::Usage(
            "--prompt needs at least one character".to_string(),
        ));
    }
    text.encode(prompt)
}

/// Continues `prompt` by `length` characters. Each is drawn from the `top_k` most likely
/// next characters, their probabilities sharpened by `temperature`, given the last
/// `CONTEXT` characters.
///
/// # Errors
/// [`Error::Usage`] for an empty prompt or one with a character the text does not have
/// (naming it), before anything is computed.
fn sample<D: KernelDevice<f32>>(
    model: &Model<D>,
    text: &CharText,
    prompt: &str,
    length: usize,
    (temperature, top_k): (f64, usize),
    rng: &mut StdRng,
    dev: &D,
) -> Result<String> {
    let mut ids = encode_prompt(text, prompt)?;
    ids.reserve(length);
    let start = ids.len();
    for _ in 0..length {
        // A prompt longer than the context is read from its last CONTEXT characters.
        let window = &ids[ids.len().saturating_sub(CONTEXT)..];
        let n = window.len();
        let x = dev
            .try_tensor_from_vec(window.to_vec(), (1, n))
            .map_err(Error::device)?;
        let logits = model.try_forward(x).map_err(Error::device)?.as_vec();
        let last = &logits[(n - 1) * VOCAB..n * VOCAB][..text.vocab_size()];
        let next = sample_logits(last, temperature, Some(top_k), rng)
            .ok_or_else(|| Error::Usage(format!("cannot sample at temperature {temperature}")))?;
        ids.push(next);
    }
    text.decode(&ids[start..])
}

fn run<D: KernelDevice<f32>>(args: Args, dev: D) -> Result<()> {
    let text = CharText::load(data_dir().join(SHAKESPEARE_FILE))?;
    // The prompt is checked now, not after training.
    encode_prompt(&text, &args.prompt)?;
    let (train, valid) = text.split(0.9)?;
    let mut model = CharGptConfig::try_build_on_device(&dev).map_err(Error::device)?;
    for block in &mut model.blocks.layers {
        block.dropout = 0.0;
    }
    println!(
        "CharGpt: {} parameters, context {CONTEXT}, {LAYERS} pre-norm blocks of width {D_MODEL}; \
         device {}: training for {} s, batch {}, Adam lr {} annealed to {MIN_LR} over the budget\n",
        model.num_trainable_params(),
        args.device,
        args.seconds,
        args.batch_size,
        args.lr
    );
    let optimizer = Adam::new(
        &model,
        AdamConfig {
            lr: args.lr,
            ..Default::default()
        },
    );
    let mut trainer = Trainer::new(model, optimizer, dev.clone())
        .with_objective(LanguageModeling)
        .with_config(TrainConfig {
            // The budget ends training long before this many epochs.
            epochs: MAX_EPOCHS,
            max_seconds: Some(args.seconds),
            // Annealed over the budget, whatever number of steps the machine gives it.
            schedule: LrSchedule::CosineOverBudget { min_lr: MIN_LR },
            clip_grad_norm: Some(1.0),
            out_dir: Some(args.out.clone()),
            seed: args.seed,
            ..Default::default()
        });
    let train = TextLoader::<CONTEXT, VOCAB>::new(&train, args.batch_size)?
        .shuffle(args.seed)
        .drop_last(true);
    let valid = TextLoader::<CONTEXT, VOCAB>::new(&valid, 256)?;
    let start = Instant::now();
    trainer.fit(&train, &valid)?;
    if let Some(last) = trainer.history().records.last() {
        println!(
            "\ntrained {} epochs in {:.1} s: held-out loss {:.4} nats/char, perplexity {:.2} \
             ({:.2} bits/char); curves in {}\n",
            trainer.history().records.len(),
            start.elapsed().as_secs_f64(),
            last.valid_loss,
            last.valid_loss.exp(),
            last.valid_loss / std::f64::consts::LN_2,
            args.out.join("curves.png").display()
        );
    }
    let mut rng = StdRng::seed_from_u64(args.seed);
    for temperature in [args.temperature, 1.0] {
        let generated = sample(
            &trainer.model,
            &text,
            &args.prompt,
            args.length,
            (temperature, args.top_k),
            &mut rng,
            &dev,
        )?;
        println!(
            "--- sample at temperature {temperature}, top-{} ---\n{}{generated}\n",
            args.top_k, args.prompt
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
