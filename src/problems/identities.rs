//! Every row of the seeds' identity table, and the product- and chain-rule examples they work
//! through, as functions with closed-form gradients and Hessians.
//!
//! **Layout.** gradfit uses the gradient (denominator) layout of the first note: the gradient of
//! a scalar f is a column vector of ∂f/∂xᵢ, and the derivative of a vector map h: ℝⁿ → ℝᵐ is
//! the n×m matrix ∇h with (∇h)ᵢⱼ = ∂hⱼ/∂xᵢ, so ∇ₓ(Ax) = Aᵀ. The second note writes the Jacobian
//! (numerator layout) Dh with (Dh)ᵢⱼ = ∂hᵢ/∂xⱼ, so ∂(Ax)/∂x = A: it is the transpose,
//! Dh = (∇h)ᵀ. [`LinearMap`] returns both. A matrix variable X (r×c) is flattened
//! column-major into the parameter vector, and its gradient is the r×c matrix of ∂f/∂xᵢⱼ
//! flattened the same way.
//!
//! | seed row | gradient | Hessian | here |
//! |---|---|---|---|
//! | aᵀx | a | 0 | [`Linear`] |
//! | Ax | Aᵀ (Jacobian A) | — | [`LinearMap`] |
//! | xᵀAx | (A + Aᵀ)x | A + Aᵀ | [`super::Quadratic`] with b = 0 |
//! | xᵀx | 2x | 2I | [`SquaredNorm`] |
//! | ‖Ax − b‖² | 2Aᵀ(Ax − b) | 2AᵀA | [`super::LeastSquares`], and [`Affine`]`(SquaredNorm)` |
//! | aᵀxᵀxb | 2aᵀb·x | 2aᵀb·I | [`ScaledSquaredNorm`] |
//! | aᵀxxᵀb | (abᵀ + baᵀ)x | abᵀ + baᵀ | [`OuterProductForm`] (the product-rule example) |
//! | trace(X) | I | 0 | [`Trace`] |
//! | trace(AX) | Aᵀ | 0 | [`TraceProduct`] |
//! | trace(AᵀX) | A | 0 | [`TraceTransposeProduct`] |
//! | trace(XᵀAX) | (A + Aᵀ)X | I ⊗ (A + Aᵀ) | [`TraceQuadratic`] |
//! | ‖X‖_F² = trace(XᵀX) | 2X | 2I | [`SquaredNorm`] over vec(X) |
//! | ‖AX − B‖_F² | 2Aᵀ(AX − B) | I ⊗ 2AᵀA | [`super::LeastSquares::multi`] |
//! | aᵀXb | abᵀ | 0 | [`Bilinear`] |
//! | trace(AᵀXB) | ABᵀ | 0 | [`TraceSandwich`] |
//! | log Σ exp yᵢ | softmax(y) | diag p − ppᵀ | [`Lse`]; with an affine map [`super::LogSumExp`] |
//! | chain rule h = g(f(x)) | g′(f)∇f | g′∇²f + g″∇f∇fᵀ | [`Compose`] |
//! | affine chain rule g(x) = f(Ax + b) | Aᵀ∇f(Ax + b) | Aᵀ∇²f A | [`Affine`] |
//!
//! **Slips on the pages** (each row above is checked against finite differences, not against
//! the page):
//! - The first note prints the chain rule as ∇_X g(f(X)) = (∇_X f)ᵀ(∇_f g). In that note's own
//!   layout (∇ₓ(Ax) = Aᵀ, n×m) the product must be (∇ₓf)(∇_f g), without the transpose: for
//!   g(f(x)) = ‖Ax − b‖², (∇ₓf)(∇_f g) = Aᵀ·2(Ax − b) is the right answer, while the printed
//!   form gives A·2(Ax − b), which does not even have the right shape unless A is square. The
//!   printed form is the Jacobian-layout rule Dfᵀ∇g written with the wrong symbol. [`Affine`]
//!   implements the correct one.
//! - In the ‖Ax − b‖² derivation the first note writes "∇‖Ax − b‖² = 2Ax − 2b" as an
//!   intermediate line; that is the gradient with respect to the residual r = Ax − b (∇ᵣ‖r‖² =
//!   2r), not with respect to x. The final line 2Aᵀ(Ax − b) is right, and is what the code uses.

use std::sync::Mutex;

use super::{check_h, check_out, check_x, Objective};
use crate::error::{check_len, Error, Result};
use crate::numeric::softmax_into;
use crate::{Matrix, Vector};

/// Hessian-vector product by forming the (small) Hessian: used by the identities only.
fn hv_dense<O: Objective + ?Sized>(o: &O, x: &Vector, v: &Vector, out: &mut Vector) -> Result<()> {
    check_out(o.dim(), x, out)?;
    check_len("direction v", o.dim(), v.len())?;
    let h = o.hessian_matrix(x)?;
    out.gemv(1.0, &h, v, 0.0);
    Ok(())
}

fn zero_hessian(n: usize, x: &Vector, h: &mut Matrix) -> Result<()> {
    check_h(n, x, h)?;
    h.fill(0.0);
    Ok(())
}

macro_rules! hv_by_dense {
    () => {
        /// ∇²f·v by forming ∇²f.
        fn hessian_vec_into(&self, x: &Vector, v: &Vector, out: &mut Vector) -> Result<()> {
            hv_dense(self, x, v, out)
        }
    };
}

/// f(x) = aᵀx; ∇f = a; ∇²f = 0.
#[derive(Debug, Clone)]
pub struct Linear {
    /// The coefficient vector a.
    pub a: Vector,
}

impl Objective for Linear {
    fn dim(&self) -> usize {
        self.a.len()
    }
    fn value(&self, x: &Vector) -> Result<f64> {
        check_x(self.dim(), x)?;
        Ok(self.a.dot(x))
    }
    /// ∇(aᵀx) = a.
    fn value_and_gradient_into(&self, x: &Vector, g: &mut Vector) -> Result<f64> {
        check_out(self.dim(), x, g)?;
        g.copy_from(&self.a);
        Ok(self.a.dot(x))
    }
    fn hessian_into(&self, x: &Vector, h: &mut Matrix) -> Result<()> {
        zero_hessian(self.dim(), x, h)
    }
    hv_by_dense!();
}

/// The vector map h(x) = Ax (A m×n): ∇ₓ(Ax) = Aᵀ in gradfit's layout, Jacobian D(Ax) = A.
#[derive(Debug, Clone)]
pub struct LinearMap {
    /// The matrix A.
    pub a: Matrix,
}

impl LinearMap {
    /// h(x) = Ax.
    pub fn apply(&self, x: &Vector) -> Result<Vector> {
        check_x(self.a.ncols(), x)?;
        Ok(&self.a * x)
    }
    /// ∇ₓ(Ax) = Aᵀ (n×m), the first note's layout and gradfit's.
    pub fn gradient(&self) -> Matrix {
        self.a.transpose()
    }
    /// D(Ax) = A (m×n), the second note's Jacobian: the transpose of [`LinearMap::gradient`].
    pub fn jacobian(&self) -> Matrix {
        self.a.clone()
    }
}

/// f(x) = xᵀx = ‖x‖²; ∇f = 2x; ∇²f = 2I. Over vec(X) it is ‖X‖_F² = trace(XᵀX) with ∇ = 2X.
#[derive(Debug, Clone)]
pub struct SquaredNorm {
    /// The dimension n.
    pub n: usize,
}

impl Objective for SquaredNorm {
    fn dim(&self) -> usize {
        self.n
    }
    fn value(&self, x: &Vector) -> Result<f64> {
        check_x(self.n, x)?;
        Ok(x.norm_squared())
    }
    /// ∇(xᵀx) = 2x.
    fn value_and_gradient_into(&self, x: &Vector, g: &mut Vector) -> Result<f64> {
        check_out(self.n, x, g)?;
        g.copy_from(x);
        *g *= 2.0;
        Ok(x.norm_squared())
    }
    /// ∇²(xᵀx) = 2I.
    fn hessian_into(&self, x: &Vector, h: &mut Matrix) -> Result<()> {
        check_h(self.n, x, h)?;
        h.fill_with_identity();
        *h *= 2.0;
        Ok(())
    }
    hv_by_dense!();
}

/// f(x) = aᵀxᵀxb = (aᵀb)(xᵀx), where xᵀx is a scalar; ∇f = 2(aᵀb)x; ∇²f = 2(aᵀb)I.
///
/// a and b have any common length (they only enter through aᵀb); x has length n.
#[derive(Debug, Clone)]
pub struct ScaledSquaredNorm {
    /// a.
    pub a: Vector,
    /// b.
    pub b: Vector,
    /// The dimension of x.
    pub n: usize,
}

impl ScaledSquaredNorm {
    fn ab(&self) -> Result<f64> {
        check_len("length of b", self.a.len(), self.b.len())?;
        Ok(self.a.dot(&self.b))
    }
}

impl Objective for ScaledSquaredNorm {
    fn dim(&self) -> usize {
        self.n
    }
    fn value(&self, x: &Vector) -> Result<f64> {
        check_x(self.n, x)?;
        Ok(self.ab()? * x.norm_squared())
    }
    /// ∇ = 2(aᵀb)x.
    fn value_and_gradient_into(&self, x: &Vector, g: &mut Vector) -> Result<f64> {
        check_out(self.n, x, g)?;
        let ab = self.ab()?;
        g.copy_from(x);
        *g *= 2.0 * ab;
        Ok(ab * x.norm_squared())
    }
    /// ∇² = 2(aᵀb)I.
    fn hessian_into(&self, x: &Vector, h: &mut Matrix) -> Result<()> {
        check_h(self.n, x, h)?;
        h.fill_with_identity();
        *h *= 2.0 * self.ab()?;
        Ok(())
    }
    hv_by_dense!();
}

/// f(x) = aᵀxxᵀb = (aᵀx)(xᵀb); ∇f = (abᵀ + baᵀ)x; ∇²f = abᵀ + baᵀ.
///
/// The first note's product-rule example: ∇(uv) = (∇u)v + (∇v)u with u = xᵀb, v = aᵀx gives
/// b(aᵀx) + a(bᵀx), which is how [`Objective::value_and_gradient_into`] computes it.
#[derive(Debug, Clone)]
pub struct OuterProductForm {
    /// a.
    pub a: Vector,
    /// b.
    pub b: Vector,
}

impl Objective for OuterProductForm {
    fn dim(&self) -> usize {
        self.a.len()
    }
    fn value(&self, x: &Vector) -> Result<f64> {
        check_out(self.dim(), x, &self.b)?;
        Ok(self.a.dot(x) * x.dot(&self.b))
    }
    /// Product rule: ∇ = b(aᵀx) + a(bᵀx) = (abᵀ + baᵀ)x.
    fn value_and_gradient_into(&self, x: &Vector, g: &mut Vector) -> Result<f64> {
        check_out(self.dim(), x, g)?;
        check_out(self.dim(), x, &self.b)?;
        let (ax, bx) = (self.a.dot(x), self.b.dot(x));
        g.copy_from(&self.b);
        *g *= ax;
        g.axpy(bx, &self.a, 1.0);
        Ok(ax * bx)
    }
    /// ∇² = abᵀ + baᵀ.
    fn hessian_into(&self, x: &Vector, h: &mut Matrix) -> Result<()> {
        check_h(self.dim(), x, h)?;
        h.fill(0.0);
        h.ger(1.0, &self.a, &self.b, 0.0);
        h.ger(1.0, &self.b, &self.a, 1.0);
        Ok(())
    }
    hv_by_dense!();
}

/// f(X) = trace(X) for X n×n; ∇f = I.
#[derive(Debug, Clone)]
pub struct Trace {
    /// The side n of X.
    pub n: usize,
}

impl Objective for Trace {
    fn dim(&self) -> usize {
        self.n * self.n
    }
    fn value(&self, x: &Vector) -> Result<f64> {
        check_x(self.dim(), x)?;
        Ok((0..self.n).map(|i| x[i * self.n + i]).sum())
    }
    /// ∇trace(X) = I (flattened).
    fn value_and_gradient_into(&self, x: &Vector, g: &mut Vector) -> Result<f64> {
        check_out(self.dim(), x, g)?;
        g.fill(0.0);
        for i in 0..self.n {
            g[i * self.n + i] = 1.0;
        }
        self.value(x)
    }
    fn hessian_into(&self, x: &Vector, h: &mut Matrix) -> Result<()> {
        zero_hessian(self.dim(), x, h)
    }
    hv_by_dense!();
}

/// f(X) = trace(AX) for A n×m and X m×n; ∇f = Aᵀ (∂f/∂xᵢⱼ = aⱼᵢ).
#[derive(Debug, Clone)]
pub struct TraceProduct {
    /// A (n×m).
    pub a: Matrix,
}

impl Objective for TraceProduct {
    fn dim(&self) -> usize {
        self.a.len()
    }
    fn value(&self, x: &Vector) -> Result<f64> {
        check_x(self.dim(), x)?;
        let (n, m) = self.a.shape();
        let xm = nalgebra::DMatrixView::from_slice(x.as_slice(), m, n);
        Ok((&self.a * xm).trace())
    }
    /// ∇trace(AX) = Aᵀ.
    fn value_and_gradient_into(&self, x: &Vector, g: &mut Vector) -> Result<f64> {
        check_out(self.dim(), x, g)?;
        g.copy_from_slice(self.a.transpose().as_slice());
        self.value(x)
    }
    fn hessian_into(&self, x: &Vector, h: &mut Matrix) -> Result<()> {
        zero_hessian(self.dim(), x, h)
    }
    hv_by_dense!();
}

/// f(X) = trace(AᵀX) = Σ aᵢⱼxᵢⱼ for A and X of the same shape; ∇f = A.
#[derive(Debug, Clone)]
pub struct TraceTransposeProduct {
    /// A.
    pub a: Matrix,
}

impl Objective for TraceTransposeProduct {
    fn dim(&self) -> usize {
        self.a.len()
    }
    fn value(&self, x: &Vector) -> Result<f64> {
        check_x(self.dim(), x)?;
        let xm = nalgebra::DMatrixView::from_slice(x.as_slice(), self.a.nrows(), self.a.ncols());
        Ok(self.a.tr_mul(&xm).trace())
    }
    /// ∇trace(AᵀX) = A.
    fn value_and_gradient_into(&self, x: &Vector, g: &mut Vector) -> Result<f64> {
        check_out(self.dim(), x, g)?;
        g.copy_from_slice(self.a.as_slice());
        self.value(x)
    }
    fn hessian_into(&self, x: &Vector, h: &mut Matrix) -> Result<()> {
        zero_hessian(self.dim(), x, h)
    }
    hv_by_dense!();
}

/// f(X) = trace(XᵀAX) for A n×n and X n×m; ∇f = (A + Aᵀ)X; ∇²f = I_m ⊗ (A + Aᵀ).
#[derive(Debug, Clone)]
pub struct TraceQuadratic {
    /// A (n×n).
    pub a: Matrix,
    /// The number of columns m of X.
    pub m: usize,
}

impl TraceQuadratic {
    fn x_view<'a>(&self, x: &'a Vector) -> nalgebra::DMatrixView<'a, f64> {
        nalgebra::DMatrixView::from_slice(x.as_slice(), self.a.nrows(), self.m)
    }
}

impl Objective for TraceQuadratic {
    fn dim(&self) -> usize {
        self.a.nrows() * self.m
    }
    fn value(&self, x: &Vector) -> Result<f64> {
        check_x(self.dim(), x)?;
        let xm = self.x_view(x);
        Ok(xm.tr_mul(&(&self.a * xm)).trace())
    }
    /// ∇trace(XᵀAX) = (A + Aᵀ)X.
    fn value_and_gradient_into(&self, x: &Vector, g: &mut Vector) -> Result<f64> {
        check_out(self.dim(), x, g)?;
        let xm = self.x_view(x);
        let s = &self.a + self.a.transpose();
        g.copy_from_slice((s * xm).as_slice());
        self.value(x)
    }
    /// ∇² = I_m ⊗ (A + Aᵀ).
    fn hessian_into(&self, x: &Vector, h: &mut Matrix) -> Result<()> {
        check_h(self.dim(), x, h)?;
        let n = self.a.nrows();
        let s = &self.a + self.a.transpose();
        h.fill(0.0);
        for c in 0..self.m {
            h.view_mut((c * n, c * n), (n, n)).copy_from(&s);
        }
        Ok(())
    }
    hv_by_dense!();
}

/// f(X) = aᵀXb for a of length m, X m×n, b of length n; ∇f = abᵀ.
#[derive(Debug, Clone)]
pub struct Bilinear {
    /// a (length m).
    pub a: Vector,
    /// b (length n).
    pub b: Vector,
}

impl Objective for Bilinear {
    fn dim(&self) -> usize {
        self.a.len() * self.b.len()
    }
    fn value(&self, x: &Vector) -> Result<f64> {
        check_x(self.dim(), x)?;
        let xm = nalgebra::DMatrixView::from_slice(x.as_slice(), self.a.len(), self.b.len());
        Ok(self.a.dot(&(xm * &self.b)))
    }
    /// ∇(aᵀXb) = abᵀ.
    fn value_and_gradient_into(&self, x: &Vector, g: &mut Vector) -> Result<f64> {
        check_out(self.dim(), x, g)?;
        g.copy_from_slice((&self.a * self.b.transpose()).as_slice());
        self.value(x)
    }
    fn hessian_into(&self, x: &Vector, h: &mut Matrix) -> Result<()> {
        zero_hessian(self.dim(), x, h)
    }
    hv_by_dense!();
}

/// f(X) = trace(AᵀXB) for A m×p, X m×n, B n×p; ∇f = ABᵀ.
#[derive(Debug, Clone)]
pub struct TraceSandwich {
    /// A (m×p).
    pub a: Matrix,
    /// B (n×p).
    pub b: Matrix,
}

impl Objective for TraceSandwich {
    fn dim(&self) -> usize {
        self.a.nrows() * self.b.nrows()
    }
    fn value(&self, x: &Vector) -> Result<f64> {
        check_x(self.dim(), x)?;
        check_len("columns of B", self.a.ncols(), self.b.ncols())?;
        let xm = nalgebra::DMatrixView::from_slice(x.as_slice(), self.a.nrows(), self.b.nrows());
        Ok((self.a.tr_mul(&xm) * &self.b).trace())
    }
    /// ∇trace(AᵀXB) = ABᵀ.
    fn value_and_gradient_into(&self, x: &Vector, g: &mut Vector) -> Result<f64> {
        check_out(self.dim(), x, g)?;
        let f = self.value(x)?;
        g.copy_from_slice((&self.a * self.b.transpose()).as_slice());
        Ok(f)
    }
    fn hessian_into(&self, x: &Vector, h: &mut Matrix) -> Result<()> {
        zero_hessian(self.dim(), x, h)
    }
    hv_by_dense!();
}

/// g(y) = log Σᵢ exp yᵢ; ∇g = softmax(y) = e^y / 1ᵀe^y; ∇²g = diag(p) − ppᵀ.
///
/// The seeds' log-sum-exp example before the affine map; computed with the max shift.
#[derive(Debug)]
pub struct Lse {
    m: usize,
    p: Mutex<Vec<f64>>,
}

impl Lse {
    /// lse over ℝᵐ.
    pub fn new(m: usize) -> Self {
        Lse {
            m,
            p: Mutex::new(vec![0.0; m]),
        }
    }
}

impl Objective for Lse {
    fn dim(&self) -> usize {
        self.m
    }
    fn value(&self, y: &Vector) -> Result<f64> {
        check_x(self.m, y)?;
        Ok(softmax_into(y.as_slice(), &mut super::lock(&self.p)))
    }
    /// ∇lse(y) = softmax(y).
    fn value_and_gradient_into(&self, y: &Vector, g: &mut Vector) -> Result<f64> {
        check_out(self.m, y, g)?;
        Ok(softmax_into(y.as_slice(), g.as_mut_slice()))
    }
    /// ∇²lse(y) = diag(p) − ppᵀ.
    fn hessian_into(&self, y: &Vector, h: &mut Matrix) -> Result<()> {
        check_h(self.m, y, h)?;
        let p = &mut *super::lock(&self.p);
        softmax_into(y.as_slice(), p);
        for j in 0..self.m {
            for i in 0..self.m {
                h[(i, j)] = if i == j { p[i] } else { 0.0 } - p[i] * p[j];
            }
        }
        Ok(())
    }
    hv_by_dense!();
}

/// A scalar function g: ℝ → ℝ with its first two derivatives, for [`Compose`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    /// g(t) = eᵗ; g′ = g″ = eᵗ.
    Exp,
    /// g(t) = log t; g′ = 1/t; g″ = −1/t² (t > 0).
    Log,
    /// g(t) = t²; g′ = 2t; g″ = 2.
    Square,
}

impl Scalar {
    /// (g(t), g′(t), g″(t)).
    pub fn eval(self, t: f64) -> (f64, f64, f64) {
        match self {
            Scalar::Exp => {
                let e = t.exp();
                (e, e, e)
            }
            Scalar::Log => (t.ln(), 1.0 / t, -1.0 / (t * t)),
            Scalar::Square => (t * t, 2.0 * t, 2.0),
        }
    }
}

/// The chain rule for a scalar outer function: h(x) = g(f(x)).
///
/// - ∇h = g′(f(x))∇f(x)
/// - ∇²h = g′(f(x))∇²f(x) + g″(f(x))∇f(x)∇f(x)ᵀ (the second note's second-order chain rule)
#[derive(Debug)]
pub struct Compose<F> {
    /// g.
    pub outer: Scalar,
    /// f.
    pub inner: F,
}

impl<F: Objective> Objective for Compose<F> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn value(&self, x: &Vector) -> Result<f64> {
        Ok(self.outer.eval(self.inner.value(x)?).0)
    }
    /// ∇h = g′(f)∇f.
    fn value_and_gradient_into(&self, x: &Vector, g: &mut Vector) -> Result<f64> {
        let f = self.inner.value_and_gradient_into(x, g)?;
        let (v, d1, _) = self.outer.eval(f);
        *g *= d1;
        Ok(v)
    }
    /// ∇²h = g′∇²f + g″∇f∇fᵀ.
    fn hessian_into(&self, x: &Vector, h: &mut Matrix) -> Result<()> {
        let (f, grad) = self.inner.cost_and_gradient(x)?;
        self.inner.hessian_into(x, h)?;
        let (_, d1, d2) = self.outer.eval(f);
        *h *= d1;
        h.ger(d2, &grad, &grad, 1.0);
        Ok(())
    }
    /// ∇²h·v = g′∇²f·v + g″(∇fᵀv)∇f.
    fn hessian_vec_into(&self, x: &Vector, v: &Vector, out: &mut Vector) -> Result<()> {
        let (f, grad) = self.inner.cost_and_gradient(x)?;
        self.inner.hessian_vec_into(x, v, out)?;
        let (_, d1, d2) = self.outer.eval(f);
        *out *= d1;
        out.axpy(d2 * grad.dot(v), &grad, 1.0);
        Ok(())
    }
}

/// Composition with an affine map: g(x) = f(Ax + b), A m×n, f: ℝᵐ → ℝ.
///
/// - ∇g(x) = Aᵀ∇f(Ax + b)
/// - ∇²g(x) = Aᵀ∇²f(Ax + b)A
///
/// `Affine { inner: SquaredNorm, a, b: −b }` is ‖Ax − b‖² (the first note's chain-rule
/// example) and `Affine { inner: Lse, a, b }` is the second note's log Σ exp(aᵢᵀx + bᵢ).
#[derive(Debug)]
pub struct Affine<F> {
    /// f: ℝᵐ → ℝ.
    pub inner: F,
    /// A (m×n).
    pub a: Matrix,
    /// b (length m).
    pub b: Vector,
}

impl<F: Objective> Affine<F> {
    /// Checks that the shapes agree.
    pub fn new(inner: F, a: Matrix, b: Vector) -> Result<Self> {
        check_len("rows of A", inner.dim(), a.nrows())?;
        check_len("length of b", inner.dim(), b.len())?;
        Ok(Affine { inner, a, b })
    }

    fn y(&self, x: &Vector) -> Result<Vector> {
        check_x(self.a.ncols(), x)?;
        if self.b.len() != self.a.nrows() {
            return Err(Error::shape("length of b", self.a.nrows(), self.b.len()));
        }
        let mut y = self.b.clone();
        y.gemv(1.0, &self.a, x, 1.0);
        Ok(y)
    }
}

impl<F: Objective> Objective for Affine<F> {
    fn dim(&self) -> usize {
        self.a.ncols()
    }
    fn value(&self, x: &Vector) -> Result<f64> {
        self.inner.value(&self.y(x)?)
    }
    /// ∇g = Aᵀ∇f(Ax + b).
    fn value_and_gradient_into(&self, x: &Vector, g: &mut Vector) -> Result<f64> {
        check_out(self.dim(), x, g)?;
        let (f, gy) = self.inner.cost_and_gradient(&self.y(x)?)?;
        g.gemv_tr(1.0, &self.a, &gy, 0.0);
        Ok(f)
    }
    /// ∇²g = Aᵀ∇²f(Ax + b)A.
    fn hessian_into(&self, x: &Vector, h: &mut Matrix) -> Result<()> {
        check_h(self.dim(), x, h)?;
        let hy = self.inner.hessian_matrix(&self.y(x)?)?;
        h.copy_from(&(self.a.transpose() * hy * &self.a));
        Ok(())
    }
    /// ∇²g·v = Aᵀ(∇²f·(Av)).
    fn hessian_vec_into(&self, x: &Vector, v: &Vector, out: &mut Vector) -> Result<()> {
        check_out(self.dim(), x, out)?;
        let hv = self.inner.hessian_vec(&self.y(x)?, &(&self.a * v))?;
        out.gemv_tr(1.0, &self.a, &hv, 0.0);
        Ok(())
    }
}

crate::impl_argmin_traits!(Linear);
crate::impl_argmin_traits!(SquaredNorm);
crate::impl_argmin_traits!(ScaledSquaredNorm);
crate::impl_argmin_traits!(OuterProductForm);
crate::impl_argmin_traits!(Trace);
crate::impl_argmin_traits!(TraceProduct);
crate::impl_argmin_traits!(TraceTransposeProduct);
crate::impl_argmin_traits!(TraceQuadratic);
crate::impl_argmin_traits!(Bilinear);
crate::impl_argmin_traits!(TraceSandwich);
crate::impl_argmin_traits!(Lse);
crate::impl_argmin_traits!(Compose<SquaredNorm>);
crate::impl_argmin_traits!(Compose<Linear>);
crate::impl_argmin_traits!(Affine<SquaredNorm>);
crate::impl_argmin_traits!(Affine<Lse>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_product_by_hand() {
        // A = [[1, 2]] (1×2), X = [[3], [4]] (2×1): trace(AX) = 11; ∇ = Aᵀ = (1, 2)
        let t = TraceProduct {
            a: Matrix::from_row_slice(1, 2, &[1.0, 2.0]),
        };
        let (f, g) = t.cost_and_gradient(&Vector::from_vec(vec![3.0, 4.0])).unwrap();
        assert_eq!(f, 11.0);
        assert_eq!(g.as_slice(), &[1.0, 2.0]);
    }

    #[test]
    fn layouts_are_transposes() {
        let m = LinearMap {
            a: Matrix::from_row_slice(2, 3, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
        };
        assert_eq!(m.gradient(), m.jacobian().transpose());
        assert_eq!(m.gradient().shape(), (3, 2));
    }
}
