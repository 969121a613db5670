//! `sample_logits`: drawing the next token from a model's logits, with temperature and top-k.

use rand::Rng;

/// Draws an index from `softmax(logits / temperature)`, keeping only the `top_k` largest
/// logits when given: the sampling step of char-RNN and GPT generation loops.
///
/// PyTorch equivalent: `torch.multinomial(F.softmax(logits / t, -1), 1)` after zeroing all
/// but `torch.topk(logits, k)`. Below 1 the temperature sharpens the distribution, above 1 it
/// flattens it. Returns `None` for no logits, a temperature that is not above 0, or a
/// `top_k` of 0.
///
/// # Shapes
/// `logits` is one row `(VOCAB,)`; the result is an index into it.
///
/// ```
/// use rand::{rngs::StdRng, SeedableRng};
/// use shapesafe::nn::sample_logits;
/// let mut rng = StdRng::seed_from_u64(0);
/// let logits = [0.5f32, 3.0, -1.0];
/// assert_eq!(sample_logits(&logits, 1.0, Some(1), &mut rng), Some(1));
/// assert!(sample_logits(&logits, 0.0, None, &mut rng).is_none());
/// let draw = sample_logits(&logits, 2.0, Some(2), &mut rng).unwrap();
/// assert!(draw == 0 || draw == 1, "index 2 is outside the top 2");
/// ```
pub fn sample_logits(
    logits: &[f32],
    temperature: f64,
    top_k: Option<usize>,
    rng: &mut impl Rng,
) -> Option<usize> {
    if logits.is_empty() || temperature.is_nan() || temperature <= 0.0 || top_k == Some(0) {
        return None;
    }
    let mut ranked: Vec<(usize, f32)> = logits.iter().copied().enumerate().collect();
    if let Some(k) = top_k {
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        ranked.truncate(k);
    }
    let max = ranked.iter().map(|&(_, l)| l).fold(f32::MIN, f32::max);
    let weights: Vec<f64> = ranked
        .iter()
        .map(|&(_, l)| (f64::from(l - max) / temperature).exp())
        .collect();
    let mut pick = rng.gen::<f64>() * weights.iter().sum::<f64>();
    for (&(index, _), w) in ranked.iter().zip(&weights) {
        if pick < *w {
            return Some(index);
        }
        pick -= w;
    }
    ranked.last().map(|&(index, _)| index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    /// Frequencies over many draws against the softmax they sample, computed in f64.
    #[test]
    fn draws_follow_the_tempered_softmax_of_the_top_k() {
        let logits = [1.0f32, 2.0, 0.0, -1.0];
        let mut rng = StdRng::seed_from_u64(7);
        for (temperature, top_k) in [(1.0, None), (0.5, Some(3)), (2.0, Some(2))] {
            let kept: Vec<usize> = match top_k {
                Some(3) => vec![0, 1, 2],
                Some(_) => vec![0, 1],
                None => vec![0, 1, 2, 3],
            };
            let z: f64 = kept
                .iter()
                .map(|&i| (f64::from(logits[i]) / temperature).exp())
                .sum();
            let mut counts = [0usize; 4];
            let draws = 40_000;
            for _ in 0..draws {
                counts[sample_logits(&logits, temperature, top_k, &mut rng).unwrap()] += 1;
            }
            for i in 0..4 {
                let expected = if kept.contains(&i) {
                    (f64::from(logits[i]) / temperature).exp() / z
                } else {
                    0.0
                };
                let seen = counts[i] as f64 / draws as f64;
                assert!(
                    (seen - expected).abs() < 0.01,
                    "t {temperature}, k {top_k:?}, index {i}: {seen} vs {expected}"
                );
            }
        }
    }
}
