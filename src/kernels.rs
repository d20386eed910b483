//! Row kernels for data stored row-contiguous (the transpose Aᵀ, column-major, in an
//! [`AlignedT`]), so that one fused pass reads each row aᵢ once and uses it twice while it is in
//! L1: rᵢ = aᵢᵀx − bᵢ, then g += rᵢaᵢ. A row here is the stored row, `pitch` entries (A's n and
//! any zero padding), and x and g have that many entries too.

use crate::aligned::AlignedT;
use crate::vmath::madd;

/// xᵀy: with AVX2 and FMA when the CPU has them (checked at run time, cached by std), else
/// portable code the compiler vectorizes for the baseline target. Either way four independent
/// accumulators, so the sum is not one serial dependency chain.
#[inline]
pub(crate) fn dot(x: &[f64], y: &[f64]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::cpu::avx2() {
            // SAFETY: the CPU supports the features `dot_avx2` is compiled for (checked above).
            return unsafe { dot_avx2(x, y) };
        }
    }
    dot_portable(x, y)
}

/// y ← y + αx, dispatched like [`dot`].
#[inline]
pub(crate) fn axpy(alpha: f64, x: &[f64], y: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::cpu::avx2() {
            // SAFETY: as in `dot`.
            return unsafe { axpy_avx2(alpha, x, y) };
        }
    }
    axpy_portable(alpha, x, y)
}

#[inline(always)]
fn dot_portable(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len().min(y.len());
    let (x, y) = (&x[..n], &y[..n]);
    let mut acc = [0.0; 8];
    let xc = x.chunks_exact(8);
    let yc = y.chunks_exact(8);
    let (xr, yr) = (xc.remainder(), yc.remainder());
    for (a, b) in xc.zip(yc) {
        for k in 0..8 {
            acc[k] += a[k] * b[k];
        }
    }
    let mut s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (a, b) in xr.iter().zip(yr) {
        s += a * b;
    }
    s
}

#[inline(always)]
fn axpy_portable(alpha: f64, x: &[f64], y: &mut [f64]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += alpha * xi;
    }
}

/// xᵀy in AVX2 registers: four 4-lane accumulators over 16 entries a step (LLVM's own
/// vectorization of the portable loop used 2-lane registers here), then one over 4, then the
/// scalar rest.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dot_avx2(x: &[f64], y: &[f64]) -> f64 {
    use std::arch::x86_64::*;
    let n = x.len().min(y.len());
    let (x, y) = (&x[..n], &y[..n]);
    let (px, py) = (x.as_ptr(), y.as_ptr());
    let n16 = n / 16 * 16;
    let n4 = n / 4 * 4;
    // SAFETY: every load reads entries j..j + 4 with j + 4 ≤ n4 ≤ n of both slices
    unsafe {
        let mut acc = [_mm256_setzero_pd(); 4];
        let mut j = 0;
        while j < n16 {
            for (q, a) in acc.iter_mut().enumerate() {
                let k = j + 4 * q;
                *a = _mm256_fmadd_pd(_mm256_loadu_pd(px.add(k)), _mm256_loadu_pd(py.add(k)), *a);
            }
            j += 16;
        }
        while j < n4 {
            acc[0] = _mm256_fmadd_pd(_mm256_loadu_pd(px.add(j)), _mm256_loadu_pd(py.add(j)), acc[0]);
            j += 4;
        }
        let v = _mm256_add_pd(_mm256_add_pd(acc[0], acc[1]), _mm256_add_pd(acc[2], acc[3]));
        let mut s = horizontal_sum(v);
        for k in n4..n {
            s = x[k].mul_add(y[k], s);
        }
        s
    }
}

/// [`horizontal_sum`] of four vectors at once, lane r for v[r]: each lane's sum is
/// (v₀ + v₁) + (v₂ + v₃) as there, so the same to the bit, in nine vector operations (four
/// unpacks, two adds, two cross-lane permutes, one add) rather than four rounds of extracts
/// and scalar adds and a gather of the four sums into a vector.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
fn horizontal_sums4(v: [std::arch::x86_64::__m256d; 4]) -> std::arch::x86_64::__m256d {
    use std::arch::x86_64::*;
    // (v[0]₀ + v[0]₁, v[1]₀ + v[1]₁, v[0]₂ + v[0]₃, v[1]₂ + v[1]₃), and the same for v[2], v[3]
    let h01 = _mm256_add_pd(_mm256_unpacklo_pd(v[0], v[1]), _mm256_unpackhi_pd(v[0], v[1]));
    let h23 = _mm256_add_pd(_mm256_unpacklo_pd(v[2], v[3]), _mm256_unpackhi_pd(v[2], v[3]));
    let low = _mm256_permute2f128_pd::<0x20>(h01, h23);
    let high = _mm256_permute2f128_pd::<0x31>(h01, h23);
    _mm256_add_pd(low, high)
}

/// [`horizontal_sums4`] of four rows whose accumulators are split in two, `lo[r] + hi[r]`
/// (entries 8i..8i + 4 and 8i + 4..8i + 8 of row r, as the four-row sweeps keep them).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
fn split_sums4(
    lo: [std::arch::x86_64::__m256d; 4],
    hi: [std::arch::x86_64::__m256d; 4],
) -> std::arch::x86_64::__m256d {
    use std::arch::x86_64::*;
    horizontal_sums4([
        _mm256_add_pd(lo[0], hi[0]),
        _mm256_add_pd(lo[1], hi[1]),
        _mm256_add_pd(lo[2], hi[2]),
        _mm256_add_pd(lo[3], hi[3]),
    ])
}

/// (v₀ + v₁) + (v₂ + v₃).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
fn horizontal_sum(v: std::arch::x86_64::__m256d) -> f64 {
    use std::arch::x86_64::*;
    let lo = _mm256_castpd256_pd128(v);
    let hi = _mm256_extractf128_pd::<1>(v);
    let pair = |h: __m128d| _mm_cvtsd_f64(h) + _mm_cvtsd_f64(_mm_unpackhi_pd(h, h));
    pair(lo) + pair(hi)
}

/// [`axpy_portable`] with fused multiply-adds, compiled for AVX2 + FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn axpy_avx2(alpha: f64, x: &[f64], y: &mut [f64]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi = alpha.mul_add(*xi, *yi);
    }
}

/// z_r ← a_rᵀx for the rows a_r of a block (n entries each, contiguous in `block`). Rows of
/// fewer than `LONG_ROW` entries go four at a time (each chunk of x loaded once for four rows,
/// the four sums independent), the rest (and longer rows) one at a time.
pub(crate) fn dots_block(block: &[f64], n: usize, x: &[f64], z: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::cpu::avx2() {
            // SAFETY: as in `dot`.
            return unsafe { dots_avx2(block, n, x, z) };
        }
    }
    dots_any::<false>(block, n, x, z)
}

/// g ← g + Σ_r c_r·a_r over the rows of a block, four rows at a time: each chunk of g is
/// loaded and stored once per four rows (sixteen for wide rows on AVX-512: `axpys_avx512`).
pub(crate) fn axpys_block(block: &[f64], n: usize, c: &[f64], g: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::cpu::avx2() {
            // SAFETY: as in `dot`.
            return unsafe { axpys_avx2(block, n, c, g) };
        }
    }
    axpys_any::<false>(block, n, c, g)
}

/// [`dots_any`] in AVX2 registers: long rows by [`dot_avx2`] one after another; shorter
/// ones four rows at a time with two 4-lane accumulators per row (eight independent chains
/// over 8 entries a step), then one over 4, then the scalar rest.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dots_avx2(block: &[f64], n: usize, x: &[f64], z: &mut [f64]) {
    use std::arch::x86_64::*;
    let n = n.max(1);
    let x = &x[..n];
    if n >= LONG_ROW {
        return dots_rows_avx2(block, x, z);
    }
    let (n8, n4) = (n / 8 * 8, n / 4 * 4);
    let rows4 = block.chunks_exact(4 * n);
    let rest = rows4.remainder();
    let mut zs = z.chunks_exact_mut(4);
    for (quad, z4) in rows4.zip(&mut zs) {
        let px = x.as_ptr();
        let pa: [*const f64; 4] = std::array::from_fn(|r| quad[r * n..].as_ptr());
        // SAFETY: every load reads entries j..j + 4 with j + 4 ≤ n4 ≤ n of x and of a row of
        // `quad` (which holds four rows of n entries); the store writes the four entries of `z4`
        unsafe {
            let mut lo = [_mm256_setzero_pd(); 4];
            let mut hi = [_mm256_setzero_pd(); 4];
            let mut j = 0;
            while j < n8 {
                let (x0, x1) = (_mm256_loadu_pd(px.add(j)), _mm256_loadu_pd(px.add(j + 4)));
                for r in 0..4 {
                    lo[r] = _mm256_fmadd_pd(_mm256_loadu_pd(pa[r].add(j)), x0, lo[r]);
                    hi[r] = _mm256_fmadd_pd(_mm256_loadu_pd(pa[r].add(j + 4)), x1, hi[r]);
                }
                j += 8;
            }
            if j < n4 {
                let x0 = _mm256_loadu_pd(px.add(j));
                for r in 0..4 {
                    lo[r] = _mm256_fmadd_pd(_mm256_loadu_pd(pa[r].add(j)), x0, lo[r]);
                }
            }
            _mm256_storeu_pd(z4.as_mut_ptr(), split_sums4(lo, hi));
            for (r, s) in z4.iter_mut().enumerate() {
                let row = &quad[r * n..(r + 1) * n];
                for k in n4..n {
                    *s = row[k].mul_add(x[k], *s);
                }
            }
        }
    }
    for (a, zr) in rest.chunks_exact(n).zip(zs.into_remainder()) {
        *zr = dot_avx2(a, x);
    }
}

/// z_r ← a_rᵀx for the rows of `block` (x.len() entries each), one after another by
/// [`dot_avx2`]: one sequential stream.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dots_rows_avx2(block: &[f64], x: &[f64], z: &mut [f64]) {
    for (a, zr) in block.chunks_exact(x.len().max(1)).zip(z.iter_mut()) {
        *zr = dot_avx2(a, x);
    }
}

/// [`axpys_any`] with fused multiply-adds; rows of [`LONG_ROW`] entries or more in 512-bit
/// registers on a CPU with AVX-512 ([`axpys_avx512`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn axpys_avx2(block: &[f64], n: usize, c: &[f64], g: &mut [f64]) {
    if n >= LONG_ROW && has_avx512() {
        // SAFETY: the CPU has AVX-512 F and VL (checked), and AVX2 and FMA (this function's)
        return unsafe { axpys_avx512(block, n, c, g) };
    }
    axpys_any::<true>(block, n, c, g)
}

/// The cache lines of `ahead` (the next block of A, or nothing), prefetched into L2
/// (`prefetcht1`) a share at a time over `steps` steps of work that compute from cache, so
/// that the block comes from memory while they run: the class pass's rank-update tiles
/// (`crate::class_kernels`) and the Gram kernel's tiles (`crate::gram`).
pub(crate) struct Prefetcher<'a> {
    lines: std::slice::Chunks<'a, f64>,
    per_step: usize,
}

impl<'a> Prefetcher<'a> {
    /// `ahead`'s lines spread evenly over `steps` calls of [`Prefetcher::step`].
    pub(crate) fn new(ahead: &'a [f64], steps: usize) -> Self {
        let lines = ahead.chunks(8);
        let per_step = lines.len().div_ceil(steps.max(1));
        Prefetcher { lines, per_step }
    }

    /// Prefetches the next share of the lines.
    #[inline(always)]
    pub(crate) fn step(&mut self) {
        for line in self.lines.by_ref().take(self.per_step) {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: a prefetch reads nothing and does not fault (the intrinsic is safe in
            // newer Rust, but unsafe in the MSRV's)
            #[allow(unused_unsafe)]
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T1 }>(line.as_ptr().cast())
            };
            #[cfg(not(target_arch = "x86_64"))]
            let _ = line;
        }
    }
}

/// Entries row..row + 4 of `s` as one vector: a quad's labels, offsets or weights
/// ([`Quads::quad`]). Panics, as an index does, if they run past `s`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn four_at(s: &[f64], row: usize) -> std::arch::x86_64::__m256d {
    let four = &s[row..row + 4];
    // SAFETY: loads the four entries of `four`
    unsafe { std::arch::x86_64::_mm256_loadu_pd(four.as_ptr()) }
}

/// Whether the kernels may run AVX-512 F and VL: the CPU has them, with AVX2 and FMA, and
/// `GRADFIT_CPU` does not cap the code below them ([`crate::cpu`]).
#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) fn has_avx512() -> bool {
    crate::cpu::avx512()
}

/// [`axpys_any`] in 512-bit registers, to the bit: each gⱼ grown by the same four fused
/// multiply-adds in the same order, eight entries an instruction; the entries past the last
/// multiple of 8, and the fewer than four rows left, as there. Rows of [`WIDE_MIN`] to
/// [`WIDE_MAX`] entries (blocks of [`WIDE_BLOCK_ROWS`]) go sixteen rows at a time
/// first, each chunk of g loaded and stored once for the sixteen and grown by them in the same
/// order: floor bench, one thread pinned, two runs each in alternation with the quads alone in
/// the same blocks, 5000 × 1000 least squares 1.38–1.40× a stream read against 1.42–1.43×,
/// logistic 1.44× against 1.47–1.53×, log-sum-exp 1.40–1.41× against 1.47×; 2000 × 2000 even
/// (1.76–1.89× against 1.80–1.85×). On long rows the axpys read a
/// block from L1 between two blocks' dot products from memory, and half as many instructions
/// let more of the next block's loads into flight. Measured on AMD EPYC (Zen 4, whose 512-bit
/// arithmetic runs at the clock of its 256-bit), floor bench, fused pass against a stream read,
/// one thread pinned, 20000 × 200, medians of seven runs each in alternation: least squares
/// 1.07–1.16× a stream read against 1.16–1.25×, logistic 1.11–1.26× against 1.24–1.35×,
/// log-sum-exp 1.16–1.40× against 1.24–1.35× (even). The dot products in 512-bit registers lost
/// (1.54–1.68× where the 256-bit ones measured 1.23–1.33× in the same runs), and so did two
/// rows' dot products side by side, each chunk of x loaded once for both (2.8×: two streams
/// from memory at once).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512vl")]
fn axpys_avx512(block: &[f64], n: usize, c: &[f64], g: &mut [f64]) {
    use std::arch::x86_64::*;
    let n = n.max(1);
    let g = &mut g[..n];
    let n8 = n / 8 * 8;
    // wide rows (blocks of WIDE_BLOCK_ROWS) sixteen rows at a time first: each gⱼ grown by them
    // in order, as four quads would, with one load and store of g for the sixteen
    let sixteens = match (WIDE_MIN..=WIDE_MAX).contains(&n) {
        true => (block.len() / (16 * n)).min(c.len() / 16),
        false => 0,
    };
    let (wide, block) = block.split_at(sixteens * 16 * n);
    let (c_wide, c) = c.split_at(sixteens * 16);
    for (rows, cr) in wide.chunks_exact(16 * n).zip(c_wide.chunks_exact(16)) {
        let pg = g.as_mut_ptr();
        // SAFETY: every load and store touches entries j..j + 8 with j + 8 ≤ n8 ≤ n of g or
        // of one of the sixteen rows (n entries each)
        unsafe {
            let cv: [__m512d; 16] = std::array::from_fn(|r| _mm512_set1_pd(cr[r]));
            let p = rows.as_ptr();
            let mut j = 0;
            while j < n8 {
                let mut t = _mm512_loadu_pd(pg.add(j));
                for (r, cq) in cv.iter().enumerate() {
                    t = _mm512_fmadd_pd(*cq, _mm512_loadu_pd(p.add(r * n + j)), t);
                }
                _mm512_storeu_pd(pg.add(j), t);
                j += 8;
            }
        }
        for j in n8..n {
            let mut t = g[j];
            for (r, cq) in cr.iter().enumerate() {
                t = cq.mul_add(rows[r * n + j], t);
            }
            g[j] = t;
        }
    }
    let rows4 = block.chunks_exact(4 * n);
    let rest = rows4.remainder();
    let mut cs = c.chunks_exact(4);
    for (quad, c4) in rows4.zip(&mut cs) {
        let (a0, rest3) = quad.split_at(n);
        let (a1, rest2) = rest3.split_at(n);
        let (a2, a3) = rest2.split_at(n);
        let (p, pg) = (
            [a0.as_ptr(), a1.as_ptr(), a2.as_ptr(), a3.as_ptr()],
            g.as_mut_ptr(),
        );
        // SAFETY: every load and store touches entries j..j + 8 with j + 8 ≤ n8 ≤ n of g or
        // of one of the four rows (n entries each)
        unsafe {
            let cv = [
                _mm512_set1_pd(c4[0]),
                _mm512_set1_pd(c4[1]),
                _mm512_set1_pd(c4[2]),
                _mm512_set1_pd(c4[3]),
            ];
            let mut j = 0;
            while j < n8 {
                let mut t = _mm512_loadu_pd(pg.add(j));
                for (pr, cr) in p.iter().zip(&cv) {
                    t = _mm512_fmadd_pd(*cr, _mm512_loadu_pd(pr.add(j)), t);
                }
                _mm512_storeu_pd(pg.add(j), t);
                j += 8;
            }
        }
        for j in n8..n {
            let t = c4[0].mul_add(a0[j], g[j]);
            let t = c4[1].mul_add(a1[j], t);
            let t = c4[2].mul_add(a2[j], t);
            g[j] = c4[3].mul_add(a3[j], t);
        }
    }
    for (a, cr) in rest.chunks_exact(n).zip(cs.remainder()) {
        for (gj, aj) in g.iter_mut().zip(a) {
            *gj = cr.mul_add(*aj, *gj);
        }
    }
}

/// From this many entries per row, [`dots_block`] reads a block row after row, one sequential
/// stream, instead of four rows side by side. Measured on one core, least squares' fused pass
/// at 20000 × 200 (32 MB, past the caches): four interleaved streams read 13 GB/s where one
/// sequential stream reads 23, and the pass went from 9.5 to 16 GB/s; in cache (500 × 200)
/// the four-row kernel stays ahead, and at 50 entries a row the two are even. (On 12 MB of A
/// or more, on AVX2 or AVX-512, the pipelined passes take rows of 56 to 120 entries, a
/// multiple of 8, one after another too: [`weaves_short`].)
pub(crate) const LONG_ROW: usize = 128;

/// xᵀy with sixteen independent lanes (four AVX2 vectors): one long row against x.
#[inline(always)]
fn dot16<const FMA: bool>(a: &[f64], x: &[f64]) -> f64 {
    let n = a.len().min(x.len());
    let (a, x) = (&a[..n], &x[..n]);
    let mut acc = [0.0f64; 16];
    let (ac, xc) = (a.chunks_exact(16), x.chunks_exact(16));
    let (ar, xr) = (ac.remainder(), xc.remainder());
    for (av, xv) in ac.zip(xc) {
        for l in 0..16 {
            acc[l] = madd::<FMA>(av[l], xv[l], acc[l]);
        }
    }
    let mut v = [0.0f64; 4];
    for l in 0..4 {
        v[l] = (acc[l] + acc[l + 4]) + (acc[l + 8] + acc[l + 12]);
    }
    let mut s = (v[0] + v[1]) + (v[2] + v[3]);
    for (aj, xj) in ar.iter().zip(xr) {
        s = madd::<FMA>(*aj, *xj, s);
    }
    s
}

#[inline(always)]
fn dots_any<const FMA: bool>(block: &[f64], n: usize, x: &[f64], z: &mut [f64]) {
    let n = n.max(1);
    let x = &x[..n];
    if n >= LONG_ROW {
        for (a, zr) in block.chunks_exact(n).zip(z.iter_mut()) {
            *zr = dot16::<FMA>(a, x);
        }
        return;
    }
    let xr = x.chunks_exact(4).remainder();
    let rows4 = block.chunks_exact(4 * n);
    let rest = rows4.remainder();
    let mut zs = z.chunks_exact_mut(4);
    for (quad, z4) in rows4.zip(&mut zs) {
        let a: [&[f64]; 4] = std::array::from_fn(|r| &quad[r * n..(r + 1) * n]);
        let mut acc = [[0.0f64; 4]; 4];
        let chunks = x
            .chunks_exact(4)
            .zip(a[0].chunks_exact(4))
            .zip(a[1].chunks_exact(4))
            .zip(a[2].chunks_exact(4))
            .zip(a[3].chunks_exact(4));
        for ((((xj, r0), r1), r2), r3) in chunks {
            for l in 0..4 {
                acc[0][l] = madd::<FMA>(r0[l], xj[l], acc[0][l]);
                acc[1][l] = madd::<FMA>(r1[l], xj[l], acc[1][l]);
                acc[2][l] = madd::<FMA>(r2[l], xj[l], acc[2][l]);
                acc[3][l] = madd::<FMA>(r3[l], xj[l], acc[3][l]);
            }
        }
        for r in 0..4 {
            let mut s = (acc[r][0] + acc[r][1]) + (acc[r][2] + acc[r][3]);
            for (aj, xj) in a[r][n - xr.len()..].iter().zip(xr) {
                s = madd::<FMA>(*aj, *xj, s);
            }
            z4[r] = s;
        }
    }
    for (a, zr) in rest.chunks_exact(n).zip(zs.into_remainder()) {
        let mut s = 0.0;
        for (ai, xi) in a.iter().zip(x) {
            s = madd::<FMA>(*ai, *xi, s);
        }
        *zr = s;
    }
}

#[inline(always)]
fn axpys_any<const FMA: bool>(block: &[f64], n: usize, c: &[f64], g: &mut [f64]) {
    let n = n.max(1);
    let g = &mut g[..n];
    let rows4 = block.chunks_exact(4 * n);
    let rest = rows4.remainder();
    let mut cs = c.chunks_exact(4);
    for (quad, c4) in rows4.zip(&mut cs) {
        let (a0, rest3) = quad.split_at(n);
        let (a1, rest2) = rest3.split_at(n);
        let (a2, a3) = rest2.split_at(n);
        let (c0, c1, c2, c3) = (c4[0], c4[1], c4[2], c4[3]);
        for ((((gj, x0), x1), x2), x3) in g.iter_mut().zip(a0).zip(a1).zip(a2).zip(a3) {
            let t = madd::<FMA>(c0, *x0, *gj);
            let t = madd::<FMA>(c1, *x1, t);
            let t = madd::<FMA>(c2, *x2, t);
            *gj = madd::<FMA>(c3, *x3, t);
        }
    }
    for (a, cr) in rest.chunks_exact(n).zip(cs.remainder()) {
        for (gj, aj) in g.iter_mut().zip(a) {
            *gj = madd::<FMA>(*cr, *aj, *gj);
        }
    }
}

/// One sweep that does the next block's dot products and this block's axpys: z_r ← a′_rᵀx for
/// the rows a′_r of `next`, and g ← g + Σ_r c_r·a_r for the rows a_r of `cur` (both blocks of
/// the same number of n-entry rows), four rows of each at a time. The axpys read `cur` from L1
/// while the loads of `next` wait on the cache.
///
/// Measured against the two steps one after the other (least squares 20000 × 50, one thread,
/// paired with a stream read of A in alternation): 1.41–1.50× a stream read before, 1.23–1.31×
/// after; logistic 1.96× → 1.83×. For rows of `LONG_ROW` entries or more the same sweep, four
/// rows side by side, was 1.5× slower (four interleaved streams): those take `next`'s rows one
/// after another, with `cur`'s axpys woven in, where [`woven_long`] applies (128 to 504 entries,
/// a multiple of 8, on AVX2 or AVX-512; `prefetch` as there), else the two steps
/// ([`axpys_block`], then [`dots_block`]). (The pipelined passes take rows of 512 to 1024
/// entries one at a time instead: `near_rows`, `near_rows_avx2`.)
#[allow(clippy::too_many_arguments)]
pub(crate) fn dots_axpys(
    next: &[f64],
    z: &mut [f64],
    x: &[f64],
    cur: &[f64],
    c: &[f64],
    g: &mut [f64],
    n: usize,
    prefetch: bool,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if n < LONG_ROW && crate::cpu::avx2() {
            // SAFETY: as in `dot`.
            return unsafe { dots_axpys_avx2(next, z, x, cur, c, g, n) };
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        if n >= LONG_ROW && woven_long(next, z, x, cur, c, g, n, prefetch) {
            return;
        }
    }
    axpys_block(cur, n, c, g);
    dots_block(next, n, x, z);
}

/// [`dots_axpys`] for blocks of four long rows of n entries, a multiple of 8 from 128 to 504
/// ([`WOVEN_MIN`], [`WOVEN_MAX`]; blocks of four rows: [`block_rows`]), on a CPU with AVX2 and
/// FMA (in 256-bit registers, [`woven_rows_avx2`], without AVX-512; below, with it):
/// `next`'s dot products one row after another, in 512-bit registers (one sequential
/// stream from memory, as [`dots_block`] reads long rows), with `cur`'s axpys woven in, one 8-entry
/// step of all four rows after every four 8-entry steps of the dot products, so the axpys' loads
/// from L1 (or, for rows past 256 entries, partly from L2: four rows with x and g no longer fit
/// L1's 32 KB) run while the dot products' loads wait on the cache; and each step of the dot
/// products prefetches its line [`WOVEN_PREFETCH`] bytes further on into L2. From 136 to 208
/// entries ([`WOVEN_V_MIN`], [`WOVEN_V_MAX`]) the loops are unrolled for each n ([`woven_avx512`])
/// and prefetch with `prefetch` (for A of at most [`WOVEN_PREFETCH_MAX`] bytes:
/// [`prefetch_woven`]); rows of 128 and rows past 208 take one loop for any n ([`woven_rows`]),
/// which always prefetches. Every dot product and gⱼ is the same to the bit as from the two steps:
/// each row's sums in [`dot_avx2`]'s four accumulators (a 512-bit register holds two of them) in
/// its order, and each gⱼ grown by the four rows in order, as [`axpys_block`] does.
///
/// Measured on AMD EPYC (Zen 4), floor bench, the fused pass against a stream read at
/// 20000 × 200, before the prefetch, medians of three runs each in alternation with the two
/// steps (512-bit axpys, then the dot products): one thread pinned, least squares 0.99–1.11×
/// against 1.10–1.18×, logistic 1.05–1.09× against 1.15–1.21×, log-sum-exp 1.03–1.09× against
/// 1.22–1.40×; two threads (unpinned, noisier) least squares 1.30–1.31× (one run 2.0×) against
/// 1.51–1.56×, logistic 1.11–1.30× against 1.40–1.75×, log-sum-exp 1.45–1.52× against
/// 1.43–1.46×. At 1000 × 200 (1.6 MB, past the 1 MB L2; one thread) least squares 1.15×
/// against 1.20–1.24×, log-sum-exp 1.15–1.19× against 1.30–1.32×. The same weave with x held
/// in 25 of the 32 registers timed no better than the two steps in cache (spills, perhaps: not
/// checked).
///
/// The loop for any n ([`woven_rows`]) against the two steps, floor bench, one thread pinned,
/// A of 29–33 MB, two runs each in alternation (medians; least squares, logistic, log-sum-exp):
/// 12800 × 320 1.15–1.17×, 1.11–1.18×, 1.17–1.25× a stream read against 1.23–1.36×,
/// 1.35–1.46×, 1.30–1.48×; 8000 × 512 1.24–1.32×, 1.35–1.39×, 1.42–1.51× against 1.41–1.62×,
/// 1.55–1.70×, 1.51–1.66×; 4800 × 768 1.40–1.41×, 1.34–1.42×, 1.34–1.39× against 1.47–1.65×,
/// 1.67–1.69×, 1.62–1.70×; 16000 × 256 even (1.18–1.27× against 1.15–1.40×). At 200 entries it
/// lost to the unrolled loops (least squares 1.14–1.17× against 0.96–0.98×, logistic 1.23–1.32×
/// against 1.17–1.19×). Without its prefetch it lost to the two steps past 64 MB (50000 × 320,
/// 160 MB: 1.54–1.71× against 1.16–1.29×; 32000 × 512 2.2–2.4× against 1.3–1.5×); with it,
/// 1.14–1.24× and 1.25–1.35× there. It took rows up to 768 entries until rows of 512 and more
/// went one at a time ([`near_rows`], which beat it at 8000 × 512 and 4800 × 768). At
/// 5000 × 1000 no variant beat the two steps (1.45–1.74×
/// either way), nor did prefetching 12 800 to 102 400 bytes ahead; rows not a multiple of 8 (so
/// that its 64-byte loads straddle two cache lines) lost badly (20000 × 201: 2.2× against
/// 1.5–1.7×): the problems pad long rows to a multiple of 8 instead (`AlignedT::padded`).
///
/// Returns false (having done nothing) where it does not apply: other n, blocks of other than
/// four rows, x or g shorter than n, or a CPU without AVX2 and FMA (or with them capped). Without
/// AVX-512 the rows go through [`woven_rows_avx2`], the same steps in 256-bit registers.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
fn woven_long(
    next: &[f64],
    z: &mut [f64],
    x: &[f64],
    cur: &[f64],
    c: &[f64],
    g: &mut [f64],
    n: usize,
    prefetch: bool,
) -> bool {
    if !(n.is_multiple_of(8)
        && (WOVEN_MIN..=WOVEN_MAX).contains(&n)
        && z.len() == 4
        && next.len() == 4 * n
        && cur.len() == 4 * n
        && c.len() == 4
        && g.len() >= n
        && x.len() >= n
        && crate::cpu::avx2())
    {
        return false;
    }
    if !has_avx512() {
        // SAFETY: the CPU has AVX2 and FMA, and the slices have the lengths `woven_rows_avx2`
        // reads (both checked above; n a multiple of 8)
        // prefetching as the 512-bit loops do: for rows of WOVEN_V_MIN to WOVEN_V_MAX entries
        // only where `prefetch` says, other rows always
        let ahead = prefetch || !(WOVEN_V_MIN..=WOVEN_V_MAX).contains(&n);
        unsafe { woven_rows_avx2(next, z, x, cur, c, g, n, ahead) };
        return true;
    }
    if (WOVEN_V_MIN..=WOVEN_V_MAX).contains(&n) {
        macro_rules! by_v {
            ($($v:literal),*) => {
                match n / 8 {
                    // SAFETY: the CPU has AVX2, FMA and AVX-512 F and VL, and the slices have
                    // the lengths `woven_avx512` reads (both checked above)
                    $($v => unsafe { woven_avx512::<$v>(next, z, x, cur, c, g, prefetch) },)*
                    _ => return false,
                }
            };
        }
        by_v!(17, 18, 19, 20, 21, 22, 23, 24, 25, 26);
    } else {
        // SAFETY: as above (n a multiple of 8 among them)
        unsafe { woven_rows(next, z, x, cur, c, g, n) };
    }
    true
}

/// How far ahead [`woven_avx512`] and [`woven_rows`] prefetch A, in bytes (four blocks of four rows
/// of 200), into L2 (`prefetcht1`). Measured on AMD EPYC (Zen 4), floor bench, 20000 × 200, four
/// runs each in alternation with no prefetch (medians; one thread | two threads): least squares
/// 1.03–1.16× | 1.16–1.29× a stream read against 1.25–1.36× | 1.31–1.37×, logistic 1.20–1.32× |
/// 1.24–1.37× against 1.33–1.41× | 1.30–1.46×, log-sum-exp 1.06–1.25× | 1.15–1.35× against
/// 1.41–1.47× | 1.35–1.40×. Into L1 (`prefetcht0`) at 3200 to 12800 bytes it lost badly (1.7–2.1×),
/// as did `prefetchnta` (1.5–1.7×) and `prefetcht2` (1.3–1.4×, no gain); 12800 and 51200 bytes did
/// about as well as 25600, 6400 and 102400 less well.
#[cfg(target_arch = "x86_64")]
const WOVEN_PREFETCH: usize = 25_600;

/// The largest A, in bytes, whose woven passes over rows of [`WOVEN_V_MIN`] to [`WOVEN_V_MAX`]
/// entries prefetch ([`WOVEN_PREFETCH`]; other rows always do): 64 MB, twice this machine's L3.
/// Measured (fused pass, two threads, best of many, in alternation with and without): least squares
/// 20000 × 200 (32 MB) 388 µs with the prefetch against 423–426, 30000 × 200 595–599 against
/// 687–750, 40000 × 200 (64 MB) 810–812 against 1202–1209, 10000 × 200 even (206–208 against
/// 201–204); at 100000 × 200 (160 MB, from memory) the prefetch lost, floor bench, three runs each
/// (one thread | two): 1.25–1.30× | 1.10–1.11× (one run 2.0×) a stream read against 1.20–1.23× |
/// 1.03–1.06× (least squares), 1.14–1.19× | 1.07–1.08× against 1.07–1.12× | 1.03–1.05×
/// (log-sum-exp). 60000 × 200 was too noisy to call.
#[cfg(target_arch = "x86_64")]
const WOVEN_PREFETCH_MAX: usize = 64 << 20;

/// Whether a woven pass over `at`'s rows of [`WOVEN_V_MIN`] to [`WOVEN_V_MAX`] entries
/// prefetches ([`WOVEN_PREFETCH_MAX`]).
#[inline]
pub(crate) fn prefetch_woven(at: &AlignedT) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        at.len() * std::mem::size_of::<f64>() <= WOVEN_PREFETCH_MAX
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = at;
        false
    }
}

/// The shortest row [`woven_long`] takes (a multiple of 8 up to [`WOVEN_MAX`]).
#[cfg(target_arch = "x86_64")]
const WOVEN_MIN: usize = 128;
/// The longest row the woven kernel takes (`woven_long` on x86-64; longer rows go one at a
/// time, `near_rows`, up to [`NEAR_MAX`]).
pub(crate) const WOVEN_MAX: usize = 504;
/// The rows [`woven_long`] takes through loops unrolled for each n ([`woven_avx512`]).
#[cfg(target_arch = "x86_64")]
const WOVEN_V_MIN: usize = 136;
#[cfg(target_arch = "x86_64")]
const WOVEN_V_MAX: usize = 208;

/// [`woven_long`] for n = 8·V.
///
/// # Safety
/// `next` and `cur` hold four rows of n entries, z and c four entries, x and g at least n.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512vl")]
unsafe fn woven_avx512<const V: usize>(
    next: &[f64],
    z: &mut [f64],
    x: &[f64],
    cur: &[f64],
    c: &[f64],
    g: &mut [f64],
    prefetch: bool,
) {
    use std::arch::x86_64::*;
    let n = 8 * V;
    let (px, pn, pc, pg) = (x.as_ptr(), next.as_ptr(), cur.as_ptr(), g.as_mut_ptr());
    // SAFETY: every load and store touches 8 (or 4) entries at an offset below n of x, of g or
    // of one of the four rows of `next` or `cur` (the caller's lengths)
    unsafe {
        let cv = [
            _mm512_set1_pd(c[0]),
            _mm512_set1_pd(c[1]),
            _mm512_set1_pd(c[2]),
            _mm512_set1_pd(c[3]),
        ];
        let mut step = 0;
        for (r, zr) in z.iter_mut().enumerate().take(4) {
            let p = pn.add(r * n);
            // dot_avx2's accumulators 0 and 1 in a0 (entries 16u..16u + 8), 2 and 3 in a1
            let (mut a0, mut a1) = (_mm512_setzero_pd(), _mm512_setzero_pd());
            let mut acc0 = _mm256_setzero_pd();
            for t in 0..V {
                if V % 2 == 1 && t == V - 1 {
                    // the last 8 entries past the last multiple of 16: two 4-entry chunks into
                    // accumulator 0, as dot_avx2 takes them
                    acc0 = _mm512_castpd512_pd256(a0);
                    for k in [n - 8, n - 4] {
                        acc0 = _mm256_fmadd_pd(_mm256_loadu_pd(p.add(k)), _mm256_loadu_pd(px.add(k)), acc0);
                    }
                } else if t % 2 == 0 {
                    a0 = _mm512_fmadd_pd(_mm512_loadu_pd(p.add(8 * t)), _mm512_loadu_pd(px.add(8 * t)), a0);
                } else {
                    a1 = _mm512_fmadd_pd(_mm512_loadu_pd(p.add(8 * t)), _mm512_loadu_pd(px.add(8 * t)), a1);
                }
                // the line of A this step reads, WOVEN_PREFETCH bytes on, into L2 (a prefetch
                // never faults, past A's end included)
                if prefetch {
                    _mm_prefetch::<_MM_HINT_T1>(p.add(8 * t).cast::<i8>().wrapping_add(WOVEN_PREFETCH));
                }
                if step % 4 == 3 {
                    // g's entries j..j + 8 from the four rows of `cur`, in order
                    let j = 8 * (step / 4);
                    let mut gv = _mm512_loadu_pd(pg.add(j));
                    for (q, cq) in cv.iter().enumerate() {
                        gv = _mm512_fmadd_pd(*cq, _mm512_loadu_pd(pc.add(q * n + j)), gv);
                    }
                    _mm512_storeu_pd(pg.add(j), gv);
                }
                step += 1;
            }
            if V.is_multiple_of(2) {
                acc0 = _mm512_castpd512_pd256(a0);
            }
            let acc1 = _mm512_extractf64x4_pd::<1>(a0);
            let (acc2, acc3) = (_mm512_castpd512_pd256(a1), _mm512_extractf64x4_pd::<1>(a1));
            *zr = horizontal_sum(_mm256_add_pd(
                _mm256_add_pd(acc0, acc1),
                _mm256_add_pd(acc2, acc3),
            ));
        }
    }
}

/// [`woven_long`] for any n, a multiple of 8: `next`'s dot products row after row, 16 entries a
/// step in two 512-bit registers (the accumulators of [`dot_avx2`], two to a register, as in
/// [`woven_avx512`]), with one 8-entry step of `cur`'s axpys (all four rows) woven in after
/// every other step, so after every 32 entries read from memory; then the axpy steps left when
/// the dot products end. Each step prefetches its two lines of A [`WOVEN_PREFETCH`] bytes on
/// into L2, whatever A's size (without, it lost past 64 MB: [`woven_long`]). Every dot product
/// is the same to the bit as [`dot_avx2`]'s on its row (and [`dots_block`]'s for long rows) and
/// every gⱼ as from [`axpys_block`].
///
/// # Safety
/// `next` and `cur` hold four rows of n entries, z and c four entries, x and g at least n; n is
/// a multiple of 8.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512vl")]
#[allow(clippy::too_many_arguments)]
unsafe fn woven_rows(
    next: &[f64],
    z: &mut [f64],
    x: &[f64],
    cur: &[f64],
    c: &[f64],
    g: &mut [f64],
    n: usize,
) {
    use std::arch::x86_64::*;
    let (px, pn, pc, pg) = (x.as_ptr(), next.as_ptr(), cur.as_ptr(), g.as_mut_ptr());
    let n16 = n / 16 * 16;
    // SAFETY: every load and store touches 8 (or 4) entries at an offset j with j + 8 ≤ n (or
    // j + 4 ≤ n) of x, of g or of one of the four rows of `next` or `cur` (the caller's lengths;
    // n is a multiple of 8)
    unsafe {
        let cv: [__m512d; 4] = std::array::from_fn(|q| _mm512_set1_pd(c[q]));
        // g's entries j..j + 8 from the four rows of `cur`, in order
        macro_rules! axpy {
            ($j:expr) => {{
                let j = $j;
                let mut gv = _mm512_loadu_pd(pg.add(j));
                for (q, cq) in cv.iter().enumerate() {
                    gv = _mm512_fmadd_pd(*cq, _mm512_loadu_pd(pc.add(q * n + j)), gv);
                }
                _mm512_storeu_pd(pg.add(j), gv);
            }};
        }
        let mut j = 0;
        for (r, zr) in z.iter_mut().enumerate().take(4) {
            let p = pn.add(r * n);
            // dot_avx2's accumulators 0 and 1 in a0 (entries 16u..16u + 8), 2 and 3 in a1
            let (mut a0, mut a1) = (_mm512_setzero_pd(), _mm512_setzero_pd());
            let mut t = 0;
            let mut steps = 0usize;
            while t < n16 {
                a0 = _mm512_fmadd_pd(_mm512_loadu_pd(p.add(t)), _mm512_loadu_pd(px.add(t)), a0);
                a1 = _mm512_fmadd_pd(_mm512_loadu_pd(p.add(t + 8)), _mm512_loadu_pd(px.add(t + 8)), a1);
                // the two lines of A this step reads, WOVEN_PREFETCH bytes on, into L2 (a
                // prefetch never faults, past A's end included)
                let at = p.add(t).cast::<i8>();
                _mm_prefetch::<_MM_HINT_T1>(at.wrapping_add(WOVEN_PREFETCH));
                _mm_prefetch::<_MM_HINT_T1>(at.wrapping_add(WOVEN_PREFETCH + 64));
                steps += 1;
                if steps.is_multiple_of(2) && j < n {
                    axpy!(j);
                    j += 8;
                }
                t += 16;
            }
            // the 4-entry chunks past the last multiple of 16 into accumulator 0, as dot_avx2
            // takes them, then its sum; their line (n is a multiple of 8, so one) prefetched as
            // the steps' lines are: without, a row of an odd multiple of 8 entries waited on
            // memory for its last line (one line in 2n/16 went unprefetched: 12800 × 312
            // 1.44–1.53× a stream read against 1.11–1.22× with it, 16000 × 264 1.25–1.41×
            // against 0.81–1.02×)
            if t < n {
                _mm_prefetch::<_MM_HINT_T1>(p.add(t).cast::<i8>().wrapping_add(WOVEN_PREFETCH));
            }
            let mut acc0 = _mm512_castpd512_pd256(a0);
            while t < n {
                acc0 = _mm256_fmadd_pd(_mm256_loadu_pd(p.add(t)), _mm256_loadu_pd(px.add(t)), acc0);
                t += 4;
            }
            let acc1 = _mm512_extractf64x4_pd::<1>(a0);
            let (acc2, acc3) = (_mm512_castpd512_pd256(a1), _mm512_extractf64x4_pd::<1>(a1));
            *zr = horizontal_sum(_mm256_add_pd(
                _mm256_add_pd(acc0, acc1),
                _mm256_add_pd(acc2, acc3),
            ));
        }
        while j < n {
            axpy!(j);
            j += 8;
        }
    }
}

/// [`woven_rows`] in AVX2's 256-bit registers, for a CPU without AVX-512 (or under
/// `GRADFIT_CPU=avx2`): the same steps (16 entries of a row's dot product in [`dot_avx2`]'s four
/// accumulators, one 8-entry step of the four rows' axpys after every other step, each step
/// prefetching its two lines of A [`WOVEN_PREFETCH`] bytes on into L2 if `prefetch`, as
/// [`woven_long`] decides for both), so every dot product is the same to the bit as
/// [`dot_avx2`]'s on its row (and [`dots_block`]'s for long rows, which take `dot_avx2`) and
/// every gⱼ as from [`axpys_block`]. Measured on AMD EPYC (Zen 4) under `GRADFIT_CPU=avx2`:
/// see [`cpu_weaves`].
///
/// # Safety
/// As [`woven_rows`], on a CPU with AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn woven_rows_avx2(
    next: &[f64],
    z: &mut [f64],
    x: &[f64],
    cur: &[f64],
    c: &[f64],
    g: &mut [f64],
    n: usize,
    prefetch: bool,
) {
    use std::arch::x86_64::*;
    let (px, pn, pc, pg) = (x.as_ptr(), next.as_ptr(), cur.as_ptr(), g.as_mut_ptr());
    let n16 = n / 16 * 16;
    // SAFETY: every load and store touches 4 entries at an offset j with j + 4 ≤ n of x, of g
    // or of one of the four rows of `next` or `cur` (the caller's lengths; n is a multiple of 8)
    unsafe {
        let cv: [__m256d; 4] = std::array::from_fn(|q| _mm256_set1_pd(c[q]));
        // g's entries j..j + 8 from the four rows of `cur`, in order, four entries at a time
        macro_rules! axpy {
            ($j:expr) => {{
                for j in [$j, $j + 4] {
                    let mut gv = _mm256_loadu_pd(pg.add(j));
                    for (q, cq) in cv.iter().enumerate() {
                        gv = _mm256_fmadd_pd(*cq, _mm256_loadu_pd(pc.add(q * n + j)), gv);
                    }
                    _mm256_storeu_pd(pg.add(j), gv);
                }
            }};
        }
        let mut j = 0;
        for (r, zr) in z.iter_mut().enumerate().take(4) {
            let p = pn.add(r * n);
            let mut acc = [_mm256_setzero_pd(); 4];
            let mut t = 0;
            let mut steps = 0usize;
            while t < n16 {
                for (u, a) in acc.iter_mut().enumerate() {
                    let k = t + 4 * u;
                    *a = _mm256_fmadd_pd(_mm256_loadu_pd(p.add(k)), _mm256_loadu_pd(px.add(k)), *a);
                }
                if prefetch {
                    let at = p.add(t).cast::<i8>();
                    _mm_prefetch::<_MM_HINT_T1>(at.wrapping_add(WOVEN_PREFETCH));
                    _mm_prefetch::<_MM_HINT_T1>(at.wrapping_add(WOVEN_PREFETCH + 64));
                }
                steps += 1;
                if steps.is_multiple_of(2) && j < n {
                    axpy!(j);
                    j += 8;
                }
                t += 16;
            }
            if t < n && prefetch {
                _mm_prefetch::<_MM_HINT_T1>(p.add(t).cast::<i8>().wrapping_add(WOVEN_PREFETCH));
            }
            while t < n {
                acc[0] = _mm256_fmadd_pd(_mm256_loadu_pd(p.add(t)), _mm256_loadu_pd(px.add(t)), acc[0]);
                t += 4;
            }
            *zr = horizontal_sum(_mm256_add_pd(
                _mm256_add_pd(acc[0], acc[1]),
                _mm256_add_pd(acc[2], acc[3]),
            ));
        }
        while j < n {
            axpy!(j);
            j += 8;
        }
    }
}

/// The shortest row `near_rows` takes (on x86-64): the next multiple of 8 past the woven
/// kernel's ([`WOVEN_MAX`]).
pub(crate) const NEAR_MIN: usize = WOVEN_MAX + 8;

/// The longest row `near_rows` takes (on x86-64; a multiple of 8: rows up to it are padded to
/// one, `AlignedT::padded`): one row, x and g, 24 KB at 1024 entries, fit L1's 32 KB.
pub(crate) const NEAR_MAX: usize = 1024;

/// How far ahead [`axpy_prefetch`] prefetches A, in bytes (about three rows of 1000 entries),
/// into L2 (`prefetcht1`).
#[cfg(target_arch = "x86_64")]
const NEAR_PREFETCH: usize = 25_600;

/// Whether [`near_rows`] takes rows of n entries with this x and g: n a multiple of 8 from
/// [`NEAR_MIN`] to [`NEAR_MAX`], x and g (unless empty: a pass without a gradient) at least n
/// long, on a CPU with AVX2 and FMA ([`near_rows`] where AVX-512 is in use, else
/// [`near_rows_avx2`]: [`near`]). A pass and the same pass without its
/// gradient take the same path, so that their coefficients and sums (a log-sum-exp's shifts,
/// a logistic loss's lanes) agree to the bit.
#[cfg(target_arch = "x86_64")]
#[inline]
fn takes_near(n: usize, x: &[f64], g: &[f64]) -> bool {
    n.is_multiple_of(8)
        && (NEAR_MIN..=NEAR_MAX).contains(&n)
        && x.len() >= n
        && (g.is_empty() || g.len() >= n)
        && cpu_weaves()
}

/// [`near_rows`] where AVX-512 is in use, else [`near_rows_avx2`].
///
/// # Safety
/// The CPU has AVX2 and FMA, and `takes_near(at.pitch(), x, g)` holds.
#[cfg(target_arch = "x86_64")]
#[inline]
unsafe fn near<F>(at: &AlignedT, lo: usize, hi: usize, x: &[f64], g: &mut [f64], coef: F)
where
    F: FnMut(usize, &mut [f64], &mut [f64]),
{
    if has_avx512() {
        // SAFETY: the CPU has AVX-512 F and VL too (checked above); the rest is the caller's
        unsafe { near_rows(at, lo, hi, x, g, coef) }
    } else {
        // SAFETY: the caller's
        unsafe { near_rows_avx2(at, lo, hi, x, g, coef) }
    }
}

/// Rows lo..hi of A one at a time, each z ← aᵢᵀx ([`dot_avx2`]), then its coefficient by
/// `coef(i, [z], g)` in place, then, unless g is empty, g ← g + c·aᵢ ([`axpy_prefetch`]) while
/// the row is still in L1: for rows of [`NEAR_MIN`] to [`NEAR_MAX`] entries ([`takes_near`]), whose blocks of
/// several rows no longer fit L1 beside x and g. The axpy prefetches A [`NEAR_PREFETCH`] bytes
/// ahead into L2, so the memory stream goes on while it runs (a hardware prefetcher follows
/// the loads it sees, and the axpy's come from L1). Every dot product and gⱼ is the same to
/// the bit as from the steps [`dots_block`] and [`axpys_block`] on one row at a time (and so
/// as from their blocks: each gⱼ grown by the rows in order).
///
/// Measured on AMD EPYC (Zen 4), floor bench, one thread pinned, two runs each in alternation
/// with the blocks (medians; least squares, logistic, log-sum-exp): 5000 × 1000 1.10–1.18×,
/// 1.16–1.22×, 1.21–1.23× a stream read against 1.30–1.42×, 1.28–1.40×, 1.30–1.40× (blocks of
/// sixteen); 4800 × 768 1.03–1.14×, 1.17–1.20×, 1.16–1.23× against 1.27–1.33×, 1.28–1.50×,
/// 1.27–1.36× (woven, [`woven_long`]); 8000 × 512 1.04–1.15×, 1.19–1.30×, 1.16–1.28× against
/// 1.21–1.24×, 1.25–1.35×, 1.17–1.30× (woven). At 10000 × 400 it was even with the woven
/// kernel, and at 12800 × 320 logistic and log-sum-exp lost (1.27–1.33× and 1.24–1.34×
/// against 1.16–1.20× and 1.09–1.17×). From memory (160 MB, one run, one thread | two):
/// 40000 × 512 1.07–1.22× | 1.05–1.10× against 1.28–1.32× | 1.16–1.24×; 20000 × 1000 even
/// (1.32–1.37× | 1.14–1.20× either way). Blocks of two rows lost at 1000 entries (1.7–2.3×),
/// and so did x and g unaligned (the caller's vectors, which `AlignedT::with_padded` now
/// copies: least squares and logistic 1.19–1.27× against 1.10–1.19×); in a scratch harness
/// (least squares' pass alone, 5000 × 1000) so did the pass without the prefetch (1.74–1.79×
/// against 1.12–1.14×) or prefetching into L1 (`prefetcht0`, 2.5×) or into L3 only
/// (`prefetcht2`, 1.20×); 12 000 bytes ahead did less well (1.25×), 48 000 as well (1.15×).
///
/// # Safety
/// The CPU has AVX2, FMA and AVX-512 F and VL, and `takes_near(at.pitch(), x, g)` holds.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512vl")]
unsafe fn near_rows<F>(at: &AlignedT, lo: usize, hi: usize, x: &[f64], g: &mut [f64], coef: F)
where
    F: FnMut(usize, &mut [f64], &mut [f64]),
{
    // SAFETY: the CPU has the features (this function's), n is a multiple of 8 and g has at
    // least n entries (the caller's `takes_near`)
    unsafe { near_rows_with(at, lo, hi, x, g, coef, |row, c, g| axpy_prefetch(row, c, g)) }
}

/// The loop of [`near_rows`] and [`near_rows_avx2`], with their axpy, inlined into each.
///
/// # Safety
/// The CPU has AVX2 and FMA, `takes_near(at.pitch(), x, g)` holds, and `axpy(row, c, g)` is
/// safe on a row of A and g.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn near_rows_with<F, A>(
    at: &AlignedT,
    lo: usize,
    hi: usize,
    x: &[f64],
    g: &mut [f64],
    mut coef: F,
    axpy: A,
) where
    F: FnMut(usize, &mut [f64], &mut [f64]),
    A: Fn(&[f64], f64, &mut [f64]),
{
    let n = at.pitch();
    let x = &x[..n];
    for (i, row) in (lo..hi).zip(rows_range(at, lo, hi)) {
        // SAFETY: the CPU has AVX2 and FMA (the caller's)
        let mut z = [unsafe { dot_avx2(row, x) }];
        coef(i, &mut z, g);
        if !g.is_empty() {
            axpy(row, z[0], g);
        }
    }
}

/// [`near_rows`] in AVX2's 256-bit registers, for a CPU without AVX-512 (or under
/// `GRADFIT_CPU=avx2`): the same rows, dot products, coefficients and axpys
/// ([`axpy_prefetch_avx2`]), so the same bits. Before it such rows went in two steps (rows of
/// 505 to 768, blocks of four) or blocks of sixteen (769 to 1024). Measured on AMD EPYC (Zen 4)
/// under the cap, floor bench `--quick`, one thread pinned, two runs each in alternation with
/// the build before (medians; least squares, logistic, log-sum-exp): 5000 × 1000 0.95–0.98×,
/// 1.06–1.10×, 1.04–1.06× a stream read against 1.47–1.49×, 1.47–1.54×, 1.42–1.47×;
/// 8000 × 512 1.05–1.06×, 1.10–1.18×, 1.13× against 1.48×, 1.54–1.67×, 1.40–1.52×;
/// 4800 × 768 1.06–1.07×, 1.15–1.18×, 1.15–1.22× against 1.51–1.61×, 1.47–1.56×, 1.42–1.66×.
///
/// # Safety
/// The CPU has AVX2 and FMA, and `takes_near(at.pitch(), x, g)` holds.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn near_rows_avx2<F>(at: &AlignedT, lo: usize, hi: usize, x: &[f64], g: &mut [f64], coef: F)
where
    F: FnMut(usize, &mut [f64], &mut [f64]),
{
    // SAFETY: as in `near_rows`, with AVX2 and FMA (this function's)
    unsafe { near_rows_with(at, lo, hi, x, g, coef, |row, c, g| axpy_prefetch_avx2(row, c, g)) }
}

/// [`axpy_prefetch`] four entries an instruction: g ← g + c·a, each line of A read prefetching
/// the line [`NEAR_PREFETCH`] bytes on into L2.
///
/// # Safety
/// The CPU has AVX2 and FMA; a.len() is a multiple of 8, g at least as long.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn axpy_prefetch_avx2(a: &[f64], c: f64, g: &mut [f64]) {
    use std::arch::x86_64::*;
    let n = a.len();
    let g = &mut g[..n];
    let (pa, pg) = (a.as_ptr(), g.as_mut_ptr());
    let cv = _mm256_set1_pd(c);
    let mut j = 0;
    // SAFETY: every load and store touches entries j..j + 8 with j + 8 ≤ n (a multiple of 8)
    // of a or of g
    unsafe {
        while j < n {
            for k in [j, j + 4] {
                let t = _mm256_fmadd_pd(cv, _mm256_loadu_pd(pa.add(k)), _mm256_loadu_pd(pg.add(k)));
                _mm256_storeu_pd(pg.add(k), t);
            }
            _mm_prefetch::<_MM_HINT_T1>(pa.add(j).cast::<i8>().wrapping_add(NEAR_PREFETCH));
            j += 8;
        }
    }
}

/// g ← g + c·a for a row a of A, eight entries an instruction, each line of A read
/// prefetching the line [`NEAR_PREFETCH`] bytes on into L2 (a prefetch never faults, past A's
/// end included).
///
/// # Safety
/// The CPU has AVX2, FMA and AVX-512 F and VL; a.len() is a multiple of 8, g at least as long.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512vl")]
#[inline]
unsafe fn axpy_prefetch(a: &[f64], c: f64, g: &mut [f64]) {
    use std::arch::x86_64::*;
    let n = a.len();
    let g = &mut g[..n];
    let (pa, pg) = (a.as_ptr(), g.as_mut_ptr());
    let cv = _mm512_set1_pd(c);
    let mut j = 0;
    // SAFETY: every load and store touches entries j..j + 8 with j + 8 ≤ n (a multiple of 8)
    // of a or of g
    unsafe {
        while j < n {
            let t = _mm512_fmadd_pd(cv, _mm512_loadu_pd(pa.add(j)), _mm512_loadu_pd(pg.add(j)));
            _mm512_storeu_pd(pg.add(j), t);
            _mm_prefetch::<_MM_HINT_T1>(pa.add(j).cast::<i8>().wrapping_add(NEAR_PREFETCH));
            j += 8;
        }
    }
}

/// The shortest rows the pipelined passes weave when A is large ([`weaves_short`]): the first
/// multiple of 8 past the rows that fit the registers ([`fits_registers`]).
pub(crate) const WOVEN_SHORT_MIN: usize = 56;

/// The least A, in bytes, whose rows of [`WOVEN_SHORT_MIN`] to [`LONG_ROW`] − 8 entries the
/// pipelined passes weave: 12 MB, about a third of this machine's 32 MB L3 (20000 × 80 and
/// 20000 × 100 gained, 20000 × 64, 10 MB, was even: [`weaves_short`]).
pub(crate) const WOVEN_SHORT_MIN_BYTES: usize = 12 << 20;

/// Whether the pipelined passes take rows of `pitch` entries (short of [`LONG_ROW`]) of an A of
/// `bytes` bytes as long rows, one after another, woven ([`woven_short_rows`]): a multiple of 8
/// from [`WOVEN_SHORT_MIN`], A of at least [`WOVEN_SHORT_MIN_BYTES`] (`AlignedT::padded` pads
/// such rows to a multiple of 8). In the caches the four-row sweep stays ahead; past the L3
/// its four rows side by side are four streams from memory, where one row after another is
/// one. Measured on AMD EPYC (Zen 4), floor bench, one thread pinned, one run each in
/// alternation with the sweep (the medians of its two paired runs; least squares, logistic,
/// log-sum-exp): 40000 × 100 (pitch 104) 1.03–1.07×, 1.12–1.13×, 1.10–1.19× a stream read
/// against 3.08–3.26×, 3.30–3.48×, 3.13–3.26×; 64000 × 64 1.07–1.21×, 1.37–1.45×,
/// 1.41–1.47× against 3.44–3.62×, 3.76–3.79×, 3.68–3.78×; 20000 × 80 (13 MB) 1.51–2.15×,
/// 1.85–2.21×, 1.87–2.27× against 2.23–2.44×, 2.19–2.36×, 2.03–2.33×. An earlier form, with
/// every row of 56 to 127 entries woven whatever A's size: 57000 × 56 1.27–1.77× against
/// 3.34–3.56×, 200000 × 64 (100 MB) 1.13–1.31× against 3.05–3.84×, 20000 × 100 (16 MB)
/// 1.36–1.68× against 2.14–2.93×; 20000 × 64 (10 MB) even (1.78–2.54× against 2.07–2.71×);
/// and in cache it lost: an L-BFGS solve of logistic 4000 × 100 (3.2 MB) took 1.06–1.09× the
/// time, Newton-CG 1.06–1.11×, hence the threshold on the bytes of A.
pub(crate) fn weaves_short(pitch: usize, bytes: usize) -> bool {
    pitch.is_multiple_of(8) && (WOVEN_SHORT_MIN..LONG_ROW).contains(&pitch) && bytes >= WOVEN_SHORT_MIN_BYTES
}

/// Whether this CPU runs the woven loops ([`woven_short_rows`] and [`woven_rows`] in 512-bit
/// registers where AVX-512 is in use, [`woven_short_rows_avx2`] and [`woven_rows_avx2`] in
/// 256-bit ones elsewhere): AVX2 and FMA, on x86-64. `AlignedT::padded` pads short rows for the
/// woven loop only where it runs (a problem's pitch is fixed when it is made).
///
/// The 256-bit loops came later; before them a CPU without AVX-512 took long rows in two steps
/// and short rows on large data through the four-row sweep. Measured on AMD EPYC (Zen 4) under
/// `GRADFIT_CPU=avx2`, floor bench `--quick`, one thread pinned, two runs each in alternation
/// with the build before (medians; least squares, logistic, log-sum-exp): 40000 × 100 (pitch
/// 104) 0.84–0.89×, 1.03–1.13×, 1.01–1.06× a stream read against 2.91–3.61×, 3.67–3.84×,
/// 3.37–3.64×; 20000 × 200 0.78–0.81×, 0.84–0.88×, 0.84–0.90× against 1.16–1.20×,
/// 1.26×, 1.22–1.42×; 12800 × 320 0.87–0.90×, 0.96–0.99×, 1.03–1.09× against 1.41–1.48×,
/// 1.40–1.44×, 1.46–1.68×. In two runs beside these, alternating the caps, the AVX-512 code
/// stood at 0.83–1.14×. Rows of 136 to 208 entries prefetch as the 512-bit loops do (only on A
/// of at most 64 MB, a rule measured there); at 100000 × 200 (160 MB) under the AVX2 cap,
/// without the prefetch (this rule) against with it, three runs each in alternation, the two
/// did not separate: least squares 1.09–1.19× against 1.30×, logistic 1.20–1.56× against
/// 1.23–1.24×, log-sum-exp 1.03–1.41× against 1.15–1.17×.
pub(crate) fn cpu_weaves() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        crate::cpu::avx2()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The dot products z_r ← a_rᵀx of `rows` (rows of `at`) as `at`'s pipelined passes compute
/// them, to the bit: row after row by [`dot_avx2`] where the passes weave short rows
/// ([`weaves_short`] on this CPU), else [`dots_block`] (whose long rows are `dot_avx2`'s
/// too). For a pass that reuses scores kept from a pipelined pass, or checks them.
pub(crate) fn pass_dots(at: &AlignedT, rows: &[f64], x: &[f64], z: &mut [f64]) {
    let n = at.pitch();
    #[cfg(target_arch = "x86_64")]
    if weaves_short(n, at.len() * std::mem::size_of::<f64>()) && cpu_weaves() {
        // SAFETY: the CPU has AVX2 and FMA (`cpu_weaves`)
        return unsafe { dots_rows_avx2(rows, &x[..n], z) };
    }
    dots_block(rows, n, x, z)
}

/// z ← Ax over all the rows of `at` by [`pass_dots`] (so each zᵢ is the fused pass's to the
/// bit), the rows split between two threads as the fused pass splits them. x is padded to the
/// pitch; z has m entries.
pub(crate) fn pass_dots_all(at: &AlignedT, x: &[f64], z: &mut [f64]) {
    let (pitch, m) = at.shape();
    if m >= 2 && splits(at.len(), PARALLEL_MIN_ENTRIES) {
        let mid = split_point(m);
        let (z1, z2) = z.split_at_mut(mid);
        let (r1, r2) = at.as_slice().split_at(mid * pitch);
        rayon::join(|| pass_dots(at, r1, x, z1), || pass_dots(at, r2, x, z2));
    } else {
        pass_dots(at, at.as_slice(), x, z);
    }
}

/// Whether the woven short rows ([`woven_short`]: [`woven_short_rows`] on AVX-512, else
/// [`woven_short_rows_avx2`]) take `at`'s rows with this x and g: [`weaves_short`], x and g
/// (unless empty) at least the pitch long, on a CPU with AVX2 and FMA. A
/// pass and the same pass without its gradient take the same path, as for [`takes_near`].
#[cfg(target_arch = "x86_64")]
#[inline]
fn takes_short_woven(at: &AlignedT, x: &[f64], g: &[f64]) -> bool {
    let n = at.pitch();
    weaves_short(n, at.len() * std::mem::size_of::<f64>())
        && x.len() >= n
        && (g.is_empty() || g.len() >= n)
        && cpu_weaves()
}

/// Rows lo..hi of A ([`takes_short_woven`]) in blocks of four, as long rows go: each block's
/// dot products one row after another ([`dot_avx2`]), `coef(start, z, g)`, then its axpys woven
/// into the next block's dot products ([`woven_rows`]), or, for a block of fewer than four
/// rows (the end of the range) or without g, one step after the other. Every dot product and
/// gⱼ is the same to the bit as from [`dot_avx2`] on each row and [`axpys_block`] on each
/// block.
///
/// # Safety
/// The CPU has AVX2, FMA and AVX-512 F and VL, and `takes_short_woven(at, x, g)` holds.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512vl")]
unsafe fn woven_short_rows<F>(at: &AlignedT, lo: usize, hi: usize, x: &[f64], g: &mut [f64], coef: F)
where
    F: FnMut(usize, &mut [f64], &mut [f64]),
{
    let n = at.pitch();
    // SAFETY: the CPU has the features (this function's); `next` and `cur` hold four rows of n
    // entries (blocks of the same size, four but for the last), z and c four, x and g at least
    // n, n a multiple of 8 (the caller's `takes_short_woven`)
    let weave = |next: &[f64], z: &mut [f64], cur: &[f64], c: &[f64], g: &mut [f64]| unsafe {
        woven_rows(next, z, x, cur, c, g, n)
    };
    // SAFETY: the CPU has AVX2 and FMA (this function's)
    unsafe { woven_short_with(at, lo, hi, x, g, coef, weave) }
}

/// The pipeline of [`woven_short_rows`] and [`woven_short_rows_avx2`], with their weave,
/// inlined into each: blocks of four rows, each row's dot product by [`dots_rows_avx2`].
///
/// # Safety
/// The CPU has AVX2 and FMA, and x holds at least the pitch.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn woven_short_with<F, W>(
    at: &AlignedT,
    lo: usize,
    hi: usize,
    x: &[f64],
    g: &mut [f64],
    coef: F,
    weave: W,
) where
    F: FnMut(usize, &mut [f64], &mut [f64]),
    W: FnMut(&[f64], &mut [f64], &[f64], &[f64], &mut [f64]),
{
    let x = &x[..at.pitch()];
    block_pipeline(
        (at, lo, hi, 4),
        g,
        coef,
        // SAFETY: the CPU has AVX2 and FMA (the caller's)
        |block, z| unsafe { dots_rows_avx2(block, x, z) },
        weave,
    );
}

/// [`woven_short_rows`] with [`woven_rows_avx2`], for a CPU with AVX2 and FMA but not AVX-512
/// (or under `GRADFIT_CPU=avx2`): the same blocks, dot products and order, so the same bits.
///
/// # Safety
/// The CPU has AVX2 and FMA, and `takes_short_woven(at, x, g)` holds.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn woven_short_rows_avx2<F>(at: &AlignedT, lo: usize, hi: usize, x: &[f64], g: &mut [f64], coef: F)
where
    F: FnMut(usize, &mut [f64], &mut [f64]),
{
    let n = at.pitch();
    // SAFETY: as in `woven_short_rows`, with AVX2 and FMA (this function's)
    let weave = |next: &[f64], z: &mut [f64], cur: &[f64], c: &[f64], g: &mut [f64]| unsafe {
        woven_rows_avx2(next, z, x, cur, c, g, n, true)
    };
    // SAFETY: the CPU has AVX2 and FMA (this function's)
    unsafe { woven_short_with(at, lo, hi, x, g, coef, weave) }
}

/// [`woven_short_rows`] where the CPU has AVX-512 (and it is in use), else
/// [`woven_short_rows_avx2`].
///
/// # Safety
/// The CPU has AVX2 and FMA, and `takes_short_woven(at, x, g)` holds.
#[cfg(target_arch = "x86_64")]
#[inline]
unsafe fn woven_short<F>(at: &AlignedT, lo: usize, hi: usize, x: &[f64], g: &mut [f64], coef: F)
where
    F: FnMut(usize, &mut [f64], &mut [f64]),
{
    if has_avx512() {
        // SAFETY: the CPU has AVX-512 F and VL too (checked above); the rest is the caller's
        unsafe { woven_short_rows(at, lo, hi, x, g, coef) }
    } else {
        // SAFETY: the caller's
        unsafe { woven_short_rows_avx2(at, lo, hi, x, g, coef) }
    }
}

/// Coefficients from dot products four rows at a time ([`pipelined_quads_avx2`]): for rows
/// that fit the registers ([`fits_registers`]), a block at a time between the block's dot
/// products and its axpys ([`Quads::block`]); for the others inside the four-row sweep that
/// computes them, where the per-row function (a logistic loss's exponential, say) runs while
/// the sweep's loads of A wait on the cache.
#[cfg(target_arch = "x86_64")]
pub(crate) trait Quads {
    /// The coefficients of rows row..row + 4 from their dot products z, lane r for row + r.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA.
    unsafe fn quad(&mut self, row: usize, z: std::arch::x86_64::__m256d) -> std::arch::x86_64::__m256d;

    /// The coefficients of rows start..start + z.len() (fewer than four: the end of a range of
    /// rows) from their dot products, in place.
    fn rows(&mut self, start: usize, z: &mut [f64]);

    /// The coefficient of row `row` alone from its dot product z, for a pass that takes rows
    /// one at a time ([`near_rows`], [`near_rows_avx2`]), in order from the start of its range: as `rows` on the
    /// one row unless a type does better. A pass takes every row through `one`, or none: a
    /// type may keep the rows taken alone in lanes that `quad` would overwrite.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn one(&mut self, row: usize, z: f64) -> f64 {
        let mut z = [z];
        self.rows(row, &mut z);
        z[0]
    }

    /// The coefficients of a block's rows start..start + z.len() from their dot products, in
    /// place: as `quad` on each four, then `rows` on the fewer than four left.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn block(&mut self, start: usize, z: &mut [f64]) {
        use std::arch::x86_64::*;
        let whole = z.len() / 4 * 4;
        for (q, z4) in z[..whole].chunks_exact_mut(4).enumerate() {
            // SAFETY: the CPU has AVX2 and FMA (this function's); the load and the store touch
            // the four entries of `z4`
            unsafe {
                let c = self.quad(start + 4 * q, _mm256_loadu_pd(z4.as_ptr()));
                _mm256_storeu_pd(z4.as_mut_ptr(), c);
            }
        }
        if whole < z.len() {
            self.rows(start + whole, &mut z[whole..]);
        }
    }
}

/// The dot products themselves as coefficients, for [`dots_axpys`].
#[cfg(target_arch = "x86_64")]
struct Identity;

#[cfg(target_arch = "x86_64")]
impl Quads for Identity {
    #[inline]
    unsafe fn quad(&mut self, _: usize, z: std::arch::x86_64::__m256d) -> std::arch::x86_64::__m256d {
        z
    }

    #[inline]
    fn rows(&mut self, _: usize, _: &mut [f64]) {}
}

/// [`dots_axpys`] in AVX2 registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dots_axpys_avx2(next: &[f64], z: &mut [f64], x: &[f64], cur: &[f64], c: &[f64], g: &mut [f64], n: usize) {
    sweep_avx2::<true, _>(next, z, x, cur, c, g, n, 0, &mut Identity);
}

/// The sweep of [`dots_axpys`], coefficients from `quads`: the dot products of the rows of
/// `next` (row `row0` onwards) into `out`, turned into coefficients by `quads` four rows at a
/// time; with `AXPY`, in the same loop, g ← g + Σ_r c_r·a_r over the rows of `cur` (as many as
/// `next`'s). Per 4 entries, one load of x and of g, four rows' dot accumulators and four rows'
/// axpys into g; the rows left over (fewer than four) and the entries past the last multiple
/// of 4 as [`axpys_block`] and [`dots_block`] do them, with the same accumulators in the same
/// order, so every dot product and gⱼ is the same to the bit as from the two steps. Without
/// `AXPY`, rows of [`LONG_ROW`] entries or more go one at a time, as in [`dots_block`]; with
/// it, n must be below [`LONG_ROW`] (longer rows take [`woven_long`] or the two steps, whose
/// dot products are one row at a time). Rows reach `quads` once each, in order: `quad` for each four, then
/// `rows` for the fewer than four left.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
#[allow(clippy::too_many_arguments)]
fn sweep_avx2<const AXPY: bool, Q: Quads>(
    next: &[f64],
    out: &mut [f64],
    x: &[f64],
    cur: &[f64],
    c: &[f64],
    g: &mut [f64],
    n: usize,
    row0: usize,
    quads: &mut Q,
) {
    use std::arch::x86_64::*;
    let n = n.max(1);
    let x = &x[..n];
    let n4 = n / 4 * 4;
    let rows = out.len().min(next.len() / n);
    let whole = rows / 4 * 4;
    debug_assert!(
        !AXPY || n < LONG_ROW,
        "the four-row sweep with the axpys is for short rows"
    );
    let (next, out) = (&next[..rows * n], &mut out[..rows]);
    let g: &mut [f64] = if AXPY { &mut g[..n] } else { &mut [] };
    let (cur, c) = if AXPY {
        (&cur[..rows * n], &c[..rows])
    } else {
        (&[][..], &[][..])
    };
    for q in 0..whole / 4 {
        let (first, qn) = (4 * q, &next[4 * q * n..(4 * q + 4) * n]);
        let mut z = [0.0; 4];
        if !AXPY && n >= LONG_ROW {
            for (r, zr) in z.iter_mut().enumerate() {
                *zr = dot_avx2(&qn[r * n..(r + 1) * n], x);
            }
        } else {
            let (px, pg) = (x.as_ptr(), g.as_mut_ptr());
            let pn: [*const f64; 4] = std::array::from_fn(|r| qn[r * n..].as_ptr());
            let qc = if AXPY {
                &cur[4 * q * n..(4 * q + 4) * n]
            } else {
                qn
            };
            let pc: [*const f64; 4] = std::array::from_fn(|r| qc[r * n..].as_ptr());
            let c4: [f64; 4] = std::array::from_fn(|r| if AXPY { c[first + r] } else { 0.0 });
            // SAFETY: every load and store touches entries j..j + 4 with j + 4 ≤ n4 ≤ n of x,
            // of g (with AXPY, when g holds n entries) and of a row of `qn` or `qc` (each holds
            // four rows of n entries), or the four entries of `z`
            unsafe {
                let cv: [__m256d; 4] = std::array::from_fn(|r| _mm256_set1_pd(c4[r]));
                // entries 8i..8i + 4 go to `lo`, 8i + 4..8i + 8 to `hi`, as in `dots_avx2`
                let step = |j: usize, acc: &mut [__m256d; 4]| {
                    let xv = _mm256_loadu_pd(px.add(j));
                    for r in 0..4 {
                        acc[r] = _mm256_fmadd_pd(_mm256_loadu_pd(pn[r].add(j)), xv, acc[r]);
                    }
                    if AXPY {
                        let mut gv = _mm256_loadu_pd(pg.add(j));
                        for r in 0..4 {
                            gv = _mm256_fmadd_pd(cv[r], _mm256_loadu_pd(pc[r].add(j)), gv);
                        }
                        _mm256_storeu_pd(pg.add(j), gv);
                    }
                };
                let (mut lo, mut hi) = ([_mm256_setzero_pd(); 4], [_mm256_setzero_pd(); 4]);
                let mut j = 0;
                while j + 8 <= n4 {
                    step(j, &mut lo);
                    step(j + 4, &mut hi);
                    j += 8;
                }
                if j < n4 {
                    step(j, &mut lo);
                }
                _mm256_storeu_pd(z.as_mut_ptr(), split_sums4(lo, hi));
                for (r, s) in z.iter_mut().enumerate() {
                    for (aj, xj) in qn[r * n + n4..(r + 1) * n].iter().zip(&x[n4..]) {
                        *s = aj.mul_add(*xj, *s);
                    }
                }
            }
            if AXPY {
                for (k, gk) in g.iter_mut().enumerate().skip(n4) {
                    let mut t = *gk;
                    for r in 0..4 {
                        t = c4[r].mul_add(qc[r * n + k], t);
                    }
                    *gk = t;
                }
            }
        }
        // SAFETY: this function's caller has AVX2 and FMA; the store touches the four entries
        // of `out[first..first + 4]` (first + 4 ≤ whole ≤ rows)
        unsafe {
            let cq = quads.quad(row0 + first, _mm256_set_pd(z[3], z[2], z[1], z[0]));
            _mm256_storeu_pd(out.as_mut_ptr().add(first), cq);
        }
    }
    if AXPY {
        axpys_avx2(&cur[whole * n..], n, &c[whole..], g);
    }
    let rest = &mut out[whole..];
    if !rest.is_empty() {
        for (a, zr) in next[whole * n..].chunks_exact(n).zip(rest.iter_mut()) {
            *zr = dot_avx2(a, x);
        }
        quads.rows(row0 + whole, rest);
    }
}

/// [`pipelined_rows`] with the coefficients from `quads` ([`Quads`]): rows that fit the
/// registers through [`register_sweep`] on a CPU with AVX-512 (each quad's coefficients
/// between the next quad's dot products and the axpys of the one before), else through
/// [`register_rows`] (a block's coefficients between its dot products and its axpys); other
/// rows four at a time inside the sweeps, long rows (blocks of four) through [`woven_long`]
/// where it applies, their coefficients after it, rows of 512 to 1024 entries one at a time
/// ([`near`]: [`near_rows`] or [`near_rows_avx2`], each row's coefficient by [`Quads::one`]),
/// and short rows on large data as long rows ([`woven_short`], [`weaves_short`]). Blocks, order of the sweeps and
/// the dot products' arithmetic as in [`pipelined_rows`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(crate) fn pipelined_quads_avx2<Q: Quads>(
    at: &AlignedT,
    lo: usize,
    hi: usize,
    x: &[f64],
    g: &mut [f64],
    quads: &mut Q,
) {
    if register_sweep(at, lo, hi, x, g, quads) {
        return;
    }
    // SAFETY: this function's caller has AVX2 and FMA
    let mut terms = |start: usize, z: &mut [f64], _: &mut [f64]| unsafe { quads.block(start, z) };
    if register_rows(at, lo, hi, x, g, &mut terms) {
        return;
    }
    if takes_short_woven(at, x, g) {
        // SAFETY: the CPU has the features and the lengths hold (`takes_short_woven`)
        unsafe { woven_short(at, lo, hi, x, g, |start, z, _| quads.block(start, z)) };
        return;
    }
    if takes_near(at.pitch(), x, g) {
        // SAFETY: the CPU has AVX2 and FMA (this function's caller's), and the lengths hold
        // (`takes_near`)
        unsafe { near(at, lo, hi, x, g, |i, z, _| z[0] = quads.one(i, z[0])) };
        return;
    }
    let (n, prefetch) = (at.pitch().max(1), prefetch_woven(at));
    let mut blocks = row_blocks(n, lo, hi);
    let Some((mut start, mut end)) = blocks.next() else {
        return;
    };
    // swapped by reference, as in `pipelined_rows`
    let (mut ca, mut cb) = ([0.0; ROW_BLOCK], [0.0; ROW_BLOCK]);
    let (mut c, mut c_next) = (&mut ca, &mut cb);
    let alone = |next: &[f64], out: &mut [f64], row0: usize, quads: &mut Q| {
        sweep_avx2::<false, Q>(next, out, x, &[], &[], &mut [], n, row0, quads)
    };
    alone(rows_block(at, start, end), &mut c[..end - start], start, quads);
    loop {
        let rows = end - start;
        let cur = rows_block(at, start, end);
        let Some((s2, e2)) = blocks.next() else {
            if !g.is_empty() {
                axpys_avx2(cur, n, &c[..rows], g);
            }
            return;
        };
        let next = rows_block(at, s2, e2);
        if !g.is_empty() && e2 - s2 == rows && n < LONG_ROW {
            sweep_avx2::<true, Q>(next, &mut c_next[..rows], x, cur, &c[..rows], g, n, s2, quads);
        } else if !g.is_empty()
            && e2 - s2 == rows
            && woven_long(next, &mut c_next[..rows], x, cur, &c[..rows], g, n, prefetch)
        {
            // the dot products of `next` woven with the axpys of `cur`, then their coefficients
            // (the same quads in the same order as `alone` hands them)
            // SAFETY: this function's caller has AVX2 and FMA
            unsafe { quads.block(s2, &mut c_next[..rows]) };
        } else {
            if !g.is_empty() {
                axpys_avx2(cur, n, &c[..rows], g);
            }
            alone(next, &mut c_next[..e2 - s2], s2, quads);
        }
        std::mem::swap(&mut c, &mut c_next);
        (start, end) = (s2, e2);
    }
}

/// Rows lo..hi of A through `coef` and into g, pipelined (rows that fit the registers go
/// through [`register_rows`] instead, block after block, unpipelined): z ← (block of A)·x, then
/// `coef(start, z)` turns the block's dot products into its coefficients c in place (and
/// keeps whatever sums it needs), then g ← g + (block)ᵀc, done by [`dots_axpys`] in the same
/// sweep as the next block's dot products. With `g` empty only the dot products and `coef`
/// run. Blocks of [`block_rows`]`(n)` rows, as in [`row_blocks`], except on AVX2 or AVX-512
/// rows of 512 to 1024 entries, a multiple of 8, which go one at a time (`near`, `coef` seeing
/// one row; with g empty too), and rows of 56 to 120 entries, a multiple of 8, of an A of
/// 12 MB or more, which go as long rows, woven in blocks of four (`woven_short`, with g
/// empty too; [`weaves_short`]).
pub(crate) fn pipelined_rows<F>(at: &AlignedT, lo: usize, hi: usize, x: &[f64], g: &mut [f64], mut coef: F)
where
    F: FnMut(usize, &mut [f64], &mut [f64]),
{
    if register_rows(at, lo, hi, x, g, &mut coef) {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if takes_short_woven(at, x, g) {
        // SAFETY: the CPU has the features and the lengths hold (`takes_short_woven`)
        unsafe { woven_short(at, lo, hi, x, g, coef) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if takes_near(at.pitch(), x, g) {
        // SAFETY: the CPU has the features and the lengths hold (`takes_near`)
        unsafe { near(at, lo, hi, x, g, coef) };
        return;
    }
    let (n, prefetch) = (at.pitch().max(1), prefetch_woven(at));
    block_pipeline(
        (at, lo, hi, block_rows(n)),
        g,
        coef,
        |block, z| dots_block(block, n, x, z),
        |next, z, cur, c, g| dots_axpys(next, z, x, cur, c, g, n, prefetch),
    );
}

/// The pipeline of [`pipelined_rows`] over rows lo..hi of `at` in blocks of `step` rows (at
/// most [`ROW_BLOCK`]), with its kernels given: `dots(block, z)` the dot products of a block,
/// `weave(next, z_next, cur, c, g)` the next block's dot products and this one's axpys in one
/// sweep (blocks of the same size). Each block's dot products, then `coef(start, z, g)`, then
/// its axpys woven into the next block's dot products, or, for the last block, a block of
/// another size than the next, or with g empty, one step after the other ([`axpys_block`]).
/// Always inlined, so that in a caller compiled for AVX-512 (`woven_short_rows`) the kernels
/// and `coef` inline with its features: called, logistic's quads cost 40000 × 100 a sixth more
/// time (1.25–1.27× a stream read against 1.07–1.08×; floor bench, one thread pinned, one run).
#[inline(always)]
fn block_pipeline<F, D, W>(
    (at, lo, hi, step): (&AlignedT, usize, usize, usize),
    g: &mut [f64],
    mut coef: F,
    dots: D,
    mut weave: W,
) where
    F: FnMut(usize, &mut [f64], &mut [f64]),
    D: Fn(&[f64], &mut [f64]),
    W: FnMut(&[f64], &mut [f64], &[f64], &[f64], &mut [f64]),
{
    let n = at.pitch().max(1);
    let mut blocks = (lo..hi).step_by(step).map(|s| (s, (s + step).min(hi)));
    let Some((mut start, mut end)) = blocks.next() else {
        return;
    };
    // two buffers, swapped by reference: swapping the arrays copied 1.5 KB a block
    let (mut za, mut zb) = ([0.0; ROW_BLOCK], [0.0; ROW_BLOCK]);
    let (mut z, mut z_next) = (&mut za, &mut zb);
    dots(rows_block(at, start, end), &mut z[..end - start]);
    loop {
        let rows = end - start;
        coef(start, &mut z[..rows], g);
        let cur = rows_block(at, start, end);
        let Some((s2, e2)) = blocks.next() else {
            if !g.is_empty() {
                axpys_block(cur, n, &z[..rows], g);
            }
            return;
        };
        let next = rows_block(at, s2, e2);
        if !g.is_empty() && e2 - s2 == rows {
            weave(next, &mut z_next[..rows], cur, &z[..rows], g);
        } else {
            if !g.is_empty() {
                axpys_block(cur, n, &z[..rows], g);
            }
            dots(next, &mut z_next[..e2 - s2]);
        }
        std::mem::swap(&mut z, &mut z_next);
        (start, end) = (s2, e2);
    }
}

/// The longest row, in 4-entry chunks, that [`register_rows`] takes: x's chunks (or g's) in
/// that many AVX2 registers, with the two dot accumulators, fill 15 of the 16.
#[cfg(target_arch = "x86_64")]
pub(crate) const REGISTER_CHUNKS: usize = 13;

/// Whether [`register_rows`] takes rows of n entries: a multiple of 4, at most
/// 4·[`REGISTER_CHUNKS`] (padding makes the short rows of tall data so, for the problems that
/// pad: [`AlignedT::padded`]).
#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) fn fits_registers(n: usize) -> bool {
    n > 0 && n.is_multiple_of(4) && n / 4 <= REGISTER_CHUNKS
}

/// [`pipelined_rows`] for rows that fit the registers ([`fits_registers`]), block by block
/// (the same blocks): the block's dot products with x held in registers, then `coef`, then
/// its axpys with g held in registers, while the block is in L1. A chunk of A then costs one
/// load for its dot product and one for its axpy, where the four-row sweep ([`dots_axpys`])
/// also loads x, and loads and stores g, once per four rows.
///
/// Every dot product and gⱼ is the same to the bit as from [`dots_block`] and
/// [`axpys_block`]: the same two accumulators (chunks 0, 2, 4, … and 1, 3, 5, …) and the same
/// [`horizontal_sum`] for every group of four rows, [`dot_avx2`] for the fewer than four left
/// at a block's end, and gⱼ grown row after row.
///
/// Measured against the four-row sweep (b3ecd8b's), sides alternating in one run, on
/// logistic 20000 × 50 (padded to 52): L-BFGS solves (8 pairs) 0.86–0.94× the time on one
/// thread over four runs, 0.86–1.03× on two, Newton 0.98–1.0×; the fused pass 1.57× a stream
/// read of A against 1.94–2.0× (`cargo bench --bench floor -- 20000x50`), log-sum-exp 1.59–1.61×
/// against 2.13–2.60×. Two variants lost: the logistic terms of a block inside the next block's
/// dot products (1.75–1.88× a stream read: x no longer fits the registers beside the
/// exponential's), and software prefetches of the next block (1.68–2.04×).
///
/// AVX-512 lost too (this machine, family 25 model 17, has it; the floor bench's fused pass,
/// logistic 20000 × 50, one thread, pinned, against this path's 181–183 µs in the same runs):
/// this path with x and g in 512-bit registers and four rows' sums reduced together, 193–195
/// µs; a software pipeline (a quad's dot products while the previous quad's terms and axpys
/// run), 188 µs, with `Quads::quad` not inlined, so every call spilled the registers; the same
/// a 16-row group at a time, 205 µs; and with a pitch of 56, so that no 64-byte load straddles
/// two lines, 210 µs. Backing A with transparent huge pages (`madvise`) left L-BFGS solves
/// unchanged (best 0.998× and 1.001×, medians 1.011× and 1.001×, over ten alternating runs,
/// twice).
///
/// With AVX-512's 32 registers but AVX2's arithmetic, a pass whose coefficients come four rows
/// at a time ([`Quads`]: logistic's, single-target least squares', the Hessian-vector products)
/// does better still: [`register_sweep`].
///
/// Returns false (having done nothing) when the rows do not fit the registers or the CPU
/// lacks AVX2 and FMA.
pub(crate) fn register_rows<F>(
    at: &AlignedT,
    lo: usize,
    hi: usize,
    x: &[f64],
    g: &mut [f64],
    coef: &mut F,
) -> bool
where
    F: FnMut(usize, &mut [f64], &mut [f64]),
{
    #[cfg(target_arch = "x86_64")]
    {
        let n = at.pitch();
        if fits_registers(n) && crate::cpu::avx2() {
            macro_rules! chunks {
                ($($v:literal)*) => {
                    match n / 4 {
                        // SAFETY: the CPU has AVX2 and FMA (checked above), and the rows have
                        // 4·V entries
                        $($v => unsafe { register_rows_avx2::<$v, F>(at, lo, hi, x, g, coef) },)*
                        _ => return false,
                    }
                };
            }
            // the arms of `chunks!` below cover 1..=REGISTER_CHUNKS
            const _: () = assert!(REGISTER_CHUNKS == 13);
            chunks!(1 2 3 4 5 6 7 8 9 10 11 12 13);
            return true;
        }
    }
    let _ = (at, lo, hi, x, g, coef);
    false
}

/// [`pipelined_quads_avx2`] in one sweep over rows lo..hi that fit the registers
/// ([`fits_registers`]), on a CPU with AVX-512 (F and VL): for each four rows, their dot
/// products (x in V registers, as in [`register_dots`]), then the coefficients of the four
/// before them ([`Quads::quad`]), then the axpys of the four before those into g (each chunk of
/// g loaded and stored once per four rows). The arithmetic is AVX2's, in 256-bit registers; the
/// AVX-512 registers ymm16–ymm31 only give the compiler room to keep x's chunks, the dot
/// accumulators and the exponential's terms in registers at once. So the exponential of one
/// quad runs while the next quad's rows arrive from the cache, where [`register_rows`] runs
/// them one block after another: dot products (waiting on the cache), then the exponentials
/// (waiting on their own latency), then the axpys.
///
/// Every dot product, every call of `quads` (the same quads in the same order, then
/// [`Quads::rows`] on the fewer than four rows at the end) and every gⱼ is the same to the bit
/// as from [`register_rows`] with [`Quads::block`]: the same [`register_dot_lanes`] and
/// [`horizontal_sums4`] per four rows, [`dot_avx2`] for the rows past the last four, and gⱼ
/// grown row after row.
///
/// Measured on AMD EPYC (Zen 4), logistic 20000 × 50 (padded to 52), one thread pinned:
/// - one cost and gradient, best of 2000, three runs in alternation with the build before:
///   152.2–153.9 µs against 176.3–176.6 µs for [`register_rows`];
/// - L-BFGS on the peer comparison's logistic case (24 evaluations), best of ten alternating
///   runs, twice: 0.86× and 0.87× the time (3.79 ms against 4.43 ms); on two threads 0.84×;
///   Newton, whose time goes to the Hessian, unchanged;
/// - variants: the exponentials interleaved with the dot products but the axpys left a block
///   at a time, 158–159 µs where this sweep took 151–152 µs in the same runs; this sweep in
///   AVX2's 16 registers alone, 167–175 µs (x's chunks spilled); two quads' exponentials issued
///   side by side, or two rows' dot products, or software prefetches of the next block in the
///   block-at-a-time order, gained nothing or lost. In that order each phase stalls on its own
///   (the dot products on the cache, the exponentials on their latency, about 32 cycles a row
///   in all, as in L2 as in L3): it lacked overlap between the phases, not parallelism within
///   one;
/// - the four rows' sums reduced together ([`horizontal_sums4`]: nine vector operations)
///   rather than each by [`horizontal_sum`] and the four gathered into a vector through memory:
///   L-BFGS as above, best of ten, eight runs in alternation with the build before, 3.45–3.56
///   ms (median 3.48) against 3.81–4.64 ms (median 3.89), 0.89×.
///
/// Returns false (having done nothing) when the rows do not fit the registers or the CPU
/// lacks AVX-512 F and VL (or AVX2 and FMA).
#[cfg(target_arch = "x86_64")]
fn register_sweep<Q: Quads>(
    at: &AlignedT,
    lo: usize,
    hi: usize,
    x: &[f64],
    g: &mut [f64],
    quads: &mut Q,
) -> bool {
    let n = at.pitch();
    if !(fits_registers(n) && crate::cpu::avx2() && has_avx512()) {
        return false;
    }
    macro_rules! chunks {
        ($($v:literal)*) => {
            match n / 4 {
                // SAFETY: the CPU has AVX2, FMA, AVX-512 F and VL (checked above), and the rows
                // have 4·V entries
                $($v => unsafe { register_sweep_avx512::<$v, Q>(at, lo, hi, x, g, quads) },)*
                _ => return false,
            }
        };
    }
    // the arms of `chunks!` below cover 1..=REGISTER_CHUNKS
    const _: () = assert!(REGISTER_CHUNKS == 13);
    chunks!(1 2 3 4 5 6 7 8 9 10 11 12 13);
    true
}

/// [`register_sweep`] for rows of 4·V entries.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512vl")]
fn register_sweep_avx512<const V: usize, Q: Quads>(
    at: &AlignedT,
    lo: usize,
    hi: usize,
    x: &[f64],
    g: &mut [f64],
    quads: &mut Q,
) {
    use std::arch::x86_64::*;
    let n = 4 * V;
    debug_assert_eq!(at.pitch(), n);
    let (x, rows) = (&x[..n], rows_block(at, lo, hi));
    let quad_count = (hi - lo) / 4;
    let axpys = !g.is_empty();
    let g = if axpys { &mut g[..n] } else { g };
    // the quads' coefficients, two at a time: quad q's in slot q % 2
    let mut c = [[0.0f64; 4]; 2];
    // SAFETY: every load reads entries 4k..4k + 4 (k < V) of x, of g (n entries when not
    // empty) or of one of the rows 4q..4q + 4 (q < quad_count) of `rows`, and every store
    // writes four entries of g or of `c`
    unsafe {
        let xv: [__m256d; V] = std::array::from_fn(|k| _mm256_loadu_pd(x.as_ptr().add(4 * k)));
        let mut before = _mm256_setzero_pd();
        for q in 0..quad_count + 2 {
            let mut dots = _mm256_setzero_pd();
            if q < quad_count {
                let p = rows.as_ptr().add(4 * q * n);
                // loops, not `array::from_fn`: a closure would not take this function's target
                // features, and neither `register_dot_lanes` nor an intrinsic would be inlined
                // in it
                let mut d = [_mm256_setzero_pd(); 4];
                for (r, dr) in d.iter_mut().enumerate() {
                    *dr = register_dot_lanes::<V>(p.add(r * n), &xv);
                }
                dots = horizontal_sums4(d);
            }
            if (1..=quad_count).contains(&q) {
                let coef = quads.quad(lo + 4 * (q - 1), before);
                _mm256_storeu_pd(c[(q - 1) % 2].as_mut_ptr(), coef);
            }
            if q >= 2 && axpys {
                let (p, pg) = (rows.as_ptr().add(4 * (q - 2) * n), g.as_mut_ptr());
                let cs = &c[q % 2];
                let cq = [
                    _mm256_set1_pd(cs[0]),
                    _mm256_set1_pd(cs[1]),
                    _mm256_set1_pd(cs[2]),
                    _mm256_set1_pd(cs[3]),
                ];
                for k in 0..V {
                    let mut gk = _mm256_loadu_pd(pg.add(4 * k));
                    for (r, cr) in cq.iter().enumerate() {
                        gk = _mm256_fmadd_pd(*cr, _mm256_loadu_pd(p.add(r * n + 4 * k)), gk);
                    }
                    _mm256_storeu_pd(pg.add(4 * k), gk);
                }
            }
            before = dots;
        }
    }
    let whole = 4 * quad_count;
    if whole < hi - lo {
        let (tail, mut z) = (&rows[whole * n..], [0.0; 4]);
        let z = &mut z[..hi - lo - whole];
        for (row, zr) in tail.chunks_exact(n).zip(z.iter_mut()) {
            *zr = dot_avx2(row, x);
        }
        quads.rows(lo + whole, z);
        if axpys {
            register_axpys::<V>(tail, z, g);
        }
    }
}

/// [`register_rows`] for rows of 4·V entries, in AVX2 registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
fn register_rows_avx2<const V: usize, F>(
    at: &AlignedT,
    lo: usize,
    hi: usize,
    x: &[f64],
    g: &mut [f64],
    coef: &mut F,
) where
    F: FnMut(usize, &mut [f64], &mut [f64]),
{
    let n = 4 * V;
    debug_assert_eq!(at.pitch(), n);
    let mut z = [0.0; ROW_BLOCK];
    for (start, end) in row_blocks(n, lo, hi) {
        let rows = end - start;
        let block = rows_block(at, start, end);
        register_dots::<V>(block, x, &mut z[..rows]);
        coef(start, &mut z[..rows], g);
        if !g.is_empty() {
            register_axpys::<V>(block, &z[..rows], g);
        }
    }
}

/// The dot products of a block's rows (4·V entries each) with x, x held in V registers: each
/// row's chunks 0, 2, 4, … into one accumulator and 1, 3, 5, … into another, then
/// [`horizontal_sum`] (four rows' at once, [`horizontal_sums4`]), as [`dots_block`] does four
/// rows at a time; the fewer than four rows left by [`dot_avx2`], as there.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
fn register_dots<const V: usize>(block: &[f64], x: &[f64], z: &mut [f64]) {
    use std::arch::x86_64::*;
    let n = 4 * V;
    let (x, whole) = (&x[..n], z.len() / 4 * 4);
    // SAFETY: every load reads entries 4k..4k + 4 (k < V) of x or of a row of `block`, each of
    // n = 4V entries, and every store writes four entries of z[..whole]
    unsafe {
        let xv: [__m256d; V] = std::array::from_fn(|k| _mm256_loadu_pd(x.as_ptr().add(4 * k)));
        for (quad, z4) in block[..whole * n]
            .chunks_exact(4 * n)
            .zip(z[..whole].chunks_exact_mut(4))
        {
            let p = quad.as_ptr();
            let sums = horizontal_sums4([
                register_dot_lanes::<V>(p, &xv),
                register_dot_lanes::<V>(p.add(n), &xv),
                register_dot_lanes::<V>(p.add(2 * n), &xv),
                register_dot_lanes::<V>(p.add(3 * n), &xv),
            ]);
            _mm256_storeu_pd(z4.as_mut_ptr(), sums);
        }
    }
    for (row, zr) in block[whole * n..].chunks_exact(n).zip(&mut z[whole..]) {
        *zr = dot_avx2(row, x);
    }
}

/// The four lanes whose sum ([`horizontal_sum`]) is aᵀx, for a row a of 4·V entries at `p`,
/// x's chunks in `xv` ([`register_dots`]): the even chunks' products in one accumulator, the
/// odd ones' in another, and the two added.
///
/// # Safety
/// p points to 4·V entries.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn register_dot_lanes<const V: usize>(
    p: *const f64,
    xv: &[std::arch::x86_64::__m256d; V],
) -> std::arch::x86_64::__m256d {
    use std::arch::x86_64::*;
    let (mut even, mut odd) = (_mm256_setzero_pd(), _mm256_setzero_pd());
    for (k, xk) in xv.iter().enumerate() {
        // SAFETY: 4k + 4 ≤ 4V entries past p (the caller's)
        let a = unsafe { _mm256_loadu_pd(p.add(4 * k)) };
        if k % 2 == 0 {
            even = _mm256_fmadd_pd(a, *xk, even);
        } else {
            odd = _mm256_fmadd_pd(a, *xk, odd);
        }
    }
    _mm256_add_pd(even, odd)
}

/// g ← g + Σ_r c_r·a_r over a block's rows (4·V entries each), g held in V registers and
/// grown row after row, as [`axpys_block`] does.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
fn register_axpys<const V: usize>(block: &[f64], c: &[f64], g: &mut [f64]) {
    use std::arch::x86_64::*;
    let n = 4 * V;
    let g = &mut g[..n];
    // SAFETY: every load and store touches entries 4k..4k + 4 (k < V) of g or of a row of
    // `block`, each of n = 4V entries
    unsafe {
        let mut gv: [__m256d; V] = std::array::from_fn(|k| _mm256_loadu_pd(g.as_ptr().add(4 * k)));
        for (row, cr) in block.chunks_exact(n).zip(c) {
            let (p, cv) = (row.as_ptr(), _mm256_set1_pd(*cr));
            for (k, gk) in gv.iter_mut().enumerate() {
                *gk = _mm256_fmadd_pd(cv, _mm256_loadu_pd(p.add(4 * k)), *gk);
            }
        }
        for (k, gk) in gv.iter().enumerate() {
            _mm256_storeu_pd(g.as_mut_ptr().add(4 * k), *gk);
        }
    }
}

/// The most rows in a block where a per-row transcendental sits between a dot product and an
/// axpy: the block's rows stay in L1 while its exponentials run vectorized (see
/// `crate::vmath`; logistic on AVX2 takes them four rows at a time, [`Quads`], in the same
/// blocks).
pub(crate) const ROW_BLOCK: usize = 64;

/// Entries of A in a block of rows shorter than [`LONG_ROW`]: 16 KB, half the L1 data cache.
/// Measured against 32 KB (64 rows of 52 entries; 36 rows now), one thread pinned, floor bench,
/// 20000 × 50, two runs each in alternation on AMD EPYC (Zen 4): logistic's fused pass 178 µs
/// against 183, log-sum-exp 183 against 189–249, least squares 247–251 against 253–355,
/// softmax (k = 10) 1.59–1.60 ms against 1.52–1.65 (three runs each); an 8 KB budget lost
/// for log-sum-exp (201 µs).
const BLOCK_ENTRIES: usize = 2048;

/// Rows in a block of rows of [`LONG_ROW`] entries or more (but see [`WIDE_BLOCK_ROWS`]): four,
/// the blocks the woven kernel takes (`woven_long`). They came from a budget of 1024 entries
/// (8 KB: four rows of 200), under which rows of exactly 128 entries had blocks of eight and
/// went the two steps. With four, woven (the loop for any n, `woven_rows`), against eight,
/// floor bench, one thread
/// pinned, two runs each in alternation (least squares, logistic, log-sum-exp): 32000 × 128
/// 1.22×, 1.52–1.56×, 1.34–1.35× a stream read against 1.26–1.35×, 1.59–1.67×, 1.51–1.56×;
/// 100000 × 128 1.14–1.21×, 1.28–1.39×, 1.15–1.28× against 1.21–1.48×, 1.18–1.47×,
/// 1.24–1.56×. The loops unrolled for 128 (`woven_avx512`, which does not prefetch past 64 MB)
/// lost at 100000 × 128 (1.57–2.09×).
///
/// The 1024-entry budget, measured on AMD EPYC (Zen 4), one thread pinned, floor bench (fused pass
/// against a stream read, in pairs), against the earlier 32 KB budget (20 rows of 200): least
/// squares 100000 × 200 1.11–1.16× a stream read where it was 1.50–1.54×, logistic 20000 × 200
/// 1.28–1.35× where it was 1.66–1.73×; a 16 KB budget (8 rows) fell between (1.16–1.27×,
/// 1.34–1.45×). On the earlier machine the 32 KB budget had won. For rows of 50 entries the smaller
/// budgets lost (log-sum-exp 20000 × 50 1.06× the time at 8 KB, 1.30× at 4 KB) or gained little
/// (logistic and least squares 0.97×): short rows have [`BLOCK_ENTRIES`]. Two threads (unpinned,
/// the other tenant busy: stream reads ranged 2.8–7.8 ms at 100000 × 200) showed no difference
/// either way between two runs of each.
const LONG_BLOCK_ROWS: usize = 4;

/// Rows in a block of rows of [`WIDE_MIN`] to [`WIDE_MAX`] entries (where a pass takes blocks:
/// on AVX2 or AVX-512 the pipelined passes take rows up to 1024 entries, a multiple of 8, one
/// at a time, `near`): sixteen (128 KB at 1000 entries, in L2), whose axpys on AVX-512 load
/// and store each chunk of g once for all sixteen (`axpys_avx512`). The woven kernel lost on
/// such rows (`woven_long`): the dot products of a block then run alone, one sequential stream
/// from memory, and the axpys after them from L2. Measured on AMD EPYC (Zen 4), floor bench, one
/// thread pinned, two runs each in alternation with blocks of four (least squares, logistic,
/// log-sum-exp): 5000 × 1000 1.37–1.38×, 1.43–1.52×, 1.39–1.41× a stream read against
/// 1.56–1.59×, 1.62×, 1.60×; 5000 × 800 1.42–1.43×, 1.51–1.55×, 1.48–1.53× against 1.58–1.60×,
/// 1.62–1.64×, 1.61–1.62×; 2000 × 2000 1.79–1.82×, 1.69–1.95×, 1.80–1.90× against 2.03–2.10×,
/// 2.01–2.17×, 1.98–2.10×. In a scratch harness (least squares' pass alone, 5000 × 1000),
/// blocks of 8, 12 and 32 rows did about as well as 16 (1.42–1.47×, against 1.55–1.60× for
/// four); weaving a slice of the axpys after each row's dot product lost (1.6–2.7×). Most of the
/// gain is the block's size: the sixteen-row axpys alone, against the quads in the same blocks,
/// gained 3–6% at 5000 × 1000 and nothing at 2000 × 2000 (`axpys_avx512`).
const WIDE_BLOCK_ROWS: usize = 16;

/// The shortest rows that have [`WIDE_BLOCK_ROWS`] to a block, past the 768 entries up to
/// which rows have blocks of four ([`LONG_BLOCK_ROWS`]).
const WIDE_MIN: usize = 769;

/// The longest rows that have [`WIDE_BLOCK_ROWS`] to a block. Past it, where x and g alone fill
/// L1, sixteen rows gained nothing (floor bench, one run each: 500 × 8192 1.89–2.16× against
/// 1.99–2.07×, 1000 × 4000 2.17–2.21× against 1.92–2.18×), and rows keep blocks of four.
const WIDE_MAX: usize = 2048;

/// Rows per block for rows of n entries: up to `ROW_BLOCK`, but at most `BLOCK_ENTRIES`
/// entries of A, so a block read by [`dots_block`] is still in L1 (or at worst L2) when
/// [`axpys_block`] reads it again; a multiple of 4 (the kernels' unroll) where it can be. Rows
/// of `LONG_ROW` entries or more have `LONG_BLOCK_ROWS`, except those from `WIDE_MIN` to
/// `WIDE_MAX`, which have `WIDE_BLOCK_ROWS`.
///
/// On the earlier machine, measured in alternation with an earlier budget of 1024 entries
/// for every row length (8 KB, at most 16 rows), one cost-and-gradient each, 200–400 pairs,
/// one thread: 20000 × 200 (20 rows a block, was 4)
/// 0.89× the time for logistic, 0.92× least squares, 0.88× log-sum-exp; 100000 × 200 the
/// same; 20000 × 50 (64 rows, was 16) logistic 0.93×, least squares and log-sum-exp unchanged;
/// 2000 × 20 0.98×; softmax (k = 5, 10) 0.95–0.96×. Two threads: 0.92–0.99×. Larger blocks
/// (8192 and 16384 entries) were no better.
#[inline]
pub(crate) fn block_rows(n: usize) -> usize {
    if (WIDE_MIN..=WIDE_MAX).contains(&n) {
        return WIDE_BLOCK_ROWS;
    }
    if n >= LONG_ROW {
        return LONG_BLOCK_ROWS;
    }
    (BLOCK_ENTRIES / n.max(1) / 4 * 4).clamp(4, ROW_BLOCK)
}

/// The ranges start..end that cut rows lo..hi into blocks of [`block_rows`]`(n)` rows.
pub(crate) fn row_blocks(n: usize, lo: usize, hi: usize) -> impl Iterator<Item = (usize, usize)> {
    let step = block_rows(n);
    (lo..hi)
        .step_by(step)
        .map(move |start| (start, (start + step).min(hi)))
}

/// Σᵢ wᵢ(aᵢᵀv)aᵢ, the product of Aᵀdiag(w)A with v without forming it: one pass over A, split
/// over two threads like [`fused_rows`]. `spare` is the second thread's buffer. v and out have
/// A's n entries (`features`), padded here to the pitch if A is padded.
///
/// On AVX2 the pass is the fused cost-and-gradient's, [`pipelined_quads_avx2`], the weights
/// applied four rows at a time ([`Weighted`]): rows that fit the registers in one sweep on
/// AVX-512, long rows woven and prefetched. Every entry of out is the same to the bit as from
/// the block pass ([`weighted_gram_rows`]), which it replaced, except where short rows are
/// woven ([`weaves_short`]: their dot products summed as long rows' are, as in the fused
/// pass). Measured against the block pass, `gradfit solve --solver newton-cg --repeat 10`, one
/// thread pinned, best of ten, three or four runs in alternation: logistic (λ = 1) 20000 × 50
/// 6.50–6.62 ms against 8.42–8.56 ms (0.77×), 20000 × 200 26.3–26.5 ms against 34.1–40.6 ms,
/// 2000 × 20 0.26 ms against 0.35 ms; least squares 20000 × 50 with `--gram off` 10.0–10.1 ms
/// against 14.3–14.7 ms.
pub(crate) fn weighted_gram_vec(
    at: &AlignedT,
    w: impl Fn(usize) -> f64 + Sync,
    v: &[f64],
    out: &mut [f64],
    spare: &std::sync::Mutex<Vec<f64>>,
) {
    out.fill(0.0);
    at.with_padded(v, |v| {
        at.with_padded_mut(out, |out| {
            fused_rows(at, out, spare, |lo, hi, g| {
                #[cfg(target_arch = "x86_64")]
                {
                    if crate::cpu::avx2() {
                        // SAFETY: the CPU has AVX2 and FMA (checked above)
                        unsafe { pipelined_quads_avx2(at, lo, hi, v, g, &mut Weighted(&w)) };
                        return 0.0;
                    }
                }
                weighted_gram_rows(at, &w, v, lo, hi, g);
                0.0
            })
        })
    });
}

/// g ← g + Σᵢ wᵢ(aᵢᵀv)aᵢ over rows lo..hi, a block at a time: its dot products
/// ([`dots_block`]), times their weights, then its axpys ([`axpys_block`]). v and g are padded
/// to the pitch.
pub(crate) fn weighted_gram_rows(
    at: &AlignedT,
    w: &impl Fn(usize) -> f64,
    v: &[f64],
    lo: usize,
    hi: usize,
    g: &mut [f64],
) {
    let n = at.pitch();
    let mut z = [0.0; ROW_BLOCK];
    for (start, end) in row_blocks(n, lo, hi) {
        let (block, z) = (rows_block(at, start, end), &mut z[..end - start]);
        dots_block(block, n, v, z);
        for (i, zi) in (start..end).zip(z.iter_mut()) {
            *zi *= w(i);
        }
        axpys_block(block, n, z, g);
    }
}

/// Each row's dot product times its weight, (aᵢᵀv)·wᵢ, for [`weighted_gram_vec`].
#[cfg(target_arch = "x86_64")]
struct Weighted<'w, W>(&'w W);

#[cfg(target_arch = "x86_64")]
impl<W: Fn(usize) -> f64> Quads for Weighted<'_, W> {
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn quad(&mut self, row: usize, z: std::arch::x86_64::__m256d) -> std::arch::x86_64::__m256d {
        use std::arch::x86_64::*;
        let w = self.0;
        _mm256_mul_pd(z, _mm256_set_pd(w(row + 3), w(row + 2), w(row + 1), w(row)))
    }

    fn rows(&mut self, start: usize, z: &mut [f64]) {
        for (i, zi) in (start..).zip(z.iter_mut()) {
            *zi *= (self.0)(i);
        }
    }
}

/// Below this many entries of A (3 MB) a pass over A (the fused cost-and-gradient, a
/// Hessian-vector product, the curvature weights) stays on one thread. Inside a solve a split
/// costs more than in a loop of evaluations back to back: between two evaluations the second
/// thread goes to sleep, and waking it on this virtual machine takes tens of microseconds.
/// Measured here in `gradfit solve --solver lbfgs` (time per evaluation, one thread against
/// two, three or four runs in alternation; `--gram off` for least squares), rows of 50
/// features: 2000 rows (100 000 entries) 16 against 30 µs (logistic) and 13 against 26 µs
/// (least squares); 4000 rows 31 against 45 and 25–33 against 41–52; 6000 rows 44–59 against
/// 54–84 and 36–51 against 54–69; 7000 rows (364 000 entries) 52–78 against 66–67 and 42–46
/// against 36–38; 8000 rows (416 000) 59 against 48–74 and 48 against 39–41; 10 000 rows 73–109
/// against 49–65 and 60–66 against 46–48. (The earlier threshold, 2¹⁶ entries, came from
/// evaluations back to back, where 2000 × 50 took 24 µs on two threads against 39 on one.)
pub(crate) const PARALLEL_MIN_ENTRIES: usize = 3 << 17;

/// Whether a pass of `work` (entries of A, or a Hessian's multiply-adds) is split between two
/// threads: from `threshold` on, when rayon has two. Tests may force a split of small data on
/// their own thread ([`tests::forced_split`]), to reach the two-thread paths cheaply.
pub(crate) fn splits(work: usize, threshold: usize) -> bool {
    #[cfg(test)]
    let forced = tests::FORCE_SPLIT.with(|f| f.get());
    #[cfg(not(test))]
    let forced = false;
    (work >= threshold || forced) && rayon::current_num_threads() >= 2
}

/// Runs `f(lo, hi, g)` (accumulate rows lo..hi into g, return their part of f) over all rows:
/// on one thread for small A, else on two halves at once, the second half accumulating into
/// `spare` (sized once, then reused) before it is added to g.
pub(crate) fn fused_rows<F>(at: &AlignedT, g: &mut [f64], spare: &std::sync::Mutex<Vec<f64>>, f: F) -> f64
where
    F: Fn(usize, usize, &mut [f64]) -> f64 + Sync,
{
    fused_rows_work(at.len(), at, g, spare, f)
}

/// [`fused_rows`] for a pass whose cost is `work` entries of A streamed rather than A's size
/// (more where each entry costs several multiply-adds), compared with [`PARALLEL_MIN_ENTRIES`].
pub(crate) fn fused_rows_work<F>(
    work: usize,
    at: &AlignedT,
    g: &mut [f64],
    spare: &std::sync::Mutex<Vec<f64>>,
    f: F,
) -> f64
where
    F: Fn(usize, usize, &mut [f64]) -> f64 + Sync,
{
    split_rows(work, at, g, spare, f, |f1, f2, g, second| {
        axpy(1.0, second, g);
        f1 + f2
    })
}

/// [`fused_rows_work`] with any partial result: on two threads, `merge(first, second, g, g₂)`
/// combines the halves' results and gradients into g.
pub(crate) fn split_rows<R, F, M>(
    work: usize,
    at: &AlignedT,
    g: &mut [f64],
    spare: &std::sync::Mutex<Vec<f64>>,
    f: F,
    merge: M,
) -> R
where
    R: Send,
    F: Fn(usize, usize, &mut [f64]) -> R + Sync,
    M: FnOnce(R, R, &mut [f64], &[f64]) -> R,
{
    let m = at.ncols();
    if m < 2 || !splits(work, PARALLEL_MIN_ENTRIES) {
        return f(0, m, g);
    }
    let mut guard = match spare.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    };
    guard.clear();
    guard.resize(g.len() + 7, 0.0);
    // the second half's g on a 64-byte boundary, as the first half's is (the long-row kernels
    // store g in 64-byte lines; `AlignedT::with_padded_mut`)
    let skip = guard.as_ptr().align_offset(64).min(7);
    let mid = split_point(m);
    let second: &mut [f64] = &mut guard[skip..skip + g.len()];
    let (f1, f2) = rayon::join(|| f(0, mid, g), || f(mid, m, &mut *second));
    merge(f1, f2, g, second)
}

/// Where two threads split m rows: the middle, rounded down to a multiple of 4 (from 8 rows) so
/// that every row goes through the same kernel path ([`dots_block`] takes rows in fours) with
/// one thread or two, and per-row results agree to the bit.
pub(crate) fn split_point(m: usize) -> usize {
    if m >= 8 {
        m / 2 / 4 * 4
    } else {
        m / 2
    }
}

/// Rows lo..hi of A, contiguous (row i at [(i − lo)·p..], p the pitch).
#[inline]
pub(crate) fn rows_block(at: &AlignedT, lo: usize, hi: usize) -> &[f64] {
    let n = at.pitch().max(1);
    &at.as_slice()[lo * n..hi * n]
}

/// Rows lo..hi of A as slices of `at` (each of the pitch's length, padding included).
#[inline]
pub(crate) fn rows_range(at: &AlignedT, lo: usize, hi: usize) -> std::slice::ChunksExact<'_, f64> {
    let n = at.pitch().max(1);
    at.as_slice()[lo * n..hi * n].chunks_exact(n)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    thread_local! {
        /// Set by [`forced_split`] on a test's thread: [`splits`] then says yes to any work.
        pub(crate) static FORCE_SPLIT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    /// Shapes (m, n) of A that, stored padded as the problems store it, reach every path of a
    /// pass over A: rows through the registers (pitch up to 52, m at least the pitch), the
    /// four-row sweep with the axpys (72; 101 unpadded, m below it, with a tail of n mod 4),
    /// long rows (130 unpadded, m below it; 201 padded to 208: woven on AVX-512), rows of 512
    /// to 1024 entries (600: one at a time on AVX-512), one row, and ragged ends.
    pub(crate) const PASS_SHAPES: [(usize, usize); 12] = [
        (1, 1),
        (7, 3),
        (130, 7),
        (203, 50),
        (64, 13),
        (90, 130),
        (2003, 40),
        (9000, 2),
        (300, 70),
        (100, 101),
        (300, 201),
        (40, 600),
    ];

    /// Whether this CPU has AVX2 and FMA; if not, says on stderr that `what` goes untested.
    pub(crate) fn has_avx2_fma(what: &str) -> bool {
        let yes = crate::cpu::avx2();
        if !yes {
            eprintln!("AVX2 + FMA not in use (CPU or GRADFIT_CPU): {what} not tested");
        }
        yes
    }

    /// Runs `f` with every pass it starts on this thread split between two threads (when rayon
    /// has two), whatever its size, so that tests reach the split paths on small data.
    pub(crate) fn forced_split<R>(f: impl FnOnce() -> R) -> R {
        /// Puts the flag back as it was, on return or on a panic.
        struct Restore(bool);
        impl Drop for Restore {
            fn drop(&mut self) {
                FORCE_SPLIT.with(|s| s.set(self.0));
            }
        }
        let _restore = Restore(FORCE_SPLIT.with(|s| s.replace(true)));
        f()
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn four_horizontal_sums_at_once_are_each_horizontal_sum_to_the_bit() {
        // lanes whose sum depends on the order of the additions (1e16 + 1 − 1e16 + 1 is 0 as
        // (a + b) + (c + d), 1 or 2 in other orders), and others, each lane of
        // `horizontal_sums4` against `horizontal_sum` of its vector
        if !has_avx2_fma("the four-lane sums are") {
            return;
        }
        use std::arch::x86_64::*;
        let lanes: [[f64; 4]; 8] = [
            [1e16, 1.0, -1e16, 1.0],
            [1.0, 1e16, 1.0, -1e16],
            [1e16, -1e16, 1.0, 1.0],
            [0.1, 0.2, 0.3, 0.4],
            [-0.0, -0.0, -0.0, -0.0],
            [1e308, 1e308, -1e308, -1e308],
            [f64::NAN, 1.0, 2.0, 3.0],
            [3.0, -1e-300, 7e15, 0.5],
        ];
        for first in 0..lanes.len() {
            let group: [[f64; 4]; 4] = std::array::from_fn(|r| lanes[(first + r) % lanes.len()]);
            // SAFETY: the CPU has AVX2 and FMA (checked above); each load reads the four entries
            // of one of `group`'s arrays, the store writes the four of `got`
            unsafe {
                let v = [
                    _mm256_loadu_pd(group[0].as_ptr()),
                    _mm256_loadu_pd(group[1].as_ptr()),
                    _mm256_loadu_pd(group[2].as_ptr()),
                    _mm256_loadu_pd(group[3].as_ptr()),
                ];
                let mut got = [0.0; 4];
                _mm256_storeu_pd(got.as_mut_ptr(), horizontal_sums4(v));
                for r in 0..4 {
                    assert_eq!(got[r].to_bits(), horizontal_sum(v[r]).to_bits(), "{:?}", group[r]);
                }
            }
        }
        // the first lanes tell the orders apart: (a + b) + (c + d) = 0, ((a + b) + c) + d = 1,
        // (a + c) + (b + d) = 2
        let a = [1e16, 1.0, -1e16, 1.0];
        // SAFETY: as above
        assert_eq!(unsafe { horizontal_sum(_mm256_loadu_pd(a.as_ptr())) }, 0.0);
        assert_eq!(((a[0] + a[1]) + a[2]) + a[3], 1.0);
        assert_eq!((a[0] + a[2]) + (a[1] + a[3]), 2.0);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn weighted_products_in_the_fused_pass_equal_the_block_pass() {
        // Σᵢ wᵢ(aᵢᵀv)aᵢ through the fused pass's kernels (`Weighted` quads) against the block
        // pass, on A stored as the problems store it (padded), on every path of a pass
        // (`PASS_SHAPES`), row ranges as one thread and two take them. Bit for bit,
        // but for the woven short rows of an A of 12 MB or more (60 padded to 64 on AVX2),
        // whose dot products are summed as long rows' are: there within 1e-13 of the scale.
        // And the whole product (two threads on large data) against nalgebra's Aᵀdiag(w)Av.
        if !has_avx2_fma("the weighted product's fused pass is") {
            return;
        }
        let w = |i: usize| 0.25 + (i % 7) as f64 * 0.5;
        let mut woven_seen = false;
        for (m, n) in PASS_SHAPES.into_iter().chain([(28000, 60)]) {
            let a = crate::Matrix::from_fn(m, n, |i, j| ((i * n + j) as f64 * 0.37).sin());
            let at = AlignedT::padded(&a);
            let v: Vec<f64> = (0..n).map(|j| (j as f64 * 0.7).cos()).collect();
            let pitch = at.pitch();
            let mut vp = vec![0.0; pitch];
            vp[..n].copy_from_slice(&v);
            let woven = takes_short_woven(&at, &vp, &vp);
            woven_seen |= woven;
            let mid = split_point(m);
            for (lo, hi) in [(0, m), (0, mid), (mid, m), (m / 3, m)] {
                let (mut got, mut want) = (vec![0.5; pitch], vec![0.5; pitch]);
                // SAFETY: the CPU has AVX2 and FMA (checked above)
                unsafe { pipelined_quads_avx2(&at, lo, hi, &vp, &mut got, &mut Weighted(&w)) };
                weighted_gram_rows(&at, &w, &vp, lo, hi, &mut want);
                if woven {
                    let scale = (hi - lo) as f64 * n as f64;
                    for (gj, wj) in got.iter().zip(&want) {
                        assert!((gj - wj).abs() <= 1e-13 * scale, "{m}×{n} rows {lo}..{hi}");
                    }
                } else {
                    assert_eq!(got, want, "{m}×{n} rows {lo}..{hi}");
                }
            }
            let mut out = vec![0.0; n];
            weighted_gram_vec(&at, w, &v, &mut out, &std::sync::Mutex::new(Vec::new()));
            let d = crate::Vector::from_fn(m, |i, _| w(i));
            let expect = a.transpose() * d.component_mul(&(&a * crate::Vector::from_column_slice(&v)));
            for (j, (oj, ej)) in out.iter().zip(expect.iter()).enumerate() {
                assert!(
                    (oj - ej).abs() <= 1e-12 * (m as f64) * (n as f64),
                    "{m}×{n}: entry {j}"
                );
            }
        }
        assert_eq!(
            woven_seen,
            cpu_weaves(),
            "the woven short rows taken where the CPU weaves"
        );
    }

    #[test]
    fn portable_and_dispatched_kernels_agree() {
        let x: Vec<f64> = (0..37).map(|i| (i as f64 * 0.7).sin()).collect();
        let y: Vec<f64> = (0..37).map(|i| (i as f64 * 0.3).cos()).collect();
        assert!((dot(&x, &y) - dot_portable(&x, &y)).abs() < 1e-13);
        let (mut a, mut b) = (y.clone(), y.clone());
        axpy(0.5, &x, &mut a);
        axpy_portable(0.5, &x, &mut b);
        assert!(a.iter().zip(&b).all(|(p, q)| (p - q).abs() < 1e-15));
    }

    #[test]
    fn four_row_kernels_match_dots_and_axpys() {
        // the long-row path too (n ≥ LONG_ROW: one row at a time), with and without a remainder
        for (rows, n) in [
            (1, 1),
            (3, 5),
            (4, 4),
            (7, 9),
            (16, 50),
            (13, 3),
            (5, 128),
            (4, 203),
        ] {
            let block: Vec<f64> = (0..rows * n).map(|i| (i as f64 * 0.37).sin()).collect();
            let x: Vec<f64> = (0..n).map(|i| (i as f64 * 0.91).cos()).collect();
            let mut z = vec![0.0; rows];
            dots_block(&block, n, &x, &mut z);
            let mut g: Vec<f64> = (0..n).map(|i| i as f64).collect();
            let mut want_g = g.clone();
            axpys_block(&block, n, &z, &mut g);
            for (r, a) in block.chunks_exact(n).enumerate() {
                let want = dot_portable(a, &x);
                assert!((z[r] - want).abs() < 1e-12, "{rows}×{n} row {r}");
                axpy_portable(want, a, &mut want_g);
            }
            assert!(
                g.iter().zip(&want_g).all(|(a, b)| (a - b).abs() < 1e-12),
                "{rows}×{n}"
            );
        }
    }

    #[test]
    fn long_row_axpys_in_512_bit_registers_equal_the_portable_ones_to_the_bit() {
        #[cfg(target_arch = "x86_64")]
        {
            if !has_avx512() {
                eprintln!(
                    "AVX-512 F and VL not in use (CPU or GRADFIT_CPU): the 512-bit axpys are not tested"
                );
                return;
            }
            // every n mod 8 past LONG_ROW and from WIDE_MIN (the wide rows, sixteen rows to a
            // load of g), and row counts with and without a remainder of four and of sixteen
            for rows in [1, 4, 7, 8, 16, 21, 32] {
                for n in (LONG_ROW..LONG_ROW + 8).chain(WIDE_MIN..WIDE_MIN + 8) {
                    let block: Vec<f64> = (0..rows * n).map(|i| (i as f64 * 0.37).sin()).collect();
                    let c: Vec<f64> = (0..rows).map(|i| 1.0 - 0.3 * i as f64).collect();
                    let g0: Vec<f64> = (0..n).map(|i| 0.1 * i as f64).collect();
                    let (mut g, mut want) = (g0.clone(), g0.clone());
                    // SAFETY: the CPU has AVX-512 F and VL and FMA (checked above)
                    unsafe { axpys_avx512(&block, n, &c, &mut g) };
                    axpys_any::<true>(&block, n, &c, &mut want);
                    assert_eq!(g, want, "{rows}×{n}");
                    // and what the dispatcher runs
                    let mut dispatched = g0.clone();
                    axpys_block(&block, n, &c, &mut dispatched);
                    assert_eq!(dispatched, want, "{rows}×{n}");
                    // against plain axpys, rounding aside
                    let mut plain = g0.clone();
                    for (a, cr) in block.chunks_exact(n).zip(&c) {
                        axpy_portable(*cr, a, &mut plain);
                    }
                    assert!(g.iter().zip(&plain).all(|(a, b)| (a - b).abs() < 1e-12));
                }
            }
        }
    }

    #[test]
    fn one_sweep_equals_the_two_steps_to_the_bit() {
        // every n mod 8 (the lo/hi accumulators and the scalar tail), row counts with and
        // without a remainder of four, and long rows (the woven rows where n is a multiple of 8
        // from 128 to 504 and AVX2 is there, asserted taken, in 256-bit registers too where
        // AVX-512 is; the two steps elsewhere)
        for (rows, n) in [
            (4, 1),
            (16, 50),
            (8, 13),
            (7, 9),
            (5, 4),
            (13, 3),
            (16, 64),
            (4, 130),
            // the woven long rows (a multiple of 8 from 128 to 504: unrolled from 136 to 208, one
            // loop for 128 and past 208) and their neighbours (127, 209, 210; 505 on the two
            // steps, as are 760 to 768)
            (4, 120),
            (4, 160),
            (4, 200),
            (4, 202),
            (4, 312),
            (4, 497),
            (4, 760),
            (4, 768),
        ] {
            for n in [n, n + 1, n + 2, n + 3, n + 5, n + 6, n + 7, n + 8] {
                let next: Vec<f64> = (0..rows * n).map(|i| (i as f64 * 0.37).sin()).collect();
                let cur: Vec<f64> = (0..rows * n).map(|i| (i as f64 * 0.53).cos()).collect();
                let x: Vec<f64> = (0..n).map(|i| (i as f64 * 0.91).cos()).collect();
                let c: Vec<f64> = (0..rows).map(|i| 1.0 - 0.3 * i as f64).collect();
                let g0: Vec<f64> = (0..n).map(|i| 0.1 * i as f64).collect();
                let (mut want_z, mut want_g) = (vec![0.0; rows], g0.clone());
                axpys_block(&cur, n, &c, &mut want_g);
                dots_block(&next, n, &x, &mut want_z);
                // with the woven rows' prefetch and without (it moves no result; rows of 128 and
                // past 208 entries always prefetch)
                let (mut z, mut g) = (vec![0.0; rows], g0.clone());
                for prefetch in [true, false] {
                    (z, g) = (vec![0.0; rows], g0.clone());
                    dots_axpys(&next, &mut z, &x, &cur, &c, &mut g, n, prefetch);
                    assert_eq!(z, want_z, "{rows}×{n}");
                    assert_eq!(g, want_g, "{rows}×{n}");
                    #[cfg(target_arch = "x86_64")]
                    if rows == 4 && n.is_multiple_of(8) && (WOVEN_MIN..=WOVEN_MAX).contains(&n) {
                        let (mut wz, mut wg) = (vec![0.0; rows], g0.clone());
                        let woven = woven_long(&next, &mut wz, &x, &cur, &c, &mut wg, n, prefetch);
                        assert_eq!(woven, cpu_weaves(), "{rows}×{n}: woven where AVX2 is");
                        if woven {
                            assert_eq!((wz, wg), (want_z.clone(), want_g.clone()), "{rows}×{n} woven");
                        } else {
                            eprintln!(
                                "AVX2 + FMA not in use (CPU or GRADFIT_CPU): the woven long rows are not tested"
                            );
                        }
                        // the 256-bit loop too where the 512-bit ones run (woven_long's choice)
                        if woven && has_avx512() {
                            let (mut az, mut ag) = (vec![0.0; rows], g0.clone());
                            // SAFETY: the CPU has AVX2 and FMA (`woven`), the lengths as above
                            unsafe { woven_rows_avx2(&next, &mut az, &x, &cur, &c, &mut ag, n, prefetch) };
                            assert_eq!((az, ag), (want_z.clone(), want_g.clone()), "{rows}×{n} AVX2");
                        }
                    }
                }
                // and both against plain dot products and axpys
                let mut plain_g = g0.clone();
                for (r, (an, ac)) in next.chunks_exact(n).zip(cur.chunks_exact(n)).enumerate() {
                    assert!((z[r] - dot_portable(an, &x)).abs() < 1e-12, "{rows}×{n}");
                    axpy_portable(c[r], ac, &mut plain_g);
                }
                assert!(g.iter().zip(&plain_g).all(|(a, b)| (a - b).abs() < 1e-12));
            }
        }
    }

    #[test]
    fn blocks_hold_the_rows_the_kernels_are_measured_for() {
        // short rows by the 16 KB budget (at most ROW_BLOCK), long rows four (the woven
        // kernel's blocks, 128 included), wide rows sixteen, the widest four again
        for (n, rows) in [
            (1, ROW_BLOCK),
            (50, 40),
            (127, 16),
            (128, 4),
            (200, 4),
            (768, 4),
            (769, 16),
            (2048, 16),
            (2049, 4),
        ] {
            assert_eq!(block_rows(n), rows, "n = {n}");
        }
    }

    #[test]
    fn pipelined_pass_matches_the_plain_pass() {
        // coefficients cᵢ = zᵢ − i: Σ cᵢ aᵢ and Σ cᵢ² against plain dots and axpys, for row
        // ranges that end inside a block and rows short and long (blocks of 64 rows at n = 5 and
        // 13, 40 at n = 50, 4 at n = 200, 16 at n = 801: several blocks, the last ragged; one
        // row at a time at n = 512, 800 and 1024, where AVX2 is: `near`)
        for (m, n) in [
            (150, 5),
            (200, 50),
            (130, 13),
            (50, 200),
            (37, 5),
            (9, 200),
            (3, 7),
            (1, 4),
            (40, 801),
            (13, 512),
            (40, 800),
            (9, 1024),
        ] {
            let at = AlignedT::of(&crate::Matrix::from_fn(m, n, |i, j| {
                ((i * n + j) as f64 * 0.29).sin()
            }));
            let x: Vec<f64> = (0..n).map(|j| (j as f64 * 0.7).cos()).collect();
            for (lo, hi) in [(0, m), (m / 3, m), (0, m / 2 + 1)] {
                let mut g = vec![0.0; n];
                let mut f = 0.0;
                let mut seen = Vec::new();
                pipelined_rows(&at, lo, hi, &x, &mut g, |start, z, _| {
                    for (r, zr) in z.iter_mut().enumerate() {
                        *zr -= (start + r) as f64;
                        f += *zr * *zr;
                        seen.push(start + r);
                    }
                });
                assert_eq!(seen, (lo..hi).collect::<Vec<_>>(), "{m}×{n} rows {lo}..{hi}");
                let (mut want_f, mut want_g) = (0.0, vec![0.0; n]);
                for (i, a) in rows_range(&at, lo, hi).enumerate() {
                    let c = dot_portable(a, &x) - (lo + i) as f64;
                    want_f += c * c;
                    axpy_portable(c, a, &mut want_g);
                }
                assert!((f - want_f).abs() <= 1e-10 * want_f.max(1.0), "{m}×{n}");
                assert!(
                    g.iter().zip(&want_g).all(|(a, b)| (a - b).abs() < 1e-10),
                    "{m}×{n}"
                );
                // with g empty only the dot products run, and f is the same to the bit
                let mut f_only = 0.0;
                pipelined_rows(&at, lo, hi, &x, &mut [], |start, z, _| {
                    for (r, zr) in z.iter().enumerate() {
                        let c = zr - (start + r) as f64;
                        f_only += c * c;
                    }
                });
                assert_eq!(f_only, f, "{m}×{n}");
            }
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn register_rows_equal_the_block_kernels_to_the_bit() {
        // every row length the registers take (4 to 52 entries), rows spanning one block and
        // several with a ragged last one, ranges as one thread and two take them (and an
        // empty one); against `dots_block` and `axpys_block` over the same rows: the scores
        // handed to `coef`, in `row_blocks`' blocks, g as `coef` sees it (every earlier block
        // added) and g at the end
        if !(crate::cpu::avx2()) {
            eprintln!("AVX2 + FMA not in use (CPU or GRADFIT_CPU): the register kernels are not tested");
            return;
        }
        let shift = |i: usize| i as f64 * 0.01;
        for v in 1..=REGISTER_CHUNKS {
            let n = 4 * v;
            for m in [3, 66, 203] {
                let at = AlignedT::of(&crate::Matrix::from_fn(m, n, |i, j| {
                    ((i * n + j) as f64 * 0.31).sin()
                }));
                let x: Vec<f64> = (0..n).map(|j| (j as f64 * 0.7).cos()).collect();
                let mid = split_point(m);
                for (lo, hi) in [(0, m), (0, mid), (mid, m), (1, m), (m, m)] {
                    let block = rows_block(&at, lo, hi);
                    let mut want_z = vec![0.0; hi - lo];
                    dots_block(block, n, &x, &mut want_z);
                    let c: Vec<f64> = (lo..hi).map(|i| want_z[i - lo] - shift(i)).collect();
                    // g after rows lo..end, from 0.5
                    let g_after = |end: usize| {
                        let mut g = vec![0.5; n];
                        axpys_block(rows_block(&at, lo, end), n, &c[..end - lo], &mut g);
                        g
                    };
                    let (mut z, mut seen, mut g) = (Vec::new(), Vec::new(), vec![0.5; n]);
                    let mut coef = |start: usize, zs: &mut [f64], g: &mut [f64]| {
                        assert_eq!(g, g_after(start), "{m}×{n} rows {lo}..{hi}: g before {start}");
                        seen.push((start, start + zs.len()));
                        z.extend_from_slice(zs);
                        for (r, zr) in zs.iter_mut().enumerate() {
                            *zr -= shift(start + r);
                        }
                    };
                    assert!(register_rows(&at, lo, hi, &x, &mut g, &mut coef));
                    let blocks: Vec<_> = row_blocks(n, lo, hi).collect();
                    assert_eq!(seen, blocks, "{m}×{n} rows {lo}..{hi}: blocks");
                    assert_eq!(z, want_z, "{m}×{n} rows {lo}..{hi}: scores");
                    assert_eq!(g, g_after(hi), "{m}×{n} rows {lo}..{hi}: gradient");
                    // the scores alone, g empty
                    let mut again = Vec::new();
                    let mut keep = |_: usize, zs: &mut [f64], _: &mut [f64]| again.extend_from_slice(zs);
                    assert!(register_rows(&at, lo, hi, &x, &mut [], &mut keep));
                    assert_eq!(again, want_z, "{m}×{n} rows {lo}..{hi}: scores alone");
                }
            }
        }
        // rows the registers do not take (not a multiple of 4, or past 52 entries): nothing
        // done
        for n in [3, 6, 56] {
            let at = AlignedT::of(&crate::Matrix::from_element(8, n, 1.0));
            let (x, mut g) = (vec![1.0; n], vec![0.0; n]);
            let mut called = false;
            assert!(
                !register_rows(&at, 0, 8, &x, &mut g, &mut |_, _, _| called = true),
                "n = {n}"
            );
            assert!(!called && g.iter().all(|gj| *gj == 0.0), "n = {n}");
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn register_sweep_equals_register_rows_to_the_bit() {
        // the logistic terms (the `Quads` the sweep serves) over every row length the registers
        // take, rows spanning one block and several, ranges as one thread and two take them,
        // ragged ends and an empty range: the sweep against `register_rows` with
        // `Quads::block`, the scores each hands to `keep`, the loss and g compared bit for bit
        if !(crate::cpu::avx2() && has_avx512()) {
            eprintln!("AVX-512 F and VL not in use (CPU or GRADFIT_CPU): the register sweep is not tested");
            return;
        }
        for v in 1..=REGISTER_CHUNKS {
            let n = 4 * v;
            for m in [3, 66, 203] {
                let at = AlignedT::of(&crate::Matrix::from_fn(m, n, |i, j| {
                    ((i * n + j) as f64 * 0.31).sin() * 3.0
                }));
                let x: Vec<f64> = (0..n).map(|j| (j as f64 * 0.7).cos()).collect();
                let y: Vec<f64> = (0..m).map(|i| (i % 3 == 0) as u8 as f64).collect();
                let mid = split_point(m);
                for (lo, hi) in [(0, m), (0, mid), (mid, m), (1, m), (m, m)] {
                    for with_g in [true, false] {
                        let run = |sweep: bool| {
                            let g0 = if with_g { vec![0.5; n] } else { Vec::new() };
                            // SAFETY: the CPU has AVX2 and FMA (checked above)
                            unsafe {
                                logistic_pass(&y, g0, |quads, g| {
                                    if sweep {
                                        assert!(register_sweep(&at, lo, hi, &x, g, quads));
                                    } else {
                                        let mut terms = |start: usize, z: &mut [f64], _: &mut [f64]| {
                                            quads.block(start, z)
                                        };
                                        assert!(register_rows(&at, lo, hi, &x, g, &mut terms));
                                    }
                                })
                            }
                        };
                        let at_rows = format!("{m}×{n} rows {lo}..{hi}, g {with_g}");
                        assert_same_pass(&run(true), &run(false), &at_rows, hi - lo);
                    }
                }
            }
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn logistic_long_rows_woven_equal_the_block_steps_to_the_bit() {
        // logistic's pass over long rows (the woven path where n = 8·V and AVX2 is there,
        // the two steps elsewhere) against the blocks one step after another: dot products,
        // the quads' coefficients, axpys; the scores handed to `keep`, the loss and g bit for bit
        if !(crate::cpu::avx2()) {
            eprintln!("AVX2 + FMA not in use (CPU or GRADFIT_CPU): the logistic long-row pass is not tested");
            return;
        }
        // 136, 200, 208 (unrolled on AVX-512), 128, 216 and 504 (one loop) woven (blocks of
        // four); 201 and 505 the two steps; 1001 the two steps in blocks of sixteen (rows of
        // 512 to 1024 entries, a multiple of 8, go one at a time: the next test)
        for n in [128, 136, 200, 201, 208, 216, 504, 505, 1001] {
            for m in [3, 9, 50] {
                let at = AlignedT::of(&crate::Matrix::from_fn(m, n, |i, j| {
                    ((i * n + j) as f64 * 0.31).sin() * 0.3
                }));
                let x: Vec<f64> = (0..n).map(|j| (j as f64 * 0.7).cos()).collect();
                let y: Vec<f64> = (0..m).map(|i| (i % 3 == 0) as u8 as f64).collect();
                let mid = split_point(m);
                for (lo, hi) in [(0, m), (0, mid), (mid, m), (1, m)] {
                    let run = |woven: bool| {
                        // SAFETY: the CPU has AVX2 and FMA (checked above)
                        unsafe {
                            logistic_pass(&y, vec![0.5; n], |quads, g| {
                                if woven {
                                    pipelined_quads_avx2(&at, lo, hi, &x, g, quads);
                                } else {
                                    let mut z = [0.0; ROW_BLOCK];
                                    for (start, end) in row_blocks(n, lo, hi) {
                                        let (block, z) = (rows_block(&at, start, end), &mut z[..end - start]);
                                        dots_block(block, n, &x, z);
                                        quads.block(start, z);
                                        axpys_block(block, n, z, g);
                                    }
                                }
                            })
                        }
                    };
                    let at_rows = format!("{m}×{n} rows {lo}..{hi}");
                    assert_same_pass(&run(true), &run(false), &at_rows, hi - lo);
                }
            }
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn rows_taken_alone_equal_the_steps_row_by_row_to_the_bit() {
        // logistic's pass and a pass with cᵢ = zᵢ − i over rows of 512 to 1024 entries (a
        // multiple of 8: `near_rows`, or `near_rows_avx2` without AVX-512) against the steps one
        // row at a time:
        // the dot product, the coefficient, the axpy; the loss, g and the scores kept bit for
        // bit
        if !(crate::cpu::avx2()) {
            eprintln!("AVX2 + FMA not in use (CPU or GRADFIT_CPU): the rows taken alone are not tested");
            return;
        }
        for n in [504, 512, 520, 768, 776, 1000, 1024, 1032] {
            let x: Vec<f64> = (0..n).map(|j| (j as f64 * 0.7).cos()).collect();
            let g: Vec<f64> = vec![0.5; n];
            let near = takes_near(n, &x, &g);
            assert_eq!(near, (512..=1024).contains(&n), "n = {n}");
            if !near {
                continue;
            }
            for m in [3, 9, 70] {
                let at = AlignedT::of(&crate::Matrix::from_fn(m, n, |i, j| {
                    ((i * n + j) as f64 * 0.31).sin() * 0.3
                }));
                let y: Vec<f64> = (0..m).map(|i| (i % 3 == 0) as u8 as f64).collect();
                let mid = split_point(m);
                for (lo, hi) in [(0, m), (0, mid), (mid, m), (1, m)] {
                    let run = |alone: bool| {
                        // SAFETY: the CPU has AVX2 and FMA (checked above)
                        unsafe {
                            logistic_pass(&y, g.clone(), |quads, g| {
                                if alone {
                                    pipelined_quads_avx2(&at, lo, hi, &x, g, quads);
                                } else {
                                    for i in lo..hi {
                                        let (row, mut z) = (rows_block(&at, i, i + 1), [0.0]);
                                        dots_block(row, n, &x, &mut z);
                                        z[0] = quads.one(i, z[0]);
                                        axpys_block(row, n, &z, g);
                                    }
                                }
                            })
                        }
                    };
                    let at_rows = format!("{m}×{n} rows {lo}..{hi}");
                    assert_same_pass(&run(true), &run(false), &at_rows, hi - lo);
                    // the 256-bit rows taken alone too where the pass takes the 512-bit ones
                    if has_avx512() {
                        // SAFETY: the CPU has AVX2 and FMA (checked above); `takes_near` holds
                        let avx2 = unsafe {
                            logistic_pass(&y, g.clone(), |quads, g| {
                                near_rows_avx2(&at, lo, hi, &x, g, |i, z, _| z[0] = quads.one(i, z[0]))
                            })
                        };
                        assert_same_pass(&avx2, &run(false), &format!("{at_rows}, AVX2"), hi - lo);
                    }
                    // the pass with cᵢ = zᵢ − i through `pipelined_rows`
                    let (mut got, mut want) = (g.clone(), g.clone());
                    let (mut f, mut want_f) = (0.0, 0.0);
                    pipelined_rows(&at, lo, hi, &x, &mut got, |start, z, _| {
                        z[0] -= start as f64;
                        f += z[0] * z[0];
                    });
                    for i in lo..hi {
                        let (row, mut z) = (rows_block(&at, i, i + 1), [0.0]);
                        dots_block(row, n, &x, &mut z);
                        z[0] -= i as f64;
                        want_f += z[0] * z[0];
                        axpys_block(row, n, &z, &mut want);
                    }
                    assert_eq!((f.to_bits(), got), (want_f.to_bits(), want), "{at_rows}");
                    // without g (a value alone) the rows go the same way: `coef` sees the same
                    // rows one at a time, and logistic's loss and kept scores are the same to
                    // the bit (a log-sum-exp's shifts and sums follow its `coef` calls)
                    let calls = |mut g: Vec<f64>| {
                        let mut calls = Vec::new();
                        pipelined_rows(&at, lo, hi, &x, &mut g, |start, z, _| {
                            calls.push((start, z.len()))
                        });
                        calls
                    };
                    assert_eq!(calls(g.clone()), calls(Vec::new()), "{at_rows}: without g");
                    assert_eq!(calls(Vec::new()), (lo..hi).map(|i| (i, 1)).collect::<Vec<_>>());
                    // SAFETY: the CPU has AVX2 and FMA (checked above)
                    let alone = unsafe {
                        logistic_pass(&y, Vec::new(), |quads, g| {
                            pipelined_quads_avx2(&at, lo, hi, &x, g, quads)
                        })
                    };
                    let with_g = run(true);
                    assert_eq!((alone.0, &alone.2), (with_g.0, &with_g.2), "{at_rows}: without g");
                }
            }
        }
    }

    #[test]
    fn short_rows_are_woven_only_on_large_data() {
        let big = WOVEN_SHORT_MIN_BYTES;
        assert!(weaves_short(56, big) && weaves_short(120, big) && weaves_short(104, 1 << 30));
        assert!(!weaves_short(104, big - 1), "small data keeps the four-row sweep");
        assert!(!weaves_short(100, big) && !weaves_short(48, big) && !weaves_short(128, big));
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn short_rows_woven_equal_the_steps_to_the_bit() {
        // `woven_short_rows` (called directly: the passes take it only on 12 MB of A or more)
        // against its steps one after the other, block by block: each row's dot_avx2, the
        // coefficients, the block's axpys; the loss, g and the scores kept bit for bit, and
        // without g the same coefficient calls
        if !cpu_weaves() {
            eprintln!("AVX2 + FMA not in use (CPU or GRADFIT_CPU): the woven short rows are not tested");
            return;
        }
        // each variant the CPU runs: 256-bit, and 512-bit where AVX-512 is in use
        for wide in [false].into_iter().chain(has_avx512().then_some(true)) {
            for n in [56, 64, 104, 120] {
                let x: Vec<f64> = (0..n).map(|j| (j as f64 * 0.7).cos()).collect();
                for m in [3, 9, 50] {
                    let at = AlignedT::of(&crate::Matrix::from_fn(m, n, |i, j| {
                        ((i * n + j) as f64 * 0.31).sin() * 0.3
                    }));
                    let y: Vec<f64> = (0..m).map(|i| (i % 3 == 0) as u8 as f64).collect();
                    for (lo, hi) in [(0, m), (0, split_point(m)), (split_point(m), m), (1, m)] {
                        let at_rows = format!("{m}×{n} rows {lo}..{hi}");
                        let steps = |quads: &mut crate::vmath::LogisticQuads<'_, '_>, g: &mut [f64]| {
                            for start in (lo..hi).step_by(4) {
                                let end = (start + 4).min(hi);
                                let block = rows_block(&at, start, end);
                                let mut z = [0.0; 4];
                                let z = &mut z[..end - start];
                                for (a, zr) in block.chunks_exact(n).zip(z.iter_mut()) {
                                    // SAFETY: the CPU has AVX2 and FMA (checked above)
                                    *zr = unsafe { dot_avx2(a, &x) };
                                }
                                // SAFETY: as above
                                unsafe { quads.block(start, z) };
                                if !g.is_empty() {
                                    axpys_block(block, n, z, g);
                                }
                            }
                        };
                        for g0 in [vec![0.5; n], Vec::new()] {
                            // SAFETY: the CPU has AVX2 and FMA (checked above), AVX-512 F and
                            // VL where `wide` (has_avx512), and the lengths hold
                            let woven = unsafe {
                                logistic_pass(&y, g0.clone(), |quads, g| {
                                    woven_short_variant(wide, &at, lo, hi, &x, g, |s, z, _| quads.block(s, z))
                                })
                            };
                            // SAFETY: as above
                            let want = unsafe { logistic_pass(&y, g0.clone(), steps) };
                            assert_same_pass(&woven, &want, &at_rows, hi - lo);
                        }
                        // the coefficient calls: blocks of four from lo, with g and without
                        let calls = |mut g: Vec<f64>| {
                            let mut calls = Vec::new();
                            // SAFETY: as above
                            unsafe {
                                woven_short_variant(wide, &at, lo, hi, &x, &mut g, |s, z, _| {
                                    calls.push((s, z.len()))
                                })
                            };
                            calls
                        };
                        let want: Vec<_> = (lo..hi).step_by(4).map(|s| (s, (hi - s).min(4))).collect();
                        assert_eq!(calls(vec![0.5; n]), want, "{at_rows}");
                        assert_eq!(calls(Vec::new()), want, "{at_rows}: without g");
                    }
                }
            }
        }
    }

    /// [`woven_short_rows`] (`wide`) or [`woven_short_rows_avx2`].
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA (and AVX-512 F and VL if `wide`), and the lengths hold.
    #[cfg(target_arch = "x86_64")]
    unsafe fn woven_short_variant<F>(
        wide: bool,
        at: &AlignedT,
        lo: usize,
        hi: usize,
        x: &[f64],
        g: &mut [f64],
        coef: F,
    ) where
        F: FnMut(usize, &mut [f64], &mut [f64]),
    {
        // SAFETY: the caller's
        unsafe {
            match wide {
                true => woven_short_rows(at, lo, hi, x, g, coef),
                false => woven_short_rows_avx2(at, lo, hi, x, g, coef),
            }
        }
    }

    /// A logistic pass's loss and g, to the bit, and the scores `keep` saw, in order.
    #[cfg(target_arch = "x86_64")]
    type PassBits = (u64, Vec<u64>, Vec<(usize, Vec<f64>)>);

    /// The logistic terms (labels y) through `pass`, given the quads and g (starting at g0).
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    unsafe fn logistic_pass(
        y: &[f64],
        g0: Vec<f64>,
        pass: impl FnOnce(&mut crate::vmath::LogisticQuads<'_, '_>, &mut [f64]),
    ) -> PassBits {
        let mut g = g0;
        let mut kept = Vec::new();
        let mut keep = |row: usize, z: &[f64]| kept.push((row, z.to_vec()));
        // SAFETY: the CPU has AVX2 and FMA (this function's contract)
        let mut quads = unsafe { crate::vmath::LogisticQuads::new(y, Some(&mut keep)) };
        pass(&mut quads, &mut g);
        // SAFETY: as above
        let f = unsafe { quads.total() };
        (f.to_bits(), g.iter().map(|v| v.to_bits()).collect(), kept)
    }

    /// Two passes the same to the bit, over `rows` rows.
    #[cfg(target_arch = "x86_64")]
    fn assert_same_pass(a: &PassBits, b: &PassBits, at_rows: &str, rows: usize) {
        assert_eq!(a.2, b.2, "{at_rows}: scores");
        assert_eq!(a.0, b.0, "{at_rows}: loss");
        assert_eq!(a.1, b.1, "{at_rows}: gradient");
        assert_eq!(a.2.iter().map(|(_, z)| z.len()).sum::<usize>(), rows);
    }

    #[test]
    fn dot_and_axpy_match_by_hand() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let y = [1.0, 1.0, 1.0, 1.0, 2.0];
        assert_eq!(dot(&x, &y), 20.0);
        let mut z = [0.0; 5];
        axpy(2.0, &x, &mut z);
        assert_eq!(z, [2.0, 4.0, 6.0, 8.0, 10.0]);
    }
}
