use std::sync::Mutex;

use super::{check_h, check_nonempty, check_out, check_x, Objective};
use crate::error::{check_finite, check_lambda, check_len, Result};
use crate::gram::{weighted_gram, Block, GramScratch};
use crate::kernels::{axpy, dot, rows};
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
/// ∇²f = Aᵀ∇²g(Ax + b)A. Every exponential is shifted by the running maximum of z, so z of
/// ±1000 is exact. Without λ, f is bounded below only if 0 is in the convex hull of the rows.
///
/// The fused cost-and-gradient is one pass over the rows with an online max shift: when a
/// new maximum zᵢ > m appears, the running sum and gradient are rescaled by e^(m − zᵢ).
#[derive(Debug)]
pub struct LogSumExp {
    at: Matrix,
    b: Vector,
    lambda: f64,
    scratch: Mutex<Scratch>,
}

#[derive(Debug, Default)]
struct Scratch {
    p: Vec<f64>,
    gram: GramScratch,
    q: Vector,
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
        check_nonempty(&a)?;
        check_len("length of b", a.nrows(), b.len())?;
        check_finite("A", a.iter())?;
        check_finite("b", b.iter())?;
        check_lambda(lambda)?;
        Ok(LogSumExp {
            at: a.transpose(),
            b,
            lambda,
            scratch: Mutex::new(Scratch::default()),
        })
    }

    /// p ← softmax(Ax + b) into `p`; returns lse(Ax + b). Two passes over z, one over A.
    fn probabilities(&self, x: &Vector, p: &mut Vec<f64>) -> f64 {
        p.clear();
        p.extend(
            rows(&self.at)
                .zip(self.b.iter())
                .map(|(ai, bi)| dot(ai, x.as_slice()) + bi),
        );
        crate::numeric::softmax_in_place(p)
    }
}

impl Objective for LogSumExp {
    fn dim(&self) -> usize {
        self.at.nrows()
    }

    /// f = lse(Ax + b) + λ‖x‖², one pass with a running max.
    fn value(&self, x: &Vector) -> Result<f64> {
        check_x(self.dim(), x)?;
        let (mut m, mut s) = (f64::NEG_INFINITY, 0.0);
        for (ai, bi) in rows(&self.at).zip(self.b.iter()) {
            let z = dot(ai, x.as_slice()) + bi;
            if z > m {
                s = s * (m - z).exp() + 1.0;
                m = z;
            } else {
                s += (z - m).exp();
            }
        }
        Ok(m + s.ln() + self.lambda * x.norm_squared())
    }

    /// ∇f = Σᵢ pᵢaᵢ + 2λx with p = softmax(Ax + b), in the same pass as f.
    fn value_and_gradient_into(&self, x: &Vector, g: &mut Vector) -> Result<f64> {
        check_out(self.dim(), x, g)?;
        g.fill(0.0);
        let (mut m, mut s) = (f64::NEG_INFINITY, 0.0);
        for (ai, bi) in rows(&self.at).zip(self.b.iter()) {
            let z = dot(ai, x.as_slice()) + bi;
            let e = if z > m {
                let scale = (m - z).exp();
                s *= scale;
                *g *= scale;
                m = z;
                1.0
            } else {
                (z - m).exp()
            };
            s += e;
            axpy(e, ai, g.as_mut_slice());
        }
        *g /= s;
        g.axpy(2.0 * self.lambda, x, 1.0);
        Ok(m + s.ln() + self.lambda * x.norm_squared())
    }

    /// ∇²f = Aᵀdiag(p)A − (Aᵀp)(Aᵀp)ᵀ + 2λI, which equals Aᵀ(diag p − ppᵀ)A + 2λI.
    fn hessian_into(&self, x: &Vector, h: &mut Matrix) -> Result<()> {
        check_h(self.dim(), x, h)?;
        let s = &mut *super::lock(&self.scratch);
        self.probabilities(x, &mut s.p);
        let Scratch { p, gram, .. } = s;
        weighted_gram(&self.at, &Block::WHOLE, |_, i| p[i], h, gram);
        if s.q.len() != self.dim() {
            s.q = Vector::zeros(self.dim());
        }
        s.q.fill(0.0);
        for (ai, pi) in rows(&self.at).zip(&s.p) {
            axpy(*pi, ai, s.q.as_mut_slice());
        }
        h.ger(-1.0, &s.q, &s.q, 1.0);
        for i in 0..self.dim() {
            h[(i, i)] += 2.0 * self.lambda;
        }
        Ok(())
    }

    /// ∇²f·v = Σᵢ pᵢ(uᵢ − pᵀu)aᵢ + 2λv with u = Av: Σpᵢuᵢaᵢ − (pᵀu)Aᵀp, one pass after p.
    fn hessian_vec_into(&self, x: &Vector, v: &Vector, out: &mut Vector) -> Result<()> {
        check_out(self.dim(), x, out)?;
        check_len("direction v", self.dim(), v.len())?;
        let s = &mut *super::lock(&self.scratch);
        self.probabilities(x, &mut s.p);
        out.fill(0.0);
        // Σ pᵢ(uᵢ − pᵀu)aᵢ needs pᵀu first: one pass for it, one for the sum
        let pu: f64 = rows(&self.at)
            .zip(&s.p)
            .map(|(ai, pi)| pi * dot(ai, v.as_slice()))
            .sum();
        for (ai, pi) in rows(&self.at).zip(&s.p) {
            let u = dot(ai, v.as_slice());
            axpy(pi * (u - pu), ai, out.as_mut_slice());
        }
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
