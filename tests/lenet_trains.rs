//! LeNet-5 trains on the real mnist-small digits: its loss falls and it learns to classify.

mod common;

use common::TestDevice;
use rand::{rngs::StdRng, SeedableRng};
use shapesafe::data::{data_dir, Batcher, Mnist};
use shapesafe::models::LeNet5;
use shapesafe::prelude::*;
use shapesafe::train::{evaluate, train_epoch};

#[test]
fn lenet_loss_falls_on_mnist_small() {
    let mnist = Mnist::load(data_dir().join("mnist-small")).unwrap();
    let dev = TestDevice::seed_from_u64(0);
    let mut model = dev.build_module::<LeNet5, f32>();
    let before = evaluate::<100, _, _>(&model, &mnist.test, &dev).unwrap();
    // An untrained 10-way classifier sits near ln(10) = 2.30 and chance accuracy.
    assert!(
        (before.loss - 10f32.ln()).abs() < 0.3,
        "untrained loss {}",
        before.loss
    );

    let mut opt = Adam::new(&model, AdamConfig::default());
    let mut rng = StdRng::seed_from_u64(0);
    let batcher = Batcher::shuffled(&mnist.train, &mut rng);
    let mut curve = Vec::new();
    let stats = train_epoch::<32, _, _, _>(&mut model, &mut opt, &batcher, &dev, |_, _, loss| {
        curve.push(loss)
    })
    .unwrap();
    assert_eq!(stats.images, 5000 / 32 * 32);

    let after = evaluate::<100, _, _>(&model, &mnist.test, &dev).unwrap();
    assert!(
        after.loss < 0.5 * before.loss,
        "test loss {} -> {}",
        before.loss,
        after.loss
    );
    assert!(
        after.accuracy > 0.85,
        "test accuracy after one epoch: {}",
        after.accuracy
    );
    // The running mean of the training loss falls over the epoch.
    assert!(
        curve[curve.len() - 1] < 0.6 * curve[9],
        "running loss {:?}",
        (curve[9], curve.last())
    );
}
