//! What the MNIST examples share: command-line flags and a train-validate-test run on MNIST.

use shapesafe::data::{data_dir, random_split, DataLoader, Dataset, Mnist, Normalize};
use shapesafe::device::DeviceKind;
use shapesafe::distributed::{agree, DataParallel};
use shapesafe::optim::Adam;
use shapesafe::prelude::*;
use shapesafe::train::{
    save_atomic, Classification, EarlyStopping, History, LrSchedule, Monitor, TrainConfig, Trainer,
};
use shapesafe::{Error, Result};
use std::path::PathBuf;

/// The flags every MNIST example takes.
pub struct Args {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub lr_decay: f64,
    pub data: PathBuf,
    pub out: PathBuf,
    pub seed: u64,
    /// Epochs without a better validation loss before early stopping.
    pub patience: usize,
    /// A checkpoint to continue from (`<out>/checkpoint.safetensors` of an earlier run).
    pub resume: Option<PathBuf>,
    /// Rescale gradients whose global L2 norm exceeds this (recurrent models want it).
    pub clip_grad_norm: Option<f64>,
    /// Where to train: `--device cpu|cuda|cuda:N`, else the GPU when there is one.
    pub device: DeviceKind,
    /// Data-parallel over the processes `mpirun` started (needs the `mpi` feature).
    pub distributed: bool,
}

/// The flags every MNIST example takes; `parse_args` fills in each example's defaults.
#[derive(clap::Parser, Debug)]
struct Cli {
    /// Epochs to train (early stopping may end sooner).
    #[arg(long, value_parser = crate::cli::count)]
    epochs: usize,
    /// Images per batch (per rank with --distributed).
    #[arg(long, value_parser = crate::cli::count)]
    batch_size: usize,
    /// Adam's learning rate at the start.
    #[arg(long, value_parser = crate::cli::positive, allow_negative_numbers = true)]
    lr: f64,
    /// Factor on the learning rate after every epoch, in (0, 1].
    #[arg(long, value_parser = crate::cli::decay, allow_negative_numbers = true)]
    lr_decay: f64,
    /// Epochs without a better validation loss before early stopping.
    #[arg(long, value_parser = crate::cli::count)]
    patience: usize,
    /// The MNIST folder (the four IDX files, gzipped or not).
    #[arg(long)]
    data: PathBuf,
    /// Where metrics, curves, checkpoints and weights go.
    #[arg(long)]
    out: PathBuf,
    /// Continue from this checkpoint (`<out>/checkpoint.safetensors` of an earlier run).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Seed of the weights, the shuffling and the split.
    #[arg(long)]
    seed: u64,
    /// cpu, cuda, cuda:N, or auto (the GPU when this build has CUDA and one answers, else
    /// the CPU).
    #[arg(long, value_parser = crate::cli::device, default_value = "auto")]
    device: DeviceKind,
    /// Train data-parallel over the processes mpirun started (needs the mpi feature).
    #[arg(long)]
    distributed: bool,
}

/// Parses the command line (clap: `--help` lists every flag with its default; a bad value
/// exits with status 2), starting from `defaults`.
pub fn parse_args(name: &str, defaults: Args) -> Result<Args> {
    use clap::{CommandFactory, FromArgMatches};
    let d = &defaults;
    let default = |value: String| move |a: clap::Arg| a.default_value(value).required(false);
    let command = Cli::command()
        .name(name.to_string())
        .about(format!(
            "Trains {name} on MNIST and reports its test accuracy."
        ))
        .mut_arg("epochs", default(d.epochs.to_string()))
        .mut_arg("batch_size", default(d.batch_size.to_string()))
        .mut_arg("lr", default(d.lr.to_string()))
        .mut_arg("lr_decay", default(d.lr_decay.to_string()))
        .mut_arg("patience", default(d.patience.to_string()))
        .mut_arg("data", default(d.data.display().to_string()))
        .mut_arg("out", default(d.out.display().to_string()))
        .mut_arg("seed", default(d.seed.to_string()));
    let cli = Cli::from_arg_matches(&command.get_matches()).unwrap_or_else(|e| e.exit());
    let mut args = Args {
        epochs: cli.epochs,
        batch_size: cli.batch_size,
        lr: cli.lr,
        lr_decay: cli.lr_decay,
        patience: cli.patience,
        data: cli.data,
        out: cli.out,
        resume: cli.resume,
        seed: cli.seed,
        distributed: cli.distributed,
        ..defaults
    };
    args.device = cli.device;
    // Data-parallel ranks on one host take one GPU each, by their rank on the host.
    if let (true, DeviceKind::Cuda(_)) = (args.distributed, args.device) {
        let local_rank = ["OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID"]
            .iter()
            .find_map(|v| std::env::var(v).ok()?.parse::<usize>().ok());
        if let Some(rank) = local_rank {
            args.device = DeviceKind::Cuda(rank);
        }
    }
    Ok(args)
}

/// Defaults: MNIST from `data/mnist`, Adam with the rate halved each epoch, batch 64, early
/// stopping after 2 epochs without progress, outputs under `runs/<name>`.
pub fn defaults(name: &str, epochs: usize, lr: f64) -> Args {
    Args {
        epochs,
        batch_size: 64,
        lr,
        lr_decay: 0.5,
        data: data_dir().join("mnist"),
        out: PathBuf::from("runs").join(name),
        seed: 0,
        patience: 2,
        resume: None,
        clip_grad_norm: None,
        device: DeviceKind::Cpu,
        distributed: false,
    }
}

/// `--example lenet`'s settings: 4 epochs of Adam from 1e-3. The GAN's referee is trained
/// with them too, so it is the same LeNet-5.
#[allow(dead_code)] // the other MNIST examples have defaults of their own
pub fn lenet_defaults() -> Args {
    defaults("lenet", 4, 1e-3)
}

/// Trains `M` on 55,000 MNIST digits (5,000 held out to validate, batch norm and dropout in
/// training mode), then reports test loss, accuracy and the confusion matrix and saves the
/// weights to `<out>/<name>.safetensors`. `dev` is the device `args.device` names (see
/// `shapesafe::with_device!`). With `args.resume`, training continues from that checkpoint.
pub fn train_on_mnist<M, D>(name: &str, args: Args, dev: D) -> Result<f64>
where
    D: Device<f32>,
    M: BuildOnDevice<D, f32> + ShapeInfer<Rank3<1, 28, 28>>,
    M::Built: Clone
        + TensorCollection<f32, D>
        + Module<
            Tensor<(usize, Const<1>, Const<28>, Const<28>), f32, D>,
            Output = Tensor<(usize, Const<10>), f32, D>,
            Error = D::Err,
        > + ModuleMut<
            Tensor<(usize, Const<1>, Const<28>, Const<28>), f32, D, OwnedTape<f32, D>>,
            Output = Tensor<(usize, Const<10>), f32, D, OwnedTape<f32, D>>,
            Error = D::Err,
        >,
{
    let parallel = data_parallel(args.distributed, &dev)?;
    let main = parallel.as_ref().is_none_or(DataParallel::is_main);
    // A rank that cannot read its data must not leave the others waiting for it.
    let mnist = match &parallel {
        Some(p) => agree(&*p.comm, Mnist::load(&args.data))?,
        None => Mnist::load(&args.data)?,
    };
    // 55,000 to train on, 5,000 to validate (early stopping watches them); the test set is
    // only used once, at the end.
    let valid_len = mnist.train.len() / 12;
    let split = random_split(
        &mnist.train,
        &[mnist.train.len() - valid_len, valid_len],
        args.seed,
    )?;
    let (train, valid) = (&split[0], &split[1]);
    let model = M::try_build_on_device(&dev).map_err(|e| Error::Device(format!("{e:?}")))?;
    // Data-parallel ranks together take batches `ranks` times larger, so the rate grows by
    // the same factor (the linear scaling rule of Goyal et al., 2017).
    let ranks = parallel.as_ref().map_or(1, DataParallel::world_size);
    let lr = args.lr * ranks as f64;
    let optimizer = Adam::new(
        &model,
        AdamConfig {
            lr,
            ..Default::default()
        },
    );
    let config = TrainConfig {
        epochs: args.epochs,
        schedule: LrSchedule::Exponential {
            gamma: args.lr_decay,
        },
        early_stopping: Some(EarlyStopping::new(Monitor::ValidLoss, args.patience)),
        out_dir: Some(args.out.clone()),
        seed: args.seed,
        clip_grad_norm: args.clip_grad_norm,
        ..Default::default()
    };
    let mut trainer = Trainer::new(model, optimizer, dev)
        .with_objective(Classification::top(3))
        .with_config(config)
        .with_summary(Summary::of::<M, Rank3<1, 28, 28>>());
    if let Some(p) = &parallel {
        trainer = trainer.data_parallel(p.clone());
    }
    if let Some(path) = &args.resume {
        trainer.resume(path)?;
    }
    if let (Some(path), true) = (&args.resume, main) {
        println!(
            "resumed from {} after epoch {}",
            path.display(),
            trainer.history().records.len()
        );
    }
    let mut train = DataLoader::new(train, args.batch_size)?
        .shuffle(args.seed)
        .drop_last(true)
        .transform(Normalize::mnist());
    let mut valid = DataLoader::new(valid, 500)?.transform(Normalize::mnist());
    if let Some(p) = &parallel {
        train = train.shard(p.rank(), ranks)?;
        valid = valid.shard(p.rank(), ranks)?;
    }
    let test = DataLoader::new(&mnist.test, 500)?.transform(Normalize::mnist());
    if main {
        println!(
            "device {}: training on {} images, validating on {}, batch {}{}, Adam lr {}{} x {} \
             per epoch\n",
            args.device,
            train.dataset().len(),
            valid.dataset().len(),
            args.batch_size,
            if ranks > 1 {
                format!(" per rank ({} in all)", args.batch_size * ranks)
            } else {
                String::new()
            },
            lr,
            if ranks > 1 {
                format!(" ({} x {ranks} ranks)", args.lr)
            } else {
                String::new()
            },
            args.lr_decay
        );
    }
    trainer.fit(&train, &valid)?;
    if let Some(p) = &parallel {
        print_throughput(p, trainer.history(), train.len() * args.batch_size)?;
    }
    let report = trainer.evaluate(&test)?;
    if !main {
        return Ok(report.accuracy);
    }
    println!(
        "\ntest: loss {:.4}, accuracy {:.2}%, top-3 {:.2}%\n{}",
        report.loss,
        100.0 * report.accuracy,
        100.0 * report.top_k_accuracy,
        report.confusion
    );
    let weights = args.out.join(format!("{name}.safetensors"));
    save_atomic(&trainer.model, &weights)?;
    println!(
        "\nweights: {}\ncheckpoint (for --resume): {}\nmetrics: {}\ncurves: {}",
        weights.display(),
        args.out.join("checkpoint.safetensors").display(),
        args.out.join("metrics.csv").display(),
        args.out.join("curves.svg").display()
    );
    Ok(report.accuracy)
}

/// With `--distributed`, the run's ranks over MPI (one rayon thread per core per rank unless
/// `RAYON_NUM_THREADS` says otherwise), or over NCCL when training on a GPU in an `nccl`
/// build; without it, none.
fn data_parallel<D: 'static>(distributed: bool, dev: &D) -> Result<Option<DataParallel>> {
    if !distributed {
        return Ok(None);
    }
    #[cfg(feature = "mpi")]
    {
        use shapesafe::distributed::{Communicator, Mpi};
        let comm = Mpi::init()?;
        // Ranks on one host share its cores: Open MPI and MPICH say how many ranks it has.
        if std::env::var_os("RAYON_NUM_THREADS").is_none() {
            let local = ["OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"]
                .iter()
                .find_map(|v| std::env::var(v).ok()?.parse::<usize>().ok())
                .unwrap_or(1);
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let _ = rayon::ThreadPoolBuilder::new()
                .num_threads((cores / local.max(1)).max(1))
                .build_global();
        }
        #[cfg(feature = "nccl")]
        let comm: Box<dyn Communicator> =
            match (dev as &dyn std::any::Any).downcast_ref::<shapesafe::prelude::Cuda>() {
                Some(gpu) => Box::new(shapesafe::distributed::Nccl::init(comm, gpu)?),
                None => Box::new(comm),
            };
        #[cfg(not(feature = "nccl"))]
        let _ = dev;
        if comm.rank() == 0 {
            println!(
                "data-parallel over {} ranks, {}, {} rayon threads per rank\n",
                comm.world_size(),
                comm.backend(),
                rayon::current_num_threads()
            );
        }
        Ok(Some(DataParallel::shared(std::rc::Rc::from(comm))))
    }
    #[cfg(not(feature = "mpi"))]
    let _ = dev;
    #[cfg(not(feature = "mpi"))]
    Err(Error::Usage(
        "--distributed needs the mpi feature: cargo build --release --features mpi --example \
         lenet, then mpirun -np 2 target/release/examples/lenet --distributed"
            .into(),
    ))
}

/// Each rank's training throughput (its own images over its own epoch times), printed by
/// rank 0.
fn print_throughput(p: &DataParallel, history: &History, images_per_epoch: usize) -> Result<()> {
    let seconds: f64 = history.records.iter().map(|r| r.seconds).sum();
    let rate = (images_per_epoch * history.records.len()) as f64 / seconds.max(1e-9);
    let rates = p.comm.all_gather_u64(&[rate.to_bits()])?;
    if p.is_main() {
        let rates: Vec<f64> = rates.into_iter().map(f64::from_bits).collect();
        let each: Vec<String> = rates
            .iter()
            .enumerate()
            .map(|(rank, r)| format!("rank {rank} {r:.0}"))
            .collect();
        println!(
            "\ntraining throughput, images/s: {}; all ranks {:.0}",
            each.join(", "),
            rates.iter().sum::<f64>()
        );
    }
    Ok(())
}
