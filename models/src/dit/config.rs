//! `WanModel` constructor arguments (official `wan/modules/model.py`), deserialised from a
//! checkpoint's `config.json`. Fields the official class excludes from its saved config
//! (`patch_size`, `qk_norm`, `cross_attn_norm`, `window_size`, `text_dim`) take the official
//! defaults; `text_dim` is then taken from the weights (`text_embedding.0.weight`).
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelType {
    /// A14B text-to-video experts: one timestep per sample.
    T2v,
    /// A14B image-to-video experts: noise + mask + image latent channels.
    I2v,
    /// TI2V-5B: per-token timesteps.
    Ti2v,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WanConfig {
    pub model_type: ModelType,
    #[serde(default = "default_patch")]
    pub patch_size: [i32; 3],
    pub text_len: i32,
    pub in_dim: i32,
    pub dim: i32,
    pub ffn_dim: i32,
    pub freq_dim: i32,
    #[serde(default = "default_text_dim")]
    pub text_dim: i32,
    pub out_dim: i32,
    pub num_heads: i32,
    pub num_layers: i32,
    #[serde(default = "default_window")]
    pub window_size: [i32; 2],
    #[serde(default = "yes")]
    pub qk_norm: bool,
    #[serde(default = "yes")]
    pub cross_attn_norm: bool,
    pub eps: f64,
    // diffusers bookkeeping in config.json; accepted and ignored.
    #[serde(default, rename = "_class_name", skip_serializing)]
    pub class_name: Option<String>,
    #[serde(default, rename = "_diffusers_version", skip_serializing)]
    pub diffusers_version: Option<String>,
}

fn default_patch() -> [i32; 3] {
    [1, 2, 2]
}
fn default_text_dim() -> i32 {
    4096
}
fn default_window() -> [i32; 2] {
    [-1, -1]
}
fn yes() -> bool {
    true
}

/// Upper bounds far above any released model; they stop a hostile config from sizing
/// allocations before the weights are checked.
const MAX_DIM: i32 = 1 << 16;
const MAX_FFN: i32 = 1 << 18;
const MAX_LAYERS: i32 = 512;

impl WanConfig {
    /// Parse a `config.json` text; errors name the offending field.
    pub fn from_json(text: &str) -> Result<Self> {
        let cfg: WanConfig = serde_json::from_str(text)
            .map_err(|e| Error::Config(format!("DiT config.json: {e}")))?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn head_dim(&self) -> i32 {
        self.dim / self.num_heads
    }

    /// Tokens per patch times output channels (head output width).
    pub fn patch_volume(&self) -> i32 {
        self.patch_size.iter().product()
    }

    pub fn validate(&self) -> Result<()> {
        let mut bad = Vec::new();
        for (name, v, max) in [
            ("dim", self.dim, MAX_DIM),
            ("ffn_dim", self.ffn_dim, MAX_FFN),
            ("freq_dim", self.freq_dim, MAX_DIM),
            ("text_dim", self.text_dim, MAX_DIM),
            ("in_dim", self.in_dim, 4096),
            ("out_dim", self.out_dim, 4096),
            ("num_heads", self.num_heads, 1024),
            ("num_layers", self.num_layers, MAX_LAYERS),
            ("text_len", self.text_len, 1 << 16),
        ] {
            if v <= 0 || v > max {
                bad.push(format!("{name} = {v} is outside 1..={max}"));
            }
        }
        if self.num_heads > 0 && self.dim % self.num_heads != 0 {
            bad.push(format!(
                "dim {} is not divisible by num_heads {}",
                self.dim, self.num_heads
            ));
        } else if self.num_heads > 0 && (self.head_dim() % 2 != 0 || self.head_dim() < 6) {
            bad.push(format!(
                "head dim {} must be even and >= 6 (3D RoPE)",
                self.head_dim()
            ));
        }
        if self.freq_dim % 2 != 0 {
            bad.push(format!("freq_dim {} must be even", self.freq_dim));
        }
        if self.patch_size.iter().any(|&p| !(1..=16).contains(&p)) {
            bad.push(format!("patch_size {:?} is invalid", self.patch_size));
        }
        if self.window_size != [-1, -1] {
            bad.push(format!(
                "window_size {:?}: only global attention (-1, -1) is supported",
                self.window_size
            ));
        }
        if !(self.eps > 0.0 && self.eps < 1.0) {
            bad.push(format!("eps {} is invalid", self.eps));
        }
        if self.model_type == ModelType::I2v && self.in_dim <= self.out_dim {
            bad.push(format!(
                "i2v needs in_dim > out_dim (got {} / {})",
                self.in_dim, self.out_dim
            ));
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(Error::Config(bad.join("; ")))
        }
    }

    /// TI2V-5B (`wan/configs/wan_ti2v_5B.py`, `config.json` of Wan2.2-TI2V-5B).
    pub fn ti2v_5b() -> Self {
        Self::preset(ModelType::Ti2v, 48, 48, 3072, 14336, 24, 30)
    }
    /// One T2V-A14B expert (`wan/configs/wan_t2v_A14B.py`).
    pub fn t2v_a14b() -> Self {
        Self::preset(ModelType::T2v, 16, 16, 5120, 13824, 40, 40)
    }
    /// One I2V-A14B expert (`wan/configs/wan_i2v_A14B.py`): 16 noise + 4 mask + 16 image channels.
    pub fn i2v_a14b() -> Self {
        Self::preset(ModelType::I2v, 36, 16, 5120, 13824, 40, 40)
    }

    fn preset(
        model_type: ModelType,
        in_dim: i32,
        out_dim: i32,
        dim: i32,
        ffn_dim: i32,
        heads: i32,
        layers: i32,
    ) -> Self {
        Self {
            model_type,
            patch_size: default_patch(),
            text_len: 512,
            in_dim,
            dim,
            ffn_dim,
            freq_dim: 256,
            text_dim: 4096,
            out_dim,
            num_heads: heads,
            num_layers: layers,
            window_size: default_window(),
            qk_norm: true,
            cross_attn_norm: true,
            eps: 1e-6,
            class_name: None,
            diffusers_version: None,
        }
    }
}
