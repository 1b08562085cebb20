//! Datasets on disk: one text file per split, a JSON header line, then one example per line.
//!
//! ```text
//! {"format":"dpcot-dataset","version":1,"task":{"task":"lis",...},"split":"train",...}
//! 20 30 10 40 31 <sep> 1 2 1 3 3 <sep> 3
//! ...
//! ```
//!
//! Example lines are exactly the reference benchmark's format (space-separated words, the
//! loader appends `<eos>`), so dropping the header line gives its files. Files are written to a
//! temporary file and renamed, so a reader never sees half a dataset; the header's `count`
//! catches a file truncated later.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::stream::{draw, HeldOut, Sampler};
use crate::task::{DpTask, Example, Task, TaskSpec};
use crate::vocab::EOS;
use crate::TaskError;

/// The `format` of every dataset header.
pub const FORMAT: &str = "dpcot-dataset";
/// The dataset format's version.
pub const VERSION: u32 = 1;

/// The two splits of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// The examples trained on.
    Train,
    /// The held-out examples accuracies are measured on.
    Test,
}

impl Split {
    /// The split's name, as in file names and headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }

    /// The file of this split inside a dataset directory.
    pub fn path_in(self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.txt", self.as_str()))
    }
}

/// The first line of a dataset file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetHeader {
    /// Always [`FORMAT`].
    pub format: String,
    /// The format's version, [`VERSION`].
    pub version: u32,
    /// The task of every example.
    pub task: TaskSpec,
    /// Which split the file holds.
    pub split: Split,
    /// The generator's seed; 0 for data that dpcot did not generate (see `source`).
    pub seed: u64,
    /// Examples in the file.
    pub count: usize,
    /// Whether the split mixes in smaller sizes (arithmetic only; share ∝ number of operators).
    #[serde(default)]
    pub mix_smaller: bool,
    /// The task's longest sequence, `<eos>` included.
    pub max_len: usize,
    /// The task's vocabulary, in token-id order.
    pub vocab: Vec<String>,
    /// Where the examples came from when dpcot did not generate them, e.g.
    /// `cot-benchmark:data/chain/train_data.txt` for an imported reference file. Absent for
    /// generated data (and in files written before the field existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// CRC-32 (eight hex digits) of every byte after the header line, so that an example
    /// changed after writing is told: set by [`Dataset::write`] whatever the value given,
    /// checked and cleared by [`Dataset::read`] (it belongs to the file, not to the data).
    /// Absent in files written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub examples_crc32: Option<String>,
}

/// One split of a dataset, in memory.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The header line.
    pub header: DatasetHeader,
    /// The examples, in file order.
    pub examples: Vec<Example>,
}

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerateConfig {
    /// The task.
    pub task: TaskSpec,
    /// Training examples.
    pub train: usize,
    /// Test examples, none of which is in the training split.
    pub test: usize,
    /// Seed of the generator.
    pub seed: u64,
    /// Arithmetic only: draw the training set's operator count i from 1..=N with share ∝ i,
    /// as the reference does. The test set always has the full size.
    #[serde(default)]
    pub mix_smaller: bool,
}

/// Generates a train and a test split; no test example occurs in the train split. The same
/// config gives the same examples. `progress` is told how many examples are done so far.
pub fn generate(
    config: &GenerateConfig,
    mut progress: impl FnMut(usize),
) -> Result<(Dataset, Dataset), TaskError> {
    let task = config.task.build()?;
    let sampler = Sampler::new(task.clone(), config.mix_smaller)?;
    let test_sampler = Sampler::new(task.clone(), false)?;
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    progress(0);
    // The test split may repeat a problem (as the reference's may); the training split never
    // holds one of them.
    let test = draw(
        &test_sampler,
        &mut rng,
        config.test,
        &HeldOut::default(),
        "test",
    )?;
    progress(config.test);
    let train = draw(
        &sampler,
        &mut rng,
        config.train,
        &HeldOut::new(&test),
        "train",
    )?;
    progress(config.test + config.train);

    let header = |split, count, mix_smaller| DatasetHeader {
        format: FORMAT.to_string(),
        version: VERSION,
        task: config.task.clone(),
        split,
        seed: config.seed,
        count,
        mix_smaller,
        max_len: task.max_len(),
        vocab: task.vocab().words().to_vec(),
        source: None,
        examples_crc32: None,
    };
    Ok((
        Dataset {
            header: header(Split::Train, train.len(), config.mix_smaller),
            examples: train,
        },
        Dataset {
            header: header(Split::Test, test.len(), false),
            examples: test,
        },
    ))
}

impl Dataset {
    /// The task this dataset was generated for.
    pub fn task(&self) -> Result<Task, TaskError> {
        self.header.task.build()
    }

    /// Writes the dataset atomically: a temporary file in the same directory, then a rename.
    /// The header line is sealed ([`crate::atomic::sealed_line`]) and carries the CRC-32 of
    /// the example lines, taken in a first pass over them.
    pub fn write(&self, path: &Path) -> Result<(), TaskError> {
        let task = self.task()?;
        let vocab = task.vocab();
        // `<eos>` is left out, as in the reference files; the reader appends it.
        let line = |example: &Example| {
            let body = example
                .tokens
                .strip_suffix(&[EOS])
                .unwrap_or(&example.tokens);
            let mut line = vocab.decode(body);
            line.push('\n');
            line
        };
        let mut crc = crc32fast::Hasher::new();
        for example in &self.examples {
            crc.update(line(example).as_bytes());
        }
        let header = DatasetHeader {
            examples_crc32: Some(format!("{:08x}", crc.finalize())),
            ..self.header.clone()
        };
        write_atomic(path, |out| {
            out.write_all(crate::atomic::sealed_line(&header)?.as_bytes())?;
            out.write_all(b"\n")?;
            for example in &self.examples {
                out.write_all(line(example).as_bytes())?;
            }
            Ok(())
        })
    }

    /// Reads a dataset file, checking its header, every line and the example count.
    pub fn read(path: &Path) -> Result<Self, TaskError> {
        let malformed = |line: usize, reason: String| TaskError::MalformedDataset {
            path: path.to_path_buf(),
            line,
            reason,
        };
        let file = File::open(path).map_err(TaskError::io(path))?;
        let mut lines = BufReader::new(file).lines();
        let first = lines
            .next()
            .ok_or_else(|| malformed(1, "empty file, expected a dataset header".into()))?
            .map_err(TaskError::io(path))?;
        let mut header: DatasetHeader = crate::atomic::read_sealed_line(&first)
            .map_err(|e| malformed(1, format!("not a dpcot dataset header: {e}")))?;
        if header.format != FORMAT || header.version != VERSION {
            return Err(malformed(
                1,
                format!(
                    "format `{}` version {}, expected `{FORMAT}` version {VERSION}",
                    header.format, header.version
                ),
            ));
        }
        let task = header
            .task
            .build()
            .map_err(|e| malformed(1, format!("invalid task in header: {e}")))?;
        if header.vocab != task.vocab().words() {
            return Err(malformed(
                1,
                format!(
                    "the header's vocabulary is not the {} vocabulary",
                    task.name()
                ),
            ));
        }

        // The header's count is not trusted with an allocation: a damaged one could ask for
        // terabytes. The count is checked against the lines read below.
        let mut examples = Vec::with_capacity(header.count.min(1 << 16));
        let mut crc = crc32fast::Hasher::new();
        for (i, line) in lines.enumerate() {
            let number = i + 2;
            let line = line.map_err(TaskError::io(path))?;
            crc.update(line.as_bytes());
            crc.update(b"\n");
            if line.trim().is_empty() {
                continue;
            }
            let example = task
                .parse_example(&line)
                .map_err(|e| malformed(number, e.to_string()))?;
            if example.tokens.len() > task.max_len() {
                return Err(malformed(
                    number,
                    format!(
                        "{} tokens, longer than the task's maximum {}",
                        example.tokens.len(),
                        task.max_len()
                    ),
                ));
            }
            examples.push(example);
        }
        if examples.len() != header.count {
            return Err(TaskError::ExampleCountMismatch {
                path: path.to_path_buf(),
                expected: header.count,
                found: examples.len(),
            });
        }
        let crc = format!("{:08x}", crc.finalize());
        if header
            .examples_crc32
            .take()
            .is_some_and(|written| written != crc)
        {
            return Err(TaskError::DamagedDataset {
                path: path.to_path_buf(),
            });
        }
        Ok(Self { header, examples })
    }

    /// Reads a dataset file and checks that it holds `split` of `task`.
    pub fn read_expecting(path: &Path, task: &TaskSpec, split: Split) -> Result<Self, TaskError> {
        let dataset = Self::read(path)?;
        let mismatch = |reason: String| TaskError::DatasetMismatch {
            path: path.to_path_buf(),
            reason,
        };
        if &dataset.header.task != task {
            return Err(mismatch(format!(
                "it holds {}, asked for {}",
                dataset.header.task, task
            )));
        }
        if dataset.header.split != split {
            return Err(mismatch(format!(
                "it is the {} split, asked for {}",
                dataset.header.split.as_str(),
                split.as_str()
            )));
        }
        Ok(dataset)
    }
}

/// [`crate::atomic::write_atomic_with`], its error naming `path`.
pub(crate) fn write_atomic(
    path: &Path,
    body: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<(), TaskError> {
    crate::atomic::write_atomic_with(path, body).map_err(TaskError::io(path))
}

/// What writing a dataset does to files of an earlier one in its place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Refuse with [`TaskError::OutputExists`], writing nothing.
    Refuse,
    /// Replace them.
    Replace,
}

impl Existing {
    /// Checks that none of `paths` exists, unless they may be replaced.
    pub fn check<'a>(self, paths: impl IntoIterator<Item = &'a Path>) -> Result<(), TaskError> {
        match (self, paths.into_iter().find(|p| p.exists())) {
            (Existing::Refuse, Some(path)) => Err(TaskError::OutputExists {
                path: path.to_path_buf(),
            }),
            _ => Ok(()),
        }
    }
}

/// The files of a dataset directory: `train.txt` and `test.txt`.
pub fn dir_files(dir: &Path) -> [PathBuf; 2] {
    [Split::Train.path_in(dir), Split::Test.path_in(dir)]
}

/// Writes `train.txt` and `test.txt` into `dir`; an earlier dataset there is refused or
/// replaced as `existing` says (checked before anything is written).
pub fn write_dir(
    dir: &Path,
    train: &Dataset,
    test: &Dataset,
    existing: Existing,
) -> Result<(), TaskError> {
    existing.check(dir_files(dir).iter().map(PathBuf::as_path))?;
    train.write(&Split::Train.path_in(dir))?;
    test.write(&Split::Test.path_in(dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::TaskOptions;

    fn config(name: &str, size: usize, train: usize, test: usize) -> GenerateConfig {
        GenerateConfig {
            task: TaskSpec::from_name(name, size, &TaskOptions::default()).unwrap(),
            train,
            test,
            seed: 7,
            mix_smaller: false,
        }
    }

    #[test]
    fn write_then_read_gives_the_same_examples() {
        for name in ["arithmetic", "lis", "ed"] {
            let dir = tempfile::tempdir().unwrap();
            let (train, test) = generate(&config(name, 3, 200, 50), |_| {}).unwrap();
            write_dir(dir.path(), &train, &test, Existing::Refuse).unwrap();
            let back = Dataset::read_expecting(
                &Split::Train.path_in(dir.path()),
                &train.header.task,
                Split::Train,
            )
            .unwrap();
            assert_eq!(back.header, train.header);
            assert_eq!(back.examples, train.examples, "{name}");
        }
    }

    #[test]
    fn same_seed_gives_byte_identical_files() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config("ed", 4, 300, 30);
        let write = |sub: &str| {
            let (train, test) = generate(&cfg, |_| {}).unwrap();
            write_dir(&dir.path().join(sub), &train, &test, Existing::Refuse).unwrap();
            std::fs::read(Split::Train.path_in(&dir.path().join(sub))).unwrap()
        };
        assert_eq!(write("a"), write("b"));
        let other = generate(
            &GenerateConfig {
                seed: 8,
                ..cfg.clone()
            },
            |_| {},
        )
        .unwrap();
        assert_ne!(other.0.examples, generate(&cfg, |_| {}).unwrap().0.examples);
    }

    #[test]
    fn test_examples_never_occur_in_train() {
        // LIS n = 2 over a small range has few distinct examples: collisions are certain.
        let mut cfg = config("lis", 2, 2000, 100);
        cfg.task = TaskSpec::Lis {
            length: 2,
            range: 10,
            window: None,
            inline_inputs: false,
        };
        let (train, test) = generate(&cfg, |_| {}).unwrap();
        let held: std::collections::HashSet<_> = test.examples.iter().map(|e| &e.tokens).collect();
        assert!(train.examples.iter().all(|e| !held.contains(&e.tokens)));
        assert_eq!(train.examples.len(), 2000);
    }

    #[test]
    fn an_exhausted_space_is_an_error_not_a_hang() {
        let mut cfg = config("lis", 1, 10, 500);
        cfg.task = TaskSpec::Lis {
            length: 1,
            range: 4,
            window: None,
            inline_inputs: false,
        };
        let err = generate(&cfg, |_| {}).unwrap_err();
        assert!(matches!(err, TaskError::SpaceExhausted { .. }), "{err}");
    }

    #[test]
    fn mixing_smaller_sizes_follows_the_reference_shares() {
        let mut cfg = config("arithmetic", 4, 4000, 10);
        cfg.mix_smaller = true;
        let (train, test) = generate(&cfg, |_| {}).unwrap();
        let ops = |e: &Example| e.prompt().iter().filter(|&&t| (3..=6).contains(&t)).count();
        let mut counts = [0usize; 5];
        for e in &train.examples {
            counts[ops(e)] += 1;
        }
        // Shares 1:2:3:4 out of 10.
        for (i, &c) in counts.iter().enumerate().skip(1) {
            let expected = 4000.0 * i as f64 / 10.0;
            assert!((c as f64 - expected).abs() < 0.15 * expected, "{counts:?}");
        }
        assert!(test.examples.iter().all(|e| ops(e) == 4));
        assert!(generate(
            &GenerateConfig {
                mix_smaller: true,
                ..config("lis", 4, 10, 10)
            },
            |_| {}
        )
        .is_err());
    }

    #[test]
    fn an_earlier_dataset_is_refused_unless_replacing_is_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let (train, test) = generate(&config("lis", 4, 20, 5), |_| {}).unwrap();
        write_dir(dir.path(), &train, &test, Existing::Refuse).unwrap();
        let (train2, test2) = generate(&config("lis", 5, 20, 5), |_| {}).unwrap();
        let e = write_dir(dir.path(), &train2, &test2, Existing::Refuse).unwrap_err();
        assert!(matches!(e, TaskError::OutputExists { .. }), "{e}");
        assert!(e.to_string().contains("train.txt already exists"), "{e}");
        assert_eq!(
            Dataset::read(&dir_files(dir.path())[0]).unwrap().examples,
            train.examples
        );

        write_dir(dir.path(), &train2, &test2, Existing::Replace).unwrap();
        assert_eq!(
            Dataset::read(&dir_files(dir.path())[1]).unwrap().examples,
            test2.examples
        );
    }

    #[test]
    fn damaged_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let (train, _) = generate(&config("lis", 4, 20, 5), |_| {}).unwrap();
        let path = dir.path().join("train.txt");
        train.write(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();

        let truncated: String = text.lines().take(10).map(|l| format!("{l}\n")).collect();
        std::fs::write(&path, truncated).unwrap();
        assert!(matches!(
            Dataset::read(&path),
            Err(TaskError::ExampleCountMismatch {
                expected: 20,
                found: 9,
                ..
            })
        ));
        let message = Dataset::read(&path).unwrap_err().to_string();
        assert!(message.contains("truncated"), "{message}");

        // A damaged count asks for no allocation of its size (in a header without the seal
        // that would tell the damage, as files from before sealing are).
        let (header, body) = text.split_once('\n').unwrap();
        let mut legacy: serde_json::Value = serde_json::from_str(header).unwrap();
        let fields = legacy.as_object_mut().unwrap();
        fields.remove("crc32");
        fields.remove("examples_crc32");
        fields.insert("count".into(), 1_000_000_000_000_000u64.into());
        std::fs::write(&path, format!("{legacy}\n{body}")).unwrap();
        assert!(matches!(
            Dataset::read(&path),
            Err(TaskError::ExampleCountMismatch { found: 20, .. })
        ));

        // An example changed after writing, though still a valid line: told by its checksum.
        let changed = text.replacen(" <sep> 1 ", " <sep> 2 ", 1);
        assert_ne!(changed, text);
        std::fs::write(&path, &changed).unwrap();
        let err = Dataset::read(&path).unwrap_err();
        assert!(matches!(err, TaskError::DamagedDataset { .. }), "{err}");
        // And a header changed, by its seal.
        let header = text.replacen("\"seed\":", "\"seed\":1", 1);
        std::fs::write(&path, &header).unwrap();
        assert!(matches!(
            Dataset::read(&path),
            Err(TaskError::MalformedDataset { line: 1, .. })
        ));

        // A line added to a complete file is not called a truncation.
        let last = text.lines().last().unwrap();
        std::fs::write(&path, format!("{text}{last}\n")).unwrap();
        let message = Dataset::read(&path).unwrap_err().to_string();
        assert!(
            message.contains("announces 20 examples, the file holds 21")
                && message.contains("lines were added")
                && !message.contains("truncated"),
            "{message}"
        );

        let (header, body) = text.split_once('\n').unwrap();
        std::fs::write(
            &path,
            format!("{header}\n{}", body.replacen("<sep>", "<sop>", 1)),
        )
        .unwrap();
        let err = Dataset::read(&path).unwrap_err();
        assert!(
            matches!(err, TaskError::MalformedDataset { line: 2, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("<sop>"), "{err}");

        std::fs::write(&path, "not json\n").unwrap();
        assert!(matches!(
            Dataset::read(&path),
            Err(TaskError::MalformedDataset { line: 1, .. })
        ));
        std::fs::write(&path, "").unwrap();
        assert!(matches!(
            Dataset::read(&path),
            Err(TaskError::MalformedDataset { line: 1, .. })
        ));
        assert!(matches!(
            Dataset::read(&dir.path().join("missing.txt")),
            Err(TaskError::Io { .. })
        ));
    }

    #[test]
    fn a_dataset_of_another_task_or_split_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (train, test) = generate(&config("lis", 4, 20, 5), |_| {}).unwrap();
        write_dir(dir.path(), &train, &test, Existing::Refuse).unwrap();
        let other = TaskSpec::from_name("lis", 5, &TaskOptions::default()).unwrap();
        let path = Split::Train.path_in(dir.path());
        let err = Dataset::read_expecting(&path, &other, Split::Train).unwrap_err();
        assert!(matches!(err, TaskError::DatasetMismatch { .. }), "{err}");
        let err = Dataset::read_expecting(&path, &train.header.task, Split::Test).unwrap_err();
        assert!(err.to_string().contains("train split"), "{err}");
    }
}
