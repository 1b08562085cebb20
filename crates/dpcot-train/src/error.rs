use std::path::PathBuf;

use dpcot_model::ModelError;
use dpcot_tasks::TaskError;

/// Everything that can go wrong while training or evaluating, saying what and where.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Task(#[from] TaskError),

    #[error(transparent)]
    Model(#[from] ModelError),

    #[error("invalid training config: `{field}` {reason}")]
    InvalidConfig { field: &'static str, reason: String },

    #[error("backend `{name}` is not available: {reason}")]
    Backend { name: String, reason: String },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },

    #[error("{path}: the checkpoint does not match this run: {reason}")]
    CheckpointMismatch { path: PathBuf, reason: String },

    #[error("the loss became {value} at step {step}; lower the learning rate or enable gradient clipping")]
    NonFiniteLoss { step: usize, value: f32 },

    #[error("{0}")]
    Data(String),

    #[error("{dir} already holds a run")]
    RunExists { dir: PathBuf },

    #[error("halted after step {step} as asked; continue with --resume in {dir}")]
    Halted { step: usize, dir: PathBuf },
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
