//! GPT-2's byte-level BPE, built from a GGUF's own `tokenizer.ggml.tokens` and
//! `tokenizer.ggml.merges`, matching llama.cpp's `gpt2` tokenizer (checked against llama.cpp's
//! test cases in `tests/`).
//!
//! Why not the `tokenizers` crate: it can be built from these lists, but brings ~30 crates
//! (proc-macro stacks, C/C++ by default) for ~200 lines of well-specified algorithm; see
//! `docs/gguf.md`.

use crate::gguf::{GgufFile, MetaValue};
use std::collections::HashMap;
use thiserror::Error;
use unicode_general_category::{get_general_category, GeneralCategory as Gc};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum BpeError {
    #[error("the model has no `{0}` metadata (a byte-level BPE vocabulary is needed for text)")]
    Missing(&'static str),
    #[error("`{key}` must be an array of strings")]
    NotStrings { key: &'static str },
    #[error("the vocabulary has no token for byte {0:#04x}")]
    MissingByte(u8),
    #[error("merge #{index} `{merge}` {problem}")]
    BadMerge {
        index: usize,
        merge: String,
        problem: &'static str,
    },
}

pub struct BpeTokenizer {
    tokens: Vec<String>,
    byte_ids: [u32; 256],
    /// (left, right) -> (rank, merged)
    merges: HashMap<(u32, u32), (u32, u32)>,
    char_to_byte: HashMap<char, u8>,
    pub eos: Option<u32>,
}

/// GPT-2's reversible map from bytes to printable characters (`bytes_to_unicode`).
fn byte_chars() -> [char; 256] {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut chars = ['\0'; 256];
    let mut next = 0u32;
    for b in 0..=255u8 {
        chars[b as usize] = if printable(b) {
            char::from(b)
        } else {
            next += 1;
            char::from_u32(0x100 + next - 1).expect("below the surrogates")
        };
    }
    chars
}

fn strings<'a>(gguf: &'a GgufFile, key: &'static str) -> Result<Vec<&'a str>, BpeError> {
    let array = gguf.get(key).ok_or(BpeError::Missing(key))?;
    let items = array.as_array().ok_or(BpeError::NotStrings { key })?;
    items
        .items
        .iter()
        .map(|v| v.as_str().ok_or(BpeError::NotStrings { key }))
        .collect()
}

impl BpeTokenizer {
    /// From the file's `tokenizer.ggml.tokens`, `merges` and EOS id (the caller has checked that
    /// `tokenizer.ggml.model` is `gpt2`: [`super::Tokenizer::from_gguf`]).
    pub fn from_gguf(gguf: &GgufFile) -> Result<BpeTokenizer, BpeError> {
        let tokens: Vec<String> = strings(gguf, "tokenizer.ggml.tokens")?
            .into_iter()
            .map(String::from)
            .collect();
        let merges = match gguf.get("tokenizer.ggml.merges") {
            Some(_) => strings(gguf, "tokenizer.ggml.merges")?,
            None => Vec::new(),
        };
        let eos = gguf
            .get("tokenizer.ggml.eos_token_id")
            .and_then(MetaValue::as_u64)
            .map(|v| v as u32);
        BpeTokenizer::new(tokens, &merges, eos)
    }

    pub fn new(
        tokens: Vec<String>,
        merges: &[&str],
        eos: Option<u32>,
    ) -> Result<BpeTokenizer, BpeError> {
        let ids: HashMap<&str, u32> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.as_str(), i as u32))
            .collect();
        let chars = byte_chars();
        let mut byte_ids = [0u32; 256];
        for (b, c) in chars.iter().enumerate() {
            byte_ids[b] = *ids
                .get(c.to_string().as_str())
                .ok_or(BpeError::MissingByte(b as u8))?;
        }
        let mut pairs = HashMap::with_capacity(merges.len());
        for (index, merge) in merges.iter().enumerate() {
            let bad = |problem| BpeError::BadMerge {
                index,
                merge: merge.to_string(),
                problem,
            };
            let (left, right) = merge
                .split_once(' ')
                .ok_or_else(|| bad("is not two tokens separated by a space"))?;
            let id = |s: &str| {
                ids.get(s)
                    .copied()
                    .ok_or_else(|| bad("names a token that is not in the vocabulary"))
            };
            let merged = id(&format!("{left}{right}"))?;
            pairs
                .entry((id(left)?, id(right)?))
                .or_insert((index as u32, merged));
        }
        let char_to_byte = chars
            .iter()
            .enumerate()
            .map(|(b, &c)| (c, b as u8))
            .collect();
        Ok(BpeTokenizer {
            tokens,
            byte_ids,
            merges: pairs,
            char_to_byte,
            eos,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// The vocabulary, by id.
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// The merges in rank order, as `tokenizer.ggml.merges` writes them (duplicates, which never
    /// apply, dropped): with [`BpeTokenizer::tokens`], what rebuilds this tokenizer.
    pub fn merges(&self) -> Vec<String> {
        let mut ranked: Vec<(u32, u32, u32)> = self
            .merges
            .iter()
            .map(|(&(l, r), &(rank, _))| (rank, l, r))
            .collect();
        ranked.sort_unstable();
        ranked
            .into_iter()
            .map(|(_, l, r)| format!("{} {}", self.tokens[l as usize], self.tokens[r as usize]))
            .collect()
    }

    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        for piece in pre_tokenize(text) {
            let mut symbols: Vec<u32> = piece.bytes().map(|b| self.byte_ids[b as usize]).collect();
            // Merge the lowest-ranked adjacent pair everywhere, left to right, until none merges.
            loop {
                let best = symbols
                    .windows(2)
                    .filter_map(|w| {
                        self.merges
                            .get(&(w[0], w[1]))
                            .map(|&(rank, _)| (rank, (w[0], w[1])))
                    })
                    .min();
                let Some((_, pair)) = best else { break };
                let merged = self.merges[&pair].1;
                let mut next = Vec::with_capacity(symbols.len());
                let mut i = 0;
                while i < symbols.len() {
                    if i + 1 < symbols.len() && (symbols[i], symbols[i + 1]) == pair {
                        next.push(merged);
                        i += 2;
                    } else {
                        next.push(symbols[i]);
                        i += 1;
                    }
                }
                symbols = next;
            }
            out.extend(symbols);
        }
        out
    }

    /// Text of `ids`; bytes that do not form UTF-8 (a token cut mid-character) become U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            let Some(token) = self.tokens.get(id as usize) else {
                continue;
            };
            for c in token.chars() {
                match self.char_to_byte.get(&c) {
                    Some(&b) => bytes.push(b),
                    None => bytes.extend(c.to_string().bytes()),
                }
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

fn is_letter(c: char) -> bool {
    matches!(
        get_general_category(c),
        Gc::UppercaseLetter
            | Gc::LowercaseLetter
            | Gc::TitlecaseLetter
            | Gc::ModifierLetter
            | Gc::OtherLetter
    )
}

fn is_number(c: char) -> bool {
    matches!(
        get_general_category(c),
        Gc::DecimalNumber | Gc::LetterNumber | Gc::OtherNumber
    )
}

/// GPT-2's pre-tokenizer, the regex
/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`, as a scanner.
fn pre_tokenize(text: &str) -> Vec<&str> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let n = chars.len();
    let at = |i: usize| if i < n { chars[i].0 } else { text.len() };
    let mut out = Vec::new();
    let mut i = 0;
    while i < n {
        let c = chars[i].1;
        if c == '\'' && i + 1 < n {
            let next: String = chars[i + 1..n.min(i + 3)].iter().map(|&(_, c)| c).collect();
            let len = if next.starts_with(['s', 't', 'm', 'd']) {
                2
            } else if ["re", "ve", "ll"].contains(&next.as_str()) {
                3
            } else {
                0
            };
            if len > 0 {
                out.push(&text[at(i)..at(i + len)]);
                i += len;
                continue;
            }
        }
        let start = if c == ' ' && i + 1 < n { i + 1 } else { i };
        let d = chars[start].1;
        let class: Option<fn(char) -> bool> = if is_letter(d) {
            Some(is_letter)
        } else if is_number(d) {
            Some(is_number)
        } else if !d.is_whitespace() {
            Some(|x| !(x.is_whitespace() || is_letter(x) || is_number(x)))
        } else {
            None
        };
        let mut k = start;
        match class {
            Some(class) => {
                while k < n && class(chars[k].1) {
                    k += 1;
                }
            }
            None => {
                k = i;
                while k < n && chars[k].1.is_whitespace() {
                    k += 1;
                }
                // `\s+(?!\S)`: a run followed by text leaves its last space to that text.
                if k - i > 1 && k < n {
                    k -= 1;
                }
            }
        }
        out.push(&text[at(i)..at(k)]);
        i = k;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pre_tokenizer_splits_like_gpt2() {
        assert_eq!(
            pre_tokenize("Hello world's 333 !!"),
            ["Hello", " world", "'s", " 333", " !!"]
        );
        assert_eq!(pre_tokenize("   Hello"), ["  ", " Hello"]);
        assert_eq!(pre_tokenize("a  \n"), ["a", "  \n"]);
        assert_eq!(pre_tokenize(""), Vec::<&str>::new());
    }

    #[test]
    fn byte_vocab_round_trips_any_text() {
        let tokens: Vec<String> = byte_chars().iter().map(|c| c.to_string()).collect();
        let t = BpeTokenizer::new(tokens, &[], None).unwrap();
        let text = "héllo 🦙\n\tx";
        let ids = t.encode(text);
        assert_eq!(ids.len(), text.len());
        assert_eq!(t.decode(&ids), text);
    }

    #[test]
    fn merges_apply_by_rank() {
        let mut tokens: Vec<String> = byte_chars().iter().map(|c| c.to_string()).collect();
        tokens.extend(["ab".to_string(), "bc".to_string(), "abc".to_string()]);
        let t = BpeTokenizer::new(tokens, &["b c", "a b", "ab c"], None).unwrap();
        // "b c" ranks first, so "abc" -> a + bc, and no merge joins them.
        assert_eq!(t.encode("abc"), vec![b'a' as u32, 257]);
        assert_eq!(t.encode("abab"), vec![256, 256]);
        assert!(BpeTokenizer::new(vec!["x".into()], &[], None).is_err());
    }
}
