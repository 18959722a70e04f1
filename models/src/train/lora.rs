//! LoRA fine-tuning of a `WanModel` (PEFT semantics, as DiffSynth-Studio / musubi-tuner
//! use for Wan, spec §10.2–10.3): for each target Linear `W [out, in]` two trainable
//! matrices `A [r, in]` (PEFT init: U(±1/√in)) and `B [out, r]` (zeros), effective weight
//! `W + (α/r)·B·A`. The base model is frozen; only A and B reach the optimizer.
//!
//! Training merges the adapters into the (frozen) base weights inside the differentiated
//! function, so the DiT code needs no LoRA path and gradients flow to A and B only.
//!
//! File format (ComfyUI / diffusers "PEFT-style" Wan LoRA, loadable by community loaders):
//! | tensor | shape |
//! |---|---|
//! | `diffusion_model.blocks.{N}.{target}.lora_A.weight` | `[r, in]` |
//! | `diffusion_model.blocks.{N}.{target}.lora_B.weight` | `[out, r]` |
//! | `diffusion_model.blocks.{N}.{target}.alpha` | `[]` (α; scale = α / r) |
//!
//! with `target` ∈ `self_attn.{q,k,v,o}`, `cross_attn.{q,k,v,o}`, `ffn.0`, `ffn.2` (official
//! key names). [`merge_lora`] reads this and every other common format (`crate::lora_file`).
use std::collections::BTreeMap;
use std::path::Path;

use mlx_rs::macros::ModuleParameters;
use mlx_rs::module::{ModuleParameters as _, Param};
use mlx_rs::{Array, Dtype};

use crate::checkpoint::safetensors::save;
use crate::dit::block::WanAttentionBlock;
use crate::dit::{Timesteps, WanConfig, WanModel};
use crate::error::{Error, Result};
use crate::nn::Linear;
use crate::train::adamw::Params;
use crate::train::objective::{FlowBatch, Rng};
use crate::train::trainer::FlowModel;

/// Every Linear a LoRA can target inside a block (official key segments).
pub const ALL_TARGETS: &[&str] = &[
    "self_attn.q",
    "self_attn.k",
    "self_attn.v",
    "self_attn.o",
    "cross_attn.q",
    "cross_attn.k",
    "cross_attn.v",
    "cross_attn.o",
    "ffn.0",
    "ffn.2",
];

#[derive(Debug, Clone, PartialEq)]
pub struct LoraConfig {
    pub rank: i32,
    pub alpha: f32,
    /// Subset of [`ALL_TARGETS`].
    pub targets: Vec<String>,
}

impl LoraConfig {
    /// Rank `r`, α = r (PEFT default, scale 1), every target.
    pub fn new(rank: i32) -> Self {
        Self {
            rank,
            alpha: rank as f32,
            targets: ALL_TARGETS.iter().map(|s| s.to_string()).collect(),
        }
    }
    pub fn validate(&self) -> Result<()> {
        if self.rank < 1 || !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err(Error::Config(format!(
                "LoRA rank {} / alpha {} must be positive",
                self.rank, self.alpha
            )));
        }
        if let Some(t) = self
            .targets
            .iter()
            .find(|t| !ALL_TARGETS.contains(&t.as_str()))
        {
            return Err(Error::Config(format!(
                "LoRA target `{t}` (known: {})",
                ALL_TARGETS.join(", ")
            )));
        }
        if self.targets.is_empty() {
            return Err(Error::Config("LoRA needs at least one target".into()));
        }
        Ok(())
    }
}

/// The Linear of block `b` named by an official target segment.
fn linear_mut<'m>(model: &'m mut WanModel, b: usize, target: &str) -> Result<&'m mut Linear> {
    let n = model.blocks.len();
    let block = model
        .blocks
        .get_mut(b)
        .ok_or_else(|| Error::Input(format!("LoRA block {b}: the model has {n} blocks")))?;
    block_linear_mut(block, target)
}

/// The Linear of one block named by an official target segment.
pub(crate) fn block_linear_mut<'m>(
    block: &'m mut WanAttentionBlock,
    target: &str,
) -> Result<&'m mut Linear> {
    Ok(match target {
        "self_attn.q" => &mut block.self_attn.q,
        "self_attn.k" => &mut block.self_attn.k,
        "self_attn.v" => &mut block.self_attn.v,
        "self_attn.o" => &mut block.self_attn.o,
        "cross_attn.q" => &mut block.cross_attn.q,
        "cross_attn.k" => &mut block.cross_attn.k,
        "cross_attn.v" => &mut block.cross_attn.v,
        "cross_attn.o" => &mut block.cross_attn.o,
        "ffn.0" => &mut block.ffn.fc1,
        "ffn.2" => &mut block.ffn.fc2,
        other => return Err(Error::Input(format!("unknown LoRA target `{other}`"))),
    })
}

/// `W0 + k·B·A` computed in float32, returned in `W0`'s dtype (the merged weight a LoRA
/// site computes with; `k = scale·α/r`).
pub(crate) fn merged_weight(w0: &Array, a: &Array, b: &Array, k: f32) -> Result<Array> {
    let delta = b.matmul(a)?.multiply(Array::from_f32(k))?;
    Ok(w0
        .as_dtype(Dtype::Float32)?
        .add(delta)?
        .as_dtype(w0.dtype())?)
}

#[derive(Debug, Clone, ModuleParameters)]
pub struct LoraAdapter {
    /// `[r, in]`
    #[param]
    pub lora_a: Param<Array>,
    /// `[out, r]`
    #[param]
    pub lora_b: Param<Array>,
}

/// A frozen `WanModel` plus trainable adapters.
#[derive(Debug, ModuleParameters)]
pub struct LoraWan {
    #[param]
    pub base: WanModel,
    #[param]
    pub adapters: Vec<LoraAdapter>,
    /// (block, target) of each adapter, parallel to `adapters`.
    pub sites: Vec<(usize, String)>,
    pub config: LoraConfig,
    /// The original weight of each site (the base is overwritten by merged weights).
    base_weights: Vec<Array>,
}

impl LoraWan {
    /// Wrap `base` (frozen) with fresh adapters on every block × target.
    pub fn new(mut base: WanModel, config: LoraConfig, rng: &mut Rng) -> Result<Self> {
        config.validate()?;
        let (mut adapters, mut sites, mut base_weights) = (Vec::new(), Vec::new(), Vec::new());
        for b in 0..base.blocks.len() {
            for t in &config.targets {
                let lin = linear_mut(&mut base, b, t)?;
                let (out, inp) = (lin.out_dim(), lin.in_dim());
                let bound = 1.0 / (inp as f32).sqrt();
                let a = mlx_rs::random::uniform::<_, f32>(
                    -bound,
                    bound,
                    &[config.rank, inp][..],
                    &rng.mlx_key()?,
                )?;
                adapters.push(LoraAdapter {
                    lora_a: Param::new(a),
                    lora_b: Param::new(mlx_rs::ops::zeros::<f32>(&[out, config.rank])?),
                });
                base_weights.push((*lin.weight).clone());
                sites.push((b, t.clone()));
            }
        }
        base.freeze_parameters(true);
        Ok(Self {
            base,
            adapters,
            sites,
            config,
            base_weights,
        })
    }

    /// The frozen base weight of adapter `i`'s site (before any merge).
    pub(crate) fn base_weight(&self, i: usize) -> &Array {
        &self.base_weights[i]
    }

    pub fn scale(&self) -> f32 {
        self.config.alpha / self.config.rank as f32
    }

    /// Write `W + s·(α/r)·B·A` into every site (in the weight's dtype).
    fn apply(&mut self, s: f32) -> Result<()> {
        let k = s * self.scale();
        for (i, (b, t)) in self.sites.iter().enumerate() {
            let ad = &self.adapters[i];
            let w = merged_weight(&self.base_weights[i], &ad.lora_a, &ad.lora_b, k)?;
            *linear_mut(&mut self.base, *b, t)?.weight = w;
        }
        Ok(())
    }

    /// Put the frozen base weights back into every site (undo [`Self::apply`]).
    fn restore(&mut self) -> Result<()> {
        for (i, (b, t)) in self.sites.iter().enumerate() {
            *linear_mut(&mut self.base, *b, t)?.weight = self.base_weights[i].clone();
        }
        Ok(())
    }

    /// The adapters as named tensors in the community format (see the module docs).
    pub fn tensors(&self) -> BTreeMap<String, Array> {
        let mut out = BTreeMap::new();
        for (ad, (b, t)) in self.adapters.iter().zip(&self.sites) {
            let p = format!("diffusion_model.blocks.{b}.{t}");
            out.insert(format!("{p}.lora_A.weight"), (*ad.lora_a).clone());
            out.insert(format!("{p}.lora_B.weight"), (*ad.lora_b).clone());
            out.insert(format!("{p}.alpha"), Array::from_f32(self.config.alpha));
        }
        out
    }

    /// Save the adapters (atomic) with `rank`, `alpha`, `targets` as metadata.
    pub fn save(&self, path: &Path) -> Result<()> {
        let meta = BTreeMap::from([
            ("format".to_string(), "wan-lora/peft".to_string()),
            ("rank".to_string(), self.config.rank.to_string()),
            ("alpha".to_string(), self.config.alpha.to_string()),
            ("targets".to_string(), self.config.targets.join(",")),
        ]);
        save(path, &self.tensors(), &meta)
    }

    /// The base model with the adapters merged at `scale`.
    pub fn into_merged(mut self, scale: f32) -> Result<WanModel> {
        self.apply(scale)?;
        self.base.unfreeze_parameters(true);
        Ok(self.base)
    }
}

impl FlowModel for LoraWan {
    fn dit_config(&self) -> &WanConfig {
        &self.base.config
    }
    fn predict(&mut self, x_t: &Array, t: &Timesteps, context: &[Array]) -> Result<Array> {
        self.apply(1.0)?;
        let out = self.base.predict(x_t, t, context);
        // The graph holds the merged weights it needs; the base goes back to its own
        // weights so merged copies do not outlive the step (they would double the memory
        // of every adapted Linear).
        self.restore()?;
        out
    }
    fn checkpointed_loss_and_grads(&mut self, batch: &FlowBatch) -> Result<(Array, Params)> {
        crate::train::grad_checkpoint::lora_loss_and_grads(self, batch)
    }
}

/// Merge a LoRA file into `model` at `scale` (`W ← W + scale·(α/r)·B·A`, and full deltas),
/// strictly: every tensor must name a parameter with a fitting shape, else nothing is
/// changed and every problem is reported. Returns the number of parameters changed. The
/// formats and their parsing live in [`crate::lora_file`]; this is what
/// `generate --lora FILE --lora_scale S` calls after loading the DiT (merge at load: no
/// run-time cost).
pub fn merge_lora(model: &mut WanModel, path: &Path, scale: f32) -> Result<usize> {
    crate::lora_file::merge_file(model, path, scale)
}
