//! `dpcot sweep`: an experiment profile's minimal-dimension searches, each run in a worker
//! process of its own, then the report.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use dpcot_analysis::profile::{Experiment, Profile};
use dpcot_analysis::results::Results;
use dpcot_analysis::sweep::{Shard, SweepOptions};
use dpcot_analysis::worker::WorkerCommand;

use crate::args::BackendArgs;

#[derive(Args)]
pub struct SweepArgs {
    /// A built-in profile (smoke, quick, paper) or a profile file (e.g. a copy of
    /// configs/profiles/quick.toml).
    #[arg(long, default_value = "quick")]
    profile: String,
    /// Results directory: records/, runs/, jobs/, logs/ (resumable: finished runs are
    /// skipped) [default: results/<profile name>].
    #[arg(long)]
    results: Option<PathBuf>,
    /// Run only shard i of N (1-based), e.g. 2/8; no report is written, merge the shards with
    /// `dpcot report`.
    #[arg(long)]
    shard: Option<Shard>,
    /// Train every dimension of the grid instead of bisecting.
    #[arg(long)]
    full_grid: bool,
    /// Searches run at once, each run in a process of its own [default: the number of cores on
    /// a CPU backend, 1 on a GPU]. On the CPU each run's thread pool gets the cores divided
    /// among the searches running at once, unless RAYON_NUM_THREADS is set.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    jobs: Option<u64>,
    /// Only this experiment; repeatable [default: the profile's default experiments, or all].
    #[arg(long, value_enum)]
    experiment: Vec<Experiment>,
    #[command(flatten)]
    backend: BackendArgs,
}

pub fn run(args: SweepArgs, quiet: bool) -> Result<()> {
    let profile = Profile::named_or_load(&args.profile)?;
    let backend = args.backend.backend()?;
    let root = args
        .results
        .unwrap_or_else(|| PathBuf::from("results").join(&profile.name));
    let results = Results::new(&root);
    let options = SweepOptions {
        results: results.clone(),
        worker: WorkerCommand::new(
            std::env::current_exe().context("locating the dpcot executable")?,
        )
        .arg("worker"),
        backend,
        shard: args.shard,
        full_grid: args.full_grid,
        jobs: args
            .jobs
            .map_or_else(|| SweepOptions::default_jobs(backend), |j| j as usize),
        experiments: args.experiment,
        quiet,
    };
    let outcome = dpcot_analysis::sweep::run_sweep(&profile, &options)?;
    println!(
        "{}: {} runs trained, {} already recorded, in {}",
        profile.name,
        outcome.trained,
        outcome.reused,
        root.display()
    );
    if args.shard.is_some() {
        eprintln!(
            "shard done; merge all shards with: dpcot report --results {} …",
            root.display()
        );
        return Ok(());
    }
    crate::report::write(&profile, &[results], &root)
}
