//! `dpcot eval`: greedy CoT decoding of a finished run's whole test split (or of a reference
//! checkpoint), checked step by step.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use dpcot_tasks::DpTask;
use dpcot_train::{EvalMetrics, RunDir, TrainConfig};

use crate::args::BackendArgs;
use crate::interop;

#[derive(Args)]
pub struct EvalArgs {
    /// A run directory written by `dpcot train`.
    #[arg(long, required_unless_present = "checkpoint")]
    run: Option<PathBuf>,
    /// Sequences decoded at once.
    #[arg(long, default_value_t = TrainConfig::DEFAULT_BATCH_SIZE as u64, value_parser = clap::value_parser!(u64).range(1..))]
    batch_size: u64,
    #[command(flatten)]
    backend: BackendArgs,
    #[command(flatten)]
    reference: interop::CheckpointArgs,
}

pub fn run(args: EvalArgs) -> Result<()> {
    let batch_size = args.batch_size as usize;
    if let Some(outcome) = interop::eval(&args.reference, batch_size, || args.backend.backend()) {
        return outcome;
    }
    let dir = RunDir::new(
        args.run
            .as_ref()
            .context("--run or --checkpoint is required")?,
    );
    let (task, metrics) = dpcot_train::evaluate_run(&dir, args.backend.backend()?, batch_size)?;
    let steps = dir.read_summary().map(|s| s.steps).unwrap_or(0);
    print_eval(&format!("{} after {steps} steps", task.name()), &metrics);
    Ok(())
}

/// One evaluation as a person reads it; `heading` says what was evaluated.
pub fn print_eval(heading: &str, m: &EvalMetrics) {
    println!(
        "{heading}, {} test examples: headline ({}) {:.1}% | answer {:.1}% | chain {:.1}% | teacher-forced {:.1}% | well-formed {:.1}% | decode {:.0} tokens/s",
        m.examples,
        m.headline_metric,
        100.0 * m.headline,
        100.0 * m.answer_accuracy,
        100.0 * m.chain_accuracy,
        100.0 * m.teacher_forced_accuracy,
        100.0 * m.well_formed,
        m.decode_tokens_per_second
    );
    if !m.first_wrong_step.is_empty() {
        println!(
            "first wrong step in free generation (step: chains): {}; how wrong: {}",
            m.first_wrong_steps_text(),
            m.first_wrong_kinds_text()
        );
    }
}
