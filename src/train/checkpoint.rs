//! Model weights on disk: atomic saves (temporary file, sync, rename) and strict, all-or-nothing loads.

use crate::{Error, Result};
use dfdx::nn::{LoadFromSafetensors, SaveToSafetensors};
use dfdx::prelude::{Device, Dtype};
use dfdx::tensor::safetensors::SafeDtype;
use std::fs::File;
use std::path::Path;

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
