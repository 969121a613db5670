//! Dropout on dfdx's tape: on `Cpu` in f32/f64, when taped, one vectorised pass forward and
//! one backward, each drawing its keep mask from a counter-based hash of (seed, index), so
//! the backward recomputes the mask instead of storing it. dfdx's op draws a ChaCha
//! Bernoulli sample per element, twice (forward and backward): a third of the
//! `transformer` example's training time.

use crate::kernels::dispatch::{has_cpu_kernel, run_shape_kernel, CpuBackward};
use crate::kernels::host_values;
use crate::kernels::scratch;
use crate::kernels::simd::vectorized;
use dfdx::prelude::{
    Cpu, CpuError, Device, Dtype, HasShape, Shape, Storage, Tape, Tensor, TensorFromVec,
};
use num_traits::Float;

/// The keep mask of one dropout draw: element `i` is kept when `hash(seed, i) >= threshold`,
/// which happens with probability `1 - p`; the kernels scale kept elements by `1 / (1 - p)`.
///
/// # Shapes
/// Not a tensor: a mask over any number of elements, indexed in row-major order.
///
/// ```
/// use shapesafe::kernels::dropout::DropoutMask;
/// let mask = DropoutMask::new(3, 0.1);
/// assert!((0..1000).filter(|&i| mask.keeps(i)).count() > 850);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct DropoutMask {
    seed: u64,
    threshold: u64,
}

impl DropoutMask {
    /// The mask of seed `seed` for dropout probability `p` (clamped to `0..=1`).
    ///
    /// # Shapes
    /// Not a tensor: a mask for any number of elements.
    ///
    /// ```
    /// use shapesafe::kernels::dropout::DropoutMask;
    /// let mask = DropoutMask::new(7, 0.25);
    /// let kept = (0..100_000).filter(|&i| mask.keeps(i)).count();
    /// assert!((kept as f64 / 100_000.0 - 0.75).abs() < 0.01);
    /// assert!((0..100).all(|i| DropoutMask::new(7, 0.0).keeps(i)));
    /// assert!((0..100).all(|i| !DropoutMask::new(7, 1.0).keeps(i)));
    /// ```
    pub fn new(seed: u64, p: f64) -> Self {
        let p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) };
        // Compared in u64 so that p = 1 (threshold 2^32) drops everything.
        let threshold = (p * 4_294_967_296.0).round() as u64;
        DropoutMask { seed, threshold }
    }

    /// Whether element `i` is kept.
    ///
    /// # Shapes
    /// `i` indexes the tensor's elements in row-major order.
    ///
    /// ```
    /// use shapesafe::kernels::dropout::DropoutMask;
    /// let mask = DropoutMask::new(1, 0.5);
    /// assert_eq!(mask.keeps(3), mask.keeps(3));
    /// ```
    #[inline(always)]
    pub fn keeps(&self, i: usize) -> bool {
        u64::from(self.hash(i as u32)) >= self.threshold
    }

    /// Two rounds of Wellons' `lowbias32` integer hash over the index and the two halves of
    /// the seed: 32-bit multiplies and shifts only, so a loop over indices vectorises.
    #[inline(always)]
    fn hash(&self, i: u32) -> u32 {
        let (lo, hi) = (self.seed as u32, (self.seed >> 32) as u32);
        lowbias32(lowbias32(i ^ lo) ^ hi)
    }
}

#[inline(always)]
fn lowbias32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^ (x >> 16)
}

/// `y[i] = x[i] * scale` where `mask` keeps element `i`, else 0, as a new vector; `scale`
/// is `1 / (1 - p)` for the mask's `p`.
///
/// # Shapes
/// `x` and the result hold one tensor's elements in row-major order, the order the mask
/// indexes.
///
/// ```
/// use shapesafe::kernels::dropout::{dropout_backward, dropout_forward, DropoutMask};
/// let mask = DropoutMask::new(9, 0.5);
/// let y = dropout_forward(mask, 2.0, &[1.0f32; 64]);
/// let mut grad_x = [0.0f32; 64];
/// dropout_backward(mask, 2.0, &[1.0; 64], &mut grad_x);
/// for i in 0..64 {
///     assert_eq!(y[i], if mask.keeps(i) { 2.0 } else { 0.0 });
///     assert_eq!(grad_x[i], y[i]);
/// }
/// ```
pub fn dropout_forward<E: Float>(mask: DropoutMask, scale: E, x: &[E]) -> Vec<E> {
    // Collected, so the output is written once, not zeroed first.
    vectorized!(x
        .iter()
        .enumerate()
        .map(|(i, &v)| if mask.keeps(i) { v * scale } else { E::zero() })
        .collect())
}

/// `grad_x[i] += grad_y[i] * scale` where `mask` keeps element `i`: the backward of
/// [`dropout_forward`] with the same mask and scale.
///
/// # Shapes
/// As [`dropout_forward`]; the example there runs both.
///
/// ```
/// use shapesafe::kernels::dropout::{dropout_backward, DropoutMask};
/// let mut grad_x = [1.0f64; 4];
/// dropout_backward(DropoutMask::new(0, 0.0), 1.0, &[2.0; 4], &mut grad_x);
/// assert_eq!(grad_x, [3.0; 4]);
/// ```
pub fn dropout_backward<E: Float>(mask: DropoutMask, scale: E, grad_y: &[E], grad_x: &mut [E]) {
    vectorized!({
        for (i, (g, &dy)) in grad_x.iter_mut().zip(grad_y).enumerate() {
            *g = *g + if mask.keeps(i) { dy * scale } else { E::zero() };
        }
    })
}

/// Dropout with probability `p` (PyTorch's `F.dropout(x, p, training=True)`): on the CPU
/// kernel when the tensor is taped and the device and dtype have one, else dfdx's
/// `dropout`. The kernel draws one `u64` from the device's generator as the mask's seed
/// ([`DropoutMask::new`]), so a seeded device gives the same masks on every run.
///
/// # Shapes
/// Any shape, unchanged.
///
/// ```
/// use shapesafe::kernels::dropout::try_dropout;
/// use shapesafe::prelude::*;
/// let dev = Cpu::seed_from_u64(0);
/// let x: Tensor<Rank2<4, 250>, f32, _> = dev.ones();
/// let y = try_dropout(x.leaky_trace(), 0.5).unwrap();
/// let kept = y.as_vec().iter().filter(|&&v| v == 2.0).count();
/// assert!(y.as_vec().iter().all(|&v| v == 0.0 || v == 2.0));
/// assert!((400..600).contains(&kept));
/// ```
pub fn try_dropout<S: Shape, E: Dtype, D: Device<E>, T: Tape<E, D>>(
    x: Tensor<S, E, D, T>,
    p: f64,
) -> Result<Tensor<S, E, D, T>, D::Err> {
    if !has_cpu_kernel::<E, D>() || !T::OWNS_TAPE {
        return x.try_dropout(p);
    }
    let mask = DropoutMask::new(x.device().random_u64(), p);
    run_shape_kernel(
        x,
        |x| on_cpu(x, mask, (1.0 / (1.0 - p)) as f32),
        |x| on_cpu(x, mask, 1.0 / (1.0 - p)),
    )
}

/// Runs the forward pass and returns the output with its backward op.
#[allow(clippy::type_complexity)]
fn on_cpu<F, S: Shape>(
    x: Tensor<S, F, Cpu>,
    mask: DropoutMask,
    scale: F,
) -> Result<(Tensor<S, F, Cpu>, CpuBackward<F>), CpuError>
where
    F: Dtype + Float,
    Cpu: Device<F>,
    <Cpu as Storage<F>>::Vec: std::ops::DerefMut<Target = Vec<F>>,
{
    let xv = host_values(&x)?;
    let yv = dropout_forward(mask, scale, &xv);
    scratch::give(xv);
    let y = x.device().try_tensor_from_vec(yv, *x.shape())?;
    let (x_id, y_id) = (x.ghost(), y.ghost());
    let backward: CpuBackward<F> = Box::new(move |grads| {
        let gy = scratch::copy_of(grads.get_or_alloc_mut(&y_id)?);
        dropout_backward(mask, scale, &gy, grads.get_or_alloc_mut(&x_id)?);
        scratch::give(gy);
        Ok(())
    });
    Ok((y, backward))
}
