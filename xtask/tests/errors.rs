//! The `cargo xtask` rows of docs/errors.md, run: each fails with a message that contains the
//! row's text, nothing panics, and nothing in the directory it runs in is created or changed.

use std::path::Path;
use std::process::Command;

#[path = "../../crates/dpcot-cli/tests/support/error_table.rs"]
mod error_table;
use error_table::Row;

/// The `cargo xtask` rows of docs/errors.md.
fn rows() -> Vec<Row> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/errors.md");
    let rows = error_table::rows(&path, "cargo xtask");
    assert!(rows.len() >= 8, "only {} xtask rows", rows.len());
    rows
}

/// Every path under `dir` with its contents (empty for a directory), in order.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            let name = path.strip_prefix(dir).unwrap().display().to_string();
            if path.is_dir() {
                files.push((name, Vec::new()));
                pending.push(path);
            } else {
                files.push((name, std::fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

/// Runs `cargo xtask <args>` in `dir`: whether it succeeded, and its stderr.
fn xtask(dir: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Why `row` is not answered as documented in `dir`, if it is not.
fn check(dir: &Path, row: &Row) -> Option<String> {
    let args: Vec<&str> = row.args.iter().map(String::as_str).collect();
    let shown = format!("cargo xtask {}", args.join(" "));
    let before = snapshot(dir);
    let (succeeded, stderr) = xtask(dir, &args);
    if succeeded {
        Some(format!("`{shown}` succeeded"))
    } else if stderr.contains("panicked") {
        Some(format!("`{shown}` panicked:\n{stderr}"))
    } else if !stderr.contains(&row.expected) {
        Some(format!(
            "`{shown}` did not say `{}`:\n{stderr}",
            row.expected
        ))
    } else if snapshot(dir) != before {
        Some(format!("`{shown}` changed its directory"))
    } else {
        None
    }
}

/// A directory like the rows': `notes/` holds a file.
fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("notes")).unwrap();
    std::fs::write(dir.path().join("notes/keep.txt"), "not a Slurm test's\n").unwrap();
    dir
}

#[test]
fn every_documented_bad_xtask_input_gets_its_documented_answer_and_changes_nothing() {
    let dir = workspace();
    let failures: Vec<String> = rows()
        .iter()
        .filter_map(|row| check(dir.path(), row))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("notes/keep.txt")).unwrap(),
        "not a Slurm test's\n"
    );
}

#[test]
fn a_row_that_expects_another_answer_fails() {
    let dir = workspace();
    let wrong = Row {
        args: vec!["fuzz".into(), "--seconds".into(), "0".into()],
        expected: "no fuzz target".into(),
    };
    let failure = check(dir.path(), &wrong).expect("the check accepted another answer");
    assert!(failure.contains("did not say"), "{failure}");
}
