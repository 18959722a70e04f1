//! umT5 encoder (official `wan/modules/t5.py`: `T5Encoder`, `T5SelfAttention`, `T5Attention`,
//! `T5FeedForward`, `T5LayerNorm`, `T5RelativeEmbedding` with `shared_pos=False`).
//!
//! Layout: ids `[B, L]`, hidden states `[B, L, dim]`, attention `[B, H, L, d]`. Weights keep
//! the official names (`blocks.i.attn.q`, …) and PyTorch Linear layout `[out, in]`.
//! Dtypes: the official file is bf16. [`T5Encoder::load`] casts every weight to the
//! requested compute dtype once (f32 on CPU; bf16 is offered for Metal); the residual
//! stream, norms and softmax stay f32 whatever the weight dtype, so bf16 only affects
//! the matmuls (official bf16 keeps the whole stream in bf16: we are at least as exact).
use std::collections::BTreeMap;

use mlx_rs::fast;
use mlx_rs::macros::ModuleParameters;
use mlx_rs::module::{ModuleParameters as _, Param};
use mlx_rs::{Array, Dtype};

use crate::checkpoint::{self, TensorSource};
use crate::error::{Error, Result};
use crate::nn::{Linear, cast, zeros_param};
use crate::t5::config::T5Config;
use crate::t5::keys;

/// Intermediates for parity checks, by fixture name (`token_embedding`, `block0_out`, …).
pub type Trace = BTreeMap<String, Array>;

/// `nn.Embedding`: a `[num, dim]` table.
#[derive(Debug, Clone, ModuleParameters)]
pub struct Embedding {
    #[param]
    pub weight: Param<Array>,
}

/// `T5LayerNorm`: RMS only (no mean subtraction, no bias), computed in f32.
#[derive(Debug, Clone, ModuleParameters)]
pub struct T5LayerNorm {
    #[param]
    pub weight: Param<Array>,
}

impl T5LayerNorm {
    fn forward(&self, x: &Array, eps: f32) -> Result<Array> {
        let w = cast(&self.weight, Dtype::Float32)?;
        Ok(fast::rms_norm(cast(x, Dtype::Float32)?, Some(&w), eps)?)
    }
}

/// `T5Attention`: q/k/v/o without bias, **no** 1/√d scaling (T5).
#[derive(Debug, Clone, ModuleParameters)]
pub struct T5Attention {
    #[param]
    pub q: Linear,
    #[param]
    pub k: Linear,
    #[param]
    pub v: Linear,
    #[param]
    pub o: Linear,
}

impl T5Attention {
    /// `x [B, L, dim]`, `bias [B|1, H, L, L]` (position bias + key mask, additive) → `[B, L, dim]`.
    fn forward(&self, x: &Array, bias: &Array, heads: i32) -> Result<Array> {
        let (b, l) = (x.shape()[0], x.shape()[1]);
        // [B, L, H·d] → [B, H, L, d]
        let split = |a: Array| -> Result<Array> {
            let a = cast(&a, Dtype::Float32)?;
            Ok(a.reshape(&[b, l, heads, -1])?
                .transpose_axes(&[0, 2, 1, 3])?)
        };
        let q = split(self.q.forward(x)?)?;
        let k = split(self.k.forward(x)?)?;
        let v = split(self.v.forward(x)?)?;
        // softmax(q·kᵀ + bias)·v with scale 1.0; the additive mask carries the bias.
        let out = fast::scaled_dot_product_attention(&q, &k, &v, 1.0, bias, None)?;
        // [B, H, L, d] → [B, L, H·d]
        let out = out.transpose_axes(&[0, 2, 1, 3])?.reshape(&[b, l, -1])?;
        cast(&self.o.forward(&out)?, Dtype::Float32)
    }
}

/// `T5FeedForward`: `fc2(fc1(x) · gelu_tanh(gate(x)))`, no biases. The official
/// `gate = Sequential(Linear, GELU)` is the field `gate` (key `gate.0`, see `keys.rs`).
#[derive(Debug, Clone, ModuleParameters)]
pub struct T5FeedForward {
    #[param]
    pub gate: Linear,
    #[param]
    pub fc1: Linear,
    #[param]
    pub fc2: Linear,
}

impl T5FeedForward {
    fn forward(&self, x: &Array) -> Result<Array> {
        let g = mlx_rs::nn::gelu_approximate(self.gate.forward(x)?)?;
        let h = self.fc1.forward(x)?.multiply(&g)?;
        cast(&self.fc2.forward(&h)?, Dtype::Float32)
    }
}

/// `T5RelativeEmbedding(bidirectional=True)`: one scalar per (bucket, head).
#[derive(Debug, Clone, ModuleParameters)]
pub struct T5RelativeEmbedding {
    /// `[num_buckets, num_heads]`.
    #[param]
    pub embedding: Embedding,
}

impl T5RelativeEmbedding {
    /// `buckets [L, L]` (int32) → bias `[1, H, L, L]` (f32).
    fn forward(&self, buckets: &Array) -> Result<Array> {
        let w = cast(&self.embedding.weight, Dtype::Float32)?;
        let e = w.take_axis(buckets, 0)?; // [L, L, H]
        Ok(e.transpose_axes(&[2, 0, 1])?.expand_dims(0)?)
    }
}

/// Bucket of `rel = key_pos − query_pos` exactly as the official bidirectional
/// `_relative_position_bucket`, including its float32 `log` (and without evaluating
/// `log(0)`, which the official code computes and then discards through `where`).
pub fn relative_position_bucket(rel: i64, num_buckets: i32, max_dist: i32) -> i32 {
    let half = num_buckets / 2;
    let mut bucket = if rel > 0 { half } else { 0 };
    let a = rel.unsigned_abs();
    let max_exact = half / 2;
    if a < max_exact as u64 {
        bucket += a as i32;
    } else {
        // torch: log(rel.float() / max_exact) / math.log(max_dist / max_exact) * (half − max_exact),
        // all in float32 (the Python double scalars are rounded to f32), then `.long()` (trunc).
        let denom = ((max_dist as f64) / (max_exact as f64)).ln() as f32;
        let v = ((a as f32) / (max_exact as f32)).ln() / denom * ((half - max_exact) as f32);
        let large = max_exact + v as i32;
        bucket += large.min(half - 1);
    }
    bucket
}

/// Buckets for an `l × l` self-attention, row = query, column = key, as an `[L, L]` int32 array.
pub fn relative_buckets(l: i32, num_buckets: i32, max_dist: i32) -> Array {
    let n = l as usize;
    let mut v = Vec::with_capacity(n * n);
    for q in 0..l as i64 {
        for k in 0..l as i64 {
            v.push(relative_position_bucket(k - q, num_buckets, max_dist));
        }
    }
    Array::from_slice(&v, &[l, l])
}

/// `T5SelfAttention` with its own position table (umT5).
#[derive(Debug, Clone, ModuleParameters)]
pub struct T5SelfAttention {
    #[param]
    pub norm1: T5LayerNorm,
    #[param]
    pub attn: T5Attention,
    #[param]
    pub norm2: T5LayerNorm,
    #[param]
    pub ffn: T5FeedForward,
    #[param]
    pub pos_embedding: T5RelativeEmbedding,
}

#[derive(Debug, Clone, ModuleParameters)]
pub struct T5Encoder {
    pub config: T5Config,
    #[param]
    pub token_embedding: Embedding,
    #[param]
    pub blocks: Vec<T5SelfAttention>,
    #[param]
    pub norm: T5LayerNorm,
}

impl T5Encoder {
    /// Build with lazy zero placeholders (no memory until loaded or evaluated).
    pub fn new(config: T5Config) -> Result<Self> {
        config.validate()?;
        let c = &config;
        let lin = |i, o| Linear::zeros(i, o, false);
        let norm = || -> Result<T5LayerNorm> {
            Ok(T5LayerNorm {
                weight: zeros_param(&[c.dim])?,
            })
        };
        let blocks = (0..c.num_layers)
            .map(|_| -> Result<T5SelfAttention> {
                Ok(T5SelfAttention {
                    norm1: norm()?,
                    attn: T5Attention {
                        q: lin(c.dim, c.dim_attn)?,
                        k: lin(c.dim, c.dim_attn)?,
                        v: lin(c.dim, c.dim_attn)?,
                        o: lin(c.dim_attn, c.dim)?,
                    },
                    norm2: norm()?,
                    ffn: T5FeedForward {
                        gate: lin(c.dim, c.dim_ffn)?,
                        fc1: lin(c.dim, c.dim_ffn)?,
                        fc2: lin(c.dim_ffn, c.dim)?,
                    },
                    pos_embedding: T5RelativeEmbedding {
                        embedding: Embedding {
                            weight: zeros_param(&[c.num_buckets, c.num_heads])?,
                        },
                    },
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            token_embedding: Embedding {
                weight: zeros_param(&[c.vocab, c.dim])?,
            },
            blocks,
            norm: norm()?,
            config,
        })
    }

    /// Official keys and shapes this encoder expects (sorted).
    pub fn expected_params(&self) -> Vec<(String, Vec<i32>)> {
        checkpoint::expected_params(self, &keys::to_official)
    }

    /// Build and load strictly from official keys; every weight is cast to `dtype`
    /// (`Float32` for CPU compute, `Bfloat16` to keep the official precision on Metal).
    /// Linears a converted folder stores quantized stay quantized (`t5::load`).
    pub fn load(config: T5Config, src: &dyn TensorSource, dtype: Dtype) -> Result<Self> {
        Self::load_with(config, src, dtype, None)
    }

    /// Dtype of the matmul weights.
    pub fn compute_dtype(&self) -> Dtype {
        self.token_embedding.weight.dtype()
    }

    pub fn num_params(&self) -> usize {
        self.parameters().flatten().values().map(|a| a.size()).sum()
    }

    /// `ids [B, L]` (any integer dtype), `mask [B, L]` (1 valid, 0 pad) → final-norm output
    /// `[B, L, dim]` f32 for every row, padded rows included (as official).
    pub fn forward(
        &self,
        ids: &Array,
        mask: &Array,
        mut trace: Option<&mut Trace>,
    ) -> Result<Array> {
        let c = &self.config;
        let s = ids.shape();
        if s.len() != 2 || mask.shape() != s || s[1] == 0 {
            return Err(Error::Input(format!(
                "T5 ids and mask must both be [B, L] with L > 0, got {s:?} and {:?}",
                mask.shape()
            )));
        }
        let l = s[1];
        let ids = ids.as_dtype(Dtype::Int32)?;
        let (lo, hi) = (
            ids.min(None)?.item_cast::<i32>(),
            ids.max(None)?.item_cast::<i32>(),
        );
        if lo < 0 || hi >= c.vocab {
            return Err(Error::Input(format!(
                "token ids must lie in 0..{}, got {lo}..={hi}",
                c.vocab
            )));
        }
        // Key mask as an additive [B, 1, 1, L] term: 0 or finfo(f32).min. Adding it to the
        // O(1) bias equals the official masked_fill (|bias| is far below min's ulp).
        let keep = mask.as_dtype(Dtype::Int32)?.ne(Array::from_int(0))?;
        let neg = Array::from_f32(f32::MIN);
        let key_mask =
            mlx_rs::ops::select(&keep, Array::from_f32(0.0), &neg)?.reshape(&[s[0], 1, 1, l])?;
        let buckets = relative_buckets(l, c.num_buckets, c.max_dist);

        // Gather the rows first, then cast: casting the whole table would materialise an
        // f32 copy of umT5-XXL's 256k×4096 embedding (4.2 GB) when the weights are bf16.
        let rows = self.token_embedding.weight.take_axis(&ids, 0)?; // [B, L, dim]
        let mut x = cast(&rows, Dtype::Float32)?;
        if let Some(t) = trace.as_deref_mut() {
            t.insert("token_embedding".into(), x.clone());
            t.insert("rel_buckets".into(), buckets.clone());
        }
        for (i, blk) in self.blocks.iter().enumerate() {
            let pos_bias = blk.pos_embedding.forward(&buckets)?; // [1, H, L, L]
            let bias = pos_bias.add(&key_mask)?; // [B, H, L, L]
            let h = blk
                .attn
                .forward(&blk.norm1.forward(&x, c.eps)?, &bias, c.num_heads)?;
            x = x.add(&h)?;
            let h = blk.ffn.forward(&blk.norm2.forward(&x, c.eps)?)?;
            x = x.add(&h)?;
            if let Some(t) = trace.as_deref_mut() {
                t.insert(format!("pos_bias{i}"), pos_bias);
                t.insert(format!("block{i}_out"), x.clone());
            }
        }
        self.norm.forward(&x, c.eps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_follow_the_official_bidirectional_rule() {
        let b = |r| relative_position_bucket(r, 32, 128);
        // exact region: |r| < 8, positive distances offset by 16
        assert_eq!((b(0), b(1), b(-1), b(7), b(-7)), (0, 17, 1, 23, 7));
        // log region: 8 + trunc(ln(a/8)/ln(16)·8); a = 8 → 8, a = 12 → 8 + trunc(1.17) = 9
        assert_eq!((b(8), b(-8), b(12)), (24, 8, 25));
        // clamp at the last bucket of each half beyond max_dist
        assert_eq!((b(127), b(128), b(1000), b(-1000)), (31, 31, 31, 15));
    }

    #[test]
    fn bad_ids_are_an_input_error() {
        let mut c = T5Config::umt5_xxl();
        c.vocab = 8;
        c.dim = 8;
        c.dim_attn = 8;
        c.dim_ffn = 8;
        c.num_heads = 2;
        c.num_layers = 1;
        let enc = T5Encoder::new(c).unwrap();
        let ids = Array::from_slice(&[1i32, 9], &[1, 2]);
        let mask = Array::from_slice(&[1i32, 1], &[1, 2]);
        assert!(matches!(
            enc.forward(&ids, &mask, None),
            Err(Error::Input(_))
        ));
        let short = Array::from_slice(&[1i32], &[1, 1]);
        assert!(matches!(
            enc.forward(&ids, &short, None),
            Err(Error::Input(_))
        ));
    }
}
