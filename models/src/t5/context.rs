//! Prompt → context as the pipelines use it (official `T5EncoderModel.__call__` in
//! `wan/modules/t5.py`): tokenize to `text_len`, run the encoder on the full padded batch
//! with the key mask, then trim each row to its true length `L_i = sum(mask)` (`</s>`
//! included) → `Vec<[L_i, dim]>`. The DiT re-pads with **zeros** to its `text_len`
//! (`WanModel::embed_context`), so padded rows never carry T5 outputs.
//!
//! The encoder is an ordinary owned value: drop the [`TextEncoder`] (or call
//! [`TextEncoder::into_tokenizer`]) after encoding the prompt and the negative prompt to
//! free its weights before the DiT loads; building it again is cheap (lazy placeholders,
//! weights mapped from the checkpoint file).
use std::path::Path;

use mlx_rs::ops::indexing::TryIndexOp;
use mlx_rs::{Array, Dtype};

use crate::checkpoint::TensorSource;
use crate::checkpoint::pth::PthFile;
use crate::error::{Error, Result};
use crate::t5::config::T5Config;
use crate::t5::encoder::{T5Encoder, Trace};
use crate::t5::tokenizer::T5Tokenizer;

/// Official file names inside a checkpoint folder (spec §1.2, every task).
pub const T5_CHECKPOINT: &str = "models_t5_umt5-xxl-enc-bf16.pth";
pub const TOKENIZER_SUBDIR: &str = "google/umt5-xxl";

/// Contexts of a batch of prompts.
#[derive(Debug)]
pub struct Encoded {
    /// One `[L_i, dim]` f32 array per prompt.
    pub contexts: Vec<Array>,
    /// Per prompt: it was longer than `text_len − 1` tokens and got cut.
    pub truncated: Vec<bool>,
}

/// Row `b` of `hidden [B, L, D]` trimmed to `lengths[b]` rows → `[L_b, D]`.
pub fn trim_rows(hidden: &Array, lengths: &[usize]) -> Result<Vec<Array>> {
    let s = hidden.shape();
    if s.len() != 3 || s[0] as usize != lengths.len() {
        return Err(Error::Input(format!(
            "cannot trim {s:?} to {} lengths",
            lengths.len()
        )));
    }
    lengths
        .iter()
        .enumerate()
        .map(|(b, &len)| {
            if len == 0 || len > s[1] as usize {
                return Err(Error::Input(format!(
                    "row {b}: length {len} is outside 1..={}",
                    s[1]
                )));
            }
            let row = hidden.try_index(b as i32)?; // [L, D]
            Ok(row.try_index(..len as i32)?)
        })
        .collect()
}

/// Valid lengths of a `[B, L]` mask (`mask.gt(0).sum(dim=1)`).
pub fn mask_lengths(mask: &Array) -> Result<Vec<usize>> {
    let m = mask.as_dtype(Dtype::Int32)?.gt(Array::from_int(0))?;
    let sums = m.as_dtype(Dtype::Int32)?.sum_axis(1, None)?;
    Ok(sums.as_slice::<i32>().iter().map(|&v| v as usize).collect())
}

/// Tokenizer + encoder: what the pipeline holds while it encodes the prompts.
#[derive(Debug)]
pub struct TextEncoder {
    pub tokenizer: T5Tokenizer,
    pub encoder: T5Encoder,
}

impl TextEncoder {
    /// Load the encoder strictly from `weights` (official keys), casting to `dtype`
    /// (`Float32` on CPU, `Bfloat16` on Metal).
    pub fn load(
        tokenizer: T5Tokenizer,
        config: T5Config,
        weights: &dyn TensorSource,
        dtype: Dtype,
    ) -> Result<Self> {
        if tokenizer.vocab_size() > config.vocab as usize {
            return Err(Error::Config(format!(
                "tokenizer has {} tokens but the encoder only {} embeddings",
                tokenizer.vocab_size(),
                config.vocab
            )));
        }
        let encoder = T5Encoder::load(config, weights, dtype)?;
        Ok(Self { tokenizer, encoder })
    }

    /// From an official checkpoint folder: `google/umt5-xxl/tokenizer.json` and
    /// `models_t5_umt5-xxl-enc-bf16.pth` (dimensions inferred from the weights).
    pub fn from_checkpoint_dir(dir: &Path, dtype: Dtype) -> Result<Self> {
        let tokenizer = T5Tokenizer::from_dir(&dir.join(TOKENIZER_SUBDIR))?;
        let pth = dir.join(T5_CHECKPOINT);
        if !pth.exists() {
            return Err(Error::Missing(pth));
        }
        let src = PthFile::open(&pth)?;
        Self::load(tokenizer, T5Config::infer(&src)?, &src, dtype)
    }

    /// Encode prompts (one batch) → trimmed contexts, evaluated.
    pub fn encode(&self, prompts: &[&str]) -> Result<Encoded> {
        self.encode_traced(prompts, None)
    }

    pub fn encode_traced(&self, prompts: &[&str], trace: Option<&mut Trace>) -> Result<Encoded> {
        let batch = self.tokenizer.encode_batch(prompts)?;
        let hidden = self.encoder.forward(&batch.ids, &batch.mask, trace)?;
        hidden.eval()?;
        let lengths: Vec<usize> = batch.rows.iter().map(|r| r.length).collect();
        let contexts = trim_rows(&hidden, &lengths)?;
        Ok(Encoded {
            contexts,
            truncated: batch.rows.iter().map(|r| r.truncated).collect(),
        })
    }

    /// Drop the encoder weights and keep the tokenizer.
    pub fn into_tokenizer(self) -> T5Tokenizer {
        self.tokenizer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_trimmed_to_their_mask_length() {
        let h = Array::from_iter(0..2 * 4 * 3, &[2, 4, 3])
            .as_dtype(Dtype::Float32)
            .unwrap();
        let mask = Array::from_slice(&[1i32, 1, 1, 0, 1, 0, 0, 0], &[2, 4]);
        let lens = mask_lengths(&mask).unwrap();
        assert_eq!(lens, vec![3, 1]);
        let rows = trim_rows(&h, &lens).unwrap();
        assert_eq!(rows[0].shape(), &[3, 3]);
        assert_eq!(rows[1].shape(), &[1, 3]);
        assert_eq!(
            rows[1].to_vec_cast::<f32>().unwrap(),
            vec![12.0, 13.0, 14.0]
        );
        assert!(trim_rows(&h, &[5, 1]).is_err());
        assert!(trim_rows(&h, &[0, 1]).is_err());
        assert!(trim_rows(&h, &[1]).is_err());
    }
}
