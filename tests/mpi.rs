//! Data-parallel training under `mpirun -np 2`: equal to one process with twice the batch,
//! the same on every rank, resumable on another world size, and every failure (a rank's bad
//! data, a NaN loss, different models, a dead or hung rank) an error on every rank, never a
//! hang.
//!
//! This target has no test harness (`harness = false`): run plainly, it is the driver, and
//! starts itself again under `mpirun -np 2` with `SHAPESAFE_MPI_SCENARIO` set, once per
//! scenario; run that way, it is a worker and plays the scenario's part of one rank, printing
//! `RESULT` lines the driver checks. It needs the `mpi` feature and `mpirun` on the path
//! (`cargo test --features mpi --test mpi`).

use dfdx::prelude::*;
use shapesafe::data::{data_dir, DataLoader, Digits, Subset};
use shapesafe::distributed::{agree, all_reduce_gradients, Communicator, DataParallel, Mpi};
use shapesafe::optim::{Optimizer, Sgd};
use shapesafe::prelude::{Conv2d, Flatten, Linear, ReLU};
use shapesafe::train::{Classification, Metrics, Objective, TrainConfig, Trainer};
use shapesafe::{Error, Result};
use std::cell::RefCell;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

const SCENARIO: &str = "SHAPESAFE_MPI_SCENARIO";
const SCRATCH: &str = "SHAPESAFE_MPI_SCRATCH";

/// No batch norm: its batch statistics would differ between one batch of 2B and two of B,
/// as they do in PyTorch without `SyncBatchNorm`.
type Net = (Conv2d<1, 4, 3, 1, 1>, ReLU, Flatten, Linear<256, 10>);
/// A different model, for the mismatch scenario.
type Wider = (Conv2d<1, 5, 3, 1, 1>, ReLU, Flatten, Linear<320, 10>);

const PER_RANK_BATCH: usize = 16;
const EXAMPLES: usize = 256;

fn digits() -> Result<Digits> {
    Digits::load(data_dir().join("sklearn-digits/digits.csv.gz"))
}

fn config(epochs: usize, out_dir: Option<PathBuf>) -> TrainConfig {
    TrainConfig {
        epochs,
        progress: false,
        out_dir,
        ..Default::default()
    }
}

fn sgd<M: TensorCollection<f32, Cpu>>(model: &M) -> Sgd<M, f32, Cpu> {
    Sgd::new(
        model,
        SgdConfig {
            lr: 0.05,
            momentum: Some(Momentum::Classic(0.9)),
            weight_decay: None,
        },
    )
}

type Built = <Net as BuildOnDevice<Cpu, f32>>::Built;

/// Every parameter value, in order.
fn weights(model: &Built) -> Vec<f32> {
    [
        model.0.weight.as_vec(),
        model.0.bias.as_vec(),
        model.3.weight.as_vec(),
        model.3.bias.as_vec(),
    ]
    .concat()
}

fn max_difference(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from((x - y).abs()))
        .fold(0.0, f64::max)
}

/// A hash of the exact bits, to compare weights across ranks.
fn bits_hash(values: &[f32]) -> u64 {
    values.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, v| {
        (h ^ u64::from(v.to_bits())).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Trains `Net` on the first 256 digits, in one process (`parallel` = None, batch `batch`) or
/// data-parallel (each rank its shard at `batch` per rank), from the weights of seed `seed`.
fn train(
    parallel: Option<&DataParallel>,
    seed: u64,
    batch: usize,
    epochs: usize,
    out_dir: Option<PathBuf>,
    resume: Option<PathBuf>,
) -> Result<Vec<f32>> {
    let data = digits()?;
    let subset = Subset::new(&data, (0..EXAMPLES).collect())?;
    let dev = Cpu::seed_from_u64(seed);
    let model = dev.build_module::<Net, f32>();
    let opt = sgd(&model);
    let mut trainer = Trainer::new(model, opt, dev).with_config(config(epochs, out_dir));
    let mut loader = DataLoader::new(&subset, batch)?.shuffle(7);
    if let Some(p) = parallel {
        loader = loader.shard(p.rank(), p.world_size())?;
        trainer = trainer.data_parallel(p.clone());
    }
    if let Some(path) = resume {
        trainer.resume(path)?;
    }
    trainer.fit(&loader, &loader)?;
    Ok(weights(&trainer.model))
}

/// Classification that makes one rank's loss NaN, or ends its process, at a given step.
struct Sabotage {
    inner: Classification,
    step: usize,
    steps: usize,
    exit: bool,
}

impl<M, V> Objective<M, Cpu, shapesafe::data::Batch<V, Cpu>> for Sabotage
where
    Classification: Objective<M, Cpu, shapesafe::data::Batch<V, Cpu>>,
    V: shapesafe::data::Dataset + ?Sized,
{
    fn examples(&self, batch: &shapesafe::data::Batch<V, Cpu>) -> usize {
        batch.len()
    }

    fn training_step(
        &mut self,
        model: &mut M,
        batch: shapesafe::data::Batch<V, Cpu>,
        grads: Gradients<f32, Cpu>,
        metrics: &mut Metrics,
    ) -> Result<Tensor<(), f32, Cpu, OwnedTape<f32, Cpu>>> {
        self.steps += 1;
        let loss = self.inner.training_step(model, batch, grads, metrics)?;
        if self.steps < self.step {
            return Ok(loss);
        }
        if self.exit {
            eprintln!("rank 1 exits on purpose at step {}", self.steps);
            std::process::exit(1);
        }
        Ok(loss * f32::NAN)
    }

    fn validation_step(
        &mut self,
        model: &M,
        batch: shapesafe::data::Batch<V, Cpu>,
        metrics: &mut Metrics,
    ) -> Result<f64> {
        self.inner.validation_step(model, batch, metrics)
    }
}

fn sabotaged(parallel: &DataParallel, exit: bool) -> Result<Vec<f32>> {
    let data = digits()?;
    let subset = Subset::new(&data, (0..EXAMPLES).collect())?;
    let dev = Cpu::seed_from_u64(0);
    let model = dev.build_module::<Net, f32>();
    let opt = sgd(&model);
    let step = if parallel.rank() == 1 { 3 } else { usize::MAX };
    let objective = Sabotage {
        inner: Classification::default(),
        step,
        steps: 0,
        exit,
    };
    let mut trainer = Trainer::new(model, opt, dev)
        .with_objective(objective)
        .with_config(config(2, None))
        .data_parallel(parallel.clone());
    let loader = DataLoader::new(&subset, PER_RANK_BATCH)?
        .shuffle(7)
        .shard(parallel.rank(), parallel.world_size())?;
    trainer.fit(&loader, &loader)?;
    Ok(weights(&trainer.model))
}

/// A stand-in communicator for the other rank of two, inside one process: it records the
/// values it is given to sum (`record`), or adds the other rank's recorded values to them.
#[derive(Default)]
struct OtherRank {
    record: bool,
    values: RefCell<Vec<f32>>,
    offset: RefCell<usize>,
}

impl Communicator for OtherRank {
    fn rank(&self) -> usize {
        0
    }
    fn world_size(&self) -> usize {
        2
    }
    fn backend(&self) -> String {
        "the other rank, in this process".into()
    }
    fn all_reduce_sum_f32(&self, values: &mut [f32]) -> Result<()> {
        if self.record {
            self.values.borrow_mut().extend_from_slice(values);
        } else {
            let start = self.offset.replace_with(|o| *o + values.len());
            let other = self.values.borrow();
            for (v, o) in values.iter_mut().zip(&other[start..]) {
                *v += o;
            }
        }
        Ok(())
    }
    fn all_reduce_sum_f64(&self, _values: &mut [f64]) -> Result<()> {
        unreachable!("the gradients are f32")
    }
    fn broadcast_f32(&self, _values: &mut [f32], _root: usize) -> Result<()> {
        unreachable!("nothing is broadcast")
    }
    fn broadcast_f64(&self, _values: &mut [f64], _root: usize) -> Result<()> {
        unreachable!("nothing is broadcast")
    }
    fn all_gather_u64(&self, values: &[u64]) -> Result<Vec<u64>> {
        Ok([values, values].concat())
    }
    fn barrier(&self) -> Result<()> {
        Ok(())
    }
}

/// What two ranks compute, done by one process with the reduction order fixed: each step
/// takes rank 1's batch and rank 0's apart, from zeroed gradients, and adds rank 1's
/// gradients to rank 0's before halving them (the sum of two floats is the same either way
/// round, so this is the all-reduce's result bit for bit), then the same SGD step.
fn two_shards_in_one_process(epochs: u64) -> Result<Vec<f32>> {
    let data = digits()?;
    let subset = Subset::new(&data, (0..EXAMPLES).collect())?;
    let dev = Cpu::seed_from_u64(0);
    let mut model = dev.build_module::<Net, f32>();
    let mut opt = sgd(&model);
    let shard =
        |rank| DataLoader::new(&subset, PER_RANK_BATCH).and_then(|l| l.shuffle(7).shard(rank, 2));
    let (rank0, rank1) = (shard(0)?, shard(1)?);
    let mut objective = Classification::default();
    let mut metrics = Metrics::new();
    let mut grads = model.alloc_grads();
    for epoch in 0..epochs {
        let theirs: Vec<_> = rank1.epoch(epoch, &dev).collect::<Result<_>>()?;
        for (mine, theirs) in rank0.epoch(epoch, &dev).zip(theirs) {
            let other = OtherRank {
                record: true,
                ..Default::default()
            };
            let fresh = model.alloc_grads();
            let loss = objective.training_step(&mut model, theirs, fresh, &mut metrics)?;
            all_reduce_gradients(&model, &mut loss.backward(), &other, usize::MAX)?;
            let loss = objective.training_step(&mut model, mine?, grads, &mut metrics)?;
            grads = loss.backward();
            let other = OtherRank {
                record: false,
                values: other.values,
                offset: RefCell::new(0),
            };
            all_reduce_gradients(&model, &mut grads, &other, 4096)?;
            opt.update(&mut model, &grads)
                .map_err(|e| Error::Device(format!("{e:?}")))?;
            model.zero_grads(&mut grads);
        }
    }
    Ok(weights(&model))
}

fn scratch() -> PathBuf {
    PathBuf::from(std::env::var(SCRATCH).expect("the driver sets the scratch folder"))
}

/// One rank's part of `scenario`; its `RESULT` lines are what the driver checks.
fn worker(scenario: &str) -> Result<()> {
    let comm: Rc<dyn Communicator> = Rc::new(
        Mpi::init()?.with_timeout(Duration::from_secs(if scenario == "hang" { 2 } else { 60 })),
    );
    let rank = comm.rank();
    // Small buckets, so the gradients go in several all-reduce calls.
    let parallel = DataParallel::shared(comm.clone()).with_bucket_bytes(4096);
    let report = |outcome: Result<String>| match outcome {
        Ok(text) => println!("RESULT rank {rank}: ok {text}"),
        Err(e) => println!("RESULT rank {rank}: error {e}"),
    };
    match scenario {
        "equal" => {
            // Rank 1 starts from other weights: the broadcast must replace them.
            let seed = rank as u64 * 1000;
            let distributed = train(Some(&parallel), seed, PER_RANK_BATCH, 3, None, None)?;
            let hashes = comm.all_gather_u64(&[bits_hash(&distributed)])?;
            let same_bits = hashes.iter().all(|&h| h == hashes[0]);
            let again = train(Some(&parallel), seed, PER_RANK_BATCH, 3, None, None)?;
            let repeatable = bits_hash(&again) == bits_hash(&distributed);
            let single = train(None, 0, 2 * PER_RANK_BATCH, 3, None, None)?;
            let fixed_order = bits_hash(&two_shards_in_one_process(3)?) == hashes[0];
            report(Ok(format!(
                "max_difference {:e} same_bits_on_all_ranks {same_bits} repeatable {repeatable} \
                 same_bits_as_one_process_in_fixed_order {fixed_order}",
                max_difference(&distributed, &single)
            )));
        }
        "resume" => {
            // One process trains an epoch at batch 32 and writes a checkpoint; two ranks at
            // 16 each resume it for two more; one process trains all three at batch 32.
            let dir = scratch().join("resume");
            if rank == 0 {
                train(None, 0, 2 * PER_RANK_BATCH, 1, Some(dir.clone()), None)?;
            }
            comm.barrier()?;
            let checkpoint = Some(dir.join("checkpoint.safetensors"));
            let resumed = train(Some(&parallel), 0, PER_RANK_BATCH, 3, None, checkpoint)?;
            let single = train(None, 0, 2 * PER_RANK_BATCH, 3, None, None)?;
            report(Ok(format!(
                "max_difference {:e}",
                max_difference(&resumed, &single)
            )));
        }
        "bad_data" => {
            // Rank 1's copy of the data file is truncated.
            let path = scratch().join(format!("digits-{rank}.csv.gz"));
            let mut bytes = std::fs::read(data_dir().join("sklearn-digits/digits.csv.gz"))
                .map_err(|source| Error::Io {
                    path: path.clone(),
                    source,
                })?;
            if rank == 1 {
                bytes.truncate(bytes.len() / 2);
            }
            std::fs::write(&path, bytes).map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
            let loaded = agree(&*comm, Digits::load(&path));
            report(loaded.map(|d| format!("{} digits", d.len())));
        }
        "nan" => report(sabotaged(&parallel, false).map(|_| String::new())),
        "exit" => report(sabotaged(&parallel, true).map(|_| String::new())),
        "mismatch" => {
            let data = digits()?;
            let subset = Subset::new(&data, (0..EXAMPLES).collect())?;
            let loader = DataLoader::new(&subset, PER_RANK_BATCH)?.shard(rank, 2)?;
            let dev = Cpu::seed_from_u64(0);
            let outcome = if rank == 1 {
                let model = dev.build_module::<Wider, f32>();
                Trainer::new(model.clone(), sgd(&model), dev)
                    .with_config(config(1, None))
                    .data_parallel(parallel.clone())
                    .fit(&loader, &loader)
                    .map(|_| String::new())
            } else {
                let model = dev.build_module::<Net, f32>();
                Trainer::new(model.clone(), sgd(&model), dev)
                    .with_config(config(1, None))
                    .data_parallel(parallel.clone())
                    .fit(&loader, &loader)
                    .map(|_| String::new())
            };
            report(outcome);
        }
        "uneven" => {
            // Rank 1 forgot to shard its loader: twice the batches of rank 0.
            let data = digits()?;
            let subset = Subset::new(&data, (0..EXAMPLES).collect())?;
            let mut loader = DataLoader::new(&subset, PER_RANK_BATCH)?;
            if rank == 0 {
                loader = loader.shard(rank, 2)?;
            }
            let dev = Cpu::seed_from_u64(0);
            let model = dev.build_module::<Net, f32>();
            let outcome = Trainer::new(model.clone(), sgd(&model), dev)
                .with_config(config(1, None))
                .data_parallel(parallel.clone())
                .fit(&loader, &loader)
                .map(|_| String::new());
            report(outcome);
        }
        "hang" => {
            if rank == 1 {
                std::thread::sleep(Duration::from_secs(30));
            }
            comm.barrier()?;
            report(Ok("passed the barrier".into()));
        }
        other => panic!("unknown scenario {other}"),
    }
    Ok(())
}

/// What `mpirun -np 2` printed and how it ended.
struct Run {
    output: String,
    success: bool,
    seconds: f64,
}

/// Runs `scenario` under `mpirun -np 2`, killing it after `limit`.
fn mpirun(scenario: &str, limit: Duration) -> Run {
    let exe = std::env::current_exe().expect("the test binary's path");
    let scratch =
        std::env::temp_dir().join(format!("shapesafe-mpi-{scenario}-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("a scratch folder");
    let start = Instant::now();
    let mut child = Command::new("mpirun")
        .args(["-np", "2", "--oversubscribe", "--bind-to", "none"])
        .arg(&exe)
        .env(SCENARIO, scenario)
        .env(SCRATCH, &scratch)
        // Open MPI refuses root without these (CI containers run as root).
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        // One rayon thread per rank: two ranks share the two cores.
        .env("RAYON_NUM_THREADS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mpirun on the PATH (Debian: openmpi-bin)");
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for mpirun") {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("scenario {scenario}: mpirun still running after {limit:?}: a hang");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = child.wait_with_output().expect("mpirun's output");
    let _ = std::fs::remove_dir_all(&scratch);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Run {
        output: text,
        success: status.success(),
        seconds: start.elapsed().as_secs_f64(),
    }
}

/// The `RESULT` line of `rank`.
fn result(run: &Run, rank: usize) -> String {
    let prefix = format!("RESULT rank {rank}: ");
    run.output
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no result from rank {rank} in:\n{}", run.output))
        .to_string()
}

/// The number after `key` in `line`.
fn number(line: &str, key: &str) -> f64 {
    line.split_whitespace()
        .skip_while(|w| *w != key)
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {line}"))
}

fn check(name: &str, ok: bool, run: &Run) -> bool {
    println!(
        "test {name} ... {} ({:.1} s)",
        if ok { "ok" } else { "FAILED" },
        run.seconds
    );
    if !ok {
        println!("---- output ----\n{}", run.output);
    }
    ok
}

fn driver() -> bool {
    let minute = Duration::from_secs(120);
    let mut passed = Vec::new();

    // Equal to one process with twice the batch, to 1e-6 (f32: the sums run in another
    // order); bit-identical on both ranks, across runs, and to one process that sums the two
    // halves' gradients as the all-reduce does.
    let run = mpirun("equal", minute);
    let ok = run.success
        && (0..2).all(|r| {
            let line = result(&run, r);
            println!("  rank {r}: {line}");
            line.starts_with("ok")
                && number(&line, "max_difference") <= 1e-6
                && line.contains("same_bits_on_all_ranks true")
                && line.contains("repeatable true")
                && line.contains("same_bits_as_one_process_in_fixed_order true")
        });
    passed.push(check(
        "two_ranks_equal_one_process_with_twice_the_batch",
        ok,
        &run,
    ));

    // A checkpoint written by one process resumes on two ranks.
    let run = mpirun("resume", minute);
    let ok = run.success
        && (0..2).all(|r| {
            let line = result(&run, r);
            println!("  rank {r}: {line}");
            line.starts_with("ok") && number(&line, "max_difference") <= 1e-6
        });
    passed.push(check("resume_on_another_world_size", ok, &run));

    // A failure on rank 1 is an error naming rank 1 on both ranks.
    for (scenario, cause) in [
        ("bad_data", "corrupt"),
        ("nan", "not finite"),
        ("mismatch", "differs from rank 0"),
        ("uneven", "training batches per epoch"),
    ] {
        let run = mpirun(scenario, minute);
        let (r0, r1) = (result(&run, 0), result(&run, 1));
        println!("  rank 0: {r0}\n  rank 1: {r1}");
        let names = |l: &str| l.starts_with("error Rank 1 of the distributed run failed");
        let ok = names(&r0) && names(&r1) && (r0.contains(cause) || r1.contains(cause));
        passed.push(check(&format!("{scenario}_on_rank_1_stops_both"), ok, &run));
    }

    // A rank that dies: mpirun ends the job with an error, it does not hang.
    let run = mpirun("exit", minute);
    let ok = !run.success && run.output.contains("rank 1 exits on purpose");
    passed.push(check("dead_rank_ends_the_job", ok, &run));

    // A rank that hangs: the other's watchdog gives up after its 2 s timeout.
    let run = mpirun("hang", minute);
    let ok = !run.success
        && run.output.contains("rank 0 waited")
        && run.output.contains("in barrier")
        && run.seconds < 25.0;
    passed.push(check("hung_rank_times_out", ok, &run));

    let failed = passed.iter().filter(|ok| !**ok).count();
    println!(
        "\ntest result: {}. {} passed; {failed} failed",
        if failed == 0 { "ok" } else { "FAILED" },
        passed.len() - failed
    );
    failed == 0
}

fn main() {
    match std::env::var(SCENARIO) {
        Ok(scenario) => {
            if let Err(e) = worker(&scenario) {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        }
        Err(_) => {
            if !driver() {
                std::process::exit(1);
            }
        }
    }
}
