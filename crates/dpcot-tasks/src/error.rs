use std::path::PathBuf;

/// Everything that can go wrong in dpcot-tasks, each variant saying what and where.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("unknown task `{name}` (expected one of: {expected})")]
    UnknownTask {
        name: String,
        expected: &'static str,
    },

    #[error("invalid task parameter `{field}` = {value}: {reason}")]
    InvalidParameter {
        field: &'static str,
        value: String,
        reason: String,
    },

    #[error("unknown token `{word}` at position {position} (not in the {task} vocabulary)")]
    UnknownToken {
        task: String,
        word: String,
        position: usize,
    },

    #[error(
        "token id {id} at position {position} is outside the {task} vocabulary of {vocab_size}"
    )]
    TokenOutOfRange {
        task: String,
        id: u32,
        position: usize,
        vocab_size: usize,
    },

    #[error("malformed {task} prompt: {reason}")]
    InvalidPrompt { task: String, reason: String },

    #[error("cannot generate {wanted} {split} examples disjoint from the test set: only {found} found in {attempts} attempts (the problem space is too small for this many examples)")]
    SpaceExhausted {
        split: &'static str,
        wanted: usize,
        found: usize,
        attempts: usize,
    },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}:{line}: {reason}")]
    MalformedDataset {
        path: PathBuf,
        line: usize,
        reason: String,
    },

    #[error(
        "{path}: dataset is truncated: header announces {expected} examples, file holds {found}"
    )]
    TruncatedDataset {
        path: PathBuf,
        expected: usize,
        found: usize,
    },

    #[error("{path}: dataset does not match what was asked: {reason}")]
    DatasetMismatch { path: PathBuf, reason: String },

    /// A readable example whose chain of thought (or answer) the task's checker rejects.
    #[error("{path}:{line}: invalid example: {reason}")]
    InvalidExample {
        path: PathBuf,
        line: usize,
        reason: String,
    },

    /// A reference answers file (`test_ans.txt`) that does not hold one answer per prompt.
    #[error("{answers}: {found} answers for the {expected} examples of {data} (one answer per example line expected)")]
    AnswerCountMismatch {
        data: PathBuf,
        answers: PathBuf,
        expected: usize,
        found: usize,
    },

    #[error("{path}: no examples")]
    EmptyDataset { path: PathBuf },
}

impl TaskError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TaskError {
        let path = path.into();
        move |source| TaskError::Io { path, source }
    }

    pub(crate) fn invalid(
        field: &'static str,
        value: impl ToString,
        reason: impl Into<String>,
    ) -> Self {
        TaskError::InvalidParameter {
            field,
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}
