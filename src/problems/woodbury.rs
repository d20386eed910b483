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
use crate::linalg::{cholesky_in_place, solve_lower_in_place, solve_lower_transpose_in_place};
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
                aat: part.tr_mul(&part),
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
