//! What the command-line tests share: running `dpcot`, reading its output, and comparing
//! results less their wall-clock measurements. (Each test binary uses a part of it.)
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// `dpcot ARGS` run in `dir`, to completion.
pub fn dpcot(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dpcot"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the dpcot binary runs")
}

/// Output bytes as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A record or metrics line with every wall-clock measurement taken out, and the seal over
/// them: what two runs of the same seed must agree on bit for bit.
pub fn without_timing(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|key, _| {
                !(key.ends_with("seconds")
                    || key.ends_with("per_second")
                    || key.ends_with("memory_bytes")
                    || key == "crc32")
            });
            map.values_mut().for_each(without_timing);
        }
        Value::Array(items) => items.iter_mut().for_each(without_timing),
        _ => {}
    }
}
