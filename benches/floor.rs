//! The fused cost-and-gradient against the memory floor, measured in alternation.
//!
//! criterion times the stream read and the fused pass seconds apart, and on a shared machine
//! the floor moves in between: a 32 MB matrix fits this machine's L3 only while its other
//! tenants leave room, and the two-thread stream read of 20000 × 200 has measured anywhere from
//! 350 to 684 µs between two benchmark runs. This bench instead times one stream read and one
//! fused pass back to back, in alternating order (stream first on even rounds, fused first on odd
//! ones), many times, and reports the distribution of the per-pair ratio fused / stream. Whatever
//! the neighbours do to the cache and the memory bus, they do to both halves of a pair. A full run
//! measures every case in three passes over all the cases, a third of its pairs in each, and
//! pools them: a busy stretch of the machine (a neighbour's minutes of heavy memory traffic moved
//! single-pass medians by up to 0.4 between runs) then touches a third of a case's pairs, not
//! all of them, and the median is robust to that.
//!
//! Softmax's pass does 2(k − 1) multiply-adds per entry of A (k − 1 scores against the last
//! class's, k − 1 axpys into the gradient), so its floor is arithmetic, not memory:
//! its cases also time those multiply-adds alone at the core's peak (`common/arith.rs`), between
//! the stream read and the fused pass of each round, and report fused / arithmetic too.
//!
//! `cargo bench --bench floor` (full), `cargo bench --bench floor -- --quick` (fewer rounds), or
//! a filter such as `cargo bench --bench floor -- logistic`. Each case runs twice: on rayon's
//! global pool (two threads here, gradfit's default on this data) and on a one-thread pool; the
//! stream read is split the same way as the fused pass. Results are printed and written to
//! target/criterion/gradfit-floor.jsonl (replaced on each full or filtered run), which
//! `python3 benches/crossover.py` puts into BENCHMARKS.md; under a narrower `GRADFIT_CPU` than
//! the CPU's own (`GRADFIT_CPU=avx2 cargo bench --bench floor` on an AVX-512 machine), to
//! target/criterion/gradfit-floor-avx2.jsonl instead, which the page shows beside it. Other sizes, for least squares,
//! logistic and log-sum-exp only and printed only: `FLOOR_CASES=8000x512,6400x640 cargo bench
//! --bench floor`.

use std::hint::black_box;
use std::io::Write;
use std::time::Instant;

#[path = "common/code.rs"]
mod code;
#[path = "common/stream.rs"]
mod stream_read;
use stream_read::stream_halves;
#[path = "common/arith.rs"]
mod arith;
use arith::multiply_adds_halves;

use gradfit::problems::{LeastSquares, LogSumExp, Logistic, Objective, Softmax};
use gradfit::{Matrix, Vector};
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

fn gaussian(r: &mut impl Rng, m: usize, n: usize) -> Matrix {
    Matrix::from_fn(m, n, |_, _| r.sample::<f64, _>(StandardNormal))
}

fn seconds(f: &mut impl FnMut()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

/// Quantile `q` of sorted data, by linear interpolation.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

#[derive(Default)]
struct Outcome {
    ratios: Vec<f64>,
    stream: Vec<f64>,
    fused: Vec<f64>,
    /// Where the case has an arithmetic floor: its times, and fused / arithmetic per round.
    arith: Vec<f64>,
    arith_ratios: Vec<f64>,
}

impl Outcome {
    fn extend(&mut self, more: Outcome) {
        self.ratios.extend(more.ratios);
        self.stream.extend(more.stream);
        self.fused.extend(more.fused);
        self.arith.extend(more.arith);
        self.arith_ratios.extend(more.arith_ratios);
    }
}

/// `rounds` rounds of a stream read and a fused pass, and where `multiply_adds` is given, the
/// arithmetic floor of that many multiply-adds between them (split between threads as the pass).
fn pairs<P: Objective>(p: &P, a: &[f64], multiply_adds: Option<usize>, rounds: usize) -> Outcome {
    let mut r = rand::rngs::StdRng::seed_from_u64(7);
    let x = Vector::from_fn(p.dim(), |_, _| 0.1 * r.sample::<f64, _>(StandardNormal));
    let mut g = Vector::zeros(p.dim());
    let mut fused = || {
        black_box(p.value_and_gradient_into(black_box(&x), &mut g).ok());
    };
    let mut read = || {
        black_box(stream_halves(black_box(a)));
    };
    let mut arithmetic = || {
        if let Some(count) = multiply_adds {
            black_box(multiply_adds_halves(black_box(count)));
        }
    };
    // Warm up: page in A and the buffers, start rayon's threads.
    for _ in 0..3 {
        fused();
        read();
        arithmetic();
    }
    let mut out = Outcome {
        ratios: Vec::with_capacity(rounds),
        stream: Vec::with_capacity(rounds),
        fused: Vec::with_capacity(rounds),
        ..Outcome::default()
    };
    for round in 0..rounds {
        // the arithmetic floor (if any) always between the two, which swap places each round
        let (s, t, f) = if round % 2 == 0 {
            let s = seconds(&mut read);
            let t = seconds(&mut arithmetic);
            (s, t, seconds(&mut fused))
        } else {
            let f = seconds(&mut fused);
            let t = seconds(&mut arithmetic);
            (seconds(&mut read), t, f)
        };
        out.ratios.push(f / s);
        out.stream.push(s);
        out.fused.push(f);
        if multiply_adds.is_some() {
            out.arith_ratios.push(f / t);
            out.arith.push(t);
        }
    }
    out
}

/// A problem to measure and the memory its passes read: `run(rounds)` times that many pairs.
struct Case {
    model: &'static str,
    m: usize,
    n: usize,
    /// The multiply-adds of the pass, where it is measured against them too.
    multiply_adds: Option<usize>,
    run: Box<dyn Fn(usize) -> Outcome + Sync>,
}

struct Bench {
    rounds: usize,
    passes: usize,
    filter: Vec<String>,
    cases: Vec<Case>,
    lines: Vec<String>,
}

impl Bench {
    fn wanted(&self, name: &str) -> bool {
        self.filter.is_empty() || self.filter.iter().any(|f| name.contains(f.as_str()))
    }

    /// A case to measure (if the filter wants it), with the number of multiply-adds its pass
    /// needs if it is to be measured against that arithmetic too; the problem lives until the
    /// end of the run.
    fn add<P: Objective + Sync + 'static>(
        &mut self,
        (model, m, n): (&'static str, usize, usize),
        p: P,
        stored: fn(&P) -> &[f64],
        multiply_adds: Option<usize>,
    ) {
        if !self.wanted(&format!("floor_{model}_{m}x{n}")) {
            return;
        }
        let run = Box::new(move |rounds: usize| pairs(&p, stored(&p), multiply_adds, rounds));
        self.cases.push(Case {
            model,
            m,
            n,
            multiply_adds,
            run,
        });
    }

    /// Every case on two threads (rayon's global pool, as gradfit runs by default) and on one,
    /// in `passes` passes over all the cases, then each case's pairs pooled and reported.
    fn measure(&mut self) {
        let one = match rayon::ThreadPoolBuilder::new().num_threads(1).build() {
            Ok(one) => Some(one),
            Err(e) => {
                eprintln!("no one-thread pool ({e}); the one-thread figures are left out");
                None
            }
        };
        let two = rayon::current_num_threads().min(2);
        let mut pooled: Vec<[Outcome; 2]> = self
            .cases
            .iter()
            .map(|_| std::array::from_fn(|_| Outcome::default()))
            .collect();
        for pass in 0..self.passes {
            if self.passes > 1 {
                eprintln!("pass {} of {}", pass + 1, self.passes);
            }
            for (case, pooled) in self.cases.iter().zip(&mut pooled) {
                // About a second per case: fewer rounds for bigger data.
                let rounds = (self.rounds * 4_000_000 / (case.m * case.n).max(1)).clamp(40, self.rounds);
                let share = rounds.div_ceil(self.passes);
                pooled[0].extend((case.run)(share));
                if let Some(one) = &one {
                    pooled[1].extend(one.install(|| (case.run)(share)));
                }
            }
        }
        for (case, pooled) in self.cases.iter().zip(pooled) {
            for (threads, o) in [two, 1].into_iter().zip(pooled) {
                if !o.ratios.is_empty() {
                    report(&mut self.lines, case, threads, o);
                }
            }
        }
    }
}

/// Prints a case's pooled pairs on `threads` threads and adds its line of results to `lines`.
fn report(lines: &mut Vec<String>, case: &Case, threads: usize, mut o: Outcome) {
    let (model, m, n) = (case.model, case.m, case.n);
    for v in [
        &mut o.ratios,
        &mut o.stream,
        &mut o.fused,
        &mut o.arith,
        &mut o.arith_ratios,
    ] {
        v.sort_by(f64::total_cmp);
    }
    let rounds = o.ratios.len();
    let name = format!(
        "floor_{model}_{m}x{n}, {threads} thread{}",
        if threads > 1 { "s" } else { "" }
    );
    let (q1, med, q3) = (
        quantile(&o.ratios, 0.25),
        quantile(&o.ratios, 0.5),
        quantile(&o.ratios, 0.75),
    );
    let (s_med, f_med) = (quantile(&o.stream, 0.5), quantile(&o.fused, 0.5));
    let (s_lo, s_hi) = (o.stream[0], o.stream[o.stream.len() - 1]);
    println!(
        "{name:<42} {rounds:>4} pairs  fused/stream median {med:.3} (quartiles {q1:.3}–{q3:.3})  \
         stream {:.1} µs (range {:.1}–{:.1})  fused {:.1} µs",
        s_med * 1e6,
        s_lo * 1e6,
        s_hi * 1e6,
        f_med * 1e6
    );
    let mut arith = String::new();
    if !o.arith.is_empty() {
        let (q1, med, q3) = (
            quantile(&o.arith_ratios, 0.25),
            quantile(&o.arith_ratios, 0.5),
            quantile(&o.arith_ratios, 0.75),
        );
        let t_med = quantile(&o.arith, 0.5);
        println!(
            "{name:<42} {rounds:>4} pairs  fused/arithmetic median {med:.3} (quartiles {q1:.3}–{q3:.3})  \
             arithmetic floor {:.1} µs",
            t_med * 1e6
        );
        arith = format!(
            ",\"multiply_adds\":{},\"arith_median\":{t_med},\"arith_ratio_q1\":{q1},\
             \"arith_ratio_median\":{med},\"arith_ratio_q3\":{q3}",
            case.multiply_adds.unwrap_or(0)
        );
    }
    let code = gradfit::cpu::in_use().name();
    lines.push(format!(
        "{{\"model\":\"{model}\",\"m\":{m},\"n\":{n},\"threads\":{threads},\"code\":\"{code}\",\"pairs\":{rounds},\
         \"ratio_q1\":{q1},\"ratio_median\":{med},\"ratio_q3\":{q3},\
         \"stream_median\":{s_med},\"stream_min\":{s_lo},\"stream_max\":{s_hi},\
         \"fused_median\":{f_med}{arith}}}"
    ));
}

fn main() {
    code::vector_code();
    // cargo bench passes `--bench`; anything else not starting with "--" is a filter.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let mut bench = Bench {
        rounds: if quick { 60 } else { 400 },
        passes: if quick { 1 } else { 3 },
        filter: args.into_iter().filter(|a| !a.starts_with("--")).collect(),
        cases: Vec::new(),
        lines: Vec::new(),
    };
    // Other sizes for the three one-vector models, m×n, from FLOOR_CASES (say
    // FLOOR_CASES=8000x512,6400x640): printed only, not written to the results file.
    let asked: Vec<(usize, usize)> = match std::env::var("FLOOR_CASES") {
        Err(_) => Vec::new(),
        Ok(v) => {
            let parsed: Option<Vec<(usize, usize)>> = v
                .split(',')
                .map(|c| {
                    let (m, n) = c.trim().split_once('x')?;
                    Some((m.parse().ok()?, n.parse().ok()?))
                })
                .collect();
            match parsed {
                Some(cases) if cases.iter().all(|&(m, n)| m > 0 && n > 0) => cases,
                _ => {
                    eprintln!("FLOOR_CASES={v:?}: expected sizes such as 8000x512,6400x640");
                    std::process::exit(2);
                }
            }
        }
    };
    // 12800 × 320 is as large as 20000 × 200 (32 MB) with longer rows, 40000 × 100 with shorter
    // ones (padded to 104: the short rows woven on large data); 5000 × 1000 (40 MB) has wide
    // rows, whose x, g and blocks no longer fit L1 together
    let cases = if asked.is_empty() {
        vec![
            (20_000, 50),
            (20_000, 200),
            (12_800, 320),
            (40_000, 100),
            (100_000, 200),
            (5_000, 1000),
        ]
    } else {
        asked.clone()
    };
    // each case's data from its own seed, so that adding a case changes no other's
    let seeded = |m: usize, n: usize| rand::rngs::StdRng::seed_from_u64((m as u64) << 20 | n as u64);
    for &(m, n) in &cases {
        let mut r = seeded(m, n);
        let a = gaussian(&mut r, m, n);
        let b = Vector::from_fn(m, |_, _| r.sample::<f64, _>(StandardNormal));
        let y = b.map(|v| if v > 0.0 { 1.0 } else { 0.0 });
        // the problems live through the run (untouched while others are measured, they take no
        // room in the cache)
        if let Ok(p) = LeastSquares::new(a.clone(), b.clone(), 0.0) {
            bench.add(("least-squares", m, n), p, LeastSquares::stored_rows, None);
        }
        if let Ok(p) = Logistic::new(a.clone(), y, 0.1, false) {
            bench.add(("logistic", m, n), p, Logistic::stored_rows, None);
        }
        if let Ok(p) = LogSumExp::new(a * (1.0 / (n as f64).sqrt()), b, 0.1) {
            bench.add(("log-sum-exp", m, n), p, LogSumExp::stored_rows, None);
        }
    }
    // 20000 × 200 too: the size the 1.3× target names
    let softmax_cases: &[(usize, usize)] = if asked.is_empty() {
        &[(20_000, 50), (100_000, 50), (20_000, 200)]
    } else {
        &[]
    };
    for &(m, n) in softmax_cases {
        let k = 10;
        let mut r = seeded(m, n);
        let a = gaussian(&mut r, m, n);
        let y: Vec<usize> = (0..m).map(|_| r.random_range(0..k)).collect();
        if let Ok(p) = Softmax::new(a, y, k, 0.1, false) {
            // k − 1 scores (against the last class's) and k − 1 gradient entries (the last
            // class's is minus their sum) per entry of A: 2(k − 1) multiply-adds
            bench.add(
                ("softmax10", m, n),
                p,
                Softmax::stored_rows,
                Some(2 * (k - 1) * m * n),
            );
        }
    }
    bench.measure();
    if bench.lines.is_empty() || !asked.is_empty() {
        return;
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/criterion");
    let _ = std::fs::create_dir_all(&dir);
    // the CPU's own code to the main file; a narrower one (GRADFIT_CPU) to its own, so that a
    // capped run neither replaces the page's main table nor mixes into it
    let path = match gradfit::cpu::in_use() {
        code if code < gradfit::cpu::detected() => dir.join(format!("gradfit-floor-{code}.jsonl")),
        _ => dir.join("gradfit-floor.jsonl"),
    };
    // Keep the other cases' lines from an earlier run when this one was filtered.
    let mut kept: Vec<String> = std::fs::read_to_string(&path)
        .map(|s| s.lines().map(str::to_owned).collect())
        .unwrap_or_default();
    let key = |l: &str| {
        l.split(",\"pairs\"")
            .next()
            .map(str::to_owned)
            .unwrap_or_default()
    };
    let fresh: Vec<String> = bench.lines.iter().map(|l| key(l)).collect();
    kept.retain(|l| !fresh.contains(&key(l)));
    kept.extend(bench.lines);
    if let Ok(mut f) = std::fs::File::create(&path) {
        for l in kept {
            let _ = writeln!(f, "{l}");
        }
    }
}
