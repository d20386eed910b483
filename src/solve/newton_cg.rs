//! gradfit's truncated Newton method.

use argmin::core::{Error as ArgminError, Problem, Solver, KV};

use super::common::{conclude, init_state, take_iterate, Outcome, St};
use super::line_search::{backtracking, Trial};
use super::{SolveOptions, Status};
use crate::numeric::norm2;
use crate::problems::Objective;
use crate::Vector;

/// Line-search Newton-CG (Nocedal & Wright §7.1, Algorithm 7.1), matrix-free.
///
/// The Newton system ∇²f·d = −∇f is solved approximately by conjugate gradients using only
/// Hessian-vector products, stopped when the residual is below ηₖ‖∇f‖ with the forcing term
/// ηₖ = min(0.5, √‖∇f‖) (superlinear convergence), or after 2n + 10 inner steps. Negative or
/// zero curvature pᵀ∇²f p ≤ 0 ends CG: the direction so far is used, or −∇f at the first
/// inner step. Armijo backtracking from t = 1 follows.
#[derive(Debug, Clone)]
pub(crate) struct NewtonCg {
    max_ls: u32,
    d: Vector,
    r: Vector,
    p: Vector,
    hp: Vector,
    trial: Trial,
    /// Whether an observer reads the step from the KV.
    observed: bool,
    exit: Option<(Status, String)>,
}

impl NewtonCg {
    pub(crate) fn new(n: usize, opts: &SolveOptions, observed: bool) -> Self {
        NewtonCg {
            max_ls: opts.max_line_search,
            d: Vector::zeros(n),
            r: Vector::zeros(n),
            p: Vector::zeros(n),
            hp: Vector::zeros(n),
            trial: Trial::new(n),
            observed,
            exit: None,
        }
    }

    /// Approximately solves ∇²f(x)·d = −g into `self.d`.
    fn inner_cg<O: Objective>(
        &mut self,
        prob: &mut Problem<O>,
        x: &Vector,
        g: &Vector,
    ) -> Result<(), ArgminError> {
        let gnorm = norm2(g);
        let tol = gnorm.sqrt().min(0.5) * gnorm;
        self.d.fill(0.0);
        self.r.copy_from(g);
        self.r.neg_mut();
        self.p.copy_from(&self.r);
        let mut rr = self.r.norm_squared();
        let max_inner = 2 * x.len() + 10;
        for j in 0..max_inner {
            let (pv, hp) = (&self.p, &mut self.hp);
            prob.problem("hessian_vec_count", |o| Ok(o.hessian_vec_into(x, pv, hp)?))?;
            let curv = self.p.dot(&self.hp);
            if !(curv.is_finite() && curv > f64::EPSILON * self.p.norm_squared()) {
                if j == 0 {
                    self.d.copy_from(g);
                    self.d.neg_mut();
                }
                return Ok(());
            }
            let alpha = rr / curv;
            self.d.axpy(alpha, &self.p, 1.0);
            self.r.axpy(-alpha, &self.hp, 1.0);
            let rr_new = self.r.norm_squared();
            if rr_new.sqrt() <= tol {
                return Ok(());
            }
            self.p.axpy(1.0, &self.r, rr_new / rr);
            rr = rr_new;
        }
        Ok(())
    }
}

impl Outcome for NewtonCg {
    fn exit(&self) -> Option<(Status, String)> {
        self.exit.clone()
    }
}

impl<O: Objective> Solver<O, St> for NewtonCg {
    fn name(&self) -> &str {
        "newton-cg"
    }

    fn init(&mut self, p: &mut Problem<O>, state: St) -> Result<(St, Option<KV>), ArgminError> {
        init_state(p, state)
    }

    fn next_iter(&mut self, p: &mut Problem<O>, mut state: St) -> Result<(St, Option<KV>), ArgminError> {
        let (x, g, f) = take_iterate(&mut state)?;
        self.inner_cg(p, &x, &g)?;
        let mut slope = g.dot(&self.d);
        if !(slope.is_finite() && slope < 0.0 && self.d.iter().all(|v| v.is_finite())) {
            self.d.copy_from(&g);
            self.d.neg_mut();
            slope = -g.norm_squared();
        }
        let search = backtracking(p, &x, f, &self.d, slope, 1.0, self.max_ls, &mut self.trial)?;
        Ok(conclude(
            state,
            x,
            g,
            f,
            search,
            &mut self.trial,
            "Newton-CG direction",
            &mut self.exit,
            self.observed,
        ))
    }
}
