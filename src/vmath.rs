//! eˣ and log(1 + eᶻ) over whole slices, written so the compiler vectorizes them, and the
//! logistic terms four rows at a time in AVX2 intrinsics for a pass over A that yields its
//! dot products in fours ([`LogisticQuads`], with [`exp4`], [`exp1`]'s operations lane by
//! lane).
//!
//! libm's `exp` and `ln_1p` cost about 6.5 and 8.6 ns per call here, more than reading a row
//! of 50 features; a logistic or softmax evaluation spent most of its time in them. These
//! loops are branch-free (selects, bit tricks, polynomials), so LLVM turns them into AVX2 code
//! doing four arguments a vector (`logistic_terms`' last step is written in AVX2 intrinsics,
//! two vectors at a time); compiled once for AVX2 + FMA (chosen at run time, like
//! [`crate::kernels`]) and once portably.
//!
//! Accuracy: eˣ is a degree-13 Taylor polynomial (Estrin's scheme) on |r| ≤ ln2/2 after x = k·ln2 + r (truncation
//! below 1e-17, relative), scaled by 2ᵏ in two exact steps so subnormal results and the edge of
//! overflow come out right; log x is fdlibm's `log` kernel. Measured against libm on a dense
//! grid (the tests): eˣ within 2 ulp, log within 1. The logistic loss takes one logarithm per
//! 64 rows, of the product of their 1 + e^(−|zᵢ|) (see [`logistic_terms`]): its sum is tested
//! against libm's terms summed with compensation, within 16 ulp of Σ|terms|, and within 4 ulp
//! where every term is below 1e-13. NaN propagates; eˣ is 0 below −746 and +∞ above 710.
//! Softmax's exponentials on a CPU with AVX-512 are [`exp8`]'s instead (a table of sixteen
//! powers 2^(j/16) and a degree-7 polynomial, eight lanes at a time): within 2 ulp of libm
//! too, but not the same bits as [`exp1`].

/// 1.5·2⁵²: adding it rounds a double of magnitude < 2⁵¹ to an integer held in the low bits.
const MAGIC: f64 = 6_755_399_441_055_744.0;
const LOG2E: f64 = std::f64::consts::LOG2_E;
/// ln 2 split so that k·LN2_HI is exact for |k| < 2²¹ (fdlibm's ln2HI, ln2LO; fdlibm's
/// constants are given by their bits, as in its source).
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
/// 1/k!, k = 2..13.
const INV_FACT: [f64; 12] = [
    1.0 / 2.0,
    1.0 / 6.0,
    1.0 / 24.0,
    1.0 / 120.0,
    1.0 / 720.0,
    1.0 / 5040.0,
    1.0 / 40320.0,
    1.0 / 362_880.0,
    1.0 / 3_628_800.0,
    1.0 / 39_916_800.0,
    1.0 / 479_001_600.0,
    1.0 / 6_227_020_800.0,
];
/// fdlibm e_log.c: log(1 + f) = f − f²/2 + s(f²/2 + R(s²)), s = f/(2 + f).
const LG1: f64 = f64::from_bits(0x3fe5_5555_5555_5593);
const LG2: f64 = f64::from_bits(0x3fd9_9999_9997_fa04);
const LG3: f64 = f64::from_bits(0x3fd2_4924_9422_9359);
const LG4: f64 = f64::from_bits(0x3fcc_71c5_1d8e_78af);
const LG5: f64 = f64::from_bits(0x3fc7_4664_96cb_03de);
const LG6: f64 = f64::from_bits(0x3fc3_9a09_d078_c69f);
const LG7: f64 = f64::from_bits(0x3fc2_f112_df3e_5244);

/// a·b + c: one fused multiply-add where the function is compiled for FMA; otherwise the
/// plain expression (`f64::mul_add` without FMA hardware would be a slow libm call).
#[inline(always)]
pub(crate) fn madd<const FMA: bool>(a: f64, b: f64, c: f64) -> f64 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// 2ᵏ for an integer-valued k with −1022 ≤ k ≤ 1023, from its bits.
#[inline(always)]
fn pow2(k: f64) -> f64 {
    let bits = (k + MAGIC)
        .to_bits()
        .wrapping_sub(MAGIC.to_bits())
        .wrapping_add(1023);
    f64::from_bits(bits << 52)
}

/// eˣ, branch-free.
#[inline(always)]
fn exp1<const FMA: bool>(x: f64) -> f64 {
    // comparisons are false for NaN, so NaN passes through to the result
    let x = if x < -746.0 { -746.0 } else { x };
    let x = if x > 710.0 { 710.0 } else { x };
    let k = madd::<FMA>(x, LOG2E, MAGIC) - MAGIC;
    let r = madd::<FMA>(-k, LN2_HI, x);
    let r = madd::<FMA>(-k, LN2_LO, r);
    // Σ_{j ≤ 13} rʲ/j! by Estrin's scheme: 4 multiply-adds deep instead of 13 (Horner), so
    // the vector loop is not one long dependency chain
    let c = &INV_FACT;
    let r2 = r * r;
    let r4 = r2 * r2;
    let r8 = r4 * r4;
    let q0 = 1.0 + r;
    let q1 = madd::<FMA>(c[1], r, c[0]);
    let q2 = madd::<FMA>(c[3], r, c[2]);
    let q3 = madd::<FMA>(c[5], r, c[4]);
    let q4 = madd::<FMA>(c[7], r, c[6]);
    let q5 = madd::<FMA>(c[9], r, c[8]);
    let q6 = madd::<FMA>(c[11], r, c[10]);
    let s0 = madd::<FMA>(q1, r2, q0);
    let s1 = madd::<FMA>(q3, r2, q2);
    let s2 = madd::<FMA>(q5, r2, q4);
    let t0 = madd::<FMA>(s1, r4, s0);
    let t1 = madd::<FMA>(q6, r4, s2);
    let p = madd::<FMA>(t1, r8, t0);
    // 2ᵏ = 2^k1 · 2^k2 with both factors normal for k ∈ [−1077, 1025]
    let k1 = (k * 0.5 + MAGIC) - MAGIC;
    let k2 = k - k1;
    p * pow2(k1) * pow2(k2)
}

/// k·ln 2 + log v for v ∈ [√2/2, √2] and an integer k: fdlibm's `log` kernel,
/// log(1 + f) = f − f²/2 + s(f²/2 + R(s²)) with f = v − 1, s = f/(2 + f).
#[inline(always)]
fn log_reduced<const FMA: bool>(v: f64, k: f64) -> f64 {
    log1p_reduced::<FMA>(v - 1.0, k)
}

/// k·ln 2 + log(1 + f) for f ∈ [√2/2 − 1, √2 − 1]: the kernel of [`log_reduced`], given f
/// itself (so a small f keeps its digits below the unit in the last place of 1 + f).
#[inline(always)]
fn log1p_reduced<const FMA: bool>(f: f64, k: f64) -> f64 {
    let s = f / (2.0 + f);
    let s2 = s * s;
    let s4 = s2 * s2;
    let t1 = s4 * madd::<FMA>(s4, madd::<FMA>(s4, LG6, LG4), LG2);
    let t2 = s2 * madd::<FMA>(s4, madd::<FMA>(s4, madd::<FMA>(s4, LG7, LG5), LG3), LG1);
    let hfsq = 0.5 * f * f;
    k * LN2_HI - ((hfsq - madd::<FMA>(s, hfsq + (t1 + t2), k * LN2_LO)) - f)
}

/// log x for a positive normal finite x (NaN passes through), branch-free: x = 2ᵉ·u with
/// u ∈ [1, 2) read from the bits (e converted to a double by the `MAGIC` trick, which AVX2
/// can do four at a time), u halved into [√2/2, √2], then [`log_reduced`].
#[inline(always)]
fn ln1<const FMA: bool>(x: f64) -> f64 {
    let bits = x.to_bits();
    let u = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    let e = f64::from_bits(MAGIC.to_bits() | ((bits >> 52) & 0x7ff)) - (MAGIC + 1023.0);
    let big = u > std::f64::consts::SQRT_2;
    let v = if big { u * 0.5 } else { u };
    let k = if big { e + 1.0 } else { e };
    let l = log_reduced::<FMA>(v, k);
    if x.is_nan() {
        x
    } else {
        l
    }
}

macro_rules! dispatch {
    ($portable:ident, $avx2:ident, ($($arg:expr),*)) => {{
        #[cfg(target_arch = "x86_64")]
        {
            if crate::cpu::avx2() {
                // SAFETY: the CPU has the features the function is compiled for (checked above).
                return unsafe { $avx2($($arg),*) };
            }
        }
        $portable($($arg),*)
    }};
}

/// z ← e^(z − m), elementwise, for a shift m (log-sum-exp's running maximum, or its one shift): an entry
/// equal to m gives exactly 1 (a select, not z − m: at m = +∞ the entry holding it gives
/// e⁰ = 1, the others e^(−∞) = 0, rather than e^(∞ − ∞) = NaN); a NaN, in z or m, gives NaN.
/// Four lanes at a time on AVX2 ([`exp4`], the same bits as [`exp1`]). One call in place of a
/// select loop and an exponential loop: on log-sum-exp's fused pass (floor bench, one thread
/// pinned, four runs each in alternation) 1.43–1.44× a stream read at 20000 × 50 against
/// 1.49–1.75×, and 1.05–1.25× at 20000 × 200 against 1.15–1.26×.
pub(crate) fn exp_shifted_in_place(z: &mut [f64], m: f64) {
    dispatch!(exp_shifted_portable, exp_shifted_avx2, (z, m))
}

#[inline(always)]
fn exp_shifted_body<const FMA: bool>(z: &mut [f64], m: f64) {
    for v in z.iter_mut() {
        *v = exp1::<FMA>(if *v == m { 0.0 } else { *v - m });
    }
}

fn exp_shifted_portable(z: &mut [f64], m: f64) {
    exp_shifted_body::<false>(z, m)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn exp_shifted_avx2(z: &mut [f64], m: f64) {
    use std::arch::x86_64::*;
    let mut quads = z.chunks_exact_mut(4);
    let mv = _mm256_set1_pd(m);
    for q in &mut quads {
        // SAFETY: a four-entry load and store of `q`
        unsafe {
            let v = _mm256_loadu_pd(q.as_ptr());
            // lanes equal to m (ordered: a NaN is equal to nothing) shift to 0, not v − m
            let at_m = _mm256_cmp_pd::<_CMP_EQ_OQ>(v, mv);
            let t = _mm256_andnot_pd(at_m, _mm256_sub_pd(v, mv));
            _mm256_storeu_pd(q.as_mut_ptr(), exp4(t));
        }
    }
    exp_shifted_body::<true>(quads.into_remainder(), m);
}

/// Row-wise softmax, in place, of z holding rows of k entries each (contiguous), shifted by
/// each row's maximum; returns `Σ_r [lse(z_r) − z_r[y_r]]` (the softmax-regression loss of the
/// rows with labels y). Sixteen rows at a time: their shifts, one vectorized loop of
/// exponentials ([`exp8`] on a CPU with AVX-512, else [`exp1`]'s), the reciprocals of the
/// sixteen sums in one loop, each row scaled by its own, and the sixteen logarithms of the sums
/// in one vectorized loop (the sums lie in [1, k], so [`ln1`]'s domain).
///
/// [`exp8`] here against [`exp4`]'s polynomial (`gradfit solve --model softmax --solver lbfgs
/// --repeat`, one thread pinned, three runs each in alternation): 2000 × 20 with k = 5 0.87×
/// the time, 20000 × 50 with k = 10 0.90–0.91×; floor bench `--quick softmax`, fused ÷
/// arithmetic floor, 20000 × 50 1.75–1.84× against 1.90–1.95×, 100000 × 50 1.87–1.96×
/// against 2.07–2.08×, 20000 × 200 1.42–1.50× against 1.47–1.50× (that floor 2k multiply-adds
/// an entry, the pass's count before it took its scores against the last class).
pub(crate) fn softmax_rows(z: &mut [f64], k: usize, y: &[usize]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if has_avx512_fma() {
        // SAFETY: the CPU has AVX2, FMA and AVX-512 F and VL (checked above).
        return unsafe { softmax_rows_avx512(z, k, y) };
    }
    dispatch!(softmax_rows_portable, softmax_rows_avx2, (z, k, y))
}

/// [`softmax_rows_rows`] with k a constant for 2 to 12 classes, so the per-row loops (maximum,
/// shift, sum, scaling) unroll: one-thread L-BFGS on softmax 10000 × 50, k = 5, took 0.91× the
/// time, 20000 × 50 with k = 10 0.93×.
#[inline(always)]
fn softmax_rows_body<const FMA: bool, const X8: bool>(z: &mut [f64], k: usize, y: &[usize]) -> f64 {
    match k {
        2 => softmax_rows_rows::<FMA, X8>(z, 2, y),
        3 => softmax_rows_rows::<FMA, X8>(z, 3, y),
        4 => softmax_rows_rows::<FMA, X8>(z, 4, y),
        5 => softmax_rows_rows::<FMA, X8>(z, 5, y),
        6 => softmax_rows_rows::<FMA, X8>(z, 6, y),
        7 => softmax_rows_rows::<FMA, X8>(z, 7, y),
        8 => softmax_rows_rows::<FMA, X8>(z, 8, y),
        9 => softmax_rows_rows::<FMA, X8>(z, 9, y),
        10 => softmax_rows_rows::<FMA, X8>(z, 10, y),
        11 => softmax_rows_rows::<FMA, X8>(z, 11, y),
        12 => softmax_rows_rows::<FMA, X8>(z, 12, y),
        _ => softmax_rows_rows::<FMA, X8>(z, k, y),
    }
}

#[inline(always)]
fn softmax_rows_rows<const FMA: bool, const X8: bool>(z: &mut [f64], k: usize, y: &[usize]) -> f64 {
    const ROWS: usize = 16;
    let k = k.max(1);
    let mut f = 0.0;
    let mut sums = [0.0; ROWS];
    for (zs, ys) in z.chunks_mut(ROWS * k).zip(y.chunks(ROWS)) {
        let rows = (zs.len() / k).min(ys.len());
        let zs = &mut zs[..rows * k];
        for (row, &yi) in zs.chunks_exact_mut(k).zip(ys) {
            // the comparison ignores NaN (one vmaxsd, where f64::max's NaN rule costs a
            // compare and a blend in the chain); a NaN entry still makes its row's sum NaN
            let m = row
                .iter()
                .fold(f64::NEG_INFINITY, |m, &v| if v > m { v } else { m });
            // a select too, so a +∞ score at the label adds lse − z_y → 0, not ∞ − ∞
            f += if row[yi] == m { 0.0 } else { m - row[yi] };
            for v in row.iter_mut() {
                // a select, so a +∞ score gives its row p = 1 there rather than ∞ − ∞ = NaN
                *v = if *v == m { 0.0 } else { *v - m };
            }
        }
        #[cfg(target_arch = "x86_64")]
        if X8 {
            // SAFETY: X8 is set only by `softmax_rows_avx512`, called where `has_avx512_fma`.
            unsafe { exp_in_place_avx512(zs) };
        }
        if !X8 || cfg!(not(target_arch = "x86_64")) {
            for v in zs.iter_mut() {
                *v = exp1::<FMA>(*v);
            }
        }
        for (row, s) in zs.chunks_exact_mut(k).zip(sums.iter_mut()) {
            *s = row.iter().sum();
        }
        let mut invs = [0.0; ROWS];
        for (inv, s) in invs.iter_mut().zip(&sums) {
            *inv = 1.0 / s;
        }
        for (row, inv) in zs.chunks_exact_mut(k).zip(&invs) {
            for v in row.iter_mut() {
                *v *= inv;
            }
        }
        let sums = &mut sums[..rows];
        for s in sums.iter_mut() {
            *s = ln1::<FMA>(*s);
        }
        f += sum(sums);
    }
    f
}

fn softmax_rows_portable(z: &mut [f64], k: usize, y: &[usize]) -> f64 {
    softmax_rows_body::<false, false>(z, k, y)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn softmax_rows_avx2(z: &mut [f64], k: usize, y: &[usize]) -> f64 {
    softmax_rows_body::<true, false>(z, k, y)
}

/// Whether the CPU has AVX2, FMA and AVX-512 F and VL, each checked (a hypervisor can hide one
/// feature alone), and `GRADFIT_CPU` does not cap the code below them ([`crate::cpu`]).
#[cfg(target_arch = "x86_64")]
fn has_avx512_fma() -> bool {
    crate::cpu::avx512()
}

/// [`softmax_rows_avx2`] with the exponentials by [`exp8`] (the rest compiled for AVX2 alone).
///
/// # Safety
/// The CPU has AVX2, FMA and AVX-512 F and VL ([`has_avx512_fma`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn softmax_rows_avx512(z: &mut [f64], k: usize, y: &[usize]) -> f64 {
    softmax_rows_body::<true, true>(z, k, y)
}

/// 2^(j/16), j = 0..15, each rounded to nearest (computed to 60 digits).
const EXP2_SIXTEENTHS: [u64; 16] = [
    0x3ff0_0000_0000_0000,
    0x3ff0_b558_6cf9_890f,
    0x3ff1_72b8_3c7d_517b,
    0x3ff2_387a_6e75_6238,
    0x3ff3_06fe_0a31_b715,
    0x3ff3_dea6_4c12_3422,
    0x3ff4_bfda_d536_2a27,
    0x3ff5_ab07_dd48_5429,
    0x3ff6_a09e_667f_3bcd,
    0x3ff7_a114_73eb_0187,
    0x3ff8_ace5_422a_a0db,
    0x3ff9_c491_82a3_f090,
    0x3ffa_e89f_995a_d3ad,
    0x3ffc_199b_dd85_529c,
    0x3ffd_5818_dcfb_a487,
    0x3ffe_a4af_a2a4_90da,
];

/// eˣ eight lanes at a time, by a table of sixteen: x = (16i + j)·ln2/16 + r with |r| ≤ ln2/32,
/// eˣ = 2ⁱ · 2^(j/16) · eʳ, where 2^(j/16) comes from two registers by one permutation (its
/// index is j, the low bits of the rounding), eʳ − 1 is the degree-7 Taylor polynomial
/// (truncation below 1.3e-18, relative: r⁸/8!) and 2ⁱ is applied by `vscalefpd`, which rounds
/// once more only where the result is subnormal, and overflows to +∞. About 18 vector
/// operations for eight lanes where [`exp4`]'s degree-13 polynomial and two-step scaling take
/// 35 for four (on Zen 4, whose 512-bit operations take two 256-bit slots, about half the time
/// per lane). Not the same bits as [`exp1`]: within 1 ulp of libm (tested; the reduction and
/// the table's rounding put it within 1.01 ulp of eˣ). NaN propagates; eˣ is 0 below −746 and
/// +∞ above 710.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512vl")]
#[inline]
fn exp8(x: std::arch::x86_64::__m512d) -> std::arch::x86_64::__m512d {
    use std::arch::x86_64::*;
    let s = _mm512_set1_pd;
    let t = |i: usize| f64::from_bits(EXP2_SIXTEENTHS[i]);
    // vmaxpd and vminpd return their second operand when either is NaN, so NaN passes
    let x = _mm512_min_pd(s(710.0), _mm512_max_pd(s(-746.0), x));
    // the rounding of 16x/ln2 to an integer 16i + j, held in the low bits of `whole`
    let whole = _mm512_fmadd_pd(x, s(16.0 * LOG2E), s(MAGIC));
    let kf = _mm512_sub_pd(whole, s(MAGIC));
    let r = _mm512_fnmadd_pd(kf, s(LN2_HI / 16.0), x);
    let r = _mm512_fnmadd_pd(kf, s(LN2_LO / 16.0), r);
    // eʳ − 1 = r·(1 + r/2 + r²/6 + … + r⁶/7!) by Estrin's scheme
    let c = &INV_FACT;
    let r2 = _mm512_mul_pd(r, r);
    let r4 = _mm512_mul_pd(r2, r2);
    let u0 = _mm512_fmadd_pd(r, s(c[0]), s(1.0));
    let u1 = _mm512_fmadd_pd(r, s(c[2]), s(c[1]));
    let u2 = _mm512_fmadd_pd(r, s(c[4]), s(c[3]));
    let s0 = _mm512_fmadd_pd(u1, r2, u0);
    let s1 = _mm512_fmadd_pd(s(c[5]), r2, u2);
    let q = _mm512_mul_pd(r, _mm512_fmadd_pd(s1, r4, s0));
    // vpermt2pd takes each lane's index from its low four bits: j
    let lo = _mm512_setr_pd(t(0), t(1), t(2), t(3), t(4), t(5), t(6), t(7));
    let hi = _mm512_setr_pd(t(8), t(9), t(10), t(11), t(12), t(13), t(14), t(15));
    let tj = _mm512_permutex2var_pd(lo, _mm512_castpd_si512(whole), hi);
    // 2^(j/16)·eʳ, scaled by 2^⌊kf/16⌋ = 2ⁱ
    _mm512_scalef_pd(_mm512_fmadd_pd(tj, q, tj), _mm512_mul_pd(kf, s(1.0 / 16.0)))
}

/// z ← eᶻ entry by entry, by [`exp8`] (the last fewer than eight entries masked).
///
/// # Safety
/// The CPU has AVX2, FMA and AVX-512 F and VL ([`has_avx512_fma`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512vl")]
unsafe fn exp_in_place_avx512(z: &mut [f64]) {
    use std::arch::x86_64::*;
    let mut eights = z.chunks_exact_mut(8);
    for e in &mut eights {
        // SAFETY: an eight-entry load and store of `e`
        unsafe { _mm512_storeu_pd(e.as_mut_ptr(), exp8(_mm512_loadu_pd(e.as_ptr()))) };
    }
    let rest = eights.into_remainder();
    if !rest.is_empty() {
        let mask = ((1u16 << rest.len()) - 1) as u8;
        // SAFETY: masked to the `rest.len()` < 8 entries of `rest`
        unsafe {
            let v = _mm512_maskz_loadu_pd(mask, rest.as_ptr());
            _mm512_mask_storeu_pd(rest.as_mut_ptr(), mask, exp8(v));
        }
    }
}

/// The logistic loss terms of a block of rows: returns Σᵢ [log(1 + e^zᵢ) − yᵢzᵢ] and
/// replaces zᵢ by σ(zᵢ) − yᵢ, the factor of aᵢ in the gradient.
///
/// With eᵢ = e^(−|zᵢ|): log(1 + e^zᵢ) = max(zᵢ, 0) + log(1 + eᵢ), and σ(zᵢ) = 1/(1 + eᵢ) for
/// zᵢ ≥ 0, eᵢ/(1 + eᵢ) below. The logarithms of a chunk of [`CHUNK`] entries are taken as one,
/// Σ log(1 + eᵢ) = log(1 + d) with 1 + d = Π(1 + eᵢ), d accumulated as d ← d + e + d·e (so a
/// small d keeps its relative precision: terms of 1e-14 still come out within a few ulp)
/// and log(1 + d) by the log kernel on d itself below √2 − 1. d lies in [0, 2⁶⁴]; its relative
/// rounding error, under 64 ulp, is an absolute error under 1.5e-14 in the chunk's loss, no more
/// than the sum of 64 rounded logarithms carries. One logarithm per 64 rows instead of one per
/// row: in a standalone copy (20000 rows in 64-row blocks) the terms took 13.7–14.3 cycles a
/// row before, 9.2 now.
pub(crate) fn logistic_terms(z: &mut [f64], y: &[f64]) -> f64 {
    dispatch!(logistic_terms_portable, logistic_terms_avx2, (z, y))
}

fn logistic_terms_portable(z: &mut [f64], y: &[f64]) -> f64 {
    logistic_terms_body::<false>(z, y, logistic_lanes::<false>)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn logistic_terms_avx2(z: &mut [f64], y: &[f64]) -> f64 {
    // the closure has this function's target features, so it may call the lanes
    logistic_terms_body::<true>(z, y, |z, y, e, acc, d| logistic_lanes_avx2(z, y, e, acc, d))
}

/// [`logistic_terms`] with `lanes` doing the entries of a chunk, [`LANES`] at a time, after
/// the exponentials; the last (fewer than eight) one at a time.
#[inline(always)]
fn logistic_terms_body<const FMA: bool>(
    z: &mut [f64],
    y: &[f64],
    lanes: impl Fn(&mut [f64], &[f64], &[f64], &mut [f64; LANES], &mut [f64; LANES]),
) -> f64 {
    let n = z.len().min(y.len());
    let (z, y) = (&mut z[..n], &y[..n]);
    // the exponentials of a chunk first, into a buffer, then the rest: one loop doing both
    // was one long dependency chain per element that the core's window could not overlap
    // across iterations; split, each loop's chains are short enough. Each lane's loss is
    // summed apart.
    let mut acc = [0.0; LANES];
    let mut logs = 0.0;
    let mut buf = [0.0; CHUNK];
    for start in (0..n).step_by(CHUNK) {
        let end = (start + CHUNK).min(n);
        let (z, y, e) = (&mut z[start..end], &y[start..end], &mut buf[..end - start]);
        for (ei, zi) in e.iter_mut().zip(z.iter()) {
            *ei = exp1::<FMA>(-zi.abs());
        }
        let whole = z.len() / LANES * LANES;
        let mut d = [0.0; LANES];
        let (z8, z1) = z.split_at_mut(whole);
        lanes(z8, &y[..whole], &e[..whole], &mut acc, &mut d);
        let grow = |d: f64, e: f64| madd::<FMA>(d, e, d + e);
        let pair = |a: [f64; 2]| grow(a[0], a[1]);
        let mut p = pair([
            pair([pair([d[0], d[1]]), pair([d[2], d[3]])]),
            pair([pair([d[4], d[5]]), pair([d[6], d[7]])]),
        ]);
        for ((zi, yi), ei) in z1.iter_mut().zip(&y[whole..]).zip(&e[whole..]) {
            let (l, s) = logistic_entry::<FMA>(*zi, *yi, *ei, &mut p);
            acc[0] += l;
            *zi = s;
        }
        logs += log1p_product::<FMA>(p);
    }
    pairwise(&acc) + logs
}

/// log(1 + p) for p ≥ 0 the product of 1 + eᵢ less one: below √2 − 1 the kernel takes p itself
/// (1 + p would round it to a multiple of 2⁻⁵²); above, 1 + p rounds it by no more than its own
/// last place.
#[inline(always)]
fn log1p_product<const FMA: bool>(p: f64) -> f64 {
    if p <= std::f64::consts::SQRT_2 - 1.0 {
        log1p_reduced::<FMA>(p, 0.0)
    } else {
        ln1::<FMA>(1.0 + p)
    }
}

/// eˣ four lanes at a time: [`exp1`]'s operations in AVX2 intrinsics, in the same order, so
/// each lane is the same to the bit.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(crate) fn exp4(x: std::arch::x86_64::__m256d) -> std::arch::x86_64::__m256d {
    use std::arch::x86_64::*;
    let s = _mm256_set1_pd;
    // vmaxpd and vminpd return their second operand when either is NaN, so NaN passes
    let x = _mm256_min_pd(s(710.0), _mm256_max_pd(s(-746.0), x));
    let magic = s(MAGIC);
    let k = _mm256_sub_pd(_mm256_fmadd_pd(x, s(LOG2E), magic), magic);
    let r = _mm256_fnmadd_pd(k, s(LN2_HI), x);
    let r = _mm256_fnmadd_pd(k, s(LN2_LO), r);
    let c = &INV_FACT;
    let r2 = _mm256_mul_pd(r, r);
    let r4 = _mm256_mul_pd(r2, r2);
    let r8 = _mm256_mul_pd(r4, r4);
    let q0 = _mm256_add_pd(s(1.0), r);
    let q = |i: usize| _mm256_fmadd_pd(s(c[2 * i - 1]), r, s(c[2 * i - 2]));
    let (q1, q2, q3, q4, q5, q6) = (q(1), q(2), q(3), q(4), q(5), q(6));
    let s0 = _mm256_fmadd_pd(q1, r2, q0);
    let s1 = _mm256_fmadd_pd(q3, r2, q2);
    let s2 = _mm256_fmadd_pd(q5, r2, q4);
    let t0 = _mm256_fmadd_pd(s1, r4, s0);
    let t1 = _mm256_fmadd_pd(q6, r4, s2);
    let p = _mm256_fmadd_pd(t1, r8, t0);
    let k1 = _mm256_sub_pd(_mm256_add_pd(_mm256_mul_pd(k, s(0.5)), magic), magic);
    let k2 = _mm256_sub_pd(k, k1);
    // 2ᵏ from the bits, as in `pow2`
    let pow2 = |k: __m256d| {
        let bits = _mm256_sub_epi64(
            _mm256_castpd_si256(_mm256_add_pd(k, magic)),
            _mm256_castpd_si256(magic),
        );
        _mm256_castsi256_pd(_mm256_slli_epi64::<52>(_mm256_add_epi64(
            bits,
            _mm256_set1_epi64x(1023),
        )))
    };
    _mm256_mul_pd(_mm256_mul_pd(p, pow2(k1)), pow2(k2))
}

/// [`logistic_entry`] on four lanes given e = e^(−|z|): adds max(z, 0) − yz to `acc`, grows
/// `d` to d + e + d·e, and returns σ(z) − y; shared by `logistic_lanes_avx2` and
/// [`LogisticQuads`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
fn logistic_vec(
    z: std::arch::x86_64::__m256d,
    y: std::arch::x86_64::__m256d,
    e: std::arch::x86_64::__m256d,
    acc: &mut std::arch::x86_64::__m256d,
    d: &mut std::arch::x86_64::__m256d,
) -> std::arch::x86_64::__m256d {
    use std::arch::x86_64::*;
    let (one, zero) = (_mm256_set1_pd(1.0), _mm256_setzero_pd());
    let q = _mm256_div_pd(one, _mm256_add_pd(one, e));
    *d = _mm256_fmadd_pd(*d, e, _mm256_add_pd(*d, e));
    // vmaxpd returns its second operand when either is NaN, as z.max(0.0) drops NaN
    *acc = _mm256_add_pd(*acc, _mm256_fnmadd_pd(y, z, _mm256_max_pd(z, zero)));
    let nonneg = _mm256_cmp_pd::<_CMP_GE_OQ>(z, zero);
    let sig = _mm256_blendv_pd(_mm256_mul_pd(e, q), q, nonneg);
    _mm256_sub_pd(sig, y)
}

/// Where a logistic pass hands its scores zᵢ (the first row's index and the scores), if
/// anywhere.
pub(crate) type Keep<'k> = Option<&'k mut dyn FnMut(usize, &[f64])>;

/// [`logistic_terms`] four rows at a time, for a pass that yields the scores in fours
/// (`crate::kernels::Quads`): between a block's dot products and its axpys, or inside a sweep
/// over A, where the exponentials run while the sweep waits on memory. The same operations
/// per entry as `logistic_lanes_avx2` (each lane its own loss and product), one logarithm per
/// 64 rows; the rows left at the end of a range go through [`logistic_terms`]. A pass that
/// takes rows one at a time (`crate::kernels::Quads::one`) puts them in the lanes in turn,
/// the last quad of a range partly filled. `keep(row, z)` sees the scores before they become
/// σ − y, up to 64 rows at a time (row is the first's index).
#[cfg(target_arch = "x86_64")]
pub(crate) struct LogisticQuads<'a, 'k> {
    y: &'a [f64],
    keep: Keep<'k>,
    /// The scores of the quads (or rows taken alone) since the last flush, from row `kept_from`
    /// on.
    kept: [f64; CHUNK],
    kept_from: usize,
    /// Each lane's Σ max(z, 0) − yz and its product of the 1 + e less one, as in
    /// `logistic_lanes_avx2`.
    acc: std::arch::x86_64::__m256d,
    d: std::arch::x86_64::__m256d,
    /// Quads (of four rows) since the last flush: 16 at most, one chunk's rows.
    pending: usize,
    /// The lane the next row taken alone ([`crate::kernels::Quads::one`]) goes to, the rows of
    /// the quad being filled before it in lanes 0..lane.
    lane: usize,
    logs: f64,
}

// a flush every CHUNK / 4 quads covers a whole chunk
const _: () = assert!(CHUNK.is_multiple_of(4));

#[cfg(target_arch = "x86_64")]
impl<'a, 'k> LogisticQuads<'a, 'k> {
    /// No rows yet; y holds every row's label (rows are numbered as in A).
    #[target_feature(enable = "avx2,fma")]
    pub(crate) fn new(y: &'a [f64], keep: Keep<'k>) -> Self {
        use std::arch::x86_64::*;
        LogisticQuads {
            y,
            keep,
            kept: [0.0; CHUNK],
            kept_from: 0,
            acc: _mm256_setzero_pd(),
            d: _mm256_setzero_pd(),
            pending: 0,
            lane: 0,
            logs: 0.0,
        }
    }

    /// The log of the lanes' product so far into `logs`, and the scores kept to `keep`.
    /// Never inlined: it runs once per 64 rows, and inlined it made [`Self::quad`] too big for
    /// the compiler to inline in turn (into `crate::kernels`' sweep, where a call per quad
    /// cost 1.2× the time of the whole pass).
    #[target_feature(enable = "avx2,fma")]
    #[inline(never)]
    fn flush(&mut self) {
        use std::arch::x86_64::*;
        if self.pending == 0 && self.lane == 0 {
            return;
        }
        let mut d = [0.0; 4];
        // SAFETY: stores four entries into `d`
        unsafe { _mm256_storeu_pd(d.as_mut_ptr(), self.d) };
        let grow = |d: f64, e: f64| d.mul_add(e, d + e);
        self.logs += log1p_product::<true>(grow(grow(d[0], d[1]), grow(d[2], d[3])));
        if let Some(keep) = self.keep.as_mut() {
            keep(self.kept_from, &self.kept[..4 * self.pending + self.lane]);
        }
        self.d = _mm256_setzero_pd();
        self.pending = 0;
        self.lane = 0;
    }

    /// Σ over the rows seen of log(1 + e^zᵢ) − yᵢzᵢ.
    #[target_feature(enable = "avx2,fma")]
    pub(crate) fn total(mut self) -> f64 {
        use std::arch::x86_64::*;
        self.flush();
        let mut a = [0.0; 4];
        // SAFETY: stores four entries into `a`
        unsafe { _mm256_storeu_pd(a.as_mut_ptr(), self.acc) };
        ((a[0] + a[1]) + (a[2] + a[3])) + self.logs
    }
}

#[cfg(target_arch = "x86_64")]
impl crate::kernels::Quads for LogisticQuads<'_, '_> {
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn quad(&mut self, row: usize, z: std::arch::x86_64::__m256d) -> std::arch::x86_64::__m256d {
        use std::arch::x86_64::*;
        debug_assert_eq!(self.lane, 0, "a quad after rows taken alone");
        if self.keep.is_some() {
            if self.pending == 0 {
                self.kept_from = row;
            }
            let kept = &mut self.kept[4 * self.pending..4 * self.pending + 4];
            // SAFETY: stores four entries into `kept`
            unsafe { _mm256_storeu_pd(kept.as_mut_ptr(), z) };
        }
        let yv = crate::kernels::four_at(self.y, row);
        // −|z| by setting the sign bit
        let e = exp4(_mm256_or_pd(z, _mm256_set1_pd(-0.0)));
        let c = logistic_vec(z, yv, e, &mut self.acc, &mut self.d);
        self.pending += 1;
        if self.pending == CHUNK / 4 {
            self.flush();
        }
        c
    }

    /// Row after row into the lanes in turn, a row's lane updated as `quad` updates it (the
    /// other lanes of the quad computed and dropped): every row's coefficient, loss and product
    /// the same to the bit as when its quad goes through `quad`, the rows of a range being in
    /// the same lanes (the range's row r in lane r mod 4) and flushed at the same rows.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn one(&mut self, row: usize, z: f64) -> f64 {
        use std::arch::x86_64::*;
        let lane = self.lane;
        if self.keep.is_some() {
            if self.pending == 0 && lane == 0 {
                self.kept_from = row;
            }
            self.kept[4 * self.pending + lane] = z;
        }
        let (zv, yv) = (_mm256_set1_pd(z), _mm256_set1_pd(self.y[row]));
        // −|z| by setting the sign bit
        let e = exp4(_mm256_or_pd(zv, _mm256_set1_pd(-0.0)));
        let (mut acc, mut d) = (self.acc, self.d);
        let c = logistic_vec(zv, yv, e, &mut acc, &mut d);
        // lane `lane` of acc and d updated, the others as they were: blend under a mask whose
        // sign bit is set in that lane only
        let mut bits = [0.0; 4];
        bits[lane] = -0.0;
        // SAFETY: loads the four entries of `bits`
        let mask = unsafe { _mm256_loadu_pd(bits.as_ptr()) };
        self.acc = _mm256_blendv_pd(self.acc, acc, mask);
        self.d = _mm256_blendv_pd(self.d, d, mask);
        self.lane += 1;
        if self.lane == 4 {
            self.lane = 0;
            self.pending += 1;
            if self.pending == CHUNK / 4 {
                self.flush();
            }
        }
        _mm256_cvtsd_f64(c)
    }

    fn rows(&mut self, start: usize, z: &mut [f64]) {
        // SAFETY: a LogisticQuads is made only by `new`, compiled for AVX2 and FMA, so the CPU
        // has them
        unsafe { self.flush() };
        if let Some(keep) = self.keep.as_mut() {
            keep(start, z);
        }
        self.logs += logistic_terms(z, &self.y[start..start + z.len()]);
    }
}

/// One entry of [`logistic_terms`] given e = e^(−|z|): grows d to d + e + d·e (1 + d times
/// 1 + e) and returns (max(z, 0) − yz, σ(z) − y), the loss but for log(1 + e).
#[inline(always)]
fn logistic_entry<const FMA: bool>(z: f64, y: f64, e: f64, d: &mut f64) -> (f64, f64) {
    let q = 1.0 / (1.0 + e);
    *d = madd::<FMA>(*d, e, *d + e);
    // z.max(0.0) drops a NaN z, but e (and so d) carries it
    let sig = if z >= 0.0 { q } else { e * q };
    (madd::<FMA>(-y, z, z.max(0.0)), sig - y)
}

/// The entries of a chunk (a multiple of [`LANES`]) given their exponentials, lane j's loss
/// into `acc[j]` and its product into `d[j]` (as in [`logistic_entry`]).
#[inline(always)]
fn logistic_lanes<const FMA: bool>(
    z: &mut [f64],
    y: &[f64],
    e: &[f64],
    acc: &mut [f64; LANES],
    d: &mut [f64; LANES],
) {
    for ((zs, ys), es) in z
        .chunks_exact_mut(LANES)
        .zip(y.chunks_exact(LANES))
        .zip(e.chunks_exact(LANES))
    {
        for j in 0..LANES {
            let (l, s) = logistic_entry::<FMA>(zs[j], ys[j], es[j], &mut d[j]);
            acc[j] += l;
            zs[j] = s;
        }
    }
}

/// [`logistic_lanes`] in two AVX2 vectors, the same operations lane by lane. LLVM vectorized
/// the portable loop in 2-lane registers: for a first form of these lanes, 12.8 cycles a row
/// against 8.5 in intrinsics.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn logistic_lanes_avx2(z: &mut [f64], y: &[f64], e: &[f64], acc: &mut [f64; LANES], d: &mut [f64; LANES]) {
    use std::arch::x86_64::*;
    let n = z.len().min(y.len()).min(e.len()) / LANES * LANES;
    let (pz, py, pe) = (z.as_mut_ptr(), y.as_ptr(), e.as_ptr());
    // SAFETY: every load and store touches entries k..k + 4 with k + 4 ≤ n of z, y and e, or
    // the two halves of the eight-entry arrays
    unsafe {
        let mut a = [
            _mm256_loadu_pd(acc.as_ptr()),
            _mm256_loadu_pd(acc.as_ptr().add(4)),
        ];
        let mut p = [_mm256_loadu_pd(d.as_ptr()), _mm256_loadu_pd(d.as_ptr().add(4))];
        let mut i = 0;
        while i < n {
            for h in 0..2 {
                let k = i + 4 * h;
                let (zv, ev, yv) = (
                    _mm256_loadu_pd(pz.add(k)),
                    _mm256_loadu_pd(pe.add(k)),
                    _mm256_loadu_pd(py.add(k)),
                );
                _mm256_storeu_pd(pz.add(k), logistic_vec(zv, yv, ev, &mut a[h], &mut p[h]));
            }
            i += LANES;
        }
        _mm256_storeu_pd(acc.as_mut_ptr(), a[0]);
        _mm256_storeu_pd(acc.as_mut_ptr().add(4), a[1]);
        _mm256_storeu_pd(d.as_mut_ptr(), p[0]);
        _mm256_storeu_pd(d.as_mut_ptr().add(4), p[1]);
    }
}

/// Entries of z whose exponentials [`logistic_terms`] computes in one loop before the rest,
/// and whose logarithms it takes as one: a row block's worth (`crate::kernels::ROW_BLOCK`), a
/// multiple of [`LANES`], and at most 1023 so the product of the 1 + eᵢ ≤ 2 stays finite.
const CHUNK: usize = 64;

/// Lanes of the vectorized loops: two AVX2 vectors.
const LANES: usize = 8;

/// ((a₀ + a₁) + (a₂ + a₃)) + ((a₄ + a₅) + (a₆ + a₇)).
#[inline(always)]
fn pairwise(a: &[f64; LANES]) -> f64 {
    ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]))
}

/// Σ xᵢ with four partial sums.
#[inline(always)]
fn sum(x: &[f64]) -> f64 {
    let mut acc = [0.0; 4];
    let chunks = x.chunks_exact(4);
    let rest: f64 = chunks.remainder().iter().sum();
    for c in chunks {
        for j in 0..4 {
            acc[j] += c[j];
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + rest
}

/// z ← σ(z)(1 − σ(z)) = e^(−|z|)/(1 + e^(−|z|))², the logistic curvature weights.
pub(crate) fn sigmoid_curvature_in_place(z: &mut [f64]) {
    dispatch!(curvature_portable, curvature_avx2, (z))
}

#[inline(always)]
fn curvature_body<const FMA: bool>(z: &mut [f64]) {
    for v in z.iter_mut() {
        let e = exp1::<FMA>(-v.abs());
        let q = 1.0 / (1.0 + e);
        *v = e * q * q;
    }
}

fn curvature_portable(z: &mut [f64]) {
    curvature_body::<false>(z)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn curvature_avx2(z: &mut [f64]) {
    curvature_body::<true>(z)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numeric::{log1p_exp, sigmoid};

    /// Distance in units in the last place, for finite values of one sign.
    fn ulps(a: f64, b: f64) -> f64 {
        if a == b {
            return 0.0;
        }
        let scale = f64::EPSILON * a.abs().max(b.abs()).max(f64::MIN_POSITIVE);
        (a - b).abs() / scale
    }

    fn grid() -> Vec<f64> {
        let mut v: Vec<f64> = (-200_000..=200_000).map(|i| i as f64 * 3.7e-3).collect();
        v.extend((-745..=709).map(|i| i as f64 + 0.3));
        v.extend([
            0.0, -0.0, 1e-300, -1e-300, 5e-324, 1e-17, -1e-17, 709.7, -745.1, -744.5, -708.5,
        ]);
        v
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn four_lane_exp_is_the_scalar_exp_to_the_bit() {
        if !avx2() {
            eprintln!("AVX2 + FMA not in use (CPU or GRADFIT_CPU): exp4 is not tested");
            return;
        }
        let mut v = grid();
        v.extend([
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -746.0,
            -746.5,
            710.0,
            710.5,
            -1e308,
            1e308,
        ]);
        v.resize(v.len().next_multiple_of(4), 0.5);
        for x in v.chunks_exact(4) {
            let mut got = [0.0; 4];
            // SAFETY: the CPU has AVX2 and FMA (checked above); four-entry load and store
            unsafe {
                use std::arch::x86_64::*;
                _mm256_storeu_pd(got.as_mut_ptr(), exp4(_mm256_loadu_pd(x.as_ptr())));
            }
            for (g, xi) in got.iter().zip(x) {
                let want = exp1::<true>(*xi);
                assert!(
                    g.to_bits() == want.to_bits() || (g.is_nan() && want.is_nan()),
                    "exp({xi}): {g} against {want}"
                );
            }
        }
    }

    #[test]
    fn shifted_exp_is_the_scalar_select_and_exp_to_the_bit() {
        // every length mod 4 (the four-lane loop and the scalar rest), entries at the shift,
        // NaN, and the infinite shifts
        let mut v = grid();
        v.extend([f64::NAN, 3.0, f64::NEG_INFINITY, 3.0, -0.0, 0.0]);
        for m in [3.0, 0.0, 1e300, f64::INFINITY, f64::NAN] {
            for len in [0, 1, 2, 3, 4, 5, 7, 8, v.len()] {
                // below the shift, as a maximum's (NaN stays NaN: f64::min would drop it)
                let mut z: Vec<f64> = v[v.len() - len..]
                    .iter()
                    .map(|&x| if x.is_nan() { x } else { x.min(m) })
                    .collect();
                if m == f64::INFINITY && len > 2 {
                    z[1] = m;
                }
                let nan_in = m.is_nan() || z.iter().any(|x| x.is_nan());
                // the scalar exponential of the code that runs: the portable one (no fused
                // multiply-adds) rounds differently, and runs on CPUs without AVX2 and FMA and
                // under GRADFIT_CPU=portable
                let exp = if crate::cpu::avx2() {
                    exp1::<true>
                } else {
                    exp1::<false>
                };
                let want: Vec<f64> = z.iter().map(|&x| exp(if x == m { 0.0 } else { x - m })).collect();
                exp_shifted_in_place(&mut z, m);
                for (i, (g, w)) in z.iter().zip(&want).enumerate() {
                    assert!(
                        g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
                        "m {m} len {len} entry {i}: {g} against {w}"
                    );
                }
                if m == f64::INFINITY && len > 2 {
                    assert_eq!(z[1], 1.0);
                    assert_eq!(z[0], 0.0);
                }
                if len > 0 && nan_in {
                    assert!(z.iter().any(|x| x.is_nan()), "m {m} len {len}: NaN lost");
                }
            }
        }
    }

    #[test]
    fn exp_is_within_two_ulp_of_libm() {
        // the portable build and whatever the dispatcher picks on this CPU
        for fma in [false, true] {
            let xs = grid();
            let mut got = xs.clone();
            if fma {
                exp_shifted_in_place(&mut got, 0.0);
            } else {
                exp_shifted_portable(&mut got, 0.0);
            }
            let mut worst: f64 = 0.0;
            for (x, g) in xs.iter().zip(&got) {
                let want = x.exp();
                if want < f64::MIN_POSITIVE {
                    // subnormal: absolute error of a few of its ulps
                    assert!((g - want).abs() <= 4.0 * 5e-324, "exp({x}) = {g}, libm {want}");
                } else {
                    worst = worst.max(ulps(*g, want));
                }
            }
            assert!(worst <= 2.0, "worst {worst} ulp (fma {fma})");
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn eight_lane_exp_is_within_one_ulp_of_libm() {
        if !has_avx512_fma() {
            eprintln!("AVX-512 not in use (CPU or GRADFIT_CPU): exp8 is not tested");
            return;
        }
        // the table against 2^(j/16) to 36 digits (Python's decimal module, 60-digit
        // precision), which Rust's parse rounds correctly
        let digits = [
            "1",
            "1.04427378242741384032196647873992901",
            "1.09050773266525765920701065576070798",
            "1.13878863475669165370383028384151125",
            "1.18920711500272106671749997056047592",
            "1.24185781207348404859367746872659561",
            "1.29683955465100966593375411779245116",
            "1.35425554693689272829801474014070280",
            "1.41421356237309504880168872420969808",
            "1.47682614593949931138690748037404992",
            "1.54221082540794082361229186209073484",
            "1.61049033194925430817952066735740058",
            "1.68179283050742908606225095246642979",
            "1.75625216037329948311216061937531322",
            "1.83400808640934246348708318958828886",
            "1.91520656139714729387261127029583089",
        ];
        for (j, d) in digits.iter().enumerate() {
            assert_eq!(
                EXP2_SIXTEENTHS[j],
                d.parse::<f64>().unwrap().to_bits(),
                "2^({j}/16)"
            );
        }
        // the grid, plus every index j at both ends of its interval and the subnormal range in
        // fine steps; error in units of the last place of libm's value
        let mut xs = grid();
        xs.extend((-400..400).map(|i| i as f64 * std::f64::consts::LN_2 / 32.0));
        xs.extend((0..3000).map(|i| -708.0 - i as f64 * 1.2e-2));
        let mut got = xs.clone();
        // SAFETY: the CPU has AVX2, FMA and AVX-512 F and VL (checked above)
        unsafe { exp_in_place_avx512(&mut got) };
        let mut worst: f64 = 0.0;
        for (x, g) in xs.iter().zip(&got) {
            let want = x.exp();
            if want < f64::MIN_POSITIVE {
                assert!((g - want).abs() <= 4.0 * 5e-324, "exp8({x}) = {g}, libm {want}");
            } else if want.is_finite() {
                let ulp = f64::from_bits(want.to_bits() + 1) - want;
                worst = worst.max((g - want).abs() / ulp);
            } else {
                assert_eq!(*g, want, "exp8({x})");
            }
        }
        assert!(worst <= 1.0, "worst {worst} ulp");
        // every length of masked tail, each with a full eight before it or not: the entries
        // past the slice stay as they were
        for len in 1..16 {
            let mut buf: Vec<f64> = (0..len + 8).map(|i| -(i as f64) * 0.7).collect();
            // SAFETY: as above
            unsafe { exp_in_place_avx512(&mut buf[..len]) };
            for (i, v) in buf.iter().enumerate() {
                let x = -(i as f64) * 0.7;
                match i < len {
                    true => assert!((v - x.exp()).abs() <= 2.3e-16 * x.exp(), "len {len}: {v}"),
                    false => assert_eq!(v.to_bits(), x.to_bits(), "len {len}, past the slice"),
                }
            }
        }
        let mut v = [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            710.0,
            -800.0,
            0.0,
            -746.0,
        ];
        // SAFETY: as above
        unsafe { exp_in_place_avx512(&mut v) };
        assert!(v[0].is_nan());
        assert_eq!(&v[1..], &[f64::INFINITY, 0.0, f64::INFINITY, 0.0, 1.0, 0.0]);
    }

    #[test]
    fn exp_edges() {
        let mut v = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 710.0, -800.0, 0.0];
        exp_shifted_in_place(&mut v, 0.0);
        assert!(v[0].is_nan());
        assert_eq!(&v[1..], &[f64::INFINITY, 0.0, f64::INFINITY, 0.0, 1.0]);
    }

    #[test]
    fn logistic_terms_match_scalar_formulas() {
        let zs = grid();
        // labels of period 3, so a chunk that read them from the wrong offset would be caught
        let ys: Vec<f64> = (0..zs.len()).map(|i| f64::from(i % 3 == 1)).collect();
        // 13 takes the eight-lane path and five entries one at a time, 7 and 3 only the
        // latter; 65 and 130 leave a tail in a second or third chunk
        assert!(zs.len() > 2 * CHUNK);
        for chunk in [zs.len(), 130, 65, 13, 7, 3] {
            let (zs, ys) = (&zs[..chunk.min(zs.len())], &ys[..chunk.min(zs.len())]);
            let (want_total, scale) = logistic_total(zs, ys);
            for (path, (total, g)) in logistic_paths(zs, ys).into_iter().enumerate() {
                for ((z, y), gi) in zs.iter().zip(ys).zip(&g) {
                    let s = sigmoid(*z);
                    // σ − y: within 2 ulp of σ, or of the difference when it is the larger
                    let tol = 2.0 * f64::EPSILON * s.max((s - y).abs()) + 1e-320;
                    assert!(
                        (gi - (s - y)).abs() <= tol,
                        "path {path}: σ({z}) − {y}: {gi} vs {}",
                        s - y
                    );
                }
                let err = (total - want_total).abs() / scale;
                // 401467 entries summed in eight lanes: 1.3e-15 measured
                assert!(
                    err <= 16.0 * f64::EPSILON,
                    "path {path}, {chunk} entries: error {err:e} of Σ|terms|"
                );
            }
        }
    }

    /// Σᵢ [log(1 + e^zᵢ) − yᵢzᵢ] from libm's terms, summed with Neumaier's compensation, and
    /// Σᵢ |termᵢ| (the scale a sum's rounding error is measured against).
    fn logistic_total(zs: &[f64], ys: &[f64]) -> (f64, f64) {
        let (mut s, mut comp, mut scale) = (0.0f64, 0.0, 0.0);
        for (z, y) in zs.iter().zip(ys) {
            let (l, yz) = (log1p_exp(*z), y * z);
            for t in [l, -yz] {
                let u = s + t;
                comp += if s.abs() >= t.abs() {
                    (s - u) + t
                } else {
                    (t - u) + s
                };
                s = u;
                scale += t.abs();
            }
        }
        (s + comp, scale)
    }

    /// (loss, σ − y) from the portable path, the dispatched one (AVX2 where the CPU has it)
    /// and, with AVX2, [`LogisticQuads`].
    fn logistic_paths(zs: &[f64], ys: &[f64]) -> Vec<(f64, Vec<f64>)> {
        let mut portable = zs.to_vec();
        let lp = logistic_terms_portable(&mut portable, ys);
        let mut dispatched = zs.to_vec();
        let ld = logistic_terms(&mut dispatched, ys);
        let mut paths = vec![(lp, portable), (ld, dispatched)];
        #[cfg(target_arch = "x86_64")]
        if avx2() {
            // SAFETY: the CPU has AVX2 and FMA (checked)
            paths.push(unsafe { quads_path(zs, ys, None) });
        } else {
            eprintln!(
                "AVX2 + FMA not in use (CPU or GRADFIT_CPU): the four-row logistic terms are not tested"
            );
        }
        paths
    }

    #[cfg(target_arch = "x86_64")]
    fn avx2() -> bool {
        crate::cpu::avx2()
    }

    /// (loss, σ − y) from [`LogisticQuads`], fed the scores four at a time as a sweep does and
    /// the last fewer than four by `rows`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn quads_path(zs: &[f64], ys: &[f64], keep: Keep<'_>) -> (f64, Vec<f64>) {
        use crate::kernels::Quads;
        use std::arch::x86_64::*;
        let mut c = zs.to_vec();
        let mut quads = LogisticQuads::new(ys, keep);
        let whole = zs.len() / 4 * 4;
        for row in (0..whole).step_by(4) {
            // SAFETY: four-entry load and store at row + 4 ≤ whole; the CPU has AVX2 and FMA
            unsafe {
                let cq = quads.quad(row, _mm256_loadu_pd(zs[row..row + 4].as_ptr()));
                _mm256_storeu_pd(c[row..row + 4].as_mut_ptr(), cq);
            }
        }
        quads.rows(whole, &mut c[whole..]);
        (quads.total(), c)
    }

    /// [`quads_path`] with every row taken alone ([`crate::kernels::Quads::one`]).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn one_path(zs: &[f64], ys: &[f64], keep: Keep<'_>) -> (f64, Vec<f64>) {
        use crate::kernels::Quads;
        let mut quads = LogisticQuads::new(ys, keep);
        // SAFETY: the CPU has AVX2 and FMA (this function's)
        let c = zs
            .iter()
            .enumerate()
            .map(|(i, z)| unsafe { quads.one(i, *z) })
            .collect();
        (quads.total(), c)
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn rows_taken_alone_are_the_quads_to_the_bit() {
        if !avx2() {
            eprintln!(
                "AVX2 + FMA not in use (CPU or GRADFIT_CPU): the four-row logistic terms are not tested"
            );
            return;
        }
        // whole quads past a flush (64 rows) and the edges: the loss, every σ − y and the
        // scores kept, to the bit; with rows left over (not a whole quad), against the scalar
        // terms
        let score = |i: usize| match i % 11 {
            3 => 800.0,
            7 => -745.0,
            _ => (i as f64 * 0.77).sin() * 6.0,
        };
        for m in [4, 64, 68, 200, 1, 7, 133] {
            let zs: Vec<f64> = (0..m).map(score).collect();
            let ys: Vec<f64> = (0..m).map(|i| (i % 3 == 0) as u8 as f64).collect();
            let (mut seen_one, mut seen_quads) = (Vec::new(), Vec::new());
            let mut keep_one = |row: usize, z: &[f64]| seen_one.push((row, z.to_vec()));
            let mut keep_quads = |row: usize, z: &[f64]| seen_quads.push((row, z.to_vec()));
            // SAFETY: the CPU has AVX2 and FMA (checked above)
            let (f, c) = unsafe { one_path(&zs, &ys, Some(&mut keep_one)) };
            // SAFETY: as above
            let (want_f, want_c) = unsafe { quads_path(&zs, &ys, Some(&mut keep_quads)) };
            let kept: Vec<f64> = seen_one.iter().flat_map(|(_, z)| z.iter().copied()).collect();
            assert_eq!(kept, zs, "m = {m}: every score kept once, in order");
            let starts: Vec<usize> = seen_one.iter().map(|(row, _)| *row).collect();
            assert_eq!(
                starts,
                (0..m).step_by(64).collect::<Vec<_>>(),
                "m = {m}: a flush per 64 rows"
            );
            if m % 4 == 0 {
                assert_eq!(f.to_bits(), want_f.to_bits(), "m = {m}");
                assert_eq!(c, want_c, "m = {m}");
                // (`quads_path` hands `rows` the empty rest, and `keep` sees it)
                seen_quads.retain(|(_, z)| !z.is_empty());
                assert_eq!(seen_one, seen_quads, "m = {m}");
            } else {
                let mut scalar = zs.clone();
                let want_f = logistic_terms(&mut scalar, &ys);
                assert!(
                    (f - want_f).abs() <= 1e-13 * want_f.abs(),
                    "m = {m}: {f} against {want_f}"
                );
                assert!(
                    c.iter().zip(&scalar).all(|(a, b)| (a - b).abs() <= 1e-15),
                    "m = {m}"
                );
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn four_row_terms_at_the_edges_and_their_scores_kept_in_order() {
        if !avx2() {
            eprintln!(
                "AVX2 + FMA not in use (CPU or GRADFIT_CPU): the four-row logistic terms are not tested"
            );
            return;
        }
        // one NaN lane: its loss is NaN and its σ − y, the other lanes' are untouched
        let zs = [
            800.0,
            -800.0,
            f64::NAN,
            3.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.0,
            -2.0,
            5.0,
        ];
        let ys = [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0];
        let mut seen: Vec<(usize, Vec<f64>)> = Vec::new();
        let mut keep = |row: usize, z: &[f64]| seen.push((row, z.to_vec()));
        // SAFETY: the CPU has AVX2 and FMA (checked above)
        let (total, c) = unsafe { quads_path(&zs, &ys, Some(&mut keep)) };
        assert!(total.is_nan());
        let mut want = zs.to_vec();
        logistic_terms(&mut want, &ys);
        for (i, (ci, wi)) in c.iter().zip(&want).enumerate() {
            assert!(
                ci.to_bits() == wi.to_bits() || (i == 2 && ci.is_nan()),
                "row {i}: {ci} against {wi}"
            );
        }
        assert_eq!(&c[..2], &[0.0, 0.0]);
        assert_eq!(&c[4..6], &[0.0, 0.0]);
        // every score once, in order (the quads, then the row left over), NaN kept as NaN
        let rows: Vec<usize> = seen.iter().map(|(r, _)| *r).collect();
        assert_eq!(rows, [0, 8]);
        let kept: Vec<f64> = seen.into_iter().flat_map(|(_, z)| z).collect();
        assert_eq!(kept.len(), zs.len());
        assert!(kept.iter().zip(&zs).all(|(k, z)| k.to_bits() == z.to_bits()));
        // the finite rows alone: the limits at ±800 and ±∞ as on the other paths
        let (total, _) = {
            let (zs, ys) = ([800.0, -800.0, 800.0, -800.0, 1.0], [1.0, 0.0, 1.0, 0.0, 0.0]);
            // SAFETY: as above
            unsafe { quads_path(&zs, &ys, None) }
        };
        assert!(
            (total - log1p_exp(1.0)).abs() <= 2.0 * f64::EPSILON * total,
            "{total}"
        );
    }

    /// Scores near 0, where every uᵢ = 1 + e^(−|zᵢ|) is near 2 and a chunk's product near 2⁶⁴,
    /// and scores of one sign in long runs: the product of logarithms is as accurate as their
    /// sum.
    #[test]
    fn logistic_terms_product_of_logarithms_is_accurate() {
        let zs: Vec<f64> = (0..20_000)
            .map(|i| {
                let t = (i as f64 * 0.618_033_988_749_895).fract();
                if i % 1000 < 500 {
                    (t - 0.5) * 1e-3
                } else {
                    (t - 0.5) * 60.0
                }
            })
            .collect();
        let ys: Vec<f64> = (0..zs.len()).map(|i| f64::from(i % 7 < 3)).collect();
        let (want, scale) = logistic_total(&zs, &ys);
        for (path, (total, _)) in logistic_paths(&zs, &ys).into_iter().enumerate() {
            let err = (total - want).abs() / scale;
            assert!(
                err <= 16.0 * f64::EPSILON,
                "path {path}: error {err:e} of Σ|terms|"
            );
        }
        // terms of 1e-13..1e-17: uᵢ rounds to 1 (or 1 + ulp), so the loss is all in the
        // correction cᵢ/uᵢ, and its relative error must still be a few ulp
        let tiny: Vec<f64> = (0..1000)
            .map(|i| -30.0 - f64::from(i % 10) - 0.1 * f64::from(i % 7))
            .collect();
        let zeros = vec![0.0; tiny.len()];
        let (want, _) = logistic_total(&tiny, &zeros);
        for (path, (total, _)) in logistic_paths(&tiny, &zeros).into_iter().enumerate() {
            assert!(
                (total - want).abs() <= 4.0 * f64::EPSILON * want,
                "path {path}: {total:e} vs {want:e}"
            );
        }
    }

    #[test]
    fn ln_is_within_one_ulp_of_libm() {
        for fma in [false, true] {
            let mut worst: f64 = 0.0;
            let xs = (0..200_000)
                .map(|i| 1.0 + i as f64 * 5e-5)
                .chain((-1020..1020).map(|e| 1.37 * 2f64.powi(e)))
                .chain([f64::MIN_POSITIVE, f64::MAX, 2.0, 0.5, std::f64::consts::SQRT_2]);
            for x in xs {
                let got = if fma { ln1::<true>(x) } else { ln1::<false>(x) };
                worst = worst.max(ulps(got, x.ln()));
            }
            assert!(worst <= 1.0, "worst {worst} ulp (fma {fma})");
        }
        assert_eq!(ln1::<false>(1.0), 0.0);
        assert!(ln1::<false>(f64::NAN).is_nan());
    }

    #[test]
    fn softmax_rows_match_the_scalar_softmax() {
        // 37 rows: two full chunks of sixteen and a partial one; scores up to ±450; k = 13 is
        // past the class counts compiled as constants
        for k in [2, 5, 10, 13] {
            let rows = 37;
            let z: Vec<f64> = (0..rows * k)
                .map(|i| ((i * 7 % 11) as f64 - 5.0) * 90.0)
                .collect();
            let y: Vec<usize> = (0..rows).map(|r| r % k).collect();
            // the dispatched path (AVX-512's exponentials where the CPU has them), AVX2's
            // (what a CPU without AVX-512 runs), and the portable one
            for (name, got_f, got) in ["dispatched", "avx2", "portable"].map(|name| {
                let mut got = z.clone();
                let f = match name {
                    "dispatched" => softmax_rows(&mut got, k, &y),
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: the CPU has AVX2 and FMA (checked)
                    "avx2" if avx2() => unsafe { softmax_rows_avx2(&mut got, k, &y) },
                    _ => softmax_rows_portable(&mut got, k, &y),
                };
                (name, f, got)
            }) {
                let mut want_f = 0.0;
                for ((row, got), yi) in z.chunks(k).zip(got.chunks(k)).zip(&y) {
                    let mut p = vec![0.0; k];
                    want_f += crate::numeric::softmax_into(row, &mut p) - row[*yi];
                    for (a, b) in got.iter().zip(&p) {
                        assert!(
                            (a - b).abs() <= 4.0 * f64::EPSILON * b + 1e-300,
                            "{name}: {a} vs {b}"
                        );
                    }
                }
                assert!((got_f - want_f).abs() <= 1e-13 * want_f.abs(), "{name}, k {k}");
            }
        }
        // a +∞ score: p = 1 there; the row adds 0 if it is the label's, else +∞
        let mut z = [f64::INFINITY, 0.0, 1.0];
        assert_eq!(softmax_rows(&mut z, 3, &[0]), 0.0);
        assert_eq!(z, [1.0, 0.0, 0.0]);
        let mut z = [f64::INFINITY, 0.0, 1.0];
        assert_eq!(softmax_rows(&mut z, 3, &[2]), f64::INFINITY);
        let mut z = [f64::NAN, 0.0];
        assert!(softmax_rows(&mut z, 2, &[1]).is_nan());
    }

    #[test]
    fn nan_and_infinities_propagate() {
        let mut z = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.0];
        let total = logistic_terms(&mut z[..1], &[0.0]);
        assert!(total.is_nan() && z[0].is_nan());
        // the limits: log(1 + e^800) − 800 and log(1 + e^−800) are 0 to within a subnormal,
        // σ(±∞) − y exactly 0 (the loss at ±∞ is ∞ − ∞)
        for (path, (total, g)) in logistic_paths(&[800.0, -800.0], &[1.0, 0.0])
            .into_iter()
            .enumerate()
        {
            assert!((0.0..1e-300).contains(&total), "path {path}: {total:e}");
            assert_eq!(g, [0.0, 0.0], "path {path}");
        }
        for (path, (_, g)) in logistic_paths(&z[1..3], &[1.0, 0.0]).into_iter().enumerate() {
            assert_eq!(g, [0.0, 0.0], "path {path}");
        }
        let mut c = [0.0, 40.0, -40.0, f64::NAN];
        sigmoid_curvature_in_place(&mut c);
        assert_eq!(c[0], 0.25);
        assert!((c[1] - sigmoid(40.0) * sigmoid(-40.0)).abs() < 1e-30);
        assert_eq!(c[1], c[2]);
        assert!(c[3].is_nan());
    }
}
