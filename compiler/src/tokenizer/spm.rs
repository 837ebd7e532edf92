//! llama.cpp's SentencePiece tokenizer (`tokenizer.ggml.model = "llama"`, llama.cpp's
//! `llm_tokenizer_spm`), built from a GGUF's own `tokenizer.ggml.tokens`, `tokenizer.ggml.scores`
//! and `tokenizer.ggml.token_type`, and checked against llama.cpp's test cases for its
//! `ggml-vocab-llama-spm.gguf` (`tests/tests/spm_tokenizer.rs`).
//!
//! Encoding, as llama.cpp does it:
//! 1. user-defined tokens (type 4) are cut out of the text first, longest first, and emitted as
//!    they are; the text between them goes on to SentencePiece;
//! 2. a text piece gets a leading space when `add_space_prefix` is set and it starts the input or
//!    follows a user-defined token, and every space becomes `▁` (U+2581);
//! 3. the piece is split into its characters, and the adjacent pair whose concatenation is a
//!    vocabulary token with the highest score is merged (ties: the leftmost pair), again and again
//!    until no pair forms a token;
//! 4. each final symbol is resegmented: emitted as its token if it is one, else through the two
//!    pieces it was merged from (which cannot happen here: every merge forms a token), else, for
//!    a character missing from the vocabulary, as one `<0xXX>` byte token per UTF-8 byte.
//!
//! The input is plain text: control and unknown tokens written in it (`<s>`, `</s>`, `<unk>`)
//! are *not* recognised as those tokens but tokenized as the characters they are, as llama.cpp
//! does with `parse_special = false`. Decoding drops control and unknown tokens likewise.

use crate::gguf::{GgufFile, MetaValue, ValueType};
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use thiserror::Error;

/// What went wrong building an [`SpmTokenizer`]. Keys are the GGUF metadata keys.
#[derive(Debug, Error, PartialEq)]
pub enum SpmError {
    #[error("the model has no `{key}` metadata ({expected} is needed)")]
    Missing {
        key: &'static str,
        expected: &'static str,
    },
    #[error("`{key}` must be {expected}, but is {found}")]
    WrongType {
        key: &'static str,
        expected: &'static str,
        found: String,
    },
    #[error("tokenizer model `{0}` is not SentencePiece (this tokenizer reads `llama`)")]
    Unsupported(String),
    #[error("`{key}` has {len} entries for {tokens} tokens")]
    LengthMismatch {
        key: &'static str,
        len: usize,
        tokens: usize,
    },
    #[error("the vocabulary has {0} tokens; llama.cpp's token ids are 32-bit signed")]
    TooManyTokens(usize),
    #[error("token `{text}` appears twice in the vocabulary, as ids {first} and {second}")]
    Duplicate {
        text: String,
        first: u32,
        second: u32,
    },
    #[error("token {id} has a NaN score")]
    NanScore { id: u32 },
    #[error("token {id} `{text}` has the byte type but is not of the form `<0xXX>`")]
    BadByteToken { id: u32, text: String },
    #[error(
        "the vocabulary has no token for byte {0:#04x} (neither `<0xXX>` nor the byte itself)"
    )]
    MissingByte(u8),
    #[error("`{key}` is {id}, outside the vocabulary of {vocab_size} tokens")]
    SpecialOutOfRange {
        key: &'static str,
        id: u64,
        vocab_size: usize,
    },
    #[error("`{flag}` is true but the vocabulary has no `{id_key}`")]
    NoSpecial {
        flag: &'static str,
        id_key: &'static str,
    },
}

const MODEL: &str = "tokenizer.ggml.model";
const TOKENS: &str = "tokenizer.ggml.tokens";
const SCORES: &str = "tokenizer.ggml.scores";
const TYPES: &str = "tokenizer.ggml.token_type";
const BOS: &str = "tokenizer.ggml.bos_token_id";
const EOS: &str = "tokenizer.ggml.eos_token_id";
const UNK: &str = "tokenizer.ggml.unknown_token_id";
const ADD_BOS: &str = "tokenizer.ggml.add_bos_token";
const ADD_EOS: &str = "tokenizer.ggml.add_eos_token";
const ADD_SPACE_PREFIX: &str = "tokenizer.ggml.add_space_prefix";

/// A token's type, as `tokenizer.ggml.token_type` numbers them (other numbers: undefined).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TokenType {
    Undefined,
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl TokenType {
    fn from_gguf(value: i32) -> TokenType {
        match value {
            1 => TokenType::Normal,
            2 => TokenType::Unknown,
            3 => TokenType::Control,
            4 => TokenType::UserDefined,
            5 => TokenType::Unused,
            6 => TokenType::Byte,
            _ => TokenType::Undefined,
        }
    }
}

/// The special token ids and whether [`SpmTokenizer::encode_with_special`] adds BOS / EOS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpecialTokens {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub unk: Option<u32>,
    pub add_bos: bool,
    pub add_eos: bool,
}

/// A SentencePiece vocabulary with llama.cpp's encoding and decoding (see the module doc).
pub struct SpmTokenizer {
    ids: HashMap<String, u32>,
    /// The constructor's tokens and GGUF types, kept to rebuild it ([`SpmTokenizer::parts`]).
    tokens: Vec<String>,
    types: Vec<i32>,
    scores: Vec<f32>,
    /// What each token decodes to: `▁` as a space, a byte token as its byte, control, unknown,
    /// unused and undefined tokens as nothing.
    pieces: Vec<Vec<u8>>,
    /// The token each byte falls back to.
    byte_ids: [u32; 256],
    /// User-defined tokens (id, text), longest text first (ties: lower id first).
    user_defined: Vec<(u32, String)>,
    special: SpecialTokens,
    add_space_prefix: bool,
}

fn describe(value: &MetaValue) -> String {
    match value {
        MetaValue::Array(a) => format!("an array of {:?}", a.elem),
        other => format!("{:?}", other.value_type()),
    }
}

fn wrong(key: &'static str, expected: &'static str, value: &MetaValue) -> SpmError {
    SpmError::WrongType {
        key,
        expected,
        found: describe(value),
    }
}

/// The items of an array whose elements are all of one of `types`.
fn array_of<'a>(
    gguf: &'a GgufFile,
    key: &'static str,
    types: &[ValueType],
    expected: &'static str,
) -> Result<Option<&'a [MetaValue]>, SpmError> {
    let Some(value) = gguf.get(key) else {
        return Ok(None);
    };
    match value.as_array() {
        Some(a)
            if types.contains(&a.elem)
                && a.items.iter().all(|v| types.contains(&v.value_type())) =>
        {
            Ok(Some(&a.items))
        }
        _ => Err(wrong(key, expected, value)),
    }
}

fn optional_bool(gguf: &GgufFile, key: &'static str) -> Result<Option<bool>, SpmError> {
    match gguf.get(key) {
        None => Ok(None),
        Some(MetaValue::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(wrong(key, "a bool", other)),
    }
}

/// A special token id from the file; without the key, llama.cpp's default for `llama`
/// vocabularies, dropped if the vocabulary is too small for it.
fn special_id(
    gguf: &GgufFile,
    key: &'static str,
    default: u32,
    vocab_size: usize,
) -> Result<Option<u32>, SpmError> {
    match gguf.get(key) {
        None => Ok(((default as usize) < vocab_size).then_some(default)),
        Some(value) => {
            let id = value
                .as_u64()
                .ok_or_else(|| wrong(key, "a non-negative integer", value))?;
            if id >= vocab_size as u64 {
                return Err(SpmError::SpecialOutOfRange {
                    key,
                    id,
                    vocab_size,
                });
            }
            Ok(Some(id as u32))
        }
    }
}

/// The byte a `<0xXX>` token stands for.
fn byte_token_value(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

impl SpmTokenizer {
    /// Reads the vocabulary of a GGUF whose `tokenizer.ggml.model` is `llama`, with llama.cpp's
    /// defaults for what the file leaves out: scores 0, every token normal, BOS 1, EOS 2,
    /// unknown 0, `add_space_prefix` and `add_bos_token` true, `add_eos_token` false.
    pub fn from_gguf(gguf: &GgufFile) -> Result<SpmTokenizer, SpmError> {
        let model_value = gguf.get(MODEL).ok_or(SpmError::Missing {
            key: MODEL,
            expected: "the tokenizer's name, `llama`",
        })?;
        let model = model_value
            .as_str()
            .ok_or_else(|| wrong(MODEL, "a string", model_value))?;
        if model != "llama" {
            return Err(SpmError::Unsupported(model.to_string()));
        }
        let tokens: Vec<String> =
            array_of(gguf, TOKENS, &[ValueType::String], "an array of strings")?
                .ok_or(SpmError::Missing {
                    key: TOKENS,
                    expected: "an array of strings",
                })?
                .iter()
                .map(|v| v.as_str().unwrap_or_default().to_string())
                .collect();
        let n = tokens.len();
        let check_len = |key, len| {
            if len == n {
                Ok(())
            } else {
                Err(SpmError::LengthMismatch {
                    key,
                    len,
                    tokens: n,
                })
            }
        };
        let scores = match array_of(
            gguf,
            SCORES,
            &[ValueType::F32, ValueType::I32],
            "an array of f32 (or i32)",
        )? {
            None => vec![0.0; n],
            Some(items) => {
                check_len(SCORES, items.len())?;
                items
                    .iter()
                    .map(|v| match *v {
                        MetaValue::F32(x) => x,
                        MetaValue::I32(x) => x as f32,
                        _ => 0.0,
                    })
                    .collect()
            }
        };
        let types = match array_of(gguf, TYPES, &[ValueType::I32], "an array of i32")? {
            None => vec![1; n],
            Some(items) => {
                check_len(TYPES, items.len())?;
                items
                    .iter()
                    .map(|v| match *v {
                        MetaValue::I32(x) => x,
                        _ => 0,
                    })
                    .collect()
            }
        };
        let special = SpecialTokens {
            bos: special_id(gguf, BOS, 1, n)?,
            eos: special_id(gguf, EOS, 2, n)?,
            unk: special_id(gguf, UNK, 0, n)?,
            add_bos: optional_bool(gguf, ADD_BOS)?.unwrap_or(true),
            add_eos: optional_bool(gguf, ADD_EOS)?.unwrap_or(false),
        };
        let add_space_prefix = optional_bool(gguf, ADD_SPACE_PREFIX)?.unwrap_or(true);
        SpmTokenizer::new(tokens, scores, types, special, add_space_prefix)
    }

    /// A tokenizer from its parts: `scores` and `types` (GGUF's numbering: 1 normal, 2 unknown,
    /// 3 control, 4 user-defined, 5 unused, 6 byte) one per token. As in llama.cpp, an empty
    /// token text becomes `[EMPTY_<id>]`, and a repeated text is refused.
    pub fn new(
        mut tokens: Vec<String>,
        scores: Vec<f32>,
        types: Vec<i32>,
        special: SpecialTokens,
        add_space_prefix: bool,
    ) -> Result<SpmTokenizer, SpmError> {
        let n = tokens.len();
        if n > i32::MAX as usize {
            return Err(SpmError::TooManyTokens(n));
        }
        for (key, len) in [(SCORES, scores.len()), (TYPES, types.len())] {
            if len != n {
                return Err(SpmError::LengthMismatch {
                    key,
                    len,
                    tokens: n,
                });
            }
        }
        if let Some(id) = scores.iter().position(|s| s.is_nan()) {
            return Err(SpmError::NanScore { id: id as u32 });
        }
        for (key, id) in [(BOS, special.bos), (EOS, special.eos), (UNK, special.unk)] {
            if let Some(id) = id.filter(|&id| id as usize >= n) {
                return Err(SpmError::SpecialOutOfRange {
                    key,
                    id: id.into(),
                    vocab_size: n,
                });
            }
        }
        for (flag, wanted, id_key, id) in [
            (ADD_BOS, special.add_bos, BOS, special.bos),
            (ADD_EOS, special.add_eos, EOS, special.eos),
        ] {
            if wanted && id.is_none() {
                return Err(SpmError::NoSpecial { flag, id_key });
            }
        }

        for (i, token) in tokens.iter_mut().enumerate() {
            if token.is_empty() {
                *token = format!("[EMPTY_{i}]");
            }
        }
        let gguf_types = types;
        let types: Vec<TokenType> = gguf_types
            .iter()
            .copied()
            .map(TokenType::from_gguf)
            .collect();
        let mut ids = HashMap::with_capacity(n);
        let mut pieces = Vec::with_capacity(n);
        let mut user_defined = Vec::new();
        for (i, (token, &ty)) in tokens.iter().zip(&types).enumerate() {
            let id = i as u32;
            if let Some(first) = ids.insert(token.clone(), id) {
                return Err(SpmError::Duplicate {
                    text: token.clone(),
                    first,
                    second: id,
                });
            }
            pieces.push(match ty {
                TokenType::Normal => token.replace('▁', " ").into_bytes(),
                TokenType::UserDefined => {
                    user_defined.push((id, token.clone()));
                    token.clone().into_bytes()
                }
                TokenType::Byte => {
                    vec![
                        byte_token_value(token).ok_or_else(|| SpmError::BadByteToken {
                            id,
                            text: token.clone(),
                        })?,
                    ]
                }
                TokenType::Control
                | TokenType::Unknown
                | TokenType::Unused
                | TokenType::Undefined => Vec::new(),
            });
        }
        // Stable: equal lengths keep id order (llama.cpp's sort leaves their order unspecified).
        user_defined.sort_by_key(|(_, text)| std::cmp::Reverse(text.len()));

        let mut byte_ids = [0u32; 256];
        for (b, slot) in byte_ids.iter_mut().enumerate() {
            let b = b as u8;
            let plain = (b < 0x80).then(|| char::from(b).to_string());
            *slot = ids
                .get(&format!("<0x{b:02X}>"))
                .or_else(|| plain.and_then(|p| ids.get(&p)))
                .copied()
                .ok_or(SpmError::MissingByte(b))?;
        }

        Ok(SpmTokenizer {
            ids,
            tokens,
            types: gguf_types,
            scores,
            pieces,
            byte_ids,
            user_defined,
            special,
            add_space_prefix,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.pieces.len()
    }

    /// The token texts, by id.
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// What [`SpmTokenizer::new`] takes to rebuild this tokenizer: scores, GGUF token types,
    /// special tokens and the space-prefix flag (the texts are [`SpmTokenizer::tokens`]).
    pub fn parts(&self) -> (&[f32], &[i32], SpecialTokens, bool) {
        (
            &self.scores,
            &self.types,
            self.special,
            self.add_space_prefix,
        )
    }

    pub fn bos(&self) -> Option<u32> {
        self.special.bos
    }

    pub fn eos(&self) -> Option<u32> {
        self.special.eos
    }

    /// The ids of `text`, without BOS or EOS (llama.cpp's `add_special = false`).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        self.tokenize(text, false)
    }

    /// The ids of `text` as a prompt: BOS first if the vocabulary says to add it
    /// (`add_bos_token`, true unless the file says otherwise), EOS last if `add_eos_token`
    /// (llama.cpp's `add_special = true`).
    pub fn encode_with_special(&self, text: &str) -> Vec<u32> {
        self.tokenize(text, true)
    }

    /// Text of `ids`, as llama.cpp's `detokenize` without special tokens: `▁` becomes a space,
    /// a byte token its byte, user-defined tokens their text, and control, unknown and unused
    /// tokens nothing. With `add_space_prefix` one leading space of the first token is dropped
    /// (only the first: a leading BOS keeps the next token's space, as in llama.cpp). Ids
    /// outside the vocabulary are skipped; bytes that do not form UTF-8 become U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut bytes = Vec::new();
        let mut strip_space = self.add_space_prefix;
        for &id in ids {
            if let Some(piece) = self.pieces.get(id as usize) {
                let piece = match piece.split_first() {
                    Some((b' ', rest)) if strip_space => rest,
                    _ => piece,
                };
                bytes.extend_from_slice(piece);
            }
            strip_space = false;
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn tokenize(&self, text: &str, add_special: bool) -> Vec<u32> {
        let mut out = Vec::new();
        if add_special && self.special.add_bos {
            out.extend(self.special.bos);
        }
        let mut after_special = true;
        for fragment in self.split_user_defined(text) {
            match fragment {
                Fragment::Token(id) => {
                    out.push(id);
                    after_special = true;
                }
                Fragment::Text(piece) => {
                    let prefix = if self.add_space_prefix && after_special {
                        "▁"
                    } else {
                        ""
                    };
                    let escaped = format!("{prefix}{}", piece.replace(' ', "▁"));
                    self.merge(&escaped, &mut out);
                    after_special = false;
                }
            }
        }
        if add_special && self.special.add_eos {
            out.extend(self.special.eos);
        }
        out
    }

    /// `text` cut at every occurrence of a user-defined token, longest tokens first; no empty
    /// text fragments.
    fn split_user_defined<'t>(&self, text: &'t str) -> Vec<Fragment<'t>> {
        let mut fragments = Vec::new();
        if !text.is_empty() {
            fragments.push(Fragment::Text(text));
        }
        for (id, token) in &self.user_defined {
            if !fragments
                .iter()
                .any(|f| matches!(f, Fragment::Text(t) if t.contains(token.as_str())))
            {
                continue;
            }
            let mut next = Vec::with_capacity(fragments.len() + 2);
            for fragment in fragments {
                let Fragment::Text(mut rest) = fragment else {
                    next.push(fragment);
                    continue;
                };
                while let Some(at) = rest.find(token.as_str()) {
                    if at > 0 {
                        next.push(Fragment::Text(&rest[..at]));
                    }
                    next.push(Fragment::Token(*id));
                    rest = &rest[at + token.len()..];
                }
                if !rest.is_empty() {
                    next.push(Fragment::Text(rest));
                }
            }
            fragments = next;
        }
        fragments
    }

    /// SentencePiece's merging on one escaped text piece, appending its ids to `out`.
    fn merge(&self, text: &str, out: &mut Vec<u32>) {
        let mut symbols: Vec<Symbol> = text
            .char_indices()
            .map(|(start, c)| Symbol {
                start,
                len: c.len_utf8(),
                prev: None,
                next: None,
            })
            .collect();
        let count = symbols.len();
        for (i, symbol) in symbols.iter_mut().enumerate() {
            symbol.prev = i.checked_sub(1);
            symbol.next = (i + 1 < count).then_some(i + 1);
        }
        let mut session = Session {
            text,
            tokenizer: self,
            queue: BinaryHeap::new(),
            built_from: HashMap::new(),
        };
        for i in 1..count {
            session.try_pair(&symbols, i - 1, i);
        }
        while let Some(pair) = session.queue.pop() {
            let (left, right) = (symbols[pair.left], symbols[pair.right]);
            // A pair whose symbols changed since it was queued is stale.
            if left.len == 0 || right.len == 0 || left.len + right.len != pair.len {
                continue;
            }
            symbols[pair.left].len += right.len;
            symbols[pair.right].len = 0;
            symbols[pair.left].next = right.next;
            if let Some(next) = right.next {
                symbols[next].prev = Some(pair.left);
            }
            if let Some(prev) = left.prev {
                session.try_pair(&symbols, prev, pair.left);
            }
            if let Some(next) = right.next {
                session.try_pair(&symbols, pair.left, next);
            }
        }
        let mut at = (count > 0).then_some(0);
        while let Some(i) = at {
            session.resegment(symbols[i].start, symbols[i].len, out);
            at = symbols[i].next;
        }
    }
}

enum Fragment<'t> {
    Text(&'t str),
    Token(u32),
}

/// A run of `text[start..start + len]` in the doubly linked list of symbols; `len` 0 once merged
/// into its left neighbour.
#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// Two adjacent symbols whose text together (`len` bytes) is a token of `score`.
struct Pair {
    score: f32,
    left: usize,
    right: usize,
    len: usize,
}

/// Highest score first, then the leftmost. Scores are never NaN (refused when built), so this
/// order is total; `-0.0` and `0.0` tie, as in llama.cpp's comparison.
impl Ord for Pair {
    fn cmp(&self, other: &Pair) -> Ordering {
        self.score
            .partial_cmp(&other.score)
            .unwrap_or(Ordering::Equal)
            .then_with(|| other.left.cmp(&self.left))
    }
}

impl PartialOrd for Pair {
    fn partial_cmp(&self, other: &Pair) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Pair {
    fn eq(&self, other: &Pair) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Pair {}

/// One text piece being merged.
struct Session<'a> {
    text: &'a str,
    tokenizer: &'a SpmTokenizer,
    queue: BinaryHeap<Pair>,
    /// For each merged text, the (start, len) of the two pieces it was last built from.
    built_from: HashMap<&'a str, [(usize, usize); 2]>,
}

impl<'a> Session<'a> {
    fn try_pair(&mut self, symbols: &[Symbol], left: usize, right: usize) {
        let (l, r) = (symbols[left], symbols[right]);
        let text: &'a str = self.text;
        let merged = &text[l.start..l.start + l.len + r.len];
        let Some(&id) = self.tokenizer.ids.get(merged) else {
            return;
        };
        self.queue.push(Pair {
            score: self.tokenizer.scores[id as usize],
            left,
            right,
            len: merged.len(),
        });
        self.built_from
            .insert(merged, [(l.start, l.len), (r.start, r.len)]);
    }

    /// A final symbol's ids: its token; else the two pieces it was merged from, each resegmented;
    /// else one byte token per byte. (As in llama.cpp every merge forms a token, so the middle
    /// case does not arise; it is kept for the algorithm's sake.) A stack, not recursion: the
    /// pieces only get shorter.
    fn resegment(&self, start: usize, len: usize, out: &mut Vec<u32>) {
        let mut stack = vec![(start, len)];
        while let Some((start, len)) = stack.pop() {
            let piece = &self.text[start..start + len];
            if let Some(&id) = self.tokenizer.ids.get(piece) {
                out.push(id);
            } else if let Some(&[left, right]) = self.built_from.get(piece) {
                stack.push(right);
                stack.push(left);
            } else {
                out.extend(piece.bytes().map(|b| self.tokenizer.byte_ids[b as usize]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::{GgufWriter, MetaArray};

    const SPECIAL: SpecialTokens = SpecialTokens {
        bos: Some(1),
        eos: Some(2),
        unk: Some(0),
        add_bos: true,
        add_eos: false,
    };

    /// `<unk>`, `<s>`, `</s>`, the 256 byte tokens (ids 3..=258), then `normal` with its scores.
    fn parts(normal: &[(&str, f32)]) -> (Vec<String>, Vec<f32>, Vec<i32>) {
        let mut tokens = vec!["<unk>".to_string(), "<s>".into(), "</s>".into()];
        let mut types = vec![2, 3, 3];
        for b in 0..=255u8 {
            tokens.push(format!("<0x{b:02X}>"));
            types.push(6);
        }
        let mut scores = vec![0.0; tokens.len()];
        for &(t, s) in normal {
            tokens.push(t.to_string());
            scores.push(s);
            types.push(1);
        }
        (tokens, scores, types)
    }

    fn vocab(normal: &[(&str, f32)], add_space_prefix: bool) -> SpmTokenizer {
        let (tokens, scores, types) = parts(normal);
        SpmTokenizer::new(tokens, scores, types, SPECIAL, add_space_prefix).unwrap()
    }

    fn byte(b: u8) -> u32 {
        3 + b as u32
    }

    // Normal tokens start at id 259.
    const A: u32 = 259;
    const B: u32 = 260;
    const C: u32 = 261;
    const AB: u32 = 262;
    const BC: u32 = 263;

    #[test]
    fn the_highest_scoring_pair_merges_first() {
        let t = vocab(
            &[
                ("a", 0.0),
                ("b", 0.0),
                ("c", 0.0),
                ("ab", -2.0),
                ("bc", -1.0),
            ],
            false,
        );
        assert_eq!(t.encode("abc"), [A, BC]);
        let t = vocab(
            &[
                ("a", 0.0),
                ("b", 0.0),
                ("c", 0.0),
                ("ab", -1.0),
                ("bc", -2.0),
            ],
            false,
        );
        assert_eq!(t.encode("abc"), [AB, C]);
        // A merge's result merges again: "ab" + "c" is a token too.
        let t = vocab(
            &[
                ("a", 0.0),
                ("b", 0.0),
                ("c", 0.0),
                ("ab", -1.0),
                ("bc", -2.0),
                ("abc", -3.0),
            ],
            false,
        );
        assert_eq!(t.encode("abc"), [264]);
    }

    #[test]
    fn equal_scores_merge_the_leftmost_pair() {
        let t = vocab(
            &[
                ("a", 0.0),
                ("b", 0.0),
                ("c", 0.0),
                ("ab", -1.0),
                ("bc", -1.0),
            ],
            false,
        );
        assert_eq!(t.encode("abc"), [AB, C]);
        assert_eq!(t.encode("bcab"), [BC, AB]);
        // -0.0 and 0.0 tie too.
        let t = vocab(
            &[
                ("a", 0.0),
                ("b", 0.0),
                ("c", 0.0),
                ("ab", 0.0),
                ("bc", -0.0),
            ],
            false,
        );
        assert_eq!(t.encode("abc"), [AB, C]);
    }

    #[test]
    fn characters_without_a_token_fall_back_to_bytes() {
        let t = vocab(&[("a", 0.0)], false);
        // é is C3 A9 in UTF-8; 🦙 is F0 9F A6 99.
        assert_eq!(t.encode("aé"), [A, byte(0xC3), byte(0xA9)]);
        let llama = t.encode("🦙a");
        assert_eq!(llama, [byte(0xF0), byte(0x9F), byte(0xA6), byte(0x99), A]);
        assert_eq!(t.decode(&llama), "🦙a");
        assert_eq!(t.encode(""), Vec::<u32>::new());
    }

    #[test]
    fn the_space_prefix_and_spaces_become_the_word_marker() {
        let normal = [("a", 0.0), ("▁", 0.0), ("▁a", -1.0), ("▁▁", -2.0)];
        let on = vocab(&normal, true);
        let off = vocab(&normal, false);
        let (a, space, space_a, two_spaces) = (A, B, C, AB);
        assert_eq!(on.encode("a a"), [space_a, space_a]);
        assert_eq!(off.encode("a a"), [a, space_a]);
        assert_eq!(on.encode(" a"), [space, space_a]);
        assert_eq!(on.encode("  "), [two_spaces, space]);
        assert_eq!(off.encode("  "), [two_spaces]);
        // The prefix is added once, to the start; decoding takes it off again.
        assert_eq!(on.decode(&on.encode("a a")), "a a");
        assert_eq!(on.decode(&on.encode(" a")), " a");
        assert_eq!(off.decode(&off.encode(" a")), " a");
        assert_eq!(off.decode(&[space_a]), " a");
        assert_eq!(on.decode(&[space_a]), "a");
        // BOS first: llama.cpp drops the space of the first token only, which is BOS.
        assert_eq!(on.encode_with_special("a"), [1, space_a]);
        assert_eq!(on.decode(&[1, space_a]), " a");
    }

    #[test]
    fn decode_turns_byte_tokens_into_bytes_and_drops_control_tokens() {
        let t = vocab(&[("a", 0.0)], true);
        assert_eq!(t.decode(&[byte(b'h'), byte(b'i'), byte(b'\n')]), "hi\n");
        assert_eq!(t.decode(&[byte(0xC3), byte(0xA9)]), "é");
        assert_eq!(t.decode(&[byte(0xC3)]), "\u{FFFD}");
        // A leading space byte is the prefix llama.cpp strips.
        assert_eq!(t.decode(&[byte(b' '), A]), "a");
        assert_eq!(t.decode(&[0, 1, A, 2, 99_999]), "a");
    }

    #[test]
    fn control_text_is_plain_text_and_user_defined_tokens_are_cut_out() {
        let (mut tokens, mut scores, mut types) = parts(&[("a", 0.0), ("▁", 0.0), ("▁a", -1.0)]);
        tokens.push("<sep>".into());
        scores.push(0.0);
        types.push(4);
        let t = SpmTokenizer::new(tokens, scores, types, SPECIAL, true).unwrap();
        let (a, space, space_a, sep) = (A, B, C, 262);
        // "<s>" is BOS's text, but only characters here.
        let lt_s_gt = [byte(b'<'), byte(b's'), byte(b'>')];
        assert_eq!(t.encode("<s>"), [&[space][..], &lt_s_gt].concat());
        // After a user-defined token the text gets the space prefix again, as in llama.cpp.
        assert_eq!(t.encode("a<sep>a"), [space_a, sep, space_a]);
        assert_eq!(t.encode("<sep>"), [sep]);
        assert_eq!(t.encode("a<sep><sep>"), [space_a, sep, sep]);
        assert_eq!(t.decode(&[space_a, sep, a]), "a<sep>a");
        assert_eq!(t.encode_with_special("a"), [1, space_a]);
    }

    #[test]
    fn bad_parts_are_refused() {
        let new = |tokens, scores, types, special| {
            SpmTokenizer::new(tokens, scores, types, special, true)
        };
        let (tokens, scores, types) = parts(&[("a", 0.0)]);
        let n = tokens.len();
        assert_eq!(
            new(tokens.clone(), scores[1..].to_vec(), types.clone(), SPECIAL).err(),
            Some(SpmError::LengthMismatch {
                key: SCORES,
                len: n - 1,
                tokens: n
            })
        );
        let mut long_types = types.clone();
        long_types.push(1);
        assert!(matches!(
            new(tokens.clone(), scores.clone(), long_types, SPECIAL),
            Err(SpmError::LengthMismatch { key: TYPES, .. })
        ));
        let mut nan = scores.clone();
        nan[n - 1] = f32::NAN;
        assert_eq!(
            new(tokens.clone(), nan, types.clone(), SPECIAL).err(),
            Some(SpmError::NanScore { id: n as u32 - 1 })
        );
        let mut dup = tokens.clone();
        dup[n - 1] = "<s>".into();
        assert_eq!(
            new(dup, scores.clone(), types.clone(), SPECIAL).err(),
            Some(SpmError::Duplicate {
                text: "<s>".into(),
                first: 1,
                second: n as u32 - 1
            })
        );
        let mut bad_byte = types.clone();
        bad_byte[n - 1] = 6;
        assert!(matches!(
            new(tokens.clone(), scores.clone(), bad_byte, SPECIAL),
            Err(SpmError::BadByteToken { .. })
        ));
        let (mut no_byte, mut no_byte_types) = (tokens.clone(), types.clone());
        no_byte[3 + 0xE9] = "x".into();
        no_byte_types[3 + 0xE9] = 1;
        assert_eq!(
            new(no_byte, scores.clone(), no_byte_types, SPECIAL).err(),
            Some(SpmError::MissingByte(0xE9))
        );
        let out_of_range = SpecialTokens {
            eos: Some(n as u32),
            ..SPECIAL
        };
        assert!(matches!(
            new(tokens.clone(), scores.clone(), types.clone(), out_of_range),
            Err(SpmError::SpecialOutOfRange { key: EOS, .. })
        ));
        let no_bos = SpecialTokens {
            bos: None,
            ..SPECIAL
        };
        assert_eq!(
            new(tokens.clone(), scores.clone(), types.clone(), no_bos).err(),
            Some(SpmError::NoSpecial {
                flag: ADD_BOS,
                id_key: BOS
            })
        );
        // An empty text stands in as llama.cpp names it, and the rest still works.
        let mut empty = tokens;
        empty[n - 1] = String::new();
        let t = new(empty, scores, types, SPECIAL).unwrap();
        assert_eq!(t.vocab_size(), n);
    }

    fn strings(items: &[String]) -> MetaValue {
        MetaValue::Array(MetaArray {
            elem: ValueType::String,
            items: items.iter().map(|s| MetaValue::String(s.clone())).collect(),
        })
    }

    fn gguf(
        edit: impl FnOnce(&mut Vec<(&'static str, MetaValue)>),
    ) -> Result<SpmTokenizer, SpmError> {
        let (tokens, scores, types) = parts(&[("a", 0.0), ("▁", 0.0), ("▁a", -1.0)]);
        let mut meta = vec![
            (MODEL, MetaValue::String("llama".into())),
            (TOKENS, strings(&tokens)),
            (
                SCORES,
                MetaValue::Array(MetaArray {
                    elem: ValueType::F32,
                    items: scores.into_iter().map(MetaValue::F32).collect(),
                }),
            ),
            (
                TYPES,
                MetaValue::Array(MetaArray {
                    elem: ValueType::I32,
                    items: types.into_iter().map(MetaValue::I32).collect(),
                }),
            ),
            (BOS, MetaValue::U32(1)),
            (EOS, MetaValue::U32(2)),
            (UNK, MetaValue::U32(0)),
        ];
        edit(&mut meta);
        let mut w = GgufWriter::new();
        for (key, value) in meta {
            w.add_metadata(key, value);
        }
        SpmTokenizer::from_gguf(&GgufFile::from_bytes(w.to_bytes()).unwrap())
    }

    fn remove(meta: &mut Vec<(&'static str, MetaValue)>, key: &str) {
        meta.retain(|(k, _)| *k != key);
    }

    fn set(meta: &mut Vec<(&'static str, MetaValue)>, key: &'static str, value: MetaValue) {
        remove(meta, key);
        meta.push((key, value));
    }

    #[test]
    fn from_gguf_reads_the_metadata_and_llama_cpp_defaults() {
        let t = gguf(|_| ()).unwrap();
        assert_eq!((t.vocab_size(), t.bos(), t.eos()), (262, Some(1), Some(2)));
        assert_eq!(t.encode("a a"), [C, C]);
        assert_eq!(t.encode_with_special("a"), [1, C]);
        let t = gguf(|m| {
            set(m, ADD_SPACE_PREFIX, MetaValue::Bool(false));
            set(m, ADD_BOS, MetaValue::Bool(false));
            set(m, ADD_EOS, MetaValue::Bool(true));
        })
        .unwrap();
        assert_eq!(t.encode_with_special("a a"), [A, C, 2]);
        // Without scores, types and ids: scores 0, all normal, BOS 1, EOS 2.
        let t = gguf(|m| {
            for key in [SCORES, TYPES, BOS, EOS, UNK] {
                remove(m, key);
            }
        })
        .unwrap();
        assert_eq!((t.bos(), t.eos()), (Some(1), Some(2)));
        assert_eq!(t.decode(&[1, A]), "<s>a");
    }

    #[test]
    fn from_gguf_names_the_key_that_is_missing_or_mistyped() {
        assert_eq!(
            gguf(|m| remove(m, MODEL)).err(),
            Some(SpmError::Missing {
                key: MODEL,
                expected: "the tokenizer's name, `llama`"
            })
        );
        assert_eq!(
            gguf(|m| set(m, MODEL, MetaValue::String("gpt2".into()))).err(),
            Some(SpmError::Unsupported("gpt2".into()))
        );
        assert_eq!(
            gguf(|m| set(m, MODEL, MetaValue::U32(1))).err(),
            Some(SpmError::WrongType {
                key: MODEL,
                expected: "a string",
                found: "U32".into()
            })
        );
        assert!(matches!(
            gguf(|m| remove(m, TOKENS)),
            Err(SpmError::Missing { key: TOKENS, .. })
        ));
        assert!(matches!(
            gguf(|m| set(m, TOKENS, MetaValue::String("a".into()))),
            Err(SpmError::WrongType { key: TOKENS, .. })
        ));
        let floats = MetaValue::Array(MetaArray {
            elem: ValueType::F64,
            items: vec![MetaValue::F64(0.0); 262],
        });
        let err = gguf(|m| set(m, SCORES, floats)).err().unwrap();
        assert_eq!(
            err.to_string(),
            "`tokenizer.ggml.scores` must be an array of f32 (or i32), but is an array of F64"
        );
        let short = MetaValue::Array(MetaArray {
            elem: ValueType::I32,
            items: vec![MetaValue::I32(1); 5],
        });
        assert_eq!(
            gguf(|m| set(m, TYPES, short)).err(),
            Some(SpmError::LengthMismatch {
                key: TYPES,
                len: 5,
                tokens: 262
            })
        );
        assert_eq!(
            gguf(|m| set(m, BOS, MetaValue::U32(262))).err(),
            Some(SpmError::SpecialOutOfRange {
                key: BOS,
                id: 262,
                vocab_size: 262
            })
        );
        assert!(matches!(
            gguf(|m| set(m, EOS, MetaValue::I32(-1))),
            Err(SpmError::WrongType { key: EOS, .. })
        ));
        assert!(matches!(
            gguf(|m| set(m, ADD_SPACE_PREFIX, MetaValue::U8(1))),
            Err(SpmError::WrongType {
                key: ADD_SPACE_PREFIX,
                ..
            })
        ));
    }
}
