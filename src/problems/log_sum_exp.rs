use std::cell::RefCell;

use super::{check_h, check_out, check_x, weighted_gram_into, Objective};
use crate::error::{check_finite, check_lambda, check_len, Result};
use crate::numeric::softmax_into;
use crate::{Matrix, Vector};

/// Log-sum-exp of an affine map: f(x) = log Σᵢ exp(aᵢᵀx + bᵢ) + λ‖x‖².
///
/// With A (m×n, rows aᵢᵀ), z = Ax + b and p = softmax(z):
///
/// - ∇f = Aᵀp + 2λx
/// - ∇²f = Aᵀ(diag(p) − ppᵀ)A + 2λI
///
/// Seeds: the worked log-sum-exp example. For g(y) = log Σ exp yᵢ, ∇g = e^y / 1ᵀe^y = softmax(y)
/// and ∇²g = diag(∇g) − ∇g∇gᵀ; the affine chain rule then gives ∇f = Aᵀ∇g(Ax + b) and
/// ∇²f = Aᵀ∇²g(Ax + b)A. Every exponential is shifted by max zᵢ, so z of ±1000 is exact.
/// Without λ, f is bounded below only if 0 is in the convex hull of the rows aᵢ.
#[derive(Debug)]
pub struct LogSumExp {
    a: Matrix,
    b: Vector,
    lambda: f64,
    scratch: RefCell<Scratch>,
}

#[derive(Debug)]
struct Scratch {
    z: Vector,
    p: Vector,
    w: Matrix,
}

impl LogSumExp {
    /// A is m×n, b has length m, all finite, λ ≥ 0.
    ///
    /// ```
    /// use gradfit::problems::{LogSumExp, Objective};
    /// use gradfit::{Matrix, Vector};
    /// // two terms e^{x} + e^{−x}: f(0) = log 2, ∇f(0) = 0
    /// let p = LogSumExp::new(Matrix::from_row_slice(2, 1, &[1.0, -1.0]), Vector::zeros(2), 0.0)?;
    /// let (f, g) = p.cost_and_gradient(&Vector::zeros(1))?;
    /// assert!((f - 2f64.ln()).abs() < 1e-15 && g[0] == 0.0);
    /// # Ok::<(), gradfit::Error>(())
    /// ```
    pub fn new(a: Matrix, b: Vector, lambda: f64) -> Result<Self> {
        check_len("length of b", a.nrows(), b.len())?;
        check_finite("A", a.iter())?;
        check_finite("b", b.iter())?;
        check_lambda(lambda)?;
        let (m, n) = a.shape();
        let scratch = RefCell::new(Scratch {
            z: Vector::zeros(m),
            p: Vector::zeros(m),
            w: Matrix::zeros(m, n),
        });
        Ok(LogSumExp {
            a,
            b,
            lambda,
            scratch,
        })
    }

    /// z ← Ax + b, p ← softmax(z); returns lse(z).
    fn logits(&self, x: &Vector, s: &mut Scratch) -> f64 {
        s.z.copy_from(&self.b);
        s.z.gemv(1.0, &self.a, x, 1.0);
        softmax_into(s.z.as_slice(), s.p.as_mut_slice())
    }
}

impl Objective for LogSumExp {
    fn dim(&self) -> usize {
        self.a.ncols()
    }

    /// f = lse(Ax + b) + λ‖x‖².
    fn value(&self, x: &Vector) -> Result<f64> {
        check_x(self.dim(), x)?;
        let s = &mut *self.scratch.borrow_mut();
        Ok(self.logits(x, s) + self.lambda * x.norm_squared())
    }

    /// ∇f = Aᵀp + 2λx with p = softmax(Ax + b).
    fn value_and_gradient_into(&self, x: &Vector, g: &mut Vector) -> Result<f64> {
        check_out(self.dim(), x, g)?;
        let s = &mut *self.scratch.borrow_mut();
        let f = self.logits(x, s) + self.lambda * x.norm_squared();
        g.gemv_tr(1.0, &self.a, &s.p, 0.0);
        g.axpy(2.0 * self.lambda, x, 1.0);
        Ok(f)
    }

    /// ∇²f = Aᵀdiag(p)A − (Aᵀp)(Aᵀp)ᵀ + 2λI, which equals Aᵀ(diag p − ppᵀ)A + 2λI.
    fn hessian_into(&self, x: &Vector, h: &mut Matrix) -> Result<()> {
        check_h(self.dim(), x, h)?;
        let s = &mut *self.scratch.borrow_mut();
        self.logits(x, s);
        weighted_gram_into(&self.a, s.p.as_slice(), &mut s.w, h.view_mut((0, 0), h.shape()));
        let q = self.a.tr_mul(&s.p);
        h.ger(-1.0, &q, &q, 1.0);
        for i in 0..self.dim() {
            h[(i, i)] += 2.0 * self.lambda;
        }
        Ok(())
    }

    /// ∇²f·v = Aᵀ(p ⊙ u − p(pᵀu)) + 2λv with u = Av.
    fn hessian_vec_into(&self, x: &Vector, v: &Vector, out: &mut Vector) -> Result<()> {
        check_out(self.dim(), x, out)?;
        check_len("direction v", self.dim(), v.len())?;
        let s = &mut *self.scratch.borrow_mut();
        self.logits(x, s);
        // reuse z for u = Av, then for p ⊙ u − p(pᵀu)
        s.z.gemv(1.0, &self.a, v, 0.0);
        let pu = s.p.dot(&s.z);
        for (zi, pi) in s.z.iter_mut().zip(s.p.iter()) {
            *zi = pi * (*zi - pu);
        }
        out.gemv_tr(1.0, &self.a, &s.z, 0.0);
        out.axpy(2.0 * self.lambda, v, 1.0);
        Ok(())
    }
}

crate::impl_argmin_traits!(LogSumExp);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extreme_logits_are_exact_limits() {
        // z = (1000, −1000): f = 1000 exactly, p = (1, 0), ∇f = a₁
        let a = Matrix::from_row_slice(2, 2, &[1.0, 2.0, 3.0, 4.0]);
        let p = LogSumExp::new(a, Vector::from_vec(vec![1000.0, -1000.0]), 0.0).unwrap();
        let (f, g) = p.cost_and_gradient(&Vector::zeros(2)).unwrap();
        assert_eq!(f, 1000.0);
        assert_eq!(g.as_slice(), &[1.0, 2.0]);
        let h = p.hessian_matrix(&Vector::zeros(2)).unwrap();
        assert!(h.iter().all(|v| v.is_finite() && v.abs() < 1e-300));
    }
}
