//! `dpcot check`: every example of a dataset file verified by the task's CoT checker.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use dpcot_tasks::{Dataset, DpTask};

use crate::interop;

#[derive(Args)]
pub struct CheckArgs {
    /// A dataset file written by `dpcot generate` (or a reference file with --format cot-benchmark).
    file: PathBuf,
    #[command(flatten)]
    interop: interop::CheckFormatArgs,
}

pub fn run(args: CheckArgs, quiet: bool) -> Result<()> {
    if let Some(outcome) = interop::check(&args.file, &args.interop) {
        return outcome;
    }
    let data = Dataset::read(&args.file)?;
    let task = data.task()?;
    let bar = dpcot_train::progress::counter(data.examples.len() as u64, "check", quiet);
    let mut invalid = 0;
    for (i, example) in data.examples.iter().enumerate() {
        let report = task.check(example.prompt(), example.completion());
        match report {
            Ok(r) if r.is_correct() && r.answer_correct && r.well_formed => {}
            outcome => {
                invalid += 1;
                let why = match outcome {
                    Ok(r) => r.to_string(),
                    Err(e) => e.to_string(),
                };
                // Line 1 is the header.
                bar.suspend(|| eprintln!("{}:{}: invalid: {why}", args.file.display(), i + 2));
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!(
        "{} ({}, {}): {} examples: {} valid, {invalid} invalid",
        args.file.display(),
        data.header.split.as_str(),
        task.name(),
        data.examples.len(),
        data.examples.len() - invalid
    );
    if invalid > 0 {
        bail!("{invalid} invalid examples in {}", args.file.display());
    }
    Ok(())
}
