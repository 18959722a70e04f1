//! LoRA fine-tuning of a Wan2.2 checkpoint on a dataset folder (what `train_lora` runs):
//! scan the folder → latents and text contexts from the cache (encoding what is missing,
//! then dropping the VAE and T5) → DiT + LoRA adapters → flow-matching steps with
//! [`Trainer`] → `OUT/lora.safetensors` (community key names, see `train::lora`),
//! `OUT/train.jsonl`, `OUT/summary.json`, and `OUT/checkpoint.safetensors` (the training
//! state: `resume` continues from it exactly).
//!
//! Batches: a micro-batch holds `batch` clips of the same latent shape (videos and images
//! give different shapes), drawn uniformly with replacement. A14B experts train only on
//! their σ range (the high-noise expert on σ ≥ boundary, the low-noise one below), by
//! rescaling the sampled σ into it, as musubi-tuner's min/max timestep does.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use mlx_rs::ops::indexing::TryIndexOp;
use mlx_rs::{Array, Dtype};
use serde_json::json;

use crate::checkpoint::Checkpoint;
use crate::checkpoint::folder::Expert;
use crate::config::Task;
use crate::error::{Error, Result};
use crate::train::adamw::{AdamWConfig, LrSchedule};
use crate::train::checkpoint::{load_checkpoint, save_checkpoint};
use crate::train::data::cache::{self, CacheStats, CachedItem, EncoderIds};
use crate::train::data::folder::{ClipSpec, DatasetFolder};
use crate::train::lora::{LoraConfig, LoraWan};
use crate::train::objective::{FlowBatch, Rng, SigmaSampling};
use crate::train::trainer::{StepStats, Trainer};

/// Settings of one fine-tuning run.
#[derive(Debug, Clone)]
pub struct FinetuneConfig {
    pub ckpt: PathBuf,
    pub data: PathBuf,
    pub out: PathBuf,
    /// Cache folder (default `DATA/.wan_cache`).
    pub cache: Option<PathBuf>,
    /// A14B: which expert to adapt (`HighNoise` / `LowNoise`); ignored for ti2v-5B.
    pub expert: Expert,
    pub lora: LoraConfig,
    pub steps: u64,
    pub lr: f64,
    pub warmup: u64,
    pub weight_decay: f64,
    pub max_grad_norm: Option<f64>,
    /// Clips per micro-batch.
    pub batch: usize,
    /// Micro-batches per optimizer step.
    pub accumulate: usize,
    pub spec: ClipSpec,
    pub grad_checkpoint: bool,
    pub seed: u64,
    pub sigma: SigmaSampling,
    /// Also write `lora.safetensors` and the training state every N steps (0 = only at
    /// the end).
    pub save_every: u64,
    /// Continue from `OUT/checkpoint.safetensors` (adapters, AdamW state, step, RNG) if
    /// it exists.
    pub resume: bool,
    /// DiT compute dtype (float32 on CPU, bf16 on Metal); adapters stay float32.
    pub dtype: Dtype,
}

impl FinetuneConfig {
    /// Defaults in the range the community Wan LoRA trainers use (rank 16, lr 1e-4).
    pub fn new(ckpt: PathBuf, data: PathBuf, out: PathBuf) -> Self {
        Self {
            ckpt,
            data,
            out,
            cache: None,
            expert: Expert::LowNoise,
            lora: LoraConfig::new(16),
            steps: 500,
            lr: 1e-4,
            warmup: 0,
            weight_decay: 0.01,
            max_grad_norm: Some(1.0),
            batch: 1,
            accumulate: 1,
            spec: ClipSpec {
                width: 832,
                height: 480,
                frames: 33,
            },
            grad_checkpoint: false,
            seed: 42,
            sigma: SigmaSampling::Uniform,
            save_every: 0,
            resume: false,
            dtype: Dtype::Float32,
        }
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.cache
            .clone()
            .unwrap_or_else(|| self.data.join(".wan_cache"))
    }

    pub fn validate(&self) -> Result<()> {
        self.spec.validate()?;
        self.lora.validate()?;
        self.sigma.validate()?;
        if self.steps == 0 || self.batch == 0 || self.accumulate == 0 {
            return Err(Error::Input(
                "--steps, --batch and --accumulate must be at least 1".into(),
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::Input(format!("--lr {} must be positive", self.lr)));
        }
        Ok(())
    }
}

/// What a run did (also written to `OUT/summary.json`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct FinetuneSummary {
    pub task: String,
    pub expert: String,
    pub items: usize,
    #[serde(flatten)]
    pub cache: CacheStats,
    pub steps: u64,
    /// Step the run continued from (0: a fresh run).
    pub resumed_from: u64,
    /// Loss of the first step this invocation took.
    pub first_loss: f32,
    pub final_loss: f32,
    /// Mean loss over the last min(10, steps) steps.
    pub mean_last_loss: f32,
    pub trainable_params: usize,
    pub seconds_prepare: f64,
    pub seconds_train: f64,
    /// MLX peak memory during training (bytes; 0 if the backend does not report it).
    pub peak_memory_bytes: usize,
    pub grad_checkpoint: bool,
    pub lora: PathBuf,
}

/// The DiT expert a run adapts, and the σ range it trains on.
fn pick_expert(task: Task, want: Expert) -> Result<(Expert, f64, f64)> {
    match (task, task.config().boundary) {
        (Task::I2vA14B, _) => Err(Error::Unsupported(
            "LoRA training for i2v-A14B (image-conditioned inputs) is not implemented; \
             ti2v-5B and t2v-A14B are"
                .into(),
        )),
        (_, None) => Ok((Expert::Main, 0.0, 1.0)),
        (_, Some(b)) => match want {
            Expert::HighNoise => Ok((Expert::HighNoise, b, 1.0)),
            _ => Ok((Expert::LowNoise, 0.0, b)),
        },
    }
}

/// Model-file identities for the cache keys.
fn encoder_ids(ck: &Checkpoint) -> Result<EncoderIds> {
    let vae = ck
        .vae
        .as_ref()
        .ok_or_else(|| Error::Missing(ck.root.join("Wan2.2_VAE.pth")))?;
    let t5 = ck
        .t5
        .as_ref()
        .ok_or_else(|| Error::Missing(ck.root.join("models_t5_umt5-xxl-enc-bf16.pth")))?;
    Ok(EncoderIds {
        vae: cache::model_identity(vae)?,
        t5: format!(
            "{}|{}",
            cache::model_identity(t5)?,
            cache::model_identity(ck.tokenizer_path()?)?
        ),
    })
}

/// Tokenizer + umT5 of a folder in the backend's dtype (bf16 on Metal, f32 on the CPU;
/// used once, for the captions not cached yet).
pub fn text_encoder(ck: &Checkpoint) -> Result<crate::t5::TextEncoder> {
    crate::pipeline::load_text_encoder(ck, crate::memory::Backend::current().default_dtype())
}

/// Scan + encode/load the cache for `cfg` (no DiT involved).
pub fn prepare_data(cfg: &FinetuneConfig, ck: &Checkpoint) -> Result<cache::Prepared> {
    let ds = DatasetFolder::scan(&cfg.data)?;
    cache::prepare(
        &ds,
        &cfg.spec,
        &cfg.cache_dir(),
        &encoder_ids(ck)?,
        || ck.load_vae(),
        || text_encoder(ck),
    )
}

/// One micro-batch: `b` clips of one latent shape, fresh noise and σ in `[lo, hi]`.
fn draw_batch(
    items: &[CachedItem],
    buckets: &BTreeMap<Vec<i32>, Vec<usize>>,
    b: usize,
    sigma: &SigmaSampling,
    (lo, hi): (f64, f64),
    text_len: i32,
    rng: &mut Rng,
) -> Result<FlowBatch> {
    let first = rng.below(items.len());
    let bucket = &buckets[items[first].latent.shape()];
    let mut picks = vec![first];
    while picks.len() < b {
        picks.push(bucket[rng.below(bucket.len())]);
    }
    let lat: Vec<&Array> = picks.iter().map(|&i| &items[i].latent).collect();
    let x0 = mlx_rs::ops::stack(&lat, 0)?; // [B, z, T, h, w]
    let noise = mlx_rs::random::normal::<f32>(x0.shape(), None, None, &rng.mlx_key()?)?;
    let sigma: Vec<f32> = (0..b)
        .map(|_| (lo + (hi - lo) * sigma.sample(rng) as f64) as f32)
        .collect();
    let context = picks
        .iter()
        .map(|&i| {
            let c = &items[i].context;
            // The tokenizer pads to 512; a DiT with a shorter text_len sees the first rows.
            Ok(if c.shape()[0] > text_len {
                c.try_index(..text_len)?
            } else {
                c.clone()
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(FlowBatch {
        x0,
        noise,
        sigma,
        context,
    })
}

/// Run the whole fine-tuning; `on_step` sees every optimizer step (progress bars).
pub fn run(cfg: &FinetuneConfig, on_step: &mut dyn FnMut(&StepStats)) -> Result<FinetuneSummary> {
    cfg.validate()?;
    let ck = Checkpoint::open(&cfg.ckpt)?;
    let task = ck.task()?;
    let (expert, lo, hi) = pick_expert(task, cfg.expert)?;
    let (mw, mh) = task.config().size_multiple();
    if !cfg.spec.width.is_multiple_of(mw as u32) || !cfg.spec.height.is_multiple_of(mh as u32) {
        return Err(Error::Input(format!(
            "--size {}x{}: {} needs the width a multiple of {mw} and the height of {mh}",
            cfg.spec.width,
            cfg.spec.height,
            task.name()
        )));
    }
    std::fs::create_dir_all(&cfg.out).map_err(|e| Error::io(&cfg.out, e))?;

    let t0 = Instant::now();
    let prepared = prepare_data(cfg, &ck)?;
    // The encoders are dropped: give their buffers back before the DiT is read.
    mlx_rs::memory::clear_cache()?;
    let seconds_prepare = t0.elapsed().as_secs_f64();
    let items = prepared.items;
    let mut buckets: BTreeMap<Vec<i32>, Vec<usize>> = BTreeMap::new();
    for (i, it) in items.iter().enumerate() {
        buckets
            .entry(it.latent.shape().to_vec())
            .or_default()
            .push(i);
    }

    let mut dit = ck.load_dit(expert)?;
    if dit.config.in_dim != items[0].latent.shape()[0] {
        return Err(Error::Input(format!(
            "the DiT takes {} input channels but the VAE latents have {}",
            dit.config.in_dim,
            items[0].latent.shape()[0]
        )));
    }
    if cfg.dtype != Dtype::Float32 {
        dit.set_compute_dtype(cfg.dtype)?;
    }
    let text_len = dit.config.text_len;
    let mut rng = Rng::new(cfg.seed);
    let mut lora = LoraWan::new(dit, cfg.lora.clone(), &mut rng)?;
    let trainable_params: usize = lora
        .adapters
        .iter()
        .map(|a| a.lora_a.size() + a.lora_b.size())
        .sum();

    let state_path = cfg.out.join("checkpoint.safetensors");
    let resuming = cfg.resume && state_path.is_file();
    let log_path = cfg.out.join("train.jsonl");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(resuming)
        .truncate(!resuming)
        .open(&log_path)
        .map_err(|e| Error::io(&log_path, e))?;
    let mut trainer = Trainer::new(
        AdamWConfig {
            weight_decay: cfg.weight_decay,
            max_grad_norm: cfg.max_grad_norm,
            ..Default::default()
        },
        LrSchedule {
            warmup_steps: cfg.warmup,
            ..LrSchedule::constant(cfg.lr)
        },
    )
    .with_log(Box::new(std::io::BufWriter::new(log)));
    trainer.grad_checkpoint = cfg.grad_checkpoint;
    let mut start = 1;
    if resuming {
        // Adapters, AdamW moments, step and RNG restored bit for bit: the next steps are
        // those of an uninterrupted run (test `train_lora_folder`).
        let r = load_checkpoint(&state_path, &mut lora, &mut trainer)?;
        if r.step >= cfg.steps {
            return Err(Error::Input(format!(
                "{} is already at step {}; ask for more --steps to continue",
                state_path.display(),
                r.step
            )));
        }
        rng = r.rng;
        start = r.step + 1;
    }
    let state_meta = BTreeMap::from([
        ("rank".to_string(), cfg.lora.rank.to_string()),
        ("targets".to_string(), cfg.lora.targets.join(",")),
    ]);

    let lora_path = cfg.out.join("lora.safetensors");
    let _ = mlx_rs::memory::reset_peak_memory();
    let t1 = Instant::now();
    let mut losses = Vec::with_capacity(cfg.steps as usize);
    for step in start..=cfg.steps {
        let micro = (0..cfg.accumulate)
            .map(|_| {
                draw_batch(
                    &items,
                    &buckets,
                    cfg.batch,
                    &cfg.sigma,
                    (lo, hi),
                    text_len,
                    &mut rng,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let stats = trainer.step(&mut lora, &micro)?;
        losses.push(stats.loss);
        on_step(&stats);
        if step == cfg.steps || (cfg.save_every > 0 && step.is_multiple_of(cfg.save_every)) {
            lora.save(&lora_path)?;
            save_checkpoint(&state_path, &lora, &trainer, &rng, &state_meta)?;
        }
    }
    let seconds_train = t1.elapsed().as_secs_f64();
    let peak_memory_bytes = mlx_rs::memory::peak_memory().unwrap_or(0);

    let tail = &losses[losses.len().saturating_sub(10)..];
    let summary = FinetuneSummary {
        task: task.name().to_string(),
        expert: format!("{expert:?}"),
        items: items.len(),
        cache: prepared.stats,
        steps: cfg.steps,
        resumed_from: start - 1,
        first_loss: losses[0],
        final_loss: losses[losses.len() - 1],
        mean_last_loss: tail.iter().sum::<f32>() / tail.len() as f32,
        trainable_params,
        seconds_prepare,
        seconds_train,
        peak_memory_bytes,
        grad_checkpoint: cfg.grad_checkpoint,
        lora: lora_path,
    };
    let mut v = serde_json::to_value(&summary).map_err(|e| Error::Input(e.to_string()))?;
    v["config"] = json!({
        "rank": cfg.lora.rank, "alpha": cfg.lora.alpha, "targets": cfg.lora.targets,
        "lr": cfg.lr, "batch": cfg.batch, "accumulate": cfg.accumulate,
        "size": [cfg.spec.width, cfg.spec.height], "frames": cfg.spec.frames,
        "seed": cfg.seed, "sigma": format!("{:?}", cfg.sigma), "sigma_range": [lo, hi],
        "cache": cfg.cache_dir(),
    });
    write_json(&cfg.out.join("summary.json"), &v)?;
    Ok(summary)
}

/// Atomic JSON write (temp file + rename).
fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
    let tmp = crate::video::mp4::tmp_sibling(path);
    let text = serde_json::to_string_pretty(v).map_err(|e| Error::Input(e.to_string()))?;
    std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}
