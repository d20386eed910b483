//! eˣ and log(1 + eᶻ) over whole slices, written so the compiler vectorizes them.
//!
//! libm's `exp` and `ln_1p` cost about 6.5 and 8.6 ns per call here, more than reading a row
//! of 50 features; a logistic or softmax evaluation spent most of its time in them. These
//! loops are branch-free (selects, bit tricks, polynomials), so LLVM turns them into AVX2 code
//! doing four arguments a vector (`logistic_terms` two vectors at a time); compiled once for
//! AVX2 + FMA (chosen at run time, like [`crate::kernels`]) and once portably.
//!
//! Accuracy: eˣ is a degree-13 Taylor polynomial (Estrin's scheme) on |r| ≤ ln2/2 after x = k·ln2 + r (truncation
//! below 1e-17, relative), scaled by 2ᵏ in two exact steps so subnormal results and the edge of
//! overflow come out right; log(1 + e) for e ∈ [0, 1] is fdlibm's `log` kernel on u = 1 + e
//! plus the rounding error of that sum, (e − (u − 1))/u. Measured against libm on a dense grid
//! (the tests): eˣ within 2 ulp, log(1 + eᶻ) within 3. NaN propagates;
//! eˣ is 0 below −746 and +∞ above 710.

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
    let f = v - 1.0;
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

/// (log(1 + eᶻ), σ(z)) from e = e^(−|z|): one exponential, no branch.
#[cfg(test)]
#[inline(always)]
fn log1p_exp_sigmoid1<const FMA: bool>(z: f64) -> (f64, f64) {
    log1p_exp_sigmoid_from::<FMA>(z, exp1::<FMA>(-z.abs()))
}

/// (log(1 + eᶻ), σ(z)) given e = e^(−|z|): log(1 + eᶻ) = max(z, 0) + log(1 + e), and
/// σ(z) = 1/(1 + e) for z ≥ 0, e/(1 + e) below; no branch.
#[inline(always)]
fn log1p_exp_sigmoid_from<const FMA: bool>(z: f64, e: f64) -> (f64, f64) {
    let u = 1.0 + e; // in [1, 2]
    let q = 1.0 / u;
    let c = e - (u - 1.0); // exact: what rounding u dropped of e
                           // log u = k·ln2 + log(1 + f), 1 + f ∈ [√2/2, √2]
    let big = u64::from(u > std::f64::consts::SQRT_2);
    // v = u or u/2 by the exponent bits, not a select of two values: given a select, LLVM
    // evaluated `log_reduced` on both and blended the results (three divisions, not two)
    let v = f64::from_bits(u.to_bits() - (big << 52));
    let k = big as f64;
    let log_u = log_reduced::<FMA>(v, k);
    let l = z.max(0.0) + madd::<FMA>(c, q, log_u);
    // z.max(0.0) drops a NaN z, but e (and so l) carries it
    let sig = if z >= 0.0 { q } else { e * q };
    (l, sig)
}

macro_rules! dispatch {
    ($portable:ident, $avx2:ident, ($($arg:expr),*)) => {{
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                // SAFETY: the CPU has the features the function is compiled for (checked above).
                return unsafe { $avx2($($arg),*) };
            }
        }
        $portable($($arg),*)
    }};
}

/// x ← eˣ, elementwise.
pub(crate) fn exp_in_place(x: &mut [f64]) {
    dispatch!(exp_portable, exp_avx2, (x))
}

#[inline(always)]
fn exp_body<const FMA: bool>(x: &mut [f64]) {
    for v in x.iter_mut() {
        *v = exp1::<FMA>(*v);
    }
}

fn exp_portable(x: &mut [f64]) {
    exp_body::<false>(x)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn exp_avx2(x: &mut [f64]) {
    exp_body::<true>(x)
}

/// Row-wise softmax, in place, of z holding rows of k entries each (contiguous), shifted by
/// each row's maximum; returns `Σ_r [lse(z_r) − z_r[y_r]]` (the softmax-regression loss of the
/// rows with labels y). Sixteen rows at a time: their shifts, one vectorized loop of
/// exponentials, each row scaled by the reciprocal of its sum, and the sixteen logarithms of
/// the sums in one vectorized loop (the sums lie in [1, k], so [`ln1`]'s domain).
pub(crate) fn softmax_rows(z: &mut [f64], k: usize, y: &[usize]) -> f64 {
    dispatch!(softmax_rows_portable, softmax_rows_avx2, (z, k, y))
}

/// [`softmax_rows_rows`] with k a constant for 2 to 12 classes, so the per-row loops (maximum,
/// shift, sum, scaling) unroll: one-thread L-BFGS on softmax 10000 × 50, k = 5, took 0.91× the
/// time, 20000 × 50 with k = 10 0.93×.
#[inline(always)]
fn softmax_rows_body<const FMA: bool>(z: &mut [f64], k: usize, y: &[usize]) -> f64 {
    match k {
        2 => softmax_rows_rows::<FMA>(z, 2, y),
        3 => softmax_rows_rows::<FMA>(z, 3, y),
        4 => softmax_rows_rows::<FMA>(z, 4, y),
        5 => softmax_rows_rows::<FMA>(z, 5, y),
        6 => softmax_rows_rows::<FMA>(z, 6, y),
        7 => softmax_rows_rows::<FMA>(z, 7, y),
        8 => softmax_rows_rows::<FMA>(z, 8, y),
        9 => softmax_rows_rows::<FMA>(z, 9, y),
        10 => softmax_rows_rows::<FMA>(z, 10, y),
        11 => softmax_rows_rows::<FMA>(z, 11, y),
        12 => softmax_rows_rows::<FMA>(z, 12, y),
        _ => softmax_rows_rows::<FMA>(z, k, y),
    }
}

#[inline(always)]
fn softmax_rows_rows<const FMA: bool>(z: &mut [f64], k: usize, y: &[usize]) -> f64 {
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
        for v in zs.iter_mut() {
            *v = exp1::<FMA>(*v);
        }
        for (row, s) in zs.chunks_exact_mut(k).zip(sums.iter_mut()) {
            let total: f64 = row.iter().sum();
            *s = total;
            let inv = 1.0 / total;
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
    softmax_rows_body::<false>(z, k, y)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn softmax_rows_avx2(z: &mut [f64], k: usize, y: &[usize]) -> f64 {
    softmax_rows_body::<true>(z, k, y)
}

/// The logistic loss terms of a block of rows: returns Σᵢ [log(1 + e^zᵢ) − yᵢzᵢ] and
/// replaces zᵢ by σ(zᵢ) − yᵢ, the factor of aᵢ in the gradient.
pub(crate) fn logistic_terms(z: &mut [f64], y: &[f64]) -> f64 {
    dispatch!(logistic_terms_portable, logistic_terms_avx2, (z, y))
}

#[inline(always)]
fn logistic_terms_body<const FMA: bool>(z: &mut [f64], y: &[f64]) -> f64 {
    let n = z.len().min(y.len());
    let (z, y) = (&mut z[..n], &y[..n]);
    // the exponentials of a chunk first, into a buffer, then the rest: one loop doing both
    // was one long dependency chain per element (exponential, two divisions, logarithm) that
    // the core's window could not overlap across iterations; split, each loop's chains are
    // short enough. Then eight lanes (two AVX2 vectors), four, and one at a time; each lane's
    // loss summed apart, so the sum does not depend on where the chunks end.
    let (n8, n4) = (n / LANES * LANES, n / 4 * 4);
    let (mut eight, mut four, mut rest) = ([0.0; LANES], [0.0; 4], 0.0);
    let mut buf = [0.0; CHUNK];
    for start in (0..n).step_by(CHUNK) {
        let end = (start + CHUNK).min(n);
        let (z, y, e) = (&mut z[start..end], &y[start..end], &mut buf[..end - start]);
        for (ei, zi) in e.iter_mut().zip(z.iter()) {
            *ei = exp1::<FMA>(-zi.abs());
        }
        let (a8, a4) = (n8.clamp(start, end) - start, n4.clamp(start, end) - start);
        let (z8, z_rest) = z.split_at_mut(a8);
        let (z4, z1) = z_rest.split_at_mut(a4 - a8);
        let (y8, y_rest) = y.split_at(a8);
        let (y4, y1) = y_rest.split_at(a4 - a8);
        let (e8, e_rest) = e.split_at(a8);
        let (e4, e1) = e_rest.split_at(a4 - a8);
        logistic_lanes::<FMA, LANES>(z8, y8, e8, &mut eight);
        logistic_lanes::<FMA, 4>(z4, y4, e4, &mut four);
        for ((zi, yi), ei) in z1.iter_mut().zip(y1).zip(e1) {
            let (l, s) = log1p_exp_sigmoid_from::<FMA>(*zi, *ei);
            rest += l - yi * *zi;
            *zi = s - yi;
        }
    }
    pairwise(&eight) + ((four[0] + four[1]) + (four[2] + four[3])) + rest
}

/// Entries of z whose exponentials [`logistic_terms`] computes in one loop before the rest: a
/// row block's worth (`crate::kernels::ROW_BLOCK`), a multiple of [`LANES`].
const CHUNK: usize = 64;

/// The logistic terms of z (a multiple of L long) L lanes at a time, given e = e^(−|z|),
/// each lane's loss added to its own entry of `acc`.
#[inline(always)]
fn logistic_lanes<const FMA: bool, const L: usize>(z: &mut [f64], y: &[f64], e: &[f64], acc: &mut [f64; L]) {
    for ((zs, ys), es) in z
        .chunks_exact_mut(L)
        .zip(y.chunks_exact(L))
        .zip(e.chunks_exact(L))
    {
        for j in 0..L {
            let (l, s) = log1p_exp_sigmoid_from::<FMA>(zs[j], es[j]);
            acc[j] += l - ys[j] * zs[j];
            zs[j] = s - ys[j];
        }
    }
}

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

fn logistic_terms_portable(z: &mut [f64], y: &[f64]) -> f64 {
    logistic_terms_body::<false>(z, y)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn logistic_terms_avx2(z: &mut [f64], y: &[f64]) -> f64 {
    logistic_terms_body::<true>(z, y)
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

    #[test]
    fn exp_is_within_two_ulp_of_libm() {
        // the portable build and whatever the dispatcher picks on this CPU
        for fma in [false, true] {
            let xs = grid();
            let mut got = xs.clone();
            if fma {
                exp_in_place(&mut got);
            } else {
                exp_portable(&mut got);
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

    #[test]
    fn exp_edges() {
        let mut v = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 710.0, -800.0, 0.0];
        exp_in_place(&mut v);
        assert!(v[0].is_nan());
        assert_eq!(&v[1..], &[f64::INFINITY, 0.0, f64::INFINITY, 0.0, 1.0]);
    }

    #[test]
    fn logistic_terms_match_scalar_formulas() {
        let zs = grid();
        // labels of period 3, so a chunk that read them from the wrong offset would be caught
        let ys: Vec<f64> = (0..zs.len()).map(|i| f64::from(i % 3 == 1)).collect();
        // 13 takes the eight-lane, four-lane and one-at-a-time paths, 7 the last two, 3 the
        // last; 65 and 130 leave those tails in a second or third chunk of exponentials
        assert!(zs.len() > 2 * CHUNK);
        for chunk in [zs.len(), 130, 65, 13, 7, 3] {
            let (zs, ys) = (&zs[..chunk.min(zs.len())], &ys[..chunk.min(zs.len())]);
            let mut g = zs.to_vec();
            let total = logistic_terms(&mut g, ys);
            let mut want_total = 0.0;
            for ((z, y), gi) in zs.iter().zip(ys).zip(&g) {
                let l = log1p_exp(*z);
                want_total += l - y * z;
                let s = sigmoid(*z);
                // σ − y: within 2 ulp of σ, or of the difference when it is the larger
                let tol = 2.0 * f64::EPSILON * s.max((s - y).abs()) + 1e-320;
                assert!((gi - (s - y)).abs() <= tol, "σ({z}) − {y}: {gi} vs {}", s - y);
            }
            assert!((total - want_total).abs() <= 1e-13 * want_total.abs().max(1.0));
        }
        // the loss term alone, element by element
        for z in grid() {
            let (l, _) = log1p_exp_sigmoid1::<false>(z);
            assert!(
                ulps(l, log1p_exp(z)) <= 3.0,
                "log1p_exp({z}): {l} vs {}",
                log1p_exp(z)
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
            for (name, got_f, got) in [("dispatched", true), ("portable", false)].map(|(name, d)| {
                let mut got = z.clone();
                let f = if d {
                    softmax_rows(&mut got, k, &y)
                } else {
                    softmax_rows_portable(&mut got, k, &y)
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
        let (l, s) = log1p_exp_sigmoid1::<false>(f64::INFINITY);
        assert_eq!((l, s), (f64::INFINITY, 1.0));
        let (l, s) = log1p_exp_sigmoid1::<false>(f64::NEG_INFINITY);
        assert_eq!((l, s), (0.0, 0.0));
        let mut c = [0.0, 40.0, -40.0, f64::NAN];
        sigmoid_curvature_in_place(&mut c);
        assert_eq!(c[0], 0.25);
        assert!((c[1] - sigmoid(40.0) * sigmoid(-40.0)).abs() < 1e-30);
        assert_eq!(c[1], c[2]);
        assert!(c[3].is_nan());
    }
}
