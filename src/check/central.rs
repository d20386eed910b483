use argmin::core::{CostFunction, Gradient, Hessian};
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

use super::{rel_error, EntryReport, HessianReport, Tolerance, NOISE_ULPS};
use crate::error::{check_len, Error, Result};
use crate::problems::Objective;
use crate::{Matrix, Vector};

/// ∛ε: the step that balances the O(h²) truncation error of a central difference against
/// its O(ε/h) rounding error.
pub const CENTRAL_STEP: f64 = 6.055454452393343e-6;
/// ε^(1/5): the balance for the O(h⁴) five-point stencil used on the gradient.
pub const HESSIAN_STEP: f64 = 7.400959797147191e-4;
/// √ε: the same balance for the O(h) forward difference.
pub const FORWARD_STEP: f64 = 1.4901161193847656e-8;

fn cost<O: CostFunction<Param = Vector, Output = f64>>(o: &O, x: &Vector) -> Result<f64> {
    o.cost(x).map_err(from_argmin)
}

fn grad<O: Gradient<Param = Vector, Gradient = Vector>>(o: &O, x: &Vector) -> Result<Vector> {
    o.gradient(x).map_err(from_argmin)
}

/// Recovers a gradfit error from argmin's `anyhow::Error`, or wraps argmin's message.
pub(crate) fn from_argmin(e: argmin::core::Error) -> Error {
    from_argmin_pub(e, "problem")
}

/// [`from_argmin`] naming the method that failed.
pub(crate) fn from_argmin_pub(e: argmin::core::Error, method: &str) -> Error {
    match e.downcast::<Error>() {
        Ok(err) => err,
        Err(e) => Error::Solver {
            method: method.into(),
            message: e.to_string(),
        },
    }
}

/// Runs `eval` at x + h·eᵢ for one coordinate and restores xᵢ exactly, so x is not cloned per
/// coordinate.
fn at_shifted<T>(x: &mut Vector, i: usize, h: f64, eval: impl FnOnce(&Vector) -> Result<T>) -> Result<T> {
    let xi = x[i];
    x[i] = xi + h;
    let out = eval(x);
    x[i] = xi;
    out
}

/// The step for coordinate i: base·max(typicalᵢ, |xᵢ|) (typicalᵢ = 1 unless given), rounded
/// so that (xᵢ + h) − xᵢ is exactly h.
fn step(base: f64, xi: f64, typical: f64) -> f64 {
    let h = base * xi.abs().max(typical);
    (xi + h) - xi
}

/// Of two numeric estimates, the one closer to the analytic value (the alternative, too, when
/// the first is NaN: a cost that overflows at the widest step only).
fn closer(analytic: f64, numeric: f64, alternative: Option<f64>) -> f64 {
    match alternative {
        Some(a) if (a - analytic).abs() < (numeric - analytic).abs() || numeric.is_nan() => a,
        _ => numeric,
    }
}

fn typical_at(typical: Option<&Vector>, i: usize) -> f64 {
    typical
        .and_then(|t| t.get(i))
        .copied()
        .filter(|t| t.is_finite() && *t > 0.0)
        .unwrap_or(1.0)
}

/// The central-difference gradient (f(x + hᵢeᵢ) − f(x − hᵢeᵢ)) / 2hᵢ, hᵢ = ∛ε·max(1, |xᵢ|).
///
/// 2n evaluations of f; x is perturbed in place and restored.
pub fn central_gradient<O>(o: &O, x: &Vector) -> Result<Vector>
where
    O: CostFunction<Param = Vector, Output = f64>,
{
    central_gradient_scaled(o, x, None)
}

fn central_gradient_scaled<O>(o: &O, x: &Vector, typical: Option<&Vector>) -> Result<Vector>
where
    O: CostFunction<Param = Vector, Output = f64>,
{
    Ok(central_gradient_noise(o, x, typical)?.0)
}

/// The central-difference gradient and, per entry, its rounding noise
/// `NOISE_ULPS`·ε·(|f(x + h)| + |f(x − h)|) / 2h.
fn central_gradient_noise<O>(o: &O, x: &Vector, typical: Option<&Vector>) -> Result<(Vector, Vector)>
where
    O: CostFunction<Param = Vector, Output = f64>,
{
    let mut xw = x.clone();
    let mut g = Vector::zeros(x.len());
    let mut noise = Vector::zeros(x.len());
    for i in 0..x.len() {
        let h = step(CENTRAL_STEP, x[i], typical_at(typical, i));
        let fp = at_shifted(&mut xw, i, h, |x| cost(o, x))?;
        let fm = at_shifted(&mut xw, i, -h, |x| cost(o, x))?;
        g[i] = (fp - fm) / (2.0 * h);
        noise[i] = difference_noise(fp, fm, h);
    }
    Ok((g, noise))
}

/// The rounding noise of (f₊ − f₋) / 2h when f is known to `NOISE_ULPS` ulp.
fn difference_noise(fp: f64, fm: f64, h: f64) -> f64 {
    NOISE_ULPS * f64::EPSILON * (fp.abs() + fm.abs()) / (2.0 * h)
}

/// The forward-difference gradient (f(x + hᵢeᵢ) − f(x)) / hᵢ, hᵢ = √ε·max(1, |xᵢ|).
///
/// n + 1 evaluations of f.
pub fn forward_gradient<O>(o: &O, x: &Vector) -> Result<Vector>
where
    O: CostFunction<Param = Vector, Output = f64>,
{
    let f0 = cost(o, x)?;
    let mut xw = x.clone();
    let mut g = Vector::zeros(x.len());
    for i in 0..x.len() {
        let h = step(FORWARD_STEP, x[i], 1.0);
        let fp = at_shifted(&mut xw, i, h, |x| cost(o, x))?;
        g[i] = (fp - f0) / h;
    }
    Ok(g)
}

/// Checks every entry of the analytic gradient against central differences.
///
/// The report names the worst entry, its analytic and numeric values; `passed` is false if
/// any entry's relative error exceeds the tolerance or is not finite.
pub fn check_gradient<O>(o: &O, x: &Vector, tol: Tolerance) -> Result<EntryReport>
where
    O: CostFunction<Param = Vector, Output = f64> + Gradient<Param = Vector, Gradient = Vector>,
{
    check_gradient_scaled(o, x, tol, None)
}

/// [`check_gradient`] that also tries a step from a typical magnitude per coordinate (like
/// scipy's or Optim.jl's `typical_x`), hᵢ = ∛ε·max(typicalᵢ, |xᵢ|), besides the default
/// ∛ε·max(1, |xᵢ|), and keeps for each entry the estimate closer to the analytic value.
///
/// Why two steps: the best step balances truncation (large h) against rounding (small h) and
/// depends on the unknown third derivative. On raw data with columns of 1e-3 and 1e3, a step of
/// 6e-6 on a weight whose natural size is 1e-4 is far too large; on a large least-squares cost,
/// a much smaller step drowns in rounding. A correct derivative agrees at one of them; a wrong
/// one (a sign, a factor 2, a missing term) disagrees at both, because its error does not
/// depend on h.
pub fn check_gradient_scaled<O>(
    o: &O,
    x: &Vector,
    tol: Tolerance,
    typical: Option<&Vector>,
) -> Result<EntryReport>
where
    O: CostFunction<Param = Vector, Output = f64> + Gradient<Param = Vector, Gradient = Vector>,
{
    let g = grad(o, x)?;
    check_len("gradient length", x.len(), g.len())?;
    let (numeric, noise) = central_gradient_noise(o, x, None)?;
    let alternative = match typical {
        Some(t) => Some(central_gradient_noise(o, x, Some(t))?),
        None => None,
    };
    let mut report = EntryReport::new("gradient", tol.rel);
    for i in 0..x.len() {
        // the closer estimate, but the smaller of the two noise allowances: the estimate at
        // the smaller step is noisier, and its larger allowance, applied whenever it happens
        // to land closer, passed a gradient 3e-4 off on half the points of a review's test
        let (value, noise) = match &alternative {
            Some((a, a_noise)) => (closer(g[i], numeric[i], Some(a[i])), noise[i].min(a_noise[i])),
            None => (numeric[i], noise[i]),
        };
        report.record((i, 0), g[i], value, noise);
    }
    Ok(report)
}

/// Checks gᵀd against (f(x + hd) − f(x − hd)) / 2h along `directions` random unit directions
/// (seeded), h = ∛ε·max(1, ‖x‖∞) and h/4, and h/16 and h/64 where their truncation error is
/// known to be small (below), keeping the estimate closest to gᵀd and the widest step's
/// rounding allowance: eight evaluations per direction, whatever n is.
/// Truncation error falls 16× with each step, a wrong gradient's error not at all; with h
/// alone, logistic regression on breast cancer at λ = 0 (a loss of 1e-4 with large curvature)
/// had a correct gradient called wrong, and with h and h/4 alone so did the same regression on
/// the raw features where lbfgs stopped at its iteration limit (3.7e-5 off at h/4, where the
/// quotient was still falling toward gᵀd).
pub fn check_directional<O>(
    o: &O,
    x: &Vector,
    directions: usize,
    seed: u64,
    tol: Tolerance,
) -> Result<EntryReport>
where
    O: CostFunction<Param = Vector, Output = f64> + Gradient<Param = Vector, Gradient = Vector>,
{
    let g = grad(o, x)?;
    check_len("gradient length", x.len(), g.len())?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let h = CENTRAL_STEP * x.amax().max(1.0);
    let mut d = Vector::zeros(x.len());
    let mut xt = x.clone();
    let mut report = EntryReport::new(super::DIRECTIONAL, tol.rel);
    for k in 0..directions {
        d.iter_mut().for_each(|v| *v = rng.sample(StandardNormal));
        let norm = d.norm();
        if norm > 0.0 {
            d /= norm;
        }
        let mut quotient = |h: f64| -> Result<(f64, f64)> {
            xt.copy_from(x);
            xt.axpy(h, &d, 1.0);
            let fp = cost(o, &xt)?;
            xt.copy_from(x);
            xt.axpy(-h, &d, 1.0);
            let fm = cost(o, &xt)?;
            Ok(((fp - fm) / (2.0 * h), difference_noise(fp, fm, h)))
        };
        let (q0, noise) = quotient(h)?;
        let (q1, q2, q3) = (quotient(h / 4.0)?.0, quotient(h / 16.0)?.0, quotient(h / 64.0)?.0);
        let gd = g.dot(&d);
        // h and h/4 as always; h/16 and h/64 only where their truncation error, estimated from
        // the next step's quotient (it falls 16× a step: T₂ ≈ 16/15·(Q₂ − Q₃), T₃ ≈ (Q₂ − Q₃)/15),
        // is a tenth of the tolerance, so that truncation can never make up a wrong gradient's
        // error (taking the closest of all four passed a gradient 1e-4 off where the curvature
        // put Q₂'s truncation at 1e-4: a review's case)
        let settled = 0.1 * tol.rel * gd.abs().max(1.0);
        let mut best = closer(gd, q0, Some(q1));
        let spread = (q2 - q3).abs();
        if spread * 16.0 / 15.0 <= settled {
            best = closer(gd, best, Some(q2));
        }
        if spread / 15.0 <= settled {
            best = closer(gd, best, Some(q3));
        }
        // the widest step's allowance, the smallest (see `check_gradient_scaled`)
        report.record((k, 0), gd, best, noise);
    }
    Ok(report)
}

/// Checks the analytic Hessian column by column against central differences of the analytic
/// gradient, and measures its symmetry.
///
/// The difference is the five-point central stencil
/// (∇f(x − 2hⱼeⱼ) − 8∇f(x − hⱼeⱼ) + 8∇f(x + hⱼeⱼ) − ∇f(x + 2hⱼeⱼ)) / 12hⱼ, whose truncation
/// error is O(h⁴), with hⱼ = ε^(1/5)·max(1, |xⱼ|): its rounding error ε‖∇f‖/h is then about
/// 100 times smaller than the two-point stencil's at ∛ε, which matters where ‖∇f‖ is large
/// (raw data far from the optimum) and a Hessian entry is near 0. 4 gradients per column.
pub fn check_hessian<O>(o: &O, x: &Vector, tol: Tolerance) -> Result<HessianReport>
where
    O: Gradient<Param = Vector, Gradient = Vector> + Hessian<Param = Vector, Hessian = Matrix>,
{
    check_hessian_scaled(o, x, tol, None)
}

/// [`check_hessian`] that also tries hⱼ = ε^(1/5)·max(typicalⱼ, |xⱼ|) and keeps, per entry,
/// the estimate closer to the analytic value (see [`check_gradient_scaled`] for why).
pub fn check_hessian_scaled<O>(
    o: &O,
    x: &Vector,
    tol: Tolerance,
    typical: Option<&Vector>,
) -> Result<HessianReport>
where
    O: Gradient<Param = Vector, Gradient = Vector> + Hessian<Param = Vector, Hessian = Matrix>,
{
    let n = x.len();
    let h = o.hessian(x).map_err(from_argmin)?;
    check_len("Hessian rows", n, h.nrows())?;
    check_len("Hessian columns", n, h.ncols())?;
    let mut xw = x.clone();
    let mut entries = EntryReport::norm_wise("Hessian", tol.rel);
    let column = |xw: &mut Vector, j: usize, typ: f64| -> Result<Vector> {
        let s = step(HESSIAN_STEP, x[j], typ);
        let gp = at_shifted(xw, j, s, |x| grad(o, x))?;
        let gm = at_shifted(xw, j, -s, |x| grad(o, x))?;
        let gp2 = at_shifted(xw, j, 2.0 * s, |x| grad(o, x))?;
        let gm2 = at_shifted(xw, j, -2.0 * s, |x| grad(o, x))?;
        Ok((gm2 - gm * 8.0 + gp * 8.0 - gp2) / (12.0 * s))
    };
    for j in 0..n {
        let numeric = column(&mut xw, j, 1.0)?;
        let alternative = match typical {
            Some(_) => Some(column(&mut xw, j, typical_at(typical, j))?),
            None => None,
        };
        // an entry is also judged against its column's largest (see the module docs)
        let noise = tol.rel * h.column(j).amax().max(1.0);
        for i in 0..n {
            let best = closer(h[(i, j)], numeric[i], alternative.as_ref().map(|a| a[i]));
            entries.record((i, j), h[(i, j)], best, noise);
        }
    }
    let mut symmetry_error: f64 = 0.0;
    for j in 0..n {
        for i in 0..j {
            let e = rel_error(h[(i, j)], h[(j, i)]);
            symmetry_error = symmetry_error.max(if e.is_nan() { f64::INFINITY } else { e });
        }
    }
    let passed = entries.passed && symmetry_error <= tol.rel;
    Ok(HessianReport {
        entries,
        symmetry_error,
        passed,
    })
}

/// Checks a problem's matrix-free ∇²f·v against the formed Hessian times v, for `directions`
/// random v (seeded).
pub fn check_hessian_vec<P: Objective + ?Sized>(
    p: &P,
    x: &Vector,
    directions: usize,
    seed: u64,
    tol: Tolerance,
) -> Result<EntryReport> {
    let h = p.hessian_matrix(x)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut v = Vector::zeros(p.dim());
    let mut hv = Vector::zeros(p.dim());
    let mut report = EntryReport::new("Hessian-vector product", tol.rel);
    for k in 0..directions {
        v.iter_mut().for_each(|e| *e = rng.sample(StandardNormal));
        p.hessian_vec_into(x, &v, &mut hv)?;
        let dense = &h * &v;
        for i in 0..p.dim() {
            report.record((i, k), hv[i], dense[i], 0.0);
        }
    }
    Ok(report)
}
