//! The Wan VAEs in MLX (official `wan/modules/vae2_1.py`, `vae2_2.py`): chunked causal
//! encode/decode with an explicit per-conv cache, spatial tiling, and fast previews.
//!
//! Public tensors are channels-first like the official wrappers and the DiT: video
//! `[3, F, H, W]` in [−1, 1], latent `[z, T, h, w]` (normalised with the official
//! mean / 1/std). Inside, everything is channels-last `[1, F, H, W, C]` float32.
//! Chunking is official: encode frame 0 alone, then groups of 4 frames; decode one latent
//! frame at a time; the graph is evaluated once per chunk.
pub mod attention;
pub mod causal_conv;
pub mod keys;
pub mod norm;
pub mod preview;
pub mod resample;
pub mod resblock;
pub mod shortcut;
pub mod tiling;
pub mod vae21;
pub mod vae22;

use std::collections::BTreeMap;

use mlx_rs::module::ModuleParameters;
use mlx_rs::ops::{clip, concatenate};
use mlx_rs::{Array, Dtype};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, TensorSource};
pub use crate::config::VaeKind;
use crate::error::{Error, Result};
use crate::pipeline::api::CancelToken;
use causal_conv::{CausalConv3d, ConvCache, frames};
use resblock::{LayerCache, MiddleCache};

/// Intermediates captured for parity checks, by fixture name (`encoder_chunk0`, …).
pub type Trace = BTreeMap<String, Array>;

/// Constructor arguments of the official `WanVAE_` (+ which of the two it is).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VaeConfig {
    pub kind: VaeKind,
    /// Encoder base width (2.1: also the decoder's).
    pub dim: i32,
    /// Decoder base width (2.2 only; equals `dim` for 2.1).
    pub dec_dim: i32,
    pub z_dim: i32,
    pub dim_mult: Vec<i32>,
    pub num_res_blocks: i32,
    /// Per encoder stage (the decoder uses the reverse).
    pub temperal_downsample: Vec<bool>,
}

impl VaeConfig {
    /// Official Wan2.1 VAE (`vae2_1.py:_video_vae`: dim 96, z 16).
    pub fn wan21() -> Self {
        Self {
            kind: VaeKind::Wan21,
            dim: 96,
            dec_dim: 96,
            z_dim: 16,
            dim_mult: vec![1, 2, 4, 4],
            num_res_blocks: 2,
            temperal_downsample: vec![false, true, true],
        }
    }
    /// Official Wan2.2 VAE as the pipeline builds it (c_dim 160, dec_dim 256, z 48).
    pub fn wan22() -> Self {
        Self {
            kind: VaeKind::Wan22,
            dim: 160,
            dec_dim: 256,
            z_dim: 48,
            dim_mult: vec![1, 2, 4, 4],
            num_res_blocks: 2,
            temperal_downsample: vec![false, true, true],
        }
    }

    /// The official config of a kind (what `TaskConfig::vae` names).
    pub fn official(kind: VaeKind) -> Self {
        match kind {
            VaeKind::Wan21 => Self::wan21(),
            VaeKind::Wan22 => Self::wan22(),
        }
    }

    /// From the official constructor arguments (a fixture's `config.constructor`).
    pub fn from_constructor(kind: VaeKind, ctor: &serde_json::Value) -> Result<Self> {
        let get_i = |k: &str| -> Result<i32> {
            ctor.get(k)
                .and_then(|v| v.as_i64())
                .map(|v| v as i32)
                .ok_or_else(|| Error::Config(format!("VAE constructor: missing integer `{k}`")))
        };
        let parse = |k: &str| -> Result<serde_json::Value> {
            ctor.get(k)
                .cloned()
                .ok_or_else(|| Error::Config(format!("VAE constructor: missing `{k}`")))
        };
        let dim = get_i("dim")?;
        if let Some(a) = ctor.get("attn_scales").and_then(|v| v.as_array())
            && !a.is_empty()
        {
            return Err(Error::Unsupported(
                "VAE attn_scales (the official models use none)".into(),
            ));
        }
        let cfg = Self {
            kind,
            dim,
            dec_dim: match kind {
                VaeKind::Wan21 => dim,
                VaeKind::Wan22 => get_i("dec_dim").unwrap_or(256),
            },
            z_dim: get_i("z_dim")?,
            dim_mult: serde_json::from_value(parse("dim_mult")?)
                .map_err(|e| Error::Config(format!("dim_mult: {e}")))?,
            num_res_blocks: get_i("num_res_blocks")?,
            temperal_downsample: serde_json::from_value(parse("temperal_downsample")?)
                .map_err(|e| Error::Config(format!("temperal_downsample: {e}")))?,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<()> {
        let n = self.dim_mult.len();
        if n < 2 || self.dim_mult.iter().any(|&m| m <= 0) {
            return Err(Error::Config(format!("VAE dim_mult {:?}", self.dim_mult)));
        }
        if self.temperal_downsample.len() != n - 1 {
            return Err(Error::Config(format!(
                "VAE temperal_downsample needs {} entries, got {}",
                n - 1,
                self.temperal_downsample.len()
            )));
        }
        if self.dim <= 0 || self.dec_dim <= 0 || self.z_dim <= 0 || self.num_res_blocks <= 0 {
            return Err(Error::Config("VAE dims must be positive".into()));
        }
        if self.kind == VaeKind::Wan21 && self.dec_dim != self.dim {
            return Err(Error::Config("Wan2.1 VAE: dec_dim must equal dim".into()));
        }
        if self.kind == VaeKind::Wan21
            && self.dim_mult[1..].iter().any(|&m| (self.dim * m) % 2 != 0)
        {
            return Err(Error::Config("Wan2.1 VAE: odd decoder widths".into()));
        }
        Ok(())
    }

    /// Pixel patch (2.2: 2×2 space-to-depth around the network).
    pub fn patch(&self) -> i32 {
        match self.kind {
            VaeKind::Wan21 => 1,
            VaeKind::Wan22 => vae22::PATCH,
        }
    }
    /// Spatial compression (8 for 2.1, 16 for 2.2 incl. patchify).
    pub fn spatial_stride(&self) -> i32 {
        (1 << (self.dim_mult.len() - 1)) * self.patch()
    }
    /// Temporal compression (4 for both).
    pub fn temporal_stride(&self) -> i32 {
        1 << self.temperal_downsample.iter().filter(|&&b| b).count()
    }
    /// Official latent normalisation constants `(mean, std)` (spec §4.5).
    pub fn scale_constants(&self) -> (&'static [f32], &'static [f32]) {
        match self.kind {
            VaeKind::Wan21 => (&MEAN_21, &STD_21),
            VaeKind::Wan22 => (&MEAN_22, &STD_22),
        }
    }
}

const MEAN_21: [f32; 16] = [
    -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508, 0.4134, -0.0715, 0.5517,
    -0.3632, -0.1922, -0.9497, 0.2503, -0.2921,
];
const STD_21: [f32; 16] = [
    2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743, 3.2687, 2.1526, 2.8652, 1.5579,
    1.6382, 1.1253, 2.8251, 1.9160,
];
const MEAN_22: [f32; 48] = [
    -0.2289, -0.0052, -0.1323, -0.2339, -0.2799, 0.0174, 0.1838, 0.1557, -0.1382, 0.0542, 0.2813,
    0.0891, 0.1570, -0.0098, 0.0375, -0.1825, -0.2246, -0.1207, -0.0698, 0.5109, 0.2665, -0.2108,
    -0.2158, 0.2502, -0.2055, -0.0322, 0.1109, 0.1567, -0.0729, 0.0899, -0.2799, -0.1230, -0.0313,
    -0.1649, 0.0117, 0.0723, -0.2839, -0.2083, -0.0520, 0.3748, 0.0152, 0.1957, 0.1433, -0.2944,
    0.3573, -0.0548, -0.1681, -0.0667,
];
const STD_22: [f32; 48] = [
    0.4765, 1.0364, 0.4514, 1.1677, 0.5313, 0.4990, 0.4818, 0.5013, 0.8158, 1.0344, 0.5894, 1.0901,
    0.6885, 0.6165, 0.8454, 0.4978, 0.5759, 0.3523, 0.7135, 0.6804, 0.5833, 1.4146, 0.8986, 0.5659,
    0.7069, 0.5338, 0.4889, 0.4917, 0.4069, 0.4999, 0.6866, 0.4093, 0.5709, 0.6065, 0.6415, 0.4944,
    0.5726, 1.2042, 0.5458, 1.6887, 0.3971, 1.0600, 0.3943, 0.5537, 0.5444, 0.4089, 0.7468, 0.7744,
];

/// The whole per-chunk state of an encoder or decoder: one slot per temporal conv /
/// resample, indexed by (stage, layer) for the `downsamples`/`upsamples` sequences.
/// Created empty at the start of every encode/decode (official `clear_cache`).
#[derive(Debug, Clone, Default)]
pub struct CoderCache {
    pub conv1: ConvCache,
    pub stages: Vec<Vec<LayerCache>>,
    pub middle: MiddleCache,
    pub head: ConvCache,
}

impl CoderCache {
    /// The slot of layer `j` of stage `i` (created on first use).
    pub fn layer(&mut self, i: usize, j: usize) -> &mut LayerCache {
        if self.stages.len() <= i {
            self.stages.resize_with(i + 1, Vec::new);
        }
        let s = &mut self.stages[i];
        if s.len() <= j {
            s.resize_with(j + 1, LayerCache::default);
        }
        &mut s[j]
    }

    /// Every cached array (evaluated with each chunk's output, so that a chunk's graph
    /// can be freed).
    pub fn arrays(&self) -> Vec<&Array> {
        let mut v: Vec<&Array> = self.conv1.0.iter().chain(self.head.0.iter()).collect();
        v.extend(self.middle.res1.arrays());
        v.extend(self.middle.res2.arrays());
        for s in &self.stages {
            for l in s {
                v.extend(l.arrays());
            }
        }
        v
    }
}

/// What the two VAE variants provide to the shared chunking code.
pub trait VaeModel: ModuleParameters + std::fmt::Debug {
    /// Encoder3d on one chunk `[1, F, H, W, C]` (patchified for 2.2).
    fn encode_chunk(&self, x: &Array, cache: &mut CoderCache) -> Result<Array>;
    /// Decoder3d on one latent frame `[1, 1, h, w, z]` (before unpatchify).
    fn decode_chunk(&self, z: &Array, cache: &mut CoderCache, first: bool) -> Result<Array>;
    fn conv1(&self) -> &CausalConv3d;
    fn conv2(&self) -> &CausalConv3d;
}

/// Optional hooks of one encode/decode call.
#[derive(Default)]
pub struct RunOpts<'a> {
    /// Checked between chunks (→ `Error::Cancelled`).
    pub cancel: Option<&'a CancelToken>,
    /// Called after each chunk with (done, total).
    pub progress: Option<&'a mut dyn FnMut(usize, usize)>,
    /// Parity intermediates (fixture names, channels-first).
    pub trace: Option<&'a mut Trace>,
}

impl RunOpts<'_> {
    fn step(&mut self, done: usize, total: usize) -> Result<()> {
        if let Some(p) = self.progress.as_mut() {
            p(done, total);
        }
        match self.cancel {
            Some(c) => c.check(),
            None => Ok(()),
        }
    }
    fn record(&mut self, name: &str, x: &Array) -> Result<()> {
        if let Some(t) = self.trace.as_mut() {
            t.insert(name.to_string(), to_channels_first(x)?);
        }
        Ok(())
    }
}

/// Encoder outputs, channels-first `[z, T, h, w]`.
pub struct Encoded {
    /// `(mu − mean) · (1/std)`: what the pipelines use.
    pub latent: Array,
    pub mu: Array,
    pub log_var: Array,
}

/// `[1, F, H, W, C] → [C, F, H, W]`.
pub fn to_channels_first(x: &Array) -> Result<Array> {
    let x = x.squeeze_axes(&[0])?;
    Ok(x.transpose_axes(&[3, 0, 1, 2])?)
}
/// `[C, F, H, W] → [1, F, H, W, C]` float32.
pub fn to_channels_last(x: &Array) -> Result<Array> {
    let x = x.as_dtype(Dtype::Float32)?.transpose_axes(&[1, 2, 3, 0])?;
    Ok(x.expand_dims(0)?)
}

/// A loaded Wan VAE (2.1 or 2.2).
#[derive(Debug)]
pub struct WanVae {
    pub cfg: VaeConfig,
    model: Box<dyn VaeModel>,
    /// `[z]` official mean and 1/std (float32, computed as the official `1.0 / std`).
    mean: Array,
    inv_std: Array,
}

impl WanVae {
    /// Build from `cfg` and strictly load official-key tensors (PyTorch or MLX layout).
    pub fn load(cfg: VaeConfig, src: &dyn TensorSource) -> Result<Self> {
        cfg.validate()?;
        let model: Box<dyn VaeModel> = match cfg.kind {
            VaeKind::Wan21 => {
                let mut m = vae21::WanVae21::new(&cfg)?;
                checkpoint::load_strict(&mut m, src, &keys::to_official, Some(Dtype::Float32))?;
                Box::new(m)
            }
            VaeKind::Wan22 => {
                let mut m = vae22::WanVae22::new(&cfg)?;
                checkpoint::load_strict(&mut m, src, &keys::to_official, Some(Dtype::Float32))?;
                Box::new(m)
            }
        };
        let (mean, std) = cfg.scale_constants();
        let z = cfg.z_dim as usize;
        if mean.len() != z {
            return Err(Error::Config(format!(
                "{:?} VAE has {} normalisation constants, config z_dim is {z}",
                cfg.kind,
                mean.len()
            )));
        }
        let inv: Vec<f32> = std.iter().map(|s| 1.0f32 / s).collect();
        Ok(Self {
            mean: Array::from_slice(mean, &[z as i32]),
            inv_std: Array::from_slice(&inv, &[z as i32]),
            cfg,
            model,
        })
    }

    /// Official keys and MLX-layout shapes of every parameter (sorted).
    pub fn expected_params(&self) -> Vec<(String, Vec<i32>)> {
        checkpoint::expected_params(self.model.as_ref(), &keys::to_official)
    }

    /// Check a video `[3, F, H, W]` against the official chunking / compression rules.
    pub fn check_video(&self, video: &Array) -> Result<()> {
        let s = video.shape();
        if s.len() != 4 || s[0] != 3 {
            return Err(Error::Input(format!(
                "VAE encode wants a video [3, F, H, W], got {s:?}"
            )));
        }
        let (f, h, w) = (s[1], s[2], s[3]);
        let ts = self.cfg.temporal_stride();
        if f < 1 || (f - 1) % ts != 0 {
            return Err(Error::Input(format!(
                "VAE encode: frame count {f} is not {ts}n+1 (1, {}, {}, …)",
                ts + 1,
                2 * ts + 1
            )));
        }
        let st = self.cfg.spatial_stride();
        if h < st || w < st || h % st != 0 || w % st != 0 {
            return Err(Error::Input(format!(
                "VAE encode: size {w}×{h} must be positive multiples of {st} for the {:?} VAE",
                self.cfg.kind
            )));
        }
        Ok(())
    }

    /// Check a latent `[z, T, h, w]`.
    pub fn check_latent(&self, z: &Array) -> Result<()> {
        let s = z.shape();
        if s.len() != 4 || s[0] != self.cfg.z_dim || s[1] < 1 || s[2] < 1 || s[3] < 1 {
            return Err(Error::Input(format!(
                "VAE decode wants a latent [{}, T, h, w], got {s:?}",
                self.cfg.z_dim
            )));
        }
        Ok(())
    }

    /// Video `[3, F, H, W]` in [−1, 1] → normalised latent `[z, 1+(F−1)/4, H/s, W/s]`.
    pub fn encode(&self, video: &Array) -> Result<Array> {
        Ok(self.encode_with(video, RunOpts::default())?.latent)
    }

    pub fn encode_with(&self, video: &Array, mut opts: RunOpts) -> Result<Encoded> {
        self.check_video(video)?;
        let mut x = to_channels_last(video)?;
        let p = self.cfg.patch();
        if p > 1 {
            x = vae22::patchify(&x, p)?;
        }
        let f = x.shape()[1];
        let n = 1 + (f - 1) / 4;
        let mut cache = CoderCache::default();
        let mut outs = Vec::with_capacity(n as usize);
        for i in 0..n {
            let (a, b) = if i == 0 {
                (0, 1)
            } else {
                (1 + 4 * (i - 1), 1 + 4 * i)
            };
            let out = self.model.encode_chunk(&frames(&x, a, b)?, &mut cache)?;
            eval_with(&out, &cache)?;
            opts.record(&format!("encoder_chunk{i}"), &out)?;
            outs.push(out);
            opts.step(i as usize + 1, n as usize)?;
        }
        drop(cache);
        let out = concatenate(&outs, 1)?;
        opts.record("encoder_out", &out)?;
        let h = self.model.conv1().forward(&out, None)?;
        let halves = h.split_equal(2, -1)?;
        let latent = halves[0].subtract(&self.mean)?.multiply(&self.inv_std)?;
        Ok(Encoded {
            latent: to_channels_first(&latent)?,
            mu: to_channels_first(&halves[0])?,
            log_var: to_channels_first(&halves[1])?,
        })
    }

    /// Normalised latent `[z, T, h, w]` → video `[3, 1+4(T−1), h·s, w·s]` clamped to [−1, 1].
    pub fn decode(&self, z: &Array) -> Result<Array> {
        self.decode_with(z, RunOpts::default())
    }

    pub fn decode_with(&self, z: &Array, opts: RunOpts) -> Result<Array> {
        let x = self.decode_unclamped(z, opts)?;
        Ok(clip(&x, (-1.0f32, 1.0f32))?)
    }

    /// The official `WanVAE_.decode` (no clamp).
    pub fn decode_unclamped(&self, z: &Array, mut opts: RunOpts) -> Result<Array> {
        self.check_latent(z)?;
        let z = to_channels_last(z)?;
        // Official: z / (1/std) + mean.
        let z = z.divide(&self.inv_std)?.add(&self.mean)?;
        let x = self.model.conv2().forward(&z, None)?;
        opts.record("conv2_out", &x)?;
        let t = x.shape()[1];
        let mut cache = CoderCache::default();
        let mut outs = Vec::with_capacity(t as usize);
        for i in 0..t {
            let out = self
                .model
                .decode_chunk(&frames(&x, i, i + 1)?, &mut cache, i == 0)?;
            eval_with(&out, &cache)?;
            if i == 0 {
                opts.record("decoder_chunk0", &out)?;
            }
            outs.push(out);
            opts.step(i as usize + 1, t as usize)?;
        }
        drop(cache);
        let mut out = concatenate(&outs, 1)?;
        let p = self.cfg.patch();
        if p > 1 {
            out = vae22::unpatchify(&out, p)?;
        }
        let out = to_channels_first(&out)?;
        out.eval()?;
        Ok(out)
    }

    /// The official normalisation constants as `[z]` arrays `(mean, 1/std)`.
    pub fn scale(&self) -> (&Array, &Array) {
        (&self.mean, &self.inv_std)
    }
}

/// Evaluate a chunk's output together with the cache it leaves behind.
fn eval_with(out: &Array, cache: &CoderCache) -> Result<()> {
    let mut all = vec![out];
    all.extend(cache.arrays());
    mlx_rs::transforms::eval(all)?;
    Ok(())
}

/// Copy an array to the host as row-major f32 (materialising views first).
pub fn host_f32(a: &Array) -> Result<Vec<f32>> {
    let c = a.as_dtype(Dtype::Float32)?.contiguous()?;
    c.to_vec_cast::<f32>()
        .map_err(|e| Error::Unsupported(format!("host copy: {e}")))
}
