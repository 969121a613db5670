//! Strided matrix views and one checked entry point into the `gemm` crate, shared by the CPU kernels.

use ::gemm::Parallelism;
use num_traits::Float;

/// A read-only matrix view: element `(r, c)` is `data[r * rs + c * cs]`.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a, E> {
    pub(crate) data: &'a [E],
    pub(crate) rs: usize,
    pub(crate) cs: usize,
}

impl<'a, E> Mat<'a, E> {
    /// A row-major matrix with `cols` columns.
    pub(crate) fn row_major(data: &'a [E], cols: usize) -> Self {
        Mat {
            data,
            rs: cols,
            cs: 1,
        }
    }

    /// A column-major matrix with `rows` rows (the transpose of a row-major one).
    pub(crate) fn col_major(data: &'a [E], rows: usize) -> Self {
        Mat {
            data,
            rs: 1,
            cs: rows,
        }
    }
}

/// A writable matrix view: element `(r, c)` is `data[r * rs + c * cs]`.
pub(crate) struct MatMut<'a, E> {
    pub(crate) data: &'a mut [E],
    pub(crate) rs: usize,
    pub(crate) cs: usize,
}

impl<'a, E> MatMut<'a, E> {
    /// A row-major matrix with `cols` columns.
    pub(crate) fn row_major(data: &'a mut [E], cols: usize) -> Self {
        MatMut {
            data,
            rs: cols,
            cs: 1,
        }
    }

    /// A column-major matrix with `rows` rows.
    pub(crate) fn col_major(data: &'a mut [E], rows: usize) -> Self {
        MatMut {
            data,
            rs: 1,
            cs: rows,
        }
    }
}

/// Whether every element of a `rows x cols` matrix with strides `rs`, `cs` lies in `0..len`.
fn fits(len: usize, rs: usize, cs: usize, rows: usize, cols: usize) -> bool {
    rows == 0 || cols == 0 || (rows - 1) * rs + (cols - 1) * cs < len
}

/// `dst (m x n) = [dst +] lhs (m x k) * rhs (k x n)`, on all of rayon's threads when `par`.
///
/// # Panics
/// If a view is too short for its dims.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul<E>(
    m: usize,
    n: usize,
    k: usize,
    dst: MatMut<'_, E>,
    accumulate: bool,
    lhs: Mat<'_, E>,
    rhs: Mat<'_, E>,
    par: bool,
) where
    E: Float + 'static,
{
    // These checks are what makes the raw-pointer call below sound; they cost nothing
    // next to the multiply itself.
    assert!(
        fits(dst.data.len(), dst.rs, dst.cs, m, n),
        "gemm destination too short"
    );
    assert!(
        fits(lhs.data.len(), lhs.rs, lhs.cs, m, k),
        "gemm lhs too short"
    );
    assert!(
        fits(rhs.data.len(), rhs.rs, rhs.cs, k, n),
        "gemm rhs too short"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                for c in 0..n {
                    dst.data[r * dst.rs + c * dst.cs] = E::zero();
                }
            }
        }
        return;
    }
    let parallelism = if par {
        Parallelism::Rayon(0)
    } else {
        Parallelism::None
    };
    // SAFETY: the asserts above keep every element the strides address inside its slice;
    // `dst` is borrowed mutably, so it cannot alias `lhs` or `rhs`.
    unsafe {
        ::gemm::gemm(
            m,
            n,
            k,
            dst.data.as_mut_ptr(),
            dst.cs as isize,
            dst.rs as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            E::one(),
            E::one(),
            false,
            false,
            false,
            parallelism,
        );
    }
}
