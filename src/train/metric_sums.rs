//! `Metrics`: named running means (sum and count) that an objective reports per batch.

/// Named metrics accumulated over an epoch as sums and counts, so that the epoch's value is
/// the mean over examples (or tokens, or pixels: whatever the count counts), not over batches.
///
/// PyTorch users know it from Lightning's `self.log(name, value, batch_size=n)`, which
/// averages the same way.
///
/// # Shapes
/// Not a layer: one `(sum, count)` per name, in the order first added.
///
/// ```
/// use shapesafe::train::Metrics;
/// let mut m = Metrics::new();
/// m.add("accuracy", 3.0, 4.0); // 3 of 4 right
/// m.add("accuracy", 1.0, 4.0);
/// assert_eq!(m.mean("accuracy"), Some(0.5));
/// assert_eq!(m.mean("kl"), None);
/// let names: Vec<String> = m.means().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["accuracy"]);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metrics {
    entries: Vec<(String, f64, f64)>,
}

impl Metrics {
    /// No metrics yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `sum` over `count` items to metric `name` (`mean * count` for a batch mean).
    pub fn add(&mut self, name: &str, sum: f64, count: f64) {
        match self.entries.iter_mut().find(|(n, _, _)| n == name) {
            Some((_, s, c)) => {
                *s += sum;
                *c += count;
            }
            None => self.entries.push((name.to_string(), sum, count)),
        }
    }

    /// The mean of `name` so far; `None` if it was never added or its count is 0.
    pub fn mean(&self, name: &str) -> Option<f64> {
        self.entries
            .iter()
            .find(|(n, _, _)| n == name)
            .and_then(|&(_, s, c)| (c > 0.0).then(|| s / c))
    }

    /// Every metric's name and mean, in the order first added.
    pub fn means(&self) -> Vec<(String, f64)> {
        self.entries
            .iter()
            .filter(|(_, _, c)| *c > 0.0)
            .map(|(n, s, c)| (n.clone(), s / c))
            .collect()
    }

    /// Adds every sum and count of `other` (another batch, or another process's epoch).
    pub fn merge(&mut self, other: &Metrics) {
        for (name, sum, count) in &other.entries {
            self.add(name, *sum, *count);
        }
    }

    /// Sums every entry's sum and count across the ranks of a distributed run, so each rank
    /// then holds the means over all ranks' examples. Every rank must report the same names
    /// in the same order (the same objective does).
    pub(crate) fn all_reduce(
        &mut self,
        comm: &dyn crate::distributed::Communicator,
    ) -> crate::Result<()> {
        let names: Vec<&str> = self.entries.iter().map(|(n, _, _)| n.as_str()).collect();
        use crate::distributed::model_sync::{fnv, FNV_OFFSET};
        let hash = fnv(FNV_OFFSET, names.join("\u{1f}").as_bytes());
        let all = comm.all_gather_u64(&[hash])?;
        if let Some(rank) = all.iter().position(|&h| h != all[0]) {
            return Err(crate::Error::Distributed {
                rank,
                reason: format!(
                    "it reports other metrics than rank 0 (this is rank {}, reporting {names:?})",
                    comm.rank()
                ),
            });
        }
        let mut flat: Vec<f64> = self.entries.iter().flat_map(|&(_, s, c)| [s, c]).collect();
        comm.all_reduce_sum_f64(&mut flat)?;
        for (entry, pair) in self.entries.iter_mut().zip(flat.chunks(2)) {
            entry.1 = pair[0];
            entry.2 = pair[1];
        }
        Ok(())
    }
}
