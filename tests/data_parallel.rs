//! The data-parallel pieces without MPI: sharded loaders that together serve a larger batch,
//! gradient buckets that put every value back where it came from, broadcasts that reach the
//! buffers, and a one-rank data-parallel `Trainer` that trains exactly as a plain one. The
//! two-process runs are in `tests/mpi.rs`.

use dfdx::prelude::*;
use shapesafe::data::{DataLoader, Digits};
use shapesafe::distributed::{
    all_reduce_gradients, broadcast_module, Communicator, DataParallel, SingleProcess,
};
use shapesafe::optim::Sgd;
use shapesafe::prelude::{BatchNorm2d, Conv2d, Flatten, Linear, ReLU};
use shapesafe::train::{TrainConfig, Trainer};
use shapesafe::Result;
use std::cell::RefCell;

/// A stand-in for rank 0 of two, whose peer's values are `peer(i) = i / 8` at flat
/// position `i`: sums add them, broadcasts write them, and every call's length is recorded.
#[derive(Default)]
struct TwoRanks {
    calls: RefCell<Vec<usize>>,
    offset: RefCell<usize>,
}

impl TwoRanks {
    fn peer(i: usize) -> f64 {
        i as f64 / 8.0
    }

    fn next(&self, len: usize) -> usize {
        self.calls.borrow_mut().push(len);
        let mut offset = self.offset.borrow_mut();
        let start = *offset;
        *offset += len;
        start
    }
}

impl Communicator for TwoRanks {
    fn rank(&self) -> usize {
        0
    }
    fn world_size(&self) -> usize {
        2
    }
    fn backend(&self) -> String {
        "a test double".into()
    }
    fn all_reduce_sum_f32(&self, values: &mut [f32]) -> Result<()> {
        let start = self.next(values.len());
        for (i, v) in values.iter_mut().enumerate() {
            *v += Self::peer(start + i) as f32;
        }
        Ok(())
    }
    fn all_reduce_sum_f64(&self, values: &mut [f64]) -> Result<()> {
        let start = self.next(values.len());
        for (i, v) in values.iter_mut().enumerate() {
            *v += Self::peer(start + i);
        }
        Ok(())
    }
    fn broadcast_f32(&self, values: &mut [f32], _root: usize) -> Result<()> {
        let start = self.next(values.len());
        for (i, v) in values.iter_mut().enumerate() {
            *v = Self::peer(start + i) as f32;
        }
        Ok(())
    }
    fn broadcast_f64(&self, values: &mut [f64], _root: usize) -> Result<()> {
        let start = self.next(values.len());
        for (i, v) in values.iter_mut().enumerate() {
            *v = Self::peer(start + i);
        }
        Ok(())
    }
    fn all_gather_u64(&self, values: &[u64]) -> Result<Vec<u64>> {
        Ok([values, values].concat())
    }
    fn barrier(&self) -> Result<()> {
        Ok(())
    }
}

#[test]
fn sharded_batches_together_are_the_one_process_batch() -> Result<()> {
    let n = 23;
    let digits = Digits::from_rows((0..64 * n).map(|i| (i % 17) as u8).collect(), vec![0; n])?;
    let whole = DataLoader::new(&digits, 8)?.shuffle(3);
    let shards: Vec<_> = (0..2)
        .map(|rank| DataLoader::new(&digits, 4).and_then(|l| l.shuffle(3).shard(rank, 2)))
        .collect::<Result<_>>()?;
    for epoch in 0..3 {
        let order = whole.order(epoch);
        let (a, b) = (shards[0].order(epoch), shards[1].order(epoch));
        // 23 examples over two ranks: 12 each, the last one repeating the epoch's first.
        assert_eq!((a.len(), b.len()), (12, 12));
        assert_eq!(b[11], order[0]);
        for k in 0..2 {
            let mut together: Vec<usize> = [&a[4 * k..4 * k + 4], &b[4 * k..4 * k + 4]].concat();
            together.sort_unstable();
            let mut single = order[8 * k..8 * k + 8].to_vec();
            single.sort_unstable();
            assert_eq!(together, single, "epoch {epoch}, batch {k}");
        }
    }
    assert!(DataLoader::new(&digits, 4)?.shard(2, 2).is_err());
    Ok(())
}

#[test]
fn buckets_average_every_gradient_in_place() -> Result<()> {
    let dev = Cpu::default();
    let model = dev.build_module::<(Linear<3, 4>, ReLU, Linear<4, 2>), f32>();
    let x: Tensor<Rank2<5, 3>, f32, _> = dev.sample_normal();
    let grads = model
        .forward(x.traced(model.alloc_grads()))
        .square()
        .mean()
        .backward();
    let mut reduced = grads.clone();
    let comm = TwoRanks::default();
    // 7 values a bucket, so buckets straddle tensors: 26 values in 4 calls.
    all_reduce_gradients(&model, &mut reduced, &comm, 7 * 4)?;
    assert_eq!(*comm.calls.borrow(), vec![7, 7, 7, 5]);
    let values = |g: &Gradients<f32, Cpu>| {
        [
            g.get(&model.0.weight).as_vec(),
            g.get(&model.0.bias).as_vec(),
            g.get(&model.2.weight).as_vec(),
            g.get(&model.2.bias).as_vec(),
        ]
        .concat()
    };
    let (mine, mean) = (values(&grads), values(&reduced));
    assert_eq!(mean.len(), 26);
    for (position, (g, m)) in mine.iter().zip(&mean).enumerate() {
        let expected = (f64::from(*g) + TwoRanks::peer(position)) / 2.0;
        assert!(
            (f64::from(*m) - expected).abs() <= 1e-6,
            "{m} vs {expected}"
        );
    }

    // The path CUDA takes (gradients read and written through dfdx's tensor API) gives the
    // same bits as the CPU's in-place one.
    let mut staged = grads.clone();
    let comm = TwoRanks::default();
    shapesafe::kernels::dispatch::with_composed_ops(|| {
        all_reduce_gradients(&model, &mut staged, &comm, 7 * 4)
    })?;
    assert_eq!(values(&staged), mean);
    Ok(())
}

#[test]
fn broadcast_reaches_weights_and_batch_norm_statistics() -> Result<()> {
    let dev = Cpu::default();
    let mut model = dev.build_module::<(Conv2d<1, 3, 1>, BatchNorm2d<3>), f64>();
    let comm = TwoRanks::default();
    broadcast_module(&mut model, &comm, 1)?;
    // Walk order: the convolution's weight and bias (3 each), then batch norm's weight,
    // bias, running mean and running variance (3 each).
    let peer = |from: usize, n: usize| (from..from + n).map(TwoRanks::peer).collect::<Vec<_>>();
    assert_eq!(model.0.weight.as_vec(), peer(0, 3));
    assert_eq!(model.0.bias.as_vec(), peer(3, 3));
    assert_eq!(model.1.running_mean.as_vec(), peer(12, 3));
    assert_eq!(model.1.running_var.as_vec(), peer(15, 3));
    assert!(broadcast_module(&mut model, &comm, 2).is_err());
    Ok(())
}

type Net = (Conv2d<1, 2, 3, 1, 1>, ReLU, Flatten, Linear<128, 10>);

fn trained(parallel: Option<DataParallel>) -> Result<(Vec<f32>, f64)> {
    let n = 40;
    let digits = Digits::from_rows(
        (0..64 * n).map(|i| ((i * 7) % 17) as u8).collect(),
        (0..n).map(|i| (i % 10) as u8).collect(),
    )?;
    let dev = Cpu::seed_from_u64(1);
    let model = dev.build_module::<Net, f32>();
    let opt = Sgd::new(
        &model,
        SgdConfig {
            lr: 0.1,
            ..Default::default()
        },
    );
    let config = TrainConfig {
        epochs: 2,
        progress: false,
        ..Default::default()
    };
    let mut trainer = Trainer::new(model, opt, dev).with_config(config);
    let mut loader = DataLoader::new(&digits, 8)?.shuffle(2);
    if let Some(p) = parallel {
        loader = loader.shard(p.rank(), p.world_size())?;
        trainer = trainer.data_parallel(p);
    }
    let history = trainer.fit(&loader, &loader)?;
    let loss = history.records[1].valid_loss;
    Ok((
        [
            trainer.model.0.weight.as_vec(),
            trainer.model.3.weight.as_vec(),
        ]
        .concat(),
        loss,
    ))
}

#[test]
fn one_rank_data_parallel_trains_as_a_plain_trainer() -> Result<()> {
    let plain = trained(None)?;
    let parallel = trained(Some(DataParallel::new(SingleProcess)))?;
    assert_eq!(plain.1.to_bits(), parallel.1.to_bits());
    assert!(plain
        .0
        .iter()
        .zip(&parallel.0)
        .all(|(a, b)| a.to_bits() == b.to_bits()));
    Ok(())
}
