//! Runtime dispatch from device-generic code to the CPU kernels, by type identity.
//!
//! dfdx bounds every generic layer on `D: Device<E>`. A new device-trait bound for each
//! kernel would have to be repeated on every generic model, block and training function
//! that reaches the layer. Instead the layer stays generic and asks, at run time, whether
//! its device is `Cpu` and its dtype `f32` or `f64`; the answer is a constant per
//! monomorphisation, so the compiler drops the branch that is not taken. `Any` makes the
//! casts checked: a cast between different types returns `None`, never reinterprets.

use std::any::Any;

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
