//! The derivative checker: closed forms against finite differences.
//!
//! Works on anything that implements argmin's `CostFunction` and `Gradient` (and `Hessian`)
//! over `DVector<f64>`, not only gradfit's problems.
//!
//! - [`check_gradient`]: every entry of ∇f against the central difference
//!   (f(x + hᵢeᵢ) − f(x − hᵢeᵢ)) / 2hᵢ, hᵢ = ∛ε·max(1, |xᵢ|) (2n evaluations).
//! - [`check_directional`]: for large n, gᵀd against the central difference of f along
//!   random unit directions d, at four steps (8 evaluations per direction).
//! - [`check_hessian`]: every column of ∇²f against (five-point) central differences of the
//!   analytic gradient, and the symmetry error max |Hᵢⱼ − Hⱼᵢ| / max(1, |Hᵢⱼ|, |Hⱼᵢ|).
//! - [`check_hessian_vec`]: a problem's matrix-free ∇²f·v against the formed Hessian.
//! - [`order_study`]: the error of central and forward differences over a sweep of steps,
//!   and its fitted log-log slope: about 2 for central and 1 for forward, the seeds' (2.22)
//!   and (2.21).
//!
//! Errors are relative per entry: |analytic − numeric| / max(1, |analytic|, |numeric|). An
//! entry also passes when |analytic − numeric| is within the noise of its numeric value, which
//! the report shows and counts:
//! - gradient and directional checks: the rounding noise of (f₊ − f₋) / 2h when f is known to
//!   [`NOISE_ULPS`] ulp, `NOISE_ULPS`·ε·(|f₊| + |f₋|) / 2h. On a large cost (least squares
//!   with targets of 1e4 over thousands of rows) a correct gradient differs from every
//!   difference quotient by more than 1e-6 relative, because f itself is known only to some
//!   ulp of its size.
//! - Hessian: the tolerance times the largest entry of the column (the check is then
//!   norm-wise per column). A difference of gradients carries their rounding, which is of the
//!   size of the column's large entries: an entry that is exactly 0 (an intercept against a
//!   centred column) came out as 3e-4 beside entries of 1e4.
//!
//! A gradient or directional entry that passes by an allowance over [`UNVERIFIED_SHARE`] of
//! its size is also counted as unverified ([`EntryReport::unverified`]): the difference quotient
//! cannot tell there, which the report says rather than calling it agreement.
//!
//! ```
//! use gradfit::check::{check_gradient, Tolerance};
//! use gradfit::problems::LogSumExp;
//! use gradfit::{Matrix, Vector};
//! let p = LogSumExp::new(Matrix::from_row_slice(2, 2, &[1.0, 2.0, -1.0, 0.5]), Vector::zeros(2), 0.1)?;
//! let report = check_gradient(&p, &Vector::from_vec(vec![0.3, -0.2]), Tolerance::default())?;
//! assert!(report.passed, "{report}");
//! # Ok::<(), gradfit::Error>(())
//! ```

mod central;
mod order;

pub(crate) use central::from_argmin_pub;
pub use central::{
    central_gradient, check_directional, check_gradient, check_gradient_scaled, check_hessian,
    check_hessian_scaled, check_hessian_vec, forward_gradient,
};
pub use order::{order_study, OrderStudy};

use std::fmt;

/// The relative error an entry may have and still pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    /// Largest allowed |a − n| / max(1, |a|, |n|). Default 1e-6.
    pub rel: f64,
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance { rel: 1e-6 }
    }
}

/// The relative accuracy, in units of ε, assumed of a computed cost: a sum over thousands
/// of rows carries rounding errors of tens of ulp of its size.
pub const NOISE_ULPS: f64 = 64.0;

/// |a − n| / max(1, |a|, |n|).
pub fn rel_error(analytic: f64, numeric: f64) -> f64 {
    let d = (analytic - numeric).abs();
    if d == 0.0 {
        return 0.0;
    }
    d / 1f64.max(analytic.abs()).max(numeric.abs())
}

/// The result of comparing a closed form with its finite-difference estimate, entry by entry.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryReport {
    /// What was checked ("gradient", "Hessian", "directional derivative", "Hessian-vector").
    pub what: &'static str,
    /// Largest |analytic − numeric|.
    pub max_abs_error: f64,
    /// Largest relative error.
    pub max_rel_error: f64,
    /// The entry with the largest relative error: (row, column); column 0 for vectors, the
    /// direction's number for directional checks.
    pub worst: (usize, usize),
    /// The analytic value at the worst entry.
    pub analytic: f64,
    /// The numeric value at the worst entry.
    pub numeric: f64,
    /// The tolerance applied.
    pub tolerance: f64,
    /// Whether every entry is within the tolerance, or within the rounding noise of its finite
    /// difference (and finite).
    pub passed: bool,
    /// Entries beyond the tolerance that pass because their difference from the numeric value
    /// is within that value's rounding noise (see [`EntryReport::noise`]).
    pub within_noise: usize,
    /// The noise (absolute) allowed the numeric value at the worst entry: how far a finite
    /// difference can be off only because f, or ∇f, is computed in floating point (see the
    /// module documentation).
    pub noise: f64,
    /// Of `within_noise`, the entries whose rounding-noise allowance is more than
    /// [`UNVERIFIED_SHARE`] of their size (gradient and directional checks): they pass
    /// because a difference quotient cannot tell there, not because it agrees, and the report
    /// says "unverified" for them.
    pub unverified: usize,
    /// The Hessian's allowance is the norm-wise tolerance of its column, a test in itself.
    norm_wise: bool,
}

/// [`EntryReport::what`] of a [`check_directional`] report.
pub(crate) const DIRECTIONAL: &str = "directional derivative";

/// The share of an entry's size beyond which a noise allowance verifies nothing: 1%.
pub const UNVERIFIED_SHARE: f64 = 0.01;

impl EntryReport {
    /// Whether the entries checked are random directions ([`check_directional`]), `worst.0`
    /// then being a direction's number, not a parameter's index.
    pub fn is_directional(&self) -> bool {
        self.what == DIRECTIONAL
    }

    fn new(what: &'static str, tolerance: f64) -> Self {
        EntryReport {
            what,
            max_abs_error: 0.0,
            max_rel_error: 0.0,
            worst: (0, 0),
            analytic: f64::NAN,
            numeric: f64::NAN,
            tolerance,
            passed: true,
            within_noise: 0,
            noise: 0.0,
            unverified: 0,
            norm_wise: false,
        }
    }

    /// A report whose allowances are norm-wise tolerances (the Hessian's columns).
    fn norm_wise(what: &'static str, tolerance: f64) -> Self {
        EntryReport {
            norm_wise: true,
            ..Self::new(what, tolerance)
        }
    }

    /// One entry: it passes if its relative error is within the tolerance, or if
    /// |analytic − numeric| ≤ `noise`, the rounding noise of the numeric value.
    fn record(&mut self, at: (usize, usize), analytic: f64, numeric: f64, noise: f64) {
        let rel = rel_error(analytic, numeric);
        let rel = if rel.is_nan() { f64::INFINITY } else { rel };
        let abs = (analytic - numeric).abs();
        self.max_abs_error = self.max_abs_error.max(abs);
        if rel > self.max_rel_error || self.analytic.is_nan() {
            self.max_rel_error = self.max_rel_error.max(rel);
            self.worst = at;
            self.analytic = analytic;
            self.numeric = numeric;
            self.noise = noise;
        }
        if rel > self.tolerance {
            // an infinite difference or allowance verifies nothing
            if abs.is_finite() && noise.is_finite() && abs <= noise {
                self.within_noise += 1;
                let size = 1f64.max(analytic.abs()).max(numeric.abs());
                if !self.norm_wise && noise > UNVERIFIED_SHARE * size {
                    self.unverified += 1;
                }
            } else {
                self.passed = false;
            }
        }
    }
}

impl fmt::Display for EntryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // a directional check's worst is a direction (counted from 1 here), not an entry
        let at = match self.is_directional() {
            true => format!("in direction {} of the random ones", self.worst.0 + 1),
            false => format!("at entry {:?}", self.worst),
        };
        write!(
            f,
            "{} {}: max relative error {:.2e} (tolerance {:.1e}) {at}: analytic {:.10e}, numeric {:.10e}",
            self.what,
            // passed only because differences cannot tell: not "ok"
            match (self.passed, self.unverified) {
                (false, _) => "FAILED",
                (true, 0) => "ok",
                (true, _) => "unverified",
            },
            self.max_rel_error,
            self.tolerance,
            self.analytic,
            self.numeric
        )?;
        if self.within_noise > 0 {
            write!(
                f,
                " ({} {} beyond the tolerance but within the numeric value's noise allowance, {:.1e} at that entry)",
                self.within_noise,
                if self.within_noise == 1 { "entry" } else { "entries" },
                self.noise
            )?;
        }
        if self.unverified > 0 {
            write!(
                f,
                "; UNVERIFIED: {} of them, whose allowance is over {:.0}% of their size (a difference quotient cannot tell there)",
                self.unverified,
                UNVERIFIED_SHARE * 100.0
            )?;
        }
        Ok(())
    }
}

/// The Hessian check: the entries against differences of the gradient, and the symmetry.
#[derive(Debug, Clone, PartialEq)]
pub struct HessianReport {
    /// Entry-by-entry comparison.
    pub entries: EntryReport,
    /// max |Hᵢⱼ − Hⱼᵢ| / max(1, |Hᵢⱼ|, |Hⱼᵢ|) of the analytic Hessian.
    pub symmetry_error: f64,
    /// Entries within tolerance and the symmetry error too.
    pub passed: bool,
}

impl fmt::Display for HessianReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; symmetry error {:.2e}", self.entries, self.symmetry_error)
    }
}
