//! The CoT checker's report, and the comparison against a chain that is fully determined by
//! the prompt (LIS and edit distance; arithmetic has its own checker, since several reduction
//! orders are right).

use serde::{Deserialize, Serialize};

use crate::vocab::{TokenId, EOS};

/// What a checker finds in a chain of thought produced for a prompt.
///
/// A chain is a sequence of *steps*: one per DP state (an LIS value, an edit-distance cell,
/// one reduced arithmetic expression), then the final answer as the last step. A step owns its
/// tokens and the separator that ends it (`=`, `,`, `<sep>`, or the final `<eos>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    /// Number of steps of a right chain for this prompt, the answer included.
    pub steps: usize,
    /// The first step that is wrong, if any.
    pub first_wrong: Option<WrongStep>,
    /// Whether the chain parses in the task's format (right shape, whatever the values).
    pub well_formed: bool,
    /// Whether the token just before the first `<eos>` is the right answer — the reference
    /// benchmark's final-answer metric.
    pub answer_correct: bool,
}

impl CheckReport {
    /// Every step right, the answer included.
    pub fn is_correct(&self) -> bool {
        self.first_wrong.is_none()
    }
}

/// The first wrong step of a chain and how it is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrongStep {
    /// Index of the step, `0..steps` (steps past the end are reported at `steps`).
    pub step: usize,
    /// How it is wrong.
    pub kind: WrongKind,
}

/// How a step of a chain of thought is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WrongKind {
    /// The step has the expected form but a wrong value (or, for arithmetic, is not a valid
    /// one-operator reduction of the previous expression).
    WrongValue,
    /// The step cannot be parsed, or a separator is missing or misplaced.
    Malformed,
    /// The chain ends (`<eos>` or no more tokens) before this step is complete.
    EndedEarly,
    /// The chain goes on after its final answer.
    Overlong,
}

impl WrongKind {
    /// The kind's name in metrics files (`wrong_value`, `malformed`, `ended_early`, `overlong`).
    pub fn as_str(self) -> &'static str {
        match self {
            WrongKind::WrongValue => "wrong_value",
            WrongKind::Malformed => "malformed",
            WrongKind::EndedEarly => "ended_early",
            WrongKind::Overlong => "overlong",
        }
    }
}

impl std::fmt::Display for WrongKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WrongKind::WrongValue => "wrong value",
            WrongKind::Malformed => "malformed",
            WrongKind::EndedEarly => "the chain ends before it",
            WrongKind::Overlong => "the chain goes on after its answer",
        })
    }
}

/// `step 3 of 11: wrong value`, counting steps from 1 as a reader does.
impl std::fmt::Display for CheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.first_wrong {
            None if self.answer_correct && self.well_formed => write!(f, "correct"),
            None => write!(f, "every step right but the answer is not"),
            Some(WrongStep { step, kind }) if step >= self.steps => {
                write!(f, "after its {} steps: {kind}", self.steps)
            }
            Some(WrongStep { step, kind }) => {
                write!(f, "step {} of {}: {kind}", step + 1, self.steps)?;
                if kind == WrongKind::WrongValue && !self.well_formed {
                    write!(f, " (and the chain does not parse further on)")?;
                }
                Ok(())
            }
        }
    }
}

/// The completion of a prompt whose chain is unique, with the step each token belongs to.
#[derive(Debug, Clone, Default)]
pub(crate) struct ExpectedChain {
    pub tokens: Vec<TokenId>,
    pub step_of: Vec<usize>,
    /// Whether each token is a value (a DP state or the answer) rather than a separator.
    pub is_value: Vec<bool>,
    steps: usize,
}

impl ExpectedChain {
    pub fn with_capacity(n: usize) -> Self {
        Self {
            tokens: Vec::with_capacity(n),
            step_of: Vec::with_capacity(n),
            is_value: Vec::with_capacity(n),
            steps: 0,
        }
    }

    /// Appends a value token; it opens a new step.
    pub fn value(&mut self, id: TokenId) {
        self.tokens.push(id);
        self.step_of.push(self.steps);
        self.is_value.push(true);
        self.steps += 1;
    }

    /// Appends a value token to the step the last value opened (a second state of one step).
    pub fn value_in_step(&mut self, id: TokenId) {
        debug_assert!(self.steps > 0, "a chain starts with a value");
        self.tokens.push(id);
        self.step_of.push(self.steps - 1);
        self.is_value.push(true);
    }

    /// Appends a separator; it belongs to the step it ends.
    pub fn separator(&mut self, id: TokenId) {
        debug_assert!(self.steps > 0, "a chain starts with a value");
        self.tokens.push(id);
        self.step_of.push(self.steps - 1);
        self.is_value.push(false);
    }

    /// Appends the final answer and the `<eos>` that ends it.
    pub fn answer(&mut self, id: TokenId) {
        self.value(id);
        self.separator(EOS);
    }

    /// The step of each token of a completion of `len` tokens, position by position: this
    /// chain's, and past its end the step an overlong chain is reported at (`steps`).
    pub fn steps_of(&self, len: usize) -> Vec<usize> {
        (0..len)
            .map(|i| self.step_of.get(i).copied().unwrap_or(self.steps))
            .collect()
    }

    /// Compares a produced completion with this chain. `is_value_token` tells which ids are
    /// values (numbers), so that a wrong number is told apart from a broken format.
    pub fn check(
        &self,
        produced: &[TokenId],
        is_value_token: impl Fn(TokenId) -> bool,
    ) -> CheckReport {
        let end = produced.iter().position(|&t| t == EOS);
        let produced_len = end.map_or(produced.len(), |e| e + 1);
        let produced = &produced[..produced_len];

        let answer_correct = match end {
            Some(e) if e > 0 => {
                let answer_at = self.tokens.len() - 2;
                produced[e - 1] == self.tokens[answer_at]
            }
            _ => false,
        };

        let well_formed = produced.len() == self.tokens.len()
            && produced.iter().zip(&self.tokens).zip(&self.is_value).all(
                |((&got, &want), &value)| {
                    if value {
                        is_value_token(got)
                    } else {
                        got == want
                    }
                },
            );

        let mismatch = produced
            .iter()
            .zip(&self.tokens)
            .position(|(got, want)| got != want);
        let first_wrong = match mismatch {
            Some(i) => {
                let got = produced[i];
                let kind = if got == EOS {
                    WrongKind::EndedEarly
                } else if self.tokens[i] == EOS {
                    WrongKind::Overlong
                } else if self.is_value[i] && is_value_token(got) {
                    WrongKind::WrongValue
                } else {
                    WrongKind::Malformed
                };
                Some(WrongStep {
                    step: self.step_of[i],
                    kind,
                })
            }
            None if produced.len() < self.tokens.len() => Some(WrongStep {
                step: self.step_of[produced.len()],
                kind: WrongKind::EndedEarly,
            }),
            // Equal up to the expected `<eos>`: the produced chain was cut at its first `<eos>`.
            None => None,
        };

        CheckReport {
            steps: self.steps,
            first_wrong,
            well_formed,
            answer_correct,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A toy chain over ids: values are 10.., separator 4.
    fn chain() -> ExpectedChain {
        let mut c = ExpectedChain::with_capacity(8);
        c.value(10);
        c.value(11);
        c.separator(4);
        c.value(12);
        c.separator(4);
        c.answer(13);
        c
    }

    fn is_value(t: TokenId) -> bool {
        t >= 10
    }

    #[test]
    fn steps_own_their_terminating_separator() {
        let c = chain();
        assert_eq!(c.step_of, vec![0, 1, 1, 2, 2, 3, 3]);
        assert_eq!(c.steps, 4);
    }

    #[test]
    fn right_chain_and_text_after_eos_is_ignored() {
        let c = chain();
        let mut produced = c.tokens.clone();
        produced.extend([11, 4]);
        let r = c.check(&produced, is_value);
        assert!(r.is_correct() && r.well_formed && r.answer_correct, "{r:?}");
    }

    #[test]
    fn wrong_value_malformed_and_early_end_are_told_apart() {
        let c = chain();
        let r = c.check(&[10, 15, 4, 12, 4, 13, EOS], is_value);
        assert_eq!(
            r.first_wrong,
            Some(WrongStep {
                step: 1,
                kind: WrongKind::WrongValue
            })
        );
        assert!(r.well_formed && r.answer_correct);

        let r = c.check(&[10, 11, 11, 12, 4, 13, EOS], is_value);
        assert_eq!(
            r.first_wrong,
            Some(WrongStep {
                step: 1,
                kind: WrongKind::Malformed
            })
        );
        assert!(!r.well_formed);

        let r = c.check(&[10, 11, 4, 12, EOS], is_value);
        assert_eq!(
            r.first_wrong,
            Some(WrongStep {
                step: 2,
                kind: WrongKind::EndedEarly
            })
        );
        assert!(
            !r.answer_correct,
            "the token before <eos> is a step value, not the answer"
        );

        let r = c.check(&[10, 11, 4], is_value);
        assert_eq!(
            r.first_wrong,
            Some(WrongStep {
                step: 2,
                kind: WrongKind::EndedEarly
            })
        );
    }

    #[test]
    fn overlong_answer_is_not_right() {
        let c = chain();
        let r = c.check(&[10, 11, 4, 12, 4, 13, 13, EOS], is_value);
        assert_eq!(
            r.first_wrong,
            Some(WrongStep {
                step: 3,
                kind: WrongKind::Overlong
            })
        );
        assert!(
            r.answer_correct,
            "the token before <eos> is still the answer"
        );
        assert!(!r.well_formed);
    }

    #[test]
    fn reports_read_as_sentences_not_debug_output() {
        let c = chain();
        let text = |produced: &[TokenId]| c.check(produced, is_value).to_string();
        assert_eq!(
            text(&[10, 15, 4, 12, 4, 13, EOS]),
            "step 2 of 4: wrong value"
        );
        assert_eq!(
            text(&[10, 11, 11, 12, 4, 13, EOS]),
            "step 2 of 4: malformed"
        );
        assert_eq!(text(&[10, 11, 4]), "step 3 of 4: the chain ends before it");
        assert_eq!(
            text(&[10, 11, 4, 12, 4, 13, 13, EOS]),
            "step 4 of 4: the chain goes on after its answer"
        );
        assert_eq!(text(&c.tokens), "correct");
    }
}
