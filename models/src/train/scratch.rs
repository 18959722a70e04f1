//! Training a small `WanModel` from scratch on the synthetic dataset, end to end:
//! random init (official scheme) → AdamW steps with JSON-lines logging, periodic held-out
//! validation and atomic checkpoints (resumable) → export → sampling with a flow Euler
//! loop → sample statistics against the captions → mp4 files. `bin/train.rs` is a thin
//! argument parser over [`run`]; the test runs a shortened [`ScratchConfig`].
use std::collections::BTreeMap;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mlx_rs::{Array, Dtype};

use crate::checkpoint::safetensors::save;
use crate::dit::{ModelType, Timesteps, WanConfig, WanModel};
use crate::error::{Error, Result};
use crate::solvers::{Euler, Schedule};
use crate::train::checkpoint::{export_dit, load_checkpoint, save_checkpoint};
use crate::train::data::synthetic::{self, ClipSpec, ClipStats, SyntheticConfig};
use crate::train::init::init_weights;
use crate::train::objective::{FlowBatch, Rng, SigmaSampling};
use crate::train::trainer::{FlowModel, Trainer, eval_loss};
use crate::train::{AdamWConfig, LrSchedule};
use crate::video::{Frames, write_mp4};

#[derive(Debug, Clone)]
pub struct ScratchConfig {
    pub model: WanConfig,
    pub data: SyntheticConfig,
    pub steps: u64,
    pub batch: usize,
    /// Micro-batches per optimizer step (gradient accumulation).
    pub accumulate: usize,
    pub lr: f64,
    pub warmup: u64,
    pub cosine: bool,
    pub max_grad_norm: Option<f64>,
    pub sigma: SigmaSampling,
    pub seed: u64,
    /// Stop training early (then validate, sample) when this much time has passed.
    pub time_limit: Option<Duration>,
    pub val_clips: usize,
    pub val_every: u64,
    pub checkpoint_every: u64,
    pub samples: usize,
    pub sample_steps: usize,
    pub sample_shift: f64,
    pub compute_dtype: Dtype,
    pub write_mp4: bool,
}

impl Default for ScratchConfig {
    /// The default run: sized to finish in well under 15 minutes on 2 CPU cores.
    fn default() -> Self {
        let data = SyntheticConfig {
            frames: 4,
            size: 16,
            text_dim: 32,
            radius: 3.0,
            speed: 2.0,
        };
        Self {
            model: small_model(data.text_dim),
            data,
            steps: 1000,
            batch: 32,
            accumulate: 1,
            lr: 2e-3,
            warmup: 50,
            cosine: true,
            max_grad_norm: Some(1.0),
            sigma: SigmaSampling::Uniform,
            seed: 0,
            time_limit: Some(Duration::from_secs(13 * 60)),
            val_clips: 32,
            val_every: 100,
            checkpoint_every: 250,
            samples: 8,
            sample_steps: 24,
            sample_shift: 2.0,
            compute_dtype: Dtype::Float32,
            write_mp4: true,
        }
    }
}

/// A small t2v DiT for [`synthetic`] latents (4 channels, 3D RoPE, qk-norm as official).
pub fn small_model(text_dim: i32) -> WanConfig {
    WanConfig {
        model_type: ModelType::T2v,
        patch_size: [1, 2, 2],
        text_len: 16,
        in_dim: synthetic::LATENT_CHANNELS,
        dim: 128,
        ffn_dim: 256,
        freq_dim: 64,
        text_dim,
        out_dim: synthetic::LATENT_CHANNELS,
        num_heads: 2,
        num_layers: 2,
        window_size: [-1, -1],
        qk_norm: true,
        cross_attn_norm: true,
        eps: 1e-6,
        class_name: None,
        diffusers_version: None,
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SampleReport {
    pub caption: String,
    pub stats: ClipStats,
    pub background_ok: bool,
    pub colour_ok: bool,
    pub direction_ok: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ScratchReport {
    pub steps: u64,
    pub train_seconds: f64,
    pub num_params: usize,
    pub initial_val_loss: f32,
    pub final_val_loss: f32,
    /// Mean training loss over the last (up to) 50 steps.
    pub final_train_loss: f32,
    pub samples: Vec<SampleReport>,
    pub background_accuracy: f32,
    pub colour_accuracy: f32,
    pub direction_accuracy: f32,
    pub files: Vec<PathBuf>,
}

const VAL_CHUNK: usize = 8;

/// Fixed held-out clips (own RNG stream) with σ on a grid, so validation is comparable.
fn validation_set(cfg: &ScratchConfig) -> Result<Vec<FlowBatch>> {
    let mut rng = Rng::new(cfg.seed ^ 0x05EE_D0F7_A11D);
    let mut out = Vec::new();
    let mut done = 0;
    while done < cfg.val_clips {
        // Fixed chunks (not the training batch size), so the set is the same for any run.
        let b = VAL_CHUNK.min(cfg.val_clips - done);
        let (mut batch, _) = synthetic::batch(&cfg.data, &mut rng, b, &SigmaSampling::Uniform)?;
        batch.sigma = (0..b)
            .map(|i| ((done + i) as f32 + 0.5) / cfg.val_clips as f32)
            .collect();
        out.push(batch);
        done += b;
    }
    Ok(out)
}

fn val_loss<M: FlowModel>(model: &mut M, set: &[FlowBatch]) -> Result<f32> {
    let mut total = 0.0;
    for b in set {
        total += eval_loss(model, b)? * b.batch_size() as f32;
    }
    Ok(total / set.iter().map(FlowBatch::batch_size).sum::<usize>().max(1) as f32)
}

/// Flow Euler sampling with [`Euler`] on the σ grid `shift(1 − k/steps)` (the DPM++ grid,
/// σ₀ = 1); the DiT gets the continuous `t = 1000·σ_k` it was trained with.
pub fn sample_euler(
    model: &WanModel,
    noise: &Array,
    context: &[Array],
    steps: usize,
    shift: f64,
) -> Result<Array> {
    let ctx = model.embed_context(context)?;
    let b = noise.shape()[0] as usize;
    let mut solver = Euler::new(Schedule::dpmpp(steps, shift)?);
    let mut x = noise.clone();
    for k in 0..steps {
        let t = Timesteps::PerSample(vec![solver.schedule().sigmas[k] * 1000.0; b]);
        let v = model.forward_embedded(&x, None, &t, &ctx, None)?;
        x = solver.step(&v, k, &x)?.sample;
        x.eval()?;
    }
    Ok(x)
}

/// Planar RGB `[3, F, H, W]` in [0, 1] → RGB8 frames blown up `scale`× (nearest), so the
/// tiny clips are viewable as mp4.
pub fn planar_frames(rgb: &[f32], f: usize, h: usize, w: usize, scale: usize) -> Result<Frames> {
    let n = f * h * w;
    if rgb.len() != 3 * n || n == 0 || scale == 0 {
        return Err(Error::Input(format!(
            "{} values for 3×{f}×{h}×{w} (scale {scale})",
            rgb.len()
        )));
    }
    let (ow, oh) = (w * scale, h * scale);
    let frames = (0..f)
        .map(|t| {
            let mut out = Vec::with_capacity(ow * oh * 3);
            for y in 0..oh {
                for x in 0..ow {
                    let i = (t * h + y / scale) * w + x / scale;
                    for c in 0..3 {
                        out.push((rgb[c * n + i].clamp(0.0, 1.0) * 255.0).round() as u8);
                    }
                }
            }
            out
        })
        .collect();
    Ok(Frames {
        width: ow as u32,
        height: oh as u32,
        frames,
    })
}

/// Every batch a run of `steps` steps would train on (same seed → same batches).
pub fn export_batches(cfg: &ScratchConfig, path: &Path) -> Result<()> {
    let mut rng = Rng::new(cfg.seed);
    let mut tensors = BTreeMap::new();
    let mut captions = Vec::new();
    for s in 0..cfg.steps {
        for m in 0..cfg.accumulate {
            let (b, specs) = synthetic::batch(&cfg.data, &mut rng, cfg.batch, &cfg.sigma)?;
            let p = format!("step{s}/micro{m}/");
            tensors.insert(format!("{p}x0"), b.x0);
            tensors.insert(format!("{p}noise"), b.noise);
            tensors.insert(
                format!("{p}sigma"),
                Array::from_slice(&b.sigma, &[b.sigma.len() as i32]),
            );
            for (j, c) in b.context.into_iter().enumerate() {
                tensors.insert(format!("{p}context{j}"), c);
            }
            captions.push(specs.iter().map(ClipSpec::caption).collect::<Vec<_>>());
        }
    }
    let meta = BTreeMap::from([
        ("steps".to_string(), cfg.steps.to_string()),
        ("accumulate".to_string(), cfg.accumulate.to_string()),
        (
            "captions".to_string(),
            serde_json::to_string(&captions).unwrap_or_default(),
        ),
        (
            "objective".to_string(),
            "x_t = (1-sigma)*x0 + sigma*noise; target = noise - x0; T = 1000*sigma per token; MSE"
                .to_string(),
        ),
    ]);
    save(path, &tensors, &meta)
}

/// Train (resuming from `out/checkpoint.safetensors` when `resume`), validate, sample.
pub fn run(cfg: &ScratchConfig, out: &Path, resume: bool, quiet: bool) -> Result<ScratchReport> {
    cfg.data.validate()?;
    cfg.sigma.validate()?;
    if cfg.batch == 0 || cfg.accumulate == 0 {
        return Err(Error::Config("batch and accumulate must be ≥ 1".into()));
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let mut model = WanModel::new(cfg.model.clone())?;
    init_weights(&mut model, &mut Rng::new(cfg.seed ^ 0x1D17))?;
    let schedule = LrSchedule {
        lr: cfg.lr,
        warmup_steps: cfg.warmup,
        cosine_total: cfg.cosine.then_some(cfg.steps),
        min_lr: cfg.lr * 0.05,
    };
    let adamw = AdamWConfig {
        max_grad_norm: cfg.max_grad_norm,
        ..Default::default()
    };
    let log_path = out.join("train.jsonl");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| Error::io(&log_path, e))?;
    let mut trainer = Trainer::new(adamw, schedule).with_log(Box::new(BufWriter::new(log)));
    let mut rng = Rng::new(cfg.seed);
    let ckpt = out.join("checkpoint.safetensors");
    let val = validation_set(cfg)?;
    let initial_val_loss = val_loss(&mut model, &val)?;
    if resume && ckpt.exists() {
        rng = load_checkpoint(&ckpt, &mut model, &mut trainer)?.rng;
    }
    if cfg.compute_dtype != Dtype::Float32 {
        model.set_compute_dtype(cfg.compute_dtype)?;
    }
    let ck_meta = BTreeMap::from([(
        "config".to_string(),
        serde_json::to_string(&cfg.model).unwrap_or_default(),
    )]);
    trainer.log_json(
        &serde_json::json!({"event": "start", "step": trainer.opt.step,
        "params": model.num_params(), "val_loss": initial_val_loss}),
    )?;

    let start = Instant::now();
    let mut recent: Vec<f32> = Vec::new();
    while trainer.opt.step < cfg.steps {
        if cfg.time_limit.is_some_and(|l| start.elapsed() > l) {
            trainer
                .log_json(&serde_json::json!({"event": "time_limit", "step": trainer.opt.step}))?;
            break;
        }
        let micro = (0..cfg.accumulate)
            .map(|_| synthetic::batch(&cfg.data, &mut rng, cfg.batch, &cfg.sigma).map(|b| b.0))
            .collect::<Result<Vec<_>>>()?;
        let s = trainer.step(&mut model, &micro)?;
        recent.push(s.loss);
        if recent.len() > 50 {
            recent.remove(0);
        }
        let last = s.step == cfg.steps;
        if s.step % cfg.val_every.max(1) == 0 || last {
            let v = val_loss(&mut model, &val)?;
            trainer
                .log_json(&serde_json::json!({"event": "val", "step": s.step, "val_loss": v}))?;
            if !quiet {
                eprintln!(
                    "step {:>5}  loss {:.4}  val {:.4}  |g| {:.3}  lr {:.2e}  {:.1} samples/s  {:.0}s",
                    s.step,
                    s.loss,
                    v,
                    s.grad_norm,
                    s.lr,
                    s.samples_per_s,
                    start.elapsed().as_secs_f64()
                );
            }
        }
        if s.step % cfg.checkpoint_every.max(1) == 0 || last {
            save_checkpoint(&ckpt, &model, &trainer, &rng, &ck_meta)?;
        }
    }
    let train_seconds = start.elapsed().as_secs_f64();
    let final_val_loss = val_loss(&mut model, &val)?;
    save_checkpoint(&ckpt, &model, &trainer, &rng, &ck_meta)?;
    model.set_compute_dtype(Dtype::Float32)?;
    let mut files = vec![ckpt, log_path];
    let model_path = out.join("model.safetensors");
    export_dit(&model_path, &model)?;
    files.push(model_path);

    let (samples, mut sfiles) = sample_and_measure(cfg, &model, out)?;
    files.append(&mut sfiles);
    let acc = |f: &dyn Fn(&SampleReport) -> bool| accuracy(&samples, f);
    let report = ScratchReport {
        steps: trainer.opt.step,
        train_seconds,
        num_params: model.num_params(),
        initial_val_loss,
        final_val_loss,
        final_train_loss: recent.iter().sum::<f32>() / recent.len().max(1) as f32,
        background_accuracy: acc(&|s| s.background_ok),
        colour_accuracy: acc(&|s| s.colour_ok),
        direction_accuracy: acc(&|s| s.direction_ok),
        samples,
        files,
    };
    trainer.log_json(&serde_json::json!({"event": "done", "report": &report}))?;
    let summary = out.join("summary.json");
    std::fs::write(
        &summary,
        serde_json::to_string_pretty(&report).unwrap_or_default(),
    )
    .map_err(|e| Error::io(&summary, e))?;
    Ok(report)
}

/// Sample one clip per held-out caption, decode, measure, and write mp4s.
fn sample_and_measure(
    cfg: &ScratchConfig,
    model: &WanModel,
    out: &Path,
) -> Result<(Vec<SampleReport>, Vec<PathBuf>)> {
    if cfg.samples == 0 {
        return Ok((Vec::new(), Vec::new()));
    }
    let mut rng = Rng::new(cfg.seed ^ 0x05A3_F1E5);
    let specs: Vec<ClipSpec> = (0..cfg.samples)
        .map(|_| ClipSpec::random(&mut rng, &cfg.data))
        .collect();
    let context = specs
        .iter()
        .map(|s| synthetic::embed_caption(&s.caption(), cfg.data.text_dim))
        .collect::<Result<Vec<_>>>()?;
    let [c, f, h, w] = cfg.data.latent_shape();
    let noise = mlx_rs::random::normal::<f32>(
        &[specs.len() as i32, c, f, h, w][..],
        None,
        None,
        &rng.mlx_key()?,
    )?;
    let lat = sample_euler(model, &noise, &context, cfg.sample_steps, cfg.sample_shift)?;
    let lat: Vec<f32> = lat
        .as_dtype(Dtype::Float32)?
        .to_vec_cast::<f32>()
        .map_err(|e| Error::Input(e.to_string()))?;
    let (fu, hu, wu) = (f as usize, h as usize, w as usize);
    let per = c as usize * fu * hu * wu;
    let mut reports = Vec::new();
    let mut files = Vec::new();
    for (i, s) in specs.iter().enumerate() {
        let rgb = synthetic::decode(&lat[i * per..(i + 1) * per], fu, hu, wu);
        let stats = synthetic::clip_stats(&rgb, fu, hu, wu);
        if cfg.write_mp4 {
            let p = out.join(format!("sample_{i:02}.mp4"));
            write_mp4(&p, &planar_frames(&rgb, fu, hu, wu, 8)?, 4)?;
            files.push(p);
        }
        reports.push(SampleReport {
            caption: s.caption(),
            background_ok: stats.background_class == s.background,
            colour_ok: stats.colour_class == Some(s.colour),
            direction_ok: stats.direction_class == Some(s.direction),
            stats,
        });
    }
    Ok((reports, files))
}

/// Sample again from `out/model.safetensors` (other step counts or shift) and measure.
/// Returns the per-sample reports and the files written.
pub fn resample(cfg: &ScratchConfig, out: &Path) -> Result<(Vec<SampleReport>, Vec<PathBuf>)> {
    let model = crate::train::checkpoint::load_exported_dit(&out.join("model.safetensors"))?;
    sample_and_measure(cfg, &model, out)
}

/// Fraction of samples that satisfy `f`.
pub fn accuracy(samples: &[SampleReport], f: impl Fn(&SampleReport) -> bool) -> f32 {
    samples.iter().filter(|s| f(s)).count() as f32 / samples.len().max(1) as f32
}
