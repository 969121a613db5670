//! Pooling kernels (CPU op on the tape, and the composed dfdx-op version) against a
//! plain-loop f64 reference: forward over a grid, gradients by central finite differences.

mod common;

use common::TestDevice;

use common::*;
use shapesafe::kernels::{pool2d::composed, Pool2dKernel, PoolKind};
use shapesafe::prelude::*;

type Dyn4 = (usize, usize, usize, usize);

fn grid() -> Vec<PoolCase> {
    let mut cases = Vec::new();
    for kernel in [1, 2, 3, 4] {
        for stride in [1, 2, 3] {
            for padding in [0, 1, 2] {
                for batch in [1, 3] {
                    let c = PoolCase {
                        batch,
                        channels: 3,
                        height: 7,
                        width: 6,
                        kernel,
                        stride,
                        padding,
                    };
                    if c.fits() {
                        cases.push(c);
                    }
                }
            }
        }
    }
    cases
}

fn out_shape(c: &PoolCase) -> Dyn4 {
    (
        c.batch,
        c.channels,
        c.out_size(c.height),
        c.out_size(c.width),
    )
}

fn input(dev: &TestDevice, c: &PoolCase, x: &[f64]) -> Tensor<Dyn4, f64, TestDevice> {
    dev.tensor_from_vec(x.to_vec(), (c.batch, c.channels, c.height, c.width))
}

#[test]
fn forward_matches_reference_over_grid() {
    let dev = TestDevice::default();
    let mut r = rng(10);
    let cases = grid();
    assert!(cases.len() > 40, "grid shrank to {}", cases.len());
    for c in cases {
        let x = random_vec(&mut r, c.input_len());
        for (kind, max) in [(PoolKind::Max, true), (PoolKind::Avg, false)] {
            let expected = pool2d_reference(&c, &x, max);
            let what = format!("{kind:?} {c:?}");
            let y = TestDevice::try_pool2d(input(&dev, &c, &x), kind, c.geometry(), out_shape(&c))
                .unwrap();
            assert_close(
                &format!("cpu f64 {what}"),
                &y.as_vec(),
                &expected,
                F64_TIGHT,
            );

            let x32: Tensor<Dyn4, f32, TestDevice> = dev.tensor_from_vec(
                x.iter().map(|&v| v as f32).collect(),
                (c.batch, c.channels, c.height, c.width),
            );
            let y = TestDevice::try_pool2d(x32, kind, c.geometry(), out_shape(&c)).unwrap();
            assert_close_f32(&format!("cpu f32 {what}"), &y.as_vec(), &expected, F32);

            let y = composed::pool2d(input(&dev, &c, &x), kind, &c.geometry()).unwrap();
            assert_close(
                &format!("composed {what}"),
                &y.as_vec(),
                &expected,
                F64_TIGHT,
            );
        }
    }
}

#[test]
fn gradients_match_finite_differences() {
    let dev = TestDevice::default();
    let cases = [
        PoolCase {
            batch: 2,
            channels: 2,
            height: 6,
            width: 5,
            kernel: 2,
            stride: 2,
            padding: 0,
        },
        PoolCase {
            batch: 1,
            channels: 3,
            height: 5,
            width: 5,
            kernel: 3,
            stride: 1,
            padding: 1,
        },
        PoolCase {
            batch: 2,
            channels: 1,
            height: 7,
            width: 6,
            kernel: 3,
            stride: 2,
            padding: 1,
        },
    ];
    let mut rn = rng(11);
    for c in cases {
        // Distinct values keep max pooling differentiable at the sample point.
        let x = random_vec(&mut rn, c.input_len());
        let r = random_vec(
            &mut rn,
            c.batch * c.channels * c.out_size(c.height) * c.out_size(c.width),
        );
        for (kind, max) in [(PoolKind::Max, true), (PoolKind::Avg, false)] {
            let fd = finite_differences(&x, |x| dot(&pool2d_reference(&c, x, max), &r));
            let rt = dev.tensor_from_vec(r.clone(), out_shape(&c));

            let xt = input(&dev, &c, &x);
            let y = TestDevice::try_pool2d(xt.leaky_trace(), kind, c.geometry(), out_shape(&c))
                .unwrap();
            let g = (y * rt.clone()).sum().backward().get(&xt).as_vec();
            assert_close(&format!("cpu grad {kind:?} {c:?}"), &g, &fd, FINITE_DIFF);

            let xt = input(&dev, &c, &x);
            let y = composed::pool2d(xt.leaky_trace(), kind, &c.geometry()).unwrap();
            let g = (y * rt).sum().backward().get(&xt).as_vec();
            assert_close(
                &format!("composed grad {kind:?} {c:?}"),
                &g,
                &fd,
                FINITE_DIFF,
            );
        }
    }
}
