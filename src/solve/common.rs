//! Pieces shared by gradfit's own solvers: the state type, initialisation, taking and putting
//! back the iterate, and recording why a solver stopped.

use argmin::core::{Error as ArgminError, IterState, Problem, State, TerminationReason, KV};

use super::line_search::{eval_fg, Search, Trial};
use super::Status;
use crate::error::Error;
use crate::problems::Objective;
use crate::Vector;

/// The argmin state of gradfit's own solvers: (param, gradient, no Jacobian, no Hessian kept,
/// no residuals, f64).
pub(crate) type St = IterState<Vector, Vector, (), (), (), f64>;

/// What a solver knows about its own stop that argmin's `TerminationReason` cannot say.
pub(crate) trait Outcome {
    /// A status and message set by the solver itself when it gave up.
    fn exit(&self) -> Option<(Status, String)> {
        None
    }
    /// Newton iterations that needed damping.
    fn damped_iterations(&self) -> u64 {
        0
    }
}

/// The limits on this process's memory that do not change while it runs, read once: the
/// address-space limit (`ulimit -v`, `/proc/self/limits`) and the directory and file names of
/// its memory cgroup's limit and usage (v2 `memory.max`, `memory.current`; v1
/// `memory.limit_in_bytes`, `memory.usage_in_bytes`), where it has one.
struct Limits {
    address_space: Option<u64>,
    cgroup: Option<Cgroup>,
}

/// A memory cgroup: its limit, the file of its usage, and the file (`memory.stat`) and key of
/// its inactive page cache, which the kernel reclaims before refusing memory.
struct Cgroup {
    limit: u64,
    usage: String,
    stat: String,
    inactive: &'static str,
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// The number after `key` on its line of `text`.
fn number_after(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

fn limits() -> &'static Limits {
    static LIMITS: std::sync::OnceLock<Limits> = std::sync::OnceLock::new();
    LIMITS.get_or_init(|| {
        let address_space = read("/proc/self/limits").and_then(|t| number_after(&t, "Max address space"));
        let number = |path: &str| read(path)?.trim().parse::<u64>().ok();
        let cgroup = read("/proc/self/cgroup").and_then(|t| {
            // v2: the line "0::/path"; v1: the memory controller's "N:memory:/path". A limit
            // of "max", or v1's near-2⁶³ "unlimited", is none.
            let v2 = t.lines().find_map(|l| l.strip_prefix("0::")).map(|p| {
                let dir = format!("/sys/fs/cgroup{}", p.trim_end_matches('/'));
                (
                    format!("{dir}/memory.max"),
                    format!("{dir}/memory.current"),
                    format!("{dir}/memory.stat"),
                    "inactive_file ",
                )
            });
            let v1 = t.lines().find_map(|l| l.split_once(":memory:")).map(|(_, p)| {
                let dir = format!("/sys/fs/cgroup/memory{}", p.trim_end_matches('/'));
                (
                    format!("{dir}/memory.limit_in_bytes"),
                    format!("{dir}/memory.usage_in_bytes"),
                    format!("{dir}/memory.stat"),
                    "total_inactive_file ",
                )
            });
            [v2, v1]
                .into_iter()
                .flatten()
                .find_map(|(limit, usage, stat, inactive)| {
                    let limit = number(&limit).filter(|l| *l < 1 << 62)?;
                    Some(Cgroup {
                        limit,
                        usage,
                        stat,
                        inactive,
                    })
                })
        });
        Limits {
            address_space,
            cgroup,
        }
    })
}

/// The bytes of memory the system reports available to this process, the least of: the
/// address-space limit less the address space in use (`VmSize`), the cgroup's limit less its
/// usage net of inactive page cache, and, with `free`, Linux's `MemAvailable`; `None` where
/// none is reported.
fn available_bytes(free: bool) -> Option<u64> {
    let l = limits();
    let address_space = l.address_space.map(|limit| {
        let used = read("/proc/self/status")
            .and_then(|t| number_after(&t, "VmSize:"))
            .unwrap_or(0);
        limit.saturating_sub(used.saturating_mul(1024))
    });
    let cgroup = l.cgroup.as_ref().map(|c| {
        let usage = read(&c.usage)
            .and_then(|t| t.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let cache = read(&c.stat)
            .and_then(|t| number_after(&t, c.inactive))
            .unwrap_or(0);
        c.limit.saturating_sub(usage.saturating_sub(cache))
    });
    let memory = free
        .then(|| read("/proc/meminfo").and_then(|t| number_after(&t, "MemAvailable:")))
        .flatten()
        .and_then(|kb| kb.checked_mul(1024));
    [address_space, cgroup, memory].into_iter().flatten().min()
}

/// An error unless `count` dense n×n matrices of f64 fit in `limit` bytes (by default, the
/// memory available, [`SolveOptions::memory_limit`](crate::solve::SolveOptions)) and in the
/// address space: the message names the method, the size and the methods whose memory grows
/// with n only.
pub(crate) fn dense_fits(n: usize, count: usize, method: &str, limit: Option<u64>) -> Result<(), Error> {
    let instead = "lbfgs and newton-cg need memory in proportion to n only";
    dense_fits_or(n, count, method, limit, ("it", instead))
}

/// [`dense_fits`] with the message's subject (`who` needs the matrices) and its ending
/// (`instead`, what needs less memory) given.
pub(crate) fn dense_fits_or(
    n: usize,
    count: usize,
    method: &str,
    limit: Option<u64>,
    (who, instead): (&str, &str),
) -> Result<(), Error> {
    let bytes = (n as u128) * (n as u128) * 8 * count as u128;
    let limit_given = limit;
    let (limit, whose) = match limit {
        Some(l) => (Some(l), "the memory limit"),
        // small matrices without reading the free memory (55 µs for all the figures, a
        // fifth of a bfgs solve of logistic 2000 × 20), but always against a limit the
        // process has (under `ulimit -v` a 1400-parameter newton aborted without it)
        None if bytes <= UNASKED_BYTES && limits().address_space.is_none() && limits().cgroup.is_none() => {
            return Ok(())
        }
        // no more than this process has already been allowed (and has held): the space in use
        // grows once threads have reserved theirs, and a --repeat or a later solver of a
        // compare was refused what the first run had just done
        None if bytes <= ALLOWED.load(std::sync::atomic::Ordering::Relaxed) as u128 => return Ok(()),
        None => (available_bytes(bytes > UNASKED_BYTES), "the memory available"),
    };
    let over_limit = limit.filter(|l| bytes > u128::from(*l));
    if over_limit.is_none() && bytes <= isize::MAX as u128 {
        if limit_given.is_none() {
            ALLOWED.fetch_max(
                u64::try_from(bytes).unwrap_or(u64::MAX),
                std::sync::atomic::Ordering::Relaxed,
            );
        }
        return Ok(());
    }
    let gb = |b: u128| match b {
        1_000_000_000.. => format!("{:.2} GB", b as f64 / 1e9),
        1_000_000.. => format!("{:.1} MB", b as f64 / 1e6),
        _ => format!("{b} bytes"),
    };
    let what = match count {
        1 => format!("a dense {n} × {n} matrix"),
        c => format!("{c} dense {n} × {n} matrices"),
    };
    let against = match over_limit {
        Some(l) => format!(", more than {whose}, {}", gb(u128::from(l))),
        None => ", more than this machine can address".to_string(),
    };
    Err(Error::Memory {
        method: method.into(),
        needed: u64::try_from(bytes).unwrap_or(u64::MAX),
        available: over_limit,
        message: format!("{who} needs {what} ({}){against}; {instead}", gb(bytes)),
    })
}

/// The most bytes of dense matrices a check against the system's figures has allowed in this
/// process: later requests up to it pass without measuring again.
static ALLOWED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Dense matrices up to this many bytes in all (64 MiB: n up to 1448 for newton's four) are
/// checked against the process's limits only (`ulimit -v`, the cgroup's), not the machine's
/// free memory, and not at all where it has none.
const UNASKED_BYTES: u128 = 64 << 20;

/// An n×n matrix of zeros whose allocation, if it fails, is an error naming the method rather
/// than an abort.
pub(crate) fn dense_zeros(n: usize, method: &str) -> Result<crate::Matrix, Error> {
    let failed = || Error::Memory {
        method: method.into(),
        needed: u64::try_from(n as u128 * n as u128 * 8).unwrap_or(u64::MAX),
        available: None,
        message: format!("could not allocate a dense {n} × {n} matrix"),
    };
    let len = n.checked_mul(n).ok_or_else(failed)?;
    let mut v: Vec<f64> = Vec::new();
    v.try_reserve_exact(len).map_err(|_| failed())?;
    v.resize(len, 0.0);
    Ok(crate::Matrix::from_vec(n, n, v))
}

/// f and ∇f at x₀ in one evaluation; an error if either is not finite (there is then no
/// finite iterate to report).
pub(crate) fn init_state<O: Objective>(
    p: &mut Problem<O>,
    mut state: St,
) -> Result<(St, Option<KV>), ArgminError> {
    let x = state.take_param().ok_or_else(no_param)?;
    let mut g = Vector::zeros(x.len());
    let f = eval_fg(p, &x, &mut g)?;
    if !f.is_finite() {
        return Err(Error::NonFinite {
            what: "cost at the starting point".into(),
            index: 0,
        }
        .into());
    }
    crate::error::check_finite("gradient at the starting point", g.iter())?;
    let mut state = state.param(x).gradient(g).cost(f);
    // gradfit's solvers report their last iterate, never argmin's best-so-far copy. With
    // best_cost = NaN, `cost < best_cost` is false, so the Executor's `update` never clones x
    // into best_param each iteration (−∞ would do that too, but then argmin's target-cost test
    // best_cost <= target_cost = −∞ would stop the run at once).
    state.best_cost = f64::NAN;
    Ok((state, None))
}

pub(crate) fn no_param() -> ArgminError {
    Error::Solver {
        method: "gradfit".into(),
        message: "the state holds no parameter vector".into(),
    }
    .into()
}

/// Moves x and ∇f out of the state (no copy).
pub(crate) fn take_iterate(state: &mut St) -> Result<(Vector, Vector, f64), ArgminError> {
    let x = state.take_param().ok_or_else(no_param)?;
    let g = state.take_gradient().ok_or_else(no_param)?;
    Ok((x, g, state.get_cost()))
}

/// Puts the iterate back after an accepted step of length t; the step goes to observers only
/// when someone observes (a KV is a heap allocation per iteration).
pub(crate) fn accept(state: St, x: Vector, g: Vector, f: f64, t: f64, observed: bool) -> (St, Option<KV>) {
    let kv = observed.then(|| argmin::kv!("step" => t;));
    (state.param(x).gradient(g).cost(f), kv)
}

/// Puts the last good iterate back and ends the run, recording why.
pub(crate) fn give_up(
    state: St,
    x: Vector,
    g: Vector,
    f: f64,
    exit: &mut Option<(Status, String)>,
    status: Status,
    message: String,
) -> (St, Option<KV>) {
    *exit = Some((status, message.clone()));
    let state = state.param(x).gradient(g).cost(f);
    (state.terminate_with(TerminationReason::SolverExit(message)), None)
}

/// The status and message for a failed line search.
pub(crate) fn search_failure(search: Search, what: &str) -> (Status, String) {
    match search {
        Search::Failed { nonfinite: true } => (
            Status::NonFinite,
            format!("every trial point along the {what} gave a non-finite cost or gradient"),
        ),
        _ => (
            Status::LineSearchFailed,
            format!("no step along the {what} decreased the cost enough"),
        ),
    }
}

/// Ends an iteration after a line search: on success the trial point becomes the iterate (the
/// buffers are swapped, not copied); on failure the last good iterate goes back and the run
/// ends with the reason.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conclude(
    state: St,
    mut x: Vector,
    mut g: Vector,
    f: f64,
    search: Search,
    trial: &mut Trial,
    direction: &str,
    exit: &mut Option<(Status, String)>,
    observed: bool,
) -> (St, Option<KV>) {
    match search {
        Search::Accepted { t, f: ft } => {
            std::mem::swap(&mut x, &mut trial.x);
            std::mem::swap(&mut g, &mut trial.g);
            accept(state, x, g, ft, t, observed)
        }
        Search::Failed { .. } => {
            let (status, message) = search_failure(search, direction);
            give_up(state, x, g, f, exit, status, message)
        }
    }
}
