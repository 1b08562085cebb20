//! Checkpoints: model weights, optimizer state and the step, in one file written atomically.
//!
//! Layout: the magic `DPCOTCK2`, a little-endian u64 header length, the header's CRC-32 (u32,
//! little-endian), a JSON header ([`CheckpointHeader`]), the model record, the optimizer record
//! (both burnpack bytes). The header holds the lengths and CRC-32s of both records, so every
//! byte of the file is covered by a checksum and a truncated or damaged file (an edited step
//! included) is refused before burn parses anything. Batch order and dropout masks are functions of
//! (seed, step), so no RNG state is needed to resume bit for bit.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::ModuleOptimizer;
use burn::store::{burn_pack, ModuleRecord};
use burn::tensor::{Bytes, DType, Device, Tensor};
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
    progress: &Progress,
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
        progress: progress.clone(),
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
    let model = expected.init(device)?;
    check_model_record(model_bytes, &model)
        .map_err(|reason| corrupt(format!("model record: {reason}")))?;
    let model = model
        .try_load_record(record)
        .map_err(|e| corrupt(format!("model record does not fit the model: {e}")))?;
    // The loaded model's parameters: loading gives them the record's ids, which the optimizer
    // record refers to (so the fresh model's, read above for the data types, would not do).
    check_optimizer_record(optimizer_bytes, &model)
        .map_err(|reason| corrupt(format!("optimizer record: {reason}")))?;
    let optimizer = optimizer
        .from_bytes(Bytes::from_bytes_vec(optimizer_bytes.to_vec()))
        .map_err(|e| corrupt(format!("optimizer record: {e}")))?;
    Ok((header, model, optimizer))
}

/// The float parameters of a module: id → (shape, data type).
#[derive(Default)]
struct Parameters(HashMap<u64, (Vec<usize>, DType)>);

impl ModuleVisitor for Parameters {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val();
        self.0
            .insert(param.id.val(), (value.dims().to_vec(), value.dtype()));
    }
}

/// Refuses a model record holding a tensor of a data type that none of `model`'s parameters
/// has, which burn 0.22's `try_load_record` would panic on ("Expected float dtype, got U32")
/// instead of returning an error. dpcot writes none, so such a record is damaged, or forged with
/// matching checksums. Shapes and names are checked by `try_load_record` itself.
fn check_model_record(bytes: &[u8], model: &Transformer) -> Result<(), String> {
    let mut parameters = Parameters::default();
    model.visit(&mut parameters);
    let dtypes: Vec<DType> = parameters.0.values().map(|(_, dtype)| *dtype).collect();
    let reader = burn_pack::Reader::from_bytes(Bytes::from_bytes_vec(bytes.to_vec()))
        .map_err(|e| e.to_string())?;
    for tensor in reader.into_tensors().map_err(|e| e.to_string())? {
        if !dtypes.contains(&tensor.dtype) {
            return Err(format!(
                "the tensor `{}` is {:?}, which no parameter of the model is",
                tensor.name, tensor.dtype
            ));
        }
    }
    Ok(())
}

/// Refuses an optimizer record that does not fit `model`, which burn-optim 0.22 would panic on
/// in `ModuleOptimizer::load_record` instead of returning an error: a state tensor without the
/// id of its parameter, or of another rank than its parameter (from the tensor's shape or the
/// record's `<id>.__rank` scalar, or found under the name of another parameter). dpcot writes
/// none of these, so such a record is damaged, or forged with matching checksums. Every state
/// tensor must belong to a parameter of the model, be named after it and have its shape and
/// data type (AdamW's moments do). Reading the burnpack index copies no tensor data.
fn check_optimizer_record(bytes: &[u8], model: &Transformer) -> Result<(), String> {
    let mut parameters = Parameters::default();
    model.visit(&mut parameters);
    let parameter = |id: u64, what: &str| {
        parameters
            .0
            .get(&id)
            .ok_or_else(|| format!("{what} belongs to no parameter of the model"))
    };
    let reader = burn_pack::Reader::from_bytes(Bytes::from_bytes_vec(bytes.to_vec()))
        .map_err(|e| e.to_string())?;
    for (key, value) in reader.scalars() {
        let Some(id) = key.strip_suffix(".__rank") else {
            continue;
        };
        let what = format!("the rank `{key}`");
        let (shape, _) = parameter(
            id.parse()
                .map_err(|_| format!("{what} names no parameter"))?,
            &what,
        )?;
        if usize::try_from(*value).ok() != Some(shape.len()) {
            return Err(format!(
                "{what} is not the parameter's rank {}",
                shape.len()
            ));
        }
    }
    for tensor in reader.into_tensors().map_err(|e| e.to_string())? {
        let what = format!("the state tensor `{}`", tensor.name);
        let id = tensor
            .param_id
            .ok_or_else(|| format!("{what} names no parameter"))?;
        // burn finds a parameter's state by name, `<id>.<field>`, and its rank by the id.
        if tensor.name.split_once('.').map(|(prefix, _)| prefix) != Some(&id.to_string()) {
            return Err(format!("{what} is not named after its parameter {id}"));
        }
        let (shape, dtype) = parameter(id, &what)?;
        if tensor.shape.as_slice() != shape.as_slice() || tensor.dtype != *dtype {
            return Err(format!(
                "{what} is {:?} {:?}, its parameter {dtype:?} {shape:?}",
                tensor.dtype,
                tensor.shape.as_slice()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use burn::optim::AdamWConfig;
    use burn::tensor::TensorData;
    use dpcot_model::dpcot_attention::AttentionKind;

    use super::*;
    use crate::Backend;

    /// A checkpoint file of `model` with the given optimizer record and correct checksums.
    fn forge(path: &Path, model: &Transformer, optimizer_bytes: &[u8]) {
        let model_bytes = model.clone().into_record().into_bytes().unwrap();
        forge_records(path, model, &model_bytes, optimizer_bytes);
    }

    /// A checkpoint file for `model` with the given records and correct checksums.
    fn forge_records(path: &Path, model: &Transformer, model_bytes: &[u8], optimizer_bytes: &[u8]) {
        let header = CheckpointHeader {
            progress: Progress::default(),
            model: model.config().clone(),
            model_len: model_bytes.len() as u64,
            model_crc: crc32fast::hash(model_bytes),
            optimizer_len: optimizer_bytes.len() as u64,
            optimizer_crc: crc32fast::hash(optimizer_bytes),
        };
        let header = serde_json::to_vec(&header).unwrap();
        let mut file = MAGIC.to_vec();
        file.extend_from_slice(&(header.len() as u64).to_le_bytes());
        file.extend_from_slice(&crc32fast::hash(&header).to_le_bytes());
        file.extend_from_slice(&header);
        file.extend_from_slice(model_bytes);
        file.extend_from_slice(optimizer_bytes);
        std::fs::write(path, file).unwrap();
    }

    /// Found by the `checkpoint` fuzz target (fuzz/): optimizer records with checksums intact
    /// that made burn panic instead of `load` returning an error — a state tensor without a
    /// parameter id ("Optimizer record tensors should carry a parameter id"), and a rank scalar
    /// other than its tensors' rank ("Given dimensions differ from the tensor rank").
    #[test]
    fn an_optimizer_record_that_does_not_fit_the_model_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint.bin");
        let device = Backend::default_compiled().unwrap().device().unwrap();
        let config = ModelConfig::new(5, 4, 8, AttentionKind::Softmax).with_n_layers(1);
        let model = config.init(&device).unwrap();
        let load_error = |record: &[u8]| {
            forge(&path, &model, record);
            load(&path, &config, &device, AdamWConfig::new().init())
                .map(|_| ())
                .unwrap_err()
        };

        // A fresh optimizer's (empty) state loads.
        let empty = AdamWConfig::new().init().into_bytes().unwrap();
        forge(&path, &model, &empty);
        load(&path, &config, &device, AdamWConfig::new().init()).unwrap();

        let state = |param_id: Option<u64>, shape: &[usize]| {
            let values = vec![0.0f32; shape.iter().product()];
            let (bytes, shape, dtype) = TensorData::new(values, shape.to_vec()).into_parts();
            let name = format!("{}.moment_1", param_id.unwrap_or_default());
            burn_pack::Tensor::new(name, dtype, shape, param_id, bytes)
        };
        let orphan = burn_pack::Writer::new(vec![state(None, &[4])])
            .into_bytes()
            .unwrap();
        let err = load_error(&orphan);
        assert!(matches!(err, TrainError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("names no parameter"), "{err}");

        let mut parameters = Parameters::default();
        model.visit(&mut parameters);
        let (&id, (shape, _)) = parameters
            .0
            .iter()
            .find(|(_, (s, _))| s.len() == 2)
            .unwrap();
        let fits = burn_pack::Writer::new(vec![state(Some(id), shape)]);
        forge(&path, &model, &fits.into_bytes().unwrap());
        load(&path, &config, &device, AdamWConfig::new().init()).unwrap();

        let wrong_rank = burn_pack::Writer::new(vec![state(Some(id), shape)])
            .with_scalar(&format!("{id}.__rank"), burn_pack::Scalar::from(1usize));
        let err = load_error(&wrong_rank.into_bytes().unwrap());
        assert!(
            err.to_string().contains("not the parameter's rank"),
            "{err}"
        );

        let other = parameters.0.keys().find(|&&other| other != id).unwrap();
        let mut misnamed = state(Some(id), shape);
        misnamed.name = format!("{other}.moment_1");
        let misnamed = burn_pack::Writer::new(vec![misnamed]);
        let err = load_error(&misnamed.into_bytes().unwrap());
        assert!(err.to_string().contains("not named after"), "{err}");

        let wrong_shape = burn_pack::Writer::new(vec![state(Some(id), &[shape[0] * shape[1]])]);
        let err = load_error(&wrong_shape.into_bytes().unwrap());
        assert!(err.to_string().contains("its parameter"), "{err}");
    }

    /// Found by the `checkpoint` fuzz target: a model record whose checksums are intact and one
    /// of whose tensors is `U32` made burn panic in `try_load_record` ("Expected float dtype,
    /// got U32") instead of `load` returning an error.
    #[test]
    fn a_model_record_of_another_data_type_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint.bin");
        let device = Backend::default_compiled().unwrap().device().unwrap();
        let config = ModelConfig::new(5, 4, 8, AttentionKind::Softmax).with_n_layers(1);
        let model = config.init(&device).unwrap();
        let optimizer = AdamWConfig::new().init().into_bytes().unwrap();
        let record = model.clone().into_record().into_bytes().unwrap();
        let reader = burn_pack::Reader::from_bytes(Bytes::from_bytes_vec(record.to_vec())).unwrap();
        let metadata = reader.metadata().clone();
        let scalars = reader.scalars().clone();
        let retyped: Vec<burn_pack::Tensor> = reader
            .into_tensors()
            .unwrap()
            .into_iter()
            .enumerate()
            .map(|(i, tensor)| {
                let (name, dtype, shape, id, bytes) = tensor.into_parts().unwrap();
                // f32 and u32 take 4 bytes each: only the type changes.
                let dtype = if i == 0 { DType::U32 } else { dtype };
                burn_pack::Tensor::new(name, dtype, shape, id, bytes)
            })
            .collect();
        let mut writer = burn_pack::Writer::new(retyped);
        for (key, value) in &metadata {
            writer = writer.with_metadata(key, value);
        }
        for (key, value) in scalars {
            writer = writer.with_scalar(&key, value);
        }
        forge_records(&path, &model, &writer.into_bytes().unwrap(), &optimizer);
        let err = load(&path, &config, &device, AdamWConfig::new().init())
            .map(|_| ())
            .unwrap_err();
        assert!(
            matches!(err, TrainError::Corrupt { .. }) && err.to_string().contains("U32"),
            "{err}"
        );

        // The record as written loads.
        forge_records(&path, &model, &record, &optimizer);
        load(&path, &config, &device, AdamWConfig::new().init()).unwrap();
    }
}
