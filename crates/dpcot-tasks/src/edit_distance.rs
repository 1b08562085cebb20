//! Weighted edit distance, and its banded (local) variant.
//!
//! Format: `s1 | s2 <sep> D[1][1..m] , D[2][1..m] , … D[n][1..m] , <sep> D[n][m] <eos>`, with
//! `D[i][j] = min(D[i−1][j] + 2, D[i][j−1] + 2, D[i−1][j−1] + (0 if equal else 3))` and the
//! reference benchmark's unit-cost boundary `D[i][0] = i`, `D[0][j] = j`. With a band w only cells
//! with |i − j| ≤ w exist (a row lists just those), so each cell reads cells at most 2w + 2
//! tokens back in the chain.

use rand::{seq::index::sample, Rng, RngCore};

use crate::check::{CheckReport, ExpectedChain};
use crate::task::{DpTask, Example, TaskSpec, MAX_SEQUENCE_LEN};
use crate::vocab::{check_numbers, TokenId, Vocab, EOS_WORD, PAD_WORD, SEP_WORD};
use crate::TaskError;

const SEP: TokenId = 1;
const BAR: TokenId = 3;
const COMMA: TokenId = 4;
const LETTER_OFFSET: TokenId = 5;
const LETTERS: u32 = 26;
const NUMBER_OFFSET: TokenId = LETTER_OFFSET + LETTERS;
/// The reference vocabulary has the integers 0..59.
const REFERENCE_NUMBERS: u32 = 60;
const MIN_ALPHABET: usize = 3;
const MAX_ALPHABET: usize = 10;
const INSERT_DELETE: u32 = 2;
const SUBSTITUTE: u32 = 3;
/// Probability that s2 is an edited copy of s1 rather than an independent string.
const EDITED_SHARE: f64 = 0.6;

/// The edit-distance task on string pairs of about `length` letters (n − 3 to n + 2) from an
/// alphabet of 3–10 letters, table values written with `numbers` number tokens, optionally
/// banded (`band`).
#[derive(Debug, Clone)]
pub struct EditDistance {
    length: usize,
    numbers: u32,
    band: Option<usize>,
    vocab: Vocab,
}

/// A pair of strings as letter indices 0..26; `s1` is never longer than `s2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StringPair {
    /// The first (row) string.
    pub s1: Vec<u8>,
    /// The second (column) string.
    pub s2: Vec<u8>,
}

impl EditDistance {
    /// Checks `length >= 1` and that `numbers` covers every value the table can reach, and
    /// builds the vocabulary `<pad> <sep> <eos> | , a … z 0 … numbers−1`.
    pub fn new(length: usize, numbers: u32, band: Option<usize>) -> Result<Self, TaskError> {
        if length == 0 {
            return Err(TaskError::invalid("length", length, "must be at least 1"));
        }
        // The length cap first: the largest table value below costs a pass over every cell.
        let longest = Self::longest_sequence(length, band);
        if longest > MAX_SEQUENCE_LEN {
            return Err(TaskError::invalid(
                "length",
                length,
                format!(
                    "sequences would reach {longest} tokens, past the supported {MAX_SEQUENCE_LEN}"
                ),
            ));
        }
        check_numbers("numbers", numbers, NUMBER_OFFSET as usize)?;
        let needed = Self::largest_value(length, band) + 1;
        if numbers < needed {
            return Err(TaskError::invalid(
                "numbers",
                numbers,
                format!(
                    "table values for length {length} reach {}, so the vocabulary needs at least {needed} numbers",
                    needed - 1
                ),
            ));
        }
        let mut words = vec![
            PAD_WORD.to_string(),
            SEP_WORD.to_string(),
            EOS_WORD.to_string(),
            "|".to_string(),
            ",".to_string(),
        ];
        words.extend((b'a'..=b'z').map(|c| (c as char).to_string()));
        words.extend((0..numbers).map(|k| k.to_string()));
        Ok(Self {
            length,
            numbers,
            band,
            vocab: Vocab::new(words),
        })
    }

    /// The reference's 60 numbers when they suffice, else just enough for the largest value.
    /// (Lengths whose sequences pass [`MAX_SEQUENCE_LEN`] get the reference's 60: [`Self::new`]
    /// refuses them without computing their tables.)
    pub fn default_numbers(length: usize, band: Option<usize>) -> u32 {
        if Self::longest_sequence(length, band) > MAX_SEQUENCE_LEN {
            return REFERENCE_NUMBERS;
        }
        REFERENCE_NUMBERS.max(Self::largest_value(length, band) + 1)
    }

    /// String lengths drawn: s1 (before the swap) has n letters, s2 between n − 3 and n + 2.
    fn length_range(length: usize) -> (usize, usize) {
        (length.saturating_sub(3).max(1), length + 2)
    }

    fn lengths_allowed(&self, l1: usize, l2: usize) -> bool {
        let (lo, hi) = Self::length_range(self.length);
        let (short, long) = (l1.min(l2), l1.max(l2));
        short >= lo && long <= hi && self.band.is_none_or(|w| long - short <= w)
    }

    /// The string lengths (l1 ≤ l2) a task of `length` draws, within its band.
    fn length_pairs(length: usize, band: Option<usize>) -> impl Iterator<Item = (usize, usize)> {
        let (lo, hi) = Self::length_range(length);
        (lo..=length)
            .flat_map(move |l1| (l1..=hi).map(move |l2| (l1, l2)))
            .filter(move |&(l1, l2)| band.is_none_or(|w| l2 - l1 <= w))
    }

    /// Largest value any cell can take: every letter differing is the worst case. Rows are
    /// visited one at a time, so a long banded task needs no full table.
    fn largest_value(length: usize, band: Option<usize>) -> u32 {
        let mut largest = 0;
        for (l1, l2) in Self::length_pairs(length, band) {
            for_each_row(&vec![0; l1], &vec![1; l2], band, |row| {
                largest = row.iter().flatten().fold(largest, |a, &b| a.max(b));
            });
        }
        largest
    }

    /// The longest sequence of the task: `s1 | s2 <sep>`, one token per cell of the table
    /// (within the band) and a comma per row, then `<sep> answer <eos>`. Exact up to
    /// [`MAX_SEQUENCE_LEN`]; past it the count stops, so a huge length costs no more.
    fn longest_sequence(length: usize, band: Option<usize>) -> usize {
        let cap = MAX_SEQUENCE_LEN + 1;
        let mut longest = 0;
        for (l1, l2) in Self::length_pairs(length, band) {
            // Every row adds at least its comma, so the count stops after `cap` rows at most.
            let mut tokens = l1.saturating_add(l2).saturating_add(5);
            for i in 1..=l1 {
                if tokens >= cap {
                    break;
                }
                tokens += band_columns(i, l2, band).len() + 1;
            }
            longest = longest.max(tokens);
        }
        longest
    }

    /// Draws a pair as the reference does: s1 uniform of length n; s2 an edited copy of s1
    /// (1..=n random deletions, substitutions, insertions) or an independent string; never
    /// equal to s1; redrawn until the lengths fit (and the band, if any); shorter first.
    pub fn draw_pair(&self, rng: &mut dyn RngCore) -> StringPair {
        let n = self.length;
        let (lo, hi) = Self::length_range(n);
        let alphabet_size = rng.random_range(MIN_ALPHABET..=MAX_ALPHABET);
        let alphabet: Vec<u8> = sample(rng, LETTERS as usize, alphabet_size)
            .into_iter()
            .map(|i| i as u8)
            .collect();
        let letter = |rng: &mut dyn RngCore| alphabet[rng.random_range(0..alphabet.len())];
        let s1: Vec<u8> = (0..n).map(|_| letter(rng)).collect();
        loop {
            let s2 = if rng.random_bool(EDITED_SHARE) {
                let mut s = s1.clone();
                for _ in 0..rng.random_range(1..=n) {
                    match rng.random_range(0..3) {
                        0 if !s.is_empty() => {
                            let at = rng.random_range(0..s.len());
                            s.remove(at);
                        }
                        1 if !s.is_empty() => {
                            let at = rng.random_range(0..s.len());
                            s[at] = letter(rng);
                        }
                        _ => {
                            let at = rng.random_range(0..=s.len());
                            s.insert(at, letter(rng));
                        }
                    }
                }
                s
            } else {
                let len = rng.random_range(lo..=hi);
                (0..len).map(|_| letter(rng)).collect()
            };
            if s2 != s1 && self.lengths_allowed(s1.len(), s2.len()) {
                return if s1.len() <= s2.len() {
                    StringPair { s1, s2 }
                } else {
                    StringPair { s1: s2, s2: s1 }
                };
            }
        }
    }

    /// The reference solver: the DP table without row and column 0, `None` outside the band.
    pub fn solve(&self, pair: &StringPair) -> Vec<Vec<Option<u32>>> {
        table(&pair.s1, &pair.s2, self.band)
    }

    fn chain(&self, table: &[Vec<Option<u32>>]) -> ExpectedChain {
        let cells: usize = table.iter().map(|row| row.len() + 1).sum();
        let mut chain = ExpectedChain::with_capacity(cells + 3);
        for row in table {
            for value in row.iter().flatten() {
                chain.value(NUMBER_OFFSET + value);
            }
            chain.separator(COMMA);
        }
        chain.separator(SEP);
        let answer = table
            .last()
            .and_then(|row| row.last().copied().flatten())
            .expect("the last cell is in the band: lengths are drawn so");
        chain.answer(NUMBER_OFFSET + answer);
        chain
    }

    fn is_number(&self, id: TokenId) -> bool {
        (NUMBER_OFFSET..NUMBER_OFFSET + self.numbers).contains(&id)
    }

    fn parse_prompt(&self, prompt: &[TokenId]) -> Result<StringPair, TaskError> {
        let invalid = |reason: String| TaskError::InvalidPrompt {
            task: self.name(),
            reason,
        };
        let Some((&SEP, body)) = prompt.split_last() else {
            return Err(invalid("the prompt must end with <sep>".into()));
        };
        let bar = body
            .iter()
            .position(|&t| t == BAR)
            .ok_or_else(|| invalid("no `|` between the two strings".into()))?;
        let letters = |part: &[TokenId]| -> Result<Vec<u8>, TaskError> {
            part.iter()
                .map(|&id| {
                    (LETTER_OFFSET..LETTER_OFFSET + LETTERS)
                        .contains(&id)
                        .then(|| (id - LETTER_OFFSET) as u8)
                        .ok_or_else(|| {
                            invalid(format!("`{}` is not a letter", self.vocab.word(id)))
                        })
                })
                .collect()
        };
        let pair = StringPair {
            s1: letters(&body[..bar])?,
            s2: letters(&body[bar + 1..])?,
        };
        if pair.s1.len() > pair.s2.len() || !self.lengths_allowed(pair.s1.len(), pair.s2.len()) {
            return Err(invalid(format!(
                "string lengths {} and {} do not fit length {}{} (the first string is the shorter)",
                pair.s1.len(),
                pair.s2.len(),
                self.length,
                self.band
                    .map(|w| format!(" with band {w}"))
                    .unwrap_or_default()
            )));
        }
        Ok(pair)
    }
}

/// The weighted DP table, rows 1..=|s1|, columns 1..=|s2|; `None` outside the band.
fn table(s1: &[u8], s2: &[u8], band: Option<usize>) -> Vec<Vec<Option<u32>>> {
    let mut rows = Vec::with_capacity(s1.len());
    for_each_row(s1, s2, band, |row| rows.push(row.to_vec()));
    rows
}

/// Columns 1..=m of row i that lie within the band.
fn band_columns(i: usize, m: usize, band: Option<usize>) -> std::ops::Range<usize> {
    match band {
        None => 1..m + 1,
        Some(w) => i.saturating_sub(w).max(1)..i.saturating_add(w).min(m) + 1,
    }
}

/// Computes the table of [`table`] row by row, handing each row (columns 1..=|s2|) to `visit`;
/// only two rows are held, and only the band's cells are computed.
fn for_each_row(s1: &[u8], s2: &[u8], band: Option<usize>, mut visit: impl FnMut(&[Option<u32>])) {
    let in_band = |i: usize, j: usize| band.is_none_or(|w| i.abs_diff(j) <= w);
    let m = s2.len();
    // Row i − 1 of the full table, columns 0..=m, with row/column 0 the unit-cost boundary.
    let mut previous: Vec<Option<u32>> =
        (0..=m).map(|j| in_band(0, j).then_some(j as u32)).collect();
    let mut current = vec![None; m + 1];
    for i in 1..=s1.len() {
        current.fill(None);
        current[0] = in_band(i, 0).then_some(i as u32);
        for j in band_columns(i, m, band) {
            let substitute = if s1[i - 1] == s2[j - 1] {
                0
            } else {
                SUBSTITUTE
            };
            current[j] = [
                previous[j].map(|d| d + INSERT_DELETE),
                current[j - 1].map(|d| d + INSERT_DELETE),
                previous[j - 1].map(|d| d + substitute),
            ]
            .into_iter()
            .flatten()
            .min();
        }
        visit(&current[1..]);
        std::mem::swap(&mut previous, &mut current);
    }
}

impl DpTask for EditDistance {
    fn name(&self) -> String {
        match self.band {
            None => format!("ed-{}", self.length),
            Some(w) => format!("ed-{}-band{w}", self.length),
        }
    }

    fn spec(&self) -> TaskSpec {
        TaskSpec::EditDistance {
            length: self.length,
            numbers: self.numbers,
            band: self.band,
        }
    }

    fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    fn separator(&self) -> TokenId {
        SEP
    }

    fn max_len(&self) -> usize {
        Self::longest_sequence(self.length, self.band)
    }

    fn generate(&self, rng: &mut dyn RngCore) -> Example {
        let pair = self.draw_pair(rng);
        let chain = self.chain(&self.solve(&pair));
        let mut tokens = Vec::with_capacity(pair.s1.len() + pair.s2.len() + 2 + chain.tokens.len());
        tokens.extend(pair.s1.iter().map(|&c| LETTER_OFFSET + c as TokenId));
        tokens.push(BAR);
        tokens.extend(pair.s2.iter().map(|&c| LETTER_OFFSET + c as TokenId));
        tokens.push(SEP);
        let prompt_len = tokens.len();
        tokens.extend_from_slice(&chain.tokens);
        Example { tokens, prompt_len }
    }

    fn check(&self, prompt: &[TokenId], completion: &[TokenId]) -> Result<CheckReport, TaskError> {
        let pair = self.parse_prompt(prompt)?;
        let chain = self.chain(&self.solve(&pair));
        Ok(chain.check(completion, |id| self.is_number(id)))
    }

    fn steps_of(&self, example: &Example) -> Result<Vec<usize>, TaskError> {
        let pair = self.parse_prompt(example.prompt())?;
        Ok(self
            .chain(&self.solve(&pair))
            .steps_of(example.completion().len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{WrongKind, WrongStep};
    use rand::SeedableRng;

    fn ed(n: usize) -> EditDistance {
        EditDistance::new(n, 60, None).unwrap()
    }

    #[test]
    fn reference_example_is_right() {
        // The example in the reference benchmark's description.
        let t = ed(2);
        let ex = t
            .parse_example("c f | c z y y f <sep> 0 2 4 6 7 , 2 3 5 7 6 , <sep> 6")
            .unwrap();
        let r = t.check(ex.prompt(), ex.completion()).unwrap_err();
        // Length 2 does not allow a 5-letter s2 (at most n + 2 = 4): the prompt is rejected.
        assert!(r.to_string().contains("do not fit"), "{r}");
        let t = ed(3);
        let r = t.check(ex.prompt(), ex.completion()).unwrap();
        assert!(r.is_correct() && r.answer_correct && r.well_formed, "{r:?}");
        assert_eq!(r.steps, 11);
    }

    #[test]
    fn golden_table_written_by_hand() {
        // s1 = "ab", s2 = "ba". Boundary: D[0][j] = j, D[i][0] = i.
        // D[1][1] = min(1+2, 1+2, 0+3) = 3;  D[1][2] = min(2+2, 3+2, 1+0) = 1
        // D[2][1] = min(3+2, 2+2, 1+0) = 1;  D[2][2] = min(1+2, 1+2, 3+3) = 3
        let t = ed(2);
        let ex = t
            .parse_example("a b | b a <sep> 3 1 , 1 3 , <sep> 3")
            .unwrap();
        let r = t.check(ex.prompt(), ex.completion()).unwrap();
        assert!(r.is_correct(), "{r:?}");
        assert_eq!(
            t.vocab().decode(&ex.tokens),
            "a b | b a <sep> 3 1 , 1 3 , <sep> 3 <eos>"
        );
    }

    #[test]
    fn banded_golden_table_written_by_hand() {
        // Band 0 keeps the diagonal only: D[1][1] = 0 + 3 = 3, D[2][2] = 3 + 3 = 6.
        let t = EditDistance::new(2, 60, Some(0)).unwrap();
        let ex = t.parse_example("a b | b a <sep> 3 , 6 , <sep> 6").unwrap();
        let r = t.check(ex.prompt(), ex.completion()).unwrap();
        assert!(r.is_correct(), "{r:?}");
        // A row with an out-of-band cell written is malformed.
        let ex = t
            .parse_example("a b | b a <sep> 3 1 , 6 , <sep> 6")
            .unwrap();
        let r = t.check(ex.prompt(), ex.completion()).unwrap();
        assert_eq!(
            r.first_wrong,
            Some(WrongStep {
                step: 0,
                kind: WrongKind::Malformed
            })
        );
    }

    #[test]
    fn numbers_too_few_for_the_size_is_an_error() {
        let err = EditDistance::new(20, 60, None).unwrap_err();
        assert!(err.to_string().contains("numbers"), "{err}");
        assert_eq!(EditDistance::default_numbers(20, None), 63);
        assert_eq!(EditDistance::default_numbers(6, None), 60);
        assert!(EditDistance::new(0, 60, None).is_err());
    }

    #[test]
    fn max_len_matches_the_reference() {
        // The reference's maximum lengths with <eos> for n = 6/12/16/20.
        for (n, len) in [(6, 73), (12, 211), (16, 343), (20, 507)] {
            let t = EditDistance::new(n, EditDistance::default_numbers(n, None), None).unwrap();
            assert_eq!(t.max_len(), len, "n = {n}");
        }
    }

    #[test]
    fn drawn_pairs_follow_the_reference_distribution() {
        let t = ed(8);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        for _ in 0..300 {
            let p = t.draw_pair(&mut rng);
            assert!(p.s1.len() <= p.s2.len() && p.s1 != p.s2);
            assert!((5..=10).contains(&p.s1.len()) && p.s2.len() <= 10, "{p:?}");
            let letters: std::collections::BTreeSet<_> = p.s1.iter().chain(&p.s2).collect();
            assert!(letters.len() <= MAX_ALPHABET);
        }
    }

    #[test]
    fn banded_pairs_fit_the_band() {
        let t = EditDistance::new(8, 60, Some(1)).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        for _ in 0..200 {
            let p = t.draw_pair(&mut rng);
            assert!(p.s2.len() - p.s1.len() <= 1, "{p:?}");
            let ex = t.generate(&mut rng);
            assert!(ex.tokens.len() <= t.max_len());
        }
    }

    /// The sequence length counted cell by cell, as the generator lays it out.
    fn longest_by_counting(length: usize, band: Option<usize>) -> usize {
        let (lo, hi) = EditDistance::length_range(length);
        let in_band = |i: usize, j: usize| band.is_none_or(|w| i.abs_diff(j) <= w);
        let mut longest = 0;
        for l1 in lo..=length {
            for l2 in (l1..=hi).filter(|l2| band.is_none_or(|w| l2 - l1 <= w)) {
                let cells: usize = (1..=l1)
                    .map(|i| (1..=l2).filter(|&j| in_band(i, j)).count() + 1)
                    .sum();
                longest = longest.max(l1 + 1 + l2 + 1 + cells + 3);
            }
        }
        longest
    }

    #[test]
    fn longest_sequence_counts_every_cell_of_the_band() {
        for n in 1..=24 {
            for band in [None, Some(0), Some(1), Some(2), Some(5), Some(40)] {
                assert_eq!(
                    EditDistance::longest_sequence(n, band),
                    longest_by_counting(n, band),
                    "n = {n}, band = {band:?}"
                );
            }
        }
    }

    #[test]
    fn rows_visited_one_by_one_make_the_table() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        for band in [None, Some(1), Some(3)] {
            let t = EditDistance::new(9, 60, band).unwrap();
            for _ in 0..50 {
                let pair = t.draw_pair(&mut rng);
                let table = t.solve(&pair);
                // Against the plain recurrence over the whole (unbanded) grid, masked afterwards.
                let full = table_by_definition(&pair.s1, &pair.s2, band);
                assert_eq!(table, full, "{pair:?}, band {band:?}");
            }
        }
    }

    fn table_by_definition(s1: &[u8], s2: &[u8], band: Option<usize>) -> Vec<Vec<Option<u32>>> {
        let in_band = |i: usize, j: usize| band.is_none_or(|w| i.abs_diff(j) <= w);
        let (n, m) = (s1.len(), s2.len());
        let mut d = vec![vec![None; m + 1]; n + 1];
        for i in 0..=n {
            for j in 0..=m {
                if !in_band(i, j) {
                    continue;
                }
                d[i][j] = if i == 0 || j == 0 {
                    Some((i + j) as u32)
                } else {
                    let sub = if s1[i - 1] == s2[j - 1] {
                        0
                    } else {
                        SUBSTITUTE
                    };
                    [
                        d[i - 1][j].map(|v: u32| v + INSERT_DELETE),
                        d[i][j - 1].map(|v: u32| v + INSERT_DELETE),
                        d[i - 1][j - 1].map(|v: u32| v + sub),
                    ]
                    .into_iter()
                    .flatten()
                    .min()
                };
            }
        }
        d.into_iter().skip(1).map(|row| row[1..].to_vec()).collect()
    }

    #[test]
    fn a_length_past_the_sequence_cap_is_refused_before_any_table_is_built() {
        // Before, 100 000 built many 100 000² tables (11 GB after a minute) before the cap.
        for (length, band) in [
            (100_000, None),
            (1_000_000, Some(1)),
            (usize::MAX / 4, Some(0)),
        ] {
            let numbers = EditDistance::default_numbers(length, band);
            let e = EditDistance::new(length, numbers, band)
                .unwrap_err()
                .to_string();
            assert!(e.contains("past the supported"), "{e}");
        }
        // A long banded task within the cap is built, with only two rows in memory at a time.
        let (length, band) = (8_000, Some(1));
        let numbers = EditDistance::default_numbers(length, band);
        let t = EditDistance::new(length, numbers, band).unwrap();
        assert!(t.max_len() <= MAX_SEQUENCE_LEN);
        assert_eq!(numbers, EditDistance::largest_value(length, band) + 1);
    }

    #[test]
    fn too_many_numbers_for_a_vocabulary_is_an_error() {
        let e = EditDistance::new(3, u32::MAX, None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`numbers`") && e.contains("past the supported"),
            "{e}"
        );
    }
}
