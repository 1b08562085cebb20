//! # dpcot-tasks
//!
//! The dynamic-programming tasks whose chains of thought dpcot trains on, in the formats of the
//! reference benchmark of Feng et al. 2023 (*Towards Revealing the Mystery behind Chain of
//! Thought*): **Arithmetic** over Z_p, **LIS** and **Edit Distance**, plus their m-local
//! variants (windowed LIS, banded edit distance). For each: a generator, the vocabulary and
//! tokenizer, a reference solver, a CoT checker that finds the first wrong step, and datasets
//! on disk.
//!
//! - [`task`]: the [`DpTask`] interface, [`TaskSpec`] (what configs and datasets record) and
//!   [`Task`], any of the three;
//! - [`arithmetic`], [`lis`], [`edit_distance`]: generator, vocabulary and reference solver of
//!   each task;
//! - [`length`]: the paper's problem size L, measured on generated examples;
//! - [`vocab`]: word-level vocabularies and tokenization;
//! - [`check`]: the CoT checker's [`CheckReport`] and the first wrong step;
//! - [`dataset`]: generating datasets with disjoint splits, and reading and writing them;
//! - [`reference_format`]: the reference benchmark's data files (import, export, checking);
//! - [`atomic`]: atomic file writes (temporary file, then rename), the workspace's one;
//! - [`TaskError`]: the crate's one error type.
//!
//! ```
//! use dpcot_tasks::{DpTask, TaskOptions, TaskSpec};
//! use rand::SeedableRng;
//!
//! let task = TaskSpec::from_name("lis", 8, &TaskOptions::default())?.build()?;
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
//! let example = task.generate(&mut rng);
//! println!("{}", task.vocab().decode(&example.tokens));
//!
//! let report = task.check(example.prompt(), example.completion())?;
//! assert!(report.is_correct() && report.answer_correct);
//! # Ok::<(), dpcot_tasks::TaskError>(())
//! ```

#![warn(missing_docs)]

pub mod arithmetic;
pub mod atomic;
pub mod check;
pub mod dataset;
pub mod edit_distance;
mod error;
pub mod length;
pub mod lis;
pub mod reference_format;
pub mod stream;
pub mod task;
pub mod vocab;

pub use check::{CheckReport, WrongKind, WrongStep};
pub use dataset::{generate, Dataset, DatasetHeader, GenerateConfig, Split};
pub use error::TaskError;
pub use length::{empirical_max_len, EMPIRICAL_SAMPLES, EMPIRICAL_SEED};
pub use stream::{ExampleStream, HeldOut, Sampler};
pub use task::{DpTask, Example, Task, TaskKind, TaskOptions, TaskSpec};
pub use vocab::{TokenId, Vocab};
