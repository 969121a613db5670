//! ReLU and LeakyReLU on dfdx's tape: on `Cpu` in f32/f64, when taped, one vectorised pass
//! forward and one backward that adds the output gradient (scaled by the slope where the
//! input is not positive), instead of dfdx's generic unary op, whose forward copies the
//! input and whose backward is a scalar loop with a branch per element that mispredicts on
//! half of them, or its `prelu`, which is a multiply, a compare and a `choose`, each with
//! its own buffers and backward.

use crate::kernels::dispatch::{has_cpu_kernel, run_shape_kernel, CpuBackward};
use crate::kernels::simd::vectorized;
use crate::kernels::{host_values, scratch};
use dfdx::prelude::{
    Cpu, CpuError, Device, Dtype, HasShape, Shape, Storage, Tape, Tensor, TensorFromVec, TryPReLU,
};
use num_traits::Float;

/// `grad_x += grad_y` where `v` (the input or the output: both are positive at the same
/// places) is positive: the gradient through `max(., 0)`, with zero slope at 0 as in
/// PyTorch and dfdx.
///
/// # Shapes
/// Three slices of one tensor's elements, in the same order.
///
/// ```
/// use shapesafe::kernels::relu::relu_backward;
/// let mut grad_x = [1.0f32; 3];
/// relu_backward(&[-1.0, 0.0, 2.0], &[5.0, 5.0, 5.0], &mut grad_x);
/// assert_eq!(grad_x, [1.0, 1.0, 6.0]);
/// ```
pub fn relu_backward<E: Float>(v: &[E], grad_y: &[E], grad_x: &mut [E]) {
    vectorized!({
        for ((g, &dy), &v) in grad_x.iter_mut().zip(grad_y).zip(v) {
            // A select, not a branch: `v > 0` is a coin flip on real activations. Not
            // `0 * dy`, which would turn an infinite gradient on a dead unit into NaN.
            *g = *g + if v > E::zero() { dy } else { E::zero() };
        }
    })
}

/// `grad_x += grad_y` where the input `v` is positive and `grad_x += slope * grad_y`
/// elsewhere: the gradient of LeakyReLU, whose slope at 0 is `slope`, as in PyTorch.
///
/// # Shapes
/// Three slices of one tensor's elements, in the same order.
///
/// ```
/// use shapesafe::kernels::relu::leaky_relu_backward;
/// let mut grad_x = [1.0f32; 3];
/// leaky_relu_backward(&[-1.0, 0.0, 2.0], &[5.0, 5.0, 5.0], &mut grad_x, 0.2);
/// assert_eq!(grad_x, [2.0, 2.0, 6.0]);
/// ```
pub fn leaky_relu_backward<E: Float>(v: &[E], grad_y: &[E], grad_x: &mut [E], slope: E) {
    vectorized!({
        for ((g, &dy), &v) in grad_x.iter_mut().zip(grad_y).zip(v) {
            // A select, not a branch: `v > 0` is a coin flip on real activations.
            *g = *g + if v > E::zero() { dy } else { slope * dy };
        }
    })
}

/// `max(x, 0)` on the CPU kernel when the device and dtype have one, else dfdx's `relu`.
pub(crate) fn try_relu<S: Shape, E: Dtype, D: Device<E>, T: Tape<E, D>>(
    x: Tensor<S, E, D, T>,
) -> Result<Tensor<S, E, D, T>, D::Err> {
    rectify(x, None)
}

/// `x` where `x > 0`, `negative_slope * x` elsewhere, on the CPU kernel when the device and
/// dtype have one, else dfdx's `prelu`.
pub(crate) fn try_leaky_relu<S: Shape, E: Dtype, D: Device<E>, T: Tape<E, D>>(
    x: Tensor<S, E, D, T>,
    negative_slope: f64,
) -> Result<Tensor<S, E, D, T>, D::Err> {
    rectify(x, Some(negative_slope))
}

/// ReLU (`slope` `None`) or LeakyReLU: the CPU kernel when taped on a device and dtype that
/// have one, else dfdx's op (untaped, dfdx's `relu` is already one pass, in place when the
/// buffer is not shared).
fn rectify<S: Shape, E: Dtype, D: Device<E>, T: Tape<E, D>>(
    x: Tensor<S, E, D, T>,
    slope: Option<f64>,
) -> Result<Tensor<S, E, D, T>, D::Err> {
    if !has_cpu_kernel::<E, D>() || !T::OWNS_TAPE {
        return match slope {
            None => x.try_relu(),
            Some(a) => x.try_prelu(E::from_f64(a).unwrap_or_default()),
        };
    }
    run_shape_kernel(
        x,
        |x| on_cpu::<f32, S>(x, slope.map(|a| a as f32)),
        |x| on_cpu::<f64, S>(x, slope),
    )
}

/// Runs the forward pass and returns the output with its backward op: ReLU when `slope` is
/// `None`, LeakyReLU with that slope otherwise.
#[allow(clippy::type_complexity)]
fn on_cpu<F, S: Shape>(
    x: Tensor<S, F, Cpu>,
    slope: Option<F>,
) -> Result<(Tensor<S, F, Cpu>, CpuBackward<F>), CpuError>
where
    F: Dtype + Float,
    Cpu: Device<F>,
    <Cpu as Storage<F>>::Vec: std::ops::DerefMut<Target = Vec<F>>,
{
    let xv = host_values(&x)?;
    // Collected, so the output is written once. ReLU keeps dfdx's semantics (a NaN becomes
    // 0); LeakyReLU keeps a NaN, as dfdx's `prelu` and PyTorch do.
    let yv: Vec<F> = match slope {
        None => vectorized!(xv.iter().map(|&v| v.max(F::zero())).collect()),
        Some(a) => vectorized!(xv
            .iter()
            .map(|&v| if v > F::zero() { v } else { a * v })
            .collect()),
    };
    let y = x.device().try_tensor_from_vec(yv, *x.shape())?;
    let (x_id, y_id) = (x.ghost(), y.ghost());
    let backward: CpuBackward<F> = Box::new(move |grads| {
        let gy = scratch::copy_of(grads.get_or_alloc_mut(&y_id)?);
        // The input's copy is the mask (`x > 0` exactly where `y > 0`): keeping it costs no
        // pass, where reading the output back out of its tensor would.
        let gx = grads.get_or_alloc_mut(&x_id)?;
        match slope {
            None => relu_backward(&xv, &gy, gx),
            Some(a) => leaky_relu_backward(&xv, &gy, gx, a),
        }
        scratch::give(xv);
        scratch::give(gy);
        Ok(())
    });
    Ok((y, backward))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backward_matches_the_definition() {
        // Long enough for the vector loop and its remainder.
        let y: Vec<f64> = (0..37)
            .map(|i| ((i as f64 - 18.0) * 0.5).max(0.0))
            .collect();
        let gy: Vec<f64> = (0..37).map(|i| i as f64 + 1.0).collect();
        let mut gx = vec![0.25; 37];
        relu_backward(&y, &gy, &mut gx);
        for i in 0..37 {
            assert_eq!(gx[i], 0.25 + if i > 18 { gy[i] } else { 0.0 });
        }
    }

    #[test]
    fn leaky_relu_on_the_tape_matches_the_definition() {
        use dfdx::prelude::*;
        let dev = Cpu::default();
        // Zero takes the negative slope, as PyTorch's gradient does; 37 values reach the
        // vector loop's remainder.
        let at: Vec<f64> = (0..37).map(|i| (i as f64 - 18.0) * 0.5).collect();
        let r: Vec<f64> = (0..37).map(|i| 1.0 + i as f64 * 0.1).collect();
        let x = dev.tensor_from_vec(at.clone(), (37,));
        let y = try_leaky_relu(x.leaky_trace(), 0.2).unwrap();
        let expected: Vec<f64> = at
            .iter()
            .map(|&v| if v > 0.0 { v } else { 0.2 * v })
            .collect();
        assert_eq!(y.as_vec(), expected);
        let weights = dev.tensor_from_vec(r.clone(), (37,));
        let g = (y * weights).sum().backward().get(&x).as_vec();
        let slopes: Vec<f64> = at
            .iter()
            .zip(&r)
            .map(|(&v, &r)| if v > 0.0 { r } else { 0.2 * r })
            .collect();
        assert_eq!(g, slopes);
        let eval = try_leaky_relu(dev.tensor_from_vec(at, (37,)), 0.2).unwrap();
        assert_eq!(eval.as_vec(), expected);
    }
}
