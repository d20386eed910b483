//! Synthetic problem instances with a known structure, seeded, for tests and benchmarks.
//!
//! Every generator returns a [`Dataset`]: named feature columns, a target, and the model it is
//! meant for; [`Dataset::write_csv`] writes it in the format `gradfit solve` reads.

use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

use crate::error::{Error, Result};
use crate::numeric::{sigmoid, softmax_into};
use crate::problems::ModelKind;
use crate::{Matrix, Vector};

/// A generated instance: the feature matrix A (m×n), the target column, and their names.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The model the instance is made for.
    pub model: ModelKind,
    /// The feature columns.
    pub a: Matrix,
    /// The target column (b, y, or class labels 0..k−1 as numbers).
    pub target: Vector,
    /// The feature columns' names.
    pub names: Vec<String>,
}

impl Dataset {
    /// Writes the header (feature names, then `y`) and one row per sample, through
    /// [`crate::output::write_streamed`]: an error leaves no file and no partial one.
    pub fn write_csv(&self, path: &Path) -> Result<()> {
        crate::output::write_streamed(path, |w| {
            let mut w = csv::Writer::from_writer(w);
            let mut header = self.names.clone();
            header.push("y".into());
            w.write_record(&header).map_err(csv_io)?;
            let mut row = Vec::with_capacity(self.names.len() + 1);
            for i in 0..self.a.nrows() {
                row.clear();
                row.extend(self.a.row(i).iter().map(|v| format!("{v}")));
                row.push(format!("{}", self.target[i]));
                w.write_record(&row).map_err(csv_io)?;
            }
            w.flush()
        })
    }
}

/// A csv writer's error as the I/O error beneath it, its kind kept (a closed pipe stays a
/// closed pipe).
fn csv_io(e: csv::Error) -> std::io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(io) => io,
        other => std::io::Error::other(format!("{other:?}")),
    }
}

/// The shape and conditioning of a generated instance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spec {
    /// Rows m (samples; for the quadratic, n = m).
    pub rows: usize,
    /// Feature columns n.
    pub cols: usize,
    /// Classes k (softmax; logistic uses 2).
    pub classes: usize,
    /// The condition number of the Hessian at λ = 0 for least squares and the quadratic, of
    /// the feature covariance for the others (the sample covariance; with fewer rows than
    /// features, for logistic and softmax, the population covariance the rows are drawn
    /// from). ≥ 1.
    pub condition: f64,
    /// The seed.
    pub seed: u64,
}

fn gaussian(r: &mut impl Rng) -> f64 {
    StandardNormal.sample(r)
}

/// An orthonormal basis of a random p-dimensional subspace of ℝʳ (r ≥ p).
fn orthonormal(r: &mut impl Rng, rows: usize, cols: usize) -> Matrix {
    let g = Matrix::from_fn(rows, cols, |_, _| gaussian(r));
    g.qr().q()
}

/// n values log-spaced from 1 down to 1/c.
fn log_spaced(n: usize, c: f64) -> Vec<f64> {
    (0..n)
        .map(|i| {
            if n == 1 {
                1.0
            } else {
                c.powf(-(i as f64) / (n - 1) as f64)
            }
        })
        .collect()
}

/// A = U diag(σ) Vᵀ with singular values log-spaced so that cond(AᵀA) = condition.
fn conditioned(r: &mut impl Rng, m: usize, n: usize, condition: f64) -> Matrix {
    let u = orthonormal(r, m, n);
    let v = orthonormal(r, n, n);
    let sigma = log_spaced(n, condition.sqrt());
    let scale = (m as f64).sqrt();
    let mut us = u;
    for (j, s) in sigma.iter().enumerate() {
        us.column_mut(j).scale_mut(s * scale);
    }
    us * v.transpose()
}

/// Features for logistic and softmax regression: with at least as many rows as features,
/// [`conditioned`] (the sample covariance AᵀA/m has the condition number); with fewer rows
/// (features ≫ samples, where AᵀA is singular) Gaussian rows whose population covariance
/// V diag(σ²) Vᵀ has it: A = Z diag(σ) Vᵀ, Z standard normal. V is a uniformly random
/// rotation up to [`RANDOM_ROTATION_MAX`] features, and above the structured rotation of
/// [`mix_columns`]: O(m·n·b) instead of the n×n QR's n³.
fn features(r: &mut impl Rng, m: usize, n: usize, condition: f64) -> Matrix {
    if m >= n {
        return conditioned(r, m, n, condition);
    }
    let sigma = log_spaced(n, condition.sqrt());
    if n > RANDOM_ROTATION_MAX {
        let mut a = Matrix::from_fn(m, n, |_, j| gaussian(r) * sigma[j]);
        mix_columns(r, &mut a, MIX_BLOCK);
        return a;
    }
    let v = orthonormal(r, n, n);
    let z = Matrix::from_fn(m, n, |_, j| gaussian(r) * sigma[j]);
    z * v.transpose()
}

/// Wide features are rotated by a uniformly random n×n rotation (the Q of a Gaussian matrix)
/// up to this many features; above, by [`mix_columns`]. The QR takes about n³ multiply-adds
/// and 8n² bytes: measured by `gradfit generate logistic --rows 100`, 0.34 s at 1000
/// features, 4.5 s at 2000, and at 20 000 it had not finished in 10 minutes.
const RANDOM_ROTATION_MAX: usize = 2048;

/// The blocks of [`mix_columns`]' rotations: each row of V mixes up to 256² = 65 536 features.
/// At 3000 features with condition 10⁴ (σ² from 1 to 10⁻⁴), the features' population
/// variances came out within a factor 1.48 of each other, against 1.38 for a uniformly
/// random rotation (both in numpy).
const MIX_BLOCK: usize = 256;

/// A ← A·Vᵀ for the rotation V = B₂Π₂B₁Π₁: B₁ and B₂ block-diagonal, each block a uniformly
/// random rotation of `block` consecutive features (the last block the rest), Π₁ and Π₂
/// uniformly random permutations. Every feature of A·Vᵀ mixes up to block² features of A
/// drawn from all over (Π₁ first, so that a block does not mix neighbours alone), so the population variances σ² are spread over the features as a full random
/// rotation spreads them (not left one per feature, where a per-column scaling such as
/// `--standardize` would undo the conditioning), at a cost of about n·block² for the QRs and
/// 4·m·n·block for the products.
fn mix_columns(r: &mut impl Rng, a: &mut Matrix, block: usize) {
    let n = a.ncols();
    let layer = |r: &mut _, a: &mut Matrix| {
        for start in (0..n).step_by(block) {
            let len = block.min(n - start);
            let q = orthonormal(r, len, len);
            let mixed = a.columns(start, len) * q.transpose();
            a.columns_mut(start, len).copy_from(&mixed);
        }
    };
    let mut order: Vec<usize> = (0..n).collect();
    for _ in 0..2 {
        rand::seq::SliceRandom::shuffle(order.as_mut_slice(), r);
        *a = a.select_columns(&order);
        layer(r, a);
    }
}

fn validate(spec: &Spec, model: ModelKind) -> Result<()> {
    if spec.cols == 0 {
        return Err(Error::option("cols", spec.cols, "must be at least 1"));
    }
    let wide_ok = matches!(
        model,
        ModelKind::Quadratic | ModelKind::Logistic | ModelKind::Softmax
    );
    if !wide_ok && spec.rows < spec.cols {
        return Err(Error::option(
            "rows",
            spec.rows,
            &format!("must be at least cols = {} for {model}", spec.cols),
        ));
    }
    if spec.rows == 0 {
        return Err(Error::option("rows", spec.rows, "must be at least 1"));
    }
    if !(spec.condition.is_finite() && (1.0..=1e16).contains(&spec.condition)) {
        return Err(Error::option(
            "condition",
            spec.condition,
            "must be between 1 and 1e16",
        ));
    }
    if model == ModelKind::Quadratic && spec.rows != spec.cols {
        return Err(Error::option(
            "rows",
            spec.rows,
            &format!("a quadratic's A is square: must equal cols = {}", spec.cols),
        ));
    }
    if model == ModelKind::Softmax && spec.classes < 2 {
        return Err(Error::option("classes", spec.classes, "must be at least 2"));
    }
    Ok(())
}

/// Generates an instance of `model`:
///
/// - least squares: A with cond(AᵀA) = condition, b = Ax* + 0.1·noise;
/// - quadratic (n = cols, and rows must equal it): A = S/2 + K with S symmetric positive definite of
///   the given condition and K skew-symmetric, so A is not symmetric but A + Aᵀ = S; b
///   Gaussian;
/// - log-sum-exp: Gaussian rows centred on their mean, so 0 is inside their convex hull and a
///   finite minimizer exists; b Gaussian/2;
/// - logistic: features of unit scale with the given condition (as for least squares, so
///   cond(AᵀA) = condition), w* ~ N(0, 4/n), labels drawn from Bernoulli(σ(Aw*)), so the
///   classes overlap (not separable) and the logits are O(1); with fewer rows than columns
///   the features are Gaussian with that population covariance (see `features`; its
///   eigenvectors are a uniformly random rotation up to 2048 features, above a rotation made
///   of random 256 × 256 blocks and two permutations) and the classes are separable, so only a
///   ridge term λ > 0 gives the problem a minimizer;
/// - softmax: the same with k classes drawn from softmax(AW*).
///
/// ```
/// use gradfit::generate::{generate, Spec};
/// use gradfit::problems::ModelKind;
/// let d = generate(ModelKind::LeastSquares, &Spec { rows: 50, cols: 4, classes: 2, condition: 100.0, seed: 1 })?;
/// let h = d.a.tr_mul(&d.a);
/// let eig = h.symmetric_eigenvalues();
/// assert!((eig.max() / eig.min() - 100.0).abs() < 1e-6);
/// # Ok::<(), gradfit::Error>(())
/// ```
pub fn generate(model: ModelKind, spec: &Spec) -> Result<Dataset> {
    validate(spec, model)?;
    let mut r = rand::rngs::StdRng::seed_from_u64(spec.seed);
    let (m, n) = (spec.rows, spec.cols);
    let names = |n: usize| (1..=n).map(|j| format!("x{j}")).collect::<Vec<_>>();
    let ds = match model {
        ModelKind::LeastSquares => {
            let a = conditioned(&mut r, m, n, spec.condition);
            let x = Vector::from_fn(n, |_, _| gaussian(&mut r));
            let target = &a * x + Vector::from_fn(m, |_, _| 0.1 * gaussian(&mut r));
            Dataset {
                model,
                a,
                target,
                names: names(n),
            }
        }
        ModelKind::Quadratic => {
            let q = orthonormal(&mut r, n, n);
            let lam = log_spaced(n, spec.condition);
            let s = &q * Matrix::from_diagonal(&Vector::from_vec(lam)) * q.transpose();
            let g = Matrix::from_fn(n, n, |_, _| gaussian(&mut r));
            let k = (&g - g.transpose()) * 0.25;
            let a = s * 0.5 + k;
            let target = Vector::from_fn(n, |_, _| gaussian(&mut r));
            Dataset {
                model,
                a,
                target,
                names: (1..=n).map(|j| format!("a{j}")).collect(),
            }
        }
        ModelKind::LogSumExp => {
            let mut a = Matrix::from_fn(m, n, |_, _| gaussian(&mut r));
            for j in 0..n {
                let mean = a.column(j).mean();
                a.column_mut(j).add_scalar_mut(-mean);
            }
            let target = Vector::from_fn(m, |_, _| 0.5 * gaussian(&mut r));
            Dataset {
                model,
                a,
                target,
                names: names(n),
            }
        }
        ModelKind::Logistic => {
            let a = features(&mut r, m, n, spec.condition);
            let w = Vector::from_fn(n, |_, _| 2.0 * gaussian(&mut r) / (n as f64).sqrt());
            let z = &a * w;
            let target = z.map(|zi| if r.random::<f64>() < sigmoid(zi) { 1.0 } else { 0.0 });
            Dataset {
                model,
                a,
                target,
                names: names(n),
            }
        }
        ModelKind::Softmax => {
            let k = spec.classes;
            let a = features(&mut r, m, n, spec.condition);
            let w = Matrix::from_fn(n, k, |_, _| 2.0 * gaussian(&mut r) / (n as f64).sqrt());
            let z = &a * w;
            let mut p = vec![0.0; k];
            let mut row = vec![0.0; k];
            let target = Vector::from_fn(m, |i, _| {
                for (c, v) in row.iter_mut().enumerate() {
                    *v = z[(i, c)];
                }
                softmax_into(&row, &mut p);
                let u: f64 = r.random();
                let mut acc = 0.0;
                let mut class = k - 1;
                for (c, pc) in p.iter().enumerate() {
                    acc += pc;
                    if u < acc {
                        class = c;
                        break;
                    }
                }
                class as f64
            });
            Dataset {
                model,
                a,
                target,
                names: names(n),
            }
        }
    };
    Ok(ds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problems::{Logistic, Objective};

    #[test]
    fn wide_logistic_data_has_fewer_rows_than_features_and_a_solvable_problem() {
        let spec = Spec {
            rows: 30,
            cols: 80,
            classes: 2,
            condition: 100.0,
            seed: 3,
        };
        let d = generate(ModelKind::Logistic, &spec).unwrap();
        assert_eq!(d.a.shape(), (30, 80));
        assert!(d.a.iter().all(|v| v.is_finite()));
        let ones = d.target.iter().filter(|v| **v == 1.0).count();
        assert!(ones > 0 && ones < 30, "{ones} of 30 labels are 1");
        // with λ > 0 the Hessian is positive definite however few the rows
        let p = Logistic::new(d.a, d.target, 1.0, false).unwrap();
        let mut h = Matrix::zeros(80, 80);
        p.hessian_into(&Vector::zeros(80), &mut h).unwrap();
        assert!(h.cholesky().is_some());
        let empty = Spec { rows: 0, ..spec };
        assert!(generate(ModelKind::Logistic, &empty).is_err());
    }

    #[test]
    fn the_block_rotation_is_orthogonal_and_spreads_the_variances_over_the_features() {
        // diag(σ) Vᵀ: its columns' squared norms are the features' population variances
        // Σₖ σₖ² Vⱼₖ², which a full rotation makes about equal and V = I leaves at σⱼ²
        let n = 300;
        let mut r = rand::rngs::StdRng::seed_from_u64(5);
        let mut v = Matrix::identity(n, n);
        mix_columns(&mut r, &mut v, 32);
        let off = (v.tr_mul(&v) - Matrix::identity(n, n)).amax();
        assert!(off < 1e-13, "VᵀV − I: {off:e}");
        let sigma = log_spaced(n, 100.0);
        let mut d = Matrix::from_diagonal(&Vector::from_vec(sigma.clone()));
        let mut r = rand::rngs::StdRng::seed_from_u64(5);
        mix_columns(&mut r, &mut d, 32);
        let var: Vec<f64> = d.column_iter().map(|c| c.norm_squared()).collect();
        let (lo, hi) = var
            .iter()
            .fold((f64::INFINITY, 0.0_f64), |(l, h), v| (l.min(*v), h.max(*v)));
        // the same rotation: diag(σ)·Vᵀ from the same seed
        let dv = Matrix::from_diagonal(&Vector::from_vec(sigma)) * &v;
        assert!((&d - dv).amax() < 1e-13);
        // measured 4.4 (blocks of 32 over 300 features; a uniformly random rotation gives
        // 2.3–2.5, in numpy); one permutation between the layers, not one before each, gave 23
        assert!(hi / lo < 8.0, "variances {lo:e} to {hi:e} (1e-4 to 1 unmixed)");
        let total: f64 = var.iter().sum();
        let expected: f64 = log_spaced(n, 100.0).iter().map(|s| s * s).sum();
        assert!((total - expected).abs() < 1e-12 * expected);
    }

    #[test]
    fn wide_data_past_the_random_rotations_size_are_made_by_the_block_rotation() {
        for model in [ModelKind::Logistic, ModelKind::Softmax] {
            let spec = Spec {
                rows: 6,
                cols: RANDOM_ROTATION_MAX + 100,
                classes: 3,
                condition: 1e4,
                seed: 9,
            };
            let d = generate(model, &spec).unwrap();
            assert_eq!(d.a.shape(), (6, RANDOM_ROTATION_MAX + 100));
            assert!(d.a.iter().all(|v| v.is_finite()));
            // E‖aᵢ‖² = Σσⱼ² (a rotation keeps norms): about 1% sampling error here
            let expected: f64 = log_spaced(spec.cols, 100.0).iter().map(|s| s * s).sum();
            let mean = d.a.row_iter().map(|a| a.norm_squared()).sum::<f64>() / 6.0;
            assert!((mean / expected - 1.0).abs() < 0.1, "{mean} against {expected}");
        }
    }
}
