//! The arithmetic floor: a pass's multiply-adds at the core's peak, with no memory traffic.
//!
//! A pass that does many multiply-adds per entry of A (softmax: 2(k − 1)) is bound by them, not by
//! memory, and a stream read does not measure that floor. This does: the same number of scalar
//! multiply-adds in twelve independent chains of the widest fused multiply-add the CPU has, all
//! in registers, so the multiply-add units are the only limit. It is measured, not computed from
//! a clock rate, because the clock under load is not known. It is the core's floor, not the
//! kernels': on this Zen 4 a 512-bit fused multiply-add does the work of two 256-bit ones (the
//! same time, measured), so AVX2 kernels can reach it; on a core with two full-width 512-bit
//! units it would be half what AVX2 code can do.

/// Twelve chains: enough to cover a multiply-add's latency on both units (4 cycles × 2 units).
const CHAINS: usize = 12;

/// At least `count` scalar multiply-adds (rounded up to whole rounds of twelve vectors) on the
/// calling thread; returns their sum so the work is kept.
pub fn multiply_adds(count: usize) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, checked above.
            return unsafe { chains_avx512(count.div_ceil(8 * CHAINS)) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA, checked above.
            return unsafe { chains_avx2(count.div_ceil(4 * CHAINS)) };
        }
    }
    chains_portable(count.div_ceil(4 * CHAINS))
}

/// [`multiply_adds`] split in two halves as gradfit's fused passes split their rows: between two
/// threads when rayon has two, on the calling thread otherwise.
pub fn multiply_adds_halves(count: usize) -> f64 {
    let half = count / 2;
    let (x, y) = rayon::join(|| multiply_adds(half), || multiply_adds(count - half));
    x + y
}

/// Each chain is acc ← acc·m + c with m just under 1: it stays near c/(1 − m), never overflows
/// nor goes subnormal, whatever the count. The chains start from different values (`start`), so
/// no optimizer can prove two of them equal and fold them into one.
const M: f64 = 0.999_999;
const C: f64 = 1e-3;

/// Chain i's first value.
fn start(i: usize) -> f64 {
    i as f64 * 0.125
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn chains_avx512(rounds: usize) -> f64 {
    use std::arch::x86_64::*;
    let (m, c) = (_mm512_set1_pd(M), _mm512_set1_pd(C));
    let mut acc: [__m512d; CHAINS] = std::array::from_fn(|i| _mm512_set1_pd(start(i)));
    for _ in 0..rounds {
        for a in acc.iter_mut() {
            *a = _mm512_fmadd_pd(*a, m, c);
        }
    }
    acc.iter().map(|&a| _mm512_reduce_add_pd(a)).sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn chains_avx2(rounds: usize) -> f64 {
    use std::arch::x86_64::*;
    let (m, c) = (_mm256_set1_pd(M), _mm256_set1_pd(C));
    let mut acc: [__m256d; CHAINS] = std::array::from_fn(|i| _mm256_set1_pd(start(i)));
    for _ in 0..rounds {
        for a in acc.iter_mut() {
            *a = _mm256_fmadd_pd(*a, m, c);
        }
    }
    let mut lanes = [0.0; 4];
    let mut total = 0.0;
    for a in acc {
        // SAFETY: `lanes` holds four f64, the unaligned store's width.
        unsafe { _mm256_storeu_pd(lanes.as_mut_ptr(), a) };
        total += lanes.iter().sum::<f64>();
    }
    total
}

/// A multiply and an add, as gradfit's portable kernels do them, four lanes a chain.
fn chains_portable(rounds: usize) -> f64 {
    let mut acc: [[f64; 4]; CHAINS] = std::array::from_fn(|i| [start(i); 4]);
    for _ in 0..rounds {
        for a in acc.iter_mut() {
            for v in a.iter_mut() {
                *v = *v * M + C;
            }
        }
    }
    acc.iter().flatten().sum()
}
