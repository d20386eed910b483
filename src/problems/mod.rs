//! Problems with closed-form derivatives.
//!
//! Every problem implements [`Objective`], gradfit's allocation-free interface (values written
//! into caller buffers, cost and gradient fused), and argmin's `CostFunction`, `Gradient` and
//! `Hessian` on `DVector<f64>` / `DMatrix<f64>`, so it runs in argmin's `Executor` as it is.
//!
//! | problem | f | ∇f | ∇²f |
//! |---|---|---|---|
//! | [`LeastSquares`] | ‖Ax − b‖² + λ‖x‖² | 2Aᵀ(Ax − b) + 2λx | 2AᵀA + 2λI |
//! | [`Quadratic`] | xᵀAx + bᵀx + λ‖x‖² | (A + Aᵀ)x + b + 2λx | A + Aᵀ + 2λI |
//! | [`LogSumExp`] | log Σ exp(aᵢᵀx + bᵢ) + λ‖x‖² | Aᵀp + 2λx | Aᵀ(diag p − ppᵀ)A + 2λI |
//! | [`Logistic`] | Σ log(1 + e^zᵢ) − yᵢzᵢ + λ‖w‖², z = Aw | Aᵀ(σ(z) − y) + 2λw | Aᵀdiag(σ(1 − σ))A + 2λI |
//! | [`Softmax`] | Σ lse(Wᵀaᵢ) − w_{yᵢ}ᵀaᵢ + λ‖W‖_F² | Aᵀ(P − Y) + 2λW | blocks Aᵀdiag(p_c(δ_cd − p_d))A + 2λI |
//!
//! Conventions (the seeds' own): sums, no ½ factors; gradients are column vectors (the
//! gradient or "denominator" layout: ∇ₓ(Ax) = Aᵀ); matrix variables are flattened
//! column-major into the parameter vector. [`identities`] holds every other row of the seeds'
//! identity table.

use crate::error::{check_len, Result};
use crate::{Matrix, Vector};

pub mod identities;
mod least_squares;
mod least_squares_gram;
mod log_sum_exp;
mod logistic;
mod quadratic;
mod softmax;
mod woodbury;

pub use least_squares::LeastSquares;
pub use least_squares_gram::GramLeastSquares;
pub use log_sum_exp::LogSumExp;
pub use logistic::Logistic;
pub use quadratic::Quadratic;
pub use softmax::Softmax;

/// A twice-differentiable function f: ℝⁿ → ℝ with closed-form derivatives.
///
/// Outputs are written into caller buffers, which are overwritten, not accumulated, so a
/// solver loop allocates nothing. Every method checks the length of `x` (and of the output)
/// once and returns [`crate::Error::Shape`] instead of a nalgebra panic.
pub trait Objective {
    /// The number of parameters n.
    fn dim(&self) -> usize;

    /// f(x).
    fn value(&self, x: &Vector) -> Result<f64>;

    /// f(x), and ∇f(x) written into `g`, sharing the work (residual, logits) between the two.
    fn value_and_gradient_into(&self, x: &Vector, g: &mut Vector) -> Result<f64>;

    /// ∇f(x) written into `g`. Defaults to the fused evaluation.
    fn gradient_into(&self, x: &Vector, g: &mut Vector) -> Result<()> {
        self.value_and_gradient_into(x, g).map(|_| ())
    }

    /// ∇²f(x) written into `h` (n×n).
    fn hessian_into(&self, x: &Vector, h: &mut Matrix) -> Result<()>;

    /// The Hessian-vector product ∇²f(x)·v written into `out`, without forming ∇²f.
    fn hessian_vec_into(&self, x: &Vector, v: &Vector, out: &mut Vector) -> Result<()>;

    /// The Newton direction d = −∇²f(x)⁻¹·g written into `d` (g = ∇f(x)) by a route cheaper
    /// than forming and factoring the n×n Hessian, for problems that have one; returns whether
    /// it did. The default has none (`Ok(false)`): Newton then forms the Hessian.
    fn newton_direction_into(&self, x: &Vector, g: &Vector, d: &mut Vector) -> Result<bool> {
        let _ = (x, g, d);
        Ok(false)
    }

    /// Replaces x by the representative that a report shows, for problems whose f is constant
    /// along some directions (softmax: one vector added to every class's parameters changes
    /// no probability). f and ∇f are the same at both points. The default keeps x.
    fn canonicalize(&self, x: &mut Vector) {
        let _ = x;
    }

    /// Whether f is known to attain a minimum (least squares; a strictly convex ridge); the
    /// default, false, means "not known". A run whose parameters grow without bound on such a
    /// problem is not reported as "f may have no minimum".
    fn has_minimum(&self) -> bool {
        false
    }

    /// Why f has no minimum, when the problem can prove it (a quadratic whose Hessian has a
    /// negative eigenvalue, or is singular with b not in its range); `None` means "no proof",
    /// not "has a minimum". Asked only after a run that did not converge, so it may cost a
    /// factorization. The default proves nothing.
    fn no_minimum(&self) -> Option<String> {
        None
    }

    /// Why x, a point where the gradient tolerance holds, is not a minimum, when the problem
    /// can prove it (a quadratic whose Hessian has a negative eigenvalue: x is then a saddle
    /// point, or near one); `None` means "no proof". Asked after a run that converged on a
    /// problem not known to have a minimum ([`Objective::has_minimum`] false), so it may cost
    /// a factorization. The default proves nothing.
    fn not_a_minimum(&self, x: &Vector) -> Option<String> {
        let _ = x;
        None
    }

    /// f(x) and ∇f(x) in one pass, as new values.
    ///
    /// ```
    /// use gradfit::problems::{LeastSquares, Objective};
    /// use gradfit::{Matrix, Vector};
    /// // f(x) = (x₀ − 1)² + (x₁ − 2)²; at x = 0: f = 5, ∇f = 2(x − b) = (−2, −4)
    /// let p = LeastSquares::new(Matrix::identity(2, 2), Vector::from_vec(vec![1.0, 2.0]), 0.0)?;
    /// let (f, g) = p.cost_and_gradient(&Vector::zeros(2))?;
    /// assert_eq!(f, 5.0);
    /// assert_eq!(g.as_slice(), &[-2.0, -4.0]);
    /// # Ok::<(), gradfit::Error>(())
    /// ```
    fn cost_and_gradient(&self, x: &Vector) -> Result<(f64, Vector)> {
        let mut g = Vector::zeros(self.dim());
        let f = self.value_and_gradient_into(x, &mut g)?;
        Ok((f, g))
    }

    /// ∇²f(x)·v as a new vector.
    fn hessian_vec(&self, x: &Vector, v: &Vector) -> Result<Vector> {
        let mut out = Vector::zeros(self.dim());
        self.hessian_vec_into(x, v, &mut out)?;
        Ok(out)
    }

    /// ∇²f(x) as a new matrix.
    fn hessian_matrix(&self, x: &Vector) -> Result<Matrix> {
        let n = self.dim();
        let mut h = Matrix::zeros(n, n);
        self.hessian_into(x, &mut h)?;
        Ok(h)
    }
}

impl<T: Objective + ?Sized> Objective for &T {
    fn dim(&self) -> usize {
        (**self).dim()
    }
    fn value(&self, x: &Vector) -> Result<f64> {
        (**self).value(x)
    }
    fn value_and_gradient_into(&self, x: &Vector, g: &mut Vector) -> Result<f64> {
        (**self).value_and_gradient_into(x, g)
    }
    fn gradient_into(&self, x: &Vector, g: &mut Vector) -> Result<()> {
        (**self).gradient_into(x, g)
    }
    fn hessian_into(&self, x: &Vector, h: &mut Matrix) -> Result<()> {
        (**self).hessian_into(x, h)
    }
    fn hessian_vec_into(&self, x: &Vector, v: &Vector, out: &mut Vector) -> Result<()> {
        (**self).hessian_vec_into(x, v, out)
    }
    fn newton_direction_into(&self, x: &Vector, g: &Vector, d: &mut Vector) -> Result<bool> {
        (**self).newton_direction_into(x, g, d)
    }
    fn canonicalize(&self, x: &mut Vector) {
        (**self).canonicalize(x)
    }
    fn has_minimum(&self) -> bool {
        (**self).has_minimum()
    }
    fn no_minimum(&self) -> Option<String> {
        (**self).no_minimum()
    }
    fn not_a_minimum(&self, x: &Vector) -> Option<String> {
        (**self).not_a_minimum(x)
    }
}

/// For tests: g = ∇f(x) and the direction the problem's own Newton route gives there, which
/// must apply (`what` names the case in the failure message).
#[cfg(test)]
pub(crate) fn own_newton_step<P: Objective>(p: &P, x: &Vector, what: &str) -> (Vector, Vector) {
    let (_, g) = p.cost_and_gradient(x).unwrap();
    let mut d = Vector::zeros(x.len());
    assert!(
        p.newton_direction_into(x, &g, &mut d).unwrap(),
        "{what}: the route did not apply"
    );
    (g, d)
}

/// For tests: f, ∇f (fused and the value alone, which must agree to the bit), ∇²f and ∇²f·v
/// at x against their closed forms `want` = (f, ∇f, ∇²f), each within 1e-12 of its largest
/// entry (`what` names the case in the failure message); on a problem from `make` on one
/// thread, then on a fresh one (no curvature kept from the first) with every pass split between
/// two (when rayon has two; Hessians from 256 rows), whatever the size.
#[cfg(test)]
pub(crate) fn agrees_with_closed_forms<P: Objective>(
    make: impl Fn() -> P,
    x: &Vector,
    v: &Vector,
    want: (f64, &Vector, &Matrix),
    what: &str,
) {
    agrees_with_closed_forms_once(&make(), x, v, want, what);
    crate::kernels::tests::forced_split(|| {
        agrees_with_closed_forms_once(&make(), x, v, want, &format!("{what}, split"))
    });
}

#[cfg(test)]
fn agrees_with_closed_forms_once<P: Objective>(
    p: &P,
    x: &Vector,
    v: &Vector,
    (f_want, g_want, h_want): (f64, &Vector, &Matrix),
    what: &str,
) {
    let close = |got: &[f64], want: &[f64]| {
        let (err, size) = got.iter().zip(want).fold((0.0f64, 0.0f64), |(e, s), (u, w)| {
            (e.max((u - w).abs()), s.max(w.abs()))
        });
        got.len() == want.len() && err <= 1e-12 * size
    };
    let (f, g) = p.cost_and_gradient(x).unwrap();
    assert!(close(&[f], &[f_want]), "{what}: f {f} against {f_want}");
    assert_eq!(p.value(x).unwrap(), f, "{what}: the value alone");
    assert!(close(g.as_slice(), g_want.as_slice()), "{what}: gradient");
    let h = p.hessian_matrix(x).unwrap();
    assert!(close(h.as_slice(), h_want.as_slice()), "{what}: Hessian");
    let mut hv = Vector::zeros(v.len());
    p.hessian_vec_into(x, v, &mut hv).unwrap();
    let hv_want = h_want * v;
    assert!(
        close(hv.as_slice(), hv_want.as_slice()),
        "{what}: Hessian-vector product"
    );
}

/// For tests: −(∇²f(x))⁻¹g by a Cholesky solve of the formed Hessian.
#[cfg(test)]
pub(crate) fn cholesky_step<P: Objective>(p: &P, x: &Vector, g: &Vector) -> Vector {
    -p.hessian_matrix(x).unwrap().cholesky().unwrap().solve(g)
}

/// Locks a problem's scratch buffers. A poisoned lock (a panic while it was held) still holds
/// buffers that every evaluation overwrites before reading, so it is safe to go on.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A must have at least one row and one column.
pub(crate) fn check_nonempty(a: &Matrix) -> Result<()> {
    if a.nrows() == 0 || a.ncols() == 0 {
        return Err(crate::Error::Data {
            what: format!(
                "the data matrix is {}×{}: it needs at least one row and one column",
                a.nrows(),
                a.ncols()
            ),
        });
    }
    Ok(())
}

/// Checks x, and an output buffer, against n.
pub(crate) fn check_x(n: usize, x: &Vector) -> Result<()> {
    check_len("parameter vector x", n, x.len())
}

pub(crate) fn check_out(n: usize, x: &Vector, out: &Vector) -> Result<()> {
    check_x(n, x)?;
    check_len("output vector", n, out.len())
}

pub(crate) fn check_h(n: usize, x: &Vector, h: &Matrix) -> Result<()> {
    check_x(n, x)?;
    check_len("Hessian rows", n, h.nrows())?;
    check_len("Hessian columns", n, h.ncols())
}

/// Implements argmin's `CostFunction`, `Gradient` and `Hessian` for a type that implements
/// [`Objective`] (argmin's traits are foreign, so a blanket impl is not allowed).
#[macro_export]
macro_rules! impl_argmin_traits {
    ($t:ty) => {
        impl argmin::core::CostFunction for $t {
            type Param = $crate::Vector;
            type Output = f64;
            fn cost(&self, x: &$crate::Vector) -> std::result::Result<f64, argmin::core::Error> {
                Ok($crate::problems::Objective::value(self, x)?)
            }
        }
        impl argmin::core::Gradient for $t {
            type Param = $crate::Vector;
            type Gradient = $crate::Vector;
            fn gradient(
                &self,
                x: &$crate::Vector,
            ) -> std::result::Result<$crate::Vector, argmin::core::Error> {
                let mut g = $crate::Vector::zeros($crate::problems::Objective::dim(self));
                $crate::problems::Objective::gradient_into(self, x, &mut g)?;
                Ok(g)
            }
        }
        impl argmin::core::Hessian for $t {
            type Param = $crate::Vector;
            type Hessian = $crate::Matrix;
            fn hessian(
                &self,
                x: &$crate::Vector,
            ) -> std::result::Result<$crate::Matrix, argmin::core::Error> {
                Ok($crate::problems::Objective::hessian_matrix(self, x)?)
            }
        }
    };
}

/// Adds 2λ·x to the entries of `g` whose index is penalized (all but `unpenalized`).
pub(crate) fn add_ridge_gradient(g: &mut Vector, x: &Vector, lambda: f64, penalized: impl Fn(usize) -> bool) {
    if lambda == 0.0 {
        return;
    }
    for (i, (gi, xi)) in g.iter_mut().zip(x.iter()).enumerate() {
        if penalized(i) {
            *gi += 2.0 * lambda * xi;
        }
    }
}

/// λ Σ x_i² over the penalized indices.
pub(crate) fn ridge_value(x: &Vector, lambda: f64, penalized: impl Fn(usize) -> bool) -> f64 {
    if lambda == 0.0 {
        return 0.0;
    }
    lambda
        * x.iter()
            .enumerate()
            .filter(|(i, _)| penalized(*i))
            .map(|(_, v)| v * v)
            .sum::<f64>()
}

/// Copies the first n×n diagonal block of `h` to the other k − 1 diagonal blocks: the
/// Hessian I_k ⊗ H of a problem whose k columns of X do not interact.
pub(crate) fn repeat_diagonal_block(h: &mut Matrix, n: usize, k: usize) {
    for c in 1..k {
        for j in 0..n {
            for i in 0..n {
                h[(c * n + i, c * n + j)] = h[(i, j)];
            }
        }
    }
}

/// Adds 2λ to the penalized diagonal entries of `h`.
pub(crate) fn add_ridge_hessian(h: &mut Matrix, lambda: f64, penalized: impl Fn(usize) -> bool) {
    if lambda == 0.0 {
        return;
    }
    for i in 0..h.nrows() {
        if penalized(i) {
            h[(i, i)] += 2.0 * lambda;
        }
    }
}

/// Which kind of model a data set is fitted with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// [`LeastSquares`]
    LeastSquares,
    /// [`Quadratic`]
    Quadratic,
    /// [`LogSumExp`]
    LogSumExp,
    /// [`Logistic`]
    Logistic,
    /// [`Softmax`]
    Softmax,
}

impl ModelKind {
    /// Every kind, in the order the command line lists them.
    pub const ALL: [ModelKind; 5] = [
        ModelKind::LeastSquares,
        ModelKind::Quadratic,
        ModelKind::LogSumExp,
        ModelKind::Logistic,
        ModelKind::Softmax,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::LeastSquares => "least-squares",
            ModelKind::Quadratic => "quadratic",
            ModelKind::LogSumExp => "log-sum-exp",
            ModelKind::Logistic => "logistic",
            ModelKind::Softmax => "softmax",
        }
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ModelKind {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self> {
        ModelKind::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| {
            let names: Vec<_> = ModelKind::ALL.iter().map(|k| k.name()).collect();
            crate::Error::option("model", s, &format!("must be one of {}", names.join(", ")))
        })
    }
}
