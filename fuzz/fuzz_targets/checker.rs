//! The CoT checker (`DpTask::check`, `check_sequence`, `steps_of`) on arbitrary token id
//! sequences, ids outside the vocabulary included, for every task of [`dpcot_fuzz::tasks`]:
//! the three tasks at two sizes each and the local variants (LIS `window`, ED `band`).
//!
//! Input: a selector byte, then tokens, one byte each (the id itself), or `0xff` followed by
//! a little-endian `u32` id, so that any id can occur. The selector's low bits choose the task;
//! its high bit whether the tokens are a whole sequence, split at the first separator as a
//! model's output is (the seeds: real examples), or a completion for a prompt that the task
//! generates from a seed taken from the tokens' hash, so that the checker's comparison against
//! the expected chain is reached for any prompt of the task.

#![no_main]

use std::hash::{DefaultHasher, Hash, Hasher};

use dpcot_fuzz::task;
use dpcot_tasks::{DpTask, Example, TokenId, WrongKind};
use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;

/// The token ids of an input; see the module documentation.
fn decode(mut bytes: &[u8]) -> Vec<TokenId> {
    let mut ids = Vec::with_capacity(bytes.len());
    while let Some((&byte, rest)) = bytes.split_first() {
        bytes = rest;
        if byte != 0xff {
            ids.push(TokenId::from(byte));
        } else if let Some((wide, rest)) = bytes.split_first_chunk::<4>() {
            ids.push(TokenId::from_le_bytes(*wide));
            bytes = rest;
        }
    }
    ids
}

fuzz_target!(|input: &[u8]| {
    let Some((&selector, rest)) = input.split_first() else {
        return;
    };
    let (_, task) = task(selector & 0x7f);
    let tokens = decode(rest);

    let (prompt, completion) = if selector & 0x80 == 0 {
        let Ok(prompt_len) = task.prompt_len(&tokens) else {
            assert!(task.check_sequence(&tokens).is_err());
            return;
        };
        let (prompt, completion) = tokens.split_at(prompt_len);
        (prompt.to_vec(), completion.to_vec())
    } else {
        let mut hasher = DefaultHasher::new();
        tokens.hash(&mut hasher);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(hasher.finish());
        (task.generate(&mut rng).prompt().to_vec(), tokens)
    };

    let Ok(report) = task.check(&prompt, &completion) else {
        return;
    };
    if let Some(wrong) = report.first_wrong {
        assert!(wrong.step <= report.steps, "{report:?}");
        if wrong.kind != WrongKind::Overlong {
            assert!(wrong.step < report.steps, "{report:?}");
        }
    }
    let _ = report.to_string();

    let mut whole = prompt.clone();
    whole.extend_from_slice(&completion);
    let example = Example {
        prompt_len: prompt.len(),
        tokens: whole,
    };
    // Evaluation looks up the step of any completion token of any example, right or not.
    if let Ok(steps) = task.steps_of(&example) {
        assert_eq!(steps.len(), completion.len(), "{report:?}");
        assert!(steps.windows(2).all(|w| w[0] <= w[1]), "{steps:?}");
    }
    // Training and decoding ask which completion tokens are given, for any prompt: a given
    // token is one of the prompt's.
    for index in 0..completion.len() + 2 {
        if let Some(id) = task.given(&prompt, index) {
            assert!(prompt.contains(&id), "given {id} at {index}");
        }
    }
});
