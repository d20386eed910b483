//! Every closed form against finite differences, and the checker against wrong derivatives.

mod common;

use argmin::core::{CostFunction, Gradient, Hessian};
use common::*;
use gradfit::check::{
    check_directional, check_gradient, check_gradient_scaled, check_hessian, check_hessian_vec, order_study,
    Tolerance,
};
use gradfit::numeric::log_sum_exp;
use gradfit::problems::identities::*;
use gradfit::problems::{GramLeastSquares, LeastSquares, LogSumExp, Logistic, Objective, Quadratic, Softmax};
use gradfit::{Matrix, Vector};
use proptest::prelude::*;

const TIGHT: Tolerance = Tolerance { rel: 1e-6 };

/// Gradient, Hessian, symmetry and Hessian-vector checks at x, all at 1e-6 relative.
fn assert_all_checks<P>(p: &P, x: &Vector) -> Result<(), TestCaseError>
where
    P: Objective
        + CostFunction<Param = Vector, Output = f64>
        + Gradient<Param = Vector, Gradient = Vector>
        + Hessian<Param = Vector, Hessian = Matrix>,
{
    let g = check_gradient(p, x, TIGHT).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(g.passed, "{}", g);
    let h = check_hessian(p, x, TIGHT).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(h.passed, "{}", h);
    prop_assert!(h.symmetry_error <= 1e-12, "{}", h);
    let hv = check_hessian_vec(p, x, 2, 7, Tolerance { rel: 1e-10 })
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(hv.passed, "{}", hv);
    let (f, g2) = p
        .cost_and_gradient(x)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(f, p.value(x).map_err(|e| TestCaseError::fail(e.to_string()))?);
    prop_assert_eq!(
        &g2,
        &p.gradient(x).map_err(|e| TestCaseError::fail(e.to_string()))?
    );
    Ok(())
}

/// The smallest eigenvalue of the symmetric part, relative to the largest.
fn assert_psd(h: &Matrix) -> Result<(), TestCaseError> {
    let sym = (h + h.transpose()) * 0.5;
    let eig = sym.symmetric_eigenvalues();
    let max = eig.amax().max(1.0);
    prop_assert!(
        eig.min() >= -1e-10 * max,
        "Hessian not PSD: min eigenvalue {}",
        eig.min()
    );
    Ok(())
}

proptest! {
    #![proptest_config(fixed(48))]

    #[test]
    fn least_squares(m in 1usize..12, n in 1usize..6, k in 1usize..8, lambda in 0.0f64..2.0, seed in any::<u64>()) {
        let mut r = rng(seed);
        let a = gaussian_matrix(&mut r, m, n);
        let b = gaussian_matrix(&mut r, m, k);
        let p = LeastSquares::multi(a, b, lambda).unwrap();
        let x = gaussian_vector(&mut r, n * k);
        assert_all_checks(&p, &x)?;
        assert_psd(&p.hessian(&x).unwrap())?;
        // the Gram form (AᵀA factored) where AᵀA is positive definite: the same function
        if m >= n + 2 {
            let gram = GramLeastSquares::new(&p).map_err(|e| TestCaseError::fail(e.to_string()))?;
            assert_all_checks(&gram, &x)?;
            let (f, g) = p.cost_and_gradient(&x).unwrap();
            let (fg, gg) = gram.cost_and_gradient(&x).unwrap();
            prop_assert!((f - fg).abs() <= 1e-10 * f.max(1.0), "f {} vs {}", f, fg);
            prop_assert!((&g - &gg).amax() <= 1e-10 * g.amax().max(1.0));
        }
    }

    #[test]
    fn quadratic_any_square_a(n in 1usize..7, lambda in 0.0f64..2.0, seed in any::<u64>()) {
        let mut r = rng(seed);
        let p = Quadratic::new(gaussian_matrix(&mut r, n, n), gaussian_vector(&mut r, n), lambda).unwrap();
        assert_all_checks(&p, &gaussian_vector(&mut r, n))?;
    }

    #[test]
    fn log_sum_exp_problem(m in 1usize..10, n in 1usize..6, lambda in 0.0f64..1.0, seed in any::<u64>()) {
        let mut r = rng(seed);
        let p = LogSumExp::new(gaussian_matrix(&mut r, m, n), gaussian_vector(&mut r, m), lambda).unwrap();
        let x = gaussian_vector(&mut r, n);
        assert_all_checks(&p, &x)?;
        assert_psd(&p.hessian(&x).unwrap())?;
    }

    #[test]
    fn logistic(m in 1usize..15, n in 1usize..5, lambda in 0.0f64..1.0, intercept in any::<bool>(), seed in any::<u64>()) {
        let mut r = rng(seed);
        let mut a = gaussian_matrix(&mut r, m, n);
        if intercept { a = with_intercept(&a); }
        let y = Vector::from_iterator(m, labels(&mut r, &a, 2).into_iter().map(|c| c as f64));
        let p = Logistic::new(a, y, lambda, intercept).unwrap();
        let x = gaussian_vector(&mut r, p.dim());
        assert_all_checks(&p, &x)?;
        assert_psd(&p.hessian(&x).unwrap())?;
    }

    #[test]
    fn softmax(m in 1usize..15, n in 1usize..4, k in 2usize..15, lambda in 0.0f64..1.0, intercept in any::<bool>(), seed in any::<u64>()) {
        let mut r = rng(seed);
        let mut a = gaussian_matrix(&mut r, m, n);
        if intercept { a = with_intercept(&a); }
        let y = labels(&mut r, &a, k);
        let p = Softmax::new(a, y, k, lambda, intercept).unwrap();
        let x = gaussian_vector(&mut r, p.dim());
        assert_all_checks(&p, &x)?;
        assert_psd(&p.hessian(&x).unwrap())?;
    }

    #[test]
    fn vector_identities(n in 1usize..6, seed in any::<u64>()) {
        let mut r = rng(seed);
        let x = gaussian_vector(&mut r, n);
        assert_all_checks(&Linear { a: gaussian_vector(&mut r, n) }, &x)?;
        assert_all_checks(&SquaredNorm { n }, &x)?;
        assert_all_checks(&ScaledSquaredNorm { a: gaussian_vector(&mut r, 3), b: gaussian_vector(&mut r, 3), n }, &x)?;
        assert_all_checks(&OuterProductForm { a: gaussian_vector(&mut r, n), b: gaussian_vector(&mut r, n) }, &x)?;
        assert_all_checks(&Lse::new(n), &x)?;
        // xᵀAx is the quadratic problem with b = 0
        assert_all_checks(&Quadratic::new(gaussian_matrix(&mut r, n, n), Vector::zeros(n), 0.0).unwrap(), &x)?;
    }

    #[test]
    fn matrix_identities(p in 1usize..4, q in 1usize..4, s in 1usize..3, seed in any::<u64>()) {
        let mut r = rng(seed);
        assert_all_checks(&Trace { n: p }, &gaussian_vector(&mut r, p * p))?;
        // trace(AX): A p×q, X q×p
        assert_all_checks(&TraceProduct { a: gaussian_matrix(&mut r, p, q) }, &gaussian_vector(&mut r, q * p))?;
        assert_all_checks(&TraceTransposeProduct { a: gaussian_matrix(&mut r, p, q) }, &gaussian_vector(&mut r, p * q))?;
        // trace(XᵀAX): A p×p, X p×q
        assert_all_checks(&TraceQuadratic { a: gaussian_matrix(&mut r, p, p), m: q }, &gaussian_vector(&mut r, p * q))?;
        assert_all_checks(&SquaredNorm { n: p * q }, &gaussian_vector(&mut r, p * q))?;
        assert_all_checks(&Bilinear { a: gaussian_vector(&mut r, p), b: gaussian_vector(&mut r, q) }, &gaussian_vector(&mut r, p * q))?;
        // trace(AᵀXB): A p×s, X p×q, B q×s
        assert_all_checks(&TraceSandwich { a: gaussian_matrix(&mut r, p, s), b: gaussian_matrix(&mut r, q, s) }, &gaussian_vector(&mut r, p * q))?;
    }

    #[test]
    fn chain_rules(m in 1usize..6, n in 1usize..5, seed in any::<u64>()) {
        let mut r = rng(seed);
        let a = gaussian_matrix(&mut r, m, n);
        let b = gaussian_vector(&mut r, m);
        let x = gaussian_vector(&mut r, n);
        // ‖Ax − b‖² through the affine chain rule equals the least-squares closed form
        let composed = Affine::new(SquaredNorm { n: m }, a.clone(), -&b).unwrap();
        assert_all_checks(&composed, &x)?;
        let ls = LeastSquares::new(a.clone(), b.clone(), 0.0).unwrap();
        let (f1, g1) = composed.cost_and_gradient(&x).unwrap();
        let (f2, g2) = ls.cost_and_gradient(&x).unwrap();
        prop_assert!((f1 - f2).abs() <= 1e-12 * f2.abs().max(1.0));
        prop_assert!((&g1 - &g2).amax() <= 1e-12 * g2.amax().max(1.0));
        // log Σ exp(aᵢᵀx + bᵢ) through the chain rule equals the log-sum-exp closed form
        let lse = Affine::new(Lse::new(m), a.clone(), b.clone()).unwrap();
        assert_all_checks(&lse, &x)?;
        let direct = LogSumExp::new(a, b, 0.0).unwrap();
        prop_assert!((lse.hessian(&x).unwrap() - direct.hessian(&x).unwrap()).amax() <= 1e-12);
        // second-order chain rule with scalar outer functions
        assert_all_checks(&Compose { outer: Scalar::Exp, inner: Linear { a: gaussian_vector(&mut r, n) * 0.3 } }, &x)?;
        assert_all_checks(&Compose { outer: Scalar::Log, inner: SquaredNorm { n } }, &x)?;
        assert_all_checks(&Compose { outer: Scalar::Square, inner: SquaredNorm { n } }, &x)?;
    }

    #[test]
    fn lse_shift_invariance(z in proptest::collection::vec(-50.0f64..50.0, 1..8), c in -500.0f64..500.0) {
        let shifted: Vec<f64> = z.iter().map(|v| v + c).collect();
        let lhs = log_sum_exp(shifted.iter().copied());
        let rhs = log_sum_exp(z.iter().copied()) + c;
        prop_assert!((lhs - rhs).abs() <= 1e-12 * rhs.abs().max(1.0));
    }

    #[test]
    fn ridge_with_zero_lambda_is_least_squares(m in 1usize..8, n in 1usize..5, seed in any::<u64>()) {
        let mut r = rng(seed);
        let a = gaussian_matrix(&mut r, m, n);
        let b = gaussian_vector(&mut r, m);
        let x = gaussian_vector(&mut r, n);
        let ridge = LeastSquares::new(a.clone(), b.clone(), 0.0).unwrap();
        let resid = &a * &x - &b;
        prop_assert!((ridge.value(&x).unwrap() - resid.norm_squared()).abs() <= 1e-12 * resid.norm_squared().max(1.0));
    }

    #[test]
    fn logistic_gradient_at_zero(m in 1usize..10, n in 1usize..5, seed in any::<u64>()) {
        let mut r = rng(seed);
        let a = gaussian_matrix(&mut r, m, n);
        let y = Vector::from_iterator(m, labels(&mut r, &a, 2).into_iter().map(|c| c as f64));
        let p = Logistic::new(a.clone(), y.clone(), 0.0, false).unwrap();
        let g = p.gradient(&Vector::zeros(n)).unwrap();
        let expect = a.transpose() * (Vector::from_element(m, 0.5) - y);
        prop_assert!((g - expect).amax() <= 1e-14);
    }
}

/// A problem with a deliberately wrong derivative, for proving the checker can fail.
struct Broken<P> {
    inner: P,
    fault: Fault,
}

#[derive(Clone, Copy)]
enum Fault {
    /// ∇f with the sign of one coordinate flipped.
    SignFlip(usize),
    /// ∇f with its factor 2 missing (a ½ convention slipping in).
    HalfGradient,
    /// ∇²f = A (the transpose term of A + Aᵀ missing).
    MissingTranspose,
    /// ∇f with one entry off by a relative amount.
    Off(usize, f64),
}

impl<P: CostFunction<Param = Vector, Output = f64>> CostFunction for Broken<P> {
    type Param = Vector;
    type Output = f64;
    fn cost(&self, x: &Vector) -> Result<f64, argmin::core::Error> {
        self.inner.cost(x)
    }
}

impl<P: Gradient<Param = Vector, Gradient = Vector>> Gradient for Broken<P> {
    type Param = Vector;
    type Gradient = Vector;
    fn gradient(&self, x: &Vector) -> Result<Vector, argmin::core::Error> {
        let mut g = self.inner.gradient(x)?;
        match self.fault {
            Fault::SignFlip(i) => g[i] = -g[i],
            Fault::HalfGradient => g *= 0.5,
            Fault::Off(i, rel) => g[i] *= 1.0 + rel,
            Fault::MissingTranspose => {}
        }
        Ok(g)
    }
}

impl Hessian for Broken<Quadratic> {
    type Param = Vector;
    type Hessian = Matrix;
    fn hessian(&self, x: &Vector) -> Result<Matrix, argmin::core::Error> {
        match self.fault {
            Fault::MissingTranspose => Ok(self.inner.a().clone()),
            _ => self.inner.hessian(x),
        }
    }
}

fn fixture_ls() -> (LeastSquares, Vector) {
    let mut r = rng(11);
    let p = LeastSquares::new(gaussian_matrix(&mut r, 8, 4), gaussian_vector(&mut r, 8), 0.0).unwrap();
    (p, gaussian_vector(&mut r, 4))
}

#[test]
fn checker_catches_a_flipped_sign_and_names_the_entry() {
    let (p, x) = fixture_ls();
    let broken = Broken {
        inner: p,
        fault: Fault::SignFlip(2),
    };
    let report = check_gradient(&broken, &x, TIGHT).unwrap();
    assert!(!report.passed, "{report}");
    assert_eq!(report.worst, (2, 0));
    assert!((report.analytic + report.numeric).abs() < 1e-6 * report.numeric.abs());
    let dir = check_directional(&broken, &x, 4, 3, TIGHT).unwrap();
    assert!(!dir.passed, "{dir}");
}

#[test]
fn checker_catches_a_missing_factor_two() {
    let (p, x) = fixture_ls();
    let broken = Broken {
        inner: p,
        fault: Fault::HalfGradient,
    };
    let report = check_gradient(&broken, &x, TIGHT).unwrap();
    assert!(!report.passed, "{report}");
    // the worst entry is off by half of the true value
    assert!((report.analytic / report.numeric - 0.5).abs() < 1e-6);
}

#[test]
fn checker_catches_a_hessian_missing_its_transpose_term() {
    let mut r = rng(5);
    let a = gaussian_matrix(&mut r, 3, 3);
    let q = Quadratic::new(a.clone(), gaussian_vector(&mut r, 3), 0.0).unwrap();
    let broken = Broken {
        inner: q,
        fault: Fault::MissingTranspose,
    };
    let report = check_hessian(&broken, &gaussian_vector(&mut r, 3), TIGHT).unwrap();
    assert!(!report.entries.passed, "{report}");
    assert!(!report.passed);
    // the reported entry is where A and Aᵀ differ most, relative to (A + Aᵀ)
    let (i, j) = report.entries.worst;
    assert!((report.entries.analytic - a[(i, j)]).abs() < 1e-15);
    assert!((report.entries.numeric - (a[(i, j)] + a[(j, i)])).abs() < 1e-6);
    // a non-symmetric A as "Hessian" also shows in the symmetry error
    assert!(report.symmetry_error > 1e-3);
}

/// Least squares with targets near 1e4 over 5000 rows, an intercept column and centred
/// features: f is about 5e11 and known to some ulp of that, so no difference quotient matches
/// the gradient to 1e-6 relative, and the intercept's Hessian entries against the centred
/// columns are 0 in exact arithmetic but come out as rounding from differences of gradients
/// of 1e5. The checker passes the correct derivatives by their noise allowance, and still
/// fails a flipped sign or a missing factor 2 there.
#[test]
fn large_costs_pass_by_their_rounding_noise_and_wrong_derivatives_still_fail() {
    let mut r = rng(31);
    let (m, n) = (5000, 10);
    let mut a = gaussian_matrix(&mut r, m, n + 1);
    for j in 0..n {
        let mean = a.column(j).mean();
        a.column_mut(j).add_scalar_mut(-mean);
    }
    a.column_mut(n).fill(1.0);
    let b = gaussian_vector(&mut r, m) * 1e3 + Vector::from_element(m, 1e4);
    let p = LeastSquares::new(a.clone(), b.clone(), 0.0).unwrap();
    let x = gaussian_vector(&mut r, n + 1);
    let g = check_gradient(&p, &x, TIGHT).unwrap();
    assert!(g.passed && g.within_noise > 0, "{g}");
    assert!(g.max_rel_error > TIGHT.rel, "{g}");
    // entries of a few thousand against an allowance of 1e3 are counted as unverified
    assert!(g.unverified <= g.within_noise, "{g}");
    let h = check_hessian(&p, &x, TIGHT).unwrap();
    assert!(h.passed, "{h}");
    for fault in [Fault::SignFlip(3), Fault::HalfGradient] {
        let inner = LeastSquares::new(a.clone(), b.clone(), 0.0).unwrap();
        let broken = Broken { inner, fault };
        let report = check_gradient(&broken, &x, TIGHT).unwrap();
        assert!(!report.passed, "{report}");
    }
}

/// With a typical scale per coordinate the gradient is estimated at two steps; the smaller
/// step's estimate is noisier, and its larger noise allowance must not be what lets a wrong
/// entry through when that estimate happens to land closer (a review's simulation: a gradient
/// 3e-4 off passed on about half the points).
#[test]
fn the_noisier_estimate_does_not_lend_its_allowance() {
    let mut r = rng(41);
    let m = 2000;
    let mut a = gaussian_matrix(&mut r, m, 4);
    a.column_mut(0).scale_mut(1e3);
    a.column_mut(3).fill(1.0);
    let b = gaussian_vector(&mut r, m) * 100.0 + Vector::from_element(m, 1e4);
    let typical = Vector::from_fn(4, |j, _| {
        1.0 / ((a.column(j).norm_squared() / m as f64).sqrt() * 2.0)
    });
    for point in 0..20 {
        let x = gaussian_vector(&mut r, 4).component_mul(&typical);
        let inner = LeastSquares::new(a.clone(), b.clone(), 0.0).unwrap();
        let correct = check_gradient_scaled(&inner, &x, TIGHT, Some(&typical)).unwrap();
        assert!(correct.passed, "point {point}: {correct}");
        let broken = Broken {
            inner,
            fault: Fault::Off(0, 3e-4),
        };
        let report = check_gradient_scaled(&broken, &x, TIGHT, Some(&typical)).unwrap();
        assert!(!report.passed, "point {point}: {report}");
    }
}

/// Where the rounding noise of f swamps the gradient (targets of 1e12: f ≈ 1e26, noise of a
/// difference quotient ≈ 1e19 against entries of 1e14), an entry that passes by its allowance
/// is counted as unverified, not as agreeing.
#[test]
fn entries_drowned_in_rounding_noise_are_unverified() {
    let mut r = rng(51);
    let a = gaussian_matrix(&mut r, 100, 3);
    let b = Vector::from_element(100, 1e12);
    let p = LeastSquares::new(a, b, 0.0).unwrap();
    let g = check_gradient(&p, &gaussian_vector(&mut r, 3), TIGHT).unwrap();
    assert!(g.unverified > 0 && g.unverified <= g.within_noise, "{g}");
    assert!(g.to_string().contains("UNVERIFIED"), "{g}");
    // and its headline says so, not "ok"
    assert!(g.to_string().starts_with("gradient unverified: "), "{g}");
}

/// f(x) = e^(k·x₀), with its gradient k·e^(k·x₀) scaled by 1 + `off`: a curvature that puts
/// the central differences' truncation error where a test wants it.
struct Steep {
    k: f64,
    off: f64,
}

impl CostFunction for Steep {
    type Param = Vector;
    type Output = f64;
    fn cost(&self, x: &Vector) -> Result<f64, argmin::core::Error> {
        Ok((self.k * x[0]).exp())
    }
}

impl Gradient for Steep {
    type Param = Vector;
    type Gradient = Vector;
    fn gradient(&self, x: &Vector) -> Result<Vector, argmin::core::Error> {
        Ok(Vector::from_element(
            1,
            self.k * (self.k * x[0]).exp() * (1.0 + self.off),
        ))
    }
}

#[test]
fn the_directional_check_resolves_curvature_but_not_a_wrong_gradient() {
    // at x = 0 the quotient at step s is gᵀd·sinh(ks)/(ks) ≈ gᵀd·(1 + (ks)²/6), s = h, h/4,
    // h/16, h/64 (h = ∛ε). k = 8860: 3e-5 off at h/4, 1.2e-7 at h/64, so a correct gradient
    // passes at 1e-5 only through the small steps, and one 1e-4 off fails. k = 64 700: 1e-4
    // off at h/16, exactly a gradient 1e-4 too large, which must still fail (the smaller
    // steps' truncation is not small enough there to be trusted)
    let tol = Tolerance { rel: 1e-5 };
    let x = Vector::zeros(1);
    let check = |k: f64, off: f64| check_directional(&Steep { k, off }, &x, 4, 1, tol).unwrap();
    let fine = check(8860.0, 0.0);
    assert!(fine.passed, "{fine}");
    for (k, off) in [(8860.0, 1e-4), (64_700.0, 1e-4), (64_700.0, -1e-4)] {
        let wrong = check(k, off);
        assert!(!wrong.passed, "k = {k}, off = {off}: {wrong}");
    }
}

#[test]
fn correct_derivatives_pass_the_same_checks() {
    let (p, x) = fixture_ls();
    assert!(check_gradient(&p, &x, TIGHT).unwrap().passed);
    assert!(check_directional(&p, &x, 8, 3, TIGHT).unwrap().passed);
    assert!(check_hessian(&p, &x, TIGHT).unwrap().passed);
}

#[test]
fn directional_check_on_a_large_problem() {
    let mut r = rng(21);
    let (m, n) = (400, 300);
    let p = LogSumExp::new(
        gaussian_matrix(&mut r, m, n) * 0.1,
        gaussian_vector(&mut r, m),
        0.01,
    )
    .unwrap();
    let x = gaussian_vector(&mut r, n) * 0.1;
    let report = check_directional(&p, &x, 10, 1, TIGHT).unwrap();
    assert!(report.passed, "{report}");
}

#[test]
fn error_order_is_two_for_central_and_one_for_forward() {
    let mut r = rng(8);
    let lse = LogSumExp::new(gaussian_matrix(&mut r, 6, 3), gaussian_vector(&mut r, 6), 0.0).unwrap();
    let a = gaussian_matrix(&mut r, 20, 3);
    let y = Vector::from_iterator(20, labels(&mut r, &a, 2).into_iter().map(|c| c as f64));
    let logistic = Logistic::new(a, y, 0.0, false).unwrap();
    for seed in 0..3 {
        let x = gaussian_vector(&mut r, 3);
        for study in [
            order_study(&lse, &x, seed).unwrap(),
            order_study(&logistic, &x, seed).unwrap(),
        ] {
            let c = study
                .central_order
                .expect("central differences are not exact here");
            let f = study
                .forward_order
                .expect("forward differences are not exact here");
            assert!((c - 2.0).abs() <= 0.2, "central order {c}: {study:?}");
            assert!((f - 1.0).abs() <= 0.2, "forward order {f}: {study:?}");
        }
    }
}

#[test]
fn central_differences_are_exact_on_a_quadratic_and_the_study_says_so() {
    let mut r = rng(9);
    let q = Quadratic::new(gaussian_matrix(&mut r, 4, 4), gaussian_vector(&mut r, 4), 0.0).unwrap();
    let study = order_study(&q, &gaussian_vector(&mut r, 4), 1).unwrap();
    assert_eq!(study.central_order, None, "{study:?}");
    let f = study
        .forward_order
        .expect("forward differences have an O(h) term on a quadratic");
    assert!((f - 1.0).abs() <= 0.2);
}

#[test]
fn extreme_logits_stay_finite_with_exact_limits() {
    // log-sum-exp at z = (1000, 999, −1000): f = 1000 + log(1 + e⁻¹), p = (σ(1), 1 − σ(1), 0)
    let a = Matrix::identity(3, 3);
    let p = LogSumExp::new(a, Vector::zeros(3), 0.0).unwrap();
    let x = Vector::from_vec(vec![1000.0, 999.0, -1000.0]);
    let (f, g) = p.cost_and_gradient(&x).unwrap();
    assert_eq!(f, 1000.0 + (-1f64).exp().ln_1p());
    let s = gradfit::numeric::sigmoid(1.0);
    assert!((g[0] - s).abs() < 1e-15 && (g[1] - (1.0 - s)).abs() < 1e-15 && g[2] == 0.0);
    assert!(p.hessian(&x).unwrap().iter().all(|v| v.is_finite()));
    // softmax regression at scores ±1000 for 3 classes: the limits are 0 loss and 0 gradient
    let a = Matrix::from_row_slice(2, 1, &[1.0, -1.0]);
    let sm = Softmax::new(a, vec![0, 2], 3, 0.0, false).unwrap();
    let w = Vector::from_vec(vec![1000.0, 0.0, -1000.0]);
    let (f, g) = sm.cost_and_gradient(&w).unwrap();
    assert_eq!(f, 0.0);
    assert!(g.iter().all(|v| *v == 0.0));
    assert!(sm.hessian(&w).unwrap().iter().all(|v| v.is_finite()));
}

#[test]
fn large_problems_split_over_threads_give_the_serial_answer() {
    // 1000 × 600 = 600 000 entries: above the threshold where the fused pass uses two threads
    let mut r = rng(31);
    let a = gaussian_matrix(&mut r, 1000, 600) * 0.05;
    let b = gaussian_vector(&mut r, 1000);
    let x = gaussian_vector(&mut r, 600);
    let ls = LeastSquares::new(a.clone(), b.clone(), 0.3).unwrap();
    let (f, g) = ls.cost_and_gradient(&x).unwrap();
    assert_eq!(
        ls.value(&x).unwrap(),
        f,
        "value() and the fused pass agree to the last bit"
    );
    let resid = &a * &x - &b;
    let g_direct = a.transpose() * &resid * 2.0 + &x * 0.6;
    assert!((f - resid.norm_squared() - 0.3 * x.norm_squared()).abs() <= 1e-10 * f);
    assert!((&g - g_direct).amax() <= 1e-10 * g.amax());
    let y = b.map(|v| if v > 0.0 { 1.0 } else { 0.0 });
    let lg = Logistic::new(a.clone(), y.clone(), 0.0, false).unwrap();
    let (f, g) = lg.cost_and_gradient(&x).unwrap();
    assert_eq!(lg.value(&x).unwrap(), f);
    let z = &a * &x;
    let f_direct: f64 = z
        .iter()
        .zip(y.iter())
        .map(|(z, y)| (1.0 + z.exp()).ln() - y * z)
        .sum();
    let s = z.map(gradfit::numeric::sigmoid) - &y;
    assert!((f - f_direct).abs() <= 1e-10 * f);
    assert!((&g - a.transpose() * s).amax() <= 1e-10 * g.amax());
    // the Hessian Aᵀdiag(σ(1 − σ))A: two threads of the packed kernel against a plain product
    let h = lg.hessian(&x).unwrap();
    let mut sa = a.clone();
    for (mut row, zi) in sa.row_iter_mut().zip(z.iter()) {
        let p = gradfit::numeric::sigmoid(*zi);
        row *= p * (1.0 - p);
    }
    assert!((&h - a.transpose() * sa).amax() <= 1e-12 * h.amax());
    // and the Hessian-vector products (split like the fused pass) against the formed Hessians
    let v = gaussian_vector(&mut r, 600);
    let hv = lg.hessian_vec(&x, &v).unwrap();
    assert!((&hv - &h * &v).amax() <= 1e-11 * hv.amax());
    let hv = ls.hessian_vec(&x, &v).unwrap();
    assert!((&hv - ls.hessian_matrix(&x).unwrap() * &v).amax() <= 1e-11 * hv.amax());
    // least squares with 3 and 7 right-hand sides (row by row; class tiles), split like the
    // others: ‖AX − B‖² + λ‖X‖², 2Aᵀ(AX − B) + 2λX and 2Aᵀ(AV) + 2λV against plain products
    for k in [3, 7] {
        let bm = Matrix::from_fn(1000, k, |i, c| ((i * 3 + c * 5) % 17) as f64 - 8.0);
        let lsk = LeastSquares::multi(a.clone(), bm.clone(), 0.3).unwrap();
        let xk = gaussian_vector(&mut r, 600 * k) * 0.1;
        let (f, g) = lsk.cost_and_gradient(&xk).unwrap();
        assert_eq!(lsk.value(&xk).unwrap(), f, "k = {k}");
        let xm = Matrix::from_column_slice(600, k, xk.as_slice());
        let res = &a * &xm - &bm;
        let f_direct = res.norm_squared() + 0.3 * xk.norm_squared();
        assert!((f - f_direct).abs() <= 1e-12 * f_direct, "k = {k}");
        let g_direct = (a.transpose() * &res) * 2.0 + &xm * 0.6;
        let g_direct = Vector::from_column_slice(g_direct.as_slice());
        assert!((&g - &g_direct).amax() <= 1e-12 * g_direct.amax(), "k = {k}");
        let vk = gaussian_vector(&mut r, 600 * k);
        let vm = Matrix::from_column_slice(600, k, vk.as_slice());
        let hv_direct = (a.transpose() * (&a * &vm)) * 2.0 + &vm * 0.6;
        let hv_direct = Vector::from_column_slice(hv_direct.as_slice());
        let hv = lsk.hessian_vec(&xk, &vk).unwrap();
        assert!(
            (&hv - &hv_direct).amax() <= 1e-12 * hv_direct.amax(),
            "Hv, k = {k}"
        );
    }
    // log-sum-exp, each half with its own max shift: the largest score in the second half,
    // by far, so the first half's terms are rescaled by e^(−300) when the halves merge
    let mut b = b * 3.0;
    b[900] = 300.0;
    let lse = LogSumExp::new(a.clone(), b.clone(), 0.1).unwrap();
    let (f, g) = lse.cost_and_gradient(&x).unwrap();
    assert_eq!(lse.value(&x).unwrap(), f);
    let z = &a * &x + &b;
    let zmax = z.max();
    let e = z.map(|v| (v - zmax).exp());
    let f_direct = zmax + e.sum().ln() + 0.1 * x.norm_squared();
    let g_direct = a.transpose() * (&e / e.sum()) + &x * 0.2;
    assert!((f - f_direct).abs() <= 1e-12 * f.abs());
    assert!((&g - g_direct).amax() <= 1e-12 * g.amax());
    // softmax with 2, 3, 7 and 14 classes (1, 2, 6 and 13 scores a row against the last
    // class's: one class tile, or 5 + 4 + 4), all split over two threads (m·((k − 1)·n + 80) ≥ 3·2¹⁷);
    // value() must give the fused f to the last bit
    for k in [2, 3, 7, 14] {
        let labels: Vec<usize> = (0..1000).map(|i| (i * 7) % k).collect();
        let sm = Softmax::new(a.clone(), labels.clone(), k, 0.0, false).unwrap();
        let w = gaussian_vector(&mut r, 600 * k) * 0.1;
        let (f, g) = sm.cost_and_gradient(&w).unwrap();
        assert_eq!(sm.value(&w).unwrap(), f, "k = {k}");
        let wm = Matrix::from_column_slice(600, k, w.as_slice());
        let mut z = &a * &wm;
        let mut f_direct = 0.0;
        for (i, &yi) in labels.iter().enumerate() {
            let mut row: Vec<f64> = z.row(i).iter().copied().collect();
            f_direct += log_sum_exp(row.iter().copied()) - row[yi];
            let lse = log_sum_exp(row.iter().copied());
            row.iter_mut().for_each(|v| *v = (*v - lse).exp());
            row[yi] -= 1.0;
            z.row_mut(i).copy_from_slice(&row);
        }
        // the Hessian-vector product, also split: Σᵢ aᵢtᵢᵀ with t = p ⊙ (u − pᵀu), u = Vᵀaᵢ
        let v = gaussian_vector(&mut r, 600 * k);
        let hv = sm.hessian_vec(&w, &v).unwrap();
        let u = &a * Matrix::from_column_slice(600, k, v.as_slice());
        let mut t = Matrix::zeros(1000, k);
        for (i, &yi) in labels.iter().enumerate() {
            // z's row i holds p − e_y: add the label back for p
            let mut p: Vec<f64> = z.row(i).iter().copied().collect();
            p[yi] += 1.0;
            let pu: f64 = p.iter().zip(u.row(i).iter()).map(|(pc, uc)| pc * uc).sum();
            for c in 0..k {
                t[(i, c)] = p[c] * (u[(i, c)] - pu);
            }
        }
        let hv_direct = a.transpose() * t;
        let hv_direct = Vector::from_column_slice(hv_direct.as_slice());
        assert!(
            (hv - &hv_direct).amax() <= 1e-12 * hv_direct.amax(),
            "Hv, k = {k}"
        );
        let g_direct = a.transpose() * z;
        assert!((f - f_direct).abs() <= 1e-12 * f.abs(), "k = {k}");
        let g_direct = Vector::from_column_slice(g_direct.as_slice());
        assert!((g - &g_direct).amax() <= 1e-12 * g_direct.amax(), "k = {k}");
    }
}

#[test]
fn short_rows_on_large_data_give_the_direct_answer() {
    // 16000 × 100 (13 MB once padded to 104): where the CPU has AVX2 its passes weave the
    // short rows like long ones; f and ∇f against nalgebra, and value() against the fused f
    let mut r = rng(16);
    let a = gaussian_matrix(&mut r, 16000, 100) * 0.1;
    let b = gaussian_vector(&mut r, 16000);
    let x = gaussian_vector(&mut r, 100);
    let ls = LeastSquares::new(a.clone(), b.clone(), 0.0).unwrap();
    let (f, g) = ls.cost_and_gradient(&x).unwrap();
    let resid = &a * &x - &b;
    assert!((f - resid.norm_squared()).abs() <= 1e-10 * f);
    assert!((&g - a.transpose() * &resid * 2.0).amax() <= 1e-10 * g.amax());
    assert_eq!(ls.value(&x).unwrap(), f);
    let y = b.map(|v| if v > 0.0 { 1.0 } else { 0.0 });
    let lg = Logistic::new(a.clone(), y.clone(), 0.0, false).unwrap();
    let (f, g) = lg.cost_and_gradient(&x).unwrap();
    let z = &a * &x;
    let f_direct: f64 = z
        .iter()
        .zip(y.iter())
        .map(|(z, y)| log_sum_exp([0.0, *z]) - y * z)
        .sum();
    let s = z.map(gradfit::numeric::sigmoid) - &y;
    assert!((f - f_direct).abs() <= 1e-10 * f);
    assert!((&g - a.transpose() * s).amax() <= 1e-10 * g.amax());
    assert_eq!(lg.value(&x).unwrap(), f);
    let lse = LogSumExp::new(a.clone(), b.clone(), 0.0).unwrap();
    let (f, g) = lse.cost_and_gradient(&x).unwrap();
    let z = &a * &x + &b;
    let zmax = z.max();
    let e = z.map(|v| (v - zmax).exp());
    assert!((f - (zmax + e.sum().ln())).abs() <= 1e-12 * f.abs());
    assert!((&g - a.transpose() * (&e / e.sum())).amax() <= 1e-12 * g.amax());
    assert_eq!(lse.value(&x).unwrap(), f);
}

#[test]
fn softmax_with_many_classes_passes() {
    // k = 6, 9 and 26 classes: 5, 8 and 25 scores a row against the last class's, in class
    // tiles of 5, 4 + 4 and 5 × 5
    for (k, intercept) in [(6, false), (9, true), (26, false)] {
        let mut r = rng(40 + k as u64);
        let mut a = gaussian_matrix(&mut r, 40, 7);
        if intercept {
            a = with_intercept(&a);
        }
        let y = labels(&mut r, &a, k);
        let p = Softmax::new(a, y, k, 0.2, intercept).unwrap();
        let x = gaussian_vector(&mut r, p.dim());
        assert_all_checks(&p, &x).unwrap();
    }
}

/// The tests above again, in child processes, under `GRADFIT_CPU=avx2` and `=portable` where
/// this CPU has wider code: the narrower kernels' passes are otherwise tested only on CPUs that
/// lack the wider ones.
#[test]
fn every_test_passes_under_each_narrower_vector_code() {
    rerun_under_narrower_caps(Some("every_test_passes_under_each_narrower_vector_code"));
}
