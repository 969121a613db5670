//! k-means over the training digits' pixels: the clusters the GAN is conditioned on in place
//! of labels (self-conditioned GANs, Liu et al., 2020), so that each cluster's generator
//! draws one tight family of shapes instead of morphing between digits.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shapesafe::prelude::*;

/// Lloyd's iterations; the assignments settle well before (under 1% move after about 20).
const ITERATIONS: usize = 30;

/// Which of `k` clusters each image falls in, by Lloyd's k-means from `k` distinct images
/// picked at random with `seed`, with squared pixel distance. Pixels are `784` per image,
/// row-major, 0-255.
///
/// # Shapes
/// `pixels`: `n * 784` values; returns `n` cluster indices below `k` (below `n` when there
/// are fewer images than clusters).
pub fn kmeans(pixels: &[u8], k: usize, seed: u64) -> Vec<usize> {
    const P: usize = 784;
    let n = pixels.len() / P;
    let k = k.min(n);
    let scaled = |p: u8| p as f32 / 255.0;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut picked = Vec::with_capacity(k);
    while picked.len() < k {
        let i = rng.gen_range(0..n);
        if !picked.contains(&i) {
            picked.push(i);
        }
    }
    let mut centres: Vec<f32> = picked
        .iter()
        .flat_map(|&i| pixels[i * P..(i + 1) * P].iter().map(|&p| scaled(p)))
        .collect();
    let dev = Cpu::default();
    // The only f32 copy of the pixels; the centre updates read the bytes.
    let images = dev.tensor_from_vec(
        pixels[..n * P].iter().map(|&p| scaled(p)).collect(),
        (n, Const::<P>),
    );
    let mut assigned = vec![usize::MAX; n];
    for _ in 0..ITERATIONS {
        // |x - c|^2 = |x|^2 - 2 x.c + |c|^2; |x|^2 is the same for every centre.
        let c = dev.tensor_from_vec(centres.clone(), (k, Const::<P>));
        let dots = images
            .clone()
            .matmul(c.permute::<_, Axes2<1, 0>>())
            .as_vec();
        let norms: Vec<f32> = centres
            .chunks(P)
            .map(|c| c.iter().map(|v| v * v).sum())
            .collect();
        let mut moved = 0;
        for (i, row) in dots.chunks(k).enumerate() {
            let best = (0..k)
                .map(|j| (j, norms[j] - 2.0 * row[j]))
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map_or(0, |(j, _)| j);
            moved += usize::from(assigned[i] != best);
            assigned[i] = best;
        }
        let mut sums = vec![0.0f64; k * P];
        let mut counts = vec![0usize; k];
        for (i, &a) in assigned.iter().enumerate() {
            counts[a] += 1;
            for (s, &v) in sums[a * P..(a + 1) * P]
                .iter_mut()
                .zip(&pixels[i * P..(i + 1) * P])
            {
                *s += scaled(v) as f64;
            }
        }
        for (j, &count) in counts.iter().enumerate() {
            // An emptied cluster keeps its centre.
            if count > 0 {
                for (c, s) in centres[j * P..(j + 1) * P]
                    .iter_mut()
                    .zip(&sums[j * P..(j + 1) * P])
                {
                    *c = (*s / count as f64) as f32;
                }
            }
        }
        if moved == 0 {
            break;
        }
    }
    assigned
}

/// The share of images whose label is their cluster's most common label: how well the
/// clusters follow the digits (a diagnostic; training never sees the labels).
///
/// # Shapes
/// `clusters` and `labels`: one per image; `k` clusters.
pub fn purity(clusters: &[usize], labels: &[u8], k: usize) -> f64 {
    let mut counts = vec![[0usize; 10]; k];
    for (&c, &l) in clusters.iter().zip(labels) {
        counts[c][l as usize % 10] += 1;
    }
    let majority: usize = counts
        .iter()
        .map(|c| c.iter().max().copied().unwrap_or(0))
        .sum();
    majority as f64 / clusters.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lloyd's fixed point: every image is nearest (in f64) to the mean of its own cluster.
    #[test]
    fn every_image_is_nearest_its_own_clusters_mean() {
        let mut rng = StdRng::seed_from_u64(7);
        let (n, k) = (90, 4);
        // Three lit bands of rows, with noise, so the clusters have something to find.
        let pixels: Vec<u8> = (0..n * 784)
            .map(|i| {
                let lit = ((i % 784) / 28) / 10 == (i / 784) % 3;
                (if lit { 180 } else { 20 }) + rng.gen_range(0..60u8)
            })
            .collect();
        let assigned = kmeans(&pixels, k, 0);
        let x: Vec<f64> = pixels.iter().map(|&p| p as f64 / 255.0).collect();
        let mut means = vec![vec![0.0; 784]; k];
        let mut counts = vec![0usize; k];
        for (i, &c) in assigned.iter().enumerate() {
            counts[c] += 1;
            for (m, v) in means[c].iter_mut().zip(&x[i * 784..(i + 1) * 784]) {
                *m += v;
            }
        }
        for (m, &c) in means.iter_mut().zip(&counts) {
            m.iter_mut().for_each(|v| *v /= c.max(1) as f64);
        }
        for (i, &c) in assigned.iter().enumerate() {
            let distance = |j: usize| -> f64 {
                means[j]
                    .iter()
                    .zip(&x[i * 784..(i + 1) * 784])
                    .map(|(m, v)| (m - v) * (m - v))
                    .sum()
            };
            for j in (0..k).filter(|&j| counts[j] > 0) {
                // f32 arithmetic in `kmeans`, f64 here: ties within 1e-2 of ~100.
                assert!(
                    distance(c) <= distance(j) + 1e-2,
                    "image {i}: cluster {c}, nearer {j}"
                );
            }
        }
    }

    #[test]
    fn purity_counts_each_clusters_majority() {
        // Cluster 0 holds labels 1, 1, 2; cluster 1 holds 3, 4: 2 + 1 of 5 agree.
        assert_eq!(purity(&[0, 0, 0, 1, 1], &[1, 1, 2, 3, 4], 2), 0.6);
    }
}
