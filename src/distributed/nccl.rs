//! `Nccl`: NVIDIA's collectives between ranks that each drive one GPU, the NCCL id shared over
//! MPI, and gradients averaged where they live, on the GPU.

use super::{agree, Communicator, Mpi};
use crate::kernels::dispatch::{cast_mut, cast_ref};
use crate::{Error, Result};
use cudarc::driver::{CudaDevice, CudaSlice, DeviceSlice};
use cudarc::nccl::{Comm, Id, ReduceOp};
use dfdx::nn::tensor_collection::{
    RecursiveWalker, TensorCollection, TensorOptions, TensorVisitor, ViewTensorRef,
};
use dfdx::prelude::{Cuda, Device, Dtype, Gradients, Shape, Tensor, ZerosTensor};
use std::sync::Arc;

/// The NCCL communicator of ranks that each drive one GPU, as PyTorch's `nccl` process group:
/// gradients are averaged on the GPUs (NCCL's ring or tree all-reduce over NVLink, PCIe or
/// InfiniBand), with no copy through the host. The small host-side collectives (statuses,
/// fingerprints, metric sums) and the exchange of NCCL's unique id go over MPI, so a run is
/// launched with `mpirun`, one rank per GPU.
///
/// NCCL refuses two ranks on one GPU, so a real test needs two GPUs. Needs the `nccl` feature
/// (with `cuda` and `mpi`) and NCCL's library at run time (`libnccl.so.2`, for instance from
/// NVIDIA's `nvidia-nccl-cu12` wheel).
///
/// # Shapes
/// Not about tensor shapes: flat buffers and whole models' gradients.
///
/// ```no_run
/// use shapesafe::distributed::{Communicator, DataParallel, Mpi, Nccl};
/// let mpi = Mpi::init()?;
/// let dev = shapesafe::device::cuda(mpi.rank(), 0)?; // one GPU per rank on this host
/// let parallel = DataParallel::new(Nccl::init(mpi, &dev)?);
/// # Ok::<(), shapesafe::Error>(())
/// ```
pub struct Nccl {
    comm: Comm,
    device: Arc<CudaDevice>,
    host: Mpi,
}

fn nccl_error(e: impl std::fmt::Debug) -> Error {
    Error::Device(format!("NCCL: {e:?}"))
}

fn cuda_error(e: impl std::fmt::Debug) -> Error {
    Error::Device(format!("CUDA: {e:?}"))
}

/// The cudarc device behind dfdx's `Cuda` (the same stream, so NCCL's work is ordered after
/// the backward pass that made the gradients). dfdx keeps it private; a gradient buffer,
/// which dfdx does hand out, names it.
fn cudarc_device(dev: &Cuda) -> Result<Arc<CudaDevice>> {
    let probe: Tensor<dfdx::shapes::Rank1<1>, f32, Cuda> =
        dev.try_zeros().map_err(Error::device)?;
    let mut grads = Gradients::<f32, Cuda>::leaky();
    let slot = grads.get_or_alloc_mut(&probe).map_err(Error::device)?;
    Ok(slot.device())
}

impl Nccl {
    /// Joins the NCCL communicator of all of `host`'s ranks, on `dev`'s GPU: rank 0 makes
    /// NCCL's unique id and every rank receives it over MPI.
    ///
    /// # Errors
    /// NCCL cannot make the id or join (its message), on any rank.
    pub fn init(host: Mpi, dev: &Cuda) -> Result<Self> {
        let device = cudarc_device(dev)?;
        let made = if host.rank() == 0 {
            Id::new().map(Some).map_err(nccl_error)
        } else {
            Ok(None)
        };
        let words = match agree(&host, made)? {
            Some(id) => id_to_words(id.internal()),
            None => vec![0; 16],
        };
        let all = host.all_gather_u64(&words)?;
        let id = Id::uninit(words_to_id(&all[..16]));
        let joined =
            Comm::from_rank(device.clone(), host.rank(), host.world_size(), id).map_err(nccl_error);
        let comm = agree(&host, joined)?;
        Ok(Self { comm, device, host })
    }

    /// Averages every trainable parameter's gradient across ranks on the GPU: copied into
    /// device buckets of `bucket_len` values, all-reduced with NCCL's average, copied back.
    pub(crate) fn average_gradients<M, E, D>(
        &self,
        model: &M,
        grads: &mut Gradients<E, D>,
        bucket_len: usize,
    ) -> Result<()>
    where
        M: TensorCollection<E, D>,
        E: Dtype,
        D: Device<E>,
    {
        let total = walk(
            model,
            grads,
            &self.device,
            &mut Vec::new(),
            None,
            bucket_len,
        )?;
        let mut buckets = (0..total.div_ceil(bucket_len))
            .map(|b| {
                let len = bucket_len.min(total - b * bucket_len);
                self.device.alloc_zeros::<f32>(len).map_err(cuda_error)
            })
            .collect::<Result<Vec<CudaSlice<f32>>>>()?;
        walk(model, grads, &self.device, &mut buckets, None, bucket_len)?;
        for bucket in &mut buckets {
            let mut mean = self
                .device
                .alloc_zeros::<f32>(bucket.len())
                .map_err(cuda_error)?;
            self.comm
                .all_reduce(bucket, &mut mean, &ReduceOp::Avg)
                .map_err(nccl_error)?;
            *bucket = mean;
        }
        walk(
            model,
            grads,
            &self.device,
            &mut Vec::new(),
            Some(&buckets),
            bucket_len,
        )?;
        Ok(())
    }

    /// Sums `values` across ranks through a device buffer.
    fn all_reduce_sum<T>(&self, values: &mut [T]) -> Result<()>
    where
        T: cudarc::nccl::NcclType + cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits,
        T: Copy + Unpin,
    {
        let send = self.device.htod_sync_copy(values).map_err(cuda_error)?;
        let mut recv = self
            .device
            .alloc_zeros::<T>(values.len())
            .map_err(cuda_error)?;
        self.comm
            .all_reduce(&send, &mut recv, &ReduceOp::Sum)
            .map_err(nccl_error)?;
        self.device
            .dtoh_sync_copy_into(&recv, values)
            .map_err(cuda_error)
    }

    /// Replaces `values` by rank `root`'s; only the root uploads its values.
    fn broadcast<T>(&self, values: &mut [T], root: usize) -> Result<()>
    where
        T: cudarc::nccl::NcclType + cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits,
        T: Copy + Unpin,
    {
        super::communicator::check_root(root, self.world_size())?;
        let send = if self.rank() == root {
            Some(self.device.htod_sync_copy(values).map_err(cuda_error)?)
        } else {
            None
        };
        let mut recv = self
            .device
            .alloc_zeros::<T>(values.len())
            .map_err(cuda_error)?;
        self.comm
            .broadcast(&send, &mut recv, root as i32)
            .map_err(nccl_error)?;
        self.device
            .dtoh_sync_copy_into(&recv, values)
            .map_err(cuda_error)
    }
}

fn id_to_words(id: &[std::ffi::c_char; 128]) -> Vec<u64> {
    id.chunks(8)
        .map(|c| {
            c.iter()
                .rev()
                .fold(0u64, |w, &b| (w << 8) | u64::from(b as u8))
        })
        .collect()
}

fn words_to_id(words: &[u64]) -> [std::ffi::c_char; 128] {
    let mut id = [0 as std::ffi::c_char; 128];
    for (i, byte) in id.iter_mut().enumerate() {
        *byte = (words[i / 8] >> (8 * (i % 8))) as u8 as std::ffi::c_char;
    }
    id
}

/// Copies gradients into the device buckets, or back from `back`; with neither, only counts.
struct DeviceCopy<'a, E: Dtype, D: Device<E>> {
    grads: &'a mut Gradients<E, D>,
    device: &'a Arc<CudaDevice>,
    buckets: &'a mut Vec<CudaSlice<f32>>,
    back: Option<&'a [CudaSlice<f32>]>,
    bucket_len: usize,
    offset: &'a mut usize,
}

impl<E: Dtype, D: Device<E>> TensorVisitor<E, D> for DeviceCopy<'_, E, D> {
    type Viewer = ViewTensorRef;
    type Err = Error;
    type E2 = E;
    type D2 = D;

    fn visit<S: Shape>(
        &mut self,
        opts: TensorOptions<S, E, D>,
        param: &Tensor<S, E, D>,
    ) -> Result<Option<Tensor<S, E, D>>> {
        if !opts.do_gradient_update {
            return Ok(None);
        }
        let (Some(grads), Some(param)) = (
            cast_mut::<_, Gradients<f32, Cuda>>(&mut *self.grads),
            cast_ref::<_, Tensor<S, f32, Cuda>>(param),
        ) else {
            return Err(Error::Usage(
                "NCCL averages f32 gradients on a CUDA device only".into(),
            ));
        };
        let slot: &mut CudaSlice<f32> = grads.get_or_alloc_mut(param).map_err(Error::device)?;
        let n = slot.len();
        let mut done = 0;
        while done < n {
            let (b, within) = (
                *self.offset / self.bucket_len,
                *self.offset % self.bucket_len,
            );
            let take = (n - done).min(self.bucket_len - within);
            if let Some(back) = self.back {
                self.device
                    .dtod_copy(
                        &back[b].slice(within..within + take),
                        &mut slot.slice_mut(done..done + take),
                    )
                    .map_err(cuda_error)?;
            } else if let Some(bucket) = self.buckets.get_mut(b) {
                self.device
                    .dtod_copy(
                        &slot.slice(done..done + take),
                        &mut bucket.slice_mut(within..within + take),
                    )
                    .map_err(cuda_error)?;
            }
            done += take;
            *self.offset += take;
        }
        Ok(None)
    }
}

/// Walks the model's trainable parameters: copies their gradients into `buckets` (when it
/// holds any), or back from `back`; returns how many values there are.
fn walk<M, E, D>(
    model: &M,
    grads: &mut Gradients<E, D>,
    device: &Arc<CudaDevice>,
    buckets: &mut Vec<CudaSlice<f32>>,
    back: Option<&[CudaSlice<f32>]>,
    bucket_len: usize,
) -> Result<usize>
where
    M: TensorCollection<E, D>,
    E: Dtype,
    D: Device<E>,
{
    let mut offset = 0;
    let mut visitor = DeviceCopy {
        grads,
        device,
        buckets,
        back,
        bucket_len,
        offset: &mut offset,
    };
    M::iter_tensors(&mut RecursiveWalker {
        m: model,
        f: &mut visitor,
    })?;
    Ok(offset)
}

impl std::fmt::Debug for Nccl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nccl")
            .field("rank", &self.host.rank())
            .field("size", &self.host.world_size())
            .finish_non_exhaustive()
    }
}

impl Communicator for Nccl {
    fn rank(&self) -> usize {
        self.host.rank()
    }

    fn world_size(&self) -> usize {
        self.host.world_size()
    }

    fn backend(&self) -> String {
        let version = cudarc::nccl::result::get_nccl_version().unwrap_or(0);
        format!(
            "NCCL {version} (ids and statuses over {})",
            self.host.backend()
        )
    }

    fn all_reduce_sum_f32(&self, values: &mut [f32]) -> Result<()> {
        self.all_reduce_sum(values)
    }

    fn all_reduce_sum_f64(&self, values: &mut [f64]) -> Result<()> {
        self.all_reduce_sum(values)
    }

    fn broadcast_f32(&self, values: &mut [f32], root: usize) -> Result<()> {
        self.broadcast(values, root)
    }

    fn broadcast_f64(&self, values: &mut [f64], root: usize) -> Result<()> {
        self.broadcast(values, root)
    }

    fn all_gather_u64(&self, values: &[u64]) -> Result<Vec<u64>> {
        self.host.all_gather_u64(values)
    }

    fn barrier(&self) -> Result<()> {
        self.host.barrier()
    }

    fn nccl(&self) -> Option<&Nccl> {
        Some(self)
    }
}
