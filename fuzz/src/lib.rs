//! Entry points shared by the fuzz targets and the plain loop harness: each takes arbitrary
//! bytes, must not panic, and asserts the documented invariants of whatever parses.

use std::path::Path;

use dfdx::tensor::Cpu;
use rand::rngs::StdRng;
use rand::Rng;
use shapesafe::data::{
    parse_idx_images, parse_idx_labels, train_test_split, DataLoader, Dataset, Digits, Normalize,
    RandomAffine, RandomCrop, RandomHorizontalFlip, DIGITS_MAX_VALUE, DIGITS_PIXELS,
};

/// The IDX image and label parsers on `data`.
pub fn idx(data: &[u8]) {
    let path = Path::new("fuzz-input");
    if let Ok(images) = parse_idx_images(data, path) {
        assert!(images.count > 0 && images.rows > 0 && images.cols > 0);
        assert_eq!(
            images.pixels.len(),
            images.count * images.rows * images.cols
        );
        assert!(images.image(images.count - 1).is_some() && images.image(images.count).is_none());
    }
    if let Ok(labels) = parse_idx_labels(data, path, 10) {
        assert!(!labels.is_empty() && labels.iter().all(|&l| l < 10));
    }
}

/// The digits CSV parser on `data`; a file that parses must also load through a split and
/// an augmenting loader without error, since nothing in it is untrusted any more.
pub fn digits(data: &[u8]) {
    let Ok(digits) = Digits::parse(data, Path::new("fuzz-input")) else {
        return;
    };
    assert!(!digits.is_empty());
    assert_eq!(digits.images().len(), digits.len() * DIGITS_PIXELS);
    assert!(digits.images().iter().all(|&p| p <= DIGITS_MAX_VALUE));
    assert!(digits.labels().iter().all(|&l| l < 10));

    let (train, test) = train_test_split(&digits, 0.25, 0).expect("0.25 is a valid fraction");
    assert_eq!(train.len() + test.len(), digits.len());
    let loader = DataLoader::new(&train, 7)
        .expect("7 is a valid batch size")
        .shuffle(1)
        .transform((
            RandomCrop::new(8, 2),
            RandomHorizontalFlip::default(),
            RandomAffine::new(15.0).translate(0.1, 0.1).scale(0.9, 1.1),
            Normalize::new(vec![0.3], vec![0.4]).expect("valid statistics"),
        ));
    let dev = Cpu::default();
    // Two batches are enough to exercise the loader without letting big inputs crawl.
    for batch in loader.epoch(0, &dev).take(2) {
        let batch = batch.expect("a parsed digits file always loads");
        assert!(batch.labels.iter().all(|&l| l < 10));
    }
}

/// One random edit of `bytes` (bit flips, overwrites, inserts, deletes, duplicated runs,
/// header words set to extreme values, text-level damage, truncation), for the plain loop
/// harness, which has no coverage feedback to find such inputs itself.
pub fn mutate(bytes: &[u8], rng: &mut StdRng) -> Vec<u8> {
    let mut b = bytes.to_vec();
    for _ in 0..rng.gen_range(1..=4) {
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
                let i = rng.gen_range(0..len);
                let j = rng.gen_range(i..=len.min(i + 32));
                let run = b[i..j].to_vec();
                let at = rng.gen_range(0..=b.len());
                b.splice(at..at, run);
            }
            5 if len >= 16 => {
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
                let i = rng.gen_range(0..len);
                const TEXT: [u8; 9] = [b'0', b'9', b',', b'\n', b'\r', b'-', b' ', b'.', 0xff];
                b[i] = TEXT[rng.gen_range(0..TEXT.len())];
            }
            _ => {
                let keep = rng.gen_range(0..=len);
                b.truncate(keep);
            }
        }
    }
    b
}
