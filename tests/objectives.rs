//! The Trainer beyond classifiers: regression on fixed batches, a next-character language
//! model on a `TextLoader`, a VAE on digits; metrics weighted per example and checked
//! against plain loops, bit-identical resume, early stopping on an objective's own metric.

mod common;

use common::TestDevice;
use shapesafe::data::{data_dir, CharText, DataLoader, Loader, Mnist, Subset, TextLoader};
use shapesafe::models::{Vae, VaeObjective};
use shapesafe::optim::{Adam, Sgd};
use shapesafe::prelude::*;
use shapesafe::train::{
    EarlyStopping, History, LanguageModeling, Monitor, Regression, TrainConfig, Trainer,
};
use shapesafe::Error;
use std::path::PathBuf;

fn quiet(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        progress: false,
        ..Default::default()
    }
}

fn out_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "shapesafe-objectives-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

type Pair = (
    Tensor<(usize, Const<1>), f32, TestDevice>,
    Tensor<(usize, Const<1>), f32, TestDevice>,
);

/// `y = 3x - 1` in two batches of different sizes (3 and 1 examples).
fn line(dev: &TestDevice) -> Vec<Pair> {
    let batch = |xs: &[f32]| -> Pair {
        let ys: Vec<f32> = xs.iter().map(|x| 3.0 * x - 1.0).collect();
        (
            dev.tensor_from_vec(xs.to_vec(), (xs.len(), Const)),
            dev.tensor_from_vec(ys, (xs.len(), Const)),
        )
    };
    vec![batch(&[-1.0, 0.0, 0.5]), batch(&[2.0])]
}

#[test]
fn regression_fits_a_line_and_weights_its_loss_per_example() {
    let dev = TestDevice::seed_from_u64(0);
    let model = dev.build_module::<Linear<1, 1>, f32>();
    let opt = Sgd::new(
        &model,
        SgdConfig {
            lr: 0.05,
            ..Default::default()
        },
    );
    let data = line(&dev);
    let mut t = Trainer::new(model, opt, dev.clone())
        .with_objective(Regression)
        .with_config(quiet(400));
    t.fit(&data, &data).unwrap();
    let (w, b) = (t.model.weight.as_vec()[0], t.model.bias.as_vec()[0]);
    assert!(
        (w - 3.0).abs() < 1e-3 && (b + 1.0).abs() < 1e-3,
        "w {w}, b {b}"
    );

    // Against a plain loop in f64: the mean over the 4 examples, not over the 2 batches.
    let xs = [-1.0f64, 0.0, 0.5, 2.0];
    let errors: Vec<f64> = xs
        .iter()
        .map(|x| f64::from(w) * x + f64::from(b) - (3.0 * x - 1.0))
        .collect();
    let mse = errors.iter().map(|e| e * e).sum::<f64>() / 4.0;
    let mae = errors.iter().map(|e| e.abs()).sum::<f64>() / 4.0;
    let (loss, metrics) = t.validate(&data).unwrap();
    assert!((loss - mse).abs() < 1e-9, "{loss} vs {mse}");
    assert!((metrics.mean("mae").unwrap() - mae).abs() < 1e-7);
    let last = t.history().records.last().unwrap();
    assert_eq!(last.valid_loss, loss);
    assert_eq!(last.metric("valid_mae"), metrics.mean("mae"));
}

#[test]
fn early_stopping_needs_a_metric_the_objective_reports() {
    let dev = TestDevice::seed_from_u64(0);
    let model = dev.build_module::<Linear<1, 1>, f32>();
    let opt = Sgd::new(&model, Default::default());
    let data = line(&dev);
    let config = TrainConfig {
        early_stopping: Some(EarlyStopping::new(Monitor::ValidAccuracy, 2)),
        ..quiet(3)
    };
    let mut t = Trainer::new(model, opt, dev)
        .with_objective(Regression)
        .with_config(config);
    match t.fit(&data, &data) {
        Err(Error::Usage(message)) => {
            assert!(message.contains("does not report"), "{message}");
            assert!(message.contains("mae"), "{message}");
        }
        other => panic!("expected a usage error, got {other:?}"),
    }
}

const SEQUENCE: usize = 8;
const VOCAB: usize = 6;
type Bigram = (Embedding<VOCAB, 12>, Linear<12, VOCAB>);
type BigramModel = <Bigram as BuildOnDevice<TestDevice, f32>>::Built;

fn text() -> CharText {
    // A cycle of six characters: each one determines the next.
    CharText::from_text(&"abcdef".repeat(40)).unwrap()
}

fn language_trainer(
    seed: u64,
    config: TrainConfig,
) -> Trainer<BigramModel, Adam<BigramModel, f32, TestDevice>, TestDevice, LanguageModeling> {
    let dev = TestDevice::seed_from_u64(seed);
    let model = dev.build_module::<Bigram, f32>();
    let opt = Adam::new(
        &model,
        AdamConfig {
            lr: 0.05,
            ..Default::default()
        },
    );
    Trainer::new(model, opt, dev)
        .with_objective(LanguageModeling)
        .with_config(TrainConfig {
            progress: false,
            ..config
        })
}

#[test]
fn a_language_model_learns_a_cycle_and_reports_next_character_accuracy() {
    let text = text();
    let (train, valid) = text.split(0.75).unwrap();
    let train = TextLoader::<SEQUENCE, VOCAB>::new(&train, 4)
        .unwrap()
        .shuffle(1);
    let valid = TextLoader::<SEQUENCE, VOCAB>::new(&valid, 5).unwrap();
    let mut t = language_trainer(2, quiet(15));
    t.fit(&train, &valid).unwrap();
    let records = &t.history().records;
    assert!(records[14].valid_loss < 0.1 * records[0].valid_loss);
    assert_eq!(records[14].metric("valid_accuracy"), Some(1.0));
    assert!(records[14].metric("train_accuracy").is_some());

    // Accuracy against a plain count over the held-out windows.
    let dev = TestDevice::seed_from_u64(0);
    let (mut right, mut total) = (0, 0);
    for batch in valid.batches(0, &dev) {
        let batch = batch.unwrap();
        let logits = t.model.forward(batch.inputs.clone()).as_vec();
        let targets = batch.targets.as_vec();
        for (row, target) in logits.chunks(VOCAB).zip(targets.chunks(VOCAB)) {
            let best = (0..VOCAB)
                .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                .unwrap();
            right += usize::from(target[best] == 1.0);
            total += 1;
        }
    }
    let (_, metrics) = t.validate(&valid).unwrap();
    assert_eq!(metrics.mean("accuracy"), Some(right as f64 / total as f64));
}

#[test]
fn a_language_model_resumes_bit_for_bit() {
    let text = text();
    let (train, valid) = text.split(0.75).unwrap();
    let train = TextLoader::<SEQUENCE, VOCAB>::new(&train, 4)
        .unwrap()
        .shuffle(3);
    let valid = TextLoader::<SEQUENCE, VOCAB>::new(&valid, 5).unwrap();
    let mut straight = language_trainer(4, quiet(3));
    straight.fit(&train, &valid).unwrap();

    let dir = out_dir("lm-resume");
    let mut first = language_trainer(
        4,
        TrainConfig {
            out_dir: Some(dir.clone()),
            ..quiet(2)
        },
    );
    first.fit(&train, &valid).unwrap();
    let mut resumed = language_trainer(77, quiet(3));
    resumed.resume(dir.join("checkpoint.safetensors")).unwrap();
    assert_eq!(
        without_seconds(resumed.history()),
        without_seconds(first.history()),
        "the metrics come back too"
    );
    resumed.fit(&train, &valid).unwrap();
    let weights = |m: &BigramModel| [m.0.weight.as_vec(), m.1.weight.as_vec(), m.1.bias.as_vec()];
    assert_eq!(weights(&resumed.model), weights(&straight.model));
    assert_eq!(
        without_seconds(resumed.history()),
        without_seconds(straight.history())
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// A history with every epoch's seconds zeroed, so two runs compare on what they computed.
fn without_seconds(history: &History) -> History {
    let mut h = history.clone();
    for r in &mut h.records {
        r.seconds = 0.0;
    }
    h
}

type SmallVae =
    Vae<(Flatten, Linear<784, 32>, ReLU), (Linear<4, 784>, Sigmoid, Unflatten<1, 28, 28>), 32, 4>;

#[test]
fn a_vae_reports_reconstruction_and_kl_and_stops_on_kl() {
    let mnist = Mnist::load(data_dir().join("mnist-small")).unwrap();
    let train = Subset::new(&mnist.train, (0..400).collect()).unwrap();
    let valid = Subset::new(&mnist.test, (0..100).collect()).unwrap();
    let dev = TestDevice::seed_from_u64(5);
    let model = dev.build_module::<SmallVae, f32>();
    let opt = Adam::new(&model, AdamConfig::default());
    let beta = 0.5;
    let stopper = EarlyStopping::new(
        Monitor::ValidMetric {
            name: "kl",
            higher_is_better: false,
        },
        100,
    );
    let mut t = Trainer::new(model, opt, dev)
        .with_objective(VaeObjective { beta })
        .with_config(TrainConfig {
            early_stopping: Some(stopper),
            ..quiet(3)
        });
    let train = DataLoader::new(&train, 50).unwrap().shuffle(0);
    let valid = DataLoader::new(&valid, 50).unwrap();
    t.fit(&train, &valid).unwrap();
    let records = &t.history().records;
    assert!(records[2].train_loss < records[0].train_loss);
    let names: Vec<&str> = records[0].metrics.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "train_reconstruction",
            "train_kl",
            "valid_mse",
            "valid_reconstruction",
            "valid_kl"
        ]
    );
    for r in records {
        let (rec, kl) = (
            r.metric("valid_reconstruction").unwrap(),
            r.metric("valid_kl").unwrap(),
        );
        assert!((r.valid_loss - (rec + beta * kl)).abs() < 1e-9 * r.valid_loss);
    }
    let best = records
        .iter()
        .min_by(|a, b| {
            a.metric("valid_kl")
                .unwrap()
                .total_cmp(&b.metric("valid_kl").unwrap())
        })
        .unwrap()
        .epoch;
    let stopper = t.config.early_stopping.as_ref().unwrap();
    assert_eq!(stopper.best_epoch(), Some(best));
}
