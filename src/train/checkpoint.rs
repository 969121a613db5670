//! Model weights and training checkpoints on disk: atomic saves (temporary file, sync,
//! rename) and strict, all-or-nothing loads.
//!
//! A checkpoint is one safetensors file holding the model's tensors under `model.`, the
//! optimizer's [`StateDict`] tensors under `optimizer.`, and in the header's string
//! metadata the optimizer's scalars (`optimizer.` keys), the [`TrainingState`] (`epoch`,
//! `step`, `seed`, and the caller's own entries under `user.`) and a format tag.

use crate::optim::{OptimizerState, StateData, StateDict, StateTensor};
use crate::{Error, Result};
use dfdx::nn::tensor_collection::{
    RecursiveWalker, ScalarOptions, TensorCollection, TensorOptions, TensorVisitor, ViewTensorMut,
    ViewTensorName, ViewTensorRef,
};
use dfdx::nn::{LoadFromSafetensors, SaveToSafetensors};
use dfdx::prelude::{Device, Dtype, HasShape, Shape, Tensor};
use dfdx::tensor::safetensors::SafeDtype;
use num_traits::NumCast;
use safetensors::tensor::TensorView;
use safetensors::{Dtype as SDtype, SafeTensors};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Saves `model` as safetensors at `path` without ever leaving a half-written file there.
///
/// The tensors go to `path` + `.tmp` in the same folder, which is synced to disk and
/// then renamed over `path`: a crash leaves either the old file or the new one.
///
/// # Shapes
/// Any model; tensors are stored under dfdx's names (`0.0.weight`, ...).
///
/// ```
/// use shapesafe::prelude::*;
/// let model = Cpu::default().build_module::<Linear<3, 2>, f32>();
/// let path = std::env::temp_dir().join("shapesafe-doc-save-atomic.safetensors");
/// shapesafe::train::save_atomic(&model, &path).unwrap();
/// assert!(path.exists());
/// # std::fs::remove_file(&path).unwrap();
/// ```
pub fn save_atomic<E, D, M>(model: &M, path: impl AsRef<Path>) -> Result<()>
where
    E: Dtype + dfdx::tensor::safetensors::SafeDtype,
    D: Device<E>,
    M: SaveToSafetensors<E, D>,
{
    let path = path.as_ref();
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = Path::new(&tmp_name);
    let io = |source| Error::Io {
        path: tmp.to_path_buf(),
        source,
    };
    model.save_safetensors(tmp).map_err(|e| Error::Weights {
        path: tmp.to_path_buf(),
        reason: e.to_string(),
    })?;
    File::open(tmp).and_then(|f| f.sync_all()).map_err(io)?;
    std::fs::rename(tmp, path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Loads safetensors weights into `model`, all or nothing.
///
/// Every tensor in the file must have the model's dtype (dfdx itself would panic
/// on an `f64` file loaded into an `f32` model), and every tensor the model has
/// must be in the file with its exact shape. On any failure `model` is left
/// untouched and a [`Error::Weights`] says which tensor and why.
///
/// # Shapes
/// The file's tensors must have the model's shapes, under dfdx's names.
///
/// ```
/// use shapesafe::prelude::*;
/// let dev = Cpu::default();
/// let path = std::env::temp_dir().join("shapesafe-doc-load-weights.safetensors");
/// let a = dev.build_module::<Linear<3, 2>, f32>();
/// shapesafe::train::save_atomic(&a, &path).unwrap();
/// let mut b = dev.build_module::<Linear<3, 2>, f32>();
/// shapesafe::train::load_weights(&mut b, &path).unwrap();
/// assert_eq!(a.weight.array(), b.weight.array());
/// let mut wrong = dev.build_module::<Linear<4, 2>, f32>();
/// assert!(shapesafe::train::load_weights(&mut wrong, &path).is_err());
/// # std::fs::remove_file(&path).unwrap();
/// ```
pub fn load_weights<E, D, M>(model: &mut M, path: impl AsRef<Path>) -> Result<()>
where
    E: Dtype + SafeDtype,
    D: Device<E>,
    M: LoadFromSafetensors<E, D> + Clone,
{
    let path = path.as_ref();
    let weights = |reason: String| Error::Weights {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let file = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| weights(format!("it is not a safetensors file ({e:?})")))?;
    let expected = E::safe_dtype();
    for (name, view) in file.tensors() {
        if view.dtype() != expected {
            return Err(weights(format!(
                "tensor {name:?} is stored as {:?}, but the model uses {expected:?}",
                view.dtype()
            )));
        }
    }
    // dfdx overwrites tensors one by one, so load into a copy and keep it only if all fit.
    let mut staged = model.clone();
    staged
        .load_safetensors(path)
        .map_err(|e| weights(format!("{e:?}")))?;
    *model = staged;
    Ok(())
}

/// Where a training run stands, saved with a checkpoint: the epoch and step to resume
/// from, the seed the run was started with, and any other entries the caller wants
/// back (an LR scheduler's state, the best metric so far, ...) as strings.
///
/// ```
/// use shapesafe::train::TrainingState;
/// let mut state = TrainingState { epoch: 3, step: 1_200, seed: 42, ..Default::default() };
/// state.extra.insert("best_accuracy".to_string(), "0.9895".to_string());
/// assert_eq!(state.extra["best_accuracy"], "0.9895");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrainingState {
    /// Epochs completed.
    pub epoch: u64,
    /// Optimizer steps taken.
    pub step: u64,
    /// The seed the run was started with.
    pub seed: u64,
    /// The caller's own entries, stored as `user.<key>` in the file's metadata.
    pub extra: BTreeMap<String, String>,
}

/// The `format` metadata entry that marks a file as a shapesafe checkpoint.
const FORMAT: &str = "shapesafe-checkpoint-v1";

fn weights_error(path: &Path, reason: String) -> Error {
    Error::Weights {
        path: path.to_path_buf(),
        reason,
    }
}

/// One tensor on its way to disk.
struct Entry {
    dtype: SDtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

/// Collects a model's tensors (and dfdx scalar fields, stored as rank-0 f64 tensors the
/// way dfdx's own `save_safetensors` stores them).
struct ModelWriter<'a> {
    path: &'a Path,
    entries: Vec<(String, Entry)>,
}

impl<'a, E: Dtype + SafeDtype, D: Device<E>> TensorVisitor<E, D> for ModelWriter<'a> {
    type Viewer = (ViewTensorRef, ViewTensorName);
    type Err = Error;
    type E2 = E;
    type D2 = D;

    fn visit<S: Shape>(
        &mut self,
        _: TensorOptions<S, E, D>,
        (t, name): (&Tensor<S, E, D>, String),
    ) -> Result<Option<Tensor<S, E, D>>> {
        let bytes = t.as_vec().into_iter().flat_map(E::to_le_bytes).collect();
        self.entries.push((
            format!("model.{name}"),
            Entry {
                dtype: E::safe_dtype(),
                shape: t.shape().concrete().into(),
                bytes,
            },
        ));
        Ok(None)
    }

    fn visit_scalar<N: NumCast>(
        &mut self,
        _: ScalarOptions<N>,
        (n, name): (&N, String),
    ) -> Result<Option<N>> {
        let value = n.to_f64().ok_or_else(|| {
            weights_error(
                self.path,
                format!("the model's scalar {name:?} is not a number"),
            )
        })?;
        self.entries.push((
            format!("model.{name}"),
            Entry {
                dtype: SDtype::F64,
                shape: Vec::new(),
                bytes: value.to_le_bytes().to_vec(),
            },
        ));
        Ok(None)
    }
}

/// Saves `model`, `optimizer`'s state and `state` as one safetensors checkpoint at `path`,
/// atomically: the bytes go to `path` + `.tmp` in the same folder, which is synced to disk
/// and then renamed over `path`, so a crash leaves either the old checkpoint or the new one.
///
/// Model tensors are stored as `model.<name>` (dfdx's names), optimizer tensors as
/// `optimizer.<key>` and optimizer scalars, exactly, in the metadata. Restore with
/// [`load_checkpoint`].
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::optim::Adam;
/// use shapesafe::train::{save_checkpoint, TrainingState};
/// let model = Cpu::default().build_module::<Linear<3, 2>, f32>();
/// let opt = Adam::new(&model, AdamConfig::default());
/// let path = std::env::temp_dir().join("shapesafe-doc-save-checkpoint.safetensors");
/// save_checkpoint(&path, &model, &opt, &TrainingState { epoch: 1, ..Default::default() }).unwrap();
/// assert!(path.exists());
/// # std::fs::remove_file(&path).unwrap();
/// ```
pub fn save_checkpoint<E, D, M, O>(
    path: impl AsRef<Path>,
    model: &M,
    optimizer: &O,
    state: &TrainingState,
) -> Result<()>
where
    E: Dtype + SafeDtype,
    D: Device<E>,
    M: TensorCollection<E, D>,
    O: OptimizerState,
{
    let path = path.as_ref();
    let mut writer = ModelWriter {
        path,
        entries: Vec::new(),
    };
    M::iter_tensors(&mut RecursiveWalker {
        m: (model, String::new()),
        f: &mut writer,
    })?;
    let mut entries = writer.entries;

    let dict = optimizer.state_dict()?;
    for (key, t) in &dict.tensors {
        let (dtype, bytes) = match &t.data {
            StateData::F32(v) => (
                SDtype::F32,
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
            StateData::F64(v) => (
                SDtype::F64,
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
        };
        entries.push((
            format!("optimizer.{key}"),
            Entry {
                dtype,
                shape: t.shape.clone(),
                bytes,
            },
        ));
    }

    let mut metadata = HashMap::new();
    metadata.insert("format".to_string(), FORMAT.to_string());
    metadata.insert("epoch".to_string(), state.epoch.to_string());
    metadata.insert("step".to_string(), state.step.to_string());
    metadata.insert("seed".to_string(), state.seed.to_string());
    for (key, value) in &state.extra {
        metadata.insert(format!("user.{key}"), value.clone());
    }
    // `{:?}` writes the shortest text that parses back to the same f64, so scalars such as
    // the learning rate round-trip exactly.
    for (key, value) in &dict.scalars {
        metadata.insert(format!("optimizer.{key}"), format!("{value:?}"));
    }

    let mut views = Vec::with_capacity(entries.len());
    for (name, entry) in &entries {
        let view = TensorView::new(entry.dtype, entry.shape.clone(), &entry.bytes)
            .map_err(|e| weights_error(path, format!("tensor {name:?} is malformed ({e:?})")))?;
        views.push((name.as_str(), view));
    }
    let bytes = safetensors::serialize(views, &Some(metadata))
        .map_err(|e| weights_error(path, format!("it could not be serialized ({e:?})")))?;
    write_atomic(path, &bytes)
}

/// Writes `bytes` to `path` + `.tmp`, syncs it, and renames it over `path`.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let io = |source| Error::Io {
        path: tmp.clone(),
        source,
    };
    let written = File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .map_err(io);
    if let Err(e) = written {
        // Best effort: a half-written temporary file is of no use to anyone.
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    // The rename itself is durable only once the folder is synced. Not every platform
    // can open a folder for that, and the checkpoint is already complete, so this is best effort.
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Rejects headers whose numbers could overflow safetensors' own bounds arithmetic.
///
/// safetensors 0.3 validates offsets against the file but adds the last offset to the
/// header length unchecked, which panics (in debug builds) on a crafted offset near
/// `usize::MAX`. No shape dim or offset of a real file exceeds the file's length (only
/// numbers outside JSON strings are dims and offsets), so anything larger is refused first.
fn check_header_numbers(bytes: &[u8]) -> std::result::Result<(), String> {
    let Some(len_bytes) = bytes.get(..8) else {
        return Ok(()); // Too short for a header; safetensors reports that.
    };
    let mut len = [0u8; 8];
    len.copy_from_slice(len_bytes);
    let header_len = usize::try_from(u64::from_le_bytes(len)).unwrap_or(usize::MAX);
    let Some(header) = bytes.get(8..8usize.saturating_add(header_len)) else {
        return Ok(()); // A header longer than the file; safetensors reports that.
    };
    let limit = bytes.len() as u128;
    let (mut in_string, mut escaped) = (false, false);
    let mut number: Option<u128> = None;
    for &b in header.iter().chain(std::iter::once(&b' ')) {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        if b.is_ascii_digit() {
            // Capped just above u64::MAX: every larger number is rejected the same way.
            let n = number.unwrap_or(0).saturating_mul(10) + (b - b'0') as u128;
            number = Some(n.min(1 << 64));
            continue;
        }
        if let Some(n) = number.take() {
            if n > limit {
                return Err(format!(
                    "its header holds the number {n}, larger than the file ({limit} bytes)"
                ));
            }
        }
        if b == b'"' {
            in_string = true;
        }
    }
    Ok(())
}

/// Reads the model's tensors from the file into a staged copy of the model.
struct ModelReader<'a, 'data> {
    path: &'a Path,
    file: &'a SafeTensors<'data>,
    used: BTreeSet<String>,
}

impl<'a, 'data> ModelReader<'a, 'data> {
    fn view(&mut self, key: &str) -> Result<TensorView<'a>> {
        let view = self
            .file
            .tensor(key)
            .map_err(|_| weights_error(self.path, format!("the tensor {key:?} is missing")))?;
        self.used.insert(key.to_string());
        Ok(view)
    }
}

impl<'a, 'data, E: Dtype + SafeDtype, D: Device<E>> TensorVisitor<E, D> for ModelReader<'a, 'data> {
    type Viewer = (ViewTensorMut, ViewTensorName);
    type Err = Error;
    type E2 = E;
    type D2 = D;

    fn visit<S: Shape>(
        &mut self,
        _: TensorOptions<S, E, D>,
        (t, name): (&mut Tensor<S, E, D>, String),
    ) -> Result<Option<Tensor<S, E, D>>> {
        let key = format!("model.{name}");
        let view = self.view(&key)?;
        let expected = E::safe_dtype();
        if view.dtype() != expected {
            return Err(weights_error(
                self.path,
                format!(
                    "tensor {key:?} is stored as {:?}, but the model uses {expected:?}",
                    view.dtype()
                ),
            ));
        }
        let shape: Vec<usize> = t.shape().concrete().into();
        if view.shape() != shape.as_slice() {
            return Err(Error::ShapeMismatch {
                what: format!("tensor {key:?} in {}", self.path.display()),
                expected: shape,
                found: view.shape().to_vec(),
            });
        }
        let size = std::mem::size_of::<E>();
        let values: Vec<E> = view
            .data()
            .chunks_exact(size)
            .map(|chunk| E::from_le_bytes(chunk, 0))
            .collect();
        if values.len() != t.shape().num_elements() {
            return Err(Error::ShapeMismatch {
                what: format!("the data of tensor {key:?} in {}", self.path.display()),
                expected: vec![t.shape().num_elements()],
                found: vec![values.len()],
            });
        }
        t.copy_from(&values);
        Ok(None)
    }

    fn visit_scalar<N: NumCast>(
        &mut self,
        _: ScalarOptions<N>,
        (n, name): (&mut N, String),
    ) -> Result<Option<N>> {
        let key = format!("model.{name}");
        let view = self.view(&key)?;
        let bad = |why: &str| weights_error(self.path, format!("scalar {key:?} {why}"));
        if view.dtype() != SDtype::F64 || !view.shape().is_empty() {
            return Err(bad("is not stored as a single f64"));
        }
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(view.data());
        let value = f64::from_le_bytes(bytes);
        *n = N::from(value).ok_or_else(|| bad(&format!("holds {value}, which does not fit")))?;
        Ok(None)
    }
}

fn parse_u64(path: &Path, metadata: &HashMap<String, String>, key: &str) -> Result<u64> {
    let text = metadata
        .get(key)
        .ok_or_else(|| weights_error(path, format!("the metadata entry {key:?} is missing")))?;
    text.parse().map_err(|_| {
        weights_error(
            path,
            format!("the metadata entry {key:?} is {text:?}, not a whole number"),
        )
    })
}

/// Restores a checkpoint written by [`save_checkpoint`] into `model` and `optimizer`, and
/// returns the [`TrainingState`] saved with it.
///
/// Strict and all or nothing: every tensor the model has must be in the file with the
/// model's dtype and exact shape, the optimizer's state must load strictly
/// ([`OptimizerState::load_state_dict`]), and the file may hold nothing else. On any error
/// neither `model` nor `optimizer` changes, and the error says which entry and why
/// ([`Error::Io`], [`Error::Weights`] or [`Error::ShapeMismatch`]). A corrupt or truncated
/// file is an error, never a panic. Parameter ids are kept, so gradients allocated before
/// the load stay valid.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::optim::Sgd;
/// use shapesafe::train::{load_checkpoint, save_checkpoint, TrainingState};
/// let dev = Cpu::default();
/// let cfg = SgdConfig { lr: 0.1, momentum: Some(Momentum::Classic(0.9)), weight_decay: None };
/// let a = dev.build_module::<Linear<3, 2>, f32>();
/// let path = std::env::temp_dir().join("shapesafe-doc-load-checkpoint.safetensors");
/// let saved = TrainingState { epoch: 2, step: 100, seed: 7, ..Default::default() };
/// save_checkpoint(&path, &a, &Sgd::new(&a, cfg), &saved).unwrap();
///
/// let mut b = dev.build_module::<Linear<3, 2>, f32>();
/// let mut opt = Sgd::new(&b, cfg);
/// assert_eq!(load_checkpoint(&path, &mut b, &mut opt).unwrap(), saved);
/// assert_eq!(a.weight.array(), b.weight.array());
///
/// let mut wrong = dev.build_module::<Linear<4, 2>, f32>();
/// let mut wrong_opt = Sgd::new(&wrong, cfg);
/// assert!(load_checkpoint(&path, &mut wrong, &mut wrong_opt).is_err());
/// # std::fs::remove_file(&path).unwrap();
/// ```
pub fn load_checkpoint<E, D, M, O>(
    path: impl AsRef<Path>,
    model: &mut M,
    optimizer: &mut O,
) -> Result<TrainingState>
where
    E: Dtype + SafeDtype,
    D: Device<E>,
    M: TensorCollection<E, D> + Clone,
    O: OptimizerState,
{
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let not_safetensors =
        |e: String| weights_error(path, format!("it is not a safetensors file ({e})"));
    check_header_numbers(&bytes).map_err(not_safetensors)?;
    let (_, header) =
        SafeTensors::read_metadata(&bytes).map_err(|e| not_safetensors(format!("{e:?}")))?;
    let file = SafeTensors::deserialize(&bytes).map_err(|e| not_safetensors(format!("{e:?}")))?;
    let metadata = header.metadata().clone().unwrap_or_default();

    // Training state and optimizer scalars, from the metadata.
    match metadata.get("format") {
        Some(f) if f == FORMAT => {}
        found => {
            return Err(weights_error(
                path,
                format!("its format entry is {found:?}, but a checkpoint has {FORMAT:?}"),
            ))
        }
    }
    let mut state = TrainingState {
        epoch: parse_u64(path, &metadata, "epoch")?,
        step: parse_u64(path, &metadata, "step")?,
        seed: parse_u64(path, &metadata, "seed")?,
        extra: BTreeMap::new(),
    };
    let mut dict = StateDict::default();
    for (key, value) in &metadata {
        if let Some(user) = key.strip_prefix("user.") {
            state.extra.insert(user.to_string(), value.clone());
        } else if let Some(k) = key.strip_prefix("optimizer.") {
            let x: f64 = value.parse().map_err(|_| {
                weights_error(
                    path,
                    format!("the metadata entry {key:?} is {value:?}, not a number"),
                )
            })?;
            dict.scalars.insert(k.to_string(), x);
        } else if !matches!(key.as_str(), "format" | "epoch" | "step" | "seed") {
            return Err(weights_error(
                path,
                format!("the metadata entry {key:?} is unexpected"),
            ));
        }
    }

    // Optimizer tensors.
    for (name, view) in file.tensors() {
        let Some(key) = name.strip_prefix("optimizer.") else {
            continue;
        };
        let data = match view.dtype() {
            SDtype::F32 => StateData::F32(
                view.data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            SDtype::F64 => StateData::F64(
                view.data()
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect(),
            ),
            other => {
                return Err(weights_error(
                    path,
                    format!(
                        "tensor {name:?} is stored as {other:?}; optimizer state is f32 or f64"
                    ),
                ))
            }
        };
        let t = StateTensor::new(view.shape().to_vec(), data)
            .map_err(|_| weights_error(path, format!("tensor {name:?} has a malformed size")))?;
        dict.tensors.insert(key.to_string(), t);
    }

    // The model, into a copy, so that nothing changes until everything has been checked.
    let mut staged = model.clone();
    let mut reader = ModelReader {
        path,
        file: &file,
        used: BTreeSet::new(),
    };
    M::iter_tensors(&mut RecursiveWalker {
        m: (&mut staged, String::new()),
        f: &mut reader,
    })?;
    let used = reader.used;
    if let Some(name) = file
        .names()
        .into_iter()
        .find(|n| !n.starts_with("optimizer.") && !used.contains(n.as_str()))
    {
        return Err(weights_error(
            path,
            format!("the tensor {name:?} is unexpected: the model has no such tensor"),
        ));
    }

    // The optimizer's load is itself all or nothing, and it is the last step that can fail.
    optimizer.load_state_dict(&dict).map_err(|e| match e {
        Error::Weights { path: p, reason } if p.as_os_str().is_empty() => {
            weights_error(path, format!("the optimizer state does not fit: {reason}"))
        }
        Error::ShapeMismatch {
            what,
            expected,
            found,
        } => Error::ShapeMismatch {
            what: format!("optimizer entry {what:?} in {}", path.display()),
            expected,
            found,
        },
        other => other,
    })?;
    *model = staged;
    Ok(state)
}
