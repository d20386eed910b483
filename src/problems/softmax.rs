use std::cell::RefCell;

use nalgebra::{DMatrixView, DMatrixViewMut};

use super::{add_ridge_gradient, add_ridge_hessian, check_h, check_out, check_x, ridge_value, Objective};
use crate::error::{check_finite, check_lambda, check_len, Error, Result};
use crate::numeric::softmax_into;
use crate::{Matrix, Vector};

/// Softmax (multinomial logistic) regression with k classes.
///
/// A is m×n (rows aᵢᵀ), labels yᵢ ∈ {0, …, k−1}, W is n×k and the parameter vector is
/// x = vec(W), column-major: class 0's column first. With Z = AW, P the row-wise softmax of Z
/// and Y the one-hot labels:
///
/// - f(W) = Σᵢ [lse(Wᵀaᵢ) − w_{yᵢ}ᵀaᵢ] + λ‖W‖_F²
/// - ∇f = Aᵀ(P − Y) + 2λW (an n×k matrix, flattened the same way)
/// - ∇²f has k×k blocks of size n×n: block (c, d) = Aᵀ diag(p_c ⊙ (δ_cd − p_d)) A, + 2λI on
///   the diagonal blocks
///
/// Seeds: per row, f is lse composed with the affine map W ↦ Wᵀaᵢ = (I_k ⊗ aᵢᵀ)·vec(W), so
/// ∇ = (I_k ⊗ aᵢ)softmax and ∇² = (I_k ⊗ aᵢ)(diag p − ppᵀ)(I_k ⊗ aᵢᵀ), the affine chain
/// rule ∇²g = Aᵀ∇²f A with a Kronecker-structured A; summing over rows gives the blocks above.
/// At λ = 0 the Hessian is singular (adding a constant to every class's scores changes nothing).
///
/// With an intercept, A's last column is all ones and row n−1 of W (every class's
/// intercept) is not penalized.
#[derive(Debug)]
pub struct Softmax {
    a: Matrix,
    y: Vec<usize>,
    k: usize,
    lambda: f64,
    intercept: bool,
    scratch: RefCell<Scratch>,
}

#[derive(Debug)]
struct Scratch {
    z: Matrix,
    u: Matrix,
    w: Matrix,
    row: Vec<f64>,
    prob: Vec<f64>,
}

impl Softmax {
    /// A is m×n (last column the ones of the intercept when `intercept`), y has m labels in
    /// 0..k, k ≥ 2, λ ≥ 0.
    ///
    /// ```
    /// use gradfit::problems::{Objective, Softmax};
    /// use gradfit::{Matrix, Vector};
    /// // at W = 0 every class has p = 1/k: f = m·log k
    /// let a = Matrix::from_row_slice(3, 1, &[1.0, 2.0, 3.0]);
    /// let p = Softmax::new(a, vec![0, 1, 2], 3, 0.0, false)?;
    /// assert!((p.value(&Vector::zeros(3))? - 3.0 * 3f64.ln()).abs() < 1e-14);
    /// # Ok::<(), gradfit::Error>(())
    /// ```
    pub fn new(a: Matrix, y: Vec<usize>, k: usize, lambda: f64, intercept: bool) -> Result<Self> {
        check_len("number of labels y", a.nrows(), y.len())?;
        check_finite("A", a.iter())?;
        check_lambda(lambda)?;
        if k < 2 {
            return Err(Error::Data {
                what: format!("softmax: needs at least 2 classes, found {k}"),
            });
        }
        if let Some(i) = y.iter().position(|&c| c >= k) {
            return Err(Error::Data {
                what: format!("softmax: label {} at row {} is not below k = {}", y[i], i, k),
            });
        }
        if intercept && (a.ncols() == 0 || a.column(a.ncols() - 1).iter().any(|&v| v != 1.0)) {
            return Err(Error::Data {
                what: "softmax: with an intercept the last column of A must be all ones".into(),
            });
        }
        let (m, n) = a.shape();
        let scratch = RefCell::new(Scratch {
            z: Matrix::zeros(m, k),
            u: Matrix::zeros(m, k),
            w: Matrix::zeros(m, n),
            row: vec![0.0; k],
            prob: vec![0.0; k],
        });
        Ok(Softmax {
            a,
            y,
            k,
            lambda,
            intercept,
            scratch,
        })
    }

    /// The number of classes k.
    pub fn classes(&self) -> usize {
        self.k
    }

    fn n(&self) -> usize {
        self.a.ncols()
    }

    fn penalized(&self) -> impl Fn(usize) -> bool {
        let n = self.n();
        let intercept = self.intercept;
        move |j| !(intercept && j % n == n - 1)
    }

    /// Z ← AW; then each row of Z is replaced by its softmax P; returns Σᵢ lse(zᵢ) − z_{i,yᵢ}.
    fn probabilities(&self, x: &Vector, s: &mut Scratch) -> f64 {
        let w = DMatrixView::from_slice(x.as_slice(), self.n(), self.k);
        s.z.gemm(1.0, &self.a, &w, 0.0);
        let mut f = 0.0;
        for (i, &yi) in self.y.iter().enumerate() {
            for (c, r) in s.row.iter_mut().enumerate() {
                *r = s.z[(i, c)];
            }
            f += softmax_into(&s.row, &mut s.prob) - s.row[yi];
            for (c, p) in s.prob.iter().enumerate() {
                s.z[(i, c)] = *p;
            }
        }
        f
    }
}

impl Objective for Softmax {
    fn dim(&self) -> usize {
        self.n() * self.k
    }

    /// f = Σᵢ lse(zᵢ) − z_{i,yᵢ} + λ‖W_penalized‖².
    fn value(&self, x: &Vector) -> Result<f64> {
        check_x(self.dim(), x)?;
        let s = &mut *self.scratch.borrow_mut();
        Ok(self.probabilities(x, s) + ridge_value(x, self.lambda, self.penalized()))
    }

    /// ∇f = Aᵀ(P − Y) + 2λW_penalized, sharing Z = AW with f.
    fn value_and_gradient_into(&self, x: &Vector, g: &mut Vector) -> Result<f64> {
        check_out(self.dim(), x, g)?;
        let s = &mut *self.scratch.borrow_mut();
        let f = self.probabilities(x, s) + ridge_value(x, self.lambda, self.penalized());
        for (i, &yi) in self.y.iter().enumerate() {
            s.z[(i, yi)] -= 1.0;
        }
        let mut gm = DMatrixViewMut::from_slice(g.as_mut_slice(), self.n(), self.k);
        gm.gemm_tr(1.0, &self.a, &s.z, 0.0);
        add_ridge_gradient(g, x, self.lambda, self.penalized());
        Ok(f)
    }

    /// Block (c, d) of ∇²f = Aᵀ diag(p_c ⊙ (δ_cd − p_d)) A (+ 2λI on penalized diagonal entries).
    fn hessian_into(&self, x: &Vector, h: &mut Matrix) -> Result<()> {
        check_h(self.dim(), x, h)?;
        let s = &mut *self.scratch.borrow_mut();
        self.probabilities(x, s);
        let n = self.n();
        for c in 0..self.k {
            for d in c..self.k {
                s.w.copy_from(&self.a);
                for i in 0..self.a.nrows() {
                    let delta = if c == d { 1.0 } else { 0.0 };
                    let wi = s.z[(i, c)] * (delta - s.z[(i, d)]);
                    s.w.row_mut(i).scale_mut(wi);
                }
                h.view_mut((c * n, d * n), (n, n))
                    .gemm_tr(1.0, &self.a, &s.w, 0.0);
                if c != d {
                    for j in 0..n {
                        for i in 0..n {
                            h[(d * n + j, c * n + i)] = h[(c * n + i, d * n + j)];
                        }
                    }
                }
            }
        }
        add_ridge_hessian(h, self.lambda, self.penalized());
        Ok(())
    }

    /// ∇²f·v = Aᵀ T + 2λV_penalized, with U = AV and t_ic = p_ic (u_ic − Σ_d p_id u_id).
    fn hessian_vec_into(&self, x: &Vector, v: &Vector, out: &mut Vector) -> Result<()> {
        check_out(self.dim(), x, out)?;
        check_len("direction v", self.dim(), v.len())?;
        let s = &mut *self.scratch.borrow_mut();
        self.probabilities(x, s);
        let (n, k) = (self.n(), self.k);
        s.u.gemm(1.0, &self.a, &DMatrixView::from_slice(v.as_slice(), n, k), 0.0);
        for i in 0..self.a.nrows() {
            let pu: f64 = (0..k).map(|d| s.z[(i, d)] * s.u[(i, d)]).sum();
            for c in 0..k {
                s.u[(i, c)] = s.z[(i, c)] * (s.u[(i, c)] - pu);
            }
        }
        let mut om = DMatrixViewMut::from_slice(out.as_mut_slice(), n, k);
        om.gemm_tr(1.0, &self.a, &s.u, 0.0);
        add_ridge_gradient(out, v, self.lambda, self.penalized());
        Ok(())
    }
}

crate::impl_argmin_traits!(Softmax);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extreme_logits_give_exact_limits() {
        // one row a = (1000), W = (1, −1): scores (1000, −1000); label 0: f = 0, ∇ = 0
        let a = Matrix::from_row_slice(1, 1, &[1000.0]);
        let p = Softmax::new(a.clone(), vec![0], 2, 0.0, false).unwrap();
        let (f, g) = p.cost_and_gradient(&Vector::from_vec(vec![1.0, -1.0])).unwrap();
        assert_eq!(f, 0.0);
        assert_eq!(g.as_slice(), &[0.0, 0.0]);
        // label 1: f = lse − z₁ = 1000 − (−1000) = 2000; ∇ = a(p − e₁) = (1000, −1000)
        let p = Softmax::new(a, vec![1], 2, 0.0, false).unwrap();
        let (f, g) = p.cost_and_gradient(&Vector::from_vec(vec![1.0, -1.0])).unwrap();
        assert_eq!(f, 2000.0);
        assert_eq!(g.as_slice(), &[1000.0, -1000.0]);
    }

    #[test]
    fn labels_out_of_range_are_an_error() {
        let a = Matrix::from_row_slice(2, 1, &[1.0, 2.0]);
        assert!(Softmax::new(a.clone(), vec![0, 3], 3, 0.0, false).is_err());
        assert!(Softmax::new(a, vec![0, 0], 1, 0.0, false).is_err());
    }
}
