//! Time to the same tolerance for gd, newton, lbfgs and newton-cg over a grid of
//! (rows, features, condition) per model, on data made by the generator with fixed seeds.
//! Least squares runs as `gradfit solve` runs it (`--gram auto`), plus lbfgs on the rows.
//!
//! `cargo bench --bench solvers` (full), `cargo bench --bench solvers -- --quick` (short), or a
//! filter such as `cargo bench --bench solvers -- logistic`. Before timing, each case is solved
//! once and its status and iteration count are appended to
//! target/criterion/gradfit-solvers.jsonl; `python3 benches/crossover.py` joins them with
//! criterion's timings into BENCHMARKS.md and benches/crossover.svg.

use std::io::Write;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use gradfit::generate::{generate, Spec};
use gradfit::problems::{LeastSquares, Logistic, ModelKind, Objective, Softmax};
use gradfit::solve::{
    solve, solve_least_squares_monitored, Control, GramMode, Method, Report, SolveOptions, TraceRow,
};
use gradfit::Vector;

const METHODS: [Method; 4] = [
    Method::GradientDescent,
    Method::Newton,
    Method::Lbfgs,
    Method::NewtonCg,
];
const TOL: f64 = 1e-6;
const MAX_ITERS: u64 = 500;

#[path = "common/code.rs"]
mod code;

fn record(line: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/criterion");
    let _ = std::fs::create_dir_all(&dir);
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("gradfit-solvers.jsonl"))
    {
        let _ = writeln!(f, "{line}");
    }
}

/// One way to solve a case, under the name its column gets.
type Run<'a> = (String, Box<dyn Fn() -> gradfit::Result<Report> + 'a>);

fn options(method: Method) -> SolveOptions {
    SolveOptions {
        tol: TOL,
        max_iters: MAX_ITERS,
        ..SolveOptions::new(method)
    }
}

/// Every method of [`METHODS`] on `p` as it is.
fn plain<'a, P: Objective>(p: &'a P, x0: &'a Vector) -> Vec<Run<'a>> {
    METHODS
        .iter()
        .map(|&m| {
            let opts = options(m);
            (
                m.name().to_string(),
                Box::new(move || solve(p, x0, &opts)) as Box<dyn Fn() -> _>,
            )
        })
        .collect()
}

/// Least squares as the command line solves it (`--gram auto`: gd, lbfgs and newton-cg in the
/// Gram form), plus lbfgs on the rows (`--gram off`) for comparison.
fn least_squares<'a>(p: &'a LeastSquares, x0: &'a Vector) -> Vec<Run<'a>> {
    let quiet = |_: &TraceRow| Control::Continue;
    let mut runs: Vec<Run<'a>> = Vec::new();
    for (name, method, mode) in METHODS
        .iter()
        .map(|&m| (m.name().to_string(), m, GramMode::Auto))
        .chain([("lbfgs-rows".to_string(), Method::Lbfgs, GramMode::Off)])
    {
        let opts = options(method);
        runs.push((
            name,
            Box::new(move || solve_least_squares_monitored(p, x0, &opts, mode, quiet).map(|(r, _)| r)),
        ));
    }
    runs
}

fn bench_case(c: &mut Criterion, model: &str, spec: &Spec, runs: Vec<Run<'_>>) {
    let group_name = format!(
        "solvers_{model}_{}x{}_cond{:e}",
        spec.rows, spec.cols, spec.condition
    );
    let mut group = c.benchmark_group(&group_name);
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(300));
    group.measurement_time(Duration::from_secs(2));
    for (name, run) in runs {
        let Ok(r) = run() else { continue };
        let form = if r.gram_seconds.is_some() { "gram" } else { "rows" };
        record(&format!(
            "{{\"group\":\"{group_name}\",\"model\":\"{model}\",\"rows\":{},\"features\":{},\"condition\":{},\"method\":\"{name}\",\"form\":\"{form}\",\"status\":\"{}\",\"iterations\":{},\"cost\":{:e},\"seconds_once\":{:e}}}",
            spec.rows, spec.cols, spec.condition, r.status, r.iterations, r.cost, r.seconds
        ));
        group.bench_function(name.as_str(), |b| b.iter(&run));
    }
    group.finish();
}

fn solvers(c: &mut Criterion) {
    code::vector_code();
    let rows = 4000;
    for &condition in &[1e2, 1e6] {
        for &cols in &[10, 100, 400] {
            let spec = Spec {
                rows,
                cols,
                classes: 2,
                condition,
                seed: 11,
            };
            let Ok(d) = generate(ModelKind::LeastSquares, &spec) else {
                continue;
            };
            let Ok(p) = LeastSquares::new(d.a, d.target, 0.0) else {
                continue;
            };
            let x0 = Vector::zeros(p.dim());
            bench_case(c, "least-squares", &spec, least_squares(&p, &x0));
        }
    }
    for &condition in &[10.0, 1e4] {
        for &cols in &[10, 100, 400] {
            let spec = Spec {
                rows,
                cols,
                classes: 2,
                condition,
                seed: 12,
            };
            let Ok(d) = generate(ModelKind::Logistic, &spec) else {
                continue;
            };
            let Ok(p) = Logistic::new(d.a, d.target, 1e-3, false) else {
                continue;
            };
            let x0 = Vector::zeros(p.dim());
            bench_case(c, "logistic", &spec, plain(&p, &x0));
        }
    }
    for &cols in &[10, 40, 100] {
        let spec = Spec {
            rows,
            cols,
            classes: 5,
            condition: 10.0,
            seed: 13,
        };
        let Ok(d) = generate(ModelKind::Softmax, &spec) else {
            continue;
        };
        let y = d.target.iter().map(|v| *v as usize).collect();
        let Ok(p) = Softmax::new(d.a, y, 5, 1e-3, false) else {
            continue;
        };
        let x0 = Vector::zeros(p.dim());
        bench_case(c, "softmax5", &spec, plain(&p, &x0));
    }
    // features ≫ samples: 200 rows, up to 1600 features, where Newton takes its direction from
    // the m×m Woodbury system (at 800 and 1600; at 200, m = n, it forms the n×n Hessian); λ = 1 (sklearn's default C = 1 in these units), since with
    // fewer rows than features the data are separable and λ alone bounds the solution
    for &cols in &[200, 800, 1600] {
        let spec = Spec {
            rows: 200,
            cols,
            classes: 2,
            condition: 10.0,
            seed: 14,
        };
        let Ok(d) = generate(ModelKind::Logistic, &spec) else {
            continue;
        };
        let Ok(p) = Logistic::new(d.a, d.target, 1.0, false) else {
            continue;
        };
        let x0 = Vector::zeros(p.dim());
        bench_case(c, "logistic-wide", &spec, plain(&p, &x0));
    }
    // the same for softmax with 5 classes: at 800 and 1600 features Newton's direction comes
    // from the mk×mk system (1000 × 1000) instead of the nk×nk Hessian (4000 or 8000 square);
    // at 200 it forms the 1000 × 1000 Hessian
    for &cols in &[200, 800, 1600] {
        let spec = Spec {
            rows: 200,
            cols,
            classes: 5,
            condition: 10.0,
            seed: 15,
        };
        let Ok(d) = generate(ModelKind::Softmax, &spec) else {
            continue;
        };
        let y = d.target.iter().map(|v| *v as usize).collect();
        let Ok(p) = Softmax::new(d.a, y, 5, 1.0, false) else {
            continue;
        };
        let x0 = Vector::zeros(p.dim());
        bench_case(c, "softmax5-wide", &spec, plain(&p, &x0));
    }
}

criterion_group!(benches, solvers);
criterion_main!(benches);
