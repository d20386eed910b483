//! Newton's method: a Cholesky solve, damping when the Hessian is not positive definite,
//! Armijo backtracking on the Newton step.

use argmin::core::{Error as ArgminError, Problem, Solver, KV};

use super::common::{
    accept, conclude, dense_fits, dense_zeros, give_up, init_state, take_iterate, Outcome, St,
};
use super::line_search::{backtracking, eval_fg, Trial};
use super::{SolveOptions, Status};
use crate::linalg::{cholesky_in_place, cholesky_solve_in_place};
use crate::numeric::norm2;
use crate::problems::Objective;
use crate::{Matrix, Vector};

/// Newton's method with a modified Cholesky (Nocedal & Wright §3.4, Algorithm 3.3).
///
/// Each iteration forms H = ∇²f(x), factors H + τI = LLᵀ in place (never an inverse) with
/// τ = 0 if that succeeds, else τ = 10⁻⁸·s growing tenfold up to `max_damping`·s, where
/// s = max(1, max |Hᵢᵢ|); solves LLᵀd = −∇f; and backtracks from t = 1 (Armijo). A problem
/// that can give the same d more cheaply does so instead
/// ([`Objective::newton_direction_into`]): logistic regression and least squares with more
/// features than rows and a ridge term solve an m×m system (Woodbury) rather than forming the
/// n×n Hessian, and softmax an mk×mk one. At 200 rows × 1600 features
/// that took a logistic solve from 1.03 s to 24 ms, in the same 7 iterations; at 200 × 800
/// with 4 classes a softmax solve from 7.2 s to 53 ms.
///
/// Stops on the gradient tolerance (the shared rule) and on the Newton decrement: when
/// λ² = −∇fᵀd is below the rounding of f, no decrease is visible any more; the full step is
/// then taken if it lowers ‖∇f‖ (and f rises by no more than 1024·ε·max(1, |f|), its rounding
/// in a sum over many rows: for f below 1 a fixed 2.3e-13, more than 1024 ulp of f), and
/// otherwise the run ends and says so. One iteration
/// solves a least-squares or convex quadratic problem exactly, through the m×m route too: it
/// refines its least-squares direction, whose digits go when λ is tiny against AAᵀ (one step at
/// 200 × 1600 down to λ = 1e-9; at 1e-12 the direction is mostly rounding on either route).
#[derive(Debug, Clone)]
pub(crate) struct Newton {
    max_ls: u32,
    max_damping: f64,
    memory_limit: Option<u64>,
    h: Matrix,
    l: Matrix,
    d: Vector,
    trial: Trial,
    /// Whether an observer reads the step from the KV.
    observed: bool,
    damped: u64,
    exit: Option<(Status, String)>,
}

impl Newton {
    pub(crate) fn new(n: usize, opts: &SolveOptions, observed: bool) -> Self {
        Newton {
            max_ls: opts.max_line_search,
            max_damping: opts.max_damping,
            memory_limit: opts.memory_limit,
            h: Matrix::zeros(0, 0),
            l: Matrix::zeros(0, 0),
            d: Vector::zeros(n),
            trial: Trial::new(n),
            observed,
            damped: 0,
            exit: None,
        }
    }

    /// d ← −(H + τI)⁻¹g with H = ∇²f(x) formed by the problem (n×n, sized on first use, so a
    /// problem that gives the direction itself never allocates it); Err with the status and
    /// message to stop with when H is not finite or not positive definite even when damped.
    fn primal_direction<O: Objective>(
        &mut self,
        p: &mut Problem<O>,
        x: &Vector,
        g: &Vector,
    ) -> Result<Result<(), (Status, String)>, ArgminError> {
        let n = x.len();
        if self.h.shape() != (n, n) {
            // the Hessian and its factor, and what forming it takes on two threads (the second
            // thread's n×n sum and the packed tiles, about n²/2 each thread): refused past the
            // memory limit, and a failed allocation of the two is an error, not an abort
            dense_fits(n, 4, "newton", self.memory_limit)?;
            self.h = dense_zeros(n, "newton")?;
            self.l = dense_zeros(n, "newton")?;
        }
        let h = &mut self.h;
        p.problem("hessian_count", |o| Ok(o.hessian_into(x, h)?))?;
        if self.h.iter().any(|v| !v.is_finite()) {
            return Ok(Err((
                Status::NonFinite,
                "the Hessian has a non-finite entry".to_string(),
            )));
        }
        let Some(tau) = self.factor() else {
            let msg = if self.max_damping == 0.0 {
                "the Hessian is not positive definite and damping is disabled".to_string()
            } else {
                format!(
                    "the Hessian is not positive definite even with damping up to {:e}·max(1, max|Hii|)",
                    self.max_damping
                )
            };
            return Ok(Err((Status::NotPositiveDefinite, msg)));
        };
        if tau > 0.0 {
            self.damped += 1;
        }
        self.d.copy_from(g);
        cholesky_solve_in_place(&self.l, self.d.as_mut_slice());
        self.d.neg_mut();
        Ok(Ok(()))
    }

    /// Factors H + τI into `l`, growing τ as needed; returns τ, or None if it gave up.
    fn factor(&mut self) -> Option<f64> {
        let n = self.h.nrows();
        let scale = (0..n).map(|i| self.h[(i, i)].abs()).fold(1.0, f64::max);
        let mut tau = 0.0;
        loop {
            self.l.copy_from(&self.h);
            for i in 0..n {
                self.l[(i, i)] += tau;
            }
            if cholesky_in_place(&mut self.l) {
                return Some(tau);
            }
            tau = if tau == 0.0 { 1e-8 * scale } else { 10.0 * tau };
            if tau > self.max_damping * scale {
                return None;
            }
        }
    }
}

impl Outcome for Newton {
    fn exit(&self) -> Option<(Status, String)> {
        self.exit.clone()
    }
    fn damped_iterations(&self) -> u64 {
        self.damped
    }
}

impl<O: Objective> Solver<O, St> for Newton {
    fn name(&self) -> &str {
        "newton"
    }

    fn init(&mut self, p: &mut Problem<O>, state: St) -> Result<(St, Option<KV>), ArgminError> {
        init_state(p, state)
    }

    fn next_iter(&mut self, p: &mut Problem<O>, mut state: St) -> Result<(St, Option<KV>), ArgminError> {
        let (mut x, mut g, f) = take_iterate(&mut state)?;
        // the problem's own route to the direction where it has one (logistic regression and
        // least squares with more features than rows: an m×m system; softmax: an mk×mk one); it
        // counts as a Hessian evaluation
        let by_problem = match p.problem.as_ref() {
            Some(o) => o.newton_direction_into(&x, &g, &mut self.d)?,
            None => false,
        };
        if by_problem {
            *p.counts.entry("hessian_count").or_insert(0) += 1;
        } else {
            match self.primal_direction(p, &x, &g)? {
                Ok(()) => {}
                Err((status, msg)) => return Ok(give_up(state, x, g, f, &mut self.exit, status, msg)),
            }
        }
        let slope = g.dot(&self.d);
        // Newton decrement λ² = −∇fᵀd: below the rounding of f no decrease can be seen.
        let rounding = 16.0 * f64::EPSILON * f.abs().max(1.0);
        if -slope / 2.0 <= rounding {
            self.trial.x.copy_from(&x);
            self.trial.x.axpy(1.0, &self.d, 1.0);
            let ft = eval_fg(p, &self.trial.x, &mut self.trial.g)?;
            // judged on the gradient, f allowed to rise by its noise, 1024·ε·max(1, |f|): a cost
            // summed over many rows carries more rounding than 16 ulp (softmax 200 × 20 000, 4
            // classes: a full step that took ‖∇f‖ from 1.4e-7 to 3e-13 computed f 2.9e-14
            // higher, 93 ulp of f = 1.42, and was refused, ending the run short of --tol 1e-10)
            let noise = 64.0 * rounding;
            if ft.is_finite() && ft <= f + noise && norm2(&self.trial.g) < norm2(&g) {
                std::mem::swap(&mut x, &mut self.trial.x);
                std::mem::swap(&mut g, &mut self.trial.g);
                return Ok(accept(state, x, g, ft, 1.0, self.observed));
            }
            let msg = "the Newton decrement is below the rounding of f: no further decrease is representable"
                .to_string();
            return Ok(give_up(
                state,
                x,
                g,
                f,
                &mut self.exit,
                Status::LineSearchFailed,
                msg,
            ));
        }
        let search = backtracking(p, &x, f, &self.d, slope, 1.0, self.max_ls, &mut self.trial)?;
        Ok(conclude(
            state,
            x,
            g,
            f,
            search,
            &mut self.trial,
            "Newton direction",
            &mut self.exit,
            self.observed,
        ))
    }
}
