//! The reference benchmark's data files (`dpcot_tasks::reference_format`): reading a data
//! file with or without its answers file (`read_file`, every line through `parse_line`),
//! verifying every line with the task's checker (`verify`, both through `check_file`), and
//! importing the file as a dataset split (`import_split`).
//!
//! Input: one selector byte, then the data file; when the selector's high bit (0x80) is set,
//! the bytes after the first NUL are the answers file (`test_ans.txt`). Bit 0x40 imports the
//! file as the test split instead of the training split; the low six bits choose the task
//! ([`dpcot_fuzz::tasks`]).

#![no_main]

use dpcot_fuzz::{task, write_scratch};
use dpcot_tasks::reference_format::{check_file, import_split};
use dpcot_tasks::Split;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&selector, rest)) = input.split_first() else {
        return;
    };
    let (spec, task) = task(selector & 0x3f);
    let (data, answers) = match rest.iter().position(|&b| b == 0) {
        Some(nul) if selector & 0x80 != 0 => (&rest[..nul], Some(&rest[nul + 1..])),
        _ => (rest, None),
    };
    let data_path = write_scratch("reference-data.txt", data);
    let answers_path = answers.map(|answers| write_scratch("reference-answers.txt", answers));
    let answers_path = answers_path.as_deref();

    // `check_file` reads the file (`read_file`, which parses every line with `parse_line`),
    // then verifies every readable line (`verify`).
    let checked = check_file(task, &data_path, answers_path);
    if let Ok(check) = &checked {
        assert!(check.valid <= check.examples, "{check:?}");
        assert_eq!(check.problems.len(), check.invalid(), "{check:?}");
    }

    let split = if selector & 0x40 == 0 {
        Split::Train
    } else {
        Split::Test
    };
    // An imported split is a whole file of valid lines.
    if let Ok(dataset) = import_split(spec, split, &data_path, answers_path) {
        let check = checked.expect("an imported file checks");
        assert_eq!(dataset.examples.len(), check.valid);
        assert_eq!(check.invalid(), 0);
    }
});
