//! Checkpoints: model weights, optimizer state and the step, in one file written atomically.
//!
//! Layout: the magic `DPCOTCK2`, a little-endian u64 header length, the header's CRC-32 (u32,
//! little-endian), a JSON header ([`CheckpointHeader`]), the model record, the optimizer record
//! (both burnpack bytes). The header holds the lengths and CRC-32s of both records, so every
//! byte of the file is covered by a checksum and a truncated or damaged file (an edited step
//! included) is refused before burn parses anything. Batch order and dropout masks are functions of
//! (seed, step), so no RNG state is needed to resume bit for bit.

use std::io::Write;
use std::path::Path;

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device};
use dpcot_model::{ModelConfig, Transformer};
use dpcot_tasks::atomic::write_atomic_with;
use serde::{Deserialize, Serialize};

use crate::metrics::RunEnding;
use crate::plateau::Plateau;
use crate::TrainError;

const MAGIC: &[u8; 8] = b"DPCOTCK2";
/// Format 1 had no checksum over its header.
const MAGIC_V1: &[u8; 8] = b"DPCOTCK1";
/// Magic, header length, header CRC.
const PREAMBLE: usize = 8 + 8 + 4;

/// How far a run has come; carried across resumes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Steps completed.
    pub step: usize,
    /// Training wall time so far, in seconds.
    pub train_seconds: f64,
    /// Training tokens seen so far.
    pub tokens_seen: u64,
    /// Training FLOPs so far (forward + backward on the padded batches).
    pub train_flops: f64,
    /// The step the run is scheduled to end at: the budget, grown by each continuation
    /// ([`crate::train::decide`]). 0 in checkpoints from before continuations (the budget).
    #[serde(default)]
    pub horizon: usize,
    /// The validation history of the plateau rule.
    #[serde(default)]
    pub plateau: Plateau,
    /// How the run ended, once it has: resuming an ended run trains no further.
    #[serde(default)]
    pub ending: Option<RunEnding>,
    /// Lines written to `metrics.jsonl` when the checkpoint was saved, so that a resume can
    /// tell a log cut short. `None` in checkpoints from before it was recorded.
    #[serde(default)]
    pub metrics_lines: Option<usize>,
}

/// What a checkpoint says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointHeader {
    /// How far the run had come when the checkpoint was written.
    pub progress: Progress,
    /// The model the weights belong to.
    pub model: ModelConfig,
    model_len: u64,
    model_crc: u32,
    optimizer_len: u64,
    optimizer_crc: u32,
}

/// Writes a checkpoint atomically (temporary file in the same directory, then rename), so a
/// crash while saving leaves the previous checkpoint.
pub fn save(
    path: &Path,
    progress: Progress,
    model: &Transformer,
    optimizer: &ModuleOptimizer,
) -> Result<(), TrainError> {
    let record_error = |what: &str, e: burn::store::RecordError| TrainError::Corrupt {
        path: path.to_path_buf(),
        reason: format!("cannot serialise the {what}: {e}"),
    };
    let model_bytes = model
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| record_error("model", e))?;
    let optimizer_bytes = optimizer
        .into_bytes()
        .map_err(|e| record_error("optimizer state", e))?;
    let header = CheckpointHeader {
        progress,
        model: model.config().clone(),
        model_len: model_bytes.len() as u64,
        model_crc: crc32fast::hash(&model_bytes),
        optimizer_len: optimizer_bytes.len() as u64,
        optimizer_crc: crc32fast::hash(&optimizer_bytes),
    };
    let header_json = serde_json::to_vec(&header).expect("the header serialises");

    write_atomic_with(path, |out| {
        out.write_all(MAGIC)?;
        out.write_all(&(header_json.len() as u64).to_le_bytes())?;
        out.write_all(&crc32fast::hash(&header_json).to_le_bytes())?;
        out.write_all(&header_json)?;
        out.write_all(&model_bytes)?;
        out.write_all(&optimizer_bytes)
    })
    .map_err(TrainError::io(path))
}

/// Reads a checkpoint for a run whose model is `expected`, restoring the weights into a model
/// built on `device` and the optimizer state into `optimizer`.
pub fn load(
    path: &Path,
    expected: &ModelConfig,
    device: &Device,
    optimizer: ModuleOptimizer,
) -> Result<(CheckpointHeader, Transformer, ModuleOptimizer), TrainError> {
    let corrupt = |reason: String| TrainError::Corrupt {
        path: path.to_path_buf(),
        reason: format!("corrupt checkpoint: {reason}"),
    };
    let bytes = std::fs::read(path).map_err(TrainError::io(path))?;
    if bytes.starts_with(MAGIC_V1) {
        return Err(corrupt(
            "written by an earlier dpcot (format 1, whose header has no checksum); \
             train the run again from scratch"
                .into(),
        ));
    }
    if bytes.len() < PREAMBLE || &bytes[..8] != MAGIC {
        return Err(corrupt("not a dpcot checkpoint (bad magic)".into()));
    }
    let header_len = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    let header_crc = u32::from_le_bytes(bytes[16..PREAMBLE].try_into().expect("4 bytes"));
    let header_end = usize::try_from(header_len)
        .ok()
        .and_then(|len| PREAMBLE.checked_add(len))
        .filter(|&end| end <= bytes.len())
        .ok_or_else(|| corrupt("truncated header".into()))?;
    let header_bytes = &bytes[PREAMBLE..header_end];
    if crc32fast::hash(header_bytes) != header_crc {
        return Err(corrupt("header checksum mismatch".into()));
    }
    let header: CheckpointHeader = serde_json::from_slice(header_bytes)
        .map_err(|e| corrupt(format!("unreadable header: {e}")))?;
    if &header.model != expected {
        return Err(TrainError::CheckpointMismatch {
            path: path.to_path_buf(),
            reason: format!(
                "it holds the model {}, the run wants {}",
                serde_json::to_string(&header.model).expect("a config serialises"),
                serde_json::to_string(expected).expect("a config serialises")
            ),
        });
    }
    // The lengths are checksummed, but a header from a bug must not wrap around either.
    let ends = (header_end as u64)
        .checked_add(header.model_len)
        .and_then(|model_end| Some((model_end, model_end.checked_add(header.optimizer_len)?)));
    let model_end = match ends {
        Some((model_end, end)) if end == bytes.len() as u64 => model_end as usize,
        _ => {
            return Err(corrupt(format!(
                "{} bytes, the header announces {} + {} + {}",
                bytes.len(),
                header_end,
                header.model_len,
                header.optimizer_len
            )))
        }
    };
    let (model_bytes, optimizer_bytes) = (&bytes[header_end..model_end], &bytes[model_end..]);
    if crc32fast::hash(model_bytes) != header.model_crc
        || crc32fast::hash(optimizer_bytes) != header.optimizer_crc
    {
        return Err(corrupt("checksum mismatch".into()));
    }
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(model_bytes.to_vec()))
        .map_err(|e| corrupt(format!("model record: {e}")))?;
    let model = expected
        .init(device)?
        .try_load_record(record)
        .map_err(|e| corrupt(format!("model record does not fit the model: {e}")))?;
    let optimizer = optimizer
        .from_bytes(Bytes::from_bytes_vec(optimizer_bytes.to_vec()))
        .map_err(|e| corrupt(format!("optimizer record: {e}")))?;
    Ok((header, model, optimizer))
}
