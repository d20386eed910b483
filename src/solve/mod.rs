//! Solvers that reach the optimum and say honestly why they stopped.
//!
//! One entry point, [`solve`], runs any [`Method`] through argmin's `Executor` on any
//! [`Objective`](crate::problems::Objective), with one [`SolveOptions`] and one [`Report`], and no argmin types in the
//! signature.
//!
//! | method | what | per iteration |
//! |---|---|---|
//! | `gd` | steepest descent, Armijo backtracking (or strong Wolfe) | 1 gradient, ≥ 1 cost |
//! | `newton` | Cholesky solve of ∇²f·d = −∇f, damped by τI if not PD, Armijo backtracking; logistic and least squares with m < n and λ > 0: the m×m Woodbury system | 1 Hessian |
//! | `lbfgs` | ours: two-loop recursion over a ring buffer, strong-Wolfe line search (default) | O(mn) |
//! | `newton-cg` | ours: truncated Newton, CG on Hessian-vector products, forcing term | matrix-free |
//! | `bfgs` | ours: dense inverse-Hessian update, O(n²) per iteration, strong Wolfe | O(n²) |
//! | `cg` | argmin's nonlinear CG (Polak–Ribière+), wrapped with gradfit's stop rule | |
//! | `trust-region` | argmin's trust region with Steihaug's CG, wrapped | 1 Hessian |
//! | `argmin-lbfgs` | argmin's own L-BFGS with More–Thuente, wrapped, for comparison | |
//!
//! **Stop rule (every method):** converged when ‖∇f(x)‖₂ ≤ tol·max(1, ‖∇f(x₀)‖₂). A report
//! says [`Status::Converged`] only if that holds at the returned x, whatever stopped the run.
//! Otherwise the status says why it stopped: the iteration limit, the time limit, a failed
//! line search (with a directional-derivative check of the gradient at the last iterate,
//! because a wrong gradient is the usual cause), a Hessian that damping could not make
//! positive definite, non-finite values, or a [`Monitor`] that asked to stop.
//!
//! References: J. Nocedal and S. J. Wright, *Numerical Optimization*, 2nd ed. (2006):
//! line searches ch. 3, Newton with modification §3.4, Newton-CG §7.1, BFGS §6.1,
//! L-BFGS §7.2.
//!
//! ```
//! use gradfit::problems::LeastSquares;
//! use gradfit::solve::{solve, Method, SolveOptions, Status};
//! use gradfit::{Matrix, Vector};
//! let a = Matrix::from_row_slice(3, 2, &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
//! let p = LeastSquares::new(a, Vector::from_vec(vec![1.0, 2.0, 3.0]), 0.0)?;
//! let report = solve(&p, &Vector::zeros(2), &SolveOptions::new(Method::Newton))?;
//! assert_eq!(report.status, Status::Converged);
//! assert_eq!(report.iterations, 1);
//! assert!((report.x[0] - 1.0).abs() < 1e-12 && (report.x[1] - 2.0).abs() < 1e-12);
//! # Ok::<(), gradfit::Error>(())
//! ```

mod argmin_wrapped;
mod bfgs;
pub(crate) mod common;
mod gradient_descent;
mod gram_form;
mod guard;
mod lbfgs;
pub(crate) mod line_search;
mod newton;
mod newton_cg;
mod run;

use std::fmt;
use std::time::Duration;

pub use gram_form::{
    solve_least_squares_monitored, GramMode, AUTO_LARGE_ENTRIES, AUTO_MAX_FEATURES, AUTO_MAX_FEATURES_LARGE,
};
pub use guard::Guarded;
pub use run::{solve, solve_monitored};

use crate::check::EntryReport;
use crate::error::{Error, Result};
use crate::Vector;

/// The optimization methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Steepest descent with a bounded line search.
    GradientDescent,
    /// Newton's method with a Cholesky solve, damping and Armijo backtracking.
    Newton,
    /// gradfit's L-BFGS.
    Lbfgs,
    /// gradfit's truncated Newton (Newton-CG), matrix-free.
    NewtonCg,
    /// gradfit's dense BFGS.
    Bfgs,
    /// argmin's nonlinear conjugate gradient (Polak–Ribière+), wrapped.
    Cg,
    /// argmin's trust region with Steihaug's CG, wrapped.
    TrustRegion,
    /// argmin's own L-BFGS with More–Thuente, wrapped.
    ArgminLbfgs,
}

impl Method {
    /// Every method, in the order the command line lists them.
    pub const ALL: [Method; 8] = [
        Method::GradientDescent,
        Method::Newton,
        Method::Lbfgs,
        Method::NewtonCg,
        Method::Bfgs,
        Method::Cg,
        Method::TrustRegion,
        Method::ArgminLbfgs,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Method::GradientDescent => "gd",
            Method::Newton => "newton",
            Method::Lbfgs => "lbfgs",
            Method::NewtonCg => "newton-cg",
            Method::Bfgs => "bfgs",
            Method::Cg => "cg",
            Method::TrustRegion => "trust-region",
            Method::ArgminLbfgs => "argmin-lbfgs",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Method {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Method::ALL.into_iter().find(|m| m.name() == s).ok_or_else(|| {
            let names: Vec<_> = Method::ALL.iter().map(|m| m.name()).collect();
            Error::option("solver", s, &format!("must be one of {}", names.join(", ")))
        })
    }
}

/// The line search used by `gd` (the quasi-Newton methods always use strong Wolfe, Newton
/// always Armijo backtracking from the full step).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LineSearch {
    /// Armijo backtracking with quadratic interpolation.
    #[default]
    Backtracking,
    /// Strong Wolfe conditions, bracketing and cubic zoom.
    StrongWolfe,
}

/// Options shared by every method. [`SolveOptions::new`] gives the defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct SolveOptions {
    /// The method.
    pub method: Method,
    /// Converged when ‖∇f(x)‖₂ ≤ tol·max(1, ‖∇f(x₀)‖₂). Default 1e-6; must be > 0.
    pub tol: f64,
    /// The iteration limit. Default 1000; must be ≥ 1.
    pub max_iters: u64,
    /// Optional wall-time limit, checked between iterations.
    pub time_limit: Option<Duration>,
    /// Most trial points per line search. Default 40; must be ≥ 1.
    pub max_line_search: u32,
    /// The line search of `gd`. Default backtracking.
    pub line_search: LineSearch,
    /// L-BFGS memory m. Default 10; must be ≥ 1.
    pub memory: usize,
    /// Newton: the largest damping τ (relative to max(1, max |Hᵢᵢ|)) tried before giving up
    /// with [`Status::NotPositiveDefinite`]; 0 disables damping. Default 1e10.
    pub max_damping: f64,
    /// Keep a per-iteration trace in the report. Default false.
    pub trace: bool,
    /// The most bytes that the dense n×n matrices of `newton` (four: the Hessian, its Cholesky
    /// factor and what forming it on two threads takes; where the problem gives the Newton
    /// direction itself, against the system's figures and not this limit: two m×m by the m×m
    /// route, two mk×mk by softmax's, four n×n for least squares with several targets, whose
    /// Hessian's n×n block is factored once), the least-squares Gram form (four n×n: AᵀA, its
    /// factor and what forming AᵀA takes), `bfgs` (one: the
    /// inverse-Hessian approximation) and `trust-region` (five Hessians: the iteration's,
    /// argmin's state's current and previous, and its executor's and solver's copies) may take;
    /// past it the solve stops with an error that names the method, before allocating. Default
    /// `None`: what the system reports available to the process (the address-space limit less
    /// the space in use, the cgroup's limit less its usage net of inactive page cache, and for
    /// more than 64 MiB Linux's `MemAvailable`; no limit where it reports none). The check is
    /// against those figures: an allocation of newton's or bfgs' own matrices that still fails
    /// is an error, but argmin's and the Hessian kernel's own allocations can still abort the
    /// process when the figures are wrong.
    pub memory_limit: Option<u64>,
}

impl SolveOptions {
    /// The defaults for `method`.
    pub fn new(method: Method) -> Self {
        SolveOptions {
            method,
            tol: 1e-6,
            max_iters: 1000,
            time_limit: None,
            max_line_search: 40,
            line_search: LineSearch::default(),
            memory: 10,
            max_damping: 1e10,
            trace: false,
            memory_limit: None,
        }
    }

    /// The L-BFGS pairs to make room for: `memory`, or `max_iters` if fewer (a run adds at
    /// most one pair an iteration), so a large memory on a short run allocates only what it
    /// can use.
    pub(crate) fn pairs(&self) -> usize {
        self.memory
            .min(usize::try_from(self.max_iters).unwrap_or(usize::MAX))
    }

    /// Checks every option's range; the error names the option.
    ///
    /// ```
    /// use gradfit::solve::{Method, SolveOptions};
    /// let mut o = SolveOptions::new(Method::Lbfgs);
    /// o.tol = -1.0;
    /// assert_eq!(o.validate().unwrap_err().to_string(), "invalid tol = -1: must be finite and > 0");
    /// ```
    pub fn validate(&self) -> Result<()> {
        if !(self.tol.is_finite() && self.tol > 0.0) {
            return Err(Error::option("tol", self.tol, "must be finite and > 0"));
        }
        if self.max_iters == 0 {
            return Err(Error::option("max_iters", self.max_iters, "must be at least 1"));
        }
        if self.max_line_search == 0 {
            return Err(Error::option(
                "max_line_search",
                self.max_line_search,
                "must be at least 1",
            ));
        }
        if self.memory == 0 {
            return Err(Error::option("memory", self.memory, "must be at least 1"));
        }
        if !(self.max_damping.is_finite() && self.max_damping >= 0.0) {
            return Err(Error::option(
                "max_damping",
                self.max_damping,
                "must be finite and >= 0",
            ));
        }
        if self.time_limit == Some(Duration::ZERO) {
            return Err(Error::option("time_limit", "0s", "must be > 0"));
        }
        Ok(())
    }
}

impl Default for SolveOptions {
    fn default() -> Self {
        SolveOptions::new(Method::Lbfgs)
    }
}

/// Why a solve stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// ‖∇f(x)‖₂ ≤ tol·max(1, ‖∇f(x₀)‖₂) at the returned x.
    Converged,
    /// The iteration limit was reached first.
    MaxIterations,
    /// No step along the search direction decreased f enough; x is the last good iterate.
    LineSearchFailed,
    /// Newton's Hessian was not positive definite and damping up to `max_damping` did not
    /// make it so.
    NotPositiveDefinite,
    /// The cost or gradient became NaN or infinite at every trial; x is the last finite
    /// iterate.
    NonFinite,
    /// The time limit was reached first.
    Timeout,
    /// A [`Monitor`] asked to stop.
    Stopped,
}

impl Status {
    /// The machine-readable name (`converged`, `max-iterations`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Status::Converged => "converged",
            Status::MaxIterations => "max-iterations",
            Status::LineSearchFailed => "line-search-failed",
            Status::NotPositiveDefinite => "not-positive-definite",
            Status::NonFinite => "non-finite",
            Status::Timeout => "timeout",
            Status::Stopped => "stopped",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One row of the per-iteration trace (row 0 is the starting point).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TraceRow {
    /// Iteration number; 0 is x₀.
    pub iteration: u64,
    /// f at the iterate.
    pub cost: f64,
    /// ‖∇f‖₂ at the iterate (NaN where the method keeps no gradient).
    pub gradient_norm: f64,
    /// The accepted step length t (NaN where the method has none, e.g. at x₀).
    pub step: f64,
    /// Seconds since the solve started.
    pub elapsed: f64,
}

/// What a [`Monitor`] tells the solver after an iteration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Go on.
    Continue,
    /// Stop now; the report's status is [`Status::Stopped`] unless the tolerance is met.
    Stop,
}

/// A user's view of the iterations (progress, logging, early stop), fed by argmin's observer
/// mechanism.
pub trait Monitor {
    /// Called at x₀ (iteration 0) and after every iteration.
    fn iteration(&mut self, row: &TraceRow) -> Control;
}

impl<F: FnMut(&TraceRow) -> Control> Monitor for F {
    fn iteration(&mut self, row: &TraceRow) -> Control {
        self(row)
    }
}

/// The outcome of a solve.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Report {
    /// The method that ran.
    pub method: Method,
    /// Why it stopped.
    pub status: Status,
    /// `status == Converged`: the gradient tolerance holds at `x`.
    pub converged: bool,
    /// Iterations done.
    pub iterations: u64,
    /// Cost evaluations (a fused cost-and-gradient counts as one of each).
    pub cost_evals: u64,
    /// Gradient evaluations.
    pub gradient_evals: u64,
    /// Hessian evaluations (formed Hessians).
    pub hessian_evals: u64,
    /// Hessian-vector products (newton-cg).
    pub hessian_vec_evals: u64,
    /// f(x).
    pub cost: f64,
    /// ‖∇f(x)‖₂.
    pub gradient_norm: f64,
    /// The gradient-norm threshold tol·max(1, ‖∇f(x₀)‖₂) that was applied.
    pub gradient_threshold: f64,
    /// Wall time of the solve in seconds (with the Gram form, including forming AᵀA).
    pub seconds: f64,
    /// Least squares in the Gram form ([`GramMode`]): the seconds of its set-up (forming AᵀA
    /// and AᵀB, factoring AᵀA, measuring the residual floor on the rows), part of `seconds`.
    /// `None` when the rows were used throughout.
    pub gram_seconds: Option<f64>,
    /// The returned parameters: the last iterate (the last good one after a failure).
    pub x: Vector,
    /// Newton iterations whose Hessian needed damping τI to be positive definite.
    pub damped_iterations: u64,
    /// More detail: why the run stopped when it did not converge, and how least squares' Gram
    /// form went when it was not used throughout (not used, or finished on the rows).
    pub message: Option<String>,
    /// After a failed line search, the iteration limit or non-finite values: the gradient
    /// checked against the cost along random directions at `x`. A failed check means the
    /// gradient is probably wrong. Not run when the parameters ran off (|x|∞ > 1e8) on a
    /// problem not known to have a minimum (`Objective::has_minimum`), or when the problem
    /// proves it has none (`Objective::no_minimum`): the message says so instead.
    pub gradient_check: Option<EntryReport>,
    /// The per-iteration trace, if asked for.
    pub trace: Option<Vec<TraceRow>>,
}

/// `more` after the detail a report already has, if any: "detail; more".
pub(crate) fn with_detail(message: Option<String>, more: impl fmt::Display) -> String {
    match message {
        Some(m) => format!("{m}; {more}"),
        None => more.to_string(),
    }
}

impl Report {
    /// Adds `more` to the report's detail ([`Report::message`]), after what it already says.
    pub(crate) fn add_detail(&mut self, more: impl fmt::Display) {
        self.message = Some(with_detail(self.message.take(), more));
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "method          {}", self.method)?;
        writeln!(f, "status          {}", self.status)?;
        if let Some(m) = &self.message {
            writeln!(f, "detail          {m}")?;
        }
        writeln!(f, "iterations      {}", self.iterations)?;
        writeln!(
            f,
            "evaluations     cost {}, gradient {}, Hessian {}, Hessian-vector {}",
            self.cost_evals, self.gradient_evals, self.hessian_evals, self.hessian_vec_evals
        )?;
        writeln!(f, "cost            {:.12e}", self.cost)?;
        writeln!(
            f,
            "gradient norm   {:.3e} (threshold {:.3e})",
            self.gradient_norm, self.gradient_threshold
        )?;
        if self.damped_iterations > 0 {
            writeln!(f, "damped Newton   {} iterations", self.damped_iterations)?;
        }
        if let Some(c) = &self.gradient_check {
            writeln!(f, "gradient check  {c}")?;
        }
        if let Some(t) = self.gram_seconds {
            writeln!(
                f,
                "Gram form       set up in {t:.6} s (AᵀA formed and factored), included in the time; \
                 cost and gradient norm computed on the rows"
            )?;
        }
        write!(f, "time            {:.6} s", self.seconds)
    }
}
