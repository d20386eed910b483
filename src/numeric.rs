//! Numerically stable primitives shared by the problems.
//!
//! Each function is exact where the naive formula overflows: `log(1 + eᶻ)` for z = 1000 is
//! 1000, not inf; log Σ exp zᵢ is shifted by the maximum, so it is finite for zᵢ of ±1000.

/// log(1 + eᶻ), without overflow: for z > 0 it is z + log(1 + e⁻ᶻ).
///
/// ```
/// use gradfit::numeric::log1p_exp;
/// assert_eq!(log1p_exp(1000.0), 1000.0);
/// assert!((log1p_exp(0.0) - 2f64.ln()).abs() < 1e-15);
/// assert_eq!(log1p_exp(-1000.0), 0.0);
/// ```
pub fn log1p_exp(z: f64) -> f64 {
    if z > 0.0 {
        z + (-z).exp().ln_1p()
    } else {
        z.exp().ln_1p()
    }
}

/// The logistic sigmoid σ(z) = 1 / (1 + e⁻ᶻ) = d/dz log(1 + eᶻ), computed without overflow.
///
/// ```
/// use gradfit::numeric::sigmoid;
/// assert_eq!(sigmoid(1000.0), 1.0);
/// assert_eq!(sigmoid(-1000.0), 0.0);
/// assert_eq!(sigmoid(0.0), 0.5);
/// ```
pub fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// (log(1 + eᶻ), σ(z)) with one exponential, e^(−|z|), shared by both.
///
/// ```
/// use gradfit::numeric::{log1p_exp, log1p_exp_and_sigmoid, sigmoid};
/// for z in [-800.0, -3.0, 0.0, 2.5, 800.0] {
///     let (l, s) = log1p_exp_and_sigmoid(z);
///     assert!((l - log1p_exp(z)).abs() <= 1e-15 * l.abs().max(1.0));
///     assert!((s - sigmoid(z)).abs() <= 1e-16);
/// }
/// ```
#[inline]
pub fn log1p_exp_and_sigmoid(z: f64) -> (f64, f64) {
    let e = (-z.abs()).exp();
    let l = z.max(0.0) + e.ln_1p();
    let s = if z >= 0.0 { 1.0 / (1.0 + e) } else { e / (1.0 + e) };
    (l, s)
}

/// log Σᵢ exp zᵢ, shifted by its own maximum m: m + log Σᵢ exp(zᵢ − m).
///
/// Empty input gives −∞ (the log of an empty sum).
///
/// ```
/// use gradfit::numeric::log_sum_exp;
/// assert_eq!(log_sum_exp([1000.0, 1000.0]), 1000.0 + 2f64.ln());
/// assert_eq!(log_sum_exp([-1000.0]), -1000.0);
/// ```
pub fn log_sum_exp(z: impl IntoIterator<Item = f64> + Clone) -> f64 {
    let m = z.clone().into_iter().fold(f64::NEG_INFINITY, f64::max);
    if !m.is_finite() {
        return m;
    }
    let s: f64 = z.into_iter().map(|v| (v - m).exp()).sum();
    m + s.ln()
}

/// Writes p = softmax(z) into `p` and returns lse(z) = log Σ exp zᵢ, both with the max shift.
///
/// p is the gradient of lse at z (the seeds' ∇ log Σ exp yᵢ = e^y / 1ᵀe^y).
///
/// ```
/// use gradfit::numeric::softmax_into;
/// let mut p = [0.0; 2];
/// let lse = softmax_into(&[1000.0, -1000.0], &mut p);
/// assert_eq!(lse, 1000.0);
/// assert_eq!(p, [1.0, 0.0]);
/// ```
pub fn softmax_into(z: &[f64], p: &mut [f64]) -> f64 {
    let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut s = 0.0;
    for (pi, zi) in p.iter_mut().zip(z) {
        *pi = (zi - m).exp();
        s += *pi;
    }
    for pi in p.iter_mut() {
        *pi /= s;
    }
    m + s.ln()
}

/// Replaces z by softmax(z) in place and returns lse(z), with the max shift.
///
/// ```
/// use gradfit::numeric::softmax_in_place;
/// let mut z = [0.0, 0.0];
/// assert_eq!(softmax_in_place(&mut z), 2f64.ln());
/// assert_eq!(z, [0.5, 0.5]);
/// ```
pub fn softmax_in_place(z: &mut [f64]) -> f64 {
    let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut s = 0.0;
    for v in z.iter_mut() {
        *v = (*v - m).exp();
        s += *v;
    }
    for v in z.iter_mut() {
        *v /= s;
    }
    m + s.ln()
}

/// ‖v‖₂ without overflow: nalgebra's `norm()` where it is finite, else max|vᵢ|·‖v/max|vᵢ|‖₂,
/// so a vector of finite entries (even of size 1e160) has a finite norm; a NaN or an infinite
/// entry still gives NaN or ∞.
///
/// ```
/// use gradfit::numeric::norm2;
/// use gradfit::Vector;
/// let v = Vector::from_vec(vec![3e160, 4e160]);
/// assert_eq!(v.norm(), f64::INFINITY); // the squares overflow
/// assert!((norm2(&v) / 5e160 - 1.0).abs() < 1e-15);
/// ```
///
/// Any column vector storage: a `Vector`, or a view of a slice (`DVectorView::from_slice`).
pub fn norm2<S>(v: &nalgebra::Matrix<f64, nalgebra::Dyn, nalgebra::U1, S>) -> f64
where
    S: nalgebra::storage::Storage<f64, nalgebra::Dyn, nalgebra::U1>,
{
    let n = v.norm();
    if n.is_finite() || v.iter().any(|x| !x.is_finite()) {
        return n;
    }
    let scale = v.amax();
    scale * v.iter().map(|x| (x / scale) * (x / scale)).sum::<f64>().sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log1p_exp_matches_naive_where_naive_is_safe() {
        for z in [-30.0, -3.0, -0.5, 0.0, 0.5, 3.0, 30.0] {
            let naive = (1.0 + f64::exp(z)).ln();
            assert!((log1p_exp(z) - naive).abs() <= 1e-14 * naive.max(1.0), "z = {z}");
        }
    }

    #[test]
    fn sigmoid_is_derivative_of_log1p_exp() {
        for z in [-5.0, -1.0, 0.0, 2.0, 7.0] {
            let h = 1e-5;
            let fd = (log1p_exp(z + h) - log1p_exp(z - h)) / (2.0 * h);
            assert!((fd - sigmoid(z)).abs() < 1e-9);
        }
    }

    #[test]
    fn lse_shift_invariance() {
        let z = [0.3, -1.2, 2.5];
        let c = 700.0;
        let shifted = z.map(|v| v + c);
        assert!((log_sum_exp(shifted) - log_sum_exp(z) - c).abs() < 1e-12);
    }

    #[test]
    fn softmax_sums_to_one() {
        let mut p = [0.0; 3];
        let lse = softmax_into(&[1.0, 2.0, 3.0], &mut p);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        // lse = log(e + e² + e³), derived by hand
        let expect = (1f64.exp() + 2f64.exp() + 3f64.exp()).ln();
        assert!((lse - expect).abs() < 1e-14);
    }
}
