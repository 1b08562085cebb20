//! The `DpTask` abstraction and the serde description of a task.

use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::arithmetic::Arithmetic;
use crate::check::CheckReport;
use crate::edit_distance::EditDistance;
use crate::lis::Lis;
use crate::vocab::{TokenId, Vocab, EOS};
use crate::TaskError;

/// Longest sequence any task may produce; beyond it a size is rejected as unreasonable.
pub const MAX_SEQUENCE_LEN: usize = 1 << 16;

/// One example: the prompt, its chain of thought, the answer and `<eos>`, as token ids.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Example {
    /// The whole sequence, ending with `<eos>`.
    pub tokens: Vec<TokenId>,
    /// Tokens up to and including the first separator; the loss is masked to the rest.
    pub prompt_len: usize,
}

impl Example {
    /// The input part, ending with the first separator.
    pub fn prompt(&self) -> &[TokenId] {
        &self.tokens[..self.prompt_len]
    }

    /// The supervised part: chain of thought, answer and `<eos>`.
    pub fn completion(&self) -> &[TokenId] {
        &self.tokens[self.prompt_len..]
    }
}

/// A dynamic-programming task whose chain of thought writes every DP state, then the answer.
pub trait DpTask: Send + Sync {
    /// Short name with its knobs, e.g. `lis-16` or `ed-12-band2`.
    fn name(&self) -> String;

    /// The serde description this task was built from.
    fn spec(&self) -> TaskSpec;

    /// The task's vocabulary, laid out as the reference benchmark's.
    fn vocab(&self) -> &Vocab;

    /// The token ending the prompt (`=` for arithmetic, `<sep>` otherwise).
    fn separator(&self) -> TokenId;

    /// Longest sequence (with `<eos>`) this task can generate: the paper's problem size L.
    fn max_len(&self) -> usize;

    /// Draws one example.
    fn generate(&self, rng: &mut dyn RngCore) -> Example;

    /// Checks a produced completion (everything after the prompt) against the prompt.
    ///
    /// Errors only when the prompt itself is not a valid problem of this task; anything wrong
    /// in the completion is reported in the [`CheckReport`].
    fn check(&self, prompt: &[TokenId], completion: &[TokenId]) -> Result<CheckReport, TaskError>;

    /// The step each completion token of `example` belongs to, one per token (a step owns its
    /// tokens and the separator that ends it; the answer and `<eos>` are the last step). Used
    /// to turn the first wrong token under teacher forcing into the first wrong step, so it
    /// covers any completion, also one longer than the right chain (a damaged dataset line):
    /// for LIS and edit distance, whose chain is fixed by the prompt, tokens past the right
    /// chain's end are at the step past it, as the checker reports an overlong chain.
    fn steps_of(&self, example: &Example) -> Result<Vec<usize>, TaskError>;

    /// The token at position `index` of a completion of `prompt` when the task gives it rather
    /// than the model predicting it, else `None`: the inputs that LIS with inline inputs places
    /// inside its chain (`crate::lis`). A given token is not in the loss, and greedy decoding
    /// writes it instead of the model's choice. No other task gives tokens.
    fn given(&self, prompt: &[TokenId], index: usize) -> Option<TokenId> {
        let _ = (prompt, index);
        None
    }

    /// Splits a whole sequence at its first separator and checks the rest.
    fn check_sequence(&self, tokens: &[TokenId]) -> Result<CheckReport, TaskError> {
        let prompt_len = self.prompt_len(tokens)?;
        self.check(&tokens[..prompt_len], &tokens[prompt_len..])
    }

    /// Length of the prompt of `tokens`: up to and including the first separator.
    fn prompt_len(&self, tokens: &[TokenId]) -> Result<usize, TaskError> {
        tokens
            .iter()
            .position(|&t| t == self.separator())
            .map(|i| i + 1)
            .ok_or_else(|| TaskError::InvalidPrompt {
                task: self.name(),
                reason: format!(
                    "no separator `{}` in the sequence",
                    self.vocab().word(self.separator())
                ),
            })
    }

    /// Parses a whole example from text (space-separated words; `<eos>` is appended when
    /// missing, as the reference loader does).
    fn parse_example(&self, text: &str) -> Result<Example, TaskError> {
        let mut tokens = self.vocab().encode(&self.name(), text)?;
        if tokens.last() != Some(&EOS) {
            tokens.push(EOS);
        }
        let prompt_len = self.prompt_len(&tokens)?;
        Ok(Example { tokens, prompt_len })
    }
}

/// Which task, with its knobs. This is what configs, dataset headers and results record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "task", rename_all = "snake_case")]
pub enum TaskSpec {
    /// Evaluate an expression over Z_p with `operators` operators, one operator per step.
    Arithmetic {
        /// Number of operators of the expression (the problem size).
        operators: usize,
        /// The prime p.
        modulus: u32,
    },
    /// Longest increasing subsequence of `length` numbers drawn below `range`; with a
    /// `window`, dp_i looks back only `window` positions (the m-local variant).
    Lis {
        /// Number of input numbers n (the problem size).
        length: usize,
        /// Inputs are drawn from `[length + 1, range − 1]`.
        range: u32,
        /// Locality window m of the m-local variant.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        window: Option<usize>,
        /// Each step carries its input, given inside the chain, so that every read is within
        /// the last 3m + 1 tokens (needs a window).
        #[serde(default, skip_serializing_if = "is_false")]
        inline_inputs: bool,
    },
    /// Weighted edit distance of two strings of about `length` letters, the DP table written
    /// row by row; with a `band`, only cells with |i − j| ≤ band exist (the local variant).
    EditDistance {
        /// Length n of the strings: one has n letters, the other n − 3 to n + 2 (the problem
        /// size).
        length: usize,
        /// Number of integer tokens, `0..numbers`.
        numbers: u32,
        /// Band w of the local variant.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        band: Option<usize>,
    },
}

fn is_false(value: &bool) -> bool {
    !value
}

/// The task and every knob, as a person reads them: `lis 4 (range 250, window 2)`.
impl std::fmt::Display for TaskSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            TaskSpec::Arithmetic { operators, modulus } => {
                write!(f, "arithmetic {operators} (modulus {modulus})")
            }
            TaskSpec::Lis {
                length,
                range,
                window,
                inline_inputs,
            } => {
                write!(f, "lis {length} (range {range}")?;
                if let Some(m) = window {
                    write!(f, ", window {m}")?;
                }
                if inline_inputs {
                    write!(f, ", inline inputs")?;
                }
                write!(f, ")")
            }
            TaskSpec::EditDistance {
                length,
                numbers,
                band,
            } => {
                write!(f, "ed {length} (numbers {numbers}")?;
                if let Some(w) = band {
                    write!(f, ", band {w}")?;
                }
                write!(f, ")")
            }
        }
    }
}

/// The three DP tasks, each by its one name (in profiles, on the command line, in file names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// Evaluating an expression over Z_p, one reduction per step.
    Arithmetic,
    /// Longest increasing subsequence.
    Lis,
    /// Edit distance.
    Ed,
}

impl TaskKind {
    /// Every task.
    pub const ALL: [TaskKind; 3] = [TaskKind::Arithmetic, TaskKind::Lis, TaskKind::Ed];

    /// The task's name.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Arithmetic => "arithmetic",
            TaskKind::Lis => "lis",
            TaskKind::Ed => "ed",
        }
    }
}

impl std::fmt::Display for TaskKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TaskKind {
    type Err = TaskError;

    fn from_str(name: &str) -> Result<Self, TaskError> {
        TaskKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
            .ok_or_else(|| TaskError::UnknownTask {
                name: name.to_string(),
                expected: TASK_NAMES,
            })
    }
}

/// The task names the command line accepts.
pub const TASK_NAMES: &str = "arithmetic, lis, ed";

/// Optional knobs for [`TaskSpec::new`]; `None` takes the task's default. On the command line
/// (feature `clap`) each is a flag of the same name.
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct TaskOptions {
    /// Arithmetic modulus, a prime [default: 11].
    #[cfg_attr(feature = "clap", arg(long))]
    pub modulus: Option<u32>,
    /// LIS number range R, inputs in [n+1, R-1] [default: max(250, n+150)].
    #[cfg_attr(feature = "clap", arg(long))]
    pub range: Option<u32>,
    /// LIS locality window m: dp_i looks back m positions only.
    #[cfg_attr(feature = "clap", arg(long))]
    pub window: Option<usize>,
    /// LIS with a window: each step of the chain carries its input (given, not predicted), so
    /// that every read is within the last 3m + 1 tokens.
    #[cfg_attr(feature = "clap", arg(long))]
    pub inline_inputs: bool,
    /// Edit-distance number tokens 0..K [default: max(60, largest table value + 1)].
    #[cfg_attr(feature = "clap", arg(long))]
    pub numbers: Option<u32>,
    /// Edit-distance band w: only cells with |i - j| <= w.
    #[cfg_attr(feature = "clap", arg(long))]
    pub band: Option<usize>,
}

impl TaskSpec {
    /// Builds a spec from a task name, its size knob and optional knobs, with the reference
    /// benchmark's defaults for anything not given.
    pub fn from_name(name: &str, size: usize, options: &TaskOptions) -> Result<Self, TaskError> {
        Self::new(name.parse()?, size, options)
    }

    /// Builds a spec of task `kind` from its size knob and optional knobs, with the reference
    /// benchmark's defaults for anything not given; a knob the task does not have is an error.
    pub fn new(kind: TaskKind, size: usize, options: &TaskOptions) -> Result<Self, TaskError> {
        let reject = |field: &'static str, given: bool| {
            if given {
                Err(TaskError::invalid(
                    field,
                    "given",
                    format!("task `{kind}` has no `{field}` knob"),
                ))
            } else {
                Ok(())
            }
        };
        let spec = match kind {
            TaskKind::Arithmetic => {
                reject("range", options.range.is_some())?;
                reject("window", options.window.is_some())?;
                reject("inline_inputs", options.inline_inputs)?;
                reject("numbers", options.numbers.is_some())?;
                reject("band", options.band.is_some())?;
                TaskSpec::Arithmetic {
                    operators: size,
                    modulus: options.modulus.unwrap_or(Arithmetic::DEFAULT_MODULUS),
                }
            }
            TaskKind::Lis => {
                reject("modulus", options.modulus.is_some())?;
                reject("numbers", options.numbers.is_some())?;
                reject("band", options.band.is_some())?;
                TaskSpec::Lis {
                    length: size,
                    range: options.range.unwrap_or_else(|| Lis::default_range(size)),
                    window: options.window,
                    inline_inputs: options.inline_inputs,
                }
            }
            TaskKind::Ed => {
                reject("modulus", options.modulus.is_some())?;
                reject("range", options.range.is_some())?;
                reject("window", options.window.is_some())?;
                reject("inline_inputs", options.inline_inputs)?;
                TaskSpec::EditDistance {
                    length: size,
                    numbers: options
                        .numbers
                        .unwrap_or_else(|| EditDistance::default_numbers(size, options.band)),
                    band: options.band,
                }
            }
        };
        Ok(spec)
    }

    /// The size knob: operators, or input length.
    pub fn size(&self) -> usize {
        match *self {
            TaskSpec::Arithmetic { operators, .. } => operators,
            TaskSpec::Lis { length, .. } | TaskSpec::EditDistance { length, .. } => length,
        }
    }

    /// Validates the knobs and builds the task.
    pub fn build(&self) -> Result<Task, TaskError> {
        Task::new(self)
    }
}

/// Any of the tasks, behind one [`DpTask`] interface.
#[derive(Debug, Clone)]
pub enum Task {
    /// Arithmetic over Z_p.
    Arithmetic(Arithmetic),
    /// Longest increasing subsequence.
    Lis(Lis),
    /// Edit distance.
    EditDistance(EditDistance),
}

impl Task {
    /// Validates the knobs of `spec` and builds its task; rejects sizes whose sequences
    /// would pass [`MAX_SEQUENCE_LEN`].
    pub fn new(spec: &TaskSpec) -> Result<Self, TaskError> {
        let task = match *spec {
            TaskSpec::Arithmetic { operators, modulus } => {
                Task::Arithmetic(Arithmetic::new(operators, modulus)?)
            }
            TaskSpec::Lis {
                length,
                range,
                window,
                inline_inputs,
            } => Task::Lis(Lis::new(length, range, window)?.with_inline_inputs(inline_inputs)?),
            TaskSpec::EditDistance {
                length,
                numbers,
                band,
            } => Task::EditDistance(EditDistance::new(length, numbers, band)?),
        };
        let max_len = task.max_len();
        if max_len > MAX_SEQUENCE_LEN {
            return Err(TaskError::invalid(
                "size",
                spec.size(),
                format!(
                    "sequences would reach {max_len} tokens, past the supported {MAX_SEQUENCE_LEN}"
                ),
            ));
        }
        Ok(task)
    }

    fn inner(&self) -> &dyn DpTask {
        match self {
            Task::Arithmetic(t) => t,
            Task::Lis(t) => t,
            Task::EditDistance(t) => t,
        }
    }
}

impl DpTask for Task {
    fn name(&self) -> String {
        self.inner().name()
    }
    fn spec(&self) -> TaskSpec {
        self.inner().spec()
    }
    fn vocab(&self) -> &Vocab {
        self.inner().vocab()
    }
    fn separator(&self) -> TokenId {
        self.inner().separator()
    }
    fn max_len(&self) -> usize {
        self.inner().max_len()
    }
    fn generate(&self, rng: &mut dyn RngCore) -> Example {
        self.inner().generate(rng)
    }
    fn check(&self, prompt: &[TokenId], completion: &[TokenId]) -> Result<CheckReport, TaskError> {
        self.inner().check(prompt, completion)
    }
    fn steps_of(&self, example: &Example) -> Result<Vec<usize>, TaskError> {
        self.inner().steps_of(example)
    }
    fn given(&self, prompt: &[TokenId], index: usize) -> Option<TokenId> {
        self.inner().given(prompt, index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_build_specs_with_reference_defaults() {
        let o = TaskOptions::default();
        assert_eq!(
            TaskSpec::from_name("arithmetic", 4, &o).unwrap(),
            TaskSpec::Arithmetic {
                operators: 4,
                modulus: 11
            }
        );
        assert_eq!(
            TaskSpec::from_name("lis", 16, &o).unwrap(),
            TaskSpec::Lis {
                length: 16,
                range: 250,
                window: None,
                inline_inputs: false,
            }
        );
        assert_eq!(
            TaskSpec::from_name("ed", 6, &o).unwrap(),
            TaskSpec::EditDistance {
                length: 6,
                numbers: 60,
                band: None
            }
        );
    }

    #[test]
    fn specs_read_as_task_size_and_knobs() {
        let spec = |name, options: &TaskOptions| TaskSpec::from_name(name, 4, options).unwrap();
        assert_eq!(
            spec("arithmetic", &TaskOptions::default()).to_string(),
            "arithmetic 4 (modulus 11)"
        );
        let local = TaskOptions {
            window: Some(2),
            ..Default::default()
        };
        assert_eq!(
            spec("lis", &local).to_string(),
            "lis 4 (range 250, window 2)"
        );
        let band = TaskOptions {
            band: Some(1),
            ..Default::default()
        };
        assert_eq!(spec("ed", &band).to_string(), "ed 4 (numbers 60, band 1)");
    }

    #[test]
    fn unknown_task_and_foreign_knobs_are_errors() {
        for name in ["sudoku", "LIS", "arith", "edit-distance"] {
            let err = TaskSpec::from_name(name, 4, &TaskOptions::default()).unwrap_err();
            assert!(
                matches!(err, TaskError::UnknownTask { .. }),
                "{name}: {err}"
            );
            assert!(err.to_string().contains("arithmetic, lis, ed"), "{err}");
        }
        assert_eq!(
            serde_json::to_string(&TaskKind::ALL).unwrap(),
            format!("{:?}", TaskKind::ALL.map(|k| k.as_str())).replace(", ", ","),
            "one spelling in files and on the command line"
        );
        let o = TaskOptions {
            band: Some(2),
            ..Default::default()
        };
        let err = TaskSpec::from_name("lis", 4, &o).unwrap_err();
        assert!(err.to_string().contains("band"), "{err}");
    }

    #[test]
    fn spec_round_trips_through_json() {
        let spec = TaskSpec::Lis {
            length: 8,
            range: 250,
            window: Some(3),
            inline_inputs: false,
        };
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(json, r#"{"task":"lis","length":8,"range":250,"window":3}"#);
        assert_eq!(serde_json::from_str::<TaskSpec>(&json).unwrap(), spec);
    }

    #[test]
    fn absurd_sizes_are_rejected() {
        let spec = TaskSpec::from_name("ed", 1000, &TaskOptions::default()).unwrap();
        let err = spec.build().unwrap_err();
        assert!(err.to_string().contains("supported"), "{err}");
    }

    /// Evaluation looks up the step of the first wrong token of any test example, so
    /// `steps_of` must cover every completion token, also of a dataset line whose chain is
    /// longer or shorter than the right one (found by the `checker` fuzz target: LIS and
    /// edit distance returned the right chain's steps only, and evaluation indexed past them).
    #[test]
    fn steps_of_covers_every_completion_token() {
        use rand::SeedableRng;
        let o = TaskOptions::default();
        for (name, size) in [("arithmetic", 3), ("lis", 6), ("ed", 4)] {
            let task = TaskSpec::from_name(name, size, &o)
                .unwrap()
                .build()
                .unwrap();
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
            let right = task.generate(&mut rng);
            let steps = task
                .check(right.prompt(), right.completion())
                .unwrap()
                .steps;
            let completion = right.completion().to_vec();
            let longer = [&completion[..], &completion[..]].concat();
            let shorter = completion[..completion.len() / 2].to_vec();
            for completion in [completion, longer, shorter] {
                let example = Example {
                    tokens: [right.prompt(), &completion[..]].concat(),
                    prompt_len: right.prompt_len,
                };
                let step_of = task.steps_of(&example).unwrap();
                assert_eq!(step_of.len(), completion.len(), "{name}: {step_of:?}");
                assert!(
                    step_of.windows(2).all(|w| w[0] <= w[1]),
                    "{name}: {step_of:?}"
                );
                if name != "arithmetic" {
                    // Tokens past the right chain are at the step past its end.
                    assert!(step_of.iter().all(|&s| s <= steps), "{name}: {step_of:?}");
                }
            }
        }
    }
}
