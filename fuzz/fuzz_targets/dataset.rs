//! dpcot's dataset files (`dpcot_tasks::Dataset`): the JSON header line, then one example per
//! line. Input: the file's bytes, read with `Dataset::read` and, when readable, with
//! `read_expecting` for its own task and split (which must succeed) and for another task's
//! (which must not). A dataset that reads is written and read again: what dpcot writes, it
//! reads.

#![no_main]

use dpcot_fuzz::{scratch_path, tasks, write_scratch};
use dpcot_tasks::{Dataset, Split};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let path = write_scratch("dataset.txt", input);
    let Ok(dataset) = Dataset::read(&path) else {
        return;
    };
    let header = &dataset.header;
    assert_eq!(dataset.examples.len(), header.count);

    let same = Dataset::read_expecting(&path, &header.task, header.split)
        .expect("a readable dataset is what its header says");
    assert_eq!(same.header, dataset.header);
    assert_eq!(same.examples, dataset.examples);
    let other_split = match header.split {
        Split::Train => Split::Test,
        Split::Test => Split::Train,
    };
    assert!(Dataset::read_expecting(&path, &header.task, other_split).is_err());
    if let Some((other, _)) = tasks().iter().find(|(spec, _)| *spec != header.task) {
        assert!(Dataset::read_expecting(&path, other, header.split).is_err());
    }

    let copy = scratch_path("dataset-copy.txt");
    dataset.write(&copy).expect("a read dataset can be written");
    let again = Dataset::read(&copy).expect("a written dataset reads");
    assert_eq!(again.header, dataset.header);
});
