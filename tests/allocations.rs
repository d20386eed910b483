//! A solver iteration allocates nothing: counted by a global allocator.
//!
//! One test in its own binary, so no other test's allocations are counted.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use gradfit::generate::{generate, Spec};
use gradfit::problems::{GramLeastSquares, LeastSquares, Logistic, ModelKind, Objective, Softmax};
use gradfit::solve::{solve, Method, SolveOptions, Status};
use gradfit::Vector;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts the calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations of a whole solve (set-up, iterations, report) limited to `iters` iterations,
/// with the solve's cost-evaluation and Hessian counts.
fn allocations<P: Objective>(p: &P, method: Method, iters: u64) -> [u64; 3] {
    let opts = SolveOptions {
        tol: 1e-300,
        max_iters: iters,
        ..SolveOptions::new(method)
    };
    let x0 = Vector::zeros(p.dim());
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let r = solve(p, &x0, &opts).unwrap();
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    assert_eq!(
        (r.status, r.iterations),
        (Status::MaxIterations, iters),
        "{method}: {r}"
    );
    [after - before, r.cost_evals, r.hessian_evals]
}

/// (allocations, cost evaluations, Hessians) of iterations 3 and 4: a run of 4 iterations minus
/// a run of 2, after a first run that sizes the problem's lazily allocated buffers.
fn two_iterations<P: Objective>(p: &P, method: Method) -> [u64; 3] {
    allocations(p, method, 1);
    let short = allocations(p, method, 2);
    let long = allocations(p, method, 4);
    [long[0] - short[0], long[1] - short[1], long[2] - short[2]]
}

/// Whether the problem gives Newton's direction itself at x = 0 (so the allocation count below
/// is that route's, not the n×n Hessian's).
fn takes_the_m_by_m_route<P: Objective>(p: &P) -> bool {
    let x = Vector::zeros(p.dim());
    let (_, g) = p.cost_and_gradient(&x).unwrap();
    let mut d = Vector::zeros(p.dim());
    p.newton_direction_into(&x, &g, &mut d).unwrap()
}

#[test]
fn solver_iterations_do_not_allocate() {
    // On one thread (a one-thread rayon pool: nothing is split), so that rayon's own queue
    // allocations, bounded separately below, cannot land in a counted window.
    let one = match rayon::ThreadPoolBuilder::new().num_threads(1).build() {
        Ok(pool) => pool,
        Err(e) => panic!("a one-thread pool: {e}"),
    };
    one.install(|| {
        let spec = |rows, cols, condition| Spec {
            rows,
            cols,
            classes: 4,
            condition,
            seed: 1,
        };
        let d = generate(ModelKind::LeastSquares, &spec(500, 30, 1e8)).unwrap();
        let ls = LeastSquares::new(d.a, d.target, 0.0).unwrap();
        let d = generate(ModelKind::Logistic, &spec(2000, 30, 1e3)).unwrap();
        let logistic = Logistic::new(d.a, d.target, 0.0, false).unwrap();
        // k = 6 classes and n = 10 features: matrix-sized products (above nalgebra's
        // small-matrix threshold of 5), done by gradfit's own tiles, not matrixmultiply (which
        // allocates its packing buffers on every call)
        let d = generate(
            ModelKind::Softmax,
            &Spec {
                classes: 6,
                ..spec(2000, 10, 10.0)
            },
        )
        .unwrap();
        let y = d.target.iter().map(|v| *v as usize).collect();
        let softmax = Softmax::new(d.a, y, 6, 0.0, false).unwrap();
        let d = generate(ModelKind::Softmax, &spec(1000, 10, 10.0)).unwrap();
        let y = d.target.iter().map(|v| *v as usize).collect();
        let softmax4 = Softmax::new(d.a, y, 4, 0.0, false).unwrap();
        // gd, L-BFGS and Newton (its Hessian by gradfit's own packed kernel, Cholesky in place) on
        // least squares, logistic regression and softmax with 4 classes: nothing at all
        assert_eq!(two_iterations(&ls, Method::GradientDescent)[0], 0, "gd");
        assert_eq!(two_iterations(&ls, Method::Lbfgs)[0], 0, "lbfgs on least squares");
        // ... and in its Gram form (AᵀA factored once, before the counted iterations)
        let gram = GramLeastSquares::new(&ls).unwrap();
        assert_eq!(
            two_iterations(&gram, Method::GradientDescent)[0],
            0,
            "gd, Gram form"
        );
        assert_eq!(two_iterations(&gram, Method::Lbfgs)[0], 0, "lbfgs, Gram form");
        // (Newton solves least squares in one step, so it has no iterations 3 and 4 to count)
        for method in [Method::Lbfgs, Method::Newton] {
            let [allocs, _, hessians] = two_iterations(&logistic, method);
            assert_eq!(allocs, 0, "{method} on logistic");
            assert_eq!(hessians > 0, method == Method::Newton);
            assert_eq!(
                two_iterations(&softmax4, method)[0],
                0,
                "{method} on softmax, 4 classes"
            );
        }
        for method in [Method::Lbfgs, Method::Newton, Method::NewtonCg] {
            let [allocs, evals, _] = two_iterations(&softmax, method);
            assert!(evals > 0);
            assert_eq!(allocs, 0, "{method} on softmax, 6 classes");
        }
        // Newton with more features than rows: its direction from the m×m Woodbury system (AAᵀ
        // formed and the buffers sized in the first iteration)
        let d = generate(ModelKind::Logistic, &spec(40, 120, 10.0)).unwrap();
        let mut ones = d.a.clone();
        ones.column_mut(119).fill(1.0);
        let wide = Logistic::new(d.a, d.target.clone(), 0.5, false).unwrap();
        assert!(takes_the_m_by_m_route(&wide), "40 × 120");
        let [allocs, _, directions] = two_iterations(&wide, Method::Newton);
        assert_eq!(
            (allocs, directions),
            (0, 2),
            "newton on logistic, 40 rows × 120 features"
        );
        // ... and with an intercept (the last column made the ones)
        let wide = Logistic::new(ones, d.target, 0.5, true).unwrap();
        assert!(takes_the_m_by_m_route(&wide), "40 × 120 with intercept");
        let [allocs, _, directions] = two_iterations(&wide, Method::Newton);
        assert_eq!((allocs, directions), (0, 2), "newton on logistic with intercept");
        // softmax with more features than rows: the mk×mk system
        let d = generate(ModelKind::Softmax, &spec(30, 90, 10.0)).unwrap();
        let y = d.target.iter().map(|v| *v as usize).collect();
        let wide = Softmax::new(d.a, y, 4, 0.5, false).unwrap();
        assert!(takes_the_m_by_m_route(&wide), "softmax 30 × 90");
        let [allocs, _, directions] = two_iterations(&wide, Method::Newton);
        assert_eq!(
            (allocs, directions),
            (0, 2),
            "newton on softmax, 30 rows × 90 features, 4 classes"
        );
        // ... and with an intercept (the k×k Schur complement)
        let d = generate(ModelKind::Softmax, &spec(30, 90, 10.0)).unwrap();
        let y = d.target.iter().map(|v| *v as usize).collect();
        let mut ones = d.a;
        ones.column_mut(89).fill(1.0);
        let wide = Softmax::new(ones, y, 4, 0.5, true).unwrap();
        assert!(takes_the_m_by_m_route(&wide), "softmax 30 × 90 with intercept");
        let [allocs, _, directions] = two_iterations(&wide, Method::Newton);
        assert_eq!((allocs, directions), (0, 2), "newton on softmax with intercept");
    });
    split_passes_allocate_only_rayon_queue_blocks();
    // last, when nothing more is counted here: the same under each narrower vector code
    common::rerun_under_narrower_caps(None);
}

/// On data large enough that each pass is split over two threads, the only allocations are
/// rayon's: its global job queue allocates a block once every 63 jobs pushed from outside the
/// pool. So 40 more iterations (each at least one split pass) may allocate a few times, not once
/// per iteration.
/// (Called from the test above: one test per binary, so no other test's allocations count.)
fn split_passes_allocate_only_rayon_queue_blocks() {
    if rayon::current_num_threads() < 2 {
        return; // one thread: nothing is split (covered by the test above)
    }
    let spec = Spec {
        rows: 40_000,
        cols: 20,
        classes: 2,
        condition: 1e3,
        seed: 2,
    };
    let d = generate(ModelKind::Logistic, &spec).unwrap();
    let p = Logistic::new(d.a, d.target, 0.0, false).unwrap();
    allocations(&p, Method::Lbfgs, 1);
    let short = allocations(&p, Method::Lbfgs, 10);
    let long = allocations(&p, Method::Lbfgs, 50);
    let evals = long[1] - short[1];
    let allocs = long[0].saturating_sub(short[0]);
    assert!(evals >= 40, "{evals} evaluations");
    assert!(
        allocs <= evals / 63 + 2,
        "{allocs} allocations in {evals} evaluations"
    );
}
