//! Reused per-thread buffers for the kernels' temporary copies (inputs, weights, gradients).
//!
//! A fresh `Vec` of a few hundred kilobytes comes from `mmap` and goes back with `munmap`,
//! so every call paid page faults and TLB shootdowns for memory it had just released
//! (the MLP forward spent a quarter of its time there). Buffers taken here return to a
//! small per-thread pool when the kernel is done with them.

use std::any::Any;
use std::cell::RefCell;

/// Buffers kept per thread; more are dropped.
const POOL: usize = 16;

thread_local! {
    static BUFFERS: RefCell<Vec<Box<dyn Any>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer of `len` copies of `E::default()`, from the pool when one is there.
pub(crate) fn take<E: Copy + Default + 'static>(len: usize) -> Vec<E> {
    let mut v = pop(len);
    v.clear();
    v.resize(len, E::default());
    v
}

/// A buffer of `len` values for the caller to overwrite entirely: what a pooled buffer
/// held before (zeros past its old length), without `take`'s pass that zeroes it.
pub(crate) fn take_for_overwrite<E: Copy + Default + 'static>(len: usize) -> Vec<E> {
    let mut v = pop(len);
    if v.len() >= len {
        v.truncate(len);
    } else {
        v.resize(len, E::default());
    }
    v
}

/// A pooled buffer with room for `len` values (its contents as they were), or a new one.
fn pop<E: 'static>(len: usize) -> Vec<E> {
    let reused = BUFFERS.with(|b| {
        let mut b = b.borrow_mut();
        // The largest fitting buffer of the right type would be best; the first is enough.
        let at = b.iter().position(|v| {
            v.downcast_ref::<Vec<E>>()
                .is_some_and(|v| v.capacity() >= len)
        })?;
        b.swap_remove(at).downcast::<Vec<E>>().ok()
    });
    reused.map(|v| *v).unwrap_or_default()
}

/// A buffer holding a copy of `values`, from the pool when one is there.
pub(crate) fn copy_of<E: Copy + Default + 'static>(values: &[E]) -> Vec<E> {
    let mut v = take(0);
    v.extend_from_slice(values);
    v
}

/// Returns `v` to this thread's pool.
pub(crate) fn give<E: 'static>(v: Vec<E>) {
    if v.capacity() == 0 {
        return;
    }
    BUFFERS.with(|b| {
        let mut b = b.borrow_mut();
        if b.len() < POOL {
            b.push(Box::new(v));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_zeroed_and_sized() {
        let mut v = take::<f32>(5);
        v[2] = 7.0;
        let ptr = v.as_ptr();
        give(v);
        let w = take::<f32>(3);
        assert_eq!(w, [0.0; 3]);
        assert_eq!(w.as_ptr(), ptr, "the buffer was reused");
        let other = take::<f64>(3);
        assert_eq!(other, [0.0; 3]);
        assert_eq!(copy_of(&[1.0f32, 2.0]), [1.0, 2.0]);
        let mut v = take::<f32>(4);
        v.fill(3.0);
        give(v);
        assert_eq!(take_for_overwrite::<f32>(2).len(), 2);
        give(take_for_overwrite::<f32>(6));
        assert_eq!(take_for_overwrite::<f32>(6).len(), 6);
    }
}
