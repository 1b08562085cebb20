//! Word-level vocabularies: every integer is one token, as in the reference benchmark.

use std::collections::HashMap;

use crate::TaskError;

/// Index of a token in its task's vocabulary.
pub type TokenId = u32;

/// Padding, id 0 in every task.
pub const PAD: TokenId = 0;
/// End of sequence, id 2 in every task (the loader appends it; there is no BOS).
pub const EOS: TokenId = 2;

/// The word of [`PAD`].
pub const PAD_WORD: &str = "<pad>";
/// The word of [`EOS`].
pub const EOS_WORD: &str = "<eos>";
/// The separator between a prompt, its chain of thought and its answer in LIS and edit
/// distance (id 1; arithmetic has `<cls>` there and separates with `=`).
pub const SEP_WORD: &str = "<sep>";

/// The largest vocabulary a task may have. The reference's vocabularies hold 30–260 words; a
/// number range or modulus large enough to pass this would give an embedding table of many
/// gigabytes, so it is refused with an error before anything is allocated.
pub const MAX_VOCAB_SIZE: usize = 1 << 16;

/// Checks that `count` numbers (the value of `field`) after `fixed` fixed words fit in
/// [`MAX_VOCAB_SIZE`].
pub(crate) fn check_numbers(
    field: &'static str,
    count: u32,
    fixed: usize,
) -> Result<(), TaskError> {
    let size = fixed as u64 + u64::from(count);
    if size > MAX_VOCAB_SIZE as u64 {
        return Err(TaskError::invalid(
            field,
            count,
            format!("the vocabulary would hold {size} words, past the supported {MAX_VOCAB_SIZE}"),
        ));
    }
    Ok(())
}

/// A fixed list of words, with ids assigned by position.
///
/// The layout of each task's vocabulary is the reference benchmark's, so that its data files and
/// checkpoints map onto dpcot's ids one to one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vocab {
    words: Vec<String>,
    ids: HashMap<String, TokenId>,
}

impl Vocab {
    /// Builds a vocabulary from its words in id order.
    ///
    /// The words must be distinct; tasks build their vocabularies from fixed tables, so a
    /// duplicate is a programming error.
    pub fn new(words: Vec<String>) -> Self {
        let ids: HashMap<String, TokenId> = words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), i as TokenId))
            .collect();
        assert_eq!(ids.len(), words.len(), "vocabulary words must be distinct");
        Self { words, ids }
    }

    /// Number of words (the model's vocabulary size).
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// Whether there are no words.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The words in id order.
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// The id of `word`, if it is in the vocabulary.
    pub fn id(&self, word: &str) -> Option<TokenId> {
        self.ids.get(word).copied()
    }

    /// The word of `id`; ids outside the vocabulary read as `<unk:ID>` so that a model's bad
    /// output can still be printed.
    pub fn word(&self, id: TokenId) -> std::borrow::Cow<'_, str> {
        match self.words.get(id as usize) {
            Some(w) => w.as_str().into(),
            None => format!("<unk:{id}>").into(),
        }
    }

    /// Splits `text` on whitespace and maps every word to its id.
    pub fn encode(&self, task: &str, text: &str) -> Result<Vec<TokenId>, TaskError> {
        text.split_whitespace()
            .enumerate()
            .map(|(position, word)| {
                self.id(word).ok_or_else(|| TaskError::UnknownToken {
                    task: task.to_string(),
                    word: TaskError::quote(word),
                    position,
                })
            })
            .collect()
    }

    /// Joins the words of `ids` with single spaces.
    pub fn decode(&self, ids: &[TokenId]) -> String {
        let mut out = String::with_capacity(ids.len() * 3);
        for (i, &id) in ids.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(&self.word(id));
        }
        out
    }

    /// Checks that every id is inside the vocabulary.
    pub fn validate(&self, task: &str, ids: &[TokenId]) -> Result<(), TaskError> {
        match ids.iter().position(|&id| id as usize >= self.len()) {
            None => Ok(()),
            Some(position) => Err(TaskError::TokenOutOfRange {
                task: task.to_string(),
                id: ids[position],
                position,
                vocab_size: self.len(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab() -> Vocab {
        Vocab::new(["<pad>", "<sep>", "<eos>", "7"].map(String::from).to_vec())
    }

    #[test]
    fn encode_decode_round_trip() {
        let v = vocab();
        let ids = v.encode("t", " 7 <sep>  7 <eos> ").unwrap();
        assert_eq!(ids, vec![3, 1, 3, 2]);
        assert_eq!(v.decode(&ids), "7 <sep> 7 <eos>");
    }

    #[test]
    fn unknown_word_is_an_error_naming_its_position() {
        let err = vocab().encode("t", "7 8").unwrap_err();
        assert!(
            matches!(err, TaskError::UnknownToken { ref word, position: 1, .. } if word == "8"),
            "{err}"
        );
    }

    #[test]
    fn a_long_unknown_word_is_quoted_short() {
        let long = "x".repeat(10_000_000);
        let message = vocab()
            .encode("t", &format!("7 {long}"))
            .unwrap_err()
            .to_string();
        assert!(message.len() < 200, "{} bytes", message.len());
        assert!(message.contains("(10000000 bytes)"), "{message}");
        // Multi-byte characters are cut at a character boundary.
        let message = vocab()
            .encode("t", &"é".repeat(100))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains(&format!("{}… (200 bytes)", "é".repeat(40))),
            "{message}"
        );
    }

    #[test]
    fn out_of_range_id_is_reported() {
        let v = vocab();
        assert!(v.validate("t", &[0, 1, 3]).is_ok());
        assert!(matches!(
            v.validate("t", &[0, 4]),
            Err(TaskError::TokenOutOfRange { position: 1, .. })
        ));
        assert_eq!(v.word(9), "<unk:9>");
    }
}
