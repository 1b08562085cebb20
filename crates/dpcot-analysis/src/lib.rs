//! # dpcot-analysis
//!
//! The experiments on top of dpcot-train: profiles of tasks, sizes, models and dimensions;
//! resumable, shardable sweeps that find each model's minimal embedding dimension by bisection;
//! the compute each model spends at equal accuracy; and the report with its figures.
//!
//! ```no_run
//! use dpcot_analysis::profile::Profile;
//! use dpcot_analysis::report::write_report;
//! use dpcot_analysis::results::Results;
//! use dpcot_analysis::sweep::{run_sweep, SweepOptions};
//! use dpcot_analysis::worker::WorkerCommand;
//! use dpcot_train::Backend;
//!
//! let profile = Profile::named_or_load("smoke")?;
//! let results = Results::new("results/smoke");
//! let options = SweepOptions {
//!     results: results.clone(),
//!     // Each run is trained by `dpcot worker <job file>` in a process of its own.
//!     worker: WorkerCommand::new("dpcot").arg("worker"),
//!     backend: Backend::Flex,
//!     shard: None,
//!     full_grid: false,
//!     jobs: 1,
//!     experiments: vec![],
//!     quiet: false,
//! };
//! run_sweep(&profile, &options)?;
//! write_report(&profile, &[results], "results/smoke".as_ref())?;
//! # Ok::<(), dpcot_analysis::AnalysisError>(())
//! ```

#![warn(missing_docs)]

mod error;
#[cfg(test)]
mod fixtures;
pub mod plots;
pub mod profile;
pub mod report;
pub mod results;
pub mod search;
pub mod summary;
pub mod sweep;
pub mod worker;

pub use error::AnalysisError;
