use super::{
    add_ridge_hessian, check_h, check_out, check_x, repeat_diagonal_block, ridge_value, LeastSquares,
    Objective,
};
use crate::error::{check_len, Error, Result};
use crate::kernels::dot;
use crate::linalg::{
    cholesky_in_place, cholesky_solve_in_place, lower_mul_in_place, lower_transpose_mul,
    solve_lower_in_place, solve_lower_transpose_in_place,
};
use crate::{Matrix, Vector};

/// The Gram form is refused when the smallest squared Cholesky pivot of AᵀA is below this
/// fraction of its largest diagonal entry. Each squared pivot is at least λ_min(AᵀA) and each
/// diagonal entry at most λ_max, so the ratio is at least 1/κ(AᵀA): under 10⁻¹⁴ it shows
/// κ(AᵀA) > 10¹⁴ (κ(A) > 10⁷), where the factor has too few correct digits for D = L⁻¹AᵀB to be
/// worth iterating on. It is a sufficient sign only: a worse matrix can pass, and then the
/// check of the answer on the rows ([`crate::solve::solve_least_squares_monitored`]) is what
/// catches a wrong factor.
const MIN_PIVOT_RATIO: f64 = 1e-14;

/// Least squares with AᵀA formed and factored once: the same f, ∇f and ∇²f as
/// [`LeastSquares`], but every evaluation costs O(n²k) instead of a pass over A's m rows.
/// scikit-learn calls this `precompute=True`.
///
/// The ridge term goes into the factor, as in scikit-learn's Ridge with `solver="cholesky"`.
/// With P the diagonal of penalized entries (all but an intercept), AᵀA + λP = LLᵀ
/// (Cholesky), D = L⁻¹AᵀB (n×k) and ρ² the minimum of f:
///
/// - f(X) = ‖LᵀX − D‖_F² + ρ²   (= ‖AX − B‖_F² + λ‖PX‖_F²)
/// - ∇f = 2L(LᵀX − D)   (= 2Aᵀ(AX − B) + 2λPX)
/// - ∇²f = I_k ⊗ (2AᵀA + 2λP)
///
/// These are the row form's formulas rearranged: ‖AX − B‖² + λ‖PX‖² = ⟨X, (AᵀA + λP)X⟩
/// − 2⟨X, AᵀB⟩ + ‖B‖² = ‖LᵀX − D‖² + (‖B‖² − ‖D‖²), the bracket is ρ² (the value at the
/// minimizer L⁻ᵀD), and 2L(LᵀX − D) = 2((AᵀA + λP)X − AᵀB) because LD = AᵀB. With λ > 0
/// (and no unpenalized column that depends on the others) the factor exists even for
/// rank-deficient or wide A.
///
/// Why the factored sum of squares and not ⟨X, GX⟩ − 2⟨X, C⟩ + ‖B‖²: that sum cancels near
/// the optimum (each term is of the size of ‖B‖², f of the size of the residual), so a line
/// search comparing nearby values sees rounding. Here the part that varies is the square of
/// the n-vector LᵀX − D, which shrinks to 0 at the optimum, and ρ² is measured once by a pass
/// over the rows at the minimizer rather than taken as the difference ‖B‖² − ‖D‖².
///
/// The price: forming AᵀA costs m·n(n + 1)/2 multiply-adds (Newton's packed Gram kernel), and
/// the factor needs AᵀA + λP positive definite (with λ = 0: m ≥ n, independent columns). Its rounding is that
/// of a problem perturbed by about ε‖A‖²: gradients carry about ε‖A‖²‖x‖ of noise, the same
/// order as the row form's. [`crate::solve::solve_least_squares_monitored`] checks the answer
/// on the rows and finishes there if the two disagree.
#[derive(Debug)]
pub struct GramLeastSquares {
    /// AᵀA, both triangles.
    gram: Matrix,
    /// The Cholesky factor of AᵀA + λP in the lower triangle (the upper triangle is not read).
    l: Matrix,
    /// L⁻¹AᵀB, n×k.
    d: Matrix,
    /// min f, from a pass over the rows.
    rho2: f64,
    lambda: f64,
    intercept: bool,
}

impl GramLeastSquares {
    /// Forms AᵀA (two threads on large data), factors AᵀA + λP, and measures ρ² with one pass
    /// over the rows of `p` at the minimizer.
    ///
    /// Errors if AᵀA + λP is not numerically positive definite, or evidently too ill-conditioned
    /// (its smallest squared pivot below 10⁻¹⁴ of its largest diagonal entry, which shows
    /// κ(AᵀA) > 10¹⁴): the row form [`LeastSquares`] then remains the way to solve it. An
    /// [`Error::Memory`] before anything is allocated if AᵀA, its factor and the kernel's
    /// buffers (four n×n matrices' worth) do not fit the memory available.
    ///
    /// ```
    /// use gradfit::problems::{GramLeastSquares, LeastSquares, Objective};
    /// use gradfit::{Matrix, Vector};
    /// let a = Matrix::from_row_slice(3, 2, &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
    /// let rows = LeastSquares::new(a, Vector::from_vec(vec![1.0, 2.0, 4.0]), 0.0)?;
    /// let gram = GramLeastSquares::new(&rows)?;
    /// let x = Vector::from_vec(vec![0.5, -1.0]);
    /// // f = (0.5 − 1)² + (−1 − 2)² + (−0.5 − 4)² = 29.5, either way
    /// assert!((gram.value(&x)? - 29.5).abs() < 1e-12);
    /// assert!((gram.value(&x)? - rows.value(&x)?).abs() < 1e-12);
    /// # Ok::<(), gradfit::Error>(())
    /// ```
    pub fn new(p: &LeastSquares) -> Result<Self> {
        Self::within(p, None, "GramLeastSquares")
    }

    /// [`Self::new`], an [`Error::Memory`] naming `method` unless AᵀA, its factor and the
    /// kernel's buffers (four n×n matrices' worth) fit in `limit` bytes (by default the memory
    /// available), checked before any is allocated.
    pub(crate) fn within(p: &LeastSquares, limit: Option<u64>, method: &str) -> Result<Self> {
        let n = p.n();
        let who = ("the Gram form", "the row form (--gram off) needs no n × n matrix");
        // AᵀA and its factor, and while AᵀA is formed the packed kernel's second n×n sum and its
        // tiles (about n²/2 a thread), as Newton counts them: with two, a limit between 310 and
        // 650 MB still aborted a 4000-feature Gram form inside the kernel
        crate::solve::common::dense_fits_or(n, 4, method, limit, who)?;
        let gram = p.gram_matrix(method)?;
        let mut l = crate::solve::common::dense_zeros(n, method)?;
        l.copy_from(&gram);
        let (lambda, intercept) = (p.lambda(), p.intercept());
        for j in 0..n {
            if !(intercept && j == n - 1) {
                l[(j, j)] += lambda;
            }
        }
        let max_diag = l.diagonal().max();
        if !cholesky_in_place(&mut l) {
            return Err(Error::Data {
                what: format!(
                    "least squares: AᵀA{} ({n}×{n}, from {} rows) is not numerically positive \
                     definite (fewer rows than columns, columns that depend or nearly depend on \
                     each other, or entries so large that AᵀA overflows); the Gram form needs it, \
                     the row form does not",
                    if lambda > 0.0 { " + λI" } else { "" },
                    p.rows()
                ),
            });
        }
        let min_pivot = (0..n)
            .map(|i| l[(i, i)] * l[(i, i)])
            .fold(f64::INFINITY, f64::min);
        if min_pivot < MIN_PIVOT_RATIO * max_diag {
            return Err(Error::Data {
                what: format!(
                    "least squares: AᵀA is too ill-conditioned for the Gram form (smallest squared \
                     Cholesky pivot {min_pivot:.3e} against largest diagonal entry {max_diag:.3e}); \
                     the row form does not square the condition number"
                ),
            });
        }
        let mut d = p.normal_rhs();
        for dc in d.as_mut_slice().chunks_exact_mut(n) {
            solve_lower_in_place(&l, dc);
        }
        let mut xhat = d.clone();
        for xc in xhat.as_mut_slice().chunks_exact_mut(n) {
            solve_lower_transpose_in_place(&l, xc);
        }
        let xhat = Vector::from_column_slice(xhat.as_slice());
        let mut form = GramLeastSquares {
            gram,
            l,
            d,
            rho2: 0.0,
            lambda,
            intercept,
        };
        // ρ² = f(X̂) on the rows, less the (rounding-sized) factored part at X̂
        let rows = p.residual_value(&xhat) + ridge_value(&xhat, lambda, form.penalized());
        let factored = form.factored_value(0.0, &xhat);
        form.rho2 = (rows - factored).max(0.0);
        Ok(form)
    }

    /// min over X of f(X) = ‖AX − B‖_F² + λ‖PX‖_F², as measured at set-up.
    pub fn residual_floor(&self) -> f64 {
        self.rho2
    }

    fn n(&self) -> usize {
        self.l.nrows()
    }

    fn k(&self) -> usize {
        self.d.ncols()
    }

    fn penalized(&self) -> impl Fn(usize) -> bool {
        let n = self.n();
        let intercept = self.intercept;
        move |j| !(intercept && j % n == n - 1)
    }

    /// start + Σ_c ‖Lᵀx_c − d_c‖² (the part of f that varies; x already checked), summed in
    /// the fused evaluation's order.
    fn factored_value(&self, start: f64, x: &Vector) -> f64 {
        let n = self.n();
        let l = self.l.as_slice();
        let mut f = start;
        for (xc, dc) in x
            .as_slice()
            .chunks_exact(n)
            .zip(self.d.as_slice().chunks_exact(n))
        {
            for i in 0..n {
                let s = dot(&l[i * n + i..(i + 1) * n], &xc[i..]) - dc[i];
                f += s * s;
            }
        }
        f
    }
}

impl Objective for GramLeastSquares {
    /// As [`LeastSquares`]: a convex quadratic bounded below by 0.
    fn has_minimum(&self) -> bool {
        true
    }

    fn dim(&self) -> usize {
        self.n() * self.k()
    }

    /// f = ‖LᵀX − D‖_F² + ρ², summed in the same order as the fused evaluation.
    fn value(&self, x: &Vector) -> Result<f64> {
        check_x(self.dim(), x)?;
        Ok(self.factored_value(self.rho2, x))
    }

    /// ∇f = 2L(LᵀX − D), with f from the same residual LᵀX − D.
    fn value_and_gradient_into(&self, x: &Vector, g: &mut Vector) -> Result<f64> {
        check_out(self.dim(), x, g)?;
        let n = self.n();
        let mut f = self.rho2;
        for ((xc, dc), gc) in x
            .as_slice()
            .chunks_exact(n)
            .zip(self.d.as_slice().chunks_exact(n))
            .zip(g.as_mut_slice().chunks_exact_mut(n))
        {
            lower_transpose_mul(&self.l, xc, gc);
            for (gi, di) in gc.iter_mut().zip(dc) {
                *gi -= di;
                f += *gi * *gi;
                *gi *= 2.0;
            }
            lower_mul_in_place(&self.l, gc);
        }
        Ok(f)
    }

    /// ∇²f = I_k ⊗ (2AᵀA + 2λI_penalized), from the stored AᵀA.
    fn hessian_into(&self, x: &Vector, h: &mut Matrix) -> Result<()> {
        check_h(self.dim(), x, h)?;
        let n = self.n();
        h.fill(0.0);
        for j in 0..n {
            for i in 0..n {
                h[(i, j)] = 2.0 * self.gram[(i, j)];
            }
        }
        repeat_diagonal_block(h, n, self.k());
        add_ridge_hessian(h, self.lambda, self.penalized());
        Ok(())
    }

    /// ∇²f·v = 2L(LᵀV) (= 2(AᵀA + λP)V), column by column of the n×k reshaping V of v.
    fn hessian_vec_into(&self, x: &Vector, v: &Vector, out: &mut Vector) -> Result<()> {
        check_out(self.dim(), x, out)?;
        check_len("direction v", self.dim(), v.len())?;
        let n = self.n();
        for (vc, oc) in v
            .as_slice()
            .chunks_exact(n)
            .zip(out.as_mut_slice().chunks_exact_mut(n))
        {
            lower_transpose_mul(&self.l, vc, oc);
            oc.iter_mut().for_each(|o| *o *= 2.0);
            lower_mul_in_place(&self.l, oc);
        }
        Ok(())
    }

    /// With several targets, d = −(I_k ⊗ 2LLᵀ)⁻¹g column by column through the stored factor
    /// (LLᵀ = AᵀA + λP): Newton would otherwise form and factor the nk×nk block-diagonal
    /// Hessian. With one target `Ok(false)`: forming the n×n Hessian is the same work.
    fn newton_direction_into(&self, x: &Vector, g: &Vector, d: &mut Vector) -> Result<bool> {
        if self.k() == 1 {
            return Ok(false);
        }
        check_out(self.dim(), x, d)?;
        check_len("gradient g", self.dim(), g.len())?;
        let n = self.n();
        for (gc, dc) in g
            .as_slice()
            .chunks_exact(n)
            .zip(d.as_mut_slice().chunks_exact_mut(n))
        {
            dc.copy_from_slice(gc);
            cholesky_solve_in_place(&self.l, dc);
            dc.iter_mut().for_each(|v| *v *= -0.5);
        }
        Ok(d.iter().all(|v| v.is_finite()))
    }
}

crate::impl_argmin_traits!(GramLeastSquares);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{check_gradient, check_hessian, Tolerance};

    /// A deterministic full-rank pseudo-random entry in (−1, 1).
    fn noise(i: usize, j: usize) -> f64 {
        let h = ((i * 7919 + j * 104_729 + 17) as f64 * 0.618_033_988_7).sin() * 43_758.545_3;
        2.0 * (h - h.floor()) - 1.0
    }

    fn instance(m: usize, n: usize, k: usize, lambda: f64, intercept: bool) -> LeastSquares {
        let mut a = Matrix::from_fn(m, n, |i, j| noise(i, j) + 0.1 * j as f64);
        if intercept {
            a.column_mut(n - 1).fill(1.0);
        }
        let b = Matrix::from_fn(m, k, |i, c| {
            ((i * 3 + c * 5) as f64 * 0.41).cos() * 3.0 + c as f64
        });
        let p = LeastSquares::multi(a, b, lambda).unwrap();
        p.with_intercept(intercept).unwrap()
    }

    #[test]
    fn agrees_with_the_row_form_in_value_gradient_hessian_and_products() {
        for (m, n, k, lambda, intercept) in [
            (40, 3, 1, 0.0, false),
            (300, 17, 1, 0.3, true),
            (2000, 50, 1, 0.0, false),
            (120, 9, 3, 1.5, true),
        ] {
            let rows = instance(m, n, k, lambda, intercept);
            let gram = GramLeastSquares::new(&rows).unwrap();
            for s in [0.0, 1.0, -3.0] {
                let x = Vector::from_fn(n * k, |i, _| s * ((i as f64) * 0.37).sin());
                let (fr, gr) = rows.cost_and_gradient(&x).unwrap();
                let (fg, gg) = gram.cost_and_gradient(&x).unwrap();
                assert!(
                    (fr - fg).abs() <= 1e-11 * fr.abs().max(1.0),
                    "{m}x{n}x{k}: f {fr} vs {fg}"
                );
                let scale = gr.amax().max(1.0);
                assert!((&gr - &gg).amax() <= 1e-10 * scale, "{m}x{n}x{k}: gradient");
                assert_eq!(gram.value(&x).unwrap().to_bits(), fg.to_bits());
                let hr = rows.hessian_matrix(&x).unwrap();
                let hg = gram.hessian_matrix(&x).unwrap();
                assert!((&hr - &hg).amax() <= 1e-12 * hr.amax());
                let v = Vector::from_fn(n * k, |i, _| ((i as f64) * 1.3).cos());
                let (hvr, hvg) = (
                    rows.hessian_vec(&x, &v).unwrap(),
                    gram.hessian_vec(&x, &v).unwrap(),
                );
                assert!((&hvr - &hvg).amax() <= 1e-10 * hvr.amax());
            }
        }
    }

    #[test]
    fn the_floor_is_the_least_squares_residual_of_a_direct_solve() {
        // ρ² against nalgebra's SVD least-squares solution of the same system
        let rows = instance(500, 8, 1, 0.0, false);
        let gram = GramLeastSquares::new(&rows).unwrap();
        let a = rows.a();
        let b = rows.b().column(0).into_owned();
        let svd = a.clone().svd(true, true);
        let x = svd.solve(&b, 1e-14).unwrap();
        let floor = (&a * &x - &b).norm_squared();
        assert!(
            (gram.residual_floor() - floor).abs() <= 1e-12 * floor,
            "{} vs {floor}",
            gram.residual_floor()
        );
        // and the gradient vanishes there
        let g = gram.cost_and_gradient(&x).unwrap().1;
        assert!(g.amax() < 1e-9, "{}", g.amax());
    }

    #[test]
    fn near_an_exact_fit_values_do_not_cancel() {
        // b = A·x* exactly: f(x* + t·e) = t²‖A e‖², which the unfactored
        // xᵀGx − 2cᵀx + bᵀb would lose below t ≈ 1e-8·‖x*‖
        let a = Matrix::from_fn(200, 5, |i, j| noise(i, j) + 2.0);
        let xs = Vector::from_vec(vec![3.0, -1.0, 2.0, 0.5, 4.0]);
        let b = &a * &xs;
        let rows = LeastSquares::new(a.clone(), b, 0.0).unwrap();
        let gram = GramLeastSquares::new(&rows).unwrap();
        let e = Vector::from_vec(vec![1.0, 0.0, 0.0, 0.0, 0.0]);
        let want = (&a * &e).norm_squared();
        for t in [1e-4, 1e-6] {
            let f = gram.value(&(&xs + &e * t)).unwrap();
            assert!(
                (f / (t * t) - want).abs() < 1e-3 * want,
                "t = {t}: {} vs {want}",
                f / (t * t)
            );
        }
    }

    #[test]
    fn derivatives_pass_the_central_difference_check() {
        let rows = instance(200, 6, 2, 0.7, true);
        let gram = GramLeastSquares::new(&rows).unwrap();
        let x = Vector::from_fn(12, |i, _| 0.3 * i as f64 - 1.0);
        assert!(check_gradient(&gram, &x, Tolerance::default()).unwrap().passed);
        assert!(check_hessian(&gram, &x, Tolerance::default()).unwrap().passed);
    }

    #[test]
    fn with_ridge_the_factor_exists_for_dependent_columns_and_wide_data() {
        // λ > 0 goes into the factor (AᵀA + λP), so what λ = 0 refuses is solvable; the
        // minimizer against a direct solve of (AᵀA + λP)x = Aᵀb, the floor against f there
        for (m, n, intercept) in [(30, 3, false), (4, 9, false), (40, 4, true)] {
            let mut a = Matrix::from_fn(m, n, noise);
            let c0 = a.column(0).into_owned();
            a.set_column(1, &(c0 * 2.0));
            if intercept {
                a.column_mut(n - 1).fill(1.0);
            }
            let b = Vector::from_fn(m, |i, _| noise(i, 99) * 3.0);
            let lambda = 0.7;
            let rows = LeastSquares::new(a.clone(), b.clone(), lambda)
                .unwrap()
                .with_intercept(intercept)
                .unwrap();
            assert!(LeastSquares::new(a.clone(), b.clone(), 0.0)
                .map(|p| GramLeastSquares::new(&p).is_err())
                .unwrap());
            let gram = GramLeastSquares::new(&rows).unwrap();
            let mut lhs = a.transpose() * &a;
            for j in 0..n {
                if !(intercept && j == n - 1) {
                    lhs[(j, j)] += lambda;
                }
            }
            let x = lhs.cholesky().unwrap().solve(&(a.transpose() * &b));
            let g = gram.cost_and_gradient(&x).unwrap().1;
            assert!(g.amax() < 1e-9, "{m}×{n}: gradient {} at the solution", g.amax());
            let f = rows.value(&x).unwrap();
            assert!(
                (gram.residual_floor() - f).abs() <= 1e-12 * f,
                "{} vs {f}",
                gram.residual_floor()
            );
            let y = Vector::from_fn(n, |i, _| i as f64 - 1.0);
            let (fr, gr) = rows.cost_and_gradient(&y).unwrap();
            let (fg, gg) = gram.cost_and_gradient(&y).unwrap();
            assert!((fr - fg).abs() <= 1e-11 * fr && (&gr - &gg).amax() <= 1e-10 * gr.amax());
        }
    }

    #[test]
    fn dependent_columns_and_wide_data_are_refused() {
        let a = Matrix::from_fn(30, 3, |i, j| {
            if j == 2 {
                2.0 * i as f64
            } else {
                (i * (j + 1)) as f64
            }
        });
        let p = LeastSquares::new(a, Vector::zeros(30), 0.0).unwrap();
        assert!(matches!(GramLeastSquares::new(&p), Err(Error::Data { .. })));
        let wide = LeastSquares::new(
            Matrix::from_fn(2, 4, |i, j| (i + j) as f64),
            Vector::zeros(2),
            0.0,
        )
        .unwrap();
        let err = GramLeastSquares::new(&wide).unwrap_err().to_string();
        assert!(err.contains("not numerically positive definite"), "{err}");
    }
}
