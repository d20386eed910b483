//! Weighted Gram matrices Aᵀdiag(w)A, the Hessians of every model here, formed by a small
//! symmetric matrix-multiply kernel (a weighted SYRK) that computes only the lower triangle.
//!
//! A is stored row-contiguous (`at` is Aᵀ, column-major, rows of `pitch` entries of which the
//! first n are A's), so row aᵢ is a slice. The rows
//! are taken `KC` at a time; each slab is packed once per output block (once for a plain Gram
//! matrix) into panels of `MR` features × KC rows, row i scaled by √|wᵢ|, so that
//! Aᵀdiag(w)A = ±(diag(√|w|)A)ᵀ(diag(√|w|)A) is a product of the packed slab with itself: each
//! MR×NR tile of it takes its rows from one panel and its columns from the lanes of one or two
//! panels, and is accumulated in registers over the slab, the way BLAS kernels do, then added
//! to its running sum in a packed buffer, which reaches h once, after the last slab. (Packing
//! the slab twice, as A and as diag(w)A, took a quarter of the Hessian's time at 20000 × 50.
//! Packing it once, with the panels a cache line more than 8 KB apart, took a one-thread
//! logistic Newton solve there from 9.46 to 8.62 ms, and softmax Newton at 10000 × 50, k = 5,
//! from 61 to 41 ms, its blocks below the diagonal now formed as the symmetric matrices they
//! are.) Tiles wholly above the diagonal are
//! neither computed nor stored, which halves the work of a full matrix product, and a tile
//! whose top half lies above the diagonal, or whose bottom half lies past the last feature,
//! computes only its other half (at 20000 × 50 that is 13 of 39 tiles; the Hessian took 0.93×
//! the time, 0.89× at 2000 × 20); the upper triangle is mirrored at the end. The
//! packing buffers live in a [`GramScratch`] that the caller keeps, so after the first call
//! nothing is allocated. On large data the rows are split between two threads (rayon's job
//! queue then allocates a block about once every 63 splits; nothing else does).
//!
//! One call can fill several n×n blocks of a larger matrix from one pass over A, each with its
//! own weights: the softmax Hessian's k(k−1)/2 blocks below the diagonal,
//! Aᵀdiag(−p_c ⊙ p_d)A. The weights of one block must share a sign (the block's `negative`
//! says which): a weight of the other sign has no real square root and makes the result NaN,
//! never a wrong number.

use crate::aligned::AlignedT;
use crate::vmath::madd;
use crate::Matrix;

/// Rows of the output tile (features i), two AVX2 vectors.
const MR: usize = 8;
/// Columns of the output tile (features j): 8×6 accumulators fill 12 of the 16 vector registers.
const NR: usize = 6;
/// Rows of A per slab: the packed slab (KC·n doubles) stays in L2 for n up to a few hundred.
const KC: usize = 128;
/// From this much work (m·n² times the number of blocks), and at least two slabs of rows
/// (m ≥ 2·KC), the rows are split between two threads. Measured in `gradfit solve --model
/// logistic --solver newton` (time per iteration, one thread against two, three runs in
/// alternation): 2000 × 20 (0.8 million) 56–77 against 69–92 µs, 8000 × 20 203–207 against
/// 248–252, 10 000 × 20 265–284 against 299–304, 2000 × 50 173–176 against 219–220, 4000 × 50
/// (10 million) 343–346 against 391–392; 10 000 × 50 (25 million) 837–851 against 567–678,
/// 4000 × 100 1022–1030 against 666–780, 20 000 × 50 1737–1779 against 999–1144. (The
/// earlier threshold, 2¹⁸, came from Hessians formed back to back, where logistic 2000 × 20
/// went from 126 to 71 µs; inside a solve the second thread sleeps between Hessians and
/// waking it costs more than that.)
const PARALLEL_MIN_WORK: usize = 1 << 24;

/// One n×n block of the output, at rows `row`.., columns `col`..: it receives
/// Σᵢ w(block, i)·aᵢaᵢᵀ, a symmetric matrix of which only the lower triangle is computed. A
/// `diagonal` block lies on the diagonal of the output (its upper triangle is the output's,
/// mirrored at the end); any other block must lie below the diagonal, and its upper triangle
/// is copied from its lower one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Block {
    pub row: usize,
    pub col: usize,
    pub diagonal: bool,
    /// The block's weights are all ≤ 0 (otherwise all ≥ 0).
    pub negative: bool,
}

impl Block {
    /// The single block of a plain n×n Gram matrix.
    pub const WHOLE: [Block; 1] = [Block {
        row: 0,
        col: 0,
        diagonal: true,
        negative: false,
    }];

    /// The sign of the block's weights.
    fn sign(&self) -> f64 {
        if self.negative {
            -1.0
        } else {
            1.0
        }
    }
}

/// Packing buffers (one set per thread) and the second thread's output; sized on first use.
#[derive(Debug, Default)]
pub(crate) struct GramScratch {
    pack: [Pack; 2],
    spare: Matrix,
}

/// One thread's buffers: the packed panels of a slab, and the output tiles accumulated over
/// all its slabs (added to h once, at the end).
#[derive(Debug, Default)]
struct Pack {
    p: Vec<f64>,
    c: Vec<[[f64; MR]; NR]>,
}

/// h ← Σ over `blocks` of Σᵢ w(b, i)·aᵢaᵢᵀ placed at each block, then symmetrized (the upper
/// triangle mirrors the lower). Entries of h outside every block and its mirror are zero.
/// Every weight of block b must have the block's sign (≤ 0 if `negative`, else ≥ 0): a row
/// enters as √|w|·aᵢ, and a weight of the other sign makes the block NaN.
pub(crate) fn weighted_gram<W>(
    at: &AlignedT,
    blocks: &[Block],
    w: W,
    h: &mut Matrix,
    scratch: &mut GramScratch,
) where
    W: Fn(usize, usize) -> f64 + Sync,
{
    let (n, m) = (at.features(), at.ncols());
    debug_assert!(blocks.iter().all(|b| b.diagonal || b.row >= b.col + n));
    h.fill(0.0);
    let work = m.saturating_mul(n * n).saturating_mul(blocks.len());
    let GramScratch { pack, spare } = scratch;
    if m < 2 * KC || !crate::kernels::splits(work, PARALLEL_MIN_WORK) {
        accumulate(at, 0, m, blocks, &w, h, &mut pack[0]);
    } else {
        if spare.shape() != h.shape() {
            *spare = Matrix::zeros(h.nrows(), h.ncols());
        }
        spare.fill(0.0);
        let mid = m / 2;
        let [p0, p1] = pack;
        let w = &w;
        rayon::join(
            || accumulate(at, 0, mid, blocks, w, h, p0),
            || accumulate(at, mid, m, blocks, w, spare, p1),
        );
        let size = h.nrows();
        for j in 0..size {
            let (hc, sc) = (&mut h.column_mut(j), spare.column(j));
            for i in j..size {
                hc[i] += sc[i];
            }
        }
    }
    let size = h.nrows();
    for j in 0..size {
        for i in j + 1..size {
            h[(j, i)] = h[(i, j)];
        }
    }
}

/// Adds rows lo..hi's contributions to the lower triangle of `h` (and to whole off-diagonal
/// blocks). The MR×NR output tiles stay in `pack.c` across slabs, so each slab costs its
/// packing and the tile products only; they are added to h once at the end.
///
/// While a slab's tiles run, the next slab's rows are prefetched into L2, a share of its cache
/// lines after each tile, so that packing it does not wait on memory (the tiles' own loads come
/// from the packed panels in L1). `gradfit solve --model logistic --l2 1 --solver newton`,
/// best of ten, in alternation with the build before: 200 000 × 50 (80 MB, from memory)
/// 84–86 ms against 101–105 on one thread pinned (three runs), 48–57 against 60–77 on two;
/// 20 000 × 50 (8 MB, in L3) 7.06–7.77 ms against 7.31–7.59 (six runs); softmax 10 000 × 50,
/// k = 5, 34.9–35.4 ms against 35.0–43.3.
fn accumulate<W>(
    at: &AlignedT,
    lo: usize,
    hi: usize,
    blocks: &[Block],
    w: &W,
    h: &mut Matrix,
    pack: &mut Pack,
) where
    W: Fn(usize, usize) -> f64,
{
    #[cfg(target_arch = "x86_64")]
    {
        if crate::cpu::avx2() {
            // SAFETY: the CPU has AVX2 and FMA (checked above).
            return unsafe { accumulate_avx2(at, lo, hi, blocks, w, h, pack) };
        }
    }
    accumulate_body::<false, W>(at, lo, hi, blocks, w, h, pack)
}

/// [`accumulate`] compiled for AVX2 + FMA as a whole, so the packing moves four doubles at a
/// time and the tile kernel is inlined rather than dispatched once per tile.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn accumulate_avx2<W>(
    at: &AlignedT,
    lo: usize,
    hi: usize,
    blocks: &[Block],
    w: &W,
    h: &mut Matrix,
    pack: &mut Pack,
) where
    W: Fn(usize, usize) -> f64,
{
    accumulate_body::<true, W>(at, lo, hi, blocks, w, h, pack)
}

#[inline(always)]
fn accumulate_body<const FMA: bool, W>(
    at: &AlignedT,
    lo: usize,
    hi: usize,
    blocks: &[Block],
    w: &W,
    h: &mut Matrix,
    pack: &mut Pack,
) where
    W: Fn(usize, usize) -> f64,
{
    // rows of `pitch` entries, of which the first n are A's (the rest padding)
    let (pitch, n) = (at.pitch(), at.features());
    let (ni, nj) = (n.div_ceil(MR), n.div_ceil(NR));
    // panels of MR features: the tiles' rows take the first ni, their columns (NR at a time)
    // may reach one panel further, which is all zero
    let (whole, np) = (n / MR, ni.max((nj * NR).div_ceil(MR)));
    let Pack { p: panels, c } = pack;
    if panels.len() < np * stride(KC) {
        panels.resize(np * stride(KC), 0.0);
    }
    // the tiles computed, in the order (block, jt, it) both loops below take them: those at
    // or below the block's diagonal
    let first = |jt: usize| jt * NR / MR;
    let tiles = blocks.len() * (0..nj).map(|jt| ni - first(jt)).sum::<usize>();
    c.clear();
    c.resize(tiles, [[0.0; MR]; NR]);
    let mut k0 = lo;
    while k0 < hi {
        let kc = KC.min(hi - k0);
        let mut t = 0;
        let slab = &at.as_slice()[k0 * pitch..(k0 + kc) * pitch];
        // the next slab's cache lines, prefetched a share per tile while this slab's tiles run
        let ahead = &at.as_slice()[(k0 + kc) * pitch..(k0 + kc + KC.min(hi - k0 - kc)) * pitch];
        let mut prefetch = crate::kernels::Prefetcher::new(ahead, tiles);
        for (b, block) in blocks.iter().enumerate() {
            let sign = block.sign();
            // panels[p][kk][r] = √|wᵢ|·a_{k0+kk}[p·MR + r], zero past n
            for (kk, a) in slab.chunks_exact(pitch.max(1)).enumerate() {
                let s = (sign * w(b, k0 + kk)).sqrt();
                pack_row(panels, kc, kk, &a[..n], (whole, np), |v| s * v);
            }
            let panel = |p: usize| &panels[p * stride(kc)..][..kc * MR];
            for jt in 0..nj {
                // the tile's columns j0..j0 + NR: lanes off.. of panel q, then of panel q + 1
                let j0 = jt * NR;
                let (q, off) = (j0 / MR, j0 % MR);
                let (b1, b2) = (panel(q), panel(if off + NR > MR { q + 1 } else { q }));
                for it in first(jt)..ni {
                    let (i0, a) = (it * MR, panel(it));
                    let half = if i0 + HALF <= j0 {
                        // the tile's top half lies above the diagonal
                        Rows::Bottom
                    } else if i0 + HALF >= n {
                        // its bottom half lies past the last feature
                        Rows::Top
                    } else {
                        Rows::All
                    };
                    match off {
                        0 => tile::<FMA, 0>(half, a, b1, b2, &mut c[t]),
                        2 => tile::<FMA, 2>(half, a, b1, b2, &mut c[t]),
                        4 => tile::<FMA, 4>(half, a, b1, b2, &mut c[t]),
                        _ => tile::<FMA, 6>(half, a, b1, b2, &mut c[t]),
                    }
                    t += 1;
                    prefetch.step();
                }
            }
        }
        k0 += kc;
    }
    let size = h.nrows();
    let h = h.as_mut_slice();
    let mut tiles = c.iter();
    for block in blocks {
        let sign = block.sign();
        for jt in 0..nj {
            let j0 = jt * NR;
            for (it, acc) in (first(jt)..ni).zip(&mut tiles) {
                let i0 = it * MR;
                for (cc, col) in acc.iter().enumerate().take(n - j0) {
                    let j = j0 + cc;
                    for (r, v) in col.iter().enumerate().take(n - i0).skip(j.saturating_sub(i0)) {
                        // entry (i, j), i ≥ j, of the block's lower triangle; a block off the
                        // diagonal is symmetric too, and also receives it at (j, i)
                        let i = i0 + r;
                        h[(block.col + j) * size + block.row + i] += sign * v;
                        if !block.diagonal && i > j {
                            h[(block.col + i) * size + block.row + j] += sign * v;
                        }
                    }
                }
            }
        }
    }
}

/// Doubles from one packed panel of kc rows to the next: kc·MR and one cache line more.
/// Without the line, the panels of a slab of KC rows lie 8 KB apart, so a row's stores into
/// them all fell in one set of the 8-way L1 and aliased the row's loads at 4 KB.
#[inline(always)]
fn stride(kc: usize) -> usize {
    kc * MR + 8
}

/// dst[p][kk][l] = f(a[p·MR + l]) for row kk of a slab of kc rows packed in panels MR wide:
/// `whole` full panels of `panels`, the rest zero past the row's end.
#[inline(always)]
fn pack_row(
    dst: &mut [f64],
    kc: usize,
    kk: usize,
    a: &[f64],
    (whole, panels): (usize, usize),
    f: impl Fn(f64) -> f64,
) {
    for (p, src) in a.chunks_exact(MR).enumerate() {
        let out: &mut [f64; MR] = (&mut dst[p * stride(kc) + kk * MR..][..MR])
            .try_into()
            .unwrap_or_else(|_| unreachable!());
        let src: &[f64; MR] = src.try_into().unwrap_or_else(|_| unreachable!());
        *out = src.map(&f);
    }
    for p in whole..panels {
        let out = &mut dst[p * stride(kc) + kk * MR..][..MR];
        for (l, o) in out.iter_mut().enumerate() {
            *o = a.get(p * MR + l).map_or(0.0, |v| f(*v));
        }
    }
}

/// Half of a tile's rows.
const HALF: usize = MR / 2;

/// Which rows of a tile to compute: where the rest lies above the diagonal or past the last
/// feature, only one half.
#[derive(Clone, Copy)]
enum Rows {
    All,
    Top,
    Bottom,
}

/// One MR×NR output tile: acc[c][r] += Σ_kk a[kk][r]·b[kk][c] over the packed panel `a` (the
/// tile's rows) and its NR columns, which are lanes OFF.. of the panel `b1` and, past its
/// MR lanes, of `b2`.
#[inline(always)]
fn tile<const FMA: bool, const OFF: usize>(
    rows: Rows,
    a: &[f64],
    b1: &[f64],
    b2: &[f64],
    out: &mut [[f64; MR]; NR],
) {
    match rows {
        Rows::All => tile_body::<FMA, OFF>(a, b1, b2, out),
        Rows::Top => tile_half::<FMA, OFF, 0>(a, b1, b2, out),
        Rows::Bottom => tile_half::<FMA, OFF, HALF>(a, b1, b2, out),
    }
}

/// Column c of a tile from one row kk of the panels: lane OFF + c of `b1`'s or, past it, of
/// `b2`'s (both chosen at compile time).
#[inline(always)]
fn column<const OFF: usize>(b1: &[f64], b2: &[f64], c: usize) -> f64 {
    if OFF + c < MR {
        b1[OFF + c]
    } else {
        b2[OFF + c - MR]
    }
}

/// [`tile_body`] for rows R..R + HALF of the tile only (the others are left as they are).
/// One vector per column leaves six accumulators, too few to hide the multiply-add latency,
/// so even and odd kk go to two sets, added at the end.
#[inline(always)]
fn tile_half<const FMA: bool, const OFF: usize, const R: usize>(
    a: &[f64],
    b1: &[f64],
    b2: &[f64],
    out: &mut [[f64; MR]; NR],
) {
    let mut acc = [[[0.0; HALF]; NR]; 2];
    let pairs = a
        .chunks_exact(2 * MR)
        .zip(b1.chunks_exact(2 * MR))
        .zip(b2.chunks_exact(2 * MR));
    for ((av, bv1), bv2) in pairs {
        for (s, acc_s) in acc.iter_mut().enumerate() {
            let (bv1, bv2) = (&bv1[s * MR..], &bv2[s * MR..]);
            for (c, acc_c) in acc_s.iter_mut().enumerate() {
                let bc = column::<OFF>(bv1, bv2, c);
                for (r, v) in acc_c.iter_mut().enumerate() {
                    *v = madd::<FMA>(bc, av[s * MR + R + r], *v);
                }
            }
        }
    }
    let last = a.len() / (2 * MR) * (2 * MR);
    for ((av, bv1), bv2) in a[last..]
        .chunks_exact(MR)
        .zip(b1[last..].chunks_exact(MR))
        .zip(b2[last..].chunks_exact(MR))
    {
        for (c, acc_c) in acc[0].iter_mut().enumerate() {
            let bc = column::<OFF>(bv1, bv2, c);
            for (r, v) in acc_c.iter_mut().enumerate() {
                *v = madd::<FMA>(bc, av[R + r], *v);
            }
        }
    }
    for c in 0..NR {
        for r in 0..HALF {
            out[c][R + r] += acc[0][c][r] + acc[1][c][r];
        }
    }
}

/// acc[c][r] += Σ_kk a[kk][r]·b[kk][c]: one whole MR×NR tile (columns as in [`tile`]).
#[inline(always)]
fn tile_body<const FMA: bool, const OFF: usize>(
    a: &[f64],
    b1: &[f64],
    b2: &[f64],
    out: &mut [[f64; MR]; NR],
) {
    let mut acc = *out;
    let rows = a
        .chunks_exact(MR)
        .zip(b1.chunks_exact(MR))
        .zip(b2.chunks_exact(MR));
    for ((av, bv1), bv2) in rows {
        for (c, acc_c) in acc.iter_mut().enumerate() {
            let bc = column::<OFF>(bv1, bv2, c);
            for (r, v) in acc_c.iter_mut().enumerate() {
                *v = madd::<FMA>(bc, av[r], *v);
            }
        }
    }
    *out = acc;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(m: usize, n: usize) -> Matrix {
        Matrix::from_fn(m, n, |i, j| ((i * 31 + j * 17) as f64 * 0.137 + 0.5).sin())
    }

    #[test]
    fn matches_the_dense_product_at_awkward_sizes() {
        // sizes around the tile and slab edges (those of 2·KC rows or more also split between
        // two threads, forced, below); 12 and 52 fill the last half tile exactly, and 13 and 50
        // have tiles whose top half lies above the diagonal
        for (m, n) in [
            (1, 1),
            (3, 7),
            (129, 9),
            (500, 12),
            (300, 13),
            (257, 50),
            (300, 52),
            (40_000, 17),
            // a multiple of 8 (a column tile reaching an all-zero panel at 8), and sizes whose
            // split column tiles reach past the row panels (13, 200)
            (5000, 8),
            (2000, 13),
            (2000, 16),
            (300, 200),
        ] {
            let a = data(m, n);
            let w: Vec<f64> = (0..m).map(|i| 1.0 + (i as f64 * 0.3).cos()).collect();
            let mut aw = a.clone();
            for (mut row, wi) in aw.row_iter_mut().zip(&w) {
                row *= *wi;
            }
            let want = a.transpose() * aw;
            // on one thread, then split between two (when there are two) from 2·KC rows
            for split in [false, true] {
                let mut h = Matrix::zeros(n, n);
                let mut scratch = GramScratch::default();
                let at = AlignedT::of(&a);
                let mut form = || weighted_gram(&at, &Block::WHOLE, |_, i| w[i], &mut h, &mut scratch);
                if split {
                    crate::kernels::tests::forced_split(form);
                } else {
                    form();
                }
                let err = (&h - &want).amax() / want.amax();
                assert!(err < 1e-13, "{m}×{n} (split: {split}): relative error {err}");
                assert_eq!(h, h.transpose());
            }
        }
    }

    #[test]
    fn a_weight_of_the_wrong_sign_gives_nan_not_a_wrong_matrix() {
        let (m, n) = (300, 9);
        let at = AlignedT::of(&data(m, n));
        let mut h = Matrix::zeros(n, n);
        let w = |_: usize, i: usize| if i == 137 { -1e-3 } else { 1.0 };
        weighted_gram(&at, &Block::WHOLE, w, &mut h, &mut GramScratch::default());
        assert!(h.iter().all(|v| v.is_nan()), "{h}");
        // a positive weight in a negative block, split between two threads (when there are
        // two): that block and its mirror are NaN, the others are not
        let (m, n) = (3000, 9);
        let at = AlignedT::of(&data(m, n));
        let blocks = [
            Block::WHOLE[0],
            Block {
                row: n,
                col: 0,
                diagonal: false,
                negative: true,
            },
        ];
        let w = |b: usize, i: usize| if b == 1 && i != 2500 { -1.0 } else { 1.0 };
        let mut h = Matrix::zeros(2 * n, 2 * n);
        crate::kernels::tests::forced_split(|| {
            weighted_gram(&at, &blocks, w, &mut h, &mut GramScratch::default())
        });
        assert!(h.view((n, 0), (n, n)).iter().all(|v| v.is_nan()));
        assert!(h.view((0, n), (n, n)).iter().all(|v| v.is_nan()));
        assert!(h.view((0, 0), (n, n)).iter().all(|v| v.is_finite()));
    }

    #[test]
    fn fills_several_blocks_in_one_pass() {
        // on one thread, then split between two (when there are two) from 2·KC rows
        for (m, n) in [(500, 11), (3000, 11), (300, 50), (3000, 13)] {
            several_blocks(m, n);
            crate::kernels::tests::forced_split(|| several_blocks(m, n));
        }
    }

    fn several_blocks(m: usize, n: usize) {
        let a = data(m, n);
        let at = AlignedT::of(&a);
        let blocks = [
            Block {
                row: 0,
                col: 0,
                diagonal: true,
                negative: false,
            },
            Block {
                row: n,
                col: 0,
                diagonal: false,
                negative: true,
            },
            Block {
                row: n,
                col: n,
                diagonal: true,
                negative: false,
            },
        ];
        let wt = |b: usize, i: usize| [1.0, -0.25, 2.0][b] * (1.0 + i as f64 / m as f64);
        let mut h = Matrix::zeros(2 * n, 2 * n);
        weighted_gram(&at, &blocks, wt, &mut h, &mut GramScratch::default());
        for (b, blk) in blocks.iter().enumerate() {
            let mut aw = a.clone();
            for (i, mut row) in aw.row_iter_mut().enumerate() {
                row *= wt(b, i);
            }
            let want = a.transpose() * aw;
            let got = h.view((blk.row, blk.col), (n, n));
            assert!((got - &want).amax() < 1e-12 * want.amax(), "{m}×{n}, block {b}");
            let mirrored = h.view((blk.col, blk.row), (n, n)).transpose();
            assert!((mirrored - want).amax() < 1e-12 * h.amax(), "{m}×{n}, block {b}");
        }
    }
}
