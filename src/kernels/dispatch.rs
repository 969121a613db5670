//! Runtime dispatch from device-generic code to the CPU kernels, by type identity.
//!
//! dfdx bounds every generic layer on `D: Device<E>`. A new device-trait bound for each
//! kernel would have to be repeated on every generic model, block and training function
//! that reaches the layer. Instead the layer stays generic and asks, at run time, whether
//! its device is `Cpu` and its dtype `f32` or `f64`; the answer is a constant per
//! monomorphisation, so the compiler drops the branch that is not taken. `Any` makes the
//! casts checked: a cast between different types returns `None`, never reinterprets.

use dfdx::prelude::{
    Cpu, CpuError, Device, Dtype, Gradients, PutTape, ReshapeTo, Shape, SplitTape, Storage, Tape,
    Tensor,
};
use std::any::Any;

use std::cell::Cell;

thread_local! {
    /// Whether ops on this thread may take the CPU kernels; see [`with_composed_ops`].
    static CPU_KERNELS: Cell<bool> = const { Cell::new(true) };
}

/// Runs `f` with the CPU kernels switched off on this thread: every op that picks its
/// version at run time (`linear`, `attention`, `layer_norm`, ...) takes its composition of
/// dfdx ops, the version CUDA runs. For tests and comparisons; the
/// backward ops recorded in `f` keep the version their forward took.
///
/// # Shapes
/// Not an op; `f` is whatever the caller runs.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::kernels::with_composed_ops;
/// let dev = Cpu::default();
/// let fc = dev.build_module::<Linear<3, 2>, f64>();
/// let x: Tensor<Rank2<4, 3>, f64, _> = dev.sample_normal();
/// let kernel = fc.forward(x.clone()).as_vec();
/// let composed = with_composed_ops(|| fc.forward(x)).as_vec();
/// assert!(kernel.iter().zip(&composed).all(|(a, b)| (a - b).abs() < 1e-12));
/// ```
pub fn with_composed_ops<R>(f: impl FnOnce() -> R) -> R {
    /// Restores the previous setting even if `f` panics.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            CPU_KERNELS.with(|k| k.set(self.0));
        }
    }
    let _restore = Restore(CPU_KERNELS.with(|k| k.replace(false)));
    f()
}

/// Whether the CPU kernels take dtype `E` on device `D`: `Cpu` in f32 or f64, unless
/// [`with_composed_ops`] switched them off on this thread.
pub(crate) fn has_cpu_kernel<E: 'static, D: 'static>() -> bool {
    use std::any::TypeId;
    CPU_KERNELS.with(|k| k.get())
        && TypeId::of::<D>() == TypeId::of::<dfdx::prelude::Cpu>()
        && (TypeId::of::<E>() == TypeId::of::<f32>() || TypeId::of::<E>() == TypeId::of::<f64>())
}

/// `x` as a `Y`, when `X` and `Y` are the same type; `Err(x)` otherwise.
pub(crate) fn cast<X: 'static, Y: 'static>(x: X) -> Result<Y, X> {
    let mut slot = Some(x);
    match (&mut slot as &mut dyn Any).downcast_mut::<Option<Y>>() {
        Some(y) => Ok(y.take().expect("the slot was just filled")),
        None => Err(slot.expect("the slot is untouched")),
    }
}

/// `x` as a `&Y`, when `X` and `Y` are the same type.
pub(crate) fn cast_ref<X: 'static, Y: 'static>(x: &X) -> Option<&Y> {
    (x as &dyn Any).downcast_ref::<Y>()
}

/// `x` as a `&mut Y`, when `X` and `Y` are the same type.
pub(crate) fn cast_mut<X: 'static, Y: 'static>(x: &mut X) -> Option<&mut Y> {
    (x as &mut dyn Any).downcast_mut::<Y>()
}

/// `x` as a `Y`, for types the caller has already found equal (the same check passed
/// for a sibling value of the same generic parameters).
pub(crate) fn same<X: 'static, Y: 'static>(x: X) -> Y {
    match cast(x) {
        Ok(y) => y,
        Err(_) => unreachable!("the types were checked equal"),
    }
}

/// A CPU kernel's backward op, on the CPU's gradients in dtype `F`.
pub(crate) type CpuBackward<F> = Box<dyn FnOnce(&mut Gradients<F, Cpu>) -> Result<(), CpuError>>;

/// Records a CPU kernel's backward op on a tape whose generic types are known to be `F`
/// on `Cpu` (the dispatch that chose the kernel checked them).
pub(crate) fn record<F, E, D, T>(tape: &mut T, backward: Option<CpuBackward<F>>)
where
    F: 'static,
    Cpu: Storage<F>,
    E: Dtype,
    D: Device<E>,
    T: Tape<E, D>,
{
    if let Some(backward) = backward {
        tape.add_backward_op(move |grads: &mut Gradients<E, D>| {
            let grads: &mut Gradients<F, Cpu> =
                cast_mut(grads).expect("the gradients are on the op's device");
            backward(grads).map_err(same)
        });
    }
}

/// Runs a shape-preserving CPU kernel on a taped tensor whose device and dtype
/// [`has_cpu_kernel`] accepted: makes it contiguous (the kernels index memory in the order
/// the shape says), splits its tape, runs the f32 or f64 version and records its backward.
#[allow(clippy::type_complexity)]
pub(crate) fn run_shape_kernel<S, E, D, T>(
    x: Tensor<S, E, D, T>,
    f32_kernel: impl FnOnce(
        Tensor<S, f32, Cpu>,
    ) -> Result<(Tensor<S, f32, Cpu>, CpuBackward<f32>), CpuError>,
    f64_kernel: impl FnOnce(
        Tensor<S, f64, Cpu>,
    ) -> Result<(Tensor<S, f64, Cpu>, CpuBackward<f64>), CpuError>,
) -> Result<Tensor<S, E, D, T>, D::Err>
where
    S: Shape,
    E: Dtype,
    D: Device<E>,
    T: Tape<E, D>,
{
    let (x, mut tape) = x.try_contiguous()?.split_tape();
    match cast::<_, Tensor<S, f32, Cpu>>(x) {
        Ok(x) => {
            let (y, back) = f32_kernel(x).map_err(same)?;
            record(&mut tape, Some(back));
            Ok(same::<_, Tensor<S, E, D>>(y).put_tape(tape))
        }
        Err(x) => {
            let (y, back) = f64_kernel(same(x)).map_err(same)?;
            record(&mut tape, Some(back));
            Ok(same::<_, Tensor<S, E, D>>(y).put_tape(tape))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn casts_only_between_equal_types() {
        assert_eq!(cast::<u32, u32>(7), Ok(7));
        assert_eq!(cast::<u32, i32>(7), Err(7));
        assert_eq!(cast_ref::<f32, f32>(&1.5), Some(&1.5));
        assert!(cast_ref::<f32, f64>(&1.5).is_none());
        let mut v = vec![1.0f64];
        cast_mut::<Vec<f64>, Vec<f64>>(&mut v).unwrap().push(2.0);
        assert_eq!(v, [1.0, 2.0]);
        assert!(cast_mut::<Vec<f64>, Vec<f32>>(&mut v).is_none());
    }
}
