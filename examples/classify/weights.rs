//! Deterministic stand-ins for trained torchvision weights, the same formula as
//! `tests/pytorch/make_image_golden.py`, so the test needs no committed weights file.

use shapesafe::models::Torchvision;
use shapesafe::prelude::*;
use shapesafe::pytorch::tensor_shapes;
use shapesafe::{Error, Result};
use std::path::Path;

/// 64-bit FNV-1a of a tensor's name: its seed.
fn fnv1a(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// SplitMix64 at `seed + i`, as a value in [-1, 1).
fn uniform(seed: u64, i: u64) -> f64 {
    let mut z = seed.wrapping_add(i).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / 2f64.powi(52) - 1.0
}

/// The script's `weights()`: He-uniform convolutions and linear layers, batch norms near
/// the identity, small biases.
fn values(name: &str, shape: &[usize]) -> Vec<f32> {
    let seed = fnv1a(name);
    let n: usize = shape.iter().product();
    let fan_in: usize = shape.iter().skip(1).product();
    (0..n as u64)
        .map(|i| {
            let u = uniform(seed, i);
            let v = if name.ends_with("running_var") {
                1.0 + 0.1 * u
            } else if name.ends_with("running_mean") || name.ends_with("bias") {
                0.01 * u
            } else if shape.len() == 1 {
                1.0 + 0.1 * u
            } else {
                u * (6.0 / fan_in as f64).sqrt()
            };
            v as f32
        })
        .collect()
}

/// Writes `M`'s torchvision state dict with the formula's weights to `path`, as
/// `safetensors.torch.save_file` would.
pub fn write_torchvision_like<M>(path: &Path) -> Result<()>
where
    M: Torchvision + BuildOnDevice<Cpu, f32>,
    M::Built: TensorCollection<f32, Cpu>,
{
    let model = M::try_build_on_device(&Cpu::default()).map_err(Error::device)?;
    let map = M::torchvision_names(&model)?;
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = tensor_shapes(&model)
        .into_iter()
        .map(|(ours, shape)| {
            let name = map.torch_name(&ours);
            let bytes = values(&name, &shape)
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            (name, shape, bytes)
        })
        .collect();
    let views = tensors
        .iter()
        .map(|(name, shape, bytes)| {
            let view =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                    .map_err(|e| Error::Usage(format!("{e:?}")))?;
            Ok((name.clone(), view))
        })
        .collect::<Result<Vec<_>>>()?;
    let bytes = safetensors::serialize(views, &None).map_err(|e| Error::Usage(format!("{e:?}")))?;
    std::fs::write(path, bytes).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}
