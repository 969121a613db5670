//! The sequence layers' speed: a Transformer encoder (2 layers, d_model 128, 4 heads,
//! feed-forward 512) on sequences of 64 at batch 16, forward and training step (sequences/s);
//! an LSTM layer (128 -> 256) over 64 steps at batch 32, forward and forward + backward.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shapesafe::prelude::*;
use std::time::Duration;

const STEPS: usize = 64;

fn transformer(c: &mut Criterion) {
    const BATCH: usize = 16;
    type Encoder = TransformerEncoder<128, 4, 512, 2>;
    let dev = Cpu::seed_from_u64(0);
    let x: Tensor<Rank3<BATCH, STEPS, 128>, f32, _> = dev.sample_normal();
    let target: Tensor<Rank3<BATCH, STEPS, 128>, f32, _> = dev.sample_normal();
    let mut model = dev.build_module::<Encoder, f32>();
    let mut opt = Adam::new(&model, AdamConfig::default());
    let mut group = c.benchmark_group("transformer encoder d128 h4 ff512 x2, seq 64");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("forward (eval), batch 16 (elements = sequences)", |b| {
        b.iter(|| model.forward(x.clone()))
    });
    let mut grads = Some(model.alloc_grads());
    group.bench_function(
        "training step (dropout, MSE, backward, Adam), batch 16 (elements = sequences)",
        |b| {
            b.iter(|| {
                let taken = grads.take().expect("gradients are put back every step");
                let y = model.forward_mut(x.clone().traced(taken));
                let mut g = mse_loss(y, target.clone()).backward();
                opt.update(&mut model, &g).unwrap();
                model.zero_grads(&mut g);
                grads = Some(g);
            })
        },
    );
    group.finish();
}

fn lstm(c: &mut Criterion) {
    const BATCH: usize = 32;
    let dev = Cpu::seed_from_u64(0);
    let x: Tensor<Rank3<BATCH, STEPS, 128>, f32, _> = dev.sample_normal();
    let mut model = dev.build_module::<Lstm<128, 256>, f32>();
    let mut group = c.benchmark_group("lstm 128->256, 64 steps");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("forward, batch 32 (elements = sequences)", |b| {
        b.iter(|| model.forward(x.clone()))
    });
    let mut grads = Some(model.alloc_grads());
    group.bench_function("forward + backward, batch 32 (elements = sequences)", |b| {
        b.iter(|| {
            let taken = grads.take().expect("gradients are put back every step");
            let y = model.forward_mut(x.clone().traced(taken));
            let mut g = y.sum().backward();
            model.zero_grads(&mut g);
            grads = Some(g);
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(8));
    targets = transformer, lstm
}
criterion_main!(benches);
