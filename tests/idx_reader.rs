//! Integration tests for the IDX reader, the MNIST loader and the batcher, on the shipped
//! `data/mnist-small` and on deliberately broken files.

mod common;

use common::TestDevice;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dfdx::shapes::{HasShape, Shape};
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shapesafe::data::*;
use shapesafe::Error;

fn small_dir() -> PathBuf {
    data_dir().join("mnist-small")
}

/// A fresh directory under the system temp dir, removed (with its contents) on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "shapesafe-idx-test-{}-{tag}-{n}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn gunzip_file(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// A raw IDX image file with the given header dims and `pixels` after it.
fn idx_images(dims: [u32; 3], pixels: &[u8]) -> Vec<u8> {
    let mut v = IDX_IMAGES_MAGIC.to_be_bytes().to_vec();
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(pixels);
    v
}

/// A raw IDX label file holding `labels`.
fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut v = IDX_LABELS_MAGIC.to_be_bytes().to_vec();
    v.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    v.extend_from_slice(labels);
    v
}

/// Three 2x2 images with pixels 0..12.
fn tiny_images() -> Vec<u8> {
    idx_images([3, 2, 2], &(0..12).collect::<Vec<u8>>())
}

const P: &str = "synthetic.idx";

// ---------------------------------------------------------------- real data

#[test]
fn mnist_small_has_the_documented_contents() {
    let m = Mnist::load(small_dir()).unwrap();
    assert_eq!(m.train.len(), 5000);
    assert_eq!(m.test.len(), 1000);
    assert_eq!(m.train.images.len(), 5000 * MNIST_PIXELS);
    assert_eq!(m.test.images.len(), 1000 * MNIST_PIXELS);
    assert_eq!(
        m.train.class_counts(),
        [479, 563, 488, 493, 535, 434, 501, 550, 462, 495]
    );
    assert_eq!(
        m.test.class_counts(),
        [85, 126, 116, 107, 110, 87, 87, 99, 89, 94]
    );
    assert_eq!(m.train.labels[..10], [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    // MNIST digits are white on black with a black border.
    let first = m.train.image(0);
    assert_eq!(first.len(), MNIST_PIXELS);
    assert_eq!(first[0], 0);
    assert!(first.contains(&255));
    // Pixel statistics of this subset are close to the full training set's constants.
    let mean = m.train.images.iter().map(|&p| f64::from(p)).sum::<f64>()
        / m.train.images.len() as f64
        / 255.0;
    assert!((mean - f64::from(MNIST_MEAN)).abs() < 0.01, "mean {mean}");
}

#[test]
fn uncompressed_files_with_standard_names_load_too() {
    let tmp = TempDir::new("raw");
    for name in [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS] {
        let raw = gunzip_file(&small_dir().join(name));
        tmp.write(name.strip_suffix(".gz").unwrap(), &raw);
    }
    let raw = Mnist::load(&tmp.0).unwrap();
    let gz = Mnist::load(small_dir()).unwrap();
    assert_eq!(raw, gz);
}

#[test]
fn missing_directory_is_an_io_error_naming_the_file() {
    let tmp = TempDir::new("missing");
    let err = Mnist::load(tmp.0.join("nope")).unwrap_err();
    assert!(matches!(&err, Error::Io { path, source }
        if path.ends_with(TRAIN_IMAGES) && source.kind() == std::io::ErrorKind::NotFound));
    assert!(std::error::Error::source(&err).is_some());
    assert!(err.to_string().contains(TRAIN_IMAGES), "{err}");
}

#[test]
fn label_files_are_checked_against_the_class_count() {
    // The fifth training label is a 9, the first one of 9 or more.
    let err = read_idx_labels(small_dir().join(TRAIN_LABELS), 9).unwrap_err();
    assert!(
        matches!(
            err,
            Error::LabelOutOfRange {
                index: 4,
                label: 9,
                classes: 9,
                ..
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("index 4") && msg.contains(TRAIN_LABELS),
        "{msg}"
    );
}

#[test]
fn image_and_label_counts_must_agree() {
    let dir = small_dir();
    let err = MnistSplit::load(dir.join(TEST_IMAGES), dir.join(TRAIN_LABELS)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::CountMismatch {
                images: 1000,
                labels: 5000,
                ..
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("1000") && msg.contains("5000"), "{msg}");
}

#[test]
fn images_must_be_28_by_28() {
    let tmp = TempDir::new("shape");
    let images = tmp.write("i.idx", &tiny_images());
    let labels = tmp.write("l.idx", &idx_labels(&[1, 2, 3]));
    let err = MnistSplit::load(&images, &labels).unwrap_err();
    assert!(
        matches!(&err, Error::ShapeMismatch { expected, found, .. }
            if expected == &[3, 28, 28] && found == &[3, 2, 2]),
        "{err:?}"
    );
}

#[test]
fn wrong_kind_of_file_is_bad_magic() {
    let dir = small_dir();
    let err = read_idx_labels(dir.join(TEST_IMAGES), 10).unwrap_err();
    assert!(
        matches!(
            err,
            Error::BadMagic {
                expected: 0x801,
                found: 0x803,
                ..
            }
        ),
        "{err:?}"
    );
    let err = read_idx_images(dir.join(TEST_LABELS)).unwrap_err();
    assert!(matches!(
        err,
        Error::BadMagic {
            expected: 0x803,
            found: 0x801,
            ..
        }
    ));

    let mut bytes = tiny_images();
    bytes[2] = 0x0d; // type code for f32
    let err = parse_idx_images(&bytes, Path::new(P)).unwrap_err();
    assert!(matches!(err, Error::BadMagic { found: 0x0d03, .. }));
    assert!(err.to_string().contains(P));
}

#[test]
fn every_truncation_of_a_real_file_is_reported() {
    let labels = gunzip_file(&small_dir().join(TEST_LABELS));
    let images = gunzip_file(&small_dir().join(TEST_IMAGES));
    assert_eq!(images.len(), 16 + 1000 * MNIST_PIXELS);
    for len in [0, 1, 3, 4, 7, 8, 9, 500, labels.len() - 1] {
        let err = parse_idx_labels(&labels[..len], Path::new(P), 10).unwrap_err();
        assert!(matches!(err, Error::Truncated { .. }), "len {len}: {err:?}");
    }
    for len in [0, 4, 15, 16, 17, 784 * 500 + 16, images.len() - 1] {
        let err = parse_idx_images(&images[..len], Path::new(P)).unwrap_err();
        let want = if len < 16 { 16 } else { images.len() as u64 };
        assert!(
            matches!(err, Error::Truncated { expected_bytes, found_bytes, .. }
                if expected_bytes == want && found_bytes == len as u64),
            "len {len}: {err:?}"
        );
    }
    // Untruncated, both parse, and match what the file reader gives.
    let parsed = parse_idx_images(&images, Path::new(P)).unwrap();
    assert_eq!(
        parsed,
        read_idx_images(small_dir().join(TEST_IMAGES)).unwrap()
    );
}

#[test]
fn a_cut_gzip_file_is_an_error() {
    let gz = std::fs::read(small_dir().join(TEST_LABELS)).unwrap();
    let tmp = TempDir::new("cutgz");
    for len in [2, 10, gz.len() / 2, gz.len() - 9, gz.len() - 1] {
        let path = tmp.write("cut.gz", &gz[..len]);
        let err = read_idx_labels(&path, 10).unwrap_err();
        assert!(
            matches!(err, Error::Decompress { .. } | Error::Truncated { .. }),
            "len {len}: {err:?}"
        );
    }
}

// ---------------------------------------------------------------- synthetic files

#[test]
fn synthetic_files_round_trip_raw_and_gzipped() {
    let want = IdxImages {
        count: 3,
        rows: 2,
        cols: 2,
        pixels: (0..12).collect(),
    };
    assert_eq!(
        parse_idx_images(&tiny_images(), Path::new(P)).unwrap(),
        want
    );
    assert_eq!(
        parse_idx_images(&gzip(&tiny_images()), Path::new(P)).unwrap(),
        want
    );
    let tmp = TempDir::new("roundtrip");
    let path = tmp.write("tiny.idx.gz", &gzip(&tiny_images()));
    assert_eq!(read_idx_images(&path).unwrap(), want);
    assert_eq!(want.image(2), Some(&[8u8, 9, 10, 11][..]));
}

#[test]
fn every_truncation_of_a_synthetic_file_is_reported() {
    let images = tiny_images();
    for len in 0..images.len() {
        let err = parse_idx_images(&images[..len], Path::new(P)).unwrap_err();
        let want = if len < 16 { 16 } else { images.len() as u64 };
        assert!(
            matches!(err, Error::Truncated { expected_bytes, found_bytes, .. }
                if expected_bytes == want && found_bytes == len as u64),
            "len {len}: {err:?}"
        );
    }
    let labels = idx_labels(&[1, 2, 3]);
    for len in 0..labels.len() {
        let err = parse_idx_labels(&labels[..len], Path::new(P), 10).unwrap_err();
        assert!(matches!(err, Error::Truncated { .. }), "len {len}: {err:?}");
    }
    // Truncations of the gzipped form, read from a file, are errors too.
    let tmp = TempDir::new("truncgz");
    let gz = gzip(&images);
    for len in 0..gz.len() {
        let path = tmp.write("t.gz", &gz[..len]);
        assert!(read_idx_images(&path).is_err(), "len {len}");
    }
    let path = tmp.write("t.gz", &gzip(&images[..images.len() - 1]));
    assert!(matches!(
        read_idx_images(&path).unwrap_err(),
        Error::Truncated {
            expected_bytes: 28,
            found_bytes: 27,
            ..
        }
    ));
}

#[test]
fn trailing_bytes_are_rejected() {
    let mut images = tiny_images();
    images.push(0);
    let err = parse_idx_images(&images, Path::new(P)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::TrailingBytes {
                expected_bytes: 28,
                extra_bytes: 1,
                at_least: false,
                ..
            }
        ),
        "{err:?}"
    );
    let mut labels = idx_labels(&[1, 2, 3]);
    labels.extend_from_slice(&[0; 5]);
    let err = parse_idx_labels(&labels, Path::new(P), 10).unwrap_err();
    assert!(matches!(err, Error::TrailingBytes { extra_bytes: 5, .. }));
    assert!(err.to_string().contains("5 bytes"), "{err}");
    // Inside a gzip stream, and as garbage after a valid gzip stream.
    let err = parse_idx_labels(&gzip(&labels), Path::new(P), 10).unwrap_err();
    assert!(matches!(err, Error::TrailingBytes { extra_bytes: 5, .. }));
    let mut gz = gzip(&idx_labels(&[1, 2, 3]));
    gz.extend_from_slice(b"garbage");
    assert!(parse_idx_labels(&gz, Path::new(P), 10).is_err());
}

#[test]
fn zero_dimensions_are_bad_headers() {
    for dims in [[0, 2, 2], [3, 0, 2], [3, 2, 0], [0, 0, 0]] {
        let err = parse_idx_images(&idx_images(dims, &[]), Path::new(P)).unwrap_err();
        assert!(matches!(err, Error::BadHeader { .. }), "{dims:?}: {err:?}");
        assert!(err.to_string().contains("zero"), "{err}");
    }
    let err = parse_idx_labels(&idx_labels(&[]), Path::new(P), 10).unwrap_err();
    assert!(matches!(err, Error::BadHeader { .. }));
}

#[test]
fn huge_or_overflowing_headers_fail_fast_without_allocating() {
    let start = Instant::now();
    let max = u32::MAX;
    // Overflows u64, claims 100 GB, and claims just over the 1 GiB limit.
    for dims in [[max, max, max], [100_000, 1000, 1000], [1025, 1024, 1024]] {
        let bytes = idx_images(dims, &[1, 2, 3]);
        let err = parse_idx_images(&bytes, Path::new(P)).unwrap_err();
        assert!(matches!(err, Error::BadHeader { .. }), "{dims:?}: {err:?}");
        // Gzipped and from a file, too.
        let err = parse_idx_images(&gzip(&bytes), Path::new(P)).unwrap_err();
        assert!(matches!(err, Error::BadHeader { .. }), "{dims:?}: {err:?}");
    }
    // Within the limit (1 GB claimed) but absent: truncated, with no 1 GB allocation up front.
    let err =
        parse_idx_images(&idx_images([1000, 1000, 1000], &[7; 100]), Path::new(P)).unwrap_err();
    assert!(matches!(
        err,
        Error::Truncated {
            expected_bytes: 1_000_000_016,
            found_bytes: 116,
            ..
        }
    ));
    let mut labels = IDX_LABELS_MAGIC.to_be_bytes().to_vec();
    labels.extend_from_slice(&max.to_be_bytes());
    let err = parse_idx_labels(&labels, Path::new(P), 10).unwrap_err();
    assert!(matches!(err, Error::BadHeader { .. }), "{err:?}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn labels_out_of_range_are_rejected() {
    let bytes = idx_labels(&[0, 9, 10, 3]);
    let err = parse_idx_labels(&bytes, Path::new(P), 10).unwrap_err();
    assert!(
        matches!(
            err,
            Error::LabelOutOfRange {
                index: 2,
                label: 10,
                classes: 10,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        parse_idx_labels(&bytes, Path::new(P), 11).unwrap(),
        [0, 9, 10, 3]
    );
}

#[test]
fn corrupt_gzip_is_an_error_not_a_panic() {
    let mut rng = StdRng::seed_from_u64(7);
    let tmp = TempDir::new("corruptgz");
    for trial in 0..200 {
        let len = rng.gen_range(0..300);
        let mut bytes = vec![0x1f, 0x8b];
        bytes.extend((0..len).map(|_| rng.gen::<u8>()));
        assert!(
            parse_idx_images(&bytes, Path::new(P)).is_err(),
            "trial {trial}"
        );
        assert!(parse_idx_labels(&bytes, Path::new(P), 10).is_err());
        if trial % 20 == 0 {
            let path = tmp.write("bad.gz", &bytes);
            let err = read_idx_labels(&path, 10).unwrap_err();
            assert!(err.to_string().contains("bad.gz"), "{err}");
        }
    }
    // A real gzip header with damaged compressed data after it.
    let mut gz = gzip(&tiny_images());
    for b in &mut gz[10..] {
        *b ^= 0x5a;
    }
    let err = parse_idx_images(&gz, Path::new(P)).unwrap_err();
    assert!(matches!(err, Error::Decompress { .. }), "{err:?}");
}

#[test]
fn random_damage_never_panics() {
    let mut rng = StdRng::seed_from_u64(11);
    let clean = [tiny_images(), gzip(&tiny_images()), idx_labels(&[1, 5, 9])];
    for _ in 0..3000 {
        let mut bytes = clean[rng.gen_range(0..clean.len())].clone();
        for _ in 0..rng.gen_range(1..4) {
            let i = rng.gen_range(0..bytes.len());
            bytes[i] = rng.gen();
        }
        let cut = rng.gen_range(0..=bytes.len());
        let bytes = &bytes[..cut];
        // Only "no panic, no hang" is asserted: some damage leaves a valid file.
        let _ = parse_idx_images(bytes, Path::new(P));
        let _ = parse_idx_labels(bytes, Path::new(P), 10);
    }
}

// ---------------------------------------------------------------- batches of real data

#[test]
fn batches_of_real_data_cover_the_test_split() {
    let test = Mnist::load(small_dir()).unwrap().test;
    let dev = TestDevice::default();
    let loader = DataLoader::new(&test, 64)
        .unwrap()
        .transform(Normalize::mnist());
    assert_eq!(loader.len(), 16);
    let mut labels_seen = Vec::new();
    for (k, batch) in loader.epoch(0, &dev).enumerate() {
        let batch = batch.unwrap();
        let n = if k < 15 { 64 } else { 1000 - 15 * 64 };
        assert_eq!(batch.inputs.shape().concrete(), [n, 1, 28, 28]);
        if k == 0 {
            let x = batch.inputs.as_vec();
            let y = batch.targets.as_vec();
            for (j, &p) in test.image(1).iter().enumerate() {
                assert!((x[MNIST_PIXELS + j] - normalize_pixel(p)).abs() < 1e-6);
            }
            assert_eq!(y[10 + usize::from(test.labels[1])], 1.0);
            assert_eq!(y[10..20].iter().sum::<f32>(), 1.0);
        }
        labels_seen.extend(batch.labels);
    }
    let all: Vec<usize> = test.labels.iter().map(|&l| usize::from(l)).collect();
    assert_eq!(labels_seen, all);

    let shuffled = DataLoader::new(&test, 64).unwrap().shuffle(1);
    let again = DataLoader::new(&test, 64).unwrap().shuffle(1);
    assert_eq!(shuffled.order(0), again.order(0));
    assert_ne!(shuffled.order(0), loader.order(0));
}
