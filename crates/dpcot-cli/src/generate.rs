//! `dpcot generate`: a train and a test split of a task, written as a dataset directory.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use dpcot_tasks::dataset::{self, Existing};
use dpcot_tasks::{DpTask, GenerateConfig, TaskError};
use dpcot_train::TrainConfig;

use crate::args::TaskArgs;

#[derive(Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    task: TaskArgs,
    /// Training examples.
    #[arg(long, default_value_t = 100_000)]
    train: usize,
    /// Test examples (never in the training set).
    #[arg(long, default_value_t = 10_000)]
    test: usize,
    /// Seed of the generator.
    #[arg(long, default_value_t = TrainConfig::DEFAULT_SEED)]
    seed: u64,
    /// Arithmetic: mix smaller operator counts into the training set, share proportional to the count.
    #[arg(long)]
    mix_smaller: bool,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// Replace a dataset already in --out (runs trained on it would be evaluated on the new one).
    #[arg(long)]
    force: bool,
}

pub fn run(args: GenerateArgs, quiet: bool) -> Result<()> {
    let config = GenerateConfig {
        task: args.task.spec()?,
        train: args.train,
        test: args.test,
        seed: args.seed,
        mix_smaller: args.mix_smaller,
    };
    let task = config.task.build()?;
    // Refused before generating, which may take a while.
    let existing = existing(args.force);
    existing
        .check(dataset::dir_files(&args.out).iter().map(PathBuf::as_path))
        .map_err(force_hint)?;
    let started = Instant::now();
    let bar = dpcot_train::progress::counter((args.train + args.test) as u64, "generate", quiet);
    let (train, test) = dpcot_tasks::generate(&config, |done| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    let generated = started.elapsed();
    dataset::write_dir(&args.out, &train, &test, existing)
        .map_err(force_hint)
        .with_context(|| format!("writing the dataset to {}", args.out.display()))?;
    println!(
        "{}: {} train + {} test examples (max length {}, vocabulary {}) in {} -> {:.2}s generate, {:.2}s total",
        task.name(),
        train.examples.len(),
        test.examples.len(),
        task.max_len(),
        task.vocab().len(),
        args.out.display(),
        generated.as_secs_f64(),
        started.elapsed().as_secs_f64(),
    );
    Ok(())
}

/// `--force` as what writing a dataset does to an earlier one.
pub fn existing(force: bool) -> Existing {
    if force {
        Existing::Replace
    } else {
        Existing::Refuse
    }
}

/// The library refuses to replace a dataset; the command line says how to ask for it.
pub fn force_hint(err: TaskError) -> anyhow::Error {
    match err {
        TaskError::OutputExists { .. } => {
            anyhow::anyhow!("{err}; pass --force to replace it, or choose another --out")
        }
        err => err.into(),
    }
}
