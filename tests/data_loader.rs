//! DataLoader, transforms, Digits/Fashion-MNIST loaders and splits, against hand-made examples.

mod common;

use common::TestDevice;
use std::io::Write;
use std::path::{Path, PathBuf};

use dfdx::prelude::*;
use flate2::write::GzEncoder;
use flate2::Compression;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shapesafe::data::*;
use shapesafe::Error;

// ---------------------------------------------------------------- helpers

/// A fresh, empty folder under the system temp dir, unique to this test and process.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "shapesafe-data-loader-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// `0, 1, 2, ...` as floats: every pixel distinct, so a misplaced pixel shows.
fn ramp(n: usize) -> Vec<f32> {
    (0..n).map(|i| i as f32).collect()
}

fn digits() -> Digits {
    Digits::load(data_dir().join("sklearn-digits").join(DIGITS_FILE)).unwrap()
}

/// `n` digits whose image `i` is all `i % 17` and whose label is `i % 10`.
fn toy_digits(n: usize) -> Digits {
    let images = (0..n)
        .flat_map(|i| std::iter::repeat_n((i % 17) as u8, DIGITS_PIXELS))
        .collect();
    Digits::from_rows(images, (0..n).map(|i| (i % 10) as u8).collect()).unwrap()
}

/// A data set whose example `i` is the ramp `i*16 .. i*16+16` as a (1, 4, 4) image, label `i % 3`.
struct Ramps(usize);

impl Dataset for Ramps {
    type Shape = Rank3<1, 4, 4>;
    type Classes = Const<3>;
    fn len(&self) -> usize {
        self.0
    }
    fn get(&self, index: usize, out: &mut [f32]) -> shapesafe::Result<usize> {
        if index >= self.0 {
            return Err(Error::IndexOutOfRange { index, len: self.0 });
        }
        for (k, o) in out.iter_mut().enumerate() {
            *o = (index * 16 + k) as f32;
        }
        Ok(index % 3)
    }
}

fn assert_close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol,
            "element {i}: {x} vs {y}\n{a:?}\n{b:?}"
        );
    }
}

// ---------------------------------------------------------------- transforms

#[test]
fn horizontal_flip_mirrors_each_row_of_each_channel() {
    // Two channels of 2x3.
    let mut x = ramp(12);
    RandomHorizontalFlip { p: 1.0 }.apply(&mut x, &[2, 2, 3], &mut rng(0));
    assert_eq!(
        x,
        [2.0, 1.0, 0.0, 5.0, 4.0, 3.0, 8.0, 7.0, 6.0, 11.0, 10.0, 9.0]
    );
    let mut y = ramp(12);
    RandomHorizontalFlip { p: 0.0 }.apply(&mut y, &[2, 2, 3], &mut rng(0));
    assert_eq!(y, ramp(12));
}

#[test]
fn horizontal_flip_happens_with_probability_p() {
    let mut r = rng(3);
    let flips = (0..4000)
        .filter(|_| {
            let mut x = [0.0, 1.0];
            RandomHorizontalFlip { p: 0.25 }.apply(&mut x, &[1, 1, 2], &mut r);
            x[0] == 1.0
        })
        .count();
    assert!((850..1150).contains(&flips), "{flips} flips of 4000");
}

#[test]
fn vertical_flip_mirrors_rows() {
    let mut x = ramp(6);
    RandomVerticalFlip { p: 1.0 }.apply(&mut x, &[1, 3, 2], &mut rng(0));
    assert_eq!(x, [4.0, 5.0, 2.0, 3.0, 0.0, 1.0]);
}

/// The crop written out the long way: build the zero-padded image, cut the window at (i, j).
fn padded_window(
    image: &[f32],
    c: usize,
    h: usize,
    w: usize,
    pad: usize,
    i: usize,
    j: usize,
) -> Vec<f32> {
    let (ph, pw) = (h + 2 * pad, w + 2 * pad);
    let mut padded = vec![0.0; c * ph * pw];
    for ch in 0..c {
        for y in 0..h {
            for x in 0..w {
                padded[ch * ph * pw + (y + pad) * pw + x + pad] = image[ch * h * w + y * w + x];
            }
        }
    }
    let mut out = Vec::new();
    for ch in 0..c {
        for y in i..i + h {
            out.extend_from_slice(
                &padded[ch * ph * pw + y * pw + j..ch * ph * pw + y * pw + j + w],
            );
        }
    }
    out
}

#[test]
fn random_crop_equals_the_window_drawn_from_the_rng() {
    let (c, h, w, pad) = (2, 4, 5, 2);
    let image = ramp(c * h * w);
    let mut corners = std::collections::HashSet::new();
    for seed in 0..200 {
        // The documented draws: row offset then column offset, each in 0..=2*padding.
        let mut probe = rng(seed);
        let i = probe.gen_range(0..=2 * pad);
        let j = probe.gen_range(0..=2 * pad);
        corners.insert((i, j));
        let mut x = image.clone();
        RandomCrop {
            size: (h, w),
            padding: pad,
        }
        .apply(&mut x, &[c, h, w], &mut rng(seed));
        assert_eq!(x, padded_window(&image, c, h, w, pad, i, j), "seed {seed}");
    }
    assert_eq!(corners.len(), 25, "every window position should occur");
}

#[test]
fn random_crop_known_window() {
    // Window at (0, 0) of a 1-padded 3x3 image: the image moves down and right by one.
    let image = ramp(9);
    let seed = (0..1000)
        .find(|&s| {
            let mut r = rng(s);
            (r.gen_range(0..=2usize), r.gen_range(0..=2usize)) == (0, 0)
        })
        .unwrap();
    let mut x = image.clone();
    RandomCrop::new(3, 1).apply(&mut x, &[1, 3, 3], &mut rng(seed));
    assert_eq!(x, [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 3.0, 4.0]);
}

#[test]
fn random_crop_without_padding_is_identity() {
    let mut x = ramp(16);
    RandomCrop::new(4, 0).apply(&mut x, &[1, 4, 4], &mut rng(9));
    assert_eq!(x, ramp(16));
}

#[test]
fn affine_rotation_by_90_is_transpose_and_flip() {
    let n = 5;
    let mut r = rng(1);
    let image: Vec<f32> = (0..n * n).map(|_| r.gen_range(-1.0..1.0)).collect();
    let at = |y: usize, x: usize| image[y * n + x];

    // Clockwise (torchvision's `functional.affine` convention): out[y][x] = in[n-1-x][y].
    let mut cw = image.clone();
    affine(&mut cw, &[1, n, n], 90.0, (0.0, 0.0), 1.0);
    let want: Vec<f32> = (0..n * n).map(|k| at(n - 1 - k % n, k / n)).collect();
    assert_close(&cw, &want, 1e-5);

    // Counter-clockwise: out[y][x] = in[x][n-1-y].
    let mut ccw = image.clone();
    affine(&mut ccw, &[1, n, n], -90.0, (0.0, 0.0), 1.0);
    let want: Vec<f32> = (0..n * n).map(|k| at(k % n, n - 1 - k / n)).collect();
    assert_close(&ccw, &want, 1e-5);

    // Four quarter turns come back; 180 degrees is both flips.
    let mut round = image.clone();
    for _ in 0..4 {
        affine(&mut round, &[1, n, n], 90.0, (0.0, 0.0), 1.0);
    }
    assert_close(&round, &image, 1e-5);
    let mut half = image.clone();
    affine(&mut half, &[n, n], 180.0, (0.0, 0.0), 1.0);
    let want: Vec<f32> = image.iter().rev().copied().collect();
    assert_close(&half, &want, 1e-5);

    // RandomAffine with a degenerate range is the same rotation.
    let mut random = image.clone();
    RandomAffine {
        degrees: (90.0, 90.0),
        translate: (0.0, 0.0),
        scale: (1.0, 1.0),
    }
    .apply(&mut random, &[1, n, n], &mut rng(0));
    assert_close(&random, &cw, 1e-6);
}

#[test]
fn affine_rotation_of_an_even_square_also_lands_on_the_grid() {
    // The centre (1.5, 1.5) is between pixels; a quarter turn still maps grid to grid.
    let image = ramp(16);
    let mut x = image.clone();
    affine(&mut x, &[1, 4, 4], 90.0, (0.0, 0.0), 1.0);
    let want: Vec<f32> = (0..16).map(|k| image[(3 - k % 4) * 4 + k / 4]).collect();
    assert_close(&x, &want, 1e-5);
}

#[test]
fn identity_parameters_leave_the_image_unchanged() {
    let image = ramp(3 * 6 * 7);
    let dims = [3, 6, 7];
    let mut a = image.clone();
    affine(&mut a, &dims, 0.0, (0.0, 0.0), 1.0);
    assert_eq!(a, image);
    let mut b = image.clone();
    RandomAffine::new(0.0).apply(&mut b, &dims, &mut rng(5));
    assert_eq!(b, image);
    let mut c = image.clone();
    RandomCrop {
        size: (6, 7),
        padding: 0,
    }
    .apply(&mut c, &dims, &mut rng(5));
    assert_eq!(c, image);
    let mut d = image.clone();
    Normalize::new(vec![0.0], vec![1.0])
        .unwrap()
        .apply(&mut d, &dims, &mut rng(5));
    assert_eq!(d, image);
    let mut e = image.clone();
    Compose::new().apply(&mut e, &dims, &mut rng(5));
    assert_eq!(e, image);
}

#[test]
fn affine_translation_shifts_whole_pixels_with_zero_fill() {
    let image = ramp(12); // 3x4
    let mut x = image.clone();
    affine(&mut x, &[1, 3, 4], 0.0, (1.0, -1.0), 1.0);
    // Right by one, up by one.
    let want = [0.0, 4.0, 5.0, 6.0, 0.0, 8.0, 9.0, 10.0, 0.0, 0.0, 0.0, 0.0];
    assert_eq!(x, want);
}

#[test]
fn affine_half_pixel_shift_interpolates_bilinearly() {
    let mut x = vec![0.0, 2.0, 4.0, 6.0]; // 1x4
    affine(&mut x, &[1, 1, 4], 0.0, (0.5, 0.0), 1.0);
    // out[x] = 0.5 * in[x - 1] + 0.5 * in[x], with in[-1] = 0.
    assert_close(&x, &[0.0, 1.0, 3.0, 5.0], 1e-6);
}

#[test]
fn affine_scale_keeps_the_centre_and_zooms() {
    // 2x zoom of a 5x5 about its centre pixel (2, 2): out(y, x) = in(2 + (y-2)/2, 2 + (x-2)/2).
    let image = ramp(25);
    let mut x = image.clone();
    affine(&mut x, &[1, 5, 5], 0.0, (0.0, 0.0), 2.0);
    let bil = |y: f32, xx: f32| {
        // The ramp is linear in (y, x), so bilinear interpolation is exact.
        y * 5.0 + xx
    };
    for y in 0..5 {
        for xx in 0..5 {
            let want = bil(2.0 + (y as f32 - 2.0) / 2.0, 2.0 + (xx as f32 - 2.0) / 2.0);
            assert!((x[y * 5 + xx] - want).abs() < 1e-5, "({y}, {xx})");
        }
    }
    // Shrinking pulls in zeros at the border.
    let mut s = vec![1.0; 25];
    affine(&mut s, &[1, 5, 5], 0.0, (0.0, 0.0), 0.5);
    assert_eq!(s[12], 1.0);
    assert_eq!(s[0], 0.0);
}

#[test]
fn normalize_arithmetic_per_channel() {
    let n = Normalize::new(vec![0.5, -1.0, 2.0], vec![0.5, 2.0, 4.0]).unwrap();
    let mut x = vec![1.0, 0.0, 1.0, 3.0, 2.0, 10.0];
    n.apply(&mut x, &[3, 1, 2], &mut rng(0));
    assert_eq!(x, [1.0, -1.0, 1.0, 2.0, 0.0, 2.0]);

    let mut m = vec![0.0, 1.0];
    Normalize::mnist().apply(&mut m, &[1, 1, 2], &mut rng(0));
    assert_close(&m, &[-0.1307 / 0.3081, (1.0 - 0.1307) / 0.3081], 1e-6);
    // Agrees with `normalize_pixel`'s scaling.
    assert!((m[1] - normalize_pixel(255)).abs() < 1e-6);

    assert!(Normalize::new(vec![], vec![]).is_err());
    assert!(Normalize::new(vec![f32::NAN], vec![1.0]).is_err());
}

#[test]
fn same_seed_same_output_different_seed_different_output() {
    let t = (
        RandomCrop::new(8, 2),
        RandomHorizontalFlip::default(),
        RandomAffine::new(30.0).translate(0.2, 0.2).scale(0.8, 1.2),
    );
    let image = ramp(64);
    let run = |seed| {
        let mut x = image.clone();
        t.apply(&mut x, &[1, 8, 8], &mut rng(seed));
        x
    };
    assert_eq!(run(11), run(11));
    let distinct: std::collections::HashSet<Vec<u32>> = (0..20)
        .map(|s| run(s).iter().map(|v| v.to_bits()).collect())
        .collect();
    assert!(
        distinct.len() > 15,
        "only {} distinct outputs",
        distinct.len()
    );
}

#[test]
fn compose_and_tuples_apply_in_order() {
    let flip_then_norm = (
        RandomHorizontalFlip { p: 1.0 },
        Normalize::new(vec![1.0], vec![2.0]).unwrap(),
    );
    let boxed = Compose(vec![
        Box::new(RandomHorizontalFlip { p: 1.0 }),
        Box::new(Normalize::new(vec![1.0], vec![2.0]).unwrap()),
    ]);
    let mut a = vec![1.0, 3.0, 5.0];
    let mut b = a.clone();
    flip_then_norm.apply(&mut a, &[1, 1, 3], &mut rng(0));
    boxed.apply(&mut b, &[1, 1, 3], &mut rng(0));
    assert_eq!(a, [2.0, 1.0, 0.0]);
    assert_eq!(a, b);
}

#[test]
fn random_affine_draws_within_its_ranges() {
    // A single bright pixel in the centre of a 9x9 image: translation by at most 0.2 * 9
    // rounds to at most 2 pixels, so it stays within the central 5x5.
    let t = RandomAffine::new(0.0).translate(0.2, 0.2);
    let mut seen = std::collections::HashSet::new();
    // A corner shift of (-2, -2) has odds of about 1 in 140, so draw plenty.
    for seed in 0..3000 {
        let mut x = vec![0.0; 81];
        x[40] = 1.0;
        t.apply(&mut x, &[1, 9, 9], &mut rng(seed));
        let k = x.iter().position(|&v| v == 1.0).expect("whole-pixel shift");
        let (y, xx) = (k / 9, k % 9);
        assert!((2..=6).contains(&y) && (2..=6).contains(&xx), "{y}, {xx}");
        seen.insert((y, xx));
    }
    assert_eq!(seen.len(), 25);
}

// ---------------------------------------------------------------- DataLoader

#[test]
fn sequential_batches_keep_the_smaller_last_batch() {
    let data = Ramps(7);
    let dev = TestDevice::default();
    let loader = DataLoader::new(&data, 3).unwrap();
    assert_eq!(loader.len(), 3);
    let batches: Vec<_> = loader.epoch(0, &dev).collect::<Result<_, _>>().unwrap();
    let sizes: Vec<usize> = batches.iter().map(|b| b.len()).collect();
    assert_eq!(sizes, [3, 3, 1]);
    assert_eq!(batches[1].indices, [3, 4, 5]);
    assert_eq!(batches[1].labels, [0, 1, 2]);
    assert_eq!(batches[2].inputs.shape().concrete(), [1, 1, 4, 4]);
    assert_eq!(batches[2].inputs.as_vec(), ramp(112)[96..]);
    let targets = batches[0].targets.as_vec();
    assert_eq!(targets, [1., 0., 0., 0., 1., 0., 0., 0., 1.]);

    let dropped = loader.clone().drop_last(true);
    assert_eq!(dropped.len(), 2);
    assert_eq!(dropped.epoch(0, &dev).count(), 2);
    assert!(DataLoader::new(&Ramps(2), 3)
        .unwrap()
        .drop_last(true)
        .is_empty());
}

#[test]
fn batch_size_zero_is_an_error() {
    assert!(matches!(
        DataLoader::new(&Ramps(3), 0),
        Err(Error::Usage(_))
    ));
    let huge = DataLoader::new(&Ramps(3), usize::MAX).unwrap();
    assert_eq!(huge.len(), 1);
    let dev = TestDevice::default();
    assert_eq!(huge.epoch(0, &dev).next().unwrap().unwrap().len(), 3);
}

#[test]
fn shuffle_order_is_a_pure_function_of_seed_and_epoch() {
    let data = Ramps(50);
    let a = DataLoader::new(&data, 4).unwrap().shuffle(123);
    let b = DataLoader::new(&data, 9)
        .unwrap()
        .shuffle(123)
        .drop_last(true);
    for epoch in 0..5 {
        assert_eq!(a.order(epoch), b.order(epoch));
        let mut sorted = a.order(epoch);
        sorted.sort_unstable();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
    }
    assert_ne!(a.order(0), a.order(1));
    assert_ne!(
        a.order(0),
        DataLoader::new(&data, 4).unwrap().shuffle(124).order(0)
    );
    assert_eq!(
        DataLoader::new(&data, 4).unwrap().order(3),
        (0..50).collect::<Vec<_>>()
    );

    let dev = TestDevice::default();
    let served: Vec<usize> = a.epoch(2, &dev).flat_map(|b| b.unwrap().indices).collect();
    assert_eq!(served, a.order(2));
}

fn augmenting_loader(data: &Ramps, batch_size: usize) -> DataLoader<'_, Ramps> {
    DataLoader::new(data, batch_size)
        .unwrap()
        .shuffle(99)
        .transform((
            RandomCrop::new(4, 1),
            RandomHorizontalFlip::default(),
            RandomAffine::new(20.0)
                .translate(0.25, 0.25)
                .scale(0.9, 1.1),
            Normalize::new(vec![10.0], vec![5.0]).unwrap(),
        ))
}

fn bits<S: Shape>(t: &Tensor<S, f32, TestDevice>) -> Vec<u32> {
    t.as_vec().iter().map(|v| v.to_bits()).collect()
}

#[test]
fn resuming_mid_epoch_gives_bit_identical_batches() {
    let data = Ramps(23);
    let loader = augmenting_loader(&data, 5);
    let dev = TestDevice::default();
    for epoch in [0, 1, 7] {
        let full: Vec<_> = loader.epoch(epoch, &dev).collect::<Result<_, _>>().unwrap();
        assert_eq!(full.len(), 5);
        for first in 0..=full.len() {
            let rest: Vec<_> = loader
                .epoch_from(epoch, first, &dev)
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(rest.len(), full.len() - first);
            for (r, f) in rest.iter().zip(&full[first..]) {
                assert_eq!(r.indices, f.indices);
                assert_eq!(bits(&r.inputs), bits(&f.inputs));
                assert_eq!(bits(&r.targets), bits(&f.targets));
            }
        }
    }
    assert_eq!(loader.epoch_from(0, 99, &dev).count(), 0);

    // A fresh loader built the same way (a restarted process) agrees too.
    let again = augmenting_loader(&data, 5);
    let a = loader.epoch(3, &dev).nth(2).unwrap().unwrap();
    let b = again.epoch_from(3, 2, &dev).next().unwrap().unwrap();
    assert_eq!(bits(&a.inputs), bits(&b.inputs));
}

#[test]
fn transform_randomness_depends_on_example_not_batch_position() {
    let data = Ramps(12);
    let dev = TestDevice::default();
    let by = |bs: usize, epoch: u64| -> Vec<(usize, Vec<u32>)> {
        let mut out: Vec<(usize, Vec<u32>)> = augmenting_loader(&data, bs)
            .epoch(epoch, &dev)
            .flat_map(|b| {
                let b = b.unwrap();
                let x = bits(&b.inputs);
                b.indices
                    .iter()
                    .enumerate()
                    .map(|(row, &i)| (i, x[row * 16..(row + 1) * 16].to_vec()))
                    .collect::<Vec<_>>()
            })
            .collect();
        out.sort();
        out
    };
    assert_eq!(by(1, 4), by(5, 4));
    assert_eq!(by(12, 4), by(7, 4));
    assert_ne!(by(5, 4), by(5, 5), "a new epoch should augment afresh");

    // And each example is exactly `get`, then the transform with `example_rng`.
    let loader = augmenting_loader(&data, 5);
    let t = (
        RandomCrop::new(4, 1),
        RandomHorizontalFlip::default(),
        RandomAffine::new(20.0)
            .translate(0.25, 0.25)
            .scale(0.9, 1.1),
        Normalize::new(vec![10.0], vec![5.0]).unwrap(),
    );
    for (i, got) in by(5, 4) {
        let mut x = vec![0.0; 16];
        data.get(i, &mut x).unwrap();
        t.apply(&mut x, &[1, 4, 4], &mut loader.example_rng(4, i));
        assert_eq!(got, x.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
    }
}

#[test]
fn unsuitable_transform_is_reported_once_as_an_error() {
    let data = toy_digits(10);
    let dev = TestDevice::default();
    let loader = DataLoader::new(&data, 4)
        .unwrap()
        .transform(RandomCrop::new(28, 4));
    let mut epoch = loader.epoch(0, &dev);
    assert_eq!(epoch.len(), 1);
    let err = epoch.next().unwrap().unwrap_err();
    assert!(err.to_string().contains("RandomCrop"), "{err}");
    assert!(epoch.next().is_none());

    let rgb = Normalize::new(vec![0.1, 0.2, 0.3], vec![1.0; 3]).unwrap();
    let loader = DataLoader::new(&data, 4).unwrap().transform(rgb);
    assert!(loader.epoch(0, &dev).next().unwrap().is_err());
}

/// A data set that fails or mislabels on purpose.
struct Faulty;

impl Dataset for Faulty {
    type Shape = Rank1<2>;
    type Classes = Const<2>;
    fn len(&self) -> usize {
        6
    }
    fn get(&self, index: usize, out: &mut [f32]) -> shapesafe::Result<usize> {
        out.fill(index as f32);
        match index {
            3 => Err(Error::Usage("example 3 is unreadable".into())),
            5 => Ok(7),
            _ => Ok(index % 2),
        }
    }
}

#[test]
fn dataset_errors_and_bad_labels_become_batch_errors() {
    let dev = TestDevice::default();
    let loader = DataLoader::new(&Faulty, 2).unwrap();
    let results: Vec<_> = loader.epoch(0, &dev).collect();
    assert!(results[0].is_ok());
    assert!(matches!(&results[1], Err(Error::Usage(m)) if m.contains("unreadable")));
    assert!(matches!(
        results[2],
        Err(Error::LabelOutOfRange {
            index: 5,
            label: 7,
            classes: 2,
            ..
        })
    ));
    let b = results[0].as_ref().unwrap();
    assert_eq!(b.inputs.as_vec(), [0.0, 0.0, 1.0, 1.0]);
    assert_eq!(b.inputs.shape().concrete(), [2, 2]);
}

#[test]
fn one_hot_helper() {
    let dev = TestDevice::default();
    let t = one_hot::<Const<4>, _>(&[3, 0, 1], &dev).unwrap();
    assert_eq!(t.shape().concrete(), [3, 4]);
    assert_eq!(t.as_vec(), [0., 0., 0., 1., 1., 0., 0., 0., 0., 1., 0., 0.]);
    // Only the shape: dfdx 0.13's `as_vec` panics on a tensor with no elements.
    let empty = one_hot::<Const<4>, _>(&[], &dev).unwrap();
    assert_eq!(empty.shape().concrete(), [0, 4]);
    assert!(matches!(
        one_hot::<Const<4>, _>(&[1, 4], &dev),
        Err(Error::LabelOutOfRange {
            index: 1,
            label: 4,
            ..
        })
    ));
    assert!(matches!(
        one_hot::<Const<4>, _>(&[1000], &dev),
        Err(Error::Usage(_))
    ));
}

#[test]
fn mnist_split_through_the_loader() {
    let mnist = Mnist::load(data_dir().join("mnist-small")).unwrap();
    let dev = TestDevice::default();
    let loader = DataLoader::new(&mnist.test, 64)
        .unwrap()
        .transform(Normalize::mnist());
    assert_eq!(loader.len(), 16);
    let mut counts = [0usize; 10];
    let mut last = 0;
    let mut first_pixels = None;
    for batch in loader.epoch(0, &dev) {
        let batch = batch.unwrap();
        let _: &Tensor<(usize, Const<1>, Const<28>, Const<28>), f32, TestDevice> = &batch.inputs;
        first_pixels.get_or_insert_with(|| batch.inputs.as_vec()[..MNIST_PIXELS].to_vec());
        for &l in &batch.labels {
            counts[l] += 1;
        }
        last = batch.len();
    }
    assert_eq!(last, 1000 - 15 * 64);
    assert_eq!(counts, [85, 126, 116, 107, 110, 87, 87, 99, 89, 94]);
    // The same scaling as `normalize_pixel`'s.
    let want: Vec<f32> = mnist
        .test
        .image(0)
        .iter()
        .map(|&p| normalize_pixel(p))
        .collect();
    assert_close(&first_pixels.unwrap(), &want, 1e-6);
}

// ---------------------------------------------------------------- Subset and splits

#[test]
fn subset_views_and_checks_indices() {
    let data = Ramps(5);
    let s = Subset::new(&data, vec![4, 0, 4]).unwrap();
    let mut x = [0.0; 16];
    assert_eq!(s.len(), 3);
    assert_eq!(s.get(0, &mut x).unwrap(), 1);
    assert_eq!(x[0], 64.0);
    assert!(matches!(
        s.get(3, &mut x),
        Err(Error::IndexOutOfRange { index: 3, len: 3 })
    ));
    assert!(matches!(
        Subset::new(&data, vec![1, 5]),
        Err(Error::IndexOutOfRange { index: 5, len: 5 })
    ));
    // A subset of a subset.
    let inner = Subset::new(&s, vec![2]).unwrap();
    assert_eq!(inner.get(0, &mut x).unwrap(), 1);
}

#[test]
fn random_split_matches_pytorch_rounding_and_is_seeded() {
    let data = Ramps(10);
    let parts = random_split(&data, &[0.33, 0.33, 0.34], 5).unwrap();
    // floor gives 3, 3, 3; the one left over goes to the first split.
    let sizes: Vec<usize> = parts.iter().map(|p| p.len()).collect();
    assert_eq!(sizes, [4, 3, 3]);
    let mut all: Vec<usize> = parts.iter().flat_map(|p| p.indices().to_vec()).collect();
    all.sort_unstable();
    assert_eq!(all, (0..10).collect::<Vec<_>>());
    let again = random_split(&data, &[4, 3, 3], 5).unwrap();
    for (a, b) in parts.iter().zip(&again) {
        assert_eq!(a.indices(), b.indices());
    }
    assert_ne!(
        random_split(&data, &[4, 3, 3], 6).unwrap()[0].indices(),
        parts[0].indices()
    );

    assert!(random_split(&data, &[4, 3], 0).is_err());
    assert!(random_split(&data, &[0.5, 0.6], 0).is_err());
    assert!(random_split(&data, &[1.5, -0.5], 0).is_err());
    assert!(random_split::<_, usize>(&data, &[], 0).is_err());
    assert!(random_split(&data, &[usize::MAX, 11], 0).is_err());
}

#[test]
fn digits_train_test_split_is_deterministic_and_disjoint() {
    let digits = digits();
    let (train, test) = train_test_split(&digits, 0.25, 42).unwrap();
    assert_eq!((train.len(), test.len()), (1347, 450)); // sklearn: ceil(0.25 * 1797) = 450
    let (train2, test2) = train_test_split(&digits, 0.25, 42).unwrap();
    assert_eq!(train.indices(), train2.indices());
    assert_eq!(test.indices(), test2.indices());
    let mut all: Vec<usize> = train
        .indices()
        .iter()
        .chain(test.indices())
        .copied()
        .collect();
    all.sort_unstable();
    assert_eq!(all, (0..1797).collect::<Vec<_>>());
    assert!(train_test_split(&digits, 1.5, 0).is_err());
    let (none, every) = train_test_split(&digits, 1.0, 0).unwrap();
    assert_eq!((none.len(), every.len()), (0, 1797));

    // Both halves go through a loader.
    let dev = TestDevice::default();
    let n: usize = DataLoader::new(&test, 64)
        .unwrap()
        .epoch(0, &dev)
        .map(|b| b.unwrap().len())
        .sum();
    assert_eq!(n, 450);
}

// ---------------------------------------------------------------- Digits

#[test]
fn digits_loads_the_real_file() {
    let d = digits();
    assert_eq!(d.len(), 1797);
    assert_eq!(
        d.class_counts(),
        [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    );
    assert_eq!(
        d.image(0).unwrap()[..16],
        [0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0]
    );
    assert_eq!(d.labels()[..3], [0, 1, 2]);
    assert_eq!(d.labels()[1796], 8);
    let mut x = [0.0f32; 64];
    assert_eq!(d.get(1, &mut x).unwrap(), 1);
    assert_eq!(x[3], 12.0 / 16.0);
    assert!(x.iter().all(|v| (0.0..=1.0).contains(v)));
    assert!(matches!(
        d.get(1797, &mut x),
        Err(Error::IndexOutOfRange { index: 1797, .. })
    ));

    // The plain CSV reads the same.
    let dir = temp_dir("digits-plain");
    let mut csv = Vec::new();
    d.write_csv(&mut csv).unwrap();
    std::fs::write(dir.join("digits.csv"), &csv).unwrap();
    assert_eq!(Digits::load(dir.join("digits.csv")).unwrap(), d);
    let _ = std::fs::remove_dir_all(dir);
}

fn digits_err(text: &str) -> Error {
    Digits::parse(text.as_bytes(), Path::new("bad.csv")).unwrap_err()
}

fn row(pixels: &str, label: &str) -> String {
    format!("{}{pixels},{label}\n", "0,".repeat(63))
}

#[test]
fn malformed_digits_files_give_clear_errors() {
    let good = row("16", "9");
    assert!(Digits::parse(good.as_bytes(), Path::new("")).is_ok());

    let e = digits_err(&format!("{good}{}", row("x", "1")));
    let msg = e.to_string();
    assert!(
        msg.contains("line 2") && msg.contains("field 64") && msg.contains("\"x\""),
        "{msg}"
    );

    let e = digits_err(&format!("{good}1,2,3\n"));
    assert!(e.to_string().contains("3 comma-separated fields"), "{e}");
    let e = digits_err(&format!("{}{good}", "0,".repeat(70)));
    assert!(e.to_string().contains("line 1"), "{e}");

    let e = digits_err(&row("17", "0"));
    assert!(e.to_string().contains("above the maximum 16"), "{e}");
    let e = digits_err(&row("300", "0"));
    assert!(e.to_string().contains("out of range"), "{e}");
    let e = digits_err(&row("-1", "0"));
    assert!(e.to_string().contains("not a whole number"), "{e}");

    assert!(matches!(
        digits_err(&format!("{good}{}", row("0", "10"))),
        Error::LabelOutOfRange {
            index: 1,
            label: 10,
            classes: 10,
            ..
        }
    ));

    for empty in ["", "\n\n", "  \r\n"] {
        let e = digits_err(empty);
        assert!(e.to_string().contains("no rows"), "{e}");
    }

    let gz = gzip(good.repeat(20).as_bytes());
    for cut in [10, gz.len() / 2, gz.len() - 1] {
        let e = Digits::parse(&gz[..cut], Path::new("cut.csv.gz")).unwrap_err();
        assert!(matches!(e, Error::Decompress { .. }), "cut at {cut}: {e}");
    }
    assert_eq!(Digits::parse(&gz, Path::new("")).unwrap().len(), 20);

    let missing = Digits::load("/nonexistent/digits.csv.gz").unwrap_err();
    assert!(matches!(missing, Error::Io { .. }));
}

#[test]
fn gzip_bomb_stops_at_the_size_limit() {
    // 100 MB of commas compresses to about 100 KB; the reader must stop at 64 MiB.
    let mut e = GzEncoder::new(Vec::new(), Compression::best());
    let chunk = vec![b','; 1 << 20];
    for _ in 0..100 {
        e.write_all(&chunk).unwrap();
    }
    let bomb = e.finish().unwrap();
    let err = Digits::parse(&bomb, Path::new("bomb.csv.gz")).unwrap_err();
    assert!(err.to_string().contains("limit"), "{err}");
}

// ---------------------------------------------------------------- Fashion-MNIST

/// Writes an IDX image file of `count` 28x28 images (pixel = image index) and a label file.
fn write_fake_mnist(dir: &Path, prefix: &str, labels: &[u8], compress: bool) {
    let mut images = vec![0, 0, 8, 3];
    for d in [labels.len() as u32, 28, 28] {
        images.extend_from_slice(&d.to_be_bytes());
    }
    for i in 0..labels.len() {
        images.extend(std::iter::repeat_n(i as u8, MNIST_PIXELS));
    }
    let mut label_file = vec![0, 0, 8, 1];
    label_file.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    label_file.extend_from_slice(labels);
    let (images, label_file, ext) = if compress {
        (gzip(&images), gzip(&label_file), ".gz")
    } else {
        (images, label_file, "")
    };
    std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte{ext}")), images).unwrap();
    std::fs::write(
        dir.join(format!("{prefix}-labels-idx1-ubyte{ext}")),
        label_file,
    )
    .unwrap();
}

#[test]
fn fashion_mnist_loads_mnist_format_folders() {
    for compress in [true, false] {
        let dir = temp_dir(&format!("fashion-{compress}"));
        write_fake_mnist(&dir, "train", &[9, 0, 3], compress);
        write_fake_mnist(&dir, "t10k", &[8], compress);
        let f = FashionMnist::load(&dir).unwrap();
        assert_eq!((f.train.len(), f.test.len()), (3, 1));
        assert_eq!(f.class_name(f.train.labels[0]), Some("Ankle boot"));
        assert_eq!(f.class_name(f.test.labels[0]), Some("Bag"));
        assert_eq!(f.train.image(2)[0], 2);
        let _ = std::fs::remove_dir_all(dir);
    }
    assert_eq!(FASHION_MNIST_CLASSES.len(), 10);
    assert_eq!(
        FASHION_MNIST_DEBIAN_DIR,
        "/usr/share/datasets/fashion-mnist"
    );
    let real = FashionMnist::load(data_dir().join("mnist-small")).unwrap();
    assert_eq!(real.train.len(), 5000);
    assert!(matches!(
        FashionMnist::load(temp_dir("fashion-empty")),
        Err(Error::Io { .. })
    ));
}
