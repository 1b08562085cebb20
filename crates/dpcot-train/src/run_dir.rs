//! The run directory: where each file of a run lives, and reading and writing them.
//!
//! ```text
//! runs/lis-8/
//!   config.json      the RunConfig, written when the run starts
//!   metrics.jsonl    one MetricsLine per logging step and evaluation
//!   checkpoint.bin   the latest checkpoint (see crate::checkpoint)
//!   summary.json     the RunSummary, written when the run finishes
//!   lock             held (flock) by the process training the run
//! ```

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use dpcot_tasks::atomic::{
    read_json_sealed, read_sealed_line, sealed_line, write_atomic, write_json_sealed,
    SealedReadError,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::checkpoint::Progress;
use crate::config::RunConfig;
use crate::metrics::{MetricsLine, RunSummary};
use crate::TrainError;

/// The files of a run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    /// The directory itself.
    pub root: PathBuf,
}

impl RunDir {
    /// The run directory at `root` (nothing is created until the run starts).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// `config.json`: the run's [`RunConfig`].
    pub fn config(&self) -> PathBuf {
        self.root.join("config.json")
    }

    /// `metrics.jsonl`: one [`MetricsLine`] per line.
    pub fn metrics(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }

    /// `checkpoint.bin`: the latest checkpoint.
    pub fn checkpoint(&self) -> PathBuf {
        self.root.join("checkpoint.bin")
    }

    /// `summary.json`: the [`RunSummary`] of a finished run.
    pub fn summary(&self) -> PathBuf {
        self.root.join("summary.json")
    }

    /// `lock`: the file whose advisory lock the training process holds.
    pub fn lock_file(&self) -> PathBuf {
        self.root.join("lock")
    }

    /// Takes the run's lock, creating the directory if needed; the lock is released when the
    /// returned file is dropped or the process ends, however it ends. A second process on the
    /// same run is refused with [`TrainError::RunBusy`] instead of training beside the first.
    pub fn lock(&self) -> Result<File, TrainError> {
        std::fs::create_dir_all(&self.root).map_err(TrainError::io(&self.root))?;
        let path = self.lock_file();
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(TrainError::io(&path))?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => Err(TrainError::RunBusy {
                dir: self.root.clone(),
            }),
            Err(std::fs::TryLockError::Error(e)) => Err(TrainError::io(&path)(e)),
        }
    }

    /// Reads the run's `config.json`.
    pub fn read_config(&self) -> Result<RunConfig, TrainError> {
        read_json(&self.config())
    }

    /// Reads the run's `summary.json`.
    pub fn read_summary(&self) -> Result<RunSummary, TrainError> {
        read_json(&self.summary())
    }

    /// Writes the run's `summary.json`.
    pub fn write_summary(&self, summary: &RunSummary) -> Result<(), TrainError> {
        write_json(&self.summary(), summary)
    }

    /// Creates the directory and its `config.json` for a new run; when `resume` is set, an
    /// existing run is accepted if it was started with the same config.
    pub fn prepare(&self, config: &RunConfig, resume: bool) -> Result<(), TrainError> {
        std::fs::create_dir_all(&self.root).map_err(TrainError::io(&self.root))?;
        if !self.config().exists() {
            return write_json(&self.config(), config);
        }
        if !resume {
            return Err(TrainError::RunExists {
                dir: self.root.clone(),
            });
        }
        if &self.read_config()? != config {
            return Err(TrainError::CheckpointMismatch {
                path: self.config(),
                reason:
                    "the run was started with another config; resume it without changing the config"
                        .into(),
            });
        }
        Ok(())
    }

    /// Opens `metrics.jsonl` for appending: emptied for a run that starts from scratch, cut
    /// back to the lines up to the checkpoint's step for a resumed one, since lines written
    /// after the checkpoint will be written again. For a run that had ended (its checkpoint
    /// says so, the summary was not written), the evaluations at its last step go too: the
    /// final evaluations are written again.
    pub fn open_metrics(&self, resumed: Option<&Progress>) -> Result<MetricsLog, TrainError> {
        let path = self.metrics();
        let lines = match resumed {
            Some(progress) => truncate_metrics(&path, progress)?,
            None => {
                // A missing file is what we want.
                drop(std::fs::remove_file(&path));
                0
            }
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(TrainError::io(&path))?;
        Ok(MetricsLog { file, path, lines })
    }
}

/// A run's `metrics.jsonl`, open for appending.
#[derive(Debug)]
pub struct MetricsLog {
    file: File,
    path: PathBuf,
    lines: usize,
}

impl MetricsLog {
    /// Appends one line, sealed ([`sealed_line`]) so that a change to it is told on resume.
    pub fn append(&mut self, line: &MetricsLine) -> Result<(), TrainError> {
        let mut text = sealed_line(line).map_err(TrainError::io(&self.path))?;
        text.push('\n');
        self.file
            .write_all(text.as_bytes())
            .map_err(TrainError::io(&self.path))?;
        self.lines += 1;
        Ok(())
    }

    /// Lines in the log, the ones kept from before a resume included (what a checkpoint
    /// records, so that a resume can tell a log cut short).
    pub fn lines(&self) -> usize {
        self.lines
    }
}

/// Cuts the log back to the checkpoint `progress` a run resumes from: the lines up to its step
/// (for an ended run, without the evaluations at its last step, which are written again);
/// returns how many are kept. A last line without its newline was cut short by a kill and
/// goes; a line whose seal does not hold, or fewer lines than the checkpoint recorded, is an
/// error naming the log: it was changed or cut after it was written.
fn truncate_metrics(path: &Path, progress: &Progress) -> Result<usize, TrainError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(TrainError::io(path)(e)),
    };
    let damaged = |reason: String| TrainError::Corrupt {
        path: path.to_path_buf(),
        reason: format!(
            "{reason}; the log was changed after it was written: delete the run's directory to \
             train it again"
        ),
    };
    let complete = text.rfind('\n').map_or("", |end| &text[..end + 1]);
    let (mut kept, mut count) = (String::new(), 0);
    let total = complete.lines().count();
    if let Some(written) = progress.metrics_lines.filter(|&written| total < written) {
        return Err(damaged(format!(
            "{total} lines, where the checkpoint of step {} recorded {written}",
            progress.step
        )));
    }
    for (i, line) in complete.lines().enumerate() {
        let parsed: MetricsLine =
            read_sealed_line(line).map_err(|e| damaged(format!("line {}: {e}", i + 1)))?;
        if parsed.step() > progress.step {
            continue;
        }
        let final_evaluation = progress.ending.is_some()
            && parsed.step() == progress.step
            && !matches!(parsed, MetricsLine::Train { .. });
        if !final_evaluation {
            kept.push_str(line);
            kept.push('\n');
            count += 1;
        }
    }
    write_atomic(path, kept.as_bytes()).map_err(TrainError::io(path))?;
    Ok(count)
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), TrainError> {
    write_json_sealed(path, value).map_err(TrainError::io(path))
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, TrainError> {
    read_json_sealed(path).map_err(|e| match e {
        SealedReadError::Io(source) => TrainError::Io {
            path: path.to_path_buf(),
            source,
        },
        damaged => TrainError::Corrupt {
            path: path.to_path_buf(),
            reason: format!(
                "{damaged}; the run cannot be trusted: delete its directory to train it again"
            ),
        },
    })
}
