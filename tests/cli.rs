//! The built binary on the shipped problems and on bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn gradfit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gradfit"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the gradfit binary runs")
}

/// gradfit with `input` on its standard input.
fn gradfit_with_stdin(args: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_gradfit"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the gradfit binary runs");
    let mut stdin = child.stdin.take().expect("a piped stdin");
    // gradfit may stop reading early (an error), so a broken pipe here is not a failure
    let _ = stdin.write_all(input);
    drop(stdin);
    child.wait_with_output().expect("gradfit exits")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> Value {
    serde_json::from_str(&stdout(o))
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(o), stderr(o)))
}

/// Every shipped problem with the options its README line uses.
const PROBLEMS: &[(&str, &[&str])] = &[
    (
        "problems/diabetes.csv",
        &["--model", "least-squares", "--intercept"],
    ),
    (
        "problems/diabetes.csv",
        &[
            "--model",
            "least-squares",
            "--intercept",
            "--standardize",
            "--l2",
            "10",
        ],
    ),
    (
        "problems/breast_cancer.csv",
        &["--model", "logistic", "--intercept", "--standardize", "--l2", "1"],
    ),
    // raw features from 1e-3 to 4e3: the checker must still pass correct derivatives
    (
        "problems/breast_cancer.csv",
        &["--model", "logistic", "--intercept", "--l2", "1"],
    ),
    (
        "problems/iris.csv",
        &["--model", "softmax", "--intercept", "--l2", "0.1"],
    ),
    ("problems/ill_conditioned_ls.csv", &["--model", "least-squares"]),
    ("problems/nonsymmetric_quadratic.csv", &["--model", "quadratic"]),
    ("problems/log_sum_exp.csv", &["--model", "log-sum-exp"]),
];

#[test]
fn every_problem_file_is_covered() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("problems");
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".csv") {
            assert!(
                PROBLEMS.iter().any(|(f, _)| f.ends_with(&name)),
                "{name} has no test"
            );
        }
    }
}

#[test]
fn solve_converges_on_every_problem_and_check_passes() {
    for (file, opts) in PROBLEMS {
        let mut args = vec!["solve", file, "--solver", "newton", "--format", "json"];
        args.extend_from_slice(opts);
        let o = gradfit(&args);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{file} {opts:?}: {}{}",
            stdout(&o),
            stderr(&o)
        );
        let v = json(&o);
        assert_eq!(v["status"], "converged");
        assert_eq!(v["converged"], true);
        let names = v["parameter_names"].as_array().unwrap();
        assert_eq!(names.len(), v["parameters"].as_array().unwrap().len());
        for key in [
            "model",
            "solver",
            "iterations",
            "cost_evals",
            "gradient_evals",
            "hessian_evals",
            "cost",
            "gradient_norm",
            "seconds",
        ] {
            assert!(!v[key].is_null(), "{key} missing");
        }
        let mut args = vec!["check", file, "--format", "json"];
        args.extend_from_slice(opts);
        let o = gradfit(&args);
        assert_eq!(
            o.status.code(),
            Some(0),
            "check {file} {opts:?}: {}{}",
            stdout(&o),
            stderr(&o)
        );
        let v = json(&o);
        assert_eq!(v["passed"], true);
        assert_eq!(v["points"].as_array().unwrap().len(), 3);
    }
}

/// Reads a CSV of numbers with plain string splitting: independent of gradfit's reader.
fn plain_csv(path: &str) -> (Vec<String>, Vec<Vec<f64>>) {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap().split(',').map(str::to_string).collect();
    let rows = lines
        .map(|l| l.split(',').map(|c| c.parse().unwrap()).collect())
        .collect();
    (header, rows)
}

/// [A, 1], b and the x minimizing ‖[A, 1]x − b‖ for a CSV whose last column is b, by
/// nalgebra's SVD (not by any gradfit code).
fn direct_least_squares(
    file: &str,
) -> (
    nalgebra::DMatrix<f64>,
    nalgebra::DVector<f64>,
    nalgebra::DVector<f64>,
) {
    let (header, rows) = plain_csv(file);
    let n = header.len() - 1;
    let a = nalgebra::DMatrix::from_fn(rows.len(), n + 1, |i, j| if j < n { rows[i][j] } else { 1.0 });
    let b = nalgebra::DVector::from_fn(rows.len(), |i, _| rows[i][n]);
    let x_star = a.clone().svd(true, true).solve(&b, 1e-14).unwrap();
    (a, b, x_star)
}

#[test]
fn least_squares_json_matches_the_direct_solution() {
    for file in ["problems/diabetes.csv", "problems/ill_conditioned_ls.csv"] {
        let (a, b, x_star) = direct_least_squares(file);
        // every solver in both forms of least squares: the rows, and AᵀA factored once
        for (solver, gram) in [
            ("newton", "auto"),
            ("newton", "on"),
            ("lbfgs", "auto"),
            ("lbfgs", "off"),
            ("bfgs", "on"),
            ("newton-cg", "on"),
        ] {
            let o = gradfit(&[
                "solve",
                file,
                "--model",
                "least-squares",
                "--intercept",
                "--solver",
                solver,
                "--gram",
                gram,
                "--tol",
                "1e-12",
                "--max-iters",
                "200000",
                "--format",
                "json",
            ]);
            let v = json(&o);
            assert_eq!(v["status"], "converged", "{file} {solver}: {v}");
            // auto: the Gram form for the first-order methods on these tall problems only
            let want = if gram == "on" || (gram == "auto" && solver != "newton") {
                "gram"
            } else {
                "rows"
            };
            assert_eq!(v["least_squares_form"], want, "{file} {solver} --gram {gram}");
            assert_eq!(v["gram_seconds"].is_number(), want == "gram");
            let x: Vec<f64> = v["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_f64().unwrap())
                .collect();
            let err = x
                .iter()
                .zip(x_star.iter())
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(
                err <= 1e-6 * x_star.amax(),
                "{file} {solver} --gram {gram}: max error {err}"
            );
            // the reported cost is the rows' residual at the reported x
            let xv = nalgebra::DVector::from_vec(x);
            let cost = (&a * &xv - &b).norm_squared();
            let reported = v["cost"].as_f64().unwrap();
            assert!(
                (reported - cost).abs() <= 1e-10 * cost,
                "{file} {solver}: cost {reported} vs {cost}"
            );
            assert_eq!(
                v["parameter_names"].as_array().unwrap().last().unwrap(),
                "intercept"
            );
        }
    }
    // --gram applies to least squares only, and takes auto, on or off
    let o = gradfit(&["solve", "problems/iris.csv", "--model", "softmax", "--gram", "on"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("--gram on: only least squares"),
        "{}",
        stderr(&o)
    );
    let o = gradfit(&[
        "solve",
        "problems/diabetes.csv",
        "--model",
        "least-squares",
        "--gram",
        "yes",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("auto, on, off"), "{}", stderr(&o));
}

#[test]
fn memory_sets_the_lbfgs_pairs_and_both_reach_the_direct_solution() {
    // diabetes' raw columns are ill-conditioned: the number of pairs kept matters
    let file = "problems/diabetes.csv";
    let (_, _, x_star) = direct_least_squares(file);
    let mut iterations = Vec::new();
    // argmin's own L-BFGS stops on a failed line search here with fewer than 5 pairs, or
    // below a tolerance of 1e-10
    for (solver, memory, tol) in [
        ("lbfgs", "1", "1e-12"),
        ("lbfgs", "30", "1e-12"),
        ("argmin-lbfgs", "5", "1e-10"),
        ("argmin-lbfgs", "30", "1e-10"),
    ] {
        let o = gradfit(&[
            "solve",
            file,
            "--model",
            "least-squares",
            "--intercept",
            "--gram",
            "off",
            "--solver",
            solver,
            "--memory",
            memory,
            "--tol",
            tol,
            "--max-iters",
            "200000",
            "--format",
            "json",
        ]);
        let v = json(&o);
        assert_eq!(v["status"], "converged", "{solver} --memory {memory}: {v}");
        let err = v["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .zip(x_star.iter())
            .map(|(p, want)| (p.as_f64().unwrap() - want).abs())
            .fold(0.0, f64::max);
        let within = if tol == "1e-12" { 1e-6 } else { 1e-4 };
        assert!(
            err <= within * x_star.amax(),
            "{solver} --memory {memory}: max error {err}"
        );
        iterations.push(v["iterations"].as_u64().unwrap());
    }
    // a few pairs model the Hessian far worse than thirty on this condition number
    assert!(
        iterations[0] > 10 * iterations[1],
        "lbfgs iterations {iterations:?}"
    );
    assert!(
        iterations[2] > 10 * iterations[3],
        "argmin-lbfgs iterations {iterations:?}"
    );
    // 1 to 1000 pairs; the error names the option
    for bad in ["0", "1001", "-3", "ten"] {
        let o = gradfit(&["solve", file, "--model", "least-squares", "--memory", bad]);
        assert_eq!(o.status.code(), Some(1), "--memory {bad}");
        assert!(stderr(&o).contains("--memory"), "--memory {bad}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    }
}

#[test]
fn dash_reads_the_data_from_standard_input() {
    let file = "problems/breast_cancer.csv";
    let args = |data: &'static str| -> Vec<&'static str> {
        vec![
            "solve",
            data,
            "--model",
            "logistic",
            "--intercept",
            "--standardize",
            "--l2",
            "1",
            "--format",
            "json",
        ]
    };
    let from_file = json(&gradfit(&args(file)));
    let piped = gradfit_with_stdin(&args("-"), &std::fs::read(file).unwrap());
    assert_eq!(piped.status.code(), Some(0), "{}", stderr(&piped));
    let from_stdin = json(&piped);
    assert_eq!(from_stdin["status"], "converged");
    // the same data, so the same fit to the bit
    assert_eq!(from_stdin["parameters"], from_file["parameters"]);
    assert_eq!(from_stdin["cost"], from_file["cost"]);
    // errors name <stdin> with the line and column
    let o = gradfit_with_stdin(&["solve", "-", "--model", "least-squares"], b"a,y\n1,2\n3,x\n");
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("<stdin>: line 3") && err.contains("\"y\""), "{err}");
    let o = gradfit_with_stdin(&["check", "-", "--model", "least-squares"], b"");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("<stdin>: line 1"), "{}", stderr(&o));
}

#[test]
fn repeat_reports_the_fastest_of_identical_runs() {
    let args = [
        "solve",
        "problems/breast_cancer.csv",
        "--model",
        "logistic",
        "--standardize",
        "--l2",
        "1",
        "--format",
        "json",
    ];
    let once = json(&gradfit(&args));
    let mut repeated = args.to_vec();
    repeated.extend(["--repeat", "3"]);
    let thrice = json(&gradfit(&repeated));
    assert_eq!(thrice["repeats"], 3);
    assert_eq!(once["repeats"], 1);
    // every run is the same computation: same iterations, cost and parameters to the bit
    for key in ["status", "iterations", "cost_evals", "cost", "parameters"] {
        assert_eq!(once[key], thrice[key], "{key}");
    }
}

#[test]
fn generate_says_when_classes_are_missing_from_the_labels() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("few.csv");
    let o = gradfit(&[
        "generate",
        "softmax",
        "--rows",
        "2",
        "--cols",
        "1",
        "--classes",
        "5",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // two rows hold at most two of the five classes
    assert!(
        stderr(&o).contains("of the 5 classes asked for"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("(2 rows, 1 feature column and y)"),
        "{}",
        stderr(&o)
    );
    // logistic from one row: one class, which the note names and solve then refuses
    let o = gradfit(&[
        "generate",
        "logistic",
        "--rows",
        "1",
        "--cols",
        "2",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let label = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .rsplit(',')
        .next()
        .unwrap()
        .to_string();
    assert!(
        stderr(&o).contains(&format!(
            "note: every label is {label}: with so few rows only one class"
        )),
        "{}",
        stderr(&o)
    );
    let o = gradfit(&["solve", out.to_str().unwrap(), "--model", "logistic"]);
    assert!(stderr(&o).contains("exactly 2 classes"), "{}", stderr(&o));
    // two rows that drew both classes get no note
    for seed in 0..20 {
        let seed = seed.to_string();
        let o = gradfit(&[
            "generate",
            "logistic",
            "--rows",
            "2",
            "--cols",
            "2",
            "--seed",
            &seed,
            "-o",
            out.to_str().unwrap(),
        ]);
        let text = std::fs::read_to_string(&out).unwrap();
        let labels: std::collections::BTreeSet<&str> = text
            .lines()
            .skip(1)
            .map(|l| l.rsplit(',').next().unwrap())
            .collect();
        assert_eq!(
            stderr(&o).contains("note: every label"),
            labels.len() == 1,
            "seed {seed}: {}",
            stderr(&o)
        );
    }
}

#[test]
fn a_correct_gradient_on_raw_features_is_not_called_wrong() {
    // logistic regression on the raw breast-cancer features at λ = 0 stops at lbfgs's iteration
    // limit with large curvature at x: the directional check that follows a failed run must
    // resolve the gradient (with two steps it called it "probably wrong")
    let o = gradfit(&[
        "solve",
        "problems/breast_cancer.csv",
        "--model",
        "logistic",
        "--intercept",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("status          max-iterations"), "{out}");
    assert!(out.contains("gradient check  directional derivative ok"), "{out}");
    assert!(!out.contains("probably wrong"), "{out}");
}

#[test]
fn generate_refuses_classes_a_model_does_not_have() {
    let dir = std::env::temp_dir().join(format!("gradfit-cli-classes-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("g.csv");
    let out = out.to_str().unwrap();
    let run = |model: &str, classes: &str| {
        gradfit(&[
            "generate",
            model,
            "--rows",
            "40",
            "--cols",
            "3",
            "--classes",
            classes,
            "-o",
            out,
        ])
    };
    for (model, classes, refusal) in [
        ("logistic", "5", "--classes 5: logistic has two classes"),
        (
            "least-squares",
            "3",
            "--classes 3: the least-squares model has no classes",
        ),
    ] {
        let o = run(model, classes);
        assert_eq!(o.status.code(), Some(1), "{model}");
        assert!(stderr(&o).contains(refusal), "{}", stderr(&o));
        assert!(!Path::new(out).exists(), "{model}: a file was written");
    }
    for (model, classes, labels) in [("logistic", "2", 2), ("softmax", "4", 4)] {
        let o = run(model, classes);
        assert!(o.status.success(), "{model}: {}", stderr(&o));
        let (_, rows) = plain_csv(out);
        let mut seen: Vec<i64> = rows.iter().map(|r| *r.last().unwrap() as i64).collect();
        seen.sort();
        seen.dedup();
        assert!(
            seen.len() <= labels && seen.iter().all(|&c| c >= 0 && c < labels as i64),
            "{model}: {seen:?}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_solver_list_may_have_spaces_after_its_commas() {
    let o = gradfit(&[
        "compare",
        "problems/diabetes.csv",
        "--model",
        "least-squares",
        "--solvers",
        "lbfgs, newton",
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json(&o);
    let methods: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["solver"].as_str().unwrap())
        .collect();
    assert_eq!(methods, ["lbfgs", "newton"]);
}

#[test]
fn cg_restarts_rather_than_failing_its_line_search_on_raw_features() {
    // logistic regression on the raw breast-cancer features at λ = 1: without Powell's restart,
    // CG's third direction was not one of descent, and the run stopped at a cost of 416
    let o = gradfit(&[
        "solve",
        "problems/breast_cancer.csv",
        "--model",
        "logistic",
        "--intercept",
        "--l2",
        "1",
        "--solver",
        "cg",
        "--format",
        "json",
    ]);
    let v = json(&o);
    assert_ne!(v["status"], "line-search-failed", "{v}");
    assert!(v["cost"].as_f64().unwrap() < 100.0, "{}", v["cost"]);
}

#[test]
fn the_standardization_table_lines_up_and_holds_the_columns_means() {
    // breast-cancer feature names run to 23 characters: each row of the table starts its
    // "mean" column at the same place, and holds the column's mean (to the six digits shown)
    let (header, rows) = plain_csv("problems/breast_cancer.csv");
    let o = gradfit(&[
        "solve",
        "problems/breast_cancer.csv",
        "--model",
        "logistic",
        "--intercept",
        "--standardize",
        "--l2",
        "1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let table: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("standardized"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .collect();
    let features = &header[..header.len() - 1];
    assert_eq!(table.len(), features.len(), "{out}");
    let column = |l: &str| {
        l.chars()
            .collect::<Vec<_>>()
            .windows(6)
            .position(|w| w.iter().collect::<String>() == " mean ")
    };
    let first = column(table[0]);
    for (line, name) in table.iter().zip(features) {
        assert_eq!(column(line), first, "{line}");
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields[0], name.as_str());
        let mean: f64 = fields[2].parse().unwrap();
        let j = header.iter().position(|h| h == name).unwrap();
        let want = rows.iter().map(|r| r[j]).sum::<f64>() / rows.len() as f64;
        assert!(
            (mean - want).abs() <= 1e-6 * want.abs(),
            "{name}: {mean} against {want}"
        );
    }
}

#[test]
fn ridge_does_not_shrink_the_intercept() {
    // standardized features have mean 0, so the unpenalized intercept is exactly mean(y)
    let (_, rows) = plain_csv("problems/diabetes.csv");
    let mean_y = rows.iter().map(|r| r[10]).sum::<f64>() / rows.len() as f64;
    let o = gradfit(&[
        "solve",
        "problems/diabetes.csv",
        "--model",
        "least-squares",
        "--intercept",
        "--standardize",
        "--l2",
        "1000",
        "--solver",
        "newton",
        "--format",
        "json",
    ]);
    let v = json(&o);
    let x = v["parameters"].as_array().unwrap();
    let intercept = x.last().unwrap().as_f64().unwrap();
    assert!(
        (intercept - mean_y).abs() < 1e-9 * mean_y,
        "intercept {intercept} vs mean(y) {mean_y}"
    );
    assert_eq!(v["standardization"].as_array().unwrap().len(), 10);
}

#[test]
fn compare_writes_a_plot_and_a_row_per_solver() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("cmp.svg");
    let o = gradfit(&[
        "compare",
        "problems/iris.csv",
        "--model",
        "softmax",
        "--intercept",
        "--l2",
        "0.1",
        "--solvers",
        "newton,lbfgs,bfgs",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    for solver in ["newton", "lbfgs", "bfgs"] {
        assert!(
            stdout(&o).lines().any(|l| l.starts_with(solver)),
            "{}",
            stdout(&o)
        );
    }
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>"));
    for label in [
        "gradfit compare",
        "iteration",
        "seconds",
        "newton",
        "lbfgs",
        "bfgs",
    ] {
        assert!(text.contains(label), "the plot lacks {label:?}");
    }
    // JSON: one report per solver
    let o = gradfit(&[
        "compare",
        "problems/iris.csv",
        "--model",
        "softmax",
        "--intercept",
        "--l2",
        "0.1",
        "--format",
        "json",
    ]);
    let v = json(&o);
    assert_eq!(v.as_array().unwrap().len(), 3);
}

#[test]
fn compare_starts_every_solver_at_x0_and_repeats() {
    // the least-squares optimum by nalgebra's SVD, written as --x0: every solver starts there,
    // stops at once, and reports the optimum's cost
    let file = "problems/diabetes.csv";
    let (a, b, x_star) = direct_least_squares(file);
    let best = (&a * &x_star - &b).norm_squared();
    let dir = tempfile::tempdir().unwrap();
    let x0 = dir.path().join("x0.csv");
    let values: Vec<String> = x_star.iter().map(|v| format!("{v:e}")).collect();
    std::fs::write(&x0, format!("x\n{}\n", values.join("\n"))).unwrap();
    let base = [
        "compare",
        file,
        "--model",
        "least-squares",
        "--intercept",
        "--solvers",
        "gd,newton,lbfgs,newton-cg",
        "--x0",
        x0.to_str().unwrap(),
    ];
    let mut args = base.to_vec();
    args.extend(["--repeat", "2", "--time-limit", "60", "--format", "json"]);
    let o = gradfit(&args);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let v = json(&o);
    let reports = v.as_array().unwrap();
    assert_eq!(reports.len(), 4);
    for r in reports {
        assert_eq!(r["status"], "converged", "{r}");
        assert!(r["iterations"].as_u64().unwrap() <= 1, "{r}");
        assert_eq!(r["repeats"], 2);
        let cost = r["cost"].as_f64().unwrap();
        assert!((cost - best).abs() <= 1e-9 * best, "{cost} vs {best}");
    }
    // the table says the times are a best of N
    let mut args = base.to_vec();
    args.extend(["--repeat", "2"]);
    let o = gradfit(&args);
    assert!(stdout(&o).contains("fastest of 2 runs"), "{}", stdout(&o));
    // an --x0 of the wrong length names the file and the parameters
    std::fs::write(&x0, "x\n1\n2\n").unwrap();
    let o = gradfit(&base);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("x0.csv") && stderr(&o).contains("--x0 has 2 values, the model has 11"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn gram_auto_says_when_it_solves_on_the_rows() {
    // c = a + b exactly: AᵀA is singular, so --gram auto cannot factor it and must say that it
    // solved on the rows; y = 1 + 2a − b fits exactly, so the optimum's cost is 0
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("dependent.csv");
    let mut text = String::from("a,b,c,y\n");
    for i in 0..40 {
        let (x, z) = (f64::from(i % 7) - 3.0, f64::from((i * 5) % 11) - 5.0);
        text += &format!("{x},{z},{},{}\n", x + z, 1.0 + 2.0 * x - z);
    }
    std::fs::write(&data, text).unwrap();
    let path = data.to_str().unwrap();
    let o = gradfit(&[
        "solve",
        path,
        "--model",
        "least-squares",
        "--intercept",
        "--tol",
        "1e-10",
        "--format",
        "json",
    ]);
    let v = json(&o);
    assert_eq!(v["status"], "converged", "{v}");
    assert_eq!(v["least_squares_form"], "rows", "{v}");
    assert!(v["cost"].as_f64().unwrap() < 1e-12, "{v}");
    let message = v["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("solved on the rows, not in the Gram form (--gram auto)") && message.contains("AᵀA"),
        "{v}"
    );
    // compare prints the same detail under its table
    let o = gradfit(&[
        "compare",
        path,
        "--model",
        "least-squares",
        "--intercept",
        "--solvers",
        "lbfgs",
    ]);
    assert!(
        stdout(&o).contains("lbfgs: solved on the rows, not in the Gram form"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn not_converging_exits_with_two_and_still_reports() {
    let o = gradfit(&[
        "solve",
        "problems/ill_conditioned_ls.csv",
        "--model",
        "least-squares",
        "--solver",
        "gd",
        "--max-iters",
        "5",
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let v = json(&o);
    assert_eq!(v["status"], "max-iterations");
    assert_eq!(v["converged"], false);
}

#[test]
fn a_standardized_params_out_file_applies_the_fit_to_raw_data() {
    let dir = tempfile::tempdir().unwrap();
    let params = dir.path().join("p.csv");
    let file = "problems/diabetes.csv";
    let o = gradfit(&[
        "solve",
        file,
        "--model",
        "least-squares",
        "--intercept",
        "--standardize",
        "--l2",
        "10",
        "--tol",
        "1e-10",
        "--params-out",
        params.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let v = json(&o);
    assert_eq!(v["status"], "converged", "{v}");
    let text = std::fs::read_to_string(&params).unwrap();
    assert_eq!(text.lines().next(), Some("name,value,mean,scale"));
    // name, value, mean, scale; the intercept's mean and scale are empty
    let fields: Vec<Vec<&str>> = text.lines().skip(1).map(|l| l.split(',').collect()).collect();
    assert_eq!(
        fields.last().unwrap(),
        &["intercept", fields.last().unwrap()[1], "", ""]
    );
    let number = |s: &str| s.parse::<f64>().unwrap();
    let w: Vec<(f64, f64, f64)> = fields[..fields.len() - 1]
        .iter()
        .map(|f| (number(f[1]), number(f[2]), number(f[3])))
        .collect();
    let intercept = number(fields.last().unwrap()[1]);
    // the file alone reproduces the reported cost on the raw rows:
    // Σᵢ (Σⱼ wⱼ(xᵢⱼ − meanⱼ)/scaleⱼ + b − yᵢ)² + λ Σⱼ wⱼ²
    let (data_header, data) = plain_csv(file);
    let y_col = data_header.iter().position(|h| h == "y").unwrap();
    let mut cost = 0.0;
    for row in &data {
        let features = row
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != y_col)
            .map(|(_, v)| *v);
        let score: f64 = features
            .zip(&w)
            .map(|(x, (wj, m, s))| wj * (x - m) / s)
            .sum::<f64>()
            + intercept;
        cost += (score - row[y_col]).powi(2);
    }
    cost += 10.0 * w.iter().map(|(wj, _, _)| wj * wj).sum::<f64>();
    let reported = v["cost"].as_f64().unwrap();
    assert!(
        (cost - reported).abs() <= 1e-10 * reported,
        "{cost} vs {reported}"
    );
    // softmax: every class's row of a feature carries that feature's mean and scale
    let o = gradfit(&[
        "solve",
        "problems/iris.csv",
        "--model",
        "softmax",
        "--intercept",
        "--standardize",
        "--l2",
        "1",
        "--params-out",
        params.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let v = json(&o);
    let st = v["standardization"].as_array().unwrap();
    let text = std::fs::read_to_string(&params).unwrap();
    let mut rows_seen = 0;
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let feature = f[0].split_once(':').unwrap().1;
        match st.iter().find(|e| e["feature"] == feature) {
            Some(e) => {
                // both written shortest-round-trip, and read back with float_roundtrip
                assert_eq!(number(f[2]), e["mean"].as_f64().unwrap(), "{line}");
                assert_eq!(number(f[3]), e["scale"].as_f64().unwrap(), "{line}");
            }
            None => assert_eq!((feature, f[2], f[3]), ("intercept", "", ""), "{line}"),
        }
        rows_seen += 1;
    }
    assert_eq!(rows_seen, 15);
    // as --x0: taken by a standardized run, refused by a run on the raw features, whose
    // parameters are in other units
    let x0 = params.to_str().unwrap();
    let base = [
        "solve",
        "problems/iris.csv",
        "--model",
        "softmax",
        "--intercept",
        "--l2",
        "1",
        "--x0",
        x0,
    ];
    let o = gradfit(&[&base[..], &["--standardize", "--format", "json"]].concat());
    assert_eq!(json(&o)["status"], "converged", "{}", stderr(&o));
    // but not by a standardized run on other rows, whose means and scales differ
    let part = dir.path().join("part.csv");
    let iris =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("problems/iris.csv")).unwrap();
    std::fs::write(&part, iris.lines().take(121).collect::<Vec<_>>().join("\n")).unwrap();
    let mut other = base;
    other[1] = part.to_str().unwrap();
    let o = gradfit(&[&other[..], &["--standardize"]].concat());
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("line 2: --x0's mean and scale of \"sepal_length_cm\"")
            && stderr(&o).contains("the file comes from a fit on other data"),
        "{}",
        stderr(&o)
    );
    let o = gradfit(&base);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("--x0 comes from a standardized fit (it has mean and scale columns)"),
        "{}",
        stderr(&o)
    );
    // and the other way: a raw fit's file, refused by a standardized run; its optimum taken
    // by a raw run (converged at once), and its values alone (one column) by either
    let raw = dir.path().join("raw.csv");
    let o = gradfit(
        &[
            &base[..7],
            &["--params-out", raw.to_str().unwrap(), "--format", "json"],
        ]
        .concat(),
    );
    let cost = json(&o)["cost"].as_f64().unwrap();
    let with_raw = |extra: &[&str]| {
        let a = [&base[..8], &[raw.to_str().unwrap()], extra, &["--format", "json"]].concat();
        gradfit(&a)
    };
    let o = with_raw(&["--standardize"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("--x0 comes from a fit on the raw features"),
        "{}",
        stderr(&o)
    );
    // (its stop rule is relative to ‖∇f(x₀)‖, tiny at the optimum: it still iterates)
    let v = json(&with_raw(&[]));
    assert_eq!(v["status"], "converged", "{v}");
    let again = v["cost"].as_f64().unwrap();
    assert!((again - cost).abs() <= 1e-9 * cost, "{again} against {cost}");
    let text = std::fs::read_to_string(&raw).unwrap();
    let values: Vec<&str> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap())
        .collect();
    std::fs::write(&raw, format!("x0\n{}\n", values.join("\n"))).unwrap();
    let o = with_raw(&["--standardize"]);
    assert_eq!(json(&o)["status"], "converged", "{}", stderr(&o));
}

#[test]
fn params_out_trace_and_x0_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let params = dir.path().join("p.csv");
    let trace = dir.path().join("t.csv");
    let o = gradfit(&[
        "solve",
        "problems/log_sum_exp.csv",
        "--model",
        "log-sum-exp",
        "--params-out",
        params.to_str().unwrap(),
        "--trace",
        trace.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let p = std::fs::read_to_string(&params).unwrap();
    assert!(p.starts_with("name,value\nx1,"));
    let t = std::fs::read_to_string(&trace).unwrap();
    assert!(t.starts_with("iteration,cost,gradient_norm,step,seconds\n0,"));
    // row 0 has no step: an empty field; later rows have a finite step; no NaN anywhere
    let rows: Vec<Vec<&str>> = t.lines().skip(1).map(|l| l.split(',').collect()).collect();
    assert!(rows.len() > 1 && rows.iter().all(|r| r.len() == 5), "{t}");
    assert_eq!(rows[0][3], "", "{t}");
    assert!(
        rows[1..]
            .iter()
            .all(|r| r[3].parse::<f64>().is_ok_and(f64::is_finite)),
        "{t}"
    );
    assert!(!t.contains("NaN"), "{t}");
    // the params-out file itself is a valid --x0: converged at once
    let o = gradfit(&[
        "solve",
        "problems/log_sum_exp.csv",
        "--model",
        "log-sum-exp",
        "--x0",
        params.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(json(&o)["iterations"].as_u64().unwrap() <= 1);
    // the optimum as a one-column starting point: converged at once
    let x0 = dir.path().join("x0.csv");
    let values: Vec<&str> = p.lines().skip(1).map(|l| l.split(',').nth(1).unwrap()).collect();
    std::fs::write(&x0, format!("x0\n{}\n", values.join("\n"))).unwrap();
    let o = gradfit(&[
        "solve",
        "problems/log_sum_exp.csv",
        "--model",
        "log-sum-exp",
        "--x0",
        x0.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let v = json(&o);
    assert!(v["iterations"].as_u64().unwrap() <= 1, "{v}");
}

#[test]
fn generate_writes_what_solve_reads() {
    let dir = tempfile::tempdir().unwrap();
    for (model, extra) in [
        ("least-squares", vec![]),
        ("quadratic", vec![]),
        ("log-sum-exp", vec![]),
        ("logistic", vec!["--intercept"]),
        ("softmax", vec!["--l2", "0.01"]),
    ] {
        let f = dir.path().join(format!("{model}.csv"));
        let rows = if model == "quadratic" { "4" } else { "60" };
        let o = gradfit(&[
            "generate",
            model,
            "--rows",
            rows,
            "--cols",
            "4",
            "--seed",
            "3",
            "-o",
            f.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let mut args = vec![
            "solve",
            f.to_str().unwrap(),
            "--model",
            model,
            "--solver",
            "newton",
            "--format",
            "json",
        ];
        args.extend(extra);
        let o = gradfit(&args);
        assert_eq!(json(&o)["status"], "converged", "{model}: {}", stdout(&o));
    }
}

/// Each bad input: exit 1, a message naming the fault, no panic, and no output file left.
#[test]
fn bad_input_gets_a_located_error_and_no_partial_output() {
    let dir = tempfile::tempdir().unwrap();
    let w = |name: &str, text: &str| -> String {
        let p: PathBuf = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let empty = w("empty.csv", "");
    let header_only = w("header.csv", "a,b,y\n");
    let ragged = w("ragged.csv", "a,y\n1,2\n3,4,5\n");
    let text_cell = w("text.csv", "a,y\n1,2\nabc,4\n");
    let nan_cell = w("nan.csv", "a,y\n1,2\nNaN,4\n");
    let inf_cell = w("inf.csv", "a,y\n1,2\n3,inf\n");
    let one_class = w("one.csv", "a,y\n1,0\n2,0\n");
    let three_class = w("three.csv", "a,y\n1,0\n2,1\n3,2\n");
    let continuous = w("continuous.csv", "a,y\n1,0\n2,1.0\n3,2.5\n4,1\n");
    let blank_header = w("blank_header.csv", "   \n1,0\n2,1\n");
    let open_quote = w("open_quote.csv", "a,y\n1,0\n\"2,1\n3,0\n");
    let bom_blank_header = w("bom_blank_header.csv", "\u{feff}\n\n  \n1,0\n");
    let late_blank_header = w("late_blank_header.csv", "\n\r\n   \n1,0\n2,1\n");
    let semicolons = w("semicolons.csv", "a;b;y\n1;2;0\n3;4;1\n");
    let no_header = w("no_header.csv", "1,2,0\n3,4,1\n");
    let nan_label = w("nan_label.csv", "a,y\n1,0\n2,1\n3,1\n4,NaN\n5,0\n");
    let not_square = w("rect.csv", "a1,a2,y\n1,0,1\n0,1,1\n1,1,1\n");
    let x0_short = w("x0.csv", "x0\n1\n");
    let x0_names = w("x0names.csv", "name,value\n0:sepal_length_cm,1\nnope,2\n");
    let cases: Vec<(Vec<&str>, &[&str])> = vec![
        (
            vec!["solve", "no/such/file.csv", "--model", "least-squares"],
            &["no/such/file.csv"],
        ),
        (vec!["solve", &empty, "--model", "least-squares"], &["empty"]),
        (
            vec!["solve", &header_only, "--model", "least-squares"],
            &["no data rows"],
        ),
        (
            vec!["solve", &ragged, "--model", "least-squares"],
            &["line 3", "too many fields"],
        ),
        (
            vec!["solve", &text_cell, "--model", "least-squares"],
            &["line 3", "\"a\"", "\"abc\""],
        ),
        (
            vec!["solve", &nan_cell, "--model", "least-squares"],
            &["line 3", "\"NaN\""],
        ),
        (
            vec!["solve", &inf_cell, "--model", "least-squares"],
            &["line 3", "\"y\"", "\"inf\""],
        ),
        (
            vec![
                "solve",
                "problems/iris.csv",
                "--model",
                "least-squares",
                "--target",
                "species",
            ],
            &["\"species\"", "sepal_length_cm"],
        ),
        (
            vec!["solve", &one_class, "--model", "logistic"],
            &["exactly 2 classes", "found 1"],
        ),
        (
            vec!["solve", &three_class, "--model", "logistic"],
            &["exactly 2 classes", "found 3"],
        ),
        (
            vec!["solve", "problems/iris.csv", "--model", "softmaxx"],
            &["'softmaxx'", "did you mean softmax?"],
        ),
        (
            vec![
                "compare",
                "problems/diabetes.csv",
                "--model",
                "least-squares",
                "--solvers",
                "lbfgs,newton,lbfgs",
            ],
            &["--solvers: lbfgs is named twice (at 1 and 3)"],
        ),
        (
            vec!["solve", &continuous, "--model", "softmax"],
            &["line 4", "\"2.5\"", "\"y\"", "not a whole number"],
        ),
        (
            vec!["solve", &nan_label, "--model", "logistic"],
            &[
                "line 5",
                "\"NaN\"",
                "\"y\"",
                "not a finite number",
                "a missing value?",
            ],
        ),
        (
            vec!["solve", &not_square, "--model", "quadratic"],
            &["square", "3 rows", "2 feature columns"],
        ),
        (
            vec![
                "solve",
                "problems/log_sum_exp.csv",
                "--model",
                "log-sum-exp",
                "--intercept",
            ],
            &["--intercept: log-sum-exp has no intercept"],
        ),
        (
            vec![
                "solve",
                "problems/nonsymmetric_quadratic.csv",
                "--model",
                "quadratic",
                "--intercept",
            ],
            &["--intercept: quadratic has no intercept"],
        ),
        (
            vec!["solve", "problems/iris.csv", "--model", "lasso"],
            &["lasso", "least-squares", "softmax"],
        ),
        (
            vec![
                "solve",
                "problems/iris.csv",
                "--model",
                "softmax",
                "--solver",
                "adam",
            ],
            &["adam", "lbfgs", "newton"],
        ),
        (
            vec!["solve", "problems/iris.csv", "--model", "softmax", "--l2", "-1"],
            &["-1", ">= 0"],
        ),
        (
            vec!["solve", "problems/iris.csv", "--model", "softmax", "--l2", "nan"],
            &["nan"],
        ),
        (
            vec![
                "solve",
                "problems/iris.csv",
                "--model",
                "softmax",
                "--params-out",
                "-",
            ],
            &["--params-out", "\"-\" is not taken for an output", "/dev/stdout"],
        ),
        (
            vec!["generate", "logistic", "--rows", "10", "--cols", "2", "-o", "-"],
            &["--output", "\"-\" is not taken for an output"],
        ),
        (
            vec!["solve", "problems/iris.csv", "--model", "softmax", "--x0", "-"],
            &["--x0", "taken only for the data argument"],
        ),
        (
            vec![
                "solve",
                "problems/iris.csv",
                "--model",
                "softmax",
                "--time-limit",
                "1e-10",
            ],
            &["--time-limit", "\"1e-10\" is below a nanosecond"],
        ),
        (
            vec![
                "solve",
                "problems/iris.csv",
                "--model",
                "softmax",
                "--time-limit",
                "1e300",
            ],
            &["--time-limit", "\"1e300\" is too large"],
        ),
        (
            vec![
                "generate",
                "logistic",
                "--rows",
                "9",
                "--cols",
                "2",
                "--seed",
                "-1",
                "-o",
                "/tmp/gradfit-never.csv",
            ],
            &[
                "--seed",
                "\"-1\" is not a whole number from 0 to 18446744073709551615",
            ],
        ),
        (
            vec![
                "generate",
                "least-squares",
                "--rows",
                "9",
                "--cols",
                "2",
                "--condition",
                "1e17",
                "-o",
                "/tmp/gradfit-never.csv",
            ],
            &["--condition", "\"1e17\" is not a number from 1 to 1e16"],
        ),
        (
            vec![
                "solve",
                &not_square,
                "--model",
                "quadratic",
                "--features",
                "a2,a1",
            ],
            &["--features with the quadratic must list A's columns as they are, in order"],
        ),
        (
            vec!["solve", &blank_header, "--model", "logistic"],
            &["line 1: the header row is blank"],
        ),
        (
            vec!["solve", &open_quote, "--model", "logistic"],
            &[
                "line 3: too few fields",
                "a quote opened on this line is never closed?",
            ],
        ),
        (
            vec!["solve", &bom_blank_header, "--model", "logistic"],
            &["line 3: the header row is blank"],
        ),
        (
            vec!["solve", &late_blank_header, "--model", "logistic"],
            &["line 3: the header row is blank"],
        ),
        (
            vec![
                "generate",
                "least-squares",
                "--rows",
                "9",
                "--cols",
                "1",
                "--condition",
                "1e6",
                "-o",
                "/tmp/gradfit-never.csv",
            ],
            &["--condition 1000000: a problem of one column has condition 1"],
        ),
        (
            vec![
                "solve",
                "problems/iris.csv",
                "--model",
                "softmax",
                "--solver",
                "newton",
                "--memory",
                "5",
            ],
            &["--memory 5: only lbfgs and argmin-lbfgs keep L-BFGS pairs (the solver is newton)"],
        ),
        (
            vec![
                "solve",
                "problems/iris.csv",
                "--model",
                "softmax",
                "--repeat",
                "10001",
            ],
            &["--repeat", "\"10001\" is more than 10000 runs"],
        ),
        (
            vec![
                "solve",
                "problems/iris.csv",
                "--model",
                "softmax",
                "--memory",
                "99999999999999999999999",
            ],
            &["--memory", "is more than 1000 pairs"],
        ),
        (
            vec!["solve", &semicolons, "--model", "logistic"],
            &["no column named \"y\"", "the header seems separated by ';'"],
        ),
        (
            vec!["solve", &no_header, "--model", "logistic"],
            &[
                "no column named \"y\"",
                "the first row is all numbers: is the header row missing?",
            ],
        ),
        (
            // 2λ overflows: the gradient norm was NaN
            vec![
                "solve",
                "problems/diabetes.csv",
                "--model",
                "least-squares",
                "--l2",
                "1e308",
            ],
            &[
                "--l2",
                "\"1e308\" is too large: 2λ must be finite",
                "8.988465674311579e307",
            ],
        ),
        (
            vec!["solve", "problems/iris.csv", "--model", "softmax", "--tol", "0"],
            &["--tol", "> 0"],
        ),
        (
            vec![
                "solve",
                "problems/iris.csv",
                "--model",
                "softmax",
                "--x0",
                &x0_short,
            ],
            &[
                "x0",
                "--x0 has 1 value, the model has 12 parameters",
                "12 parameters",
            ],
        ),
        (
            vec![
                "solve",
                "problems/iris.csv",
                "--model",
                "softmax",
                "--x0",
                &x0_names,
            ],
            &["line 3", "\"nope\"", "\"0:sepal_width_cm\""],
        ),
        (
            vec![
                "solve",
                "problems/nonsymmetric_quadratic.csv",
                "--model",
                "quadratic",
                "--standardize",
            ],
            &["--standardize does not apply to the quadratic model"],
        ),
        (
            vec![
                "solve",
                "problems/log_sum_exp.csv",
                "--model",
                "log-sum-exp",
                "--standardize",
            ],
            &["--standardize does not apply to the log-sum-exp model"],
        ),
        (
            vec![
                "check",
                "problems/iris.csv",
                "--model",
                "softmax",
                "--points",
                "1001",
            ],
            &["--points", "1000"],
        ),
        (
            vec![
                "compare",
                "problems/iris.csv",
                "--model",
                "softmax",
                "--solvers",
                "newton,nope",
            ],
            &["nope"],
        ),
        (
            vec![
                "generate",
                "least-squares",
                "--rows",
                "3",
                "--cols",
                "5",
                "-o",
                "/tmp/gradfit-never.csv",
            ],
            &["rows", "cols = 5"],
        ),
        (
            vec![
                "generate",
                "quadratic",
                "--rows",
                "3",
                "--cols",
                "5",
                "-o",
                "/tmp/gradfit-never.csv",
            ],
            &["rows", "square"],
        ),
        (
            vec![
                "generate",
                "logistic",
                "--rows",
                "10",
                "--cols",
                "5",
                "--condition",
                "1e300",
                "-o",
                "/tmp/gradfit-never.csv",
            ],
            &["condition"],
        ),
        (
            vec![
                "generate",
                "least-squares",
                "--rows",
                "10000000000",
                "--cols",
                "1000",
                "-o",
                "/tmp/gradfit-never.csv",
            ],
            &["rows", "smaller"],
        ),
        (
            vec![
                "solve",
                "problems/iris.csv",
                "--model",
                "softmax",
                "--time-limit",
                "1e20",
            ],
            &["--time-limit"],
        ),
        (
            vec![
                "solve",
                "problems/iris.csv",
                "--model",
                "softmax",
                "--repeat",
                "0",
            ],
            &["--repeat", "whole number"],
        ),
        (
            vec![
                "solve",
                "problems/iris.csv",
                "--model",
                "softmax",
                "--max-iters",
                "-1",
            ],
            &["--max-iters", "whole number"],
        ),
        (
            vec![
                "solve",
                "problems/iris.csv",
                "--model",
                "softmax",
                "--features",
                "petal_width_cm,petal_width_cm",
            ],
            &["features", "twice"],
        ),
        (
            vec![
                "compare",
                "problems/iris.csv",
                "--model",
                "softmax",
                "--l2",
                "1",
                "--plot",
                "/no/such/dir/p.svg",
            ],
            &["/no/such/dir/p.svg"],
        ),
    ];
    for (args, needles) in cases {
        let params = dir.path().join("params.csv");
        let trace = dir.path().join("trace.csv");
        let mut full = args.clone();
        if full[0] == "solve" {
            full.extend([
                "--params-out",
                params.to_str().unwrap(),
                "--trace",
                trace.to_str().unwrap(),
            ]);
        }
        let o = gradfit(&full);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        for n in needles {
            assert!(err.contains(n), "{args:?}: the message lacks {n:?}: {err}");
        }
        assert!(
            !params.exists() && !trace.exists(),
            "{args:?} left an output file"
        );
        assert!(std::fs::read_dir(dir.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains("partial")));
    }
    assert!(!Path::new("/tmp/gradfit-never.csv").exists());
    // "-" as an output named no file in the working directory
    assert!(!Path::new(env!("CARGO_MANIFEST_DIR")).join("-").exists());
}

#[test]
fn outputs_never_replace_inputs_or_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let solve = |extra: &[&str]| {
        let mut args = vec!["solve", "problems/iris.csv", "--model", "softmax", "--l2", "1"];
        args.extend(extra);
        gradfit(&args)
    };
    // two outputs with one stem: each gets its own contents
    let o = solve(&["--trace", &at("res.csv"), "--params-out", &at("res.txt")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let trace = std::fs::read_to_string(at("res.csv")).unwrap();
    let params = std::fs::read_to_string(at("res.txt")).unwrap();
    assert!(trace.starts_with("iteration,cost,"), "{trace}");
    assert!(params.starts_with("name,value\n"), "{params}");
    assert_eq!(params.lines().count(), 1 + 12);
    // one file named twice, two ways, or an input named as an output: an error, nothing written
    let data = at("data.csv");
    std::fs::copy("problems/iris.csv", &data).unwrap();
    let before = std::fs::read(&data).unwrap();
    let twice = solve(&["--trace", &at("same.csv"), "--params-out", &at("./same.csv")]);
    let over_input = gradfit(&[
        "solve",
        &data,
        "--model",
        "softmax",
        "--l2",
        "1",
        "--params-out",
        &data,
    ]);
    let into_dir = gradfit(&[
        "generate",
        "logistic",
        "--rows",
        "10",
        "--cols",
        "2",
        "-o",
        &at(""),
    ]);
    for (o, needle) in [
        (&twice, "the same file"),
        (&over_input, "that is the data file"),
        (&into_dir, "is a directory"),
    ] {
        assert_eq!(o.status.code(), Some(1), "{}", stderr(o));
        assert!(stderr(o).contains(needle), "{}", stderr(o));
    }
    assert_eq!(std::fs::read(&data).unwrap(), before);
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["data.csv", "res.csv", "res.txt"]);
}

#[test]
fn a_closed_stdout_is_an_exit_code_not_a_panic() {
    // the reader is gone before gradfit writes a byte, as with `gradfit … | head -0`
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let o = Command::new(env!("CARGO_BIN_EXE_gradfit"))
        .args(["solve", "problems/iris.csv", "--model", "softmax", "--l2", "1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(writer)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // the same when the closed pipe is an output file named /dev/stdout: exit 1, nothing said
    #[cfg(target_os = "linux")]
    {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let o = Command::new(env!("CARGO_BIN_EXE_gradfit"))
            .args([
                "generate",
                "least-squares",
                "--rows",
                "50",
                "--cols",
                "3",
                "-o",
                "/dev/stdout",
            ])
            .stdout(writer)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.is_empty(), "{err}");
    }
}

#[test]
fn separable_classes_at_l2_zero_are_named_in_the_report() {
    // breast cancer with 30 features is linearly separable: at --l2 0 the logistic loss has no
    // minimum, and Newton "converges" with parameters in the hundreds of thousands
    let base = [
        "solve",
        "problems/breast_cancer.csv",
        "--model",
        "logistic",
        "--intercept",
    ];
    let free = json(&gradfit(
        &[&base[..], &["--solver", "newton", "--format", "json"]].concat(),
    ));
    let message = free["message"].as_str().unwrap_or("");
    assert!(
        message.contains("linearly separable") && message.contains("λ > 0"),
        "{free}"
    );
    assert!(
        free["cost"].as_f64().unwrap() < 1e-3 * 569.0 * 2f64.ln(),
        "{free}"
    );
    // with a ridge the answer is finite and nothing is said; iris's classes overlap
    let ridge = json(&gradfit(
        &[&base[..], &["--standardize", "--l2", "1", "--format", "json"]].concat(),
    ));
    assert!(ridge["message"].is_null(), "{ridge}");
}

/// Whether a perceptron finds a hyperplane (with an offset) putting the rows marked true on one
/// side and the others on the other, within `epochs` passes: a proof of linear separability
/// when it does (Novikoff), independent of any softmax fit.
fn perceptron_separates(rows: &[Vec<f64>], marked: &[bool], epochs: usize) -> bool {
    let mut w = vec![0.0; rows[0].len() + 1];
    for _ in 0..epochs {
        let mut mistakes = 0;
        for (x, &m) in rows.iter().zip(marked) {
            let s = if m { 1.0 } else { -1.0 };
            let z: f64 = x.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>() + w[x.len()];
            if s * z <= 0.0 {
                mistakes += 1;
                for (wj, a) in w.iter_mut().zip(x) {
                    *wj += s * a;
                }
                w[x.len()] += s;
            }
        }
        if mistakes == 0 {
            return true;
        }
    }
    false
}

#[test]
fn a_softmax_class_separated_from_the_others_at_l2_zero_is_named() {
    // iris's setosa is linearly separable from the other two species (a perceptron finds the
    // hyperplane, a proof), versicolor overlaps virginica (the perceptron finds none in 1000
    // passes, which is evidence, not proof): at --l2 0 setosa's weights grow without bound
    // while the loss stays of order one, and the report names setosa alone
    let text = std::fs::read_to_string("problems/iris.csv").unwrap();
    let (rows, labels): (Vec<Vec<f64>>, Vec<String>) = text
        .lines()
        .skip(1)
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            let x = cells[..4].iter().map(|c| c.parse().unwrap()).collect();
            (x, cells[4].to_string())
        })
        .unzip();
    let is = |label: &str| labels.iter().map(|l| l == label).collect::<Vec<_>>();
    assert!(perceptron_separates(&rows, &is("0"), 1000));
    assert!(!perceptron_separates(&rows, &is("1"), 1000));
    for solver in ["lbfgs", "newton"] {
        let free = json(&gradfit(&[
            "solve",
            "problems/iris.csv",
            "--model",
            "softmax",
            "--intercept",
            "--solver",
            solver,
            "--format",
            "json",
        ]));
        let message = free["message"].as_str().unwrap_or("");
        assert!(
            message.contains("class 0 is linearly separable") && message.contains("λ > 0"),
            "{solver}: {free}"
        );
        // the loss is far from the fully separable case's
        assert!(free["cost"].as_f64().unwrap() > 1.0, "{free}");
    }
    // a run that stops short (gd at its iteration limit) gets the proof too: it holds at any x
    let short = json(&gradfit(&[
        "solve",
        "problems/iris.csv",
        "--model",
        "softmax",
        "--intercept",
        "--solver",
        "gd",
        "--format",
        "json",
    ]));
    assert_eq!(short["status"], "max-iterations", "{short}");
    let message = short["message"].as_str().unwrap_or("");
    assert!(message.contains("class 0 is linearly separable"), "{short}");
    // with a ridge the answer is finite and nothing is said
    let ridge = json(&gradfit(&[
        "solve",
        "problems/iris.csv",
        "--model",
        "softmax",
        "--intercept",
        "--l2",
        "0.1",
        "--format",
        "json",
    ]));
    assert!(ridge["message"].is_null(), "{ridge}");
    // overlapping classes at --l2 0: no class is separated and nothing is said
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("overlap.csv");
    let data = data.to_str().unwrap();
    let made = gradfit(&[
        "generate",
        "softmax",
        "--rows",
        "300",
        "--cols",
        "3",
        "--classes",
        "3",
        "--seed",
        "2",
        "-o",
        data,
    ]);
    assert!(made.status.success());
    let overlap = json(&gradfit(&[
        "solve",
        data,
        "--model",
        "softmax",
        "--intercept",
        "--format",
        "json",
    ]));
    assert_eq!(overlap["status"], "converged", "{overlap}");
    assert!(overlap["message"].is_null(), "{overlap}");
}

#[test]
fn standardizing_huge_columns_neither_overflows_nor_changes_the_fit() {
    // a standardized fit does not depend on a column's units: the same data with one column
    // in units 1e-290 as large (entries near 1e300) must give the same parameters
    let dir = tempfile::tempdir().unwrap();
    let (head, rows) = plain_csv("problems/breast_cancer.csv");
    let write = |name: &str, factor: f64| {
        let mut text = head.join(",") + "\n";
        for r in &rows {
            let cells: Vec<String> = r
                .iter()
                .enumerate()
                .map(|(j, v)| {
                    if j == 0 {
                        format!("{:e}", v * factor)
                    } else {
                        format!("{v:e}")
                    }
                })
                .collect();
            text += &(cells.join(",") + "\n");
        }
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let plain = write("plain.csv", 1.0);
    let fit = |path: &str| {
        json(&gradfit(&[
            "solve",
            path,
            "--model",
            "logistic",
            "--intercept",
            "--standardize",
            "--l2",
            "1",
            "--tol",
            "1e-10",
            "--format",
            "json",
        ]))
    };
    let a = fit(&plain);
    // and units 1e-310 as large (entries near 1e-300, whose squares underflow: such a column
    // was taken for a constant and left unscaled)
    for (name, factor) in [("huge.csv", 1e290), ("tiny.csv", 1e-310)] {
        let b = fit(&write(name, factor));
        assert_eq!(b["converged"], true, "{b}");
        let scale = b["standardization"][0]["scale"].as_f64().unwrap_or(f64::NAN);
        let want = a["standardization"][0]["scale"].as_f64().unwrap() * factor;
        assert!((scale / want - 1.0).abs() < 1e-12, "{name}: {scale} vs {want}");
        for (x, y) in a["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .zip(b["parameters"].as_array().unwrap())
        {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!((x - y).abs() <= 1e-8 * x.abs().max(1.0), "{name}: {x} vs {y}");
        }
    }
}

#[cfg(target_os = "linux")]
#[test]
fn an_output_that_is_the_redirected_stdout_is_written_through_it() {
    // `--params-out /dev/stdout > out.txt`: /dev/stdout resolves to out.txt, which must be
    // written through the open stream, not replaced (the report printed after would be lost)
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.txt");
    std::fs::write(&out, "earlier line\n").unwrap();
    let file = std::fs::OpenOptions::new().append(true).open(&out).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_gradfit"))
        .args([
            "solve",
            "problems/iris.csv",
            "--model",
            "softmax",
            "--l2",
            "1",
            "--params-out",
            "/dev/stdout",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(file)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.starts_with("earlier line\nname,value\n0:sepal_length_cm,"),
        "{text}"
    );
    assert!(text.contains("\nstatus          converged\n"), "{text}");
}

#[test]
fn a_softmax_target_that_looks_like_a_quantity_gets_a_note() {
    // diabetes' target is a whole-number score: softmax builds one class per value, about two
    // rows a class; the note counts them from the CSV
    let (_, rows) = plain_csv("problems/diabetes.csv");
    let mut count = std::collections::BTreeMap::<u64, usize>::new();
    for r in &rows {
        *count.entry(r[10].to_bits()).or_default() += 1;
    }
    let once = count.values().filter(|&&n| n == 1).count();
    assert!(count.len() > 20 && rows.len() < 5 * count.len() && once > 0);
    let args = |model: &'static str, file: &'static str| {
        [
            "solve",
            file,
            "--model",
            model,
            "--standardize",
            "--l2",
            "1",
            "--max-iters",
            "2",
            "--format",
            "json",
        ]
    };
    let o = gradfit(&args("softmax", "problems/diabetes.csv"));
    assert_eq!(json(&o)["classes"].as_array().map(Vec::len), Some(count.len()));
    let want = format!(
        "column \"y\" holds {} distinct numbers over {} rows, {once} of them on one row only",
        count.len(),
        rows.len()
    );
    let err = stderr(&o);
    assert!(err.contains(&want), "{err}");
    assert!(err.contains("--model least-squares fits it"), "{err}");
    // the table lists the first 19 classes and the last, and says how many lie between
    let mut table = args("softmax", "problems/diabetes.csv");
    table[10] = "table";
    let line = stdout(&gradfit(&table))
        .lines()
        .find(|l| l.starts_with("classes"))
        .map(str::to_string)
        .unwrap_or_default();
    let labels: Vec<f64> = count.keys().map(|b| f64::from_bits(*b)).collect();
    assert!(
        line.contains(&format!(
            "18 = \"{:.1}\", … {} more …, {} = \"{:.1}\"",
            labels[18],
            labels.len() - 20,
            labels.len() - 1,
            labels[labels.len() - 1]
        )),
        "{line}"
    );
    // iris' three labels, and least squares on the same column, get no note
    for (model, file) in [
        ("softmax", "problems/iris.csv"),
        ("least-squares", "problems/diabetes.csv"),
    ] {
        let o = gradfit(&args(model, file));
        assert!(!stderr(&o).contains("note:"), "{model} {file}: {}", stderr(&o));
    }
}

#[test]
fn standardizing_without_an_intercept_scales_only_and_keeps_the_raw_fit() {
    // least squares without an intercept: the raw fit uses the features' means as a constant;
    // centring would take it away (a cost 8.6 times higher), scaling only changes the units
    let dir = tempfile::tempdir().unwrap();
    let params = dir.path().join("p.csv");
    let run = |extra: &[&str]| {
        let args = [
            &[
                "solve",
                "problems/diabetes.csv",
                "--model",
                "least-squares",
                "--solver",
                "newton",
                "--format",
                "json",
            ][..],
            extra,
        ]
        .concat();
        json(&gradfit(&args))
    };
    let raw = run(&[]);
    let scaled = run(&["--standardize", "--params-out", params.to_str().unwrap()]);
    let (c_raw, c_scaled) = (raw["cost"].as_f64().unwrap(), scaled["cost"].as_f64().unwrap());
    assert!(
        (c_raw - c_scaled).abs() <= 1e-10 * c_raw,
        "{c_raw} against {c_scaled}"
    );
    // the file's parameters applied to the raw rows (mean 0: wⱼ·xⱼ/scaleⱼ) give that cost,
    // and each scale is the column's standard deviation
    let (_, rows) = plain_csv("problems/diabetes.csv");
    let text = std::fs::read_to_string(&params).unwrap();
    let fields: Vec<Vec<f64>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').skip(1).map(|s| s.parse::<f64>().unwrap()).collect())
        .collect();
    assert_eq!(fields.len(), 10);
    for (j, f) in fields.iter().enumerate() {
        let col: Vec<f64> = rows.iter().map(|r| r[j]).collect();
        let mean = col.iter().sum::<f64>() / col.len() as f64;
        let sd = (col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / col.len() as f64).sqrt();
        assert_eq!(f[1], 0.0, "feature {j}: mean");
        assert!(
            (f[2] - sd).abs() <= 1e-12 * sd,
            "feature {j}: scale {} against {sd}",
            f[2]
        );
    }
    let cost: f64 = rows
        .iter()
        .map(|r| {
            let fit: f64 = fields.iter().enumerate().map(|(j, f)| f[0] * r[j] / f[2]).sum();
            (fit - r[10]).powi(2)
        })
        .sum();
    assert!(
        (cost - c_scaled).abs() <= 1e-9 * c_scaled,
        "{cost} against {c_scaled}"
    );
}

#[test]
fn compare_stops_on_a_start_every_solver_would_fail() {
    // a start where the cost overflows fails every solver alike: an error, no table
    let dir = tempfile::tempdir().unwrap();
    let x0 = dir.path().join("x0.csv");
    std::fs::write(&x0, format!("x0\n{}", ["1e200"; 10].join("\n"))).unwrap();
    let o = gradfit(&[
        "compare",
        "problems/diabetes.csv",
        "--model",
        "least-squares",
        "--x0",
        x0.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("not finite at the starting point"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("--solvers"), "{}", stderr(&o));
}

/// gradfit under an address-space limit of `kb` kilobytes (`ulimit -v`, through sh).
#[cfg(target_os = "linux")]
fn gradfit_under_ulimit(kb: u64, args: &[&str]) -> Output {
    Command::new("sh")
        .args(["-c", &format!("ulimit -v {kb} && exec \"$0\" \"$@\"")])
        .arg(env!("CARGO_BIN_EXE_gradfit"))
        .args(args)
        .output()
        .expect("sh runs")
}

/// A solver that fails on its own (newton's four 4000 × 4000 matrices, 512 MB, past a 450 MB
/// address-space limit) is a row of the comparison, in its place, with its error below; the
/// others still run, and the exit code is 1.
#[cfg(target_os = "linux")]
#[test]
fn compare_reports_a_solver_s_own_failure_as_a_row_and_runs_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let (data, plot) = (dir.path().join("wide.csv"), dir.path().join("p.svg"));
    let (m, n) = (40, 4000);
    let mut text: String = (1..=n).map(|j| format!("a{j},")).collect::<String>() + "y\n";
    for i in 0..m {
        for j in 0..n {
            text += &format!("{},", ((i * n + j) as f64 * 0.37).sin());
        }
        text += if i % 2 == 0 { "0\n" } else { "1\n" };
    }
    std::fs::write(&data, text).unwrap();
    let o = gradfit_under_ulimit(
        450_000,
        &[
            "compare",
            data.to_str().unwrap(),
            "--model",
            "logistic",
            "--l2",
            "0",
            "--max-iters",
            "20",
            "--plot",
            plot.to_str().unwrap(),
        ],
    );
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{}", stderr(&o));
    let rows: Vec<&str> = out
        .lines()
        .filter(|l| ["gd ", "newton ", "lbfgs "].iter().any(|s| l.starts_with(s)))
        .collect();
    assert_eq!(rows.len(), 3, "{out}");
    assert!(rows[0].starts_with("gd") && !rows[0].contains("error"), "{out}");
    assert!(
        rows[1].starts_with("newton") && rows[1].contains("error"),
        "{out}"
    );
    assert!(
        rows[2].starts_with("lbfgs") && !rows[2].contains("error"),
        "{out}"
    );
    assert!(
        out.contains("newton: error: it needs 4 dense 4000 × 4000 matrices (512.0 MB)"),
        "{out}"
    );
    assert!(stderr(&o).contains("error: newton failed"), "{}", stderr(&o));
    // an error of the run: no plot
    assert!(
        stderr(&o).contains("not written: newton failed"),
        "{}",
        stderr(&o)
    );
    assert!(!plot.exists());
    // newton alone: every solver failed, and the JSON still holds its entry
    let o = gradfit_under_ulimit(
        450_000,
        &[
            "compare",
            data.to_str().unwrap(),
            "--model",
            "logistic",
            "--solvers",
            "newton",
            "--format",
            "json",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v[0]["solver"], "newton", "{v}");
    assert_eq!(v[0]["status"], "error", "{v}");
    assert!(
        v[0]["error"]
            .as_str()
            .unwrap_or("")
            .starts_with("it needs 4 dense 4000 × 4000"),
        "{v}"
    );
    assert!(
        stderr(&o).contains("every solver failed: newton: it needs"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn check_past_2000_parameters_names_a_direction_not_a_parameter() {
    // 2100 features: the gradient is checked along 20 random directions, and the worst is a
    // direction's number (it was printed as a parameter's entry and name: "(x8)")
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wide.csv");
    let file = file.to_str().unwrap();
    let o = gradfit(&[
        "generate", "logistic", "--rows", "10", "--cols", "2100", "-o", file,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = gradfit(&["check", file, "--model", "logistic", "--l2", "1", "--points", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let line = text
        .lines()
        .find(|l| l.contains("directional derivative"))
        .unwrap();
    assert!(
        line.contains("in direction ") && line.contains("of the random ones"),
        "{line}"
    );
    assert!(!line.contains("at entry") && !line.contains("(x"), "{line}");
    let o = gradfit(&[
        "check", file, "--model", "logistic", "--l2", "1", "--points", "1", "--format", "json",
    ]);
    let v = json(&o);
    let point = &v["points"][0];
    assert!(point["gradient_worst_index"].is_null(), "{point}");
    assert!(
        point["gradient_worst_direction"].as_u64().is_some_and(|d| d < 20),
        "{point}"
    );
    // at 2000 parameters and below, every entry, named
    let o = gradfit(&[
        "check",
        "problems/iris.csv",
        "--model",
        "softmax",
        "--points",
        "1",
        "--format",
        "json",
    ]);
    let point = &json(&o)["points"][0];
    assert!(point["gradient_worst_index"].as_u64().is_some() && point["gradient_worst_direction"].is_null());
}

#[test]
fn an_x0_of_the_wrong_length_lists_a_long_parameter_list_in_part() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("d.csv");
    let x0 = dir.path().join("x0.csv");
    let (file, x0) = (file.to_str().unwrap(), x0.to_str().unwrap());
    let o = gradfit(&["generate", "logistic", "--rows", "5", "--cols", "40", "-o", file]);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::write(x0, "x1\n0.5\n").unwrap();
    let o = gradfit(&["solve", file, "--model", "logistic", "--l2", "1", "--x0", x0]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("--x0 has 1 value, the model has 40 parameters (x1, x2,"),
        "{e}"
    );
    assert!(e.contains("x20, … (40 in all))") && !e.contains("x21"), "{e}");
}

/// gradfit with the vector code capped by `GRADFIT_CPU`.
fn gradfit_capped(cap: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gradfit"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("GRADFIT_CPU", cap)
        .output()
        .expect("the gradfit binary runs")
}

#[test]
fn a_vector_code_cap_that_names_no_code_is_refused() {
    let args = ["solve", "problems/iris.csv", "--model", "softmax", "--l2", "0.01"];
    for bad in ["sse4", "AVX3", "avx2 please"] {
        let o = gradfit_capped(bad, &args);
        assert_eq!(o.status.code(), Some(1), "{bad}: {}", stderr(&o));
        let e = stderr(&o);
        assert!(e.contains("GRADFIT_CPU") && e.contains(bad), "{bad}: {e}");
        assert!(!e.contains("panicked") && stdout(&o).is_empty(), "{bad}: {e}");
    }
}

#[test]
fn every_vector_code_reaches_the_same_softmax_optimum() {
    // iris, 3 classes: every cap (one the CPU lacks runs its own code) to tol 1e-10; the
    // minimum is unique (λ > 0), so the costs agree to far below the tolerance's effect
    let args = [
        "solve",
        "problems/iris.csv",
        "--model",
        "softmax",
        "--l2",
        "0.01",
        "--solver",
        "newton",
        "--tol",
        "1e-10",
        "--format",
        "json",
    ];
    let runs: Vec<(f64, Vec<f64>)> = ["portable", "avx2", "avx512", "native", ""]
        .iter()
        .map(|cap| {
            let o = gradfit_capped(cap, &args);
            assert!(o.status.success(), "{cap}: {}", stderr(&o));
            let v = json(&o);
            assert_eq!(v["converged"], Value::Bool(true), "{cap}: {v}");
            // the report names the code that ran: the CPU's own, under the cap
            let cpu = gradfit::cpu::detected();
            let want = gradfit::cpu::VectorCode::parse(cap).map_or(cpu, |c| c.min(cpu));
            assert_eq!(v["vector_code"], Value::from(want.name()), "{cap}: {v}");
            let x = v["parameters"].as_array().expect("parameters");
            let x = x.iter().map(|p| p.as_f64().expect("a number")).collect();
            (v["cost"].as_f64().expect("a cost"), x)
        })
        .collect();
    let (f0, x0) = &runs[0];
    assert_eq!(x0.len(), 12);
    for (f, x) in &runs {
        assert!((f - f0).abs() <= 1e-12 * f0.abs(), "{f} against {f0}");
        for (p, q) in x.iter().zip(x0) {
            assert!((p - q).abs() <= 1e-8 * (1.0 + q.abs()), "{x:?} against {x0:?}");
        }
    }
}
