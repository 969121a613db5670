//! Upsample2d, AdaptiveAvgPool2d and GlobalAvgPool2d against plain-loop f64 references written
//! from PyTorch's formulas: forward values over many sizes (kernels at runtime, typed layers with
//! `Const` batch, `usize` batch and unbatched), values PyTorch prints, central finite-difference
//! gradients, and models with computed dims through `Module` and `ModuleMut`.

mod common;

use common::TestDevice;

use common::*;
use shapesafe::kernels::{resample::composed_resample2d, Resample2dKernel, ResampleAxis};
use shapesafe::prelude::*;

type Dyn4 = (usize, usize, usize, usize);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Nearest,
    Bilinear,
    AlignCorners,
}

/// `upsample_nearest2d` for an integer `scale_factor`: PyTorch computes the source index in
/// `float`, `min(floor(i * (1 / scale)), in - 1)`, after its `out == in` and `out == 2 * in`
/// shortcuts.
fn nearest_index(i: usize, input: usize, scale: usize) -> usize {
    let output = input * scale;
    if output == input {
        i
    } else if output == 2 * input {
        i >> 1
    } else {
        let s = 1.0f32 / scale as f32;
        (((i as f32) * s).floor() as usize).min(input - 1)
    }
}

/// PyTorch's `compute_source_index_and_lambda` (`upsample_bilinear2d`, CPU): the two source
/// indices and their weights for output `i`.
fn bilinear_source(
    i: usize,
    input: usize,
    scale: usize,
    align_corners: bool,
) -> (usize, usize, f64, f64) {
    let output = input * scale;
    if output == input {
        return (i, i, 1.0, 0.0);
    }
    // area_pixel_compute_scale: with scale_factor given, 1 / scale_factor; (in-1)/(out-1) when aligned.
    let ratio = if align_corners {
        if output > 1 {
            (input - 1) as f64 / (output - 1) as f64
        } else {
            0.0
        }
    } else {
        1.0 / scale as f64
    };
    // area_pixel_compute_source_index
    let real = if align_corners {
        ratio * i as f64
    } else {
        let s = ratio * (i as f64 + 0.5) - 0.5;
        if s < 0.0 {
            0.0
        } else {
            s
        }
    };
    // guard_index_and_lambda
    let i0 = (real as usize).min(input - 1);
    let lambda1 = (real - i0 as f64).clamp(0.0, 1.0);
    let offset = if i0 < input - 1 { 1 } else { 0 };
    (i0, i0 + offset, 1.0 - lambda1, lambda1)
}

/// `nn.Upsample(scale_factor=scale, mode=...)` on `planes` planes of `h x w`, one output at a time.
fn upsample_reference(
    mode: Mode,
    x: &[f64],
    planes: usize,
    h: usize,
    w: usize,
    scale: usize,
) -> Vec<f64> {
    let (oh, ow) = (h * scale, w * scale);
    let mut out = Vec::with_capacity(planes * oh * ow);
    for p in 0..planes {
        let at = |r: usize, c: usize| x[(p * h + r) * w + c];
        for i in 0..oh {
            for j in 0..ow {
                out.push(match mode {
                    Mode::Nearest => at(nearest_index(i, h, scale), nearest_index(j, w, scale)),
                    Mode::Bilinear | Mode::AlignCorners => {
                        let aligned = mode == Mode::AlignCorners;
                        let (r0, r1, a0, a1) = bilinear_source(i, h, scale, aligned);
                        let (c0, c1, b0, b1) = bilinear_source(j, w, scale, aligned);
                        a0 * (b0 * at(r0, c0) + b1 * at(r0, c1))
                            + a1 * (b0 * at(r1, c0) + b1 * at(r1, c1))
                    }
                });
            }
        }
    }
    out
}

/// `nn.AdaptiveAvgPool2d((oh, ow))`: window rows `floor(i*h/oh) .. ceil((i+1)*h/oh)`, same for columns.
fn adaptive_reference(
    x: &[f64],
    planes: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
) -> Vec<f64> {
    let start = |i: usize, n: usize, o: usize| (i * n) / o;
    // PyTorch's end_index, `((i + 1) * n + o - 1) / o`.
    let end = |i: usize, n: usize, o: usize| ((i + 1) * n).div_ceil(o);
    let mut out = Vec::with_capacity(planes * oh * ow);
    for p in 0..planes {
        for i in 0..oh {
            for j in 0..ow {
                let mut sum = 0.0;
                let mut count = 0;
                for r in start(i, h, oh)..end(i, h, oh) {
                    for c in start(j, w, ow)..end(j, w, ow) {
                        sum += x[(p * h + r) * w + c];
                        count += 1;
                    }
                }
                out.push(sum / count as f64);
            }
        }
    }
    out
}

/// Mean of each `h x w` plane.
fn global_reference(x: &[f64], planes: usize, h: usize, w: usize) -> Vec<f64> {
    (0..planes)
        .map(|p| x[p * h * w..(p + 1) * h * w].iter().sum::<f64>() / (h * w) as f64)
        .collect()
}

fn axis(mode: Mode, n: usize, scale: usize) -> ResampleAxis {
    match mode {
        Mode::Nearest => ResampleAxis::nearest(n, scale),
        Mode::Bilinear => ResampleAxis::linear(n, scale, false),
        Mode::AlignCorners => ResampleAxis::linear(n, scale, true),
    }
}

/// Runs the CPU kernel (f64 and f32) and the composed version on `x` and compares all three.
fn check_kernels(
    what: &str,
    x: &[f64],
    (b, c, h, w): Dyn4,
    rows: ResampleAxis,
    cols: ResampleAxis,
    expected: &[f64],
) {
    let dev = TestDevice::default();
    let out = (b, c, rows.output_len(), cols.output_len());
    let xt: Tensor<Dyn4, f64, _> = dev.tensor_from_vec(x.to_vec(), (b, c, h, w));
    let y = TestDevice::try_resample2d(xt.clone(), rows.clone(), cols.clone(), out).unwrap();
    assert_close(&format!("cpu f64 {what}"), &y.as_vec(), expected, F64_TIGHT);

    let x32: Tensor<Dyn4, f32, _> =
        dev.tensor_from_vec(x.iter().map(|&v| v as f32).collect(), (b, c, h, w));
    let y = TestDevice::try_resample2d(x32, rows.clone(), cols.clone(), out).unwrap();
    assert_close_f32(&format!("cpu f32 {what}"), &y.as_vec(), expected, F32);

    let y = composed_resample2d(xt, &rows, &cols).unwrap();
    assert_eq!(*y.shape(), out, "composed shape {what}");
    assert_close(
        &format!("composed {what}"),
        &y.as_vec(),
        expected,
        F64_TIGHT,
    );
}

#[test]
fn upsample_kernels_match_reference_over_sizes() {
    let mut r = rng(20);
    let mut cases = 0;
    for mode in [Mode::Nearest, Mode::Bilinear, Mode::AlignCorners] {
        for scale in 1..=4 {
            for (h, w) in [
                (1, 1),
                (1, 4),
                (2, 2),
                (3, 5),
                (4, 3),
                (7, 7),
                (8, 6),
                (13, 10),
            ] {
                let (b, c) = (2, 3);
                let x = random_vec(&mut r, b * c * h * w);
                let expected = upsample_reference(mode, &x, b * c, h, w, scale);
                let what = format!("{mode:?} x{scale} {h}x{w}");
                check_kernels(
                    &what,
                    &x,
                    (b, c, h, w),
                    axis(mode, h, scale),
                    axis(mode, w, scale),
                    &expected,
                );
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 96);
}

#[test]
fn adaptive_kernels_match_reference_over_sizes() {
    let mut r = rng(21);
    let sizes = [
        // (h, w, oh, ow)
        (7, 7, 7, 7),
        (9, 9, 7, 7),
        (13, 13, 7, 7),
        (14, 14, 7, 7),
        (224, 224, 7, 7),
        (224, 200, 7, 7),
        (5, 7, 1, 1),
        (1, 1, 1, 1),
        (1, 1, 3, 2),
        (3, 3, 5, 4),
        (10, 6, 3, 4),
        (11, 5, 2, 3),
        (6, 9, 4, 6),
    ];
    for (h, w, oh, ow) in sizes {
        let (b, c) = (2, 3);
        let x = random_vec(&mut r, b * c * h * w);
        let expected = adaptive_reference(&x, b * c, h, w, oh, ow);
        check_kernels(
            &format!("adaptive {h}x{w} -> {oh}x{ow}"),
            &x,
            (b, c, h, w),
            ResampleAxis::adaptive_average(h, oh),
            ResampleAxis::adaptive_average(w, ow),
            &expected,
        );
    }
}

/// Compares a typed layer with `reference` (which maps `planes` input planes to their outputs)
/// on a `Const` batch, a `usize` batch, an unbatched image, in f64 and f32, and through `forward_mut`.
fn check_layer<L, const H: usize, const W: usize, OH: ConstDim, OW: ConstDim>(
    what: &str,
    mut layer: L,
    reference: impl Fn(&[f64], usize) -> Vec<f64>,
    seed: u64,
) where
    L: Module<
            Tensor<Rank4<2, 3, H, W>, f64, TestDevice>,
            Output = Tensor<(Const<2>, Const<3>, OH, OW), f64, TestDevice>,
        > + Module<
            Tensor<(usize, Const<3>, Const<H>, Const<W>), f64, TestDevice>,
            Output = Tensor<(usize, Const<3>, OH, OW), f64, TestDevice>,
        > + Module<
            Tensor<Rank3<3, H, W>, f64, TestDevice>,
            Output = Tensor<(Const<3>, OH, OW), f64, TestDevice>,
        > + Module<
            Tensor<Rank4<2, 3, H, W>, f32, TestDevice>,
            Output = Tensor<(Const<2>, Const<3>, OH, OW), f32, TestDevice>,
        > + ModuleMut<
            Tensor<Rank4<2, 3, H, W>, f64, TestDevice>,
            Output = Tensor<(Const<2>, Const<3>, OH, OW), f64, TestDevice>,
        >,
{
    let dev = TestDevice::default();
    let mut r = rng(seed);
    let x = random_vec(&mut r, 2 * 3 * H * W);
    let expected = reference(&x, 6);
    let (oh, ow) = (OH::SIZE, OW::SIZE);
    assert_eq!(expected.len(), 6 * oh * ow, "{what}: reference size");

    let xc: Tensor<Rank4<2, 3, H, W>, f64, _> = dev.tensor_from_vec(x.clone(), Default::default());
    let y = layer.forward(xc.clone());
    assert_eq!(y.shape().concrete(), [2, 3, oh, ow], "{what}");
    assert_close(
        &format!("{what} Const batch"),
        &y.as_vec(),
        &expected,
        F64_TIGHT,
    );
    let y = layer.forward_mut(xc);
    assert_close(
        &format!("{what} forward_mut"),
        &y.as_vec(),
        &expected,
        F64_TIGHT,
    );

    let xu: Tensor<(usize, Const<3>, Const<H>, Const<W>), f64, _> =
        dev.tensor_from_vec(x.clone(), (2, Const, Const, Const));
    let y = layer.forward(xu);
    assert_eq!(y.shape().concrete(), [2, 3, oh, ow], "{what}");
    assert_close(
        &format!("{what} usize batch"),
        &y.as_vec(),
        &expected,
        F64_TIGHT,
    );

    let x1: Tensor<Rank3<3, H, W>, f64, _> =
        dev.tensor_from_vec(x[..3 * H * W].to_vec(), Default::default());
    let y = layer.forward(x1);
    assert_close(
        &format!("{what} unbatched"),
        &y.as_vec(),
        &expected[..3 * oh * ow],
        F64_TIGHT,
    );

    let x32: Tensor<Rank4<2, 3, H, W>, f32, _> =
        dev.tensor_from_vec(x.iter().map(|&v| v as f32).collect(), Default::default());
    assert_close_f32(
        &format!("{what} f32"),
        &layer.forward(x32).as_vec(),
        &expected,
        F32,
    );
}

macro_rules! upsample_cases {
    ($($marker:ty, $mode:expr, $scale:literal, $h:literal, $w:literal;)*) => {$(
        check_layer::<_, $h, $w, _, _>(
            concat!("Upsample2d<", $scale, ", ", stringify!($marker), "> ", $h, "x", $w),
            Upsample2d::<$scale, $marker>::default(),
            |x, planes| upsample_reference($mode, x, planes, $h, $w, $scale),
            $h * 100 + $w * 10 + $scale,
        );
    )*};
}

#[test]
fn upsample_layers_match_reference() {
    upsample_cases!(
        Nearest, Mode::Nearest, 1, 3, 4;
        Nearest, Mode::Nearest, 2, 3, 4;
        Nearest, Mode::Nearest, 2, 4, 4;
        Nearest, Mode::Nearest, 3, 5, 2;
        Bilinear, Mode::Bilinear, 1, 3, 4;
        Bilinear, Mode::Bilinear, 2, 3, 4;
        Bilinear, Mode::Bilinear, 2, 4, 4;
        Bilinear, Mode::Bilinear, 3, 5, 2;
        Bilinear, Mode::Bilinear, 3, 1, 1;
        BilinearAlignCorners, Mode::AlignCorners, 1, 3, 4;
        BilinearAlignCorners, Mode::AlignCorners, 2, 3, 4;
        BilinearAlignCorners, Mode::AlignCorners, 2, 4, 4;
        BilinearAlignCorners, Mode::AlignCorners, 3, 5, 2;
        BilinearAlignCorners, Mode::AlignCorners, 3, 1, 1;
    );
    // The default mode is nearest.
    check_layer::<_, 3, 5, _, _>(
        "Upsample2d<2>",
        Upsample2d::<2>::default(),
        |x, planes| upsample_reference(Mode::Nearest, x, planes, 3, 5, 2),
        1,
    );
}

macro_rules! adaptive_cases {
    ($($h:literal, $w:literal => $oh:literal, $ow:literal;)*) => {$(
        check_layer::<_, $h, $w, _, _>(
            concat!("AdaptiveAvgPool2d<", $oh, ", ", $ow, "> on ", $h, "x", $w),
            AdaptiveAvgPool2d::<$oh, $ow>,
            |x, planes| adaptive_reference(x, planes, $h, $w, $oh, $ow),
            $h * 100 + $w,
        );
    )*};
}

#[test]
fn adaptive_layers_match_reference() {
    adaptive_cases!(
        7, 7 => 7, 7;
        9, 9 => 7, 7;
        13, 13 => 7, 7;
        14, 14 => 7, 7;
        224, 224 => 7, 7;
        5, 8 => 1, 1;
        1, 1 => 1, 1;
        1, 1 => 2, 3;
        3, 3 => 5, 4;
        10, 6 => 3, 4;
        11, 5 => 2, 3;
    );
}

#[test]
fn global_layer_matches_reference() {
    let dev = TestDevice::default();
    let mut r = rng(30);
    let x = random_vec(&mut r, 2 * 3 * 5 * 4);
    let expected = global_reference(&x, 6, 5, 4);
    let xc: Tensor<Rank4<2, 3, 5, 4>, f64, _> = dev.tensor_from_vec(x.clone(), Default::default());
    let y: Tensor<Rank2<2, 3>, f64, _> = GlobalAvgPool2d.forward(xc.clone());
    assert_close("global Const batch", &y.as_vec(), &expected, F64_TIGHT);
    let mut layer = GlobalAvgPool2d;
    let y: Tensor<Rank2<2, 3>, f64, _> = layer.forward_mut(xc);
    assert_close("global forward_mut", &y.as_vec(), &expected, F64_TIGHT);
    let xu: Tensor<(usize, Const<3>, Const<5>, Const<4>), f64, _> =
        dev.tensor_from_vec(x.clone(), (2, Const, Const, Const));
    let y: Tensor<(usize, Const<3>), f64, _> = GlobalAvgPool2d.forward(xu);
    assert_eq!(y.shape().concrete(), [2, 3]);
    assert_close("global usize batch", &y.as_vec(), &expected, F64_TIGHT);
    let x1: Tensor<Rank3<3, 5, 4>, f64, _> =
        dev.tensor_from_vec(x[..60].to_vec(), Default::default());
    let y: Tensor<Rank1<3>, f64, _> = GlobalAvgPool2d.forward(x1);
    assert_close("global unbatched", &y.as_vec(), &expected[..3], F64_TIGHT);
    // 1x1 planes pass through.
    let x: Tensor<Rank3<2, 1, 1>, f32, _> = dev.tensor([[[4.0]], [[-2.0]]]);
    assert_eq!(GlobalAvgPool2d.forward(x).array(), [4.0, -2.0]);
}

/// Outputs PyTorch prints for these inputs (`F.interpolate`, `F.adaptive_avg_pool2d`).
#[test]
fn known_pytorch_values() {
    let dev = TestDevice::default();
    let x: Tensor<Rank3<1, 2, 2>, f64, _> = dev.tensor([[[1.0, 2.0], [3.0, 4.0]]]);
    let y = Upsample2d::<2, Bilinear>::default().forward(x.clone());
    assert_close(
        "bilinear 2x",
        &y.as_vec(),
        &[
            1.0, 1.25, 1.75, 2.0, //
            1.5, 1.75, 2.25, 2.5, //
            2.5, 2.75, 3.25, 3.5, //
            3.0, 3.25, 3.75, 4.0,
        ],
        F64_TIGHT,
    );
    let y = Upsample2d::<2, BilinearAlignCorners>::default().forward(x.clone());
    let (t, tt) = (1.0 / 3.0, 2.0 / 3.0);
    assert_close(
        "bilinear 2x align_corners",
        &y.as_vec(),
        &[
            1.0,
            1.0 + t,
            1.0 + tt,
            2.0,
            1.0 + tt,
            2.0,
            2.0 + t,
            2.0 + tt,
            2.0 + t,
            2.0 + tt,
            3.0,
            3.0 + t,
            3.0,
            3.0 + t,
            3.0 + tt,
            4.0,
        ],
        F64_TIGHT,
    );
    let y = Upsample2d::<2>::default().forward(x);
    assert_eq!(
        y.as_vec(),
        [
            1.0, 1.0, 2.0, 2.0, //
            1.0, 1.0, 2.0, 2.0, //
            3.0, 3.0, 4.0, 4.0, //
            3.0, 3.0, 4.0, 4.0,
        ]
    );
    // F.interpolate(torch.tensor([[[[1., 2.]]]]), scale_factor=3, mode="bilinear")
    let x: Tensor<Rank3<1, 1, 2>, f64, _> = dev.tensor([[[1.0, 2.0]]]);
    let y = Upsample2d::<3, Bilinear>::default().forward(x).as_vec();
    let row = [1.0, 1.0, 1.0 + 1.0 / 3.0, 1.0 + 2.0 / 3.0, 2.0, 2.0];
    assert_close("bilinear 3x", &y, &row.repeat(3), F64_TIGHT);
    // F.adaptive_avg_pool2d(torch.arange(9.).view(1, 3, 3), 2)
    let x: Tensor<Rank3<1, 3, 3>, f64, _> =
        dev.tensor([[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]]]);
    assert_eq!(
        AdaptiveAvgPool2d::<2, 2>.forward(x).array(),
        [[[2.0, 3.0], [5.0, 6.0]]]
    );
    // F.adaptive_avg_pool2d(torch.arange(5.).view(1, 1, 5), (1, 3)): windows 0..2, 1..4, 3..5.
    let x: Tensor<Rank3<1, 1, 5>, f64, _> = dev.tensor([[[0.0, 1.0, 2.0, 3.0, 4.0]]]);
    assert_eq!(
        AdaptiveAvgPool2d::<1, 3>.forward(x).array(),
        [[[0.5, 2.0, 3.5]]]
    );
}

#[test]
fn layer_gradients_match_finite_differences() {
    let dev = TestDevice::default();
    let mut r = rng(40);
    let xb: Tensor<Rank4<2, 2, 3, 5>, f64, _> =
        dev.tensor_from_vec(random_vec(&mut r, 60), Default::default());
    let xu: Tensor<Rank3<2, 3, 5>, f64, _> =
        dev.tensor_from_vec(random_vec(&mut r, 30), Default::default());

    check_input_gradient("nearest x2 batched", &xb, |x| {
        Upsample2d::<2>::default().forward(x)
    });
    check_input_gradient("nearest x3 unbatched", &xu, |x| {
        Upsample2d::<3, Nearest>::default().forward(x)
    });
    check_input_gradient("bilinear x2 batched", &xb, |x| {
        Upsample2d::<2, Bilinear>::default().forward(x)
    });
    check_input_gradient("bilinear x3 unbatched", &xu, |x| {
        Upsample2d::<3, Bilinear>::default().forward(x)
    });
    check_input_gradient("align corners x2 batched", &xb, |x| {
        Upsample2d::<2, BilinearAlignCorners>::default().forward(x)
    });
    check_input_gradient("align corners x3 unbatched", &xu, |x| {
        Upsample2d::<3, BilinearAlignCorners>::default().forward(x)
    });
    check_input_gradient("adaptive 2x3 batched", &xb, |x| {
        AdaptiveAvgPool2d::<2, 3>.forward(x)
    });
    // Larger than the input: overlapping windows.
    check_input_gradient("adaptive 4x7 unbatched", &xu, |x| {
        AdaptiveAvgPool2d::<4, 7>.forward(x)
    });
    check_input_gradient("global batched", &xb, |x| GlobalAvgPool2d.forward(x));
    check_input_gradient("global unbatched", &xu, |x| GlobalAvgPool2d.forward(x));
}

/// `usize` batches carry the tape too: d(sum(r * layer(x)))/dx against differences of the reference.
#[test]
fn usize_batch_gradients_match_finite_differences() {
    let dev = TestDevice::default();
    let mut rn = rng(41);
    let (b, c, h, w) = (3, 2, 4, 3);
    let x = random_vec(&mut rn, b * c * h * w);
    let input = |v: &[f64]| -> Tensor<(usize, Const<2>, Const<4>, Const<3>), f64, _> {
        dev.tensor_from_vec(v.to_vec(), (b, Const, Const, Const))
    };

    let r = random_vec(&mut rn, b * c * 8 * 6);
    let fd = finite_differences(&x, |v| {
        dot(&upsample_reference(Mode::Bilinear, v, b * c, h, w, 2), &r)
    });
    let xt = input(&x);
    let y = Upsample2d::<2, Bilinear>::default().forward(xt.leaky_trace());
    let rt = dev.tensor_from_vec(r.clone(), *y.shape());
    let g = (y * rt).sum().backward().get(&xt).as_vec();
    assert_close("bilinear usize batch grad", &g, &fd, FINITE_DIFF);

    let r = random_vec(&mut rn, b * c * 3 * 2);
    let fd = finite_differences(&x, |v| dot(&adaptive_reference(v, b * c, h, w, 3, 2), &r));
    let xt = input(&x);
    let y = AdaptiveAvgPool2d::<3, 2>.forward(xt.leaky_trace());
    let rt = dev.tensor_from_vec(r.clone(), *y.shape());
    let g = (y * rt).sum().backward().get(&xt).as_vec();
    assert_close("adaptive usize batch grad", &g, &fd, FINITE_DIFF);

    let r = random_vec(&mut rn, b * c);
    let fd = finite_differences(&x, |v| dot(&global_reference(v, b * c, h, w), &r));
    let xt = input(&x);
    let y = GlobalAvgPool2d.forward(xt.leaky_trace());
    let rt = dev.tensor_from_vec(r.clone(), *y.shape());
    let g = (y * rt).sum().backward().get(&xt).as_vec();
    assert_close("global usize batch grad", &g, &fd, FINITE_DIFF);
}

#[test]
fn composed_gradients_match_finite_differences() {
    let dev = TestDevice::default();
    let mut rn = rng(42);
    let (b, c, h, w) = (2, 2, 3, 4);
    let x = random_vec(&mut rn, b * c * h * w);
    let maps = [
        (axis(Mode::Nearest, h, 3), axis(Mode::Nearest, w, 3)),
        (axis(Mode::Bilinear, h, 2), axis(Mode::Bilinear, w, 2)),
        (
            axis(Mode::AlignCorners, h, 2),
            axis(Mode::AlignCorners, w, 2),
        ),
        (
            ResampleAxis::adaptive_average(h, 2),
            ResampleAxis::adaptive_average(w, 5),
        ),
    ];
    for (rows, cols) in maps {
        let out = (b, c, rows.output_len(), cols.output_len());
        let r = random_vec(&mut rn, b * c * out.2 * out.3);
        let rt = dev.tensor_from_vec(r.clone(), out);
        let eval = |v: &[f64]| {
            let t: Tensor<Dyn4, f64, _> = dev.tensor_from_vec(v.to_vec(), (b, c, h, w));
            TestDevice::try_resample2d(t, rows.clone(), cols.clone(), out)
                .unwrap()
                .as_vec()
        };
        let fd = finite_differences(&x, |v| dot(&eval(v), &r));
        let xt: Tensor<Dyn4, f64, _> = dev.tensor_from_vec(x.clone(), (b, c, h, w));
        let y = composed_resample2d(xt.leaky_trace(), &rows, &cols).unwrap();
        let g = (y * rt.clone()).sum().backward().get(&xt).as_vec();
        assert_close(&format!("composed grad {out:?}"), &g, &fd, FINITE_DIFF);
    }
}

type Net = (
    Conv2d<2, 4, 3>,
    ReLU,
    Upsample2d<2, Bilinear>,
    AdaptiveAvgPool2d<3, 3>,
    GlobalAvgPool2d,
    Linear<4, 2>,
);
shapesafe::assert_shapes!(Net: Rank3<2, 9, 7> => Rank1<2>, params = 2 * 4 * 9 + 4 + 4 * 2 + 2);

type NearestNet = (
    Conv2d<2, 3, 2, 2>,
    Upsample2d<3>,
    Conv2d<3, 2, 3>,
    Upsample2d<2, BilinearAlignCorners>,
    GlobalAvgPool2d,
);
shapesafe::assert_shapes!(NearestNet: Rank3<2, 9, 7> => Rank1<2>);

#[test]
fn layers_compose_after_conv_in_models() {
    let s = Summary::of::<Net, Rank3<2, 9, 7>>();
    let rows: Vec<(String, Vec<usize>, usize)> = s
        .rows
        .iter()
        .map(|r| (r.layer.clone(), r.output.clone(), r.params))
        .collect();
    assert_eq!(
        rows[2],
        ("Upsample2d<2, Bilinear>".into(), vec![4, 14, 10], 0)
    );
    assert_eq!(
        rows[3],
        ("AdaptiveAvgPool2d<3, 3>".into(), vec![4, 3, 3], 0)
    );
    assert_eq!(rows[4], ("GlobalAvgPool2d".into(), vec![4], 0));
    let s = Summary::of::<NearestNet, Rank3<2, 9, 7>>();
    assert_eq!(s.rows[1].layer, "Upsample2d<3>");
    assert_eq!(s.rows[1].output, vec![3, 12, 9]);
    assert_eq!(s.rows[3].output, vec![2, 20, 14]);

    let dev = TestDevice::default();
    let mut model = dev.build_module::<Net, f64>();
    let mut r = rng(50);
    let x = random_vec(&mut r, 3 * 2 * 9 * 7);
    let xu: Tensor<(usize, Const<2>, Const<9>, Const<7>), f64, _> =
        dev.tensor_from_vec(x.clone(), (3, Const, Const, Const));

    // Reference: the model's own conv and linear, the resampling done by the f64 references.
    let conv = model.0.forward(xu.clone()).relu().as_vec();
    let up = upsample_reference(Mode::Bilinear, &conv, 12, 7, 5, 2);
    let pooled = adaptive_reference(&up, 12, 14, 10, 3, 3);
    let features = global_reference(&pooled, 12, 3, 3);
    let (weight, bias) = (model.5.weight.as_vec(), model.5.bias.as_vec());
    let expected: Vec<f64> = (0..3)
        .flat_map(|n| {
            let f = &features[n * 4..(n + 1) * 4];
            let (weight, bias) = (&weight, &bias);
            (0..2).map(move |o| bias[o] + dot(&weight[o * 4..(o + 1) * 4], f))
        })
        .collect();

    let y: Tensor<(usize, Const<2>), f64, _> = model.forward(xu.clone());
    assert_close("model usize batch", &y.as_vec(), &expected, F64_TIGHT);
    let y = model.forward_mut(xu);
    assert_close("model forward_mut", &y.as_vec(), &expected, F64_TIGHT);
    let xc: Tensor<Rank4<3, 2, 9, 7>, f64, _> = dev.tensor_from_vec(x.clone(), Default::default());
    let y: Tensor<Rank2<3, 2>, f64, _> = model.forward(xc.clone());
    assert_close("model Const batch", &y.as_vec(), &expected, F64_TIGHT);
    let x1: Tensor<Rank3<2, 9, 7>, f64, _> =
        dev.tensor_from_vec(x[..126].to_vec(), Default::default());
    let y: Tensor<Rank1<2>, f64, _> = model.forward(x1.clone());
    assert_close("model unbatched", &y.as_vec(), &expected[..2], F64_TIGHT);

    // Gradients flow back through every layer to the input and the conv.
    check_input_gradient("model input gradient", &x1, |x| model.forward(x));
    let grads = model.alloc_grads();
    let loss = model.forward_mut(xc.traced(grads)).square().sum();
    let grads = loss.backward();
    let conv_grad = grads.get(&model.0.weight).as_vec();
    assert!(conv_grad.iter().all(|g| g.is_finite()));
    assert!(conv_grad.iter().any(|&g| g != 0.0));

    let mut nearest = dev.build_module::<NearestNet, f32>();
    let x: Tensor<(usize, Const<2>, Const<9>, Const<7>), f32, _> =
        dev.sample_normal_like(&(4, Const, Const, Const));
    let a = nearest.forward(x.clone());
    let b = nearest.forward_mut(x);
    assert_eq!(a.shape().concrete(), [4, 2]);
    assert_eq!(a.as_vec(), b.as_vec());
}
