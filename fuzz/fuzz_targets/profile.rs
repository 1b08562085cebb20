//! Experiment profiles (`dpcot_analysis::profile::Profile::load`): TOML, validated. A profile
//! that loads is planned as a sweep plans it: its search groups, and for the first few of them
//! the run configuration of the largest size at the smallest and the largest dimension
//! (`run_config`, which builds the task and the model configuration and validates the run).
//! Input: the file's bytes.

#![no_main]

use dpcot_analysis::profile::Profile;
use dpcot_analysis::results::RunKey;
use dpcot_analysis::sweep::{run_config, search_groups};
use dpcot_fuzz::write_scratch;
use libfuzzer_sys::fuzz_target;

/// Search groups whose runs are configured, per input: a fuzzed profile may ask for millions,
/// and each configuration builds a task.
const MAX_GROUPS: usize = 4;

fuzz_target!(|input: &[u8]| {
    let path = write_scratch("profile.toml", input);
    let Ok(profile) = Profile::load(&path) else {
        return;
    };
    let _ = profile.heads();
    let _ = profile.model_template();
    let Ok(groups) = search_groups(&profile, &[]) else {
        return;
    };
    for group in groups.iter().take(MAX_GROUPS) {
        let dims = &group.sweep.dims;
        let Some(task) = group.chain.last() else {
            continue;
        };
        for &d_model in [dims.first(), dims.last()].into_iter().flatten() {
            let key = RunKey {
                experiment: group.sweep.experiment,
                task: task.clone(),
                model: group.model,
                d_model,
                seed: group.seed,
            };
            let _ = key.id();
            let _ = run_config(&profile, group.sweep, &key);
        }
    }
});
