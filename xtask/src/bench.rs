//! `cargo xtask bench`: dpcot against the same model in PyTorch, shape by shape, in one run.
//!
//! For every shape the `dpcot bench` subcommand and `bench/torch_bench.py` each time a training
//! step, a forward pass and cached greedy decoding; the table gives dpcot's time divided by
//! PyTorch's (below 1: dpcot is faster). The Python environment is a venv in `bench/.venv`,
//! created on first use; when it cannot be set up the comparison is skipped and said so.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Deserialize;

use crate::to_accuracy::ToAccuracy;
use crate::{build_dpcot, workspace_root, BuildArgs};

#[derive(Args)]
pub struct BenchArgs {
    /// One shape (d_model 128, sequence 128) for each model, 2 timed repetitions: under
    /// 2 minutes.
    #[arg(long)]
    quick: bool,
    /// The quick profile's shapes instead (d_model 16, 32, 64 × sequence 24, 48), where the
    /// default reproduction spends its time.
    #[arg(long, conflicts_with = "quick")]
    small: bool,
    /// Threads on both sides: PyTorch's `set_num_threads` and the size of dpcot's rayon pool
    /// (`RAYON_NUM_THREADS`) [default: one per core].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    threads: Option<u32>,
    /// dpcot backends to measure, e.g. `--backend flex --backend ndarray` (with
    /// `--features ndarray`) [default: flex].
    #[arg(long)]
    backend: Vec<String>,
    /// Models to measure [default: standard, sparse and linear].
    #[arg(long)]
    model: Vec<String>,
    /// Only dpcot; do not set up or run PyTorch.
    #[arg(long)]
    no_torch: bool,
    /// Instead of timing steps, train the same model on the same LIS data (n = 8, 200 000
    /// examples, d_model 64, batch 64, lr 1e-3) in dpcot and in PyTorch until each reaches 90 %
    /// teacher-forced exact match on the same 500 validation examples, and compare the training
    /// time each needed: several minutes per model and side. Models [default: standard].
    #[arg(long, conflicts_with_all = ["quick", "small"])]
    to_accuracy: bool,
    /// Where to write bench.jsonl and bench.md.
    #[arg(long, default_value = "results/bench")]
    out: PathBuf,
    #[command(flatten)]
    build: BuildArgs,
}

#[derive(Debug, Clone, Copy)]
struct Shape {
    d_model: usize,
    seq_len: usize,
}

const BATCH: usize = 32;

/// The `--quick` shape, and the one the operations are timed at.
const QUICK: Shape = Shape {
    d_model: 128,
    seq_len: 128,
};

/// The arguments both `dpcot bench` and `bench/torch_bench.py` take for a shape.
fn shape_args(shape: Shape, iterations: usize) -> Vec<String> {
    vec![
        "--d-model".into(),
        shape.d_model.to_string(),
        "--seq-len".into(),
        shape.seq_len.to_string(),
        "--batch".into(),
        BATCH.to_string(),
        "--iterations".into(),
        iterations.to_string(),
        "--json".into(),
    ]
}

#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize)]
struct Timings {
    train_step_seconds: f64,
    forward_seconds: f64,
    decode_tokens_per_second: f64,
}

#[derive(Deserialize)]
struct Measured {
    timings: Timings,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
struct OpTiming {
    op: String,
    seconds: f64,
}

#[derive(Deserialize)]
struct MeasuredOps {
    ops: Vec<OpTiming>,
}

#[derive(serde::Serialize)]
struct OpsRow {
    backend: String,
    d_model: usize,
    seq_len: usize,
    dpcot: Vec<OpTiming>,
    pytorch: Option<Vec<OpTiming>>,
}

#[derive(serde::Serialize)]
struct Row {
    backend: String,
    model: String,
    d_model: usize,
    seq_len: usize,
    batch: usize,
    threads: usize,
    dpcot: Timings,
    pytorch: Option<Timings>,
}

pub fn bench(args: BenchArgs) -> Result<()> {
    let root = workspace_root()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = args.threads.map_or(cores, |threads| threads as usize);
    let shapes: Vec<Shape> = if args.quick {
        vec![QUICK]
    } else if args.small {
        [24, 48]
            .into_iter()
            .flat_map(|seq_len| {
                [16, 32, 64]
                    .into_iter()
                    .map(move |d_model| Shape { d_model, seq_len })
            })
            .collect()
    } else {
        [128, 512]
            .into_iter()
            .flat_map(|seq_len| {
                [64, 128, 256]
                    .into_iter()
                    .map(move |d_model| Shape { d_model, seq_len })
            })
            .collect()
    };
    let iterations = if args.quick {
        2
    } else if args.small {
        9
    } else {
        3
    };
    let models = if !args.model.is_empty() {
        args.model.clone()
    } else if args.to_accuracy {
        vec!["standard".to_string()]
    } else {
        vec!["standard".to_string(), "sparse".into(), "linear".into()]
    };
    let backends = if args.backend.is_empty() {
        vec!["flex".to_string()]
    } else {
        args.backend.clone()
    };

    let python = if args.no_torch {
        None
    } else {
        match torch_python(&root) {
            Ok(python) => Some(python),
            Err(err) => {
                eprintln!("skipping the PyTorch comparison: {err:#}");
                None
            }
        }
    };

    let dpcot = build_dpcot(&args.build)?;
    if args.to_accuracy {
        return ToAccuracy {
            root: &root,
            dpcot: &dpcot,
            python: python.as_deref(),
            models: &models,
            backends: &backends,
            threads,
            out: &args.out,
        }
        .run();
    }
    let mut rows = Vec::new();
    for shape in &shapes {
        for model in &models {
            let mut common = vec!["--model".to_string(), model.clone()];
            common.extend(shape_args(*shape, iterations));
            let pytorch = match &python {
                Some(python) => {
                    eprintln!(
                        "pytorch {model} d_model={} seq_len={}",
                        shape.d_model, shape.seq_len
                    );
                    let mut command = torch_bench(python, &root, &common, threads);
                    Some(run_json::<Measured>(&mut command)?.timings)
                }
                None => None,
            };
            for backend in &backends {
                eprintln!(
                    "dpcot {backend} {model} d_model={} seq_len={}",
                    shape.d_model, shape.seq_len
                );
                let mut command = dpcot_bench(&dpcot, &common, backend);
                command.env("RAYON_NUM_THREADS", threads.to_string());
                let dpcot = run_json::<Measured>(&mut command)?.timings;
                rows.push(Row {
                    backend: backend.clone(),
                    model: model.clone(),
                    d_model: shape.d_model,
                    seq_len: shape.seq_len,
                    batch: BATCH,
                    threads,
                    dpcot,
                    pytorch,
                });
            }
        }
    }

    // Where the time goes: the step's operations one by one, at the quick shape.
    let shape = QUICK;
    let mut ops_args = vec!["--ops".to_string()];
    ops_args.extend(shape_args(shape, 5));
    let torch_ops = match &python {
        Some(python) => {
            eprintln!("pytorch operations");
            let mut command = torch_bench(python, &root, &ops_args, threads);
            Some(run_json::<MeasuredOps>(&mut command)?.ops)
        }
        None => None,
    };
    let mut ops_rows = Vec::new();
    for backend in &backends {
        eprintln!("dpcot {backend} operations");
        let mut command = dpcot_bench(&dpcot, &ops_args, backend);
        command.env("RAYON_NUM_THREADS", threads.to_string());
        ops_rows.push(OpsRow {
            backend: backend.clone(),
            d_model: shape.d_model,
            seq_len: shape.seq_len,
            dpcot: run_json::<MeasuredOps>(&mut command)?.ops,
            pytorch: torch_ops.clone(),
        });
    }

    let table = format!("{}\n{}", markdown(&rows), ops_markdown(&ops_rows));
    println!("{table}");
    fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let mut jsonl = String::new();
    for row in &rows {
        jsonl.push_str(&serde_json::to_string(row)?);
        jsonl.push('\n');
    }
    for row in &ops_rows {
        jsonl.push_str(&serde_json::to_string(row)?);
        jsonl.push('\n');
    }
    write_atomic(&args.out.join("bench.jsonl"), &jsonl)?;
    write_atomic(&args.out.join("bench.md"), &table)?;
    eprintln!("wrote {}/bench.{{md,jsonl}}", args.out.display());
    Ok(())
}

/// The table: times, and dpcot ÷ PyTorch for each measurement (decoding as time per token).
fn markdown(rows: &[Row]) -> String {
    let mut out = String::from(
        "| backend | model | d_model | seq | train step (s) | PyTorch (s) | ratio | forward (s) | PyTorch (s) | ratio | decode (tok/s) | PyTorch (tok/s) | ratio |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let (d, p) = (&r.dpcot, r.pytorch.as_ref());
        let seconds = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.3}"));
        let ratio = |ours: f64, theirs: Option<f64>| {
            theirs.map_or("–".to_string(), |theirs| format!("{:.2}", ours / theirs))
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.3} | {} | {} | {:.3} | {} | {} | {:.0} | {} | {} |",
            r.backend,
            r.model,
            r.d_model,
            r.seq_len,
            d.train_step_seconds,
            seconds(p.map(|p| p.train_step_seconds)),
            ratio(d.train_step_seconds, p.map(|p| p.train_step_seconds)),
            d.forward_seconds,
            seconds(p.map(|p| p.forward_seconds)),
            ratio(d.forward_seconds, p.map(|p| p.forward_seconds)),
            d.decode_tokens_per_second,
            p.map_or("–".to_string(), |p| format!(
                "{:.0}",
                p.decode_tokens_per_second
            )),
            ratio(
                1.0 / d.decode_tokens_per_second,
                p.map(|p| 1.0 / p.decode_tokens_per_second)
            ),
        );
    }
    let _ = writeln!(
        out,
        "\nratio = dpcot time ÷ PyTorch time (decoding: per token); below 1 dpcot is faster. \
         Batch {BATCH}, 3 layers, 4 heads, vocabulary 64, {threads} thread(s) on each side; \
         median of the timed repetitions.",
        threads = rows.first().map_or(0, |r| r.threads),
    );
    out
}

/// One table per backend: each operation's time in dpcot and PyTorch, and the ratio.
fn ops_markdown(rows: &[OpsRow]) -> String {
    let mut out = String::new();
    for r in rows {
        let _ = writeln!(
            out,
            "Operations of a training step, {} backend (batch {BATCH}, seq {}, d_model {}):\n\n\
             | operation | dpcot (ms) | PyTorch (ms) | ratio |\n|---|---:|---:|---:|",
            r.backend, r.seq_len, r.d_model
        );
        for op in &r.dpcot {
            let theirs = r
                .pytorch
                .as_ref()
                .and_then(|ops| ops.iter().find(|o| o.op == op.op));
            let _ = writeln!(
                out,
                "| {} | {:.3} | {} | {} |",
                op.op,
                1e3 * op.seconds,
                theirs.map_or("–".to_string(), |t| format!("{:.3}", 1e3 * t.seconds)),
                theirs.map_or("–".to_string(), |t| format!(
                    "{:.2}",
                    op.seconds / t.seconds
                )),
            );
        }
        out.push('\n');
    }
    out
}

/// The venv's Python with torch importable, creating the venv and installing torch if needed.
fn torch_python(root: &Path) -> Result<PathBuf> {
    let venv = root.join("bench/.venv");
    let python = venv.join("bin/python");
    let has_torch = |python: &Path| {
        Command::new(python)
            .args(["-c", "import torch"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if python.exists() && has_torch(&python) {
        return Ok(python);
    }
    if !python.exists() {
        eprintln!("creating the PyTorch environment in {}", venv.display());
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .context("running python3 (is Python 3 installed?)")?;
        if !status.success() {
            bail!(
                "`python3 -m venv {}` failed ({status}); on Debian install python3-venv",
                venv.display()
            );
        }
    }
    eprintln!(
        "installing torch into {} (a large download, once)",
        venv.display()
    );
    let status = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "torch", "numpy"])
        .status()
        .context("running pip")?;
    if !status.success() || !has_torch(&python) {
        bail!("`pip install torch` failed ({status}); is PyPI reachable?");
    }
    Ok(python)
}

/// `dpcot bench <args> --backend <backend>`, with the binary [`build_dpcot`] built.
fn dpcot_bench(dpcot: &Path, args: &[String], backend: &str) -> Command {
    let mut command = Command::new(dpcot);
    command.arg("bench").args(args).args(["--backend", backend]);
    command
}

/// `python bench/torch_bench.py <args>` with `threads` torch threads.
fn torch_bench(python: &Path, root: &Path, args: &[String], threads: usize) -> Command {
    let mut command = Command::new(python);
    command
        .arg(root.join("bench/torch_bench.py"))
        .args(args)
        .args(["--threads", &threads.to_string()]);
    command
}

/// Runs `command` with its output captured: its stdout, or an error with its stderr if it fails.
pub(crate) fn run_captured(command: &mut Command) -> Result<Vec<u8>> {
    let output = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(output.stdout)
}

/// Runs a measuring command and parses the JSON object it prints last.
pub(crate) fn run_json<T: for<'de> Deserialize<'de>>(command: &mut Command) -> Result<T> {
    let stdout = run_captured(command)?;
    let stdout = String::from_utf8_lossy(&stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .with_context(|| format!("{command:?} printed no JSON:\n{stdout}"))?;
    serde_json::from_str(line).with_context(|| format!("parsing the output of {command:?}: {line}"))
}

pub(crate) fn write_atomic(path: &Path, text: &str) -> Result<()> {
    dpcot_tasks::atomic::write_atomic(path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}
