//! `CharText`: the shipped Shakespeare text, vocabularies, windows, batches and the errors of bad files.

mod common;

use common::TestDevice;
use std::io::Write;
use std::path::PathBuf;

use dfdx::prelude::*;
use flate2::write::GzEncoder;
use flate2::Compression;
use shapesafe::data::{data_dir, CharText, SHAKESPEARE_FILE};
use shapesafe::Error;

/// A fresh, empty folder under the system temp dir, unique to this test and process.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("shapesafe-text-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn the_shipped_text_is_the_four_tragedies() {
    let text = CharText::load(data_dir().join(SHAKESPEARE_FILE)).unwrap();
    // The figures data/README.md gives for the file.
    assert_eq!(text.len(), 583_820);
    assert_eq!(text.vocab_size(), 70);
    let all = text.decode(text.indices()).unwrap();
    assert!(all.starts_with("HAMLET, PRINCE OF DENMARK\n"));
    assert!(all.contains("To be, or not to be,--that is the question:--"));
    for title in ["MACBETH", "KING LEAR", "OTHELLO"] {
        assert!(all.contains(title), "{title} is missing");
    }
    assert!(text.vocab().windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn gzip_and_plain_files_read_the_same() {
    let dir = temp_dir("gzip");
    let body = "Fair is foul, and foul is fair:\nHover through the fog and filthy air.\n";
    std::fs::write(dir.join("plain.txt"), body).unwrap();
    std::fs::write(dir.join("packed.txt.gz"), gzip(body.as_bytes())).unwrap();
    let plain = CharText::load(dir.join("plain.txt")).unwrap();
    let packed = CharText::load(dir.join("packed.txt.gz")).unwrap();
    assert_eq!(plain, packed);
    assert_eq!(plain.decode(plain.indices()).unwrap(), body);
}

#[test]
fn vocabulary_and_indices_match_a_plain_reference() {
    let body = "né à Ürümqi, 2 × 3 = 6\n";
    let text = CharText::from_text(body).unwrap();
    let mut reference: Vec<char> = Vec::new();
    for c in body.chars() {
        if !reference.contains(&c) {
            reference.push(c);
        }
    }
    reference.sort();
    assert_eq!(text.vocab(), &reference[..]);
    for (c, &i) in body.chars().zip(text.indices()) {
        assert_eq!(reference[i], c);
    }
    assert_eq!(text.len(), body.chars().count());
    assert_eq!(text.encode("Ürü").unwrap(), text.indices()[5..8]);
    assert!(matches!(text.encode("q!"), Err(Error::Usage(_))));
    assert!(matches!(
        text.decode(&[reference.len()]),
        Err(Error::IndexOutOfRange { .. })
    ));
}

#[test]
fn windows_are_consecutive_spans_and_their_shifted_targets() {
    let body: String = (0..103)
        .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
        .collect();
    let text = CharText::from_text(&body).unwrap();
    let chars: Vec<char> = body.chars().collect();
    const SEQUENCE: usize = 10;
    assert_eq!(text.num_windows(SEQUENCE), 10);
    for w in 0..10 {
        let (input, target) = text.window(w, SEQUENCE).unwrap();
        let want_input: String = chars[w * 10..w * 10 + 10].iter().collect();
        let want_target: String = chars[w * 10 + 1..w * 10 + 11].iter().collect();
        assert_eq!(text.decode(input).unwrap(), want_input);
        assert_eq!(text.decode(target).unwrap(), want_target);
    }
    assert!(matches!(
        text.window(10, SEQUENCE),
        Err(Error::IndexOutOfRange { index: 10, len: 10 })
    ));

    let dev = TestDevice::default();
    let (x, y) = text.index_batch::<SEQUENCE, _>(&[3, 0], &dev).unwrap();
    assert_eq!(x.shape().concrete(), [2, SEQUENCE]);
    let (x, y) = (x.as_vec(), y.as_vec());
    assert_eq!(text.decode(&x[..10]).unwrap(), body[30..40]);
    assert_eq!(text.decode(&x[10..]).unwrap(), body[0..10]);
    assert_eq!(text.decode(&y[..10]).unwrap(), body[31..41]);
    assert!(text.index_batch::<SEQUENCE, _>(&[10], &dev).is_err());
}

#[test]
fn one_hot_batches_match_a_plain_loop() {
    let body = "the quick brown fox jumps over the lazy dog";
    let text = CharText::from_text(body).unwrap();
    const SEQUENCE: usize = 5;
    const VOCAB: usize = 30;
    assert!(text.vocab_size() <= VOCAB);
    let windows = [4, 1, 7];
    let dev = TestDevice::default();
    let (x, y) = text
        .one_hot_batch::<SEQUENCE, VOCAB, _>(&windows, &dev)
        .unwrap();
    assert_eq!(x.shape().concrete(), [3, SEQUENCE, VOCAB]);
    let (x, y) = (x.as_vec(), y.as_vec());
    let chars: Vec<char> = body.chars().collect();
    for (row, &w) in windows.iter().enumerate() {
        for step in 0..SEQUENCE {
            for v in 0..VOCAB {
                let at = (row * SEQUENCE + step) * VOCAB + v;
                let is = |c: char| text.vocab().get(v) == Some(&c);
                let want_x = if is(chars[w * SEQUENCE + step]) {
                    1.0
                } else {
                    0.0
                };
                let want_y = if is(chars[w * SEQUENCE + step + 1]) {
                    1.0
                } else {
                    0.0
                };
                assert_eq!(x[at], want_x, "input row {row} step {step} column {v}");
                assert_eq!(y[at], want_y, "target row {row} step {step} column {v}");
            }
        }
    }
    // A one-hot width narrower than the vocabulary is refused, naming both sizes.
    let err = text
        .one_hot_batch::<SEQUENCE, 5, _>(&[0], &dev)
        .unwrap_err();
    assert!(
        matches!(&err, Error::ShapeMismatch { expected, found, .. } if expected[..] == [text.vocab_size()] && found[..] == [5])
    );
    let prompt = text.encode("fox").unwrap();
    let p = text.one_hot_sequence::<VOCAB, _>(&prompt, &dev).unwrap();
    assert_eq!(p.shape().concrete(), [1, 3, VOCAB]);
    let p = p.as_vec();
    for (step, &i) in prompt.iter().enumerate() {
        assert_eq!(p[step * VOCAB..(step + 1) * VOCAB].iter().sum::<f32>(), 1.0);
        assert_eq!(p[step * VOCAB + i], 1.0);
    }
}

#[test]
fn batches_cover_every_window_once_and_shuffle_reproducibly() {
    let text = CharText::from_text(&"abcdefghij".repeat(10)).unwrap();
    let windows = text.num_windows(4);
    assert_eq!(windows, 24);
    let ordered = text.batches(4, 5, None, false).unwrap();
    assert_eq!(ordered.len(), 5);
    assert_eq!(ordered.concat(), (0..24).collect::<Vec<_>>());
    let shuffled = text.batches(4, 5, Some(3), false).unwrap();
    assert_eq!(shuffled, text.batches(4, 5, Some(3), false).unwrap());
    assert_ne!(shuffled, ordered);
    assert_ne!(shuffled, text.batches(4, 5, Some(4), false).unwrap());
    let mut all = shuffled.concat();
    all.sort();
    assert_eq!(all, (0..24).collect::<Vec<_>>());
    let dropped = text.batches(4, 5, Some(3), true).unwrap();
    assert_eq!(dropped.len(), 4);
    assert!(dropped.iter().all(|b| b.len() == 5));
    assert!(text.batches(4, 0, None, false).is_err());
    assert!(text.batches(100, 1, None, false).is_err());
}

#[test]
fn a_split_shares_the_vocabulary() {
    let text = CharText::from_text("aaaaaaaabz").unwrap();
    let (head, tail) = text.split(0.5).unwrap();
    assert_eq!(head.decode(head.indices()).unwrap(), "aaaaa");
    assert_eq!(tail.decode(tail.indices()).unwrap(), "aaabz");
    assert_eq!(head.vocab(), text.vocab());
    for bad in [0.0, 1.0, -0.5, f64::NAN, 0.05, 0.95] {
        assert!(
            matches!(text.split(bad), Err(Error::Usage(_))),
            "fraction {bad}"
        );
    }
}

#[test]
fn bad_files_are_errors_not_panics() {
    let dir = temp_dir("bad");
    let missing = CharText::load(dir.join("nothing-here.txt")).unwrap_err();
    assert!(matches!(missing, Error::Io { .. }), "{missing}");

    std::fs::write(dir.join("empty.txt"), b"").unwrap();
    let empty = CharText::load(dir.join("empty.txt")).unwrap_err();
    assert!(matches!(empty, Error::Parse { line: 1, .. }), "{empty}");
    assert!(empty.to_string().contains("empty"));

    std::fs::write(dir.join("empty.txt.gz"), gzip(b"")).unwrap();
    assert!(matches!(
        CharText::load(dir.join("empty.txt.gz")),
        Err(Error::Parse { .. })
    ));

    std::fs::write(dir.join("latin1.txt"), b"one\ntwo\nthr\xe9e\n").unwrap();
    let latin1 = CharText::load(dir.join("latin1.txt")).unwrap_err();
    assert!(matches!(latin1, Error::Parse { line: 3, .. }), "{latin1}");
    assert!(latin1.to_string().contains("UTF-8"));

    let mut corrupt = gzip(b"some text that is long enough to matter");
    let n = corrupt.len();
    corrupt[n - 6] ^= 0xff; // the CRC no longer matches
    std::fs::write(dir.join("corrupt.txt.gz"), &corrupt).unwrap();
    let corrupt = CharText::load(dir.join("corrupt.txt.gz")).unwrap_err();
    assert!(matches!(corrupt, Error::Decompress { .. }), "{corrupt}");

    let truncated = gzip(b"some text that is long enough to matter");
    std::fs::write(dir.join("cut.txt.gz"), &truncated[..truncated.len() / 2]).unwrap();
    assert!(matches!(
        CharText::load(dir.join("cut.txt.gz")),
        Err(Error::Decompress { .. })
    ));
}
