//! `T5Encoder` constructor arguments (official `wan/modules/t5.py`: `umt5_xxl(encoder_only=True)`
//! → `T5Encoder(vocab, dim, dim_attn, dim_ffn, num_heads, num_layers, num_buckets, shared_pos)`).
//! Numbers only: the checkpoint and tokenizer paths live with the caller.
use serde::{Deserialize, Serialize};

use crate::checkpoint::TensorSource;
use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct T5Config {
    pub vocab: i32,
    pub dim: i32,
    pub dim_attn: i32,
    pub dim_ffn: i32,
    pub num_heads: i32,
    pub num_layers: i32,
    pub num_buckets: i32,
    /// umT5: `false` (every block owns its relative-position table). `true` (one shared
    /// table, classic T5) is refused by [`T5Config::validate`]: no Wan checkpoint uses it.
    #[serde(default)]
    pub shared_pos: bool,
    /// `T5RelativeEmbedding(max_dist=128)` (not a constructor argument of `T5Encoder`).
    #[serde(default = "default_max_dist")]
    pub max_dist: i32,
    /// `T5LayerNorm(eps=1e-6)`.
    #[serde(default = "default_eps")]
    pub eps: f32,
}

fn default_max_dist() -> i32 {
    128
}
fn default_eps() -> f32 {
    1e-6
}

/// Bounds far above umT5-XXL; they stop a hostile config from sizing allocations.
const MAX_VOCAB: i32 = 1 << 20;
const MAX_DIM: i32 = 1 << 16;
const MAX_LAYERS: i32 = 256;

impl T5Config {
    /// `umt5_xxl` of the official factory (spec §3.1): the text encoder of every Wan2.2 task.
    pub fn umt5_xxl() -> Self {
        Self {
            vocab: 256_384,
            dim: 4096,
            dim_attn: 4096,
            dim_ffn: 10240,
            num_heads: 64,
            num_layers: 24,
            num_buckets: 32,
            shared_pos: false,
            max_dist: 128,
            eps: 1e-6,
        }
    }

    pub fn head_dim(&self) -> i32 {
        self.dim_attn / self.num_heads
    }

    /// Parameter count of the encoder (5,680,910,336 for umT5-XXL, spec §3.2).
    pub fn num_params(&self) -> u64 {
        let (d, a, f) = (self.dim as u64, self.dim_attn as u64, self.dim_ffn as u64);
        let block = 2 * d + 4 * d * a + 3 * d * f + (self.num_buckets * self.num_heads) as u64;
        self.vocab as u64 * d + self.num_layers as u64 * block + d
    }

    /// Infer the dimensions from an encoder state_dict (official keys), e.g. a tiny test
    /// checkpoint; `max_dist` and `eps` keep the umT5 values (they are not stored).
    pub fn infer(src: &dyn TensorSource) -> Result<Self> {
        let shape = |k: &str| -> Result<Vec<i32>> {
            src.tensor_shape(k)
                .filter(|s| s.len() == 2)
                .ok_or_else(|| Error::Weights(vec![format!("missing 2-D `{k}`")]))
        };
        let emb = shape("token_embedding.weight")?; // [vocab, dim]
        let q = shape("blocks.0.attn.q.weight")?; // [dim_attn, dim]
        let fc1 = shape("blocks.0.ffn.fc1.weight")?; // [dim_ffn, dim]
        let pos = shape("blocks.0.pos_embedding.embedding.weight")?; // [buckets, heads]
        let num_layers = src
            .tensor_names()
            .iter()
            .filter_map(|n| {
                n.strip_prefix("blocks.")?
                    .split('.')
                    .next()?
                    .parse::<i32>()
                    .ok()
            })
            .max()
            .map_or(0, |m| m + 1);
        let cfg = Self {
            vocab: emb[0],
            dim: emb[1],
            dim_attn: q[0],
            dim_ffn: fc1[0],
            num_heads: pos[1],
            num_layers,
            num_buckets: pos[0],
            ..Self::umt5_xxl()
        };
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(format!("T5: {m}")));
        for (name, v, max) in [
            ("vocab", self.vocab, MAX_VOCAB),
            ("dim", self.dim, MAX_DIM),
            ("dim_attn", self.dim_attn, MAX_DIM),
            ("dim_ffn", self.dim_ffn, 4 * MAX_DIM),
            ("num_heads", self.num_heads, MAX_DIM),
            ("num_layers", self.num_layers, MAX_LAYERS),
            ("num_buckets", self.num_buckets, 1024),
            ("max_dist", self.max_dist, 1 << 20),
        ] {
            if v <= 0 || v > max {
                return bad(format!("{name} = {v} is outside 1..={max}"));
            }
        }
        if self.dim_attn % self.num_heads != 0 {
            return bad(format!(
                "dim_attn {} is not divisible by num_heads {}",
                self.dim_attn, self.num_heads
            ));
        }
        // Bidirectional buckets: half per direction, half of that exact (max_exact ≥ 1).
        if self.num_buckets < 4 || self.num_buckets % 2 != 0 {
            return bad(format!(
                "num_buckets {} must be even and ≥ 4",
                self.num_buckets
            ));
        }
        if self.max_dist <= self.num_buckets / 4 {
            return bad(format!(
                "max_dist {} must exceed num_buckets/4",
                self.max_dist
            ));
        }
        if self.shared_pos {
            return bad(
                "shared_pos = true (classic T5) is not supported: umT5 has per-layer tables".into(),
            );
        }
        if !(self.eps > 0.0 && self.eps < 1.0) {
            return bad(format!("eps {} is not in (0, 1)", self.eps));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn umt5_xxl_matches_the_spec_parameter_count() {
        let c = T5Config::umt5_xxl();
        c.validate().unwrap();
        assert_eq!(c.head_dim(), 64);
        assert_eq!(c.num_params(), 5_680_910_336);
    }

    #[test]
    fn validate_refuses_bad_shapes() {
        let mut c = T5Config::umt5_xxl();
        c.num_heads = 3;
        assert!(matches!(c.validate(), Err(Error::Config(_))));
        let mut c = T5Config::umt5_xxl();
        c.shared_pos = true;
        assert!(c.validate().is_err());
        let mut c = T5Config::umt5_xxl();
        c.num_layers = 0;
        assert!(c.validate().is_err());
    }
}
