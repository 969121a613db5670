//! `Communicator`: what data-parallel training asks of a collective library, and
//! `SingleProcess`, the one-rank communicator that needs none.

use crate::Result;

/// The collective operations data-parallel training needs, over the ranks of one run.
///
/// Every rank must make the same calls in the same order with buffers of the same length, as
/// with MPI and NCCL themselves; a call that one rank skips leaves the others waiting (the
/// `Mpi` backend's watchdog ends such a wait with an error). The
/// element types are the ones training moves: `f32` and `f64` values (gradients, weights,
/// metric sums) and `u64` words (statuses, fingerprints).
///
/// PyTorch equivalent: a `torch.distributed` process group (`all_reduce`, `broadcast`,
/// `all_gather`, `barrier`).
///
/// # Shapes
/// Not about tensor shapes: flat buffers, the same length on every rank.
///
/// ```
/// use shapesafe::distributed::{Communicator, SingleProcess};
/// let comm = SingleProcess;
/// let mut grads = [1.0f32, 2.0];
/// comm.all_reduce_sum_f32(&mut grads)?;
/// assert_eq!((comm.rank(), comm.world_size(), grads), (0, 1, [1.0, 2.0]));
/// assert_eq!(comm.all_gather_u64(&[7])?, vec![7]);
/// # Ok::<(), shapesafe::Error>(())
/// ```
pub trait Communicator {
    /// This process's rank, from 0.
    fn rank(&self) -> usize;
    /// How many ranks the run has.
    fn world_size(&self) -> usize;
    /// The library behind it, for logs (`"MPI (Open MPI v4.1.4)"`).
    fn backend(&self) -> String;
    /// Replaces `values` on every rank by their elementwise sum over all ranks.
    fn all_reduce_sum_f32(&self, values: &mut [f32]) -> Result<()>;
    /// Replaces `values` on every rank by their elementwise sum over all ranks.
    fn all_reduce_sum_f64(&self, values: &mut [f64]) -> Result<()>;
    /// Replaces `values` on every rank by rank `root`'s.
    fn broadcast_f32(&self, values: &mut [f32], root: usize) -> Result<()>;
    /// Replaces `values` on every rank by rank `root`'s.
    fn broadcast_f64(&self, values: &mut [f64], root: usize) -> Result<()>;
    /// Every rank's `values`, concatenated in rank order (each rank gives the same count).
    fn all_gather_u64(&self, values: &[u64]) -> Result<Vec<u64>>;
    /// Returns once every rank has called it.
    fn barrier(&self) -> Result<()>;

    /// This communicator as NCCL's, whose gradients are averaged on the GPU; `None` for the
    /// others, whose gradients are staged through the host.
    #[cfg(feature = "nccl")]
    fn nccl(&self) -> Option<&super::Nccl> {
        None
    }
}

/// The communicator of a run with one rank: every collective leaves its buffer as it is.
///
/// Code written for [`Communicator`] runs unchanged without `mpirun`, and a data-parallel
/// `Trainer` on one rank trains exactly as a plain one (a test pins this).
///
/// # Shapes
/// Not about tensor shapes.
///
/// ```
/// use shapesafe::distributed::{Communicator, SingleProcess};
/// let mut w = [0.5f64];
/// SingleProcess.broadcast_f64(&mut w, 0)?;
/// assert_eq!(w, [0.5]);
/// # Ok::<(), shapesafe::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SingleProcess;

impl Communicator for SingleProcess {
    fn rank(&self) -> usize {
        0
    }
    fn world_size(&self) -> usize {
        1
    }
    fn backend(&self) -> String {
        "a single process".to_string()
    }
    fn all_reduce_sum_f32(&self, _values: &mut [f32]) -> Result<()> {
        Ok(())
    }
    fn all_reduce_sum_f64(&self, _values: &mut [f64]) -> Result<()> {
        Ok(())
    }
    fn broadcast_f32(&self, _values: &mut [f32], root: usize) -> Result<()> {
        check_root(root, 1)
    }
    fn broadcast_f64(&self, _values: &mut [f64], root: usize) -> Result<()> {
        check_root(root, 1)
    }
    fn all_gather_u64(&self, values: &[u64]) -> Result<Vec<u64>> {
        Ok(values.to_vec())
    }
    fn barrier(&self) -> Result<()> {
        Ok(())
    }
}

/// A broadcast's root must be one of the ranks.
pub(crate) fn check_root(root: usize, world_size: usize) -> Result<()> {
    if root < world_size {
        Ok(())
    } else {
        Err(crate::Error::Usage(format!(
            "cannot broadcast from rank {root}: the run has {world_size} ranks (0 to {})",
            world_size - 1
        )))
    }
}
