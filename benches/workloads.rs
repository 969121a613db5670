//! The side-by-side workloads W1-W6 of `../shared/bench-peers/pytorch/bench_torch.py`, with its
//! models, batch sizes, losses, optimizers and timing method, printing its `RESULT` lines.
//!
//! `cargo bench --bench workloads -- W4-train W6-fwd` runs the named workloads (all when none is
//! named); `../shared/bench-peers/side_by_side.sh` runs each in its own process beside PyTorch.

use shapesafe::models::LeNet5;
use shapesafe::nn::loss::cross_entropy;
use shapesafe::optim::{Adam, Sgd};
use shapesafe::prelude::*;
use std::time::Instant;

/// Repetitions timed after the warm-up; the median is the figure of record.
const REPS: usize = 7;

/// Runs `step` as `bench_torch.py` does: at least 1.5 s and 3 steps of warm-up, then
/// `REPS` repetitions of N steps, N chosen so that one repetition takes about a second.
fn bench(workload: &str, unit: &str, items_per_iter: usize, mut step: impl FnMut()) {
    let t0 = Instant::now();
    let mut n = 0usize;
    while n < 3 || t0.elapsed().as_secs_f64() < 1.5 {
        step();
        n += 1;
    }
    let per_iter = t0.elapsed().as_secs_f64() / n as f64;
    let iters = ((1.0 / per_iter + 0.999) as usize).max(2);
    let mut tps: Vec<f64> = (0..REPS)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                step();
            }
            (items_per_iter * iters) as f64 / t.elapsed().as_secs_f64()
        })
        .collect();
    tps.sort_by(f64::total_cmp);
    println!(
        "RESULT peer=shapesafe workload={workload} unit={unit} median={:.1} min={:.1} max={:.1} \
         reps={REPS} iters_per_rep={iters} threads={}",
        tps[REPS / 2],
        tps[0],
        tps[REPS - 1],
        rayon::current_num_threads(),
    );
}

/// `bench_torch.py`'s `vgg()`: two VGG blocks on 32x32x3 and a linear classifier.
type VggBlocks = (
    (Conv2d<3, 64, 3, 1, 1>, ReLU, Conv2d<64, 64, 3, 1, 1>, ReLU),
    MaxPool2d<2>,
    (
        Conv2d<64, 128, 3, 1, 1>,
        ReLU,
        Conv2d<128, 128, 3, 1, 1>,
        ReLU,
    ),
    MaxPool2d<2>,
    Flatten,
    Linear<8192, 10>,
);

/// `bench_torch.py`'s `mlp()`.
type Mlp = (Linear<784, 256>, ReLU, Linear<256, 10>);

/// `bench_torch.py`'s `encoder()`: post-norm, ReLU, dropout 0 (set after building).
type Encoder = TransformerEncoder<128, 4, 512, 2>;

/// PyTorch's `torch.optim.SGD(lr=0.01)`.
const SGD: SgdConfig = SgdConfig {
    lr: 0.01,
    momentum: None,
    weight_decay: None,
};

/// One-hot targets for `B` random labels of 10 classes: PyTorch's integer targets as the
/// probability targets shapesafe's `cross_entropy` takes.
fn one_hot<const B: usize>(dev: &Cpu) -> Tensor<Rank2<B, 10>, f32, Cpu> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut v = vec![0.0f32; B * 10];
    for row in v.chunks_mut(10) {
        row[rng.gen_range(0..10)] = 1.0;
    }
    dev.tensor_from_vec(v, Rank2::<B, 10>::default())
}

/// A training step of `model` (cross-entropy on one-hot targets, backward, SGD), as
/// `bench_torch.py`'s `train_ce`; the gradients move through the steps as in a training loop.
macro_rules! train_ce {
    ($dev:expr, $model:ty, $x:expr, $y:expr) => {{
        let mut model = $dev.build_module::<$model, f32>();
        let mut opt = Sgd::new(&model, SGD);
        let (x, y) = ($x, $y);
        let mut grads = Some(model.alloc_grads());
        move || {
            let taken = grads.take().expect("gradients are put back every step");
            let logits = model.forward_mut(x.clone().traced(taken));
            let mut g = cross_entropy(logits, y.clone()).backward();
            opt.update(&mut model, &g)
                .expect("every parameter has a gradient");
            model.zero_grads(&mut g);
            grads = Some(g);
        }
    }};
}

/// A training step of `model` against a fixed random target (MSE, backward, Adam lr 1e-3).
macro_rules! train_mse_adam {
    ($model:expr, $x:expr, $target:expr) => {{
        let mut model = $model;
        let mut opt = Adam::new(&model, AdamConfig::default());
        let (x, target) = ($x, $target);
        let mut grads = Some(model.alloc_grads());
        move || {
            let taken = grads.take().expect("gradients are put back every step");
            let y = model.forward_mut(x.clone().traced(taken));
            let mut g = mse_loss(y, target.clone()).backward();
            opt.update(&mut model, &g)
                .expect("every parameter has a gradient");
            model.zero_grads(&mut g);
            grads = Some(g);
        }
    }};
}

fn encoder(dev: &Cpu) -> <Encoder as BuildOnDevice<Cpu, f32>>::Built {
    let mut model = dev.build_module::<Encoder, f32>();
    for layer in &mut model.layers {
        layer.dropout = 0.0;
    }
    model
}

fn main() {
    // `cargo bench` passes `--bench`; every other argument names a workload.
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let w = |name: &str| wanted.is_empty() || wanted.iter().any(|a| a == name);
    let dev = Cpu::seed_from_u64(0);

    if w("W1-train") {
        let x: Tensor<Rank4<64, 1, 28, 28>, f32, _> = dev.sample_normal();
        bench(
            "W1-train",
            "images/s",
            64,
            train_ce!(dev, LeNet5, x, one_hot::<64>(&dev)),
        );
    }
    if w("W2-fwd") {
        let model = dev.build_module::<LeNet5, f32>();
        let x: Tensor<Rank4<256, 1, 28, 28>, f32, _> = dev.sample_normal();
        bench("W2-fwd", "images/s", 256, || {
            model.forward(x.clone());
        });
    }
    if w("W3-fwd") {
        let model = dev.build_module::<VggBlocks, f32>();
        let x: Tensor<Rank4<32, 3, 32, 32>, f32, _> = dev.sample_normal();
        bench("W3-fwd", "images/s", 32, || {
            model.forward(x.clone());
        });
    }
    if w("W3-train") {
        let x: Tensor<Rank4<32, 3, 32, 32>, f32, _> = dev.sample_normal();
        bench(
            "W3-train",
            "images/s",
            32,
            train_ce!(dev, VggBlocks, x, one_hot::<32>(&dev)),
        );
    }
    if w("W4-fwd") {
        let model = encoder(&dev);
        let x: Tensor<Rank3<16, 64, 128>, f32, _> = dev.sample_normal();
        bench("W4-fwd", "sequences/s", 16, || {
            model.forward(x.clone());
        });
    }
    if w("W4-train") {
        let x: Tensor<Rank3<16, 64, 128>, f32, _> = dev.sample_normal();
        let t: Tensor<Rank3<16, 64, 128>, f32, _> = dev.sample_normal();
        bench(
            "W4-train",
            "sequences/s",
            16,
            train_mse_adam!(encoder(&dev), x, t),
        );
    }
    if w("W5-train") {
        let x: Tensor<Rank2<128, 784>, f32, _> = dev.sample_normal();
        bench(
            "W5-train",
            "samples/s",
            128,
            train_ce!(dev, Mlp, x, one_hot::<128>(&dev)),
        );
    }
    if w("W6-fwd") {
        let model = dev.build_module::<Lstm<128, 256>, f32>();
        let x: Tensor<Rank3<32, 64, 128>, f32, _> = dev.sample_normal();
        bench("W6-fwd", "sequences/s", 32, || {
            model.forward(x.clone());
        });
    }
    if w("W6-train") {
        let x: Tensor<Rank3<32, 64, 128>, f32, _> = dev.sample_normal();
        // The LSTM's output dim is `Directions<256, false>` (256 wide).
        let t: Tensor<(Const<32>, Const<64>, Directions<256, false>), f32, _> = dev.sample_normal();
        let model = dev.build_module::<Lstm<128, 256>, f32>();
        bench("W6-train", "sequences/s", 32, train_mse_adam!(model, x, t));
    }
    if w("W5-fwd") {
        let model = dev.build_module::<Mlp, f32>();
        let x: Tensor<Rank2<128, 784>, f32, _> = dev.sample_normal();
        bench("W5-fwd", "samples/s", 128, || {
            model.forward(x.clone());
        });
    }
}
