//! Row kernels for data stored row-contiguous (the transpose Aᵀ, n×m, column-major), so that
//! one fused pass reads each row aᵢ once and uses it twice while it is in L1: rᵢ = aᵢᵀx − bᵢ,
//! then g += rᵢaᵢ.

use nalgebra::{Dyn, MatrixView};

use crate::Matrix;

/// xᵀy: with AVX2 and FMA when the CPU has them (checked at run time, cached by std), else
/// portable code the compiler vectorizes for the baseline target. Either way four independent
/// accumulators, so the sum is not one serial dependency chain.
#[inline]
pub(crate) fn dot(x: &[f64], y: &[f64]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
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
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
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

/// [`dot_portable`] with fused multiply-adds, compiled for AVX2 + FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dot_avx2(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len().min(y.len());
    let (x, y) = (&x[..n], &y[..n]);
    let mut acc = [0.0; 8];
    let xc = x.chunks_exact(8);
    let yc = y.chunks_exact(8);
    let (xr, yr) = (xc.remainder(), yc.remainder());
    for (a, b) in xc.zip(yc) {
        for k in 0..8 {
            acc[k] = a[k].mul_add(b[k], acc[k]);
        }
    }
    let mut s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (a, b) in xr.iter().zip(yr) {
        s = a.mul_add(*b, s);
    }
    s
}

/// [`axpy_portable`] with fused multiply-adds, compiled for AVX2 + FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn axpy_avx2(alpha: f64, x: &[f64], y: &mut [f64]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi = alpha.mul_add(*xi, *yi);
    }
}

/// Up to this many entries (2 MB) A stays in cache, where two matrix-vector passes (nalgebra's
/// gemv) beat the per-row fused kernel: measured 0.39 against 0.58 ns per entry at 1000 × 50.
/// Above it memory traffic dominates and the single fused pass wins.
pub(crate) const IN_CACHE_ENTRIES: usize = 1 << 18;

/// Rows per block where a per-row transcendental sits between a dot product and an axpy:
/// the block's rows stay in L1 while its exponentials run vectorized (see `crate::vmath`).
pub(crate) const ROW_BLOCK: usize = 16;

/// Below this many entries of A a fused evaluation stays on one thread: measured on 2 cores,
/// splitting pays only once A no longer fits in cache (see BENCHMARKS.md).
pub(crate) const PARALLEL_MIN_ENTRIES: usize = 1 << 19;

/// Runs `f(lo, hi, g)` (accumulate rows lo..hi into g, return their part of f) over all rows:
/// on one thread for small A, else on two halves at once, the second half accumulating into
/// `spare` (sized once, then reused) before it is added to g.
pub(crate) fn fused_rows<F>(at: &Matrix, g: &mut [f64], spare: &std::sync::Mutex<Vec<f64>>, f: F) -> f64
where
    F: Fn(usize, usize, &mut [f64]) -> f64 + Sync,
{
    split_rows(at, g, spare, f, |f1, f2, g, second| {
        axpy(1.0, second, g);
        f1 + f2
    })
}

/// [`fused_rows`] with any partial result: on two threads, `merge(first, second, g, g₂)`
/// combines the halves' results and gradients into g.
pub(crate) fn split_rows<R, F, M>(
    at: &Matrix,
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
    if at.len() < PARALLEL_MIN_ENTRIES || rayon::current_num_threads() < 2 {
        return f(0, m, g);
    }
    let mut guard = match spare.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    };
    guard.clear();
    guard.resize(g.len(), 0.0);
    let mid = m / 2;
    let second: &mut [f64] = &mut guard[..];
    let (f1, f2) = rayon::join(|| f(0, mid, g), || f(mid, m, &mut *second));
    merge(f1, f2, g, second)
}

/// Rows lo..hi of A as slices of `at`.
#[inline]
pub(crate) fn rows_range(at: &Matrix, lo: usize, hi: usize) -> std::slice::ChunksExact<'_, f64> {
    let n = at.nrows().max(1);
    at.as_slice()[lo * n..hi * n].chunks_exact(n)
}

/// The rows of A (m×n) as slices of its transpose `at` (n×m, column-major).
#[inline]
pub(crate) fn rows(at: &Matrix) -> std::slice::ChunksExact<'_, f64> {
    at.as_slice().chunks_exact(at.nrows().max(1))
}

/// A (m×n) as a view of `at`'s storage, without copying.
pub(crate) fn a_view(at: &Matrix) -> MatrixView<'_, f64, Dyn, Dyn, Dyn, Dyn> {
    let (n, m) = at.shape();
    MatrixView::from_slice_with_strides_generic(at.as_slice(), Dyn(m), Dyn(n), Dyn(n.max(1)), Dyn(1))
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn dot_and_axpy_match_by_hand() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let y = [1.0, 1.0, 1.0, 1.0, 2.0];
        assert_eq!(dot(&x, &y), 20.0);
        let mut z = [0.0; 5];
        axpy(2.0, &x, &mut z);
        assert_eq!(z, [2.0, 4.0, 6.0, 8.0, 10.0]);
    }
}
