//! The gradfit command line: solve, compare, check and generate on CSV data.
//!
//! Only this file prints. Exit codes: 0 when every solve converged (or the check passed),
//! 2 when a solver stopped without converging (the report is still printed), 1 on an error.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use gradfit::check::{
    check_directional, check_gradient_scaled, check_hessian_scaled, order_study, Tolerance,
};
use gradfit::data::{named_vector, read_csv, read_csv_from};
use gradfit::generate::{generate, Spec};
use gradfit::model::{build, random_point, solve_fit_monitored, typical_scale, Fit, FitSpec};
use gradfit::problems::{ModelKind, Objective};
use gradfit::solve::{Control, GramMode, Method, Report, SolveOptions, TraceRow};
use gradfit::Vector;
use serde_json::{json, Value};

#[derive(Parser)]
#[command(
    name = "gradfit",
    version,
    about = "Optimization on hand-derived gradients and Hessians, proven against finite differences"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fit a model to a CSV file with one solver and report the optimum.
    Solve(SolveArgs),
    /// Run several solvers from the same start on the same data and compare them.
    Compare(CompareArgs),
    /// Check the model's gradient and Hessian against finite differences at random points.
    Check(CheckArgs),
    /// Write a synthetic instance with a known structure to a CSV file.
    Generate(GenerateArgs),
}

fn parse_model(s: &str) -> std::result::Result<ModelKind, String> {
    choice(s, &ModelKind::ALL, ModelKind::name)
}

fn parse_method(s: &str) -> std::result::Result<Method, String> {
    choice(s, &Method::ALL, Method::name)
}

/// The one of `all` named `s` (spaces around it ignored, as after the comma in "lbfgs, newton").
/// clap's error already quotes the value and the option; this says what the choices are, and
/// which one a typo is nearest to (at most two letters off).
fn choice<T: Copy>(s: &str, all: &[T], name: fn(T) -> &'static str) -> std::result::Result<T, String> {
    let s = s.trim();
    if let Some(&t) = all.iter().find(|&&t| name(t) == s) {
        return Ok(t);
    }
    let names: Vec<&str> = all.iter().map(|&t| name(t)).collect();
    if s.is_empty() {
        return Err(format!(
            "an empty name (a stray comma?); one of {}",
            names.join(", ")
        ));
    }
    // a suggestion only within two edits, and fewer for short names ("x" is near "gd" and "cg")
    let reach = 2.min(s.chars().count().div_ceil(2));
    let near = names
        .iter()
        .map(|n| (edit_distance(s, n), *n))
        .min()
        .filter(|(d, _)| *d <= reach);
    Err(match near {
        Some((_, n)) => format!("did you mean {n}? (one of {})", names.join(", ")),
        None => format!("must be one of {}", names.join(", ")),
    })
}

/// Levenshtein distance between two short names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb)).min(above + 1).min(row[j] + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

fn parse_gram(s: &str) -> std::result::Result<GramMode, String> {
    s.trim().parse().map_err(|e: gradfit::Error| e.to_string())
}

/// An output file: `-` (standard input for the data argument, and a file literally named `-`
/// if taken as is) is refused, with the way to reach standard output.
fn parse_output_file(s: &str) -> std::result::Result<PathBuf, String> {
    match s {
        "-" => Err(
            "\"-\" is not taken for an output (it means standard input for the data); \
                    name /dev/stdout to write to standard output, or ./- for a file named -"
                .into(),
        ),
        _ => Ok(PathBuf::from(s)),
    }
}

/// `--time-limit`: seconds from a nanosecond to what a `Duration` holds.
fn parse_time_limit(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 1e-9 && Duration::try_from_secs_f64(v).is_ok() => Ok(v),
        Ok(v) if v.is_finite() && v > 0.0 && v < 1e-9 => Err(format!("{s:?} is below a nanosecond")),
        Ok(v) if v.is_finite() && v > 0.0 => Err(format!("{s:?} is too large (seconds, at most 1.8e19)")),
        _ => Err(format!("{s:?} is not a finite number of seconds > 0")),
    }
}

/// `generate --condition`: 1 to 1e16, as the generator takes it.
fn parse_condition(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (1.0..=1e16).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a number from 1 to 1e16")),
    }
}

/// `--seed`: any u64.
fn parse_seed(s: &str) -> std::result::Result<u64, String> {
    s.parse::<u64>()
        .map_err(|_| format!("{s:?} is not a whole number from 0 to {}", u64::MAX))
}

/// `--x0`'s file: `-` is refused (standard input is the data's).
fn parse_input_file(s: &str) -> std::result::Result<PathBuf, String> {
    match s {
        "-" => Err("\"-\" (standard input) is taken only for the data argument; name a file".into()),
        _ => Ok(PathBuf::from(s)),
    }
}

/// `--l2`: λ ≥ 0 with 2λ finite (the gradient's 2λx).
fn parse_l2(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v >= 0.0 && (2.0 * v).is_finite() => Ok(v),
        Ok(v) if v.is_finite() && v > 0.0 => Err(format!(
            "{s:?} is too large: 2λ must be finite (λ at most {:e})",
            f64::MAX / 2.0
        )),
        _ => Err(format!("{s:?} is not a finite number >= 0")),
    }
}

fn parse_tol(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a finite number > 0")),
    }
}

fn parse_positive(s: &str) -> std::result::Result<u64, String> {
    match s.parse::<u64>() {
        Ok(v) if v > 0 => Ok(v),
        Err(e) if *e.kind() == std::num::IntErrorKind::PosOverflow => {
            Err(format!("{s:?} is too large (the largest is {})", u64::MAX))
        }
        _ => Err(format!("{s:?} is not a whole number >= 1")),
    }
}

/// A whole number from 1 to `max` (`unit` names what it counts), too large named against
/// `max` itself, not against u64's range.
fn bounded(s: &str, max: u64, unit: &str) -> std::result::Result<u64, String> {
    match s.parse::<u64>() {
        Ok(v) if (1..=max).contains(&v) => Ok(v),
        Ok(0) => Err(format!("{s:?} is not a whole number >= 1")),
        Ok(_) => Err(format!("{s:?} is more than {max} {unit}")),
        Err(e) if *e.kind() == std::num::IntErrorKind::PosOverflow => {
            Err(format!("{s:?} is more than {max} {unit}"))
        }
        Err(_) => Err(format!("{s:?} is not a whole number >= 1")),
    }
}

/// `--memory`: 1 to 1000 pairs (each pair holds two vectors of the parameters' length).
fn parse_memory(s: &str) -> std::result::Result<u64, String> {
    bounded(s, 1000, "pairs")
}

/// `--repeat`: 1 to 10 000 runs (more is a mistake more often than a measurement).
fn parse_repeat(s: &str) -> std::result::Result<u64, String> {
    bounded(s, 10_000, "runs")
}

/// `check --points`: 1 to 1000 (each point costs 2n cost and 4n gradient evaluations).
fn parse_points(s: &str) -> std::result::Result<u64, String> {
    bounded(s, 1000, "points")
}

/// The data and model options shared by solve, compare and check.
#[derive(Args)]
struct DataArgs {
    /// The CSV file (`-` for standard input): a header row, then one row per sample.
    data: PathBuf,
    /// least-squares, quadratic, log-sum-exp, logistic or softmax.
    #[arg(long, value_parser = parse_model)]
    model: ModelKind,
    /// The target column (b or the labels); several, comma-separated, for least squares.
    #[arg(long, default_value = "y", value_delimiter = ',')]
    target: Vec<String>,
    /// The feature columns, comma-separated (default: every column but the target).
    #[arg(long, value_delimiter = ',')]
    features: Option<Vec<String>>,
    /// Ridge coefficient λ ≥ 0 (adds λ‖x‖², the intercept excepted).
    #[arg(long, default_value = "0", value_parser = parse_l2, allow_negative_numbers = true)]
    l2: f64,
    /// Append a column of ones, last and unpenalized (least-squares, logistic, softmax).
    #[arg(long)]
    intercept: bool,
    /// Centre and scale each feature column to mean 0 and variance 1 (without --intercept, scale only: centring would take away the constant the raw features can fit)
    #[arg(long)]
    standardize: bool,
}

/// How data read from standard input are named in errors and titles.
const STDIN_NAME: &str = "<stdin>";

impl DataArgs {
    /// Whether the data come from standard input (`-`).
    fn is_stdin(&self) -> bool {
        self.data.as_os_str() == "-"
    }

    /// The data's name in titles and errors: the path, or `<stdin>`.
    fn name(&self) -> String {
        if self.is_stdin() {
            STDIN_NAME.to_string()
        } else {
            self.data.display().to_string()
        }
    }

    fn load(&self) -> Result<Fit> {
        let table = if self.is_stdin() {
            read_csv_from(std::io::stdin().lock(), Path::new(STDIN_NAME))?
        } else {
            read_csv(&self.data)?
        };
        let spec = FitSpec {
            model: self.model,
            target: self.target.clone(),
            features: self.features.clone(),
            l2: self.l2,
            intercept: self.intercept,
            standardize: self.standardize,
        };
        let fit = build(&table, &spec)?;
        for note in &fit.notes {
            eprintln!("note: {note}");
        }
        Ok(fit)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Table,
    Json,
}

/// What `solve` and `compare` share: the stop rule, the start, the least-squares form and the
/// repeats.
#[derive(Args)]
struct RunArgs {
    /// Converged when ‖∇f‖ ≤ tol·max(1, ‖∇f(x₀)‖).
    #[arg(long, default_value = "1e-6", value_parser = parse_tol, allow_negative_numbers = true)]
    tol: f64,
    /// Iteration limit.
    #[arg(long, default_value = "1000", value_parser = parse_positive, allow_negative_numbers = true)]
    max_iters: u64,
    /// L-BFGS memory (lbfgs, argmin-lbfgs): the last m steps and gradient changes kept, 1 to
    /// 1000 (scipy's maxcor, Optim.jl's m); 10 when not given.
    #[arg(long, value_parser = parse_memory, allow_negative_numbers = true)]
    memory: Option<u64>,
    /// Least squares: precompute AᵀA (factored once; each evaluation then costs O(n²)
    /// instead of a pass over the rows). auto: when rows ≥ 2·features, features ≤ 128 (256 when
    /// A has 2²¹ entries or more) and the solver is not newton or trust-region. The answer is
    /// checked on the rows either way.
    #[arg(long, default_value = "auto", value_parser = parse_gram)]
    gram: GramMode,
    /// Wall-time limit in seconds (in compare, for each solver).
    #[arg(long, value_parser = parse_time_limit, allow_negative_numbers = true)]
    time_limit: Option<f64>,
    /// Starting point: a CSV file with a header and one value per parameter (default 0).
    #[arg(long, value_parser = parse_input_file)]
    x0: Option<PathBuf>,
    /// Solve this many times in this process and report the fastest run (like timeit's best
    /// of N: the later runs find caches and the second core warm; in compare, each solver's
    /// fastest). Every run is identical otherwise (except under --time-limit, which may stop
    /// runs at different points).
    #[arg(long, default_value = "1", value_parser = parse_repeat, allow_negative_numbers = true)]
    repeat: u64,
}

impl RunArgs {
    fn options(&self, method: Method, trace: bool) -> Result<SolveOptions> {
        Ok(SolveOptions {
            tol: self.tol,
            max_iters: self.max_iters,
            // at most 1000 (parse_memory)
            memory: self.memory.unwrap_or(10) as usize,
            time_limit: self
                .time_limit
                .map(|t| {
                    Duration::try_from_secs_f64(t).with_context(|| format!("--time-limit {t}: too large"))
                })
                .transpose()?,
            trace,
            ..SolveOptions::new(method)
        })
    }

    /// --x0 read and checked against the model, or 0.
    fn start_point(&self, fit: &Fit) -> Result<Vector> {
        let Some(p) = &self.x0 else {
            return Ok(Vector::zeros(fit.problem.dim()));
        };
        let table = read_csv(p)?;
        let (x0, names) = named_vector(&table)?;
        // a standardized fit's --params-out (its mean and scale columns): values in units of
        // standardized features, wrong for a run on the raw ones
        let standardized_file = ["mean", "scale"]
            .iter()
            .all(|c| table.headers.iter().any(|h| h == c));
        if standardized_file && fit.standardization.is_none() {
            bail!(
                "{}: --x0 comes from a standardized fit (it has mean and scale columns): its values are \
                 in units of standardized features; add --standardize, or start from 0",
                p.display()
            );
        }
        // and a raw fit's (names, no mean and scale) in a standardized run: values in units of
        // the raw features
        if names.is_some() && !standardized_file && fit.standardization.is_some() {
            bail!(
                "{}: --x0 comes from a fit on the raw features (a name,value file without the mean and \
                 scale columns --params-out writes after --standardize): its values are in units of the \
                 raw features; drop --standardize, start from 0, or give the values alone (one column)",
                p.display()
            );
        }
        // a name,value file (as --params-out writes): its names must be the model's, in order
        for (k, (line, name)) in names.iter().flatten().enumerate() {
            match fit.parameter_names.get(k) {
                Some(want) if want == name => {}
                Some(want) => bail!(
                    "{}: line {line}: --x0 names parameter {name:?} where the model's parameter {} is {want:?}",
                    p.display(),
                    k + 1
                ),
                None => break, // the count is reported below
            }
        }
        if x0.len() != fit.problem.dim() {
            // the names, the first 20 of more than 30 (100 000 parameters made a 789 KB line)
            let names = &fit.parameter_names;
            let shown = match names.len() {
                0..=30 => names.join(", "),
                count => format!("{}, … ({count} in all)", names[..20].join(", ")),
            };
            bail!(
                "{}: --x0 has {} {}, the model has {} parameters ({shown})",
                p.display(),
                x0.len(),
                if x0.len() == 1 { "value" } else { "values" },
                fit.problem.dim(),
            );
        }
        // a standardized fit's file in a standardized run: its values are in units of its own
        // means and scales, which must be this run's (the same data), to the last digit they
        // are written with
        if let (true, Some(st)) = (standardized_file, &fit.standardization) {
            let column = |name: &str| {
                table
                    .headers
                    .iter()
                    .position(|h| h == name)
                    .map(|j| table.labels(j))
            };
            let (means, scales) = (
                column("mean").unwrap_or_default(),
                column("scale").unwrap_or_default(),
            );
            for k in 0..table.rows() {
                let line = table.line(k);
                let Some(Some(j)) = fit.parameter_features.get(k) else {
                    continue;
                };
                let (mean, scale) = st[*j];
                let read = |v: &[String]| v.get(k).and_then(|t| t.parse::<f64>().ok());
                let same = |file: Option<f64>, here: f64| {
                    file.is_some_and(|f| (f - here).abs() <= 1e-12 * here.abs())
                };
                if !(same(read(&means), mean) && same(read(&scales), scale)) {
                    bail!(
                        "{}: line {line}: --x0's mean and scale of {:?} ({}, {}) are not this run's ({mean:e}, \
                         {scale:e}): the file comes from a fit on other data, in other units; start from 0, or \
                         give the values alone (one column)",
                        p.display(),
                        fit.features[*j],
                        means.get(k).map_or("", String::as_str),
                        scales.get(k).map_or("", String::as_str),
                    );
                }
            }
        }
        Ok(x0)
    }

    /// The fastest of --repeat identical runs.
    fn best_of(&self, fit: &Fit, x0: &Vector, opts: &SolveOptions) -> Result<Report> {
        let mut r = run_one(fit, x0, opts, self.gram)?;
        for _ in 1..self.repeat {
            let again = run_one(fit, x0, opts, self.gram)?;
            if again.seconds < r.seconds {
                r = again;
            }
        }
        Ok(r)
    }
}

/// The files a run reads, which no output may replace.
fn inputs<'a>(data: &'a DataArgs, run: &'a RunArgs) -> Vec<(&'a Path, &'static str)> {
    let mut v = Vec::new();
    if !data.is_stdin() {
        v.push((data.data.as_path(), "data file"));
    }
    if let Some(x0) = &run.x0 {
        v.push((x0.as_path(), "--x0 file"));
    }
    v
}

impl SolveArgs {
    fn inputs(&self) -> Vec<(&Path, &'static str)> {
        inputs(&self.data, &self.run)
    }
}

impl CompareArgs {
    fn inputs(&self) -> Vec<(&Path, &'static str)> {
        inputs(&self.data, &self.run)
    }
}

#[derive(Args)]
struct SolveArgs {
    #[command(flatten)]
    data: DataArgs,
    /// gd, newton, lbfgs, newton-cg, bfgs, cg, trust-region or argmin-lbfgs.
    #[arg(long, default_value = "lbfgs", value_parser = parse_method)]
    solver: Method,
    #[command(flatten)]
    run: RunArgs,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Write the per-iteration trace to this CSV file.
    #[arg(long, value_parser = parse_output_file)]
    trace: Option<PathBuf>,
    /// Write the parameters (name,value; after --standardize also mean,scale of each
    /// parameter's feature) to this CSV file.
    #[arg(long, value_parser = parse_output_file)]
    params_out: Option<PathBuf>,
}

#[derive(Args)]
struct CompareArgs {
    #[command(flatten)]
    data: DataArgs,
    /// The solvers, comma-separated.
    #[arg(long, default_value = "gd,newton,lbfgs", value_delimiter = ',', value_parser = parse_method)]
    solvers: Vec<Method>,
    #[command(flatten)]
    run: RunArgs,
    /// Write an SVG of log(f − f_best) and log ‖∇f‖ against iteration and time.
    #[arg(long, value_parser = parse_output_file)]
    plot: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

#[derive(Args)]
struct CheckArgs {
    #[command(flatten)]
    data: DataArgs,
    /// How many random points, 1 to 1000.
    #[arg(long, default_value = "3", value_parser = parse_points)]
    points: u64,
    /// Seed of the random points (same seed, same points).
    #[arg(long, default_value = "0", value_parser = parse_seed, allow_negative_numbers = true)]
    seed: u64,
    /// Largest relative error that passes.
    #[arg(long, default_value = "1e-6", value_parser = parse_tol, allow_negative_numbers = true)]
    tol: f64,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

#[derive(Args)]
struct GenerateArgs {
    /// least-squares, quadratic, log-sum-exp, logistic or softmax.
    #[arg(value_parser = parse_model)]
    model: ModelKind,
    /// Rows (samples); for the quadratic, equal to --cols.
    #[arg(long, value_parser = parse_positive, allow_negative_numbers = true)]
    rows: u64,
    /// Feature columns.
    #[arg(long, value_parser = parse_positive, allow_negative_numbers = true)]
    cols: u64,
    /// Classes, for softmax [default: 3] (logistic has two; the other models none).
    #[arg(long, value_parser = parse_positive, allow_negative_numbers = true)]
    classes: Option<u64>,
    /// Condition number of the Hessian (least squares, quadratic) or of the features' covariance AᵀA/m (the others), 1 to 1e16 [default: 10].
    #[arg(long, value_parser = parse_condition, allow_negative_numbers = true)]
    condition: Option<f64>,
    /// Seed of the random generator (same seed, same file).
    #[arg(long, default_value = "0", value_parser = parse_seed, allow_negative_numbers = true)]
    seed: u64,
    /// Output file.
    #[arg(short, long, value_parser = parse_output_file)]
    output: PathBuf,
}

/// `print!` that returns a failed write (a closed pipe, a full disk) as an error instead of
/// panicking as `print!` does.
macro_rules! out {
    ($($arg:tt)*) => {
        std::io::stdout().lock().write_fmt(format_args!($($arg)*)).map_err(StdoutError)?
    };
}

/// `println!` that returns a failed write as an error, like [`out!`].
macro_rules! outln {
    () => {
        out!("\n")
    };
    ($($arg:tt)*) => {{
        out!($($arg)*);
        out!("\n");
    }};
}

/// Whether the error is a reader gone away: stdout's, or an output file that is stdout
/// (`--params-out /dev/stdout | head`).
fn closed_pipe(e: &anyhow::Error) -> bool {
    let pipe = |io: &std::io::Error| io.kind() == std::io::ErrorKind::BrokenPipe;
    match (
        e.downcast_ref::<StdoutError>(),
        e.downcast_ref::<gradfit::Error>(),
    ) {
        (Some(StdoutError(io)), _) => pipe(io),
        (_, Some(gradfit::Error::Io { error, .. })) => pipe(error),
        _ => false,
    }
}

/// Standard output could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write to standard output: {0}")]
struct StdoutError(std::io::Error);

fn main() -> ExitCode {
    // clap exits with 2 on a usage error, which here means "did not converge": map it to 1
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let outcome = check_environment().and_then(|()| match cli.command {
        Command::Solve(a) => run_solve(a),
        Command::Compare(a) => run_compare(a),
        Command::Check(a) => run_check(a),
        Command::Generate(a) => run_generate(a),
    });
    let outcome = outcome.and_then(|code| {
        std::io::stdout().flush().map_err(StdoutError)?;
        Ok(code)
    });
    match outcome {
        Ok(code) => code,
        // the reader went away (`gradfit … | head`): nothing to tell it, but the output is
        // incomplete, so not a success
        Err(e) if closed_pipe(&e) => ExitCode::from(1),
        Err(e) => {
            // the library names an option by its field (`intercept`, `max_iters`); here it is a
            // flag, named as the user typed it
            let message = match (e.chain().count(), e.downcast_ref::<gradfit::Error>()) {
                // the switch `--intercept` comes as the value "on": the flag alone says it
                (1, Some(gradfit::Error::InvalidOption { name, value, reason })) => {
                    match value.is_empty() || (name == "intercept" && value == "on") {
                        true => format!("{}: {reason}", flag(name)),
                        false => format!("{} {value}: {reason}", flag(name)),
                    }
                }
                (1, Some(gradfit::Error::NotApplicable { name, model, reason })) => {
                    format!("{} does not apply to the {model} model: {reason}", flag(name))
                }
                _ => format!("{e:#}"),
            };
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}

/// `GRADFIT_CPU`, when set, must name a kind of vector code: the library alone would ignore a
/// misspelt cap and run the CPU's widest code, and the user would measure the wrong thing.
fn check_environment() -> Result<()> {
    // as a plain message: main would otherwise show the variable as a flag
    gradfit::cpu::cap_from_env().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// A library option's name as the command line's flag: `max_iters` → `--max-iters`.
fn flag(name: &str) -> String {
    format!("--{}", name.replace('_', "-"))
}

/// Writes files all or none ([`gradfit::output::write_all_or_none`]), after checking that
/// none of them is one of the run's input files.
fn write_all_or_none(files: &[(&Path, &str, Vec<u8>)], inputs: &[(&Path, &str)]) -> Result<()> {
    for (path, option, _) in files {
        for (input, what) in inputs {
            if gradfit::output::same_file(path, input) {
                bail!(
                    "{option} {}: that is the {what}; writing it would replace it",
                    path.display()
                );
            }
        }
    }
    for (i, (path, option, _)) in files.iter().enumerate() {
        for (other, other_option, _) in &files[..i] {
            if gradfit::output::same_file(path, other) {
                bail!(
                    "{option} {} and {other_option} {}: the same file",
                    path.display(),
                    other.display()
                );
            }
        }
    }
    let files: Vec<(&Path, &[u8])> = files.iter().map(|(p, _, c)| (*p, c.as_slice())).collect();
    Ok(gradfit::output::write_all_or_none(&files)?)
}

/// Shows iteration, cost and gradient norm on stderr once a solve has run for a second, and
/// only when stderr is a terminal.
fn progress(label: String) -> impl FnMut(&TraceRow) -> Control + 'static {
    let tty = std::io::stderr().is_terminal();
    let mut bar: Option<indicatif::ProgressBar> = None;
    move |row: &TraceRow| {
        if tty && row.elapsed > 1.0 {
            let b = bar.get_or_insert_with(|| {
                let b = indicatif::ProgressBar::new_spinner();
                b.enable_steady_tick(Duration::from_millis(120));
                b
            });
            b.set_message(format!(
                "{label}: iteration {}  cost {:.6e}  |grad| {:.3e}",
                row.iteration, row.cost, row.gradient_norm
            ));
        }
        Control::Continue
    }
}

fn run_one(fit: &Fit, x0: &Vector, opts: &SolveOptions, gram: GramMode) -> Result<Report> {
    match solve_fit_monitored(fit, x0, opts, gram, progress(opts.method.name().to_string())) {
        Ok((report, _)) => Ok(report),
        Err(e @ gradfit::Error::NonFinite { .. }) => Err(anyhow::Error::new(e).context(
            "the cost or gradient is not finite at the starting point: the data's scale overflows \
             (try --standardize, or a smaller --x0)",
        )),
        Err(e @ gradfit::Error::Data { .. }) if gram == GramMode::On => Err(anyhow::Error::new(e)
            .context("--gram on: the Gram form cannot be used here (--gram auto or off solves on the rows)")),
        Err(e) => Err(e.into()),
    }
}

/// The `--params-out` file: `name,value`, and for a standardized fit `mean,scale`, the
/// standardization of the feature each parameter multiplies (empty for an intercept), so the
/// fit applies to raw data: the score is Σⱼ wⱼ·(xⱼ − meanⱼ)/scaleⱼ + intercept. Fields are
/// quoted where a name needs it.
fn params_csv(fit: &Fit, x: &gradfit::Vector) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let st = fit.standardization.as_ref();
    if st.is_some() {
        w.write_record(["name", "value", "mean", "scale"])?;
    } else {
        w.write_record(["name", "value"])?;
    }
    for (p, (name, v)) in fit.parameter_names.iter().zip(x.iter()).enumerate() {
        let value = format!("{v:e}");
        match st {
            Some(st) => {
                let (mean, scale) = fit
                    .parameter_features
                    .get(p)
                    .copied()
                    .flatten()
                    .and_then(|j| st.get(j))
                    .map(|(m, s)| (format!("{m:e}"), format!("{s:e}")))
                    .unwrap_or_default();
                w.write_record([name.as_str(), &value, &mean, &scale])?;
            }
            None => w.write_record([name.as_str(), &value])?,
        }
    }
    w.into_inner()
        .map_err(|e| anyhow::anyhow!("--params-out: {}", e.error()))
}

fn exit_for(converged: bool) -> ExitCode {
    if converged {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}

/// What the times were measured on: the kernels' vector code (the CPU's widest, or the one
/// `GRADFIT_CPU` capped it to) and rayon's threads (`RAYON_NUM_THREADS`, else the cores).
fn ran_on() -> String {
    format!(
        "{} vector code, {} threads",
        gradfit::cpu::in_use(),
        rayon::current_num_threads()
    )
}

fn report_json(model: ModelKind, fit: &Fit, r: &Report) -> Value {
    let mut v = json!({
        "model": model.name(),
        "solver": r.method.name(),
        "status": r.status.name(),
        "converged": r.converged,
        "iterations": r.iterations,
        "cost_evals": r.cost_evals,
        "gradient_evals": r.gradient_evals,
        "hessian_evals": r.hessian_evals,
        "hessian_vec_evals": r.hessian_vec_evals,
        "cost": r.cost,
        "gradient_norm": r.gradient_norm,
        "gradient_threshold": r.gradient_threshold,
        "seconds": r.seconds,
        "vector_code": gradfit::cpu::in_use().name(),
        "threads": rayon::current_num_threads(),
        "parameters": r.x.as_slice(),
        "parameter_names": fit.parameter_names,
        "standardized": fit.standardization.is_some(),
    });
    if let Some(st) = &fit.standardization {
        v["standardization"] = json!(fit
            .features
            .iter()
            .zip(st)
            .map(|(f, (mean, scale))| json!({"feature": f, "mean": mean, "scale": scale}))
            .collect::<Vec<_>>());
    }
    if let Some(c) = &fit.classes {
        v["classes"] = json!(c);
    }
    if model == ModelKind::LeastSquares {
        v["least_squares_form"] = json!(if r.gram_seconds.is_some() { "gram" } else { "rows" });
    }
    if let Some(t) = r.gram_seconds {
        v["gram_seconds"] = json!(t);
    }
    if let Some(m) = &r.message {
        v["message"] = json!(m);
    }
    if r.damped_iterations > 0 {
        v["damped_iterations"] = json!(r.damped_iterations);
    }
    v
}

/// The most classes the table report lists one by one.
const CLASSES_SHOWN: usize = 20;

fn describe_fit(fit: &Fit, model: ModelKind) -> String {
    let mut s = format!(
        "model           {} ({} {}, {} {})\n",
        model,
        fit.a.nrows(),
        if fit.a.nrows() == 1 { "row" } else { "rows" },
        fit.problem.dim(),
        if fit.problem.dim() == 1 {
            "parameter"
        } else {
            "parameters"
        }
    );
    if let Some(c) = &fit.classes {
        let mut map: Vec<String> = c
            .iter()
            .enumerate()
            .map(|(i, l)| format!("{i} = {l:?}"))
            .collect();
        // many classes (a quantity taken for labels, say): the first and the last, and how
        // many (the JSON report lists them all)
        if map.len() > CLASSES_SHOWN {
            let last = map.pop().unwrap_or_default();
            map.truncate(CLASSES_SHOWN - 1);
            map.push(format!("… {} more …", c.len() - CLASSES_SHOWN));
            map.push(last);
        }
        s += &format!("classes         {}\n", map.join(", "));
    }
    if let Some(st) = &fit.standardization {
        s += match fit.parameter_features.contains(&None) {
            true => "standardized    yes: parameters refer to (feature − mean) / scale\n",
            false => "standardized    yes, scaled only (no intercept): parameters refer to feature / scale\n",
        };
        // names padded to the longest, so the columns line up
        let width = fit
            .features
            .iter()
            .map(|f| f.chars().count())
            .max()
            .unwrap_or(0)
            .max(14);
        for (f, (mean, scale)) in fit.features.iter().zip(st) {
            s += &format!("  {f:<width$} mean {mean:>14.6e}  scale {scale:>14.6e}\n");
        }
    }
    s
}

/// `--gram on` with a model other than least squares is a mistake worth naming.
/// `--memory` with no solver that keeps L-BFGS pairs is a mistake worth naming, as `--gram on`
/// with a model that has no Gram form is.
fn check_memory(memory: Option<u64>, solvers: &[Method]) -> Result<()> {
    let keeps = |m: &Method| matches!(m, Method::Lbfgs | Method::ArgminLbfgs);
    if let (Some(m), false) = (memory, solvers.iter().any(keeps)) {
        let names: Vec<&str> = solvers.iter().map(|s| s.name()).collect();
        bail!(
            "--memory {m}: only lbfgs and argmin-lbfgs keep L-BFGS pairs (the solver{} {})",
            if names.len() == 1 { " is" } else { "s are" },
            names.join(", ")
        );
    }
    Ok(())
}

fn check_gram(gram: GramMode, model: ModelKind) -> Result<()> {
    if gram == GramMode::On && model != ModelKind::LeastSquares {
        bail!("--gram on: only least squares has a Gram form (the model is {model})");
    }
    Ok(())
}

fn run_solve(a: SolveArgs) -> Result<ExitCode> {
    check_gram(a.run.gram, a.data.model)?;
    check_memory(a.run.memory, &[a.solver])?;
    let fit = a.data.load()?;
    let x0 = a.run.start_point(&fit)?;
    let opts = a.run.options(a.solver, a.trace.is_some())?;
    let r = a.run.best_of(&fit, &x0, &opts)?;
    // files first, so that stdout never describes files that failed to be written
    let mut files: Vec<(&Path, &str, Vec<u8>)> = Vec::new();
    if let Some(path) = &a.trace {
        let mut s = String::from("iteration,cost,gradient_norm,step,seconds\n");
        // a value the method does not have (the step at x₀, or from a solver that reports
        // none; a gradient norm where it keeps no gradient) is an empty field, not NaN
        let field = |v: f64| match v.is_nan() {
            true => String::new(),
            false => format!("{v:e}"),
        };
        for t in r.trace.iter().flatten() {
            s += &format!(
                "{},{:e},{},{},{:e}\n",
                t.iteration,
                t.cost,
                field(t.gradient_norm),
                field(t.step),
                t.elapsed
            );
        }
        files.push((path, "--trace", s.into_bytes()));
    }
    if let Some(path) = &a.params_out {
        files.push((path, "--params-out", params_csv(&fit, &r.x)?));
    }
    write_all_or_none(&files, &a.inputs())?;
    match a.format {
        Format::Json => {
            let mut v = report_json(a.data.model, &fit, &r);
            v["repeats"] = json!(a.run.repeat);
            outln!("{v}");
        }
        Format::Table => {
            out!("{}", describe_fit(&fit, a.data.model));
            outln!("{r}");
            outln!("ran on          {}", ran_on());
            if a.run.repeat > 1 {
                outln!("(time: the fastest of {} runs)", a.run.repeat);
            }
            outln!("parameters");
            let width = fit.parameter_names.iter().map(|n| n.len()).max().unwrap_or(4);
            for (n, v) in fit.parameter_names.iter().zip(r.x.iter()) {
                outln!("  {n:<width$}  {v:>16.9e}");
            }
        }
    }
    Ok(exit_for(r.converged))
}

fn run_compare(a: CompareArgs) -> Result<ExitCode> {
    check_gram(a.run.gram, a.data.model)?;
    check_memory(a.run.memory, &a.solvers)?;
    let fit = a.data.load()?;
    if a.solvers.is_empty() {
        bail!("--solvers: name at least one solver");
    }
    if let Some((i, m)) = a
        .solvers
        .iter()
        .enumerate()
        .find(|(i, m)| a.solvers[..*i].contains(m))
    {
        bail!(
            "--solvers: {m} is named twice (at {} and {})",
            a.solvers.iter().position(|x| x == m).unwrap_or(0) + 1,
            i + 1
        );
    }
    let x0 = a.run.start_point(&fit)?;
    let (mut reports, mut failed) = (Vec::new(), Vec::new());
    for &method in &a.solvers {
        let opts = a.run.options(method, a.plot.is_some())?;
        // a failure of this solver alone (its memory, argmin's own errors) is a row of the
        // comparison, and the others still run; a failure of the data or the start, which
        // every solver would meet, stops the run
        match a.run.best_of(&fit, &x0, &opts) {
            Ok(r) => reports.push(r),
            Err(e) => match e.downcast_ref::<gradfit::Error>() {
                // the message alone: the row and the lines below name the solver
                Some(gradfit::Error::Solver { message, .. } | gradfit::Error::Memory { message, .. }) => {
                    failed.push((method, message.clone()))
                }
                _ => return Err(e),
            },
        }
    }
    // in the order of --solvers, a failed solver's entry holding its error
    let entries = || -> Value {
        let entry = |m: &Method| match reports.iter().find(|r| r.method == *m) {
            Some(r) => {
                let mut v = report_json(a.data.model, &fit, r);
                v["repeats"] = json!(a.run.repeat);
                Some(v)
            }
            None => failed
                .iter()
                .find(|(f, _)| f == m)
                .map(|(f, e)| json!({"solver": f.name(), "status": "error", "error": e})),
        };
        Value::Array(a.solvers.iter().filter_map(entry).collect())
    };
    if reports.is_empty() {
        // nothing to compare: the JSON still says which failed and why
        if a.format == Format::Json {
            outln!("{}", entries());
        }
        let all: Vec<String> = failed.iter().map(|(m, e)| format!("{m}: {e}")).collect();
        bail!("every solver failed: {}", all.join("; "));
    }
    let best = reports.iter().map(|r| r.cost).fold(f64::INFINITY, f64::min);
    // an error of the run leaves no output file: with a solver failed, no plot
    match (&a.plot, failed.first()) {
        (Some(path), None) => {
            let svg = plot(&reports, best, &format!("{} — {}", a.data.name(), a.data.model))?;
            write_all_or_none(&[(path, "--plot", svg.into_bytes())], &a.inputs())?;
        }
        (Some(path), Some((method, _))) => eprintln!(
            "note: --plot {} not written: {method} failed (leave it out of --solvers to plot the others)",
            path.display()
        ),
        (None, _) => {}
    }
    match a.format {
        Format::Json => outln!("{}", entries()),
        Format::Table => {
            out!("{}", describe_fit(&fit, a.data.model));
            outln!(
                "{:<13} {:<21} {:>6} {:>8} {:>8} {:>7} {:>11} {:>20} {:>10} {:>10}",
                "solver",
                "status",
                "iters",
                "f evals",
                "g evals",
                "H evals",
                "seconds",
                "cost",
                "gap",
                "|grad|"
            );
            for m in &a.solvers {
                let Some(r) = reports.iter().find(|r| r.method == *m) else {
                    outln!("{:<13} {:<21} (below)", m.name(), "error");
                    continue;
                };
                outln!(
                    "{:<13} {:<21} {:>6} {:>8} {:>8} {:>7} {:>11.6} {:>20.12e} {:>10.2e} {:>10.2e}",
                    r.method.name(),
                    r.status.name(),
                    r.iterations,
                    r.cost_evals,
                    r.gradient_evals,
                    r.hessian_evals + r.hessian_vec_evals,
                    r.seconds,
                    r.cost,
                    r.cost - best,
                    r.gradient_norm
                );
            }
            let gram: Vec<&str> = reports
                .iter()
                .filter(|r| r.gram_seconds.is_some())
                .map(|r| r.method.name())
                .collect();
            if !gram.is_empty() {
                outln!(
                    "({} in the Gram form, --gram {}: AᵀA formed and factored inside the time)",
                    gram.join(", "),
                    a.run.gram
                );
            }
            outln!("(ran on {})", ran_on());
            if a.run.repeat > 1 {
                outln!("(seconds: each solver's fastest of {} runs)", a.run.repeat);
            }
            for r in &reports {
                if let Some(m) = &r.message {
                    outln!("{}: {m}", r.method.name());
                }
                if let Some(c) = &r.gradient_check {
                    outln!("{}: gradient check {c}", r.method.name());
                }
            }
            for (method, e) in &failed {
                outln!("{}: error: {e}", method.name());
            }
        }
    }
    // a solver that failed is an error of the run, after the others' results
    if let Some((method, e)) = failed.first() {
        eprintln!("error: {method} failed: {e}");
        return Ok(ExitCode::from(1));
    }
    Ok(exit_for(reports.iter().all(|r| r.converged)))
}

/// The comparison plot: log₁₀(f − f_best) and log₁₀‖∇f‖ against iteration and against time.
fn plot(reports: &[Report], best: f64, title: &str) -> Result<String> {
    use plotters::prelude::*;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1200, 900)).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(&format!("gradfit compare: {title}"), ("sans-serif", 22))?;
        let panels = root.split_evenly((2, 2));
        let floor = 1e-16 * best.abs().max(1.0);
        let series = |r: &Report, by_time: bool, gap: bool| -> Vec<(f64, f64)> {
            r.trace
                .iter()
                .flatten()
                .map(|t| {
                    let x = if by_time { t.elapsed } else { t.iteration as f64 };
                    let y = if gap {
                        (t.cost - best).max(floor).log10()
                    } else {
                        t.gradient_norm.max(1e-300).log10()
                    };
                    (x, y)
                })
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect()
        };
        let specs = [
            (false, true, "iteration", "log10(f − f_best)"),
            (false, false, "iteration", "log10 ‖∇f‖"),
            (true, true, "seconds", "log10(f − f_best)"),
            (true, false, "seconds", "log10 ‖∇f‖"),
        ];
        for (panel, (by_time, gap, xl, yl)) in panels.iter().zip(specs) {
            let all: Vec<Vec<(f64, f64)>> = reports.iter().map(|r| series(r, by_time, gap)).collect();
            let pts = all.iter().flatten();
            let (mut x0, mut x1, mut y0, mut y1) = (0.0f64, 1e-9f64, f64::INFINITY, f64::NEG_INFINITY);
            for (x, y) in pts {
                x0 = x0.min(*x);
                x1 = x1.max(*x);
                y0 = y0.min(*y);
                y1 = y1.max(*y);
            }
            if !y0.is_finite() {
                (y0, y1) = (0.0, 1.0);
            }
            let pad = ((y1 - y0) * 0.05).max(0.1);
            let mut chart = ChartBuilder::on(panel)
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(60)
                .caption(format!("{yl} against {xl}"), ("sans-serif", 16))
                .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))?;
            chart.configure_mesh().x_desc(xl).y_desc(yl).draw()?;
            for (i, (r, s)) in reports.iter().zip(all).enumerate() {
                let color = Palette99::pick(i).to_rgba();
                chart
                    .draw_series(LineSeries::new(s, color.stroke_width(2)))?
                    .label(r.method.name())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()?;
        }
        root.present()?;
    }
    Ok(svg)
}

fn run_check(a: CheckArgs) -> Result<ExitCode> {
    let fit = a.data.load()?;
    let tol = Tolerance { rel: a.tol };
    let n = fit.problem.dim();
    let typical = typical_scale(&fit);
    let mut points = Vec::new();
    let mut all_passed = true;
    for k in 0..a.points {
        let seed = a.seed.wrapping_add(k);
        let x = random_point(&fit, seed);
        let grad = if n <= 2000 {
            check_gradient_scaled(&fit.problem, &x, tol, Some(&typical))?
        } else {
            check_directional(&fit.problem, &x, 20, seed, tol)?
        };
        let hess = if n <= 400 {
            Some(check_hessian_scaled(&fit.problem, &x, tol, Some(&typical))?)
        } else {
            None
        };
        let study = order_study(&fit.problem, &x, seed)?;
        let passed = grad.passed && hess.as_ref().is_none_or(|h| h.passed);
        all_passed &= passed;
        points.push((grad, hess, study, passed));
    }
    match a.format {
        Format::Json => {
            let pts: Vec<Value> = points
                .iter()
                .map(|(g, h, s, passed)| {
                    json!({
                        "passed": passed,
                        "gradient_max_rel_error": g.max_rel_error,
                        // a directional check's worst is a direction, not a parameter
                        "gradient_worst_index": (!g.is_directional()).then_some(g.worst.0),
                        "gradient_worst_direction": g.is_directional().then_some(g.worst.0),
                        "gradient_within_noise": g.within_noise,
                        "gradient_unverified": g.unverified,
                        "hessian_max_rel_error": h.as_ref().map(|h| h.entries.max_rel_error),
                        "hessian_within_noise": h.as_ref().map(|h| h.entries.within_noise),
                        "hessian_symmetry_error": h.as_ref().map(|h| h.symmetry_error),
                        "central_order": s.central_order,
                        "forward_order": s.forward_order,
                    })
                })
                .collect();
            outln!(
                "{}",
                json!({"model": a.data.model.name(), "parameters": n, "tolerance": a.tol, "passed": all_passed, "points": pts})
            );
        }
        Format::Table => {
            out!("{}", describe_fit(&fit, a.data.model));
            outln!("tolerance       {:.1e} relative", a.tol);
            for (i, (g, h, s, passed)) in points.iter().enumerate() {
                outln!("point {i}: {}", if *passed { "passed" } else { "FAILED" });
                match g.is_directional() {
                    true => outln!("  {g}"),
                    false => {
                        let name = fit
                            .parameter_names
                            .get(g.worst.0)
                            .map(String::as_str)
                            .unwrap_or("?");
                        outln!("  {g} ({name})");
                    }
                }
                match h {
                    Some(h) => outln!("  {h}"),
                    None => outln!("  Hessian not checked entry by entry: {n} parameters > 400"),
                }
                let order = |o: Option<f64>| {
                    o.map(|v| format!("{v:.2}")).unwrap_or_else(|| {
                        "exact (no truncation error: f is quadratic along the direction)".into()
                    })
                };
                outln!(
                    "  error order     central {} (theory 2), forward {} (theory 1)",
                    order(s.central_order),
                    order(s.forward_order)
                );
            }
            let unverified: usize = points.iter().map(|(g, ..)| g.unverified).sum();
            match (all_passed, unverified) {
                (true, 0) => outln!("all checks passed"),
                (true, u) => outln!(
                    "all checks passed, but {u} gradient {} UNVERIFIED: the difference quotients there are too noisy to tell",
                    if u == 1 { "entry is" } else { "entries are" }
                ),
                (false, _) => outln!("some checks FAILED"),
            }
        }
    }
    Ok(if all_passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn run_generate(a: GenerateArgs) -> Result<ExitCode> {
    let to_usize =
        |name: &str, v: u64| usize::try_from(v).with_context(|| format!("--{name} {v} is too large"));
    match (a.model, a.classes) {
        (ModelKind::Softmax, _) | (ModelKind::Logistic, Some(2)) | (_, None) => {}
        (ModelKind::Logistic, Some(k)) => {
            bail!("--classes {k}: logistic has two classes; softmax takes --classes")
        }
        (model, Some(k)) => bail!("--classes {k}: the {model} model has no classes; softmax takes --classes"),
    }
    if let (Some(c), 1) = (a.condition, a.cols) {
        if c != 1.0 {
            bail!("--condition {c}: a problem of one column has condition 1 (give --cols 2 or more)");
        }
    }
    let spec = Spec {
        rows: to_usize("rows", a.rows)?,
        cols: to_usize("cols", a.cols)?,
        classes: to_usize("classes", a.classes.unwrap_or(3))?,
        condition: a.condition.unwrap_or(10.0),
        seed: a.seed,
    };
    if spec.rows.saturating_mul(spec.cols.max(spec.classes)) > 250_000_000 {
        bail!(
            "--rows {} × --cols {}: more than 250 million values (2 GB); make a smaller instance",
            a.rows,
            a.cols
        );
    }
    let d = generate(a.model, &spec)?;
    d.write_csv(&a.output)?;
    let plural = |k: usize, one: &str, many: &str| format!("{k} {}", if k == 1 { one } else { many });
    eprintln!(
        "wrote {} ({}, {} and y) for {}",
        a.output.display(),
        plural(d.a.nrows(), "row", "rows"),
        plural(d.a.ncols(), "feature column", "feature columns"),
        a.model
    );
    if let (ModelKind::Logistic, Some(first)) = (a.model, d.target.iter().next()) {
        if d.target.iter().all(|y| y == first) {
            eprintln!(
                "note: every label is {first}: with so few rows only one class was drawn, and logistic on \
                 this file refuses it (it needs both)"
            );
        }
    }
    if a.model == ModelKind::Softmax {
        // labels are drawn at random: with few rows some classes may not appear at all
        let mut seen = vec![false; spec.classes];
        for y in d.target.iter() {
            if let Some(s) = seen.get_mut(*y as usize) {
                *s = true;
            }
        }
        let present = seen.iter().filter(|s| **s).count();
        if present < spec.classes {
            eprintln!(
                "note: the labels hold {} of the {} classes asked for (too few rows to draw them all); \
                 softmax on this file sees only those",
                present, spec.classes
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
