//! gradfit's L-BFGS.

use argmin::core::{Error as ArgminError, Problem, Solver, KV};

use super::common::{accept, give_up, init_state, search_failure, take_iterate, Outcome, St};
use super::line_search::{strong_wolfe, Search, Trial};
use super::{SolveOptions, Status};
use crate::numeric::norm2;
use crate::problems::Objective;
use crate::{Matrix, Vector};

/// Limited-memory BFGS (Nocedal & Wright §7.2, Algorithm 7.4 and 7.5).
///
/// Names as in the book: sₖ = xₖ₊₁ − xₖ, yₖ = ∇fₖ₊₁ − ∇fₖ, ρₖ = 1/yₖᵀsₖ, H⁰ = γI with
/// γ = sᵀy/yᵀy of the newest pair. The m pairs live in two n×m matrices used as a ring
/// buffer, sized once; the two-loop recursion and the strong-Wolfe line search write into
/// preallocated vectors, so an iteration allocates nothing.
///
/// Guards: a pair is stored only if sᵀy > ε·yᵀy (curvature); a direction that is not a
/// descent direction resets the memory to steepest descent; a failed line search is retried
/// once from steepest descent with an empty memory before the run gives up.
#[derive(Debug, Clone)]
pub(crate) struct Lbfgs {
    max_ls: u32,
    s: Matrix,
    y: Matrix,
    rho: Vec<f64>,
    alpha: Vec<f64>,
    /// Index of the newest pair.
    head: usize,
    /// Pairs stored (≤ m).
    len: usize,
    d: Vector,
    trial: Trial,
    /// Whether an observer reads the step from the KV.
    observed: bool,
    exit: Option<(Status, String)>,
}

impl Lbfgs {
    pub(crate) fn new(n: usize, opts: &SolveOptions, observed: bool) -> Self {
        let m = opts.pairs();
        Lbfgs {
            max_ls: opts.max_line_search,
            s: Matrix::zeros(n, m),
            y: Matrix::zeros(n, m),
            rho: vec![0.0; m],
            alpha: vec![0.0; m],
            head: 0,
            len: 0,
            d: Vector::zeros(n),
            trial: Trial::new(n),
            observed,
            exit: None,
        }
    }

    fn m(&self) -> usize {
        self.rho.len()
    }

    /// d ← −H·g by the two-loop recursion.
    fn direction(&mut self, g: &Vector) {
        self.d.copy_from(g);
        let m = self.m();
        for k in 0..self.len {
            let i = (self.head + m - k) % m;
            let a = self.rho[i] * self.s.column(i).dot(&self.d);
            self.alpha[i] = a;
            self.d.axpy(-a, &self.y.column(i), 1.0);
        }
        if self.len > 0 {
            let yy = self.y.column(self.head).norm_squared();
            self.d *= 1.0 / (self.rho[self.head] * yy);
        }
        for k in (0..self.len).rev() {
            let i = (self.head + m - k) % m;
            let b = self.rho[i] * self.y.column(i).dot(&self.d);
            self.d.axpy(self.alpha[i] - b, &self.s.column(i), 1.0);
        }
        self.d.neg_mut();
    }

    /// Stores s = x_new − x, y = g_new − g if the curvature condition holds. sᵀy and yᵀy are
    /// computed before anything is written, so a rejected pair never overwrites the oldest
    /// stored one.
    fn update(&mut self, x_new: &Vector, x: &Vector, g_new: &Vector, g: &Vector) {
        let (mut sy, mut yy) = (0.0, 0.0);
        for i in 0..x.len() {
            let (si, yi) = (x_new[i] - x[i], g_new[i] - g[i]);
            sy += si * yi;
            yy += yi * yi;
        }
        if !(sy.is_finite() && sy > f64::EPSILON * yy) {
            return;
        }
        let m = self.m();
        let slot = if self.len == 0 { 0 } else { (self.head + 1) % m };
        let mut sc = self.s.column_mut(slot);
        sc.copy_from(x_new);
        sc.axpy(-1.0, x, 1.0);
        let mut yc = self.y.column_mut(slot);
        yc.copy_from(g_new);
        yc.axpy(-1.0, g, 1.0);
        self.rho[slot] = 1.0 / sy;
        self.head = slot;
        self.len = (self.len + 1).min(m);
    }
}

impl Outcome for Lbfgs {
    fn exit(&self) -> Option<(Status, String)> {
        self.exit.clone()
    }
}

impl<O: Objective> Solver<O, St> for Lbfgs {
    fn name(&self) -> &str {
        "lbfgs"
    }

    fn init(&mut self, p: &mut Problem<O>, state: St) -> Result<(St, Option<KV>), ArgminError> {
        init_state(p, state)
    }

    fn next_iter(&mut self, p: &mut Problem<O>, mut state: St) -> Result<(St, Option<KV>), ArgminError> {
        let (mut x, mut g, f) = take_iterate(&mut state)?;
        let mut search = Search::Failed { nonfinite: false };
        for attempt in 0..2 {
            if attempt == 1 {
                if self.len == 0 {
                    break;
                }
                self.len = 0;
            }
            self.direction(&g);
            let mut slope = g.dot(&self.d);
            if !(slope.is_finite() && slope < 0.0) {
                self.len = 0;
                self.direction(&g);
                slope = g.dot(&self.d);
            }
            let t0 = if self.len == 0 {
                (1.0 / norm2(&g)).min(1.0)
            } else {
                1.0
            };
            search = strong_wolfe(p, &x, f, &self.d, slope, t0, self.max_ls, &mut self.trial)?;
            if matches!(search, Search::Accepted { .. }) {
                break;
            }
        }
        match search {
            Search::Accepted { t, f: ft } => {
                let (xt, gt) = (
                    std::mem::take(&mut self.trial.x),
                    std::mem::take(&mut self.trial.g),
                );
                self.update(&xt, &x, &gt, &g);
                // the old iterate's buffers become the next trial buffers
                self.trial.x = std::mem::replace(&mut x, xt);
                self.trial.g = std::mem::replace(&mut g, gt);
                Ok(accept(state, x, g, ft, t, self.observed))
            }
            Search::Failed { .. } => {
                let (status, message) = search_failure(search, "L-BFGS and steepest-descent directions");
                Ok(give_up(state, x, g, f, &mut self.exit, status, message))
            }
        }
    }
}
