//! Steepest descent with a bounded line search.

use argmin::core::{Error as ArgminError, Problem, Solver, KV};

use super::common::{conclude, init_state, take_iterate, Outcome, St};
use super::line_search::{backtracking, strong_wolfe, Search, Trial};
use super::{LineSearch, SolveOptions, Status};
use crate::problems::Objective;
use crate::Vector;

/// Steepest descent: d = −∇f, then Armijo backtracking (or strong Wolfe) from
/// t₀ = min(1, 1/‖∇f‖) at the first iteration and twice the last accepted step after.
///
/// Requires f and ∇f. Linear convergence at a rate set by the condition number
/// (Nocedal & Wright §3.3): on ill-conditioned problems it usually stops at `max_iters`, and
/// the report says so.
#[derive(Debug, Clone)]
pub(crate) struct GradientDescent {
    line_search: LineSearch,
    max_ls: u32,
    trial: Trial,
    /// Whether an observer reads the step from the KV.
    observed: bool,
    d: Vector,
    t_prev: Option<f64>,
    exit: Option<(Status, String)>,
}

impl GradientDescent {
    pub(crate) fn new(n: usize, opts: &SolveOptions, observed: bool) -> Self {
        GradientDescent {
            line_search: opts.line_search,
            max_ls: opts.max_line_search,
            trial: Trial::new(n),
            observed,
            d: Vector::zeros(n),
            t_prev: None,
            exit: None,
        }
    }
}

impl Outcome for GradientDescent {
    fn exit(&self) -> Option<(Status, String)> {
        self.exit.clone()
    }
}

impl<O: Objective> Solver<O, St> for GradientDescent {
    fn name(&self) -> &str {
        "gd"
    }

    fn init(&mut self, p: &mut Problem<O>, state: St) -> Result<(St, Option<KV>), ArgminError> {
        init_state(p, state)
    }

    fn next_iter(&mut self, p: &mut Problem<O>, mut state: St) -> Result<(St, Option<KV>), ArgminError> {
        let (x, g, f) = take_iterate(&mut state)?;
        self.d.copy_from(&g);
        self.d.neg_mut();
        let gnorm2 = g.norm_squared();
        let t0 = match self.t_prev {
            Some(t) => 2.0 * t,
            None => (1.0 / gnorm2.sqrt()).min(1.0),
        };
        let search = match self.line_search {
            LineSearch::Backtracking => {
                backtracking(p, &x, f, &self.d, -gnorm2, t0, self.max_ls, &mut self.trial)?
            }
            LineSearch::StrongWolfe => {
                strong_wolfe(p, &x, f, &self.d, -gnorm2, t0, self.max_ls, &mut self.trial)?
            }
        };
        if let Search::Accepted { t, .. } = search {
            self.t_prev = Some(t);
        }
        Ok(conclude(
            state,
            x,
            g,
            f,
            search,
            &mut self.trial,
            "steepest-descent direction",
            &mut self.exit,
            self.observed,
        ))
    }
}
