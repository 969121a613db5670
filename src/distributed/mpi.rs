//! `Mpi`: the communicator over the system's MPI library (Open MPI, MPICH) through rsmpi,
//! with a watchdog so that a rank never waits forever for one that is gone.

use super::communicator::check_root;
use super::Communicator;
use crate::{Error, Result};
use mpi::collective::SystemOperation;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator as _, CommunicatorCollectives, Root};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A collective under way: which, and since when.
type InFlight = Arc<Mutex<Option<(&'static str, Instant)>>>;

/// The MPI communicator of the processes `mpirun` started (`MPI_COMM_WORLD`).
///
/// MPI's collectives block until every rank has joined them; a rank that has died or hangs
/// would hold the others forever. A rank that *returns* an error tells the others through
/// [`agree`](crate::distributed::agree), and `mpirun` stops the whole job when a process
/// exits with an error or a signal. For what is left (a rank stuck in a loop, a lost host), a
/// watchdog thread ends this process with a message naming the rank and the collective when
/// one has waited longer than the timeout (5 minutes unless [`Mpi::with_timeout`] says
/// otherwise), and `mpirun` then stops the rest.
///
/// Needs the `mpi` feature, an MPI library with its headers (Debian: `libopenmpi-dev
/// openmpi-bin`) and libclang (`libclang-dev`) to build.
///
/// # Shapes
/// Not about tensor shapes: flat buffers.
///
/// ```no_run
/// use shapesafe::distributed::{Communicator, Mpi};
/// let comm = Mpi::init()?; // under `mpirun -np 2`: ranks 0 and 1
/// let mut x = [comm.rank() as f32 + 1.0];
/// comm.all_reduce_sum_f32(&mut x)?;
/// assert_eq!(x, [3.0]);
/// # Ok::<(), shapesafe::Error>(())
/// ```
pub struct Mpi {
    // Dropping the universe finalizes MPI, so it lives as long as the communicator.
    _universe: mpi::environment::Universe,
    world: SimpleCommunicator,
    rank: usize,
    size: usize,
    in_flight: InFlight,
    timeout: Arc<Mutex<Duration>>,
}

impl Mpi {
    /// Initializes MPI and returns the world communicator. Run without `mpirun`, it is a
    /// world of one rank.
    ///
    /// # Errors
    /// MPI was initialized already in this process.
    pub fn init() -> Result<Self> {
        let universe = mpi::initialize().ok_or_else(|| {
            Error::Usage("MPI is already initialized in this process: call Mpi::init once".into())
        })?;
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        let in_flight: InFlight = Arc::new(Mutex::new(None));
        let timeout = Arc::new(Mutex::new(Duration::from_secs(300)));
        let (watched, limit) = (in_flight.clone(), timeout.clone());
        std::thread::Builder::new()
            .name("mpi-watchdog".into())
            .spawn(move || watchdog(rank, watched, limit))
            .map_err(|e| Error::Usage(format!("could not start the MPI watchdog: {e}")))?;
        Ok(Self {
            _universe: universe,
            world,
            rank,
            size,
            in_flight,
            timeout,
        })
    }

    /// The same communicator, whose collectives give up after `timeout` (at least one
    /// second) instead of 5 minutes.
    pub fn with_timeout(self, timeout: Duration) -> Self {
        if let Ok(mut t) = self.timeout.lock() {
            *t = timeout.max(Duration::from_secs(1));
        }
        self
    }

    /// Runs `f`, a collective named `what`, under the watchdog.
    fn watched<R>(&self, what: &'static str, f: impl FnOnce() -> R) -> R {
        if let Ok(mut slot) = self.in_flight.lock() {
            *slot = Some((what, Instant::now()));
        }
        let result = f();
        if let Ok(mut slot) = self.in_flight.lock() {
            *slot = None;
        }
        result
    }
}

/// Ends the process when a collective has waited past the timeout. `mpirun` sees a rank
/// exit with an error and stops the others.
fn watchdog(rank: usize, in_flight: InFlight, timeout: Arc<Mutex<Duration>>) {
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let limit = timeout
            .lock()
            .map(|t| *t)
            .unwrap_or(Duration::from_secs(300));
        let stuck = in_flight
            .lock()
            .ok()
            .and_then(|slot| *slot)
            .filter(|(_, since)| since.elapsed() > limit);
        if let Some((what, since)) = stuck {
            eprintln!(
                "error: rank {rank} waited {:.0} s in {what} for the other ranks (timeout {} s): \
                 another rank has stopped or hangs, so rank {rank} stops",
                since.elapsed().as_secs_f64(),
                limit.as_secs()
            );
            std::process::exit(3);
        }
    }
}

impl std::fmt::Debug for Mpi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mpi")
            .field("rank", &self.rank)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl Communicator for Mpi {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.size
    }

    fn backend(&self) -> String {
        let library = mpi::environment::library_version().unwrap_or_default();
        let first_line = library.lines().next().unwrap_or("unknown library").trim();
        let first_line = first_line.split(',').next().unwrap_or(first_line);
        format!("MPI ({first_line})")
    }

    fn all_reduce_sum_f32(&self, values: &mut [f32]) -> Result<()> {
        let send = values.to_vec();
        self.watched("all_reduce", || {
            self.world
                .all_reduce_into(&send[..], values, SystemOperation::sum())
        });
        Ok(())
    }

    fn all_reduce_sum_f64(&self, values: &mut [f64]) -> Result<()> {
        let send = values.to_vec();
        self.watched("all_reduce", || {
            self.world
                .all_reduce_into(&send[..], values, SystemOperation::sum())
        });
        Ok(())
    }

    fn broadcast_f32(&self, values: &mut [f32], root: usize) -> Result<()> {
        check_root(root, self.size)?;
        let root = self.world.process_at_rank(root as i32);
        self.watched("broadcast", || root.broadcast_into(values));
        Ok(())
    }

    fn broadcast_f64(&self, values: &mut [f64], root: usize) -> Result<()> {
        check_root(root, self.size)?;
        let root = self.world.process_at_rank(root as i32);
        self.watched("broadcast", || root.broadcast_into(values));
        Ok(())
    }

    fn all_gather_u64(&self, values: &[u64]) -> Result<Vec<u64>> {
        let mut all = vec![0u64; values.len() * self.size];
        self.watched("all_gather", || {
            self.world.all_gather_into(values, &mut all[..])
        });
        Ok(all)
    }

    fn barrier(&self) -> Result<()> {
        self.watched("barrier", || self.world.barrier());
        Ok(())
    }
}
