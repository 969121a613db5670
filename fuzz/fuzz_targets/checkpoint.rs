//! Fuzz target: arbitrary bytes as a training checkpoint file for `train::load_checkpoint`.
//!
//! The loader must return an error for anything that is not a checkpoint of this model and
//! optimizer, and must never panic. A good seed is a real checkpoint of `Net`, written with
//! `shapesafe::train::save_checkpoint` into `seeds/checkpoint/`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shapesafe::optim::Adam;
use shapesafe::prelude::*;

/// Small, so each run is dominated by parsing rather than by building the model.
type Net = (Linear<4, 3>, ReLU, Linear<3, 2>);

fuzz_target!(|data: &[u8]| {
    // One file per process: libFuzzer runs inputs one after another in a single thread.
    let path = std::env::temp_dir().join(format!(
        "shapesafe-fuzz-checkpoint-{}.safetensors",
        std::process::id()
    ));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let dev = Cpu::default();
    let mut model = dev.build_module::<Net, f32>();
    // shapesafe's own Adam, which implements the `OptimizerState` that checkpoints restore.
    let mut optimizer = Adam::new(&model, AdamConfig::default());
    let _ = shapesafe::train::load_checkpoint(&path, &mut model, &mut optimizer);
});
