//! The Trainer on real digits: history and output files, bit-identical resume,
//! early stopping that restores the best epoch, a NaN loss named with its step, and a time budget.

mod common;

use common::TestDevice;
use shapesafe::data::{data_dir, DataLoader, Mnist, MnistSplit, Normalize, Subset};
use shapesafe::optim::Adam;
use shapesafe::prelude::*;
use shapesafe::train::{EarlyStopping, LrSchedule, Monitor, TrainConfig, Trainer};
use shapesafe::Error;
use std::path::PathBuf;

type Small = (
    Conv2d<1, 4, 3>,
    ReLU,
    MaxPool2d<2>,
    Flatten,
    Linear<676, 10>,
);
type Model = <Small as BuildOnDevice<TestDevice, f32>>::Built;

fn digits() -> Mnist {
    Mnist::load(data_dir().join("mnist-small")).unwrap()
}

fn out_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("shapesafe-trainer-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn trainer(
    seed: u64,
    config: TrainConfig,
) -> Trainer<Model, Adam<Model, f32, TestDevice>, TestDevice> {
    let dev = TestDevice::seed_from_u64(seed);
    let model = dev.build_module::<Small, f32>();
    let opt = Adam::new(&model, AdamConfig::default());
    Trainer::new(model, opt, dev).with_config(TrainConfig {
        progress: false,
        ..config
    })
}

fn params(model: &Model) -> Vec<f32> {
    [
        model.0.weight.as_vec(),
        model.0.bias.as_vec(),
        model.4.weight.as_vec(),
        model.4.bias.as_vec(),
    ]
    .concat()
}

fn loaders<'a>(
    train: &'a Subset<'a, MnistSplit>,
    valid: &'a Subset<'a, MnistSplit>,
) -> (
    DataLoader<'a, Subset<'a, MnistSplit>>,
    DataLoader<'a, Subset<'a, MnistSplit>>,
) {
    (
        DataLoader::new(train, 50)
            .unwrap()
            .shuffle(7)
            .transform(Normalize::mnist()),
        DataLoader::new(valid, 100)
            .unwrap()
            .transform(Normalize::mnist()),
    )
}

#[test]
fn fit_learns_and_writes_metrics_curves_and_a_checkpoint() {
    let mnist = digits();
    let train = Subset::new(&mnist.train, (0..2000).collect()).unwrap();
    let valid = Subset::new(&mnist.test, (0..500).collect()).unwrap();
    let (train_loader, valid_loader) = loaders(&train, &valid);
    let dir = out_dir("fit");
    let mut t = trainer(
        1,
        TrainConfig {
            epochs: 2,
            out_dir: Some(dir.clone()),
            ..Default::default()
        },
    );
    let history = t.fit(&train_loader, &valid_loader).unwrap().clone();
    assert_eq!(history.records.len(), 2);
    assert!(
        history.records[1].metric("valid_accuracy") > Some(0.8),
        "{:?}",
        history.records[1]
    );
    assert!(history.records[1].train_loss < history.records[0].train_loss);
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(std::fs::read_to_string(dir.join("curves.svg"))
        .unwrap()
        .contains("<polyline"));
    assert!(dir.join("checkpoint.safetensors").exists());
    let report = t.evaluate(&valid_loader).unwrap();
    assert_eq!(report.confusion.total(), 500);
    assert_eq!(
        Some(report.accuracy),
        history.records[1].metric("valid_accuracy")
    );
    assert!(report.top_k_accuracy >= report.accuracy);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn resume_gives_the_same_weights_bit_for_bit() {
    let mnist = digits();
    let train = Subset::new(&mnist.train, (0..1000).collect()).unwrap();
    let valid = Subset::new(&mnist.test, (0..200).collect()).unwrap();
    let (train_loader, valid_loader) = loaders(&train, &valid);

    let mut straight = trainer(
        3,
        TrainConfig {
            epochs: 2,
            ..Default::default()
        },
    );
    straight.fit(&train_loader, &valid_loader).unwrap();

    let dir = out_dir("resume");
    let mut first = trainer(
        3,
        TrainConfig {
            epochs: 1,
            out_dir: Some(dir.clone()),
            ..Default::default()
        },
    );
    first.fit(&train_loader, &valid_loader).unwrap();
    // A fresh process: other initial weights, then the checkpoint.
    let mut resumed = trainer(
        99,
        TrainConfig {
            epochs: 2,
            ..Default::default()
        },
    );
    resumed.resume(dir.join("checkpoint.safetensors")).unwrap();
    assert_eq!(resumed.history().records.len(), 1);
    resumed.fit(&train_loader, &valid_loader).unwrap();

    assert_eq!(params(&resumed.model), params(&straight.model));
    assert_eq!(resumed.history().records.len(), 2);
    assert_eq!(
        resumed.history().records[1].valid_loss,
        straight.history().records[1].valid_loss
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn early_stopping_stops_and_restores_the_best_epoch() {
    let mnist = digits();
    let train = Subset::new(&mnist.train, (0..500).collect()).unwrap();
    let valid = Subset::new(&mnist.test, (0..200).collect()).unwrap();
    let (train_loader, valid_loader) = loaders(&train, &valid);
    // No later epoch can beat the first by a whole unit of accuracy.
    let mut stopper = EarlyStopping::new(Monitor::ValidAccuracy, 1);
    stopper.min_delta = 1.0;
    let mut t = trainer(
        5,
        TrainConfig {
            epochs: 5,
            early_stopping: Some(stopper),
            ..Default::default()
        },
    );
    t.fit(&train_loader, &valid_loader).unwrap();
    assert_eq!(
        t.history().records.len(),
        2,
        "stopped after one epoch without improvement"
    );

    let mut one = trainer(
        5,
        TrainConfig {
            epochs: 1,
            ..Default::default()
        },
    );
    one.fit(&train_loader, &valid_loader).unwrap();
    assert_eq!(
        params(&t.model),
        params(&one.model),
        "weights of the best (first) epoch"
    );
}

#[test]
fn a_nan_loss_stops_training_naming_the_step() {
    let mnist = digits();
    let train = Subset::new(&mnist.train, (0..200).collect()).unwrap();
    let valid = Subset::new(&mnist.test, (0..100).collect()).unwrap();
    let (train_loader, valid_loader) = loaders(&train, &valid);
    let mut t = trainer(
        6,
        TrainConfig {
            epochs: 1,
            ..Default::default()
        },
    );
    t.model.4.bias = t.model.4.bias.clone() * f32::NAN;
    match t.fit(&train_loader, &valid_loader) {
        Err(Error::NonFinite {
            epoch: 1,
            step: 1,
            what,
        }) => assert_eq!(what, "loss"),
        other => panic!("expected a non-finite loss at step 1, got {other:?}"),
    }
}

#[test]
fn a_spent_time_budget_ends_the_epoch_after_its_batch_and_stops() {
    let mnist = digits();
    let train = Subset::new(&mnist.train, (0..200).collect()).unwrap();
    let valid = Subset::new(&mnist.test, (0..100).collect()).unwrap();
    let (train_loader, valid_loader) = loaders(&train, &valid);
    let config = TrainConfig {
        epochs: 3,
        max_seconds: Some(1e-9),
        ..Default::default()
    };
    let mut budgeted = trainer(8, config.clone());
    let history = budgeted.fit(&train_loader, &valid_loader).unwrap().clone();
    assert_eq!(history.records.len(), 1, "{history:?}");

    // The same start trained on nothing but the epoch's first batch ends bit for bit alike.
    let dev = TestDevice::seed_from_u64(8);
    let first: Vec<_> = train_loader
        .epoch(0, &dev)
        .take(1)
        .map(Result::unwrap)
        .collect();
    let mut one_batch = trainer(
        8,
        TrainConfig {
            epochs: 1,
            ..Default::default()
        },
    );
    let reference = one_batch.fit(&first, &valid_loader).unwrap().clone();
    assert_eq!(params(&budgeted.model), params(&one_batch.model));
    assert_eq!(
        history.records[0].train_loss,
        reference.records[0].train_loss
    );
    assert_eq!(
        history.records[0].valid_loss,
        reference.records[0].valid_loss
    );

    for config in [
        TrainConfig {
            max_seconds: Some(-1.0),
            ..config.clone()
        },
        TrainConfig {
            max_seconds: None,
            schedule: LrSchedule::CosineOverBudget { min_lr: 0.0 },
            ..config
        },
    ] {
        match trainer(8, config).fit(&train_loader, &valid_loader) {
            Err(Error::Usage(m)) => assert!(m.contains("max_seconds"), "{m}"),
            other => panic!("expected a usage error, got {other:?}"),
        }
    }
}

#[test]
fn a_cosine_over_the_budget_sets_the_rate_before_every_step() {
    let mnist = digits();
    let train = Subset::new(&mnist.train, (0..200).collect()).unwrap();
    let valid = Subset::new(&mnist.test, (0..100).collect()).unwrap();
    let (train_loader, valid_loader) = loaders(&train, &valid);
    // A budget spent at once: the one step taken runs at the cosine's end, `min_lr`.
    let mut budgeted = trainer(
        9,
        TrainConfig {
            epochs: 2,
            max_seconds: Some(1e-9),
            schedule: LrSchedule::CosineOverBudget { min_lr: 1e-5 },
            ..Default::default()
        },
    );
    let history = budgeted.fit(&train_loader, &valid_loader).unwrap().clone();
    assert_eq!(history.records.len(), 1);
    assert_eq!(history.records[0].lr, 1e-5);

    let dev = TestDevice::seed_from_u64(9);
    let first: Vec<_> = train_loader
        .epoch(0, &dev)
        .take(1)
        .map(Result::unwrap)
        .collect();
    let model = dev.build_module::<Small, f32>();
    let opt = Adam::new(
        &model,
        AdamConfig {
            lr: 1e-5,
            ..Default::default()
        },
    );
    let mut reference = Trainer::new(model, opt, dev).with_config(TrainConfig {
        epochs: 1,
        progress: false,
        ..Default::default()
    });
    reference.fit(&first, &valid_loader).unwrap();
    assert_eq!(params(&budgeted.model), params(&reference.model));
}
