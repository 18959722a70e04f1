//! Affine weight quantization settings (MLX `quantize` / `quantized_matmul`, mode "affine"):
//! every `group_size` consecutive weights of a Linear row share one scale and one bias, and
//! each weight is stored in `bits` bits packed into `u32` words. For a Linear weight
//! `[out, in]` that is a packed `u32 [out, in·bits/32]` plus `scales` and `biases`
//! `[out, in/group_size]` in the dense dtype.
//!
//! This file is the shared vocabulary of the quantized weights (convert, load, the memory
//! model and the plan): what a setting is, which DiT tensors a recipe quantizes, and how
//! many bytes a tensor takes resident.
use mlx_rs::Dtype;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One affine quantization setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct QuantSpec {
    /// 4 or 8.
    pub bits: i32,
    /// 32, 64 or 128 weights per scale/bias pair.
    pub group_size: i32,
}

impl QuantSpec {
    pub const DEFAULT_GROUP_SIZE: i32 = 64;
    pub const Q8: QuantSpec = QuantSpec {
        bits: 8,
        group_size: Self::DEFAULT_GROUP_SIZE,
    };
    pub const Q4: QuantSpec = QuantSpec {
        bits: 4,
        group_size: Self::DEFAULT_GROUP_SIZE,
    };

    /// `q8` / `q4` (also `8` / `4`) with an optional group size (default 64).
    pub fn parse(level: &str, group_size: Option<i32>) -> Result<Self> {
        let bits = match level.trim().to_ascii_lowercase().as_str() {
            "q8" | "8" | "int8" => 8,
            "q4" | "4" | "int4" => 4,
            other => {
                return Err(Error::Input(format!(
                    "unknown quantization `{other}` (q8 or q4)"
                )));
            }
        };
        let s = QuantSpec {
            bits,
            group_size: group_size.unwrap_or(Self::DEFAULT_GROUP_SIZE),
        };
        s.validate()?;
        Ok(s)
    }

    /// Only what MLX's affine kernels support.
    pub fn validate(&self) -> Result<()> {
        if !matches!(self.bits, 4 | 8) {
            return Err(Error::Input(format!(
                "quantization bits must be 4 or 8, got {}",
                self.bits
            )));
        }
        if !matches!(self.group_size, 32 | 64 | 128) {
            return Err(Error::Input(format!(
                "quantization group size must be 32, 64 or 128, got {}",
                self.group_size
            )));
        }
        Ok(())
    }

    /// `q8` / `q4` (the group size is reported separately).
    pub fn name(&self) -> String {
        format!("q{}", self.bits)
    }

    /// Can a Linear weight `[out, in]` be quantized with this setting?
    pub fn fits(&self, shape: &[i32]) -> bool {
        shape.len() == 2 && shape[1] % self.group_size == 0 && (shape[1] * self.bits) % 32 == 0
    }

    /// Resident bytes of a quantized `[out, in]` weight whose scales/biases are `dense`.
    pub fn weight_bytes(&self, out_dim: i64, in_dim: i64, dense: Dtype) -> u64 {
        let packed = out_dim * in_dim * self.bits as i64 / 8;
        let groups = out_dim * (in_dim / self.group_size as i64);
        (packed + 2 * groups * dtype_bytes(dense) as i64) as u64
    }
}

/// Bytes per element of a dense dtype.
pub fn dtype_bytes(d: Dtype) -> usize {
    match d {
        Dtype::Float64 | Dtype::Int64 | Dtype::Uint64 | Dtype::Complex64 => 8,
        Dtype::Float32 | Dtype::Int32 | Dtype::Uint32 => 4,
        Dtype::Float16 | Dtype::Bfloat16 | Dtype::Int16 | Dtype::Uint16 => 2,
        Dtype::Int8 | Dtype::Uint8 | Dtype::Bool => 1,
    }
}

/// Which DiT weights are quantized, and with what. The default recipe quantizes the
/// per-block Linears (self/cross-attention q/k/v/o, FFN); everything else — patch,
/// text and time embeddings, time projection, norms, modulation, head — stays dense.
/// `keep_dense` names key prefixes that stay dense even inside the blocks (mixed
/// precision for sensitive layers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipe {
    pub spec: QuantSpec,
    #[serde(default)]
    pub keep_dense: Vec<String>,
}

/// The block Linear weights a recipe may quantize (official key suffixes).
const BLOCK_LINEARS: &[&str] = &[
    ".self_attn.q.weight",
    ".self_attn.k.weight",
    ".self_attn.v.weight",
    ".self_attn.o.weight",
    ".cross_attn.q.weight",
    ".cross_attn.k.weight",
    ".cross_attn.v.weight",
    ".cross_attn.o.weight",
    ".ffn.0.weight",
    ".ffn.2.weight",
];

impl Recipe {
    /// Every block Linear quantized.
    pub fn all(spec: QuantSpec) -> Self {
        Self {
            spec,
            keep_dense: Vec::new(),
        }
    }

    /// Does this recipe quantize the DiT tensor `key` (official name) of `shape`?
    pub fn quantizes(&self, key: &str, shape: &[i32]) -> bool {
        key.starts_with("blocks.")
            && BLOCK_LINEARS.iter().any(|s| key.ends_with(s))
            && !self.keep_dense.iter().any(|p| key.starts_with(p.as_str()))
            && self.spec.fits(shape)
    }

    /// Resident bytes of the DiT tensor `key` of `shape` when dense tensors are `dense`.
    pub fn tensor_bytes(&self, key: &str, shape: &[i32], dense: Dtype) -> u64 {
        if self.quantizes(key, shape) {
            self.spec
                .weight_bytes(shape[0] as i64, shape[1] as i64, dense)
        } else {
            shape.iter().map(|&d| d as u64).product::<u64>() * dtype_bytes(dense) as u64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_validate() {
        assert_eq!(QuantSpec::parse("q8", None).unwrap(), QuantSpec::Q8);
        assert_eq!(
            QuantSpec::parse("Q4", Some(32)).unwrap(),
            QuantSpec {
                bits: 4,
                group_size: 32
            }
        );
        assert!(
            QuantSpec::parse("q3", None)
                .unwrap_err()
                .to_string()
                .contains("q8 or q4")
        );
        assert!(
            QuantSpec::parse("q8", Some(48))
                .unwrap_err()
                .to_string()
                .contains("32, 64 or 128")
        );
    }

    #[test]
    fn bytes_follow_mlx_affine_layout() {
        // [3072, 3072] q8/64 with bf16 scales: 9 437 184 packed + 2·3072·48·2 scale/bias.
        let b = QuantSpec::Q8.weight_bytes(3072, 3072, Dtype::Bfloat16);
        assert_eq!(b, 3072 * 3072 + 2 * 3072 * 48 * 2);
        let b4 = QuantSpec::Q4.weight_bytes(3072, 3072, Dtype::Bfloat16);
        assert_eq!(b4, 3072 * 3072 / 2 + 2 * 3072 * 48 * 2);
    }

    #[test]
    fn recipe_quantizes_block_linears_only() {
        let r = Recipe::all(QuantSpec::Q8);
        assert!(r.quantizes("blocks.3.self_attn.q.weight", &[3072, 3072]));
        assert!(r.quantizes("blocks.3.ffn.2.weight", &[3072, 14336]));
        assert!(!r.quantizes("blocks.3.self_attn.q.bias", &[3072]));
        assert!(!r.quantizes("blocks.3.norm3.weight", &[3072]));
        assert!(!r.quantizes("head.head.weight", &[192, 3072]));
        assert!(!r.quantizes("text_embedding.0.weight", &[3072, 4096]));
        // in_dim not a multiple of the group size: stays dense
        assert!(!r.quantizes("blocks.0.ffn.0.weight", &[64, 100]));
        let mixed = Recipe {
            spec: QuantSpec::Q4,
            keep_dense: vec!["blocks.0.".into()],
        };
        assert!(!mixed.quantizes("blocks.0.ffn.0.weight", &[3072, 3072]));
        assert!(mixed.quantizes("blocks.10.ffn.0.weight", &[3072, 3072]));
        assert_eq!(
            mixed.tensor_bytes("blocks.0.ffn.0.weight", &[4, 64], Dtype::Bfloat16),
            4 * 64 * 2
        );
    }
}
