//! Model dimensions the official files do not state, inferred from tensor shapes (headers
//! only), so tiny test folders and full-size folders load through the same code.
//!
//! umT5 (`wan/modules/t5.py` `T5Encoder`): `(vocab, dim)` = `token_embedding.weight`,
//! `dim_attn` = rows of `blocks.0.attn.q.weight`, `dim_ffn` = rows of
//! `blocks.0.ffn.fc1.weight`, `(num_buckets, num_heads)` = `blocks.0.pos_embedding.embedding.weight`,
//! `num_layers` = number of `blocks.N`.
//! VAEs (`wan/modules/vae2_1.py`, `vae2_2.py` `WanVAE_`): `dim` = out channels of
//! `encoder.conv1`, whose in channels tell the kind (3 RGB = 2.1, 12 = 2.2's 2×2 patchified
//! RGB); `z_dim` = `conv2` channels; `dec_dim` = in channels of `decoder.head.2`.
use serde::Serialize;

use super::{Layout, TensorSource, mlx_shape};
use crate::config::VaeKind;
use crate::error::{Error, Result};
use crate::vae::VaeConfig;

/// umT5 encoder dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct T5Dims {
    pub vocab: i32,
    pub dim: i32,
    pub dim_attn: i32,
    pub dim_ffn: i32,
    pub num_heads: i32,
    pub num_layers: i32,
    pub num_buckets: i32,
}

/// Wan VAE dimensions (`dim_mult` [1,2,4,4], 2 res blocks, `temperal_downsample`
/// [F,T,T] are fixed by the official code for both kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct VaeDims {
    pub kind: VaeKind,
    pub dim: i32,
    /// Decoder base width (2.2: separate `dec_dim`; 2.1: equal to `dim`).
    pub dec_dim: i32,
    pub z_dim: i32,
}

/// Shape in MLX layout (conv weights channels-last), whatever the source layout.
fn shape(src: &dyn TensorSource, key: &str) -> Result<Vec<i32>> {
    let s = src
        .tensor_shape(key)
        .ok_or_else(|| Error::Weights(vec![format!("missing `{key}` (needed to infer dims)")]))?;
    Ok(match src.layout() {
        Layout::PyTorch => mlx_shape(key, &s),
        Layout::Mlx => s,
    })
}

fn rank(key: &str, s: &[i32], r: usize) -> Result<()> {
    if s.len() == r {
        Ok(())
    } else {
        Err(Error::Weights(vec![format!(
            "`{key}` has shape {s:?}, expected rank {r}"
        )]))
    }
}

/// Number of distinct `blocks.N.` prefixes, requiring 0..N to be contiguous.
pub fn count_blocks(names: &[String], prefix: &str) -> Result<i32> {
    let mut ids: Vec<i32> = names
        .iter()
        .filter_map(|n| n.strip_prefix(prefix))
        .filter_map(|r| r.split('.').next()?.parse().ok())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    for (i, &id) in ids.iter().enumerate() {
        if id != i as i32 {
            return Err(Error::Weights(vec![format!(
                "`{prefix}N` numbering has a gap: {prefix}{i} missing"
            )]));
        }
    }
    Ok(ids.len() as i32)
}

impl T5Dims {
    pub fn infer(src: &dyn TensorSource) -> Result<Self> {
        let k = "token_embedding.weight";
        let emb = shape(src, k)?;
        rank(k, &emb, 2)?;
        let k = "blocks.0.attn.q.weight";
        let q = shape(src, k)?;
        rank(k, &q, 2)?;
        let k = "blocks.0.ffn.fc1.weight";
        let fc1 = shape(src, k)?;
        rank(k, &fc1, 2)?;
        let k = "blocks.0.pos_embedding.embedding.weight";
        let pos = shape(src, k)?;
        rank(k, &pos, 2)?;
        let dims = Self {
            vocab: emb[0],
            dim: emb[1],
            dim_attn: q[0],
            dim_ffn: fc1[0],
            num_buckets: pos[0],
            num_heads: pos[1],
            num_layers: count_blocks(&src.tensor_names(), "blocks.")?,
        };
        if dims.num_heads <= 0 || dims.dim_attn % dims.num_heads != 0 {
            return Err(Error::Weights(vec![format!(
                "T5 dim_attn {} is not divisible by num_heads {}",
                dims.dim_attn, dims.num_heads
            )]));
        }
        Ok(dims)
    }
}

impl VaeDims {
    /// The `WanVAE_` constructor arguments: these dims + the official fixed ones.
    pub fn config(&self) -> VaeConfig {
        VaeConfig {
            kind: self.kind,
            dim: self.dim,
            dec_dim: self.dec_dim,
            z_dim: self.z_dim,
            ..VaeConfig::official(self.kind)
        }
    }

    pub fn infer(src: &dyn TensorSource) -> Result<Self> {
        let k = "encoder.conv1.weight";
        let c1 = shape(src, k)?; // [dim, 3, 3, 3, in]
        rank(k, &c1, 5)?;
        let kind = match c1[4] {
            3 => VaeKind::Wan21,
            12 => VaeKind::Wan22,
            c => {
                return Err(Error::Weights(vec![format!(
                    "`{k}` takes {c} input channels: neither Wan 2.1 (3) nor Wan 2.2 (12) VAE"
                )]));
            }
        };
        let k = "conv2.weight";
        let c2 = shape(src, k)?; // [z, 1, 1, 1, z]
        rank(k, &c2, 5)?;
        let k = "decoder.head.2.weight";
        let head = shape(src, k)?; // [out, 3, 3, 3, dec_dim * ...]
        rank(k, &head, 5)?;
        // 2.1's decoder head input is `dim * dim_mult[0]` = dim; 2.2's is `dec_dim`.
        Ok(Self {
            kind,
            dim: c1[0],
            dec_dim: head[4],
            z_dim: c2[0],
        })
    }
}
