//! Keeping the ranks' models the same: rank 0's weights and buffers broadcast to all, and a
//! start-up check that every rank built the same model.

use super::Communicator;
use crate::{Error, Result};
use dfdx::nn::tensor_collection::{
    RecursiveWalker, TensorCollection, TensorOptions, TensorVisitor, ViewTensorMut,
};
use dfdx::prelude::{Device, Dtype, HasShape, Shape, Tensor};

/// Copies every tensor of a model (parameters and buffers such as batch norm's running
/// statistics) to or from a flat host buffer, in walk order.
struct TensorCopy<'a, E> {
    flat: &'a mut Vec<E>,
    offset: usize,
    gather: bool,
}

impl<E: Dtype, D: Device<E>> TensorVisitor<E, D> for TensorCopy<'_, E> {
    type Viewer = ViewTensorMut;
    type Err = D::Err;
    type E2 = E;
    type D2 = D;

    fn visit<S: Shape>(
        &mut self,
        _opts: TensorOptions<S, E, D>,
        t: &mut Tensor<S, E, D>,
    ) -> Result<Option<Tensor<S, E, D>>, D::Err> {
        let n = t.shape().num_elements();
        if self.gather {
            self.flat.extend(t.as_vec());
        } else {
            t.copy_from(&self.flat[self.offset..self.offset + n]);
        }
        self.offset += n;
        Ok(None)
    }
}

fn copy<M, E, D>(model: &mut M, flat: &mut Vec<E>, gather: bool) -> Result<()>
where
    M: TensorCollection<E, D>,
    E: Dtype,
    D: Device<E>,
{
    let mut visitor = TensorCopy {
        flat,
        offset: 0,
        gather,
    };
    M::iter_tensors(&mut RecursiveWalker {
        m: model,
        f: &mut visitor,
    })
    .map_err(Error::device)?;
    Ok(())
}

/// Largest piece one collective call moves: MPI counts elements in a C `int`.
const PIECE: usize = 1 << 28;

/// Overwrites every rank's weights and buffers with rank `root`'s, as
/// `DistributedDataParallel` does when it wraps a model: after it, all ranks start from the
/// same point whatever their seeds.
///
/// # Errors
/// A `root` that is not a rank, a dtype other than `f32` or `f64`, or what the communicator
/// reports.
///
/// # Shapes
/// Every tensor keeps its shape.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::distributed::{broadcast_module, SingleProcess};
/// let dev = Cpu::default();
/// let mut model = dev.build_module::<(Conv2d<1, 2, 3>, BatchNorm2d<2>), f32>();
/// let before = model.1.running_var.array();
/// broadcast_module(&mut model, &SingleProcess, 0)?;
/// assert_eq!(model.1.running_var.array(), before);
/// # Ok::<(), shapesafe::Error>(())
/// ```
pub fn broadcast_module<M, E, D>(model: &mut M, comm: &dyn Communicator, root: usize) -> Result<()>
where
    M: TensorCollection<E, D>,
    E: Dtype,
    D: Device<E>,
{
    super::communicator::check_root(root, comm.world_size())?;
    if comm.world_size() == 1 {
        return Ok(());
    }
    let mut flat = Vec::new();
    copy(model, &mut flat, true)?;
    let done = if let Some(v) = crate::kernels::dispatch::cast_mut::<_, Vec<f32>>(&mut flat) {
        v.chunks_mut(PIECE)
            .try_for_each(|piece| comm.broadcast_f32(piece, root))?;
        true
    } else if let Some(v) = crate::kernels::dispatch::cast_mut::<_, Vec<f64>>(&mut flat) {
        v.chunks_mut(PIECE)
            .try_for_each(|piece| comm.broadcast_f64(piece, root))?;
        true
    } else {
        false
    };
    if !done {
        return Err(Error::Usage(format!(
            "distributed training moves f32 or f64 values, not {}",
            std::any::type_name::<E>()
        )));
    }
    if comm.rank() != root {
        copy(model, &mut flat, false)?;
    }
    Ok(())
}

/// What a model is, for comparing across ranks: its tensors, their values, and a hash of
/// their names, shapes and dtype (FNV-1a, the same in every process).
///
/// # Shapes
/// Not a layer: counts over every tensor of the model.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::distributed::ModelFingerprint;
/// let dev = Cpu::default();
/// let a = ModelFingerprint::of(&dev.build_module::<Linear<3, 2>, f32>());
/// let b = ModelFingerprint::of(&dev.build_module::<Linear<2, 3>, f32>());
/// assert_eq!((a.tensors, a.values), (2, 8));
/// assert_eq!(a.values, 8);
/// assert_ne!(a.hash, b.hash);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelFingerprint {
    /// Tensors, parameters and buffers.
    pub tensors: u64,
    /// Values in all of them.
    pub values: u64,
    /// Hash of every tensor's name and shape, in order, and the dtype's size.
    pub hash: u64,
}

/// FNV-1a's starting value.
pub(crate) const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// 64-bit FNV-1a of `bytes`, continuing from `hash` ([`FNV_OFFSET`] to start): the same in
/// every process, unlike the standard library's seeded hashers.
pub(crate) fn fnv(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl ModelFingerprint {
    /// The fingerprint of `model`.
    pub fn of<M, E, D>(model: &M) -> Self
    where
        M: TensorCollection<E, D>,
        E: Dtype,
        D: Device<E>,
    {
        let shapes = crate::pytorch::tensor_shapes(model);
        let text: String = shapes
            .iter()
            .map(|(name, shape)| format!("{name}:{shape:?}:{};", std::mem::size_of::<E>()))
            .collect();
        ModelFingerprint {
            tensors: shapes.len() as u64,
            values: shapes
                .iter()
                .map(|(_, s)| s.iter().product::<usize>() as u64)
                .sum(),
            hash: fnv(FNV_OFFSET, text.as_bytes()),
        }
    }
}

/// Checks, on every rank, that all ranks built the same model (tensor names, shapes and
/// dtype); otherwise every rank returns the same [`Error::Distributed`] naming the first rank
/// whose model differs from rank 0's, with both counts. Run it before anything else collective:
/// with different models the ranks would move buffers of different lengths.
///
/// # Shapes
/// Not a layer: compares whole models.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::distributed::{check_same_model, SingleProcess};
/// let model = Cpu::default().build_module::<Linear<3, 2>, f32>();
/// check_same_model(&model, &SingleProcess)?;
/// # Ok::<(), shapesafe::Error>(())
/// ```
pub fn check_same_model<M, E, D>(model: &M, comm: &dyn Communicator) -> Result<()>
where
    M: TensorCollection<E, D>,
    E: Dtype,
    D: Device<E>,
{
    let mine = ModelFingerprint::of(model);
    let all = comm.all_gather_u64(&[mine.tensors, mine.values, mine.hash])?;
    let first = &all[..3];
    match all.chunks(3).position(|other| other != first) {
        None => Ok(()),
        Some(rank) => {
            let other = &all[rank * 3..rank * 3 + 3];
            Err(Error::Distributed {
                rank,
                reason: format!(
                    "its model differs from rank 0's: rank 0 has {} values in {} tensors \
                     (names and shapes hash {:016x}), rank {rank} has {} values in {} tensors \
                     (hash {:016x}). Every rank must build the same model type",
                    crate::shape::thousands(first[1] as usize),
                    first[0],
                    first[2],
                    crate::shape::thousands(other[1] as usize),
                    other[0],
                    other[2]
                ),
            })
        }
    }
}
