//! Integration tests for training checkpoints: a resumed run equals an uninterrupted one bit
//! for bit, every kind of bad file is an error that changes nothing, and corrupt files never
//! panic the loader.

mod common;

use common::TestDevice;
use rand::{rngs::StdRng, Rng, SeedableRng};
use shapesafe::optim::{self, OptimizerState};
use shapesafe::prelude::*;
use shapesafe::train::{load_checkpoint, save_atomic, save_checkpoint, TrainingState};
use shapesafe::Error;
use std::path::PathBuf;

type Net = (Linear<4, 8>, ReLU, Linear<8, 3>);
type Model = <Net as BuildOnDevice<TestDevice, f32>>::Built;

fn model(seed: u64) -> Model {
    TestDevice::seed_from_u64(seed).build_module::<Net, f32>()
}

/// Batch `i` of a fixed, seeded data stream.
fn batch(
    i: u64,
) -> (
    Tensor<Rank2<6, 4>, f32, TestDevice>,
    Tensor<Rank2<6, 3>, f32, TestDevice>,
) {
    let dev = TestDevice::seed_from_u64(500 + i);
    (dev.sample_normal(), dev.sample_normal())
}

fn train<O: Optimizer<Model, TestDevice, f32>>(
    m: &mut Model,
    opt: &mut O,
    steps: std::ops::Range<u64>,
) {
    for i in steps {
        let (x, y) = batch(i);
        let grads = mse_loss(m.forward(x.traced(m.alloc_grads())), y).backward();
        opt.update(m, &grads).unwrap();
    }
}

fn params(m: &Model) -> Vec<f32> {
    [
        m.0.weight.as_vec(),
        m.0.bias.as_vec(),
        m.2.weight.as_vec(),
        m.2.bias.as_vec(),
    ]
    .concat()
}

/// A path in a fresh per-test folder under the system temp dir.
fn temp_path(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("shapesafe-ckpt-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("run.safetensors")
}

/// N steps, save, load into a fresh model and optimizer, N more steps: the parameters
/// must equal 2N uninterrupted steps bit for bit.
fn assert_resume_is_exact<O>(test: &str, make: impl Fn(&Model) -> O)
where
    O: Optimizer<Model, TestDevice, f32> + OptimizerState,
{
    const N: u64 = 4;
    let mut straight = model(0);
    let mut opt = make(&straight);
    train(&mut straight, &mut opt, 0..2 * N);

    let mut first = model(0);
    let mut opt = make(&first);
    train(&mut first, &mut opt, 0..N);
    let path = temp_path(test);
    let mut saved = TrainingState {
        epoch: 1,
        step: N,
        seed: 0,
        ..Default::default()
    };
    saved
        .extra
        .insert("lr_scheduler.gamma".into(), "0.5".into());
    saved.extra.insert("best_loss".into(), "0.123".into());
    save_checkpoint(&path, &first, &opt, &saved).unwrap();
    drop((first, opt));

    let mut resumed = model(99);
    let mut opt = make(&resumed);
    assert_ne!(params(&resumed), params(&straight));
    let state = load_checkpoint(&path, &mut resumed, &mut opt).unwrap();
    assert_eq!(state, saved);
    train(&mut resumed, &mut opt, N..2 * N);
    assert_eq!(
        params(&resumed),
        params(&straight),
        "{test}: resumed run differs"
    );
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn resume_sgd_momentum_equals_straight_run() {
    assert_resume_is_exact("sgd", |m| {
        optim::Sgd::new(
            m,
            SgdConfig {
                lr: 0.05,
                momentum: Some(Momentum::Classic(0.9)),
                weight_decay: Some(WeightDecay::L2(1e-3)),
            },
        )
    });
}

#[test]
fn resume_adam_equals_straight_run() {
    assert_resume_is_exact("adam", |m| optim::Adam::new(m, AdamConfig::default()));
}

#[test]
fn resume_rmsprop_equals_straight_run() {
    assert_resume_is_exact("rmsprop", |m| {
        optim::RMSprop::new(
            m,
            RMSpropConfig {
                centered: true,
                momentum: Some(0.5),
                ..Default::default()
            },
        )
    });
}

#[test]
fn save_is_atomic_and_replaces_the_old_checkpoint() {
    let path = temp_path("atomic");
    let mut m = model(0);
    let mut opt = optim::Adam::new(&m, AdamConfig::default());
    save_checkpoint(&path, &m, &opt, &TrainingState::default()).unwrap();
    train(&mut m, &mut opt, 0..1);
    let later = TrainingState {
        step: 1,
        ..Default::default()
    };
    save_checkpoint(&path, &m, &opt, &later).unwrap();
    let entries: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries, vec![std::ffi::OsString::from("run.safetensors")]);
    let mut fresh = model(1);
    let mut fresh_opt = optim::Adam::new(&fresh, AdamConfig::default());
    assert_eq!(
        load_checkpoint(&path, &mut fresh, &mut fresh_opt).unwrap(),
        later
    );
    assert_eq!(params(&fresh), params(&m));
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

/// Loads `path` into a fresh model and Adam, expects an error satisfying `check`, and
/// checks that neither the model nor the optimizer changed.
fn assert_load_fails_cleanly<M, O>(
    what: &str,
    path: &std::path::Path,
    model: &mut M,
    opt: &mut O,
    check: impl Fn(&Error) -> bool,
) where
    M: TensorCollection<f32, TestDevice> + Clone + SaveToSafetensors<f32, TestDevice>,
    O: OptimizerState,
{
    let before_model = snapshot(model);
    let before_opt = opt.state_dict().unwrap();
    let err = load_checkpoint(path, model, opt).unwrap_err();
    assert!(check(&err), "{what}: wrong error: {err}");
    assert_eq!(snapshot(model), before_model, "{what}: the model changed");
    assert_eq!(
        opt.state_dict().unwrap(),
        before_opt,
        "{what}: the optimizer changed"
    );
}

/// Every tensor of a model, as bytes, via dfdx's own safetensors writer.
fn snapshot<M: SaveToSafetensors<f32, TestDevice>>(m: &M) -> Vec<u8> {
    let path = std::env::temp_dir().join(format!(
        "shapesafe-ckpt-snapshot-{}-{:?}.safetensors",
        std::process::id(),
        std::thread::current().id()
    ));
    m.save_safetensors(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    bytes
}

fn trained_checkpoint(test: &str) -> (PathBuf, Model, optim::Adam<Model, f32, TestDevice>) {
    let path = temp_path(test);
    let mut m = model(0);
    let mut opt = optim::Adam::new(&m, AdamConfig::default());
    train(&mut m, &mut opt, 0..2);
    let state = TrainingState {
        epoch: 3,
        step: 2,
        seed: 7,
        ..Default::default()
    };
    save_checkpoint(&path, &m, &opt, &state).unwrap();
    (path, m, opt)
}

/// A model and Adam that have trained a step, so that a wrongful change would show.
fn victim() -> (Model, optim::Adam<Model, f32, TestDevice>) {
    let mut m = model(5);
    let mut opt = optim::Adam::new(&m, AdamConfig::default());
    train(&mut m, &mut opt, 10..11);
    (m, opt)
}

#[test]
fn every_mismatch_is_an_error_that_changes_nothing() {
    let (path, _, _) = trained_checkpoint("mismatch");
    let weights = |e: &Error| matches!(e, Error::Weights { .. });

    // Missing tensors: the model has a layer the file lacks.
    type Bigger = (Linear<4, 8>, ReLU, Linear<8, 3>, ReLU, Linear<3, 3>);
    let mut big = TestDevice::default().build_module::<Bigger, f32>();
    let mut big_opt = optim::Adam::new(&big, AdamConfig::default());
    assert_load_fails_cleanly("missing tensor", &path, &mut big, &mut big_opt, |e| {
        weights(e) && e.to_string().contains("model.4.weight")
    });

    // Unexpected tensors: the file has a layer the model lacks.
    let big_path = temp_path("mismatch-big");
    save_checkpoint(&big_path, &big, &big_opt, &TrainingState::default()).unwrap();
    let (mut m, mut opt) = victim();
    assert_load_fails_cleanly("unexpected tensor", &big_path, &mut m, &mut opt, |e| {
        weights(e) && e.to_string().contains("model.4.")
    });

    // Wrong shape.
    type Narrower = (Linear<4, 8>, ReLU, Linear<8, 2>);
    let mut narrow = TestDevice::default().build_module::<Narrower, f32>();
    let mut narrow_opt = optim::Adam::new(&narrow, AdamConfig::default());
    assert_load_fails_cleanly(
        "wrong shape",
        &path,
        &mut narrow,
        &mut narrow_opt,
        |e| matches!(e, Error::ShapeMismatch { expected, found, .. } if expected == &vec![2, 8] && found == &vec![3, 8]),
    );

    // Wrong dtype: an f64 checkpoint into an f32 model (dfdx itself would panic here).
    let path64 = temp_path("mismatch-f64");
    let m64 = TestDevice::default().build_module::<Net, f64>();
    let opt64 = optim::Adam::new(&m64, AdamConfig::default());
    save_checkpoint(&path64, &m64, &opt64, &TrainingState::default()).unwrap();
    let (mut m, mut opt) = victim();
    assert_load_fails_cleanly("wrong dtype", &path64, &mut m, &mut opt, |e| {
        weights(e) && e.to_string().contains("F64")
    });

    // Another optimizer's state: the model is checked first and fits, but must not change.
    let (mut m, _) = victim();
    let mut sgd = optim::Sgd::new(
        &m,
        SgdConfig {
            momentum: Some(Momentum::Classic(0.9)),
            ..Default::default()
        },
    );
    assert_load_fails_cleanly("adam state into sgd", &path, &mut m, &mut sgd, |e| {
        weights(e) && e.to_string().contains("optimizer")
    });

    // A plain weights file is not a checkpoint.
    let plain = temp_path("mismatch-plain");
    save_atomic(&model(0), &plain).unwrap();
    let (mut m, mut opt) = victim();
    assert_load_fails_cleanly("plain weights", &plain, &mut m, &mut opt, |e| {
        weights(e) && e.to_string().contains("format")
    });

    // A missing file.
    let (mut m, mut opt) = victim();
    let nowhere = path.with_file_name("nowhere.safetensors");
    assert_load_fails_cleanly("missing file", &nowhere, &mut m, &mut opt, |e| {
        matches!(e, Error::Io { .. })
    });

    for p in [&path, &big_path, &path64, &plain] {
        std::fs::remove_dir_all(p.parent().unwrap()).unwrap();
    }
}

#[test]
fn bad_metadata_is_an_error() {
    let (path, m, opt) = trained_checkpoint("metadata");
    let bytes = std::fs::read(&path).unwrap();
    // Same-length edits keep the header length field valid.
    for (from, to, what) in [
        ("\"epoch\":\"3\"", "\"epoch\":\"x\"", "not a whole number"),
        ("\"seed\":\"7\"", "\"seeq\":\"7\"", "\"seed\""),
        ("\"format\"", "\"formax\"", "format"),
        (
            "\"optimizer.group.lr\"",
            "\"optimizer.group.lx\"",
            "group.l",
        ),
    ] {
        let at = bytes
            .windows(from.len())
            .position(|w| w == from.as_bytes())
            .unwrap_or_else(|| panic!("the header has no {from}"));
        let mut edited = bytes.clone();
        edited[at..at + to.len()].copy_from_slice(to.as_bytes());
        let bad = path.with_file_name("edited.safetensors");
        std::fs::write(&bad, &edited).unwrap();
        let (mut m2, mut opt2) = victim();
        assert_load_fails_cleanly(what, &bad, &mut m2, &mut opt2, |e| {
            e.to_string().contains(what)
        });
    }
    drop((m, opt));
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn truncated_files_are_errors() {
    let (path, _, _) = trained_checkpoint("truncated");
    let bytes = std::fs::read(&path).unwrap();
    let cut = path.with_file_name("cut.safetensors");
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut lengths = vec![
        0,
        1,
        7,
        8,
        9,
        8 + header_len / 2,
        8 + header_len,
        bytes.len() - 1,
    ];
    lengths.extend((0..bytes.len()).step_by(97));
    for len in lengths {
        std::fs::write(&cut, &bytes[..len]).unwrap();
        let (mut m, mut opt) = victim();
        assert_load_fails_cleanly(&format!("cut at {len}"), &cut, &mut m, &mut opt, |e| {
            matches!(e, Error::Weights { .. })
        });
    }
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn a_crafted_offset_near_usize_max_is_an_error() {
    // safetensors adds the last offset to the header length unchecked; the loader must
    // refuse such a header before it gets there.
    let header = format!(
        "{{\"model.x\":{{\"dtype\":\"U8\",\"shape\":[{n}],\"data_offsets\":[0,{n}]}}}}",
        n = u64::MAX - 4
    );
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header.as_bytes());
    let path = temp_path("crafted");
    std::fs::write(&path, &bytes).unwrap();
    let (mut m, mut opt) = victim();
    assert_load_fails_cleanly("crafted offset", &path, &mut m, &mut opt, |e| {
        matches!(e, Error::Weights { .. })
    });
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn random_corruptions_never_panic() {
    let (path, _, _) = trained_checkpoint("fuzz");
    let bytes = std::fs::read(&path).unwrap();
    let header_end = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let bad = path.with_file_name("fuzzed.safetensors");
    let (base_model, base_opt) = victim();
    let mut rng = StdRng::seed_from_u64(2024);
    let (mut errors, mut loads) = (0, 0);
    for _ in 0..3000 {
        let mut mutated = bytes.clone();
        for _ in 0..rng.gen_range(1..=4) {
            // Mostly the header, where the structure is; the data region only holds numbers.
            let at = if rng.gen_bool(0.8) {
                rng.gen_range(0..header_end)
            } else {
                rng.gen_range(0..mutated.len())
            };
            mutated[at] = match rng.gen_range(0..3) {
                0 => rng.gen(),
                1 => mutated[at] ^ (1 << rng.gen_range(0..8)),
                _ => b"0123456789{}[]\",:-.e"[rng.gen_range(0..20)],
            };
        }
        std::fs::write(&bad, &mutated).unwrap();
        let (mut m, mut opt) = (base_model.clone(), base_opt.clone());
        let before = (snapshot(&m), opt.state_dict().unwrap());
        match load_checkpoint(&bad, &mut m, &mut opt) {
            Ok(_) => loads += 1,
            Err(_) => {
                errors += 1;
                assert_eq!((snapshot(&m), opt.state_dict().unwrap()), before);
            }
        }
    }
    println!("{errors} corruptions rejected, {loads} loaded");
    assert!(
        errors > 2000,
        "only {errors} of 3000 corruptions were caught"
    );
    assert!(loads > 0, "no corruption of the data region loaded");
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}
