//! Corruption: every kind of file dpcot reads back, truncated, emptied, with bytes flipped or
//! with a line appended, then read by the command that reads it. Each case must end in one of
//! two ways, never a panic:
//!
//! - an error (exit status 1) that names the damaged file; or
//! - success with results equal to those of the undamaged directory (the damage was repaired
//!   by retraining, or did not matter, as a last metrics line cut short by a kill does not).
//!
//! And whatever the outcome, no other run's files change.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::{dpcot, text, without_timing};

use rand::{Rng, SeedableRng};
use serde_json::Value;

const PROFILE: &str = r#"
name = "corruption"
threshold = 0.3
seeds = [1]
models = ["standard", "linear"]

[model]
n_layers = 1
n_heads = 2
dropout = 0.0

[train]
steps = 100
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
sizes = [3, 4]
dims = [8, 16]
range = 16
"#;

/// The run whose files are damaged (it exists in every sweep of [`PROFILE`]).
const VICTIM: &str = "general-lis-3-standard-d16-s1";

/// `dpcot --quiet ARGS` in `dir`.
fn quiet(dir: &Path, args: &[&str]) -> Output {
    dpcot(&[&["--quiet"], args].concat(), dir)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Every file under `dir`, by path relative to it, with its bytes.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut found = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).unwrap().flatten() {
            if entry.file_type().unwrap().is_dir() {
                pending.push(entry.path());
            } else {
                let relative = entry.path().strip_prefix(dir).unwrap().to_path_buf();
                found.insert(relative, std::fs::read(entry.path()).unwrap());
            }
        }
    }
    found
}

/// The records of a results directory, wall-clock measurements and the seal taken out.
fn records(results: &Path) -> BTreeMap<String, Value> {
    let mut found = BTreeMap::new();
    for entry in std::fs::read_dir(results.join("records"))
        .unwrap()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".json") {
            let mut value: Value =
                serde_json::from_slice(&std::fs::read(entry.path()).unwrap()).unwrap();
            without_timing(&mut value);
            found.insert(name, value);
        }
    }
    found
}

#[derive(Debug, Clone, Copy)]
enum Damage {
    Truncated,
    Emptied,
    /// One byte flipped (all bits), at a seeded position.
    Flipped(u64),
    LineAppended,
    /// One ASCII digit changed to another, at a seeded one of the file's digits: the damage
    /// that keeps a JSON file parsing.
    DigitChanged(u64),
}

impl Damage {
    fn apply(self, path: &Path) {
        let mut bytes = std::fs::read(path).unwrap();
        match self {
            Damage::Truncated => bytes.truncate(bytes.len() / 2),
            Damage::Emptied => bytes.clear(),
            Damage::Flipped(seed) => {
                let at = rand_chacha::ChaCha8Rng::seed_from_u64(seed).random_range(0..bytes.len());
                bytes[at] ^= 0xff;
            }
            Damage::LineAppended => bytes.extend_from_slice(b"{\"step\": 1, oops\n"),
            Damage::DigitChanged(seed) => {
                let digits: Vec<usize> = (0..bytes.len())
                    .filter(|&i| bytes[i].is_ascii_digit())
                    .collect();
                let at = digits
                    [rand_chacha::ChaCha8Rng::seed_from_u64(seed).random_range(0..digits.len())];
                bytes[at] = b'0' + (bytes[at] - b'0' + 1) % 10;
            }
        }
        std::fs::write(path, bytes).unwrap();
    }
}

/// A kind of file, and how the results directory must be prepared for the sweep to read it.
struct Kind {
    /// The file, relative to the results directory.
    file: String,
    /// Files removed first so that the sweep reads `file` (a run without its record is
    /// finished or resumed from its own directory).
    removed: Vec<String>,
}

fn kinds() -> Vec<Kind> {
    let run = |name: &str| format!("runs/{VICTIM}/{name}");
    let record = format!("records/{VICTIM}.json");
    vec![
        Kind {
            file: record.clone(),
            removed: vec![],
        },
        Kind {
            file: "profile.toml".into(),
            removed: vec![],
        },
        Kind {
            file: run("summary.json"),
            removed: vec![record.clone()],
        },
        Kind {
            file: run("config.json"),
            removed: vec![record.clone()],
        },
        Kind {
            file: run("checkpoint.bin"),
            removed: vec![record.clone(), run("summary.json")],
        },
        Kind {
            file: run("metrics.jsonl"),
            removed: vec![record, run("summary.json")],
        },
    ]
}

fn damages() -> Vec<Damage> {
    let mut all = vec![Damage::Truncated, Damage::Emptied, Damage::LineAppended];
    all.extend((1..=4).map(Damage::Flipped));
    all.extend((1..=4).map(Damage::DigitChanged));
    all
}

#[test]
fn every_damaged_file_is_an_error_naming_it_or_is_repaired_and_no_other_run_changes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("profile.toml"), PROFILE).unwrap();
    let sweep = ["sweep", "--profile", "profile.toml", "--results"];
    let out = quiet(d, &[&sweep[..], &["base"]].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let base = d.join("base");
    let expected = records(&base);
    assert!(
        expected.contains_key(&format!("{VICTIM}.json")),
        "{expected:?}"
    );

    let (mut errors, mut repaired, mut problems) = (0, 0, Vec::new());
    for kind in kinds() {
        for damage in damages() {
            let case = d.join("case");
            let _ = std::fs::remove_dir_all(&case);
            copy_dir(&base, &case);
            for removed in &kind.removed {
                std::fs::remove_file(case.join(removed)).unwrap();
            }
            damage.apply(&case.join(&kind.file));
            // Every other run's files, as they are before the command.
            let others = |dir: &Path| -> BTreeMap<PathBuf, Vec<u8>> {
                files(dir)
                    .into_iter()
                    .filter(|(p, _)| {
                        let p = p.to_string_lossy();
                        (p.starts_with("records/") || p.starts_with("runs/")) && !p.contains(VICTIM)
                    })
                    .collect()
            };
            let before = others(&case);

            let what = format!("{} {damage:?}", kind.file);
            let out = quiet(d, &[&sweep[..], &["case"]].concat());
            let stderr = text(&out.stderr);
            let name = Path::new(&kind.file).file_name().unwrap().to_string_lossy();
            if stderr.contains("panicked") || !matches!(out.status.code(), Some(0 | 1)) {
                problems.push(format!("{what}: crashed ({})\n{stderr}", out.status));
            } else if !out.status.success() {
                if stderr.contains(name.as_ref()) {
                    errors += 1;
                } else {
                    problems.push(format!("{what}: the error does not name {name}\n{stderr}"));
                }
            } else if records(&case) == expected {
                eprintln!("repaired: {what}");
                repaired += 1;
            } else {
                problems.push(format!("{what}: succeeded with other results"));
            }
            if others(&case) != before {
                problems.push(format!("{what}: another run's files changed"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    eprintln!(
        "{} cases: {errors} refused with an error naming the file, {repaired} repaired to the \
         undamaged results, 0 panics, 0 other runs changed",
        errors + repaired
    );
}

#[test]
fn every_damaged_dataset_file_is_refused_naming_it_before_a_run_starts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let generate = [
        "generate", "--task", "lis", "--size", "4", "--train", "80", "--test", "20", "--out",
        "base",
    ];
    assert!(quiet(d, &generate).status.success());
    let mut cases = 0;
    for file in ["train.txt", "test.txt"] {
        for damage in damages() {
            let data = d.join("data");
            let _ = std::fs::remove_dir_all(&data);
            copy_dir(&d.join("base"), &data);
            damage.apply(&data.join(file));
            let out = quiet(
                d,
                &[
                    "train",
                    "--task",
                    "lis",
                    "--size",
                    "4",
                    "--data",
                    "data",
                    "--validation-examples",
                    "10",
                    "--d-model",
                    "8",
                    "--steps",
                    "2",
                    "--out",
                    "run",
                ],
            );
            let stderr = text(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{file} {damage:?}: {stderr}");
            assert!(stderr.contains(file), "{file} {damage:?}: {stderr}");
            assert!(
                !d.join("run").exists(),
                "{file} {damage:?}: a run was started"
            );
            cases += 1;
        }
    }
    eprintln!("{cases} damaged datasets, each refused naming its file");
}

/// A full disk while a checkpoint is written (a file-size limit, `ulimit -f`, on the worker):
/// the run stops with an error naming the file, and the previous checkpoint is left whole.
#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_during_a_checkpoint_leaves_the_previous_one() {
    use std::os::unix::process::CommandExt;

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let train = [
        "train",
        "--task",
        "lis",
        "--size",
        "4",
        "--d-model",
        "16",
        "--steps",
        "40",
        "--eval-every",
        "10",
        "--validation-examples",
        "16",
        "--test-examples",
        "16",
        "--out",
        "run",
    ];
    let out = quiet(d, &[&train[..], &["--halt-after", "20"]].concat());
    assert!(
        text(&out.stderr).contains("halted after step 20"),
        "{}",
        text(&out.stderr)
    );
    let checkpoint = d.join("run/checkpoint.bin");
    let good = std::fs::read(&checkpoint).unwrap();
    // Half the checkpoint: the next one cannot fit (its size varies by a few bytes with the
    // digits of its header), while the metrics log, written too, stays well below.
    let limit = good.len() as u64 / 2;
    let metrics = std::fs::metadata(d.join("run/metrics.jsonl"))
        .unwrap()
        .len();
    assert!(metrics * 4 < limit, "metrics {metrics} B, limit {limit} B");

    let mut resume = Command::new(env!("CARGO_BIN_EXE_dpcot"));
    resume
        .args(["--quiet"])
        .args(train)
        .arg("--resume")
        .current_dir(d);
    // SAFETY: between fork and exec, only setrlimit and signal, both async-signal-safe.
    unsafe {
        resume.pre_exec(move || {
            let rlimit = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &rlimit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // A write past the limit then fails with EFBIG instead of killing the process.
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    let out = resume.output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("checkpoint.bin") && stderr.contains("File too large"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(&checkpoint).unwrap(),
        good,
        "the checkpoint changed"
    );
    let names: Vec<String> = std::fs::read_dir(d.join("run"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with(".tmp")), "{names:?}");

    // With room again, the run resumes from it and finishes.
    let out = quiet(d, &[&train[..], &["--resume"]].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
}
