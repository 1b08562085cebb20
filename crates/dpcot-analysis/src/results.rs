//! A results directory: its layout, and the one record each finished run leaves in it.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};

use dpcot_tasks::atomic::{read_json_sealed, SealedReadError};
use dpcot_tasks::{DpTask, TaskSpec};
use dpcot_train::{RunConfig, RunSummary};
use serde::{Deserialize, Serialize};

use crate::profile::{Experiment, ModelChoice};
use crate::sweep::Shard;
use crate::AnalysisError;

/// What identifies a run of a sweep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunKey {
    /// The experiment.
    pub experiment: Experiment,
    /// The task at one size.
    pub task: TaskSpec,
    /// The compared model.
    pub model: ModelChoice,
    /// The embedding dimension.
    pub d_model: usize,
    /// The seed of the run (initialisation, data, batch order, dropout).
    pub seed: u64,
}

impl RunKey {
    /// File-name-safe and unique within a profile.
    pub fn id(&self) -> String {
        let task = self
            .task
            .build()
            .map(|t| t.name())
            .unwrap_or_else(|_| "invalid".into());
        format!(
            "{}-{}-{}-d{}-s{}",
            self.experiment,
            task,
            self.model.name(),
            self.d_model,
            self.seed
        )
    }
}

/// One finished run: `records/<id>.json` of a results directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Which run.
    pub key: RunKey,
    /// The run's whole configuration.
    pub config: RunConfig,
    /// What it reached and what it cost.
    pub summary: RunSummary,
    /// Wall time of the whole run process (data generation and evaluation included).
    pub wall_seconds: f64,
}

impl RunRecord {
    /// Measured wall time of greedy decoding per generated token, in seconds.
    pub fn decode_seconds_per_token(&self) -> f64 {
        self.summary.eval.decode_seconds / self.summary.eval.decode_tokens.max(1) as f64
    }
}

/// A sweep's hold on its results directory ([`Results::lock`]); released when dropped.
#[derive(Debug)]
pub struct ResultsLock {
    _files: Vec<File>,
}

/// The layout of a results directory.
#[derive(Debug, Clone)]
pub struct Results {
    /// The results directory.
    pub root: PathBuf,
}

impl Results {
    /// The results directory `root` (created by the sweep).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
    /// One JSON record per finished run.
    pub fn records(&self) -> PathBuf {
        self.root.join("records")
    }
    /// The profile the sweep ran, kept with its results.
    pub fn profile(&self) -> PathBuf {
        self.root.join("profile.toml")
    }
    /// The record of run `id`.
    pub fn record(&self, id: &str) -> PathBuf {
        self.records().join(format!("{id}.json"))
    }
    /// The run directory of run `id` (config, metrics, checkpoint, summary).
    pub fn run_dir(&self, id: &str) -> PathBuf {
        self.root.join("runs").join(id)
    }
    /// The job file a worker executes for run `id`.
    pub fn job(&self, id: &str) -> PathBuf {
        self.root.join("jobs").join(format!("{id}.json"))
    }
    /// The worker's log of run `id`.
    pub fn log(&self, id: &str) -> PathBuf {
        self.root.join("logs").join(format!("{id}.log"))
    }

    /// The lock file every sweep on the directory holds: exclusively for a whole sweep, shared
    /// for a shard.
    pub fn lock_file(&self) -> PathBuf {
        self.root.join("lock")
    }

    /// The lock file of a shard, held exclusively by the sweep that runs it.
    pub fn shard_lock_file(&self, shard: Shard) -> PathBuf {
        self.root
            .join(format!("lock-shard-{}-of-{}", shard.index, shard.count))
    }

    /// Takes the directory for a sweep (`shard`: one shard of one), creating it if needed.
    ///
    /// A whole sweep excludes every other sweep; shards of one exclude a whole sweep and the
    /// same shard, and run beside each other, as the tasks of a Slurm array do on a shared
    /// directory. The locks are advisory (`flock`), released when the returned guard is dropped
    /// or the process ends, however it ends.
    pub fn lock(&self, shard: Option<Shard>) -> Result<ResultsLock, AnalysisError> {
        std::fs::create_dir_all(&self.root).map_err(AnalysisError::io(&self.root))?;
        let open = |path: &Path| {
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(path)
                .map_err(AnalysisError::io(path))
        };
        let try_lock = |path: &Path, file: &File, exclusive: bool, what: &str| {
            let taken = if exclusive {
                file.try_lock()
            } else {
                file.try_lock_shared()
            };
            match taken {
                Ok(()) => Ok(()),
                Err(TryLockError::WouldBlock) => Err(AnalysisError::ResultsBusy {
                    path: path.to_path_buf(),
                    what: what.to_string(),
                }),
                Err(TryLockError::Error(e)) => Err(AnalysisError::io(path)(e)),
            }
        };
        let path = self.lock_file();
        let directory = open(&path)?;
        let mut files = vec![directory];
        match shard {
            None => try_lock(
                &path,
                &files[0],
                true,
                "a sweep without --shard takes the directory alone",
            )?,
            Some(shard) => {
                try_lock(
                    &path,
                    &files[0],
                    false,
                    "a sweep without --shard is running here",
                )?;
                let path = self.shard_lock_file(shard);
                let file = open(&path)?;
                try_lock(
                    &path,
                    &file,
                    true,
                    &format!("shard {}/{} is already running", shard.index, shard.count),
                )?;
                files.push(file);
            }
        }
        Ok(ResultsLock { _files: files })
    }

    /// Every record in the directory, sorted by id.
    pub fn load_records(&self) -> Result<Vec<RunRecord>, AnalysisError> {
        let dir = self.records();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(Vec::new());
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        paths.sort();
        paths.iter().map(|p| read_record(p)).collect()
    }
}

/// Reads a record; its task must build, which the report relies on.
pub(crate) fn read_record(path: &Path) -> Result<RunRecord, AnalysisError> {
    let invalid = |reason: String| AnalysisError::Record {
        path: path.to_path_buf(),
        reason: format!(
            "{reason}; delete it and its run's directory (runs/) to train the run again"
        ),
    };
    let record: RunRecord = read_json_sealed(path).map_err(|e| match e {
        SealedReadError::Io(source) => AnalysisError::Io {
            path: path.to_path_buf(),
            source,
        },
        damaged => invalid(damaged.to_string()),
    })?;
    record
        .key
        .task
        .build()
        .map_err(|e| invalid(format!("invalid task: {e}")))?;
    Ok(record)
}

/// A run's record, sealed ([`dpcot_tasks::atomic::write_json_sealed`]) so that any change
/// to it is told when it is read back.
pub(crate) fn write_record(path: &Path, record: &RunRecord) -> Result<(), AnalysisError> {
    dpcot_tasks::atomic::write_json_sealed(path, record).map_err(AnalysisError::io(path))
}

/// [`dpcot_tasks::atomic::write_atomic`], its error naming the path.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), AnalysisError> {
    dpcot_tasks::atomic::write_atomic(path, bytes).map_err(AnalysisError::io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_with_an_invalid_task_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let results = Results::new(dir.path());
        std::fs::create_dir_all(results.records()).unwrap();
        let path = results.record("bad");
        std::fs::write(&path, "{}").unwrap();
        assert!(matches!(
            results.load_records(),
            Err(AnalysisError::Record { .. })
        ));
        let key = RunKey {
            experiment: Experiment::General,
            task: TaskSpec::Lis {
                length: 0,
                range: 250,
                window: None,
                inline_inputs: false,
            },
            model: ModelChoice::Standard,
            d_model: 8,
            seed: 1,
        };
        let summary = r#"{"task":"x","attention":"softmax","d_model":8,"backend":"flex","steps":1,"reached_target":null,"parameters":1,"train_seconds":0.0,"train_tokens":0,"train_tokens_per_second":0.0,"train_flops":0.0,"decode_flops_per_token":0.0,"eval":{"examples":0,"headline":0.0,"headline_metric":"teacher_forced","answer_accuracy":0.0,"chain_accuracy":0.0,"well_formed":0.0,"teacher_forced_accuracy":0.0,"first_wrong_step":[],"first_wrong_kind":{},"teacher_forced_first_wrong_step":[],"decode_tokens":0,"decode_seconds":0.0,"decode_tokens_per_second":0.0}}"#;
        let config = r#"{"task":{"task":"lis","length":4,"range":250},"model":{"vocab_size":253,"max_len":12,"d_model":8},"train":{"steps":1},"data":{"source":"generated","train":1,"validation":1,"test":1,"seed":1}}"#;
        let record = format!(
            r#"{{"key":{},"config":{config},"summary":{summary},"wall_seconds":0.0}}"#,
            serde_json::to_string(&key).unwrap()
        );
        std::fs::write(&path, record).unwrap();
        let err = results.load_records().unwrap_err();
        assert!(err.to_string().contains("invalid task"), "{err}");
    }

    #[test]
    fn ids_name_the_run() {
        let key = RunKey {
            experiment: Experiment::General,
            task: TaskSpec::Lis {
                length: 8,
                range: 250,
                window: Some(2),
                inline_inputs: false,
            },
            model: ModelChoice::Linear,
            d_model: 64,
            seed: 3,
        };
        assert_eq!(key.id(), "general-lis-8-window2-linear-d64-s3");
    }
}
