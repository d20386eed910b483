use argmin::core::{CostFunction, Gradient};
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

use super::central::from_argmin;
use crate::error::Result;
use crate::Vector;

/// How the error of a finite difference falls with its step: the seeds' claim that the
/// forward difference is f′ + O(h) (2.21) and the central difference f′ + O(h²) (2.22),
/// measured on a real function.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderStudy {
    /// The steps h tried, largest first.
    pub steps: Vec<f64>,
    /// |central difference − gᵀd| at each step.
    pub central_errors: Vec<f64>,
    /// |forward difference − gᵀd| at each step.
    pub forward_errors: Vec<f64>,
    /// The fitted log-log slope of the central errors over the truncation-dominated steps;
    /// `None` when the central difference is exact there (f is quadratic along d, so the
    /// truncation error is zero and only rounding remains: a slope would be meaningless).
    pub central_order: Option<f64>,
    /// The same for the forward differences.
    pub forward_order: Option<f64>,
}

/// Sweeps the step h from 10⁻¹ to 10⁻⁸ (quarter decades) along a random unit direction d
/// (seeded), and fits the slope of log error against log h where the error is dominated by
/// truncation, not rounding.
///
/// Rounding contributes about ε·|f|/h; a point is used when its error is 100 times that, so
/// the fit sees the Taylor remainder only. Fewer than three such points means the difference
/// is exact to rounding (central differences on a quadratic): the order is then `None`.
pub fn order_study<O>(o: &O, x: &Vector, seed: u64) -> Result<OrderStudy>
where
    O: CostFunction<Param = Vector, Output = f64> + Gradient<Param = Vector, Gradient = Vector>,
{
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut d = Vector::from_fn(x.len(), |_, _| rng.sample(StandardNormal));
    let norm = d.norm();
    if norm > 0.0 {
        d /= norm;
    }
    let g = o.gradient(x).map_err(from_argmin)?;
    let exact = g.dot(&d);
    let f0 = o.cost(x).map_err(from_argmin)?;
    let mut xt = x.clone();
    let mut along = |t: f64| -> Result<f64> {
        xt.copy_from(x);
        xt.axpy(t, &d, 1.0);
        o.cost(&xt).map_err(from_argmin)
    };
    let (mut steps, mut central_errors, mut forward_errors) = (vec![], vec![], vec![]);
    for k in 4..=32 {
        let h = 10f64.powf(-(k as f64) / 4.0);
        let fp = along(h)?;
        let fm = along(-h)?;
        steps.push(h);
        central_errors.push(((fp - fm) / (2.0 * h) - exact).abs());
        forward_errors.push(((fp - f0) / h - exact).abs());
    }
    let noise = |h: f64| 100.0 * f64::EPSILON * f0.abs().max(1.0) / h;
    let central_order = fit_slope(&steps, &central_errors, noise);
    let forward_order = fit_slope(&steps, &forward_errors, noise);
    Ok(OrderStudy {
        steps,
        central_errors,
        forward_errors,
        central_order,
        forward_order,
    })
}

/// Least-squares slope of log e against log h over the points above the noise floor, taking
/// the run of small steps (h ≤ 10⁻¹·⁵) where the leading Taylor term dominates.
fn fit_slope(steps: &[f64], errors: &[f64], noise: impl Fn(f64) -> f64) -> Option<f64> {
    let pts: Vec<(f64, f64)> = steps
        .iter()
        .zip(errors)
        .filter(|(h, e)| **h <= 10f64.powf(-1.5) && **e > noise(**h) && e.is_finite())
        .map(|(h, e)| (h.ln(), e.ln()))
        .collect();
    if pts.len() < 3 {
        return None;
    }
    let n = pts.len() as f64;
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    Some(sxy / sxx)
}
