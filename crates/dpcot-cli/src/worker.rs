//! `dpcot worker JOB`: the process a sweep starts for each run (the typed contract is
//! [`dpcot_train::RunJob`]).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use dpcot_train::{RunDir, RunJob};

use crate::train::print_summary;

#[derive(Args)]
pub struct WorkerArgs {
    /// A run job file (JSON), as a sweep writes to `jobs/` of its results directory.
    job: PathBuf,
}

pub fn run(args: WorkerArgs) -> Result<()> {
    let job = RunJob::read(&args.job)?;
    let summary = job.execute()?;
    print_summary(&summary, &RunDir::new(&job.out));
    Ok(())
}
