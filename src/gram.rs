//! Weighted Gram matrices Aᵀdiag(w)A, the Hessians of every model here, formed by a small
//! symmetric matrix-multiply kernel (a weighted SYRK) that computes only the lower triangle.
//!
//! A is stored row-contiguous (`at` is Aᵀ, n×m, column-major), so row aᵢ is a slice. The rows
//! are taken `KC` at a time; each slab is packed into tiles (`MR` features × KC rows, and `NR`
//! features × KC rows scaled by wᵢ), and each MR×NR tile of the product is accumulated in
//! registers over the slab, the way BLAS kernels do, then added to its running sum in a packed
//! buffer, which reaches h once, after the last slab. Tiles wholly above the diagonal are
//! neither computed nor stored, which halves the work of a full matrix product, and a tile
//! whose top half lies above the diagonal, or whose bottom half lies past the last feature,
//! computes only its other half (at 20000 × 50 that is 13 of 39 tiles; the Hessian took 0.93×
//! the time, 0.89× at 2000 × 20, with the packing below no longer calling memset for the
//! zero padding of each row); the upper triangle is mirrored at the end. The
//! packing buffers live in a [`GramScratch`] that the caller keeps, so after the first call
//! nothing is allocated. On large data the rows are split between two threads (rayon's job
//! queue then allocates a block about once every 63 splits; nothing else does).
//!
//! One call can fill several n×n blocks of a larger matrix from one pass over A, each with its
//! own weights: the softmax Hessian's k(k−1)/2 blocks below the diagonal,
//! Aᵀdiag(−p_c ⊙ p_d)A.

use crate::vmath::madd;
use crate::Matrix;

/// Rows of the output tile (features i), two AVX2 vectors.
const MR: usize = 8;
/// Columns of the output tile (features j): 8×6 accumulators fill 12 of the 16 vector registers.
const NR: usize = 6;
/// Rows of A per slab: the packed slab (2·KC·n doubles) stays in L2 for n up to a few hundred.
const KC: usize = 128;
/// From this much work (m·n² times the number of blocks, a few tens of microseconds on one
/// thread), and at least two slabs of rows (m ≥ 2·KC), the rows are split between two threads: measured here, logistic 2000 × 20 went from 126 to 71 µs and
/// least squares 2000 × 50 from 357 to 191 µs (at 2²³, the earlier threshold, both stayed on
/// one thread).
const PARALLEL_MIN_WORK: usize = 1 << 18;

/// One n×n block of the output, at rows `row`.., columns `col`..: it receives
/// Σᵢ w(block, i)·aᵢaᵢᵀ. A `diagonal` block lies on the diagonal of the output (symmetric:
/// only its lower triangle is computed); any other block must lie below the diagonal.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Block {
    pub row: usize,
    pub col: usize,
    pub diagonal: bool,
}

impl Block {
    /// The single block of a plain n×n Gram matrix.
    pub const WHOLE: [Block; 1] = [Block {
        row: 0,
        col: 0,
        diagonal: true,
    }];
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
    a: Vec<f64>,
    b: Vec<f64>,
    c: Vec<[[f64; MR]; NR]>,
}

/// h ← Σ over `blocks` of Σᵢ w(b, i)·aᵢaᵢᵀ placed at each block, then symmetrized (the upper
/// triangle mirrors the lower). Entries of h outside every block and its mirror are zero.
pub(crate) fn weighted_gram<W>(at: &Matrix, blocks: &[Block], w: W, h: &mut Matrix, scratch: &mut GramScratch)
where
    W: Fn(usize, usize) -> f64 + Sync,
{
    let (n, m) = at.shape();
    h.fill(0.0);
    let work = m.saturating_mul(n * n).saturating_mul(blocks.len());
    let GramScratch { pack, spare } = scratch;
    if work < PARALLEL_MIN_WORK || m < 2 * KC || rayon::current_num_threads() < 2 {
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
fn accumulate<W>(at: &Matrix, lo: usize, hi: usize, blocks: &[Block], w: &W, h: &mut Matrix, pack: &mut Pack)
where
    W: Fn(usize, usize) -> f64,
{
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
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
    at: &Matrix,
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
    at: &Matrix,
    lo: usize,
    hi: usize,
    blocks: &[Block],
    w: &W,
    h: &mut Matrix,
    pack: &mut Pack,
) where
    W: Fn(usize, usize) -> f64,
{
    let n = at.nrows();
    let (ni, nj) = (n.div_ceil(MR), n.div_ceil(NR));
    // whole tiles of the A panel and of the B panel; the last may be partial
    let (fi, fj) = (n / MR, n / NR);
    let Pack { a: pa, b: pb, c } = pack;
    if pa.len() < ni * MR * KC {
        pa.resize(ni * MR * KC, 0.0);
    }
    if pb.len() < nj * NR * KC {
        pb.resize(nj * NR * KC, 0.0);
    }
    // the tiles computed, in the order (block, jt, it) both loops below take them: on a
    // diagonal block only those at or below the diagonal
    let first = |block: &Block, jt: usize| if block.diagonal { jt * NR / MR } else { 0 };
    let tiles: usize = blocks
        .iter()
        .map(|block| (0..nj).map(|jt| ni - first(block, jt)).sum::<usize>())
        .sum();
    c.clear();
    c.resize(tiles, [[0.0; MR]; NR]);
    let mut k0 = lo;
    while k0 < hi {
        let kc = KC.min(hi - k0);
        let mut t = 0;
        let slab = &at.as_slice()[k0 * n..(k0 + kc) * n];
        // pa[it][kk][r] = a_{k0+kk}[it·MR + r], zero past n
        for (kk, a) in slab.chunks_exact(n.max(1)).enumerate() {
            pack_row::<MR>(pa, kc, kk, a, (fi, ni), |s| s);
            // pb[jt][kk][c] = w(b, k0+kk)·a_{k0+kk}[jt·NR + c]: the first block's in the same
            // pass over the rows, each row read once for both (at 20000 × 50 the Hessian took
            // 0.977× the time, at 2000 × 20 0.91×)
            if !blocks.is_empty() {
                let wi = w(0, k0 + kk);
                pack_row::<NR>(pb, kc, kk, a, (fj, nj), |s| wi * s);
            }
        }
        for (b, block) in blocks.iter().enumerate() {
            if b > 0 {
                for (kk, a) in slab.chunks_exact(n.max(1)).enumerate() {
                    let wi = w(b, k0 + kk);
                    pack_row::<NR>(pb, kc, kk, a, (fj, nj), |s| wi * s);
                }
            }
            for jt in 0..nj {
                // on a diagonal block, skip the i-tiles wholly above the diagonal (i < j0)
                let bt = &pb[jt * kc * NR..][..kc * NR];
                let j0 = jt * NR;
                for it in first(block, jt)..ni {
                    let (i0, panel) = (it * MR, &pa[it * kc * MR..][..kc * MR]);
                    if block.diagonal && i0 + HALF <= j0 {
                        // the tile's top half lies above the diagonal
                        tile_half::<FMA, HALF>(panel, bt, &mut c[t]);
                    } else if i0 + HALF >= n {
                        // its bottom half lies past the last feature
                        tile_half::<FMA, 0>(panel, bt, &mut c[t]);
                    } else {
                        tile_body::<FMA>(panel, bt, &mut c[t]);
                    }
                    t += 1;
                }
            }
        }
        k0 += kc;
    }
    let size = h.nrows();
    let h = h.as_mut_slice();
    let mut tiles = c.iter();
    for block in blocks {
        for jt in 0..nj {
            let j0 = jt * NR;
            for (it, acc) in (first(block, jt)..ni).zip(&mut tiles) {
                let i0 = it * MR;
                for (cc, col) in acc.iter().enumerate().take(n - j0) {
                    let hc = &mut h[(block.col + j0 + cc) * size..];
                    for (r, v) in col.iter().enumerate().take(n - i0) {
                        hc[block.row + i0 + r] += v;
                    }
                }
            }
        }
    }
}

/// dst[p][kk][l] = f(a[p·W + l]) for row kk of a slab of kc rows packed in panels W wide:
/// `whole` full panels of `panels`, the last zero past the row's end.
#[inline(always)]
fn pack_row<const W: usize>(
    dst: &mut [f64],
    kc: usize,
    kk: usize,
    a: &[f64],
    (whole, panels): (usize, usize),
    f: impl Fn(f64) -> f64,
) {
    for (p, src) in a.chunks_exact(W).enumerate() {
        let out: &mut [f64; W] = (&mut dst[(p * kc + kk) * W..][..W])
            .try_into()
            .unwrap_or_else(|_| unreachable!());
        let src: &[f64; W] = src.try_into().unwrap_or_else(|_| unreachable!());
        *out = src.map(&f);
    }
    if whole < panels {
        let (out, src) = (&mut dst[(whole * kc + kk) * W..][..W], &a[whole * W..]);
        for (l, o) in out.iter_mut().enumerate() {
            *o = src.get(l).map_or(0.0, |v| f(*v));
        }
    }
}

/// Half of a tile's rows: [`tile_half`] computes rows OFF..OFF + HALF of a tile.
const HALF: usize = MR / 2;

/// [`tile_body`] for rows OFF..OFF + HALF of the tile only (the others are left as they
/// are): where the rest of the tile lies above the diagonal or past the last feature. One
/// vector per column leaves six accumulators, too few to hide the multiply-add latency, so
/// even and odd kk go to two sets, added at the end.
#[inline(always)]
fn tile_half<const FMA: bool, const OFF: usize>(a: &[f64], b: &[f64], out: &mut [[f64; MR]; NR]) {
    let mut acc = [[[0.0; HALF]; NR]; 2];
    let (pairs_a, pairs_b) = (a.chunks_exact(2 * MR), b.chunks_exact(2 * NR));
    let (rest_a, rest_b) = (pairs_a.remainder(), pairs_b.remainder());
    for (av, bv) in pairs_a.zip(pairs_b) {
        for (s, acc_s) in acc.iter_mut().enumerate() {
            for c in 0..NR {
                for r in 0..HALF {
                    acc_s[c][r] = madd::<FMA>(bv[s * NR + c], av[s * MR + OFF + r], acc_s[c][r]);
                }
            }
        }
    }
    for (av, bv) in rest_a.chunks_exact(MR).zip(rest_b.chunks_exact(NR)) {
        for c in 0..NR {
            for r in 0..HALF {
                acc[0][c][r] = madd::<FMA>(bv[c], av[OFF + r], acc[0][c][r]);
            }
        }
    }
    for c in 0..NR {
        for r in 0..HALF {
            out[c][OFF + r] += acc[0][c][r] + acc[1][c][r];
        }
    }
}

/// acc[c][r] += Σ_kk a[kk][r]·b[kk][c] over two packed panels: one MR×NR output tile.
#[inline(always)]
fn tile_body<const FMA: bool>(a: &[f64], b: &[f64], out: &mut [[f64; MR]; NR]) {
    let mut acc = *out;
    for (av, bv) in a.chunks_exact(MR).zip(b.chunks_exact(NR)) {
        for c in 0..NR {
            for r in 0..MR {
                acc[c][r] = madd::<FMA>(bv[c], av[r], acc[c][r]);
            }
        }
    }
    *out = acc;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Vector;

    fn data(m: usize, n: usize) -> Matrix {
        Matrix::from_fn(m, n, |i, j| ((i * 31 + j * 17) as f64 * 0.137 + 0.5).sin())
    }

    #[test]
    fn matches_the_dense_product_at_awkward_sizes() {
        // sizes around the tile and slab edges, one on each side of the thread split; 12 and
        // 52 fill the last half tile exactly, and 13 and 50 have tiles whose top half lies
        // above the diagonal
        for (m, n) in [
            (1, 1),
            (3, 7),
            (129, 9),
            (500, 12),
            (300, 13),
            (257, 50),
            (300, 52),
            (40_000, 17),
        ] {
            let a = data(m, n);
            let w: Vec<f64> = (0..m).map(|i| 0.5 + (i as f64 * 0.3).cos()).collect();
            let mut aw = a.clone();
            for (mut row, wi) in aw.row_iter_mut().zip(&w) {
                row *= *wi;
            }
            let want = a.transpose() * aw;
            let mut h = Matrix::zeros(n, n);
            let mut scratch = GramScratch::default();
            weighted_gram(&a.transpose(), &Block::WHOLE, |_, i| w[i], &mut h, &mut scratch);
            let err = (&h - &want).amax() / want.amax();
            assert!(err < 1e-13, "{m}×{n}: relative error {err}");
            assert_eq!(h, h.transpose());
        }
    }

    #[test]
    fn fills_several_blocks_in_one_pass() {
        let (m, n) = (500, 11);
        let a = data(m, n);
        let at = a.transpose();
        let blocks = [
            Block {
                row: 0,
                col: 0,
                diagonal: true,
            },
            Block {
                row: n,
                col: 0,
                diagonal: false,
            },
            Block {
                row: n,
                col: n,
                diagonal: true,
            },
        ];
        let wt = |b: usize, i: usize| [1.0, -0.25, 2.0][b] * (1.0 + i as f64 / m as f64);
        let mut h = Matrix::zeros(2 * n, 2 * n);
        weighted_gram(&at, &blocks, wt, &mut h, &mut GramScratch::default());
        for (b, blk) in blocks.iter().enumerate() {
            let d = Matrix::from_diagonal(&Vector::from_fn(m, |i, _| wt(b, i)));
            let want = a.transpose() * d * &a;
            let got = h.view((blk.row, blk.col), (n, n));
            assert!((got - &want).amax() < 1e-12 * want.amax());
            let mirrored = h.view((blk.col, blk.row), (n, n)).transpose();
            assert!((mirrored - want).amax() < 1e-12 * h.amax());
        }
    }
}
