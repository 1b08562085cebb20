//! What the fuzz targets share: the tasks they drive and scratch files to hand the readers.
//!
//! The readers under test take paths, so each target writes its input to a file first. A fresh
//! temporary directory per execution would cost more than the parsing itself; instead every
//! process owns a few fixed files in the system's temporary directory, named by its process id
//! (libFuzzer's `-fork`/`-jobs` workers are separate processes, so they never share one).

use std::path::PathBuf;
use std::sync::OnceLock;

use dpcot_tasks::{Task, TaskOptions, TaskSpec};

/// The tasks every target chooses from, by the first byte of its input (modulo their number):
/// each of the three tasks at a size of the seed corpora, the local variants, and a larger or
/// otherwise configured instance of each. Seeds in `corpus/` name their task by index here, so
/// the order is part of the corpus format: append, never reorder.
pub fn tasks() -> &'static [(TaskSpec, Task)] {
    static TASKS: OnceLock<Vec<(TaskSpec, Task)>> = OnceLock::new();
    TASKS.get_or_init(|| {
        let options = |f: fn(&mut TaskOptions)| {
            let mut options = TaskOptions::default();
            f(&mut options);
            options
        };
        [
            ("arithmetic", 3, TaskOptions::default()),
            ("arithmetic", 1, TaskOptions::default()),
            ("lis", 6, TaskOptions::default()),
            ("lis", 6, options(|o| o.window = Some(2))),
            ("ed", 4, TaskOptions::default()),
            ("ed", 4, options(|o| o.band = Some(1))),
            ("arithmetic", 6, options(|o| o.modulus = Some(7))),
            ("lis", 12, options(|o| o.range = Some(40))),
            ("ed", 8, options(|o| o.numbers = Some(30))),
            (
                "lis",
                5,
                options(|o| {
                    o.window = Some(2);
                    o.inline_inputs = true;
                }),
            ),
        ]
        .into_iter()
        .map(|(name, size, options)| {
            let spec = TaskSpec::from_name(name, size, &options).expect("a valid task");
            let task = spec.build().expect("a buildable task");
            (spec, task)
        })
        .collect()
    })
}

/// The task chosen by `selector`.
pub fn task(selector: u8) -> &'static (TaskSpec, Task) {
    let tasks = tasks();
    &tasks[usize::from(selector) % tasks.len()]
}

/// This process's scratch file `name` (e.g. `data.txt`), in the temporary directory.
pub fn scratch_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("dpcot-fuzz-{}-{name}", std::process::id()))
}

/// Writes `bytes` to this process's scratch file `name` and returns its path.
pub fn write_scratch(name: &str, bytes: &[u8]) -> PathBuf {
    let path = scratch_path(name);
    std::fs::write(&path, bytes).expect("the temporary directory is writable");
    path
}
