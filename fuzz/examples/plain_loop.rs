//! A fuzz driver without libFuzzer: runs a target's entry point over a seed corpus and then
//! over seeded random mutations of it, for a fixed time. For machines where cargo-fuzz or
//! its sanitizer runtime is unavailable; a panic aborts the run with the input saved.
//!
//! Usage: `plain_loop <idx|digits|checkpoint> <seconds> <seed-dir>... [--seed N]`

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The input being run, for the panic hook to save.
static CURRENT: Mutex<Vec<u8>> = Mutex::new(Vec::new());

fn run(entry: fn(&[u8]), input: &[u8]) {
    if let Ok(mut current) = CURRENT.lock() {
        current.clear();
        current.extend_from_slice(input);
    }
    entry(input);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: plain_loop <idx|digits|checkpoint> <seconds> <seed-dir>... [--seed N]";
    let (Some(target), Some(secs)) = (args.first(), args.get(1)) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    type Mutator = fn(&[u8], &mut StdRng) -> Vec<u8>;
    let (entry, mutate): (fn(&[u8]), Mutator) = match target.as_str() {
        "idx" => (shapesafe_fuzz::idx, shapesafe_fuzz::mutate),
        "digits" => (shapesafe_fuzz::digits, shapesafe_fuzz::mutate),
        // Safetensors' JSON header defeats blind byte edits; half of these edits are
        // header-aware (see `mutate_checkpoint`).
        "checkpoint" => (
            shapesafe_fuzz::checkpoint,
            shapesafe_fuzz::mutate_checkpoint,
        ),
        _ => {
            eprintln!("unknown target {target}; {usage}");
            std::process::exit(2);
        }
    };
    let Ok(secs) = secs.parse::<u64>() else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let mut seed = 0u64;
    let mut dirs = Vec::new();
    let mut rest = args[2..].iter();
    while let Some(a) = rest.next() {
        if a == "--seed" {
            seed = rest.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        } else {
            dirs.push(PathBuf::from(a));
        }
    }
    let mut corpus: Vec<Vec<u8>> = Vec::new();
    for dir in &dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            eprintln!("cannot read {}", dir.display());
            std::process::exit(2);
        };
        for e in entries.flatten() {
            if let Ok(bytes) = std::fs::read(e.path()) {
                corpus.push(bytes);
            }
        }
    }
    if corpus.is_empty() {
        corpus.push(Vec::new());
    }

    let crash =
        std::env::temp_dir().join(format!("plain_loop-{target}-{}-crash", std::process::id()));
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if let Ok(input) = CURRENT.try_lock() {
            if std::fs::write(&crash, &*input).is_ok() {
                eprintln!("the panicking input is saved in {}", crash.display());
            }
        }
        default_hook(info);
    }));

    let start = Instant::now();
    let limit = Duration::from_secs(secs);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut runs = 0u64;
    for input in &corpus {
        run(entry, input);
        runs += 1;
    }
    while start.elapsed() < limit {
        let base = &corpus[rng.gen_range(0..corpus.len())];
        let input = mutate(base, &mut rng);
        run(entry, &input);
        runs += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "plain_loop {target}: {runs} runs in {elapsed:.0} s ({:.0}/s) over {} seed files, seed {seed}, 0 panics",
        runs as f64 / elapsed,
        corpus.len()
    );
    if target == "checkpoint" {
        let ok = shapesafe_fuzz::CHECKPOINT_LOADS_OK.load(std::sync::atomic::Ordering::Relaxed);
        println!(
            "checkpoint: {ok} of {} loads (each input into SGD and into Adam) returned Ok",
            2 * runs
        );
    }
}
