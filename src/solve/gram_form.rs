//! Least squares solved in its Gram form ([`GramLeastSquares`]) and checked on the rows.

use std::time::{Duration, Instant};

use super::run::solve_monitored;
use super::{Control, Method, Monitor, Report, SolveOptions, Status, TraceRow};
use crate::error::{check_finite, check_len, Error, Result};
use crate::numeric::norm2;
use crate::problems::{GramLeastSquares, LeastSquares, Objective};
use crate::Vector;

/// The most features for which [`GramMode::Auto`] forms AᵀA whatever the size of A.
///
/// Why a bound at all: the set-up costs m·n²/2 multiply-adds, about n/4 evaluations on the
/// rows while A sits in cache and n/8 once it does not (passes over the rows then wait for
/// memory; forming AᵀA does not). L-BFGS on well-conditioned least squares converges in 20 to
/// 70 evaluations, so auto asks that the set-up cost at most about 30: n ≤ 128 always, and
/// n ≤ [`AUTO_MAX_FEATURES_LARGE`] when A has at least [`AUTO_LARGE_ENTRIES`] entries. Measured
/// here (BENCHMARKS.md): at 4000 × 400 and condition 100, lbfgs took 16.7 ms in the Gram form
/// and 13.3 ms on the rows; on a 1100 × 512 instance of condition 10, 12 ms and 2.4 ms.
pub const AUTO_MAX_FEATURES: usize = 128;

/// The most features for which [`GramMode::Auto`] forms AᵀA when A is large (see
/// [`AUTO_MAX_FEATURES`]).
pub const AUTO_MAX_FEATURES_LARGE: usize = 256;

/// Entries of A (16 MiB of them) from which passes over the rows are taken to run at memory
/// speed, for [`AUTO_MAX_FEATURES_LARGE`].
pub const AUTO_LARGE_ENTRIES: usize = 1 << 21;

/// Whether least squares is solved in its Gram form: AᵀA formed and factored once (m·n²/2
/// multiply-adds), then O(n²) per evaluation instead of a pass over the m rows (2mn).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GramMode {
    /// The Gram form when it should pay: at least twice as many rows as features, at most
    /// [`AUTO_MAX_FEATURES`] features (or [`AUTO_MAX_FEATURES_LARGE`] on large data), and a
    /// method that does not form the Hessian every iteration (not `newton` or `trust-region`, which pay for AᵀA anyway). Falls back to the
    /// rows when [`GramLeastSquares::new`] refuses AᵀA (not positive definite, evidently too
    /// ill-conditioned, or too big for [`SolveOptions::memory_limit`] or the memory available).
    #[default]
    Auto,
    /// Always the Gram form; an error if AᵀA cannot be factored or does not fit in memory.
    On,
    /// Always the rows.
    Off,
}

impl GramMode {
    /// Every mode, in the order the command line lists them.
    pub const ALL: [GramMode; 3] = [GramMode::Auto, GramMode::On, GramMode::Off];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            GramMode::Auto => "auto",
            GramMode::On => "on",
            GramMode::Off => "off",
        }
    }

    /// Whether this mode forms AᵀA for an m×n least-squares problem solved by `method`
    /// (before the factorization is tried).
    pub fn applies(self, rows: usize, features: usize, method: Method) -> bool {
        match self {
            GramMode::On => true,
            GramMode::Off => false,
            GramMode::Auto => {
                let large = rows.saturating_mul(features) >= AUTO_LARGE_ENTRIES;
                let most = if large {
                    AUTO_MAX_FEATURES_LARGE
                } else {
                    AUTO_MAX_FEATURES
                };
                rows >= 2 * features
                    && features <= most
                    && !matches!(method, Method::Newton | Method::TrustRegion)
            }
        }
    }
}

impl std::fmt::Display for GramMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for GramMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        GramMode::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| Error::option("gram", s, "must be one of auto, on, off"))
    }
}

/// Solves least squares, in the Gram form if `mode` says so, with the answer checked on the
/// rows: the report's cost and gradient norm are the row form's at the returned x (one more
/// evaluation, counted), and if the Gram form stopped converged but the rows' gradient misses
/// the threshold, the same method finishes on the rows from there (iterations and evaluations
/// add up; `message` says so); if it stopped otherwise but the rows' gradient meets the
/// threshold, the report says converged, as [`solve_monitored`] would. The set-up (forming
/// AᵀA and AᵀB, factoring, measuring ρ² on the rows) counts in `seconds`, in the time limit and
/// in the trace's times, and `gram_seconds` gives it alone.
///
/// ```
/// use gradfit::problems::LeastSquares;
/// use gradfit::solve::{solve_least_squares_monitored, Control, GramMode, Method, SolveOptions, TraceRow};
/// use gradfit::{Matrix, Vector};
/// let a = Matrix::from_fn(50, 3, |i, j| ((i * (j + 2)) % 7) as f64 + if i % 3 == j { 1.0 } else { 0.0 });
/// let b = &a * Vector::from_vec(vec![1.0, -2.0, 0.5]);
/// let p = LeastSquares::new(a, b, 0.0)?;
/// let quiet = |_: &TraceRow| Control::Continue;
/// let opts = SolveOptions::new(Method::Lbfgs);
/// let (r, _) = solve_least_squares_monitored(&p, &Vector::zeros(3), &opts, GramMode::On, quiet)?;
/// assert!(r.converged && r.gram_seconds.is_some());
/// assert!((r.x[1] + 2.0).abs() < 1e-6);
/// # Ok::<(), gradfit::Error>(())
/// ```
pub fn solve_least_squares_monitored<M: Monitor + 'static>(
    rows: &LeastSquares,
    x0: &Vector,
    opts: &SolveOptions,
    mode: GramMode,
    monitor: M,
) -> Result<(Report, M)> {
    let (m, n) = (rows.b().nrows(), rows.dim() / rows.b().ncols());
    if !mode.applies(m, n, opts.method) {
        return solve_monitored(rows, x0, opts, monitor);
    }
    // the caller's mistakes before the set-up, not after it
    opts.validate()?;
    check_len("length of x0", rows.dim(), x0.len())?;
    check_finite("x0", x0.iter())?;
    let start = Instant::now();
    let built = GramLeastSquares::within(rows, opts.memory_limit, opts.method.name());
    let setup = start.elapsed();
    // the time limit covers the set-up too
    let shorter = SolveOptions {
        time_limit: opts
            .time_limit
            .map(|t| t.saturating_sub(setup).max(Duration::from_nanos(1))),
        ..opts.clone()
    };
    let shift = Shifted {
        inner: monitor,
        iterations: 0,
        elapsed: setup.as_secs_f64(),
    };
    let form = match built {
        Ok(form) => form,
        Err(e) if mode == GramMode::Auto => {
            // the rows after all; the failed factorization's time still counts, and the report
            // says why the Gram form was not used
            let (mut r, shift) = solve_monitored(rows, x0, &shorter, shift)?;
            delay_trace(&mut r, setup.as_secs_f64());
            r.seconds = start.elapsed().as_secs_f64();
            // a memory refusal's message alone: the report names the method
            let why = match e {
                Error::Memory { message, .. } => message,
                e => e.to_string(),
            };
            r.add_detail(format!(
                "solved on the rows, not in the Gram form (--gram auto): {why}"
            ));
            return Ok((r, shift.inner));
        }
        Err(e) => return Err(e),
    };
    let (mut r, mut shift) = solve_monitored(&form, x0, &shorter, shift)?;
    delay_trace(&mut r, setup.as_secs_f64());
    // the answer on the rows: its cost and gradient are what the report gives
    let mut g = Vector::zeros(rows.dim());
    r.cost = rows.value_and_gradient_into(&r.x, &mut g)?;
    r.gradient_norm = norm2(&g);
    r.cost_evals += 1;
    r.gradient_evals += 1;
    let left = opts.time_limit.map(|t| t.saturating_sub(start.elapsed()));
    if r.gradient_norm <= r.gradient_threshold {
        // converged on the rows, whatever stopped the Gram form (as `solve` would report it)
        if !r.converged {
            r.status = Status::Converged;
            r.converged = true;
            r.message = None;
            r.gradient_check = None;
        }
    } else if r.converged {
        if left.is_some_and(|t| t.is_zero()) || r.iterations >= opts.max_iters {
            r.status = if r.iterations >= opts.max_iters {
                Status::MaxIterations
            } else {
                Status::Timeout
            };
            r.converged = false;
            r.message = Some("the Gram form converged but the rows' gradient misses the threshold".into());
        } else {
            let finish = SolveOptions {
                // the same threshold from this start: tol·max(1, ‖∇f(x)‖) = threshold
                tol: (r.gradient_threshold / r.gradient_norm.max(1.0)).max(f64::MIN_POSITIVE),
                max_iters: opts.max_iters - r.iterations,
                time_limit: left,
                ..opts.clone()
            };
            let began = start.elapsed().as_secs_f64();
            shift.iterations = r.iterations;
            shift.elapsed = began;
            let (p, back) = solve_monitored(rows, &r.x, &finish, shift)?;
            shift = back;
            r.status = p.status;
            r.converged = p.converged;
            r.gradient_threshold = p.gradient_threshold;
            r.iterations += p.iterations;
            r.cost_evals += p.cost_evals;
            r.gradient_evals += p.gradient_evals;
            r.hessian_evals += p.hessian_evals;
            r.hessian_vec_evals += p.hessian_vec_evals;
            r.damped_iterations += p.damped_iterations;
            r.cost = p.cost;
            r.gradient_norm = p.gradient_norm;
            r.x = p.x;
            r.gradient_check = p.gradient_check;
            r.message = Some(format!(
                "the Gram form converged but the rows' gradient missed the threshold; finished on the \
                 rows{}",
                p.message.map(|m| format!(": {m}")).unwrap_or_default()
            ));
            if let (Some(trace), Some(more)) = (&mut r.trace, p.trace) {
                let offset = r.iterations - p.iterations;
                trace.extend(more.into_iter().skip(1).map(|mut row| {
                    row.iteration += offset;
                    row.elapsed += began;
                    row
                }));
            }
        }
    }
    r.seconds = start.elapsed().as_secs_f64();
    r.gram_seconds = Some(setup.as_secs_f64());
    Ok((r, shift.inner))
}

/// Adds `seconds` (the set-up before the phase) to the trace's times.
fn delay_trace(r: &mut Report, seconds: f64) {
    for row in r.trace.iter_mut().flatten() {
        row.elapsed += seconds;
    }
}

/// A monitor that sees one phase of a longer solve: times from the start of the whole solve
/// (set-up included) and iteration numbers continuing the earlier phases'; a later phase's
/// row 0 (the earlier phase's last iterate again) is not shown twice.
struct Shifted<M> {
    inner: M,
    iterations: u64,
    elapsed: f64,
}

impl<M: Monitor> Monitor for Shifted<M> {
    fn iteration(&mut self, row: &TraceRow) -> Control {
        if self.iterations > 0 && row.iteration == 0 {
            return Control::Continue;
        }
        let shifted = TraceRow {
            iteration: row.iteration + self.iterations,
            elapsed: row.elapsed + self.elapsed,
            ..*row
        };
        self.inner.iteration(&shifted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Matrix;

    fn quiet(_: &TraceRow) -> Control {
        Control::Continue
    }

    fn instance(m: usize, n: usize) -> (Matrix, Vector) {
        let a = Matrix::from_fn(m, n, |i, j| {
            let h = ((i * 7919 + j * 104_729 + 3) as f64 * 0.618_033_988_7).sin() * 43_758.545_3;
            (2.0 * (h - h.floor()) - 1.0) * (1.0 + j as f64)
        });
        let b = Vector::from_fn(m, |i, _| ((i as f64) * 0.3).sin() * 5.0 + 1.0);
        (a, b)
    }

    #[test]
    fn matches_a_direct_solve_and_checks_the_answer_on_the_rows() {
        let (a, b) = instance(400, 12);
        let p = LeastSquares::new(a.clone(), b.clone(), 0.0).unwrap();
        // the normal equations by nalgebra's Cholesky: the independent truth
        let want = (a.transpose() * &a)
            .cholesky()
            .unwrap()
            .solve(&(a.transpose() * &b));
        for method in [
            Method::Lbfgs,
            Method::GradientDescent,
            Method::NewtonCg,
            Method::Cg,
        ] {
            let opts = SolveOptions {
                tol: 1e-10,
                max_iters: 100_000,
                ..SolveOptions::new(method)
            };
            let (r, _) =
                solve_least_squares_monitored(&p, &Vector::zeros(12), &opts, GramMode::On, quiet).unwrap();
            assert!(r.converged, "{method}: {:?}", r.status);
            assert!(r.gram_seconds.is_some() && r.seconds >= r.gram_seconds.unwrap_or(0.0));
            assert!((&r.x - &want).amax() < 1e-6 * want.amax(), "{method}");
            // the reported cost and gradient are the rows' at x, and meet the threshold
            let (f, g) = p.cost_and_gradient(&r.x).unwrap();
            assert_eq!(r.cost, f, "{method}");
            assert_eq!(r.gradient_norm, g.norm(), "{method}");
            assert!(g.norm() <= r.gradient_threshold, "{method}");
        }
    }

    #[test]
    fn auto_picks_the_gram_form_only_where_it_pays() {
        assert!(GramMode::Auto.applies(2000, 50, Method::Lbfgs));
        assert!(!GramMode::Auto.applies(90, 50, Method::Lbfgs));
        assert!(!GramMode::Auto.applies(100_000, 600, Method::Lbfgs));
        // n in (128, 256]: only when A is large (passes over it then run at memory speed)
        assert!(GramMode::Auto.applies(20_000, 200, Method::Lbfgs));
        assert!(!GramMode::Auto.applies(4000, 200, Method::Lbfgs));
        assert!(!GramMode::Auto.applies(1100, 512, Method::Lbfgs));
        assert!(!GramMode::Auto.applies(4000, 400, Method::Lbfgs));
        assert!(!GramMode::Auto.applies(2000, 50, Method::Newton));
        assert!(GramMode::On.applies(10, 50, Method::Newton));
        assert!(!GramMode::Off.applies(2000, 50, Method::Lbfgs));
        assert_eq!("on".parse::<GramMode>().unwrap(), GramMode::On);
        assert!("yes"
            .parse::<GramMode>()
            .unwrap_err()
            .to_string()
            .contains("auto, on, off"));
    }

    #[test]
    fn a_rank_deficient_problem_falls_back_on_auto_and_errors_on_on() {
        let (mut a, b) = instance(100, 4);
        let c0 = a.column(0).into_owned();
        a.set_column(3, &c0);
        let p = LeastSquares::new(a, b, 0.0).unwrap();
        let opts = SolveOptions::new(Method::Lbfgs);
        let (r, _) =
            solve_least_squares_monitored(&p, &Vector::zeros(4), &opts, GramMode::Auto, quiet).unwrap();
        assert!(r.converged && r.gram_seconds.is_none());
        assert!(solve_least_squares_monitored(&p, &Vector::zeros(4), &opts, GramMode::On, quiet).is_err());
    }

    #[test]
    fn a_gram_form_past_the_memory_limit_falls_back_on_auto_and_errors_on_on() {
        // AᵀA, its factor and the kernel's buffers, 4 · 12² · 8 = 4608 bytes, against a limit of
        // 4607: refused
        // before anything is allocated (at 60 000 features the Gram form aborted the process
        // on a failed 28.8 GB allocation)
        let (a, b) = instance(400, 12);
        let p = LeastSquares::new(a.clone(), b.clone(), 0.0).unwrap();
        let x = a.clone().svd(true, true).solve(&b, 0.0).unwrap();
        let opts = SolveOptions {
            memory_limit: Some(4607),
            tol: 1e-12,
            ..SolveOptions::new(Method::Lbfgs)
        };
        match solve_least_squares_monitored(&p, &Vector::zeros(12), &opts, GramMode::On, quiet) {
            Err(Error::Memory {
                method,
                needed,
                available,
                message,
            }) => {
                assert_eq!((method.as_str(), needed, available), ("lbfgs", 4608, Some(4607)));
                assert!(
                    message.starts_with("the Gram form needs 4 dense 12 × 12 matrices"),
                    "{message}"
                );
                assert!(
                    message.ends_with("the row form (--gram off) needs no n × n matrix"),
                    "{message}"
                );
            }
            other => panic!("{:?}", other.map(|(r, _)| r)),
        }
        let (r, _) =
            solve_least_squares_monitored(&p, &Vector::zeros(12), &opts, GramMode::Auto, quiet).unwrap();
        assert!(r.converged && r.gram_seconds.is_none(), "{r:?}");
        let said = r.message.as_deref().unwrap_or("");
        assert!(
            said.contains("not in the Gram form") && said.contains("(4608 bytes)"),
            "{said}"
        );
        assert!(!said.contains("solver lbfgs"), "{said}");
        assert!((&r.x - &x).amax() < 1e-8 * x.amax(), "{} against {}", r.x, x);
        // at the limit, the Gram form
        let opts = SolveOptions {
            memory_limit: Some(4608),
            ..opts
        };
        let (r, _) =
            solve_least_squares_monitored(&p, &Vector::zeros(12), &opts, GramMode::On, quiet).unwrap();
        assert!(r.converged && r.gram_seconds.is_some(), "{r:?}");
    }

    #[test]
    fn a_gram_answer_the_rows_reject_is_finished_on_the_rows() {
        // cond(A) = 1e5 and tol = 2e-14: the Gram form's gradient noise (about ε‖A‖²‖x‖)
        // lets it stop where the rows' gradient is still over the threshold (measured: 120 to
        // 128 iterations in all)
        let n = 6;
        let (a0, b) = instance(300, n);
        let svd = a0.svd(true, true);
        let (u, vt) = (svd.u.unwrap(), svd.v_t.unwrap());
        let s = Vector::from_fn(n, |i, _| 10f64.powf(-5.0 * i as f64 / (n - 1) as f64));
        let a = &u * Matrix::from_diagonal(&s) * &vt;
        let p = LeastSquares::new(a, b, 0.0).unwrap();
        let opts = SolveOptions {
            tol: 2e-14,
            max_iters: 100_000,
            trace: true,
            ..SolveOptions::new(Method::Lbfgs)
        };
        let (r, seen) =
            solve_least_squares_monitored(&p, &Vector::zeros(n), &opts, GramMode::On, Rows(vec![])).unwrap();
        let message = r.message.clone().unwrap_or_default();
        // measured on x86-64 with each kind of kernel (GRADFIT_CPU=avx512, avx2, portable: the
        // rows' gradient 6.4e-14, 6.4e-14 and 1.07e-13 at the end, against 1.98e-13); at 1e-14
        // the portable kernels' rows never got below 1.07e-13 (100 000 iterations), at 5e-14
        // the Gram form alone met it. Kernels elsewhere round differently and may not need the
        // rows' help, but must still meet every other check below
        #[cfg(target_arch = "x86_64")]
        assert!(message.contains("finished on the rows"), "{message}");
        assert!(r.converged, "{:?}", r.status);
        let (f, g) = p.cost_and_gradient(&r.x).unwrap();
        assert_eq!((r.cost, r.gradient_norm), (f, g.norm()));
        assert!(g.norm() <= r.gradient_threshold);
        // the monitor and the trace see one run: iterations 0, 1, …, r.iterations once each,
        // times from the start of the whole solve (set-up included), never going back
        let trace = r.trace.clone().unwrap_or_default();
        for rows in [&seen.0, &trace] {
            let iterations: Vec<u64> = rows.iter().map(|t| t.iteration).collect();
            assert_eq!(iterations, (0..=r.iterations).collect::<Vec<_>>());
            assert!(rows[0].elapsed >= r.gram_seconds.unwrap_or(f64::INFINITY));
            assert!(rows.windows(2).all(|w| w[0].elapsed <= w[1].elapsed));
            assert!(rows[rows.len() - 1].elapsed <= r.seconds);
        }
    }

    /// A monitor that keeps every row it is shown.
    struct Rows(Vec<TraceRow>);

    impl Monitor for Rows {
        fn iteration(&mut self, row: &TraceRow) -> Control {
            self.0.push(*row);
            Control::Continue
        }
    }

    #[test]
    fn the_time_limit_covers_the_set_up() {
        // a limit far shorter than forming AᵀA: the solve stops at once, not after a full
        // limit of its own
        let (a, b) = instance(3000, 60);
        let p = LeastSquares::new(a, b, 0.0).unwrap();
        let opts = SolveOptions {
            time_limit: Some(Duration::from_nanos(1)),
            ..SolveOptions::new(Method::Lbfgs)
        };
        let (r, _) =
            solve_least_squares_monitored(&p, &Vector::zeros(60), &opts, GramMode::On, quiet).unwrap();
        // (the limit is checked between iterations, so the first one runs)
        assert_eq!((r.status, r.converged), (Status::Timeout, false));
        assert!(r.iterations <= 1, "{} iterations", r.iterations);
        // and a wrong x0 is refused before any set-up
        let err = match solve_least_squares_monitored(&p, &Vector::zeros(59), &opts, GramMode::On, quiet) {
            Ok(_) => panic!("a wrong x0 was accepted"),
            Err(e) => e,
        };
        assert!(err.to_string().contains("x0"), "{err}");
    }
}
