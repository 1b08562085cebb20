//! `cargo xtask bench --to-accuracy`: the training time each side needs to reach a target
//! accuracy, dpcot beside PyTorch, on the same data with the same model and hyperparameters.
//!
//! The setting is issue #14's: LIS with n = 8 (200 000 training examples made by `dpcot
//! generate`, the last 500 of them held out for validation), d_model 64, 3 layers, 4 heads, no
//! dropout, batch 64, AdamW at lr 1e-3 with 400 warm-up steps and linear decay to 0 at step
//! 12 000, teacher-forced exact match on the same 500 validation examples every 250 steps, until
//! 90 %. dpcot trains with `dpcot train --data`, PyTorch with `bench/torch_bench.py
//! --to-accuracy`. Each side times its training steps only (not the evaluations), so the ratio is
//! the one a researcher waiting for a result sees, less evaluation.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::bench::{run_captured, run_json, write_atomic};

const SIZE: &str = "8";
const TRAIN_EXAMPLES: usize = 200_000;
const VALIDATION_EXAMPLES: usize = 500;
const D_MODEL: &str = "64";
const BATCH: &str = "64";
const LEARNING_RATE: &str = "1e-3";
const WARMUP_STEPS: &str = "400";
const HORIZON: &str = "12000";
const EVAL_EVERY: &str = "250";
const TARGET: &str = "0.9";
const SEED: &str = "1";

/// How one side's training went: whether it reached the target, at which evaluation step, and
/// after how many seconds of training steps.
#[derive(Debug, Clone, Deserialize, Serialize)]
struct Trained {
    reached_target: bool,
    steps: usize,
    train_seconds: f64,
}

#[derive(Deserialize)]
struct TorchTrained {
    training: Trained,
}

#[derive(Serialize)]
struct Row {
    backend: String,
    model: String,
    threads: usize,
    dpcot: Trained,
    pytorch: Option<Trained>,
}

/// What to run: the dpcot binary, the Python with torch (none: dpcot only), the models and
/// backends, the threads of each side, and where to write.
pub struct ToAccuracy<'a> {
    pub root: &'a Path,
    pub dpcot: &'a Path,
    pub python: Option<&'a Path>,
    pub models: &'a [String],
    pub backends: &'a [String],
    pub threads: usize,
    pub out: &'a Path,
}

impl ToAccuracy<'_> {
    pub fn run(&self) -> Result<()> {
        let work = self.out.join("to-accuracy");
        let data = work.join("data");
        eprintln!(
            "generating {TRAIN_EXAMPLES} + {VALIDATION_EXAMPLES} LIS examples (n = {SIZE}) in {}",
            data.display()
        );
        let total = (TRAIN_EXAMPLES + VALIDATION_EXAMPLES).to_string();
        let mut generate = Command::new(self.dpcot);
        generate
            .args(["--quiet", "generate", "--task", "lis", "--size", SIZE])
            .args([
                "--train",
                &total,
                "--test",
                &VALIDATION_EXAMPLES.to_string(),
            ])
            .args(["--seed", SEED, "--force", "--out"])
            .arg(&data);
        run_captured(&mut generate)?;

        let mut rows = Vec::new();
        for model in self.models {
            let pytorch = match self.python {
                Some(python) => {
                    eprintln!("pytorch {model}: training to {TARGET} (minutes)");
                    let mut command = self.torch(python, model, &data);
                    Some(run_json::<TorchTrained>(&mut command)?.training)
                }
                None => None,
            };
            for backend in self.backends {
                eprintln!("dpcot {backend} {model}: training to {TARGET} (minutes)");
                let dpcot = self.dpcot_train(backend, model, &data, &work)?;
                rows.push(Row {
                    backend: backend.clone(),
                    model: model.clone(),
                    threads: self.threads,
                    dpcot,
                    pytorch: pytorch.clone(),
                });
            }
        }

        let table = markdown(&rows);
        println!("{table}");
        let mut jsonl = String::new();
        for row in &rows {
            jsonl.push_str(&serde_json::to_string(row)?);
            jsonl.push('\n');
        }
        write_atomic(&self.out.join("to-accuracy.jsonl"), &jsonl)?;
        write_atomic(&self.out.join("to-accuracy.md"), &table)?;
        eprintln!("wrote {}/to-accuracy.{{md,jsonl}}", self.out.display());
        Ok(())
    }

    fn torch(&self, python: &Path, model: &str, data: &Path) -> Command {
        let mut command = Command::new(python);
        command
            .arg(self.root.join("bench/torch_bench.py"))
            .arg("--to-accuracy")
            .arg(data)
            .args(["--model", model, "--d-model", D_MODEL, "--batch", BATCH])
            .args(["--layers", "3", "--heads", "4", "--dropout", "0"])
            .args(["--steps", HORIZON, "--learning-rate", LEARNING_RATE])
            .args(["--warmup-steps", WARMUP_STEPS, "--eval-every", EVAL_EVERY])
            .args(["--validation-examples", &VALIDATION_EXAMPLES.to_string()])
            .args(["--target", TARGET, "--seed", SEED, "--json"])
            .args(["--threads", &self.threads.to_string()]);
        command
    }

    /// `dpcot train --data` with the same settings, in a fresh run directory; its summary.
    fn dpcot_train(&self, backend: &str, model: &str, data: &Path, work: &Path) -> Result<Trained> {
        let run: PathBuf = work.join(format!("{backend}-{model}"));
        if run.exists() {
            fs::remove_dir_all(&run).with_context(|| format!("removing {}", run.display()))?;
        }
        let mut command = Command::new(self.dpcot);
        command
            .args([
                "--quiet", "train", "--task", "lis", "--size", SIZE, "--data",
            ])
            .arg(data)
            .args([
                "--model",
                model,
                "--d-model",
                D_MODEL,
                "--batch-size",
                BATCH,
            ])
            .args(["--n-layers", "3", "--n-heads", "4", "--dropout", "0"])
            .args(["--steps", HORIZON, "--learning-rate", LEARNING_RATE])
            .args(["--warmup-steps", WARMUP_STEPS, "--eval-every", EVAL_EVERY])
            .args(["--eval-examples", &VALIDATION_EXAMPLES.to_string()])
            .args(["--validation-examples", &VALIDATION_EXAMPLES.to_string()])
            .args([
                "--target",
                TARGET,
                "--seed",
                SEED,
                "--backend",
                backend,
                "--out",
            ])
            .arg(&run)
            .env("RAYON_NUM_THREADS", self.threads.to_string());
        run_captured(&mut command)?;
        let summary = run.join("summary.json");
        let text = fs::read_to_string(&summary)
            .with_context(|| format!("reading {}", summary.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", summary.display()))
    }
}

/// The table: steps and training seconds to the target on each side, and dpcot ÷ PyTorch.
fn markdown(rows: &[Row]) -> String {
    let mut out = String::from(
        "| backend | model | dpcot steps | dpcot (s) | PyTorch steps | PyTorch (s) | time ratio |\n\
         |---|---|---:|---:|---:|---:|---:|\n",
    );
    let cell = |t: &Trained| {
        let steps = if t.reached_target {
            t.steps.to_string()
        } else {
            format!("> {} (not reached)", t.steps)
        };
        (steps, format!("{:.1}", t.train_seconds))
    };
    for r in rows {
        let (steps, seconds) = cell(&r.dpcot);
        let (torch_steps, torch_seconds) =
            r.pytorch.as_ref().map_or(("–".into(), "–".into()), cell);
        let ratio = match &r.pytorch {
            Some(p) if p.reached_target && r.dpcot.reached_target => {
                format!("{:.2}", r.dpcot.train_seconds / p.train_seconds)
            }
            _ => "–".into(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {steps} | {seconds} | {torch_steps} | {torch_seconds} | {ratio} |",
            r.backend, r.model
        );
    }
    let _ = writeln!(
        out,
        "\nTraining time (evaluation excluded) until teacher-forced exact match on the same \
         {VALIDATION_EXAMPLES} validation examples reached {TARGET}, evaluated every \
         {EVAL_EVERY} steps: LIS n = {SIZE}, {TRAIN_EXAMPLES} training examples, d_model \
         {D_MODEL}, 3 layers, 4 heads, no dropout, batch {BATCH}, AdamW lr {LEARNING_RATE} \
         ({WARMUP_STEPS} warm-up steps, linear decay to 0 at step {HORIZON}), {threads} \
         thread(s) on each side. time ratio = dpcot ÷ PyTorch; below 1 dpcot is faster.",
        threads = rows.first().map_or(0, |r| r.threads),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trained(reached_target: bool, steps: usize, train_seconds: f64) -> Trained {
        Trained {
            reached_target,
            steps,
            train_seconds,
        }
    }

    fn row(dpcot: Trained, pytorch: Option<Trained>) -> Row {
        Row {
            backend: "flex".into(),
            model: "standard".into(),
            threads: 2,
            dpcot,
            pytorch,
        }
    }

    #[test]
    fn the_ratio_is_given_only_when_both_sides_reached_the_target() {
        let table = markdown(&[
            row(trained(true, 8250, 377.5), Some(trained(true, 8250, 281.1))),
            row(
                trained(false, 12000, 500.0),
                Some(trained(true, 8000, 250.0)),
            ),
            row(trained(true, 9000, 400.0), None),
        ]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[2],
            "| flex | standard | 8250 | 377.5 | 8250 | 281.1 | 1.34 |"
        );
        assert_eq!(
            lines[3],
            "| flex | standard | > 12000 (not reached) | 500.0 | 8000 | 250.0 | – |"
        );
        assert_eq!(lines[4], "| flex | standard | 9000 | 400.0 | – | – | – |");
        assert!(table.contains("2 thread(s) on each side"));
    }
}
