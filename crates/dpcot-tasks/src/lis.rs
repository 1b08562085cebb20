//! Longest increasing subsequence, and its m-local (windowed) variants.
//!
//! Format: `a_1 … a_n <sep> dp_1 … dp_n <sep> max(dp) <eos>`, with
//! dp_i = 1 + max{dp_j : j < i, a_j < a_i} (strict), or 1. With a window m only
//! `i − m ≤ j < i` is considered, so each step reads the last m steps of the chain — and its
//! input a_i, which sits in the prompt about n tokens back.
//!
//! With inline inputs (a window required) every read is local: step i is `a_i dp_i r_i`, where
//! a_i is *given* (copied from the prompt by the task, not predicted: [`DpTask::given`]) and
//! r_i = max(r_{i−1}, dp_i) is the running answer, so the chain is
//! `a_1 … a_n <sep> a_1 dp_1 r_1 … a_n dp_n r_n <sep> r_n <eos>`. dp_i reads a_i one token
//! back and a_j, dp_j (i − m ≤ j < i) at most 3m + 1 tokens back; r_i reads dp_i and r_{i−1};
//! the answer reads r_n. Each token is a function of the 3m + 1 tokens before it: a sliding
//! window of 3m + 1 positions (the one that predicts the token and the 3m before it) serves
//! the whole chain.

use rand::{seq::index::sample, Rng, RngCore};

use crate::check::{CheckReport, ExpectedChain};
use crate::task::{DpTask, Example, TaskSpec};
use crate::vocab::{check_numbers, TokenId, Vocab, EOS_WORD, PAD_WORD, SEP_WORD};
use crate::TaskError;

const SEP: TokenId = 1;
/// Integer k is token k + 3 (after `<pad> <sep> <eos>`).
const NUMBER_OFFSET: TokenId = 3;

/// The LIS task on sequences of `length` numbers from `[length + 1, range − 1]`, optionally
/// m-local (`window`).
#[derive(Debug, Clone)]
pub struct Lis {
    length: usize,
    range: u32,
    window: Option<usize>,
    inline_inputs: bool,
    vocab: Vocab,
}

impl Lis {
    /// The reference uses R = 250 for n ≤ 100; larger n need room for inputs above n.
    pub fn default_range(length: usize) -> u32 {
        (length as u32).saturating_add(150).max(250)
    }

    /// Checks `length >= 1`, `range >= length + 2` and `window >= 1`, and builds the
    /// vocabulary `<pad> <sep> <eos> 0 … range−1`.
    pub fn new(length: usize, range: u32, window: Option<usize>) -> Result<Self, TaskError> {
        if length == 0 {
            return Err(TaskError::invalid("length", length, "must be at least 1"));
        }
        // Inputs come from [n + 1, R − 1] so they never collide with dp values 1..=n.
        if (range as usize) < length + 2 {
            return Err(TaskError::invalid(
                "range",
                range,
                format!(
                    "must be at least length + 2 = {} so inputs fit above the dp values",
                    length + 2
                ),
            ));
        }
        check_numbers("range", range, NUMBER_OFFSET as usize)?;
        if window == Some(0) {
            return Err(TaskError::invalid("window", 0, "must be at least 1"));
        }
        let mut words = vec![
            PAD_WORD.to_string(),
            SEP_WORD.to_string(),
            EOS_WORD.to_string(),
        ];
        words.extend((0..range).map(|k| k.to_string()));
        Ok(Self {
            length,
            range,
            window,
            inline_inputs: false,
            vocab: Vocab::new(words),
        })
    }

    /// The variant whose steps carry their input (module docs); it needs a window, without
    /// which dp_i reads every earlier step however the inputs are placed.
    pub fn with_inline_inputs(mut self, inline_inputs: bool) -> Result<Self, TaskError> {
        if inline_inputs && self.window.is_none() {
            return Err(TaskError::invalid(
                "inline_inputs",
                true,
                "needs a window: without one, each step reads every earlier step",
            ));
        }
        self.inline_inputs = inline_inputs;
        Ok(self)
    }

    fn number(k: u32) -> TokenId {
        k + NUMBER_OFFSET
    }

    fn value(&self, id: TokenId) -> Option<u32> {
        (NUMBER_OFFSET..NUMBER_OFFSET + self.range)
            .contains(&id)
            .then(|| id - NUMBER_OFFSET)
    }

    /// Draws the input: 1–3 planted increasing runs of distinct values whose total length is
    /// uniform in [3, n] (so answers are spread), the other positions uniform.
    pub fn draw_input(&self, rng: &mut dyn RngCore) -> Vec<u32> {
        let n = self.length;
        let low = n as u32 + 1;
        let values = (self.range - low) as usize;
        let mut input: Vec<u32> = (0..n).map(|_| rng.random_range(low..self.range)).collect();

        let max_total = n.min(values);
        let total = rng.random_range(3.min(max_total)..=max_total);
        let runs = rng.random_range(1..=3usize.min(total.max(1)));
        let positions = sample(rng, n, total).into_vec();
        let mut start = 0;
        for r in 0..runs {
            // Split `total` into `runs` non-empty parts.
            let left = total - start;
            let len = if r + 1 == runs {
                left
            } else {
                rng.random_range(1..=left - (runs - r - 1))
            };
            let mut at: Vec<usize> = positions[start..start + len].to_vec();
            at.sort_unstable();
            let mut run: Vec<u32> = sample(rng, values, len)
                .into_iter()
                .map(|v| low + v as u32)
                .collect();
            run.sort_unstable();
            for (&p, &v) in at.iter().zip(&run) {
                input[p] = v;
            }
            start += len;
        }
        input
    }

    /// The reference solver: dp_i for every i.
    pub fn solve(&self, input: &[u32]) -> Vec<u32> {
        let mut dp = vec![1u32; input.len()];
        for i in 0..input.len() {
            let from = self.window.map_or(0, |m| i.saturating_sub(m));
            dp[i] = 1
                + (from..i)
                    .filter(|&j| input[j] < input[i])
                    .map(|j| dp[j])
                    .max()
                    .unwrap_or(0);
        }
        dp
    }

    /// The chain for `input`, whose dp values are `dp`.
    fn chain(&self, input: &[u32], dp: &[u32]) -> ExpectedChain {
        let mut chain = ExpectedChain::with_capacity(3 * dp.len() + 3);
        let mut best = 0;
        for (&a, &d) in input.iter().zip(dp) {
            best = best.max(d);
            if self.inline_inputs {
                chain.value(Self::number(a));
                chain.value_in_step(Self::number(d));
                chain.value_in_step(Self::number(best));
            } else {
                chain.value(Self::number(d));
            }
        }
        chain.separator(SEP);
        chain.answer(Self::number(best));
        chain
    }

    fn parse_prompt(&self, prompt: &[TokenId]) -> Result<Vec<u32>, TaskError> {
        let invalid = |reason: String| TaskError::InvalidPrompt {
            task: self.name(),
            reason,
        };
        let (&last, numbers) = prompt
            .split_last()
            .ok_or_else(|| invalid("empty prompt".into()))?;
        if last != SEP {
            return Err(invalid("the prompt must end with <sep>".into()));
        }
        if numbers.len() != self.length {
            return Err(invalid(format!(
                "{} inputs, expected {}",
                numbers.len(),
                self.length
            )));
        }
        numbers
            .iter()
            .enumerate()
            .map(|(i, &id)| match self.value(id) {
                Some(v) if v > self.length as u32 => Ok(v),
                _ => Err(invalid(format!(
                    "input {i} is `{}`, expected a number in [{}, {}]",
                    self.vocab.word(id),
                    self.length + 1,
                    self.range - 1
                ))),
            })
            .collect()
    }
}

impl DpTask for Lis {
    fn name(&self) -> String {
        match (self.window, self.inline_inputs) {
            (None, _) => format!("lis-{}", self.length),
            (Some(m), false) => format!("lis-{}-window{m}", self.length),
            (Some(m), true) => format!("lis-{}-window{m}-inline", self.length),
        }
    }

    fn spec(&self) -> TaskSpec {
        TaskSpec::Lis {
            length: self.length,
            range: self.range,
            window: self.window,
            inline_inputs: self.inline_inputs,
        }
    }

    fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    fn separator(&self) -> TokenId {
        SEP
    }

    fn max_len(&self) -> usize {
        let per_step = if self.inline_inputs { 3 } else { 1 };
        (per_step + 1) * self.length + 4
    }

    fn generate(&self, rng: &mut dyn RngCore) -> Example {
        let input = self.draw_input(rng);
        let chain = self.chain(&input, &self.solve(&input));
        let mut tokens = Vec::with_capacity(self.max_len());
        tokens.extend(input.iter().map(|&a| Self::number(a)));
        tokens.push(SEP);
        let prompt_len = tokens.len();
        tokens.extend_from_slice(&chain.tokens);
        Example { tokens, prompt_len }
    }

    fn check(&self, prompt: &[TokenId], completion: &[TokenId]) -> Result<CheckReport, TaskError> {
        let input = self.parse_prompt(prompt)?;
        let chain = self.chain(&input, &self.solve(&input));
        Ok(chain.check(completion, |id| self.value(id).is_some()))
    }

    fn steps_of(&self, example: &Example) -> Result<Vec<usize>, TaskError> {
        let input = self.parse_prompt(example.prompt())?;
        Ok(self
            .chain(&input, &self.solve(&input))
            .steps_of(example.completion().len()))
    }

    fn given(&self, prompt: &[TokenId], index: usize) -> Option<TokenId> {
        if self.inline_inputs && index.is_multiple_of(3) && index / 3 < self.length {
            prompt.get(index / 3).copied()
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{WrongKind, WrongStep};
    use rand::SeedableRng;

    fn lis(n: usize) -> Lis {
        Lis::new(n, 250, None).unwrap()
    }

    #[test]
    fn golden_example() {
        // Written by hand from the definition: dp = 1 2 1 3 3, answer 3.
        let t = lis(5);
        let text = "20 30 10 40 31 <sep> 1 2 1 3 3 <sep> 3";
        let ex = t.parse_example(text).unwrap();
        assert_eq!(ex.prompt_len, 6);
        assert_eq!(t.vocab().decode(&ex.tokens), format!("{text} <eos>"));
        let r = t.check(ex.prompt(), ex.completion()).unwrap();
        assert!(r.is_correct() && r.answer_correct && r.well_formed, "{r:?}");
        assert_eq!(r.steps, 6);
        assert_eq!(t.solve(&[20, 30, 10, 40, 31]), vec![1, 2, 1, 3, 3]);
    }

    #[test]
    fn windowed_golden_example() {
        // Window 2: a_4 = 40 may only extend dp_2, dp_3 (30, 10): dp_4 = 3; a_5 = 35 sees
        // dp_3, dp_4 (10, 40): dp_5 = 2. Unwindowed, dp_5 would be 3 (via 20, 30).
        let t = Lis::new(5, 250, Some(2)).unwrap();
        assert_eq!(t.solve(&[20, 30, 10, 40, 35]), vec![1, 2, 1, 3, 2]);
        assert_eq!(lis(5).solve(&[20, 30, 10, 40, 35]), vec![1, 2, 1, 3, 3]);
        let ex = t
            .parse_example("20 30 10 40 35 <sep> 1 2 1 3 2 <sep> 3")
            .unwrap();
        assert!(t.check(ex.prompt(), ex.completion()).unwrap().is_correct());
    }

    #[test]
    fn inline_inputs_golden_example() {
        // The windowed example above, each step carrying its input and the running answer:
        // dp = 1 2 1 3 2, r = 1 2 2 3 3.
        let t = Lis::new(5, 250, Some(2))
            .unwrap()
            .with_inline_inputs(true)
            .unwrap();
        assert_eq!(t.name(), "lis-5-window2-inline");
        let text = "20 30 10 40 35 <sep> 20 1 1 30 2 2 10 1 2 40 3 3 35 2 3 <sep> 3";
        let ex = t.parse_example(text).unwrap();
        assert_eq!(ex.tokens.len(), t.max_len());
        let r = t.check(ex.prompt(), ex.completion()).unwrap();
        assert!(r.is_correct() && r.answer_correct && r.well_formed, "{r:?}");
        assert_eq!(r.steps, 6);
        assert_eq!(
            t.steps_of(&ex).unwrap(),
            [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 4, 5, 5]
        );

        // The inputs are given at completion positions 0, 3, …, 12, and nothing else is.
        for i in 0..ex.completion().len() + 2 {
            let expected = (i % 3 == 0 && i < 15).then(|| ex.completion()[i]);
            assert_eq!(t.given(ex.prompt(), i), expected, "position {i}");
        }
        assert_eq!(
            lis(5).given(ex.prompt(), 0),
            None,
            "plain LIS gives nothing"
        );

        for (wrong, step) in [
            (
                "20 30 10 40 35 <sep> 21 1 1 30 2 2 10 1 2 40 3 3 35 2 3 <sep> 3",
                0,
            ),
            (
                "20 30 10 40 35 <sep> 20 1 1 30 2 2 10 1 1 40 3 3 35 2 3 <sep> 3",
                2,
            ),
        ] {
            let ex = t.parse_example(wrong).unwrap();
            let r = t.check(ex.prompt(), ex.completion()).unwrap();
            assert_eq!(
                r.first_wrong,
                Some(WrongStep {
                    step,
                    kind: WrongKind::WrongValue
                }),
                "{wrong}"
            );
        }
    }

    #[test]
    fn inline_inputs_need_a_window() {
        let e = Lis::new(5, 250, None)
            .unwrap()
            .with_inline_inputs(true)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`inline_inputs`") && e.contains("needs a window"),
            "{e}"
        );
        assert!(Lis::new(5, 250, None)
            .unwrap()
            .with_inline_inputs(false)
            .is_ok());
    }

    #[test]
    fn wrong_dp_value_is_located() {
        let t = lis(5);
        let ex = t
            .parse_example("20 30 10 40 31 <sep> 1 2 1 3 2 <sep> 3")
            .unwrap();
        let r = t.check(ex.prompt(), ex.completion()).unwrap();
        assert_eq!(
            r.first_wrong,
            Some(WrongStep {
                step: 4,
                kind: WrongKind::WrongValue
            })
        );
        assert!(r.answer_correct && r.well_formed);
    }

    #[test]
    fn bad_prompts_are_errors_not_panics() {
        let t = lis(3);
        for text in [
            "20 30 <sep> 1 2 <sep> 2",
            "20 30 2 <sep> 1 2 1 <sep> 2",
            "20 <sep> 30 40",
        ] {
            let ex = t.parse_example(text).unwrap();
            let err = t.check(ex.prompt(), ex.completion()).unwrap_err();
            assert!(
                matches!(err, TaskError::InvalidPrompt { .. }),
                "{text}: {err}"
            );
        }
        assert!(matches!(
            t.parse_example("20 30 40"),
            Err(TaskError::InvalidPrompt { .. })
        ));
    }

    #[test]
    fn invalid_knobs_are_errors() {
        assert!(Lis::new(0, 250, None).is_err());
        assert!(Lis::new(10, 11, None).is_err());
        assert!(Lis::new(10, 250, Some(0)).is_err());
        assert!(Lis::new(10, 12, None).is_ok());
    }

    #[test]
    fn a_range_too_large_for_a_vocabulary_is_an_error_not_an_allocation() {
        let e = Lis::new(5, u32::MAX, None).unwrap_err().to_string();
        assert!(
            e.contains("`range`") && e.contains("past the supported"),
            "{e}"
        );
        assert!(Lis::new(5, (crate::vocab::MAX_VOCAB_SIZE - 3) as u32, None).is_ok());
        assert!(Lis::new(5, (crate::vocab::MAX_VOCAB_SIZE - 2) as u32, None).is_err());
    }

    #[test]
    fn generated_inputs_respect_the_number_range_and_answers_spread() {
        let t = lis(16);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut answers = std::collections::BTreeSet::new();
        for _ in 0..500 {
            let input = t.draw_input(&mut rng);
            assert!(input.iter().all(|&a| (17..250).contains(&a)), "{input:?}");
            answers.insert(*t.solve(&input).iter().max().unwrap());
        }
        assert!(
            answers.len() >= 8,
            "answers should spread over many lengths: {answers:?}"
        );
    }
}
