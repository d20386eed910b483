//! gradfit's dense BFGS.

use argmin::core::{Error as ArgminError, Problem, Solver, KV};

use super::common::{conclude, init_state, take_iterate, Outcome, St};
use super::line_search::{strong_wolfe, Search, Trial};
use super::{SolveOptions, Status};
use crate::numeric::norm2;
use crate::problems::Objective;
use crate::{Matrix, Vector};

/// BFGS with a dense inverse-Hessian approximation (Nocedal & Wright §6.1, Algorithm 6.1).
///
/// d = −H∇f; after a strong-Wolfe step, with s, y, ρ = 1/yᵀs and u = Hy:
/// H ← H − ρ(usᵀ + suᵀ) + (ρ²yᵀu + ρ)ssᵀ, three rank-one updates, O(n²) per iteration (the
/// product form (I − ρsyᵀ)H(I − ρysᵀ) + ρssᵀ multiplied out, never O(n³)). H₀ = I, rescaled
/// by yᵀs/yᵀy before the first update (eq. 6.20). Pairs with yᵀs ≤ ε‖y‖² are skipped.
#[derive(Debug, Clone)]
pub(crate) struct Bfgs {
    max_ls: u32,
    h: Matrix,
    d: Vector,
    s: Vector,
    y: Vector,
    u: Vector,
    first: bool,
    trial: Trial,
    /// Whether an observer reads the step from the KV.
    observed: bool,
    exit: Option<(Status, String)>,
}

impl Bfgs {
    pub(crate) fn new(n: usize, opts: &SolveOptions, observed: bool) -> Result<Self, crate::Error> {
        let mut h = super::common::dense_zeros(n, "bfgs")?;
        h.fill_diagonal(1.0);
        Ok(Bfgs {
            max_ls: opts.max_line_search,
            h,
            d: Vector::zeros(n),
            s: Vector::zeros(n),
            y: Vector::zeros(n),
            u: Vector::zeros(n),
            first: true,
            trial: Trial::new(n),
            observed,
            exit: None,
        })
    }

    fn update(&mut self) {
        let sy = self.s.dot(&self.y);
        let yy = self.y.norm_squared();
        if !(sy.is_finite() && sy > f64::EPSILON * yy) {
            return;
        }
        if self.first {
            self.h.fill_with_identity();
            self.h *= sy / yy;
            self.first = false;
        }
        let rho = 1.0 / sy;
        self.u.gemv(1.0, &self.h, &self.y, 0.0);
        let yu = self.y.dot(&self.u);
        self.h.ger(-rho, &self.u, &self.s, 1.0);
        self.h.ger(-rho, &self.s, &self.u, 1.0);
        self.h.ger(rho * rho * yu + rho, &self.s, &self.s, 1.0);
    }
}

impl Outcome for Bfgs {
    fn exit(&self) -> Option<(Status, String)> {
        self.exit.clone()
    }
}

impl<O: Objective> Solver<O, St> for Bfgs {
    fn name(&self) -> &str {
        "bfgs"
    }

    fn init(&mut self, p: &mut Problem<O>, state: St) -> Result<(St, Option<KV>), ArgminError> {
        init_state(p, state)
    }

    fn next_iter(&mut self, p: &mut Problem<O>, mut state: St) -> Result<(St, Option<KV>), ArgminError> {
        let (x, g, f) = take_iterate(&mut state)?;
        self.d.gemv(-1.0, &self.h, &g, 0.0);
        let mut slope = g.dot(&self.d);
        if !(slope.is_finite() && slope < 0.0) {
            // H lost positive definiteness to rounding: restart from the identity
            self.h.fill_with_identity();
            self.first = true;
            self.d.copy_from(&g);
            self.d.neg_mut();
            slope = -g.norm_squared();
        }
        let t0 = if self.first {
            (1.0 / norm2(&g)).min(1.0)
        } else {
            1.0
        };
        let search = strong_wolfe(p, &x, f, &self.d, slope, t0, self.max_ls, &mut self.trial)?;
        if let Search::Accepted { .. } = search {
            self.s.copy_from(&self.trial.x);
            self.s.axpy(-1.0, &x, 1.0);
            self.y.copy_from(&self.trial.g);
            self.y.axpy(-1.0, &g, 1.0);
            self.update();
        }
        Ok(conclude(
            state,
            x,
            g,
            f,
            search,
            &mut self.trial,
            "BFGS direction",
            &mut self.exit,
            self.observed,
        ))
    }
}
