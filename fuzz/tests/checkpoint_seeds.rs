//! The `checkpoint` seeds are real, current checkpoints: each loads into the optimizer it
//! was written with and is refused, unchanged, by the other one.

use shapesafe::train::load_checkpoint;
use shapesafe_fuzz::{checkpoint, checkpoint_fixture, checkpoint_params};

const SEEDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/seeds/checkpoint");

#[test]
fn sgd_seed_loads_into_sgd_only() {
    let path = format!("{SEEDS}/sgd-momentum.safetensors");
    let (mut model, mut sgd, mut adam) = checkpoint_fixture(0);
    let state = load_checkpoint(&path, &mut model, &mut sgd).expect("the SGD seed loads");
    assert_eq!((state.epoch, state.step), (1, 2));
    assert_eq!(
        checkpoint_params(&model),
        checkpoint_params(&checkpoint_fixture(2).0)
    );
    assert!(load_checkpoint(&path, &mut model, &mut adam).is_err());
}

#[test]
fn adam_seed_loads_into_adam_only() {
    let path = format!("{SEEDS}/adam.safetensors");
    let (mut model, mut sgd, mut adam) = checkpoint_fixture(0);
    load_checkpoint(&path, &mut model, &mut adam).expect("the Adam seed loads");
    assert_eq!(
        checkpoint_params(&model),
        checkpoint_params(&checkpoint_fixture(2).0)
    );
    assert!(load_checkpoint(&path, &mut model, &mut sgd).is_err());
}

#[test]
fn every_seed_passes_the_target() {
    for entry in std::fs::read_dir(SEEDS).expect("the seed folder") {
        let path = entry.expect("a seed").path();
        checkpoint(&std::fs::read(&path).expect("a seed's bytes"));
    }
}
