//! Small dense kernels that work in place, so the Newton loop allocates nothing.

use crate::kernels::{axpy, dot};
use crate::vmath::madd;
use crate::Matrix;

/// Overwrites the lower triangle of the symmetric matrix `a` with its Cholesky factor L
/// (a = LLᵀ), reading only the lower triangle. Returns false, leaving `a` partly overwritten,
/// if `a` is not (numerically) positive definite or holds a non-finite value.
///
/// Left-looking by columns: column j of L is a[j.., j] − Σ_{k<j} L[j, k]·L[j.., k], taken four
/// columns k at a time so each pass over column j does four multiply-adds per load and store;
/// every access runs down a column, which is contiguous (column-major).
pub(crate) fn cholesky_in_place(a: &mut Matrix) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::cpu::avx2() {
            // SAFETY: the CPU has AVX2 and FMA (checked above).
            return unsafe { cholesky_avx2(a) };
        }
    }
    cholesky_body::<false>(a)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn cholesky_avx2(a: &mut Matrix) -> bool {
    cholesky_body::<true>(a)
}

#[inline(always)]
fn cholesky_body<const FMA: bool>(a: &mut Matrix) -> bool {
    let n = a.nrows();
    let data = a.as_mut_slice();
    for j in 0..n {
        let (left, right) = data.split_at_mut(j * n);
        let y = &mut right[j..n];
        let col = |k: usize| &left[k * n + j..(k + 1) * n];
        let mut k = 0;
        while k + 4 <= j {
            let (c0, c1, c2, c3) = (col(k), col(k + 1), col(k + 2), col(k + 3));
            let (l0, l1, l2, l3) = (c0[0], c1[0], c2[0], c3[0]);
            for (i, yi) in y.iter_mut().enumerate() {
                let t = madd::<FMA>(l0, c0[i], l1 * c1[i]);
                let t = madd::<FMA>(l2, c2[i], t);
                *yi -= madd::<FMA>(l3, c3[i], t);
            }
            k += 4;
        }
        for k in k..j {
            let c = col(k);
            let l = c[0];
            for (yi, ci) in y.iter_mut().zip(c) {
                *yi = madd::<FMA>(-l, *ci, *yi);
            }
        }
        let d = y[0];
        if !(d.is_finite() && d > 0.0) {
            return false;
        }
        let d = d.sqrt();
        y[0] = d;
        for yi in &mut y[1..] {
            *yi /= d;
        }
    }
    true
}

/// Solves LLᵀz = b in place (b ← z), with L the lower triangle written by [`cholesky_in_place`].
/// Both triangular solves run down columns of L (contiguous).
pub(crate) fn cholesky_solve_in_place(l: &Matrix, b: &mut [f64]) {
    solve_lower_in_place(l, b);
    solve_lower_transpose_in_place(l, b);
}

/// Solves L y = b in place (b ← y): y_j = b_j / L_jj, then b_{j+1..} −= y_j L_{j+1.., j}.
pub(crate) fn solve_lower_in_place(l: &Matrix, b: &mut [f64]) {
    let n = l.nrows();
    let l = l.as_slice();
    for j in 0..n {
        let col = &l[j * n..(j + 1) * n];
        b[j] /= col[j];
        let (head, tail) = b.split_at_mut(j + 1);
        axpy(-head[j], &col[j + 1..], tail);
    }
}

/// Solves Lᵀ z = y in place (b ← z): z_i = (y_i − L_{i+1.., i}·z_{i+1..}) / L_ii.
pub(crate) fn solve_lower_transpose_in_place(l: &Matrix, b: &mut [f64]) {
    let n = l.nrows();
    let l = l.as_slice();
    for i in (0..n).rev() {
        let col = &l[i * n..(i + 1) * n];
        b[i] = (b[i] - dot(&col[i + 1..], &b[i + 1..])) / col[i];
    }
}

/// out ← Lᵀx (L lower triangular, column-major): (Lᵀx)_i = L_{i.., i}·x_{i..}, a dot product
/// down each column.
pub(crate) fn lower_transpose_mul(l: &Matrix, x: &[f64], out: &mut [f64]) {
    let n = l.nrows();
    let l = l.as_slice();
    for (i, oi) in out.iter_mut().enumerate() {
        *oi = dot(&l[i * n + i..(i + 1) * n], &x[i..]);
    }
}

/// v ← Lv in place: (Lv)_j = Σ_{i≤j} L_ji v_i, column by column from the last, so that v_i
/// is read before row i is written (row i only receives columns i' ≤ i).
pub(crate) fn lower_mul_in_place(l: &Matrix, v: &mut [f64]) {
    let n = l.nrows();
    let l = l.as_slice();
    for i in (0..n).rev() {
        let col = &l[i * n + i..(i + 1) * n];
        let t = v[i];
        v[i] = col[0] * t;
        axpy(t, &col[1..], &mut v[i + 1..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Vector;

    #[test]
    fn solves_against_nalgebra() {
        // A = [[4, 2], [2, 3]] is SPD; A z = (2, 1) has z = (0.5, 0)
        let mut a = Matrix::from_row_slice(2, 2, &[4.0, 2.0, 2.0, 3.0]);
        assert!(cholesky_in_place(&mut a));
        let mut b = Vector::from_vec(vec![2.0, 1.0]);
        cholesky_solve_in_place(&a, b.as_mut_slice());
        assert!((b[0] - 0.5).abs() < 1e-15 && b[1].abs() < 1e-15);
    }

    #[test]
    fn matches_nalgebra_on_a_larger_matrix() {
        for n in [1, 3, 4, 5, 9, 37] {
            let b = Matrix::from_fn(n + 3, n, |i, j| ((i * 7 + j * 3) as f64 * 0.61).sin());
            let a = b.transpose() * &b + Matrix::identity(n, n) * 0.1;
            let mut l = a.clone();
            assert!(cholesky_in_place(&mut l));
            let want = a.clone().cholesky().map(|c| c.l());
            let want = match want {
                Some(w) => w,
                None => panic!("nalgebra rejects a positive definite matrix"),
            };
            assert!((l.lower_triangle() - &want).amax() < 1e-12);
            let rhs = Vector::from_fn(n, |i, _| i as f64 - 1.5);
            let mut z = rhs.clone();
            cholesky_solve_in_place(&l, z.as_mut_slice());
            assert!((&a * z - rhs).amax() < 1e-10);
        }
    }

    #[test]
    fn triangular_products_and_solves_match_nalgebra() {
        for n in [1, 2, 5, 13] {
            let b = Matrix::from_fn(n + 2, n, |i, j| ((i * 5 + j * 11) as f64 * 0.37).cos());
            let mut l = b.transpose() * &b + Matrix::identity(n, n);
            assert!(cholesky_in_place(&mut l));
            let lower = l.lower_triangle();
            let x = Vector::from_fn(n, |i, _| 0.5 - i as f64);
            let mut out = vec![0.0; n];
            lower_transpose_mul(&l, x.as_slice(), &mut out);
            assert!((Vector::from_vec(out) - lower.transpose() * &x).amax() < 1e-12);
            let mut v = x.clone();
            lower_mul_in_place(&l, v.as_mut_slice());
            assert!((&v - &lower * &x).amax() < 1e-12);
            let mut y = x.clone();
            solve_lower_in_place(&l, y.as_mut_slice());
            assert!((&lower * &y - &x).amax() < 1e-12);
            let mut z = x.clone();
            solve_lower_transpose_in_place(&l, z.as_mut_slice());
            assert!((lower.transpose() * &z - &x).amax() < 1e-12);
        }
    }

    #[test]
    fn rejects_indefinite() {
        let mut a = Matrix::from_row_slice(2, 2, &[1.0, 2.0, 2.0, 1.0]);
        assert!(!cholesky_in_place(&mut a));
    }
}
