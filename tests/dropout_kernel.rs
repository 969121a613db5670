//! The dropout kernel against a plain-loop f64 reference with the same mask, central finite
//! differences, and the statistics of its masks; batched (`Const` and `usize`) and
//! unbatched.

mod common;

use common::{assert_close, finite_differences, random_vec, rng, F64_TIGHT, FINITE_DIFF};
use shapesafe::kernels::dropout::{try_dropout, DropoutMask};
use shapesafe::prelude::*;

/// `y = x / (1 - p)` where the mask keeps, else 0, by plain loops.
fn reference(mask: DropoutMask, p: f64, x: &[f64]) -> Vec<f64> {
    (0..x.len())
        .map(|i| if mask.keeps(i) { x[i] / (1.0 - p) } else { 0.0 })
        .collect()
}

/// The seed the kernel draws first from a device seeded with `seed`.
fn first_seed(seed: u64) -> u64 {
    Cpu::seed_from_u64(seed).random_u64()
}

#[test]
fn batched_and_unbatched_match_the_reference_and_finite_differences() {
    let p = 0.3;
    let xv = random_vec(&mut rng(1), 6 * 50);
    let v: Vec<f64> = (0..xv.len()).map(|k| 0.5 + (k % 7) as f64 / 7.0).collect();
    let mask = DropoutMask::new(first_seed(11), p);
    let want = reference(mask, p, &xv);
    let fd = finite_differences(&xv, |x| {
        reference(mask, p, x)
            .iter()
            .zip(&v)
            .map(|(a, b)| a * b)
            .sum()
    });

    let dev = Cpu::seed_from_u64(11);
    let x: Tensor<Rank2<6, 50>, f64, _> = dev.tensor_from_vec(xv.clone(), Default::default());
    let vt: Tensor<Rank2<6, 50>, f64, _> = dev.tensor_from_vec(v.clone(), Default::default());
    let y = try_dropout(x.leaky_trace(), p).unwrap();
    assert_close("Const batch forward", &y.as_vec(), &want, F64_TIGHT);
    let g = (y * vt).sum().backward().get(&x).as_vec();
    assert_close("Const batch gradient", &g, &fd, FINITE_DIFF);

    let dev = Cpu::seed_from_u64(11);
    let x: Tensor<(usize, Const<50>), f64, _> = dev.tensor_from_vec(xv.clone(), (6, Const));
    let vt: Tensor<(usize, Const<50>), f64, _> = dev.tensor_from_vec(v.clone(), (6, Const));
    let y = try_dropout(x.leaky_trace(), p).unwrap();
    assert_close("usize batch forward", &y.as_vec(), &want, F64_TIGHT);
    let g = (y * vt).sum().backward().get(&x).as_vec();
    assert_close("usize batch gradient", &g, &fd, FINITE_DIFF);

    let dev = Cpu::seed_from_u64(11);
    let x: Tensor<Rank1<50>, f64, _> = dev.tensor_from_vec(xv[..50].to_vec(), Default::default());
    let vt: Tensor<Rank1<50>, f64, _> = dev.tensor_from_vec(v[..50].to_vec(), Default::default());
    let y = try_dropout(x.leaky_trace(), p).unwrap();
    assert_close("unbatched forward", &y.as_vec(), &want[..50], F64_TIGHT);
    let g = (y * vt).sum().backward().get(&x).as_vec();
    assert_close("unbatched gradient", &g, &fd[..50], FINITE_DIFF);
}

#[test]
fn a_transposed_input_is_masked_in_its_logical_order() {
    let p = 0.5;
    let xv: Vec<f32> = (1..=24).map(|v| v as f32).collect();
    let dev = Cpu::seed_from_u64(5);
    let x: Tensor<Rank2<4, 6>, f32, _> = dev.tensor_from_vec(xv.clone(), Default::default());
    let xt = x.leaky_trace().permute::<Rank2<6, 4>, _>();
    let y = try_dropout(xt, p).unwrap();
    let mask = DropoutMask::new(first_seed(5), p);
    let logical: Vec<f32> = (0..24).map(|k| xv[(k % 4) * 6 + k / 4]).collect();
    let want: Vec<f32> = (0..24)
        .map(|i| if mask.keeps(i) { logical[i] * 2.0 } else { 0.0 })
        .collect();
    assert_eq!(y.as_vec(), want);
}

#[test]
fn masks_keep_the_right_fraction_independently_and_reproducibly() {
    let n = 200_000;
    for p in [0.1, 0.5, 0.9] {
        let mask = DropoutMask::new(42, p);
        let kept: Vec<bool> = (0..n).map(|i| mask.keeps(i)).collect();
        let rate = kept.iter().filter(|&&k| k).count() as f64 / n as f64;
        assert!((rate - (1.0 - p)).abs() < 0.005, "p {p}: kept {rate}");
        // Neighbours are independent: both kept as often as (1 - p)^2.
        let both = kept.windows(2).filter(|w| w[0] && w[1]).count() as f64 / (n - 1) as f64;
        assert!(
            (both - (1.0 - p) * (1.0 - p)).abs() < 0.005,
            "p {p}: pairs {both}"
        );
    }
    // Another seed gives another mask; the same seed the same one.
    let (a, b) = (DropoutMask::new(1, 0.5), DropoutMask::new(2, 0.5));
    let differ = (0..1000).filter(|&i| a.keeps(i) != b.keeps(i)).count();
    assert!((400..600).contains(&differ), "{differ} of 1000 differ");
    let run = |seed| {
        let dev = Cpu::seed_from_u64(seed);
        let x: Tensor<Rank1<64>, f32, _> = dev.ones();
        try_dropout(x.leaky_trace(), 0.5).unwrap().as_vec()
    };
    assert_eq!(run(3), run(3));
    assert_ne!(run(3), run(4));
}

#[test]
fn no_dropout_and_full_dropout() {
    let dev = Cpu::seed_from_u64(0);
    let x: Tensor<Rank1<40>, f64, _> =
        dev.tensor_from_vec(random_vec(&mut rng(2), 40), Default::default());
    let y = try_dropout(x.leaky_trace(), 0.0).unwrap();
    assert_eq!(y.as_vec(), x.as_vec());
    let y = try_dropout(x.leaky_trace(), 1.0).unwrap();
    assert!(y.as_vec().iter().all(|&v| v == 0.0));
    let g = y.sum().backward().get(&x).as_vec();
    assert!(g.iter().all(|&v| v == 0.0));
}
