//! The CNN zoo's speed: a VGG-style block stack on 32x32x3 at batch 32 (forward and training
//! step, images/s) and ResNet-18 forward at 224x224, batch 1.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shapesafe::models::vgg::Stage2;
use shapesafe::models::ResNet18;
use shapesafe::prelude::*;
use std::time::Duration;

const BATCH: usize = 32;

/// conv 3->64, 64->64, pool, 64->128, 128->128, pool, linear 8192->10.
type VggBlocks = (Stage2<3, 64>, Stage2<64, 128>, Flatten, Linear<8192, 10>);

fn vgg_blocks(c: &mut Criterion) {
    let dev = Cpu::seed_from_u64(0);
    let x: Tensor<Rank4<BATCH, 3, 32, 32>, f32, _> = dev.sample_normal();
    let y: Tensor<Rank2<BATCH, 10>, f32, _> =
        dev.sample_normal::<Rank2<BATCH, 10>>().softmax::<Axis<1>>();
    let mut model = dev.build_module::<VggBlocks, f32>();
    let mut opt = Adam::new(&model, AdamConfig::default());
    let mut group = c.benchmark_group("vgg blocks 32x32x3");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("forward, batch 32 (elements = images)", |b| {
        b.iter(|| model.forward(x.clone()))
    });
    let mut grads = Some(model.alloc_grads());
    group.bench_function("training step, batch 32, Adam (elements = images)", |b| {
        b.iter(|| {
            let taken = grads.take().expect("gradients are put back every step");
            let logits = model.forward_mut(x.clone().traced(taken));
            let mut g = cross_entropy_with_logits_loss(logits, y.clone()).backward();
            opt.update(&mut model, &g).unwrap();
            model.zero_grads(&mut g);
            grads = Some(g);
        })
    });
    group.finish();
}

fn resnet18(c: &mut Criterion) {
    let dev = Cpu::seed_from_u64(0);
    let x: Tensor<Rank4<1, 3, 224, 224>, f32, _> = dev.sample_normal();
    let model = dev.build_module::<ResNet18, f32>();
    let mut group = c.benchmark_group("resnet18 224x224");
    group.throughput(Throughput::Elements(1));
    group.bench_function("forward (eval), batch 1 (elements = images)", |b| {
        b.iter(|| model.forward(x.clone()))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(8));
    targets = vgg_blocks, resnet18
}
criterion_main!(benches);
