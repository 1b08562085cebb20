//! Checkpoints (`dpcot_train::checkpoint::load`) for a tiny model (d_model 8, one layer, the
//! seed corpus's real checkpoint).
//!
//! A checkpoint is checksummed throughout (magic, header length, header CRC-32, a JSON header
//! with the lengths and CRC-32s of the two records, then the model and optimizer records in
//! burn's burnpack format), so random changes stop at the first checksum. The input's first
//! byte therefore chooses how much of the checksumming the target repairs before `load` reads
//! the rest of the input as a checkpoint file:
//!
//! - 0: nothing, the bytes as they are: the magic, length and checksum checks;
//! - 1: the header's CRC (and a header length past the end is cut to the end): the header's
//!   JSON, the model comparison and the length arithmetic;
//! - 2: every CRC and the record lengths (the model record's cut to the end of the file, the
//!   optimizer record the rest): burn's parsing of the model and optimizer records and their
//!   fit to the model.

#![no_main]

use std::sync::OnceLock;

use burn::optim::AdamWConfig;
use burn::tensor::Device;
use dpcot_fuzz::write_scratch;
use dpcot_model::ModelConfig;
use dpcot_train::checkpoint;
use dpcot_train::Backend;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// The seed checkpoint's model (`dpcot train --task arithmetic --size 1 --d-model 8
/// --n-layers 1 --n-heads 1`), as a run resuming it expects.
const MODEL: &str = r#"{"vocab_size":21,"max_len":6,"d_model":8,"n_layers":1,"n_heads":1,
    "dropout":0.1,"attention":{"kind":"softmax"}}"#;

/// Magic, header length (u64), header CRC-32 (u32).
const PREAMBLE: usize = 8 + 8 + 4;

fn expected() -> &'static (ModelConfig, Device) {
    static EXPECTED: OnceLock<(ModelConfig, Device)> = OnceLock::new();
    EXPECTED.get_or_init(|| {
        let model = serde_json::from_str(MODEL).expect("a model configuration");
        let device = Backend::Flex
            .device()
            .expect("the flex backend is compiled in");
        (model, device)
    })
}

/// The header's bounds in `file`, its announced length cut to the end of the file.
fn header_range(file: &[u8]) -> Option<std::ops::Range<usize>> {
    let announced = u64::from_le_bytes(file.get(8..16)?.try_into().ok()?);
    let available = file.len().checked_sub(PREAMBLE)? as u64;
    Some(PREAMBLE..PREAMBLE + announced.min(available) as usize)
}

/// Sets the header length and CRC of `file` to those of its (cut) header.
fn repair_header(file: &mut [u8]) {
    let Some(header) = header_range(file) else {
        return;
    };
    let crc = crc32fast::hash(&file[header.clone()]);
    file[8..16].copy_from_slice(&(header.len() as u64).to_le_bytes());
    file[16..PREAMBLE].copy_from_slice(&crc.to_le_bytes());
}

/// Sets the record lengths and CRCs in the header of `file` to those of the records (see the
/// module documentation), then the header's length and CRC. A header that is not a JSON
/// object gets only its length and CRC repaired.
fn repair_all(file: Vec<u8>) -> Vec<u8> {
    let Some(header) = header_range(&file) else {
        return file;
    };
    let Ok(Value::Object(mut fields)) = serde_json::from_slice::<Value>(&file[header.clone()])
    else {
        let mut file = file;
        repair_header(&mut file);
        return file;
    };
    let records = &file[header.end..];
    let announced = fields.get("model_len").and_then(Value::as_u64).unwrap_or(0);
    let (model, optimizer) = records.split_at(announced.min(records.len() as u64) as usize);
    for (record, len_key, crc_key) in [
        (model, "model_len", "model_crc"),
        (optimizer, "optimizer_len", "optimizer_crc"),
    ] {
        fields.insert(len_key.into(), record.len().into());
        fields.insert(crc_key.into(), crc32fast::hash(record).into());
    }
    let header_json = serde_json::to_vec(&fields).expect("JSON values serialise");
    let mut repaired = Vec::with_capacity(file.len() + 32);
    repaired.extend_from_slice(&file[..8]);
    repaired.extend_from_slice(&(header_json.len() as u64).to_le_bytes());
    repaired.extend_from_slice(&crc32fast::hash(&header_json).to_le_bytes());
    repaired.extend_from_slice(&header_json);
    repaired.extend_from_slice(records);
    repaired
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let mut file = rest.to_vec();
    match mode % 3 {
        0 => {}
        1 => repair_header(&mut file),
        _ => file = repair_all(file),
    }
    let path = write_scratch("checkpoint.bin", &file);
    let (model, device) = expected();
    if let Ok((header, _, _)) = checkpoint::load(&path, model, device, AdamWConfig::new().init()) {
        assert_eq!(&header.model, model);
    }
});
