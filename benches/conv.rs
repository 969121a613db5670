//! A VGG-sized convolution (64 -> 64, 3x3, padding 1, 32x32, batch 32) forward and
//! forward + backward, and gemm 0.19's SGEMM peak it is measured against, in GFLOP/s:
//! criterion's "elements" are floating-point operations.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shapesafe::kernels::{conv2d::composed, Conv2dGeometry};
use shapesafe::prelude::*;
use std::time::Duration;

type Layer = Conv2d<64, 64, 3, 1, 1>;
type Input = Rank4<32, 64, 32, 32>;

/// Multiply-adds of one forward pass, counted as two operations each.
const FORWARD_FLOPS: u64 = 2 * 32 * 64 * 64 * 3 * 3 * 32 * 32;

fn vgg_conv(c: &mut Criterion) {
    let dev = Cpu::seed_from_u64(0);
    let conv = dev.build_module::<Layer, f32>();
    let x: Tensor<Input, f32, _> = dev.sample_normal();
    let mut group = c.benchmark_group("conv2d 64->64 3x3 pad 1, 32x32, batch 32");

    group.throughput(Throughput::Elements(FORWARD_FLOPS));
    group.bench_function("forward (elements = flops)", |b| {
        b.iter(|| conv.forward(x.clone()))
    });

    // Backward computes input and weight gradients: twice the forward's work.
    group.throughput(Throughput::Elements(3 * FORWARD_FLOPS));
    group.bench_function("forward + backward (elements = flops)", |b| {
        b.iter(|| conv.forward(x.leaky_trace()).sum().backward())
    });

    let g = Conv2dGeometry {
        batch: 32,
        in_channels: 64,
        out_channels: 64,
        in_height: 32,
        in_width: 32,
        out_height: 32,
        out_width: 32,
        kernel: 3,
        stride: 1,
        padding: 1,
        dilation: 1,
        groups: 1,
    };
    let xd = x.clone().reshape_like(&(32, 64, 32, 32));
    let w = conv.weight.clone().reshape_like(&(64, 64, 3, 3));
    let bias = conv.bias.clone().reshape_like(&(64,));
    group.throughput(Throughput::Elements(FORWARD_FLOPS));
    group.bench_function(
        "composed forward, the CUDA path run on CPU (elements = flops)",
        |b| b.iter(|| composed::conv2d(xd.clone(), w.clone(), bias.clone(), &g).unwrap()),
    );
    group.finish();
}

/// `gemm` 0.19's single-precision peak on this machine: a 2048^3 product on the rayon pool,
/// and the shape of one image of the VGG layer above (`(64 x 576) * (576 x 1024)`) on one
/// thread, as the batch-parallel conv runs it. Column-major operands, no packing surprises.
fn sgemm_peak(c: &mut Criterion) {
    let mut group = c.benchmark_group("gemm 0.19 sgemm");
    for (m, n, k, threads) in [(2048, 2048, 2048, 0), (1024, 64, 576, 1)] {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
        let mut dst = vec![0.0f32; m * n];
        let (parallelism, label) = if threads == 1 {
            (gemm::Parallelism::None, "1 thread")
        } else {
            (gemm::Parallelism::Rayon(0), "all threads")
        };
        group.throughput(Throughput::Elements((2 * m * n * k) as u64));
        group.bench_function(
            format!("{m}x{n}x{k}, {label} (elements = flops)"),
            |bench| {
                bench.iter(|| {
                    // SAFETY: every pointer and stride describes a column-major buffer of
                    // exactly the size allocated above.
                    unsafe {
                        gemm::gemm(
                            m,
                            n,
                            k,
                            dst.as_mut_ptr(),
                            m as isize,
                            1,
                            false,
                            a.as_ptr(),
                            m as isize,
                            1,
                            b.as_ptr(),
                            k as isize,
                            1,
                            0.0,
                            1.0,
                            false,
                            false,
                            false,
                            parallelism,
                        )
                    }
                })
            },
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(6));
    targets = vgg_conv, sgemm_peak
}
criterion_main!(benches);
