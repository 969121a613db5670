//! Entry points shared by the fuzz targets and the plain loop harness: each takes arbitrary
//! bytes, must not panic, and asserts the documented invariants of whatever parses.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use dfdx::tensor::Cpu;
use rand::rngs::StdRng;
use rand::Rng;
use shapesafe::data::{
    parse_idx_images, parse_idx_labels, train_test_split, DataLoader, Dataset, Digits, Normalize,
    RandomAffine, RandomCrop, RandomHorizontalFlip, DIGITS_MAX_VALUE, DIGITS_PIXELS,
};
use shapesafe::optim::{Adam, OptimizerState, Sgd, StateDict};
use shapesafe::prelude::{
    AdamConfig, Backward, BuildOnDevice, DeviceBuildExt, Module, Momentum, Optimizer, Rank2,
    SampleTensor, SgdConfig, SumTo, Tensor, Trace, WeightDecay, ZeroGrads,
};
use shapesafe::train::{load_checkpoint, save_checkpoint};

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

/// The model of the `checkpoint` target: small, so that each run is dominated by parsing
/// rather than by building and copying the model.
pub type CheckpointNet = (
    shapesafe::prelude::Linear<4, 3>,
    shapesafe::prelude::ReLU,
    shapesafe::prelude::Linear<3, 2>,
);
/// [`CheckpointNet`] built on the CPU in `f32`.
pub type CheckpointModel = <CheckpointNet as BuildOnDevice<Cpu, f32>>::Built;
/// SGD with classic momentum and L2 weight decay: one momentum buffer per parameter.
pub type CheckpointSgd = Sgd<CheckpointModel, f32, Cpu>;
/// AdamW: two moments and a step count per parameter.
pub type CheckpointAdam = Adam<CheckpointModel, f32, Cpu>;

/// The SGD configuration of the `checkpoint` target and its seeds.
pub fn checkpoint_sgd_config() -> SgdConfig {
    SgdConfig {
        lr: 0.05,
        momentum: Some(Momentum::Classic(0.9)),
        weight_decay: Some(WeightDecay::L2(1e-4)),
    }
}

/// The Adam configuration of the `checkpoint` target and its seeds (AdamW).
pub fn checkpoint_adam_config() -> AdamConfig {
    AdamConfig {
        lr: 1e-3,
        weight_decay: Some(WeightDecay::Decoupled(1e-2)),
        ..Default::default()
    }
}

/// A deterministic model and an SGD-momentum and an Adam optimizer that have each taken
/// `steps` updates of it (the model is updated by both), so that every state buffer holds
/// non-trivial numbers.
pub fn checkpoint_fixture(steps: usize) -> (CheckpointModel, CheckpointSgd, CheckpointAdam) {
    let dev = Cpu::seed_from_u64(20261122);
    let mut model = dev.build_module::<CheckpointNet, f32>();
    let mut sgd = Sgd::new(&model, checkpoint_sgd_config());
    let mut adam = Adam::new(&model, checkpoint_adam_config());
    for _ in 0..steps {
        let x: Tensor<Rank2<5, 4>, f32, Cpu> = dev.sample_normal();
        let grads = model.alloc_grads();
        let loss = model.forward(x.traced(grads)).square().sum();
        let grads = loss.backward();
        sgd.update(&mut model, &grads)
            .expect("an SGD step on a fresh model");
        adam.update(&mut model, &grads)
            .expect("an Adam step on a fresh model");
    }
    (model, sgd, adam)
}

/// The parameters of a [`CheckpointModel`] as bits, so that NaNs compare equal to themselves.
pub fn checkpoint_params(m: &CheckpointModel) -> Vec<u32> {
    [
        m.0.weight.as_vec(),
        m.0.bias.as_vec(),
        m.2.weight.as_vec(),
        m.2.bias.as_vec(),
    ]
    .concat()
    .into_iter()
    .map(f32::to_bits)
    .collect()
}

/// The state of an optimizer with every number as bits, for exact comparisons.
fn state_bits(dict: &StateDict) -> Vec<(String, Vec<u64>)> {
    let tensors = dict.tensors.iter().map(|(k, t)| {
        let bits = match &t.data {
            shapesafe::optim::StateData::F32(v) => {
                v.iter().map(|x| u64::from(x.to_bits())).collect()
            }
            shapesafe::optim::StateData::F64(v) => v.iter().map(|x| x.to_bits()).collect(),
        };
        (format!("{k} {:?} {}", t.shape, t.data.dtype_name()), bits)
    });
    let scalars = dict
        .scalars
        .iter()
        .map(|(k, v)| (k.clone(), vec![v.to_bits()]));
    tensors.chain(scalars).collect()
}

/// A temporary file path unique to this process and thread, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(tag: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        thread_local! {
            static THREAD: usize = NEXT.fetch_add(1, Ordering::Relaxed);
        }
        let thread = THREAD.with(|t| *t);
        TempFile(std::env::temp_dir().join(format!(
            "shapesafe-fuzz-checkpoint-{}-{thread}-{tag}.safetensors",
            std::process::id()
        )))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

thread_local! {
    /// Built once per thread: the model and optimizers every input is loaded into (copies).
    static CHECKPOINT_FIXTURE: (CheckpointModel, CheckpointSgd, CheckpointAdam) = checkpoint_fixture(1);
}

/// Loads the checkpoint at `path` into copies of `model` and `optimizer` and checks the
/// documented contract of `load_checkpoint`: on `Err` neither changed; on `Ok` what was
/// loaded saves and loads back bit for bit.
fn check_checkpoint_load<O: OptimizerState + Clone>(
    path: &Path,
    model: &CheckpointModel,
    optimizer: &O,
) {
    let mut m = model.clone();
    let mut o = optimizer.clone();
    let params_before = checkpoint_params(&m);
    let state_before = state_bits(&o.state_dict().expect("the state of a valid optimizer"));
    match load_checkpoint(path, &mut m, &mut o) {
        Err(e) => {
            assert!(
                checkpoint_params(&m) == params_before,
                "load_checkpoint returned Err but changed the model: {e}"
            );
            assert!(
                state_bits(&o.state_dict().expect("the state after a failed load")) == state_before,
                "load_checkpoint returned Err but changed the optimizer: {e}"
            );
        }
        Ok(training) => {
            CHECKPOINT_LOADS_OK.fetch_add(1, Ordering::Relaxed);
            let state = o.state_dict().expect("the state after a successful load");
            let again = TempFile::new("roundtrip");
            save_checkpoint(&again.0, &m, &o, &training).expect("a loaded checkpoint saves");
            let mut m2 = model.clone();
            let mut o2 = optimizer.clone();
            let training2 =
                load_checkpoint(&again.0, &mut m2, &mut o2).expect("a saved checkpoint loads");
            assert_eq!(training2, training);
            assert!(checkpoint_params(&m2) == checkpoint_params(&m));
            assert!(
                state_bits(&o2.state_dict().expect("the state after a reload"))
                    == state_bits(&state)
            );
        }
    }
}

/// How many (input, optimizer) loads returned `Ok` in this process, for the harness's report.
pub static CHECKPOINT_LOADS_OK: AtomicUsize = AtomicUsize::new(0);

/// `data` as a checkpoint file for `train::load_checkpoint`, loaded into an SGD-momentum
/// and an Adam optimizer of [`CheckpointModel`]: never a panic, nothing changed on `Err`.
pub fn checkpoint(data: &[u8]) {
    let file = TempFile::new("input");
    std::fs::write(&file.0, data)
        .unwrap_or_else(|e| panic!("cannot write {}: {e} (not a finding)", file.0.display()));
    CHECKPOINT_FIXTURE.with(|(model, sgd, adam)| {
        check_checkpoint_load(&file.0, model, sgd);
        check_checkpoint_load(&file.0, model, adam);
    });
}

/// Tokens worth splicing into a checkpoint's JSON header: dtypes, the target's tensor and
/// metadata names, and numbers at the edges of what the loader accepts.
const CHECKPOINT_TOKENS: &[&str] = &[
    "\"F32\"",
    "\"F64\"",
    "\"F16\"",
    "\"BF16\"",
    "\"I64\"",
    "\"U8\"",
    "\"BOOL\"",
    "\"model.0.weight\"",
    "\"model.0.bias\"",
    "\"model.2.weight\"",
    "\"model.2.bias\"",
    "\"model.1.weight\"",
    "\"optimizer.state.0.weight.momentum_buffer\"",
    "\"optimizer.state.0.weight.exp_avg\"",
    "\"optimizer.state.2.bias.exp_avg_sq\"",
    "\"optimizer.state.0.weight.step\"",
    "\"optimizer.group.lr\"",
    "\"optimizer.group.momentum_kind\"",
    "\"optimizer.group.weight_decay_kind\"",
    "\"optimizer.group.beta1\"",
    "\"user.x\"",
    "\"user.\"",
    "\"format\"",
    "\"epoch\"",
    "\"step\"",
    "\"seed\"",
    "\"__metadata__\"",
    "\"shapesafe-checkpoint-v1\"",
    "\"NaN\"",
    "\"inf\"",
    "\"-inf\"",
    "\"-0.0\"",
    "\"1e309\"",
    "\"9007199254740993\"",
    "\"18446744073709551616\"",
    "\"-1\"",
    "\"2.5\"",
    "\"3\"",
    "\"1.0\"",
    "\"\"",
    "0",
    "1",
    "2",
    "3",
    "4",
    "12",
    "24",
    "48",
    "96",
    "4294967295",
    "18446744073709551615",
    "[]",
    "[0]",
    "[4,3]",
    "[3,4]",
    "[3]",
    "[2,3]",
    "[2]",
    "[1,1,1,1]",
    "null",
    "{}",
];

/// One random edit of a safetensors checkpoint for the plain loop harness: half the time a
/// byte-level [`mutate`], otherwise a token of the JSON header (a string, a number or a
/// bracketed list) replaced by one of [`CHECKPOINT_TOKENS`] or by another token of the same
/// header, with the header's length prefix fixed so that the file still frames.
pub fn mutate_checkpoint(bytes: &[u8], rng: &mut StdRng) -> Vec<u8> {
    if rng.gen_bool(0.5) || bytes.len() < 8 {
        return mutate(bytes, rng);
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&bytes[..8]);
    let n = u64::from_le_bytes(len);
    let Some(end) = usize::try_from(n).ok().and_then(|n| n.checked_add(8)) else {
        return mutate(bytes, rng);
    };
    if end > bytes.len() {
        return mutate(bytes, rng);
    }
    let mut header = bytes[8..end].to_vec();
    let data = &bytes[end..];
    for _ in 0..rng.gen_range(1..=3) {
        let tokens = header_tokens(&header);
        if tokens.is_empty() {
            break;
        }
        let (s, e) = tokens[rng.gen_range(0..tokens.len())];
        let with: Vec<u8> = if rng.gen_bool(0.7) {
            CHECKPOINT_TOKENS[rng.gen_range(0..CHECKPOINT_TOKENS.len())]
                .as_bytes()
                .to_vec()
        } else {
            let (s2, e2) = tokens[rng.gen_range(0..tokens.len())];
            header[s2..e2].to_vec()
        };
        header.splice(s..e, with);
    }
    let mut data = data.to_vec();
    match rng.gen_range(0..6) {
        0 => data.truncate(rng.gen_range(0..=data.len())),
        1 => data.extend((0..rng.gen_range(1..=16)).map(|_| rng.gen::<u8>())),
        2 if !data.is_empty() => {
            let i = rng.gen_range(0..data.len());
            data[i] = rng.gen();
        }
        _ => {}
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&header);
    out.extend_from_slice(&data);
    out
}

/// The spans of the JSON header's string literals, numbers and innermost `[...]` lists.
fn header_tokens(h: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut i = 0;
    while i < h.len() {
        match h[i] {
            b'"' => {
                let mut j = i + 1;
                while j < h.len() && h[j] != b'"' {
                    j += if h[j] == b'\\' { 2 } else { 1 };
                }
                let e = (j + 1).min(h.len());
                spans.push((i, e));
                i = e;
            }
            b'0'..=b'9' | b'-' => {
                let mut j = i;
                while j < h.len() && matches!(h[j], b'0'..=b'9' | b'-' | b'.' | b'e' | b'E' | b'+')
                {
                    j += 1;
                }
                spans.push((i, j));
                i = j;
            }
            b'[' => {
                if let Some(k) = h[i..].iter().position(|&b| b == b']') {
                    spans.push((i, i + k + 1));
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    spans
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
