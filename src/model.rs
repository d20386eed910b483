//! From a data table to a problem: choosing the columns, mapping labels to classes, adding
//! the intercept, standardizing, and naming every parameter.

use crate::data::Table;
use crate::error::{check_lambda, Error, Result};
use crate::problems::{LeastSquares, LogSumExp, Logistic, ModelKind, Objective, Quadratic, Softmax};
use crate::solve::{solve_least_squares_monitored, solve_monitored, GramMode, Monitor, Report, SolveOptions};
use crate::{Matrix, Vector};

/// How to build a problem from a table.
#[derive(Debug, Clone, PartialEq)]
pub struct FitSpec {
    /// The model.
    pub model: ModelKind,
    /// The target column(s): several only for least squares with several right-hand sides.
    pub target: Vec<String>,
    /// The feature columns; `None` means every column that is not a target.
    pub features: Option<Vec<String>>,
    /// The ridge coefficient λ ≥ 0.
    pub l2: f64,
    /// Append a column of ones, last, whose weight is not penalized.
    pub intercept: bool,
    /// Centre and scale each feature column (not the intercept) to mean 0 and variance 1.
    pub standardize: bool,
}

impl FitSpec {
    /// The defaults for `model`: target `y`, every other column a feature, no ridge, no
    /// intercept, raw features.
    pub fn new(model: ModelKind) -> Self {
        FitSpec {
            model,
            target: vec!["y".into()],
            features: None,
            l2: 0.0,
            intercept: false,
            standardize: false,
        }
    }
}

/// A problem of any kind, dispatching [`Objective`] to the concrete one.
#[derive(Debug)]
pub enum AnyProblem {
    /// Least squares, one or several right-hand sides.
    LeastSquares(LeastSquares),
    /// Quadratic form.
    Quadratic(Quadratic),
    /// Log-sum-exp.
    LogSumExp(LogSumExp),
    /// Logistic regression.
    Logistic(Logistic),
    /// Softmax regression.
    Softmax(Softmax),
}

macro_rules! dispatch {
    ($self:ident, $p:ident => $e:expr) => {
        match $self {
            AnyProblem::LeastSquares($p) => $e,
            AnyProblem::Quadratic($p) => $e,
            AnyProblem::LogSumExp($p) => $e,
            AnyProblem::Logistic($p) => $e,
            AnyProblem::Softmax($p) => $e,
        }
    };
}

impl Objective for AnyProblem {
    fn dim(&self) -> usize {
        dispatch!(self, p => p.dim())
    }
    fn value(&self, x: &Vector) -> Result<f64> {
        dispatch!(self, p => p.value(x))
    }
    fn value_and_gradient_into(&self, x: &Vector, g: &mut Vector) -> Result<f64> {
        dispatch!(self, p => p.value_and_gradient_into(x, g))
    }
    fn gradient_into(&self, x: &Vector, g: &mut Vector) -> Result<()> {
        dispatch!(self, p => p.gradient_into(x, g))
    }
    fn hessian_into(&self, x: &Vector, h: &mut Matrix) -> Result<()> {
        dispatch!(self, p => p.hessian_into(x, h))
    }
    fn hessian_vec_into(&self, x: &Vector, v: &Vector, out: &mut Vector) -> Result<()> {
        dispatch!(self, p => p.hessian_vec_into(x, v, out))
    }
    fn newton_direction_into(&self, x: &Vector, g: &Vector, d: &mut Vector) -> Result<bool> {
        dispatch!(self, p => p.newton_direction_into(x, g, d))
    }
    fn canonicalize(&self, x: &mut Vector) {
        dispatch!(self, p => p.canonicalize(x))
    }
    fn has_minimum(&self) -> bool {
        dispatch!(self, p => p.has_minimum())
    }
    fn no_minimum(&self) -> Option<String> {
        dispatch!(self, p => p.no_minimum())
    }
    fn not_a_minimum(&self, x: &Vector) -> Option<String> {
        dispatch!(self, p => p.not_a_minimum(x))
    }
}

crate::impl_argmin_traits!(AnyProblem);

/// A problem built from data, with what a report needs to explain it.
#[derive(Debug)]
pub struct Fit {
    /// The problem.
    pub problem: AnyProblem,
    /// One name per parameter, in parameter order.
    pub parameter_names: Vec<String>,
    /// Per parameter: the index in `features` of the column it multiplies; `None` for an
    /// intercept. With `standardization`, this is how a parameter applies to raw data.
    pub parameter_features: Vec<Option<usize>>,
    /// For logistic and softmax: the label of class 0, 1, … (sorted).
    pub classes: Option<Vec<String>>,
    /// The feature columns used, in order.
    pub features: Vec<String>,
    /// Per feature: (mean, scale) when standardized.
    pub standardization: Option<Vec<(f64, f64)>>,
    /// The feature matrix as the problem sees it (after standardization and intercept).
    pub a: Matrix,
    /// What the data suggest may be a mistake without being an error (the command line prints
    /// each as a note): a softmax target whose many classes are mostly one row each, a
    /// quantity rather than a label.
    pub notes: Vec<String>,
}

/// Solves `fit` from x₀: least squares through [`solve_least_squares_monitored`] with `gram`
/// (the Gram form where it pays, the answer checked on the rows), every other model by
/// [`solve_monitored`] (`gram` does not apply to them).
pub fn solve_fit_monitored<M: Monitor + 'static>(
    fit: &Fit,
    x0: &Vector,
    opts: &SolveOptions,
    gram: GramMode,
    monitor: M,
) -> Result<(Report, M)> {
    match &fit.problem {
        AnyProblem::LeastSquares(p) => solve_least_squares_monitored(p, x0, opts, gram, monitor),
        p => {
            let (mut r, monitor) = solve_monitored(p, x0, opts, monitor)?;
            if let Some(note) = separable_note(p, fit, &r) {
                r.add_detail(note);
            }
            Ok((r, monitor))
        }
    }
}

/// For logistic or softmax at λ = 0 whose loss ended below 1/1000 of its value at 0 (m·log k):
/// the classes are (nearly) separable, the loss may have no minimum, and "converged" may only
/// mean the parameters grew until the gradient was small enough. Overlapping classes keep a
/// loss of order one per overlapping row. Not said where the solve itself proved it
/// ([`Objective::not_a_minimum`]: a hyperplane from the answer separates a class, as iris's
/// setosa at λ = 0, whose loss ends near 6 with the other two species overlapping).
fn separable_note(p: &AnyProblem, fit: &Fit, r: &Report) -> Option<String> {
    let (lambda, classes) = match p {
        AnyProblem::Logistic(l) => (l.lambda(), 2),
        AnyProblem::Softmax(s) => (s.lambda(), s.classes()),
        _ => return None,
    };
    let at_zero = fit.a.nrows() as f64 * (classes as f64).ln();
    if lambda != 0.0 || !r.cost.is_finite() || r.cost >= 1e-3 * at_zero {
        return None;
    }
    if p.not_a_minimum(&r.x).is_some() {
        return None;
    }
    let until = match r.converged {
        true => "until the gradient is small enough",
        false => "for as long as the solver runs",
    };
    Some(format!(
        "the loss fell to {:.1e} of its value at 0: the classes are separable or nearly so, and at \
         --l2 0 the loss may then have no minimum, the parameters growing {until} (largest \
         |parameter| {:.1e}); --l2 > 0 gives a finite answer",
        r.cost / at_zero,
        r.x.amax()
    ))
}

/// Builds the problem `spec` describes from `table`.
///
/// Errors name what is wrong: a missing target or feature column (listing those that exist),
/// a cell that is not a finite number, a logistic target without exactly two classes, a
/// softmax target with fewer than two, a quadratic whose A is not square, an intercept with a
/// model where it makes no sense, standardizing a quadratic or log-sum-exp, a negative or
/// non-finite λ, no feature columns.
pub fn build(table: &Table, spec: &FitSpec) -> Result<Fit> {
    check_lambda(spec.l2)?;
    if spec.intercept && matches!(spec.model, ModelKind::Quadratic | ModelKind::LogSumExp) {
        return Err(Error::option(
            "intercept",
            "on",
            &format!(
                "{} has no intercept: a constant column would {}",
                spec.model,
                if spec.model == ModelKind::Quadratic {
                    "make A non-square"
                } else {
                    "only shift every term equally"
                }
            ),
        ));
    }
    if spec.standardize && matches!(spec.model, ModelKind::Quadratic | ModelKind::LogSumExp) {
        // a quadratic's columns are the matrix A, not features; log-sum-exp's rows are not
        // samples: centring them subtracts μᵀx from f, which bounds a function that was
        // unbounded below (a review saw "converged" where the plain problem runs off)
        return Err(Error::NotApplicable {
            name: "standardize".into(),
            model: spec.model.to_string(),
            reason: if spec.model == ModelKind::Quadratic {
                "its columns are the matrix A, not features; standardizing them would change the problem"
            } else {
                "its rows are not samples: centring them subtracts a linear term from f and changes the problem"
            }
            .into(),
        });
    }
    if spec.target.is_empty() {
        return Err(Error::option("target", "", "name at least one column"));
    }
    if spec.target.len() > 1 && spec.model != ModelKind::LeastSquares {
        return Err(Error::option(
            "target",
            spec.target.join(","),
            &format!(
                "several target columns are only for least-squares, not {}",
                spec.model
            ),
        ));
    }
    let target: Vec<String> = spec.target.iter().map(|t| t.trim().to_string()).collect();
    let spec = &FitSpec {
        target,
        ..spec.clone()
    };
    let target_idx = table.columns(&spec.target)?;
    let features: Vec<String> = match &spec.features {
        Some(f) => f.iter().map(|s| s.trim().to_string()).collect(),
        None => table
            .headers
            .iter()
            .filter(|h| !spec.target.contains(h))
            .cloned()
            .collect(),
    };
    for (what, list) in [("features", &features), ("target", &spec.target)] {
        let mut seen = std::collections::HashSet::with_capacity(list.len());
        if let Some(dup) = list.iter().find(|f| !seen.insert(f.as_str())) {
            return Err(Error::option(what, dup, "names this column twice"));
        }
    }
    if features.is_empty() {
        return Err(Error::Data {
            what: format!("{}: no feature columns besides the target", table.path.display()),
        });
    }
    if let Some(f) = features.iter().find(|f| spec.target.contains(f)) {
        return Err(Error::option("features", f, "is also the target"));
    }
    let feature_idx = table.columns(&features)?;
    let m = table.rows();
    let mut a = Matrix::zeros(m, features.len() + usize::from(spec.intercept));
    table.numbers_into(&feature_idx, &mut a)?;
    let standardization = spec
        .standardize
        .then(|| standardize(&mut a, features.len(), spec.intercept));
    if spec.intercept {
        a.column_mut(features.len()).fill(1.0);
    }
    let mut names = features.clone();
    if spec.intercept {
        names.push("intercept".into());
    }
    let mut notes = Vec::new();
    let (problem, parameter_names, classes) = match spec.model {
        ModelKind::LeastSquares => {
            let mut b = Matrix::zeros(m, target_idx.len());
            table.numbers_into(&target_idx, &mut b)?;
            let pnames = if spec.target.len() == 1 {
                names
            } else {
                spec.target
                    .iter()
                    .flat_map(|t| names.iter().map(move |n| format!("{t}:{n}")))
                    .collect()
            };
            (
                AnyProblem::LeastSquares(
                    LeastSquares::multi(a.clone(), b, spec.l2)?.with_intercept(spec.intercept)?,
                ),
                pnames,
                None,
            )
        }
        ModelKind::Quadratic => {
            // A's columns are the file's, in order: picking or reordering some without the
            // matching rows would make another matrix, not a part of this one
            let all: Vec<&String> = table
                .headers
                .iter()
                .filter(|h| !spec.target.contains(h))
                .collect();
            if spec.features.is_some() && !features.iter().eq(all.iter().copied()) {
                return Err(Error::Data {
                    what: format!(
                        "{}: --features with the quadratic must list A's columns as they are, in order \
                         ({}): a selection or reordering of columns without the rows changes A",
                        table.path.display(),
                        crate::model::preview(&all.into_iter().cloned().collect::<Vec<_>>())
                    ),
                });
            }
            if m != features.len() {
                return Err(Error::Data {
                    what: format!(
                        "{}: quadratic needs a square A: {} rows but {} feature columns",
                        table.path.display(),
                        m,
                        features.len()
                    ),
                });
            }
            let b = Vector::from_vec(table.numbers(target_idx[0])?);
            let pnames = (1..=m).map(|i| format!("x{i}")).collect();
            (
                AnyProblem::Quadratic(Quadratic::new(a.clone(), b, spec.l2)?),
                pnames,
                None,
            )
        }
        ModelKind::LogSumExp => {
            let b = Vector::from_vec(table.numbers(target_idx[0])?);
            (
                AnyProblem::LogSumExp(LogSumExp::new(a.clone(), b, spec.l2)?),
                names,
                None,
            )
        }
        ModelKind::Logistic => {
            let (classes, y) = classes_of(table, target_idx[0])?;
            if classes.len() != 2 {
                return Err(Error::Data {
                    what: format!(
                        "{}: logistic needs exactly 2 classes in column {:?}, found {}: {}",
                        table.path.display(),
                        spec.target[0],
                        classes.len(),
                        preview(&classes)
                    ),
                });
            }
            let y = Vector::from_iterator(m, y.into_iter().map(|c| c as f64));
            (
                AnyProblem::Logistic(Logistic::new(a.clone(), y, spec.l2, spec.intercept)?),
                names,
                Some(classes),
            )
        }
        ModelKind::Softmax => {
            let (classes, y) = classes_of(table, target_idx[0])?;
            if classes.len() < 2 {
                return Err(Error::Data {
                    what: format!(
                        "{}: softmax needs at least 2 classes in column {:?}, found {}",
                        table.path.display(),
                        spec.target[0],
                        classes.len()
                    ),
                });
            }
            let k = classes.len();
            notes.extend(quantity_note(table, spec.target[0].as_str(), &classes, &y));
            let pnames = classes
                .iter()
                .flat_map(|c| names.iter().map(move |n| format!("{c}:{n}")))
                .collect();
            (
                AnyProblem::Softmax(Softmax::new(a.clone(), y, k, spec.l2, spec.intercept)?),
                pnames,
                Some(classes),
            )
        }
    };
    // every model's parameters come in groups (one per class or target; one group for the
    // others) of A's columns in order: the features, then the intercept
    let columns: Vec<Option<usize>> = (0..features.len())
        .map(Some)
        .chain(spec.intercept.then_some(None))
        .collect();
    let parameter_features = (0..parameter_names.len())
        .map(|p| columns.get(p % columns.len().max(1)).copied().flatten())
        .collect();
    Ok(Fit {
        problem,
        parameter_names,
        parameter_features,
        classes,
        features,
        standardization,
        a,
        notes,
    })
}

/// For a softmax target of numbers with more than [`MANY_CLASSES`] classes and fewer than
/// [`ROWS_PER_CLASS`] rows a class on average (the diabetes progression score: 214 classes over
/// 442 rows, 84 of them on one row only), a note that the column looks like a quantity, which
/// least squares fits, rather than a label.
fn quantity_note(table: &Table, target: &str, classes: &[String], y: &[usize]) -> Option<String> {
    let k = classes.len();
    let numeric = classes.iter().all(|c| c.parse::<f64>().is_ok());
    if !numeric || k <= MANY_CLASSES || y.len() >= ROWS_PER_CLASS * k {
        return None;
    }
    let mut count = vec![0usize; k];
    for &c in y {
        if let Some(n) = count.get_mut(c) {
            *n += 1;
        }
    }
    let once = count.iter().filter(|&&n| n == 1).count();
    Some(format!(
        "{}: column {target:?} holds {k} distinct numbers over {} rows, {once} of them on one row only: \
         softmax fits one class per number; if the column is a quantity rather than a label, \
         --model least-squares fits it",
        table.path.display(),
        y.len()
    ))
}

/// The number of classes past which a numeric softmax target is checked for looking like a
/// quantity ([`quantity_note`]).
const MANY_CLASSES: usize = 20;

/// The fewest rows a class, on average, of a numeric softmax target of many classes that
/// [`quantity_note`] leaves alone.
const ROWS_PER_CLASS: usize = 5;

fn preview(classes: &[String]) -> String {
    let shown: Vec<_> = classes.iter().take(5).map(|c| format!("{c:?}")).collect();
    let more = if classes.len() > 5 { ", …" } else { "" };
    format!("{}{more}", shown.join(", "))
}

/// Distinct labels sorted (numerically if every label is a number, else as text), and each
/// row's class index. Numeric labels must be whole numbers, finite, and all of them numbers
/// (a column of numbers with one text label, or the reverse, is refused: a typo, or a missing
/// value, as sklearn refuses a mix); they are told apart exactly as integers, so that IDs
/// past 2⁵³, which f64 rounds together, stay distinct classes, while "1" and "1.0" are one.
fn classes_of(table: &Table, j: usize) -> Result<(Vec<String>, Vec<usize>)> {
    let labels = table.labels(j);
    let path = table.path.display();
    let column = &table.headers[j];
    if let Some(i) = labels.iter().position(|l| l.is_empty()) {
        return Err(Error::Data {
            what: format!("{path}: line {}: empty label in column {column:?}", table.line(i)),
        });
    }
    // numbers are labels in decimal syntax; NaN and infinity, which f64 also parses, are
    // words: a class of their own among text, a missing value among numbers
    let is_number = |l: &String| decimal_integer(l).is_some();
    let numbers = labels.iter().filter(|l| is_number(l)).count();
    if numbers > 0 && numbers < labels.len() {
        let non_finite = |l: &String| !is_number(l) && l.parse::<f64>().is_ok();
        if 2 * numbers >= labels.len() {
            if let Some(i) = labels.iter().position(non_finite) {
                return Err(Error::Data {
                    what: format!(
                        "{path}: line {}: label {:?} in column {column:?} is not a finite number, in a \
                         column of numbers: a missing value? (class labels are whole numbers or text)",
                        table.line(i),
                        labels[i]
                    ),
                });
            }
        }
        // the first row of the rarer kind is the odd one out
        let (odd, kind, other) = match 2 * numbers >= labels.len() {
            true => (labels.iter().position(|l| !is_number(l)), "text", "numbers"),
            false => (labels.iter().position(is_number), "a number", "text"),
        };
        let i = odd.unwrap_or(0);
        return Err(Error::Data {
            what: format!(
                "{path}: line {}: label {:?} in column {column:?} is {kind} where {} of {} labels are {other}: \
                 a typo or a missing value? (class labels are all whole numbers or all text)",
                table.line(i),
                labels[i],
                if other == "numbers" { numbers } else { labels.len() - numbers },
                labels.len()
            ),
        });
    }
    if numbers == 0 {
        let mut distinct: Vec<String> = labels.clone();
        distinct.sort();
        distinct.dedup();
        let y = labels
            .iter()
            .map(|l| distinct.binary_search(l).unwrap_or(0))
            .collect();
        return Ok((distinct, y));
    }
    // every label a number: each as an exact integer
    let mut keys = Vec::with_capacity(labels.len());
    for (i, l) in labels.iter().enumerate() {
        let refuse = |why: &str| Error::Data {
            what: format!(
                "{path}: line {}: label {l:?} in column {column:?} {why}",
                table.line(i)
            ),
        };
        let key = match decimal_integer(l) {
            Some(Ok(k)) => k,
            Some(Err(Inexact::NotWhole)) => {
                return Err(refuse(
                    "is not a whole number: the classification models take class labels \
                     (whole numbers or text), not a continuous target",
                ))
            }
            Some(Err(Inexact::TooLarge)) | None => {
                return Err(refuse(
                    "is beyond ±2¹²⁷ (1.7e38): labels this large cannot be told apart exactly",
                ))
            }
        };
        keys.push(key);
    }
    // classes sorted by value; each named by the least of its spellings in text order ("1"
    // before "1.0")
    let mut order: Vec<(i128, &String)> = keys.iter().copied().zip(&labels).collect();
    order.sort();
    order.dedup_by_key(|(k, _)| *k);
    let values: Vec<i128> = order.iter().map(|(k, _)| *k).collect();
    let classes = order.iter().map(|(_, l)| (*l).clone()).collect();
    let y = keys
        .iter()
        .map(|k| values.binary_search(k).unwrap_or(0))
        .collect();
    Ok((classes, y))
}

/// Why a number in decimal syntax is not a class label.
#[derive(Debug, PartialEq)]
enum Inexact {
    /// It has a fractional part.
    NotWhole,
    /// It is beyond ±2¹²⁷.
    TooLarge,
}

/// A label in decimal syntax (an optional sign, digits with an optional point, an optional
/// exponent: what f64 parses, less NaN and infinity) as the exact integer it writes, from its
/// digits, not through f64: "9007199254740993.0" is 2⁵³ + 1, which f64 rounds to 2⁵³, and
/// "1.0000000000000001" is not whole, which f64 rounds to 1. None for any other text.
fn decimal_integer(text: &str) -> Option<std::result::Result<i128, Inexact>> {
    let (negative, rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(at) => (&rest[..at], Some(&rest[at + 1..])),
        None => (rest, None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits_only = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if whole.len() + fraction.len() == 0 || !digits_only(whole) || !digits_only(fraction) {
        return None;
    }
    let exponent: i64 = match exponent {
        None => 0,
        Some(e) => {
            let unsigned = e.strip_prefix(['+', '-']).unwrap_or(e);
            if unsigned.is_empty() || !digits_only(unsigned) {
                return None;
            }
            // an exponent too long for i64 is far past either end
            e.parse()
                .unwrap_or(if e.starts_with('-') { i64::MIN } else { i64::MAX })
        }
    };
    // the value is digits × 10^shift
    let digits = format!("{whole}{fraction}");
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Some(Ok(0));
    }
    let shift = exponent.saturating_sub(fraction.len() as i64);
    let significant = digits.trim_end_matches('0');
    let zeros = (digits.len() - significant.len()) as i64;
    // the trailing zeros pay for a negative shift; what is left is a fractional part
    if shift.saturating_add(zeros) < 0 {
        return Some(Err(Inexact::NotWhole));
    }
    let mut value: i128 = match significant.parse() {
        Ok(v) => v,
        Err(_) => return Some(Err(Inexact::TooLarge)),
    };
    for _ in 0..shift.saturating_add(zeros) {
        value = match value.checked_mul(10) {
            Some(v) => v,
            None => return Some(Err(Inexact::TooLarge)),
        };
    }
    Some(Ok(if negative { -value } else { value }))
}

/// Centres and scales the first `n` columns; a constant column is only centred (scale 1).
/// A column with entries beyond 1e150, or all below 1e-150, is worked on in units of its
/// largest entry, where neither the sum nor the squares overflow or underflow (directly,
/// 1e300s gave a scale of ∞, and 1e-300s squares of 0: such a column was taken for a
/// constant and left unscaled, and the fit depended on its units).
///
/// Without an intercept (`centre` false) the columns are only scaled, by the same standard
/// deviation, and their means are recorded as 0: centring would take away the constant that a
/// model without an intercept fits through the raw features (diabetes' least squares: a cost
/// 8.6 times the raw fit's), where scaling changes only the parameters' units, as glmnet does
/// without an intercept.
fn standardize(a: &mut Matrix, n: usize, centre: bool) -> Vec<(f64, f64)> {
    if !centre {
        return (0..n).map(|j| scale_only(a.column_mut(j))).collect();
    }
    (0..n)
        .map(|j| {
            let mut col = a.column_mut(j);
            let big = col.amax();
            if out_of_square_range(big) {
                col /= big;
                let mean = col.mean();
                col.add_scalar_mut(-mean);
                let sd = (col.norm_squared() / col.len() as f64).sqrt();
                return if sd > 1e-12 * mean.abs().max(f64::MIN_POSITIVE) {
                    col /= sd;
                    (mean * big, sd * big)
                } else {
                    col *= big;
                    (mean * big, 1.0)
                };
            }
            let mean = col.mean();
            col.add_scalar_mut(-mean);
            let sd = (col.norm_squared() / col.len() as f64).sqrt();
            // after centring, a constant column keeps only rounding (~1e-16·|mean|)
            let scale = if sd > 1e-12 * mean.abs().max(f64::MIN_POSITIVE) {
                sd
            } else {
                1.0
            };
            col /= scale;
            (mean, scale)
        })
        .collect()
}

/// Whether entries of magnitude up to `big` (a column's largest) would overflow or underflow
/// when squared.
fn out_of_square_range(big: f64) -> bool {
    big > 1e150 || (big > 0.0 && big < 1e-150)
}

/// Divides a column by its standard deviation (1 for a constant column, as in [`standardize`])
/// without centring it; returns (0, scale). The deviation is taken in units of the column's
/// largest entry where its squares would overflow or underflow ([`out_of_square_range`]).
fn scale_only(mut col: nalgebra::DVectorViewMut<'_, f64>) -> (f64, f64) {
    let big = col.amax();
    let unit = if out_of_square_range(big) { big } else { 1.0 };
    let len = col.len().max(1) as f64;
    let mean = col.iter().map(|v| v / unit).sum::<f64>() / len;
    let sd = (col.iter().map(|v| (v / unit - mean).powi(2)).sum::<f64>() / len).sqrt();
    let scale = if sd > 1e-12 * mean.abs().max(f64::MIN_POSITIVE) {
        sd * unit
    } else {
        1.0
    };
    col /= scale;
    (0.0, scale)
}

/// The typical magnitude of each parameter: 1/(√n·rms(column j)), the size at which its term
/// of Ax is O(1/√n) and Ax is O(1).
pub fn typical_scale(fit: &Fit) -> Vector {
    let n_cols = fit.a.ncols();
    Vector::from_fn(fit.problem.dim(), |i, _| {
        let col = fit.a.column(i % n_cols);
        let rms = (col.norm_squared() / col.len().max(1) as f64).sqrt().max(1e-12);
        1.0 / (rms * (n_cols as f64).sqrt())
    })
}

/// A starting point of the data's scale: xⱼ ~ N(0, typicalⱼ²) with [`typical_scale`]. Seeded.
pub fn random_point(fit: &Fit, seed: u64) -> Vector {
    use rand::{Rng, SeedableRng};
    let mut r = rand::rngs::StdRng::seed_from_u64(seed);
    typical_scale(fit).map(|t| t * r.sample::<f64, _>(rand_distr::StandardNormal))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::read_csv_from;
    use std::path::Path;

    /// Every parameter's feature is the one its name gives ("class:feature" or "target:feature"),
    /// and `None` exactly for the intercept, for each model that groups its parameters.
    #[test]
    fn parameter_features_match_the_names() {
        let csv = "u,v,w,y,z\n1,2,0.5,a,3\n2,1,1.5,b,1\n0,3,2.5,c,4\n4,0,1,a,2\n3,3,0,b,0\n";
        let table = read_csv_from(csv.as_bytes(), Path::new("t.csv")).unwrap();
        let mut softmax = FitSpec::new(ModelKind::Softmax);
        softmax.features = Some(vec!["w".into(), "u".into()]);
        softmax.intercept = true;
        softmax.standardize = true;
        let mut ls = FitSpec::new(ModelKind::LeastSquares);
        ls.target = vec!["v".into(), "z".into()];
        ls.features = Some(vec!["u".into(), "w".into()]);
        ls.intercept = true;
        let mut plain = FitSpec::new(ModelKind::LeastSquares);
        plain.target = vec!["z".into()];
        plain.features = Some(vec!["w".into(), "u".into(), "v".into()]);
        for (spec, groups) in [(softmax, 3), (ls, 2), (plain, 1)] {
            let fit = build(&table, &spec).unwrap();
            assert_eq!(fit.parameter_features.len(), fit.parameter_names.len());
            assert_eq!(
                fit.parameter_names.len(),
                groups * (fit.features.len() + usize::from(spec.intercept))
            );
            for (name, j) in fit.parameter_names.iter().zip(&fit.parameter_features) {
                let feature = name.rsplit(':').next().unwrap();
                match j {
                    Some(j) => assert_eq!(fit.features[*j], feature, "{name}"),
                    None => assert_eq!(feature, "intercept", "{name}"),
                }
            }
        }
    }

    fn labels_of(column: &[&str]) -> Result<(Vec<String>, Vec<usize>)> {
        let csv: String = std::iter::once("y".to_string())
            .chain(column.iter().map(|l| l.to_string()))
            .collect::<Vec<_>>()
            .join("\n");
        let table = read_csv_from(csv.as_bytes(), Path::new("t.csv")).unwrap();
        classes_of(&table, 0)
    }

    /// Numbers are compared as exact integers: 2⁵³ and 2⁵³ + 1, one double apart from none, are
    /// two classes; "1" and "1.0" are one, named by the first spelling; text sorts as text.
    #[test]
    fn labels_become_classes_exactly() {
        for (text, want) in [
            ("0", Some(Ok(0))),
            ("-0.0e5", Some(Ok(0))),
            ("+12", Some(Ok(12))),
            ("1.50e1", Some(Ok(15))),
            ("1500e-2", Some(Ok(15))),
            ("1.5", Some(Err(Inexact::NotWhole))),
            ("1e-1", Some(Err(Inexact::NotWhole))),
            ("170141183460469231731687303715884105727", Some(Ok(i128::MAX))),
            (
                "170141183460469231731687303715884105728",
                Some(Err(Inexact::TooLarge)),
            ),
            ("1e99999999999999999999", Some(Err(Inexact::TooLarge))),
            ("1e-99999999999999999999", Some(Err(Inexact::NotWhole))),
            ("nan", None),
            ("inf", None),
            ("1e", None),
            (".", None),
            ("0x1", None),
            ("1_000", None),
        ] {
            assert_eq!(decimal_integer(text), want, "{text}");
        }
        let (classes, y) = labels_of(&[
            "9007199254740993",
            "7",
            "9007199254740992",
            "9007199254740993",
            "7",
        ])
        .unwrap();
        assert_eq!(classes, ["7", "9007199254740992", "9007199254740993"]);
        assert_eq!(y, [2, 0, 1, 2, 0]);
        let (classes, y) = labels_of(&["1.0", "1", "-2", "1e2", "100", "-0", "0"]).unwrap();
        assert_eq!(classes, ["-2", "-0", "1", "100"]);
        assert_eq!(y, [2, 2, 0, 3, 3, 1, 1]);
        // through the digits, not f64: 2⁵³ + 1 written with a point, and 1e2 as 100
        let (classes, y) = labels_of(&["9007199254740993.0", "9007199254740992", "1e2", "100"]).unwrap();
        assert_eq!(classes, ["100", "9007199254740992", "9007199254740993.0"]);
        assert_eq!(y, [2, 1, 0, 0]);
        // NaN and infinity among text are words, classes of their own
        let (classes, _) = labels_of(&["cat", "nan", "inf"]).unwrap();
        assert_eq!(classes, ["cat", "inf", "nan"]);
        let (classes, y) = labels_of(&["b", "a", "b"]).unwrap();
        assert_eq!(
            (classes, y),
            (vec!["a".to_string(), "b".to_string()], vec![1, 0, 1])
        );
    }

    /// A mix of numbers and text is refused at the first row of the rarer kind; so are NaN,
    /// infinities, non-whole numbers and numbers beyond 2¹²⁷, each at its line (the header is
    /// line 1).
    #[test]
    fn bad_labels_are_refused_at_their_line() {
        for (column, want) in [
            (
                &["0", "1", "x", "1"][..],
                "line 4: label \"x\" in column \"y\" is text where 3 of 4 labels are numbers",
            ),
            (
                &["yes", "no", "1", "no"][..],
                "line 4: label \"1\" in column \"y\" is a number where 3 of 4 labels are text",
            ),
            (
                &["0", "1", "True"][..],
                "line 4: label \"True\" in column \"y\" is text",
            ),
            (
                &["0", "NaN", "1"][..],
                "line 3: label \"NaN\" in column \"y\" is not a finite number",
            ),
            (
                &["0", "1", "-inf"][..],
                "line 4: label \"-inf\" in column \"y\" is not a finite number",
            ),
            (
                &["0", "2.5"][..],
                "line 3: label \"2.5\" in column \"y\" is not a whole number",
            ),
            (
                &["0", "1e40"][..],
                "line 3: label \"1e40\" in column \"y\" is beyond ±2¹²⁷",
            ),
            (
                &["0", "1e400"][..],
                "line 3: label \"1e400\" in column \"y\" is beyond ±2¹²⁷",
            ),
            (
                &["1", "1.0000000000000001"][..],
                "line 3: label \"1.0000000000000001\" in column \"y\" is not a whole",
            ),
            (
                &["0", "1", "nan", "1"][..],
                "line 4: label \"nan\" in column \"y\" is not a finite number",
            ),
        ] {
            let e = labels_of(column).unwrap_err().to_string();
            assert!(e.starts_with(&format!("t.csv: {want}")), "{column:?}: {e}");
        }
    }
}
