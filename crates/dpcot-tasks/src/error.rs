use std::path::PathBuf;

/// Everything that can go wrong in dpcot-tasks, each variant saying what and where.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// A task name that is none of the tasks.
    #[error("unknown task `{name}` (expected one of: {expected})")]
    UnknownTask {
        /// The name given.
        name: String,
        /// The accepted names.
        expected: &'static str,
    },

    /// A task parameter (size or knob) out of its range, or given to a task without it.
    #[error("invalid task parameter `{field}` = {value}: {reason}")]
    InvalidParameter {
        /// The parameter's name.
        field: &'static str,
        /// The value given.
        value: String,
        /// Why it is rejected.
        reason: String,
    },

    /// A word of a text example that is not in the task's vocabulary.
    #[error("unknown token `{word}` at position {position} (not in the {task} vocabulary)")]
    UnknownToken {
        /// The task's name.
        task: String,
        /// The word, shortened to its first [`TaskError::QUOTED_CHARS`] characters if longer.
        word: String,
        /// Its 0-based position among the example's words.
        position: usize,
    },

    /// A token id beyond the task's vocabulary.
    #[error(
        "token id {id} at position {position} is outside the {task} vocabulary of {vocab_size}"
    )]
    TokenOutOfRange {
        /// The task's name.
        task: String,
        /// The token id.
        id: u32,
        /// Its 0-based position in the sequence.
        position: usize,
        /// The task's vocabulary size.
        vocab_size: usize,
    },

    /// A prompt that is not a problem instance of the task, so its chain cannot be checked.
    #[error("malformed {task} prompt: {reason}")]
    InvalidPrompt {
        /// The task's name.
        task: String,
        /// What is wrong with the prompt.
        reason: String,
    },

    /// Too few distinct problems outside the test set for the requested split.
    #[error("cannot generate {wanted} {split} examples disjoint from the test set: only {found} found in {attempts} attempts (the problem space is too small for this many examples)")]
    SpaceExhausted {
        /// The split being generated.
        split: &'static str,
        /// Examples requested.
        wanted: usize,
        /// Examples found.
        found: usize,
        /// Problems drawn.
        attempts: usize,
    },

    /// Held-out examples that take most of a task's draws, leaving little to train on.
    #[error("the {held_out} distinct validation and test problems are {:.0} % of what {task} draws: training would see only the few problems left, so held-out accuracy would not measure generalisation; use a larger problem (size, number range, modulus) or fewer held-out examples", share * 100.0)]
    HeldOutDominates {
        /// The task's name.
        task: String,
        /// Distinct held-out examples.
        held_out: usize,
        /// The share of the task's draws that are held out.
        share: f64,
    },

    /// More examples asked for than memory can hold.
    #[error("cannot hold {count} {split} examples in memory: {reason}; ask for fewer (training runs draw fresh examples every step unless given a fixed training set)")]
    TooManyExamples {
        /// The split being generated.
        split: &'static str,
        /// Examples requested.
        count: usize,
        /// Why they do not fit.
        reason: String,
    },

    /// A file that cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system reported.
        #[source]
        source: std::io::Error,
    },

    /// A dataset line that cannot be parsed.
    #[error("{path}:{line}: {reason}")]
    MalformedDataset {
        /// The dataset file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the line.
        reason: String,
    },

    /// A dataset file with another number of examples than its header announces.
    #[error(
        "{path}: the header announces {expected} examples, the file holds {found}: {}",
        if found < expected {
            "the file is truncated; generate it again"
        } else {
            "lines were added after it was written; generate it again rather than editing it"
        }
    )]
    ExampleCountMismatch {
        /// The dataset file.
        path: PathBuf,
        /// Examples announced by the header.
        expected: usize,
        /// Examples in the file.
        found: usize,
    },

    /// A dataset file whose examples were changed after it was written (their checksum does
    /// not hold).
    #[error("{path}: the examples were changed after the file was written (checksum mismatch); generate the dataset again")]
    DamagedDataset {
        /// The dataset file.
        path: PathBuf,
    },

    /// A dataset generated for another task, size or split than the one asked for.
    #[error("{path}: dataset does not match what was asked: {reason}")]
    DatasetMismatch {
        /// The dataset file.
        path: PathBuf,
        /// Which setting differs, with both values.
        reason: String,
    },

    /// A readable example whose chain of thought (or answer) the task's checker rejects.
    #[error("{path}:{line}: invalid example: {reason}")]
    InvalidExample {
        /// The data file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What the checker found.
        reason: String,
    },

    /// A reference answers file (`test_ans.txt`) that does not hold one answer per prompt.
    #[error("{answers}: {found} answers for the {expected} examples of {data} (one answer per example line expected)")]
    AnswerCountMismatch {
        /// The data file.
        data: PathBuf,
        /// The answers file.
        answers: PathBuf,
        /// Examples in the data file.
        expected: usize,
        /// Answers in the answers file.
        found: usize,
    },

    /// An output file that exists and was not allowed to be replaced.
    #[error("{path} already exists and is not replaced without being asked to: runs trained on it would be evaluated on the new data without a word")]
    OutputExists {
        /// The existing file.
        path: PathBuf,
    },

    /// A task the reference benchmark's files cannot express.
    #[error("{task} cannot be written in the reference benchmark's format: {reason}")]
    NotInReferenceFormat {
        /// The task, as `TaskSpec` displays it.
        task: String,
        /// What the format lacks.
        reason: &'static str,
    },

    /// A data file without a single example.
    #[error("{path}: no examples")]
    EmptyDataset {
        /// The data file.
        path: PathBuf,
    },
}

impl TaskError {
    /// How much of a word from the input an error quotes: a malformed file may hold a
    /// megabyte on one line, and the message has to stay readable.
    pub const QUOTED_CHARS: usize = 40;

    /// `word` as an error quotes it: whole if short, else its start and its length.
    pub(crate) fn quote(word: &str) -> String {
        match word.char_indices().nth(Self::QUOTED_CHARS) {
            None => word.to_string(),
            Some((end, _)) => format!("{}… ({} bytes)", &word[..end], word.len()),
        }
    }

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
