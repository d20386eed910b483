//! Newton directions for models whose Hessian is cI + ÃᵀSÃ (ridge c > 0, diagonal S ≥ 0)
//! when A has fewer rows than features: the m×m system of the Woodbury identity instead of
//! the n×n Hessian. Logistic regression (S = diag(σ(1 − σ))) and least squares (S = 2I) use it.
//!
//! Without an intercept, Ã = A and
//!
//! d = −(cI + AᵀSA)⁻¹g = −(1/c)·(g − AᵀS^½K⁻¹S^½A·g),  K = cI + S^½AAᵀS^½ (m×m, positive definite).
//!
//! With an intercept (A = [Ã 1], the last weight b unpenalized) the same inverse serves the
//! penalized block H_ww = cI + ÃᵀSÃ (K then holds ÃÃᵀ = AAᵀ − 11ᵀ), and the intercept comes
//! from the scalar Schur complement: with h = ÃᵀS1, η = Σᵢ sᵢ, p = H_ww⁻¹g_w and q = H_ww⁻¹h,
//!
//! d_b = (hᵀp − g_b)/(η − hᵀq),  d_w = −(p + q·d_b),
//!
//! with q, hᵀp and η − hᵀq taken through K as [`Dual::direction`] says.
//!
//! AAᵀ is formed once (m²n); a direction then costs a few passes over A, O(m²) to form K and
//! m³/3 to factor it, instead of mn²/2 to form the n×n Hessian and n³/3 to factor it.
//!
//! The formula divides by c what is left of g after the cancellation in g − ÃᵀS^½K⁻¹S^½Ãg, so
//! its error grows like ε‖AAᵀ‖/c; [`Dual::refine`] (used by least squares, whose one Newton
//! step should land on the minimum) corrects it by iterative refinement.

use crate::aligned::AlignedT;
use crate::kernels::{axpys_block, dots_block};
use crate::linalg::{
    cholesky_in_place, cholesky_solve_in_place, solve_lower_in_place, solve_lower_transpose_in_place,
};
use crate::Matrix;

/// Whether the m×m route applies: c > 0 and fewer rows than penalized weights. Such an A is
/// never padded ([`AlignedT::padded`] pads only m ≥ n), so the route reads rows of n entries.
pub(crate) fn applies(at: &AlignedT, lambda: f64, intercept: bool) -> bool {
    let (n, m) = (at.features(), at.ncols());
    lambda > 0.0 && m + usize::from(intercept) < n
}

/// The buffers of the m×m route, sized (and ÃÃᵀ formed) on first use, and again if the
/// intercept setting changes.
#[derive(Debug, Default)]
pub(crate) struct Dual {
    /// ÃÃᵀ (m×m), for `intercept`.
    aat: Matrix,
    intercept: bool,
    /// The c of the factor in `k`.
    c: f64,
    /// cI + S^½ÃÃᵀS^½, then its Cholesky factor (lower triangle).
    k: Matrix,
    /// √sᵢ.
    root: Vec<f64>,
    /// With an intercept: t = K⁻¹S^½1.
    t: Vec<f64>,
    /// m entries of scratch.
    v: Vec<f64>,
    /// With an intercept: H_ww⁻¹g_w and H_ww⁻¹h (n entries each, the last 0).
    p: Vec<f64>,
    q: Vec<f64>,
    /// For [`Dual::refine`]: the residual g + ∇²f·d and a correction (n entries each).
    r: Vec<f64>,
    e: Vec<f64>,
}

/// [`Dual::refine`] stops once ‖g + ∇²f·d‖ ≤ this × ‖g‖: for a quadratic that residual is the
/// gradient after the Newton step, so one step then meets any gradient tolerance above it.
const REFINED: f64 = 1e-12;
/// At most this many corrections.
const MAX_REFINE: usize = 3;

impl Dual {
    /// Forms and factors K = cI + S^½ÃÃᵀS^½ for the m diagonal entries s of S, with `at` = Aᵀ
    /// (n×m); false if K does not factor. Before sizing its two m×m matrices (ÃÃᵀ and K) it
    /// checks that they fit the memory the system reports available, as newton's n×n ones do
    /// (`crate::solve::common::dense_fits`): an error naming newton if not.
    pub(crate) fn factor(
        &mut self,
        at: &AlignedT,
        s: &[f64],
        c: f64,
        intercept: bool,
    ) -> crate::Result<bool> {
        debug_assert_eq!(at.pitch(), at.features(), "the m×m route reads unpadded rows");
        let (n, m) = at.shape();
        if self.aat.shape() != (m, m) || self.intercept != intercept || self.p.len() != n {
            crate::solve::common::dense_fits(m, 2, "newton", None)?;
            // ÃÃᵀ from Ã's own columns (A's without the ones), not AAᵀ − 11ᵀ, which would
            // lose the small part of each entry when the features are small
            let rows = if intercept { n - 1 } else { n };
            let view = at.view();
            let part = view.rows(0, rows);
            *self = Dual {
                aat: gram_of_columns(part),
                intercept,
                c,
                k: Matrix::zeros(m, m),
                root: vec![0.0; m],
                t: vec![0.0; m],
                v: vec![0.0; m],
                p: vec![0.0; n],
                q: vec![0.0; n],
                r: vec![0.0; n],
                e: vec![0.0; n],
            };
        }
        let Dual { aat, k, root, .. } = self;
        for (r, si) in root.iter_mut().zip(s) {
            *r = si.sqrt();
        }
        for j in 0..m {
            for i in j..m {
                k[(i, j)] = root[i] * aat[(i, j)] * root[j];
            }
            k[(j, j)] += c;
        }
        self.c = c;
        Ok(cholesky_in_place(&mut self.k))
    }

    /// d ← −(∇²f)⁻¹g for ∇²f = cI + ÃᵀSÃ (plus the intercept's unpenalized row and column
    /// when there is one), with K as [`Dual::factor`] left it. g and d have n entries. Returns
    /// false, d unspecified, if d is not finite or (with an intercept) the Schur complement is
    /// not positive: the caller then forms the Hessian.
    ///
    /// The intercept's terms come from t = K⁻¹u, u = S^½1, by the push-through identity
    /// (cI + BᵀB)⁻¹Bᵀ = Bᵀ(cI + BBᵀ)⁻¹ with B = S^½Ã: q = ÃᵀS^½t, hᵀp = tᵀS^½Ãg_w and the
    /// Schur complement η − hᵀq = c·uᵀt, positive by construction. (η − hᵀq computed as it
    /// stands cancels: it is of order c while η and hᵀq are of order Σsᵢ.)
    pub(crate) fn direction(&mut self, at: &AlignedT, g: &[f64], d: &mut [f64]) -> bool {
        let n = at.pitch();
        let Dual {
            k,
            root,
            t,
            v,
            p,
            q,
            c,
            intercept,
            ..
        } = self;
        let w = Woodbury {
            at,
            k,
            root,
            c: *c,
            intercept: *intercept,
        };
        if !*intercept {
            w.solve(g, v, d);
            d.iter_mut().for_each(|di| *di = -*di);
            return d.iter().all(|di| di.is_finite());
        }
        let b = n - 1;
        // t = K⁻¹u, u = S^½1 = √s
        t.copy_from_slice(root);
        solve_lower_in_place(k, t);
        solve_lower_transpose_in_place(k, t);
        let schur = *c * root.iter().zip(t.iter()).map(|(u, ti)| u * ti).sum::<f64>();
        if !(schur.is_finite() && schur > 0.0) {
            return false;
        }
        // hᵀp = tᵀ(S^½Ãg_w), from g with the intercept's entry 0
        d.copy_from_slice(g);
        d[b] = 0.0;
        dots_block(at.as_slice(), n, d, v);
        let hp: f64 = v
            .iter()
            .zip(root.iter())
            .zip(t.iter())
            .map(|((vi, ri), ti)| vi * ri * ti)
            .sum();
        // p = H_ww⁻¹g_w; q = ÃᵀS^½t
        w.solve(d, v, p);
        v.iter_mut()
            .zip(root.iter().zip(t.iter()))
            .for_each(|(vi, (ri, ti))| *vi = ri * ti);
        q.fill(0.0);
        axpys_block(at.as_slice(), n, v, q);
        q[b] = 0.0;
        let db = (hp - g[b]) / schur;
        for ((di, pi), qi) in d.iter_mut().zip(p.iter()).zip(q.iter()) {
            *di = -(pi + qi * db);
        }
        d[b] = db;
        d.iter().all(|di| di.is_finite())
    }
}

impl Dual {
    /// Iterative refinement of a direction d from [`Dual::direction`]: r = g + ∇²f·d (two
    /// passes over A), d += −(∇²f)⁻¹r through the same factor, kept while it lowers ‖r‖,
    /// until ‖r‖ ≤ `REFINED`·‖g‖ or `MAX_REFINE` corrections. With a small c the m×m
    /// formula loses digits to cancellation (rhs − ÃᵀS^½K⁻¹S^½Ã·rhs, then divided by c), and a
    /// least-squares Newton step, which should finish in one, took 2–4; refined, it takes one.
    pub(crate) fn refine(&mut self, at: &AlignedT, g: &[f64], d: &mut [f64]) {
        let (mut r, mut e) = (std::mem::take(&mut self.r), std::mem::take(&mut self.e));
        let scale = REFINED * norm(g);
        let mut rn = self.residual(at, g, d, &mut r);
        for _ in 0..MAX_REFINE {
            // (a NaN residual stops too)
            if rn <= scale || rn.is_nan() || !self.direction(at, &r, &mut e) {
                break;
            }
            e.iter_mut().zip(d.iter()).for_each(|(ei, di)| *ei += di);
            let tried = self.residual(at, g, &e, &mut r);
            if tried >= rn || tried.is_nan() {
                break;
            }
            d.copy_from_slice(&e);
            rn = tried;
        }
        (self.r, self.e) = (r, e);
    }

    /// r ← g + ∇²f·d, ∇²f = AᵀSA + c·I (the intercept's entry unpenalized); returns ‖r‖.
    fn residual(&mut self, at: &AlignedT, g: &[f64], d: &[f64], r: &mut [f64]) -> f64 {
        let n = at.pitch();
        let v = &mut self.v;
        dots_block(at.as_slice(), n, d, v);
        v.iter_mut().zip(&self.root).for_each(|(vi, ri)| *vi *= ri * ri);
        for ((ri, gi), di) in r.iter_mut().zip(g).zip(d) {
            *ri = self.c.mul_add(*di, *gi);
        }
        if self.intercept {
            r[n - 1] = g[n - 1];
        }
        axpys_block(at.as_slice(), n, v, r);
        norm(r)
    }
}

/// Newton directions for softmax regression with fewer rows than penalized features and
/// λ > 0, by the Woodbury identity on an mk×mk system instead of the nk×nk Hessian.
///
/// With Sᵢ = diag(pᵢ) − pᵢpᵢᵀ (row i's k probabilities) and c = 2λ, the Hessian in vec order
/// (class-major) is cI + Σᵢ Sᵢ ⊗ aᵢaᵢᵀ. Each Sᵢ = FᵢᵀFᵢ with Fᵢ = diag(√pᵢ)(I − 1pᵢᵀ):
/// (I − pᵢ1ᵀ)diag(pᵢ)(I − 1pᵢᵀ) = diag(pᵢ) − 2pᵢpᵢᵀ + pᵢ(Σ_c p_ic)pᵢᵀ = Sᵢ, as Σ_c p_ic = 1.
/// So the Hessian is cI + BᵀB with B's row block i = Fᵢ ⊗ aᵢᵀ (k × nk), and
///
/// d = −(cI + BᵀB)⁻¹g = −(1/c)·(g − BᵀK⁻¹B·g),  K = cI + BBᵀ (mk×mk, positive definite),
///
/// where K's block (i, j) is (aᵢᵀaⱼ)·FᵢFⱼᵀ, entry (ρ, σ) = (aᵢᵀaⱼ)·√p_iρ·√p_jσ·(δ_ρσ − p_iσ −
/// p_jρ + pᵢᵀpⱼ); B·g is Fᵢ applied to row i's scores Gᵀaᵢ (G = g as n×k), Fᵢz = √pᵢ ⊙ (z −
/// (pᵢᵀz)1); and Bᵀu = AᵀQ with row i of Q equal to Fᵢᵀuᵢ = √pᵢ ⊙ uᵢ − pᵢ·Σ_c √p_ic u_ic.
///
/// With an intercept (A = [Ã 1], the k intercepts b unpenalized), B̃ and K are made of Ã, the
/// penalized block is H_ww = cI + B̃ᵀB̃, and with E the mk×k matrix of row blocks Fᵢ:
/// H_wb = B̃ᵀE, H_bb = EᵀE. Eliminating d_w = −H_ww⁻¹(g_w + H_wb·d_b) leaves the k×k system
///
/// T·d_b = EᵀK⁻¹B̃g_w − g_b,  T = H_bb − H_bwH_ww⁻¹H_wb = c·EᵀK⁻¹E,
///
/// by the push-through identity B̃H_ww⁻¹ = K⁻¹B̃ and I − K⁻¹B̃B̃ᵀ = cK⁻¹. T is singular along 1
/// (Fᵢ1 = 0: a common shift of the intercepts changes no probability), and so is the Hessian;
/// the right side is orthogonal to 1 (Σ_c g_bc = Σᵢ Σ_c (p_ic − y_ic) = 0), so d_b is taken
/// from (T + τ11ᵀ)d_b = rhs, τ = T's mean diagonal entry, whose solution has 1ᵀd_b = 0 and
/// solves T·d_b = rhs: the Newton direction with the intercepts' sum unchanged.
///
/// ÃÃᵀ is formed once (m²n); a direction then costs a few passes over A (k scores a row, a
/// rank-k update), m²k² to form K and (mk)³/3 to factor it (with an intercept, k more
/// solves with the factor), against m(nk)²/2 and (nk)³/3 for the Hessian. At 200 × 20 000
/// with k = 4 the Hessian would be 80 000 × 80 000 (51 GB).
#[derive(Debug, Default)]
pub(crate) struct ClassDual {
    /// ÃÃᵀ (m×m), for `intercept`.
    aat: Matrix,
    intercept: bool,
    /// cI + B̃B̃ᵀ, then its Cholesky factor (lower triangle); mk×mk, row i·k + ρ.
    k: Matrix,
    /// √p, row i's k at i·k.
    root: Vec<f64>,
    /// mk entries of scratch.
    u: Vec<f64>,
    /// With an intercept: K⁻¹E (column σ at σ·mk), the Cholesky factor of T + τ11ᵀ (k×k), k
    /// entries of scratch, and n·k (the right side h = g_w + H_wb·d_b).
    ke: Vec<f64>,
    t: Matrix,
    r: Vec<f64>,
    h: Vec<f64>,
    /// For [`ClassDual::refine`]: the residual g + ∇²f·d and a trial direction (n·k each).
    res: Vec<f64>,
    trial: Vec<f64>,
}

/// uᵢ ← Fᵢuᵢ = √pᵢ ⊙ (uᵢ − (pᵢᵀuᵢ)1) for every row i (k entries each).
fn apply_f(u: &mut [f64], p: &[f64], root: &[f64], k: usize) {
    for ((ui, pi), ri) in u
        .chunks_exact_mut(k)
        .zip(p.chunks_exact(k))
        .zip(root.chunks_exact(k))
    {
        let pu: f64 = ui.iter().zip(pi).map(|(a, b)| a * b).sum();
        for (uc, rc) in ui.iter_mut().zip(ri) {
            *uc = rc * (*uc - pu);
        }
    }
}

/// uᵢ ← Sᵢuᵢ = pᵢ ⊙ (uᵢ − (pᵢᵀuᵢ)1), Sᵢ = diag(pᵢ) − pᵢpᵢᵀ, for every row i (k entries each):
/// the softmax Hessian's weights on row i's scores.
#[inline]
pub(super) fn apply_s(u: &mut [f64], p: &[f64], k: usize) {
    for (ui, pi) in u.chunks_exact_mut(k).zip(p.chunks_exact(k)) {
        let pu: f64 = ui.iter().zip(pi).map(|(a, b)| a * b).sum();
        for (uc, pc) in ui.iter_mut().zip(pi) {
            *uc = pc * (*uc - pu);
        }
    }
}

/// uᵢ ← −Fᵢᵀuᵢ = −(√pᵢ ⊙ uᵢ − pᵢ·Σ_c √p_ic u_ic) for every row i (k entries each).
fn apply_minus_ft(u: &mut [f64], p: &[f64], root: &[f64], k: usize) {
    for ((ui, pi), ri) in u
        .chunks_exact_mut(k)
        .zip(p.chunks_exact(k))
        .zip(root.chunks_exact(k))
    {
        let s: f64 = ui.iter().zip(ri).map(|(a, b)| a * b).sum();
        for ((uc, rc), pc) in ui.iter_mut().zip(ri).zip(pi) {
            *uc = pc * s - rc * *uc;
        }
    }
}

impl ClassDual {
    /// Forms and factors K (and with an intercept T + τ11ᵀ) for the probabilities `p` (row i's
    /// k at i·k) of softmax with `classes` classes and ridge c = 2λ > 0, with `at` = Aᵀ (n×m,
    /// unpadded; with an intercept its last row the ones); false if either does not factor.
    /// Before sizing K (and ÃÃᵀ, on first use) it checks that they fit the memory available
    /// (`crate::solve::common::dense_fits`): an error naming newton if not.
    pub(crate) fn factor(
        &mut self,
        at: &AlignedT,
        p: &[f64],
        classes: usize,
        c: f64,
        intercept: bool,
    ) -> crate::Result<bool> {
        debug_assert_eq!(at.pitch(), at.features(), "the mk×mk route reads unpadded rows");
        let (n, m, kk) = (at.features(), at.ncols(), classes);
        let size = m * kk;
        if self.k.shape() != (size, size) || self.aat.shape() != (m, m) || self.intercept != intercept {
            crate::solve::common::dense_fits(size, 2, "newton", None)?;
            // Ã's own columns, not AAᵀ − 11ᵀ (see `Dual::factor`)
            let view = at.view();
            let rows = if intercept { n - 1 } else { n };
            let with_b = |len: usize| if intercept { len } else { 0 };
            *self = ClassDual {
                aat: gram_of_columns(view.rows(0, rows)),
                intercept,
                k: Matrix::zeros(size, size),
                root: vec![0.0; size],
                u: vec![0.0; size],
                ke: vec![0.0; with_b(size * kk)],
                t: Matrix::zeros(with_b(kk), with_b(kk)),
                r: vec![0.0; with_b(kk)],
                h: vec![0.0; with_b(n * kk)],
                res: vec![0.0; n * kk],
                trial: vec![0.0; n * kk],
            };
        }
        let ClassDual { aat, k, root, .. } = self;
        for (r, pi) in root.iter_mut().zip(p) {
            *r = pi.max(0.0).sqrt();
        }
        let (p, root) = (&p[..size], &*root);
        for j in 0..m {
            let (pj, rj) = (&p[j * kk..(j + 1) * kk], &root[j * kk..(j + 1) * kk]);
            for i in j..m {
                let (pi, ri) = (&p[i * kk..(i + 1) * kk], &root[i * kk..(i + 1) * kk]);
                let g = aat[(i, j)];
                let pp: f64 = pi.iter().zip(pj).map(|(a, b)| a * b).sum();
                for sigma in 0..kk {
                    // column j·kk + σ, rows i·kk + ρ (from ρ = σ on the diagonal block)
                    let col = j * kk + sigma;
                    let from = if i == j { sigma } else { 0 };
                    for rho in from..kk {
                        let delta = if rho == sigma { 1.0 } else { 0.0 };
                        let f = delta - pi[sigma] - pj[rho] + pp;
                        k[(i * kk + rho, col)] = g * ri[rho] * rj[sigma] * f;
                    }
                }
            }
        }
        for d in 0..size {
            k[(d, d)] += c;
        }
        if !cholesky_in_place(k) {
            return Ok(false);
        }
        if !intercept {
            return Ok(true);
        }
        // K⁻¹E, E's column σ holding Fᵢe_σ = √pᵢ ⊙ (e_σ − p_iσ1) in row block i
        let ClassDual { k, ke, t, .. } = self;
        let e = |i: usize, rho: usize, sigma: usize| {
            let delta = if rho == sigma { 1.0 } else { 0.0 };
            root[i * kk + rho] * (delta - p[i * kk + sigma])
        };
        for (sigma, col) in ke.chunks_exact_mut(size).enumerate() {
            for (idx, v) in col.iter_mut().enumerate() {
                *v = e(idx / kk, idx % kk, sigma);
            }
            cholesky_solve_in_place(k, col);
        }
        // T = c·EᵀK⁻¹E, then + τ11ᵀ
        for sigma in 0..kk {
            let col = &ke[sigma * size..(sigma + 1) * size];
            for rho in 0..kk {
                let dot: f64 = col
                    .iter()
                    .enumerate()
                    .map(|(idx, v)| e(idx / kk, idx % kk, rho) * v)
                    .sum();
                t[(rho, sigma)] = c * dot;
            }
        }
        let tau = (0..kk).map(|i| t[(i, i)]).sum::<f64>() / kk as f64;
        t.add_scalar_mut(tau);
        Ok(tau.is_finite() && tau > 0.0 && cholesky_in_place(t))
    }

    /// out ← H_ww⁻¹·rhs = (rhs − B̃ᵀK⁻¹B̃·rhs)/c, rhs with its intercepts 0 (if any), out's set
    /// to 0; `u` (mk entries) is scratch.
    #[allow(clippy::too_many_arguments)]
    fn inverse(
        k: &Matrix,
        at: &AlignedT,
        p: &[f64],
        root: &[f64],
        kk: usize,
        (c, intercept): (f64, bool),
        (rhs, u, out): (&[f64], &mut [f64], &mut [f64]),
    ) {
        let n = at.pitch();
        // row i's scores zᵢ = Gᵀaᵢ (the ones meet zero intercepts), then Fᵢzᵢ
        crate::class_kernels::class_scores(at.as_slice(), n, rhs, kk, u);
        apply_f(u, p, root, kk);
        cholesky_solve_in_place(k, u);
        // −Fᵢᵀuᵢ, so that the rank update below adds −B̃ᵀK⁻¹B̃·rhs. (Its sum Σ_c √p_ic u_ic is
        // 0 but for rounding: B̃'s range, and so K⁻¹B̃·rhs, is orthogonal to every √pᵢ, since
        // √pᵢᵀFᵢz = pᵢᵀz − (pᵢᵀz)Σ_c p_ic = 0; it is kept as the formula has it.)
        apply_minus_ft(u, p, root, kk);
        out.copy_from_slice(rhs);
        crate::class_kernels::class_gradient(at.as_slice(), n, u, kk, out, &[]);
        out.iter_mut().for_each(|o| *o /= c);
        if intercept {
            for o in out.chunks_exact_mut(n) {
                o[n - 1] = 0.0;
            }
        }
    }

    /// d ← −(∇²f)⁻¹g for ∇²f = cI + Σᵢ Sᵢ ⊗ aᵢaᵢᵀ (the intercepts' entries unpenalized, the
    /// direction's intercepts summing to 0), with K as [`ClassDual::factor`] left it for the
    /// same p (row i's k at i·k); g and d hold n·k entries in vec order. False, d unspecified,
    /// if d is not finite.
    pub(crate) fn direction(
        &mut self,
        at: &AlignedT,
        p: &[f64],
        classes: usize,
        c: f64,
        g: &[f64],
        d: &mut [f64],
    ) -> bool {
        let (n, kk) = (at.pitch(), classes);
        let ClassDual {
            k,
            root,
            u,
            t,
            r,
            h,
            intercept,
            ..
        } = self;
        let intercept = *intercept;
        if !intercept {
            Self::inverse(k, at, p, root, kk, (c, false), (g, u, d));
            d.iter_mut().for_each(|di| *di = -*di);
            return d.iter().all(|di| di.is_finite());
        }
        // rhs = EᵀK⁻¹B̃g_w − g_b
        h.copy_from_slice(g);
        for hc in h.chunks_exact_mut(n) {
            hc[n - 1] = 0.0;
        }
        crate::class_kernels::class_scores(at.as_slice(), n, h, kk, u);
        apply_f(u, p, root, kk);
        cholesky_solve_in_place(k, u);
        apply_minus_ft(u, p, root, kk);
        r.fill(0.0);
        for ui in u.chunks_exact(kk) {
            for (rc, uc) in r.iter_mut().zip(ui) {
                *rc -= uc;
            }
        }
        for (rc, gc) in r.iter_mut().zip(g.chunks_exact(n)) {
            *rc -= gc[n - 1];
        }
        // d_b from (T + τ11ᵀ)d_b = rhs, then centred (its sum is 0 but for rounding)
        cholesky_solve_in_place(t, r);
        let mean = r.iter().sum::<f64>() / kk as f64;
        r.iter_mut().for_each(|rc| *rc -= mean);
        // h = g_w + H_wb·d_b = g_w + B̃ᵀ(E·d_b): row i's Fᵢᵀ(Fᵢd_b) = Sᵢd_b through Ã
        for ui in u.chunks_exact_mut(kk) {
            ui.copy_from_slice(r);
        }
        apply_s(u, p, kk);
        crate::class_kernels::class_gradient(at.as_slice(), n, u, kk, h, &[]);
        for hc in h.chunks_exact_mut(n) {
            hc[n - 1] = 0.0;
        }
        // d_w = −H_ww⁻¹h, d_b as solved
        Self::inverse(k, at, p, root, kk, (c, true), (h, u, d));
        d.iter_mut().for_each(|di| *di = -*di);
        for (dc, bc) in d.chunks_exact_mut(n).zip(r.iter()) {
            dc[n - 1] = *bc;
        }
        d.iter().all(|di| di.is_finite())
    }

    /// Iterative refinement of a direction from [`ClassDual::direction`], as
    /// [`Dual::refine`] does it: r = g + ∇²f·d (two passes over A), d += −(∇²f)⁻¹r through the
    /// same factors, kept while it lowers ‖r‖, until ‖r‖ ≤ `REFINED`·‖g‖ or `MAX_REFINE`
    /// corrections. The formula divides by c what is left after a cancellation, and with an
    /// intercept T = c·EᵀK⁻¹E multiplies by c what K⁻¹ makes of order 1/c: at λ = 1e-12 on
    /// nearly separable classes (40 × 3000, 4 classes) the direction was too far off for
    /// Newton to go on, ending at ‖∇f‖ = 27.
    pub(crate) fn refine(
        &mut self,
        at: &AlignedT,
        p: &[f64],
        classes: usize,
        c: f64,
        g: &[f64],
        d: &mut [f64],
    ) {
        let (mut r, mut e) = (std::mem::take(&mut self.res), std::mem::take(&mut self.trial));
        let scale = REFINED * norm(g);
        let mut rn = self.residual(at, p, classes, c, g, d, &mut r);
        for _ in 0..MAX_REFINE {
            // (a NaN residual stops too)
            if rn <= scale || rn.is_nan() || !self.direction(at, p, classes, c, &r, &mut e) {
                break;
            }
            e.iter_mut().zip(d.iter()).for_each(|(ei, di)| *ei += di);
            let tried = self.residual(at, p, classes, c, g, &e, &mut r);
            if tried >= rn || tried.is_nan() {
                break;
            }
            d.copy_from_slice(&e);
            rn = tried;
        }
        (self.res, self.trial) = (r, e);
    }

    /// r ← g + ∇²f·d = g + Σᵢ aᵢ ⊗ Sᵢ(Dᵀaᵢ) + c·Pd (the intercepts unpenalized); returns ‖r‖.
    #[allow(clippy::too_many_arguments)]
    fn residual(
        &mut self,
        at: &AlignedT,
        p: &[f64],
        kk: usize,
        c: f64,
        g: &[f64],
        d: &[f64],
        r: &mut [f64],
    ) -> f64 {
        let n = at.pitch();
        let u = &mut self.u;
        crate::class_kernels::class_scores(at.as_slice(), n, d, kk, u);
        apply_s(u, p, kk);
        for ((ri, gi), di) in r.iter_mut().zip(g).zip(d) {
            *ri = c.mul_add(*di, *gi);
        }
        if self.intercept {
            for (rc, gc) in r.chunks_exact_mut(n).zip(g.chunks_exact(n)) {
                rc[n - 1] = gc[n - 1];
            }
        }
        crate::class_kernels::class_gradient(at.as_slice(), n, u, kk, r, &[]);
        norm(r)
    }
}

/// VᵀV for V = Aᵀ (n×m, column i = row i of A): AAᵀ, m×m. By matrix products (nalgebra's
/// gemm) over slabs of 2048 features, each copied transposed (2048·m entries), not by
/// `tr_mul`'s dot product per entry: a logistic Newton solve at 100 × 20 000 (λ = 1, 8
/// iterations, one thread) took 34–36 ms against 83–182 ms. One transposed copy of the whole of
/// Aᵀ took 41–45 ms, and would double the memory A holds.
fn gram_of_columns(v: nalgebra::DMatrixView<'_, f64>) -> Matrix {
    const SLAB: usize = 2048;
    let (n, m) = v.shape();
    let mut g = Matrix::zeros(m, m);
    for start in (0..n).step_by(SLAB) {
        let part = v.rows(start, SLAB.min(n - start));
        g.gemm(1.0, &part.transpose(), &part, 1.0);
    }
    g
}

/// ‖x‖₂ by [`crate::numeric::norm2`] (which does not overflow for large entries).
fn norm(x: &[f64]) -> f64 {
    crate::numeric::norm2(&nalgebra::DVectorView::from_slice(x, x.len()))
}

/// (cI + ÃᵀSÃ)⁻¹ by the Woodbury identity, from the Cholesky factor of
/// K = cI + S^½ÃÃᵀS^½; Ã is A, or A without its last column (the intercept's ones).
struct Woodbury<'a> {
    at: &'a AlignedT,
    k: &'a Matrix,
    root: &'a [f64],
    c: f64,
    intercept: bool,
}

impl Woodbury<'_> {
    /// out ← (rhs − ÃᵀS^½K⁻¹S^½Ã·rhs)/c, with `v` (m entries) as scratch. With an intercept,
    /// rhs's last entry must be 0, and out's is set to 0.
    fn solve(&self, rhs: &[f64], v: &mut [f64], out: &mut [f64]) {
        let n = self.at.pitch();
        dots_block(self.at.as_slice(), n, rhs, v);
        v.iter_mut().zip(self.root).for_each(|(vi, ri)| *vi *= ri);
        solve_lower_in_place(self.k, v);
        solve_lower_transpose_in_place(self.k, v);
        v.iter_mut().zip(self.root).for_each(|(vi, ri)| *vi *= -ri);
        out.copy_from_slice(rhs);
        axpys_block(self.at.as_slice(), n, v, out);
        out.iter_mut().for_each(|o| *o /= self.c);
        if self.intercept {
            out[n - 1] = 0.0;
        }
    }
}
