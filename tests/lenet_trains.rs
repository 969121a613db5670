//! LeNet-5 trains on the real mnist-small digits: its loss falls and it learns to classify.

mod common;

use common::TestDevice;
use shapesafe::data::{data_dir, DataLoader, Mnist, Normalize};
use shapesafe::models::LeNet5;
use shapesafe::prelude::*;
use shapesafe::train::{TrainConfig, Trainer};

#[test]
fn lenet_loss_falls_on_mnist_small() {
    let mnist = Mnist::load(data_dir().join("mnist-small")).unwrap();
    let dev = TestDevice::seed_from_u64(0);
    let model = dev.build_module::<LeNet5, f32>();
    let opt = Adam::new(&model, AdamConfig::default());
    let config = TrainConfig {
        epochs: 2,
        progress: false,
        ..Default::default()
    };
    let mut trainer = Trainer::new(model, opt, dev).with_config(config);
    let test = DataLoader::new(&mnist.test, 100)
        .unwrap()
        .transform(Normalize::mnist());
    let before = trainer.evaluate(&test).unwrap();
    // An untrained 10-way classifier sits near ln(10) = 2.30 and chance accuracy.
    assert!(
        (before.loss - 10f64.ln()).abs() < 0.3,
        "untrained loss {}",
        before.loss
    );

    let train = DataLoader::new(&mnist.train, 32)
        .unwrap()
        .shuffle(0)
        .transform(Normalize::mnist());
    trainer.fit(&train, &test).unwrap();

    let after = trainer.evaluate(&test).unwrap();
    assert!(
        after.loss < 0.5 * before.loss,
        "test loss {} -> {}",
        before.loss,
        after.loss
    );
    assert!(
        after.accuracy > 0.85,
        "test accuracy after two epochs: {}",
        after.accuracy
    );
    // The mean training loss falls from the first epoch to the second.
    let epochs = &trainer.history().records;
    assert_eq!(epochs.len(), 2);
    assert!(
        epochs[1].train_loss < 0.8 * epochs[0].train_loss,
        "training loss per epoch {:?}",
        (epochs[0].train_loss, epochs[1].train_loss)
    );
}
