//! The library's error type.
//!
//! One enum, one variant per cause, each naming where the fault is: the file, line and column
//! for data, the parameter for options, the shape for mismatched inputs.

use std::path::PathBuf;

/// Everything that can go wrong in gradfit.
///
/// argmin's trait methods return `argmin::core::Error` (an `anyhow::Error`); a gradfit error
/// converts into it with `.into()` and comes back out with `downcast::<gradfit::Error>()`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be opened, read or written.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said (shown in the message, not chained as a source).
        error: std::io::Error,
    },
    /// A CSV file is malformed (wrong number of fields, bad encoding, no rows).
    #[error("{}: {}{message}", path.display(), if *line > 0 { format!("line {line}: ") } else { String::new() })]
    Csv {
        /// The file.
        path: PathBuf,
        /// 1-based line number (0 when the fault is not on one line).
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// A CSV cell is not a finite number.
    #[error("{}: line {line}, column {column:?}: {text:?} is not a finite number", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// The column's header name.
        column: String,
        /// The text found in the cell.
        text: String,
    },
    /// Data that parses but cannot define the requested problem (a logistic target with three
    /// classes, a missing column, a quadratic whose A is not square, ...).
    #[error("{what}")]
    Data {
        /// What is wrong, with the file or column it concerns.
        what: String,
    },
    /// Two inputs whose sizes must agree do not.
    #[error("{what}: expected {expected}, found {found}")]
    Shape {
        /// Which input.
        what: String,
        /// The size required.
        expected: usize,
        /// The size given.
        found: usize,
    },
    /// A NaN or infinity where a finite number is required.
    #[error("{what}: non-finite value at index {index}")]
    NonFinite {
        /// Which input.
        what: String,
        /// The first offending index.
        index: usize,
    },
    /// An option is out of its legal range.
    #[error("invalid {name} = {value}: {reason}")]
    InvalidOption {
        /// The option's name.
        name: String,
        /// The value given.
        value: String,
        /// The legal range.
        reason: String,
    },
    /// An option that is valid in itself but does not apply to this model.
    #[error("{name} does not apply to the {model} model: {reason}")]
    NotApplicable {
        /// The option's name.
        name: String,
        /// The model it was given with.
        model: String,
        /// Why it does not apply.
        reason: String,
    },
    /// The evaluation budget given to a guarded problem was used up.
    #[error("evaluation budget of {budget} exhausted")]
    Budget {
        /// The budget.
        budget: u64,
    },
    /// A solver's dense n×n matrices do not fit the memory the process has (checked before
    /// allocating: [`crate::solve::SolveOptions::memory_limit`], `ulimit -v`, the cgroup's
    /// limit, the free memory), or their allocation failed. `lbfgs` and `newton-cg` need memory
    /// in proportion to n only: a pipeline can fall back to them on this error.
    #[error("solver {method}: {message}")]
    Memory {
        /// The method that needs the matrices.
        method: String,
        /// Bytes of dense matrices needed.
        needed: u64,
        /// Bytes available, as measured or given (`None` where the allocation itself failed
        /// or the size is past what the machine can address).
        available: Option<u64>,
        /// What was needed and what was available, in words.
        message: String,
    },
    /// argmin returned an error gradfit does not know.
    #[error("solver {method}: {message}")]
    Solver {
        /// The method that failed.
        method: String,
        /// argmin's message.
        message: String,
    },
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn option(name: &str, value: impl std::fmt::Display, reason: &str) -> Self {
        Error::InvalidOption {
            name: name.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn shape(what: &str, expected: usize, found: usize) -> Self {
        Error::Shape {
            what: what.to_string(),
            expected,
            found,
        }
    }
}

/// Checks that `len == expected`, else a [`Error::Shape`] naming `what`.
pub(crate) fn check_len(what: &str, expected: usize, found: usize) -> Result<()> {
    if expected == found {
        Ok(())
    } else {
        Err(Error::shape(what, expected, found))
    }
}

/// [`check_finite`] for a matrix: the error names the entry's row and column (its `index` is
/// still the position in column-major order, as nalgebra stores it).
pub(crate) fn check_finite_matrix(what: &str, a: &crate::Matrix) -> Result<()> {
    match a.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(index) => Err(Error::NonFinite {
            what: format!(
                "{what} (row {}, column {})",
                index % a.nrows().max(1),
                index / a.nrows().max(1)
            ),
            index,
        }),
    }
}

/// Checks that every value is finite, else a [`Error::NonFinite`] naming the first bad index.
pub(crate) fn check_finite<'a>(what: &str, values: impl IntoIterator<Item = &'a f64>) -> Result<()> {
    match values.into_iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(index) => Err(Error::NonFinite {
            what: what.to_string(),
            index,
        }),
    }
}

/// Checks a ridge coefficient: ≥ 0, and 2λ finite (the gradient's 2λx and the Hessian's 2λI:
/// past f64::MAX / 2 they overflow, and ∞·0 made a NaN gradient norm).
pub(crate) fn check_lambda(lambda: f64) -> Result<()> {
    if lambda >= 0.0 && (2.0 * lambda).is_finite() {
        Ok(())
    } else {
        Err(Error::option(
            "l2",
            lambda,
            &format!(
                "must be >= 0 and at most {:e} (so that 2λ is finite)",
                f64::MAX / 2.0
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ridge_coefficient_must_be_non_negative_with_2_lambda_finite() {
        let largest = f64::MAX / 2.0;
        for ok in [0.0, 1.0, largest] {
            assert!(check_lambda(ok).is_ok(), "{ok}");
        }
        // the next double past f64::MAX / 2 doubles to ∞
        let past = f64::from_bits(largest.to_bits() + 1);
        assert!((2.0 * past).is_infinite());
        for bad in [-1.0, -0.0 - 1e-300, past, 1e308, f64::INFINITY, f64::NAN] {
            let e = check_lambda(bad).unwrap_err().to_string();
            assert!(
                e.starts_with("invalid l2 = ") && e.contains("2λ is finite"),
                "{bad}: {e}"
            );
        }
    }
}
