//! Row kernels for data stored row-contiguous (the transpose Aᵀ, n×m, column-major), so that
//! one fused pass reads each row aᵢ once and uses it twice while it is in L1: rᵢ = aᵢᵀx − bᵢ,
//! then g += rᵢaᵢ.

use nalgebra::{DMatrixViewMut, Dyn, MatrixView};

use crate::Matrix;

/// xᵀy with four independent accumulators (so the compiler can vectorize the sum).
#[inline]
pub(crate) fn dot(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len().min(y.len());
    let (x, y) = (&x[..n], &y[..n]);
    let mut acc = [0.0; 4];
    let xc = x.chunks_exact(4);
    let yc = y.chunks_exact(4);
    let (xr, yr) = (xc.remainder(), yc.remainder());
    for (a, b) in xc.zip(yc) {
        acc[0] += a[0] * b[0];
        acc[1] += a[1] * b[1];
        acc[2] += a[2] * b[2];
        acc[3] += a[3] * b[3];
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (a, b) in xr.iter().zip(yr) {
        s += a * b;
    }
    s
}

/// y ← y + αx.
#[inline]
pub(crate) fn axpy(alpha: f64, x: &[f64], y: &mut [f64]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += alpha * xi;
    }
}

/// The rows of A (m×n) as slices of its transpose `at` (n×m, column-major).
#[inline]
pub(crate) fn rows(at: &Matrix) -> std::slice::ChunksExact<'_, f64> {
    at.as_slice().chunks_exact(at.nrows().max(1))
}

/// A (m×n) as a view of `at`'s storage, without copying.
pub(crate) fn a_view(at: &Matrix) -> MatrixView<'_, f64, Dyn, Dyn, Dyn, Dyn> {
    let (n, m) = at.shape();
    MatrixView::from_slice_with_strides_generic(at.as_slice(), Dyn(m), Dyn(n), Dyn(n.max(1)), Dyn(1))
}

/// h ← α·Aᵀdiag(w)A (n×n) from `at`, with `scratch` (n×m) receiving Aᵀdiag(w); a
/// matrix-matrix product (matrixmultiply's dgemm), not n matrix-vector products.
pub(crate) fn weighted_gram(
    alpha: f64,
    at: &Matrix,
    w: Option<&[f64]>,
    scratch: &mut Matrix,
    mut h: DMatrixViewMut<'_, f64>,
) {
    let scaled: &Matrix = match w {
        Some(w) => {
            scratch.copy_from(at);
            for (col, wi) in scratch.column_iter_mut().zip(w) {
                let mut col = col;
                col *= *wi;
            }
            scratch
        }
        None => at,
    };
    h.gemm(alpha, at, &a_view(scaled), 0.0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_and_axpy_match_by_hand() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let y = [1.0, 1.0, 1.0, 1.0, 2.0];
        assert_eq!(dot(&x, &y), 20.0);
        let mut z = [0.0; 5];
        axpy(2.0, &x, &mut z);
        assert_eq!(z, [2.0, 4.0, 6.0, 8.0, 10.0]);
    }

    #[test]
    fn gram_matches_nalgebra() {
        let a = Matrix::from_row_slice(7, 6, &(0..42).map(|v| (v as f64).sin()).collect::<Vec<_>>());
        let at = a.transpose();
        let w: Vec<f64> = (0..7).map(|i| 0.5 + i as f64).collect();
        let mut h = Matrix::zeros(6, 6);
        let mut scratch = Matrix::zeros(6, 7);
        weighted_gram(2.0, &at, Some(&w), &mut scratch, h.view_mut((0, 0), (6, 6)));
        let expect = a.transpose() * Matrix::from_diagonal(&crate::Vector::from_vec(w)) * &a * 2.0;
        assert!((h - expect).amax() < 1e-12);
        assert_eq!(a_view(&at), a);
    }
}
