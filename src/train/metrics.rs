//! Classification metrics: confusion matrix, per-class precision/recall/F1, top-k accuracy.

use std::fmt;

/// Counts of (actual, predicted) label pairs over a data set.
///
/// PyTorch users know it from `torchmetrics.ConfusionMatrix` or scikit-learn's
/// `confusion_matrix`: row = actual class, column = predicted class.
///
/// # Shapes
/// `classes x classes` counts.
///
/// ```
/// use shapesafe::train::ConfusionMatrix;
/// let mut m = ConfusionMatrix::new(2);
/// m.add(0, 0);
/// m.add(1, 0);
/// m.add(1, 1);
/// assert_eq!(m.count(1, 0), 1);
/// assert!((m.accuracy() - 2.0 / 3.0).abs() < 1e-12);
/// assert_eq!(m.precision(0), Some(0.5));
/// assert_eq!(m.recall(1), Some(0.5));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfusionMatrix {
    classes: usize,
    counts: Vec<usize>,
}

impl ConfusionMatrix {
    /// An empty matrix for `classes` classes.
    pub fn new(classes: usize) -> Self {
        Self {
            classes,
            counts: vec![0; classes * classes],
        }
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Records one example; labels past the class count are ignored.
    pub fn add(&mut self, actual: usize, predicted: usize) {
        if actual < self.classes && predicted < self.classes {
            self.counts[actual * self.classes + predicted] += 1;
        }
    }

    /// Examples of class `actual` predicted as `predicted`.
    pub fn count(&self, actual: usize, predicted: usize) -> usize {
        self.counts[actual * self.classes + predicted]
    }

    /// All recorded examples.
    pub fn total(&self) -> usize {
        self.counts.iter().sum()
    }

    /// Fraction predicted correctly (0 when empty).
    pub fn accuracy(&self) -> f64 {
        let correct: usize = (0..self.classes).map(|c| self.count(c, c)).sum();
        ratio(correct, self.total()).unwrap_or(0.0)
    }

    /// Of the examples predicted as `class`, the fraction that are; `None` if none were.
    pub fn precision(&self, class: usize) -> Option<f64> {
        let predicted: usize = (0..self.classes).map(|a| self.count(a, class)).sum();
        ratio(self.count(class, class), predicted)
    }

    /// Of the examples of `class`, the fraction predicted as it; `None` if there were none.
    pub fn recall(&self, class: usize) -> Option<f64> {
        let actual: usize = (0..self.classes).map(|p| self.count(class, p)).sum();
        ratio(self.count(class, class), actual)
    }

    /// Harmonic mean of precision and recall; `None` when either is undefined or both are 0.
    pub fn f1(&self, class: usize) -> Option<f64> {
        let (p, r) = (self.precision(class)?, self.recall(class)?);
        (p + r > 0.0).then(|| 2.0 * p * r / (p + r))
    }

    /// Unweighted mean of the per-class F1 scores, an undefined score counting as 0
    /// (scikit-learn's `f1_score(average="macro", zero_division=0)`).
    pub fn macro_f1(&self) -> f64 {
        if self.classes == 0 {
            return 0.0;
        }
        (0..self.classes)
            .map(|c| self.f1(c).unwrap_or(0.0))
            .sum::<f64>()
            / self.classes as f64
    }
}

fn ratio(n: usize, d: usize) -> Option<f64> {
    (d > 0).then(|| n as f64 / d as f64)
}

impl fmt::Display for ConfusionMatrix {
    /// The matrix (rows actual, columns predicted), then precision, recall and F1 per class.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .counts
            .iter()
            .max()
            .unwrap_or(&0)
            .to_string()
            .len()
            .max(3);
        write!(f, "actual\\pred")?;
        for p in 0..self.classes {
            write!(f, " {p:>width$}")?;
        }
        writeln!(f, "   precision  recall      f1")?;
        let show = |v: Option<f64>| v.map_or("     -".to_string(), |v| format!("{v:>6.4}"));
        for a in 0..self.classes {
            write!(f, "{a:>11}")?;
            for p in 0..self.classes {
                write!(f, " {:>width$}", self.count(a, p))?;
            }
            writeln!(
                f,
                "      {}  {}  {}",
                show(self.precision(a)),
                show(self.recall(a)),
                show(self.f1(a))
            )?;
        }
        write!(
            f,
            "accuracy {:.4}, macro F1 {:.4}",
            self.accuracy(),
            self.macro_f1()
        )
    }
}

/// The index of the largest value (the first one on ties); `None` for an empty row.
pub fn argmax(row: &[f32]) -> Option<usize> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &v) in row.iter().enumerate() {
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i)
}

/// Whether `label` is among the `k` largest values of `row`: ties with the k-th
/// value count against the label, so a row of equal scores is never a hit for k < classes.
///
/// ```
/// use shapesafe::train::in_top_k;
/// assert!(in_top_k(&[0.1, 0.5, 0.4], 2, 2));
/// assert!(!in_top_k(&[0.1, 0.5, 0.4], 0, 2));
/// ```
pub fn in_top_k(row: &[f32], label: usize, k: usize) -> bool {
    let Some(&score) = row.get(label) else {
        return false;
    };
    let better = row
        .iter()
        .enumerate()
        .filter(|&(i, &v)| i != label && v >= score)
        .count();
    better < k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_class_metrics_match_hand_counts() {
        // actual: 0 0 0 1 1 2, predicted: 0 0 1 1 2 2
        let mut m = ConfusionMatrix::new(3);
        for (a, p) in [(0, 0), (0, 0), (0, 1), (1, 1), (1, 2), (2, 2)] {
            m.add(a, p);
        }
        assert_eq!(m.precision(0), Some(1.0));
        assert_eq!(m.recall(0), Some(2.0 / 3.0));
        assert_eq!(m.precision(1), Some(0.5));
        assert_eq!(m.recall(2), Some(1.0));
        let f1_0 = 2.0 * (2.0 / 3.0) / (1.0 + 2.0 / 3.0);
        assert!((m.f1(0).unwrap() - f1_0).abs() < 1e-12);
        let macro_f1 = (f1_0 + 0.5 + 2.0 * 0.5 / 1.5) / 3.0;
        assert!((m.macro_f1() - macro_f1).abs() < 1e-12);
        assert!((m.accuracy() - 4.0 / 6.0).abs() < 1e-12);
        assert!(m.to_string().contains("macro F1"));
    }

    #[test]
    fn undefined_scores_are_none() {
        let mut m = ConfusionMatrix::new(2);
        m.add(0, 0);
        assert_eq!(m.precision(1), None);
        assert_eq!(m.recall(1), None);
        assert_eq!(m.f1(1), None);
        assert_eq!(m.macro_f1(), 0.5);
    }

    #[test]
    fn top_k_and_argmax() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), Some(1));
        assert_eq!(argmax(&[]), None);
        assert!(in_top_k(&[0.3, 0.2, 0.5], 0, 2));
        assert!(!in_top_k(&[0.3, 0.2, 0.5], 1, 2));
        assert!(in_top_k(&[0.3, 0.2, 0.5], 1, 3));
        assert!(!in_top_k(&[1.0, 1.0], 0, 1), "ties count against the label");
        assert!(!in_top_k(&[1.0], 4, 1));
    }
}
