//! umT5 tokenizer (official `wan/modules/tokenizers.py:HuggingfaceTokenizer` as
//! `T5EncoderModel` builds it: `seq_len = text_len` (512), `clean='whitespace'`, called with
//! `add_special_tokens=True`, `return_mask=True`).
//!
//! The HF `tokenizers` crate runs the folder's `tokenizer.json` (Precompiled nmt_nfkc →
//! Strip → Replace(' {2,}') → Metaspace → Unigram; post-processor `$A </s>`), with
//! truncation to `text_len` (511 tokens + `</s>`) and padding with id 0 to `text_len`,
//! exactly the settings of the official call. Over-long prompts are truncated, not
//! refused: [`Tokenized::truncated`] tells the caller to warn.
use std::path::Path;

use mlx_rs::Array;
use tokenizers::{
    PaddingDirection, PaddingParams, PaddingStrategy, Tokenizer, TruncationDirection,
    TruncationParams, TruncationStrategy,
};

use crate::error::{Error, Result};
use crate::t5::clean::clean_whitespace;

/// Official `text_len` of every Wan2.2 task.
pub const TEXT_LEN: usize = 512;

/// `tokenizer.json` files larger than this are refused before parsing (umT5's is ~17 MB).
const MAX_TOKENIZER_BYTES: u64 = 256 << 20;

/// One tokenized prompt, padded to `text_len`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokenized {
    /// The prompt after the official cleaning.
    pub cleaned: String,
    /// `[text_len]`, pad 0, ending (before padding) with `</s>` = 1.
    pub ids: Vec<i32>,
    /// `[text_len]`, 1 for every real token incl. `</s>`.
    pub mask: Vec<i32>,
    /// Number of real tokens incl. `</s>` (= mask sum, ≥ 1).
    pub length: usize,
    /// The prompt had more than `text_len − 1` tokens and was cut (warn the user).
    pub truncated: bool,
}

/// A batch of prompts as the encoder takes them.
#[derive(Debug)]
pub struct TokenizedBatch {
    /// `[B, text_len]` int32.
    pub ids: Array,
    /// `[B, text_len]` int32.
    pub mask: Array,
    pub rows: Vec<Tokenized>,
}

#[derive(Clone)]
pub struct T5Tokenizer {
    tok: Tokenizer,
    text_len: usize,
}

impl std::fmt::Debug for T5Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("T5Tokenizer")
            .field("text_len", &self.text_len)
            .field("vocab", &self.tok.get_vocab_size(true))
            .finish()
    }
}

impl T5Tokenizer {
    /// The tokenizer folder of a checkpoint (`<ckpt>/google/umt5-xxl`), `text_len` 512.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        Self::from_file(&dir.join("tokenizer.json"), TEXT_LEN)
    }

    pub fn from_file(path: &Path, text_len: usize) -> Result<Self> {
        let meta = std::fs::metadata(path).map_err(|_| Error::Missing(path.to_path_buf()))?;
        if meta.len() > MAX_TOKENIZER_BYTES {
            return Err(Error::format(
                path,
                format!("{} bytes is too large for a tokenizer.json", meta.len()),
            ));
        }
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(&bytes, text_len).map_err(|e| match e {
            Error::Format { reason, .. } => Error::format(path, reason),
            other => other,
        })
    }

    pub fn from_bytes(bytes: &[u8], text_len: usize) -> Result<Self> {
        let bad = |r: String| Error::format("tokenizer.json", r);
        if text_len < 2 {
            return Err(Error::Config(format!("text_len {text_len} must be ≥ 2")));
        }
        let mut tok = Tokenizer::from_bytes(bytes).map_err(|e| bad(e.to_string()))?;
        let pad_id = tok
            .token_to_id("<pad>")
            .ok_or_else(|| bad("no `<pad>` token".into()))?;
        if tok.token_to_id("</s>").is_none() {
            return Err(bad("no `</s>` token".into()));
        }
        // What the official `tokenizer(..., padding='max_length', truncation=True,
        // max_length=text_len)` call sets; the post-processor then fits `</s>` in.
        tok.with_truncation(Some(TruncationParams {
            max_length: text_len,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
            direction: TruncationDirection::Right,
        }))
        .map_err(|e| bad(e.to_string()))?;
        tok.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::Fixed(text_len),
            direction: PaddingDirection::Right,
            pad_to_multiple_of: None,
            pad_id,
            pad_type_id: 0,
            pad_token: "<pad>".into(),
        }));
        Ok(Self { tok, text_len })
    }

    pub fn text_len(&self) -> usize {
        self.text_len
    }

    pub fn vocab_size(&self) -> usize {
        self.tok.get_vocab_size(true)
    }

    /// Clean and tokenize one prompt (any language; empty → `[</s>, pad, …]`).
    pub fn encode(&self, prompt: &str) -> Result<Tokenized> {
        let cleaned = clean_whitespace(prompt);
        let enc = self
            .tok
            .encode(cleaned.as_str(), true)
            .map_err(|e| Error::Input(format!("tokenizing the prompt failed: {e}")))?;
        let ids: Vec<i32> = enc.get_ids().iter().map(|&i| i as i32).collect();
        let mask: Vec<i32> = enc.get_attention_mask().iter().map(|&m| m as i32).collect();
        if ids.len() != self.text_len || mask.len() != self.text_len {
            return Err(Error::Input(format!(
                "tokenizer produced {} ids for text_len {}",
                ids.len(),
                self.text_len
            )));
        }
        let length = mask.iter().filter(|&&m| m != 0).count();
        Ok(Tokenized {
            cleaned,
            truncated: !enc.get_overflowing().is_empty(),
            ids,
            mask,
            length,
        })
    }

    /// Tokenize several prompts into `[B, text_len]` arrays.
    pub fn encode_batch(&self, prompts: &[&str]) -> Result<TokenizedBatch> {
        if prompts.is_empty() {
            return Err(Error::Input("no prompt to tokenize".into()));
        }
        let rows = prompts
            .iter()
            .map(|p| self.encode(p))
            .collect::<Result<Vec<_>>>()?;
        let shape = [rows.len() as i32, self.text_len as i32];
        let ids: Vec<i32> = rows.iter().flat_map(|r| r.ids.iter().copied()).collect();
        let mask: Vec<i32> = rows.iter().flat_map(|r| r.mask.iter().copied()).collect();
        Ok(TokenizedBatch {
            ids: Array::from_slice(&ids, &shape),
            mask: Array::from_slice(&mask, &shape),
            rows,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_tokenizers_are_clear_errors() {
        let missing = T5Tokenizer::from_file(Path::new("/nonexistent/tokenizer.json"), TEXT_LEN);
        assert!(matches!(missing, Err(Error::Missing(_))));
        assert!(matches!(
            T5Tokenizer::from_bytes(b"{ not json", TEXT_LEN),
            Err(Error::Format { .. })
        ));
        assert!(matches!(
            T5Tokenizer::from_bytes(b"{}", TEXT_LEN),
            Err(Error::Format { .. })
        ));
        assert!(matches!(
            T5Tokenizer::from_bytes(b"{}", 1),
            Err(Error::Config(_))
        ));
    }
}
