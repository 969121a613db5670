//! Fuzz target: arbitrary bytes through the scikit-learn digits CSV parser, and whatever
//! parses through a split and an augmenting DataLoader.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| shapesafe_fuzz::digits(data));
