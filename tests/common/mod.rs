//! Seeded fixtures shared by the integration tests.
#![allow(dead_code)]

use gradfit::{Matrix, Vector};
use proptest::test_runner::{Config, RngSeed};
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

pub fn rng(seed: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed)
}

pub fn gaussian_matrix(r: &mut impl Rng, m: usize, n: usize) -> Matrix {
    Matrix::from_fn(m, n, |_, _| r.sample(StandardNormal))
}

pub fn gaussian_vector(r: &mut impl Rng, n: usize) -> Vector {
    Vector::from_fn(n, |_, _| r.sample(StandardNormal))
}

/// A with a column of ones appended (the intercept).
pub fn with_intercept(a: &Matrix) -> Matrix {
    let (m, n) = a.shape();
    let mut out = Matrix::from_element(m, n + 1, 1.0);
    out.view_mut((0, 0), (m, n)).copy_from(a);
    out
}

/// Labels in 0..k drawn from a noisy linear model so that classes overlap.
pub fn labels(r: &mut impl Rng, a: &Matrix, k: usize) -> Vec<usize> {
    let w = gaussian_matrix(r, a.ncols(), k);
    let scores = a * w;
    (0..a.nrows())
        .map(|i| {
            let mut best = 0;
            let mut best_s = f64::NEG_INFINITY;
            for c in 0..k {
                let s = scores[(i, c)] + 2.0 * r.sample::<f64, _>(StandardNormal);
                if s > best_s {
                    best_s = s;
                    best = c;
                }
            }
            best
        })
        .collect()
}

/// proptest with a fixed seed, so CI sees the same cases every run.
pub fn fixed(cases: u32) -> Config {
    Config {
        cases,
        rng_seed: RngSeed::Fixed(0x0067_7261_6466_6974),
        failure_persistence: None,
        ..Config::default()
    }
}

/// Runs every other test of this test binary again in a child process under each
/// `GRADFIT_CPU` cap narrower than the code in use (AVX2 and portable Rust on an AVX-512
/// machine; under a cap of avx2, portable alone), so that the narrower kernels are tested
/// through whole passes and solves, not only where the CPU lacks the wider ones. `this_test`
/// is the calling test's name, skipped in the children (`None` for a binary whose one test
/// calls this at its end); in a child (marked by `GRADFIT_CPU_RERUN`) it does nothing.
pub fn rerun_under_narrower_caps(this_test: Option<&str>) {
    use gradfit::cpu::{self, VectorCode};
    if std::env::var_os(cpu::RERUN).is_some() {
        return;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    for cap in [VectorCode::Portable, VectorCode::Avx2] {
        if cap >= cpu::in_use() {
            continue;
        }
        let out = std::process::Command::new(&exe)
            .args(this_test.map(|t| ["--skip", t]).into_iter().flatten())
            .env(cpu::ENV, cap.name())
            .env(cpu::RERUN, "1")
            .output()
            .expect("the test binary runs again");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "under {}={cap}:\n{stdout}\n{}",
            cpu::ENV,
            String::from_utf8_lossy(&out.stderr)
        );
        // the children ran tests, not none (a filter gone wrong would pass with 0)
        assert!(
            stdout.contains("test result: ok.") && !stdout.contains("ok. 0 passed"),
            "under {}={cap}:\n{stdout}",
            cpu::ENV
        );
    }
}
