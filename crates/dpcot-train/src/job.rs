//! The worker contract: one run's whole specification as one serialized value.
//!
//! A sweep writes a [`RunJob`] file per run and starts a worker process on it; the worker
//! calls [`RunJob::execute`]. A process per run isolates burn's global RNG and gives each run
//! its own peak memory. Nothing but the file passes between the two, so the contract is typed
//! end to end: the sweep never spells a command-line flag of the worker.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{train, Backend, Resume, RunConfig, RunDir, RunSummary, TrainError, TrainOptions};

/// One run to execute: what to train, where, on which backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunJob {
    /// What the run trains.
    pub config: RunConfig,
    /// The run directory.
    pub out: PathBuf,
    /// The backend it trains on.
    pub backend: Backend,
    /// Whether to continue a run already in `out` (one interrupted with its sweep).
    pub resume: Resume,
}

impl RunJob {
    /// Reads a job file.
    pub fn read(path: &Path) -> Result<Self, TrainError> {
        let text = std::fs::read_to_string(path).map_err(TrainError::io(path))?;
        serde_json::from_str(&text).map_err(|e| TrainError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("not a run job: {e}"),
        })
    }

    /// Writes the job file atomically.
    pub fn write(&self, path: &Path) -> Result<(), TrainError> {
        dpcot_tasks::atomic::write_json_atomic(path, self).map_err(TrainError::io(path))
    }

    /// Trains (or resumes) the run; its progress bar is drawn only on a terminal.
    pub fn execute(&self) -> Result<RunSummary, TrainError> {
        let options = TrainOptions {
            backend: self.backend,
            resume: self.resume,
            quiet: false,
            halt_after: None,
        };
        train(&RunDir::new(&self.out), &self.config, &options)
    }
}

#[cfg(test)]
mod tests {
    use dpcot_model::ModelConfig;
    use dpcot_tasks::{DpTask, TaskOptions, TaskSpec};

    use super::*;
    use crate::{DataOverrides, TrainConfig};

    fn job(out: &Path) -> RunJob {
        let task = TaskSpec::from_name("lis", 3, &TaskOptions::default()).unwrap();
        let built = task.build().unwrap();
        RunJob {
            config: RunConfig {
                model: ModelConfig::new(
                    built.vocab().len(),
                    built.max_len(),
                    8,
                    Default::default(),
                ),
                data: DataOverrides::default().generated(&task, 1),
                task,
                train: TrainConfig::new(2),
            },
            out: out.to_path_buf(),
            backend: Backend::Flex,
            resume: Resume::No,
        }
    }

    #[test]
    fn a_job_file_round_trips_and_bad_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.json");
        let original = job(&dir.path().join("run"));
        original.write(&path).unwrap();
        assert_eq!(RunJob::read(&path).unwrap(), original);

        std::fs::write(&path, r#"{"config": 1}"#).unwrap();
        let err = RunJob::read(&path).unwrap_err();
        assert!(
            err.to_string().contains("not a run job") && err.to_string().contains("job.json"),
            "{err}"
        );
        let missing = RunJob::read(&dir.path().join("missing.json")).unwrap_err();
        assert!(missing.to_string().contains("missing.json"), "{missing}");
    }
}
