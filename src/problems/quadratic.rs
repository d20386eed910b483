use std::sync::{Mutex, OnceLock};

use super::{check_h, check_out, check_x, ridge_value, Objective};
use crate::error::{check_finite, check_lambda, check_len, Error, Result};
use crate::{Matrix, Vector};

/// The quadratic form f(x) = xᵀAx + bᵀx + λ‖x‖² for any square A (symmetric or not).
///
/// - ∇f = (A + Aᵀ)x + b + 2λx
/// - ∇²f = A + Aᵀ + 2λI
///
/// Seeds: ∇ₓ(xᵀAx) = (A + Aᵀ)x and ∇²ₓ(xᵀAx) = A + Aᵀ (derived there with the product rule);
/// ∇(aᵀx) = a. Only the symmetric part of A matters: f has a minimizer iff A + Aᵀ + 2λI is
/// positive definite, and it solves (A + Aᵀ + 2λI)x = −b.
#[derive(Debug)]
pub struct Quadratic {
    a: Matrix,
    b: Vector,
    lambda: f64,
    ax: Mutex<Vector>,
    /// [`Objective::not_a_minimum`]'s and [`Objective::no_minimum`]'s answers, which depend on
    /// H (and the latter on b) alone, not on x: each an O(n³) factorization or eigensolve, done once per problem however many
    /// solvers or repeats ask (at 4000 parameters the check took 10.7 s after a 0.62 s solve,
    /// and again for each solver of a compare).
    saddle: OnceLock<Option<String>>,
    unbounded: OnceLock<Option<String>>,
}

impl Quadratic {
    /// A must be n×n and b of length n, all finite, λ ≥ 0.
    ///
    /// ```
    /// use gradfit::problems::{Objective, Quadratic};
    /// use gradfit::{Matrix, Vector};
    /// // A = [[1, 2], [0, 1]] is not symmetric; ∇f(x) = (A + Aᵀ)x + b
    /// let q = Quadratic::new(Matrix::from_row_slice(2, 2, &[1.0, 2.0, 0.0, 1.0]), Vector::zeros(2), 0.0)?;
    /// let (_, g) = q.cost_and_gradient(&Vector::from_vec(vec![1.0, 0.0]))?;
    /// assert_eq!(g.as_slice(), &[2.0, 2.0]);
    /// # Ok::<(), gradfit::Error>(())
    /// ```
    pub fn new(a: Matrix, b: Vector, lambda: f64) -> Result<Self> {
        if !a.is_square() {
            return Err(Error::Data {
                what: format!("quadratic: A must be square, found {}×{}", a.nrows(), a.ncols()),
            });
        }
        check_len("length of b", a.nrows(), b.len())?;
        crate::error::check_finite_matrix("A", &a)?;
        check_finite("b", b.iter())?;
        check_lambda(lambda)?;
        let ax = Mutex::new(Vector::zeros(b.len()));
        Ok(Quadratic {
            a,
            b,
            lambda,
            ax,
            saddle: OnceLock::new(),
            unbounded: OnceLock::new(),
        })
    }

    /// The matrix A.
    pub fn a(&self) -> &Matrix {
        &self.a
    }

    /// The linear term b.
    pub fn b(&self) -> &Vector {
        &self.b
    }

    /// The ridge coefficient λ.
    pub fn lambda(&self) -> f64 {
        self.lambda
    }
}

impl Objective for Quadratic {
    fn dim(&self) -> usize {
        self.b.len()
    }

    /// f = xᵀ(Ax) + bᵀx + λxᵀx.
    fn value(&self, x: &Vector) -> Result<f64> {
        check_x(self.dim(), x)?;
        let mut ax = super::lock(&self.ax);
        ax.gemv(1.0, &self.a, x, 0.0);
        Ok(x.dot(&ax) + self.b.dot(x) + ridge_value(x, self.lambda, |_| true))
    }

    /// ∇f = Ax + Aᵀx + b + 2λx, sharing Ax with f.
    fn value_and_gradient_into(&self, x: &Vector, g: &mut Vector) -> Result<f64> {
        check_out(self.dim(), x, g)?;
        let mut ax = super::lock(&self.ax);
        ax.gemv(1.0, &self.a, x, 0.0);
        let f = x.dot(&ax) + self.b.dot(x) + ridge_value(x, self.lambda, |_| true);
        g.copy_from(&self.b);
        *g += &*ax;
        g.gemv_tr(1.0, &self.a, x, 1.0);
        g.axpy(2.0 * self.lambda, x, 1.0);
        Ok(f)
    }

    /// ∇²f = A + Aᵀ + 2λI.
    fn hessian_into(&self, x: &Vector, h: &mut Matrix) -> Result<()> {
        check_h(self.dim(), x, h)?;
        let n = self.dim();
        for j in 0..n {
            for i in 0..n {
                h[(i, j)] = self.a[(i, j)] + self.a[(j, i)];
            }
            h[(j, j)] += 2.0 * self.lambda;
        }
        Ok(())
    }

    /// ∇²f·v = Av + Aᵀv + 2λv.
    fn hessian_vec_into(&self, x: &Vector, v: &Vector, out: &mut Vector) -> Result<()> {
        check_out(self.dim(), x, out)?;
        check_len("direction v", self.dim(), v.len())?;
        out.gemv(1.0, &self.a, v, 0.0);
        out.gemv_tr(1.0, &self.a, v, 1.0);
        out.axpy(2.0 * self.lambda, v, 1.0);
        Ok(())
    }

    /// f has a minimum iff H = A + Aᵀ + 2λI is positive semidefinite and b lies in its range
    /// (then Hx = −b is solvable). From the eigenpairs (μ, v) of H: if some μ < 0, f falls
    /// quadratically along v (f(tv) = t²μ/2 + t·bᵀv); if some μ is 0 to rounding
    /// (|μ| ≤ 64·n·ε·max|μ|) and bᵀv ≠ 0, it falls linearly along ±v.
    ///
    /// The eigenvalues first, without eigenvectors; the eigenvectors only where an eigenvalue is
    /// 0 to rounding. Computed once per problem.
    fn no_minimum(&self) -> Option<String> {
        self.unbounded
            .get_or_init(|| {
                let h = self.hessian()?;
                let values = h.clone().symmetric_eigenvalues();
                let (zero, mu) = eig_floor(&values);
                if mu < -zero {
                    return Some(negative_eigenvalue(mu));
                }
                if values.iter().all(|mu| mu.abs() > zero) {
                    return None;
                }
                let eig = nalgebra::SymmetricEigen::try_new(h, f64::EPSILON, 1000 * self.dim().max(1))?;
                let (zero, _) = eig_floor(&eig.eigenvalues);
                let b_norm = self.b.norm();
                eig.eigenvalues
                    .iter()
                    .zip(eig.eigenvectors.column_iter())
                    .filter(|(mu, _)| mu.abs() <= zero)
                    .map(|(_, v)| v.dot(&self.b))
                    .find(|c| c.abs() > 1e-8 * b_norm)
                    .map(|c| {
                        format!(
                            "f has no minimum: its Hessian A + Aᵀ + 2λI is singular, and b has the component \
                             {c:.6e} along a null vector v of it, so f falls linearly along −sign(bᵀv)·v"
                        )
                    })
            })
            .clone()
    }

    /// The Hessian H = A + Aᵀ + 2λI is the same at every x: a negative eigenvalue (below
    /// −64·n·ε·max|μ|) makes every stationary point a saddle. A Cholesky factorization of H
    /// answers first (the project's in-place one, `crate::linalg`; a fraction of the
    /// eigensolver's work): where it succeeds, H + E is positive definite for an E of rounding
    /// size, and no eigenvalue lies below that bound. Else the eigenvalues (no eigenvectors)
    /// decide. Computed once per problem.
    fn not_a_minimum(&self, _x: &Vector) -> Option<String> {
        self.saddle
            .get_or_init(|| {
                let h = self.hessian()?;
                let mut l = h.clone();
                if crate::linalg::cholesky_in_place(&mut l) {
                    return None;
                }
                let (zero, mu) = eig_floor(&h.symmetric_eigenvalues());
                (mu < -zero).then(|| negative_eigenvalue(mu))
            })
            .clone()
    }
}

impl Quadratic {
    /// H = A + Aᵀ + 2λI, or None if its n×n matrix cannot be allocated.
    fn hessian(&self) -> Option<Matrix> {
        let n = self.dim();
        let mut h = crate::solve::common::dense_zeros(n, "quadratic").ok()?;
        self.hessian_into(&Vector::zeros(n), &mut h).ok()?;
        Some(h)
    }
}

/// The rounding floor 64·n·ε·max|μ| below which an eigenvalue counts as zero, and the smallest
/// eigenvalue μ.
fn eig_floor(values: &Vector) -> (f64, f64) {
    let n = values.len();
    (64.0 * n as f64 * f64::EPSILON * values.amax(), values.min())
}

fn negative_eigenvalue(mu: f64) -> String {
    format!(
        "f has no minimum: its Hessian A + Aᵀ + 2λI has the eigenvalue {mu:.6e} < 0, and f falls \
         without bound along that eigenvector"
    )
}

crate::impl_argmin_traits!(Quadratic);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonsymmetric_by_hand() {
        // A = [[1, 2], [0, 3]], b = (1, −1), x = (1, 2), λ = 0:
        // Ax = (5, 6); xᵀAx = 5 + 12 = 17; bᵀx = −1; f = 16
        // (A + Aᵀ) = [[2, 2], [2, 6]]; ∇f = (2 + 4, 2 + 12) + b = (7, 13)
        let q = Quadratic::new(
            Matrix::from_row_slice(2, 2, &[1.0, 2.0, 0.0, 3.0]),
            Vector::from_vec(vec![1.0, -1.0]),
            0.0,
        )
        .unwrap();
        let (f, g) = q.cost_and_gradient(&Vector::from_vec(vec![1.0, 2.0])).unwrap();
        assert_eq!(f, 16.0);
        assert_eq!(g.as_slice(), &[7.0, 13.0]);
        let h = q.hessian_matrix(&Vector::zeros(2)).unwrap();
        assert_eq!(h.as_slice(), &[2.0, 2.0, 2.0, 6.0]);
    }

    #[test]
    fn non_square_is_an_error() {
        assert!(Quadratic::new(Matrix::zeros(2, 3), Vector::zeros(2), 0.0).is_err());
    }
}
