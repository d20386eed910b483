use super::woodbury::{self, Dual};
use super::{
    add_ridge_gradient, add_ridge_hessian, check_h, check_nonempty, check_out, check_x,
    repeat_diagonal_block, ridge_value, Objective,
};
use crate::aligned::AlignedT;
use crate::class_kernels::ClassPass;
use crate::error::{check_finite, check_lambda, check_len, Result};
use crate::gram::{weighted_gram, Block, GramScratch};
use crate::kernels::{
    axpy, axpys_block, fused_rows, pipelined_rows, row_blocks, rows_block, rows_range, weighted_gram_vec,
};
use crate::linalg::{cholesky_in_place, cholesky_solve_in_place};
use crate::{Matrix, Vector};

/// Least squares with an optional ridge term, with one or several right-hand sides.
///
/// With A (m×n), B (m×k) and the unknown X (n×k) flattened column-major into x (length n·k):
///
/// - f(X) = ‖AX − B‖_F² + λ‖X‖_F²
/// - ∇f = 2Aᵀ(AX − B) + 2λX
/// - ∇²f = I_k ⊗ (2AᵀA + 2λI_n) (block diagonal: the columns of X do not interact)
///
/// For k = 1 this is the seeds' ‖Ax − b‖² with ∇ = 2Aᵀ(Ax − b) and ∇² = 2AᵀA (identity table,
/// row ‖Ax − b‖²; the matrix row ‖AX − B‖_F² → 2Aᵀ(AX − B)); λ > 0 is ridge regression.
///
/// A is stored row-contiguous (as Aᵀ), so the fused cost-and-gradient reads each row aᵢ once:
/// rᵢ = aᵢᵀX − bᵢ, f += ‖rᵢ‖², ∇f += 2aᵢrᵢᵀ, one pass over the data. With k > 1 the k
/// residuals of a block of rows and its rank update go through the register tiles of
/// `crate::class_kernels` (as softmax regression's scores and gradient do), which read X and
/// write the gradient in vec order.
///
/// With [`LeastSquares::with_intercept`], A's last column is all ones and the last row of X
/// (each target's intercept) is not penalized: λ‖X‖_F² then sums over the other rows.
#[derive(Debug)]
pub struct LeastSquares {
    at: AlignedT,
    b: Matrix,
    lambda: f64,
    intercept: bool,
    /// The second thread's gradient on large data.
    spare: std::sync::Mutex<Vec<f64>>,
    /// Packing buffers for the Hessian.
    gram: std::sync::Mutex<GramScratch>,
    /// The buffers of the pass over A with k > 1.
    classes: std::sync::Mutex<ClassPass>,
    /// Newton's m×m route with fewer rows than features: its buffers and S = 2I's diagonal.
    dual: std::sync::Mutex<(Dual, Vec<f64>)>,
    /// Newton's route with several targets: the Cholesky factor of 2AᵀA + 2λP, the Hessian's
    /// diagonal block (`None` until first asked; `Some(None)` if it does not factor).
    block: std::sync::Mutex<Option<Option<Matrix>>>,
}

impl LeastSquares {
    /// One right-hand side: f(x) = ‖Ax − b‖² + λ‖x‖², A m×n, b of length m.
    ///
    /// Errors if the lengths disagree, any value is not finite, or λ < 0.
    ///
    /// ```
    /// use gradfit::problems::{LeastSquares, Objective};
    /// use gradfit::{Matrix, Vector};
    /// let a = Matrix::from_row_slice(2, 1, &[1.0, 1.0]);
    /// let p = LeastSquares::new(a, Vector::from_vec(vec![1.0, 3.0]), 0.0)?;
    /// // f(2) = (2 − 1)² + (2 − 3)² = 2
    /// assert_eq!(p.value(&Vector::from_vec(vec![2.0]))?, 2.0);
    /// # Ok::<(), gradfit::Error>(())
    /// ```
    pub fn new(a: Matrix, b: Vector, lambda: f64) -> Result<Self> {
        let m = b.len();
        Self::multi(a, Matrix::from_column_slice(m, 1, b.as_slice()), lambda)
    }

    /// Several right-hand sides: B is m×k, and x = vec(X) has length n·k.
    pub fn multi(a: Matrix, b: Matrix, lambda: f64) -> Result<Self> {
        check_nonempty(&a)?;
        check_len("rows of b", a.nrows(), b.nrows())?;
        crate::error::check_finite_matrix("A", &a)?;
        check_finite("b", b.iter())?;
        check_lambda(lambda)?;
        // one right-hand side: rows padded as logistic's are (the single-target passes take x
        // and g padded to match); several: unpadded, as the class kernels read them. Measured
        // on AMD EPYC (Zen 4), floor bench, one thread pinned, two runs each in alternation, the
        // fused pass against a stream read of A as stored: 20000 × 50 1.46–1.51× against
        // 2.38–2.84× unpadded (rows of 52 through the registers), 20000 × 201 1.25–1.31× against
        // 1.69–1.87×, 12800 × 317 1.13–1.24× against 1.30–1.73× (the woven rows)
        let at = if b.ncols() == 1 {
            AlignedT::padded(&a)
        } else {
            AlignedT::of(&a)
        };
        Ok(LeastSquares {
            at,
            b,
            lambda,
            intercept: false,
            spare: std::sync::Mutex::new(Vec::new()),
            gram: std::sync::Mutex::new(GramScratch::default()),
            classes: std::sync::Mutex::new(ClassPass::by_entries()),
            dual: std::sync::Mutex::new((Dual::default(), Vec::new())),
            block: std::sync::Mutex::new(None),
        })
    }

    /// Declares A's last column an intercept (all ones, checked) whose coefficients are not
    /// penalized by λ.
    ///
    /// ```
    /// use gradfit::problems::{LeastSquares, Objective};
    /// use gradfit::{Matrix, Vector};
    /// // A = [1; 1] is only the intercept: λ does not shrink it, the minimizer is mean(b) = 2
    /// let p = LeastSquares::new(Matrix::from_element(2, 1, 1.0), Vector::from_vec(vec![1.0, 3.0]), 5.0)?
    ///     .with_intercept(true)?;
    /// let (_, g) = p.cost_and_gradient(&Vector::from_element(1, 2.0))?;
    /// assert_eq!(g[0], 0.0);
    /// # Ok::<(), gradfit::Error>(())
    /// ```
    pub fn with_intercept(mut self, intercept: bool) -> Result<Self> {
        let n = self.n();
        if intercept && self.at.view().row(n - 1).iter().any(|&v| v != 1.0) {
            return Err(crate::Error::Data {
                what: "least squares: with an intercept the last column of A must be all ones".into(),
            });
        }
        self.intercept = intercept;
        // a factor formed without the intercept's setting would be stale
        self.block = std::sync::Mutex::new(None);
        Ok(self)
    }

    /// Whether the last row of X is an unpenalized intercept.
    pub fn intercept(&self) -> bool {
        self.intercept
    }

    fn penalized(&self) -> impl Fn(usize) -> bool {
        let n = self.n();
        let intercept = self.intercept;
        move |j| !(intercept && j % n == n - 1)
    }

    /// A as stored: the rows of A one after another (Aᵀ column-major), the memory every pass
    /// over the data reads, for benchmarks that compare a pass with a plain read of it. With
    /// one right-hand side, rows of up to 124 entries are padded with zeros to a multiple of 4
    /// (from 53 entries to a multiple of 8 when A holds 12 MB or more), and rows of 125 to 1024
    /// to a multiple of 8, when A has at least as many rows as that padded length, so this
    /// holds m times that many entries.
    pub fn stored_rows(&self) -> &[f64] {
        self.at.as_slice()
    }

    /// The design matrix A (a copy: it is stored transposed, row-contiguous, perhaps padded).
    pub fn a(&self) -> Matrix {
        self.at.view().rows(0, self.n()).transpose()
    }

    /// The right-hand sides B (m×k).
    pub fn b(&self) -> &Matrix {
        &self.b
    }

    /// The ridge coefficient λ.
    pub fn lambda(&self) -> f64 {
        self.lambda
    }

    /// A's columns. With one right-hand side A's rows may be stored padded
    /// ([`AlignedT::padded`]), and the kernels' row length is then the pitch.
    pub(super) fn n(&self) -> usize {
        self.at.features()
    }

    pub(super) fn k(&self) -> usize {
        self.b.ncols()
    }

    /// m, the number of rows of A.
    pub(super) fn rows(&self) -> usize {
        self.at.ncols()
    }

    /// Newton's direction with several targets from the factor of the Hessian's diagonal block
    /// (see [`Objective::newton_direction_into`]); `Ok(false)` with one target or if the block
    /// does not factor.
    fn block_direction(&self, x: &Vector, g: &Vector, d: &mut Vector) -> Result<bool> {
        if self.k() == 1 {
            return Ok(false);
        }
        check_out(self.dim(), x, d)?;
        check_len("gradient g", self.dim(), g.len())?;
        let n = self.n();
        let mut block = super::lock(&self.block);
        if block.is_none() {
            // the block and, while it is formed, the packed kernel's second n×n sum and tiles
            // (about n²/2 a thread): four, as Newton counts its own (with three, a tight
            // `ulimit -v` still aborted inside the kernel)
            crate::solve::common::dense_fits(n, 4, "newton", None)?;
            let mut h = self.gram_matrix("newton")?;
            h *= 2.0;
            add_ridge_hessian(&mut h, self.lambda, self.penalized());
            *block = Some(cholesky_in_place(&mut h).then_some(h));
        }
        let Some(Some(l)) = block.as_ref() else {
            return Ok(false);
        };
        for (gc, dc) in g
            .as_slice()
            .chunks_exact(n)
            .zip(d.as_mut_slice().chunks_exact_mut(n))
        {
            dc.copy_from_slice(gc);
            cholesky_solve_in_place(l, dc);
            dc.iter_mut().for_each(|v| *v = -*v);
        }
        Ok(d.iter().all(|v| v.is_finite()))
    }

    /// AᵀA (both triangles), by the packed kernel of the Hessian; an [`Error::Memory`](crate::Error)
    /// naming `method` if its n×n matrix cannot be allocated.
    pub(super) fn gram_matrix(&self, method: &str) -> crate::error::Result<Matrix> {
        let n = self.n();
        let mut h = crate::solve::common::dense_zeros(n, method)?;
        weighted_gram(
            &self.at,
            &Block::WHOLE,
            |_, _| 1.0,
            &mut h,
            &mut super::lock(&self.gram),
        );
        Ok(h)
    }

    /// AᵀB (n×k), in one pass over the rows.
    pub(super) fn normal_rhs(&self) -> Matrix {
        let (n, k, at, b) = (self.n(), self.k(), &self.at, &self.b);
        let mut c = Matrix::zeros(n, k);
        if k == 1 {
            // rows of the pitch's length, c padded to match
            let pitch = at.pitch();
            at.with_padded_mut(c.as_mut_slice(), |c| {
                fused_rows(at, c, &self.spare, |lo, hi, g| {
                    for (start, end) in row_blocks(pitch, lo, hi) {
                        axpys_block(rows_block(at, start, end), pitch, &b.as_slice()[start..end], g);
                    }
                    0.0
                })
            });
            return c;
        }
        fused_rows(at, c.as_mut_slice(), &self.spare, |lo, hi, g| {
            for (i, ai) in (lo..hi).zip(rows_range(at, lo, hi)) {
                for (c, gc) in g.chunks_exact_mut(n).enumerate() {
                    axpy(b[(i, c)], ai, gc);
                }
            }
            0.0
        });
        c
    }

    /// ‖AX − B‖_F² without the ridge term, by the evaluation's own pass.
    pub(super) fn residual_value(&self, x: &Vector) -> f64 {
        self.fused(x, None)
    }

    /// Σᵢ ‖aᵢᵀX − bᵢ‖² and, with `g` (zeroed by the caller), g += 2Σᵢ aᵢ(aᵢᵀX − bᵢ)ᵀ: one
    /// pass over A, split over two threads on large data.
    fn fused(&self, x: &Vector, g: Option<&mut [f64]>) -> f64 {
        let k = self.k();
        if k == 1 {
            // x, and g if asked for, padded to the pitch of A as stored
            let at = &self.at;
            return at.with_padded(x.as_slice(), |xp| match g {
                Some(g) => at.with_padded_mut(g, |gp| {
                    fused_rows(at, gp, &self.spare, |lo, hi, g| self.pass(xp, lo, hi, g))
                }),
                None => fused_rows(at, &mut [], &self.spare, |lo, hi, g| self.pass(xp, lo, hi, g)),
            });
        }
        let b = &self.b;
        let mut classes = super::lock(&self.classes);
        classes.run(&self.at, x.as_slice(), k, g, |lo, hi, z| {
            let mut f = 0.0;
            for (i, zi) in (lo..hi).zip(z.chunks_exact_mut(k)) {
                for (c, zc) in zi.iter_mut().enumerate() {
                    let r = *zc - b[(i, c)];
                    f += r * r;
                    *zc = 2.0 * r;
                }
            }
            f
        })
    }
}

impl LeastSquares {
    /// Rows lo..hi with one right-hand side: returns Σᵢ (aᵢᵀx − bᵢ)² and, unless `g` is empty, adds
    /// 2Σᵢ aᵢ(aᵢᵀx − bᵢ) to it; in blocks of rows that stay in L1 or L2 (`block_rows`). x and g
    /// (unless empty) are padded to the pitch of A as stored.
    fn pass(&self, x: &[f64], lo: usize, hi: usize, g: &mut [f64]) -> f64 {
        #[cfg(target_arch = "x86_64")]
        {
            if crate::cpu::avx2() {
                // SAFETY: the CPU has the features `pass_avx2` is compiled for (checked above)
                return unsafe { self.pass_avx2(x, lo, hi, g) };
            }
        }
        self.pass_portable(x, lo, hi, g)
    }

    /// [`LeastSquares::pass`] with the residuals four rows at a time ([`ResidualQuads`]), so
    /// that rows which fit the registers go through `crate::kernels::pipelined_quads_avx2`'s
    /// one sweep on AVX-512 (each quad's dot products, the residuals of the quad before, the
    /// axpys of the one before that), where the block pass runs a block's dot products, then its
    /// residuals, then its axpys. f and the gradient are the same to the bit as
    /// [`LeastSquares::pass_portable`]'s (the same dot products, residuals, coefficients 2rᵢ and
    /// axpys, in the same order). Measured against the block pass,
    /// `gradfit solve --solver lbfgs --gram off`, one thread pinned, best of ten, four runs in
    /// alternation: 20000 × 50 7.94–8.03 ms against 9.95–10.27 ms (0.80×), 2000 × 50 0.80–0.82
    /// ms against 0.98–1.01 ms (one run of each at 1.01 and 1.17 ms).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn pass_avx2(&self, x: &[f64], lo: usize, hi: usize, g: &mut [f64]) -> f64 {
        let mut quads = ResidualQuads {
            b: self.b.as_slice(),
            f: 0.0,
        };
        crate::kernels::pipelined_quads_avx2(&self.at, lo, hi, x, g, &mut quads);
        quads.f
    }

    /// [`LeastSquares::pass`] for any CPU: each block's dot products, then its residuals rᵢ =
    /// aᵢᵀx − bᵢ (f += rᵢ², coefficient 2rᵢ), then its axpys, by `crate::kernels::pipelined_rows`.
    fn pass_portable(&self, x: &[f64], lo: usize, hi: usize, g: &mut [f64]) -> f64 {
        let b = self.b.as_slice();
        let mut f = 0.0;
        pipelined_rows(&self.at, lo, hi, x, g, |start, z, _| {
            for (zi, bi) in z.iter_mut().zip(&b[start..]) {
                let r = *zi - bi;
                f += r * r;
                *zi = 2.0 * r;
            }
        });
        f
    }
}

impl Objective for LeastSquares {
    /// ‖AX − B‖² + λ‖X‖² ≥ 0 is a convex quadratic: its minimum is always attained.
    fn has_minimum(&self) -> bool {
        true
    }

    fn dim(&self) -> usize {
        self.n() * self.k()
    }

    /// f = Σᵢ ‖aᵢᵀX − bᵢ‖² + λ‖X‖_F²: the same pass (and rows per thread) as the fused
    /// evaluation, without its gradient, so the two agree to the last bit.
    fn value(&self, x: &Vector) -> Result<f64> {
        check_x(self.dim(), x)?;
        let f = self.residual_value(x);
        Ok(f + ridge_value(x, self.lambda, self.penalized()))
    }

    /// ∇f = 2Σᵢ aᵢ(aᵢᵀX − bᵢ) + 2λX, in the same pass as f.
    fn value_and_gradient_into(&self, x: &Vector, g: &mut Vector) -> Result<f64> {
        check_out(self.dim(), x, g)?;
        g.fill(0.0);
        let f = self.fused(x, Some(g.as_mut_slice()));
        add_ridge_gradient(g, x, self.lambda, self.penalized());
        Ok(f + ridge_value(x, self.lambda, self.penalized()))
    }

    /// ∇²f = I_k ⊗ (2AᵀA + 2λI_penalized), AᵀA by the packed lower-triangle kernel
    /// (`crate::gram`).
    fn hessian_into(&self, x: &Vector, h: &mut Matrix) -> Result<()> {
        check_h(self.dim(), x, h)?;
        let n = self.n();
        // the first diagonal block 2AᵀA (weighted_gram zeroes the rest), copied to the others;
        // AᵀA doubled afterwards, exactly (the kernel would take weight 2 as √2·aᵢ on both
        // sides, and (√2)² = 2 + 4.4e-16)
        weighted_gram(
            &self.at,
            &Block::WHOLE,
            |_, _| 1.0,
            h,
            &mut super::lock(&self.gram),
        );
        let mut first = h.view_mut((0, 0), (n, n));
        first *= 2.0;
        repeat_diagonal_block(h, n, self.k());
        add_ridge_hessian(h, self.lambda, self.penalized());
        Ok(())
    }

    /// With fewer rows than penalized weights and λ > 0, column by column of X by the m×m
    /// Woodbury system (`super::woodbury`): each diagonal block of ∇²f is 2λI + Aᵀ(2I)A, the
    /// intercept (if any) unpenalized. Otherwise, with several targets, column by column
    /// through the Cholesky factor of that n×n block, formed once: ∇²f = I_k ⊗ (2AᵀA + 2λP) is
    /// block diagonal, and Newton would otherwise form and factor the nk×nk matrix (at 5000
    /// rows × 100 features with 100 targets, 57 s and 2.4 GB). `Ok(false)` with one target
    /// (Newton forms the same n×n matrix itself) or if the block does not factor (Newton then
    /// damps).
    fn newton_direction_into(&self, x: &Vector, g: &Vector, d: &mut Vector) -> Result<bool> {
        if !woodbury::applies(&self.at, self.lambda, self.intercept) {
            return self.block_direction(x, g, d);
        }
        check_out(self.dim(), x, d)?;
        check_len("gradient g", self.dim(), g.len())?;
        let (n, m) = (self.at.features(), self.at.ncols());
        let (dual, s) = &mut *super::lock(&self.dual);
        if s.len() != m {
            s.clear();
            s.resize(m, 2.0);
        }
        // K does not depend on x or on the column: one factor, then a solve per column
        if !dual.factor(&self.at, s, 2.0 * self.lambda, self.intercept)? {
            return Ok(false);
        }
        for (gc, dc) in g
            .as_slice()
            .chunks_exact(n)
            .zip(d.as_mut_slice().chunks_exact_mut(n))
        {
            if !dual.direction(&self.at, gc, dc) {
                return Ok(false);
            }
            // a quadratic: the Newton step should finish in one, so refine the direction
            dual.refine(&self.at, gc, dc);
        }
        Ok(true)
    }

    /// ∇²f·v = 2Σᵢ aᵢ(aᵢᵀV) + 2λV, with V the n×k reshaping of v.
    fn hessian_vec_into(&self, x: &Vector, v: &Vector, out: &mut Vector) -> Result<()> {
        check_out(self.dim(), x, out)?;
        check_len("direction v", self.dim(), v.len())?;
        let k = self.k();
        out.fill(0.0);
        if k == 1 {
            weighted_gram_vec(&self.at, |_| 2.0, v.as_slice(), out.as_mut_slice(), &self.spare);
            add_ridge_gradient(out, v, self.lambda, self.penalized());
            return Ok(());
        }
        // the same pass as the gradient with coefficients 2AV: out = 2Aᵀ(AV)
        let mut classes = super::lock(&self.classes);
        classes.run(&self.at, v.as_slice(), k, Some(out.as_mut_slice()), |_, _, u| {
            u.iter_mut().for_each(|uc| *uc *= 2.0);
            0.0
        });
        add_ridge_gradient(out, v, self.lambda, self.penalized());
        Ok(())
    }
}

crate::impl_argmin_traits!(LeastSquares);

/// The residuals of one right-hand side four rows at a time, for
/// `crate::kernels::pipelined_quads_avx2`: rᵢ = zᵢ − bᵢ from the dot products zᵢ = aᵢᵀx, the
/// coefficient 2rᵢ (the factor of aᵢ in ∇f = 2Σᵢ aᵢrᵢ), and f = Σᵢ rᵢ² added row after row, as
/// the block pass adds it, so f is the same to the bit. (Summed in four lanes instead, f moved
/// in its last bits, and argmin's L-BFGS with five pairs, on the raw diabetes data, no longer
/// reached a tolerance of 1e-10: its line search failed after 9743 iterations.)
#[cfg(target_arch = "x86_64")]
struct ResidualQuads<'b> {
    b: &'b [f64],
    f: f64,
}

#[cfg(target_arch = "x86_64")]
impl crate::kernels::Quads for ResidualQuads<'_> {
    /// r = z − b for rows row..row + 4: adds r₀², r₁², r₂², r₃² to f in turn, returns 2r (as
    /// r + r, exact).
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn quad(&mut self, row: usize, z: std::arch::x86_64::__m256d) -> std::arch::x86_64::__m256d {
        use std::arch::x86_64::*;
        let r = _mm256_sub_pd(z, crate::kernels::four_at(self.b, row));
        let squares = _mm256_mul_pd(r, r);
        let (low, high) = (
            _mm256_castpd256_pd128(squares),
            _mm256_extractf128_pd::<1>(squares),
        );
        let mut f = self.f;
        for half in [low, high] {
            f += _mm_cvtsd_f64(half);
            f += _mm_cvtsd_f64(_mm_unpackhi_pd(half, half));
        }
        self.f = f;
        _mm256_add_pd(r, r)
    }

    fn rows(&mut self, start: usize, z: &mut [f64]) {
        for (zi, bi) in z.iter_mut().zip(&self.b[start..]) {
            let r = *zi - bi;
            self.f += r * r;
            *zi = 2.0 * r;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{cholesky_step, own_newton_step};
    use super::*;

    #[test]
    fn several_targets_take_newtons_direction_from_the_diagonal_block() {
        // ∇²f = I_k ⊗ (2AᵀA + 2λP): the direction from the n×n block's factor against a
        // Cholesky solve of the nk×nk Hessian, with and without an intercept and ridge, in the
        // row form and the Gram form; one target and a block that does not factor (a column of
        // zeros, λ = 0) leave it to Newton
        let (m, n, k) = (40, 6, 3);
        // full-rank pseudo-random entries (sin((i·n + j)·c) would be rank 2)
        let noise = |i: usize, j: usize| {
            let h = ((i * 7919 + j * 104_729 + 3) as f64 * 0.618_033_988_7).sin() * 43_758.545_3;
            2.0 * (h - h.floor()) - 1.0
        };
        let a = Matrix::from_fn(m, n, |i, j| noise(i, j) * (1.0 + j as f64));
        let b = Matrix::from_fn(m, k, |i, c| noise(i, n + c) * 3.0);
        let mut ones = a.clone();
        ones.column_mut(n - 1).fill(1.0);
        let x = Vector::from_fn(n * k, |j, _| (j as f64 * 0.4).cos());
        for (a, intercept) in [(&a, false), (&ones, true)] {
            for lambda in [0.0, 0.5] {
                let what = format!("λ = {lambda}, intercept {intercept}");
                let p = LeastSquares::multi(a.clone(), b.clone(), lambda)
                    .unwrap()
                    .with_intercept(intercept)
                    .unwrap();
                let (g, d) = own_newton_step(&p, &x, &what);
                let want = cholesky_step(&p, &x, &g);
                assert!(
                    (&d - &want).amax() <= 1e-12 * want.amax(),
                    "{what}: {d} vs {want}"
                );
                // one Newton step lands on the minimum: the gradient at x + d is rounding
                let (_, g1) = p.cost_and_gradient(&(&x + &d)).unwrap();
                assert!(
                    g1.amax() <= 1e-10 * g.amax(),
                    "{what}: ‖∇f(x + d)‖ = {:e}",
                    g1.amax()
                );
                let gram = crate::problems::GramLeastSquares::new(&p).unwrap();
                let (gg, dg) = own_newton_step(&gram, &x, &what);
                assert!((&gg - &g).amax() <= 1e-10 * g.amax(), "{what}");
                assert!(
                    (&dg - &want).amax() <= 1e-10 * want.amax(),
                    "{what} (Gram form): {dg} vs {want}"
                );
            }
        }
        let one = LeastSquares::new(a.clone(), b.column(0).into_owned(), 0.5).unwrap();
        let mut zero = a.clone();
        zero.column_mut(1).fill(0.0);
        let singular = LeastSquares::multi(zero, b.clone(), 0.0).unwrap();
        for p in [one, singular] {
            let x = Vector::zeros(p.dim());
            let (_, g) = p.cost_and_gradient(&x).unwrap();
            let mut d = Vector::zeros(p.dim());
            assert!(!p.newton_direction_into(&x, &g, &mut d).unwrap());
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn residuals_four_rows_at_a_time_match_the_block_pass() {
        // the AVX2 pass (residuals four rows at a time, through the register sweep on AVX-512)
        // against the block pass: the same f and gradient to the bit, and f against Σ rᵢ² from
        // nalgebra. Every path of a pass (`PASS_SHAPES`), row ranges as one thread and two take
        // them, and a NaN x
        if !crate::kernels::tests::has_avx2_fma("the four-row pass is") {
            return;
        }
        for (m, n) in crate::kernels::tests::PASS_SHAPES {
            let a = Matrix::from_fn(m, n, |i, j| {
                ((i * n + j) as f64 * 0.37).sin() * (1.0 + (i % 5) as f64)
            });
            let b = Vector::from_fn(m, |i, _| (i as f64 * 0.71).cos() * 3.0);
            let p = LeastSquares::new(a.clone(), b.clone(), 0.0).unwrap();
            let x = Vector::from_fn(n, |j, _| 1.0 - 0.01 * j as f64);
            let r = &a * &x - &b;
            // the passes take x and g padded to the pitch of A as stored
            let pitch = p.at.pitch();
            let mut xp = vec![0.0; pitch];
            xp[..n].copy_from_slice(x.as_slice());
            let mid = crate::kernels::split_point(m);
            for (lo, hi) in [(0, m), (0, mid), (mid, m), (m / 3, m)] {
                let (mut g_quads, mut g_blocks) = (vec![0.0; pitch], vec![0.0; pitch]);
                // SAFETY: the CPU has AVX2 and FMA (checked above)
                let f_quads = unsafe { p.pass_avx2(&xp, lo, hi, &mut g_quads) };
                let f_blocks = p.pass_portable(&xp, lo, hi, &mut g_blocks);
                assert_eq!(g_quads, g_blocks, "{m}×{n} rows {lo}..{hi}");
                assert_eq!(f_quads.to_bits(), f_blocks.to_bits(), "{m}×{n} rows {lo}..{hi}");
                let want: f64 = r.rows(lo, hi - lo).iter().map(|ri| ri * ri).sum();
                assert!(
                    (f_quads - want).abs() <= 1e-12 * want.max(1.0),
                    "{m}×{n} rows {lo}..{hi}: {f_quads} against {want}"
                );
                // the value alone: the same sweep without the axpys, the same f to the bit
                // SAFETY: as above
                assert_eq!(
                    unsafe { p.pass_avx2(&xp, lo, hi, &mut []) }.to_bits(),
                    f_quads.to_bits()
                );
            }
            xp[0] = f64::NAN;
            let mut g = vec![0.0; pitch];
            // SAFETY: as above
            assert!(unsafe { p.pass_avx2(&xp, 0, m, &mut g) }.is_nan(), "{m}×{n}");
            assert!(g[..n].iter().all(|gj| gj.is_nan()), "{m}×{n}");
        }
    }

    #[test]
    fn wide_ridge_newton_direction_is_the_direct_solve() {
        // m = 6 < n = 15, k = 2 targets, λ > 0, without and with an intercept: the m×m route's
        // direction against a Cholesky solve of the n·k × n·k Hessian; from x = 0 the Newton
        // step is the ridge solution itself, checked against (AᵀA + λP)X = AᵀB
        let (m, n, k) = (6, 15, 2);
        let a = Matrix::from_fn(m, n, |i, j| ((i * n + j) as f64 * 0.61).cos());
        let mut ones = a.clone();
        ones.column_mut(n - 1).fill(1.0);
        let b = Matrix::from_fn(m, k, |i, c| (i as f64 + 0.5 * c as f64).sin());
        for (a, intercept) in [(a, false), (ones, true)] {
            for lambda in [1e-2, 3.0] {
                let p = LeastSquares::multi(a.clone(), b.clone(), lambda)
                    .unwrap()
                    .with_intercept(intercept)
                    .unwrap();
                let x0 = Vector::zeros(n * k);
                let what = format!("λ = {lambda}, intercept {intercept}");
                let (g, d) = own_newton_step(&p, &x0, &what);
                let want = cholesky_step(&p, &x0, &g);
                assert!((&d - &want).amax() <= 1e-9 * want.amax(), "{what}: {d} vs {want}");
                let mut normal = a.transpose() * &a;
                for j in 0..n - usize::from(intercept) {
                    normal[(j, j)] += lambda;
                }
                let direct = normal.cholesky().unwrap().solve(&(a.transpose() * &b));
                let direct = Vector::from_column_slice(direct.as_slice());
                assert!((&d - &direct).amax() <= 1e-9 * direct.amax(), "{what}");
            }
        }
    }

    #[test]
    fn wide_ridge_step_with_a_tiny_lambda_zeroes_the_gradient() {
        // a quadratic: from x = 0 one Newton step lands on the minimum, so the gradient there
        // (by the fused pass, not the direction code) must vanish to rounding. With λ tiny
        // against AAᵀ the m×m formula loses digits to cancellation; refined, the step still
        // leaves ‖∇f‖ ≤ 1e-10·‖∇f(0)‖ (1e-15 to 6e-14 here; unrefined, 1e-7 to 2e-4); one and
        // two targets (each column refined against its own gradient)
        let (m, n) = (40, 200);
        let a = Matrix::from_fn(m, n, |i, j| {
            ((i * n + j) as f64 * 0.61).cos() + ((i + 3 * j) as f64 * 0.13).sin()
        });
        let mut ones = a.clone();
        ones.column_mut(n - 1).fill(1.0);
        let b = Matrix::from_fn(m, 2, |i, c| (i as f64 * 0.7 + c as f64).sin());
        for (a, intercept) in [(a, false), (ones, true)] {
            for (lambda, k) in [(1e-6, 1), (1e-9, 1), (1e-9, 2)] {
                let p = LeastSquares::multi(a.clone(), b.columns(0, k).into_owned(), lambda)
                    .unwrap()
                    .with_intercept(intercept)
                    .unwrap();
                let (g, d) = own_newton_step(&p, &Vector::zeros(n * k), "step");
                let (_, g1) = p.cost_and_gradient(&d).unwrap();
                let ratio = g1.norm() / g.norm();
                assert!(
                    ratio <= 1e-10,
                    "λ = {lambda}, intercept {intercept}: ‖∇f‖ ratio {ratio:e}"
                );
            }
        }
    }

    #[test]
    fn wide_ridge_direction_follows_a_change_of_intercept() {
        // the m×m buffers hold ÃÃᵀ for one intercept setting: a problem used without an
        // intercept and then declared to have one (and back) must rebuild them
        let (m, n) = (5, 12);
        let mut a = Matrix::from_fn(m, n, |i, j| ((i * n + j) as f64 * 0.37).sin());
        a.column_mut(n - 1).fill(1.0);
        let b = Vector::from_fn(m, |i, _| i as f64);
        let x = Vector::from_fn(n, |j, _| j as f64 * 0.1);
        let mut p = LeastSquares::new(a, b, 0.5).unwrap();
        for intercept in [false, true, false] {
            p = p.with_intercept(intercept).unwrap();
            let (g, d) = own_newton_step(&p, &x, &format!("intercept {intercept}"));
            let want = cholesky_step(&p, &x, &g);
            assert!(
                (&d - &want).amax() <= 1e-9 * want.amax(),
                "intercept {intercept}: {d} vs {want}"
            );
        }
    }

    #[test]
    fn hessian_is_twice_the_gram_matrix_to_the_bit() {
        // the kernel forms AᵀA (weights 1) and the Hessian doubles it exactly
        for (m, n) in [(300, 13), (3000, 21)] {
            let a = Matrix::from_fn(m, n, |i, j| ((i * n + j) as f64 * 0.37).sin());
            let p = LeastSquares::new(a, Vector::from_element(m, 1.0), 0.0).unwrap();
            let h = p.hessian_matrix(&Vector::zeros(n)).unwrap();
            assert_eq!(h, p.gram_matrix("test").unwrap() * 2.0, "{m}×{n}");
        }
    }

    #[test]
    fn two_by_two_by_hand() {
        // A = [[1, 2], [3, 4]], b = (1, 1), x = (1, −1), λ = 0.5:
        // Ax − b = (−2, −2); f = 8 + 0.5·2 = 9
        // ∇f = 2Aᵀ(−2, −2) + x = 2·(−8, −12) + (1, −1) = (−15, −25)
        let a = Matrix::from_row_slice(2, 2, &[1.0, 2.0, 3.0, 4.0]);
        let p = LeastSquares::new(a, Vector::from_vec(vec![1.0, 1.0]), 0.5).unwrap();
        let x = Vector::from_vec(vec![1.0, -1.0]);
        let (f, g) = p.cost_and_gradient(&x).unwrap();
        assert_eq!(f, 9.0);
        assert_eq!(g.as_slice(), &[-15.0, -25.0]);
        // ∇² = 2AᵀA + I = 2[[10, 14], [14, 20]] + I
        let h = p.hessian_matrix(&x).unwrap();
        assert_eq!(h.as_slice(), &[21.0, 28.0, 28.0, 41.0]);
    }

    #[test]
    fn wrong_length_is_an_error_not_a_panic() {
        let p = LeastSquares::new(Matrix::identity(2, 2), Vector::zeros(2), 0.0).unwrap();
        assert!(p.value(&Vector::zeros(3)).is_err());
        assert!(LeastSquares::new(Matrix::identity(2, 2), Vector::zeros(3), 0.0).is_err());
        assert!(LeastSquares::new(Matrix::identity(2, 2), Vector::zeros(2), -1.0).is_err());
    }

    #[test]
    fn several_targets_give_the_closed_forms() {
        // ‖AX − B‖_F² + λ‖X‖_F² with k targets through the class pass, on one thread and split
        // between two (`agrees_with_closed_forms`): f, ∇f = vec(2Aᵀ(AX − B) + 2λX) and
        // ∇²f = I_k ⊗ 2AᵀA + 2λI, with X flattened column-major
        for (m, n, k) in [(37, 5, 2), (203, 50, 3), (2003, 37, 10)] {
            let a = Matrix::from_fn(m, n, |i, j| ((i * n + j) as f64 * 0.37).sin());
            let b = Matrix::from_fn(m, k, |i, c| ((i * k + c) as f64 * 0.11).cos());
            let lambda = 0.25;
            let xm = Matrix::from_fn(n, k, |j, c| 0.2 * ((j * k + c) as f64 * 1.3).cos());
            let x = Vector::from_column_slice(xm.as_slice());
            let v = Vector::from_fn(n * k, |j, _| (j as f64 * 0.7).sin());
            let r = &a * &xm - &b;
            let f_want = r.norm_squared() + lambda * xm.norm_squared();
            let gm = 2.0 * a.transpose() * &r + 2.0 * lambda * &xm;
            let g_want = Vector::from_column_slice(gm.as_slice());
            let block = 2.0 * a.transpose() * &a;
            let mut h_want = Matrix::identity(n * k, n * k) * (2.0 * lambda);
            for c in 0..k {
                let mut h = h_want.view_mut((c * n, c * n), (n, n));
                h += &block;
            }
            let make = || LeastSquares::multi(a.clone(), b.clone(), lambda).unwrap();
            let what = format!("{m}×{n}, {k} targets");
            super::super::agrees_with_closed_forms(make, &x, &v, (f_want, &g_want, &h_want), &what);
        }
    }

    #[test]
    fn padded_rows_give_the_closed_forms() {
        // one right-hand side: rows padded to a multiple of 4, long ones to a multiple of 8 (201
        // to 208, 317 to 320), with and without an intercept: f, ∇f, ∇²f, ∇²f·v, AᵀA, Aᵀb and A
        // itself against nalgebra on the unpadded A (the derivatives on one thread and split
        // between two: `agrees_with_closed_forms`)
        for (m, n) in [(37, 5), (203, 50), (2003, 37), (300, 201), (700, 317)] {
            let mut a = Matrix::from_fn(m, n, |i, j| ((i * n + j) as f64 * 0.37).sin());
            let b = Vector::from_fn(m, |i, _| (i as f64 * 0.11).cos());
            for intercept in [false, true] {
                if intercept {
                    a.column_mut(n - 1).fill(1.0);
                }
                let lambda = 0.25;
                let p = LeastSquares::new(a.clone(), b.clone(), lambda)
                    .unwrap()
                    .with_intercept(intercept)
                    .unwrap();
                let what = format!("{m}×{n}, intercept {intercept}");
                assert!(p.at.pitch() > n, "{what}: not padded");
                assert_eq!(p.a(), a, "{what}: A");
                let x = Vector::from_fn(n, |j, _| 0.2 * (j as f64 * 1.3).cos());
                let v = Vector::from_fn(n, |j, _| (j as f64 * 0.7).sin());
                let mut ridge = Matrix::identity(n, n) * lambda;
                if intercept {
                    ridge[(n - 1, n - 1)] = 0.0;
                }
                let r = &a * &x - &b;
                let f_want = r.norm_squared() + (x.transpose() * &ridge * &x)[0];
                let g_want = 2.0 * a.transpose() * &r + 2.0 * &ridge * &x;
                let h_want = 2.0 * a.transpose() * &a + 2.0 * &ridge;
                let make = || {
                    LeastSquares::new(a.clone(), b.clone(), lambda)
                        .unwrap()
                        .with_intercept(intercept)
                        .unwrap()
                };
                super::super::agrees_with_closed_forms(make, &x, &v, (f_want, &g_want, &h_want), &what);
                let close = |got: &Matrix, want: &Matrix| (got - want).amax() <= 1e-12 * want.amax();
                assert!(
                    close(&p.gram_matrix("test").unwrap(), &(a.transpose() * &a)),
                    "{what}: AᵀA"
                );
                let atb = a.transpose() * &b;
                assert!(
                    close(&p.normal_rhs(), &Matrix::from_column_slice(n, 1, atb.as_slice())),
                    "{what}: Aᵀb"
                );
            }
        }
    }
}
