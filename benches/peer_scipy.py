"""Peer comparison: gradfit against scipy.optimize on identical problems.

Not run by CI; anyone can rerun it:

    cargo build --release && python3 benches/peer_scipy.py [--quick] [--tol 1e-6]

Needs Python 3 with numpy and scipy >= 1.11 (``pip install numpy scipy``). The binary is
taken from the environment variable GRADFIT (default: target/release/gradfit next to this
script's crate).

Every instance is written by ``gradfit generate`` into a temporary directory and read by both
sides from the same CSV file. Both sides start at x0 = 0 and stop by the same rule, gradfit's:
converged when ||grad f(x)||_2 <= tol * max(1, ||grad f(x0)||_2). scipy's own stopping tests are
switched off (gtol = ftol = 0, xtol and gtol tiny) and the rule is enforced by a callback that
raises StopIteration; afterwards the rule is checked again at the returned x, and a run that
does not satisfy it is reported as not converged. Objectives use gradfit's conventions (sums,
no 1/2 factors, ridge lam*||x||^2, softmax parameters W flattened column-major).

Timing: scipy is timed around the ``minimize`` call only (time.perf_counter), gradfit by the
``seconds`` field of its JSON report (the solve alone, CSV loading excluded). Each side runs
7 times in a row inside one process (gradfit's ``--repeat 7``), and the two sides take turns
for 3 rounds (scipy, gradfit on one thread, gradfit on two; again; again); each side's time
is its best of all 21. Another tenant shares this 2-core machine: 7 rather than 3 because a
two-thread run is often preempted, and rounds because its load moves within seconds (scipy's
best of 7 in one go moved by a quarter between two runs of this script), so that a burst
that slows one side's seven does not decide the ratio. BLAS is pinned to one thread (the variables below are set before numpy is
imported) and gradfit to one (RAYON_NUM_THREADS=1), so both sides use one core. Then both
sides are timed again with two threads: gradfit with RAYON_NUM_THREADS=2 (its default on a
2-core machine: large passes split), scipy in a worker process of this script with two BLAS
threads (the thread count is fixed when numpy is imported), in the same rounds; the last
speedup is scipy's faster configuration against gradfit on two threads.

Pairs: scipy L-BFGS-B vs gradfit lbfgs, scipy Newton-CG (dense Hessian) vs gradfit newton-cg,
scipy trust-exact vs gradfit newton.

Least squares: gradfit's lbfgs and newton-cg default to the Gram form (``--gram auto``: AᵀA
formed and factored once, inside the timed solve; the answer checked on the rows), so for those
rows the table also shows gradfit with ``--gram off``, streaming A in every evaluation as the
scipy objective does.
"""

import os

# One BLAS thread on the scipy side (two in the worker processes that time scipy with both
# cores, started with GRADFIT_PEER_BLAS_THREADS=2); must happen before numpy is imported.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = os.environ.get("GRADFIT_PEER_BLAS_THREADS", "1")

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

try:
    import numpy as np  # noqa: E402
    import scipy  # noqa: E402
    from scipy.optimize import minimize  # noqa: E402
    from scipy.special import expit, logsumexp  # noqa: E402
except ImportError as exc:  # pragma: no cover - environment problem
    sys.exit(f"peer_scipy.py: {exc}; install them with `pip install numpy scipy`")

REPEATS = 7
ROUNDS = 3
MAX_ITERS = 10000

# scipy method -> gradfit solver
PAIRS = (("L-BFGS-B", "lbfgs"), ("Newton-CG", "newton-cg"), ("trust-exact", "newton"))


@dataclass
class Case:
    """One generated instance."""

    model: str  # least-squares, logistic or softmax
    rows: int
    cols: int
    condition: float
    l2: float = 0.0
    classes: int = 0  # softmax only
    seed: int = 1

    def label(self):
        extra = f" K={self.classes}" if self.model == "softmax" else ""
        lam = f" l2={self.l2:g}" if self.l2 else ""
        return f"{self.model}{extra} cond={_short(self.condition)}{lam}"

    def size(self):
        return f"{self.rows}x{self.cols}"


def _short(v):
    """1e2 rather than 1e+02; 10 stays 10."""
    if v >= 1000 and float(f"{v:.0e}") == v:
        mant, exp = f"{v:.0e}".split("e")
        return f"{mant}e{int(exp)}"
    return f"{v:g}"


def default_grid():
    """The default problem grid; the first case of each model is the --quick grid."""
    return [
        Case("least-squares", 2000, 50, 1e2),
        Case("least-squares", 2000, 50, 1e4),
        Case("least-squares", 20000, 200, 1e2),
        Case("logistic", 2000, 20, 10, l2=1.0),
        Case("logistic", 20000, 50, 10, l2=1.0),
        Case("softmax", 2000, 20, 10, l2=1.0, classes=5),
        Case("softmax", 10000, 50, 10, l2=1.0, classes=5),
    ]


def quick_grid(grid):
    seen, out = set(), []
    for case in grid:
        if case.model not in seen:
            seen.add(case.model)
            out.append(case)
    return out


# --------------------------------------------------------------------------------------------
# Objectives, in gradfit's conventions
# --------------------------------------------------------------------------------------------


class Objective:
    """f, grad and Hessian of one model, plus a small cache of recent gradients.

    The cache lets the stopping callback reuse the gradient the solver has just computed at
    the accepted point instead of paying for another evaluation inside the timed region.
    """

    def __init__(self, model, a, y, lam):
        self.model = model
        self.a = np.ascontiguousarray(a, dtype=np.float64)
        self.lam = float(lam)
        m, n = self.a.shape
        if model == "softmax":
            labels, idx = np.unique(y, return_inverse=True)
            self.k = len(labels)
            self.y = idx
            self.onehot = np.zeros((m, self.k))
            self.onehot[np.arange(m), idx] = 1.0
            self.dim = n * self.k
        else:
            self.y = np.asarray(y, dtype=np.float64)
            if model == "logistic":
                labels, idx = np.unique(self.y, return_inverse=True)
                if len(labels) != 2:
                    raise ValueError(f"logistic needs 2 classes, found {len(labels)}")
                self.y = idx.astype(np.float64)  # smaller label -> 0, as gradfit does
            self.dim = n
        self._cache = []  # list of (x bytes, grad), most recent last
        self.cache_misses = 0

    # ---- value and gradient ------------------------------------------------------------------
    def fg(self, x):
        a, lam = self.a, self.lam
        if self.model == "least-squares":
            r = a @ x - self.y
            f = r @ r + lam * (x @ x)
            g = 2.0 * (a.T @ r) + 2.0 * lam * x
        elif self.model == "logistic":
            z = a @ x
            f = np.sum(np.logaddexp(0.0, z) - self.y * z) + lam * (x @ x)
            g = a.T @ (expit(z) - self.y) + 2.0 * lam * x
        else:
            n = a.shape[1]
            w = x.reshape((n, self.k), order="F")
            z = a @ w
            lse = logsumexp(z, axis=1)
            f = np.sum(lse - z[np.arange(z.shape[0]), self.y]) + lam * (x @ x)
            p = np.exp(z - lse[:, None])
            gw = a.T @ (p - self.onehot) + 2.0 * lam * w
            g = gw.flatten(order="F")
        self._remember(x, g)
        return float(f), g

    def grad(self, x):
        return self.fg(x)[1]

    def _remember(self, x, g):
        self._cache.append((x.tobytes(), g.copy()))
        if len(self._cache) > 4:
            self._cache.pop(0)

    def cached_grad(self, x):
        key = x.tobytes()
        for k, g in reversed(self._cache):
            if k == key:
                return g
        self.cache_misses += 1
        return self.grad(x)

    def reset_cache(self):
        self._cache = []
        self.cache_misses = 0

    # ---- Hessian ----------------------------------------------------------------------------
    def hess(self, x):
        a, lam = self.a, self.lam
        if self.model == "least-squares":
            h = 2.0 * (a.T @ a)
        elif self.model == "logistic":
            s = expit(a @ x)
            h = a.T @ (a * (s * (1.0 - s))[:, None])
        else:
            n, k = a.shape[1], self.k
            w = x.reshape((n, k), order="F")
            z = a @ w
            p = np.exp(z - logsumexp(z, axis=1)[:, None])
            h = np.empty((n * k, n * k))
            for c in range(k):
                for d in range(c, k):
                    wt = p[:, c] * ((1.0 if c == d else 0.0) - p[:, d])
                    block = a.T @ (a * wt[:, None])
                    h[c * n:(c + 1) * n, d * n:(d + 1) * n] = block
                    if d != c:
                        h[d * n:(d + 1) * n, c * n:(c + 1) * n] = block.T
        h[np.diag_indices_from(h)] += 2.0 * lam
        return h

    def hessp(self, x, v):
        """Hessian-vector product (for the optional --ncg-hessp variant)."""
        a, lam = self.a, self.lam
        if self.model == "least-squares":
            return 2.0 * (a.T @ (a @ v)) + 2.0 * lam * v
        if self.model == "logistic":
            s = expit(a @ x)
            return a.T @ ((s * (1.0 - s)) * (a @ v)) + 2.0 * lam * v
        n, k = a.shape[1], self.k
        w = x.reshape((n, k), order="F")
        z = a @ w
        p = np.exp(z - logsumexp(z, axis=1)[:, None])
        u = a @ v.reshape((n, k), order="F")
        t = p * (u - np.sum(p * u, axis=1, keepdims=True))
        return (a.T @ t).flatten(order="F") + 2.0 * lam * v


# --------------------------------------------------------------------------------------------
# The two sides
# --------------------------------------------------------------------------------------------


@dataclass
class Run:
    method: str
    seconds: float = float("nan")
    iterations: int = 0
    cost_evals: int = 0
    cost: float = float("nan")
    converged: bool = False
    status: str = ""
    x: np.ndarray = field(default=None, repr=False)


class _Stop:
    """scipy callback enforcing gradfit's rule ||g|| <= threshold at the accepted point."""

    def __init__(self, obj, threshold):
        self.obj, self.threshold = obj, threshold

    def __call__(self, intermediate_result):
        g = self.obj.cached_grad(intermediate_result.x)
        if np.linalg.norm(g) <= self.threshold:
            raise StopIteration


def run_scipy(obj, method, tol, ncg_hessp=False):
    x0 = np.zeros(obj.dim)
    g0 = obj.grad(x0)
    threshold = tol * max(1.0, float(np.linalg.norm(g0)))
    kwargs = {}
    if method == "L-BFGS-B":
        options = {"maxcor": 10, "gtol": 0.0, "ftol": 0.0, "maxiter": MAX_ITERS,
                   "maxfun": 100 * MAX_ITERS}
    elif method == "Newton-CG":
        options = {"xtol": 1e-300, "maxiter": MAX_ITERS}
        if ncg_hessp:
            kwargs["hessp"] = obj.hessp
        else:
            kwargs["hess"] = obj.hess
    elif method == "trust-exact":
        options = {"gtol": 1e-300, "maxiter": MAX_ITERS}
        kwargs["hess"] = obj.hess
    else:
        raise ValueError(method)
    best, res = float("inf"), None
    for _ in range(REPEATS):
        obj.reset_cache()
        stop = _Stop(obj, threshold)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # we judge convergence ourselves, below
            t0 = time.perf_counter()
            res = minimize(obj.fg, np.zeros(obj.dim), jac=True, method=method,
                           callback=stop, options=options, **kwargs)
            elapsed = time.perf_counter() - t0
        best = min(best, elapsed)
    f_end, g_end = obj.fg(res.x)
    gnorm = float(np.linalg.norm(g_end))
    converged = gnorm <= threshold
    status = "converged" if converged else f"not converged (|g| {gnorm:.2e} > {threshold:.2e}; {res.message})"
    name = method + (" (hessp)" if method == "Newton-CG" and ncg_hessp else "")
    return Run(name, best, int(res.nit), int(res.nfev), f_end, converged, status, res.x)


def run_scipy_threads(csv, case, method, tol, ncg_hessp, threads):
    """run_scipy in a worker process of this script with `threads` BLAS threads."""
    spec = {"csv": str(csv), "model": case.model, "l2": case.l2, "method": method, "tol": tol,
            "ncg_hessp": ncg_hessp}
    env = dict(os.environ, GRADFIT_PEER_BLAS_THREADS=str(threads))
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"scipy worker ({threads} BLAS threads) failed ({proc.returncode}): "
                           f"{proc.stderr.strip()}")
    return Run(**json.loads(proc.stdout))


def worker(spec_json):
    """The worker side of run_scipy_threads: one run_scipy, printed as JSON."""
    spec = json.loads(spec_json)
    a, y = load(Path(spec["csv"]))
    obj = Objective(spec["model"], a, y, spec["l2"])
    run = run_scipy(obj, spec["method"], spec["tol"], spec["ncg_hessp"])
    print(json.dumps({"method": run.method, "seconds": run.seconds, "iterations": run.iterations,
                      "cost_evals": run.cost_evals, "cost": run.cost,
                      "converged": run.converged, "status": run.status}))
    return 0


def run_gradfit(binary, csv, case, solver, tol, threads=1, extra=()):
    """gradfit's best of REPEATS runs, with RAYON_NUM_THREADS=threads (1: one core, like
    scipy with one BLAS thread; gradfit splits large passes over two threads by default) and
    `extra` command-line options."""
    cmd = [binary, "solve", str(csv), "--model", case.model, "--solver", solver,
           "--tol", repr(tol), "--max-iters", str(MAX_ITERS), "--format", "json", *extra]
    if case.l2:
        cmd += ["--l2", repr(case.l2)]
    # best of REPEATS inside one process (--repeat), like scipy's best of REPEATS inside this
    # one: a fresh process's first solve also pays for waking the second core
    cmd += ["--repeat", str(REPEATS)]
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    # exit 0: converged, 2: stopped without converging (report still printed), 1: error
    if proc.returncode not in (0, 2):
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    report = json.loads(proc.stdout)
    best = float(report["seconds"])
    status = report["status"]
    name = solver + (" (Gram)" if report.get("least_squares_form") == "gram" else "")
    name += "".join(f" {e}" for e in extra)
    return Run(name, best, int(report["iterations"]), int(report["cost_evals"]),
               float(report["cost"]), status == "converged", status,
               np.asarray(report["parameters"], dtype=np.float64)), report


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------


def generate(binary, case, path):
    cmd = [binary, "generate", case.model, "--rows", str(case.rows), "--cols", str(case.cols),
           "--condition", repr(case.condition), "--seed", str(case.seed), "-o", str(path)]
    if case.model == "softmax":
        cmd += ["--classes", str(case.classes)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")


def load(path):
    with open(path) as fh:
        header = fh.readline().strip().split(",")
    data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    yi = header.index("y")
    a = np.delete(data, yi, axis=1)
    return a, data[:, yi]


def rel_diff(a, b):
    return abs(a - b) / max(abs(a), abs(b), 1e-300)


def check_conventions(obj, report, tol):
    """Our objective at gradfit's optimum must reproduce gradfit's cost and threshold."""
    problems = []
    x = np.asarray(report["parameters"], dtype=np.float64)
    if x.shape != (obj.dim,):
        return [f"gradfit returned {x.size} parameters, expected {obj.dim}"]
    f, _ = obj.fg(x)
    if rel_diff(f, float(report["cost"])) > 1e-9:
        problems.append(f"cost at gradfit's x: ours {f:.12e}, gradfit {report['cost']:.12e}")
    if "gradient_threshold" in report:
        ours = tol * max(1.0, float(np.linalg.norm(obj.grad(np.zeros(obj.dim)))))
        if rel_diff(ours, float(report["gradient_threshold"])) > 1e-9:
            problems.append(f"threshold: ours {ours:.6e}, gradfit {report['gradient_threshold']:.6e}")
    return problems


def fmt_s(s):
    return f"{s:.4f}" if s >= 1e-3 else f"{s:.2e}"


def fmt_run(run):
    return fmt_s(run.seconds) if run.converged else f"{fmt_s(run.seconds)} (not conv.)"


def binary_version(binary):
    proc = subprocess.run([binary, "--version"], capture_output=True, text=True)
    return proc.stdout.strip() or "unknown"


def nproc():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count()


def parse_args(argv=None):
    default_bin = os.environ.get(
        "GRADFIT", str(Path(__file__).resolve().parent.parent / "target" / "release" / "gradfit"))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="only the first case of each model")
    p.add_argument("--tol", type=float, default=1e-6,
                   help="relative gradient tolerance of the shared stopping rule (default 1e-6)")
    p.add_argument("--binary", default=default_bin,
                   help="the gradfit binary (default: $GRADFIT or target/release/gradfit)")
    p.add_argument("--ncg-hessp", action="store_true",
                   help="give scipy Newton-CG Hessian-vector products instead of the dense Hessian")
    p.add_argument("--worker", metavar="SPEC", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return worker(args.worker)
    binary = shutil.which(args.binary) or args.binary
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        sys.exit(f"peer_scipy.py: gradfit binary not found at {binary!r}; build it with "
                 "`cargo build --release` or point GRADFIT at it")
    sv = tuple(int(p) for p in scipy.__version__.split(".")[:2])
    if sv < (1, 11):
        sys.exit(f"peer_scipy.py: scipy {scipy.__version__} is too old; need >= 1.11 "
                 "(callbacks that raise StopIteration)")

    grid = default_grid()
    if args.quick:
        grid = quick_grid(grid)

    started = time.perf_counter()
    print(f"# gradfit vs scipy.optimize, {datetime.datetime.now().isoformat(timespec='seconds')}")
    print()
    print(f"{binary_version(binary)}; Python {platform.python_version()}, numpy {np.__version__}, "
          f"scipy {scipy.__version__}; nproc {nproc()}; {platform.machine()}")
    print(f"OPENBLAS_NUM_THREADS=OMP_NUM_THREADS=MKL_NUM_THREADS=1 and RAYON_NUM_THREADS=1 "
          f"(one thread on both sides; the last three columns: both sides with two threads); "
          f"x0 = 0; stop when ||g|| <= {args.tol:g}*max(1, ||g(x0)||); "
          f"best of {REPEATS} x {ROUNDS} rounds, the sides taking turns; "
          f"max {MAX_ITERS} iterations")
    print()
    header = ["problem", "size", "scipy method", "scipy s", "scipy iters", "gradfit method",
              "gradfit s", "gradfit iters", "speedup", "cost rel diff", "scipy s, 2 threads",
              "gradfit s, 2 threads", "speedup, 2 threads"]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    notes = []
    with tempfile.TemporaryDirectory(prefix="gradfit-peer-") as tmp:
        for i, case in enumerate(grid):
            csv = Path(tmp) / f"case{i}.csv"
            generate(binary, case, csv)
            a, y = load(csv)
            obj = Objective(case.model, a, y, case.l2)
            for sp_method, gf_solver in PAIRS:
                # the sides take turns, ROUNDS times; each keeps its fastest run
                sp_runs, sp2_runs, variants, gf_runs = [], [], [()], {}
                for _ in range(ROUNDS):
                    sp_runs.append(run_scipy(obj, sp_method, args.tol, args.ncg_hessp))
                    sp2_runs.append(run_scipy_threads(csv, case, sp_method, args.tol,
                                                      args.ncg_hessp, threads=2))
                    for extra in variants:
                        gf, report = run_gradfit(binary, csv, case, gf_solver, args.tol,
                                                 extra=extra)
                        gf2, _ = run_gradfit(binary, csv, case, gf_solver, args.tol,
                                             threads=2, extra=extra)
                        gf_runs.setdefault(extra, []).append((gf, report, gf2))
                        # least squares in the Gram form: also the row form, scipy's own work
                        if (report.get("least_squares_form") == "gram"
                                and ("--gram", "off") not in variants):
                            variants.append(("--gram", "off"))
                sp = min(sp_runs, key=lambda run: run.seconds)
                sp2 = min(sp2_runs, key=lambda run: run.seconds)
                sp_best = min(sp.seconds, sp2.seconds)
                for extra in variants:
                    gf, report, _ = min(gf_runs[extra], key=lambda t: t[0].seconds)
                    gf2 = min((t[2] for t in gf_runs[extra]), key=lambda run: run.seconds)
                    for problem in check_conventions(obj, report, args.tol):
                        notes.append(f"{case.label()} {gf.method}: CONVENTION MISMATCH: {problem}")
                    for run in (sp, gf) if not extra else (gf,):
                        if not run.converged:
                            notes.append(f"{case.label()} {case.size()} {run.method}: {run.status}")
                    speed = f"{sp.seconds / gf.seconds:.1f}x" if gf.seconds > 0 else "n/a"
                    row = [case.label(), case.size(), sp.method, fmt_run(sp),
                           f"{sp.iterations} ({sp.cost_evals} f)", gf.method, fmt_run(gf),
                           f"{gf.iterations} ({gf.cost_evals} f)", speed,
                           f"{rel_diff(sp.cost, gf.cost):.1e}", fmt_run(sp2), fmt_run(gf2),
                           f"{sp_best / gf2.seconds:.1f}x" if gf2.seconds > 0 else "n/a"]
                    print("| " + " | ".join(row) + " |", flush=True)
    print()
    print("iters: iterations (function evaluations). speedup = scipy s / gradfit s. "
          "cost rel diff = |f_scipy - f_gradfit| / max(|f_scipy|, |f_gradfit|). "
          "speedup, 2 threads = scipy's faster time (one BLAS thread or two) / gradfit s, "
          "2 threads.")
    print()
    print("(Gram): gradfit's default on tall least squares (--gram auto): A^T A formed and "
          "Cholesky-factored once inside the timed solve, then O(n^2) per evaluation; its "
          "reported cost and gradient are checked on the rows. The row after it (--gram off) "
          "streams A in every evaluation, as the scipy objective does.")
    if notes:
        print()
        print("Notes:")
        for note in notes:
            print(f"- {note}")
    print()
    print(f"total wall time {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
