//! # dpcot-train
//!
//! Training and evaluation of dpcot models on the DP chain-of-thought tasks: AdamW with
//! warm-up and linear decay on the next-token loss masked to the chain of thought and answer,
//! fresh examples every step with validation and test splits held out, runs that end in a
//! stated way (passed, plateaued, out of budget) and are continued while still improving,
//! checkpoints that resume bit for bit, `metrics.jsonl` and `summary.json` in a run directory,
//! and evaluation by greedy CoT decoding through the attention caches, checked step by step.
//!
//! ```no_run
//! use dpcot_model::ModelConfig;
//! use dpcot_tasks::{DpTask, TaskOptions, TaskSpec};
//! use dpcot_train::{
//!     train, Backend, DataSource, Resume, RunConfig, RunDir, TrainConfig, TrainOptions,
//! };
//!
//! let task = TaskSpec::from_name("lis", 8, &TaskOptions::default())?;
//! let built = task.build()?;
//! let config = RunConfig {
//!     model: ModelConfig::new(built.vocab().len(), built.max_len(), 64, Default::default()),
//!     task,
//!     train: TrainConfig::new(3000),
//!     // Fresh training examples every step; 500 validation and 1000 test examples.
//!     data: DataSource::Generated {
//!         train: None,
//!         validation: 500,
//!         test: 1_000,
//!         seed: 1,
//!         mix_smaller: false,
//!     },
//! };
//! let options = TrainOptions {
//!     backend: Backend::Flex,
//!     resume: Resume::No,
//!     quiet: false,
//!     halt_after: None,
//! };
//! let summary = train(&RunDir::new("runs/lis-8"), &config, &options)?;
//! println!("{:.1}% after {} steps", 100.0 * summary.eval.headline, summary.steps);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

pub mod backend;
pub mod batch;
pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod data;
mod error;
pub mod eval;
pub mod job;
pub mod memory;
pub mod metrics;
pub mod optim;
pub mod plateau;
pub mod progress;
pub mod run_dir;
pub mod train;

pub use backend::Backend;
pub use config::{DataOverrides, DataSource, RunConfig, TrainConfig, TrainOverrides};
pub use error::TrainError;
pub use eval::{evaluate, evaluate_run, EvalMetrics, Headline};
pub use job::RunJob;
pub use metrics::{EvalSplit, MetricsLine, RunEnding, RunSummary};
pub use run_dir::RunDir;
pub use train::{train, Resume, TrainOptions};
