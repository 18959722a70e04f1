//! Loading a `WanModel` in its final form, tensor by tensor: each weight is cast to the
//! dtype it computes in (or quantized, or taken already quantized from the folder) as it
//! is read and evaluated before the next, so an official f32 DiT loaded in bf16 peaks at
//! the bf16 model plus one tensor — never an f32 copy of the model.
use mlx_rs::Dtype;
use mlx_rs::module::ModuleParameters as _;

use crate::checkpoint::{self, TensorSource};
use crate::dit::config::WanConfig;
use crate::dit::keys;
use crate::dit::model::WanModel;
use crate::error::{Error, Result};
use crate::nn::Linear;
use crate::quant::meta::declared;
use crate::quant::{QuantPlan, QuantSpec, QuantizedSource, Recipe, stored_specs};
use crate::train::lora::{ALL_TARGETS, block_linear_mut};

/// How to load a DiT.
#[derive(Debug, Clone)]
pub struct DitLoad {
    /// Compute dtype of the big Linears (see [`WanModel::set_compute_dtype`]); the rest
    /// stays float32.
    pub dtype: Dtype,
    /// Quantize the block Linears of a dense source while reading it. A source that is
    /// already quantized loads as stored (this must then be `None` or the same setting).
    pub quantize: Option<Recipe>,
}

impl DitLoad {
    pub fn dense(dtype: Dtype) -> Self {
        Self {
            dtype,
            quantize: None,
        }
    }
}

/// Does the official tensor `key` compute in the model's compute dtype (the tensors
/// [`WanModel::set_compute_dtype`] casts: patch / text embeddings and the block Linears,
/// including their quantization scales and biases)?
pub fn is_compute_key(key: &str) -> bool {
    if key == "patch_embedding.weight" || key.starts_with("text_embedding.") {
        return true;
    }
    let Some((_, tail)) = key.strip_prefix("blocks.").and_then(|r| r.split_once('.')) else {
        return false;
    };
    ALL_TARGETS.iter().any(|t| {
        tail.strip_prefix(t)
            .is_some_and(|p| matches!(p, ".weight" | ".bias" | ".scales" | ".biases"))
    })
}

impl WanModel {
    /// Run `f(official weight key, linear)` on every block Linear (the ones a recipe may
    /// quantize and a LoRA may adapt).
    pub fn for_each_block_linear(
        &mut self,
        mut f: impl FnMut(&str, &mut Linear) -> Result<()>,
    ) -> Result<()> {
        for (i, b) in self.blocks.iter_mut().enumerate() {
            for t in ALL_TARGETS {
                f(&format!("blocks.{i}.{t}.weight"), block_linear_mut(b, t)?)?;
            }
        }
        Ok(())
    }

    /// Official key and dense `[out, in]` of every block Linear.
    pub fn block_linear_shapes(&mut self) -> Result<Vec<(String, [i32; 2])>> {
        let mut v = Vec::new();
        self.for_each_block_linear(|k, l| {
            v.push((k.to_string(), [l.out_dim(), l.in_dim()]));
            Ok(())
        })?;
        Ok(v)
    }

    /// Official weight key and dense `[out, in]` of every quantized block Linear (what a
    /// LoRA file is checked against in place of the packed shape).
    pub fn quantized_linear_shapes(&self) -> Vec<(String, [i32; 2])> {
        let mut v = Vec::new();
        for (i, b) in self.blocks.iter().enumerate() {
            let ls = [
                &b.self_attn.q,
                &b.self_attn.k,
                &b.self_attn.v,
                &b.self_attn.o,
                &b.cross_attn.q,
                &b.cross_attn.k,
                &b.cross_attn.v,
                &b.cross_attn.o,
                &b.ffn.fc1,
                &b.ffn.fc2,
            ];
            for (t, l) in ALL_TARGETS.iter().zip(ls) {
                if l.is_quantized() {
                    v.push((format!("blocks.{i}.{t}.weight"), [l.out_dim(), l.in_dim()]));
                }
            }
        }
        v
    }

    /// The block Linear of an official weight key (`blocks.3.self_attn.q.weight`).
    pub fn block_linear_by_key_mut(&mut self, key: &str) -> Option<&mut Linear> {
        let (b, t) = key
            .strip_prefix("blocks.")?
            .strip_suffix(".weight")?
            .split_once('.')?;
        let block = self.blocks.get_mut(b.parse::<usize>().ok()?)?;
        block_linear_mut(block, t).ok()
    }

    /// Build and strictly load from `src` in the final dtypes (and quantization) of `opts`.
    /// A source whose Linears are stored quantized (a `convert --quantize` folder) is
    /// checked triple by triple first and stays quantized.
    pub fn load_with(config: WanConfig, src: &dyn TensorSource, opts: &DitLoad) -> Result<Self> {
        let dtype = opts.dtype;
        let (mut m, stored) = Self::skeleton_for(config, src, dtype)?;
        let dtype_of = |k: &str| {
            Some(if is_compute_key(k) {
                dtype
            } else {
                Dtype::Float32
            })
        };
        if !stored.is_empty() {
            if let Some(r) = &opts.quantize
                && stored.values().any(|s| *s != r.spec)
            {
                return Err(Error::Input(format!(
                    "these DiT weights are already quantized ({}); they cannot be \
                     re-quantized to {} (load the dense folder instead)",
                    stored
                        .values()
                        .next()
                        .map_or(String::new(), QuantSpec::name),
                    r.spec.name()
                )));
            }
            checkpoint::load_strict_with(&mut m, src, &keys::to_official, &dtype_of)?;
        } else if let Some(r) = &opts.quantize {
            let view = QuantizedSource::new(src, r as &dyn QuantPlan, dtype)?;
            set_placeholders(&mut m, view.specs(), dtype)?;
            checkpoint::load_strict_with(&mut m, &view, &keys::to_official, &dtype_of)?;
        } else {
            checkpoint::load_strict_with(&mut m, src, &keys::to_official, &dtype_of)?;
        }
        Ok(m)
    }

    /// The model with lazy placeholders shaped like `src`: dense, or quantized where the
    /// source stores a Linear quantized (every triple checked, and against the setting
    /// the file declares). Returns the stored settings (empty for a dense source).
    pub fn skeleton_for(
        config: WanConfig,
        src: &dyn TensorSource,
        dtype: Dtype,
    ) -> Result<(Self, std::collections::BTreeMap<String, QuantSpec>)> {
        let mut m = Self::new(config)?;
        let linears = m.block_linear_shapes()?;
        let declared = declared(src, "DiT weights")?
            .map(|d| d.recipe())
            .transpose()?
            .map(|r| r.spec);
        let stored = stored_specs(src, &linears, declared)?;
        set_placeholders(&mut m, &stored, dtype)?;
        Ok((m, stored))
    }

    /// Quantize the block Linears a recipe targets, in place, one by one (each dense
    /// weight released as its triple is evaluated). For a model that must be changed
    /// dense first, e.g. a LoRA merged before quantizing.
    pub fn quantize(&mut self, recipe: &Recipe) -> Result<()> {
        self.for_each_block_linear(|k, l| {
            if l.is_quantized() {
                return Err(Error::Input(format!("`{k}` is already quantized")));
            }
            if let Some(spec) = recipe.spec_for(k, &[l.out_dim(), l.in_dim()])? {
                l.quantize(spec)?;
            }
            Ok(())
        })
    }

    /// The setting of the quantized block Linears (`None`: dense).
    pub fn quantization(&mut self) -> Result<Option<QuantSpec>> {
        let mut q = None;
        self.for_each_block_linear(|_, l| {
            q = q.or(l.quant);
            Ok(())
        })?;
        Ok(q)
    }

    /// Resident bytes of every parameter (what MLX holds for the weights).
    pub fn weights_bytes(&self) -> u64 {
        self.parameters()
            .flatten()
            .values()
            .map(|a| a.nbytes() as u64)
            .sum()
    }
}

fn set_placeholders(
    m: &mut WanModel,
    specs: &std::collections::BTreeMap<String, QuantSpec>,
    dtype: Dtype,
) -> Result<()> {
    m.for_each_block_linear(|k, l| match specs.get(k) {
        Some(s) => l.make_quantized_placeholder(*s, dtype),
        None => Ok(()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compute_keys_are_the_ones_set_compute_dtype_casts() {
        for k in [
            "patch_embedding.weight",
            "text_embedding.0.weight",
            "text_embedding.2.bias",
            "blocks.0.self_attn.q.weight",
            "blocks.12.cross_attn.o.bias",
            "blocks.3.ffn.0.scales",
            "blocks.3.ffn.2.biases",
        ] {
            assert!(is_compute_key(k), "{k}");
        }
        for k in [
            "patch_embedding.bias",
            "time_embedding.0.weight",
            "time_projection.1.weight",
            "head.head.weight",
            "head.modulation",
            "blocks.0.modulation",
            "blocks.0.norm3.weight",
            "blocks.0.self_attn.norm_q.weight",
            "blocks.0.cross_attn.norm_k.weight",
        ] {
            assert!(!is_compute_key(k), "{k}");
        }
    }
}
