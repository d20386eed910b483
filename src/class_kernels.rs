//! Kernels for the k scores of a row and the rank update they feed (softmax regression's
//! scores and gradient Aᵀ(P − Y); least squares' AX − B and 2Aᵀ(AX − B) with k right-hand
//! sides), register-blocked over rows and classes, for any k.
//!
//! W (n×k) is read in its class-interleaved layout `wt`: row j holds w₀[j], …, w_{k−1}[j],
//! zero-padded to kp = 4⌈k/4⌉ lanes, so one AVX2 load brings four classes' weights of one
//! feature. A score tile of 3 rows × 12 classes (or 4 × 8, 4 × 4) keeps its accumulators in
//! registers: per feature j, three loads of W, three broadcasts of a_r[j] and nine fused
//! multiply-adds, with no horizontal sums. The rank update G += Σ_r a_r d_rᵀ accumulates in
//! the same layout `gt` (n×kp), by tiles of 3 features × 12 classes (or 4 × 8, 8 × 4) summed
//! over 12 rows in registers and then added to G once: the micro-kernel of the product AᵀD
//! with the rows as its inner dimension. Both are what a GEMM micro-kernel does, without the
//! packing, so nothing is allocated; measured on one core at 20000 × 50 × 10 they run at about
//! 90% of the core's multiply-add peak (scores 660 µs, rank update 740 µs, against 610 µs for
//! the 3·10⁶ cycles each needs at 2.45 GHz).

use crate::aligned::AlignedT;
use crate::kernels::{block_rows, rows_block, scores_block, split_point, PARALLEL_MIN_ENTRIES, ROW_BLOCK};

/// Entries (128 bytes) between the two threads' halves of a scratch buffer, so that the two
/// threads never write to the same cache line. Measured at 20000 × 50 with 2 classes: without
/// the gap, two threads took 540 µs per cost and gradient against 450 with it.
const GAP: usize = 16;

/// How a pass reads W for the scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scores {
    /// Row by row (`kernels::scores_block`: k accumulators over each row, W as vec(W)).
    Rowwise,
    /// By the register tiles of this module (W interleaved).
    Tiles,
}

impl Scores {
    /// The faster for k classes. Measured on one core at 20000 × 50, scores of all rows: k = 2:
    /// 256 µs row by row against 381 by tiles (which fill 2 of 4 lanes); k = 3: 322 against
    /// 387; k = 4: 408 against 333; k = 5: 497 against 501 (and 21 against 30 µs at
    /// 2000 × 20); k = 6: 841 against 495; k = 10: 1349 against 661.
    pub(crate) fn fastest(k: usize) -> Self {
        match k {
            2 | 3 | 5 => Scores::Rowwise,
            _ => Scores::Tiles,
        }
    }
}

/// The buffers of a pass over A (stored as Aᵀ, row-contiguous) that computes the k scores
/// Wᵀaᵢ of every row and, optionally, a rank update Σᵢ aᵢdᵢᵀ: softmax regression and
/// least squares with several right-hand sides. Sized on first use, then reused: a pass
/// allocates nothing.
#[derive(Debug, Default)]
pub(crate) struct ClassPass {
    /// W class-interleaved, n×kp.
    wt: Vec<f64>,
    /// Two n×kp rank-update accumulators (one per thread), GAP apart.
    gt: Vec<f64>,
    /// Two blocks of up to `ROW_BLOCK`×k scores (one per thread), GAP apart.
    z: Vec<f64>,
}

impl ClassPass {
    /// out ← the scores of all rows (row i's k at out[i·k..]), on one thread.
    pub(crate) fn scores_all(&mut self, at: &AlignedT, w: &[f64], k: usize, how: Scores, out: &mut [f64]) {
        let (n, m) = (at.pitch(), at.ncols());
        if how == Scores::Tiles {
            interleave(w, n, k, &mut self.wt);
        }
        let step = class_block_rows(n);
        for lo in (0..m).step_by(step) {
            let hi = (lo + step).min(m);
            block_scores(at, lo, hi, w, &self.wt, k, how, &mut out[lo * k..hi * k]);
        }
    }

    /// One pass over A with W = `w` (vec order, n×k): for each block of rows lo..hi, z ← the
    /// block's scores (row r's k at z[r·k..]), then `then(lo, hi, z)` returns the block's part
    /// of the result and leaves in z the coefficients dᵢ of its rows; with `grad`, also
    /// grad ← Σᵢ aᵢdᵢᵀ (vec order) over all rows. From k·m·n ≥ 2¹⁶ the rows are split between
    /// two threads at the same point whether or not `grad` is wanted, so a cost computed alone
    /// and one computed with its gradient agree to the last bit.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn run(
        &mut self,
        at: &AlignedT,
        w: &[f64],
        k: usize,
        how: Scores,
        grad: Option<&mut [f64]>,
        then: impl Fn(usize, usize, &mut [f64]) -> f64 + Sync,
    ) -> f64 {
        let (n, m) = (at.pitch(), at.ncols());
        let nkp = n * padded(k);
        let want_grad = grad.is_some();
        if want_grad && self.gt.len() != 2 * nkp + GAP {
            self.gt.clear();
            self.gt.resize(2 * nkp + GAP, 0.0);
        }
        if self.z.len() != 2 * ROW_BLOCK * k + GAP {
            self.z.clear();
            self.z.resize(2 * ROW_BLOCK * k + GAP, 0.0);
        }
        if how == Scores::Tiles {
            interleave(w, n, k, &mut self.wt);
        }
        let wt = &self.wt[..];
        let run = |lo: usize, hi: usize, z: &mut [f64], mut gt: Option<&mut [f64]>| -> f64 {
            if let Some(gt) = gt.as_deref_mut() {
                gt.fill(0.0);
            }
            let mut f = 0.0;
            let step = class_block_rows(n);
            let prefetch = at.len() >= PREFETCH_MIN_ENTRIES;
            for start in (lo..hi).step_by(step) {
                let end = (start + step).min(hi);
                let zb = &mut z[..(end - start) * k];
                block_scores(at, start, end, w, wt, k, how, zb);
                f += then(start, end, zb);
                if let Some(gt) = gt.as_deref_mut() {
                    let ahead = match prefetch && end < hi {
                        true => rows_block(at, end, (end + step).min(hi)),
                        false => &[][..],
                    };
                    class_gradient(rows_block(at, start, end), n, zb, k, gt, ahead);
                }
            }
            f
        };
        let (z1, z2) = self.z.split_at_mut(ROW_BLOCK * k + GAP);
        let (gt1, gt2) = match want_grad {
            true => self.gt.split_at_mut(nkp + GAP),
            false => (&mut [][..], &mut [][..]),
        };
        let keep = gt1.len().min(nkp);
        let gt1 = &mut gt1[..keep];
        let split = at.len() * k >= PARALLEL_MIN_ENTRIES && m >= 2 && rayon::current_num_threads() >= 2;
        if split {
            let mid = split_point(m);
            let (g1, g2) = match want_grad {
                true => (Some(&mut *gt1), Some(&mut *gt2)),
                false => (None, None),
            };
            let (f1, f2) = rayon::join(|| run(0, mid, z1, g1), || run(mid, m, z2, g2));
            if let Some(g) = grad {
                deinterleave(&[gt1, gt2], n, k, g);
            }
            f1 + f2
        } else {
            let f = run(0, m, z1, want_grad.then_some(&mut *gt1));
            if let Some(g) = grad {
                deinterleave(&[gt1], n, k, g);
            }
            f
        }
    }
}

/// Entries of A from which the rank update also prefetches the next block's rows, spread over
/// its tiles, so that they come from memory while it computes (the scores, which read the
/// block first, otherwise wait for them: at 20000 × 200 × 10 on one thread the scores took
/// 3.4 ms from memory against 2.1 ms from cache). Measured in alternation with the pass
/// without it, one thread, k = 10: 20000 × 200 (32 MB) 0.81–0.88× the time (two threads
/// 0.90×), 100000 × 50 (40 MB) 0.96–0.97×; but 20000 × 50 (8 MB, which stays in this
/// machine's 32 MB L3) 1.02–1.035× and 2000 × 20 1.02×, hence the threshold: 16 MB of A.
const PREFETCH_MIN_ENTRIES: usize = 1 << 21;

/// Rows per block: [`block_rows`] rounded down to a multiple of 12 (and at least 12, so past
/// 341 features a block holds more than 32 KB of A), so the score tiles (3 rows tall for more
/// than 8 classes, 4 for fewer) leave no row to the slow one-row tile. At
/// 20000 × 200 with k = 10 (20 rows a block before, two of them one-row tiles) one thread's
/// pass went from 7.16 to 6.82 ms (mean of 3 runs each, alternated); at 20000 × 50 (60 rows,
/// was 64) it did not change.
fn class_block_rows(n: usize) -> usize {
    (block_rows(n) / 12 * 12).max(12)
}

/// z ← the scores of rows lo..hi, by `how`.
#[allow(clippy::too_many_arguments)]
fn block_scores(
    at: &AlignedT,
    lo: usize,
    hi: usize,
    w: &[f64],
    wt: &[f64],
    k: usize,
    how: Scores,
    z: &mut [f64],
) {
    let (n, block) = (at.pitch(), rows_block(at, lo, hi));
    match how {
        Scores::Rowwise => scores_block(block, n, w, k, z),
        Scores::Tiles => class_scores(block, n, wt, k, z),
    }
}

/// kp = 4⌈k/4⌉: the padded row length of the interleaved layout.
#[inline]
pub(crate) fn padded(k: usize) -> usize {
    k.div_ceil(4) * 4
}

/// wt ← W (x = vec(W), n×k column-major) in the interleaved layout: wt[j·kp + c] = x[c·n + j],
/// the padding lanes 0. Resizes wt to n·kp (allocating only when it grows).
pub(crate) fn interleave(x: &[f64], n: usize, k: usize, wt: &mut Vec<f64>) {
    let kp = padded(k);
    wt.clear();
    wt.resize(n * kp, 0.0);
    for (c, col) in x.chunks_exact(n.max(1)).take(k).enumerate() {
        for (j, &v) in col.iter().enumerate() {
            wt[j * kp + c] = v;
        }
    }
}

/// g[c·n + j] ← Σ_t gts_t[j·kp + c]: the gradient in vec(G) order from one or two interleaved
/// accumulators.
pub(crate) fn deinterleave(gts: &[&[f64]], n: usize, k: usize, g: &mut [f64]) {
    let kp = padded(k);
    for (c, col) in g.chunks_exact_mut(n.max(1)).take(k).enumerate() {
        for (j, out) in col.iter_mut().enumerate() {
            *out = gts.iter().map(|gt| gt[j * kp + c]).sum();
        }
    }
}

/// z[r·k + c] ← a_rᵀw_c for the rows a_r of a block (n entries each, contiguous), with W
/// interleaved in `wt` (n·kp entries).
pub(crate) fn class_scores(block: &[f64], n: usize, wt: &[f64], k: usize, z: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports the features `scores_avx2` is compiled for (checked above).
            return unsafe { scores_avx2(block, n, wt, k, z) };
        }
    }
    scores_portable(block, n, wt, k, z)
}

/// gt[j·kp + c] += Σ_r d[r·k + c]·a_r[j] for the rows a_r of a block, with the rows'
/// coefficients d (k per row, contiguous) and G interleaved in `gt` (n·kp entries). The
/// cache lines of `ahead` (the next block, or empty) are prefetched along the way.
pub(crate) fn class_gradient(block: &[f64], n: usize, d: &[f64], k: usize, gt: &mut [f64], ahead: &[f64]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: as in `class_scores`.
            return unsafe { gradient_avx2(block, n, d, k, gt, ahead) };
        }
    }
    let _ = ahead;
    gradient_portable(block, n, d, k, gt)
}

fn scores_portable(block: &[f64], n: usize, wt: &[f64], k: usize, z: &mut [f64]) {
    let (n, kp) = (n.max(1), padded(k));
    for (a, zr) in block.chunks_exact(n).zip(z.chunks_exact_mut(k.max(1))) {
        for (c, zc) in zr.iter_mut().enumerate() {
            *zc = a.iter().enumerate().map(|(j, aj)| aj * wt[j * kp + c]).sum();
        }
    }
}

fn gradient_portable(block: &[f64], n: usize, d: &[f64], k: usize, gt: &mut [f64]) {
    let (n, kp) = (n.max(1), padded(k));
    for (a, dr) in block.chunks_exact(n).zip(d.chunks_exact(k.max(1))) {
        for (aj, gj) in a.iter().zip(gt.chunks_exact_mut(kp)) {
            for (g, dc) in gj.iter_mut().zip(dr) {
                *g += aj * dc;
            }
        }
    }
}

/// The tiles of a block: classes twelve lanes at a time (then the four or eight left), and
/// for each group of classes the rows three at a time for twelve lanes, four for fewer (so a
/// tile's accumulators, weights and broadcast fit the sixteen AVX2 registers), then one at a
/// time. (Eight rows for four lanes, for more independent accumulators, measured slower at
/// 20000 × 50 × 2: 568 against 387 µs, eight rows read side by side.) Calls
/// `tile(r0, rows, c0, vectors)`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn tiles(rows: usize, kp: usize, mut tile: impl FnMut(usize, usize, usize, usize)) {
    let mut c0 = 0;
    while c0 < kp {
        let v = ((kp - c0) / 4).min(3);
        let tall = if v == 3 { 3 } else { 4 };
        let mut r0 = 0;
        while r0 < rows {
            let height = if rows - r0 >= tall { tall } else { 1 };
            tile(r0, height, c0, v);
            r0 += height;
        }
        c0 += 4 * v;
    }
}

/// Checks the sizes the unchecked tile loads rely on; false if the call is malformed (then
/// nothing is done, as with the zip-based portable loops on short slices).
#[cfg(target_arch = "x86_64")]
fn sizes_ok(block: &[f64], n: usize, w: &[f64], k: usize, per_row: &[f64]) -> bool {
    n > 0 && k > 0 && w.len() >= n * padded(k) && per_row.len() >= block.len() / n * k
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn scores_avx2(block: &[f64], n: usize, wt: &[f64], k: usize, z: &mut [f64]) {
    if !sizes_ok(block, n, wt, k, z) {
        return;
    }
    let (rows, kp) = (block.len() / n, padded(k));
    tiles(rows, kp, |r0, height, c0, v| {
        let a = &block[r0 * n..(r0 + height) * n];
        let z = &mut z[r0 * k..(r0 + height) * k];
        // SAFETY: the tile reads a (height rows of n), wt[j·kp + c0 + l] for l < 4v with
        // c0 + 4v ≤ kp, and writes z's first `height` rows: sizes checked in sizes_ok
        unsafe {
            match (height, v) {
                (4, 1) => scores_tile::<4, 1>(a, n, wt, kp, c0, k, z),
                (4, _) => scores_tile::<4, 2>(a, n, wt, kp, c0, k, z),
                (3, _) => scores_tile::<3, 3>(a, n, wt, kp, c0, k, z),
                (_, 1) => scores_tile::<1, 1>(a, n, wt, kp, c0, k, z),
                (_, 2) => scores_tile::<1, 2>(a, n, wt, kp, c0, k, z),
                (_, _) => scores_tile::<1, 3>(a, n, wt, kp, c0, k, z),
            }
        }
    });
}

/// R rows × 4V classes from c0: acc[r][v] += a_r[j]·wt[j, c0 + 4v..] over j, then the
/// classes below k stored to z (row r at r·k).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn scores_tile<const R: usize, const V: usize>(
    a: &[f64],
    n: usize,
    wt: &[f64],
    kp: usize,
    c0: usize,
    k: usize,
    z: &mut [f64],
) {
    use std::arch::x86_64::*;
    let (pa, pw) = (a.as_ptr(), wt.as_ptr().add(c0));
    let mut acc = [[_mm256_setzero_pd(); V]; R];
    for j in 0..n {
        let w: [__m256d; V] = std::array::from_fn(|v| _mm256_loadu_pd(pw.add(j * kp + 4 * v)));
        for (r, acc_r) in acc.iter_mut().enumerate() {
            let b = _mm256_broadcast_sd(&*pa.add(r * n + j));
            for (s, wv) in acc_r.iter_mut().zip(&w) {
                *s = _mm256_fmadd_pd(b, *wv, *s);
            }
        }
    }
    let width = (k - c0).min(4 * V);
    for (r, acc_r) in acc.iter().enumerate() {
        let zr = &mut z[r * k + c0..r * k + c0 + width];
        if width == 4 * V {
            for (v, s) in acc_r.iter().enumerate() {
                _mm256_storeu_pd(zr.as_mut_ptr().add(4 * v), *s);
            }
        } else {
            // the last classes: whole vectors, then the lanes below k by a masked store (a
            // copy through a buffer became a memcpy call per row, 8% of a softmax pass)
            for (v, s) in acc_r.iter().enumerate() {
                let lanes = width.saturating_sub(4 * v).min(4);
                if lanes == 4 {
                    _mm256_storeu_pd(zr.as_mut_ptr().add(4 * v), *s);
                } else if lanes > 0 {
                    let mask = _mm256_loadu_si256(LANE_MASKS[lanes].as_ptr().cast());
                    _mm256_maskstore_pd(zr.as_mut_ptr().add(4 * v), mask, *s);
                }
            }
        }
    }
}

/// `LANE_MASKS[l]`: the first l of four lanes set, for `_mm256_maskstore_pd`.
#[cfg(target_arch = "x86_64")]
const LANE_MASKS: [[i64; 4]; 5] = [
    [0, 0, 0, 0],
    [-1, 0, 0, 0],
    [-1, -1, 0, 0],
    [-1, -1, -1, 0],
    [-1, -1, -1, -1],
];

/// Rows per chunk of the gradient kernel: each tile of G accumulates over this many rows in
/// registers before it is added to G in memory.
#[cfg(target_arch = "x86_64")]
const GRADIENT_ROWS: usize = 12;

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn gradient_avx2(block: &[f64], n: usize, d: &[f64], k: usize, gt: &mut [f64], ahead: &[f64]) {
    if !sizes_ok(block, n, gt, k, d) {
        return;
    }
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T1};
    let (rows, kp) = (block.len() / n, padded(k));
    // the lines of `ahead`, spread evenly over the tiles below: per chunk of rows, each group
    // of classes takes n / wide tiles `wide` features wide and n % wide one feature wide
    let mut lines = ahead.chunks(8);
    let (mut group_tiles, mut c0) = (0, 0);
    while c0 < kp {
        let v = ((kp - c0) / 4).min(3);
        let wide = gradient_tile_width(v);
        group_tiles += n / wide + n % wide;
        c0 += 4 * v;
    }
    let per_tile = lines
        .len()
        .div_ceil((rows.div_ceil(GRADIENT_ROWS) * group_tiles).max(1));
    // a chunk's coefficients for one group of classes, zero-padded to 12 lanes a row
    let mut dp = [0.0; GRADIENT_ROWS * 12];
    for r0 in (0..rows).step_by(GRADIENT_ROWS) {
        let height = (rows - r0).min(GRADIENT_ROWS);
        let a = &block[r0 * n..(r0 + height) * n];
        let mut c0 = 0;
        while c0 < kp {
            let v = ((kp - c0) / 4).min(3);
            let width = (k - c0).min(4 * v);
            for r in 0..height {
                let src = &d[(r0 + r) * k + c0..(r0 + r) * k + c0 + width];
                let dst = &mut dp[r * 12..r * 12 + 4 * v];
                for (l, out) in dst.iter_mut().enumerate() {
                    *out = if l < width { src[l] } else { 0.0 };
                }
            }
            let wide = gradient_tile_width(v);
            let mut j0 = 0;
            while j0 < n {
                let step = if n - j0 >= wide { wide } else { 1 };
                // SAFETY: the tile reads a[r·n + j0 + t] for r < height, t < step with
                // j0 + step ≤ n, dp's first `height` rows, and gt[(j0 + t)·kp + c0 + l] for
                // l < 4v ≤ kp − c0: sizes checked in sizes_ok
                unsafe {
                    match (v, step) {
                        (3, 3) => gradient_tile::<3, 3>(a, n, height, &dp, j0, c0, kp, gt),
                        (2, 4) => gradient_tile::<4, 2>(a, n, height, &dp, j0, c0, kp, gt),
                        (1, 8) => gradient_tile::<8, 1>(a, n, height, &dp, j0, c0, kp, gt),
                        (3, _) => gradient_tile::<1, 3>(a, n, height, &dp, j0, c0, kp, gt),
                        (2, _) => gradient_tile::<1, 2>(a, n, height, &dp, j0, c0, kp, gt),
                        (_, _) => gradient_tile::<1, 1>(a, n, height, &dp, j0, c0, kp, gt),
                    }
                }
                j0 += step;
                for line in lines.by_ref().take(per_tile) {
                    // SAFETY: a prefetch reads nothing and does not fault (the intrinsic is
                    // safe in newer Rust, but unsafe in the MSRV's)
                    #[allow(unused_unsafe)]
                    unsafe {
                        _mm_prefetch::<_MM_HINT_T1>(line.as_ptr().cast())
                    };
                }
            }
            c0 += 4 * v;
        }
    }
}

/// Features per rank-update tile for v vectors of classes: three (twelve lanes), four (eight)
/// or eight (four) at a time; the features past the last multiple go one at a time.
#[cfg(target_arch = "x86_64")]
fn gradient_tile_width(v: usize) -> usize {
    match v {
        3 => 3,
        2 => 4,
        _ => 8,
    }
}

/// gt[j0 + t, c0 + 4v..] += Σ_r a_r[j0 + t]·dp[r, 4v..] for J features and 4V classes: the
/// J×V tile of G accumulates over the chunk's rows in registers (the micro-kernel of
/// G += AᵀD, with the rows as the inner dimension), then is added to G once.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn gradient_tile<const J: usize, const V: usize>(
    a: &[f64],
    n: usize,
    rows: usize,
    dp: &[f64; GRADIENT_ROWS * 12],
    j0: usize,
    c0: usize,
    kp: usize,
    gt: &mut [f64],
) {
    use std::arch::x86_64::*;
    let (pa, pd) = (a.as_ptr().add(j0), dp.as_ptr());
    let mut acc = [[_mm256_setzero_pd(); V]; J];
    for r in 0..rows {
        let dv: [__m256d; V] = std::array::from_fn(|v| _mm256_loadu_pd(pd.add(r * 12 + 4 * v)));
        for (t, acc_t) in acc.iter_mut().enumerate() {
            let b = _mm256_broadcast_sd(&*pa.add(r * n + t));
            for (s, dvv) in acc_t.iter_mut().zip(&dv) {
                *s = _mm256_fmadd_pd(b, *dvv, *s);
            }
        }
    }
    let pg = gt.as_mut_ptr().add(c0);
    for (t, acc_t) in acc.iter().enumerate() {
        for (v, s) in acc_t.iter().enumerate() {
            let p = pg.add((j0 + t) * kp + 4 * v);
            _mm256_storeu_pd(p, _mm256_add_pd(_mm256_loadu_pd(p), *s));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scores and gradients by the kernels against plain dot products and axpys, for k across
    /// the tile widths (4, 8, 12 lanes, several tiles, padding) and blocks with a row remainder.
    #[test]
    fn kernels_match_dots_and_axpys() {
        for (k, n, rows) in [
            (2, 1, 1),
            (3, 7, 5),
            (4, 8, 4),
            (5, 13, 9),
            (10, 50, 16),
            (12, 3, 7),
            (13, 5, 6),
            (26, 11, 3),
        ] {
            let block: Vec<f64> = (0..rows * n).map(|i| (i as f64 * 0.41).sin()).collect();
            let x: Vec<f64> = (0..k * n).map(|i| (i as f64 * 0.23).cos()).collect();
            let mut wt = Vec::new();
            interleave(&x, n, k, &mut wt);
            // four sentinels past the end: the masked stores of the last classes write no
            // lane beyond them
            let mut z = vec![7.0; rows * k + 4];
            class_scores(&block, n, &wt, k, &mut z[..rows * k]);
            assert_eq!(&z[rows * k..], &[7.0; 4], "k {k} n {n}: wrote past the scores");
            z.truncate(rows * k);
            let mut zp = vec![0.0; rows * k];
            scores_portable(&block, n, &wt, k, &mut zp);
            let mut gt = vec![0.5; n * padded(k)];
            class_gradient(&block, n, &z, k, &mut gt, &block);
            let mut gtp = vec![0.5; n * padded(k)];
            gradient_portable(&block, n, &z, k, &mut gtp);
            let mut g = vec![0.0; k * n];
            deinterleave(&[&gt], n, k, &mut g);
            let mut want_g = vec![0.5; k * n];
            for r in 0..rows {
                let a = &block[r * n..(r + 1) * n];
                for c in 0..k {
                    let w = &x[c * n..(c + 1) * n];
                    let want: f64 = a.iter().zip(w).map(|(p, q)| p * q).sum();
                    assert!(
                        (z[r * k + c] - want).abs() < 1e-13,
                        "k {k} n {n} row {r} class {c}"
                    );
                    assert!((zp[r * k + c] - want).abs() < 1e-13, "portable, k {k} n {n}");
                    for (gj, aj) in want_g[c * n..(c + 1) * n].iter_mut().zip(a) {
                        *gj += z[r * k + c] * aj;
                    }
                }
            }
            assert!(
                g.iter().zip(&want_g).all(|(p, q)| (p - q).abs() < 1e-12),
                "k {k} n {n}"
            );
            // the padding lanes stay as they were: only classes below k are touched
            let kp = padded(k);
            for j in 0..n {
                for c in k..kp {
                    assert_eq!(gt[j * kp + c], 0.5);
                }
            }
            assert!(
                gt.iter().zip(&gtp).all(|(p, q)| (p - q).abs() < 1e-12),
                "portable, k {k}"
            );
        }
    }
}
