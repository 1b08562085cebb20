//! # dpcot-analysis
//!
//! The experiments on top of dpcot-train: profiles of tasks, sizes, models and dimensions;
//! resumable, shardable sweeps that find each model's minimal embedding dimension by bisection;
//! the compute each model spends at equal accuracy; and the report with its figures.
//!
//! ```no_run
//! use dpcot_analysis::{profile::Profile, report::write_report, sweep::{run_sweep, Results, SweepOptions}};
//!
//! let profile = Profile::load("configs/profiles/smoke.toml".as_ref())?;
//! let results = Results::new("results/smoke");
//! let options = SweepOptions {
//!     results: results.clone(),
//!     worker: "target/debug/dpcot".into(),
//!     backend: "flex".into(),
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

mod error;
#[cfg(test)]
mod fixtures;
pub mod plots;
pub mod profile;
pub mod report;
pub mod search;
pub mod summary;
pub mod sweep;

pub use error::AnalysisError;
