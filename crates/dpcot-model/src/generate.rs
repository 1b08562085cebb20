//! Greedy decoding of chains of thought.

use burn::tensor::{Device, Int, Tensor};

use crate::transformer::token_tensor;
use crate::{ModelError, Transformer};

/// Tokens the task gives rather than the model predicting: `given(row, index)` is the token at
/// position `index` of row `row`'s completion if it is given (`DpTask::given` of
/// dpcot-tasks), else `None`.
pub type Given<'a> = &'a dyn Fn(usize, usize) -> Option<u32>;

/// Greedily continues `prompts` (all of the same length) until every sequence has produced
/// `eos` or reached `max_len` tokens in all, using the incremental forms (KV cache, block
/// cache or recurrent state): one token of work per step, never the whole prefix again.
///
/// Returns, per prompt, the generated tokens (up to and including the first `eos`).
pub fn greedy_decode(
    model: &Transformer,
    prompts: &[Vec<u32>],
    eos: u32,
    max_len: usize,
    device: &Device,
) -> Result<Vec<Vec<u32>>, ModelError> {
    greedy_decode_given(model, prompts, &|_, _| None, eos, max_len, device)
}

/// [`greedy_decode`], writing the `given` tokens where there are some instead of the model's
/// choice (and feeding them to the model as its next input).
pub fn greedy_decode_given(
    model: &Transformer,
    prompts: &[Vec<u32>],
    given: Given<'_>,
    eos: u32,
    max_len: usize,
    device: &Device,
) -> Result<Vec<Vec<u32>>, ModelError> {
    let Some(prompt_len) = check_prompts(model, prompts, max_len)? else {
        return Ok(Vec::new());
    };
    let batch = prompts.len();
    let mut state = model.new_decode_state(batch, device);
    let mut logits = None;
    for t in 0..prompt_len {
        let column: Vec<u32> = prompts.iter().map(|p| p[t]).collect();
        logits = Some(model.forward_step(token_tensor(&column, batch, 1, device), &mut state)?);
    }
    let mut outputs = vec![Vec::new(); batch];
    let mut done = vec![false; batch];
    let budget = max_len - prompt_len;
    for step in 0..budget {
        let mut next = argmax_rows(logits.take().expect("the prompt was fed"));
        give(&mut next, step, given);
        append_until_eos(&next, &mut outputs, &mut done, eos);
        if step + 1 == budget || done.iter().all(|&d| d) {
            break;
        }
        logits = Some(model.forward_step(token_tensor(&next, batch, 1, device), &mut state)?);
    }
    Ok(outputs)
}

/// The same greedy decoding by re-running the full parallel forward on the whole prefix for
/// every new token: O(L) forwards per sequence. The reference that [`greedy_decode`] is
/// tested against; far too slow for evaluation.
pub fn greedy_decode_full(
    model: &Transformer,
    prompts: &[Vec<u32>],
    eos: u32,
    max_len: usize,
    device: &Device,
) -> Result<Vec<Vec<u32>>, ModelError> {
    greedy_decode_full_given(model, prompts, &|_, _| None, eos, max_len, device)
}

/// [`greedy_decode_full`] with `given` tokens, the reference for [`greedy_decode_given`].
pub fn greedy_decode_full_given(
    model: &Transformer,
    prompts: &[Vec<u32>],
    given: Given<'_>,
    eos: u32,
    max_len: usize,
    device: &Device,
) -> Result<Vec<Vec<u32>>, ModelError> {
    let Some(prompt_len) = check_prompts(model, prompts, max_len)? else {
        return Ok(Vec::new());
    };
    let batch = prompts.len();
    let mut sequences: Vec<Vec<u32>> = prompts.to_vec();
    let mut outputs = vec![Vec::new(); batch];
    let mut done = vec![false; batch];
    while sequences[0].len() < max_len && !done.iter().all(|&d| d) {
        let len = sequences[0].len();
        let flat: Vec<u32> = sequences.iter().flatten().copied().collect();
        let logits = model.forward(token_tensor(&flat, batch, len, device));
        let [_, _, vocab] = logits.dims();
        let last = logits
            .slice([0..batch, len - 1..len, 0..vocab])
            .reshape([batch, vocab]);
        let mut next = argmax_rows(last);
        give(&mut next, len - prompt_len, given);
        append_until_eos(&next, &mut outputs, &mut done, eos);
        for (sequence, &token) in sequences.iter_mut().zip(&next) {
            sequence.push(token);
        }
    }
    Ok(outputs)
}

/// Replaces each row's `next` token, at completion position `index`, by the given one if any.
fn give(next: &mut [u32], index: usize, given: Given<'_>) {
    for (row, token) in next.iter_mut().enumerate() {
        if let Some(id) = given(row, index) {
            *token = id;
        }
    }
}

/// Appends each row's next token to its output, until the row has produced `eos`.
fn append_until_eos(next: &[u32], outputs: &mut [Vec<u32>], done: &mut [bool], eos: u32) {
    for ((&token, output), done) in next.iter().zip(outputs).zip(done) {
        if !*done {
            output.push(token);
            *done = token == eos;
        }
    }
}

/// Checks that the prompts share one length that fits; `None` if there are none.
fn check_prompts(
    model: &Transformer,
    prompts: &[Vec<u32>],
    max_len: usize,
) -> Result<Option<usize>, ModelError> {
    let Some(first) = prompts.first() else {
        return Ok(None);
    };
    let vocab_size = model.config().vocab_size;
    for prompt in prompts {
        if prompt.len() != first.len() {
            return Err(ModelError::MixedPromptLengths {
                first: first.len(),
                other: prompt.len(),
            });
        }
        if let Some(&id) = prompt.iter().find(|&&t| t as usize >= vocab_size) {
            return Err(ModelError::TokenOutOfRange { id, vocab_size });
        }
    }
    if first.is_empty() {
        return Err(ModelError::EmptyPrompt);
    }
    if first.len() >= max_len {
        return Err(ModelError::PromptTooLong {
            len: first.len(),
            max_len,
        });
    }
    Ok(Some(first.len()))
}

/// Index of the largest logit of every row.
///
/// - logits: `[batch, vocab]`
pub fn argmax_rows(logits: Tensor<2>) -> Vec<u32> {
    let ids: Tensor<2, Int> = logits.argmax(1);
    ids.into_data().iter::<i64>().map(|t| t as u32).collect()
}
