//! Conv2d kernels (CPU op on the tape, and the composed dfdx-op version) against a
//! plain-loop f64 reference: forward over a grid, gradients by central finite differences.

mod common;

use common::TestDevice;

use common::*;
use shapesafe::kernels::{conv2d::composed, Conv2dKernel};
use shapesafe::prelude::*;

type Dyn4 = (usize, usize, usize, usize);

fn grid() -> Vec<ConvCase> {
    let mut cases = Vec::new();
    for kernel in [1, 2, 3, 5] {
        for stride in [1, 2, 3] {
            for padding in [0, 1, 2] {
                for dilation in [1, 2] {
                    for groups in [1, 2] {
                        for batch in [1, 3] {
                            let c = ConvCase {
                                batch,
                                in_channels: 4,
                                out_channels: 6,
                                height: 7,
                                width: 9,
                                kernel,
                                stride,
                                padding,
                                dilation,
                                groups,
                            };
                            if c.fits() {
                                cases.push(c);
                            }
                        }
                    }
                }
            }
        }
    }
    cases
}

struct Tensors<E: Dtype> {
    x: Tensor<Dyn4, E, TestDevice>,
    w: Tensor<Dyn4, E, TestDevice>,
    b: Tensor<(usize,), E, TestDevice>,
}

fn tensors<E: Dtype>(dev: &TestDevice, c: &ConvCase, x: &[f64], w: &[f64], b: &[f64]) -> Tensors<E>
where
    TestDevice: TensorFromVec<E>,
{
    let cast = |v: &[f64]| {
        v.iter()
            .map(|&a| E::from_f64(a).unwrap())
            .collect::<Vec<E>>()
    };
    let cg = c.in_channels / c.groups;
    Tensors {
        x: dev.tensor_from_vec(cast(x), (c.batch, c.in_channels, c.height, c.width)),
        w: dev.tensor_from_vec(cast(w), (c.out_channels, cg, c.kernel, c.kernel)),
        b: dev.tensor_from_vec(cast(b), (c.out_channels,)),
    }
}

fn out_shape(c: &ConvCase) -> Dyn4 {
    (
        c.batch,
        c.out_channels,
        c.out_size(c.height),
        c.out_size(c.width),
    )
}

#[test]
fn forward_matches_reference_over_grid() {
    let dev = TestDevice::default();
    let mut r = rng(1);
    let cases = grid();
    assert!(cases.len() > 150, "grid shrank to {}", cases.len());
    for c in cases {
        let (x, w, b) = (
            random_vec(&mut r, c.input_len()),
            random_vec(&mut r, c.weight_len()),
            random_vec(&mut r, c.out_channels),
        );
        let expected = conv2d_reference(&c, &x, &w, &b);
        let what = format!("{c:?}");

        let t = tensors::<f64>(&dev, &c, &x, &w, &b);
        let y = TestDevice::try_conv2d(t.x, &t.w, &t.b, c.geometry(), out_shape(&c)).unwrap();
        assert_close(
            &format!("cpu f64 {what}"),
            &y.as_vec(),
            &expected,
            F64_TIGHT,
        );

        let t = tensors::<f32>(&dev, &c, &x, &w, &b);
        let y = TestDevice::try_conv2d(t.x, &t.w, &t.b, c.geometry(), out_shape(&c)).unwrap();
        assert_close_f32(&format!("cpu f32 {what}"), &y.as_vec(), &expected, F32);

        let t = tensors::<f64>(&dev, &c, &x, &w, &b);
        let y = composed::conv2d(t.x, t.w, t.b, &c.geometry()).unwrap();
        assert_eq!(*y.shape(), out_shape(&c));
        assert_close(
            &format!("composed f64 {what}"),
            &y.as_vec(),
            &expected,
            F64_TIGHT,
        );
    }
}

/// A non-contiguous input (a permuted tensor) is read in its logical order.
#[test]
fn forward_accepts_permuted_input() {
    let dev = TestDevice::default();
    let c = ConvCase {
        batch: 2,
        in_channels: 3,
        out_channels: 2,
        height: 5,
        width: 4,
        kernel: 3,
        stride: 1,
        padding: 1,
        dilation: 1,
        groups: 1,
    };
    let mut r = rng(2);
    let (x, w, b) = (
        random_vec(&mut r, c.input_len()),
        random_vec(&mut r, c.weight_len()),
        random_vec(&mut r, 2),
    );
    let t = tensors::<f64>(&dev, &c, &x, &w, &b);
    // Store the input as (B, C, W, H) and permute it back: same values, other strides.
    let swapped = t.x.clone().permute::<_, Axes4<0, 1, 3, 2>>().contiguous();
    let back = swapped.permute::<_, Axes4<0, 1, 3, 2>>();
    let y = TestDevice::try_conv2d(back, &t.w, &t.b, c.geometry(), out_shape(&c)).unwrap();
    assert_close(
        "permuted",
        &y.as_vec(),
        &conv2d_reference(&c, &x, &w, &b),
        F64_TIGHT,
    );
}

fn gradient_cases() -> Vec<ConvCase> {
    let base = ConvCase {
        batch: 2,
        in_channels: 4,
        out_channels: 4,
        height: 6,
        width: 5,
        kernel: 3,
        stride: 1,
        padding: 0,
        dilation: 1,
        groups: 1,
    };
    vec![
        base,
        ConvCase {
            padding: 1,
            stride: 2,
            ..base
        },
        ConvCase {
            dilation: 2,
            padding: 2,
            ..base
        },
        ConvCase {
            groups: 2,
            padding: 1,
            ..base
        },
        ConvCase {
            groups: 4,
            kernel: 2,
            stride: 2,
            ..base
        },
        ConvCase {
            kernel: 1,
            batch: 1,
            ..base
        },
    ]
}

/// Gradients of `sum(conv(x, w) + b) * r)` against central differences of the reference.
fn check_gradients(
    c: &ConvCase,
    run: impl Fn(Tensors<f64>, Tensor<Dyn4, f64, TestDevice>) -> (Vec<f64>, Vec<f64>, Vec<f64>),
    label: &str,
) {
    let dev = TestDevice::default();
    let mut rn = rng(3);
    let (x, w, b) = (
        random_vec(&mut rn, c.input_len()),
        random_vec(&mut rn, c.weight_len()),
        random_vec(&mut rn, c.out_channels),
    );
    let r = random_vec(&mut rn, c.output_len());
    let (gx, gw, gb) = run(
        tensors::<f64>(&dev, c, &x, &w, &b),
        dev.tensor_from_vec(r.clone(), out_shape(c)),
    );
    let what = format!("{label} {c:?}");
    let fx = finite_differences(&x, |x| dot(&conv2d_reference(c, x, &w, &b), &r));
    let fw = finite_differences(&w, |w| dot(&conv2d_reference(c, &x, w, &b), &r));
    let fb = finite_differences(&b, |b| dot(&conv2d_reference(c, &x, &w, b), &r));
    assert_close(&format!("grad input {what}"), &gx, &fx, FINITE_DIFF);
    assert_close(&format!("grad weight {what}"), &gw, &fw, FINITE_DIFF);
    assert_close(&format!("grad bias {what}"), &gb, &fb, FINITE_DIFF);
}

#[test]
fn cpu_gradients_match_finite_differences() {
    for c in gradient_cases() {
        check_gradients(
            &c,
            |t, r| {
                let y = TestDevice::try_conv2d(
                    t.x.leaky_trace(),
                    &t.w,
                    &t.b,
                    c.geometry(),
                    out_shape(&c),
                )
                .unwrap();
                let grads = (y * r).sum().backward();
                (
                    grads.get(&t.x).as_vec(),
                    grads.get(&t.w).as_vec(),
                    grads.get(&t.b).as_vec(),
                )
            },
            "cpu",
        );
    }
}

#[test]
fn composed_gradients_match_finite_differences() {
    for c in gradient_cases() {
        check_gradients(
            &c,
            |t, r| {
                let y =
                    composed::conv2d(t.x.leaky_trace(), t.w.clone(), t.b.clone(), &c.geometry())
                        .unwrap();
                let grads = (y * r).sum().backward();
                (
                    grads.get(&t.x).as_vec(),
                    grads.get(&t.w).as_vec(),
                    grads.get(&t.b).as_vec(),
                )
            },
            "composed",
        );
    }
}

/// Using the same tensor twice adds both gradients, as dfdx does for its own ops.
#[test]
fn gradients_accumulate_across_uses() {
    let dev = TestDevice::default();
    let c = gradient_cases()[0];
    let mut rn = rng(4);
    let (x, w, b) = (
        random_vec(&mut rn, c.input_len()),
        random_vec(&mut rn, c.weight_len()),
        random_vec(&mut rn, c.out_channels),
    );
    let t = tensors::<f64>(&dev, &c, &x, &w, &b);
    let once = {
        let y = TestDevice::try_conv2d(t.x.leaky_trace(), &t.w, &t.b, c.geometry(), out_shape(&c))
            .unwrap();
        y.sum().backward()
    };
    let twice = {
        let traced = t.x.leaky_trace();
        let y1 = TestDevice::try_conv2d(
            traced.with_empty_tape(),
            &t.w,
            &t.b,
            c.geometry(),
            out_shape(&c),
        )
        .unwrap();
        let y2 = TestDevice::try_conv2d(traced, &t.w, &t.b, c.geometry(), out_shape(&c)).unwrap();
        (y1 + y2).sum().backward()
    };
    let doubled: Vec<f64> = once.get(&t.w).as_vec().iter().map(|g| 2.0 * g).collect();
    assert_close(
        "weight grad, used twice",
        &twice.get(&t.w).as_vec(),
        &doubled,
        F64_TIGHT,
    );
    let doubled: Vec<f64> = once.get(&t.x).as_vec().iter().map(|g| 2.0 * g).collect();
    assert_close(
        "input grad, used twice",
        &twice.get(&t.x).as_vec(),
        &doubled,
        F64_TIGHT,
    );
}
