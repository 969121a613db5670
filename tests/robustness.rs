//! The loaders never panic on damaged input: every truncation and thousands of seeded byte
//! mutations of real files, through every reader, must give `Ok` or `Err`.
//!
//! No `catch_unwind`: a panic fails the test. Where a loader returns `Ok`, the data it
//! returns is checked against its documented invariants, so "no panic" cannot hide garbage.

use std::io::Write;
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::Compression;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shapesafe::data::*;
use shapesafe::Error;

/// Mutations per input file; the figure RELIABILITY.md quotes is this times the file count.
const MUTATIONS: usize = 2000;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// The first 50 test images of mnist-small, re-encoded as an IDX image file, and their labels.
fn mnist50() -> (Vec<u8>, Vec<u8>) {
    let dir = data_dir().join("mnist-small");
    let images = read_idx_images(dir.join(TEST_IMAGES)).unwrap();
    let labels = read_idx_labels(dir.join(TEST_LABELS), 10).unwrap();
    let n = 50;
    let mut img = vec![0, 0, 8, 3];
    for d in [n as u32, 28, 28] {
        img.extend_from_slice(&d.to_be_bytes());
    }
    img.extend_from_slice(&images.pixels[..n * MNIST_PIXELS]);
    let mut lab = vec![0, 0, 8, 1];
    lab.extend_from_slice(&(n as u32).to_be_bytes());
    lab.extend_from_slice(&labels[..n]);
    (img, lab)
}

/// The first `rows` lines of the digits CSV.
fn digits_head(rows: usize) -> Vec<u8> {
    let all = Digits::load(data_dir().join("sklearn-digits").join(DIGITS_FILE)).unwrap();
    let head = Digits::from_rows(
        all.images()[..rows * DIGITS_PIXELS].to_vec(),
        all.labels()[..rows].to_vec(),
    )
    .unwrap();
    let mut csv = Vec::new();
    head.write_csv(&mut csv).unwrap();
    csv
}

/// Every loader entry point that takes bytes, on `bytes`; checks what comes back `Ok`.
fn feed_all(bytes: &[u8]) {
    let path = Path::new("fuzzed");
    if let Ok(imgs) = parse_idx_images(bytes, path) {
        assert_eq!(imgs.pixels.len(), imgs.count * imgs.rows * imgs.cols);
        assert!(imgs.count > 0 && imgs.rows > 0 && imgs.cols > 0);
    }
    if let Ok(labels) = parse_idx_labels(bytes, path, 10) {
        assert!(!labels.is_empty() && labels.iter().all(|&l| l < 10));
    }
    if let Ok(d) = Digits::parse(bytes, path) {
        check_digits(&d);
    }
}

fn check_digits(d: &Digits) {
    assert!(!d.is_empty());
    assert_eq!(d.images().len(), d.len() * DIGITS_PIXELS);
    assert!(d.images().iter().all(|&p| p <= DIGITS_MAX_VALUE));
    assert!(d.labels().iter().all(|&l| l < 10));
}

/// One random edit of `bytes`: the kinds of damage files suffer, plus header-targeted ones.
fn mutate(bytes: &[u8], rng: &mut StdRng) -> Vec<u8> {
    let mut b = bytes.to_vec();
    let edits = rng.gen_range(1..=4);
    for _ in 0..edits {
        let len = b.len();
        match rng.gen_range(0..8) {
            0 if len > 0 => {
                let i = rng.gen_range(0..len);
                b[i] ^= 1 << rng.gen_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.gen_range(0..len);
                b[i] = rng.gen();
            }
            2 => {
                let i = rng.gen_range(0..=len);
                b.insert(i, rng.gen());
            }
            3 if len > 0 => {
                let i = rng.gen_range(0..len);
                let j = rng.gen_range(i..=len.min(i + 64));
                b.drain(i..j);
            }
            4 if len > 0 => {
                // Duplicate a short run, as a bad copy might.
                let i = rng.gen_range(0..len);
                let j = rng.gen_range(i..=len.min(i + 32));
                let run = b[i..j].to_vec();
                let at = rng.gen_range(0..=b.len());
                b.splice(at..at, run);
            }
            5 if len >= 16 => {
                // Rewrite a header word with an extreme value.
                let word = rng.gen_range(0..4) * 4;
                let v: u32 = match rng.gen_range(0..4) {
                    0 => 0,
                    1 => u32::MAX,
                    2 => 1 << rng.gen_range(0..32),
                    _ => rng.gen(),
                };
                b[word..word + 4].copy_from_slice(&v.to_be_bytes());
            }
            6 if len > 0 => {
                // Text-level damage: a digit, comma, newline or junk character.
                let i = rng.gen_range(0..len);
                b[i] = *[b'0', b'9', b',', b'\n', b'\r', b'-', b' ', b'.', 0xff]
                    .get(rng.gen_range(0..9))
                    .unwrap();
            }
            _ => {
                let keep = rng.gen_range(0..=len);
                b.truncate(keep);
            }
        }
    }
    b
}

#[test]
fn every_truncation_of_idx_files_is_an_error() {
    let (img, lab) = mnist50();
    let path = Path::new("mnist50");
    for (full, is_images) in [
        (&img, true),
        (&lab, false),
        (&gzip(&img), true),
        (&gzip(&lab), false),
    ] {
        for n in 0..full.len() {
            let cut = &full[..n];
            feed_all(cut);
            let result = if is_images {
                parse_idx_images(cut, path).map(|_| ())
            } else {
                parse_idx_labels(cut, path, 10).map(|_| ())
            };
            let err = result.expect_err("a truncated file must not parse");
            assert!(
                matches!(
                    err,
                    Error::Truncated { .. } | Error::Decompress { .. } | Error::BadMagic { .. }
                ),
                "cut at {n}: {err}"
            );
        }
    }
    assert_eq!(parse_idx_images(&img, path).unwrap().count, 50);
    assert_eq!(parse_idx_labels(&gzip(&lab), path, 10).unwrap().len(), 50);
}

#[test]
fn every_truncation_of_the_digits_csv_fails_or_keeps_whole_rows() {
    let csv = digits_head(20);
    let path = Path::new("head.csv");
    for n in 0..=csv.len() {
        let cut = &csv[..n];
        feed_all(cut);
        // A cut just after or just before a newline leaves only whole rows.
        let whole_rows = n > 0 && (csv[n - 1] == b'\n' || csv.get(n) == Some(&b'\n'));
        match Digits::parse(cut, path) {
            Ok(d) => {
                assert!(whole_rows, "cut at {n} parsed");
                let complete = cut.iter().filter(|&&c| c == b'\n').count()
                    + usize::from(cut.last() != Some(&b'\n'));
                assert_eq!(d.len(), complete);
                check_digits(&d);
            }
            Err(e) => assert!(!whole_rows, "cut at {n}: {e}"),
        }
    }
    let gz = gzip(&csv);
    for n in 0..gz.len() {
        assert!(Digits::parse(&gz[..n], path).is_err(), "gzip cut at {n}");
    }
    assert_eq!(Digits::parse(&gz, path).unwrap().len(), 20);
}

#[test]
fn seeded_mutations_of_real_files_never_panic() {
    let (img, lab) = mnist50();
    let csv = digits_head(20);
    let real_digits_gz =
        std::fs::read(data_dir().join("sklearn-digits").join(DIGITS_FILE)).unwrap();
    let real_labels_gz = std::fs::read(data_dir().join("mnist-small").join(TEST_LABELS)).unwrap();
    let inputs: [(&str, Vec<u8>); 7] = [
        ("mnist50 images", img.clone()),
        ("mnist50 labels", lab.clone()),
        ("mnist50 images .gz", gzip(&img)),
        ("digits head", csv.clone()),
        ("digits head .gz", gzip(&csv)),
        ("digits.csv.gz", real_digits_gz),
        ("t10k labels .gz", real_labels_gz),
    ];
    let mut rng = StdRng::seed_from_u64(20261122);
    let mut ok = 0;
    let mut runs = 0;
    for (name, bytes) in &inputs {
        // The full digits file is 57 KB and slow to reparse in a debug build; fewer runs.
        let n = if *name == "digits.csv.gz" {
            MUTATIONS / 10
        } else {
            MUTATIONS
        };
        for _ in 0..n {
            let m = mutate(bytes, &mut rng);
            feed_all(&m);
            runs += 1;
            ok += usize::from(parse_idx_images(&m, Path::new("")).is_ok());
        }
    }
    // Mutate the plain bytes, then compress, so the parsers (not just the gzip checksum) see
    // the damage through the gzip path.
    for bytes in [&img, &lab, &csv] {
        for _ in 0..MUTATIONS / 4 {
            feed_all(&gzip(&mutate(bytes, &mut rng)));
            runs += 1;
        }
    }
    assert_eq!(runs, 6 * MUTATIONS + MUTATIONS / 10 + 3 * (MUTATIONS / 4));
    eprintln!("{runs} mutated inputs, each through 3 parsers; {ok} still parsed as IDX images");
    // Some mutations (e.g. a changed pixel) leave a valid file; most must not.
    assert!(ok > 0 && ok < MUTATIONS, "{ok} mutated image files parsed");
}

#[test]
fn lying_headers_are_rejected_without_allocating_their_size() {
    let path = Path::new("liar");
    // 0xffffffff images of 0xffffffff x 0xffffffff: overflows u64 sizes.
    let mut h = vec![0, 0, 8, 3];
    h.extend_from_slice(&[0xff; 12]);
    assert!(matches!(
        parse_idx_images(&h, path),
        Err(Error::BadHeader { .. })
    ));
    // 2^30 + 1 bytes: just over the limit.
    let mut h = vec![0, 0, 8, 1];
    h.extend_from_slice(&((1u32 << 30) + 1).to_be_bytes());
    assert!(matches!(
        parse_idx_labels(&h, path, 10),
        Err(Error::BadHeader { .. })
    ));
    // Just under the limit but with no data: truncated, not an out-of-memory.
    let mut h = vec![0, 0, 8, 3];
    for d in [1u32 << 10, 1 << 10, 1 << 10] {
        h.extend_from_slice(&d.to_be_bytes());
    }
    assert!(matches!(
        parse_idx_images(&h, path),
        Err(Error::Truncated { expected_bytes, found_bytes: 16, .. }) if expected_bytes == 16 + (1 << 30)
    ));
}

#[test]
fn damaged_files_on_disk_fail_cleanly_through_the_file_loaders() {
    let dir = std::env::temp_dir().join(format!("shapesafe-robustness-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (img, lab) = mnist50();
    let (img_gz, lab_gz) = (gzip(&img), gzip(&lab));
    let digits_gz = gzip(&digits_head(20));
    let mut rng = StdRng::seed_from_u64(7);
    for round in 0..300 {
        let (i, l, d) = match round % 3 {
            0 => (
                mutate(&img_gz, &mut rng),
                lab_gz.clone(),
                mutate(&digits_gz, &mut rng),
            ),
            1 => (img_gz.clone(), mutate(&lab_gz, &mut rng), digits_gz.clone()),
            _ => {
                let cut = rng.gen_range(0..img_gz.len());
                (
                    img_gz[..cut].to_vec(),
                    lab_gz.clone(),
                    digits_gz[..cut.min(digits_gz.len())].to_vec(),
                )
            }
        };
        for (prefix, images, labels) in [("train", &i, &l), ("t10k", &img_gz, &lab_gz)] {
            std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte.gz")), images).unwrap();
            std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte.gz")), labels).unwrap();
        }
        std::fs::write(dir.join(DIGITS_FILE), &d).unwrap();
        if let Ok(m) = Mnist::load(&dir) {
            assert_eq!(m.train.images.len(), m.train.len() * MNIST_PIXELS);
        }
        let _ = FashionMnist::load(&dir);
        if let Ok(d) = Digits::load(dir.join(DIGITS_FILE)) {
            check_digits(&d);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
