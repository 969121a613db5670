//! ConvTranspose2d: the CPU op on the tape and the composed dfdx-op version against a
//! plain-loop f64 reference over a grid of geometries, gradients by central finite
//! differences, and the layer with `Const` batch, `usize` batch and unbatched inputs.

mod common;

use common::TestDevice;

use common::*;
use shapesafe::kernels::{
    conv_transpose2d::composed, ConvTranspose2dGeometry, ConvTranspose2dKernel,
};
use shapesafe::prelude::*;

type Dyn4 = (usize, usize, usize, usize);

/// One transposed-convolution case, all numbers runtime.
#[derive(Clone, Copy, Debug)]
struct Case {
    batch: usize,
    in_channels: usize,
    out_channels: usize,
    height: usize,
    width: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    output_padding: usize,
    dilation: usize,
    groups: usize,
}

impl Case {
    /// `(n - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1`,
    /// or `None` when that is not positive.
    fn out_size(&self, n: usize) -> Option<usize> {
        let full =
            (n - 1) * self.stride + self.dilation * (self.kernel - 1) + self.output_padding + 1;
        full.checked_sub(2 * self.padding).filter(|&s| s > 0)
    }
    /// PyTorch accepts the case: output padding below stride or dilation, a non-empty output.
    fn valid(&self) -> bool {
        (self.output_padding < self.stride || self.output_padding < self.dilation)
            && self.out_size(self.height).is_some()
            && self.out_size(self.width).is_some()
    }
    fn out_hw(&self) -> (usize, usize) {
        (
            self.out_size(self.height).unwrap(),
            self.out_size(self.width).unwrap(),
        )
    }
    fn input_len(&self) -> usize {
        self.batch * self.in_channels * self.height * self.width
    }
    fn weight_len(&self) -> usize {
        self.in_channels * (self.out_channels / self.groups) * self.kernel * self.kernel
    }
    fn output_len(&self) -> usize {
        let (oh, ow) = self.out_hw();
        self.batch * self.out_channels * oh * ow
    }
    fn out_shape(&self) -> Dyn4 {
        let (oh, ow) = self.out_hw();
        (self.batch, self.out_channels, oh, ow)
    }
    fn geometry(&self) -> ConvTranspose2dGeometry {
        let (out_height, out_width) = self.out_hw();
        ConvTranspose2dGeometry {
            batch: self.batch,
            in_channels: self.in_channels,
            out_channels: self.out_channels,
            in_height: self.height,
            in_width: self.width,
            out_height,
            out_width,
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
            groups: self.groups,
        }
    }
}

/// Transposed convolution by its definition, one output element at a time: output
/// `(oy, ox)` sums `x[iy, ix] * w[c, o, ky, kx]` over every input pixel and tap with
/// `iy * stride - padding + ky * dilation == oy` (and likewise for `x`).
fn reference(c: &Case, x: &[f64], w: &[f64], bias: &[f64]) -> Vec<f64> {
    let (oh, ow) = c.out_hw();
    let (cg, og) = (c.in_channels / c.groups, c.out_channels / c.groups);
    // The input index that reaches output `o` through tap offset `t`, if any.
    let source = |o: usize, t: usize, len: usize| -> Option<usize> {
        let shifted = (o + c.padding) as isize - t as isize;
        if shifted < 0 || !(shifted as usize).is_multiple_of(c.stride) {
            return None;
        }
        let i = shifted as usize / c.stride;
        (i < len).then_some(i)
    };
    let mut out = vec![0.0; c.output_len()];
    for b in 0..c.batch {
        for oc in 0..c.out_channels {
            let group = oc / og;
            let o = oc % og;
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = bias[oc];
                    for ci in 0..cg {
                        let ch = group * cg + ci;
                        for ky in 0..c.kernel {
                            let Some(iy) = source(oy, ky * c.dilation, c.height) else {
                                continue;
                            };
                            for kx in 0..c.kernel {
                                let Some(ix) = source(ox, kx * c.dilation, c.width) else {
                                    continue;
                                };
                                let xi = ((b * c.in_channels + ch) * c.height + iy) * c.width + ix;
                                let wi = ((ch * og + o) * c.kernel + ky) * c.kernel + kx;
                                acc += x[xi] * w[wi];
                            }
                        }
                    }
                    out[((b * c.out_channels + oc) * oh + oy) * ow + ox] = acc;
                }
            }
        }
    }
    out
}

fn grid() -> Vec<Case> {
    let mut cases = Vec::new();
    for kernel in [1, 2, 3] {
        for stride in [1, 2, 3] {
            for padding in [0, 1, 2] {
                for output_padding in [0, 1, 2] {
                    for dilation in [1, 2] {
                        for groups in [1, 2] {
                            for batch in [1, 3] {
                                let c = Case {
                                    batch,
                                    in_channels: 4,
                                    out_channels: 6,
                                    height: 4,
                                    width: 5,
                                    kernel,
                                    stride,
                                    padding,
                                    output_padding,
                                    dilation,
                                    groups,
                                };
                                if c.valid() {
                                    cases.push(c);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    cases
}

struct Tensors<E: Dtype, D: Storage<E> = TestDevice> {
    x: Tensor<Dyn4, E, D>,
    w: Tensor<Dyn4, E, D>,
    b: Tensor<(usize,), E, D>,
}

fn tensors<E: Dtype, D: TensorFromVec<E>>(
    dev: &D,
    c: &Case,
    x: &[f64],
    w: &[f64],
    b: &[f64],
) -> Tensors<E, D> {
    let cast = |v: &[f64]| {
        v.iter()
            .map(|&a| E::from_f64(a).unwrap())
            .collect::<Vec<E>>()
    };
    let og = c.out_channels / c.groups;
    Tensors {
        x: dev.tensor_from_vec(cast(x), (c.batch, c.in_channels, c.height, c.width)),
        w: dev.tensor_from_vec(cast(w), (c.in_channels, og, c.kernel, c.kernel)),
        b: dev.tensor_from_vec(cast(b), (c.out_channels,)),
    }
}

#[test]
fn grid_covers_the_geometries() {
    let cases = grid();
    assert!(cases.len() > 300, "grid shrank to {}", cases.len());
    // Output padding at or above the stride is only valid thanks to the dilation.
    assert!(cases
        .iter()
        .any(|c| c.output_padding >= c.stride && c.output_padding < c.dilation));
    // Padding that crops more than the kernel adds (negative conv-equivalent padding).
    assert!(cases
        .iter()
        .any(|c| c.padding > c.dilation * (c.kernel - 1)));
    assert!(cases.iter().all(|c| c.valid()));
}

#[test]
fn forward_matches_reference_over_grid() {
    let dev = TestDevice::default();
    let mut r = rng(1);
    for c in grid() {
        let (x, w, b) = (
            random_vec(&mut r, c.input_len()),
            random_vec(&mut r, c.weight_len()),
            random_vec(&mut r, c.out_channels),
        );
        let expected = reference(&c, &x, &w, &b);
        let what = format!("{c:?}");

        let t = tensors::<f64, _>(&dev, &c, &x, &w, &b);
        let y =
            TestDevice::try_conv_transpose2d(t.x, &t.w, &t.b, c.geometry(), c.out_shape()).unwrap();
        assert_close(
            &format!("cpu f64 {what}"),
            &y.as_vec(),
            &expected,
            F64_TIGHT,
        );

        let t = tensors::<f32, _>(&dev, &c, &x, &w, &b);
        let y =
            TestDevice::try_conv_transpose2d(t.x, &t.w, &t.b, c.geometry(), c.out_shape()).unwrap();
        assert_close_f32(&format!("cpu f32 {what}"), &y.as_vec(), &expected, F32);

        let t = tensors::<f64, _>(&dev, &c, &x, &w, &b);
        let y = composed::conv_transpose2d(t.x, t.w, t.b, &c.geometry()).unwrap();
        assert_eq!(*y.shape(), c.out_shape());
        assert_close(
            &format!("composed f64 {what}"),
            &y.as_vec(),
            &expected,
            F64_TIGHT,
        );
    }
}

/// Larger channel counts and a batch big enough for the image-per-task path on any core count.
#[test]
fn forward_matches_reference_on_larger_cases() {
    let dev = TestDevice::default();
    let mut r = rng(5);
    let base = Case {
        batch: 2 * std::thread::available_parallelism().map_or(8, |n| n.get()),
        in_channels: 6,
        out_channels: 9,
        height: 7,
        width: 3,
        kernel: 3,
        stride: 2,
        padding: 1,
        output_padding: 1,
        dilation: 1,
        groups: 3,
    };
    for c in [
        base,
        Case {
            kernel: 1,
            stride: 1,
            padding: 0,
            output_padding: 0,
            ..base
        },
    ] {
        let (x, w, b) = (
            random_vec(&mut r, c.input_len()),
            random_vec(&mut r, c.weight_len()),
            random_vec(&mut r, c.out_channels),
        );
        let t = tensors::<f64, _>(&dev, &c, &x, &w, &b);
        let y =
            TestDevice::try_conv_transpose2d(t.x, &t.w, &t.b, c.geometry(), c.out_shape()).unwrap();
        assert_close(
            &format!("{c:?}"),
            &y.as_vec(),
            &reference(&c, &x, &w, &b),
            F64_TIGHT,
        );
    }
}

/// A non-contiguous input (a permuted tensor) is read in its logical order.
#[test]
fn forward_accepts_permuted_input() {
    let dev = TestDevice::default();
    let c = gradient_cases()[1];
    let mut r = rng(2);
    let (x, w, b) = (
        random_vec(&mut r, c.input_len()),
        random_vec(&mut r, c.weight_len()),
        random_vec(&mut r, c.out_channels),
    );
    let t = tensors::<f64, _>(&dev, &c, &x, &w, &b);
    let swapped = t.x.clone().permute::<_, Axes4<0, 1, 3, 2>>().contiguous();
    let back = swapped.permute::<_, Axes4<0, 1, 3, 2>>();
    let y =
        TestDevice::try_conv_transpose2d(back, &t.w, &t.b, c.geometry(), c.out_shape()).unwrap();
    assert_close(
        "permuted",
        &y.as_vec(),
        &reference(&c, &x, &w, &b),
        F64_TIGHT,
    );
}

/// Tensors whose sizes disagree with the geometry are an error, not a wrong answer. This is
/// the CPU kernel's own check, so it runs on the CPU in every build.
#[test]
fn mismatched_sizes_are_an_error() {
    let dev = Cpu::default();
    let c = gradient_cases()[0];
    let t = tensors::<f64, _>(
        &dev,
        &c,
        &vec![0.0; c.input_len()],
        &vec![0.0; c.weight_len()],
        &vec![0.0; c.out_channels],
    );
    let wrong = Case { stride: 2, ..c };
    let result = Cpu::try_conv_transpose2d(t.x, &t.w, &t.b, wrong.geometry(), c.out_shape());
    assert!(matches!(result, Err(CpuError::WrongNumElements)));
}

fn gradient_cases() -> Vec<Case> {
    let base = Case {
        batch: 2,
        in_channels: 4,
        out_channels: 4,
        height: 3,
        width: 4,
        kernel: 3,
        stride: 1,
        padding: 0,
        output_padding: 0,
        dilation: 1,
        groups: 1,
    };
    vec![
        base,
        Case {
            stride: 2,
            padding: 1,
            output_padding: 1,
            ..base
        },
        Case {
            dilation: 2,
            padding: 2,
            output_padding: 1,
            ..base
        },
        Case {
            groups: 2,
            stride: 3,
            padding: 1,
            output_padding: 2,
            ..base
        },
        Case {
            groups: 4,
            kernel: 2,
            stride: 2,
            ..base
        },
        Case {
            kernel: 1,
            batch: 1,
            ..base
        },
        Case {
            batch: 3,
            out_channels: 2,
            groups: 2,
            padding: 2,
            ..base
        },
    ]
}

/// Gradients of `sum(conv_transpose(x, w, b) * r)` against central differences of the reference.
fn check_gradients(
    c: &Case,
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
        tensors::<f64, _>(&dev, c, &x, &w, &b),
        dev.tensor_from_vec(r.clone(), c.out_shape()),
    );
    let what = format!("{label} {c:?}");
    let fx = finite_differences(&x, |x| dot(&reference(c, x, &w, &b), &r));
    let fw = finite_differences(&w, |w| dot(&reference(c, &x, w, &b), &r));
    let fb = finite_differences(&b, |b| dot(&reference(c, &x, &w, b), &r));
    assert_close(&format!("grad input {what}"), &gx, &fx, FINITE_DIFF);
    assert_close(&format!("grad weight {what}"), &gw, &fw, FINITE_DIFF);
    assert_close(&format!("grad bias {what}"), &gb, &fb, FINITE_DIFF);
}

#[test]
fn cpu_gradients_match_finite_differences() {
    for c in gradient_cases() {
        assert!(c.valid(), "{c:?}");
        check_gradients(
            &c,
            |t, r| {
                let y = TestDevice::try_conv_transpose2d(
                    t.x.leaky_trace(),
                    &t.w,
                    &t.b,
                    c.geometry(),
                    c.out_shape(),
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
                let y = composed::conv_transpose2d(
                    t.x.leaky_trace(),
                    t.w.clone(),
                    t.b.clone(),
                    &c.geometry(),
                )
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

/// Using the same tensors twice adds both gradients, as dfdx does for its own ops.
#[test]
fn gradients_accumulate_across_uses() {
    let dev = TestDevice::default();
    let c = gradient_cases()[1];
    let mut rn = rng(4);
    let (x, w, b) = (
        random_vec(&mut rn, c.input_len()),
        random_vec(&mut rn, c.weight_len()),
        random_vec(&mut rn, c.out_channels),
    );
    let t = tensors::<f64, _>(&dev, &c, &x, &w, &b);
    let run =
        |x| TestDevice::try_conv_transpose2d(x, &t.w, &t.b, c.geometry(), c.out_shape()).unwrap();
    let once = run(t.x.leaky_trace()).sum().backward();
    let traced = t.x.leaky_trace();
    let twice = (run(traced.with_empty_tape()) + run(traced))
        .sum()
        .backward();
    let double = |v: Vec<f64>| v.into_iter().map(|g| 2.0 * g).collect::<Vec<_>>();
    for (name, a, b) in [
        ("input", twice.get(&t.x).as_vec(), once.get(&t.x).as_vec()),
        ("weight", twice.get(&t.w).as_vec(), once.get(&t.w).as_vec()),
        ("bias", twice.get(&t.b).as_vec(), once.get(&t.b).as_vec()),
    ] {
        assert_close(
            &format!("{name} grad, used twice"),
            &a,
            &double(b),
            F64_TIGHT,
        );
    }
}

// ---- The layer ----

/// The reference `Case` of a layer with these generics on a `(batch, IN, H, W)` input.
#[allow(clippy::too_many_arguments)]
fn layer_case(
    batch: usize,
    [in_channels, out_channels, kernel, stride, padding, output_padding, dilation, groups]: [usize;
        8],
    (height, width): (usize, usize),
) -> Case {
    Case {
        batch,
        in_channels,
        out_channels,
        height,
        width,
        kernel,
        stride,
        padding,
        output_padding,
        dilation,
        groups,
    }
}

type Layer = ConvTranspose2d<4, 6, 3, 2, 1, 1, 1, 2>;
/// `Layer`'s output dim on input dim `H`.
type Up<H> = ConvTransposeOut<H, 3, 2, 1, 1, 1>;
/// `Layer`'s output on a `(3, 4, 5, 4)` batch, spelled out so the test pins the types.
type LayerOut = (Const<3>, Const<6>, Up<Const<5>>, Up<Const<4>>);
const LAYER: [usize; 8] = [4, 6, 3, 2, 1, 1, 1, 2];

#[test]
fn layer_forward_const_batch_usize_batch_and_unbatched() {
    let dev = TestDevice::default();
    let layer = dev.build_module::<Layer, f64>();
    assert_eq!(layer.weight.shape().concrete(), [4, 3, 3, 3]);
    let (w, b) = (layer.weight.as_vec(), layer.bias.as_vec());
    let mut r = rng(6);

    // Const batch: (3, 4, 5, 4) -> (3, 6, 10, 8).
    let c = layer_case(3, LAYER, (5, 4));
    let xv = random_vec(&mut r, c.input_len());
    let x: Tensor<Rank4<3, 4, 5, 4>, f64, _> = dev.tensor_from_vec(xv.clone(), Default::default());
    let y: Tensor<LayerOut, f64, _> = layer.forward(x);
    assert_eq!(y.shape().concrete(), [3, 6, 10, 8]);
    let expected = reference(&c, &xv, &w, &b);
    assert_close("const batch", &y.as_vec(), &expected, F64_TIGHT);

    // usize batch, same values.
    let x = dev.tensor_from_vec(xv.clone(), (3usize, Const::<4>, Const::<5>, Const::<4>));
    let y = layer.forward(x);
    assert_eq!(y.shape().0, 3);
    assert_eq!(y.shape().concrete(), [3, 6, 10, 8]);
    assert_close("usize batch", &y.as_vec(), &expected, F64_TIGHT);

    // Unbatched: the first image alone.
    let c1 = layer_case(1, LAYER, (5, 4));
    let x: Tensor<Rank3<4, 5, 4>, f64, _> =
        dev.tensor_from_vec(xv[..c1.input_len()].to_vec(), Default::default());
    let y = layer.forward(x);
    assert_eq!(y.shape().concrete(), [6, 10, 8]);
    assert_close(
        "unbatched",
        &y.as_vec(),
        &expected[..c1.output_len()],
        F64_TIGHT,
    );
}

#[test]
fn layer_gradients_match_finite_differences() {
    let dev = TestDevice::default();
    let layer = dev.build_module::<ConvTranspose2d<2, 2, 3, 2, 1, 1, 1, 1>, f64>();
    let x: Tensor<Rank3<2, 3, 3>, f64, _> = dev.sample_normal();
    check_input_gradient("unbatched input", &x, |x| layer.forward(x));
    let x: Tensor<Rank4<2, 2, 3, 3>, f64, _> = dev.sample_normal();
    check_input_gradient("batched input", &x, |x| layer.forward(x));

    // Parameter gradients through the layer, against the reference.
    let c = layer_case(2, [2, 2, 3, 2, 1, 1, 1, 1], (3, 3));
    let mut grads = layer.alloc_grads();
    let r = random_vec(&mut rng(8), c.output_len());
    let y = layer.forward(x.trace(grads));
    assert_eq!(y.shape().concrete(), [2, 2, 6, 6]);
    let rt = dev.tensor_from_vec(r.clone(), *y.shape());
    grads = (y * rt).sum().backward();
    let (xv, w, b) = (x.as_vec(), layer.weight.as_vec(), layer.bias.as_vec());
    let fw = finite_differences(&w, |w| dot(&reference(&c, &xv, w, &b), &r));
    let fb = finite_differences(&b, |b| dot(&reference(&c, &xv, &w, b), &r));
    assert_close(
        "layer weight grad",
        &grads.get(&layer.weight).as_vec(),
        &fw,
        FINITE_DIFF,
    );
    assert_close(
        "layer bias grad",
        &grads.get(&layer.bias).as_vec(),
        &fb,
        FINITE_DIFF,
    );
}

#[test]
fn conv_then_transpose_restores_mnist_size() {
    type AutoEncoder = (Conv2d<1, 8, 3, 2, 1>, ConvTranspose2d<8, 1, 3, 2, 1, 1>);
    shapesafe::assert_shapes!(AutoEncoder: Rank3<1, 28, 28> => Rank3<1, 28, 28>);
    let dev = TestDevice::default();
    let model = dev.build_module::<AutoEncoder, f32>();
    let x: Tensor<Rank4<2, 1, 28, 28>, f32, _> = dev.sample_normal();
    let y: Tensor<(Const<2>, Const<1>, _, _), f32, _> = model.forward(x);
    assert_eq!(y.shape().concrete(), [2, 1, 28, 28]);
    let x: Tensor<Rank3<1, 28, 28>, f32, _> = dev.sample_normal();
    assert_eq!(model.forward(x).shape().concrete(), [1, 28, 28]);
}

#[test]
fn shape_inference_params_and_name() {
    type L = ConvTranspose2d<8, 4, 3, 2, 1, 1>;
    type Out = <L as ShapeInfer<Rank3<8, 7, 7>>>::Output;
    assert_eq!(<Out as StaticShape>::DIMS, &[4, 14, 14]);
    assert_eq!(<L as ShapeInfer<Rank3<8, 7, 7>>>::PARAMS, 8 * 4 * 9 + 4);
    assert_eq!(
        <L as ShapeInfer<Rank3<8, 7, 7>>>::name(),
        "ConvTranspose2d<8, 4, 3, 2, 1, 1>"
    );
    type G = ConvTranspose2d<4, 6, 2, 1, 0, 0, 1, 2>;
    assert_eq!(<G as ShapeInfer<Rank3<4, 3, 3>>>::PARAMS, 4 * 3 * 4 + 6);
    assert_eq!(
        <G as ShapeInfer<Rank3<4, 3, 3>>>::name(),
        "ConvTranspose2d<4, 6, 2, 1, 0, 0, 1, 2>"
    );
    // Dilation 2 permits output padding 1 at stride 1.
    type D2 = ConvTranspose2d<1, 1, 2, 1, 0, 1, 2>;
    assert_eq!(
        <<D2 as ShapeInfer<Rank3<1, 3, 3>>>::Output as StaticShape>::DIMS,
        &[1, 6, 6]
    );
    let dev = TestDevice::default();
    let m = dev.build_module::<L, f32>();
    assert_eq!(m.num_trainable_params(), 8 * 4 * 9 + 4);
}

/// PyTorch's init: uniform in ±1/sqrt(OUT / GROUPS * K * K) for weight and bias.
#[test]
fn init_matches_pytorch_bound() {
    type L = ConvTranspose2d<32, 4, 3, 1, 0, 0, 1, 2>;
    let dev = TestDevice::default();
    let m = dev.build_module::<L, f64>();
    // fan_in = weight.size(1) * 3 * 3 = (4 / 2) * 9 = 18, not IN / GROUPS * 9 = 144.
    assert_eq!(
        shapesafe::nn::modules::ConvTranspose2d::<32, 4, 3, 1, 0, 0, 1, 2, f64, TestDevice>::FAN_IN,
        18
    );
    let bound = 1.0 / 18f64.sqrt();
    let w = m.weight.as_vec();
    assert!(w.iter().all(|v| v.abs() <= bound));
    // With 576 draws the largest magnitude is close to the bound, far above 1/sqrt(144).
    let largest = w.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    assert!(largest > 0.9 * bound, "largest {largest}, bound {bound}");
    let b = m.bias.as_vec();
    assert!(b.iter().all(|v| v.abs() <= bound));
    assert!(b.iter().any(|&v| v != 0.0));
}
