//! Fuzz target: arbitrary bytes through the IDX image and label parsers (raw and gzip).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| shapesafe_fuzz::idx(data));
