//! Affine weight quantization settings (MLX `quantize` / `quantized_matmul`, mode "affine"):
//! every `group_size` consecutive weights of a Linear row share one scale and one bias, and
//! each weight is stored in `bits` bits packed into `u32` words. For a Linear weight
//! `[out, in]` that is a packed `u32 [out, in·bits/32]` plus `scales` and `biases`
//! `[out, in/group_size]` in the dense dtype.
//!
//! This file is the shared vocabulary of the quantized weights (convert, load, the memory
//! model and the plan): what a setting is, which DiT / umT5 tensors a recipe quantizes,
//! and how many bytes a tensor takes resident. [`source`] quantizes a dense checkpoint
//! tensor by tensor as it is read (convert, load) and checks stored quantized tensors;
//! [`meta`] is how a folder records its quantization.
pub mod drift;
pub mod meta;
pub mod source;

pub use meta::{FolderQuant, folder_quantization};
pub use source::{QuantizedSource, stored_specs};

use mlx_rs::{Array, Dtype};
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

/// Is `pattern` a prefix of `key`, where a `*` segment matches any one segment
/// (`blocks.*.cross_attn.` keeps every cross-attention dense, `blocks.0.` the first block)?
pub fn prefix_matches(pattern: &str, key: &str) -> bool {
    if !pattern.contains('*') {
        return key.starts_with(pattern);
    }
    let (pat, key): (Vec<&str>, Vec<&str>) =
        (pattern.split('.').collect(), key.split('.').collect());
    // A trailing '.' (empty last segment) asks for more segments after the match.
    let (pat, more) = match pat.split_last() {
        Some((&"", rest)) => (rest, 1),
        _ => (&pat[..], 0),
    };
    pat.len() + more <= key.len() && pat.iter().zip(&key).all(|(p, k)| *p == "*" || p == k)
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

    /// The default recipe for `spec` (measured: README "Quantization"). 8-bit: every
    /// block Linear (its drift is already small, and any dense layer would cost more than
    /// the 0.55× budget leaves). 4-bit: every block Linear but the first block's self- and
    /// cross-attention, kept dense — the first block and the (ungated) cross-attention
    /// were the most sensitive in the study, and this costs ≈1 % of the bf16 size.
    pub fn recommended(spec: QuantSpec) -> Self {
        match spec.bits {
            4 => Self {
                spec,
                keep_dense: vec!["blocks.0.self_attn.".into(), "blocks.0.cross_attn.".into()],
            },
            _ => Self::all(spec),
        }
    }

    /// Does this recipe quantize the DiT tensor `key` (official name) of `shape`?
    pub fn quantizes(&self, key: &str, shape: &[i32]) -> bool {
        self.targets(key) && self.spec.fits(shape)
    }

    /// Is `key` one of the block Linear weights this recipe wants quantized (whatever its
    /// shape)?
    pub fn targets(&self, key: &str) -> bool {
        key.starts_with("blocks.")
            && BLOCK_LINEARS.iter().any(|s| key.ends_with(s))
            && !self.keep_dense.iter().any(|p| prefix_matches(p, key))
    }

    /// `q8` / `q4`, with ` (group G)` when not the default and `, N prefix(es) dense`
    /// for mixed precision.
    pub fn describe(&self) -> String {
        let mut s = self.spec.name();
        if self.spec.group_size != QuantSpec::DEFAULT_GROUP_SIZE {
            s += &format!(" (group {})", self.spec.group_size);
        }
        if !self.keep_dense.is_empty() {
            s += &format!(", dense: {}", self.keep_dense.join(" "));
        }
        s
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

/// The drift of the default recipe at `spec`'s bits, measured against the dense model
/// (README "Quantization"), in one line for the Models view.
pub fn measured_drift(spec: QuantSpec) -> &'static str {
    match spec.bits {
        8 => "DiT output RMS 0.05–0.08 % of its range, video PSNR ≈ 60 dB vs f32 (test models)",
        _ => "DiT output RMS 0.7–1.1 % of its range, video PSNR ≈ 39 dB vs f32 (test models)",
    }
}

/// The umT5 Linear weights `--quantize-t5` quantizes (official key suffixes); the
/// token embedding, norms and relative-position tables stay dense.
const T5_LINEARS: &[&str] = &[
    ".attn.q.weight",
    ".attn.k.weight",
    ".attn.v.weight",
    ".attn.o.weight",
    ".ffn.gate.0.weight",
    ".ffn.fc1.weight",
    ".ffn.fc2.weight",
];

/// Which tensors of one component a loader or `convert` quantizes, and with what.
pub trait QuantPlan {
    /// The setting for the tensor `key` (official name) of `shape` (MLX layout), `None`
    /// to keep it dense. A tensor the plan targets but cannot pack (its in-dim is not a
    /// multiple of the group size) is an error naming it.
    fn spec_for(&self, key: &str, shape: &[i32]) -> Result<Option<QuantSpec>>;
}

fn checked(spec: QuantSpec, key: &str, shape: &[i32]) -> Result<Option<QuantSpec>> {
    spec.validate()?;
    if spec.fits(shape) {
        Ok(Some(spec))
    } else {
        Err(Error::Input(format!(
            "`{key}` {shape:?}: its in-dim is not a multiple of the group size {} \
             (choose another --group-size)",
            spec.group_size
        )))
    }
}

impl QuantPlan for Recipe {
    fn spec_for(&self, key: &str, shape: &[i32]) -> Result<Option<QuantSpec>> {
        if self.targets(key) {
            checked(self.spec, key, shape)
        } else {
            Ok(None)
        }
    }
}

/// The umT5 plan: every block Linear with one setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct T5Recipe(pub QuantSpec);

impl T5Recipe {
    pub fn targets(key: &str) -> bool {
        key.starts_with("blocks.") && T5_LINEARS.iter().any(|s| key.ends_with(s))
    }
}

impl QuantPlan for T5Recipe {
    fn spec_for(&self, key: &str, shape: &[i32]) -> Result<Option<QuantSpec>> {
        if Self::targets(key) {
            checked(self.0, key, shape)
        } else {
            Ok(None)
        }
    }
}

/// MLX affine quantization of a dense `[out, in]` weight in its own dtype: packed `u32`,
/// scales and biases (evaluated, so the dense input can be released right away).
pub fn quantize_weight(w: &Array, spec: QuantSpec) -> Result<(Array, Array, Array)> {
    spec.validate()?;
    if w.ndim() != 2 || !spec.fits(w.shape()) {
        return Err(Error::Input(format!(
            "cannot quantize a {:?} weight with group size {}",
            w.shape(),
            spec.group_size
        )));
    }
    let (q, s, b) = mlx_rs::ops::quantize(w, spec.group_size, spec.bits)?;
    mlx_rs::transforms::eval([&q, &s, &b])?;
    Ok((q, s, b))
}

/// The dense weight a quantized triple stands for (in the scales' dtype).
pub fn dequantize_weight(
    w: &Array,
    scales: &Array,
    biases: &Array,
    spec: QuantSpec,
) -> Result<Array> {
    Ok(mlx_rs::ops::dequantize(
        w,
        scales,
        biases,
        spec.group_size,
        spec.bits,
    )?)
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

    #[test]
    fn keep_dense_patterns_match_prefixes_with_wildcard_segments() {
        let r = Recipe {
            spec: QuantSpec::Q8,
            keep_dense: vec!["blocks.*.cross_attn.".into(), "blocks.29.".into()],
        };
        assert!(!r.targets("blocks.4.cross_attn.q.weight"));
        assert!(r.targets("blocks.4.self_attn.q.weight"));
        assert!(!r.targets("blocks.29.ffn.0.weight"));
        assert!(r.targets("blocks.2.ffn.0.weight"));
        assert!(prefix_matches("blocks.*.ffn", "blocks.3.ffn.2.weight"));
        assert!(!prefix_matches("blocks.*.ffn.", "blocks.3.ffn"));
        assert!(!prefix_matches(
            "blocks.*.ffn.",
            "blocks.3.self_attn.q.weight"
        ));
    }

    #[test]
    fn plans_name_the_tensor_they_cannot_pack() {
        let r = Recipe::all(QuantSpec::parse("q4", Some(128)).unwrap());
        assert_eq!(
            r.spec_for("blocks.1.ffn.2.weight", &[64, 256]).unwrap(),
            Some(r.spec)
        );
        assert_eq!(r.spec_for("head.head.weight", &[64, 256]).unwrap(), None);
        let e = r.spec_for("blocks.1.ffn.0.weight", &[128, 64]).unwrap_err();
        assert!(e.to_string().contains("`blocks.1.ffn.0.weight`"), "{e}");
        assert!(e.to_string().contains("group size 128"), "{e}");
        let t5 = T5Recipe(QuantSpec::Q8);
        assert!(
            t5.spec_for("blocks.0.ffn.gate.0.weight", &[128, 64])
                .unwrap()
                .is_some()
        );
        assert!(
            t5.spec_for("blocks.0.attn.o.weight", &[64, 64])
                .unwrap()
                .is_some()
        );
        assert!(
            t5.spec_for("token_embedding.weight", &[512, 64])
                .unwrap()
                .is_none()
        );
        assert!(
            t5.spec_for("blocks.0.pos_embedding.embedding.weight", &[32, 4])
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn quantize_round_trip_error_is_within_one_step_of_its_group() {
        let key = mlx_rs::random::key(3).unwrap();
        let w = mlx_rs::random::normal::<f32>(&[16, 128], None, None, &key).unwrap();
        for spec in [QuantSpec::Q8, QuantSpec::Q4] {
            let (q, s, b) = quantize_weight(&w, spec).unwrap();
            assert_eq!(q.dtype(), Dtype::Uint32);
            assert_eq!(q.shape(), &[16, 128 * spec.bits / 32]);
            assert_eq!(s.shape(), &[16, 2]);
            let d = dequantize_weight(&q, &s, &b, spec).unwrap();
            // |error| / (the group's step), per element (MLX signs a scale so that the
            // group's larger-magnitude extreme is exact)
            let step = mlx_rs::ops::broadcast_to(
                s.abs().unwrap().reshape(&[16, 2, 1]).unwrap(),
                &[16, 2, 64],
            )
            .unwrap()
            .reshape(&[16, 128])
            .unwrap();
            let ratio = d
                .subtract(&w)
                .unwrap()
                .abs()
                .unwrap()
                .divide(&step)
                .unwrap();
            let worst = ratio.max(None).unwrap().item_cast::<f32>();
            let mean = ratio.mean(None).unwrap().item_cast::<f32>();
            assert!(
                worst > 0.0 && worst <= 1.0 + 1e-4,
                "{spec:?}: worst {worst}"
            );
            // rounding to the nearest level: a quarter step on average
            assert!((0.15..0.35).contains(&mean), "{spec:?}: mean {mean}");
        }
        assert!(
            quantize_weight(
                &w,
                QuantSpec {
                    bits: 3,
                    group_size: 64
                }
            )
            .is_err()
        );
    }
}
