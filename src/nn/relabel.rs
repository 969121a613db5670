//! Zero-copy relabelling of a tensor's dims as other dim types of the same sizes.

use dfdx::prelude::{Dtype, RealizeTo, Shape, Storage, Tape, Tensor};

/// Gives a tensor the dim types `Dst`, whose sizes agree with its own by a compile-time
/// check the caller has made (a computed `Flattened<..>` as the `Const<400>` a `Linear`
/// wants, a recurrent layer's `Directions<32, false>` as a `Const<32>`); zero-copy.
pub(crate) fn relabel<S: Shape, Dst: Shape<Concrete = S::Concrete>, E, D, T>(
    t: Tensor<S, E, D, T>,
) -> Tensor<Dst, E, D, T>
where
    E: Dtype,
    D: Storage<E>,
    T: Tape<E, D>,
{
    match t.try_realize::<Dst>() {
        Ok(t) => t,
        Err(_) => unreachable!("sizes agree by construction (checked at compile time)"),
    }
}
