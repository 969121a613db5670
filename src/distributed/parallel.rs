//! `DataParallel`: a communicator and the settings a data-parallel `Trainer` runs with.

use super::Communicator;
use std::rc::Rc;

/// A communicator and the data-parallel settings, for `Trainer::data_parallel`: PyTorch's
/// `DistributedDataParallel(model, bucket_cap_mb=25)` without the wrapping.
///
/// # Shapes
/// Not a layer: it holds no tensors.
///
/// ```
/// use shapesafe::distributed::{DataParallel, SingleProcess};
/// let parallel = DataParallel::new(SingleProcess).with_bucket_bytes(1 << 20);
/// assert_eq!((parallel.rank(), parallel.world_size(), parallel.is_main()), (0, 1, true));
/// assert_eq!(parallel.bucket_bytes, 1 << 20);
/// ```
#[derive(Clone)]
pub struct DataParallel {
    /// The ranks of the run.
    pub comm: Rc<dyn Communicator>,
    /// Bytes of gradient per all-reduce call (PyTorch's default: 25 MiB).
    pub bucket_bytes: usize,
}

impl DataParallel {
    /// Data parallelism over `comm`'s ranks with 25 MiB buckets.
    pub fn new(comm: impl Communicator + 'static) -> Self {
        Self::shared(Rc::new(comm))
    }

    /// The same, for a communicator the caller keeps using too.
    pub fn shared(comm: Rc<dyn Communicator>) -> Self {
        Self {
            comm,
            bucket_bytes: 25 << 20,
        }
    }

    /// The same with buckets of `bytes` bytes.
    pub fn with_bucket_bytes(mut self, bytes: usize) -> Self {
        self.bucket_bytes = bytes;
        self
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.comm.rank()
    }

    /// How many ranks the run has.
    pub fn world_size(&self) -> usize {
        self.comm.world_size()
    }

    /// Whether this is rank 0, the one that prints and writes files.
    pub fn is_main(&self) -> bool {
        self.comm.rank() == 0
    }
}

impl std::fmt::Debug for DataParallel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataParallel")
            .field("rank", &self.rank())
            .field("world_size", &self.world_size())
            .field("backend", &self.comm.backend())
            .field("bucket_bytes", &self.bucket_bytes)
            .finish()
    }
}
