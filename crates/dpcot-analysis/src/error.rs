use std::path::PathBuf;

/// Everything that can go wrong in sweeps and reports, saying what and where.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    #[error(transparent)]
    Task(#[from] dpcot_tasks::TaskError),

    #[error(transparent)]
    Train(#[from] dpcot_train::TrainError),

    #[error(transparent)]
    Model(#[from] dpcot_model::ModelError),

    #[error("{path}: invalid profile: {reason}")]
    Profile { path: PathBuf, reason: String },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("no profile `{name}`: neither a file nor a built-in profile ({builtin})")]
    UnknownProfile { name: String, builtin: String },

    #[error("{path}: unreadable record: {reason}")]
    Record { path: PathBuf, reason: String },

    #[error("run `{id}` failed ({status}); its log is {log}")]
    RunFailed {
        id: String,
        status: String,
        log: PathBuf,
    },

    #[error("the profile `{profile}` has no `{name}` experiment (it has: {available})")]
    UnknownExperiment {
        name: String,
        profile: String,
        available: String,
    },

    #[error("invalid shard `{0}`: expected i/N with 1 <= i <= N")]
    Shard(String),

    #[error("{path}: cannot draw the figure: {reason}")]
    Plot { path: PathBuf, reason: String },
}

impl AnalysisError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> AnalysisError {
        let path = path.into();
        move |source| AnalysisError::Io { path, source }
    }
}
