//! # gradfit
//!
//! Numerical optimization on derivatives derived by hand, and proven against finite
//! differences.
//!
//! - [`problems`]: least squares, quadratic forms, log-sum-exp, logistic and softmax regression,
//!   and every identity of the seeds' matrix-calculus table, each with closed-form gradient,
//!   Hessian and Hessian-vector product, implementing argmin's `CostFunction`, `Gradient` and
//!   `Hessian` on nalgebra's `DVector<f64>` / `DMatrix<f64>`.
//! - [`check`]: the derivative checker: central and forward differences, Hessian and symmetry
//!   checks, directional checks for large n, and the error-order study.
//!
//! ```
//! use gradfit::check::{check_gradient, check_hessian, Tolerance};
//! use gradfit::problems::Logistic;
//! use gradfit::{Matrix, Vector};
//!
//! let a = Matrix::from_row_slice(3, 2, &[1.0, 0.5, -0.3, 1.0, 2.0, -1.0]);
//! let p = Logistic::new(a, Vector::from_vec(vec![1.0, 0.0, 1.0]), 0.1, false)?;
//! let x = Vector::from_vec(vec![0.2, -0.4]);
//! assert!(check_gradient(&p, &x, Tolerance::default())?.passed);
//! assert!(check_hessian(&p, &x, Tolerance::default())?.passed);
//! # Ok::<(), gradfit::Error>(())
//! ```
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod aligned;
pub mod check;
mod class_kernels;
pub mod cpu;
pub mod data;
pub mod error;
pub mod generate;
mod gram;
mod kernels;
mod linalg;
pub mod model;
pub mod numeric;
pub mod output;
pub mod problems;
pub mod solve;
mod vmath;

pub use error::{Error, Result};

/// Parameters and gradients.
pub type Vector = nalgebra::DVector<f64>;
/// Data matrices and Hessians.
pub type Matrix = nalgebra::DMatrix<f64>;

/// The README's Rust example, compiled and run as a doctest so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
