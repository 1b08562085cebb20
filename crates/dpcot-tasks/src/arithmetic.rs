//! Arithmetic over Z_p, reduced one operator per step.
//!
//! An expression is built from one random number by replacing, `operators` times, a random
//! number x by `a op b` that evaluates to x, with parentheses only where they are needed. The
//! chain of thought is that history reversed: `expr = expr' = … = answer <eos>`. Since the
//! number to expand is random, so is the reduction order; the checker therefore accepts any
//! valid one-operator reduction at every step, not one fixed chain.

use rand::{Rng, RngCore};

use crate::check::{CheckReport, WrongKind, WrongStep};
use crate::task::{DpTask, Example, TaskSpec};
use crate::vocab::{check_numbers, TokenId, Vocab, EOS, EOS_WORD, PAD_WORD};
use crate::TaskError;

const PLUS: TokenId = 3;
const MINUS: TokenId = 4;
const TIMES: TokenId = 5;
const DIVIDE: TokenId = 6;
const OPEN: TokenId = 7;
const CLOSE: TokenId = 8;
const EQUALS: TokenId = 9;
const NUMBER_OFFSET: TokenId = 10;
const OPERATORS: [TokenId; 4] = [PLUS, MINUS, TIMES, DIVIDE];

/// The arithmetic task: expressions with `operators` operators over Z_`modulus`.
#[derive(Debug, Clone)]
pub struct Arithmetic {
    operators: usize,
    modulus: u32,
    vocab: Vocab,
}

impl Arithmetic {
    /// The reference benchmark's modulus.
    pub const DEFAULT_MODULUS: u32 = 11;

    /// Checks `operators >= 1` and that `modulus` is prime, and builds the reference's
    /// vocabulary `<pad> <cls> <eos> + - * / ( ) = 0 … modulus−1`.
    pub fn new(operators: usize, modulus: u32) -> Result<Self, TaskError> {
        if operators == 0 {
            return Err(TaskError::invalid(
                "operators",
                operators,
                "must be at least 1",
            ));
        }
        check_numbers("modulus", modulus, NUMBER_OFFSET as usize)?;
        if !is_prime(modulus) {
            return Err(TaskError::invalid(
                "modulus",
                modulus,
                "must be prime, so that every non-zero number has an inverse",
            ));
        }
        // Reference layout: <pad> <cls> <eos> + - * / ( ) = then the numbers. <cls> is unused
        // but kept so that ids match the reference's files and checkpoints.
        let mut words: Vec<String> = [
            PAD_WORD, "<cls>", EOS_WORD, "+", "-", "*", "/", "(", ")", "=",
        ]
        .map(String::from)
        .to_vec();
        words.extend((0..modulus).map(|k| k.to_string()));
        Ok(Self {
            operators,
            modulus,
            vocab: Vocab::new(words),
        })
    }

    /// Number of operators of a full-size expression.
    pub fn operators(&self) -> usize {
        self.operators
    }

    /// Number of operators of the expression a prompt (or any token sequence) holds.
    pub fn operators_in(tokens: &[TokenId]) -> usize {
        tokens.iter().filter(|t| OPERATORS.contains(t)).count()
    }

    /// Draws an example with `operators` operators (used to mix smaller sizes into a training set).
    pub fn generate_with(&self, operators: usize, rng: &mut dyn RngCore) -> Example {
        let history = self.expansion_history(operators, rng);
        let mut tokens = Vec::with_capacity(max_len(operators));
        let mut prompt_len = 0;
        for (i, expression) in history.iter().rev().enumerate() {
            if i > 0 {
                tokens.push(EQUALS);
                if i == 1 {
                    prompt_len = tokens.len();
                }
            }
            tokens.extend_from_slice(expression);
        }
        tokens.push(EOS);
        Example { tokens, prompt_len }
    }

    /// The expressions after 0, 1, …, `operators` expansions.
    fn expansion_history(&self, operators: usize, rng: &mut dyn RngCore) -> Vec<Vec<TokenId>> {
        let p = self.modulus;
        let mut expression = vec![self.number(rng.random_range(0..p))];
        let mut history = vec![expression.clone()];
        for _ in 0..operators {
            let numbers: Vec<usize> = (0..expression.len())
                .filter(|&i| self.is_number(expression[i]))
                .collect();
            let at = numbers[rng.random_range(0..numbers.len())];
            let x = expression[at] - NUMBER_OFFSET;
            let op = OPERATORS[rng.random_range(0..OPERATORS.len())];
            let (a, b) = self.operands(op, x, rng);
            let before = at.checked_sub(1).map(|i| expression[i]);
            let after = expression.get(at + 1).copied();
            let mut replacement = vec![self.number(a), op, self.number(b)];
            if needs_parentheses(before, op, after) {
                replacement.insert(0, OPEN);
                replacement.push(CLOSE);
            }
            expression.splice(at..=at, replacement);
            history.push(expression.clone());
        }
        history
    }

    /// Draws a, b with `a op b = x` in Z_p (never dividing by zero).
    fn operands(&self, op: TokenId, x: u32, rng: &mut dyn RngCore) -> (u32, u32) {
        let p = self.modulus;
        let nonzero = |rng: &mut dyn RngCore| rng.random_range(1..p);
        match op {
            PLUS => {
                let a = rng.random_range(0..p);
                (a, (x + p - a) % p)
            }
            MINUS => {
                let b = rng.random_range(0..p);
                ((x + b) % p, b)
            }
            TIMES if x == 0 => {
                let other = rng.random_range(0..p);
                if rng.random_bool(0.5) {
                    (0, other)
                } else {
                    (other, 0)
                }
            }
            TIMES => {
                let a = nonzero(rng);
                (a, mul(x, inverse(a, p), p))
            }
            DIVIDE => {
                let b = nonzero(rng);
                (mul(x, b, p), b)
            }
            _ => unreachable!("not an operator: {op}"),
        }
    }

    fn number(&self, k: u32) -> TokenId {
        NUMBER_OFFSET + k
    }

    fn is_number(&self, id: TokenId) -> bool {
        (NUMBER_OFFSET..NUMBER_OFFSET + self.modulus).contains(&id)
    }

    fn apply(&self, op: TokenId, a: u32, b: u32) -> Option<u32> {
        let p = self.modulus;
        match op {
            PLUS => Some((a + b) % p),
            MINUS => Some((a + p - b) % p),
            TIMES => Some(mul(a, b, p)),
            DIVIDE => (b != 0).then(|| mul(a, inverse(b, p), p)),
            _ => None,
        }
    }

    /// Every expression obtained from `expression` by evaluating one operator whose operands
    /// are both numbers, where that is a valid step: the exact converse of the expansion rule.
    pub fn reductions(&self, expression: &[TokenId]) -> Vec<Vec<TokenId>> {
        let mut out = Vec::new();
        for i in 0..expression.len().saturating_sub(2) {
            let (a, op, b) = (expression[i], expression[i + 1], expression[i + 2]);
            if !(self.is_number(a) && OPERATORS.contains(&op) && self.is_number(b)) {
                continue;
            }
            let Some(value) = self.apply(op, a - NUMBER_OFFSET, b - NUMBER_OFFSET) else {
                continue;
            };
            let before = i.checked_sub(1).map(|j| expression[j]);
            let after = expression.get(i + 3).copied();
            let span = if before == Some(OPEN) && after == Some(CLOSE) {
                i - 1..i + 4
            } else if !needs_parentheses(before, op, after) {
                i..i + 3
            } else {
                continue;
            };
            let mut reduced = expression[..span.start].to_vec();
            reduced.push(self.number(value));
            reduced.extend_from_slice(&expression[span.end..]);
            out.push(reduced);
        }
        out
    }

    /// Value of an expression by the usual precedence (left-associative, `* /` before `+ -`);
    /// `None` if it does not parse or divides by zero.
    pub fn evaluate(&self, expression: &[TokenId]) -> Option<u32> {
        let mut parser = Parser {
            task: self,
            tokens: expression,
            at: 0,
        };
        let value = parser.sum()?;
        (parser.at == expression.len()).then_some(value)
    }

    fn invalid_prompt(&self, reason: impl Into<String>) -> TaskError {
        TaskError::InvalidPrompt {
            task: self.name(),
            reason: reason.into(),
        }
    }
}

/// The reference benchmark's rule: parentheses around `a op b` replacing x always after `/`;
/// for `+ -` also next to `* /` and after `-`; never on the first expansion (no neighbours).
fn needs_parentheses(before: Option<TokenId>, op: TokenId, after: Option<TokenId>) -> bool {
    let additive = op == PLUS || op == MINUS;
    let multiplicative = |t: Option<TokenId>| t == Some(TIMES) || t == Some(DIVIDE);
    before == Some(DIVIDE)
        || (additive && (multiplicative(before) || multiplicative(after) || before == Some(MINUS)))
}

/// Longest sequence with `<eos>` for N operators: after the first expansion, each adds at most
/// four tokens (`op`, a number and a pair of parentheses), so the k-th expression has at most
/// 4k − 1 tokens; the N + 1 expressions are joined by N `=` and end with `<eos>`.
fn max_len(operators: usize) -> usize {
    2 * operators * operators + 2 * operators + 2
}

struct Parser<'a> {
    task: &'a Arithmetic,
    tokens: &'a [TokenId],
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<TokenId> {
        self.tokens.get(self.at).copied()
    }

    fn sum(&mut self) -> Option<u32> {
        let mut value = self.product()?;
        while let Some(op @ (PLUS | MINUS)) = self.peek() {
            self.at += 1;
            let rhs = self.product()?;
            value = self.task.apply(op, value, rhs)?;
        }
        Some(value)
    }

    fn product(&mut self) -> Option<u32> {
        let mut value = self.atom()?;
        while let Some(op @ (TIMES | DIVIDE)) = self.peek() {
            self.at += 1;
            let rhs = self.atom()?;
            value = self.task.apply(op, value, rhs)?;
        }
        Some(value)
    }

    fn atom(&mut self) -> Option<u32> {
        let token = self.peek()?;
        self.at += 1;
        if token == OPEN {
            let value = self.sum()?;
            (self.peek() == Some(CLOSE)).then(|| self.at += 1)?;
            Some(value)
        } else {
            self.task.is_number(token).then(|| token - NUMBER_OFFSET)
        }
    }
}

impl DpTask for Arithmetic {
    fn name(&self) -> String {
        match self.modulus {
            Self::DEFAULT_MODULUS => format!("arithmetic-{}", self.operators),
            p => format!("arithmetic-{}-mod{p}", self.operators),
        }
    }

    fn spec(&self) -> TaskSpec {
        TaskSpec::Arithmetic {
            operators: self.operators,
            modulus: self.modulus,
        }
    }

    fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    fn separator(&self) -> TokenId {
        EQUALS
    }

    fn max_len(&self) -> usize {
        max_len(self.operators)
    }

    fn generate(&self, rng: &mut dyn RngCore) -> Example {
        self.generate_with(self.operators, rng)
    }

    fn check(&self, prompt: &[TokenId], completion: &[TokenId]) -> Result<CheckReport, TaskError> {
        let Some((&EQUALS, expression)) = prompt.split_last() else {
            return Err(self.invalid_prompt("the prompt must end with `=`"));
        };
        let answer = self.evaluate(expression).ok_or_else(|| {
            self.invalid_prompt("the expression does not parse or divides by zero")
        })?;
        let operators = expression.iter().filter(|t| OPERATORS.contains(t)).count();
        if operators == 0 || operators > self.operators {
            return Err(self.invalid_prompt(format!(
                "{operators} operators, expected 1 to {}",
                self.operators
            )));
        }
        // A right chain has one step per operator; the last step is the answer.
        let steps = operators;

        let end = completion.iter().position(|&t| t == EOS);
        let answer_correct =
            matches!(end, Some(e) if e > 0 && completion[e - 1] == self.number(answer));
        let body = &completion[..end.unwrap_or(completion.len())];
        let segments: Vec<&[TokenId]> = body.split(|&t| t == EQUALS).collect();

        let mut well_formed = end.is_some() && segments.iter().all(|s| self.evaluate(s).is_some());
        let mut first_wrong = None;
        let mut previous = expression.to_vec();
        for (step, segment) in segments.iter().enumerate() {
            let is_last = step + 1 == segments.len();
            if step >= steps {
                // The answer step should have ended the chain.
                first_wrong = Some(WrongStep {
                    step: steps - 1,
                    kind: WrongKind::Overlong,
                });
                break;
            }
            if is_last && end.is_none() {
                // Generation stopped inside this step.
                first_wrong = Some(WrongStep {
                    step,
                    kind: WrongKind::EndedEarly,
                });
                break;
            }
            if self.evaluate(segment).is_none() {
                first_wrong = Some(WrongStep {
                    step,
                    kind: WrongKind::Malformed,
                });
                break;
            }
            if !self.reductions(&previous).iter().any(|r| r == segment) {
                first_wrong = Some(WrongStep {
                    step,
                    kind: WrongKind::WrongValue,
                });
                break;
            }
            if is_last && step + 1 < steps {
                // `<eos>` stands where this step's `=` belongs.
                first_wrong = Some(WrongStep {
                    step,
                    kind: WrongKind::EndedEarly,
                });
                break;
            }
            previous = segment.to_vec();
        }
        if segments.len() != steps {
            well_formed = false;
        }
        Ok(CheckReport {
            steps,
            first_wrong,
            well_formed,
            answer_correct,
        })
    }

    fn steps_of(&self, example: &Example) -> Result<Vec<usize>, TaskError> {
        let mut step = 0;
        Ok(example
            .completion()
            .iter()
            .map(|&t| {
                let this = step;
                if t == EQUALS {
                    step += 1;
                }
                this
            })
            .collect())
    }
}

fn mul(a: u32, b: u32, p: u32) -> u32 {
    ((a as u64 * b as u64) % p as u64) as u32
}

/// a^(p−2) mod p, the inverse of a ≠ 0 in Z_p for prime p.
fn inverse(a: u32, p: u32) -> u32 {
    let (mut base, mut exp, mut acc) = (a % p, p - 2, 1);
    while exp > 0 {
        if exp & 1 == 1 {
            acc = mul(acc, base, p);
        }
        base = mul(base, base, p);
        exp >>= 1;
    }
    acc
}

fn is_prime(n: u32) -> bool {
    let n = u64::from(n);
    n >= 2
        && (2..)
            .take_while(|d| d * d <= n)
            .all(|d| !n.is_multiple_of(d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn task(n: usize) -> Arithmetic {
        Arithmetic::new(n, 11).unwrap()
    }

    #[test]
    fn reference_example_is_a_valid_chain() {
        let t = task(4);
        let ex = t
            .parse_example("8 / ( 5 * 3 ) * 10 * 3 = 8 / 4 * 10 * 3 = 8 / 4 * 8 = 2 * 8 = 5")
            .unwrap();
        let r = t.check(ex.prompt(), ex.completion()).unwrap();
        assert!(r.is_correct() && r.answer_correct && r.well_formed, "{r:?}");
        assert_eq!(r.steps, 4);
        assert_eq!(t.steps_of(&ex).unwrap().last(), Some(&3));
    }

    #[test]
    fn golden_values_written_by_hand() {
        let t = task(3);
        let eval = |s: &str| t.evaluate(&t.vocab().encode("a", s).unwrap());
        assert_eq!(eval("2 + 3 * 4"), Some(3)); // 14 mod 11
        assert_eq!(eval("( 2 + 3 ) * 4"), Some(9)); // 20 mod 11
        assert_eq!(eval("1 / 2"), Some(6)); // 2 * 6 = 12 = 1
        assert_eq!(eval("7 - 9 - 1"), Some(8)); // left-associative: -3 = 8
        assert_eq!(eval("3 / ( 2 - 2 )"), None);
        assert_eq!(eval("3 + ( 2"), None);
    }

    #[test]
    fn a_reduction_that_breaks_precedence_is_rejected_even_with_the_right_value() {
        let t = task(2);
        let enc = |s: &str| t.vocab().encode("a", s).unwrap();
        // 2 * 3 + 4 = 10. Reducing "3 + 4" first is invalid, although "2 * 7" = 14 = 3 is not
        // even the value; "0 + 10" below has the right value but skips an operator.
        let reductions = t.reductions(&enc("2 * 3 + 4"));
        assert_eq!(reductions, vec![enc("6 + 4")]);
        let ex = t.parse_example("2 * 3 + 4 = 2 * 7 = 3").unwrap();
        let r = t.check(ex.prompt(), ex.completion()).unwrap();
        assert_eq!(
            r.first_wrong,
            Some(WrongStep {
                step: 0,
                kind: WrongKind::WrongValue
            })
        );
        // 8 - 3 - 2 = 3: reducing "3 - 2" first would be 8 - 1 = 7, not allowed after `-`.
        assert_eq!(t.reductions(&enc("8 - 3 - 2")), vec![enc("5 - 2")]);
        // a * b / c: both orders are right in a field, and both are expansions the rule allows.
        assert_eq!(t.reductions(&enc("2 * 3 / 4")).len(), 2);
        // Parenthesised: the parentheses go with the operator.
        assert_eq!(t.reductions(&enc("9 / ( 2 * 3 )")), vec![enc("9 / 6")]);
    }

    #[test]
    fn early_end_overlong_and_malformed_steps() {
        let t = task(2);
        let check = |s: &str| {
            let ex = t.parse_example(s).unwrap();
            t.check(ex.prompt(), ex.completion()).unwrap()
        };
        let r = check("2 * 3 + 4 = 6 + 4");
        assert_eq!(
            r.first_wrong,
            Some(WrongStep {
                step: 0,
                kind: WrongKind::EndedEarly
            })
        );
        assert!(!r.answer_correct && !r.well_formed);
        let r = check("2 * 3 + 4 = 6 + 4 = 10 = 10");
        assert_eq!(
            r.first_wrong,
            Some(WrongStep {
                step: 1,
                kind: WrongKind::Overlong
            })
        );
        assert!(
            r.answer_correct,
            "the token before <eos> is still the right answer"
        );
        let r = check("2 * 3 + 4 = 6 + + 4 = 10");
        assert_eq!(
            r.first_wrong,
            Some(WrongStep {
                step: 0,
                kind: WrongKind::Malformed
            })
        );
        // No <eos> at all: the chain was cut inside its last step.
        let ex = t.parse_example("2 * 3 + 4 = 6 + 4 = 10").unwrap();
        let r = t.check(ex.prompt(), &ex.completion()[..4]).unwrap();
        assert_eq!(
            r.first_wrong,
            Some(WrongStep {
                step: 1,
                kind: WrongKind::EndedEarly
            })
        );
    }

    #[test]
    fn bad_prompts_are_errors() {
        let t = task(2);
        for s in ["2 * ( 3 = 6", "3 / 0 = 5", "2 + 3 * 4 - 1 = 0", "4 = 4"] {
            let ex = t.parse_example(s).unwrap();
            assert!(
                matches!(
                    t.check(ex.prompt(), ex.completion()),
                    Err(TaskError::InvalidPrompt { .. })
                ),
                "{s}"
            );
        }
    }

    #[test]
    fn invalid_knobs_are_errors() {
        assert!(Arithmetic::new(0, 11).is_err());
        assert!(Arithmetic::new(3, 12).is_err());
        assert!(Arithmetic::new(3, 1).is_err());
        assert!(Arithmetic::new(3, 13).is_ok());
    }

    #[test]
    fn primality_holds_up_to_the_largest_u32() {
        // d * d overflowed u32 for moduli near 2^32 before the test was done in u64.
        assert!(is_prime(4_294_967_291));
        assert!(!is_prime(u32::MAX));
        assert!(is_prime(65_521) && !is_prime(65_535));
    }

    #[test]
    fn a_modulus_too_large_for_a_vocabulary_is_an_error_not_an_allocation() {
        for modulus in [4_294_967_291, 2_147_483_647, 65_537] {
            let e = Arithmetic::new(2, modulus).unwrap_err().to_string();
            assert!(
                e.contains("`modulus`") && e.contains("past the supported"),
                "{e}"
            );
        }
        // The largest prime that fits: 10 fixed words + 65 521 numbers.
        assert_eq!(Arithmetic::new(1, 65_521).unwrap().vocab.len(), 65_531);
    }

    #[test]
    fn inverse_is_an_inverse() {
        for p in [2, 3, 11, 13, 101] {
            for a in 1..p {
                assert_eq!(mul(a, inverse(a, p), p), 1, "{a} mod {p}");
            }
        }
    }

    #[test]
    fn generated_lengths_stay_within_max_len() {
        let t = task(6);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let longest = (0..20_000)
            .map(|_| t.generate(&mut rng).tokens.len())
            .max()
            .unwrap();
        assert!(longest <= t.max_len());
        assert_eq!(t.max_len(), 86);
    }
}
