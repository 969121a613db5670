//! LeNet-5 training step (forward, cross-entropy, backward, Adam) at batch 64, in images/s,
//! with shapesafe's checkpointable Adam and with dfdx's own.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shapesafe::models::LeNet5;
use shapesafe::prelude::*;
use std::time::Duration;

const BATCH: usize = 64;

fn training_step(c: &mut Criterion) {
    let dev = Cpu::seed_from_u64(0);
    let x: Tensor<Rank4<BATCH, 1, 28, 28>, f32, _> = dev.sample_normal();
    let y: Tensor<Rank2<BATCH, 10>, f32, _> =
        dev.sample_normal::<Rank2<BATCH, 10>>().softmax::<Axis<1>>();
    let mut group = c.benchmark_group("lenet5");
    group.throughput(Throughput::Elements(BATCH as u64));

    let model = dev.build_module::<LeNet5, f32>();
    let opt = Adam::new(&model, AdamConfig::default());
    bench_step(
        &mut group,
        "training step, batch 64, shapesafe Adam (elements = images)",
        model,
        opt,
        &x,
        &y,
    );
    let model = dev.build_module::<LeNet5, f32>();
    let opt = dfdx::optim::Adam::new(&model, AdamConfig::default());
    bench_step(
        &mut group,
        "training step, batch 64, dfdx Adam (elements = images)",
        model,
        opt,
        &x,
        &y,
    );

    let model = dev.build_module::<LeNet5, f32>();
    group.bench_function("inference, batch 64 (elements = images)", |b| {
        b.iter(|| model.forward(x.clone()))
    });
    group.finish();
}

type Built = <LeNet5 as BuildOnDevice<Cpu, f32>>::Built;

fn bench_step<O: Optimizer<Built, Cpu, f32>>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    mut model: Built,
    mut opt: O,
    x: &Tensor<Rank4<BATCH, 1, 28, 28>, f32, Cpu>,
    y: &Tensor<Rank2<BATCH, 10>, f32, Cpu>,
) {
    // Gradients move through each step, as in a training loop.
    let mut grads = Some(model.alloc_grads());
    group.bench_function(name, |b| {
        b.iter(|| {
            let taken = grads.take().expect("gradients are put back every step");
            let logits = model.forward_mut(x.clone().traced(taken));
            let loss = cross_entropy_with_logits_loss(logits, y.clone());
            let mut g = loss.backward();
            opt.update(&mut model, &g).unwrap();
            model.zero_grads(&mut g);
            grads = Some(g);
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(6));
    targets = training_step
}
criterion_main!(benches);
