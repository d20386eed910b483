//! Bounded line searches on the fused cost-and-gradient, writing into preallocated buffers.
//!
//! Both evaluate f and ∇f together at each trial (one pass over the data), so the accepted
//! point needs no second evaluation. A trial whose cost or gradient is not finite is treated
//! as a step that went too far. Neither loops without bound: each stops after `max_evals`
//! trials, or when the step no longer moves x, and says why.
//!
//! Near a minimum the decrease f(x + td) − f(x) falls below the rounding of f, and a test on
//! f alone fails at random. Both searches then also accept Hager and Zhang's approximate
//! Wolfe conditions, which read the decrease off the directional derivative instead:
//! f(x + td) ≤ f(x) + ε_f and c₂φ′(0) ≤ φ′(t) ≤ (2c₁ − 1)φ′(0) (the upper bound is exact
//! Armijo for a quadratic φ), with ε_f = 1e-11·max(1, |f|) (W. W. Hager and H. Zhang,
//! SIAM J. Optim. 16 (2005), §4).

use argmin::core::{Error as ArgminError, Problem};

use crate::problems::Objective;
use crate::Vector;

/// Armijo's sufficient-decrease constant c₁.
pub(crate) const C1: f64 = 1e-4;
/// The strong-Wolfe curvature constant c₂ (0.9 for quasi-Newton methods).
pub(crate) const C2: f64 = 0.9;

/// Evaluates f and ∇f in one pass, counting one cost and one gradient evaluation.
pub(crate) fn eval_fg<O: Objective>(
    p: &mut Problem<O>,
    x: &Vector,
    g: &mut Vector,
) -> Result<f64, ArgminError> {
    *p.counts.entry("gradient_count").or_insert(0) += 1;
    p.problem("cost_count", |o| Ok(o.value_and_gradient_into(x, g)?))
}

/// What a line search found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Search {
    /// The step t, with f(x + td) in `f` and x + td, ∇f(x + td) in the trial buffers.
    Accepted { t: f64, f: f64 },
    /// No acceptable step; `nonfinite` when every trial gave a non-finite cost or gradient.
    Failed { nonfinite: bool },
}

/// Buffers for the trial point, owned by the solver and sized once.
#[derive(Debug, Clone)]
pub(crate) struct Trial {
    /// x + td.
    pub x: Vector,
    /// ∇f(x + td).
    pub g: Vector,
    /// Best sufficient-decrease point so far (strong Wolfe only).
    lo_x: Vector,
    lo_g: Vector,
}

impl Trial {
    pub(crate) fn new(n: usize) -> Self {
        Trial {
            x: Vector::zeros(n),
            g: Vector::zeros(n),
            lo_x: Vector::zeros(n),
            lo_g: Vector::zeros(n),
        }
    }

    /// f, φ′(t) = ∇f(x + td)ᵀd and whether both are finite; None if x + td == x.
    fn eval<O: Objective>(
        &mut self,
        p: &mut Problem<O>,
        x: &Vector,
        d: &Vector,
        t: f64,
    ) -> Result<Option<(f64, f64, bool)>, ArgminError> {
        self.x.copy_from(x);
        self.x.axpy(t, d, 1.0);
        if self.x == *x {
            return Ok(None);
        }
        let f = eval_fg(p, &self.x, &mut self.g)?;
        let dt = self.g.dot(d);
        let finite = f.is_finite() && dt.is_finite();
        Ok(Some((f, dt, finite)))
    }
}

/// The slack ε_f of the approximate conditions.
fn eps_f(f: f64) -> f64 {
    1e-11 * f.abs().max(1.0)
}

/// Armijo, or its approximate form in the rounding regime.
fn sufficient_decrease(f: f64, slope: f64, t: f64, ft: f64, dt: f64) -> bool {
    ft <= f + C1 * t * slope || (ft <= f + eps_f(f) && C2 * slope <= dt && dt <= (2.0 * C1 - 1.0) * slope)
}

/// Backtracking from t₀ until f(x + td) ≤ f + c₁·t·slope (Armijo), shrinking t by a safeguarded
/// quadratic interpolation in [0.1t, 0.5t] (0.1t after a non-finite trial).
#[allow(clippy::too_many_arguments)]
pub(crate) fn backtracking<O: Objective>(
    p: &mut Problem<O>,
    x: &Vector,
    f: f64,
    d: &Vector,
    slope: f64,
    t0: f64,
    max_evals: u32,
    trial: &mut Trial,
) -> Result<Search, ArgminError> {
    let mut t = t0;
    let mut nonfinite = true;
    for _ in 0..max_evals {
        let Some((ft, dt, finite)) = trial.eval(p, x, d, t)? else {
            break;
        };
        if !finite {
            t *= 0.1;
            continue;
        }
        nonfinite = false;
        if sufficient_decrease(f, slope, t, ft, dt) {
            return Ok(Search::Accepted { t, f: ft });
        }
        // minimizer of the quadratic through f, slope and ft
        let tq = -slope * t * t / (2.0 * (ft - f - slope * t));
        t = if tq.is_finite() {
            tq.clamp(0.1 * t, 0.5 * t)
        } else {
            0.5 * t
        };
    }
    Ok(Search::Failed { nonfinite })
}

/// A strong-Wolfe line search (Nocedal & Wright, Algorithms 3.5 and 3.6): bracketing, then
/// zooming with safeguarded cubic interpolation. Accepts t with
/// f(x + td) ≤ f + c₁t·slope and |∇f(x + td)ᵀd| ≤ c₂|slope|.
///
/// If `max_evals` trials pass without meeting both conditions, the best point that met the
/// first one is accepted (quasi-Newton updates guard themselves with sᵀy > 0).
#[allow(clippy::too_many_arguments)]
pub(crate) fn strong_wolfe<O: Objective>(
    p: &mut Problem<O>,
    x: &Vector,
    f: f64,
    d: &Vector,
    slope: f64,
    t0: f64,
    max_evals: u32,
    trial: &mut Trial,
) -> Result<Search, ArgminError> {
    let mut evals = 0;
    let mut nonfinite = true;
    // (t, f, φ′) at the low end: the best sufficient-decrease point so far
    let (mut lo_t, mut lo_f, mut lo_d) = (0.0, f, slope);
    let mut have_lo = false;
    let mut t = t0;
    let mut prev = (0.0, f, slope);
    // bracketing phase
    let mut hi: Option<(f64, f64, f64)> = None;
    while evals < max_evals {
        let Some((ft, dt, finite)) = trial.eval(p, x, d, t)? else {
            break;
        };
        evals += 1;
        if !finite {
            hi = Some((t, f64::INFINITY, f64::NAN));
            break;
        }
        nonfinite = false;
        if !sufficient_decrease(f, slope, t, ft, dt) || (prev.0 > 0.0 && ft > prev.1 + eps_f(f)) {
            hi = Some((t, ft, dt));
            break;
        }
        if dt.abs() <= -C2 * slope {
            return Ok(Search::Accepted { t, f: ft });
        }
        // sufficient decrease holds at t: it becomes the low end
        lo_t = t;
        lo_f = ft;
        lo_d = dt;
        have_lo = true;
        trial.lo_x.copy_from(&trial.x);
        trial.lo_g.copy_from(&trial.g);
        if dt >= 0.0 {
            hi = Some(prev);
            break;
        }
        prev = (t, ft, dt);
        t *= 2.0;
        if !t.is_finite() {
            break;
        }
    }
    // zoom phase between the low end and hi
    if let Some((mut hi_t, mut hi_f, mut hi_d)) = hi {
        while evals < max_evals {
            let width = (hi_t - lo_t).abs();
            if width <= f64::EPSILON * hi_t.abs().max(lo_t.abs()) {
                break;
            }
            let t = interpolate(lo_t, lo_f, lo_d, hi_t, hi_f, hi_d);
            let Some((ft, dt, finite)) = trial.eval(p, x, d, t)? else {
                break;
            };
            evals += 1;
            if !finite {
                hi_t = t;
                hi_f = f64::INFINITY;
                hi_d = f64::NAN;
                continue;
            }
            nonfinite = false;
            if !sufficient_decrease(f, slope, t, ft, dt) || ft > lo_f + eps_f(f) {
                hi_t = t;
                hi_f = ft;
                hi_d = dt;
            } else {
                if dt.abs() <= -C2 * slope {
                    return Ok(Search::Accepted { t, f: ft });
                }
                if dt * (hi_t - lo_t) >= 0.0 {
                    hi_t = lo_t;
                    hi_f = lo_f;
                    hi_d = lo_d;
                }
                lo_t = t;
                lo_f = ft;
                lo_d = dt;
                have_lo = true;
                trial.lo_x.copy_from(&trial.x);
                trial.lo_g.copy_from(&trial.g);
            }
        }
    }
    if have_lo && lo_t > 0.0 {
        std::mem::swap(&mut trial.x, &mut trial.lo_x);
        std::mem::swap(&mut trial.g, &mut trial.lo_g);
        return Ok(Search::Accepted { t: lo_t, f: lo_f });
    }
    Ok(Search::Failed { nonfinite })
}

/// The minimizer of the cubic through (a, fa, da) and (b, fb, db), kept inside the middle 80%
/// of [a, b]; bisection where the cubic is not defined (non-finite fb, no real minimizer).
fn interpolate(a: f64, fa: f64, da: f64, b: f64, fb: f64, db: f64) -> f64 {
    let (lo, hi) = if a < b { (a, b) } else { (b, a) };
    let margin = 0.1 * (hi - lo);
    let mid = 0.5 * (a + b);
    if !fb.is_finite() || !db.is_finite() {
        return mid;
    }
    let d1 = da + db - 3.0 * (fa - fb) / (a - b);
    let disc = d1 * d1 - da * db;
    if disc < 0.0 {
        return mid;
    }
    let d2 = (b - a).signum() * disc.sqrt();
    let t = b - (b - a) * (db + d2 - d1) / (db - da + 2.0 * d2);
    if t.is_finite() {
        t.clamp(lo + margin, hi - margin)
    } else {
        mid
    }
}
