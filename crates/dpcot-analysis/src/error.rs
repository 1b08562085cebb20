use std::path::PathBuf;

/// Everything that can go wrong in sweeps and reports, saying what and where.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// A task that cannot be built.
    #[error(transparent)]
    Task(#[from] dpcot_tasks::TaskError),

    /// A run that cannot be configured or read back.
    #[error(transparent)]
    Train(#[from] dpcot_train::TrainError),

    /// A model that cannot be configured.
    #[error(transparent)]
    Model(#[from] dpcot_model::ModelError),

    /// A profile that cannot be read or does not validate.
    #[error("{path}: invalid profile: {reason}")]
    Profile {
        /// The profile file (or `<built-in NAME>`).
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// A profile name that is neither a file nor a built-in profile.
    #[error("no profile `{name}`: neither a file nor a built-in profile ({builtin})")]
    UnknownProfile {
        /// The name given.
        name: String,
        /// The built-in profiles.
        builtin: String,
    },

    /// A file that cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// A run record that cannot be read.
    #[error("{path}: unreadable record: {reason}")]
    Record {
        /// The record file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// A worker that did not finish its run.
    #[error("run `{id}` failed ({status}){}; its log is {log}", reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default())]
    RunFailed {
        /// The run's id.
        id: String,
        /// How the worker ended.
        status: String,
        /// The worker's own error message (the log's last `error: ` line), if it wrote one.
        reason: Option<String>,
        /// The worker's log.
        log: PathBuf,
    },

    /// An experiment asked for that the profile has no sweep of.
    #[error("the profile `{profile}` has no `{name}` experiment (it has: {available})")]
    UnknownExperiment {
        /// The experiment asked for.
        name: String,
        /// The profile's name.
        profile: String,
        /// The experiments it has.
        available: String,
    },

    /// A shard that is not `i/N` with `1 <= i <= N`.
    #[error("invalid shard `{0}`: expected i/N with 1 <= i <= N")]
    Shard(String),

    /// Another sweep (or the same shard of one) works in the results directory.
    #[error("{path} is held by another sweep on this results directory ({what}); wait for it to end, or use another results directory")]
    ResultsBusy {
        /// The lock file.
        path: PathBuf,
        /// Which sweeps exclude each other here.
        what: String,
    },

    /// A figure that cannot be drawn.
    #[error("{path}: cannot draw the figure: {reason}")]
    Plot {
        /// The figure file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl AnalysisError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> AnalysisError {
        let path = path.into();
        move |source| AnalysisError::Io { path, source }
    }
}
