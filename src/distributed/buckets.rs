//! `all_reduce_gradients`: a model's gradients averaged across ranks, moved in a few large
//! buckets rather than one collective per tensor.

use super::Communicator;
use crate::kernels::dispatch::{cast_mut, cast_ref, has_cpu_kernel};
use crate::optim::params::set_grad;
use crate::{Error, Result};
use dfdx::nn::tensor_collection::{
    RecursiveWalker, TensorCollection, TensorOptions, TensorVisitor, ViewTensorRef,
};
use dfdx::prelude::{Cpu, Device, Dtype, Gradients, HasShape, Shape, Tensor};

/// Which way a walk copies, between the gradients and the flat host buffer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Gather,
    Scatter,
}

/// Copies every trainable parameter's gradient to or from `flat`, in the model's walk order
/// (the same on every rank, since the models are the same type).
struct GradCopy<'a, E: Dtype, D: Device<E>> {
    grads: &'a mut Gradients<E, D>,
    flat: &'a mut Vec<E>,
    offset: usize,
    direction: Direction,
}

impl<E: Dtype, D: Device<E>> TensorVisitor<E, D> for GradCopy<'_, E, D> {
    type Viewer = ViewTensorRef;
    type Err = D::Err;
    type E2 = E;
    type D2 = D;

    fn visit<S: Shape>(
        &mut self,
        opts: TensorOptions<S, E, D>,
        param: &Tensor<S, E, D>,
    ) -> Result<Option<Tensor<S, E, D>>, D::Err> {
        if !opts.do_gradient_update {
            return Ok(None);
        }
        // On the CPU the gradient is a `Vec` we can read and write in place. Elsewhere (CUDA,
        // or inside `with_composed_ops`) it is staged through the host with dfdx's public API.
        let cpu = has_cpu_kernel::<E, D>()
            .then(|| {
                cast_mut::<_, Gradients<E, Cpu>>(&mut *self.grads)
                    .zip(cast_ref::<_, Tensor<S, E, Cpu>>(param))
            })
            .flatten();
        if let Some((grads, param)) = cpu {
            let slot: &mut [E] = grads
                .get_or_alloc_mut(param)
                .map_err(crate::kernels::dispatch::same::<_, D::Err>)?;
            let n = slot.len();
            match self.direction {
                Direction::Gather => self.flat.extend_from_slice(slot),
                Direction::Scatter => {
                    slot.copy_from_slice(&self.flat[self.offset..self.offset + n])
                }
            }
            self.offset += n;
            return Ok(None);
        }
        self.grads.try_alloc_for(param)?;
        let mut grad = self.grads.get(param);
        let n = param.shape().num_elements();
        match self.direction {
            Direction::Gather => self.flat.extend(grad.as_vec()),
            Direction::Scatter => {
                grad.copy_from(&self.flat[self.offset..self.offset + n]);
                set_grad(self.grads, param, grad)?;
            }
        }
        self.offset += n;
        Ok(None)
    }
}

fn walk<M, E, D>(
    model: &M,
    grads: &mut Gradients<E, D>,
    flat: &mut Vec<E>,
    direction: Direction,
) -> Result<()>
where
    M: TensorCollection<E, D>,
    E: Dtype,
    D: Device<E>,
{
    let mut visitor = GradCopy {
        grads,
        flat,
        offset: 0,
        direction,
    };
    M::iter_tensors(&mut RecursiveWalker {
        m: model,
        f: &mut visitor,
    })
    .map_err(Error::device)?;
    Ok(())
}

/// Sums `values` across ranks in pieces of `bucket_len` elements, then divides by the
/// number of ranks.
pub(crate) fn all_reduce_mean<E: Dtype>(
    comm: &dyn Communicator,
    values: &mut Vec<E>,
    bucket_len: usize,
) -> Result<()> {
    let ranks = comm.world_size() as f64;
    if let Some(v) = cast_mut::<_, Vec<f32>>(&mut *values) {
        for bucket in v.chunks_mut(bucket_len) {
            comm.all_reduce_sum_f32(bucket)?;
        }
        v.iter_mut()
            .for_each(|x| *x = (f64::from(*x) / ranks) as f32);
        return Ok(());
    }
    if let Some(v) = cast_mut::<_, Vec<f64>>(&mut *values) {
        for bucket in v.chunks_mut(bucket_len) {
            comm.all_reduce_sum_f64(bucket)?;
        }
        v.iter_mut().for_each(|x| *x /= ranks);
        return Ok(());
    }
    Err(Error::Usage(format!(
        "distributed training moves f32 or f64 values, not {}",
        std::any::type_name::<E>()
    )))
}

/// Replaces every trainable parameter's gradient, on every rank, by its mean over all ranks:
/// what PyTorch's `DistributedDataParallel` does after `backward()`.
///
/// The gradients are copied into one flat buffer in the model's parameter order, reduced in
/// buckets of `bucket_bytes` (PyTorch's `bucket_cap_mb`; a bucket needs not align with
/// tensors), and copied back. A parameter without a gradient on this rank gets zeros, so every
/// rank moves the same number of values. With one rank, nothing moves. When each rank's loss
/// is the mean over its `B` examples, the result is the gradient of the mean over all
/// `ranks x B` examples.
///
/// # Errors
/// A `bucket_bytes` of 0, a dtype other than `f32` or `f64`, or what the communicator reports.
///
/// # Shapes
/// Every gradient keeps its parameter's shape.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::distributed::{all_reduce_gradients, SingleProcess};
/// let dev = Cpu::default();
/// let model = dev.build_module::<Linear<3, 2>, f32>();
/// let x: Tensor<Rank2<4, 3>, f32, _> = dev.sample_normal();
/// let grads = model.forward(x.traced(model.alloc_grads())).square().mean().backward();
/// let mut reduced = grads.clone();
/// all_reduce_gradients(&model, &mut reduced, &SingleProcess, 1 << 20)?;
/// assert_eq!(reduced.get(&model.weight).array(), grads.get(&model.weight).array());
/// # Ok::<(), shapesafe::Error>(())
/// ```
pub fn all_reduce_gradients<M, E, D>(
    model: &M,
    grads: &mut Gradients<E, D>,
    comm: &dyn Communicator,
    bucket_bytes: usize,
) -> Result<()>
where
    M: TensorCollection<E, D>,
    E: Dtype,
    D: Device<E>,
{
    let bucket_len = bucket_bytes / std::mem::size_of::<E>();
    if bucket_len == 0 {
        return Err(Error::Usage(format!(
            "a gradient bucket of {bucket_bytes} bytes cannot hold one value"
        )));
    }
    if comm.world_size() == 1 {
        return Ok(());
    }
    #[cfg(feature = "nccl")]
    if let Some(nccl) = comm.nccl() {
        return nccl.average_gradients(model, grads, bucket_bytes / 4);
    }
    let mut flat = Vec::new();
    walk(model, grads, &mut flat, Direction::Gather)?;
    all_reduce_mean(comm, &mut flat, bucket_len)?;
    walk(model, grads, &mut flat, Direction::Scatter)
}
