//! Kernels for the k scores of a row and the rank update they feed (softmax regression's
//! scores and gradient Aᵀ(P − Y); least squares' AX − B and 2Aᵀ(AX − B) with k right-hand
//! sides), register-blocked over rows and classes, for any k.
//!
//! W and G are read and written in vec order (column c, class c's n weights, at c·n), and
//! every vector runs along the features, four of them a lane each, so no lane is spent on
//! padding whatever k is. A score tile of 2 rows × up to 6 classes keeps 2·C accumulators in
//! registers: per four features, two loads of A, C loads of W and 2·C fused multiply-adds,
//! each accumulator summed across its lanes once per row, after all its features. A
//! rank-update tile G[c, j..] += Σ_r d_r[c]·a_r[j..] holds up to 6 classes × 8 features (or
//! 3 × 12) in registers over all the rows of a block, then adds them to G once: the
//! micro-kernel of the product AᵀD with the rows as its inner dimension, again with no
//! padding. Nothing is allocated.
//!
//! Measured on one core against the multiply-adds alone at the core's peak
//! (`benches/common/arith.rs`), on a block in L1 (a scratch harness): at 60 rows × 50
//! features, k = 10, the scores took 1.32× that floor and the rank update 1.16×; at 12 × 200,
//! 1.19× and 1.18×; k = 5, 1.13–1.34× and 1.15–1.18×. The earlier kernels, with the classes
//! along the lanes (padded to 4⌈k/4⌉), took 1.36–1.39× and 1.42–1.65× at k = 10, and at k = 5
//! 1.8–2.0× (its scores went row by row, about as fast) and 2.0–2.4×.
//!
//! Where the CPU has AVX-512 the same tiles (AVX2 arithmetic) are compiled with its 32
//! registers and made bigger: scores 4 rows × up to 6 classes, rank updates up to 6 classes ×
//! 16 features. Floor bench `--quick softmax` (k = 10), one thread pinned, two runs each in
//! alternation with the 16-register tiles, fused ÷ arithmetic floor (the pass's 2(k − 1)
//! multiply-adds an entry) in the calmer pair:
//! 20000 × 50 1.78–1.85× against 1.91–1.93×, 100000 × 50 2.00× against 2.16–2.21×, 20000 × 200
//! 1.47–1.48× against 1.55×; one-thread L-BFGS on softmax 10000 × 50 with k = 5, five runs in
//! alternation, 8.04–8.17 ms against 8.39–8.61.

use crate::aligned::AlignedT;
#[cfg(target_arch = "x86_64")]
use crate::kernels::Prefetcher;
use crate::kernels::{block_rows, rows_block, split_point, splits, PARALLEL_MIN_ENTRIES, ROW_BLOCK};

/// Per row, what softmax's pass spends besides its multiply-adds (the rows' softmax, the
/// exponentials, the score sums), in multiply-add pairs: a softmax pass costs about
/// m·((k − 1)·n + 80) units (0.12 ns each here, fitted to one-thread evaluations at 20 and 50
/// features, k = 2 to 10: 12 ns a row at k = 2, 20 at k = 5, 63 at k = 10 with 50 features).
const SOFTMAX_ROW_UNITS: usize = 80;

/// A softmax class pass is split between two threads from m·((k − 1)·n + 80) ≥
/// [`PARALLEL_MIN_ENTRIES`] (3·2¹⁷, where one target's pass splits), about 50 µs of one
/// thread's work. Measured in `gradfit solve --model softmax --l2 1e-3 --solver lbfgs --repeat
/// 10`, time per evaluation, one thread against two with the pass always split, five rounds
/// in alternation (fastest–median): k = 2, 20 features, 4000 rows (400 000 units) 47.0–47.8 µs
/// against 32.4–37.6, 8000 rows 95.9–118.8 against 62.0–75.3; k = 5, 20 features, 2000 rows
/// (320 000, not split) 36.3–47.2 against 29.4–31.6, 4000 rows 71.2–88.5 against 55.0–63.5,
/// 6000 rows 106.8–136.8 against 64.3–86.2; k = 10, 20 features, 1000 rows (260 000, not
/// split) 33.3–43.1 against 26.3–39.7, 2000 rows 63.8–65.8 against 46.6–51.1; k = 3, 50
/// features, 2000 rows (360 000, not split) 44.8–58.2 against 41.4–47.0, 4000 rows 91.0–96.1
/// against 67.9–85.1. In the same rounds logistic's pass, whose rule is unchanged, at 50
/// features: 2000 rows 15.7–22.5 against 16.2–20.9, 4000 rows 31.2–42.1 against 26.9–40.6
/// (even), 8000 rows (split) 58.1–59.2 against 55.5–60.4. In these runs the split paid for
/// softmax from about 35 µs of one thread's work (two threads were faster at each point left
/// unsplit above); the rule puts the line where logistic's is, about 47 µs, a little later,
/// so that small problems stay on one thread where a split costs more. The units are this
/// machine's AVX-512 code's; where the code is slower (AVX2, portable: 8× at 20000 × 200) a
/// pass at the line takes longer, and splits later than its time alone would call for.
///
/// The rule before, k·m·n ≥ 2²⁰, was measured when the pass did 2k multiply-adds an entry,
/// with slower kernels, and in a state of the machine where a split cost more: k = 5, 20
/// features, 2000 rows 45 against 58–59 µs, 4000 rows 89–90 against 104–105, 8000 rows
/// 178–180 against 196–200. (Another run then gave 44 µs on one thread and 31 on two at 2000
/// rows: how much a split costs moves with the machine's state; the three batches of five
/// rounds behind this rule all had it cheap.)
fn softmax_units(rows: usize, n: usize, k: usize) -> usize {
    k.saturating_sub(1)
        .saturating_mul(n)
        .saturating_add(SOFTMAX_ROW_UNITS)
        .saturating_mul(rows)
}

/// From this much work (k·m·n) a pass made by [`ClassPass::by_entries`] is split between two
/// threads even below [`PARALLEL_MIN_ENTRIES`] entries of A: 3·2²¹, about 6.3 million. The same
/// solves as [`ClassPass::by_entries`]'s, two threads, the pass split (the rule before) against
/// one thread, three runs in alternation: 40 targets, 2000 rows × 50 (4 million) 451–460 µs an
/// evaluation against 438–443; 40 targets, 4000 rows (8 million) 545–619 against 860–865;
/// 100 targets, 2000 rows (10 million) 665–692 against 1091–1100. With this rule against the
/// one before it (two runs): 461–474 against 864–869, and 811–859 against 1100–1152.
const LINEAR_CLASS_PARALLEL_MIN_WORK: usize = 3 << 21;

/// Entries (128 bytes) between the two threads' halves of a scratch buffer, so that the two
/// threads never write to the same cache line. Measured at 20000 × 50 with 2 classes: without
/// the gap, two threads took 540 µs per cost and gradient against 450 with it.
const GAP: usize = 16;

/// The buffers of a pass over A (stored as Aᵀ, row-contiguous) that computes the k scores
/// Wᵀaᵢ of every row and, optionally, a rank update Σᵢ aᵢdᵢᵀ: softmax regression and
/// least squares with several right-hand sides. Sized on first use, then reused: a pass
/// allocates nothing.
#[derive(Debug, Default)]
pub(crate) struct ClassPass {
    /// Whether the pass is split from m·n ≥ [`PARALLEL_MIN_ENTRIES`] entries of A, as one
    /// target's pass is, rather than from [`softmax_units`] ≥ that (softmax's).
    by_entries: bool,
    /// Two n×k rank-update accumulators in vec order (one per thread), GAP apart.
    gt: Vec<f64>,
    /// Two blocks of up to `ROW_BLOCK`×stride scores (one per thread), GAP apart.
    z: Vec<f64>,
}

impl ClassPass {
    /// A pass for least squares with several targets: split between two threads from
    /// m·n ≥ [`PARALLEL_MIN_ENTRIES`], as with one target, or from k·m·n ≥
    /// [`LINEAR_CLASS_PARALLEL_MIN_WORK`].
    ///
    /// With no exponentials, softmax's earlier rule (k·m·n ≥ 2²⁰) did not pay for the split
    /// at k·m·n of 2²⁰ to 3·2²⁰: `gradfit solve --model least-squares --target y1,…,y10
    /// --gram off --solver lbfgs --repeat 10`, 50 features, two threads, time per evaluation,
    /// four runs in alternation with that rule: 4000 rows (2 million) 213–215 µs against
    /// 228–230, 6000 rows 320–335 against 338–343 (one thread: 214–222 and 322–448); with 3
    /// targets, 12 000 rows (1.8 million, split either way) took 228–234 µs on one thread and
    /// 152–181 on two.
    pub(crate) fn by_entries() -> Self {
        ClassPass {
            by_entries: true,
            ..ClassPass::default()
        }
    }

    /// out ← the scores of all rows (row i's k at out[i·k..]), on one thread.
    pub(crate) fn scores_all(&mut self, at: &AlignedT, w: &[f64], k: usize, out: &mut [f64]) {
        let (n, m) = (at.pitch(), at.ncols());
        let step = class_block_rows(n);
        for lo in (0..m).step_by(step) {
            let hi = (lo + step).min(m);
            class_scores(rows_block(at, lo, hi), n, w, k, &mut out[lo * k..hi * k]);
        }
    }

    /// Whether a pass over A of `rows` rows of `n` entries (the pitch) with k scores a row is
    /// split between two threads.
    fn splits(&self, rows: usize, n: usize, k: usize) -> bool {
        let entries = rows.saturating_mul(n);
        match self.by_entries {
            true => {
                splits(entries, PARALLEL_MIN_ENTRIES)
                    || splits(entries.saturating_mul(k), LINEAR_CLASS_PARALLEL_MIN_WORK)
            }
            false => splits(softmax_units(rows, n, k), PARALLEL_MIN_ENTRIES),
        }
    }

    /// One pass over A with W = `w` (vec order, n×k): for each block of rows lo..hi, z ← the
    /// block's scores (row r's k at z[r·k..]), then `then(lo, hi, z)` returns the block's part
    /// of the result and leaves in z the coefficients dᵢ of its rows; with `grad`, also
    /// grad ← Σᵢ aᵢdᵢᵀ (vec order) over all rows. From m·((k − 1)·n + 80) ≥ 3·2¹⁷ (for a
    /// pass made by [`ClassPass::by_entries`], m·n ≥ 3·2¹⁷ or k·m·n ≥ 3·2²¹; k is the
    /// stride, the scores a row holds) the rows are split between
    /// two threads at the same point whether or not `grad` is wanted, so a cost computed alone
    /// and one computed with its gradient agree to the last bit.
    pub(crate) fn run(
        &mut self,
        at: &AlignedT,
        w: &[f64],
        k: usize,
        grad: Option<&mut [f64]>,
        then: impl Fn(usize, usize, &mut [f64]) -> f64 + Sync,
    ) -> f64 {
        self.run_strided(at, w, (k, k), grad, then)
    }

    /// [`ClassPass::run`] with `stride` ≥ k entries of z per row: the kernels write row r's k
    /// scores at z[r·stride..], `then` sees the whole rows (the last stride − k entries of each
    /// as it left them), and the rank update reads each row's first k coefficients. The split
    /// between threads is decided as for `stride` classes (softmax's k, whose pass computes k − 1
    /// scores a row but k exponentials).
    pub(crate) fn run_strided(
        &mut self,
        at: &AlignedT,
        w: &[f64],
        (k, stride): (usize, usize),
        grad: Option<&mut [f64]>,
        then: impl Fn(usize, usize, &mut [f64]) -> f64 + Sync,
    ) -> f64 {
        let (n, m) = (at.pitch(), at.ncols());
        let nk = n * k;
        let want_grad = grad.is_some();
        if want_grad && self.gt.len() != 2 * nk + GAP {
            self.gt.clear();
            self.gt.resize(2 * nk + GAP, 0.0);
        }
        if self.z.len() != 2 * ROW_BLOCK * stride + GAP {
            self.z.clear();
            self.z.resize(2 * ROW_BLOCK * stride + GAP, 0.0);
        }
        let run = |lo: usize, hi: usize, z: &mut [f64], mut gt: Option<&mut [f64]>| -> f64 {
            if let Some(gt) = gt.as_deref_mut() {
                gt.fill(0.0);
            }
            let mut f = 0.0;
            let step = class_block_rows(n);
            let prefetch = at.len() >= PREFETCH_MIN_ENTRIES;
            for start in (lo..hi).step_by(step) {
                let end = (start + step).min(hi);
                let zb = &mut z[..(end - start) * stride];
                class_scores_strided(rows_block(at, start, end), n, w, (k, stride), zb);
                f += then(start, end, zb);
                if let Some(gt) = gt.as_deref_mut() {
                    let ahead = match prefetch && end < hi {
                        true => rows_block(at, end, (end + step).min(hi)),
                        false => &[][..],
                    };
                    class_gradient_strided(rows_block(at, start, end), n, zb, (k, stride), gt, ahead);
                }
            }
            f
        };
        let split = m >= 2 && self.splits(m, n, stride);
        let (z1, z2) = self.z.split_at_mut(ROW_BLOCK * stride + GAP);
        let (gt1, gt2) = match want_grad {
            true => self.gt.split_at_mut(nk + GAP),
            false => (&mut [][..], &mut [][..]),
        };
        let keep = gt1.len().min(nk);
        let gt1 = &mut gt1[..keep];
        if split {
            let mid = split_point(m);
            let (g1, g2) = match want_grad {
                true => (Some(&mut *gt1), Some(&mut *gt2)),
                false => (None, None),
            };
            let (f1, f2) = rayon::join(|| run(0, mid, z1, g1), || run(mid, m, z2, g2));
            if let Some(g) = grad {
                for ((out, p), q) in g.iter_mut().zip(&*gt1).zip(&*gt2) {
                    *out = p + q;
                }
            }
            f1 + f2
        } else {
            let f = run(0, m, z1, want_grad.then_some(&mut *gt1));
            if let Some(g) = grad {
                let len = g.len().min(gt1.len());
                g[..len].copy_from_slice(&gt1[..len]);
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
/// (Measured with the earlier kernels, classes along the lanes. With the kernels along the
/// features, floor bench `--quick softmax`, one thread pinned, three runs each in alternation
/// with a build that never prefetches, fused ÷ arithmetic floor: 20000 × 200 1.48–1.71×
/// against 2.28–2.44×, 100000 × 50 2.14–2.43× against 2.56–2.82×, 20000 × 50 1.93–2.06×
/// against 1.91–2.03×, with that floor at 2k multiply-adds an entry, the pass's count then:
/// the threshold stands.)
const PREFETCH_MIN_ENTRIES: usize = 1 << 21;

/// Rows per block: [`block_rows`] rounded down to a multiple of 12, and at least 12 (so past
/// 341 features a block holds more than 32 KB of A): the rank update's tiles sum over all the
/// rows of a block in registers before adding to G, so a block of few rows would spend its
/// time adding. (Chosen for the earlier kernels, whose score tiles were 3 and 4 rows tall: at
/// 20000 × 200 with k = 10, 20 rows a block before, one thread's pass went from 7.16 to
/// 6.82 ms.)
fn class_block_rows(n: usize) -> usize {
    (block_rows(n) / 12 * 12).max(12)
}

/// Classes per tile for the `left` classes not yet done: as few tiles of at most six classes
/// as cover them, as even as can be (10 → 5 + 5, 12 → 6 + 6, 7 → 4 + 3), so the block's rows
/// are read by as few tiles as possible and none is left with a class or two.
#[cfg(target_arch = "x86_64")]
#[inline]
fn class_group(left: usize) -> usize {
    left.div_ceil(left.div_ceil(6).max(1))
}

/// z[r·k + c] ← a_rᵀw_c for the rows a_r of a block (n entries each, contiguous), with W in
/// vec order (w_c at w[c·n..], k·n entries).
pub(crate) fn class_scores(block: &[f64], n: usize, w: &[f64], k: usize, z: &mut [f64]) {
    class_scores_strided(block, n, w, (k, k), z)
}

/// [`class_scores`] with `stride` ≥ k entries of z per row: z[r·stride + c] ← a_rᵀw_c for
/// c < k, the other entries of each row left alone.
pub(crate) fn class_scores_strided(
    block: &[f64],
    n: usize,
    w: &[f64],
    (k, stride): (usize, usize),
    z: &mut [f64],
) {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::cpu::avx2() {
            if crate::kernels::has_avx512() {
                // SAFETY: the CPU has AVX2, FMA and AVX-512 F and VL (checked above).
                return unsafe { scores_avx512(block, n, w, (k, stride), z) };
            }
            // SAFETY: the CPU supports the features `scores_avx2` is compiled for (checked above).
            return unsafe { scores_avx2(block, n, w, (k, stride), z) };
        }
    }
    scores_portable(block, n, w, (k, stride), z)
}

/// g[c·n + j] += Σ_r d[r·k + c]·a_r[j] for the rows a_r of a block, with the rows'
/// coefficients d (k per row, contiguous) and G in vec order (n·k entries). The cache lines
/// of `ahead` (the next block, or empty) are prefetched along the way.
pub(crate) fn class_gradient(block: &[f64], n: usize, d: &[f64], k: usize, g: &mut [f64], ahead: &[f64]) {
    class_gradient_strided(block, n, d, (k, k), g, ahead)
}

/// [`class_gradient`] with `stride` ≥ k coefficients per row, of which the first k are used.
pub(crate) fn class_gradient_strided(
    block: &[f64],
    n: usize,
    d: &[f64],
    (k, stride): (usize, usize),
    g: &mut [f64],
    ahead: &[f64],
) {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::cpu::avx2() {
            if crate::kernels::has_avx512() {
                // SAFETY: as in `class_scores`.
                return unsafe { gradient_avx512(block, n, d, (k, stride), g, ahead) };
            }
            // SAFETY: as in `class_scores`.
            return unsafe { gradient_avx2(block, n, d, (k, stride), g, ahead) };
        }
    }
    let _ = ahead;
    gradient_portable(block, n, d, (k, stride), g)
}

fn scores_portable(block: &[f64], n: usize, w: &[f64], (k, stride): (usize, usize), z: &mut [f64]) {
    if k > stride {
        return; // malformed, as `sizes_ok` has it for the vector kernels
    }
    let n = n.max(1);
    for (a, zr) in block.chunks_exact(n).zip(z.chunks_exact_mut(stride.max(1))) {
        let keep = k.min(zr.len());
        let zr = &mut zr[..keep];
        for (zc, wc) in zr.iter_mut().zip(w.chunks_exact(n)) {
            *zc = a.iter().zip(wc).map(|(p, q)| p * q).sum();
        }
    }
}

fn gradient_portable(block: &[f64], n: usize, d: &[f64], (k, stride): (usize, usize), g: &mut [f64]) {
    if k > stride {
        return; // malformed, as `sizes_ok` has it for the vector kernels
    }
    let n = n.max(1);
    for (a, dr) in block.chunks_exact(n).zip(d.chunks_exact(stride.max(1))) {
        let dr = &dr[..k.min(dr.len())];
        for (gc, dc) in g.chunks_exact_mut(n).zip(dr) {
            for (gj, aj) in gc.iter_mut().zip(a) {
                *gj += aj * dc;
            }
        }
    }
}

/// Checks the sizes the unchecked tile loads rely on: at least one whole row of n ≥ 1 entries,
/// 1 ≤ k ≤ stride, W (or G) of n·k entries and `stride` per row; false if the call is
/// malformed or empty (then nothing is done, as with the zip-based portable loops on short
/// slices).
#[cfg(target_arch = "x86_64")]
fn sizes_ok(block: &[f64], n: usize, w: &[f64], (k, stride): (usize, usize), per_row: &[f64]) -> bool {
    let rows = block.len().checked_div(n).unwrap_or(0);
    let fits = |len: usize, a: usize, b: usize| a.checked_mul(b).is_some_and(|need| len >= need);
    rows > 0 && k > 0 && k <= stride && fits(w.len(), n, k) && fits(per_row.len(), rows, stride)
}

/// `LANE_MASKS[l]`: the first l of four lanes set, for the masked loads and stores of the
/// features past the last multiple of 4.
#[cfg(target_arch = "x86_64")]
const LANE_MASKS: [[i64; 4]; 5] = [
    [0, 0, 0, 0],
    [-1, 0, 0, 0],
    [-1, -1, 0, 0],
    [-1, -1, -1, 0],
    [-1, -1, -1, -1],
];

/// The score tiles over a block, at most `TALL` rows a tile (then 2, then 1).
///
/// # Safety
/// Inlined into a function compiled for AVX2 and FMA (which the CPU has), as the tiles are.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn scores_tiles<const TALL: usize>(
    block: &[f64],
    n: usize,
    w: &[f64],
    (k, stride): (usize, usize),
    z: &mut [f64],
) {
    if !sizes_ok(block, n, w, (k, stride), z) {
        return;
    }
    let rows = block.len() / n;
    let mut c0 = 0;
    while c0 < k {
        let c = class_group(k - c0);
        let mut r0 = 0;
        while r0 < rows {
            let tall = match rows - r0 {
                left if left >= TALL => TALL,
                left => left.min(2),
            };
            // SAFETY: the tile reads rows r0..r0 + tall (below `rows`) of the block, w's classes
            // c0..c0 + c (c0 + c ≤ k) and writes their scores in z: sizes checked in sizes_ok;
            // the last features' loads are masked to n
            unsafe {
                match (tall, c) {
                    (4, 6) => scores_tile::<4, 6>(block, n, r0, w, stride, c0, z),
                    (4, 5) => scores_tile::<4, 5>(block, n, r0, w, stride, c0, z),
                    (4, 4) => scores_tile::<4, 4>(block, n, r0, w, stride, c0, z),
                    (4, 3) => scores_tile::<4, 3>(block, n, r0, w, stride, c0, z),
                    (4, 2) => scores_tile::<4, 2>(block, n, r0, w, stride, c0, z),
                    (4, _) => scores_tile::<4, 1>(block, n, r0, w, stride, c0, z),
                    (2, 6) => scores_tile::<2, 6>(block, n, r0, w, stride, c0, z),
                    (2, 5) => scores_tile::<2, 5>(block, n, r0, w, stride, c0, z),
                    (2, 4) => scores_tile::<2, 4>(block, n, r0, w, stride, c0, z),
                    (2, 3) => scores_tile::<2, 3>(block, n, r0, w, stride, c0, z),
                    (2, 2) => scores_tile::<2, 2>(block, n, r0, w, stride, c0, z),
                    (2, _) => scores_tile::<2, 1>(block, n, r0, w, stride, c0, z),
                    (_, 6) => scores_tile::<1, 6>(block, n, r0, w, stride, c0, z),
                    (_, 5) => scores_tile::<1, 5>(block, n, r0, w, stride, c0, z),
                    (_, 4) => scores_tile::<1, 4>(block, n, r0, w, stride, c0, z),
                    (_, 3) => scores_tile::<1, 3>(block, n, r0, w, stride, c0, z),
                    (_, 2) => scores_tile::<1, 2>(block, n, r0, w, stride, c0, z),
                    (_, _) => scores_tile::<1, 1>(block, n, r0, w, stride, c0, z),
                }
            }
            r0 += tall;
        }
        c0 += c;
    }
}

/// The score tiles two rows tall: 2·C accumulators, two loads of A and one of W fit the sixteen
/// AVX2 registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn scores_avx2(block: &[f64], n: usize, w: &[f64], ks: (usize, usize), z: &mut [f64]) {
    // SAFETY: compiled for AVX2 and FMA, which its caller checked the CPU has
    unsafe { scores_tiles::<2>(block, n, w, ks, z) }
}

/// The score tiles four rows tall, compiled where AVX-512's 32 registers hold their 4·C
/// accumulators (the arithmetic stays AVX2's).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512vl")]
fn scores_avx512(block: &[f64], n: usize, w: &[f64], ks: (usize, usize), z: &mut [f64]) {
    // SAFETY: as in `scores_avx2`
    unsafe { scores_tiles::<4>(block, n, w, ks, z) }
}

/// The rank-update tiles over a block: `MANY` vectors of four features for four to six
/// classes, `FEW` for fewer (then four features, or the last 1–3, at a time).
///
/// # Safety
/// Inlined into a function compiled for AVX2 and FMA (which the CPU has), as the tiles are.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn gradient_tiles<const MANY: usize, const FEW: usize>(
    block: &[f64],
    n: usize,
    d: &[f64],
    (k, stride): (usize, usize),
    g: &mut [f64],
    ahead: &[f64],
) {
    if !sizes_ok(block, n, g, (k, stride), d) {
        return;
    }
    let width = |c: usize| 4 * if c >= 4 { MANY } else { FEW };
    let rows = block.len() / n;
    let (mut tiles, mut c0) = (0, 0);
    while c0 < k {
        let c = class_group(k - c0);
        tiles += n / width(c) + (n % width(c)).div_ceil(4);
        c0 += c;
    }
    // the lines of `ahead`, spread evenly over the tiles below
    let mut prefetch = Prefetcher::new(ahead, tiles);
    let mut c0 = 0;
    while c0 < k {
        let c = class_group(k - c0);
        let wide = width(c);
        let mut j0 = 0;
        while j0 < n {
            let step = if n - j0 >= wide { wide } else { (n - j0).min(4) };
            // SAFETY: the tile reads a[r·n + j0 + t] for r < rows, t < step with j0 + step ≤ n
            // (the last 1–3 features by masked loads), d's classes c0..c0 + c (≤ k) of each
            // row, and writes g[(c0 + s)·n + j0 + t] for s < c: sizes checked in sizes_ok
            unsafe {
                match (c, step == wide) {
                    (6, true) => gradient_tile::<6, MANY>(block, n, rows, d, stride, c0, j0, g, 4),
                    (5, true) => gradient_tile::<5, MANY>(block, n, rows, d, stride, c0, j0, g, 4),
                    (4, true) => gradient_tile::<4, MANY>(block, n, rows, d, stride, c0, j0, g, 4),
                    (3, true) => gradient_tile::<3, FEW>(block, n, rows, d, stride, c0, j0, g, 4),
                    (2, true) => gradient_tile::<2, FEW>(block, n, rows, d, stride, c0, j0, g, 4),
                    (_, true) => gradient_tile::<1, FEW>(block, n, rows, d, stride, c0, j0, g, 4),
                    (6, false) => gradient_tile::<6, 1>(block, n, rows, d, stride, c0, j0, g, step),
                    (5, false) => gradient_tile::<5, 1>(block, n, rows, d, stride, c0, j0, g, step),
                    (4, false) => gradient_tile::<4, 1>(block, n, rows, d, stride, c0, j0, g, step),
                    (3, false) => gradient_tile::<3, 1>(block, n, rows, d, stride, c0, j0, g, step),
                    (2, false) => gradient_tile::<2, 1>(block, n, rows, d, stride, c0, j0, g, step),
                    (_, false) => gradient_tile::<1, 1>(block, n, rows, d, stride, c0, j0, g, step),
                }
            }
            j0 += step;
            prefetch.step();
        }
        c0 += c;
    }
}

/// The rank-update tiles eight features wide (two vectors) for four to six classes, twelve
/// (three) for fewer, so the accumulators, the loads of A and a broadcast fit the sixteen AVX2
/// registers with one to spare. Four classes had twelve features, which takes all sixteen:
/// with eight, a one-thread L-BFGS solve of softmax 10000 × 50 with k = 4 took 7.35–7.47 ms
/// against 9.01–9.07, and of least squares 5000 × 100 with 4 targets 2.22 against 2.50–2.54
/// ms (three runs in alternation, pinned).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn gradient_avx2(block: &[f64], n: usize, d: &[f64], ks: (usize, usize), g: &mut [f64], ahead: &[f64]) {
    // SAFETY: compiled for AVX2 and FMA, which its caller checked the CPU has
    unsafe { gradient_tiles::<2, 3>(block, n, d, ks, g, ahead) }
}

/// The rank-update tiles sixteen features wide, compiled where AVX-512's 32 registers hold
/// their 4·C accumulators (the arithmetic stays AVX2's).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512vl")]
fn gradient_avx512(block: &[f64], n: usize, d: &[f64], ks: (usize, usize), g: &mut [f64], ahead: &[f64]) {
    // SAFETY: as in `gradient_avx2`
    unsafe { gradient_tiles::<4, 4>(block, n, d, ks, g, ahead) }
}

/// R rows from r0 × C classes from c0: acc[r][c] += a_r[j..j + 4]·w_c[j..j + 4] over the
/// features four at a time (the last 1–3 by masked loads), then each accumulator's four lanes
/// summed into z[(r0 + r)·stride + c0 + c].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn scores_tile<const R: usize, const C: usize>(
    a: &[f64],
    n: usize,
    r0: usize,
    w: &[f64],
    stride: usize,
    c0: usize,
    z: &mut [f64],
) {
    use std::arch::x86_64::*;
    let (pa, pw) = (a.as_ptr().add(r0 * n), w.as_ptr().add(c0 * n));
    let mut acc = [[_mm256_setzero_pd(); C]; R];
    let whole = n / 4 * 4;
    let mut j = 0;
    while j < whole {
        let av: [__m256d; R] = std::array::from_fn(|r| _mm256_loadu_pd(pa.add(r * n + j)));
        for c in 0..C {
            let wv = _mm256_loadu_pd(pw.add(c * n + j));
            for (acc_r, ar) in acc.iter_mut().zip(&av) {
                acc_r[c] = _mm256_fmadd_pd(*ar, wv, acc_r[c]);
            }
        }
        j += 4;
    }
    if j < n {
        let mask = _mm256_loadu_si256(LANE_MASKS[n - j].as_ptr().cast());
        let av: [__m256d; R] = std::array::from_fn(|r| _mm256_maskload_pd(pa.add(r * n + j), mask));
        for c in 0..C {
            let wv = _mm256_maskload_pd(pw.add(c * n + j), mask);
            for (acc_r, ar) in acc.iter_mut().zip(&av) {
                acc_r[c] = _mm256_fmadd_pd(*ar, wv, acc_r[c]);
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        let zr = z.as_mut_ptr().add((r0 + r) * stride + c0);
        let mut c = 0;
        while c + 4 <= C {
            // four accumulators' lane sums in one vector
            let t0 = _mm256_hadd_pd(acc_r[c], acc_r[c + 1]);
            let t1 = _mm256_hadd_pd(acc_r[c + 2], acc_r[c + 3]);
            let lo = _mm256_permute2f128_pd(t0, t1, 0x20);
            let hi = _mm256_permute2f128_pd(t0, t1, 0x31);
            _mm256_storeu_pd(zr.add(c), _mm256_add_pd(lo, hi));
            c += 4;
        }
        while c < C {
            let v = acc_r[c];
            let s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
            *zr.add(c) = _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
            c += 1;
        }
    }
}

/// g[(c0 + c)·n + j0 + 4v + l] += Σ_r d[r·stride + c0 + c]·a_r[j0 + 4v + l] for C classes and J
/// vectors of four features (J = 1 with `last` < 4: only the first `last` lanes, masked): the
/// C×J tile of G accumulates over all the block's rows in registers (the micro-kernel of
/// G += DᵀA in vec order, with the rows as its inner dimension), then is added to G once.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn gradient_tile<const C: usize, const J: usize>(
    a: &[f64],
    n: usize,
    rows: usize,
    d: &[f64],
    stride: usize,
    c0: usize,
    j0: usize,
    g: &mut [f64],
    last: usize,
) {
    use std::arch::x86_64::*;
    let (pa, pd) = (a.as_ptr().add(j0), d.as_ptr().add(c0));
    let masked = J == 1 && last < 4;
    let mask = _mm256_loadu_si256(LANE_MASKS[last.min(4)].as_ptr().cast());
    let mut acc = [[_mm256_setzero_pd(); J]; C];
    for r in 0..rows {
        let av: [__m256d; J] = std::array::from_fn(|v| match masked {
            true => _mm256_maskload_pd(pa.add(r * n), mask),
            false => _mm256_loadu_pd(pa.add(r * n + 4 * v)),
        });
        for (c, acc_c) in acc.iter_mut().enumerate() {
            let b = _mm256_broadcast_sd(&*pd.add(r * stride + c));
            for (s, x) in acc_c.iter_mut().zip(&av) {
                *s = _mm256_fmadd_pd(b, *x, *s);
            }
        }
    }
    let pg = g.as_mut_ptr().add(j0);
    for (c, acc_c) in acc.iter().enumerate() {
        for (v, s) in acc_c.iter().enumerate() {
            let p = pg.add((c0 + c) * n + 4 * v);
            match masked {
                true => _mm256_maskstore_pd(p, mask, _mm256_add_pd(_mm256_maskload_pd(p, mask), *s)),
                false => _mm256_storeu_pd(p, _mm256_add_pd(_mm256_loadu_pd(p), *s)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_squares_splits_by_entries_or_by_much_work_softmax_by_work() {
        // the measured thresholds, with two threads (`splits` never splits on one)
        if rayon::current_num_threads() < 2 {
            return;
        }
        let (linear, softmax) = (ClassPass::by_entries(), ClassPass::default());
        // (rows, n, classes, split for least squares, split for softmax); softmax's work is
        // m·((k − 1)·n + 80) against 3·2¹⁷ = 393 216
        for (rows, n, k, ls, sm) in [
            (2000, 50, 10, false, true),  // 100 000 entries; 2000·530
            (10_000, 20, 2, false, true), // 200 000 entries; 10 000·100
            (3900, 20, 2, false, false),  // 390 000
            (2000, 20, 5, false, false),  // 2000·160 = 320 000
            (2500, 20, 5, false, true),   // 400 000
            (1000, 20, 10, false, false), // 260 000
            (1500, 20, 10, false, false), // 390 000, just under
            (1600, 20, 10, false, true),  // 416 000
            (8000, 50, 10, true, true),   // 400 000 entries
            (8000, 50, 1, true, true),    // 8000·80 = 640 000 (k = 1: not softmax)
            (2000, 50, 40, false, true),  // 4 million k·m·n, below 3·2²¹
            (4000, 50, 40, true, true),   // 8 million k·m·n
            (2000, 50, 100, true, true),  // 10 million
        ] {
            assert_eq!(
                linear.splits(rows, n, k),
                ls,
                "least squares, {rows} × {n}, k = {k}"
            );
            assert_eq!(softmax.splits(rows, n, k), sm, "softmax, {rows} × {n}, k = {k}");
        }
    }

    /// The kernels this CPU can run: the portable loops, AVX2, and AVX2 with AVX-512's
    /// registers (the one `class_scores` picks where it can).
    fn variants() -> Vec<&'static str> {
        #[allow(unused_mut)]
        let mut v = vec!["portable"];
        #[cfg(target_arch = "x86_64")]
        if crate::cpu::avx2() {
            v.push("avx2");
            if crate::kernels::has_avx512() {
                v.push("avx512");
            }
        }
        v
    }

    fn scores_by(v: &str, block: &[f64], n: usize, w: &[f64], ks: (usize, usize), z: &mut [f64]) {
        match v {
            // SAFETY: `variants` lists these only where the CPU has their features
            #[cfg(target_arch = "x86_64")]
            "avx2" => unsafe { scores_avx2(block, n, w, ks, z) },
            #[cfg(target_arch = "x86_64")]
            "avx512" => unsafe { scores_avx512(block, n, w, ks, z) },
            _ => scores_portable(block, n, w, ks, z),
        }
    }

    fn gradient_by(v: &str, block: &[f64], n: usize, d: &[f64], ks: (usize, usize), g: &mut [f64]) {
        match v {
            // SAFETY: as in `scores_by`; the block itself is what is prefetched
            #[cfg(target_arch = "x86_64")]
            "avx2" => unsafe { gradient_avx2(block, n, d, ks, g, block) },
            #[cfg(target_arch = "x86_64")]
            "avx512" => unsafe { gradient_avx512(block, n, d, ks, g, block) },
            _ => gradient_portable(block, n, d, ks, g),
        }
    }

    /// With more entries per row than classes, each kernel writes each row's first k scores,
    /// leaves the rest of the row alone, and reads only the first k coefficients of each row.
    #[test]
    fn strided_kernels_use_the_first_k_of_each_row() {
        for v in variants() {
            for (k, stride, n, rows) in [(1, 2, 5, 3), (4, 5, 50, 7), (9, 10, 13, 4), (5, 8, 3, 2)] {
                let block: Vec<f64> = (0..rows * n).map(|i| (i as f64 * 0.37).sin()).collect();
                let w: Vec<f64> = (0..k * n).map(|i| (i as f64 * 0.19).cos()).collect();
                let mut z = vec![7.0; rows * stride];
                scores_by(v, &block, n, &w, (k, stride), &mut z);
                // the last stride − k of each row: huge, so that reading one would show in G
                let mut d = z.clone();
                for r in 0..rows {
                    for c in 0..stride {
                        let got = z[r * stride + c];
                        if c >= k {
                            assert_eq!(got, 7.0, "{v}, k {k} stride {stride}: wrote past row {r}");
                            d[r * stride + c] = 1e300;
                            continue;
                        }
                        let a = &block[r * n..(r + 1) * n];
                        let want: f64 = a.iter().zip(&w[c * n..(c + 1) * n]).map(|(p, q)| p * q).sum();
                        assert!((got - want).abs() < 1e-13, "{v}, k {k} row {r}");
                    }
                }
                let mut g = vec![0.5; k * n];
                gradient_by(v, &block, n, &d, (k, stride), &mut g);
                for c in 0..k {
                    for j in 0..n {
                        let want = 0.5
                            + (0..rows)
                                .map(|r| d[r * stride + c] * block[r * n + j])
                                .sum::<f64>();
                        assert!((g[c * n + j] - want).abs() < 1e-12, "{v}, k {k} class {c}");
                    }
                }
            }
        }
    }

    /// Scores and gradients by each kernel against plain dot products and axpys, for k across
    /// the class groups (1 to 6 classes a tile, several tiles), n across the feature tiles (8,
    /// 12 or 16 wide, then four, then 1–3 masked) and blocks with one to three rows left after
    /// the tiles of two or four.
    #[test]
    fn kernels_match_dots_and_axpys() {
        // an empty block, or one shorter than a row, is left alone
        let mut g0 = vec![0.5; 6];
        class_gradient(&[], 3, &[], 2, &mut g0, &[]);
        class_gradient(&[1.0, 2.0], 3, &[1.0, 1.0], 2, &mut g0, &[]);
        assert_eq!(g0, [0.5; 6]);
        for v in variants() {
            for (k, n, rows) in [
                (1, 1, 1),
                (2, 1, 1),
                (3, 7, 5),
                (4, 8, 4),
                (5, 13, 9),
                (6, 14, 3),
                (7, 23, 2),
                (8, 12, 5),
                (9, 19, 7),
                (10, 50, 16),
                (12, 3, 7),
                (13, 5, 6),
                (26, 11, 3),
                (4, 37, 11),
            ] {
                let block: Vec<f64> = (0..rows * n).map(|i| (i as f64 * 0.41).sin()).collect();
                let w: Vec<f64> = (0..k * n).map(|i| (i as f64 * 0.23).cos()).collect();
                // sentinels past the end: the masked stores and the last classes write nothing
                // beyond the scores
                let mut z = vec![7.0; rows * k + 4];
                scores_by(v, &block, n, &w, (k, k), &mut z[..rows * k]);
                assert_eq!(
                    &z[rows * k..],
                    &[7.0; 4],
                    "{v}, k {k} n {n}: wrote past the scores"
                );
                z.truncate(rows * k);
                let mut g = vec![0.5; k * n + 4];
                gradient_by(v, &block, n, &z, (k, k), &mut g[..k * n]);
                assert_eq!(
                    &g[k * n..],
                    &[0.5; 4],
                    "{v}, k {k} n {n}: wrote past the gradient"
                );
                g.truncate(k * n);
                let mut want_g = vec![0.5; k * n];
                for r in 0..rows {
                    let a = &block[r * n..(r + 1) * n];
                    for c in 0..k {
                        let wc = &w[c * n..(c + 1) * n];
                        let want: f64 = a.iter().zip(wc).map(|(p, q)| p * q).sum();
                        assert!(
                            (z[r * k + c] - want).abs() < 1e-13,
                            "{v}, k {k} n {n} row {r} class {c}"
                        );
                        for (gj, aj) in want_g[c * n..(c + 1) * n].iter_mut().zip(a) {
                            *gj += z[r * k + c] * aj;
                        }
                    }
                }
                assert!(
                    g.iter().zip(&want_g).all(|(p, q)| (p - q).abs() < 1e-12),
                    "{v}, k {k} n {n}"
                );
            }
        }
    }
}
