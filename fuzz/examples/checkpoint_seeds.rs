//! Writes the seed inputs of the `checkpoint` fuzz target: real checkpoints of
//! `shapesafe_fuzz::CheckpointModel`, one with SGD-momentum state and one with Adam state,
//! each after two training steps, through `shapesafe::train::save_checkpoint`.
//!
//! Usage: `checkpoint_seeds <dir>` (the repository's seeds are in `seeds/checkpoint`).

use shapesafe::train::{save_checkpoint, TrainingState};

fn main() {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: checkpoint_seeds <dir>");
        std::process::exit(2);
    };
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).expect("create the seed folder");
    let (model, sgd, adam) = shapesafe_fuzz::checkpoint_fixture(2);
    let mut state = TrainingState {
        epoch: 1,
        step: 2,
        seed: 20261122,
        ..Default::default()
    };
    state
        .extra
        .insert("best_accuracy".to_string(), "0.5".to_string());
    for (name, result) in [
        (
            "sgd-momentum.safetensors",
            save_checkpoint(dir.join("sgd-momentum.safetensors"), &model, &sgd, &state),
        ),
        (
            "adam.safetensors",
            save_checkpoint(dir.join("adam.safetensors"), &model, &adam, &state),
        ),
    ] {
        result.unwrap_or_else(|e| panic!("cannot write {name}: {e}"));
        let len = std::fs::metadata(dir.join(name))
            .map(|m| m.len())
            .unwrap_or(0);
        println!("wrote {} ({len} bytes)", dir.join(name).display());
    }
}
