//! A VGG-sized convolution (64 -> 64, 3x3, padding 1, 32x32, batch 32) forward and
//! forward + backward, in GFLOP/s: criterion's "elements" are floating-point operations.

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

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(6));
    targets = vgg_conv
}
criterion_main!(benches);
