use std::sync::Mutex;

use nalgebra::{DMatrixView, DMatrixViewMut, Dyn, MatrixView};

use super::{
    add_ridge_gradient, add_ridge_hessian, check_h, check_nonempty, check_out, check_x, ridge_value,
    Objective,
};
use crate::error::{check_finite, check_lambda, check_len, Error, Result};
use crate::gram::{weighted_gram, Block, GramScratch};
use crate::kernels::{
    axpy, dot, fused_rows_work, gradient_block, rows, scores_block, PARALLEL_MIN_ENTRIES, ROW_BLOCK,
};
use crate::vmath::softmax_rows;
use crate::{Matrix, Vector};

/// From this many classes on, scores and gradient go through matrix-matrix products.
const GEMM_MIN_CLASSES: usize = 6;

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
/// all k(k+1)/2 lower ones formed in one pass over A by the packed kernel of `crate::gram`
/// (the rest by symmetry).
/// At λ = 0 the Hessian is singular (adding a constant to every class's scores changes nothing).
///
/// With an intercept, A's last column is all ones and row n−1 of W (every class's
/// intercept) is not penalized. The k intercepts are then determined only up to a common
/// shift, whatever λ: the Hessian stays singular along (0, …, 1; …; 0, …, 1), the minimal cost
/// is unique but the intercepts are not, and two solvers may return intercepts that differ by
/// the same constant in every class (their differences, and so the probabilities, agree).
///
/// With k ≥ 6 classes the fused cost-and-gradient is two matrix-matrix products,
/// Zᵀ = WᵀAᵀ and ∇f = Aᵀ(P − Y), around the row-wise softmax: measured 1.5× faster at k = 10
/// than k dot products and k axpys per row, which is compute-bound (and, measured again with the
/// block kernels at 20000 × 50 × 10 on one thread: 2.9 ms against 5.0 ms). With
/// fewer classes nalgebra does not hand the products to matrixmultiply (it needs every
/// dimension above 5), and the one-pass loop is faster: per block of rows, each row read once
/// for its k scores and once for the k gradient columns (`kernels::scores_block`,
/// `kernels::gradient_block`), split over two threads from k·m·n ≥ 2¹⁶ (as is the matrix-product path).
#[derive(Debug)]
pub struct Softmax {
    at: Matrix,
    y: Vec<usize>,
    k: usize,
    lambda: f64,
    intercept: bool,
    scratch: Mutex<Scratch>,
    /// The second thread's gradient on large data.
    spare: Mutex<Vec<f64>>,
}

#[derive(Debug, Default)]
struct Scratch {
    /// k products aᵢᵀv_c of one row.
    u: Vec<f64>,
    /// k×m scores, then probabilities, of the last cost or gradient evaluation (Zᵀ, Pᵀ).
    scores: Matrix,
    /// Wᵀ (k×n).
    wt: Matrix,
    /// k×m probabilities at `at_x` (row i's in column i), for the Hessian and Hessian-vector
    /// products.
    p: Matrix,
    at_x: Vec<f64>,
    /// The Hessian's lower blocks (c ≥ d) with their classes, and the same blocks alone.
    blocks: Vec<(Block, usize, usize)>,
    gram_blocks: Vec<Block>,
    gram: GramScratch,
}

impl Softmax {
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
        check_finite("A", a.iter())?;
        check_lambda(lambda)?;
        if k < 2 {
            return Err(Error::Data {
                what: format!("softmax: needs at least 2 classes, found {k}"),
            });
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
        let scratch = Mutex::new(Scratch {
            u: vec![0.0; k],
            ..Scratch::default()
        });
        Ok(Softmax {
            at: a.transpose(),
            y,
            k,
            lambda,
            intercept,
            scratch,
            spare: Mutex::new(Vec::new()),
        })
    }

    /// The number of classes k.
    pub fn classes(&self) -> usize {
        self.k
    }

    fn n(&self) -> usize {
        self.at.nrows()
    }

    fn penalized(&self) -> impl Fn(usize) -> bool {
        let n = self.n();
        let intercept = self.intercept;
        move |j| !(intercept && j % n == n - 1)
    }

    /// s.p ← the k×m probabilities at x (row i's in column i), unless it already holds them
    /// for this x.
    fn probabilities(&self, x: &Vector, s: &mut Scratch) {
        let (m, k) = (self.at.ncols(), self.k);
        if s.p.shape() == (k, m) && s.at_x.as_slice() == x.as_slice() {
            return;
        }
        if s.p.shape() != (k, m) {
            s.p = Matrix::zeros(k, m);
        }
        for (ai, zi) in rows(&self.at).zip(s.p.as_mut_slice().chunks_exact_mut(k)) {
            self.scores(ai, x, zi);
        }
        softmax_rows(s.p.as_mut_slice(), k, &self.y);
        s.at_x.clear();
        s.at_x.extend_from_slice(x.as_slice());
    }

    /// For k ≥ `GEMM_MIN_CLASSES`: s.scores ← the row-wise softmax P of Z = AW, Zᵀ = WᵀAᵀ by
    /// one matrix-matrix product (k×m: sample i's k scores are column i); returns
    /// Σᵢ lse(zᵢ) − z_{i,yᵢ}; with `g`, also g ← Aᵀ(P − Y) by a second product, reading
    /// (P − Y) as the transpose of the k×m buffer (a strided view, no copy). On large data the
    /// rows are split between two threads, each with its own pair of products; value() and the
    /// fused evaluation split alike, so their f agree to the last bit.
    fn gemm_pass(&self, x: &Vector, s: &mut Scratch, g: Option<&mut [f64]>) -> f64 {
        let (n, k, m) = (self.n(), self.k, self.at.ncols());
        if s.scores.shape() != (k, m) {
            s.scores = Matrix::zeros(k, m);
            s.wt = Matrix::zeros(k, n);
        }
        s.wt.tr_copy_from(&DMatrixView::from_slice(x.as_slice(), n, k));
        let wt = &s.wt;
        let half = |lo: usize, hi: usize, z: &mut [f64], g: Option<&mut [f64]>| -> f64 {
            let rows = hi - lo;
            let at = self.at.columns(lo, rows);
            DMatrixViewMut::from_slice(z, k, rows).gemm(1.0, wt, &at, 0.0);
            let f = softmax_rows(z, k, &self.y[lo..hi]);
            if let Some(g) = g {
                for (zi, &yi) in z.chunks_exact_mut(k).zip(&self.y[lo..hi]) {
                    zi[yi] -= 1.0;
                }
                let pt = MatrixView::from_slice_with_strides_generic(&*z, Dyn(rows), Dyn(k), Dyn(k), Dyn(1));
                DMatrixViewMut::from_slice(g, n, k).gemm(1.0, &at, &pt, 0.0);
            }
            f
        };
        let split = self.at.len() * k >= PARALLEL_MIN_ENTRIES && m >= 2 && rayon::current_num_threads() >= 2;
        if !split {
            return half(0, m, s.scores.as_mut_slice(), g);
        }
        let mid = m / 2;
        let (z1, z2) = s.scores.as_mut_slice().split_at_mut(mid * k);
        match g {
            None => {
                let (f1, f2) = rayon::join(|| half(0, mid, z1, None), || half(mid, m, z2, None));
                f1 + f2
            }
            Some(g) => {
                let mut spare = super::lock(&self.spare);
                spare.clear();
                spare.resize(g.len(), 0.0);
                let second: &mut [f64] = &mut spare[..];
                let (f1, f2) = rayon::join(
                    || half(0, mid, z1, Some(&mut *g)),
                    || half(mid, m, z2, Some(&mut *second)),
                );
                axpy(1.0, second, g);
                f1 + f2
            }
        }
    }

    /// Over rows start..end, for each block of up to `ROW_BLOCK` rows lo..hi: the block's
    /// probabilities (row r's k in z[r·k..]), then `then(lo, hi, probabilities)`; returns
    /// Σᵢ lse(zᵢ) − z_{i,yᵢ}. Each row is read once for its k scores; the exponentials run
    /// vectorized over the block. For k below `GEMM_MIN_CLASSES` (z on the stack).
    fn per_row_blocks(
        &self,
        x: &Vector,
        (start, end): (usize, usize),
        mut then: impl FnMut(usize, usize, &mut [f64]),
    ) -> f64 {
        let k = self.k;
        let mut z = [0.0; ROW_BLOCK * (GEMM_MIN_CLASSES - 1)];
        let mut f = 0.0;
        let mut lo = start;
        while lo < end {
            let hi = (lo + ROW_BLOCK).min(end);
            let zb = &mut z[..(hi - lo) * k];
            scores_block(self.block(lo, hi), self.n(), x.as_slice(), k, zb);
            f += softmax_rows(zb, k, &self.y[lo..hi]);
            then(lo, hi, zb);
            lo = hi;
        }
        f
    }

    /// Rows lo..hi of A, contiguous.
    fn block(&self, lo: usize, hi: usize) -> &[f64] {
        let n = self.n();
        &self.at.as_slice()[lo * n..hi * n]
    }

    /// z ← Wᵀaᵢ (the k scores of one row).
    fn scores(&self, ai: &[f64], x: &Vector, z: &mut [f64]) {
        for (zc, wc) in z.iter_mut().zip(x.as_slice().chunks_exact(self.n())) {
            *zc = dot(ai, wc);
        }
    }
}

impl Objective for Softmax {
    fn dim(&self) -> usize {
        self.n() * self.k
    }

    /// f = Σᵢ lse(zᵢ) − z_{i,yᵢ} + λ‖W_penalized‖².
    fn value(&self, x: &Vector) -> Result<f64> {
        check_x(self.dim(), x)?;
        let s = &mut *super::lock(&self.scratch);
        let f = if self.k < GEMM_MIN_CLASSES {
            // the same rows per thread as the fused evaluation, so the two agree to the last bit
            let work = self.at.len() * self.k;
            fused_rows_work(work, &self.at, &mut [], &self.spare, |start, end, _| {
                self.per_row_blocks(x, (start, end), |_, _, _| ())
            })
        } else {
            self.gemm_pass(x, s, None)
        };
        Ok(f + ridge_value(x, self.lambda, self.penalized()))
    }

    /// ∇f = Σᵢ aᵢ(pᵢ − e_{yᵢ})ᵀ + 2λW_penalized, in the same pass as f.
    fn value_and_gradient_into(&self, x: &Vector, g: &mut Vector) -> Result<f64> {
        check_out(self.dim(), x, g)?;
        let (n, k) = (self.n(), self.k);
        let s = &mut *super::lock(&self.scratch);
        if k < GEMM_MIN_CLASSES {
            // few classes: one pass, the k scores of aᵢ, their softmax, ∇f_c += (p_c − δ)aᵢ
            // compute-bound at about k multiply-adds per entry each way: split over two
            // threads from a k-times smaller A than the memory-bound passes
            g.fill(0.0);
            let work = self.at.len() * k;
            let f = fused_rows_work(work, &self.at, g.as_mut_slice(), &self.spare, |start, end, g| {
                self.per_row_blocks(x, (start, end), |lo, hi, p| {
                    for (pi, &yi) in p.chunks_exact_mut(k).zip(&self.y[lo..hi]) {
                        pi[yi] -= 1.0;
                    }
                    gradient_block(self.block(lo, hi), n, p, k, g);
                })
            });
            add_ridge_gradient(g, x, self.lambda, self.penalized());
            return Ok(f + ridge_value(x, self.lambda, self.penalized()));
        }
        let f = self.gemm_pass(x, s, Some(g.as_mut_slice()));
        add_ridge_gradient(g, x, self.lambda, self.penalized());
        Ok(f + ridge_value(x, self.lambda, self.penalized()))
    }

    /// Block (c, d) of ∇²f = Aᵀ diag(p_c ⊙ (δ_cd − p_d)) A (+ 2λI on penalized diagonal entries).
    fn hessian_into(&self, x: &Vector, h: &mut Matrix) -> Result<()> {
        check_h(self.dim(), x, h)?;
        let s = &mut *super::lock(&self.scratch);
        let (n, k) = (self.n(), self.k);
        self.probabilities(x, s);
        if s.blocks.len() != k * (k + 1) / 2 {
            s.blocks.clear();
            for d in 0..k {
                for c in d..k {
                    let diagonal = c == d;
                    s.blocks.push((
                        Block {
                            row: c * n,
                            col: d * n,
                            diagonal,
                        },
                        c,
                        d,
                    ));
                }
            }
            s.gram_blocks = s.blocks.iter().map(|b| b.0).collect();
        }
        // every block (c ≥ d, the lower triangle) from one pass over A; the rest by symmetry
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
            pi[c] * (if c == d { 1.0 } else { 0.0 } - pi[d])
        };
        weighted_gram(&self.at, gram_blocks, weight, h, gram);
        add_ridge_hessian(h, self.lambda, self.penalized());
        Ok(())
    }

    /// ∇²f·v = Σᵢ aᵢtᵢᵀ + 2λV_penalized, with u_c = aᵢᵀv_c and t_c = p_c(u_c − Σ_d p_d u_d).
    fn hessian_vec_into(&self, x: &Vector, v: &Vector, out: &mut Vector) -> Result<()> {
        check_out(self.dim(), x, out)?;
        check_len("direction v", self.dim(), v.len())?;
        let n = self.n();
        let s = &mut *super::lock(&self.scratch);
        self.probabilities(x, s);
        out.fill(0.0);
        for (i, ai) in rows(&self.at).enumerate() {
            self.scores(ai, v, &mut s.u);
            let mut pu = 0.0;
            for (c, uc) in s.u.iter().enumerate() {
                pu += s.p[(c, i)] * uc;
            }
            for (c, (uc, oc)) in s.u.iter().zip(out.as_mut_slice().chunks_exact_mut(n)).enumerate() {
                axpy(s.p[(c, i)] * (uc - pu), ai, oc);
            }
        }
        add_ridge_gradient(out, v, self.lambda, self.penalized());
        Ok(())
    }
}

crate::impl_argmin_traits!(Softmax);

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn labels_out_of_range_are_an_error() {
        let a = Matrix::from_row_slice(2, 1, &[1.0, 2.0]);
        assert!(Softmax::new(a.clone(), vec![0, 3], 3, 0.0, false).is_err());
        assert!(Softmax::new(a, vec![0, 0], 1, 0.0, false).is_err());
    }
}
