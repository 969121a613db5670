//! Loading PyTorch state dicts (saved as safetensors) into shapesafe models through a name map.
//!
//! PyTorch names a tensor by its module path (`features.0.weight`, `layer1.0.bn1.running_var`);
//! a shapesafe model names it by tuple position (`0.0.0.weight`). A [`NameMap`] pairs the two,
//! usually by order: both frameworks list a sequential model's layers in the order they run,
//! so the zoo's models give the PyTorch names of their layers in that order
//! ([`crate::models`]'s `torchvision_layers`) and [`NameMap::by_order`] zips them with the
//! model's own. Loading is strict and all-or-nothing: every model tensor must be found with its
//! exact shape, every file tensor must be used (PyTorch's `num_batches_tracked` counters
//! excepted), and on any error the model is left as it was.
//!
//! On the Python side: `safetensors.torch.save_file(model.state_dict(), "weights.safetensors")`.

use crate::{Error, Result};
use dfdx::nn::tensor_collection::{
    RecursiveWalker, ScalarOptions, TensorCollection, TensorOptions, TensorVisitor, ViewTensorMut,
    ViewTensorName, ViewTensorRef,
};
use dfdx::prelude::{Device, Dtype, HasShape, Shape, Tensor};
use num_traits::NumCast;
use safetensors::{Dtype as SDtype, SafeTensors};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// PyTorch's per-batch-norm step counter: it has no counterpart in a shapesafe model.
const IGNORED_SUFFIX: &str = "num_batches_tracked";

/// How a model's tensor names translate to a PyTorch state dict's.
///
/// Rules rewrite a *layer prefix*: a tensor `0.1.weight` under the rule
/// `0.1 -> features.3` is looked up as `features.3.weight`. The longest matching prefix wins;
/// a name no rule matches is looked up unchanged.
///
/// # Shapes
/// Not a layer; shapes are checked when [`load_state_dict`] copies each tensor.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::pytorch::NameMap;
/// type Net = (Linear<4, 8>, ReLU, Linear<8, 2>);
/// let model = Cpu::default().build_module::<Net, f32>();
/// // PyTorch: nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)) as `classifier`
/// let map = NameMap::by_order(&model, &["classifier.0", "classifier.2"]).unwrap();
/// assert_eq!(map.torch_name("2.weight"), "classifier.2.weight");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NameMap {
    rules: BTreeMap<String, String>,
}

impl NameMap {
    /// A map with no rules: every name is looked up as it is.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the rule `ours -> theirs` for a layer prefix.
    pub fn rename(mut self, ours: impl Into<String>, theirs: impl Into<String>) -> Self {
        self.rules.insert(ours.into(), theirs.into());
        self
    }

    /// Pairs the model's layers (the prefixes of its tensor names, in the order dfdx visits
    /// them, which is the order they run) with `torch_layers`, PyTorch's layer paths in its
    /// own definition order. Fails if the counts differ.
    pub fn by_order<E, D, M>(model: &M, torch_layers: &[impl AsRef<str>]) -> Result<Self>
    where
        E: Dtype,
        D: Device<E>,
        M: TensorCollection<E, D>,
    {
        let ours = layer_prefixes(model);
        if ours.len() != torch_layers.len() {
            return Err(Error::Usage(format!(
                "the model has {} layers with tensors but the name map lists {} PyTorch layers",
                ours.len(),
                torch_layers.len()
            )));
        }
        let mut map = Self::new();
        for (ours, theirs) in ours.into_iter().zip(torch_layers) {
            map = map.rename(ours, theirs.as_ref());
        }
        Ok(map)
    }

    /// The PyTorch name of the model tensor `ours`.
    pub fn torch_name(&self, ours: &str) -> String {
        let mut best: Option<(&String, &String)> = None;
        for (prefix, theirs) in &self.rules {
            let matches = ours == prefix
                || (ours.starts_with(prefix.as_str())
                    && ours.as_bytes().get(prefix.len()) == Some(&b'.'));
            if matches && best.is_none_or(|(p, _)| prefix.len() > p.len()) {
                best = Some((prefix, theirs));
            }
        }
        match best {
            Some((prefix, theirs)) if theirs.is_empty() => {
                ours[prefix.len()..].trim_start_matches('.').to_string()
            }
            Some((prefix, theirs)) => format!("{theirs}{}", &ours[prefix.len()..]),
            None => ours.to_string(),
        }
    }
}

/// The names of `model`'s tensors, in the order dfdx visits them (`0.weight`, `0.bias`, ...).
///
/// # Shapes
/// Not a layer.
///
/// ```
/// use shapesafe::prelude::*;
/// let model = Cpu::default().build_module::<(Linear<2, 3>, ReLU, Linear<3, 1>), f32>();
/// assert_eq!(shapesafe::pytorch::tensor_names(&model), ["0.weight", "0.bias", "2.weight", "2.bias"]);
/// ```
pub fn tensor_names<E: Dtype, D: Device<E>, M: TensorCollection<E, D>>(model: &M) -> Vec<String> {
    tensor_shapes(model)
        .into_iter()
        .map(|(name, _)| name)
        .collect()
}

/// The names and shapes of `model`'s tensors, in the order dfdx visits them.
///
/// # Shapes
/// Not a layer; shapes are in PyTorch's layouts.
///
/// ```
/// use shapesafe::prelude::*;
/// let model = Cpu::default().build_module::<Linear<2, 3>, f32>();
/// let shapes = shapesafe::pytorch::tensor_shapes(&model);
/// assert_eq!(shapes[0], ("weight".to_string(), vec![3, 2]));
/// ```
pub fn tensor_shapes<E: Dtype, D: Device<E>, M: TensorCollection<E, D>>(
    model: &M,
) -> Vec<(String, Vec<usize>)> {
    let mut names = NameCollector(Vec::new());
    // The collector never fails.
    let _ = M::iter_tensors(&mut RecursiveWalker {
        m: (model, String::new()),
        f: &mut names,
    });
    names.0
}

/// Layer prefixes of [`tensor_names`], each once, in order.
fn layer_prefixes<E: Dtype, D: Device<E>, M: TensorCollection<E, D>>(model: &M) -> Vec<String> {
    let mut prefixes: Vec<String> = Vec::new();
    for name in tensor_names(model) {
        let prefix = name.rsplit_once('.').map_or("", |(p, _)| p).to_string();
        if prefixes.last() != Some(&prefix) {
            prefixes.push(prefix);
        }
    }
    prefixes
}

struct NameCollector(Vec<(String, Vec<usize>)>);

impl<E: Dtype, D: Device<E>> TensorVisitor<E, D> for NameCollector {
    type Viewer = (ViewTensorRef, ViewTensorName);
    type Err = std::convert::Infallible;
    type E2 = E;
    type D2 = D;

    fn visit<S: Shape>(
        &mut self,
        _: TensorOptions<S, E, D>,
        (t, name): (&Tensor<S, E, D>, String),
    ) -> std::result::Result<Option<Tensor<S, E, D>>, Self::Err> {
        self.0.push((name, t.shape().concrete().into()));
        Ok(None)
    }

    fn visit_scalar<N: NumCast>(
        &mut self,
        _: ScalarOptions<N>,
        _: (&N, String),
    ) -> std::result::Result<Option<N>, Self::Err> {
        Ok(None)
    }
}

/// Loads a PyTorch state dict saved as safetensors into `model`, translating names with `map`.
///
/// Tensors stored as f32, f64, f16 or bf16 are converted to the model's dtype. Errors
/// ([`Error::Weights`], [`Error::ShapeMismatch`], [`Error::Io`]) name the tensor and leave
/// `model` unchanged.
///
/// # Shapes
/// Each tensor must have exactly the model's shape, in PyTorch's layouts (which shapesafe
/// uses: `Linear` weights `(out, in)`, `Conv2d` weights `(out, in / groups, k, k)`).
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::pytorch::{load_state_dict, NameMap};
/// let dev = Cpu::default();
/// let source = dev.build_module::<Linear<3, 2>, f32>();
/// let path = std::env::temp_dir().join("shapesafe-doc-pytorch.safetensors");
/// source.save_safetensors(&path).unwrap(); // names "weight", "bias", as PyTorch's nn.Linear
/// let mut model = dev.build_module::<(Linear<3, 2>,), f32>();
/// let map = NameMap::new().rename("0", "");
/// load_state_dict(&mut model, &path, &map).unwrap();
/// assert_eq!(model.0.weight.array(), source.weight.array());
/// # std::fs::remove_file(&path).unwrap();
/// ```
pub fn load_state_dict<E, D, M>(model: &mut M, path: impl AsRef<Path>, map: &NameMap) -> Result<()>
where
    E: Dtype,
    D: Device<E>,
    M: TensorCollection<E, D> + Clone,
{
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    load_named(model, &bytes, path, map)
}

/// [`load_state_dict`] from the bytes of a safetensors file already in memory (downloaded,
/// embedded with `include_bytes!`, or read from an archive), with the same conversions,
/// checks and all-or-nothing update. Errors name the source as in-memory data.
///
/// # Shapes
/// As [`load_state_dict`]: each tensor must have exactly the model's shape.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::pytorch::{load_state_dict_from_bytes, NameMap};
/// let dev = Cpu::default();
/// let source = dev.build_module::<Linear<3, 2>, f32>();
/// let path = std::env::temp_dir().join("shapesafe-doc-pytorch-bytes.safetensors");
/// source.save_safetensors(&path).unwrap();
/// let bytes = std::fs::read(&path).unwrap();
/// # std::fs::remove_file(&path).unwrap();
/// let mut model = dev.build_module::<(Linear<3, 2>,), f32>();
/// load_state_dict_from_bytes(&mut model, &bytes, &NameMap::new().rename("0", "")).unwrap();
/// assert_eq!(model.0.bias.array(), source.bias.array());
/// let err = load_state_dict_from_bytes(&mut model, &bytes[..10], &NameMap::new()).unwrap_err();
/// assert!(err.to_string().contains("not a safetensors file"), "{err}");
/// ```
pub fn load_state_dict_from_bytes<E, D, M>(model: &mut M, bytes: &[u8], map: &NameMap) -> Result<()>
where
    E: Dtype,
    D: Device<E>,
    M: TensorCollection<E, D> + Clone,
{
    load_named(model, bytes, Path::new(""), map)
}

/// The body of [`load_state_dict`]; `path` names the source in errors.
fn load_named<E, D, M>(model: &mut M, bytes: &[u8], path: &Path, map: &NameMap) -> Result<()>
where
    E: Dtype,
    D: Device<E>,
    M: TensorCollection<E, D> + Clone,
{
    let file = SafeTensors::deserialize(bytes)
        .map_err(|e| weights_error(path, format!("it is not a safetensors file ({e:?})")))?;
    // Tensors are copied one by one, so load into a copy and keep it only if all fit.
    let mut staged = model.clone();
    let mut reader = StateDictReader {
        path,
        file: &file,
        map,
        used: BTreeSet::new(),
    };
    M::iter_tensors(&mut RecursiveWalker {
        m: (&mut staged, String::new()),
        f: &mut reader,
    })?;
    let unused: Vec<String> = file
        .names()
        .into_iter()
        .filter(|n| !reader.used.contains(*n) && !n.ends_with(IGNORED_SUFFIX))
        .cloned()
        .collect();
    if !unused.is_empty() {
        let mut unused = unused;
        unused.sort();
        return Err(weights_error(
            path,
            format!(
                "{} tensors in the file belong to no model tensor under this name map: {}",
                unused.len(),
                unused.join(", ")
            ),
        ));
    }
    *model = staged;
    Ok(())
}

/// How errors name a source: its path, or "in-memory data" for the empty path of bytes.
fn source_name(path: &Path) -> String {
    if path.as_os_str().is_empty() {
        "in-memory data".to_string()
    } else {
        path.display().to_string()
    }
}

fn weights_error(path: &Path, reason: String) -> Error {
    Error::Weights {
        path: path.to_path_buf(),
        reason,
    }
}

struct StateDictReader<'a, 'data> {
    path: &'a Path,
    file: &'a SafeTensors<'data>,
    map: &'a NameMap,
    used: BTreeSet<String>,
}

impl<'a, 'data, E: Dtype, D: Device<E>> TensorVisitor<E, D> for StateDictReader<'a, 'data> {
    type Viewer = (ViewTensorMut, ViewTensorName);
    type Err = Error;
    type E2 = E;
    type D2 = D;

    fn visit<S: Shape>(
        &mut self,
        _: TensorOptions<S, E, D>,
        (t, name): (&mut Tensor<S, E, D>, String),
    ) -> Result<Option<Tensor<S, E, D>>> {
        let key = self.map.torch_name(&name);
        let view = self.file.tensor(&key).map_err(|_| {
            weights_error(
                self.path,
                format!("the tensor {key:?} (the model's {name:?}) is missing"),
            )
        })?;
        self.used.insert(key.clone());
        let shape: Vec<usize> = t.shape().concrete().into();
        // PyTorch stores a 0-d or 1-d tensor of one element for scalars; shapes must match exactly.
        if view.shape() != shape.as_slice() {
            return Err(Error::ShapeMismatch {
                what: format!(
                    "tensor {key:?} (the model's {name:?}) in {}",
                    source_name(self.path)
                ),
                expected: shape,
                found: view.shape().to_vec(),
            });
        }
        let values = decode(view.dtype(), view.data()).ok_or_else(|| {
            weights_error(
                self.path,
                format!(
                    "tensor {key:?} is stored as {:?}, which is not a float type",
                    view.dtype()
                ),
            )
        })?;
        if values.len() != t.shape().num_elements() {
            return Err(Error::ShapeMismatch {
                what: format!("the data of tensor {key:?} in {}", source_name(self.path)),
                expected: vec![t.shape().num_elements()],
                found: vec![values.len()],
            });
        }
        let values: Vec<E> = values
            .into_iter()
            .map(|v| E::from_f64(v).unwrap_or_default())
            .collect();
        t.copy_from(&values);
        Ok(None)
    }

    fn visit_scalar<N: NumCast>(
        &mut self,
        _: ScalarOptions<N>,
        _: (&mut N, String),
    ) -> Result<Option<N>> {
        // Scalars are hyper-parameters (dropout rates, ...), which a state dict does not hold.
        Ok(None)
    }
}

/// Little-endian floats of a safetensors dtype, widened to f64.
fn decode(dtype: SDtype, data: &[u8]) -> Option<Vec<f64>> {
    Some(match dtype {
        SDtype::F32 => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
            .collect(),
        SDtype::F64 => data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8-byte chunk")))
            .collect(),
        SDtype::F16 => data
            .chunks_exact(2)
            .map(|c| half_to_f64(u16::from_le_bytes([c[0], c[1]])))
            .collect(),
        SDtype::BF16 => data
            .chunks_exact(2)
            .map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16) as f64)
            .collect(),
        _ => return None,
    })
}

/// IEEE half precision to f64.
fn half_to_f64(bits: u16) -> f64 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = ((bits >> 10) & 0x1f) as i32;
    let fraction = (bits & 0x3ff) as f64;
    sign * match exponent {
        0 => fraction * 2f64.powi(-24),
        0x1f if fraction == 0.0 => f64::INFINITY,
        0x1f => f64::NAN,
        _ => (1.0 + fraction / 1024.0) * 2f64.powi(exponent - 15),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_decode() {
        assert_eq!(half_to_f64(0x3c00), 1.0);
        assert_eq!(half_to_f64(0xc000), -2.0);
        assert_eq!(half_to_f64(0x3555), 0.333251953125);
        assert_eq!(half_to_f64(0x0001), 2f64.powi(-24));
        assert_eq!(half_to_f64(0x7c00), f64::INFINITY);
    }

    #[test]
    fn longest_prefix_wins_and_respects_dots() {
        let map = NameMap::new()
            .rename("0", "features")
            .rename("0.1", "features.conv")
            .rename("1", "fc");
        assert_eq!(map.torch_name("0.1.weight"), "features.conv.weight");
        assert_eq!(map.torch_name("0.2.bias"), "features.2.bias");
        assert_eq!(map.torch_name("10.weight"), "10.weight");
        assert_eq!(map.torch_name("1.weight"), "fc.weight");
    }
}
