//! The rows of docs/errors.md's tables, for the tests that run them: `crates/dpcot-cli/tests/errors.rs`
//! (the `dpcot` rows) and `xtask/tests/errors.rs` (the `cargo xtask` rows), which includes this
//! file by path.

use std::path::Path;

/// One row of a table: the arguments after the program, and what the message must contain.
#[derive(Debug)]
pub struct Row {
    pub args: Vec<String>,
    pub expected: String,
}

/// A markdown code span's content: `` `a` `` or ``` `` a ` b `` ```.
pub fn code_span(cell: &str) -> Option<&str> {
    let cell = cell.trim();
    let ticks = cell.len() - cell.trim_start_matches('`').len();
    if ticks == 0 || !cell.ends_with(&"`".repeat(ticks)) || cell.len() < 2 * ticks {
        return None;
    }
    let inner = &cell[ticks..cell.len() - ticks];
    Some(if ticks > 1 { inner.trim() } else { inner })
}

/// The rows of `errors_md` whose command starts with `program` (`dpcot`, `cargo xtask`): the
/// command's words after the program, and the last cell's text.
pub fn rows(errors_md: &Path, program: &str) -> Vec<Row> {
    let doc = std::fs::read_to_string(errors_md).unwrap();
    let start = format!("| `{program} ");
    doc.lines()
        .filter(|line| line.starts_with(&start))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split(" | ").collect();
            assert_eq!(
                cells.len(),
                3,
                "{}: a row has three cells: {line}",
                errors_md.display()
            );
            let command = code_span(cells[0]).unwrap_or_else(|| panic!("no command: {line}"));
            let expected = code_span(cells[2]).unwrap_or_else(|| panic!("no message: {line}"));
            Row {
                args: command
                    .split_whitespace()
                    .skip(program.split_whitespace().count())
                    .map(String::from)
                    .collect(),
                expected: expected.to_string(),
            }
        })
        .collect()
}
