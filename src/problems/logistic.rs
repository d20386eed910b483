use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, TryLockError};

use super::woodbury::{self, Dual};
use super::{
    add_ridge_gradient, add_ridge_hessian, check_h, check_nonempty, check_out, check_x, ridge_value,
    Objective,
};
use crate::aligned::AlignedT;
use crate::error::{check_finite_matrix, check_lambda, check_len, Error, Result};
use crate::gram::{weighted_gram, Block, GramScratch};
#[cfg(target_arch = "x86_64")]
use crate::kernels::pipelined_quads_avx2;
use crate::kernels::{fused_rows, pass_dots_all, pipelined_rows, split_point, weighted_gram_vec};
#[cfg(target_arch = "x86_64")]
use crate::vmath::LogisticQuads;
use crate::vmath::{logistic_terms, sigmoid_curvature_in_place, Keep};
use crate::{Matrix, Vector};

/// Logistic regression: f(w) = Σᵢ [log(1 + exp zᵢ) − yᵢzᵢ] + λ Σⱼ wⱼ², z = Aw, yᵢ ∈ {0, 1}.
///
/// With σ the sigmoid and s = σ(z) ⊙ (1 − σ(z)):
///
/// - ∇f = Aᵀ(σ(z) − y) + 2λw
/// - ∇²f = Aᵀdiag(s)A + 2λI
///
/// Derivation from the seeds: log(1 + eᶻ) = lse([0, z]), whose gradient is the second entry of
/// softmax([0, z]), i.e. σ(z), and whose Hessian diag(p) − ppᵀ has that entry σ − σ² = σ(1 − σ);
/// the affine chain rule (∇g = Aᵀ∇f, ∇²g = Aᵀ∇²f A) over the rows gives the sums above. The
/// term −yz is linear in w. log(1 + eᶻ) is computed as z + log(1 + e⁻ᶻ) for z > 0, so z = 1000
/// gives 1000, not inf.
///
/// With an intercept, A's last column is all ones and the last weight is not penalized (the
/// sum over j skips it). A is stored row-contiguous: the fused cost-and-gradient is one pass,
/// zᵢ = aᵢᵀw then ∇f += (σ(zᵢ) − yᵢ)aᵢ.
#[derive(Debug)]
pub struct Logistic {
    at: AlignedT,
    y: Vector,
    lambda: f64,
    intercept: bool,
    scratch: Mutex<Scratch>,
    /// The second thread's gradient on large data.
    spare: std::sync::Mutex<Vec<f64>>,
    /// Set by the first call that needs curvature weights (a Hessian, a Hessian-vector product
    /// or the m×m Newton direction): from then on each fused cost-and-gradient also keeps its
    /// zᵢ in `kept` (unless another caller holds it at that moment; then it runs without).
    /// It is never cleared: a later first-order solve on the same problem pays for copying z
    /// (m stores a pass).
    keep: AtomicBool,
    kept: Mutex<Kept>,
}

/// z = Ax from the last cost-and-gradient, at `x` (none while `x` is empty). Newton asks for
/// the Hessian at the point whose gradient it has just evaluated, so the curvature weights
/// need not read A again: at 20000 × 50 on one thread that pass was 6.5% of a Newton solve.
#[derive(Debug, Default)]
struct Kept {
    z: Vec<f64>,
    x: Vec<f64>,
}

/// Buffers for the Hessian only (sized on first use).
#[derive(Debug, Default)]
struct Scratch {
    /// σ(zᵢ)(1 − σ(zᵢ)) at `at_x`.
    s: Vec<f64>,
    at_x: Vec<f64>,
    gram: GramScratch,
    dual: Dual,
}

impl Logistic {
    /// The ridge coefficient λ.
    pub fn lambda(&self) -> f64 {
        self.lambda
    }

    /// A is m×n (its last column the intercept's ones when `intercept`), y has m entries in
    /// {0, 1}, λ ≥ 0.
    ///
    /// ```
    /// use gradfit::problems::{Logistic, Objective};
    /// use gradfit::{Matrix, Vector};
    /// // at w = 0 every σ = ½: f = m·log 2 and ∇f = Aᵀ(½·1 − y)
    /// let a = Matrix::from_row_slice(2, 1, &[1.0, 2.0]);
    /// let p = Logistic::new(a, Vector::from_vec(vec![1.0, 0.0]), 0.0, false)?;
    /// let (f, g) = p.cost_and_gradient(&Vector::zeros(1))?;
    /// assert!((f - 2.0 * 2f64.ln()).abs() < 1e-15);
    /// assert_eq!(g[0], 1.0 * (0.5 - 1.0) + 2.0 * 0.5);
    /// # Ok::<(), gradfit::Error>(())
    /// ```
    pub fn new(a: Matrix, y: Vector, lambda: f64, intercept: bool) -> Result<Self> {
        check_nonempty(&a)?;
        check_len("number of labels y", a.nrows(), y.len())?;
        check_finite_matrix("A", &a)?;
        check_lambda(lambda)?;
        if let Some(i) = y.iter().position(|&v| v != 0.0 && v != 1.0) {
            return Err(Error::Data {
                what: format!("logistic: label {} at row {} is not 0 or 1", y[i], i),
            });
        }
        if intercept && a.column(a.ncols() - 1).iter().any(|&v| v != 1.0) {
            return Err(Error::Data {
                what: "logistic: with an intercept the last column of A must be all ones".into(),
            });
        }
        Ok(Logistic {
            at: AlignedT::padded(&a),
            y,
            lambda,
            intercept,
            scratch: Mutex::new(Scratch::default()),
            spare: std::sync::Mutex::new(Vec::new()),
            keep: AtomicBool::new(false),
            kept: Mutex::new(Kept::default()),
        })
    }

    /// A as stored: the rows of A one after another (Aᵀ column-major), the memory every pass
    /// over the data reads, for benchmarks that compare a pass with a plain read of it. Rows
    /// of up to 124 entries are padded with zeros to a multiple of 4 (from 53 entries to a
    /// multiple of 8 when A holds 12 MB or more), and rows of 125 to 1024 to a multiple of 8,
    /// when A has at least as many rows as that padded length, so this holds m times that many
    /// entries.
    pub fn stored_rows(&self) -> &[f64] {
        self.at.as_slice()
    }

    /// Whether the last weight is an unpenalized intercept.
    pub fn intercept(&self) -> bool {
        self.intercept
    }

    /// Whether both labels, 0 and 1, occur.
    fn both_classes(&self) -> bool {
        self.y.iter().any(|&v| v == 0.0) && self.y.iter().any(|&v| v == 1.0)
    }

    fn penalized(&self) -> impl Fn(usize) -> bool {
        let last = if self.intercept {
            self.dim().checked_sub(1)
        } else {
            None
        };
        move |j| Some(j) != last
    }

    /// s ← σ(zᵢ)(1 − σ(zᵢ)) at x, unless it already holds them for this x (Newton-CG asks for
    /// many Hessian-vector products at one x: the weights then cost one pass, not one per
    /// product). z comes from the last cost-and-gradient when that was at x, else from a pass
    /// over A with the dot products the cost-and-gradient's pass computes, to the bit
    /// (`crate::kernels::pass_dots`), so that the weights are the same either way.
    fn curvature_weights(&self, x: &Vector, sc: &mut Scratch) {
        self.keep.store(true, Ordering::Relaxed);
        if sc.s.len() == self.at.ncols() && sc.at_x.as_slice() == x.as_slice() {
            return;
        }
        // forgotten first, so that a pass cut short (a panic, the lock recovered) leaves no x
        // beside weights it does not belong to
        sc.at_x.clear();
        let m = self.at.ncols();
        sc.s.resize(m, 0.0);
        let from_kept = {
            let kept = super::lock(&self.kept);
            let hit = kept.x.as_slice() == x.as_slice() && kept.z.len() == m;
            if hit {
                sc.s.copy_from_slice(&kept.z);
            }
            hit
        };
        if !from_kept {
            // on two threads for large A, like the fused pass (this pass is serial work in
            // every Newton iteration otherwise)
            self.at
                .with_padded(x.as_slice(), |xp| pass_dots_all(&self.at, xp, &mut sc.s));
        }
        sigmoid_curvature_in_place(&mut sc.s);
        sc.at_x.extend_from_slice(x.as_slice());
    }
}

impl Logistic {
    /// Rows lo..hi: returns Σᵢ log(1 + e^zᵢ) − yᵢzᵢ and, unless `g` is empty, adds
    /// Σᵢ (σ(zᵢ) − yᵢ)aᵢ to it. Blocks of rows small enough to stay in L1 between the dot
    /// products and the axpys; the exponentials and logarithms run vectorized, over a block
    /// ([`Logistic::pass_portable`]) or four rows at a time ([`Logistic::pass_avx2`]).
    ///
    /// `keep` receives every zᵢ of lo..hi once, in order, before they are turned into
    /// coefficients: runs of consecutive rows (the first row's index and their z), a block's
    /// or up to 64 rows at a time.
    ///
    /// x and g (unless empty) are padded to the pitch of A as stored ([`AlignedT`]).
    fn pass(&self, x: &[f64], lo: usize, hi: usize, g: &mut [f64], keep: Keep<'_>) -> f64 {
        #[cfg(target_arch = "x86_64")]
        {
            if crate::cpu::avx2() {
                // SAFETY: the CPU has the features `pass_avx2` is compiled for (checked above)
                return unsafe { self.pass_avx2(x, lo, hi, g, keep) };
            }
        }
        self.pass_portable(x, lo, hi, g, keep)
    }

    /// [`Logistic::pass`] with the exponentials four rows at a time
    /// (`crate::vmath::LogisticQuads`): for rows whose pitch fits the registers (a multiple of
    /// 4, at most 52: short rows of tall data, padded) in one sweep on AVX-512, each four rows'
    /// terms between the next four's dot products and the axpys of the four before
    /// (`crate::kernels::register_sweep`), else a block at a time between its dot products and
    /// axpys, with x, then g, held in registers (`crate::kernels::register_rows`); for other
    /// rows inside the sweeps over A, where they run while the sweep's loads wait on
    /// the cache. Inside the sweeps, measured
    /// against the block pass ([`Logistic::pass_portable`], which AVX2 CPUs took before),
    /// whole solves alternating, 8 pairs: lbfgs on logistic 20000 × 50 0.92× the time on one
    /// thread (0.93× on two), newton 0.98–0.99×; at 20000 × 200 (rows too long for the fused
    /// sweep, so only the dot products carry the terms) 0.98–1.0×.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn pass_avx2(&self, x: &[f64], lo: usize, hi: usize, g: &mut [f64], keep: Keep<'_>) -> f64 {
        let mut quads = LogisticQuads::new(self.y.as_slice(), keep);
        pipelined_quads_avx2(&self.at, lo, hi, x, g, &mut quads);
        quads.total()
    }

    /// [`Logistic::pass`] for any CPU: each block's dot products, then its terms by
    /// [`logistic_terms`], then its axpys (in the sweep of the next block's dot products, or,
    /// for rows that fit the registers on AVX2, right after: `crate::kernels::register_rows`).
    fn pass_portable(&self, x: &[f64], lo: usize, hi: usize, g: &mut [f64], mut keep: Keep<'_>) -> f64 {
        let (at, y, w) = (&self.at, self.y.as_slice(), x);
        let mut data = 0.0;
        pipelined_rows(at, lo, hi, w, g, |start, z, _| {
            if let Some(keep) = keep.as_mut() {
                keep(start, z);
            }
            data += logistic_terms(z, &y[start..start + z.len()]);
        });
        data
    }

    /// The fused pass over all rows, keeping z = Ax in `kept` (one half of it per thread,
    /// each behind its own lock, so the two threads never wait for each other). `xp` is x
    /// padded to the pitch, and g has the pitch's length too.
    fn fused_keeping(
        &self,
        x: &Vector,
        xp: &[f64],
        g: &mut [f64],
        mut kept: std::sync::MutexGuard<'_, Kept>,
    ) -> f64 {
        let m = self.at.ncols();
        kept.x.clear();
        kept.z.resize(m, 0.0);
        let mid = split_point(m);
        let (z1, z2) = kept.z.split_at_mut(mid);
        let halves = [Mutex::new(z1), Mutex::new(z2)];
        let data = fused_rows(&self.at, g, &self.spare, |lo, hi, g| {
            // one thread takes rows 0..m (both halves), two take 0..mid and mid..m
            let mut first = (lo < mid).then(|| super::lock(&halves[0]));
            let mut second = (hi > mid).then(|| super::lock(&halves[1]));
            self.pass(
                xp,
                lo,
                hi,
                g,
                Some(&mut |start, z: &[f64]| {
                    let (a, b) = z.split_at(mid.saturating_sub(start).min(z.len()));
                    if let (Some(h), false) = (first.as_deref_mut(), a.is_empty()) {
                        h[start..start + a.len()].copy_from_slice(a);
                    }
                    if let (Some(h), false) = (second.as_deref_mut(), b.is_empty()) {
                        // b starts at row max(start, mid)
                        let at = start.max(mid) - mid;
                        h[at..at + b.len()].copy_from_slice(b);
                    }
                }),
            )
        });
        kept.x.extend_from_slice(x.as_slice());
        data
    }
}

impl Objective for Logistic {
    /// With λ > 0 the weights are held by the ridge, and the unpenalized intercept too when
    /// both classes are present (with one class alone it runs off); at λ = 0 separable classes
    /// have none.
    fn has_minimum(&self) -> bool {
        self.lambda > 0.0 && (!self.intercept || self.both_classes())
    }

    /// A proof that f has no minimum, given a converged x: one class alone with an intercept
    /// (its term lowers the loss without end), or, at λ = 0, x's own hyperplane putting every
    /// row of label 1 at zᵢ > 0 and every row of label 0 at zᵢ < 0, each by more than the
    /// rounding of its dot product (4n·ε times its products' magnitudes, plus 4n of the
    /// smallest subnormal): the loss then falls without end along x.
    fn not_a_minimum(&self, x: &Vector) -> Option<String> {
        if self.intercept && !self.both_classes() {
            return Some(format!(
                "every label is {}: the unpenalized intercept lowers the loss without end, so there is no minimum",
                self.y.get(0).copied().unwrap_or(0.0)
            ));
        }
        let n = self.at.features();
        if self.lambda != 0.0 || x.len() != n {
            return None;
        }
        let pitch = self.at.pitch().max(1);
        let (rounding, underflow) = (4.0 * n as f64 * f64::EPSILON, 4.0 * n as f64 * f64::from_bits(1));
        let separates = self
            .at
            .as_slice()
            .chunks_exact(pitch)
            .zip(self.y.iter())
            .all(|(row, &yi)| {
                let z: f64 = row[..n].iter().zip(x.iter()).map(|(a, w)| a * w).sum();
                let size: f64 = row[..n].iter().zip(x.iter()).map(|(a, w)| (a * w).abs()).sum();
                let slack = rounding * size + underflow;
                // written so that a NaN separates nothing
                if yi == 1.0 {
                    z > slack
                } else {
                    -z > slack
                }
            });
        separates.then(|| {
            "the classes are linearly separable (this answer's own hyperplane separates them), so at λ = 0 \
             the loss has no minimum: it keeps falling as the weights grow; a ridge term (λ > 0) gives a \
             finite answer"
                .to_string()
        })
    }

    fn dim(&self) -> usize {
        self.at.features()
    }

    /// f = Σ log1p_exp(zᵢ) − yᵢzᵢ + λ‖w_penalized‖²: the same pass (and rows per thread) as
    /// the fused evaluation, without its gradient, so the two agree to the last bit.
    fn value(&self, x: &Vector) -> Result<f64> {
        check_x(self.dim(), x)?;
        let data = self.at.with_padded(x.as_slice(), |xp| {
            fused_rows(&self.at, &mut [], &self.spare, |lo, hi, g| {
                self.pass(xp, lo, hi, g, None)
            })
        });
        Ok(data + ridge_value(x, self.lambda, self.penalized()))
    }

    /// ∇f = Σᵢ (σ(zᵢ) − yᵢ)aᵢ + 2λw_penalized, in the same pass as f.
    fn value_and_gradient_into(&self, x: &Vector, g: &mut Vector) -> Result<f64> {
        check_out(self.dim(), x, g)?;
        g.fill(0.0);
        // keep z if asked to and no other caller is keeping its own at this moment
        let kept = match self.keep.load(Ordering::Relaxed) {
            true => match self.kept.try_lock() {
                Ok(guard) => Some(guard),
                Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
                Err(TryLockError::WouldBlock) => None,
            },
            false => None,
        };
        let data = self.at.with_padded(x.as_slice(), |xp| {
            self.at.with_padded_mut(g.as_mut_slice(), |gp| match kept {
                Some(kept) => self.fused_keeping(x, xp, gp, kept),
                None => fused_rows(&self.at, gp, &self.spare, |lo, hi, g| {
                    self.pass(xp, lo, hi, g, None)
                }),
            })
        });
        add_ridge_gradient(g, x, self.lambda, self.penalized());
        Ok(data + ridge_value(x, self.lambda, self.penalized()))
    }

    /// ∇²f = Aᵀdiag(σ(1 − σ))A + 2λI_penalized, by the packed lower-triangle kernel
    /// (`crate::gram`).
    fn hessian_into(&self, x: &Vector, h: &mut Matrix) -> Result<()> {
        check_h(self.dim(), x, h)?;
        let s = &mut *super::lock(&self.scratch);
        self.curvature_weights(x, s);
        let Scratch { s: weights, gram, .. } = s;
        weighted_gram(&self.at, &Block::WHOLE, |_, i| weights[i], h, gram);
        add_ridge_hessian(h, self.lambda, self.penalized());
        Ok(())
    }

    /// ∇²f·v = Σᵢ σ(1 − σ)(aᵢᵀv)aᵢ + 2λv_penalized: one pass, plus one for the weights when
    /// x is new and its cost-and-gradient did not keep z.
    fn hessian_vec_into(&self, x: &Vector, v: &Vector, out: &mut Vector) -> Result<()> {
        check_out(self.dim(), x, out)?;
        check_len("direction v", self.dim(), v.len())?;
        let s = &mut *super::lock(&self.scratch);
        self.curvature_weights(x, s);
        let weights = &s.s;
        weighted_gram_vec(
            &self.at,
            |i| weights[i],
            v.as_slice(),
            out.as_mut_slice(),
            &self.spare,
        );
        add_ridge_gradient(out, v, self.lambda, self.penalized());
        Ok(())
    }

    /// With fewer rows than penalized weights and λ > 0, by the m×m Woodbury system
    /// (`super::woodbury`): ∇²f = 2λI + AᵀSA, S = diag(σ(1 − σ)), the intercept (if any)
    /// unpenalized. Otherwise `Ok(false)`.
    fn newton_direction_into(&self, x: &Vector, g: &Vector, d: &mut Vector) -> Result<bool> {
        if !woodbury::applies(&self.at, self.lambda, self.intercept) {
            return Ok(false);
        }
        check_out(self.dim(), x, d)?;
        check_len("gradient g", self.dim(), g.len())?;
        let sc = &mut *super::lock(&self.scratch);
        self.curvature_weights(x, sc);
        let Scratch { s, dual, .. } = sc;
        Ok(dual.factor(&self.at, s, 2.0 * self.lambda, self.intercept)?
            && dual.direction(&self.at, g.as_slice(), d.as_mut_slice()))
    }
}

crate::impl_argmin_traits!(Logistic);

#[cfg(test)]
mod tests {
    use super::super::{cholesky_step, own_newton_step};
    use super::*;
    use crate::kernels::pass_dots;

    #[test]
    fn a_missing_class_or_a_separating_answer_proves_no_minimum() {
        // one class alone with an intercept: even with a ridge the intercept runs off
        let a = Matrix::from_row_slice(3, 2, &[1.0, 1.0, 2.0, 1.0, -1.0, 1.0]);
        let one = Logistic::new(a.clone(), Vector::from_vec(vec![0.0, 0.0, 0.0]), 1.0, true).unwrap();
        assert!(!one.has_minimum());
        assert!(one
            .not_a_minimum(&Vector::zeros(2))
            .is_some_and(|m| m.contains("every label is 0")));
        // both classes, λ = 0: w = (1, 0) puts label 1 at z > 0 and label 0 at z < 0
        let y = Vector::from_vec(vec![1.0, 1.0, 0.0]);
        let two = Logistic::new(a.clone(), y.clone(), 0.0, true).unwrap();
        assert!(!two.has_minimum());
        let proof = two.not_a_minimum(&Vector::from_vec(vec![1.0, 0.0]));
        assert!(proof.is_some_and(|m| m.contains("linearly separable")));
        // a plane that misplaces a row proves nothing, nor does any plane with a ridge
        assert!(two.not_a_minimum(&Vector::from_vec(vec![-1.0, 0.0])).is_none());
        let ridge = Logistic::new(a, y, 1.0, true).unwrap();
        assert!(ridge.has_minimum());
        assert!(ridge.not_a_minimum(&Vector::from_vec(vec![1.0, 0.0])).is_none());
    }

    #[test]
    fn extreme_logits_give_exact_limits() {
        // z = ±1000: log(1 + e^1000) − 1·1000 = 0, log(1 + e^−1000) − 0 = 0; σ − y = 0 on both
        let a = Matrix::from_row_slice(2, 1, &[1000.0, -1000.0]);
        let p = Logistic::new(a, Vector::from_vec(vec![1.0, 0.0]), 0.0, false).unwrap();
        let (f, g) = p.cost_and_gradient(&Vector::from_vec(vec![1.0])).unwrap();
        assert_eq!(f, 0.0);
        assert_eq!(g[0], 0.0);
        // the wrong labels: f = 2000 exactly, ∇f = 1000·1 + (−1000)·(−1) = 2000
        let a = Matrix::from_row_slice(2, 1, &[1000.0, -1000.0]);
        let p = Logistic::new(a, Vector::from_vec(vec![0.0, 1.0]), 0.0, false).unwrap();
        let (f, g) = p.cost_and_gradient(&Vector::from_vec(vec![1.0])).unwrap();
        assert_eq!(f, 2000.0);
        assert_eq!(g[0], 2000.0);
    }

    #[test]
    fn hessian_from_the_kept_scores_is_the_fresh_hessian() {
        // once a Hessian has been asked for, the cost-and-gradient keeps z = Ax: the same bits
        // as a pass over A, so the Hessian from them is the fresh one to the bit; the gradient
        // is unchanged by the keeping; kept z from another point is not used. Each size on one
        // thread (both halves of the kept z written by it), then with the rows split between two
        // (forced, when there are two), m odd among them. (37, 5) and (2003, 37) with rows
        // padded to 8 and 40; 16000 × 100 (13 MB, padded to 104, split unforced too) with the
        // short rows woven where the CPU weaves them
        let check = |m: usize, n: usize| {
            let a = Matrix::from_fn(m, n, |i, j| ((i * n + j) as f64 * 0.37).sin());
            let y = Vector::from_fn(m, |i, _| f64::from(u8::from(i % 3 == 0)));
            let new = || Logistic::new(a.clone(), y.clone(), 0.1, false).unwrap();
            let x = Vector::from_fn(n, |j, _| 0.3 * (j as f64).cos());
            let (x2, x3) = (&x * 0.5, &x * 2.0);
            let fresh = |x: &Vector| {
                let mut h = Matrix::zeros(n, n);
                new().hessian_into(x, &mut h).unwrap();
                h
            };
            let p = new();
            let (mut g, mut g_keeping, mut h) = (Vector::zeros(n), Vector::zeros(n), Matrix::zeros(n, n));
            let f = p.value_and_gradient_into(&x, &mut g).unwrap();
            p.hessian_into(&x2, &mut h).unwrap();
            let f_keeping = p.value_and_gradient_into(&x, &mut g_keeping).unwrap();
            assert_eq!(
                (f, &g),
                (f_keeping, &g_keeping),
                "{m}×{n}: keeping changed the gradient"
            );
            {
                let kept = super::super::lock(&p.kept);
                let mut z = vec![0.0; m];
                p.at.with_padded(x.as_slice(), |xp| pass_dots(&p.at, p.at.as_slice(), xp, &mut z));
                assert_eq!(kept.x, x.as_slice());
                assert_eq!(kept.z, z, "{m}×{n}: kept z is not Ax to the bit");
            }
            p.hessian_into(&x, &mut h).unwrap();
            assert_eq!(h, fresh(&x), "{m}×{n}");
            // the Hessian does take the kept z: kept z = 0 labelled as x4 gives every weight ¼
            let x4 = &x * 3.0;
            {
                let mut kept = super::super::lock(&p.kept);
                kept.z.fill(0.0);
                kept.x = x4.as_slice().to_vec();
            }
            p.hessian_into(&x4, &mut h).unwrap();
            assert_eq!(h, fresh(&Vector::zeros(n)), "{m}×{n}: the kept z was not used");
            // kept at x2 now; the Hessian at x3 makes its own pass
            p.value_and_gradient_into(&x2, &mut g).unwrap();
            p.hessian_into(&x3, &mut h).unwrap();
            assert_eq!(h, fresh(&x3), "{m}×{n}");
        };
        for (m, n) in [(37, 5), (2003, 40), (2003, 37), (16000, 100)] {
            check(m, n);
            crate::kernels::tests::forced_split(|| check(m, n));
        }
    }

    #[test]
    fn woodbury_direction_solves_the_newton_system() {
        // m < n, λ > 0: d from the m×m system against a Cholesky solve of the n×n Hessian,
        // at a point with curvature weights far from ¼ (some rows nearly saturated), without
        // and with an intercept (its weight unpenalized: the Schur-complement step)
        let (m, n) = (7, 19);
        let a = Matrix::from_fn(m, n, |i, j| ((i * n + j) as f64 * 0.77).sin() * 2.0);
        let mut with_ones = a.clone();
        with_ones.column_mut(n - 1).fill(1.0);
        let y = Vector::from_fn(m, |i, _| (i % 2) as f64);
        let x = Vector::from_fn(n, |j, _| (j as f64 * 0.4).cos());
        for (a, intercept) in [(&a, false), (&with_ones, true)] {
            for lambda in [1e-3, 0.3, 50.0] {
                let p = Logistic::new(a.clone(), y.clone(), lambda, intercept).unwrap();
                let what = format!("λ = {lambda}, intercept {intercept}");
                let (g, d) = own_newton_step(&p, &x, &what);
                let want = cholesky_step(&p, &x, &g);
                assert!((&d - &want).amax() <= 1e-9 * want.amax(), "{what}: {d} vs {want}");
                // and again at the same x (cached weights and AAᵀ): the same to the bit
                let mut again = Vector::zeros(n);
                assert!(p.newton_direction_into(&x, &g, &mut again).unwrap());
                assert_eq!(again, d, "{what}");
            }
        }
        // small λ and small features, with and without an intercept, features at scale 1 and
        // 1e-4 (λ scaled by the square): the difference from the n×n solve grows like
        // ε‖AAᵀ‖/c on both sides (up to 1.3e-4 here), but stays far from the 9–94%
        // the intercept's Schur complement gave when formed as η − hᵀq (it cancelled), or the
        // 5% of ÃÃᵀ formed as AAᵀ − 11ᵀ with small features
        // (50 rows × 400 features, as the review that found those measured them)
        let (m, n) = (50, 400);
        let a = Matrix::from_fn(m, n, |i, j| ((i * n + j) as f64 * 0.77).sin() * 2.0);
        let y = Vector::from_fn(m, |i, _| (i % 2) as f64);
        let x = Vector::from_fn(n, |j, _| (j as f64 * 0.4).cos() * 0.1);
        for scale in [1.0, 1e-4] {
            let a = &a * scale;
            let mut with_ones = a.clone();
            with_ones.column_mut(n - 1).fill(1.0);
            for (a, intercept) in [(&a, false), (&with_ones, true)] {
                for lambda in [1e-5, 1e-7] {
                    let lambda = lambda * scale * scale;
                    let p = Logistic::new(a.clone(), y.clone(), lambda, intercept).unwrap();
                    let what = format!("λ = {lambda:e}, intercept {intercept}, scale {scale}");
                    let (g, d) = own_newton_step(&p, &x, &what);
                    let want = cholesky_step(&p, &x, &g);
                    let err = (&d - &want).amax() / want.amax();
                    assert!(err <= 1e-3, "{what}: relative error {err:e}");
                }
            }
        }
        // no such route without a ridge term, or with as many rows as penalized weights
        let (m, n) = (7, 19);
        let a = Matrix::from_fn(m, n, |i, j| ((i * n + j) as f64 * 0.77).sin() * 2.0);
        let y = Vector::from_fn(m, |i, _| (i % 2) as f64);
        let x = Vector::from_fn(n, |j, _| (j as f64 * 0.4).cos());
        let mut d = Vector::zeros(n);
        let flat = Logistic::new(a.clone(), y.clone(), 0.0, false).unwrap();
        assert!(!flat.newton_direction_into(&x, &Vector::zeros(n), &mut d).unwrap());
        let square = Matrix::from_fn(n - 1, n, |i, j| {
            if j == n - 1 {
                1.0
            } else {
                ((i * n + j) as f64).sin()
            }
        });
        let yy = Vector::from_fn(n - 1, |i, _| (i % 2) as f64);
        let p = Logistic::new(square, yy, 0.3, true).unwrap();
        assert!(!p.newton_direction_into(&x, &Vector::zeros(n), &mut d).unwrap());
        let tall = Logistic::new(
            a.transpose(),
            Vector::from_fn(n, |i, _| (i % 2) as f64),
            0.3,
            false,
        )
        .unwrap();
        let mut d = Vector::zeros(m);
        assert!(!tall
            .newton_direction_into(&Vector::zeros(m), &Vector::zeros(m), &mut d)
            .unwrap());
    }

    #[test]
    fn intercept_is_not_penalized() {
        let a = Matrix::from_row_slice(2, 2, &[1.0, 1.0, -1.0, 1.0]);
        let p = Logistic::new(a, Vector::from_vec(vec![1.0, 0.0]), 3.0, true).unwrap();
        let h = p.hessian_matrix(&Vector::zeros(2)).unwrap();
        // Aᵀ diag(¼) A = ¼[[2, 0], [0, 2]]; + 2λ on the first weight only
        assert_eq!(h.as_slice(), &[0.5 + 6.0, 0.0, 0.0, 0.5]);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn sweep_with_the_terms_inside_matches_the_block_pass() {
        // the AVX2 pass (terms four rows at a time) against the pass that
        // takes each block's terms after its sweep: the same z and σ − y to the bit, so the
        // same gradient to the bit; the loss only summed in another order. Every path of a pass
        // (`PASS_SHAPES`: registers, four-row sweeps, long and woven rows, rows taken alone),
        // row ranges as one thread and two take them, logits far out (±800) and a NaN x. The scores handed to `keep`: each row's once, in order, equal to
        // A's row times x to the bit.
        if !crate::kernels::tests::has_avx2_fma("the four-row pass is") {
            return;
        }
        for (m, n) in crate::kernels::tests::PASS_SHAPES {
            let mut a = Matrix::from_fn(m, n, |i, j| {
                ((i * n + j) as f64 * 0.37).sin() * (1.0 + (i % 5) as f64)
            });
            if m > 20 {
                // |z| = 800 on rows 3 and 11
                a.row_mut(3).fill(800.0 / n as f64);
                a.row_mut(11).fill(-800.0 / n as f64);
            }
            let y = Vector::from_fn(m, |i, _| f64::from(u8::from(i % 3 != 1)));
            let p = Logistic::new(a.clone(), y.clone(), 0.0, false).unwrap();
            let x = Vector::from_element(n, 1.0);
            // the passes take x and g padded to the pitch of A as stored
            let pitch = p.at.pitch();
            let mut xp = vec![0.0; pitch];
            xp[..n].copy_from_slice(x.as_slice());
            let mid = split_point(m);
            for (lo, hi) in [(0, m), (0, mid), (mid, m), (m / 3, m)] {
                let (mut g_quads, mut g_blocks) = (vec![0.0; pitch], vec![0.0; pitch]);
                // SAFETY: the CPU has AVX2 and FMA (checked above)
                let mut seen = (lo, Vec::new());
                let mut keep = |row: usize, z: &[f64]| {
                    assert_eq!(row, seen.0, "{m}×{n} rows {lo}..{hi}: scores out of order");
                    seen.0 += z.len();
                    seen.1.extend_from_slice(z);
                };
                let f_quads = unsafe { p.pass_avx2(&xp, lo, hi, &mut g_quads, Some(&mut keep)) };
                let mut z = vec![0.0; hi - lo];
                pass_dots(&p.at, &p.at.as_slice()[lo * pitch..hi * pitch], &xp, &mut z);
                assert_eq!(seen, (hi, z), "{m}×{n} rows {lo}..{hi}: kept scores");
                let f_blocks = p.pass_portable(&xp, lo, hi, &mut g_blocks, None);
                assert_eq!(g_quads, g_blocks, "{m}×{n} rows {lo}..{hi}");
                let scale: f64 = (lo..hi).map(|i| (a.row(i) * &x)[0].abs() + 1.0).sum();
                assert!(
                    (f_quads - f_blocks).abs() <= 1e-14 * scale,
                    "{m}×{n} rows {lo}..{hi}: {f_quads} against {f_blocks}"
                );
                // the value alone: the same sweep without the axpys, the same loss to the bit
                // SAFETY: as above
                assert_eq!(
                    unsafe { p.pass_avx2(&xp, lo, hi, &mut [], None) }.to_bits(),
                    f_quads.to_bits()
                );
            }
            // A is checked finite, so a NaN score comes from x
            xp[0] = f64::NAN;
            let mut g = vec![0.0; pitch];
            // SAFETY: as above
            assert!(
                unsafe { p.pass_avx2(&xp, 0, m, &mut g, None) }.is_nan(),
                "{m}×{n}"
            );
            assert!(g.iter().all(|gj| gj.is_nan()), "{m}×{n}");
        }
    }

    #[test]
    fn padded_rows_give_the_closed_forms() {
        // rows padded to a multiple of 4, long ones to a multiple of 8 (201 to 208, 317 to
        // 320): f, ∇f, ∇²f and ∇²f·v against the formulas evaluated by nalgebra on the
        // unpadded A, on one thread and split between two (`agrees_with_closed_forms`)
        for (m, n) in [(37, 5), (203, 50), (130, 7), (2003, 37), (300, 201), (700, 317)] {
            let a = Matrix::from_fn(m, n, |i, j| ((i * n + j) as f64 * 0.37).sin());
            let y = Vector::from_fn(m, |i, _| f64::from(u8::from(i % 3 == 0)));
            let lambda = 0.25;
            let p = Logistic::new(a.clone(), y.clone(), lambda, false).unwrap();
            assert!(
                p.at.pitch() > n && p.at.pitch().is_multiple_of(4),
                "{m}×{n}: not padded"
            );
            assert_eq!(p.stored_rows().as_ptr() as usize % 64, 0);
            let x = Vector::from_fn(n, |j, _| 0.2 * (j as f64 * 1.3).cos());
            let v = Vector::from_fn(n, |j, _| (j as f64 * 0.7).sin());
            let z = &a * &x;
            let sigma = z.map(|t| 1.0 / (1.0 + (-t).exp()));
            let f_want = z
                .iter()
                .zip(&y)
                .map(|(t, yi)| (1.0 + t.exp()).ln() - yi * t)
                .sum::<f64>()
                + lambda * x.norm_squared();
            let g_want = a.transpose() * (&sigma - &y) + 2.0 * lambda * &x;
            let s = sigma.map(|t| t * (1.0 - t));
            let h_want =
                a.transpose() * Matrix::from_diagonal(&s) * &a + 2.0 * lambda * Matrix::identity(n, n);
            super::super::agrees_with_closed_forms(
                || Logistic::new(a.clone(), y.clone(), lambda, false).unwrap(),
                &x,
                &v,
                (f_want, &g_want, &h_want),
                &format!("{m}×{n}"),
            );
        }
    }

    #[test]
    fn bad_labels_are_an_error() {
        let a = Matrix::from_row_slice(2, 1, &[1.0, 2.0]);
        assert!(Logistic::new(a, Vector::from_vec(vec![2.0, 0.0]), 0.0, false).is_err());
    }
}
