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
    #[allow(unused_mut)] mut dst: MatMut<'_, E>,
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
    #[cfg(feature = "openblas")]
    if par && blas::matmul(m, n, k, &mut dst, accumulate, &lhs, &rhs) {
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

/// The `openblas` feature's path: the products a caller runs on all threads go to the
/// system's OpenBLAS (its own threads), the small single-threaded ones stay on `gemm`,
/// whose calls from many rayon tasks at once do not contend for one BLAS thread pool.
#[cfg(feature = "openblas")]
mod blas {
    use super::{Mat, MatMut};
    use cblas_sys::{CBLAS_LAYOUT, CBLAS_TRANSPOSE};
    use std::any::TypeId;

    #[link(name = "openblas")]
    extern "C" {}

    /// A matrix as row-major CBLAS sees it: transposed or not, and its leading dimension;
    /// `None` when neither stride is 1 (or the leading one is too small for CBLAS).
    fn layout(rs: usize, cs: usize, cols: usize, rows: usize) -> Option<(CBLAS_TRANSPOSE, i32)> {
        if cs == 1 && rs >= cols.max(1) {
            Some((CBLAS_TRANSPOSE::CblasNoTrans, i32::try_from(rs).ok()?))
        } else if rs == 1 && cs >= rows.max(1) {
            Some((CBLAS_TRANSPOSE::CblasTrans, i32::try_from(cs).ok()?))
        } else {
            None
        }
    }

    /// `dst = [dst +] lhs * rhs` through CBLAS when `E` is f32 or f64 and the strides allow;
    /// returns whether it ran.
    pub(super) fn matmul<E: 'static>(
        m: usize,
        n: usize,
        k: usize,
        dst: &mut MatMut<'_, E>,
        accumulate: bool,
        lhs: &Mat<'_, E>,
        rhs: &Mat<'_, E>,
    ) -> bool {
        // A column-major destination is the row-major transpose: C^T = B^T A^T.
        let (m, n, a, b, c_ld) = if dst.cs == 1 && dst.rs >= n.max(1) {
            (
                m,
                n,
                (lhs.rs, lhs.cs, lhs.data.as_ptr()),
                (rhs.rs, rhs.cs, rhs.data.as_ptr()),
                dst.rs,
            )
        } else if dst.rs == 1 && dst.cs >= m.max(1) {
            (
                n,
                m,
                (rhs.cs, rhs.rs, rhs.data.as_ptr()),
                (lhs.cs, lhs.rs, lhs.data.as_ptr()),
                dst.cs,
            )
        } else {
            return false;
        };
        let (Some((ta, lda)), Some((tb, ldb))) = (layout(a.0, a.1, k, m), layout(b.0, b.1, n, k))
        else {
            return false;
        };
        let (Ok(mi), Ok(ni), Ok(ki), Ok(ldc)) = (
            i32::try_from(m),
            i32::try_from(n),
            i32::try_from(k),
            i32::try_from(c_ld),
        ) else {
            return false;
        };
        let beta = if accumulate { 1.0 } else { 0.0 };
        let c = dst.data.as_mut_ptr();
        // SAFETY: the caller checked that every addressed element lies in its slice, `dst`
        // is exclusively borrowed, and CBLAS reads and writes exactly those elements.
        unsafe {
            if TypeId::of::<E>() == TypeId::of::<f32>() {
                cblas_sys::cblas_sgemm(
                    CBLAS_LAYOUT::CblasRowMajor,
                    ta,
                    tb,
                    mi,
                    ni,
                    ki,
                    1.0,
                    a.2 as *const f32,
                    lda,
                    b.2 as *const f32,
                    ldb,
                    beta as f32,
                    c as *mut f32,
                    ldc,
                );
            } else if TypeId::of::<E>() == TypeId::of::<f64>() {
                cblas_sys::cblas_dgemm(
                    CBLAS_LAYOUT::CblasRowMajor,
                    ta,
                    tb,
                    mi,
                    ni,
                    ki,
                    1.0,
                    a.2 as *const f64,
                    lda,
                    b.2 as *const f64,
                    ldb,
                    beta,
                    c as *mut f64,
                    ldc,
                );
            } else {
                return false;
            }
        }
        true
    }
}
