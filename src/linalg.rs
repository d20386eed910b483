//! Small dense kernels that work in place, so the Newton loop allocates nothing.

use crate::{Matrix, Vector};

/// Overwrites the lower triangle of the symmetric matrix `a` with its Cholesky factor L
/// (a = LLᵀ), reading only the lower triangle. Returns false, leaving `a` partly overwritten,
/// if `a` is not (numerically) positive definite or holds a non-finite value.
pub(crate) fn cholesky_in_place(a: &mut Matrix) -> bool {
    let n = a.nrows();
    for j in 0..n {
        let mut d = a[(j, j)];
        for k in 0..j {
            d -= a[(j, k)] * a[(j, k)];
        }
        if !(d.is_finite() && d > 0.0) {
            return false;
        }
        let d = d.sqrt();
        a[(j, j)] = d;
        for i in j + 1..n {
            let mut s = a[(i, j)];
            for k in 0..j {
                s -= a[(i, k)] * a[(j, k)];
            }
            a[(i, j)] = s / d;
        }
    }
    true
}

/// Solves LLᵀz = b in place (b ← z), with L the lower triangle written by [`cholesky_in_place`].
pub(crate) fn cholesky_solve_in_place(l: &Matrix, b: &mut Vector) {
    let n = l.nrows();
    for i in 0..n {
        let mut s = b[i];
        for k in 0..i {
            s -= l[(i, k)] * b[k];
        }
        b[i] = s / l[(i, i)];
    }
    for i in (0..n).rev() {
        let mut s = b[i];
        for k in i + 1..n {
            s -= l[(k, i)] * b[k];
        }
        b[i] = s / l[(i, i)];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solves_against_nalgebra() {
        // A = [[4, 2], [2, 3]] is SPD; A z = (2, 1) has z = (0.5, 0)
        let mut a = Matrix::from_row_slice(2, 2, &[4.0, 2.0, 2.0, 3.0]);
        assert!(cholesky_in_place(&mut a));
        let mut b = Vector::from_vec(vec![2.0, 1.0]);
        cholesky_solve_in_place(&a, &mut b);
        assert!((b[0] - 0.5).abs() < 1e-15 && b[1].abs() < 1e-15);
    }

    #[test]
    fn rejects_indefinite() {
        let mut a = Matrix::from_row_slice(2, 2, &[1.0, 2.0, 2.0, 1.0]);
        assert!(!cholesky_in_place(&mut a));
    }
}
