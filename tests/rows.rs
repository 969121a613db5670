//! `Rows`: the sequential view of a one-channel image, batched (`Const` and `usize`) and unbatched.

mod common;

use common::TestDevice;
use shapesafe::data::{DataLoader, Dataset, MnistSplit};
use shapesafe::prelude::*;

#[test]
fn step_t_is_row_t_of_each_image() {
    let dev = TestDevice::default();
    let x: Tensor<Rank4<3, 1, 5, 4>, f64, _> = dev.sample_normal();
    let y: Tensor<Rank3<3, 5, 4>, f64, _> = Rows.forward(x.clone());
    let (x, y) = (x.as_vec(), y.as_vec());
    for b in 0..3 {
        for row in 0..5 {
            for col in 0..4 {
                // With one channel, (B, 1, H, W) and (B, H, W) index alike.
                assert_eq!(y[(b * 5 + row) * 4 + col], x[(b * 5 + row) * 4 + col]);
            }
        }
    }

    let single: Tensor<Rank3<1, 5, 4>, f64, _> = dev.sample_normal();
    let rows: Tensor<Rank2<5, 4>, f64, _> = Rows.forward(single.clone());
    assert_eq!(rows.as_vec(), single.as_vec());
}

#[test]
fn a_runtime_batch_of_mnist_becomes_28_steps_of_28_pixels() {
    let mut pixels = vec![0u8; 2 * 784];
    for (i, p) in pixels.iter_mut().enumerate() {
        *p = (i % 251) as u8;
    }
    let split = MnistSplit::new(pixels, vec![3, 7]).unwrap();
    let dev = TestDevice::default();
    let batch = DataLoader::new(&split, 2)
        .unwrap()
        .epoch(0, &dev)
        .next()
        .unwrap()
        .unwrap();
    let seq: Tensor<(usize, Const<28>, Const<28>), f32, _> = Rows.forward(batch.inputs);
    assert_eq!(seq.shape().concrete(), [2, 28, 28]);
    let seq = seq.as_vec();
    let mut image = [0.0f32; 784];
    for b in 0..2 {
        split.get(b, &mut image).unwrap();
        for row in 0..28 {
            assert_eq!(
                &seq[(b * 28 + row) * 28..(b * 28 + row + 1) * 28],
                &image[row * 28..(row + 1) * 28]
            );
        }
    }
}

#[test]
fn gradients_pass_through_unchanged() {
    let dev = TestDevice::default();
    let x: Tensor<Rank4<2, 1, 3, 3>, f64, _> = dev.sample_normal();
    let weights: Tensor<Rank3<2, 3, 3>, f64, _> = dev.sample_normal();
    let y = Rows.forward(x.leaky_trace());
    let loss = (y * weights.clone()).sum();
    let grads = loss.backward();
    // d(sum(w * rows(x)))/dx is w laid back out as (B, 1, H, W).
    assert_eq!(grads.get(&x).as_vec(), weights.as_vec());
}

#[test]
fn summaries_show_the_sequence_shape() {
    let summary = Summary::of::<Rows, Rank3<1, 28, 28>>();
    let text = summary.to_string();
    assert!(text.contains("Rows"), "{text}");
    assert!(text.contains("(28, 28)"), "{text}");
}
