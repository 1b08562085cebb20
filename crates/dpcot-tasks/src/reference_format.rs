//! The data files of the reference PyTorch benchmark (Feng et al. 2023,
//! `guyuntian/CoT_benchmark`): reading, checking, importing into dpcot datasets, exporting.
//!
//! The reference writes one example per line, every token followed by a space, without
//! `<eos>` (its loader appends it). A task's data directory holds, for the chain-of-thought
//! runs:
//!
//! ```text
//! chain/train_data.txt   whole examples: prompt, chain of thought, answer
//! chain/test_data.txt    LIS, ED: whole examples; arithmetic: the prompts only, `expr = `
//! chain/test_ans.txt     arithmetic only: the answer of each test prompt, one per line
//! ```
//!
//! (`decoder/` holds the direct-answer files of the no-CoT runs; dpcot does not read them.)
//!
//! Example lines are dpcot's own format, so parsing is [`DpTask::parse_example`]; reading is
//! lenient about what editors and other platforms do to text files — CRLF line ends, trailing
//! or repeated spaces, blank lines, a UTF-8 byte-order mark — and strict about content: every
//! token must be in the task's vocabulary and every chain must pass the task's checker.
//!
//! An arithmetic prompt-only line is verified with its answer: the chain of thought dpcot
//! builds for it (see [`arithmetic_chain`]) must pass the checker and end at that answer. On
//! import that built chain becomes the example's chain; any valid reduction order is a right
//! chain, and the reference's own test metric scores only the answer.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use crate::arithmetic::Arithmetic;
use crate::dataset::{write_atomic, DatasetHeader, Existing, Split, FORMAT, VERSION};
use crate::task::{DpTask, Example, Task, TaskSpec};
use crate::vocab::{TokenId, EOS};
use crate::{CheckReport, Dataset, TaskError, WrongKind};

/// Name of this format on the command line and in dataset headers' `source`.
pub const FORMAT_NAME: &str = "cot-benchmark";
/// The directory of the chain-of-thought files inside a reference data directory.
pub const CHAIN_DIR: &str = "chain";
/// The training file inside [`CHAIN_DIR`]: whole examples.
pub const TRAIN_FILE: &str = "train_data.txt";
/// The test file inside [`CHAIN_DIR`]: whole examples, or arithmetic prompts only.
pub const TEST_FILE: &str = "test_data.txt";
/// Arithmetic only: the answers of the prompt-only test file.
pub const ANSWERS_FILE: &str = "test_ans.txt";

/// The reference layout of a data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceLayout {
    /// `chain/train_data.txt`.
    pub train: PathBuf,
    /// `chain/test_data.txt`.
    pub test: PathBuf,
    /// Arithmetic's `test_ans.txt`; the reference writes no answers file for LIS and ED.
    pub answers: Option<PathBuf>,
}

impl ReferenceLayout {
    /// The files of `task` inside the reference data directory `dir`.
    pub fn of(dir: &Path, task: &TaskSpec) -> Self {
        let chain = dir.join(CHAIN_DIR);
        Self {
            train: chain.join(TRAIN_FILE),
            test: chain.join(TEST_FILE),
            answers: matches!(task, TaskSpec::Arithmetic { .. }).then(|| chain.join(ANSWERS_FILE)),
        }
    }
}

/// What one line of a reference file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReferenceLine {
    /// A whole example (the reader appended `<eos>`).
    Chain(Example),
    /// An arithmetic test prompt `expr =` without its chain; its answer is in the answers file.
    Prompt(Vec<TokenId>),
}

/// A readable line of a reference file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceExample {
    /// 1-based line number in the data file.
    pub line: usize,
    /// What the line holds.
    pub content: ReferenceLine,
    /// The answer given for this line by the answers file, if one was read.
    pub answer: Option<TokenId>,
}

/// A reference file as read: its readable example lines, and an error for every line that is
/// not (unknown token, no separator, unreadable answer), each naming file and line.
#[derive(Debug)]
pub struct ReferenceFile {
    /// The data file.
    pub path: PathBuf,
    /// The answers file read with it, if any.
    pub answers_path: Option<PathBuf>,
    /// The readable lines, in line order.
    pub examples: Vec<ReferenceExample>,
    /// An error for every unreadable line, in line order.
    pub unreadable: Vec<TaskError>,
}

impl ReferenceFile {
    /// Number of non-blank lines: readable and unreadable.
    pub fn len(&self) -> usize {
        self.examples.len() + self.unreadable.len()
    }

    /// Whether the file has no non-blank line.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The non-blank lines of a text file with their 1-based numbers. Line ends may be LF or CRLF;
/// a leading UTF-8 byte-order mark is dropped.
fn numbered_lines(path: &Path) -> Result<Vec<(usize, String)>, TaskError> {
    let file = File::open(path).map_err(TaskError::io(path))?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(TaskError::io(path))?;
        let text = if i == 0 {
            line.strip_prefix('\u{feff}').unwrap_or(&line)
        } else {
            &line
        };
        // `lines()` drops `\n` and `\r\n`; `split_whitespace` in the tokenizer takes care of
        // any other stray `\r`, tabs and repeated or trailing spaces.
        if !text.trim().is_empty() {
            out.push((i + 1, text.to_string()));
        }
    }
    Ok(out)
}

/// Reads a reference data file of `task`, and with it an answers file (`test_ans.txt`, one
/// answer per example line) when given.
///
/// Errors for the file as a whole (cannot be read, answers file of another length); a line that
/// does not parse is recorded in [`ReferenceFile::unreadable`] and reading goes on, so that a
/// checker can report every bad line.
pub fn read_file(
    task: &Task,
    path: &Path,
    answers: Option<&Path>,
) -> Result<ReferenceFile, TaskError> {
    let lines = numbered_lines(path)?;
    let answer_lines = match answers {
        Some(answers_path) => {
            let answer_lines = numbered_lines(answers_path)?;
            if answer_lines.len() != lines.len() {
                return Err(TaskError::AnswerCountMismatch {
                    data: path.to_path_buf(),
                    answers: answers_path.to_path_buf(),
                    expected: lines.len(),
                    found: answer_lines.len(),
                });
            }
            Some(answer_lines)
        }
        None => None,
    };

    let mut file = ReferenceFile {
        path: path.to_path_buf(),
        answers_path: answers.map(Path::to_path_buf),
        examples: Vec::with_capacity(lines.len()),
        unreadable: Vec::new(),
    };
    for (index, (line, text)) in lines.into_iter().enumerate() {
        let answer = match (&answer_lines, answers) {
            (Some(answer_lines), Some(answers_path)) => {
                let (answer_line, answer_text) = &answer_lines[index];
                match parse_answer(task, answer_text) {
                    Ok(id) => Some(id),
                    Err(reason) => {
                        file.unreadable.push(TaskError::MalformedDataset {
                            path: answers_path.to_path_buf(),
                            line: *answer_line,
                            reason: format!("{reason} (the answer of {}:{line})", path.display()),
                        });
                        continue;
                    }
                }
            }
            _ => None,
        };
        match parse_line(task, &text) {
            Ok(content) => file.examples.push(ReferenceExample {
                line,
                content,
                answer,
            }),
            Err(e) => file.unreadable.push(TaskError::MalformedDataset {
                path: path.to_path_buf(),
                line,
                reason: e.to_string(),
            }),
        }
    }
    Ok(file)
}

/// Parses one example line: a whole example, or (arithmetic) a prompt `expr =` alone.
pub fn parse_line(task: &Task, text: &str) -> Result<ReferenceLine, TaskError> {
    let example = task.parse_example(text)?;
    let prompt_only = example.tokens.len() == example.prompt_len + 1;
    if prompt_only && matches!(task, Task::Arithmetic(_)) {
        let mut prompt = example.tokens;
        prompt.pop();
        return Ok(ReferenceLine::Prompt(prompt));
    }
    Ok(ReferenceLine::Chain(example))
}

/// One answer of an answers file: a single token of the task's vocabulary.
fn parse_answer(task: &Task, text: &str) -> Result<TokenId, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let [word] = words.as_slice() else {
        return Err(format!(
            "expected one answer token, found {} (`{}`)",
            words.len(),
            text.trim()
        ));
    };
    task.vocab()
        .id(word)
        .ok_or_else(|| format!("answer `{word}` is not in the {} vocabulary", task.name()))
}

/// A chain of thought for an arithmetic prompt `expr =`: repeatedly the leftmost valid
/// one-operator reduction, `= expr' = … = answer <eos>`. Any valid reduction order is a right
/// chain (the reference's own order is random); this one is deterministic.
///
/// Errors when the prompt is not a valid expression of the task.
pub fn arithmetic_chain(task: &Arithmetic, prompt: &[TokenId]) -> Result<Vec<TokenId>, TaskError> {
    let invalid = |reason: String| TaskError::InvalidPrompt {
        task: task.name(),
        reason,
    };
    let equals = task.separator();
    let Some((&last, expression)) = prompt.split_last() else {
        return Err(invalid("empty prompt".into()));
    };
    if last != equals {
        return Err(invalid("the prompt must end with `=`".into()));
    }
    if task.evaluate(expression).is_none() {
        return Err(invalid(
            "the expression does not parse or divides by zero".into(),
        ));
    }
    let mut completion = Vec::new();
    let mut current = expression.to_vec();
    // Every reduction removes one operator, so this ends after at most len/2 rounds.
    while current.len() > 1 {
        let Some(next) = task.reductions(&current).into_iter().next() else {
            return Err(invalid(format!(
                "no operator of `{}` can be evaluated on its own",
                task.vocab().decode(&current)
            )));
        };
        if !completion.is_empty() {
            completion.push(equals);
        }
        completion.extend_from_slice(&next);
        current = next;
    }
    if completion.is_empty() {
        return Err(invalid("the expression has no operator".into()));
    }
    completion.push(EOS);
    Ok(completion)
}

/// Why a chain is not right, in words.
pub fn describe_report(report: &CheckReport) -> String {
    match report.first_wrong {
        Some(wrong) => {
            let kind = match wrong.kind {
                WrongKind::WrongValue => "wrong value",
                WrongKind::Malformed => "malformed",
                WrongKind::EndedEarly => "ends early",
                WrongKind::Overlong => "goes on after the answer",
            };
            format!(
                "first wrong step {} (of steps 0..{}): {kind}",
                wrong.step, report.steps
            )
        }
        None if !report.answer_correct => "the final answer is wrong".to_string(),
        None => "the chain does not have the task's shape".to_string(),
    }
}

/// Verifies a readable line with the task's checker and returns it as a whole dpcot example:
/// a whole example must be a right chain (and end at the answers file's answer, if any); a
/// prompt gets the chain of [`arithmetic_chain`], which must end at its answer.
pub fn verify(
    task: &Task,
    file: &ReferenceFile,
    entry: &ReferenceExample,
) -> Result<Example, TaskError> {
    let invalid = |reason: String| TaskError::InvalidExample {
        path: file.path.clone(),
        line: entry.line,
        reason,
    };
    let example = match &entry.content {
        ReferenceLine::Chain(example) => example.clone(),
        ReferenceLine::Prompt(prompt) => {
            let Task::Arithmetic(arithmetic) = task else {
                return Err(invalid(
                    "a prompt without its chain (only arithmetic test files have those)".into(),
                ));
            };
            let Some(answer) = entry.answer else {
                return Err(invalid(
                    "a prompt without its chain needs the answers file (test_ans.txt)".into(),
                ));
            };
            let completion =
                arithmetic_chain(arithmetic, prompt).map_err(|e| invalid(e.to_string()))?;
            let value = completion[completion.len() - 2];
            if value != answer {
                return Err(invalid(format!(
                    "the answers file gives {}, the expression's value is {}",
                    task.vocab().word(answer),
                    task.vocab().word(value)
                )));
            }
            let mut tokens = prompt.clone();
            tokens.extend_from_slice(&completion);
            Example {
                tokens,
                prompt_len: prompt.len(),
            }
        }
    };
    if let Task::Arithmetic(a) = task {
        let operators = Arithmetic::operators_in(example.prompt());
        if operators > a.operators() {
            return Err(invalid(format!(
                "{operators} operators, more than the {} of {}",
                a.operators(),
                task.name()
            )));
        }
    }
    if example.tokens.len() > task.max_len() {
        return Err(invalid(format!(
            "{} tokens, longer than the task's maximum {}",
            example.tokens.len(),
            task.max_len()
        )));
    }
    let report = task
        .check(example.prompt(), example.completion())
        .map_err(|e| invalid(e.to_string()))?;
    if !(report.is_correct() && report.answer_correct && report.well_formed) {
        return Err(invalid(describe_report(&report)));
    }
    if let Some(answer) = entry.answer {
        let given = example.tokens[example.tokens.len() - 2];
        if given != answer {
            return Err(invalid(format!(
                "the answers file gives {}, the chain ends at {}",
                task.vocab().word(answer),
                task.vocab().word(given)
            )));
        }
    }
    Ok(example)
}

/// The outcome of checking a whole reference file.
#[derive(Debug)]
pub struct FileCheck {
    /// Non-blank lines.
    pub examples: usize,
    /// Lines that are readable and pass the task's checker.
    pub valid: usize,
    /// Every unreadable or invalid line, in line order, each error naming file and line.
    pub problems: Vec<TaskError>,
    /// Valid lines that are all of another size than the task's (arithmetic: none with the
    /// task's operator count, so the file is of a smaller size).
    pub size_mismatch: Option<TaskError>,
}

/// Arithmetic files of size N hold N-operator expressions, a training file possibly mixed with
/// smaller ones (the reference's `--under`): an error if none of `examples` has N operators.
fn size_mismatch<'a>(
    task: &Task,
    path: &Path,
    examples: impl IntoIterator<Item = &'a Example>,
) -> Option<TaskError> {
    let Task::Arithmetic(a) = task else {
        return None;
    };
    let most = examples
        .into_iter()
        .map(|e| Arithmetic::operators_in(e.prompt()))
        .max()?;
    (most < a.operators()).then(|| TaskError::DatasetMismatch {
        path: path.to_path_buf(),
        reason: format!(
            "no example has {} operators (the most is {most}): these are files of a smaller \
             size than {}",
            a.operators(),
            task.name()
        ),
    })
}

impl FileCheck {
    /// Lines that are unreadable or fail the checker.
    pub fn invalid(&self) -> usize {
        self.examples - self.valid
    }
}

/// Reads a reference file (with its answers file, if given) and verifies every line.
pub fn check_file(
    task: &Task,
    path: &Path,
    answers: Option<&Path>,
) -> Result<FileCheck, TaskError> {
    let mut file = read_file(task, path, answers)?;
    let examples = file.len();
    let mut problems: Vec<(usize, TaskError)> = std::mem::take(&mut file.unreadable)
        .into_iter()
        .map(|e| (line_of(&e), e))
        .collect();
    let mut valid = Vec::new();
    for entry in &file.examples {
        match verify(task, &file, entry) {
            Ok(example) => valid.push(example),
            Err(e) => problems.push((entry.line, e)),
        }
    }
    problems.sort_by_key(|(line, _)| *line);
    Ok(FileCheck {
        examples,
        valid: valid.len(),
        problems: problems.into_iter().map(|(_, e)| e).collect(),
        size_mismatch: size_mismatch(task, path, &valid),
    })
}

fn line_of(error: &TaskError) -> usize {
    match error {
        TaskError::MalformedDataset { line, .. } | TaskError::InvalidExample { line, .. } => *line,
        _ => 0,
    }
}

/// Reads, verifies and converts one reference file into a dpcot dataset split. The first
/// unreadable or invalid line is an error naming file and line; so is an empty file.
pub fn import_split(
    task_spec: &TaskSpec,
    split: Split,
    path: &Path,
    answers: Option<&Path>,
) -> Result<Dataset, TaskError> {
    let task = task_spec.build()?;
    let mut file = read_file(&task, path, answers)?;
    if let Some(first) = file.unreadable.drain(..).min_by_key(line_of) {
        return Err(first);
    }
    if file.examples.is_empty() {
        return Err(TaskError::EmptyDataset {
            path: path.to_path_buf(),
        });
    }
    let examples = file
        .examples
        .iter()
        .map(|entry| verify(&task, &file, entry))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(mismatch) = size_mismatch(&task, path, &examples) {
        return Err(mismatch);
    }
    if let (Task::Arithmetic(a), Split::Test) = (&task, split) {
        // Only a training set mixes in smaller expressions; a test split measures size N.
        let smaller = file
            .examples
            .iter()
            .zip(&examples)
            .find(|(_, e)| Arithmetic::operators_in(e.prompt()) < a.operators());
        if let Some((entry, example)) = smaller {
            return Err(TaskError::InvalidExample {
                path: path.to_path_buf(),
                line: entry.line,
                reason: format!(
                    "{} operators; a test split of {} holds {}-operator expressions only",
                    Arithmetic::operators_in(example.prompt()),
                    task.name(),
                    a.operators()
                ),
            });
        }
    }
    // A training file of the reference's `--under` option mixes in smaller operator counts.
    let mix_smaller = match &task {
        Task::Arithmetic(a) => examples.iter().any(|e| {
            let operators = e
                .completion()
                .iter()
                .filter(|&&t| t == task.separator())
                .count()
                + 1;
            operators < a.operators()
        }),
        _ => false,
    };
    let mut source = format!("{FORMAT_NAME}:{}", path.display());
    if let Some(answers) = answers {
        source.push_str(&format!(" + {}", answers.display()));
    }
    Ok(Dataset {
        header: DatasetHeader {
            format: FORMAT.to_string(),
            version: VERSION,
            task: task_spec.clone(),
            split,
            seed: 0,
            count: examples.len(),
            mix_smaller,
            max_len: task.max_len(),
            vocab: task.vocab().words().to_vec(),
            source: Some(source),
            examples_crc32: None,
        },
        examples,
    })
}

/// Imports the train and test files of the reference layout in `dir` (see [`ReferenceLayout`]).
pub fn import_dir(task_spec: &TaskSpec, dir: &Path) -> Result<(Dataset, Dataset), TaskError> {
    let layout = ReferenceLayout::of(dir, task_spec);
    let train = import_split(task_spec, Split::Train, &layout.train, None)?;
    let test = import_split(
        task_spec,
        Split::Test,
        &layout.test,
        layout.answers.as_deref(),
    )?;
    Ok((train, test))
}

/// One line as the reference writes it: every word followed by a space.
fn write_line(out: &mut impl Write, task: &Task, ids: &[TokenId]) -> std::io::Result<()> {
    for &id in ids {
        out.write_all(task.vocab().word(id).as_bytes())?;
        out.write_all(b" ")?;
    }
    out.write_all(b"\n")
}

/// The reference files a directory may hold: `chain/` train, test and answers.
pub fn reference_files(dir: &Path) -> [PathBuf; 3] {
    let chain = dir.join(CHAIN_DIR);
    [TRAIN_FILE, TEST_FILE, ANSWERS_FILE].map(|name| chain.join(name))
}

/// Writes a dpcot dataset in the reference layout under `dir` (see the module docs); returns
/// the files written. Either split may be left out. Reference files already in `dir` are
/// refused or replaced as `existing` says; replaced means that those of the earlier export
/// that this one does not write (an answers file of arithmetic, a split left out) are removed,
/// so that the directory holds one dataset.
pub fn export_dir(
    dir: &Path,
    train: Option<&Dataset>,
    test: Option<&Dataset>,
    existing: Existing,
) -> Result<Vec<PathBuf>, TaskError> {
    for dataset in [train, test].into_iter().flatten() {
        if let TaskSpec::Lis {
            inline_inputs: true,
            ..
        } = dataset.header.task
        {
            return Err(TaskError::NotInReferenceFormat {
                task: dataset.header.task.to_string(),
                reason: "its chain holds inputs that are given, not predicted, and the \
                         reference trains on every token after the prompt",
            });
        }
    }
    let earlier = reference_files(dir);
    existing.check(earlier.iter().map(PathBuf::as_path))?;
    let mut written = Vec::new();
    for dataset in [train, test].into_iter().flatten() {
        let task = dataset.task()?;
        let layout = ReferenceLayout::of(dir, &dataset.header.task);
        let body = |e: &Example| e.tokens.strip_suffix(&[EOS]).unwrap_or(&e.tokens).to_vec();
        match (dataset.header.split, &layout.answers) {
            (Split::Test, Some(answers)) => {
                // Arithmetic: prompts `expr = ` and the answers, as the reference writes them.
                write_atomic(&layout.test, |out| {
                    dataset
                        .examples
                        .iter()
                        .try_for_each(|e| write_line(out, &task, e.prompt()))
                })?;
                write_atomic(answers, |out| {
                    dataset.examples.iter().try_for_each(|e| {
                        let tokens = body(e);
                        let answer = tokens.last().copied().unwrap_or(EOS);
                        writeln!(out, "{}", task.vocab().word(answer))
                    })
                })?;
                written.push(layout.test.clone());
                written.push(answers.clone());
            }
            (split, _) => {
                let path = match split {
                    Split::Train => &layout.train,
                    Split::Test => &layout.test,
                };
                write_atomic(path, |out| {
                    dataset
                        .examples
                        .iter()
                        .try_for_each(|e| write_line(out, &task, &body(e)))
                })?;
                written.push(path.clone());
            }
        }
    }
    // Only once the new files are in place: a failed export leaves the earlier one whole.
    for stale in earlier
        .iter()
        .filter(|p| p.exists() && !written.contains(p))
    {
        std::fs::remove_file(stale).map_err(TaskError::io(stale))?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::{generate, GenerateConfig};
    use crate::task::TaskOptions;

    #[test]
    fn a_task_with_given_tokens_is_not_exported() {
        let options = TaskOptions {
            window: Some(2),
            inline_inputs: true,
            ..TaskOptions::default()
        };
        let spec = TaskSpec::from_name("lis", 4, &options).unwrap();
        let config = GenerateConfig {
            task: spec,
            train: 5,
            test: 5,
            seed: 1,
            mix_smaller: false,
        };
        let (train, _) = generate(&config, |_| {}).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let err = export_dir(dir.path(), Some(&train), None, Existing::Refuse).unwrap_err();
        assert!(
            matches!(err, TaskError::NotInReferenceFormat { .. })
                && err.to_string().contains("given, not predicted"),
            "{err}"
        );
        assert!(!dir.path().join(CHAIN_DIR).exists(), "nothing written");
    }

    fn task(name: &str, size: usize) -> (TaskSpec, Task) {
        let spec = TaskSpec::from_name(name, size, &TaskOptions::default()).unwrap();
        let task = spec.build().unwrap();
        (spec, task)
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn hand_written_reference_lines_of_every_task_are_accepted() {
        let dir = tempfile::tempdir().unwrap();
        // Arithmetic with the reference's random reduction order (here not leftmost first).
        let (_, arithmetic) = task("arithmetic", 4);
        let path = write(
            dir.path(),
            "a.txt",
            "8 / ( 5 * 3 ) * 10 * 3 = 8 / 4 * 10 * 3 = 8 / 4 * 8 = 2 * 8 = 5 \n",
        );
        let check = check_file(&arithmetic, &path, None).unwrap();
        assert_eq!(
            (check.examples, check.valid),
            (1, 1),
            "{:?}",
            check.problems
        );
        let file = read_file(&arithmetic, &path, None).unwrap();
        assert!(matches!(file.examples[0].content, ReferenceLine::Chain(_)));

        // LIS, as the reference writes it (trailing space).
        let (_, lis) = task("lis", 5);
        let path = write(
            dir.path(),
            "l.txt",
            "20 30 10 40 31 <sep> 1 2 1 3 3 <sep> 3 \n",
        );
        let check = check_file(&lis, &path, None).unwrap();
        assert_eq!(
            (check.examples, check.valid),
            (1, 1),
            "{:?}",
            check.problems
        );

        // ED (n = 5, s2 drawn 3 shorter and swapped first) with the unit-cost boundary quirk:
        // D[1][5] = D[0][4] + 3 = 7 because D[0][4] = 4, not 8.
        let (_, ed) = task("ed", 5);
        let path = write(
            dir.path(),
            "e.txt",
            "c f | c z y y f <sep> 0 2 4 6 7 , 2 3 5 7 6 , <sep> 6 \n",
        );
        let check = check_file(&ed, &path, None).unwrap();
        assert_eq!(
            (check.examples, check.valid),
            (1, 1),
            "{:?}",
            check.problems
        );
    }

    #[test]
    fn crlf_trailing_spaces_blank_lines_and_bom_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let (_, lis) = task("lis", 5);
        let path = write(
            dir.path(),
            "l.txt",
            "\u{feff}20 30 10 40 31 <sep> 1 2 1 3 3 <sep> 3 \r\n\r\n  \n20  30 10 40 31 <sep> 1 2 1 3 3 <sep> 3\t\r\n\n",
        );
        let file = read_file(&lis, &path, None).unwrap();
        assert!(file.unreadable.is_empty(), "{:?}", file.unreadable);
        let lines: Vec<usize> = file.examples.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![1, 4]);
        assert_eq!(file.examples[0].content, file.examples[1].content);
        let check = check_file(&lis, &path, None).unwrap();
        assert_eq!((check.examples, check.valid), (2, 2));
    }

    #[test]
    fn malformed_lines_are_errors_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let (spec, lis) = task("lis", 5);
        let good = "20 30 10 40 31 <sep> 1 2 1 3 3 <sep> 3 ";
        let path = write(
            dir.path(),
            "l.txt",
            &format!("{good}\n{good}\n20 30 ten 40 31 <sep> 1 2 1 3 3 <sep> 3\n20 30 10 40 31 1 2 1 3 3\n{good}\n20 30 10 40 31 <sep> 1 2 2 3 3 <sep> 3\n"),
        );
        let check = check_file(&lis, &path, None).unwrap();
        assert_eq!((check.examples, check.valid, check.invalid()), (6, 3, 3));
        let lines: Vec<usize> = check.problems.iter().map(line_of).collect();
        assert_eq!(lines, vec![3, 4, 6]);
        let text = check.problems[0].to_string();
        assert!(text.contains("l.txt:3") && text.contains("`ten`"), "{text}");
        assert!(check.problems[1].to_string().contains("no separator"));
        let text = check.problems[2].to_string();
        assert!(
            text.contains("l.txt:6")
                && text.contains("first wrong step 2")
                && text.contains("wrong value"),
            "{text}"
        );

        // Import stops at the first bad line.
        let err = import_split(&spec, Split::Train, &path, None).unwrap_err();
        assert!(
            matches!(err, TaskError::MalformedDataset { line: 3, .. }),
            "{err}"
        );
        let empty = write(dir.path(), "empty.txt", "\n \r\n");
        assert!(matches!(
            import_split(&spec, Split::Train, &empty, None),
            Err(TaskError::EmptyDataset { .. })
        ));
        assert!(matches!(
            import_split(&spec, Split::Train, &dir.path().join("missing.txt"), None),
            Err(TaskError::Io { .. })
        ));
    }

    #[test]
    fn arithmetic_prompt_only_test_files_are_checked_against_their_answers() {
        let dir = tempfile::tempdir().unwrap();
        let (spec, arithmetic) = task("arithmetic", 4);
        let prompts = write(
            dir.path(),
            "test_data.txt",
            "8 / ( 5 * 3 ) * 10 * 3 = \n1 + 2 = \n3 * ( 4 - 6 ) = \n",
        );
        // 3 * (4 - 6) = 3 * 9 = 27 mod 11 = 5; the third answer is wrong.
        let answers = write(dir.path(), "test_ans.txt", "5\n3\n6\n");
        let check = check_file(&arithmetic, &prompts, Some(&answers)).unwrap();
        assert_eq!(
            (check.examples, check.valid),
            (3, 2),
            "{:?}",
            check.problems
        );
        let text = check.problems[0].to_string();
        assert!(
            text.contains("test_data.txt:3") && text.contains("gives 6") && text.contains("is 5"),
            "{text}"
        );

        // Without answers a prompt cannot be verified.
        let check = check_file(&arithmetic, &prompts, None).unwrap();
        assert_eq!(check.valid, 0);
        assert!(check.problems[0].to_string().contains("answers file"));

        // Answers of another length, or not a token.
        let short = write(dir.path(), "short.txt", "5\n3\n");
        assert!(matches!(
            check_file(&arithmetic, &prompts, Some(&short)),
            Err(TaskError::AnswerCountMismatch {
                expected: 3,
                found: 2,
                ..
            })
        ));
        let bad = write(dir.path(), "bad.txt", "5\n3 4\n12\n");
        let check = check_file(&arithmetic, &prompts, Some(&bad)).unwrap();
        assert_eq!(check.valid, 1);
        let text = check.problems[0].to_string();
        assert!(
            text.contains("bad.txt:2") && text.contains("one answer token"),
            "{text}"
        );
        assert!(check.problems[1].to_string().contains("`12`"));

        // Import builds a right chain for each prompt (as a training split: a test split of
        // arithmetic-4 would refuse the smaller expressions).
        let answers = write(dir.path(), "test_ans.txt", "5\n3\n5\n");
        let test = import_split(&spec, Split::Train, &prompts, Some(&answers)).unwrap();
        assert_eq!(test.examples.len(), 3);
        assert_eq!(
            arithmetic.vocab().decode(&test.examples[0].tokens),
            "8 / ( 5 * 3 ) * 10 * 3 = 8 / 4 * 10 * 3 = 2 * 10 * 3 = 9 * 3 = 5 <eos>"
        );
        for e in &test.examples {
            assert!(arithmetic
                .check(e.prompt(), e.completion())
                .unwrap()
                .is_correct());
        }
        assert!(test
            .header
            .source
            .as_deref()
            .unwrap()
            .starts_with("cot-benchmark:"));
    }

    #[test]
    fn arithmetic_files_of_another_size_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (train, test) = generated("arithmetic", 2);
        export_dir(dir.path(), Some(&train), Some(&test), Existing::Refuse).unwrap();
        let [train_file, test_file, answers] = reference_files(dir.path());

        // Size 5: every expression has at most 2 operators. Once "20 valid".
        let (spec5, five) = task("arithmetic", 5);
        let check = check_file(&five, &test_file, Some(&answers)).unwrap();
        assert_eq!(
            check.valid, check.examples,
            "each line on its own is a right chain"
        );
        let mismatch = check
            .size_mismatch
            .expect("files of size 2 are not of size 5");
        assert!(mismatch
            .to_string()
            .contains("no example has 5 operators (the most is 2)"));
        let err = import_split(&spec5, Split::Train, &train_file, None).unwrap_err();
        assert!(matches!(err, TaskError::DatasetMismatch { .. }), "{err}");

        // Size 1: expressions with 2 operators are longer than the task.
        let (_, one) = task("arithmetic", 1);
        let check = check_file(&one, &test_file, Some(&answers)).unwrap();
        assert_eq!(check.valid, 0);
        assert!(check.problems[0]
            .to_string()
            .contains("2 operators, more than the 1"));

        // A training file may mix in smaller sizes (the reference's --under); a test split
        // may not. Once imported as a test split with no 3-operator example.
        let mixed = write(dir.path(), "mixed.txt", "1 + 2 = \n1 + 2 * 3 - 4 = \n");
        let mixed_answers = write(dir.path(), "mixed_ans.txt", "3\n3\n");
        let (spec3, _) = task("arithmetic", 3);
        let err = import_split(&spec3, Split::Test, &mixed, Some(&mixed_answers)).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("mixed.txt:1") && text.contains("3-operator expressions only"),
            "{text}"
        );
        let (train3, _) = generated("arithmetic", 3);
        let written = dir.path().join("three");
        export_dir(&written, Some(&train3), None, Existing::Refuse).unwrap();
        let imported =
            import_split(&spec3, Split::Train, &reference_files(&written)[0], None).unwrap();
        assert!(imported.header.mix_smaller);
    }

    #[test]
    fn the_built_arithmetic_chain_refuses_bad_prompts() {
        let (_, t) = task("arithmetic", 2);
        let Task::Arithmetic(a) = &t else {
            unreachable!()
        };
        let ids = |s: &str| a.vocab().encode("arithmetic", s).unwrap();
        assert!(arithmetic_chain(a, &ids("3 / 0 =")).is_err());
        assert!(arithmetic_chain(a, &ids("3 + =")).is_err());
        assert!(arithmetic_chain(a, &ids("3 =")).is_err());
        assert!(arithmetic_chain(a, &ids("3 + 4")).is_err());
        assert_eq!(
            a.vocab()
                .decode(&arithmetic_chain(a, &ids("( 3 + 4 ) * 2 =")).unwrap()),
            "7 * 2 = 3 <eos>"
        );
    }

    fn generated(name: &str, size: usize) -> (Dataset, Dataset) {
        let config = GenerateConfig {
            task: TaskSpec::from_name(name, size, &TaskOptions::default()).unwrap(),
            train: 300,
            test: 60,
            seed: 11,
            mix_smaller: name == "arithmetic",
        };
        generate(&config, |_| {}).unwrap()
    }

    #[test]
    fn an_earlier_export_is_refused_or_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (train, test) = generated("arithmetic", 3);
        export_dir(dir.path(), Some(&train), Some(&test), Existing::Refuse).unwrap();
        let [train_file, test_file, answers] = reference_files(dir.path());
        let before = std::fs::read(&test_file).unwrap();

        let (lis_train, lis_test) = generated("lis", 5);
        let e = export_dir(
            dir.path(),
            Some(&lis_train),
            Some(&lis_test),
            Existing::Refuse,
        )
        .unwrap_err();
        assert!(
            matches!(e, TaskError::OutputExists { ref path } if path == &train_file),
            "{e}"
        );
        assert_eq!(
            std::fs::read(&test_file).unwrap(),
            before,
            "nothing written"
        );

        // Replaced: arithmetic's answers file goes with it, or an import would pair LIS
        // prompts with arithmetic answers.
        export_dir(
            dir.path(),
            Some(&lis_train),
            Some(&lis_test),
            Existing::Replace,
        )
        .unwrap();
        assert!(!answers.exists());
        let (spec, _) = task("lis", 5);
        let (train_back, _) = import_dir(&spec, dir.path()).unwrap();
        assert_eq!(train_back.examples, lis_train.examples);

        // A split left out of the new export does not survive from the old one either.
        export_dir(dir.path(), Some(&lis_train), None, Existing::Replace).unwrap();
        assert!(train_file.exists() && !test_file.exists());
    }

    #[test]
    fn generate_export_import_gives_the_same_examples() {
        for (name, size) in [("lis", 6), ("ed", 4), ("arithmetic", 4)] {
            let dir = tempfile::tempdir().unwrap();
            let (train, test) = generated(name, size);
            let written =
                export_dir(dir.path(), Some(&train), Some(&test), Existing::Refuse).unwrap();
            let layout = ReferenceLayout::of(dir.path(), &train.header.task);
            assert!(written.contains(&layout.train) && written.contains(&layout.test));

            let (train_back, test_back) = import_dir(&train.header.task, dir.path()).unwrap();
            assert_eq!(train_back.examples, train.examples, "{name} train");
            assert_eq!(train_back.header.mix_smaller, train.header.mix_smaller);
            assert_eq!(train_back.header.split, Split::Train);
            assert_eq!(test_back.header.split, Split::Test);
            if name == "arithmetic" {
                // The reference keeps only prompts and answers of the test split; the chains
                // come back as dpcot's leftmost reduction order.
                assert_eq!(layout.answers.as_ref(), written.last());
                for (a, b) in test_back.examples.iter().zip(&test.examples) {
                    assert_eq!(a.prompt(), b.prompt());
                    assert_eq!(a.tokens[a.tokens.len() - 2], b.tokens[b.tokens.len() - 2]);
                }
                assert_eq!(test_back.examples.len(), test.examples.len());
                let first = std::fs::read_to_string(&layout.test).unwrap();
                assert!(first.lines().all(|l| l.ends_with("= ")), "{first}");
            } else {
                assert_eq!(test_back.examples, test.examples, "{name} test");
                assert!(layout.answers.is_none());
            }
            // The reference's byte format: every token followed by a space.
            let text = std::fs::read_to_string(&layout.train).unwrap();
            assert!(text.lines().all(|l| l.ends_with(' ')));
            assert_eq!(text.lines().count(), train.examples.len());

            // The imported split is a dpcot dataset like any other.
            let path = Split::Train.path_in(&dir.path().join("dpcot"));
            train_back.write(&path).unwrap();
            let read = Dataset::read_expecting(&path, &train.header.task, Split::Train).unwrap();
            assert_eq!(read.examples, train.examples);
            assert!(read.header.source.is_some());
        }
    }

    #[test]
    fn headers_without_source_stay_readable() {
        let (train, _) = generated("lis", 4);
        let mut json: serde_json::Value = serde_json::to_value(&train.header).unwrap();
        assert!(json.get("source").is_none(), "generated data has no source");
        json.as_object_mut().unwrap().remove("source");
        let header: DatasetHeader = serde_json::from_value(json).unwrap();
        assert_eq!(header.source, None);
    }
}
