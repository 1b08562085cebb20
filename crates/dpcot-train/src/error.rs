use std::path::PathBuf;

use dpcot_model::ModelError;
use dpcot_tasks::TaskError;

/// Everything that can go wrong while training or evaluating, saying what and where.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A task could not be built, or a dataset could not be generated or read.
    #[error(transparent)]
    Task(#[from] TaskError),

    /// A model could not be built or run.
    #[error(transparent)]
    Model(#[from] ModelError),

    /// A config value is out of range or inconsistent.
    #[error("invalid training config: `{field}` {reason}")]
    InvalidConfig {
        /// The offending field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },

    /// The backend asked for is unknown or not compiled in.
    #[error("backend `{name}` is not available: {reason}")]
    Backend {
        /// The backend's name as given.
        name: String,
        /// Why it cannot be used.
        reason: String,
    },

    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },

    /// A file of a run (config, summary, checkpoint) cannot be parsed or is damaged.
    #[error("{path}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A resumed run's config or checkpoint belongs to another run.
    #[error("{path}: the checkpoint does not match this run: {reason}")]
    CheckpointMismatch {
        /// The config or checkpoint file.
        path: PathBuf,
        /// How it differs.
        reason: String,
    },

    /// The loss became NaN or infinite.
    #[error("the loss became {value} at step {step}; lower the learning rate or enable gradient clipping")]
    NonFiniteLoss {
        /// The step (counted from 0) whose loss it was.
        step: usize,
        /// The loss.
        value: f32,
    },

    /// The data of a run is unusable (an empty split).
    #[error("{0}")]
    Data(String),

    /// Training stopped early as asked ([`crate::TrainOptions::halt_after`]), after saving a
    /// checkpoint to resume from.
    #[error("halted after step {step} as asked; the checkpoint in {dir} resumes the run")]
    Halted {
        /// Steps completed.
        step: usize,
        /// The run directory.
        dir: PathBuf,
    },

    /// A run to resume from its checkpoint has none.
    #[error("{dir} holds no checkpoint to resume from (the run stopped before its first checkpoint, or the file was removed); nothing was changed: start the run again in a fresh directory")]
    NothingToResume {
        /// The run directory.
        dir: PathBuf,
    },

    /// Another process is training the run.
    #[error("{dir}: another process is training this run (its lock file is held); wait for it to end or stop it first")]
    RunBusy {
        /// The run directory.
        dir: PathBuf,
    },

    /// A new run was asked for in a directory that already holds one.
    #[error("{dir} already holds a run")]
    RunExists {
        /// The run directory.
        dir: PathBuf,
    },
}

impl TrainError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TrainError {
        let path = path.into();
        move |source| TrainError::Io { path, source }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        TrainError::InvalidConfig {
            field,
            reason: reason.into(),
        }
    }
}
