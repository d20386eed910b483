use std::sync::Mutex;

use super::{check_h, check_nonempty, check_out, check_x, ridge_value, Objective};
use crate::aligned::AlignedT;
use crate::error::{check_finite, check_lambda, check_len, Result};
use crate::gram::{weighted_gram, Block, GramScratch};
use crate::kernels::{
    axpys_block, dot, fused_rows, pass_dots_all, pipelined_rows, row_blocks, rows_block, split_rows,
};
use crate::numeric::softmax_in_place;
use crate::vmath::exp_shifted_in_place;
use crate::{Matrix, Vector};

/// Log-sum-exp of an affine map: f(x) = log Σᵢ exp(aᵢᵀx + bᵢ) + λ‖x‖².
///
/// With A (m×n, rows aᵢᵀ), z = Ax + b and p = softmax(z):
///
/// - ∇f = Aᵀp + 2λx
/// - ∇²f = Aᵀ(diag(p) − ppᵀ)A + 2λI
///
/// Seeds: the worked log-sum-exp example. For g(y) = log Σ exp yᵢ, ∇g = e^y / 1ᵀe^y = softmax(y)
/// and ∇²g = diag(∇g) − ∇g∇gᵀ; the affine chain rule then gives ∇f = Aᵀ∇g(Ax + b) and
/// ∇²f = Aᵀ∇²g(Ax + b)A. Every exponential is shifted (below), so z of ±1000 is exact.
/// Without λ, f is bounded below only if 0 is in the convex hull of the rows.
///
/// The fused cost-and-gradient is one pass over the rows. With AVX2 and FMA it goes through
/// the four-row kernels of the other models' passes with one shift M, the largest score of 16
/// rows spread over A: the exponentials e^(zᵢ − M) run four rows at a time inside the sweep
/// over A. Where the largest score of all lies far above M (more than 32, or than its own
/// magnitude; `LogSumExp::shifted_pass` says why), the pass goes again with it as the shift,
/// reading A twice; scores of +∞ or NaN, and other CPUs, take the portable pass with an
/// online max shift instead: when a block of rows raises the running
/// maximum m to m′, the running sum and gradient are rescaled by e^(m − m′). On large data two
/// threads each take half the rows with their own shift, and the halves are rescaled to the
/// larger one when merged. The one shift, measured
/// against the running maximum (floor bench, `FLOOR_CASES=20000x50,2000x50,40000x100,20000x200`,
/// one thread pinned, three runs in alternation): fused ÷ stream read 1.01–1.16× against
/// 1.45–1.64× at 20000 × 50, 0.55–1.22× against 0.73–1.59× at 2000 × 50, 0.93–1.08× against
/// 1.09–1.18× at 40000 × 100, 0.88–1.02× against 0.99–1.11× at 20000 × 200; `gradfit solve
/// --model log-sum-exp --l2 1 --solver lbfgs --repeat 10` on 20000 × 50, four runs in
/// alternation: 0.63–0.64 ms against 0.90–0.91 ms.
///
/// The Hessian and its products keep p and Aᵀp for the last x they were asked at; a product is
/// then one pass in the fused pass's kernels. Measured against the three row-by-row passes
/// before (p, then pᵀAv, then the sum), `gradfit solve --solver newton-cg --repeat 10`, one
/// thread pinned, best of ten, three runs in alternation: 20000 × 50 (λ = 1, 2 iterations)
/// 1.59–1.61 ms against 2.47–2.56 ms, 20000 × 200 (λ = 1e-3, 3 iterations) 15.5–17.7 ms
/// against 22.0–29.3 ms.
#[derive(Debug)]
pub struct LogSumExp {
    at: AlignedT,
    b: Vector,
    lambda: f64,
    scratch: Mutex<Scratch>,
    /// The second thread's gradient on large data.
    spare: Mutex<Vec<f64>>,
}

#[derive(Debug, Default)]
struct Scratch {
    /// p = softmax(Ax + b) at `at_x` (empty until a Hessian or a Hessian-vector product asks).
    p: Vec<f64>,
    /// q = Aᵀp at `at_x`, padded to the pitch of A as stored.
    q: Vec<f64>,
    /// The x that p and q belong to: Newton-CG asks for many Hessian-vector products at one x,
    /// which then cost one pass over A each, not three.
    at_x: Vec<f64>,
    gram: GramScratch,
}

impl LogSumExp {
    /// A is m×n, b has length m, all finite, λ ≥ 0.
    ///
    /// ```
    /// use gradfit::problems::{LogSumExp, Objective};
    /// use gradfit::{Matrix, Vector};
    /// // two terms e^{x} + e^{−x}: f(0) = log 2, ∇f(0) = 0
    /// let p = LogSumExp::new(Matrix::from_row_slice(2, 1, &[1.0, -1.0]), Vector::zeros(2), 0.0)?;
    /// let (f, g) = p.cost_and_gradient(&Vector::zeros(1))?;
    /// assert!((f - 2f64.ln()).abs() < 1e-15 && g[0] == 0.0);
    /// # Ok::<(), gradfit::Error>(())
    /// ```
    pub fn new(a: Matrix, b: Vector, lambda: f64) -> Result<Self> {
        check_nonempty(&a)?;
        check_len("length of b", a.nrows(), b.len())?;
        crate::error::check_finite_matrix("A", &a)?;
        check_finite("b", b.iter())?;
        check_lambda(lambda)?;
        Ok(LogSumExp {
            at: AlignedT::padded(&a),
            b,
            lambda,
            scratch: Mutex::new(Scratch::default()),
            spare: Mutex::new(Vec::new()),
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

    /// Over rows lo..hi, with zᵢ = aᵢᵀx + bᵢ: returns (M, S) with M = max zᵢ and
    /// S = Σ e^(zᵢ − M), and adds Σ e^(zᵢ − M)aᵢ to g unless g is empty. Rows go in blocks: each
    /// block's scores, a rescale of S and g by e^(M_old − M) only when the block raises the
    /// maximum, then the block's exponentials in one vectorized call (rows of 512 to 1024
    /// entries on AVX-512 in blocks of one, with g or without: `crate::kernels::pipelined_rows`).
    /// x and g are padded to the pitch of A as stored ([`AlignedT`]).
    fn shifted_sum(&self, x: &[f64], lo: usize, hi: usize, g: &mut [f64]) -> (f64, f64) {
        let (mut m, mut s) = (f64::NEG_INFINITY, 0.0);
        let b = self.b.as_slice();
        pipelined_rows(&self.at, lo, hi, x, g, |start, z, g| {
            for (zi, bi) in z.iter_mut().zip(&b[start..]) {
                *zi += bi;
            }
            // max ignores NaN; a NaN zᵢ still reaches S through its exponential
            let block_max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if block_max > m {
                let scale = shift_factor(m, block_max);
                s *= scale;
                g.iter_mut().for_each(|gi| *gi *= scale);
                m = block_max;
            }
            // (e⁰ = 1 exactly for the row at m, even at m = +∞, so f = +∞ exactly rather than
            // ∞ − ∞ = NaN)
            exp_shifted_in_place(z, m);
            s += z.iter().sum::<f64>();
        });
        (m, s)
    }

    /// Over rows lo..hi, with zᵢ = aᵢᵀx + bᵢ: returns (M, S) with S = Σ e^(zᵢ − M) and adds
    /// Σ e^(zᵢ − M)aᵢ to g (zero on entry) unless g is empty, for a shift M close below the
    /// largest score. With AVX2 and FMA through the four-row kernels with one shift
    /// ([`FixedShift`]): first the largest score of [`SHIFT_SAMPLE`] rows spread over lo..hi
    /// (the first and the last among them), computed before the pass; if the largest score of
    /// all turns out further above it than [`shift_allowance`] allows, g is cleared and the rows
    /// go again with that largest score as the shift. A shift below the largest score only
    /// scales S and g, but each exponent zᵢ − M is rounded to its own magnitude, so the
    /// allowance bounds what a shift costs: the exponents of the rows near the top carry at
    /// most ½ulp(32) ≈ 3.6e-15 more absolute error than with the maximum, or no more than the
    /// top score's own rounding when that is larger, and f = M + log S about twice that; and S
    /// stays below m·e⁶⁰⁰, so neither it nor the merge of two threads' halves can overflow.
    /// (The second pass reads A again: for scores spread far beyond those of the sampled rows
    /// an evaluation costs two passes.) The sample, measured in `gradfit solve --model
    /// log-sum-exp --l2 1 --solver lbfgs --repeat 10` on 20000 × 50, pinned, two runs in
    /// alternation, against the first four rows' largest score with a slack of 32 alone and
    /// against the running maximum: b sorted from −300 to 0, 0.51–0.52 ms against 1.02 and
    /// 0.76; b spread as N(0, 60²), 0.77–0.78 ms against 1.51–1.54 and 1.09; b within ±2,
    /// 0.65 ms against 0.63–0.65 and 0.90. Scores of +∞ or NaN, a sum or gradient that is not
    /// finite anyway, and CPUs without AVX2 and FMA take [`LogSumExp::shifted_sum`] and its
    /// running maximum instead. The shifts depend on x alone, so `value` (without g) and the
    /// fused pass take the same ones and agree to the bit, unless only the fused pass's g
    /// overflows (|aᵢⱼ| near f64::MAX/(m·e^(zᵢ − M))).
    fn shifted_pass(&self, x: &[f64], lo: usize, hi: usize, g: &mut [f64]) -> (f64, f64) {
        #[cfg(target_arch = "x86_64")]
        {
            if crate::cpu::avx2() {
                let shift = self.sampled_shift(x, lo, hi);
                // SAFETY: the CPU has AVX2 and FMA (checked above)
                match unsafe { self.fixed_shift_sum(x, lo, hi, g, shift) } {
                    Shifted::Done(m, s) => return (m, s),
                    Shifted::Top(top) => {
                        g.fill(0.0);
                        // SAFETY: as above
                        if let Shifted::Done(m, s) = unsafe { self.fixed_shift_sum(x, lo, hi, g, top) } {
                            return (m, s);
                        }
                    }
                    Shifted::Fallback => {}
                }
                g.fill(0.0);
            }
        }
        self.shifted_sum(x, lo, hi, g)
    }

    #[cfg(target_arch = "x86_64")]
    /// The largest score (NaN ignored) of the rows [`sample_rows`] picks from lo..hi, each by
    /// one dot product with x (padded to the pitch).
    fn sampled_shift(&self, x: &[f64], lo: usize, hi: usize) -> f64 {
        let b = self.b.as_slice();
        let scores = sample_rows(lo, hi).map(|i| dot(rows_block(&self.at, i, i + 1), x) + b[i]);
        scores.fold(f64::NEG_INFINITY, |m, v| if v > m { v } else { m })
    }

    /// [`LogSumExp::shifted_pass`] with one shift, in the four-row kernels
    /// (`crate::kernels::pipelined_quads_avx2`); a shift that is not finite is not tried.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn fixed_shift_sum(&self, x: &[f64], lo: usize, hi: usize, g: &mut [f64], shift: f64) -> Shifted {
        if !shift.is_finite() {
            return Shifted::Fallback;
        }
        let mut quads = FixedShift::new(self.b.as_slice(), shift);
        crate::kernels::pipelined_quads_avx2(&self.at, lo, hi, x, g, &mut quads);
        let (s, top) = quads.total();
        if s.is_nan() || !top.is_finite() {
            // another shift cannot help a NaN score, or a +∞ one
            Shifted::Fallback
        } else if top - shift > shift_allowance(top) || shift - top > SHIFT_ABOVE {
            // (a shift above the top comes from the sample's dot products, summed in another
            // order than the pass's: at scores of 1e18 or more they can differ by hundreds, and S
            // would underflow)
            Shifted::Top(top)
        } else if s.is_finite() && g.iter().all(|v| v.is_finite()) {
            Shifted::Done(shift, s)
        } else {
            Shifted::Fallback
        }
    }

    /// p = softmax(Ax + b) and q = Aᵀp at x into the scratch, unless it holds them for this x
    /// already: the scores by the dot products the fused pass computes (`pass_dots`; on two
    /// threads for large A), p by [`softmax_in_place`], then q in one pass of axpys over A
    /// (split like the fused pass).
    fn curvature(&self, x: &Vector, sc: &mut Scratch) {
        let (pitch, m) = self.at.shape();
        if sc.p.len() == m && sc.at_x.as_slice() == x.as_slice() {
            return;
        }
        // forgotten first, so that a pass cut short (a panic, the lock recovered) leaves no x
        // beside a p it does not belong to
        sc.at_x.clear();
        sc.p.resize(m, 0.0);
        self.at
            .with_padded(x.as_slice(), |xp| pass_dots_all(&self.at, xp, &mut sc.p));
        for (zi, bi) in sc.p.iter_mut().zip(self.b.iter()) {
            *zi += bi;
        }
        softmax_in_place(&mut sc.p);
        sc.q.clear();
        sc.q.resize(pitch, 0.0);
        let p = &sc.p;
        fused_rows(&self.at, &mut sc.q, &self.spare, |lo, hi, g| {
            for (start, end) in row_blocks(pitch, lo, hi) {
                axpys_block(rows_block(&self.at, start, end), pitch, &p[start..end], g);
            }
            0.0
        });
        sc.at_x.extend_from_slice(x.as_slice());
    }

    /// g ← g + Σᵢ pᵢ(aᵢᵀv − c)aᵢ over rows lo..hi, in the fused pass's kernels: the dot
    /// products, the coefficients pᵢ(uᵢ − c) four rows at a time on AVX2 ([`Centered`]), the
    /// axpys. v and g are padded to the pitch.
    fn centered_pass(&self, v: &[f64], p: &[f64], c: f64, lo: usize, hi: usize, g: &mut [f64]) {
        #[cfg(target_arch = "x86_64")]
        {
            if crate::cpu::avx2() {
                // SAFETY: the CPU has AVX2 and FMA (checked above)
                unsafe {
                    crate::kernels::pipelined_quads_avx2(&self.at, lo, hi, v, g, &mut Centered { p, c })
                };
                return;
            }
        }
        pipelined_rows(&self.at, lo, hi, v, g, |start, z, _| {
            for (zi, pi) in z.iter_mut().zip(&p[start..]) {
                *zi = pi * (*zi - c);
            }
        });
    }
}

/// The coefficients pᵢ(uᵢ − c) of the Hessian-vector product's pass from its dot products
/// uᵢ = aᵢᵀv, four rows at a time: the same operations, so the same bits, as the portable
/// pass's.
#[cfg(target_arch = "x86_64")]
struct Centered<'p> {
    p: &'p [f64],
    c: f64,
}

#[cfg(target_arch = "x86_64")]
impl crate::kernels::Quads for Centered<'_> {
    /// pᵢ(uᵢ − c) for rows row..row + 4.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn quad(&mut self, row: usize, z: std::arch::x86_64::__m256d) -> std::arch::x86_64::__m256d {
        use std::arch::x86_64::*;
        let pv = crate::kernels::four_at(self.p, row);
        _mm256_mul_pd(pv, _mm256_sub_pd(z, _mm256_set1_pd(self.c)))
    }

    fn rows(&mut self, start: usize, z: &mut [f64]) {
        for (zi, pi) in z.iter_mut().zip(&self.p[start..]) {
            *zi = pi * (*zi - self.c);
        }
    }
}

#[cfg(target_arch = "x86_64")]
/// Rows whose scores give [`LogSumExp::shifted_pass`] its first shift.
const SHIFT_SAMPLE: usize = 16;

#[cfg(target_arch = "x86_64")]
/// [`SHIFT_SAMPLE`] rows spread evenly over lo..hi, the first and the last among them (all of
/// them when there are no more).
fn sample_rows(lo: usize, hi: usize) -> impl Iterator<Item = usize> {
    let span = hi.saturating_sub(lo);
    let picks = if span <= SHIFT_SAMPLE { span } else { SHIFT_SAMPLE };
    (0..picks).map(move |i| match span <= SHIFT_SAMPLE {
        true => lo + i,
        false => lo + i * (span - 1) / (SHIFT_SAMPLE - 1),
    })
}

#[cfg(target_arch = "x86_64")]
/// How far the largest score `top` may lie above a shift for [`LogSumExp::shifted_pass`] to keep
/// it: 32, or |top| when that is larger (an exponent's rounding then stays within the top
/// score's own), but never past 600 (e⁶⁰⁰ ≈ 3.8e260, so the sums stay finite).
fn shift_allowance(top: f64) -> f64 {
    top.abs().clamp(32.0, 600.0)
}

/// How far a shift may lie above the pass's largest score (the same rows' scores, summed in
/// another order) for [`LogSumExp::shifted_pass`] to keep it: S is then at least e⁻³².
#[cfg(target_arch = "x86_64")]
const SHIFT_ABOVE: f64 = 32.0;

/// What a pass with one shift gave ([`LogSumExp::fixed_shift_sum`]).
#[cfg(target_arch = "x86_64")]
enum Shifted {
    /// (M, S), to be used.
    Done(f64, f64),
    /// The largest score, further above the shift than [`shift_allowance`] allows: the pass to
    /// go again with it as the shift.
    Top(f64),
    /// The shift, a score, S or g not finite: the running maximum's pass instead.
    Fallback,
}

/// The coefficients e^(zᵢ − M) of log-sum-exp's fused pass four rows at a time, zᵢ = aᵢᵀx + bᵢ
/// from the dot products aᵢᵀx, with one shift M. It sums them, four lanes apart, and keeps the
/// largest score.
#[cfg(target_arch = "x86_64")]
struct FixedShift<'b> {
    b: &'b [f64],
    /// M.
    shift: f64,
    /// Σ e^(zᵢ − M) over the quads, lane r for the rows 4q + r.
    sums: std::arch::x86_64::__m256d,
    /// Σ e^(zᵢ − M) over the rows given fewer than four at a time.
    rest: f64,
    /// The largest score of the quads, lane by lane (NaN ignored).
    top: std::arch::x86_64::__m256d,
    /// The largest score of the rows given fewer than four at a time.
    rest_top: f64,
}

#[cfg(target_arch = "x86_64")]
impl<'b> FixedShift<'b> {
    /// No rows yet; b holds every row's offset (rows are numbered as in A).
    #[target_feature(enable = "avx2,fma")]
    fn new(b: &'b [f64], shift: f64) -> Self {
        use std::arch::x86_64::*;
        FixedShift {
            b,
            shift,
            sums: _mm256_setzero_pd(),
            rest: 0.0,
            top: _mm256_set1_pd(f64::NEG_INFINITY),
            rest_top: f64::NEG_INFINITY,
        }
    }

    /// (S, the largest score).
    #[target_feature(enable = "avx2,fma")]
    fn total(&self) -> (f64, f64) {
        use std::arch::x86_64::*;
        let (mut lanes, mut tops) = ([0.0; 4], [0.0; 4]);
        // SAFETY: stores the four entries of `lanes` and of `tops`
        unsafe {
            _mm256_storeu_pd(lanes.as_mut_ptr(), self.sums);
            _mm256_storeu_pd(tops.as_mut_ptr(), self.top);
        }
        let s = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]) + self.rest;
        (s, max_of(&tops).max(self.rest_top))
    }
}

#[cfg(target_arch = "x86_64")]
/// The largest entry, NaN ignored (−∞ if none).
fn max_of(z: &[f64]) -> f64 {
    z.iter()
        .fold(f64::NEG_INFINITY, |m, &v| if v > m { v } else { m })
}

#[cfg(target_arch = "x86_64")]
impl crate::kernels::Quads for FixedShift<'_> {
    /// e^(zᵢ + bᵢ − M) for rows row..row + 4.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn quad(&mut self, row: usize, z: std::arch::x86_64::__m256d) -> std::arch::x86_64::__m256d {
        use std::arch::x86_64::*;
        let z = _mm256_add_pd(z, crate::kernels::four_at(self.b, row));
        // vmaxpd returns its second operand when either is NaN: a NaN score leaves `top`
        self.top = _mm256_max_pd(z, self.top);
        let e = crate::vmath::exp4(_mm256_sub_pd(z, _mm256_set1_pd(self.shift)));
        self.sums = _mm256_add_pd(self.sums, e);
        e
    }

    /// e^(zᵢ + bᵢ − M) for rows start..start + z.len(), in place.
    fn rows(&mut self, start: usize, z: &mut [f64]) {
        for (zi, bi) in z.iter_mut().zip(&self.b[start..]) {
            *zi += bi;
        }
        self.rest_top = self.rest_top.max(max_of(z));
        exp_shifted_in_place(z, self.shift);
        self.rest += z.iter().sum::<f64>();
    }
}

/// Two halves' (shift, sum) and gradients, rescaled to the larger shift and added.
fn merge_shifted((m1, s1): (f64, f64), (m2, s2): (f64, f64), g: &mut [f64], second: &[f64]) -> (f64, f64) {
    let m = m1.max(m2);
    let (c1, c2) = (shift_factor(m1, m), shift_factor(m2, m));
    for (gi, si) in g.iter_mut().zip(second) {
        *gi = c1 * *gi + c2 * si;
    }
    (m, c1 * s1 + c2 * s2)
}

/// e^(m − M) for a shift m ≤ M: exactly 1 when m = M, even at M = +∞ (where m − M is NaN).
fn shift_factor(m: f64, big_m: f64) -> f64 {
    if m == big_m {
        1.0
    } else {
        (m - big_m).exp()
    }
}

impl Objective for LogSumExp {
    /// λ > 0 makes f strongly convex; at λ = 0 it can fall without bound.
    fn has_minimum(&self) -> bool {
        self.lambda > 0.0
    }

    fn dim(&self) -> usize {
        self.at.features()
    }

    /// f = lse(Ax + b) + λ‖x‖², by the fused pass without its gradient (the same shifts).
    fn value(&self, x: &Vector) -> Result<f64> {
        check_x(self.dim(), x)?;
        // the same rows per thread as the fused evaluation, so the two agree to the last bit
        let (m, s) = self.at.with_padded(x.as_slice(), |xp| {
            split_rows(
                self.at.len(),
                &self.at,
                &mut [],
                &self.spare,
                |lo, hi, _| self.shifted_pass(xp, lo, hi, &mut []),
                merge_shifted,
            )
        });
        Ok(m + s.ln() + ridge_value(x, self.lambda, |_| true))
    }

    /// ∇f = Σᵢ pᵢaᵢ + 2λx with p = softmax(Ax + b), in the same pass as f; on large data the
    /// rows are split between two threads, each with its own shift, merged at the end.
    fn value_and_gradient_into(&self, x: &Vector, g: &mut Vector) -> Result<f64> {
        check_out(self.dim(), x, g)?;
        g.fill(0.0);
        let (m, s) = self.at.with_padded(x.as_slice(), |xp| {
            self.at.with_padded_mut(g.as_mut_slice(), |gp| {
                split_rows(
                    self.at.len(),
                    &self.at,
                    gp,
                    &self.spare,
                    |lo, hi, g| self.shifted_pass(xp, lo, hi, g),
                    merge_shifted,
                )
            })
        });
        *g /= s;
        g.axpy(2.0 * self.lambda, x, 1.0);
        Ok(m + s.ln() + ridge_value(x, self.lambda, |_| true))
    }

    /// ∇²f = Aᵀdiag(p)A − (Aᵀp)(Aᵀp)ᵀ + 2λI, which equals Aᵀ(diag p − ppᵀ)A + 2λI.
    fn hessian_into(&self, x: &Vector, h: &mut Matrix) -> Result<()> {
        check_h(self.dim(), x, h)?;
        let s = &mut *super::lock(&self.scratch);
        self.curvature(x, s);
        let Scratch { p, q, gram, .. } = s;
        weighted_gram(&self.at, &Block::WHOLE, |_, i| p[i], h, gram);
        let q = nalgebra::DVectorView::from_slice(&q[..self.dim()], self.dim());
        h.ger(-1.0, &q, &q, 1.0);
        for i in 0..self.dim() {
            h[(i, i)] += 2.0 * self.lambda;
        }
        Ok(())
    }

    /// ∇²f·v = Σᵢ pᵢ(uᵢ − pᵀu)aᵢ + 2λv with u = Av (= Σpᵢuᵢaᵢ − (pᵀu)Aᵀp, centered so that a
    /// common offset of the uᵢ cancels before it is summed), and pᵀu = (Aᵀp)ᵀv from the q = Aᵀp
    /// kept with p at x: one pass over A per product once p and q are at x.
    fn hessian_vec_into(&self, x: &Vector, v: &Vector, out: &mut Vector) -> Result<()> {
        check_out(self.dim(), x, out)?;
        check_len("direction v", self.dim(), v.len())?;
        let s = &mut *super::lock(&self.scratch);
        self.curvature(x, s);
        let pu = dot(&s.q[..self.dim()], v.as_slice());
        let p = &s.p;
        out.fill(0.0);
        self.at.with_padded(v.as_slice(), |vp| {
            self.at.with_padded_mut(out.as_mut_slice(), |op| {
                fused_rows(&self.at, op, &self.spare, |lo, hi, g| {
                    self.centered_pass(vp, p, pu, lo, hi, g);
                    0.0
                })
            })
        });
        out.axpy(2.0 * self.lambda, v, 1.0);
        Ok(())
    }
}

crate::impl_argmin_traits!(LogSumExp);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_infinite_score_gives_an_infinite_cost_not_nan() {
        // z = (1e300·1e10, −1e300·1e10) = (+∞, −∞): f = +∞, ∇f = a₁ (all weight on row 1)
        let a = Matrix::from_row_slice(2, 1, &[1e300, -1e300]);
        let p = LogSumExp::new(a, Vector::zeros(2), 0.0).unwrap();
        let x = Vector::from_vec(vec![1e10]);
        let (f, g) = p.cost_and_gradient(&x).unwrap();
        assert_eq!(f, f64::INFINITY);
        assert_eq!(g[0], 1e300);
        assert_eq!(p.value(&x).unwrap(), f64::INFINITY);
        // and with λ = 0 an overflowing ‖x‖² adds nothing (not 0·∞ = NaN)
        let x = Vector::from_vec(vec![1e308]);
        let p = LogSumExp::new(Matrix::from_row_slice(2, 1, &[1.0, -1.0]), Vector::zeros(2), 0.0).unwrap();
        assert_eq!(p.value(&x).unwrap(), 1e308);
    }

    #[test]
    fn extreme_logits_are_exact_limits() {
        // z = (1000, −1000): f = 1000 exactly, p = (1, 0), ∇f = a₁
        let a = Matrix::from_row_slice(2, 2, &[1.0, 2.0, 3.0, 4.0]);
        let p = LogSumExp::new(a, Vector::from_vec(vec![1000.0, -1000.0]), 0.0).unwrap();
        let (f, g) = p.cost_and_gradient(&Vector::zeros(2)).unwrap();
        assert_eq!(f, 1000.0);
        assert_eq!(g.as_slice(), &[1.0, 2.0]);
        let h = p.hessian_matrix(&Vector::zeros(2)).unwrap();
        assert!(h.iter().all(|v| v.is_finite() && v.abs() < 1e-300));
    }

    #[test]
    fn curvature_kept_for_one_x_is_not_used_at_another() {
        // p and Aᵀp are kept for the x of the last Hessian or product: at x₁, x₂, x₁, x₂ in
        // turn, a product, or a Hessian first and then a product, each
        // against ∇²f(x) from nalgebra
        for (m, n) in [(37, 5), (2003, 37), (300, 201)] {
            let a = Matrix::from_fn(m, n, |i, j| ((i * n + j) as f64 * 0.37).sin());
            let b = Vector::from_fn(m, |i, _| (i as f64 * 0.11).cos());
            let lambda = 0.25;
            let p = LogSumExp::new(a.clone(), b.clone(), lambda).unwrap();
            let hessian = |x: &Vector| {
                let z = &a * x + &b;
                let top = z.max();
                let e = z.map(|t| (t - top).exp());
                let pr = &e / e.sum();
                let w = Matrix::from_diagonal(&pr) - &pr * pr.transpose();
                a.transpose() * w * &a + 2.0 * lambda * Matrix::identity(n, n)
            };
            let x1 = Vector::from_fn(n, |j, _| 0.2 * (j as f64 * 1.3).cos());
            let x2 = Vector::from_fn(n, |j, _| -0.3 * (j as f64 * 0.4).sin());
            let v = Vector::from_fn(n, |j, _| (j as f64 * 0.7).sin() + 2.0);
            // on one thread, then with every pass split between two (when there are two)
            let walk = || {
                for (step, x) in [&x1, &x2, &x1, &x2].into_iter().enumerate() {
                    let want = hessian(x);
                    if step % 2 == 1 {
                        let h = p.hessian_matrix(x).unwrap();
                        assert!(
                            (&h - &want).norm() <= 1e-12 * (1.0 + want.norm()),
                            "{m}×{n} step {step}"
                        );
                    }
                    let hv_want = &want * &v;
                    let mut hv = Vector::zeros(n);
                    p.hessian_vec_into(x, &v, &mut hv).unwrap();
                    let scale = 1e-12 * (1.0 + hv_want.norm());
                    assert!(
                        (&hv - &hv_want).norm() <= scale,
                        "{m}×{n} step {step}: {hv} against {hv_want}"
                    );
                }
            };
            walk();
            crate::kernels::tests::forced_split(walk);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn centered_coefficients_four_rows_at_a_time_equal_the_portable_pass() {
        // the product's pass through `Centered` quads against `pipelined_rows` with the same
        // coefficients pᵢ(uᵢ − c): g to the bit, on every path of a pass (`PASS_SHAPES`), row
        // ranges as one thread and two take them
        if !crate::kernels::tests::has_avx2_fma("the four-row pass is") {
            return;
        }
        for (m, n) in crate::kernels::tests::PASS_SHAPES {
            let a = Matrix::from_fn(m, n, |i, j| ((i * n + j) as f64 * 0.37).sin());
            let p = LogSumExp::new(a, Vector::zeros(m), 0.0).unwrap();
            let pr: Vec<f64> = (0..m).map(|i| 1.0 / (1.0 + i as f64)).collect();
            let pitch = p.at.pitch();
            let v: Vec<f64> = (0..pitch)
                .map(|j| if j < n { (j as f64 * 0.7).cos() } else { 0.0 })
                .collect();
            let c = 0.3;
            let mid = crate::kernels::split_point(m);
            for (lo, hi) in [(0, m), (0, mid), (mid, m), (m / 3, m)] {
                let (mut got, mut want) = (vec![0.5; pitch], vec![0.5; pitch]);
                p.centered_pass(&v, &pr, c, lo, hi, &mut got);
                pipelined_rows(&p.at, lo, hi, &v, &mut want, |start, z, _| {
                    for (zi, pi) in z.iter_mut().zip(&pr[start..]) {
                        *zi = pi * (*zi - c);
                    }
                });
                assert_eq!(got, want, "{m}×{n} rows {lo}..{hi}");
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    /// (M, S) and g (pitch entries) from [`LogSumExp::shifted_pass`] and from the running
    /// maximum's pass, over rows lo..hi at x (padded).
    #[allow(clippy::type_complexity)]
    fn both_passes(
        p: &LogSumExp,
        x: &[f64],
        lo: usize,
        hi: usize,
    ) -> ((f64, f64, Vec<f64>), (f64, f64, Vec<f64>)) {
        let pitch = p.at.pitch();
        let (mut g1, mut g2) = (vec![0.0; pitch], vec![0.0; pitch]);
        let (m1, s1) = p.shifted_pass(x, lo, hi, &mut g1);
        let (m2, s2) = p.shifted_sum(x, lo, hi, &mut g2);
        ((m1, s1, g1), (m2, s2, g2))
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn one_shift_pass_agrees_with_the_running_maximum() {
        // the pass with one shift against the portable pass's running maximum, on every path
        // of a pass (`PASS_SHAPES`, and short rows woven on 12 MB of A) and row ranges as one
        // thread and two take them: M + log S and g/S within a few ulp of the scale, scores
        // spread over ±10 and ±40
        if !crate::kernels::tests::has_avx2_fma("the pass with one shift is") {
            return;
        }
        for (m, n) in crate::kernels::tests::PASS_SHAPES
            .into_iter()
            .chain([(28000, 60)])
        {
            for spread in [10.0, 40.0] {
                let a = Matrix::from_fn(m, n, |i, j| ((i * n + j) as f64 * 0.37).sin());
                let b = Vector::from_fn(m, |i, _| spread * (i as f64 * 0.013).sin());
                let p = LogSumExp::new(a, b, 0.0).unwrap();
                let pitch = p.at.pitch();
                let x: Vec<f64> = (0..pitch)
                    .map(|j| if j < n { 0.3 * (j as f64 * 0.7).cos() } else { 0.0 })
                    .collect();
                let mid = crate::kernels::split_point(m);
                for (lo, hi) in [(0, m), (0, mid), (mid, m), (m / 3, m)] {
                    if lo == hi {
                        continue;
                    }
                    let what = format!("{m}×{n} rows {lo}..{hi}, spread {spread}");
                    // the sampled shift kept: the largest score (by the portable pass) lies within
                    // the allowance
                    let mut g = vec![0.0; pitch];
                    let shift = p.sampled_shift(&x, lo, hi);
                    // SAFETY: the CPU has AVX2 and FMA (checked above)
                    let first = unsafe { p.fixed_shift_sum(&x, lo, hi, &mut g, shift) };
                    let top = p.shifted_sum(&x, lo, hi, &mut []).0;
                    assert!(matches!(first, Shifted::Done(..)), "{what}: not kept");
                    assert!(top - shift <= shift_allowance(top), "{what}: kept too far");
                    let ((m1, s1, g1), (m2, s2, g2)) = both_passes(&p, &x, lo, hi);
                    // woven short rows sum their dot products as long rows do, in another order
                    // than the portable pass: there the scores differ in their last bits
                    let tol = if m == 28000 { 1e-13 } else { 1e-14 };
                    let (f1, f2) = (m1 + s1.ln(), m2 + s2.ln());
                    assert!((f1 - f2).abs() <= tol * f2.abs().max(1.0), "{what}: f");
                    let scale = g2.iter().fold(0.0f64, |t, v| t.max(v.abs())) / s2;
                    for (u, v) in g1.iter().zip(&g2) {
                        assert!((u / s1 - v / s2).abs() <= tol * scale, "{what}: g");
                    }
                    let mut none = vec![];
                    assert_eq!(
                        p.shifted_pass(&x, lo, hi, &mut none),
                        (m1, s1),
                        "{what}: without g"
                    );
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_sample_spreads_over_the_rows_first_and_last_included() {
        let rows: Vec<usize> = sample_rows(10, 213).collect();
        assert_eq!(rows.len(), SHIFT_SAMPLE);
        assert_eq!((rows[0], rows[SHIFT_SAMPLE - 1]), (10, 212));
        assert!(rows.windows(2).all(|w| w[1] - w[0] >= 13 && w[1] - w[0] <= 14));
        assert_eq!(sample_rows(3, 9).collect::<Vec<_>>(), vec![3, 4, 5, 6, 7, 8]);
        assert_eq!(sample_rows(5, 5).count(), 0);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn a_top_score_far_above_the_sample_takes_it_as_the_shift() {
        // every row scores `base` (plus a little) but the rows `far`, which no sample picks, at
        // `base + high` (give or take 1.5): within the allowance (32, or the top score's magnitude) the sampled
        // shift stays; beyond it (in the quads' lanes, and in the last rows, taken fewer than
        // four at a time) the rows go again with the largest score as the shift, and that
        // second pass is the one used. Each time f and ∇f against the closed forms, and the
        // value alone to the bit
        if !crate::kernels::tests::has_avx2_fma("the pass with one shift is") {
            return;
        }
        let m = 203;
        for (base, high, far, kept) in [
            (0.0, 20.0, 1..13, true),
            (-100.0, 45.0, 1..13, true),
            (-40.0, 80.0, 1..13, false),
            (0.0, 705.0, 1..13, false),
            (0.0, 705.0, 189..202, false),
            (0.0, 20000.0, 95..107, false),
        ] {
            assert!(sample_rows(0, m).all(|i| !far.contains(&i)));
            let n = 3;
            let what = format!("rows {far:?} at {base} + {high}");
            let a = Matrix::from_fn(m, n, |i, j| 3.0 * ((i * n + j) as f64 * 0.37).sin());
            let b = Vector::from_fn(m, |i, _| {
                base + if far.contains(&i) { high } else { 0.01 * i as f64 }
            });
            let p = LogSumExp::new(a.clone(), b.clone(), 0.0).unwrap();
            let x = Vector::from_vec(vec![0.2, -0.1, 0.3]);
            let mut xp = vec![0.0; p.at.pitch()];
            xp[..n].copy_from_slice(x.as_slice());
            let mut g = vec![0.0; p.at.pitch()];
            let shift = p.sampled_shift(&xp, 0, m);
            // SAFETY: the CPU has AVX2 and FMA (checked above)
            let first = unsafe { p.fixed_shift_sum(&xp, 0, m, &mut g, shift) };
            assert_eq!(
                matches!(first, Shifted::Done(..)),
                kept,
                "{what}: the sampled shift kept"
            );
            assert_eq!(
                matches!(first, Shifted::Top(..)),
                !kept,
                "{what}: the largest score"
            );
            if let Shifted::Top(top) = first {
                // the second pass, with the largest score as the shift, is the one used (its S
                // sums four lanes apart, the running maximum's row after row: A's entries are
                // scaled by 3 so that the two differ in their last bits)
                let mut g2 = vec![0.0; p.at.pitch()];
                // SAFETY: as above
                let second = unsafe { p.fixed_shift_sum(&xp, 0, m, &mut g2, top) };
                let Shifted::Done(m2, s2) = second else {
                    panic!("{what}: the second pass was not used");
                };
                let mut g1 = vec![0.0; p.at.pitch()];
                assert_eq!(
                    p.shifted_pass(&xp, 0, m, &mut g1),
                    (m2, s2),
                    "{what}: the second pass"
                );
                assert_eq!(g1, g2, "{what}: the second pass's g");
            }
            let z = &a * &x + &b;
            let top = z.max();
            let e = z.map(|t| (t - top).exp());
            let (f, g) = p.cost_and_gradient(&x).unwrap();
            let f_want = top + e.sum().ln();
            assert!(
                (f - f_want).abs() <= 4e-15 * f_want.abs().max(32.0),
                "{what}: f {f} against {f_want}"
            );
            let g_want = a.transpose() * (&e / e.sum());
            assert!(
                (&g - &g_want).norm() <= 1e-14 * g_want.norm().max(1.0),
                "{what}: {g} against {g_want}"
            );
            assert_eq!(p.value(&x).unwrap(), f, "{what}: the value alone");
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn a_shift_far_from_the_top_on_either_side_is_not_kept() {
        // the top score found by the pass, 1.3 give or take: a shift more than 32 above it (S
        // would be e⁻³² at most, and underflow further on) or more than 32 below it goes again
        // with the top; within 32 either way it is kept
        if !crate::kernels::tests::has_avx2_fma("the pass with one shift is") {
            return;
        }
        let (m, n) = (203, 3);
        let a = Matrix::from_fn(m, n, |i, j| ((i * n + j) as f64 * 0.37).sin());
        let p = LogSumExp::new(a, Vector::zeros(m), 0.0).unwrap();
        let mut xp = vec![0.0; p.at.pitch()];
        xp[..n].copy_from_slice(&[0.5, -0.7, 0.9]);
        let top = p.shifted_sum(&xp, 0, m, &mut []).0;
        for (offset, kept) in [
            (0.0, true),
            (31.0, true),
            (-31.0, true),
            (33.0, false),
            (-33.0, false),
            (800.0, false),
        ] {
            let mut g = vec![0.0; p.at.pitch()];
            // SAFETY: the CPU has AVX2 and FMA (checked above)
            let got = unsafe { p.fixed_shift_sum(&xp, 0, m, &mut g, top + offset) };
            match got {
                Shifted::Done(shift, s) => {
                    assert!(kept, "shift {offset} from the top kept");
                    assert_eq!(shift, top + offset);
                    assert!(s >= (-offset).exp() && s.is_finite(), "S = {s}");
                }
                Shifted::Top(t) => {
                    assert!(!kept, "shift {offset} from the top not kept");
                    assert_eq!(t, top);
                }
                Shifted::Fallback => panic!("shift {offset} from the top fell back"),
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn an_infinite_or_nan_score_takes_the_running_maximum() {
        // row 5 of 11 (every row sampled) scores +∞ (1e300·1e10), or, with a second column,
        // NaN (1e300·1e10 − 1e300·1e10), and so does row 5 of 203, which no sample picks: the pass
        // with one shift gives up, and the rows go through the running maximum's pass, to the
        // bit (f = +∞ and ∇f = a₅ for the +∞ score, as there)
        if !crate::kernels::tests::has_avx2_fma("the pass with one shift is") {
            return;
        }
        for (m, nan) in [(11, false), (11, true), (203, false), (203, true)] {
            let n = 2;
            let a = Matrix::from_fn(m, n, |i, j| match (i, j, nan) {
                (5, 0, _) => 1e300,
                (5, 1, true) => -1e300,
                (_, 0, _) => 1.0 + (i % 7) as f64,
                _ => 0.0,
            });
            let p = LogSumExp::new(a, Vector::zeros(m), 0.0).unwrap();
            let mut xp = vec![0.0; p.at.pitch()];
            xp[..n].copy_from_slice(&[1e10, 1e10]);
            let mut g = vec![0.0; p.at.pitch()];
            let shift = p.sampled_shift(&xp, 0, m);
            // SAFETY: the CPU has AVX2 and FMA (checked above)
            let first = unsafe { p.fixed_shift_sum(&xp, 0, m, &mut g, shift) };
            assert!(matches!(first, Shifted::Fallback), "{m} rows, NaN {nan}");
            let ((m1, s1, g1), (m2, s2, g2)) = both_passes(&p, &xp, 0, m);
            let same = |u: f64, v: f64| u.to_bits() == v.to_bits() || (u.is_nan() && v.is_nan());
            assert!(
                same(m1, m2) && same(s1, s2),
                "{m} rows, NaN {nan}: ({m1}, {s1}) against ({m2}, {s2})"
            );
            assert!(
                g1.iter().zip(&g2).all(|(u, v)| same(*u, *v)),
                "{m} rows, NaN {nan}: g"
            );
            let (f, g) = p.cost_and_gradient(&Vector::from_vec(vec![1e10, 1e10])).unwrap();
            if nan {
                assert!(f.is_nan(), "{m} rows: f {f}");
            } else {
                assert_eq!((f, g[0], g[1]), (f64::INFINITY, 1e300, 0.0));
            }
        }
    }

    #[test]
    fn padded_rows_give_the_closed_forms() {
        // rows padded to a multiple of 4, long ones to a multiple of 8 (201 to 208, 317 to
        // 320): f, ∇f, ∇²f and ∇²f·v against the formulas evaluated by nalgebra on the
        // unpadded A, on one thread and split between two (`agrees_with_closed_forms`)
        for (m, n) in [(37, 5), (203, 50), (2003, 37), (300, 201), (700, 317)] {
            let a = Matrix::from_fn(m, n, |i, j| ((i * n + j) as f64 * 0.37).sin());
            let b = Vector::from_fn(m, |i, _| (i as f64 * 0.11).cos());
            let lambda = 0.25;
            let p = LogSumExp::new(a.clone(), b.clone(), lambda).unwrap();
            assert!(p.at.pitch() > n, "{m}×{n}: not padded");
            let x = Vector::from_fn(n, |j, _| 0.2 * (j as f64 * 1.3).cos());
            let v = Vector::from_fn(n, |j, _| (j as f64 * 0.7).sin());
            let z = &a * &x + &b;
            let top = z.max();
            let e = z.map(|t| (t - top).exp());
            let f_want = top + e.sum().ln() + lambda * x.norm_squared();
            let pr = &e / e.sum();
            let g_want = a.transpose() * &pr + 2.0 * lambda * &x;
            let w = Matrix::from_diagonal(&pr) - &pr * pr.transpose();
            let h_want = a.transpose() * w * &a + 2.0 * lambda * Matrix::identity(n, n);
            super::super::agrees_with_closed_forms(
                || LogSumExp::new(a.clone(), b.clone(), lambda).unwrap(),
                &x,
                &v,
                (f_want, &g_want, &h_want),
                &format!("{m}×{n}"),
            );
        }
    }
}
