//! A solver iteration allocates nothing: counted by a global allocator.
//!
//! One test in its own binary, so no other test's allocations are counted.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use gradfit::generate::{generate, Spec};
use gradfit::problems::{LeastSquares, Logistic, ModelKind, Objective, Softmax};
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

/// Allocations of a whole solve (set-up, iterations, report) limited to `iters` iterations.
fn allocations<P: Objective>(p: &P, method: Method, iters: u64) -> u64 {
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
    after - before
}

#[test]
fn solver_iterations_do_not_allocate() {
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
    let d = generate(ModelKind::Softmax, &spec(2000, 10, 10.0)).unwrap();
    let y = d.target.iter().map(|v| *v as usize).collect();
    let softmax = Softmax::new(d.a, y, 4, 0.0, false).unwrap();
    // a first run sizes the problem's lazily allocated buffers (Hessian scratch); after it,
    // compare a run of 2 iterations with a run of 4
    let per_two = |run: &dyn Fn(u64) -> u64| {
        run(1);
        let short = run(2);
        run(4) - short
    };
    // gradient descent and L-BFGS: nothing at all
    assert_eq!(
        per_two(&|k| allocations(&ls, Method::GradientDescent, k)),
        0,
        "gd"
    );
    assert_eq!(
        per_two(&|k| allocations(&ls, Method::Lbfgs, k)),
        0,
        "lbfgs on least squares"
    );
    assert_eq!(
        per_two(&|k| allocations(&logistic, Method::Lbfgs, k)),
        0,
        "lbfgs on logistic"
    );
    // Newton: nothing of its own; the Hessian's matrix-matrix products go through
    // matrixmultiply, whose dgemm allocates its packing buffer on every call (one product
    // for logistic regression, k(k+1)/2 = 10 for softmax with k = 4)
    let newton_logistic = per_two(&|k| allocations(&logistic, Method::Newton, k));
    let newton_softmax = per_two(&|k| allocations(&softmax, Method::Newton, k));
    assert!(
        newton_logistic <= 2,
        "newton on logistic: {newton_logistic} allocations in 2 iterations"
    );
    assert!(
        newton_softmax <= 2 * 10,
        "newton on softmax: {newton_softmax} allocations in 2 iterations"
    );
}
