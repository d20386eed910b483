use std::sync::Mutex;

use super::woodbury::ClassDual;
use super::{
    add_ridge_gradient, add_ridge_hessian, check_h, check_nonempty, check_out, check_x, ridge_value,
    Objective,
};
use crate::aligned::AlignedT;
use crate::class_kernels::ClassPass;
use crate::error::{check_finite_matrix, check_lambda, check_len, Error, Result};
use crate::gram::{weighted_gram, Block, GramScratch};
use crate::vmath::softmax_rows;
use crate::{Matrix, Vector};

/// Softmax (multinomial logistic) regression with k classes.
///
/// A is m×n (rows aᵢᵀ), labels yᵢ ∈ {0, …, k−1}, W is n×k and the parameter vector is
/// x = vec(W), column-major: class 0's column first. With Z = AW, P the row-wise softmax of Z
/// and Y the one-hot labels:
///
/// - f(W) = Σᵢ [lse(Wᵀaᵢ) − w_{yᵢ}ᵀaᵢ] + λ‖W‖_F²
/// - ∇f = Aᵀ(P − Y) + 2λW (an n×k matrix, flattened the same way)
/// - ∇²f has k×k blocks of size n×n: block (c, d) = Aᵀ diag(p_c ⊙ (δ_cd − p_d)) A, + 2λI on
///   the diagonal blocks
///
/// Seeds: per row, f is lse composed with the affine map W ↦ Wᵀaᵢ = (I_k ⊗ aᵢᵀ)·vec(W), so
/// ∇ = (I_k ⊗ aᵢ)softmax and ∇² = (I_k ⊗ aᵢ)(diag p − ppᵀ)(I_k ⊗ aᵢᵀ), the affine chain
/// rule ∇²g = Aᵀ∇²f A with a Kronecker-structured A; summing over rows gives the blocks above,
/// the k(k−1)/2 below the diagonal formed in one pass over A by the packed kernel of
/// `crate::gram`, those above by symmetry, and the diagonal ones from the others (each row of
/// block weights sums to zero: H_cc = −Σ_{d≠c} H_cd).
/// At λ = 0 the Hessian is singular (adding a constant to every class's scores changes nothing).
/// With fewer rows than penalized features and λ > 0, Newton's direction comes from an
/// mk×mk system instead of the nk×nk Hessian ([`Objective::newton_direction_into`], by the
/// Woodbury identity).
///
/// With an intercept, A's last column is all ones and row n−1 of W (every class's
/// intercept) is not penalized. The k intercepts are then determined only up to a common
/// shift, whatever λ: the Hessian stays singular along (0, …, 1; …; 0, …, 1), the minimal cost
/// is unique but the intercepts are not, and two solvers may return intercepts that differ by
/// the same constant in every class (their differences, and so the probabilities, agree).
///
/// The cost, the gradient and the Hessian-vector product are one pass over A in blocks of a
/// multiple of 12 rows (up to 60, and about 16 KB of A where rows are short enough): the
/// block's scores by a register-blocked kernel (`crate::class_kernels`, vectors along the
/// features, so no lane is padding whatever k is; k − 1 per row, against the last class's
/// score, which changes no probability), their softmax with the
/// exponentials vectorized over the block, then the block's rank-update of the gradient while its rows are
/// still in L1. The pass is split between two threads from m·((k − 1)·n + 80) ≥ 3·2¹⁷ (its
/// multiply-adds and a per-row cost, about 50 µs of one thread's work), and allocates nothing
/// once its buffers are sized. Those buffers sit behind one lock held for each pass: threads
/// that share one `Softmax` evaluate in turn (give each thread its own to run them at once).
#[derive(Debug)]
pub struct Softmax {
    at: AlignedT,
    y: Vec<usize>,
    k: usize,
    lambda: f64,
    intercept: bool,
    scratch: Mutex<Scratch>,
}

#[derive(Debug, Default)]
struct Scratch {
    /// The buffers of the pass over A.
    pass: ClassPass,
    /// The k − 1 classes' weights less the last class's, for the pass ([`pass_against_last`]).
    against_last: Vec<f64>,
    /// The mk×mk route to Newton's direction (fewer rows than features).
    dual: ClassDual,
    /// k×m probabilities at `at_x` (row i's in column i), for the Hessian and Hessian-vector
    /// products.
    p: Matrix,
    at_x: Vec<f64>,
    /// The Hessian's blocks below the diagonal (c > d) with their classes, and the same blocks
    /// alone (the diagonal blocks are derived from them).
    blocks: Vec<(Block, usize, usize)>,
    gram_blocks: Vec<Block>,
    gram: GramScratch,
}

impl Softmax {
    /// The ridge coefficient λ.
    pub fn lambda(&self) -> f64 {
        self.lambda
    }

    /// A is m×n (last column the ones of the intercept when `intercept`), y has m labels in
    /// 0..k, k ≥ 2, λ ≥ 0.
    ///
    /// ```
    /// use gradfit::problems::{Objective, Softmax};
    /// use gradfit::{Matrix, Vector};
    /// // at W = 0 every class has p = 1/k: f = m·log k
    /// let a = Matrix::from_row_slice(3, 1, &[1.0, 2.0, 3.0]);
    /// let p = Softmax::new(a, vec![0, 1, 2], 3, 0.0, false)?;
    /// assert!((p.value(&Vector::zeros(3))? - 3.0 * 3f64.ln()).abs() < 1e-14);
    /// # Ok::<(), gradfit::Error>(())
    /// ```
    pub fn new(a: Matrix, y: Vec<usize>, k: usize, lambda: f64, intercept: bool) -> Result<Self> {
        check_nonempty(&a)?;
        check_len("number of labels y", a.nrows(), y.len())?;
        check_finite_matrix("A", &a)?;
        check_lambda(lambda)?;
        if k < 2 {
            return Err(Error::Data {
                what: format!("softmax: needs at least 2 classes, found {k}"),
            });
        }
        // k·n parameters and k·m scores must be addressable
        for (count, what) in [(a.ncols(), "features"), (a.nrows(), "rows")] {
            if count.checked_mul(k).is_none() {
                return Err(Error::Data {
                    what: format!(
                        "softmax: {k} classes × {count} {what} is past what this machine can address"
                    ),
                });
            }
        }
        if let Some(i) = y.iter().position(|&c| c >= k) {
            return Err(Error::Data {
                what: format!("softmax: label {} at row {} is not below k = {}", y[i], i, k),
            });
        }
        if intercept && a.column(a.ncols() - 1).iter().any(|&v| v != 1.0) {
            return Err(Error::Data {
                what: "softmax: with an intercept the last column of A must be all ones".into(),
            });
        }
        Ok(Softmax {
            at: AlignedT::of(&a),
            y,
            k,
            lambda,
            intercept,
            scratch: Mutex::new(Scratch::default()),
        })
    }

    /// A as stored: the rows of A one after another (Aᵀ column-major), the memory every pass
    /// over the data reads. For benchmarks that compare a pass with a plain read of it.
    pub fn stored_rows(&self) -> &[f64] {
        self.at.as_slice()
    }

    /// The number of classes k.
    pub fn classes(&self) -> usize {
        self.k
    }

    /// The classes that a hyperplane taken from W = `x` separates from the others: class c
    /// where v = w_c − w_j for some j ≠ c, or v = w_c − the mean of the others, has vᵀaᵢ > 0 on
    /// every row of class c and vᵀaᵢ < 0 on every other row, each by more than the rounding
    /// the computed difference can carry, so that rounding proves nothing: 4n·ε times the sum
    /// of the magnitudes of the products aᵢⱼwⱼ in the scores compared (for the mean, the
    /// others' averaged), plus 2k·ε of the others' mean magnitude for the mean's own sum, plus
    /// 4n of the smallest subnormal for products that underflow. That proves class c linearly separable: at λ = 0 the loss then has no minimum,
    /// falling without end along W + t·(v in column c). A class without such a plane may still
    /// be separable (this finds only planes from `x`); one with it always is. A vector of the
    /// wrong length separates nothing.
    pub fn separated_classes(&self, x: &Vector) -> Vec<usize> {
        let (n, k, m) = (self.at.features(), self.k, self.y.len());
        if x.len() != n * k || n == 0 {
            return Vec::new();
        }
        let pitch = self.at.pitch().max(1);
        // the scores zᵢ = Wᵀaᵢ, row i's k at z[i·k..], and the sums of their terms' magnitudes
        let (mut z, mut size) = (vec![0.0; m * k], vec![0.0; m * k]);
        let rows = self.at.as_slice().chunks_exact(pitch);
        for ((row, zi), si) in rows.zip(z.chunks_exact_mut(k)).zip(size.chunks_exact_mut(k)) {
            for ((zc, sc), w) in zi.iter_mut().zip(si.iter_mut()).zip(x.as_slice().chunks_exact(n)) {
                *zc = row[..n].iter().zip(w).map(|(a, w)| a * w).sum();
                *sc = row[..n].iter().zip(w).map(|(a, w)| (a * w).abs()).sum();
            }
        }
        let rounding = 4.0 * n as f64 * f64::EPSILON;
        let underflow = 4.0 * n as f64 * f64::from_bits(1);
        let (others, summing) = ((k - 1) as f64, 2.0 * k as f64 * f64::EPSILON);
        // candidate planes for class c: j < k is w_c − w_j, j = k the mean of the others
        let side = |zi: &[f64], si: &[f64], c: usize, j: usize| -> (f64, f64) {
            if j < k {
                return (zi[c] - zi[j], rounding * (si[c] + si[j]) + underflow);
            }
            let rest = || (0..k).filter(move |&d| d != c);
            let mean = rest().map(|d| zi[d]).sum::<f64>() / others;
            let size = rest().map(|d| si[d]).sum::<f64>() / others;
            let magnitude = rest().map(|d| zi[d].abs()).sum::<f64>() / others;
            let slack = rounding * (si[c] + size) + summing * magnitude + underflow;
            (zi[c] - mean, slack)
        };
        (0..k)
            .filter(|&c| {
                (0..=k).filter(|&j| j != c).any(|j| {
                    z.chunks_exact(k)
                        .zip(size.chunks_exact(k))
                        .zip(&self.y)
                        .all(|((zi, si), &yi)| {
                            let (d, slack) = side(zi, si, c, j);
                            // written so that a NaN separates nothing
                            if yi == c {
                                d > slack
                            } else {
                                -d > slack
                            }
                        })
                })
            })
            .collect()
    }

    /// A's columns; also the kernels' row length, as A is stored unpadded ([`AlignedT::of`]).
    fn n(&self) -> usize {
        self.at.features()
    }

    fn m(&self) -> usize {
        self.at.ncols()
    }

    fn penalized(&self) -> impl Fn(usize) -> bool {
        let n = self.n();
        let intercept = self.intercept;
        move |j| !(intercept && j % n == n - 1)
    }

    /// Σᵢ lse(zᵢ) − z_{i,yᵢ} (no ridge) and, with `g`, g ← Σᵢ aᵢ(pᵢ − e_{yᵢ})ᵀ, in one pass
    /// over A with each row's scores taken against the last class's; the last class's
    /// Σᵢ aᵢ(p_i,k−1 − [yᵢ = k − 1]) is minus the others' sum, as every row's pᵢ − e_{yᵢ} sums
    /// to 0 ([`pass_against_last`]). The cost alone and the cost with its gradient take this one
    /// route, so they agree to the last bit.
    fn fused(&self, x: &Vector, g: Option<&mut [f64]>) -> f64 {
        let k = self.k;
        let want_grad = g.is_some();
        let s = &mut *super::lock(&self.scratch);
        let Scratch {
            pass, against_last, ..
        } = s;
        pass_against_last(&self.at, (pass, against_last), x.as_slice(), k, g, |lo, hi, z| {
            let y = &self.y[lo..hi];
            let f = softmax_rows(z, k, y);
            if want_grad {
                for (pi, &yi) in z.chunks_exact_mut(k).zip(y) {
                    pi[yi] -= 1.0;
                }
            }
            f
        })
    }

    /// s.p ← the k×m probabilities at x (row i's in column i), unless it already holds them
    /// for this x.
    fn probabilities(&self, x: &Vector, s: &mut Scratch) {
        let (m, k) = (self.m(), self.k);
        if s.p.shape() == (k, m) && s.at_x.as_slice() == x.as_slice() {
            return;
        }
        if s.p.shape() != (k, m) {
            s.p = Matrix::zeros(k, m);
        }
        let p = s.p.as_mut_slice();
        s.pass.scores_all(&self.at, x.as_slice(), k, p);
        softmax_rows(p, k, &self.y);
        s.at_x.clear();
        s.at_x.extend_from_slice(x.as_slice());
    }
}

impl Objective for Softmax {
    /// With λ > 0 and no intercept every parameter is held by the ridge (the intercepts are
    /// not: a class with no rows sends its own to −∞).
    fn has_minimum(&self) -> bool {
        self.lambda > 0.0 && !self.intercept
    }

    /// At λ = 0, a proof that f has no minimum: classes that a hyperplane from x separates from
    /// the others ([`Softmax::separated_classes`]).
    fn not_a_minimum(&self, x: &Vector) -> Option<String> {
        if self.lambda != 0.0 {
            return None;
        }
        let names: Vec<String> = self.separated_classes(x).iter().map(|c| c.to_string()).collect();
        let list = match names.split_last() {
            _ if self.k == 2 && !names.is_empty() => "the two classes are".to_string(),
            Some((last, [])) => format!("class {last} is"),
            Some((last, rest)) => format!("classes {} and {last} are", rest.join(", ")),
            None => return None,
        };
        let from = if self.k == 2 { "" } else { " from the others" };
        Some(format!(
            "{list} linearly separable{from} (a hyperplane from this answer separates them), so at λ = 0 the \
             loss has no minimum: it keeps falling as the weights grow; a ridge term (λ > 0) gives a finite \
             answer"
        ))
    }

    /// Centres across classes every parameter that is not penalized: the intercepts, and at
    /// λ = 0 every weight. Adding one vector v to each class's parameters adds aᵢᵀv to every
    /// score of row i, which changes no probability, and leaves the penalty alone when v is 0
    /// on the penalized ones; so f and ∇f stay, and the centred point is the one gradient
    /// methods reach from 0 (each gradient's class sum is 0 there). Newton, whose Hessian is
    /// singular along v, otherwise reported iris's intercepts as 906.8, 896.7 and 878.3 where
    /// L-BFGS gave 12.91, 2.75 and −15.66: the same model, three digits lost.
    fn canonicalize(&self, x: &mut Vector) {
        let (n, k) = (self.n(), self.k);
        if x.len() != n * k {
            return;
        }
        let penalized = self.penalized();
        for j in 0..n {
            if self.lambda > 0.0 && penalized(j) {
                continue;
            }
            let mean = (0..k).map(|c| x[c * n + j]).sum::<f64>() / k as f64;
            for c in 0..k {
                x[c * n + j] -= mean;
            }
        }
    }

    fn dim(&self) -> usize {
        self.n() * self.k
    }

    /// f = Σᵢ lse(zᵢ) − z_{i,yᵢ} + λ‖W_penalized‖², by one fused pass over A (`Softmax::fused`).
    fn value(&self, x: &Vector) -> Result<f64> {
        check_x(self.dim(), x)?;
        let f = self.fused(x, None);
        Ok(f + ridge_value(x, self.lambda, self.penalized()))
    }

    /// ∇f = Σᵢ aᵢ(pᵢ − e_{yᵢ})ᵀ + 2λW_penalized, in the same pass as f (`Softmax::fused`).
    fn value_and_gradient_into(&self, x: &Vector, g: &mut Vector) -> Result<f64> {
        check_out(self.dim(), x, g)?;
        let f = self.fused(x, Some(g.as_mut_slice()));
        add_ridge_gradient(g, x, self.lambda, self.penalized());
        Ok(f + ridge_value(x, self.lambda, self.penalized()))
    }

    /// Block (c, d) of ∇²f = Aᵀ diag(p_c ⊙ (δ_cd − p_d)) A (+ 2λI on penalized diagonal entries).
    ///
    /// Only the k(k − 1)/2 blocks below the diagonal (c > d, weights −p_c p_d) are formed from
    /// A, in one pass; each diagonal block then follows from them, because every row of block
    /// weights sums to zero (Σ_d p_c(δ_cd − p_d) = p_c − p_c·Σ_d p_d = 0):
    /// H_cc = −Σ_{d≠c} H_cd = Aᵀ diag(p_c Σ_{d≠c} p_d) A, whose weight is p_c(1 − p_c) without
    /// the cancellation of 1 − p_c. That saves the k diagonal blocks' share of the pass: a
    /// one-thread Newton solve (86% of it the Hessian) took 0.78× the time at 10000 × 50 with
    /// k = 5, and 0.91× at 20000 × 200 with k = 10. Each of those blocks is itself symmetric
    /// (a Gram matrix with weights −p_c p_d ≤ 0), so only its lower triangle is computed and
    /// mirrored; with that and the kernel's single packing of each slab (`crate::gram`), the
    /// solve at 10000 × 50, k = 5, took 0.67× the time again.
    fn hessian_into(&self, x: &Vector, h: &mut Matrix) -> Result<()> {
        check_h(self.dim(), x, h)?;
        let s = &mut *super::lock(&self.scratch);
        let (n, k) = (self.n(), self.k);
        self.probabilities(x, s);
        if s.blocks.len() != k * (k - 1) / 2 {
            s.blocks.clear();
            for d in 0..k {
                for c in d + 1..k {
                    let block = Block {
                        row: c * n,
                        col: d * n,
                        diagonal: false,
                        negative: true,
                    };
                    s.blocks.push((block, c, d));
                }
            }
            s.gram_blocks = s.blocks.iter().map(|b| b.0).collect();
        }
        // every block below the diagonal from one pass over A, mirrored above it
        let Scratch {
            p,
            blocks,
            gram_blocks,
            gram,
            ..
        } = s;
        let weight = |b: usize, i: usize| {
            let (_, c, d) = blocks[b];
            let pi = &p.as_slice()[i * k..(i + 1) * k];
            -pi[c] * pi[d]
        };
        weighted_gram(&self.at, gram_blocks, weight, h, gram);
        // H_cc = −Σ_{d≠c} H_cd, lower triangle, then mirrored
        for c in 0..k {
            for j in 0..n {
                for i in j..n {
                    let sum: f64 = (0..k)
                        .filter(|&d| d != c)
                        .map(|d| h[(c * n + i, d * n + j)])
                        .sum();
                    h[(c * n + i, c * n + j)] = -sum;
                }
                for i in j + 1..n {
                    h[(c * n + j, c * n + i)] = h[(c * n + i, c * n + j)];
                }
            }
        }
        add_ridge_hessian(h, self.lambda, self.penalized());
        Ok(())
    }

    /// ∇²f·v = Σᵢ aᵢtᵢᵀ + 2λV_penalized, with u_c = aᵢᵀv_c and t_c = p_c(u_c − Σ_d p_d u_d).
    /// t is unchanged by adding one number to all of a row's u, and sums to 0, so the pass takes
    /// u against the last class and the last class's Σᵢ aᵢt_i,k−1 from the others
    /// (`pass_against_last`).
    fn hessian_vec_into(&self, x: &Vector, v: &Vector, out: &mut Vector) -> Result<()> {
        check_out(self.dim(), x, out)?;
        check_len("direction v", self.dim(), v.len())?;
        let k = self.k;
        let s = &mut *super::lock(&self.scratch);
        self.probabilities(x, s);
        let Scratch {
            p,
            pass,
            against_last,
            ..
        } = s;
        let out_slice = Some(out.as_mut_slice());
        pass_against_last(
            &self.at,
            (pass, against_last),
            v.as_slice(),
            k,
            out_slice,
            |lo, _, u| {
                super::woodbury::apply_s(u, &p.as_slice()[lo * k..], k);
                0.0
            },
        );
        add_ridge_gradient(out, v, self.lambda, self.penalized());
        Ok(())
    }

    /// With fewer rows than penalized features (m < n, or m < n − 1 with an intercept) and
    /// λ > 0, by the mk×mk Woodbury system (`super::woodbury::ClassDual`): ∇²f = 2λP +
    /// Σᵢ (diag(pᵢ) − pᵢpᵢᵀ) ⊗ aᵢaᵢᵀ. The intercepts, if any, come from a k×k system; the
    /// Hessian is singular along their common shift, and the direction leaves their sum
    /// unchanged. Otherwise `Ok(false)`.
    fn newton_direction_into(&self, x: &Vector, g: &Vector, d: &mut Vector) -> Result<bool> {
        if !(self.lambda > 0.0 && self.m() + usize::from(self.intercept) < self.n()) {
            return Ok(false);
        }
        check_out(self.dim(), x, d)?;
        check_len("gradient g", self.dim(), g.len())?;
        let k = self.k;
        let s = &mut *super::lock(&self.scratch);
        self.probabilities(x, s);
        let Scratch { p, dual, .. } = s;
        let c = 2.0 * self.lambda;
        if !(dual.factor(&self.at, p.as_slice(), k, c, self.intercept)?
            && dual.direction(&self.at, p.as_slice(), k, c, g.as_slice(), d.as_mut_slice()))
        {
            return Ok(false);
        }
        dual.refine(&self.at, p.as_slice(), k, c, g.as_slice(), d.as_mut_slice());
        Ok(true)
    }
}

crate::impl_argmin_traits!(Softmax);

/// One pass over A ([`ClassPass::run_strided`]) with W = `w` (vec order, n×k) taken against
/// its last class: the kernels compute aᵢᵀ(w_c − w_{k−1}) for c < k − 1 and each row's last
/// score is 0, then `then(lo, hi, z)` on rows of k as in [`ClassPass::run`]. Taking one number
/// from all of a row's scores changes neither its probabilities nor its loss, and with `grad`
/// the last class's Σᵢ aᵢd_i,k−1 is minus the others' sum, which holds when each row's
/// coefficients dᵢ (what `then` leaves) sum to 0, as pᵢ − e_{yᵢ} and Sᵢu do. So the pass does
/// 2(k − 1) multiply-adds per entry of A instead of 2k (0.9× as many at k = 10, half at k = 2).
/// One-thread L-BFGS on softmax 10000 × 50, pinned, three runs in alternation with the pass
/// over all k: k = 2 4.84–4.86 ms against 5.36–5.42, k = 3 5.90–6.05 against 6.74, k = 4
/// 6.46–6.67 against 7.34–7.38, k = 5 8.56–8.64 against 9.16–9.24; 20000 × 200 with k = 10
/// 104–111 ms against 107–112 (what the exponentials and the rows' softmax cost is unchanged).
/// `against` holds the k − 1 differences (n(k − 1) entries, reused).
fn pass_against_last(
    at: &AlignedT,
    (pass, against): (&mut ClassPass, &mut Vec<f64>),
    w: &[f64],
    k: usize,
    grad: Option<&mut [f64]>,
    then: impl Fn(usize, usize, &mut [f64]) -> f64 + Sync,
) -> f64 {
    let n = at.pitch();
    let (rest, last) = w.split_at(n * (k - 1));
    against.clear();
    for wc in rest.chunks_exact(n) {
        against.extend(wc.iter().zip(last).map(|(p, q)| p - q));
    }
    // a weight of ±∞ or NaN, or two so far apart that their difference overflows: the k scores
    // as they are, whose ±∞ the rows' softmax takes to their limits (W = (1, 2, −∞) at a = 1
    // would otherwise have scores (∞, ∞, 0) against the last, and p = (½, ½, 0) for
    // (0.27, 0.73, 0)); the route depends on w alone, so f and ∇f at one x still take the same
    if !against.iter().all(|v| v.is_finite()) {
        return pass.run(at, w, k, grad, then);
    }
    let last_is_zero = |lo: usize, hi: usize, z: &mut [f64]| {
        for row in z.chunks_exact_mut(k) {
            row[k - 1] = 0.0;
        }
        then(lo, hi, z)
    };
    let Some(g) = grad else {
        return pass.run_strided(at, against, (k - 1, k), None, last_is_zero);
    };
    let (rest, last) = g.split_at_mut(n * (k - 1));
    let f = pass.run_strided(at, against, (k - 1, k), Some(rest), last_is_zero);
    last.fill(0.0);
    for gc in rest.chunks_exact(n) {
        for (l, v) in last.iter_mut().zip(gc) {
            *l -= v;
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problems::{cholesky_step, own_newton_step};

    #[test]
    fn woodbury_direction_with_an_intercept_solves_the_singular_newton_system() {
        // the intercepts unpenalized: ∇²f is singular along their common shift, so the test is
        // the system itself, ∇²f·d = −g (g's intercepts sum to 0, so it has solutions), with
        // the intercepts' sum unchanged
        for (m, n, k) in [(7, 19, 4), (5, 23, 2), (9, 13, 6), (1, 3, 3)] {
            let mut a = Matrix::from_fn(m, n, |i, j| ((i * n + j) as f64 * 0.77).sin() * 2.0);
            a.column_mut(n - 1).fill(1.0);
            let y: Vec<usize> = (0..m).map(|i| (i * 5 + 1) % k).collect();
            let x = Vector::from_fn(n * k, |j, _| (j as f64 * 0.4).cos() * 1.5);
            for lambda in [1e-3, 0.3, 50.0] {
                let p = Softmax::new(a.clone(), y.clone(), k, lambda, true).unwrap();
                let what = format!("{m} × {n} with intercept, k = {k}, λ = {lambda}");
                let (g, d) = own_newton_step(&p, &x, &what);
                let h = p.hessian_matrix(&x).unwrap();
                let residual = (&h * &d + &g).amax();
                assert!(
                    residual <= 1e-9 * g.amax(),
                    "{what}: ‖Hd + g‖ = {residual:e}, ‖g‖ = {:e}",
                    g.amax()
                );
                let sum: f64 = (0..k).map(|c| d[c * n + n - 1]).sum();
                let size = (0..k).map(|c| d[c * n + n - 1].abs()).fold(0.0, f64::max);
                assert!(
                    sum.abs() <= 1e-12 * size.max(1e-300),
                    "{what}: intercepts sum to {sum:e}"
                );
                // the weights are the Newton step's whatever the intercepts' shift: against the
                // damped Cholesky solve (H + 1e-10·I), up to the damping's effect
                let damped = -(h + Matrix::identity(n * k, n * k) * 1e-10)
                    .cholesky()
                    .unwrap()
                    .solve(&g);
                let mut centred = damped.clone();
                p.canonicalize(&mut centred);
                let mut ours = d.clone();
                p.canonicalize(&mut ours);
                assert!(
                    (&ours - &centred).amax() <= 1e-6 * centred.amax(),
                    "{what}: {ours} vs {centred}"
                );
                let mut again = Vector::zeros(n * k);
                assert!(p.newton_direction_into(&x, &g, &mut again).unwrap());
                assert_eq!(again, d, "{what}");
            }
        }
    }

    #[test]
    fn woodbury_direction_is_refined_where_a_tiny_ridge_costs_it_its_digits() {
        // λ = 1e-12 with an intercept on nearly separable classes (class 0's rows shifted far
        // along feature 0): T = c·EᵀK⁻¹E multiplies by c = 2e-12 what K⁻¹ makes of order 1/c,
        // and the direction unrefined left ‖∇²f·d + g‖ at 0.11‖g‖ here (Newton then stalled at
        // ‖∇f‖ = 27 on a 40 × 3000 case); refined, 4.9e-6‖g‖, about what the dense product
        // ∇²f·d can tell with d of order ‖g‖/c
        let (m, n, k) = (12, 60, 4);
        let mut a = Matrix::from_fn(m, n, |i, j| ((i * 7919 + j * 104_729 + 3) as f64 * 0.618).sin());
        let y: Vec<usize> = (0..m).map(|i| i % k).collect();
        for i in (0..m).filter(|i| y[*i] == 0) {
            a[(i, 0)] += 50.0;
        }
        a.column_mut(n - 1).fill(1.0);
        let p = Softmax::new(a, y, k, 1e-12, true).unwrap();
        let x = Vector::from_fn(n * k, |j, _| (j as f64 * 0.4).cos() * 0.1);
        let (g, d) = own_newton_step(&p, &x, "λ = 1e-12");
        let h = p.hessian_matrix(&x).unwrap();
        let residual = (&h * &d + &g).norm() / g.norm();
        assert!(residual <= 1e-4, "‖∇²f·d + g‖/‖g‖ = {residual:e}");
    }

    #[test]
    fn woodbury_direction_solves_the_newton_system() {
        // m < n, λ > 0, no intercept: d from the mk×mk system against a Cholesky solve of the
        // nk×nk Hessian, at points where some rows' probabilities are near 0 and 1
        for (m, n, k) in [(7, 19, 4), (5, 23, 2), (9, 13, 6), (1, 3, 3)] {
            let a = Matrix::from_fn(m, n, |i, j| ((i * n + j) as f64 * 0.77).sin() * 2.0);
            let y: Vec<usize> = (0..m).map(|i| (i * 5 + 1) % k).collect();
            let x = Vector::from_fn(n * k, |j, _| (j as f64 * 0.4).cos() * 1.5);
            for lambda in [1e-3, 0.3, 50.0] {
                let p = Softmax::new(a.clone(), y.clone(), k, lambda, false).unwrap();
                let what = format!("{m} × {n}, k = {k}, λ = {lambda}");
                let (g, d) = own_newton_step(&p, &x, &what);
                let want = cholesky_step(&p, &x, &g);
                assert!((&d - &want).amax() <= 1e-9 * want.amax(), "{what}: {d} vs {want}");
                // and again at the same x (K kept): the same to the bit
                let mut again = Vector::zeros(n * k);
                assert!(p.newton_direction_into(&x, &g, &mut again).unwrap());
                assert_eq!(again, d, "{what}");
            }
        }
        // not with λ = 0, or as many rows as penalized features: Newton forms the Hessian
        let a = Matrix::from_fn(4, 6, |i, j| ((i * 6 + j) as f64 * 0.3).sin());
        let mut ones = a.columns(0, 5).into_owned();
        ones.column_mut(4).fill(1.0);
        let y = vec![0, 1, 2, 1];
        let x = Vector::from_element(18, 0.1);
        let cases = [
            Softmax::new(a.clone(), y.clone(), 3, 0.0, false),
            Softmax::new(ones, y.clone(), 3, 1.0, true),
            Softmax::new(a.columns(0, 4).into_owned(), y, 3, 1.0, false),
        ];
        for p in cases {
            let p = p.unwrap();
            let x = x.rows(0, p.dim()).into_owned();
            let g = p.cost_and_gradient(&x).unwrap().1;
            let mut d = Vector::zeros(p.dim());
            assert!(!p.newton_direction_into(&x, &g, &mut d).unwrap());
        }
    }

    #[test]
    fn hessian_matches_the_dense_sum_over_rows() {
        // ∇²f = Σᵢ (diag(pᵢ) − pᵢpᵢᵀ) ⊗ aᵢaᵢᵀ + 2λI, summed row by row in plain nalgebra, against
        // the kernel's (diagonal blocks from the off-diagonal ones): k = 2 and 5, with rows
        // nearly certain of one class (p_c ≈ 1, where 1 − p_c cancels), with an intercept; each
        // on one thread and, from 256 rows (300 and 400 here), with the rows split between two
        // (forced, when there are two)
        for (m, n, k, intercept) in [
            (300, 13, 5, false),
            (200, 9, 2, true),
            (120, 50, 5, true),
            (400, 21, 3, false),
        ] {
            let mut a = Matrix::from_fn(m, n, |i, j| ((i * n + j) as f64 * 0.61).sin() * 3.0);
            if intercept {
                a.column_mut(n - 1).fill(1.0);
            }
            let y: Vec<usize> = (0..m).map(|i| (i * 7) % k).collect();
            let lambda = 0.3;
            let p = Softmax::new(a.clone(), y, k, lambda, intercept).unwrap();
            let x = Vector::from_fn(n * k, |j, _| (j as f64 * 0.9).cos() * 2.0);
            let h = p.hessian_matrix(&x).unwrap();
            // and with the rows split between two threads (forced, when there are two; the
            // Hessian splits from 256 rows)
            let h_split = crate::kernels::tests::forced_split(|| p.hessian_matrix(&x).unwrap());
            let w = Matrix::from_column_slice(n, k, x.as_slice());
            let mut want = Matrix::zeros(n * k, n * k);
            for i in 0..m {
                let ai = a.row(i).transpose();
                let z = w.transpose() * &ai;
                let e = z.map(|v| (v - z.max()).exp());
                let pi = &e / e.sum();
                let curv = Matrix::from_diagonal(&pi) - &pi * pi.transpose();
                want += curv.kronecker(&(&ai * ai.transpose()));
            }
            for c in 0..k {
                for j in 0..n - usize::from(intercept) {
                    want[(c * n + j, c * n + j)] += 2.0 * lambda;
                }
            }
            for h in [h, h_split] {
                let err = (&h - &want).amax() / want.amax();
                assert!(err < 1e-13, "{m}×{n}, k = {k}: relative error {err:e}");
                assert_eq!(h, h.transpose());
            }
        }
    }

    #[test]
    fn diagonal_blocks_keep_their_digits_when_a_class_is_nearly_certain() {
        // every row nearly certain of class 0 (p₀ ≈ 1 − 2e−10): the diagonal of H₀₀ is
        // Σᵢ aᵢⱼ²·p₀(1 − p₀), and 1 − p₀ computed as such keeps only ~7 digits (4e−8 relative
        // error here); as the sum of the other classes' p it keeps them all
        let (m, n, k) = (50, 3, 3);
        let a = Matrix::from_fn(m, n, |i, j| 1.0 + 0.1 * ((i * n + j) as f64).sin());
        let p = Softmax::new(a.clone(), vec![0; m], k, 0.0, false).unwrap();
        let x = Vector::from_fn(n * k, |j, _| if j < n { 23.0 / n as f64 } else { 0.0 });
        let h = p.hessian_matrix(&x).unwrap();
        let w = Matrix::from_column_slice(n, k, x.as_slice());
        for j in 0..n {
            let mut want = 0.0;
            for i in 0..m {
                let z = w.transpose() * a.row(i).transpose();
                let e = z.map(|v| (v - z.max()).exp());
                let pi = &e / e.sum();
                want += a[(i, j)] * a[(i, j)] * pi[0] * (pi[1] + pi[2]);
            }
            let err = (h[(j, j)] - want).abs() / want;
            assert!(err < 1e-12, "H₀₀[{j}, {j}]: relative error {err:e}");
        }
    }

    #[test]
    fn extreme_logits_give_exact_limits() {
        // one row a = (1000), W = (1, −1): scores (1000, −1000); label 0: f = 0, ∇ = 0
        let a = Matrix::from_row_slice(1, 1, &[1000.0]);
        let p = Softmax::new(a.clone(), vec![0], 2, 0.0, false).unwrap();
        let (f, g) = p.cost_and_gradient(&Vector::from_vec(vec![1.0, -1.0])).unwrap();
        assert_eq!(f, 0.0);
        assert_eq!(g.as_slice(), &[0.0, 0.0]);
        // label 1: f = lse − z₁ = 1000 − (−1000) = 2000; ∇ = a(p − e₁) = (1000, −1000)
        let p = Softmax::new(a, vec![1], 2, 0.0, false).unwrap();
        let (f, g) = p.cost_and_gradient(&Vector::from_vec(vec![1.0, -1.0])).unwrap();
        assert_eq!(f, 2000.0);
        assert_eq!(g.as_slice(), &[1000.0, -1000.0]);
    }

    /// Weights whose differences from the last class's are not finite take the k scores as
    /// they are, as before the pass took them against the last class.
    #[test]
    fn weights_too_far_apart_for_their_differences_keep_their_own_scores() {
        let lse = |z: &[f64]| {
            let m = z.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
            m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
        };
        // one row a = (1), label 0, three classes: f = lse(1, 2) − 1, p = (0.27, 0.73, 0)
        let p = Softmax::new(Matrix::from_row_slice(1, 1, &[1.0]), vec![0], 3, 0.0, false).unwrap();
        let w = Vector::from_vec(vec![1.0, 2.0, f64::NEG_INFINITY]);
        let (f, g) = p.cost_and_gradient(&w).unwrap();
        assert!((f - (lse(&[1.0, 2.0]) - 1.0)).abs() < 1e-15, "f = {f}");
        let p1 = 1.0 / (1.0 + 1f64.exp());
        assert!((g[0] - (p1 - 1.0)).abs() < 1e-15 && (g[1] - (1.0 - p1)).abs() < 1e-15 && g[2] == 0.0);
        assert_eq!(p.value(&w).unwrap(), f);
        // W = (∞, 0, ∞): two classes tie at +∞, f = log 2 (not NaN)
        let w = Vector::from_vec(vec![f64::INFINITY, 0.0, f64::INFINITY]);
        assert!((p.value(&w).unwrap() - 2f64.ln()).abs() < 1e-15);
        // finite weights whose differences overflow: a = 0.5, W = (1e308, 9e307, −1e308), label
        // 0: class 0 is certain, f = 0
        let p = Softmax::new(Matrix::from_row_slice(1, 1, &[0.5]), vec![0], 3, 0.0, false).unwrap();
        let w = Vector::from_vec(vec![1e308, 9e307, -1e308]);
        assert_eq!(p.value(&w).unwrap(), 0.0);
    }

    #[test]
    fn a_class_is_named_separable_only_with_a_plane_that_proves_it() {
        // one feature and an intercept: class 0 in the middle (|x| < 0.5), class 1 left of −3,
        // class 2 right of 3. W gives every class-0 row p₀ > 0.999 and every other row p₀ <
        // 0.001, yet no single threshold on x separates the middle class; the outer two are
        // each separated by one (x < −2, x > 2)
        let mut rows: Vec<(f64, usize)> = (0..50).map(|i| (i as f64 / 50.0 - 0.49, 0)).collect();
        rows.extend((0..20).map(|i| (-3.0 - i as f64 / 20.0, 1)));
        rows.extend((0..20).map(|i| (3.0 + i as f64 / 20.0, 2)));
        // scores: z₀ = 10, z₁ = −20x − 40, z₂ = 20x − 40 (vec order: class c's (x, intercept))
        let w = Vector::from_vec(vec![0.0, 10.0, -20.0, -40.0, 20.0, -40.0]);
        let problem = |rows: &[(f64, usize)]| {
            let a = Matrix::from_fn(rows.len(), 2, |i, j| if j == 0 { rows[i].0 } else { 1.0 });
            Softmax::new(a, rows.iter().map(|r| r.1).collect(), 3, 0.0, true).unwrap()
        };
        for &(x, c) in &rows {
            let (z, mut p) = ([10.0, -20.0 * x - 40.0, 20.0 * x - 40.0], [0.0; 3]);
            crate::numeric::softmax_into(&z, &mut p);
            assert!(if c == 0 { p[0] > 0.999 } else { p[0] < 0.001 }, "x {x}: {p:?}");
        }
        assert_eq!(problem(&rows).separated_classes(&w), vec![1, 2]);
        // a class-1 row far right and a class-2 row far left: no class is separable now
        rows.extend([(3.5, 1), (-3.5, 2)]);
        assert!(problem(&rows).separated_classes(&w).is_empty());
        // the wrong length separates nothing
        assert!(problem(&rows).separated_classes(&Vector::zeros(5)).is_empty());
    }

    #[test]
    fn rounding_in_the_scores_proves_no_separation() {
        // 64 classes, one feature, no intercept: class 0 at x = 1 and class 1 at x = 3 (and
        // −1) lie on the same side of every plane through the origin, so nothing separates
        // class 0. With a score of 2⁶⁰ among the others, the mean's own sum rounds by more than
        // the products' allowance alone (a review's W)
        let mut rows = vec![(1.0, 0), (3.0, 1), (-1.0, 1)];
        rows.extend((2..64).map(|c| (-1.0, c)));
        let a = Matrix::from_fn(rows.len(), 1, |i, _| rows[i].0);
        let p = Softmax::new(a, rows.iter().map(|r| r.1).collect(), 64, 0.0, false).unwrap();
        let mut w = vec![125.44; 64];
        (w[0], w[1]) = (76.8, 2f64.powi(60));
        assert!(p.separated_classes(&Vector::from_vec(w)).is_empty());
        // two classes, the second row twice the first: no plane through the origin separates
        // them, but products this small underflow, and a relative allowance rounds to 0
        let (r, t) = (2.8451311993408993e-161, -6.0459037985994106e-161);
        let a = Matrix::from_row_slice(2, 3, &[r, r, t, 2.0 * r, 2.0 * r, 2.0 * t]);
        let p = Softmax::new(a, vec![0, 1], 2, 0.0, false).unwrap();
        let v = 2.778448436856347e-163;
        let w = Vector::from_vec(vec![v, v, v, -v, -v, -v]);
        assert!(p.separated_classes(&w).is_empty());
    }

    #[test]
    fn labels_out_of_range_are_an_error() {
        let a = Matrix::from_row_slice(2, 1, &[1.0, 2.0]);
        assert!(Softmax::new(a.clone(), vec![0, 3], 3, 0.0, false).is_err());
        assert!(Softmax::new(a.clone(), vec![0, 0], 1, 0.0, false).is_err());
        // k·n or k·m past usize is an error, not a wrapped dimension
        let k = usize::MAX / 2 + 1;
        let e = Softmax::new(a.transpose(), vec![0], k, 0.0, false).unwrap_err();
        assert!(e.to_string().contains("classes × 2 features is past"), "{e}");
        let e = Softmax::new(a.clone(), vec![0, 1], k, 0.0, false).unwrap_err();
        assert!(e.to_string().contains("classes × 2 rows is past"), "{e}");
        // a non-finite entry is named by its row and column
        let mut a = Matrix::from_element(5, 3, 1.0);
        a[(3, 1)] = f64::NAN;
        let e = Softmax::new(a, vec![0, 1, 0, 1, 0], 2, 0.0, false).unwrap_err();
        assert!(e.to_string().contains("A (row 3, column 1)"), "{e}");
    }
}
