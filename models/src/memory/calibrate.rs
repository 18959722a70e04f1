//! Measuring what MLX really allocates: the real modules (DiT blocks, umT5 layers, the
//! VAE decoder) built from any config with random weights, run once, with MLX's own
//! counters (`active_memory`, `reset_peak_memory` / `peak_memory`). The same functions
//! back the calibration test (reduced widths, seconds) and `examples/calibrate.rs`
//! (full widths, a few blocks/layers, numbers in README).
//!
//! Every measurement is relative to the active memory when it starts, so arrays that
//! the caller keeps alive do not count. The counters are process-wide: run one
//! measurement at a time (tests hold a lock).
use std::collections::BTreeMap;

use mlx_rs::module::ModuleParameters;
use mlx_rs::{Array, Dtype};
use serde::Serialize;

use super::constants::Constants;
use super::model;
use crate::checkpoint::{Layout, TensorSource};
use crate::dit::{ModelType, Timesteps, WanConfig, WanModel};
use crate::error::{Error, Result};
use crate::t5::{T5Config, T5Encoder};
use crate::vae::{RunOpts, VaeConfig, WanVae};

/// What one run allocated, relative to the active memory before the module was built.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Measured {
    /// Active after the weights and inputs were evaluated (what stays resident).
    pub resident_bytes: u64,
    /// Peak during the run.
    pub peak_bytes: u64,
}

fn active() -> u64 {
    mlx_rs::memory::active_memory().unwrap_or(0) as u64
}

/// Uniform weights in (−a, a) of each parameter's current dtype, evaluated one by one
/// (so building a multi-GB module never holds two copies).
fn fill_uniform<M: ModuleParameters + ?Sized>(m: &mut M, a: f32) -> Result<()> {
    for (_, p) in m.parameters_mut().flatten() {
        let shape = p.shape().to_vec();
        let dt = p.dtype();
        let r = mlx_rs::random::uniform::<f32, f32>(-a, a, &shape[..], None)?;
        *p = if dt == Dtype::Float32 {
            r
        } else {
            r.as_dtype(dt)?
        };
        p.eval()?;
    }
    Ok(())
}

fn start() -> Result<u64> {
    mlx_rs::memory::clear_cache()?;
    Ok(active())
}

fn run_peak(base: u64, f: impl FnOnce() -> Result<Array>) -> Result<Measured> {
    mlx_rs::memory::clear_cache()?;
    let resident = active().saturating_sub(base);
    mlx_rs::memory::reset_peak_memory()?;
    let out = f()?;
    out.eval()?;
    let peak = (mlx_rs::memory::peak_memory()? as u64).saturating_sub(base);
    drop(out);
    Ok(Measured {
        resident_bytes: resident,
        peak_bytes: peak,
    })
}

/// One denoising step of a DiT built from `cfg` (all its `num_layers` blocks) in compute
/// `dtype`, as the sampling loop runs it: a latent `[C, F', h, w]` in a batch of `batch`
/// (2 = CFG batched), the context K/V resident (computed once per run; a full `text_len`
/// prompt, the plan's upper bound — shorter prompts fold their padding and hold less),
/// timesteps per token for ti2v, the inference kernels; every block over `chunks` token
/// chunks (1: the whole sequence).
pub fn dit_step(
    cfg: &WanConfig,
    latent: [i32; 4],
    batch: i32,
    dtype: Dtype,
    chunks: u32,
) -> Result<Measured> {
    dit_step_with(cfg, latent, batch, dtype, crate::dit::Kernels::Fast, chunks)
}

/// [`dit_step`] with the given kernels (`Exact`: MLX's own softmax / GELU, as Metal runs
/// them — the probes that separate the stages, README "Calibration").
pub fn dit_step_with(
    cfg: &WanConfig,
    latent: [i32; 4],
    batch: i32,
    dtype: Dtype,
    kernels: crate::dit::Kernels,
    chunks: u32,
) -> Result<Measured> {
    let base = start()?;
    let mut m = WanModel::new(cfg.clone())?;
    m.set_compute_dtype(dtype)?;
    fill_uniform(&mut m, 0.02)?;
    let [c, f, h, w] = latent;
    let x = mlx_rs::random::normal::<f32>(&[batch, c, f, h, w], None, None, None)?;
    let y = match cfg.model_type {
        ModelType::I2v => Some(mlx_rs::ops::zeros::<f32>(&[
            batch,
            cfg.in_dim - c,
            f,
            h,
            w,
        ])?),
        _ => None,
    };
    let [pt, ph, pw] = cfg.patch_size;
    let tokens = (f / pt) * (h / ph) * (w / pw);
    let t = match cfg.model_type {
        ModelType::Ti2v => Timesteps::PerToken(vec![500.0; (batch * tokens) as usize]),
        _ => Timesteps::PerSample(vec![500.0; batch as usize]),
    };
    let ctx = mlx_rs::random::uniform::<f32, f32>(-1.0, 1.0, &[cfg.text_len, cfg.text_dim], None)?;
    let kv = m.context_kv_folded(&vec![ctx; batch as usize])?;
    kv.eval()?;
    let mut inputs = vec![&x];
    if let Some(y) = &y {
        inputs.push(y);
    }
    mlx_rs::transforms::eval(inputs)?;
    run_peak(base, || {
        let run = crate::dit::Blocks::Run;
        Ok(
            m.forward_blocks(&x, y.as_ref(), &t, &kv, kernels, run, chunks)?
                .0,
        )
    })
}

/// umT5 encode of `batch` prompts padded to `tokens` (the pipeline encodes one at a time,
/// padded to `text_len` = 512), weights in `dtype`.
pub fn t5_encode(cfg: &T5Config, tokens: i32, batch: i32, dtype: Dtype) -> Result<Measured> {
    let base = start()?;
    let mut enc = T5Encoder::new(cfg.clone())?;
    if dtype != Dtype::Float32 {
        for (_, p) in enc.parameters_mut().flatten() {
            *p = p.as_dtype(dtype)?;
        }
    }
    fill_uniform(&mut enc, 0.03)?;
    let n = (batch * tokens) as usize;
    let ids: Vec<i32> = (0..n as i32).map(|i| (i * 7919) % cfg.vocab).collect();
    let ids = Array::from_slice(&ids, &[batch, tokens]);
    let mask = Array::from_slice(&vec![1i32; n], &[batch, tokens]);
    mlx_rs::transforms::eval([&ids, &mask])?;
    run_peak(base, || enc.forward(&ids, &mask, None))
}

/// Random tensors for every parameter of a module, in MLX layout (builds a VAE without
/// a checkpoint file).
struct RandomSource(BTreeMap<String, Vec<i32>>);

impl TensorSource for RandomSource {
    fn tensor_names(&self) -> Vec<String> {
        self.0.keys().cloned().collect()
    }
    fn tensor_shape(&self, name: &str) -> Option<Vec<i32>> {
        self.0.get(name).cloned()
    }
    fn load_tensor(&self, name: &str) -> Result<Array> {
        let shape = self
            .0
            .get(name)
            .ok_or_else(|| Error::Weights(vec![format!("missing `{name}`")]))?;
        let a = mlx_rs::random::uniform::<f32, f32>(-0.05, 0.05, &shape[..], None)?;
        a.eval()?;
        Ok(a)
    }
    fn layout(&self) -> Layout {
        Layout::Mlx
    }
}

/// A VAE of `cfg` with random weights (float32, as the pipeline loads it).
pub fn random_vae(cfg: &VaeConfig) -> Result<WanVae> {
    let shapes: BTreeMap<String, Vec<i32>> = model::vae_params(cfg)?.into_iter().collect();
    WanVae::load(cfg.clone(), &RandomSource(shapes))
}

/// Untiled decode of a random latent `[z, T, h, w]` (chunk by chunk, as the pipeline).
pub fn vae_decode(cfg: &VaeConfig, latent: [i32; 4]) -> Result<Measured> {
    let base = start()?;
    let vae = random_vae(cfg)?;
    let z = mlx_rs::random::normal::<f32>(&latent, None, None, None)?;
    z.eval()?;
    run_peak(base, || vae.decode_with(&z, RunOpts::default()))
}

/// Encode of a random video `[3, F, H, W]` (chunk by chunk, as the pipeline).
pub fn vae_encode(cfg: &VaeConfig, video: [i32; 4]) -> Result<Measured> {
    let base = start()?;
    let vae = random_vae(cfg)?;
    let v = mlx_rs::random::uniform::<f32, f32>(-1.0, 1.0, &video, None)?;
    v.eval()?;
    run_peak(base, || Ok(vae.encode_with(&v, RunOpts::default())?.latent))
}

/// One (architecture, size) calibration point.
#[derive(Debug, Clone)]
pub enum Point {
    /// One DiT step: `cfg` (its `num_layers` blocks), latent `[C, F', h, w]`, batch.
    Dit {
        cfg: WanConfig,
        latent: [i32; 4],
        batch: i32,
        dtype: Dtype,
        /// Token chunks per block (1: the whole sequence).
        chunks: u32,
    },
    /// One umT5 encode of a prompt padded to `tokens`.
    T5 {
        cfg: T5Config,
        tokens: i32,
        dtype: Dtype,
    },
    /// Untiled VAE decode of a latent `[z, T, h, w]`.
    VaeDecode { cfg: VaeConfig, latent: [i32; 4] },
    /// VAE encode of a video `[3, F, H, W]`.
    VaeEncode { cfg: VaeConfig, video: [i32; 4] },
}

/// A point, measured and predicted (bytes relative to the memory in use before it).
#[derive(Debug, Clone, Serialize)]
pub struct Calibration {
    pub name: String,
    pub measured_peak_bytes: u64,
    pub predicted_peak_bytes: u64,
    /// measured / predicted − 1.
    pub error: f64,
}

impl Point {
    /// Short description (`dit dim 3072 ×2 blocks, 320 tokens, B2 f32`).
    pub fn name(&self) -> String {
        match self {
            Point::Dit {
                cfg,
                latent,
                batch,
                dtype,
                chunks,
            } => format!(
                "dit {:?} dim {} × {} block(s), {} tokens{}, batch {batch}, {dtype:?}",
                cfg.model_type,
                cfg.dim,
                cfg.num_layers,
                model::dit_tokens(cfg, *latent),
                if *chunks > 1 {
                    format!(" in {chunks} chunks")
                } else {
                    String::new()
                }
            ),
            Point::T5 { cfg, tokens, dtype } => format!(
                "umT5 dim {} × {} layer(s), vocab {}, {tokens} tokens, {dtype:?}",
                cfg.dim, cfg.num_layers, cfg.vocab
            ),
            Point::VaeDecode { cfg, latent } => format!(
                "{:?} VAE dim {}/{} decode latent {latent:?}",
                cfg.kind, cfg.dim, cfg.dec_dim
            ),
            Point::VaeEncode { cfg, video } => {
                format!("{:?} VAE dim {} encode video {video:?}", cfg.kind, cfg.dim)
            }
        }
    }

    /// The memory model's peak for this point: resident weights and inputs plus the
    /// phase's working set.
    pub fn predict(&self, k: &Constants) -> Result<u64> {
        Ok(match self {
            Point::Dit {
                cfg,
                latent,
                batch,
                dtype,
                chunks,
            } => {
                let b = *batch as u64;
                let weights = model::dit_bytes(cfg, *dtype, None, *dtype)?.resident;
                let input = b
                    * cfg.in_dim as u64
                    * model::dit_tokens(cfg, *latent)
                    * 4
                    * cfg.patch_size.iter().product::<i32>() as u64;
                weights
                    + model::context_kv_bytes(cfg, b, *dtype)
                    + input
                    + model::dit_step_bytes(
                        cfg,
                        model::dit_tokens(cfg, *latent),
                        b,
                        *dtype,
                        k,
                        *chunks,
                    )
            }
            Point::T5 { cfg, tokens, dtype } => {
                model::t5_bytes(cfg, *dtype)
                    + model::t5_encode_bytes(cfg, *tokens as u64, *dtype, k)
            }
            Point::VaeDecode { cfg, latent } => {
                let s = cfg.spatial_stride();
                let [_, t, h, w] = *latent;
                model::vae_bytes(cfg)?
                    + model::vae_decode_chunk_bytes(cfg, h, w, k)
                    + (k.vae_video_copies
                        * model::video_bytes(1 + 4 * (t - 1), w * s, h * s) as f64)
                        as u64
            }
            Point::VaeEncode { cfg, video } => {
                let s = cfg.spatial_stride();
                let [_, f, h, w] = *video;
                model::vae_bytes(cfg)?
                    + model::video_bytes(f, w, h)
                    + model::vae_encode_chunk_bytes(cfg, f, h / s, w / s, k)
            }
        })
    }

    /// Build the modules with random weights, run, read MLX's counters.
    pub fn measure(&self) -> Result<Measured> {
        match self {
            Point::Dit {
                cfg,
                latent,
                batch,
                dtype,
                chunks,
            } => dit_step(cfg, *latent, *batch, *dtype, *chunks),
            Point::T5 { cfg, tokens, dtype } => t5_encode(cfg, *tokens, 1, *dtype),
            Point::VaeDecode { cfg, latent } => vae_decode(cfg, *latent),
            Point::VaeEncode { cfg, video } => vae_encode(cfg, *video),
        }
    }

    pub fn calibrate(&self, k: &Constants) -> Result<Calibration> {
        let predicted = self.predict(k)?;
        let measured = self.measure()?.peak_bytes;
        Ok(Calibration {
            name: self.name(),
            measured_peak_bytes: measured,
            predicted_peak_bytes: predicted,
            error: measured as f64 / predicted.max(1) as f64 - 1.0,
        })
    }
}

fn blocks(mut cfg: WanConfig, n: i32) -> WanConfig {
    cfg.num_layers = n;
    cfg
}

/// The official architectures at full width, a few blocks / layers, small sizes (the
/// README's calibration table; each point up to ≈ 6 GB, run under the heavy lock).
pub fn full_size_points() -> Vec<Point> {
    let f32 = Dtype::Float32;
    let ti2v = blocks(WanConfig::ti2v_5b(), 2);
    let t2v = blocks(WanConfig::t2v_a14b(), 2);
    let mut t5_1 = T5Config::umt5_xxl();
    t5_1.num_layers = 1;
    let mut t5_2 = T5Config::umt5_xxl();
    t5_2.num_layers = 2;
    vec![
        Point::Dit {
            cfg: ti2v.clone(),
            latent: [48, 5, 16, 16],
            batch: 2,
            dtype: f32,
            chunks: 1,
        },
        Point::Dit {
            cfg: ti2v.clone(),
            latent: [48, 5, 32, 32],
            batch: 2,
            dtype: f32,
            chunks: 1,
        },
        Point::Dit {
            cfg: ti2v.clone(),
            latent: [48, 5, 32, 64],
            batch: 2,
            dtype: f32,
            chunks: 1,
        },
        Point::Dit {
            cfg: t2v.clone(),
            latent: [16, 5, 16, 16],
            batch: 2,
            dtype: f32,
            chunks: 1,
        },
        Point::Dit {
            cfg: t2v.clone(),
            latent: [16, 5, 32, 32],
            batch: 2,
            dtype: f32,
            chunks: 1,
        },
        // Token-chunked blocks (the plan's lean step).
        Point::Dit {
            cfg: ti2v.clone(),
            latent: [48, 5, 32, 64],
            batch: 2,
            dtype: f32,
            chunks: 4,
        },
        Point::Dit {
            cfg: ti2v,
            latent: [48, 5, 64, 64],
            batch: 1,
            dtype: f32,
            chunks: 8,
        },
        Point::Dit {
            cfg: t2v.clone(),
            latent: [16, 5, 32, 32],
            batch: 2,
            dtype: f32,
            chunks: 4,
        },
        Point::Dit {
            cfg: t2v,
            latent: [16, 5, 64, 64],
            batch: 1,
            dtype: f32,
            chunks: 8,
        },
        Point::T5 {
            cfg: t5_1,
            tokens: 512,
            dtype: f32,
        },
        Point::T5 {
            cfg: t5_2,
            tokens: 512,
            dtype: f32,
        },
        Point::VaeDecode {
            cfg: VaeConfig::wan22(),
            latent: [48, 2, 4, 4],
        },
        Point::VaeDecode {
            cfg: VaeConfig::wan21(),
            latent: [16, 2, 8, 8],
        },
        Point::VaeEncode {
            cfg: VaeConfig::wan22(),
            video: [3, 1, 64, 64],
        },
    ]
}

/// The same architectures at reduced width (head dim 128 kept, FFN/dim ratios of the
/// 5B and A14B, umT5 and VAE narrowed): seconds each, for the test.
pub fn reduced_points() -> Vec<Point> {
    let f32 = Dtype::Float32;
    let narrow = |mut c: WanConfig, dim: i32| {
        c.ffn_dim = c.ffn_dim * dim / c.dim;
        c.num_heads = dim / 128;
        c.dim = dim;
        c.num_layers = 1;
        c
    };
    let ti2v = narrow(WanConfig::ti2v_5b(), 768);
    let t2v = narrow(WanConfig::t2v_a14b(), 640);
    let mut t5 = T5Config::umt5_xxl();
    (
        t5.vocab,
        t5.dim,
        t5.dim_attn,
        t5.dim_ffn,
        t5.num_heads,
        t5.num_layers,
    ) = (4096, 512, 512, 1280, 8, 2);
    let mut v22 = VaeConfig::wan22();
    (v22.dim, v22.dec_dim) = (20, 32);
    let mut v21 = VaeConfig::wan21();
    (v21.dim, v21.dec_dim) = (12, 12);
    vec![
        Point::Dit {
            cfg: ti2v.clone(),
            latent: [48, 5, 8, 8],
            batch: 2,
            dtype: f32,
            chunks: 1,
        },
        Point::Dit {
            cfg: ti2v.clone(),
            latent: [48, 5, 24, 24],
            batch: 2,
            dtype: f32,
            chunks: 1,
        },
        Point::Dit {
            cfg: t2v.clone(),
            latent: [16, 5, 16, 16],
            batch: 2,
            dtype: f32,
            chunks: 1,
        },
        Point::Dit {
            cfg: t2v.clone(),
            latent: [16, 5, 32, 32],
            batch: 1,
            dtype: f32,
            chunks: 1,
        },
        Point::Dit {
            cfg: ti2v,
            latent: [48, 5, 24, 24],
            batch: 2,
            dtype: f32,
            chunks: 4,
        },
        Point::Dit {
            cfg: t2v,
            latent: [16, 5, 32, 32],
            batch: 1,
            dtype: f32,
            chunks: 3,
        },
        Point::T5 {
            cfg: t5,
            tokens: 512,
            dtype: f32,
        },
        Point::VaeDecode {
            cfg: v22.clone(),
            latent: [48, 2, 4, 4],
        },
        Point::VaeDecode {
            cfg: v21.clone(),
            latent: [16, 2, 8, 8],
        },
        Point::VaeEncode {
            cfg: v22,
            video: [3, 1, 64, 64],
        },
    ]
}
