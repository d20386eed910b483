//! Cost, gradient, fused cost-and-gradient, Hessian and Hessian-vector product per model and
//! size, beside a plain streaming read of the same matrix (the memory floor).
//!
//! `cargo bench --bench derivatives` (full), `cargo bench --bench derivatives -- --quick`
//! (short), or a filter such as `cargo bench --bench derivatives -- logistic`.
//! `python3 benches/crossover.py` turns the results into BENCHMARKS.md. The stream reads here
//! are timed seconds away from the passes they are compared with; `benches/floor.rs` times the
//! two in alternation, for a ratio a noisy machine does not skew.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gradfit::problems::{LeastSquares, LogSumExp, Logistic, Objective, Softmax};
use gradfit::{Matrix, Vector};
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use std::hint::black_box;
use std::time::Duration;

#[path = "common/code.rs"]
mod code;
#[path = "common/stream.rs"]
mod stream_read;
use stream_read::{stream_halves, stream_slice};

fn gaussian(r: &mut impl Rng, m: usize, n: usize, scale: f64) -> Matrix {
    Matrix::from_fn(m, n, |_, _| scale * r.sample::<f64, _>(StandardNormal))
}

/// One pass over all of A with eight accumulators: the floor a fused pass is measured against.
fn stream(a: &Matrix) -> f64 {
    stream_slice(a.as_slice())
}

/// The same read split between two threads, as gradfit's fused passes are on data of 3·2¹⁷
/// entries or more (softmax's from m·((k − 1)·n + 80) ≥ 3·2¹⁷): the floor for those.
fn stream2(a: &Matrix) -> f64 {
    stream_halves(a.as_slice())
}

fn bench_problem<P: Objective>(
    c: &mut Criterion,
    model: &str,
    m: usize,
    n: usize,
    p: &P,
    a: &Matrix,
    hessian: bool,
) {
    let mut group = c.benchmark_group(format!("derivatives_{model}_{m}x{n}"));
    let bytes = (m * n * 8) as u64;
    group.throughput(Throughput::Bytes(bytes));
    let big = m * n >= 1_000_000;
    group.sample_size(if big { 10 } else { 30 });
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(if big { 3 } else { 2 }));
    let mut r = rand::rngs::StdRng::seed_from_u64(7);
    let x = Vector::from_fn(p.dim(), |_, _| 0.1 * r.sample::<f64, _>(StandardNormal));
    let v = Vector::from_fn(p.dim(), |_, _| r.sample::<f64, _>(StandardNormal));
    let mut g = Vector::zeros(p.dim());
    let mut out = Vector::zeros(p.dim());
    group.bench_function("stream", |b| b.iter(|| black_box(stream(black_box(a)))));
    group.bench_function("stream2", |b| b.iter(|| black_box(stream2(black_box(a)))));
    group.bench_function("cost", |b| b.iter(|| black_box(p.value(black_box(&x)))));
    group.bench_function("gradient", |b| b.iter(|| p.gradient_into(black_box(&x), &mut g)));
    group.bench_function("cost_and_gradient", |b| {
        b.iter(|| black_box(p.value_and_gradient_into(black_box(&x), &mut g)))
    });
    group.bench_function("hessian_vec", |b| {
        b.iter(|| p.hessian_vec_into(black_box(&x), &v, &mut out))
    });
    if hessian {
        let mut h = Matrix::zeros(p.dim(), p.dim());
        group.bench_function("hessian", |b| b.iter(|| p.hessian_into(black_box(&x), &mut h)));
    }
    group.finish();
}

fn derivatives(c: &mut Criterion) {
    code::vector_code();
    let mut r = rand::rngs::StdRng::seed_from_u64(1);
    for &(m, n) in &[(1000, 50), (20_000, 200), (100_000, 200)] {
        let a = gaussian(&mut r, m, n, 1.0);
        let b = Vector::from_fn(m, |_, _| r.sample::<f64, _>(StandardNormal));
        let y = b.map(|v| if v > 0.0 { 1.0 } else { 0.0 });
        let hessian = m * n <= 4_000_000;
        let ls = LeastSquares::new(a.clone(), b.clone(), 0.0).unwrap();
        bench_problem(c, "least-squares", m, n, &ls, &a, hessian);
        let lg = Logistic::new(a.clone(), y, 0.1, false).unwrap();
        bench_problem(c, "logistic", m, n, &lg, &a, hessian);
        let lse = LogSumExp::new(a.clone() * (1.0 / (n as f64).sqrt()), b, 0.1).unwrap();
        bench_problem(c, "log-sum-exp", m, n, &lse, &a, hessian);
    }
    for &(m, n) in &[(1000, 20), (20_000, 50), (100_000, 50)] {
        let k = 10;
        let a = gaussian(&mut r, m, n, 1.0);
        let y: Vec<usize> = (0..m).map(|_| r.random_range(0..k)).collect();
        let sm = Softmax::new(a.clone(), y, k, 0.1, false).unwrap();
        bench_problem(c, "softmax10", m, n, &sm, &a, m * n * k <= 1_000_000);
    }
}

criterion_group!(benches, derivatives);
criterion_main!(benches);
