//! Solvers against independent truth: direct linear solves, each other on nonlinear models,
//! and every status reached by a run built to reach it.

mod common;

use std::cell::Cell;
use std::time::Duration;

use argmin::core::{CostFunction, Executor, Gradient};
use common::*;
use gradfit::generate::{generate, Spec};
use gradfit::problems::{LeastSquares, LogSumExp, Logistic, ModelKind, Objective, Quadratic, Softmax};
use gradfit::solve::{solve, solve_monitored, Control, Guarded, Method, SolveOptions, Status, TraceRow};
use gradfit::{Matrix, Vector};

fn opts(method: Method) -> SolveOptions {
    SolveOptions {
        max_iters: 5000,
        ..SolveOptions::new(method)
    }
}

/// Tight enough that f − f* ≈ ½gᵀH⁻¹g is below 1e-8·f* on the condition-1e4 cases.
fn tight(method: Method) -> SolveOptions {
    SolveOptions {
        tol: 1e-10,
        ..opts(method)
    }
}

fn ls_instance(condition: f64, seed: u64) -> LeastSquares {
    let d = generate(
        ModelKind::LeastSquares,
        &Spec {
            rows: 200,
            cols: 20,
            classes: 2,
            condition,
            seed,
        },
    )
    .unwrap();
    LeastSquares::new(d.a, d.target, 0.0).unwrap()
}

/// x* from the normal equations AᵀAx = Aᵀb by nalgebra's Cholesky: independent of every solver.
fn ls_direct(p: &LeastSquares) -> Vector {
    let a = p.a();
    let chol = a.tr_mul(&a).cholesky().unwrap();
    chol.solve(&a.tr_mul(&p.b().column(0)))
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-300)
}

/// Every method's cost within 1e-8 of f*, and an honest status: gradfit's own methods and the
/// trust region must converge; gd may stop at its limit on the ill-conditioned case; argmin's
/// cost-based line searches (cg, argmin-lbfgs) may stall below the rounding of f before the
/// 1e-10 gradient tolerance, and must then not claim convergence.
fn assert_reaches<P: Objective>(p: &P, f_star: f64, what: &str, ill: bool) {
    for method in Method::ALL {
        let r = solve(p, &Vector::zeros(p.dim()), &tight(method)).unwrap();
        assert_eq!(
            r.converged,
            r.gradient_norm <= r.gradient_threshold,
            "{what} {method}: {r}"
        );
        assert_eq!(r.converged, r.status == Status::Converged, "{what} {method}: {r}");
        if method == Method::GradientDescent && ill && !r.converged {
            assert_eq!(r.status, Status::MaxIterations, "{r}");
            continue;
        }
        if !matches!(method, Method::Cg | Method::ArgminLbfgs) {
            assert_eq!(r.status, Status::Converged, "{what} {method}: {r}");
        }
        assert!(
            rel(r.cost, f_star) <= 1e-8,
            "{what} {method}: cost {} vs {f_star}: {r}",
            r.cost
        );
    }
}

#[test]
fn least_squares_every_solver_reaches_the_normal_equations() {
    for condition in [10.0, 1e4] {
        let p = ls_instance(condition, 3);
        let f_star = p.value(&ls_direct(&p)).unwrap();
        assert_reaches(
            &p,
            f_star,
            &format!("least squares cond {condition}"),
            condition > 100.0,
        );
    }
}

#[test]
fn quadratic_every_solver_reaches_the_linear_solve() {
    for condition in [10.0, 1e4] {
        let d = generate(
            ModelKind::Quadratic,
            &Spec {
                rows: 15,
                cols: 15,
                classes: 2,
                condition,
                seed: 4,
            },
        )
        .unwrap();
        let q = Quadratic::new(d.a.clone(), d.target.clone(), 0.0).unwrap();
        assert_ne!(d.a, d.a.transpose(), "the generated A should not be symmetric");
        // (A + Aᵀ)x = −b by Cholesky
        let x_star = (&d.a + d.a.transpose()).cholesky().unwrap().solve(&(-&d.target));
        let f_star = q.value(&x_star).unwrap();
        assert_reaches(
            &q,
            f_star,
            &format!("quadratic cond {condition}"),
            condition > 100.0,
        );
    }
}

fn agree_on_optimum<P: Objective>(p: &P, name: &str) {
    let methods = [Method::Newton, Method::Lbfgs, Method::NewtonCg, Method::Bfgs];
    let reports: Vec<_> = methods
        .iter()
        .map(|&m| {
            let r = solve(p, &Vector::zeros(p.dim()), &SolveOptions { tol: 1e-8, ..opts(m) }).unwrap();
            assert_eq!(r.status, Status::Converged, "{name} {m}: {r}");
            assert!(r.gradient_norm <= r.gradient_threshold);
            r
        })
        .collect();
    let best = reports.iter().map(|r| r.cost).fold(f64::INFINITY, f64::min);
    for r in &reports {
        assert!(
            rel(r.cost, best) <= 1e-8,
            "{name} {}: {} vs best {best}",
            r.method,
            r.cost
        );
    }
}

#[test]
fn nonlinear_models_agree_across_methods() {
    let d = generate(
        ModelKind::LogSumExp,
        &Spec {
            rows: 60,
            cols: 8,
            classes: 2,
            condition: 1.0,
            seed: 5,
        },
    )
    .unwrap();
    agree_on_optimum(&LogSumExp::new(d.a, d.target, 0.0).unwrap(), "log-sum-exp");
    let d = generate(
        ModelKind::Logistic,
        &Spec {
            rows: 300,
            cols: 6,
            classes: 2,
            condition: 100.0,
            seed: 6,
        },
    )
    .unwrap();
    let a = with_intercept(&d.a);
    agree_on_optimum(&Logistic::new(a, d.target, 0.1, true).unwrap(), "logistic");
    let d = generate(
        ModelKind::Softmax,
        &Spec {
            rows: 300,
            cols: 5,
            classes: 4,
            condition: 10.0,
            seed: 7,
        },
    )
    .unwrap();
    let y = d.target.iter().map(|v| *v as usize).collect();
    agree_on_optimum(
        &Softmax::new(with_intercept(&d.a), y, 4, 0.01, true).unwrap(),
        "softmax",
    );
}

#[test]
fn softmax_without_ridge_needs_damping_and_newton_says_so() {
    // at λ = 0 the softmax Hessian is singular (adding a constant to all class scores changes
    // nothing), so Cholesky fails without damping
    let d = generate(
        ModelKind::Softmax,
        &Spec {
            rows: 200,
            cols: 3,
            classes: 3,
            condition: 1.0,
            seed: 8,
        },
    )
    .unwrap();
    let y = d.target.iter().map(|v| *v as usize).collect();
    let p = Softmax::new(d.a, y, 3, 0.0, false).unwrap();
    let r = solve(&p, &Vector::zeros(9), &opts(Method::Newton)).unwrap();
    assert_eq!(r.status, Status::Converged, "{r}");
    assert!(r.damped_iterations > 0, "{r}");
}

#[test]
fn softmax_parameters_are_reported_centred_so_every_solver_gives_the_same_ones() {
    // f is constant along "add v to every class" for the unpenalized parameters (the
    // intercepts; all of them at λ = 0); Newton's Hessian is singular there and used to drift
    // along it, reporting intercepts shifted by hundreds
    let d = generate(
        ModelKind::Softmax,
        &Spec {
            rows: 300,
            cols: 4,
            classes: 3,
            condition: 10.0,
            seed: 12,
        },
    )
    .unwrap();
    let y: Vec<usize> = d.target.iter().map(|v| *v as usize).collect();
    for (lambda, intercept) in [(0.1, true), (0.0, false)] {
        let a = if intercept {
            with_intercept(&d.a)
        } else {
            d.a.clone()
        };
        let n = a.ncols();
        let p = Softmax::new(a, y.clone(), 3, lambda, intercept).unwrap();
        let mut o = opts(Method::Lbfgs);
        o.tol = 1e-10;
        let lbfgs = solve(&p, &Vector::zeros(3 * n), &o).unwrap();
        o.method = Method::Newton;
        let newton = solve(&p, &Vector::zeros(3 * n), &o).unwrap();
        for r in [&lbfgs, &newton] {
            assert_eq!(r.status, Status::Converged, "{r}");
            for j in 0..n {
                let unpenalized = lambda == 0.0 || (intercept && j == n - 1);
                let sum: f64 = (0..3).map(|c| r.x[c * n + j]).sum();
                if unpenalized {
                    assert!(
                        sum.abs() <= 1e-12 * r.x.amax(),
                        "λ = {lambda}, feature {j}: {sum}"
                    );
                }
            }
        }
        let gap = (&lbfgs.x - &newton.x).amax();
        assert!(
            gap <= 1e-6 * lbfgs.x.amax().max(1.0),
            "λ = {lambda}: {gap}\n{lbfgs}\n{newton}"
        );
    }
}

#[test]
fn newton_solves_least_squares_in_one_iteration() {
    let p = ls_instance(1e4, 9);
    let r = solve(&p, &Vector::zeros(20), &opts(Method::Newton)).unwrap();
    assert_eq!(
        (r.status, r.iterations, r.hessian_evals),
        (Status::Converged, 1, 1),
        "{r}"
    );
    assert!((&r.x - ls_direct(&p)).amax() <= 1e-8 * ls_direct(&p).amax());
}

#[test]
fn newton_with_more_features_than_rows_agrees_and_converges_quadratically() {
    // 40 rows, 120 features, λ > 0: Newton's direction comes from the 40×40 Woodbury system
    // (the n×n Hessian is never formed); it must reach L-BFGS's optimum, and still show
    // Newton's quadratic convergence
    let d = generate(
        ModelKind::Logistic,
        &Spec {
            rows: 40,
            cols: 120,
            classes: 2,
            condition: 10.0,
            seed: 11,
        },
    )
    .unwrap();
    // with an unpenalized intercept too (the Schur-complement step)
    let with_b = Logistic::new(with_intercept(&d.a), d.target.clone(), 0.5, true).unwrap();
    agree_on_optimum(&with_b, "logistic with intercept, 40 rows × 121 parameters");
    let p = Logistic::new(d.a, d.target, 0.5, false).unwrap();
    agree_on_optimum(&p, "logistic, 40 rows × 120 features");
    newton_takes_its_own_route_to_lbfgs_optimum(&p, "the m×m system");
}

/// Newton at a tolerance of 1e-13: converged, every direction from the problem's own route
/// (`what`), L-BFGS's optimum to 1e-8, and quadratic convergence.
fn newton_takes_its_own_route_to_lbfgs_optimum<P: Objective>(p: &P, what: &str) {
    let o = SolveOptions {
        tol: 1e-13,
        trace: true,
        ..opts(Method::Newton)
    };
    let routes = Routes {
        inner: p,
        taken: Cell::new(0),
    };
    let x0 = Vector::zeros(p.dim());
    let r = solve(&routes, &x0, &o).unwrap();
    assert_eq!(r.status, Status::Converged, "{r}");
    assert_eq!(r.hessian_evals, r.iterations, "one direction per iteration: {r}");
    assert_eq!(routes.taken.get(), r.iterations, "every direction from {what}");
    let lbfgs = solve(
        p,
        &x0,
        &SolveOptions {
            tol: 1e-12,
            ..opts(Method::Lbfgs)
        },
    )
    .unwrap();
    assert!(
        (&r.x - &lbfgs.x).amax() <= 1e-8 * lbfgs.x.amax(),
        "{} vs {}",
        r.x,
        lbfgs.x
    );
    let g: Vec<f64> = r.trace.unwrap().iter().map(|t| t.gradient_norm).collect();
    assert_quadratic(&g);
}

#[test]
fn newton_on_softmax_with_more_features_than_rows_agrees_and_converges_quadratically() {
    // 30 rows, 90 features, 4 classes, λ > 0: Newton's direction comes from the 120×120
    // system (the 360×360 Hessian is never formed); it must reach L-BFGS's optimum, and
    // converge quadratically
    let d = generate(
        ModelKind::Softmax,
        &Spec {
            rows: 30,
            cols: 90,
            classes: 4,
            condition: 10.0,
            seed: 12,
        },
    )
    .unwrap();
    let y: Vec<usize> = d.target.iter().map(|v| *v as usize).collect();
    // with unpenalized intercepts too (the k×k Schur complement)
    let with_b = Softmax::new(with_intercept(&d.a), y.clone(), 4, 0.5, true).unwrap();
    agree_on_optimum(
        &with_b,
        "softmax with intercept, 30 rows × 91 features, 4 classes",
    );
    let p = Softmax::new(d.a, y, 4, 0.5, false).unwrap();
    agree_on_optimum(&p, "softmax, 30 rows × 90 features, 4 classes");
    newton_takes_its_own_route_to_lbfgs_optimum(&p, "the mk×mk system");
}

#[test]
fn newton_converges_quadratically_on_logistic_regression() {
    let d = generate(
        ModelKind::Logistic,
        &Spec {
            rows: 500,
            cols: 5,
            classes: 2,
            condition: 10.0,
            seed: 10,
        },
    )
    .unwrap();
    let p = Logistic::new(d.a, d.target, 0.0, false).unwrap();
    let o = SolveOptions {
        tol: 1e-13,
        trace: true,
        ..opts(Method::Newton)
    };
    let r = solve(&p, &Vector::zeros(5), &o).unwrap();
    let g: Vec<f64> = r.trace.unwrap().iter().map(|t| t.gradient_norm).collect();
    assert_quadratic(&g);
    assert!(g.len() <= 12, "Newton took {} iterations: {g:?}", g.len() - 1);
}

/// Forwards to a problem and counts the Newton directions it gave itself (so a test can tell
/// the m×m route from the n×n Hessian, which report the same counts).
struct Routes<'a, P> {
    inner: &'a P,
    taken: Cell<u64>,
}

impl<P: Objective> Objective for Routes<'_, P> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn value(&self, x: &Vector) -> gradfit::Result<f64> {
        self.inner.value(x)
    }
    fn value_and_gradient_into(&self, x: &Vector, g: &mut Vector) -> gradfit::Result<f64> {
        self.inner.value_and_gradient_into(x, g)
    }
    fn hessian_into(&self, x: &Vector, h: &mut Matrix) -> gradfit::Result<()> {
        self.inner.hessian_into(x, h)
    }
    fn hessian_vec_into(&self, x: &Vector, v: &Vector, out: &mut Vector) -> gradfit::Result<()> {
        self.inner.hessian_vec_into(x, v, out)
    }
    fn newton_direction_into(&self, x: &Vector, g: &Vector, d: &mut Vector) -> gradfit::Result<bool> {
        let taken = self.inner.newton_direction_into(x, g, d)?;
        self.taken.set(self.taken.get() + u64::from(taken));
        Ok(taken)
    }
}

/// Near the optimum (full steps, ‖g‖ < 1) the ratio ‖g_{k+1}‖/‖g_k‖² of a trace's gradient
/// norms stays bounded: Newton's quadratic convergence.
fn assert_quadratic(g: &[f64]) {
    let ratios: Vec<f64> = g
        .windows(2)
        .filter(|w| w[0] < 1.0 && w[1] > 1e-12)
        .map(|w| w[1] / (w[0] * w[0]))
        .collect();
    assert!(!ratios.is_empty(), "gradient norms {g:?}");
    assert!(ratios.iter().all(|q| *q < 10.0), "ratios {ratios:?} from {g:?}");
}

#[test]
fn every_solver_reports_its_iteration_limit_honestly() {
    let p = ls_instance(1e4, 11);
    for method in Method::ALL {
        if method == Method::Newton || method == Method::TrustRegion {
            continue; // these solve a quadratic model exactly in a step or two
        }
        let r = solve(
            &p,
            &Vector::zeros(20),
            &SolveOptions {
                max_iters: 2,
                ..SolveOptions::new(method)
            },
        )
        .unwrap();
        assert_eq!(r.status, Status::MaxIterations, "{method}: {r}");
        assert!(!r.converged && r.gradient_norm > r.gradient_threshold);
        assert_eq!(r.iterations, 2);
    }
    // Newton and the trust region on a problem that is not quadratic
    let d = generate(
        ModelKind::Logistic,
        &Spec {
            rows: 200,
            cols: 5,
            classes: 2,
            condition: 10.0,
            seed: 12,
        },
    )
    .unwrap();
    let p = Logistic::new(d.a, d.target, 0.0, false).unwrap();
    for method in [Method::Newton, Method::TrustRegion] {
        let r = solve(
            &p,
            &Vector::zeros(5),
            &SolveOptions {
                max_iters: 1,
                tol: 1e-12,
                ..SolveOptions::new(method)
            },
        )
        .unwrap();
        assert_eq!(r.status, Status::MaxIterations, "{method}: {r}");
    }
}

/// A problem whose gradient is wrong: negated, or with one coordinate's sign flipped.
struct WrongGradient(LeastSquares, bool);

impl Objective for WrongGradient {
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn value(&self, x: &Vector) -> gradfit::Result<f64> {
        self.0.value(x)
    }
    fn value_and_gradient_into(&self, x: &Vector, g: &mut Vector) -> gradfit::Result<f64> {
        let f = self.0.value_and_gradient_into(x, g)?;
        if self.1 {
            g.neg_mut();
        } else {
            g[0] = -g[0];
        }
        Ok(f)
    }
    fn hessian_into(&self, x: &Vector, h: &mut Matrix) -> gradfit::Result<()> {
        self.0.hessian_into(x, h)
    }
    fn hessian_vec_into(&self, x: &Vector, v: &Vector, out: &mut Vector) -> gradfit::Result<()> {
        self.0.hessian_vec_into(x, v, out)
    }
}

#[test]
fn a_wrong_gradient_ends_in_line_search_failure_and_the_report_names_the_cause() {
    let p = WrongGradient(ls_instance(10.0, 13), true);
    let r = solve(&p, &Vector::from_element(20, 1.0), &opts(Method::Lbfgs)).unwrap();
    assert_eq!(r.status, Status::LineSearchFailed, "{r}");
    assert!(r.x.iter().all(|v| v.is_finite()) && r.cost.is_finite());
    let check = r
        .gradient_check
        .as_ref()
        .expect("a directional check after the failure");
    assert!(!check.passed, "{check}");
    assert!(
        r.message.as_deref().unwrap_or("").contains("probably wrong"),
        "{r}"
    );
    assert_eq!(
        r.x,
        Vector::from_element(20, 1.0),
        "no step is accepted along an ascent direction"
    );
    // one flipped coordinate still descends, slowly: the run hits its limit, and says why
    let p = WrongGradient(ls_instance(10.0, 13), false);
    let r = solve(
        &p,
        &Vector::from_element(20, 1.0),
        &SolveOptions {
            max_iters: 50,
            ..opts(Method::Lbfgs)
        },
    )
    .unwrap();
    assert!(!r.converged);
    assert!(!r.gradient_check.as_ref().unwrap().passed, "{r}");
    assert!(
        r.message.as_deref().unwrap_or("").contains("probably wrong"),
        "{r}"
    );
}

#[test]
fn a_non_convex_quadratic_without_damping_is_not_positive_definite() {
    // A = diag(1, −1): A + Aᵀ is indefinite
    let q = Quadratic::new(
        Matrix::from_diagonal(&Vector::from_vec(vec![1.0, -1.0])),
        Vector::from_element(2, 1.0),
        0.0,
    )
    .unwrap();
    let r = solve(
        &q,
        &Vector::zeros(2),
        &SolveOptions {
            max_damping: 0.0,
            ..opts(Method::Newton)
        },
    )
    .unwrap();
    assert_eq!(r.status, Status::NotPositiveDefinite, "{r}");
    assert_eq!(r.x, Vector::zeros(2));
}

/// f(x) = ‖x‖² + 1 at x₀ and NaN everywhere else.
struct NanOffStart(Vector);

impl Objective for NanOffStart {
    fn dim(&self) -> usize {
        self.0.len()
    }
    fn value(&self, x: &Vector) -> gradfit::Result<f64> {
        Ok(if *x == self.0 {
            x.norm_squared() + 1.0
        } else {
            f64::NAN
        })
    }
    fn value_and_gradient_into(&self, x: &Vector, g: &mut Vector) -> gradfit::Result<f64> {
        g.copy_from(x);
        *g *= 2.0;
        self.value(x)
    }
    fn hessian_into(&self, _: &Vector, h: &mut Matrix) -> gradfit::Result<()> {
        h.fill_with_identity();
        *h *= 2.0;
        Ok(())
    }
    fn hessian_vec_into(&self, _: &Vector, v: &Vector, out: &mut Vector) -> gradfit::Result<()> {
        out.copy_from(v);
        *out *= 2.0;
        Ok(())
    }
}

#[test]
fn non_finite_values_stop_with_the_last_finite_iterate() {
    let x0 = Vector::from_vec(vec![1.0, 2.0]);
    for method in [
        Method::GradientDescent,
        Method::Newton,
        Method::Lbfgs,
        Method::NewtonCg,
        Method::Bfgs,
    ] {
        let r = solve(&NanOffStart(x0.clone()), &x0, &opts(method)).unwrap();
        assert_eq!(r.status, Status::NonFinite, "{method}: {r}");
        assert_eq!(r.x, x0);
        assert_eq!(r.cost, 6.0);
    }
    // argmin's solvers behind the guard: no hang, no NaN in the result
    for method in [Method::Cg, Method::ArgminLbfgs, Method::TrustRegion] {
        let r = solve(&NanOffStart(x0.clone()), &x0, &opts(method)).unwrap();
        assert!(!r.converged, "{method}: {r}");
        assert!(
            matches!(r.status, Status::NonFinite | Status::LineSearchFailed),
            "{method}: {r}"
        );
        assert!(
            r.x.iter().all(|v| v.is_finite()) && r.cost.is_finite(),
            "{method}: {r}"
        );
    }
}

#[test]
fn a_non_finite_start_is_an_error_not_a_report() {
    let q = Quadratic::new(Matrix::identity(2, 2), Vector::zeros(2), 0.0).unwrap();
    let x0 = Vector::from_vec(vec![f64::NAN, 0.0]);
    let e = solve(&q, &x0, &opts(Method::Lbfgs)).unwrap_err();
    assert!(e.to_string().contains("x0"), "{e}");
}

#[test]
fn a_time_limit_ends_the_run_with_timeout() {
    let p = ls_instance(1e4, 14);
    let o = SolveOptions {
        time_limit: Some(Duration::from_nanos(1)),
        ..opts(Method::GradientDescent)
    };
    let r = solve(&p, &Vector::zeros(20), &o).unwrap();
    assert_eq!((r.status, r.iterations), (Status::Timeout, 1), "{r}");
}

#[test]
fn a_monitor_sees_every_iteration_and_can_stop_the_run() {
    let p = ls_instance(1e4, 15);
    let seen = std::rc::Rc::new(Cell::new(0u64));
    let s = seen.clone();
    let monitor = move |row: &TraceRow| {
        s.set(s.get() + 1);
        if row.iteration == 3 {
            Control::Stop
        } else {
            Control::Continue
        }
    };
    let (r, _) = solve_monitored(&p, &Vector::zeros(20), &opts(Method::GradientDescent), monitor).unwrap();
    assert_eq!((r.status, r.iterations), (Status::Stopped, 3), "{r}");
    assert_eq!(seen.get(), 4); // x₀ and three iterations
}

#[test]
fn trace_rows_match_the_report() {
    let p = ls_instance(100.0, 16);
    let r = solve(
        &p,
        &Vector::zeros(20),
        &SolveOptions {
            trace: true,
            ..opts(Method::Lbfgs)
        },
    )
    .unwrap();
    let trace = r.trace.as_ref().unwrap();
    assert_eq!(trace.len() as u64, r.iterations + 1);
    let last = trace.last().unwrap();
    assert_eq!(last.cost, r.cost);
    assert!((last.gradient_norm - r.gradient_norm).abs() <= 1e-12 * r.gradient_norm.max(1e-300));
    assert!(trace
        .windows(2)
        .all(|w| w[1].cost <= w[0].cost && w[1].elapsed >= w[0].elapsed));
    assert!(trace[1..].iter().all(|t| t.step > 0.0));
    assert!(
        r.cost_evals > 0 && r.gradient_evals > 0,
        "evaluation counting is on"
    );
}

#[test]
fn wrong_length_x0_and_bad_options_are_errors() {
    let p = ls_instance(10.0, 17);
    for method in Method::ALL {
        let e = solve(&p, &Vector::zeros(19), &opts(method)).unwrap_err();
        assert!(e.to_string().contains("x0"), "{e}");
    }
    let bad = [
        SolveOptions {
            tol: 0.0,
            ..opts(Method::Lbfgs)
        },
        SolveOptions {
            tol: f64::NAN,
            ..opts(Method::Lbfgs)
        },
        SolveOptions {
            max_iters: 0,
            ..opts(Method::Lbfgs)
        },
        SolveOptions {
            memory: 0,
            ..opts(Method::Lbfgs)
        },
        SolveOptions {
            max_damping: -1.0,
            ..opts(Method::Newton)
        },
    ];
    for o in bad {
        assert!(solve(&p, &Vector::zeros(20), &o).is_err(), "{o:?}");
    }
    assert!("newtonn"
        .parse::<Method>()
        .unwrap_err()
        .to_string()
        .contains("lbfgs"));
}

#[test]
fn ours_beats_argmin_lbfgs_on_the_ill_conditioned_case() {
    // the case ARGMIN-NOTES.md measured: argmin's L-BFGS stalls, gradfit's must converge
    let p = ls_instance(1e4, 18);
    let r = solve(
        &p,
        &Vector::zeros(20),
        &SolveOptions {
            tol: 1e-10,
            ..opts(Method::Lbfgs)
        },
    )
    .unwrap();
    assert_eq!(r.status, Status::Converged, "{r}");
}

/// Counts evaluations that reach the problem itself.
struct Counting<'a> {
    inner: &'a LeastSquares,
    passes: Cell<u64>,
}

impl Objective for Counting<'_> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn value(&self, x: &Vector) -> gradfit::Result<f64> {
        self.passes.set(self.passes.get() + 1);
        self.inner.value(x)
    }
    fn value_and_gradient_into(&self, x: &Vector, g: &mut Vector) -> gradfit::Result<f64> {
        self.passes.set(self.passes.get() + 2);
        self.inner.value_and_gradient_into(x, g)
    }
    fn hessian_into(&self, x: &Vector, h: &mut Matrix) -> gradfit::Result<()> {
        self.inner.hessian_into(x, h)
    }
    fn hessian_vec_into(&self, x: &Vector, v: &Vector, out: &mut Vector) -> gradfit::Result<()> {
        self.inner.hessian_vec_into(x, v, out)
    }
}

#[test]
fn the_memo_saves_argmin_solvers_repeated_evaluations() {
    // argmin asks for the cost and then the gradient at the same x; through the guard's memo
    // both come from one fused evaluation (2 passes over A), instead of 1 + 2 passes.
    let p = ls_instance(100.0, 19);
    let counting = Counting {
        inner: &p,
        passes: Cell::new(0),
    };
    let r = solve(&counting, &Vector::zeros(20), &opts(Method::ArgminLbfgs)).unwrap();
    assert!(r.converged, "{r}");
    let unmemoized_passes = r.cost_evals + 2 * r.gradient_evals;
    // one final evaluation at x is made for the report
    let passes = counting.passes.get() - 2;
    assert!(
        passes * 10 <= unmemoized_passes * 7,
        "{passes} passes vs {unmemoized_passes} without the memo"
    );
}

#[test]
fn the_guard_budget_ends_a_run_that_does_not_bound_itself() {
    let p = ls_instance(10.0, 20);
    let g = Guarded::new(&p, 3);
    let x = Vector::zeros(20);
    assert!(g.cost(&x).is_ok());
    assert!(g.gradient(&x).is_ok()); // memo hit: not charged
    assert!(g.cost(&Vector::from_element(20, 1.0)).is_ok());
    assert!(g.cost(&Vector::from_element(20, 2.0)).is_ok());
    let e = g.cost(&Vector::from_element(20, 3.0)).unwrap_err();
    assert!(e.to_string().contains("budget"), "{e}");
    assert!(g.cost(&Vector::from_element(20, f64::NAN)).is_err());
}

#[test]
fn gradfit_problems_run_in_argmins_own_executor() {
    use argmin::solver::gradientdescent::SteepestDescent;
    use argmin::solver::linesearch::MoreThuenteLineSearch;
    use argmin::solver::quasinewton::LBFGS;
    let p = ls_instance(10.0, 21);
    let x_star = ls_direct(&p);
    let f_star = p.value(&x_star).unwrap();
    let lbfgs = LBFGS::new(MoreThuenteLineSearch::new(), 7);
    let res = Executor::new(ls_instance(10.0, 21), lbfgs)
        .configure(|s| s.param(Vector::zeros(20)).max_iters(200))
        .run()
        .unwrap();
    assert!(rel(res.state().get_best_cost(), f_star) < 1e-10);
    let sd = SteepestDescent::new(MoreThuenteLineSearch::new());
    let res = Executor::new(ls_instance(10.0, 21), sd)
        .configure(|s| s.param(Vector::zeros(20)).max_iters(200))
        .run()
        .unwrap();
    assert!(rel(res.state().get_best_cost(), f_star) < 1e-8);
}

#[test]
fn problems_can_be_shared_across_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<LeastSquares>();
    shared::<Quadratic>();
    shared::<LogSumExp>();
    shared::<Logistic>();
    shared::<Softmax>();
    shared::<gradfit::model::AnyProblem>();
    // and give the same answer from two threads at once
    let p = ls_instance(10.0, 22);
    let x = Vector::from_element(20, 0.5);
    let (a, b) = std::thread::scope(|s| {
        let h1 = s.spawn(|| p.cost_and_gradient(&x).unwrap());
        let h2 = s.spawn(|| p.cost_and_gradient(&x).unwrap());
        (h1.join().unwrap(), h2.join().unwrap())
    });
    assert_eq!(a, b);
}

#[test]
fn a_gradient_whose_squares_overflow_is_not_reported_converged() {
    // entries of 1e160: ∇f(0) = −2Aᵀb is finite (about 1e161) but Σ gᵢ² overflows, which
    // once made the threshold ∞ and every start "converged" with ‖g‖ = ∞
    let a = Matrix::from_fn(20, 2, |i, j| ((i * 7 + j * 3) as f64 * 0.9).sin() * 1e160);
    let b = Vector::from_fn(20, |i, _| (i as f64 * 0.4).cos());
    let p = LeastSquares::new(a, b, 0.0).unwrap();
    let g0 = p.cost_and_gradient(&Vector::zeros(2)).unwrap().1;
    assert!(g0.iter().all(|v| v.is_finite()) && g0.norm().is_infinite());
    for method in [Method::Lbfgs, Method::GradientDescent, Method::Newton] {
        let r = solve(&p, &Vector::zeros(2), &opts(method)).unwrap();
        assert!(
            r.gradient_norm.is_finite() && r.gradient_threshold.is_finite(),
            "{method}"
        );
        assert_eq!(r.converged, r.gradient_norm <= r.gradient_threshold, "{method}");
        assert!(r.gradient_norm > 1e150 || r.converged, "{method}");
    }
}

#[test]
fn a_cost_unbounded_below_is_reported_as_running_off_not_as_a_wrong_gradient() {
    // every row has a negative first entry: f → −∞ as x₀ → +∞, so no solver can converge
    let a = Matrix::from_row_slice(3, 2, &[-1.0, 0.5, -2.0, -0.3, -0.5, 0.2]);
    let p = LogSumExp::new(a, Vector::from_vec(vec![0.0, 0.1, 0.3]), 0.0).unwrap();
    for method in [Method::Lbfgs, Method::Newton, Method::GradientDescent] {
        let r = solve(&p, &Vector::zeros(2), &opts(method)).unwrap();
        assert!(!r.converged, "{r}");
        let m = r.message.clone().unwrap_or_default();
        assert!(
            m.contains("ran off") && m.contains("no minimum"),
            "{method:?}: {r}"
        );
        assert!(r.gradient_check.is_none(), "{r}");
        assert!(r.x.amax() > 1e8 && r.cost < -1e8, "{r}");
    }
    // least squares always has a minimum: large parameters there are the data's units
    let mut a = Matrix::from_fn(50, 2, |i, j| ((i * 7 + j * 3) % 11) as f64 - 5.0);
    a.column_mut(0).scale_mut(1e-4);
    let b = &a * Vector::from_vec(vec![3e9, 1.0]);
    let p = LeastSquares::new(a, b, 0.0).unwrap();
    let mut o = opts(Method::Lbfgs);
    o.max_iters = 8;
    let r = solve(&p, &Vector::zeros(2), &o).unwrap();
    assert!(!r.converged && r.x.amax() > 1e8, "{r}");
    assert!(!r.message.clone().unwrap_or_default().contains("ran off"), "{r}");
}

/// A = Q·diag(d)·Qᵀ/2 + K with Q a rotation and K skew-symmetric: A is not symmetric, and
/// ∇²f = A + Aᵀ + 2λI = Q·diag(d)·Qᵀ + 2λI has the eigenvalues dᵢ + 2λ by construction.
fn quadratic_with_spectrum(d: [f64; 3], b_along: [f64; 3], lambda: f64) -> Quadratic {
    let (c, s) = (0.6_f64, 0.8_f64);
    let r1 = Matrix::from_row_slice(3, 3, &[c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0]);
    let r2 = Matrix::from_row_slice(3, 3, &[1.0, 0.0, 0.0, 0.0, c, -s, 0.0, s, c]);
    let q = r1 * r2;
    let k = Matrix::from_row_slice(3, 3, &[0.0, 0.7, -0.2, -0.7, 0.0, 1.1, 0.2, -1.1, 0.0]);
    let a = &q * Matrix::from_diagonal(&Vector::from_row_slice(&d)) * q.transpose() * 0.5 + k;
    let b = &q * Vector::from_row_slice(&b_along);
    Quadratic::new(a, b, lambda).unwrap()
}

#[test]
fn a_quadratic_without_a_minimum_is_proven_so_by_every_solver() {
    // eigenvalue −1.5: f falls quadratically along the second column of Q (b has a part
    // along it, or gradient methods from 0 never leave the saddle's subspace)
    let indefinite = quadratic_with_spectrum([3.0, -1.5, 0.5], [0.3, 0.1, -0.2], 0.0);
    // eigenvalue 0 with b = 0.7 along its eigenvector: f falls linearly
    let linear = quadratic_with_spectrum([2.0, 0.0, 1.0], [0.4, 0.7, 0.0], 0.0);
    for (p, words, number) in [(&indefinite, "eigenvalue", -1.5_f64), (&linear, "singular", 0.7)] {
        let proof = p.no_minimum().unwrap();
        assert!(proof.contains(words), "{proof}");
        for method in Method::ALL {
            let mut o = opts(method);
            o.max_iters = 300;
            let r = solve(p, &Vector::zeros(3), &o).unwrap();
            assert!(!r.converged, "{method}: {r}");
            let m = r.message.clone().unwrap_or_default();
            assert!(m.contains(&proof), "{method}: {m}");
            assert!(r.gradient_check.is_none(), "{method}: {r}");
            // the number in the proof is the one built in (the null vector's sign is free)
            let at = proof.find(words).unwrap();
            let found: f64 = proof[at..]
                .split_whitespace()
                .find_map(|w| w.parse().ok())
                .unwrap();
            assert!((found.abs() - number.abs()).abs() < 1e-9, "{proof}");
        }
    }
    // the same spectra with a minimum: λ = 1 shifts −1.5 to 0.5; b off the null vector
    let ridge = quadratic_with_spectrum([3.0, -1.5, 0.5], [0.3, 0.0, -0.2], 1.0);
    let in_range = quadratic_with_spectrum([2.0, 0.0, 1.0], [0.4, 0.0, -0.3], 0.0);
    for p in [&ridge, &in_range] {
        assert_eq!(p.no_minimum(), None);
        let r = solve(p, &Vector::zeros(3), &opts(Method::Lbfgs)).unwrap();
        assert!(r.converged, "{r}");
    }
}

#[test]
fn a_saddle_point_that_passes_the_tolerance_is_reported_as_no_minimum() {
    // eigenvalues 3, −1.5, 0.5: the one stationary point x* = −H⁻¹b (by nalgebra's LU, not by
    // gradfit) is a saddle; every solver started there meets the tolerance at once
    let saddle = quadratic_with_spectrum([3.0, -1.5, 0.5], [0.3, 0.1, -0.2], 0.0);
    let ridge = quadratic_with_spectrum([3.0, -1.5, 0.5], [0.3, 0.1, -0.2], 1.0);
    for (p, lambda, is_saddle) in [(&saddle, 0.0, true), (&ridge, 1.0, false)] {
        let h = p.a() + p.a().transpose() + Matrix::identity(3, 3) * (2.0 * lambda);
        let x_star = -h.lu().solve(p.b()).unwrap();
        for method in Method::ALL {
            let r = solve(p, &x_star, &opts(method)).unwrap();
            assert!(r.converged, "{method}: {r}");
            let m = r.message.clone().unwrap_or_default();
            assert_eq!(m.contains("x is not a minimum"), is_saddle, "{method}: {m}");
            if is_saddle {
                assert!(m.contains("eigenvalue -1.5"), "{method}: {m}");
                assert_eq!(p.not_a_minimum(&x_star), p.no_minimum());
            }
        }
    }
}

#[test]
fn dense_matrices_past_the_memory_limit_are_an_error_naming_the_method() {
    // logistic 200 × 50 at λ = 1: newton counts four 50 × 50 matrices (80 000 bytes: the
    // Hessian, its factor, and forming it on two threads), bfgs its inverse-Hessian
    // approximation (20 000), trust-region five Hessians (100 000)
    let mut r = rng(41);
    let a = gaussian_matrix(&mut r, 200, 50);
    let y = Vector::from_iterator(200, labels(&mut r, &a, 2).into_iter().map(|c| c as f64));
    let p = Logistic::new(a.clone(), y.clone(), 1.0, false).unwrap();
    let x0 = Vector::zeros(50);
    for (method, count, need) in [
        (Method::Newton, "4 dense 50 × 50 matrices", 80_000),
        (Method::Bfgs, "a dense 50 × 50 matrix", 20_000),
        (Method::TrustRegion, "5 dense 50 × 50 matrices", 100_000),
    ] {
        let mut o = opts(method);
        o.memory_limit = Some(need - 1);
        let err = solve(&p, &x0, &o).unwrap_err();
        // a variant of its own, so a pipeline can fall back to a memory-light method
        assert!(
            matches!(&err, gradfit::Error::Memory { needed, available: Some(limit), .. }
                if *needed == need && *limit == need - 1),
            "{method}: {err:?}"
        );
        let e = err.to_string();
        assert!(
            e.contains(method.name()) && e.contains(count) && e.contains("more than the memory limit"),
            "{method}: {e}"
        );
        o.memory_limit = Some(need);
        let r = solve(&p, &x0, &o).unwrap();
        assert!(r.converged, "{method}: {r}");
    }
    // the memory-light methods ignore the limit
    for method in [Method::Lbfgs, Method::NewtonCg, Method::GradientDescent] {
        let mut o = opts(method);
        o.memory_limit = Some(0);
        assert!(solve(&p, &x0, &o).unwrap().converged, "{method}");
    }
    // with fewer rows than features, logistic's Newton direction comes from the m×m system:
    // the n×n Hessian is never allocated, so a limit below it does not stop newton
    let wide = Logistic::new(a.columns(0, 40).transpose(), y.rows(0, 40).into(), 1.0, false).unwrap();
    let mut o = opts(Method::Newton);
    o.memory_limit = Some(1);
    let r = solve(&wide, &Vector::zeros(200), &o).unwrap();
    assert!(r.converged, "{r}");
}

/// The tests above again, in child processes, under `GRADFIT_CPU=avx2` and `=portable` where
/// this CPU has wider code: the narrower kernels' passes are otherwise tested only on CPUs that
/// lack the wider ones.
#[test]
fn every_test_passes_under_each_narrower_vector_code() {
    rerun_under_narrower_caps(Some("every_test_passes_under_each_narrower_vector_code"));
}
