//! Data-parallel training across processes: the [`Communicator`] trait, its MPI and NCCL
//! backends, and the pieces the [`Trainer`](crate::train::Trainer) uses.
//!
//! The recipe is PyTorch's `DistributedDataParallel` and Horovod's: one process per device
//! (a *rank*), each on its own shard of every epoch ([`DataLoader::shard`]); rank 0's weights
//! broadcast to all at the start ([`broadcast_module`]); after every backward pass the
//! gradients averaged across ranks in a few large buckets ([`all_reduce_gradients`]); the same
//! optimizer step everywhere, so the weights stay identical; metrics summed across ranks;
//! files written by rank 0 only. [`DataParallel`] bundles a communicator with its settings
//! for `Trainer::data_parallel`.
//!
//! Backends, each behind a feature, so the default build needs no system library:
//! - `mpi`: `Mpi`, through the `mpi` crate (rsmpi) and the system's MPI library (Open MPI or
//!   MPICH); CPU tensors, and CUDA tensors staged through the host.
//! - `nccl` (with `cuda`): `Nccl`, NVIDIA's collectives on CUDA tensors, its id shared over MPI.
//!
//! A run is launched with `mpirun -np 2 target/release/examples/lenet --distributed`; see
//! `docs/distributed.md`.
//!
//! [`DataLoader::shard`]: crate::data::DataLoader::shard

pub(crate) mod agree;
mod buckets;
mod communicator;
pub(crate) mod model_sync;
#[cfg(feature = "mpi")]
mod mpi;
#[cfg(feature = "nccl")]
mod nccl;
mod parallel;

pub use agree::agree;
pub use buckets::all_reduce_gradients;
pub use communicator::{Communicator, SingleProcess};
pub use model_sync::{broadcast_module, check_same_model, ModelFingerprint};
#[cfg(feature = "mpi")]
#[cfg_attr(docsrs, doc(cfg(feature = "mpi")))]
pub use mpi::Mpi;
#[cfg(feature = "nccl")]
#[cfg_attr(docsrs, doc(cfg(feature = "nccl")))]
pub use nccl::Nccl;
pub use parallel::DataParallel;
