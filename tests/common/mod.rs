//! Test helpers: `assert_close`, plain-loop f64 references for conv and pooling, finite differences.
#![allow(dead_code)]

use rand::{rngs::StdRng, Rng, SeedableRng};

pub mod golden;

/// Relative plus absolute tolerance: `|a - b| <= abs + rel * |b|`.
#[derive(Clone, Copy, Debug)]
pub struct Tolerance {
    pub abs: f64,
    pub rel: f64,
}

pub const F64_TIGHT: Tolerance = Tolerance {
    abs: 1e-10,
    rel: 1e-10,
};
/// Ours in f32 against PyTorch in f64: f32 rounding through softmax and layer norm.
pub const F32_VS_F64: Tolerance = Tolerance {
    abs: 1e-5,
    rel: 1e-5,
};
pub const F32: Tolerance = Tolerance {
    abs: 1e-4,
    rel: 1e-4,
};
/// Central differences with eps 1e-6 in f64 are good to about 1e-8.
pub const FINITE_DIFF: Tolerance = Tolerance {
    abs: 1e-6,
    rel: 1e-6,
};

/// Panics naming the first index where `actual` and `expected` differ beyond `tol`.
#[track_caller]
pub fn assert_close(what: &str, actual: &[f64], expected: &[f64], tol: Tolerance) {
    assert_eq!(actual.len(), expected.len(), "{what}: lengths differ");
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let diff = (a - e).abs();
        assert!(
            diff <= tol.abs + tol.rel * e.abs(),
            "{what}: index {i}: got {a}, expected {e}, difference {diff:e} exceeds {tol:?}"
        );
    }
}

/// `assert_close` for f32 results against an f64 reference.
#[track_caller]
pub fn assert_close_f32(what: &str, actual: &[f32], expected: &[f64], tol: Tolerance) {
    let actual: Vec<f64> = actual.iter().map(|&v| v as f64).collect();
    assert_close(what, &actual, expected, tol);
}

pub fn random_vec(rng: &mut StdRng, n: usize) -> Vec<f64> {
    (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect()
}

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// One convolution case, all numbers runtime.
#[derive(Clone, Copy, Debug)]
pub struct ConvCase {
    pub batch: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    pub height: usize,
    pub width: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
    pub groups: usize,
}

impl ConvCase {
    pub fn out_size(&self, n: usize) -> usize {
        (n + 2 * self.padding - self.dilation * (self.kernel - 1) - 1) / self.stride + 1
    }
    pub fn fits(&self) -> bool {
        let span = self.dilation * (self.kernel - 1) + 1;
        span <= self.height + 2 * self.padding && span <= self.width + 2 * self.padding
    }
    pub fn input_len(&self) -> usize {
        self.batch * self.in_channels * self.height * self.width
    }
    pub fn weight_len(&self) -> usize {
        self.out_channels * (self.in_channels / self.groups) * self.kernel * self.kernel
    }
    pub fn output_len(&self) -> usize {
        self.batch * self.out_channels * self.out_size(self.height) * self.out_size(self.width)
    }
    pub fn geometry(&self) -> shapesafe::kernels::Conv2dGeometry {
        shapesafe::kernels::Conv2dGeometry {
            batch: self.batch,
            in_channels: self.in_channels,
            out_channels: self.out_channels,
            in_height: self.height,
            in_width: self.width,
            out_height: self.out_size(self.height),
            out_width: self.out_size(self.width),
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
            groups: self.groups,
        }
    }
}

/// Convolution by its definition, one output element at a time.
pub fn conv2d_reference(c: &ConvCase, x: &[f64], w: &[f64], bias: &[f64]) -> Vec<f64> {
    let (oh, ow) = (c.out_size(c.height), c.out_size(c.width));
    let (cg, og) = (c.in_channels / c.groups, c.out_channels / c.groups);
    let mut out = vec![0.0; c.output_len()];
    for b in 0..c.batch {
        for o in 0..c.out_channels {
            let group = o / og;
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = bias[o];
                    for ci in 0..cg {
                        let ch = group * cg + ci;
                        for ky in 0..c.kernel {
                            for kx in 0..c.kernel {
                                let y =
                                    (oy * c.stride + ky * c.dilation) as isize - c.padding as isize;
                                let xx =
                                    (ox * c.stride + kx * c.dilation) as isize - c.padding as isize;
                                if y < 0
                                    || xx < 0
                                    || y >= c.height as isize
                                    || xx >= c.width as isize
                                {
                                    continue;
                                }
                                let xi = ((b * c.in_channels + ch) * c.height + y as usize)
                                    * c.width
                                    + xx as usize;
                                let wi = ((o * cg + ci) * c.kernel + ky) * c.kernel + kx;
                                acc += x[xi] * w[wi];
                            }
                        }
                    }
                    out[((b * c.out_channels + o) * oh + oy) * ow + ox] = acc;
                }
            }
        }
    }
    out
}

/// One pooling case.
#[derive(Clone, Copy, Debug)]
pub struct PoolCase {
    pub batch: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

impl PoolCase {
    pub fn out_size(&self, n: usize) -> usize {
        (n + 2 * self.padding - self.kernel) / self.stride + 1
    }
    pub fn fits(&self) -> bool {
        self.kernel <= self.height + 2 * self.padding
            && self.kernel <= self.width + 2 * self.padding
            && 2 * self.padding <= self.kernel
    }
    pub fn input_len(&self) -> usize {
        self.batch * self.channels * self.height * self.width
    }
    pub fn geometry(&self) -> shapesafe::kernels::Pool2dGeometry {
        shapesafe::kernels::Pool2dGeometry {
            batch: self.batch,
            channels: self.channels,
            in_height: self.height,
            in_width: self.width,
            out_height: self.out_size(self.height),
            out_width: self.out_size(self.width),
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
        }
    }
}

/// Max (`max = true`) or average pooling by definition; average divides by `kernel^2`
/// (PyTorch's `count_include_pad=True`), max ignores padding.
pub fn pool2d_reference(c: &PoolCase, x: &[f64], max: bool) -> Vec<f64> {
    let (oh, ow) = (c.out_size(c.height), c.out_size(c.width));
    let mut out = Vec::with_capacity(c.batch * c.channels * oh * ow);
    for plane in 0..c.batch * c.channels {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = if max { f64::NEG_INFINITY } else { 0.0 };
                for ky in 0..c.kernel {
                    for kx in 0..c.kernel {
                        let y = (oy * c.stride + ky) as isize - c.padding as isize;
                        let xx = (ox * c.stride + kx) as isize - c.padding as isize;
                        if y < 0 || xx < 0 || y >= c.height as isize || xx >= c.width as isize {
                            continue;
                        }
                        let v = x[(plane * c.height + y as usize) * c.width + xx as usize];
                        acc = if max { acc.max(v) } else { acc + v };
                    }
                }
                out.push(if max {
                    acc
                } else {
                    acc / (c.kernel * c.kernel) as f64
                });
            }
        }
    }
    out
}

/// Central finite differences of `f` with respect to every element of `at`.
pub fn finite_differences(at: &[f64], f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let eps = 1e-6;
    let mut p = at.to_vec();
    (0..at.len())
        .map(|i| {
            let orig = p[i];
            p[i] = orig + eps;
            let up = f(&p);
            p[i] = orig - eps;
            let down = f(&p);
            p[i] = orig;
            (up - down) / (2.0 * eps)
        })
        .collect()
}

pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

type Taped<S> =
    shapesafe::prelude::Tensor<S, f64, TestDevice, shapesafe::prelude::OwnedTape<f64, TestDevice>>;

/// Checks d(sum(w * f(x)))/dx, for fixed random weights `w` in [0.5, 1.5), against central
/// differences (to 1e-7: these are smooth elementwise functions); the weights make every output element count
/// differently. A scalar `f` (`O = Rank0`) is checked as it is, up to that one weight.
#[track_caller]
pub fn check_input_gradient<S, O>(
    what: &str,
    x: &shapesafe::prelude::Tensor<S, f64, TestDevice>,
    f: impl Fn(Taped<S>) -> Taped<O>,
) where
    S: shapesafe::prelude::ConstShape,
    O: shapesafe::prelude::ConstShape,
{
    use shapesafe::prelude::*;
    let dev = x.device().clone();
    let mut r = rng(7);
    let w: Vec<f64> = (0..O::default().num_elements())
        .map(|_| r.gen_range(0.5..1.5))
        .collect();
    let w = dev.tensor_from_vec(w, O::default());
    let objective = |t: Taped<S>| (f(t) * w.clone()).sum();
    let analytic = objective(x.leaky_trace()).backward().get(x).as_vec();
    let numeric = finite_differences(&x.as_vec(), |v| {
        objective(dev.tensor_from_vec(v.to_vec(), *x.shape()).leaky_trace()).array()
    });
    assert_close(
        what,
        &analytic,
        &numeric,
        Tolerance {
            abs: 1e-7,
            rel: 1e-7,
        },
    );
}

/// [`assert_close`] for one number, with `tol` as both the absolute and relative tolerance.
#[track_caller]
pub fn assert_close_scalar(what: &str, actual: f64, expected: f64, tol: f64) {
    assert_close(
        what,
        &[actual],
        &[expected],
        Tolerance { abs: tol, rel: tol },
    );
}

/// The device the suite runs on: dfdx's `Cuda` under `--features cuda`, else its `Cpu`.
#[cfg(feature = "cuda")]
pub type TestDevice = dfdx::tensor::Cuda;
/// The device the suite runs on: dfdx's `Cuda` under `--features cuda`, else its `Cpu`.
#[cfg(not(feature = "cuda"))]
pub type TestDevice = dfdx::tensor::Cpu;
