//! Kill at any moment: a sweep and its workers are killed with SIGKILL at seeded random points
//! and restarted each time, until at least [`KILLS`] kills were made; every sweep that then
//! completes must have recorded exactly the runs of an uninterrupted sweep, with the same
//! numbers and the same metrics logs (no run lost, repeated or logged twice).

#![cfg(target_os = "linux")]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use serde_json::Value;

mod common;
use common::without_timing;

/// Kill points the test makes at least.
const KILLS: usize = 20;
/// Seed of the kill schedule.
const SEED: u64 = 15;

/// A profile small enough to finish in seconds, with an evaluation and a checkpoint every 25
/// steps so that most kills land between a run's checkpoints.
const PROFILE: &str = r#"
name = "faults"
threshold = 0.3
seeds = [1]
models = ["standard", "sparse", "linear"]

[model]
n_layers = 1
n_heads = 2
dropout = 0.1

[train]
steps = 400
batch_size = 16
learning_rate = 3e-3
eval_every = 25
eval_examples = 32

[data]
train_examples = 256
validation_examples = 32
test_examples = 32

[[sweeps]]
task = "lis"
sizes = [3, 4, 5]
dims = [8, 16, 32]
range = 16
"#;

fn sweep(profile: &Path, results: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dpcot"));
    command
        .args([
            "--quiet",
            "sweep",
            "--full-grid",
            "--jobs",
            "2",
            "--profile",
        ])
        .arg(profile)
        .arg("--results")
        .arg(results)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

fn json(text: &str) -> Value {
    let mut value: Value = serde_json::from_str(text).unwrap();
    without_timing(&mut value);
    value
}

/// Every record and every run's metrics log of a results directory, timing taken out.
fn outcome(results: &Path) -> BTreeMap<String, Vec<Value>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(results.join("records")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            files.insert(
                format!("records/{name}"),
                vec![json(&std::fs::read_to_string(&path).unwrap())],
            );
        }
    }
    for entry in std::fs::read_dir(results.join("runs")).unwrap() {
        let run = entry.unwrap().path();
        let name = run.file_name().unwrap().to_string_lossy().into_owned();
        let log = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
        files.insert(
            format!("runs/{name}/metrics.jsonl"),
            log.lines().map(json).collect(),
        );
    }
    files
}

/// The processes whose parent is `pid` (the sweep's workers).
fn children(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`; comm may hold spaces, so read after its closing paren.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            found.push(child);
        }
    }
    found
}

fn kill(pid: u32) {
    // SAFETY: kill(2) with a pid this test started (or its child) and a valid signal.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
}

/// Waits for `child` at most `limit`; `None` if it is still running.
fn wait_for(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if started.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_sweep_killed_at_random_moments_records_what_an_uninterrupted_one_does() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("faults.toml");
    std::fs::write(&profile, PROFILE).unwrap();
    let started = Instant::now();

    let reference_dir = dir.path().join("reference");
    let status = sweep(&profile, &reference_dir).status().unwrap();
    assert!(status.success(), "the uninterrupted sweep failed");
    let reference = outcome(&reference_dir);
    assert!(reference.len() >= 8, "{} files", reference.len());
    let reference_time = started.elapsed();

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(SEED);
    let (mut kills, mut worker_kills, mut episodes) = (0, 0, 0);
    while kills < KILLS {
        // An episode: a fresh results directory, killed and restarted until a sweep completes.
        episodes += 1;
        let results = dir.path().join(format!("episode-{episodes}"));
        loop {
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "still not done after 10 minutes ({kills} kills)"
            );
            let mut child = sweep(&profile, &results).spawn().unwrap();
            let delay = Duration::from_millis(rng.random_range(200..2500));
            if let Some(status) = wait_for(&mut child, delay) {
                // Finished (or failed) before its kill point.
                assert!(status.success(), "a restarted sweep failed: {status}");
                break;
            }
            let workers = children(child.id());
            if kills % 2 == 1 && !workers.is_empty() {
                // A worker alone: its sweep reports the run failed and stops by itself.
                kill(workers[rng.random_range(0..workers.len())]);
                worker_kills += 1;
                if wait_for(&mut child, Duration::from_secs(120)).is_none() {
                    panic!("the sweep did not stop after its worker was killed");
                }
            } else {
                kill(child.id());
                child.wait().unwrap();
            }
            kills += 1;
        }
        let got = outcome(&results);
        let names = |o: &BTreeMap<String, Vec<Value>>| o.keys().cloned().collect::<Vec<_>>();
        assert_eq!(
            names(&got),
            names(&reference),
            "episode {episodes}: other files"
        );
        for (name, values) in &reference {
            assert_eq!(&got[name], values, "episode {episodes}: {name} differs");
        }
    }
    eprintln!(
        "{kills} kills ({worker_kills} of a worker) over {episodes} episodes, every one \
         survived: records and metrics identical to the uninterrupted sweep ({:.0}s), in {:.0}s",
        reference_time.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn records_that_differ_are_told_apart() {
    // The negative control of the comparison above: timing goes, every other number stays.
    let a = json(
        r#"{"summary": {"steps": 100, "train_seconds": 1.5, "eval": {"headline": 0.5, "decode_tokens_per_second": 9.0}}}"#,
    );
    let b = json(
        r#"{"summary": {"steps": 100, "train_seconds": 2.5, "eval": {"headline": 0.5, "decode_tokens_per_second": 3.0}}}"#,
    );
    let c = json(
        r#"{"summary": {"steps": 100, "train_seconds": 1.5, "eval": {"headline": 0.55, "decode_tokens_per_second": 9.0}}}"#,
    );
    assert_eq!(a, b);
    assert_ne!(a, c);
}
