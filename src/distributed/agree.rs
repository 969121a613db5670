//! `agree`: every rank learns whether any rank failed, so all stop together instead of
//! waiting forever in the next collective for a rank that has given up.

use super::Communicator;
use crate::{Error, Result};

/// Tells every rank whether any rank's `outcome` is an error; returns `outcome` where all
/// succeeded, otherwise an [`Error::Distributed`] on every rank naming the rank that failed.
///
/// Call it, on every rank, after any step that can fail on one rank only (reading a shard's
/// data file, a batch, a loss that is NaN on one shard): a rank that returned early would
/// leave the others blocked in their next collective. The failing rank's own error keeps its
/// text; the others name it and point to its output.
///
/// # Shapes
/// Not about tensor shapes: one status word per rank.
///
/// ```
/// use shapesafe::distributed::{agree, SingleProcess};
/// use shapesafe::Error;
/// assert_eq!(agree(&SingleProcess, Ok(3)).unwrap(), 3);
/// let failed = agree::<()>(&SingleProcess, Err(Error::Usage("no data".into())));
/// assert_eq!(failed.unwrap_err().to_string(), "Rank 0 of the distributed run failed: no data");
/// ```
pub fn agree<T>(comm: &dyn Communicator, outcome: Result<T>) -> Result<T> {
    exchange(comm, outcome, 0).map(|(value, _)| value)
}

/// [`agree`], also sharing one word per rank (a clock reading, a flag): on success, every
/// rank's word in rank order.
pub(crate) fn exchange<T>(
    comm: &dyn Communicator,
    outcome: Result<T>,
    word: u64,
) -> Result<(T, Vec<u64>)> {
    let failed = u64::from(outcome.is_err());
    let all = comm.all_gather_u64(&[failed, word])?;
    let first_failed = all.chunks(2).position(|pair| pair[0] != 0);
    match (outcome, first_failed) {
        (Ok(value), None) => Ok((value, all.chunks(2).map(|pair| pair[1]).collect())),
        (Err(e), _) => Err(Error::Distributed {
            rank: comm.rank(),
            reason: e.to_string(),
        }),
        (Ok(_), Some(rank)) => Err(Error::Distributed {
            rank,
            reason: format!(
                "it stopped with an error (see its output), so rank {} stops too",
                comm.rank()
            ),
        }),
    }
}
