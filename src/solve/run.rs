//! The driver: runs a method through argmin's `Executor` with gradfit's stop rule, trace and
//! monitor, and turns the outcome into a [`Report`].

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

use argmin::core::observers::{Observe, ObserverMode};
use argmin::core::{
    Error as ArgminError, Executor, IterState, Problem, Solver, State, TerminationReason, TerminationStatus,
    KV,
};

use super::common::Outcome;
use super::guard::Guarded;
use super::{argmin_wrapped, bfgs, gradient_descent, lbfgs, newton, newton_cg, with_detail};
use super::{Control, Method, Monitor, Report, SolveOptions, Status, TraceRow};
use crate::check::{check_directional, Tolerance};
use crate::error::{check_finite, check_len, Error, Result};
use crate::numeric::norm2;
use crate::problems::Objective;
use crate::Vector;

type StateH<H> = IterState<Vector, Vector, (), H, (), f64>;

/// Solves min f(x) from x₀ with the options' method.
///
/// Errors (rather than a report) only when no finite iterate exists or the input is wrong: an
/// x₀ of the wrong length or with non-finite entries, invalid options, a non-finite cost or
/// gradient at x₀. Every other outcome, including not converging, is a [`Report`] whose
/// status says why it stopped.
///
/// ```
/// use gradfit::problems::Quadratic;
/// use gradfit::solve::{solve, Method, SolveOptions};
/// use gradfit::{Matrix, Vector};
/// // f(x) = xᵀx − 2·1ᵀx, minimized at x = 1
/// let q = Quadratic::new(Matrix::identity(3, 3), Vector::from_element(3, -2.0), 0.0)?;
/// let r = solve(&q, &Vector::zeros(3), &SolveOptions::new(Method::Lbfgs))?;
/// assert!(r.converged && (r.x.add_scalar(-1.0)).amax() < 1e-6);
/// # Ok::<(), gradfit::Error>(())
/// ```
pub fn solve<P: Objective + ?Sized>(problem: &P, x0: &Vector, opts: &SolveOptions) -> Result<Report> {
    drive(problem, x0, opts, None)
}

/// [`solve`] with a [`Monitor`] that sees every iteration and may stop the run; the monitor
/// is handed back with the report.
///
/// ```
/// use gradfit::problems::Quadratic;
/// use gradfit::solve::{solve_monitored, Control, Method, SolveOptions, Status, TraceRow};
/// use gradfit::{Matrix, Vector};
/// let q = Quadratic::new(Matrix::from_diagonal_element(2, 2, 1.0), Vector::from_element(2, -2.0), 0.0)?;
/// let stop_after_one = |row: &TraceRow| if row.iteration >= 1 { Control::Stop } else { Control::Continue };
/// let opts = SolveOptions { tol: 1e-300, ..SolveOptions::new(Method::GradientDescent) };
/// let (r, _) = solve_monitored(&q, &Vector::from_element(2, 10.0), &opts, stop_after_one)?;
/// assert_eq!((r.status, r.iterations), (Status::Stopped, 1));
/// # Ok::<(), gradfit::Error>(())
/// ```
pub fn solve_monitored<P: Objective + ?Sized, M: Monitor + 'static>(
    problem: &P,
    x0: &Vector,
    opts: &SolveOptions,
    monitor: M,
) -> Result<(Report, M)> {
    let shared = Rc::new(RefCell::new(monitor));
    let report = drive(
        problem,
        x0,
        opts,
        Some(shared.clone() as Rc<RefCell<dyn Monitor>>),
    )?;
    let monitor = Rc::try_unwrap(shared).map_err(|_| Error::Solver {
        method: opts.method.name().into(),
        message: "the monitor is still shared after the run".into(),
    })?;
    Ok((report, monitor.into_inner()))
}

/// Adds gradfit's stop rule, an early stop from the monitor, and (for argmin's solvers) a
/// copy of the state that survives a failing iteration.
struct Stopper<S> {
    inner: S,
    tol: f64,
    threshold: f64,
    backup: bool,
    stop: Rc<Cell<bool>>,
}

impl<O, S, H> Solver<O, StateH<H>> for Stopper<S>
where
    S: Solver<O, StateH<H>>,
    H: Clone,
    StateH<H>: State<Param = Vector, Float = f64> + Clone,
{
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn init(
        &mut self,
        problem: &mut Problem<O>,
        state: StateH<H>,
    ) -> std::result::Result<(StateH<H>, Option<KV>), ArgminError> {
        let (state, kv) = self.inner.init(problem, state)?;
        let g0 = state.get_gradient().map(norm2).unwrap_or(0.0);
        self.threshold = self.tol * g0.max(1.0);
        Ok((state, kv))
    }

    fn next_iter(
        &mut self,
        problem: &mut Problem<O>,
        state: StateH<H>,
    ) -> std::result::Result<(StateH<H>, Option<KV>), ArgminError> {
        if !self.backup {
            return self.inner.next_iter(problem, state);
        }
        let saved = state.clone();
        match self.inner.next_iter(problem, state) {
            Ok((st, kv)) if st.get_param().is_some() => Ok((st, kv)),
            Ok((st, _)) => {
                // argmin's L-BFGS takes the parameter out when its line search fails
                let reason = st
                    .get_termination_reason()
                    .cloned()
                    .unwrap_or(TerminationReason::SolverExit(
                        "the solver returned no parameter".into(),
                    ));
                Ok((saved.terminate_with(reason), None))
            }
            Err(e) => Ok((
                saved.terminate_with(TerminationReason::SolverExit(e.to_string())),
                None,
            )),
        }
    }

    fn terminate(&mut self, state: &StateH<H>) -> TerminationStatus {
        if self.stop.get() {
            return TerminationStatus::Terminated(TerminationReason::SolverExit(STOPPED.into()));
        }
        if let Some(g) = state.get_gradient() {
            if norm2(g) <= self.threshold {
                return TerminationStatus::Terminated(TerminationReason::SolverConverged);
            }
        }
        self.inner.terminate(state)
    }
}

const STOPPED: &str = "stopped by the monitor";

/// The argmin observer behind the trace and the [`Monitor`].
struct Recorder {
    rows: Option<Rc<RefCell<Vec<TraceRow>>>>,
    monitor: Option<Rc<RefCell<dyn Monitor>>>,
    stop: Rc<Cell<bool>>,
    start: Instant,
}

impl Recorder {
    fn record<H>(&mut self, iteration: u64, state: &StateH<H>, step: f64)
    where
        StateH<H>: State<Param = Vector, Float = f64>,
    {
        let row = TraceRow {
            iteration,
            cost: state.get_cost(),
            gradient_norm: state.get_gradient().map(norm2).unwrap_or(f64::NAN),
            step,
            elapsed: self.start.elapsed().as_secs_f64(),
        };
        if let Some(rows) = &self.rows {
            rows.borrow_mut().push(row);
        }
        if let Some(m) = &self.monitor {
            if m.borrow_mut().iteration(&row) == Control::Stop {
                self.stop.set(true);
            }
        }
    }
}

impl<H> Observe<StateH<H>> for Recorder
where
    StateH<H>: State<Param = Vector, Float = f64>,
{
    fn observe_init(
        &mut self,
        _name: &str,
        state: &StateH<H>,
        _kv: &KV,
    ) -> std::result::Result<(), ArgminError> {
        self.record(0, state, f64::NAN);
        Ok(())
    }

    fn observe_iter(&mut self, state: &StateH<H>, kv: &KV) -> std::result::Result<(), ArgminError> {
        let step = kv.get("step").and_then(|v| v.get_float()).unwrap_or(f64::NAN);
        self.record(state.get_iter() + 1, state, step);
        Ok(())
    }
}

/// What one run produced, before the honest status is decided.
struct Raw {
    x: Vector,
    cost: f64,
    gradient: Option<Vector>,
    iterations: u64,
    counts: HashMap<String, u64>,
    termination: Option<TerminationReason>,
    exit: Option<(Status, String)>,
    damped: u64,
    threshold: f64,
}

fn drive<P: Objective + ?Sized>(
    problem: &P,
    x0: &Vector,
    opts: &SolveOptions,
    monitor: Option<Rc<RefCell<dyn Monitor>>>,
) -> Result<Report> {
    opts.validate()?;
    check_len("length of x0", problem.dim(), x0.len())?;
    check_finite("x0", x0.iter())?;
    let n = problem.dim();
    let start = Instant::now();
    let stop = Rc::new(Cell::new(false));
    let rows = opts.trace.then(|| Rc::new(RefCell::new(Vec::new())));
    let recorder = (rows.is_some() || monitor.is_some()).then(|| Recorder {
        rows: rows.clone(),
        monitor,
        stop: stop.clone(),
        start,
    });
    let budget = opts
        .max_iters
        .saturating_mul(u64::from(opts.max_line_search) + 5)
        .saturating_add(100);
    let guarded = Guarded::new(problem, budget);
    let observed = recorder.is_some();
    let run = Run {
        x0: x0.clone(),
        opts,
        recorder,
        stop,
    };
    let raw = match opts.method {
        Method::GradientDescent => run.execute(
            guarded,
            gradient_descent::GradientDescent::new(n, opts, observed),
            false,
        ),
        Method::Newton => run.execute(guarded, newton::Newton::new(n, opts, observed), false),
        Method::Lbfgs => run.execute(guarded, lbfgs::Lbfgs::new(n, opts, observed), false),
        Method::NewtonCg => run.execute(guarded, newton_cg::NewtonCg::new(n, opts, observed), false),
        Method::Bfgs => {
            // its inverse-Hessian approximation
            super::common::dense_fits(n, 1, "bfgs", opts.memory_limit)?;
            run.execute(guarded, bfgs::Bfgs::new(n, opts, observed)?, false)
        }
        Method::Cg => run.execute(guarded, argmin_wrapped::cg(n)?, true),
        Method::TrustRegion => {
            // the Hessian of each iteration, the current and previous ones argmin's state
            // keeps, and the copies its executor and solver make (five: under `ulimit -v`
            // three were too few for a 4000-parameter run)
            super::common::dense_fits(n, 5, "trust-region", opts.memory_limit)?;
            run.execute(guarded, argmin_wrapped::trust_region(n), true)
        }
        Method::ArgminLbfgs => run.execute(guarded, argmin_wrapped::lbfgs(opts.pairs())?, true),
    }?;
    let seconds = start.elapsed().as_secs_f64();
    let trace = rows.map(|r| r.take());
    finish(problem, opts, raw, seconds, trace)
}

struct Run<'o> {
    x0: Vector,
    opts: &'o SolveOptions,
    recorder: Option<Recorder>,
    stop: Rc<Cell<bool>>,
}

impl Run<'_> {
    fn execute<O, S, H>(self, problem: O, solver: S, backup: bool) -> Result<Raw>
    where
        S: Solver<O, StateH<H>> + Outcome,
        H: Clone + 'static,
        StateH<H>: State<Param = Vector, Float = f64> + Clone,
    {
        let stopper = Stopper {
            inner: solver,
            tol: self.opts.tol,
            threshold: self.opts.tol,
            backup,
            stop: self.stop,
        };
        let max_iters = self.opts.max_iters;
        let x0 = self.x0;
        let mut exec = Executor::new(problem, stopper)
            .configure(|s| s.param(x0).max_iters(max_iters))
            .timer(true);
        if let Some(limit) = self.opts.time_limit {
            exec = exec.timeout(limit);
        }
        if let Some(rec) = self.recorder {
            exec = exec.add_observer(rec, ObserverMode::Always);
        }
        let res = exec
            .run()
            .map_err(|e| crate::check::from_argmin_pub(e, self.opts.method.name()))?;
        let mut state = res.state;
        let solver = res.solver;
        let x = match state.take_param() {
            Some(x) => x,
            None => state.take_best_param().ok_or_else(|| Error::Solver {
                method: self.opts.method.name().into(),
                message: "argmin returned no parameter vector".into(),
            })?,
        };
        Ok(Raw {
            x,
            cost: state.get_cost(),
            gradient: state.take_gradient(),
            iterations: state.get_iter(),
            counts: res
                .problem
                .counts
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            termination: state.get_termination_reason().cloned(),
            exit: solver.inner.exit(),
            damped: solver.inner.damped_iterations(),
            threshold: solver.threshold,
        })
    }
}

/// |x|∞ beyond which a run that failed is reported as having run off (see `finish`).
const RAN_OFF: f64 = 1e8;

/// Decides the status from what holds at the returned x, not from what the solver claims.
fn finish<P: Objective + ?Sized>(
    problem: &P,
    opts: &SolveOptions,
    mut raw: Raw,
    seconds: f64,
    trace: Option<Vec<TraceRow>>,
) -> Result<Report> {
    problem.canonicalize(&mut raw.x);
    let wrapped = matches!(
        opts.method,
        Method::Cg | Method::TrustRegion | Method::ArgminLbfgs
    );
    let (cost, gradient) = match raw.gradient {
        Some(g) if !wrapped && raw.cost.is_finite() => (raw.cost, g),
        // argmin's solvers may keep a cost or gradient from another point: evaluate at x
        _ => problem.cost_and_gradient(&raw.x)?,
    };
    let gradient_norm = norm2(&gradient);
    let count = |k: &str| raw.counts.get(k).copied().unwrap_or(0);
    let (status, message) = if gradient_norm <= raw.threshold {
        (Status::Converged, None)
    } else if let Some((status, message)) = raw.exit {
        (status, Some(message))
    } else {
        match raw.termination {
            Some(TerminationReason::MaxItersReached) => (Status::MaxIterations, None),
            Some(TerminationReason::Timeout) => (Status::Timeout, None),
            Some(TerminationReason::SolverExit(m)) if m == STOPPED => (Status::Stopped, None),
            Some(TerminationReason::SolverExit(m)) if m.contains("non-finite") => {
                (Status::NonFinite, Some(m))
            }
            Some(TerminationReason::SolverExit(m)) => (Status::LineSearchFailed, Some(m)),
            Some(other) => (
                Status::LineSearchFailed,
                Some(format!("{other}, but the gradient tolerance does not hold at x")),
            ),
            None => (Status::MaxIterations, None),
        }
    };
    let suspicious = matches!(
        status,
        Status::LineSearchFailed | Status::MaxIterations | Status::NonFinite
    );
    // parameters that ran off (|x|∞ > 1e8, or not finite) on a failed run of a problem not
    // known to have a minimum: f most likely has none. The directional check is not run there: its step grows with |x|∞ (6e10 at
    // 1e16), and across such a step a correct gradient of a curved f disagrees with the
    // difference quotient (log-sum-exp unbounded below was blamed on its gradient)
    let far = raw.x.amax();
    // (a classifier's proof from x itself, a hyperplane separating a class, holds at any x,
    // converged or not)
    let no_minimum = if suspicious && !problem.has_minimum() {
        problem.no_minimum().or_else(|| problem.not_a_minimum(&raw.x))
    } else {
        None
    };
    // converged where f is proven to have no minimum: a saddle point (of an indefinite
    // quadratic started at one, say), which the gradient tolerance cannot tell from a minimum
    let message = match status == Status::Converged && !problem.has_minimum() {
        true => match problem.not_a_minimum(&raw.x) {
            Some(proof) => Some(with_detail(
                message,
                format!("the gradient tolerance holds at x, but x is not a minimum: {proof}"),
            )),
            None => message,
        },
        false => message,
    };
    let ran_off =
        suspicious && !problem.has_minimum() && (far > RAN_OFF || raw.x.iter().any(|v| !v.is_finite()));
    let message = if let Some(proof) = no_minimum.as_ref() {
        // a proof (an indefinite quadratic) says more than "ran off", and holds however far
        // the solver went: trust-region's radius cap keeps |x|∞ small over 1000 iterations
        Some(with_detail(
            message,
            format!("{proof} (|x|∞ = {far:.1e}, cost {cost:.6e} at the stop)"),
        ))
    } else if ran_off {
        Some(with_detail(
            message,
            format!(
                "the parameters ran off to |x|∞ = {far:.1e} with the cost at {cost:.6e}: f may have no minimum \
                 (unbounded below along some direction, or classes a hyperplane separates at --l2 0)"
            ),
        ))
    } else {
        message
    };
    let gradient_check = if suspicious && !ran_off && no_minimum.is_none() {
        check_directional(&Guarded::new(problem, 64), &raw.x, 4, 0, Tolerance { rel: 1e-5 }).ok()
    } else {
        None
    };
    let message = match (&gradient_check, message) {
        (Some(c), m) if !c.passed => Some(with_detail(
            m,
            format!(
                "the gradient disagrees with the cost at x (directional check: {c}), so it is probably wrong \
                 (or the cost is too badly scaled at x for differences to resolve it: `gradfit check` tests \
                 the derivatives at random points)"
            ),
        )),
        (_, m) => m,
    };
    Ok(Report {
        method: opts.method,
        status,
        converged: status == Status::Converged,
        iterations: raw.iterations,
        cost_evals: count("cost_count"),
        gradient_evals: count("gradient_count"),
        hessian_evals: count("hessian_count"),
        hessian_vec_evals: count("hessian_vec_count"),
        cost,
        gradient_norm,
        gradient_threshold: raw.threshold,
        seconds,
        gram_seconds: None,
        x: raw.x,
        damped_iterations: raw.damped,
        message,
        gradient_check,
        trace,
    })
}
