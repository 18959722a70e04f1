//! `train_lora --ckpt DIR --data DIR --out DIR`: LoRA fine-tuning of a Wan2.2 checkpoint
//! (official or converted folder; ti2v-5B, or one expert of t2v-A14B) on a folder of
//! captioned videos/images. Latents and text contexts are cached in `DATA/.wan_cache/`
//! (or `--cache DIR`). Writes `OUT/lora.safetensors` (load it with `generate --lora`),
//! `OUT/train.jsonl` (one JSON line per step), `OUT/summary.json` and
//! `OUT/checkpoint.safetensors` (`--resume` continues from it).
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use wan::checkpoint::folder::Expert;
use wan::train::SigmaSampling;
use wan::train::data::folder::ClipSpec;
use wan::train::finetune::{self, FinetuneConfig};
use wan::train::lora::ALL_TARGETS;

#[derive(Clone, Copy, ValueEnum)]
enum ExpertArg {
    High,
    Low,
}

#[derive(Parser)]
#[command(
    version,
    about = "LoRA fine-tuning of a Wan2.2 checkpoint on a folder of captioned clips"
)]
struct Args {
    /// Checkpoint folder (official Hugging Face layout or made by `convert`).
    #[arg(long)]
    ckpt: PathBuf,
    /// Dataset folder: videos (.mp4 .mov .webm .mkv) / images (.png .jpg .jpeg .webp),
    /// each with a same-stem .txt caption.
    #[arg(long)]
    data: PathBuf,
    /// Output folder (lora.safetensors, train.jsonl, summary.json).
    #[arg(long)]
    out: PathBuf,
    /// Cache folder for latents and text contexts [default: DATA/.wan_cache].
    #[arg(long)]
    cache: Option<PathBuf>,
    /// A14B: the expert to adapt.
    #[arg(long, value_enum, default_value = "low")]
    expert: ExpertArg,
    #[arg(long, default_value_t = 16)]
    rank: i32,
    /// LoRA alpha (scale alpha/rank) [default: rank].
    #[arg(long)]
    alpha: Option<f32>,
    /// Comma-separated targets (default all: self_attn.{q,k,v,o}, cross_attn.{q,k,v,o},
    /// ffn.0, ffn.2).
    #[arg(long)]
    targets: Option<String>,
    #[arg(long, default_value_t = 500)]
    steps: u64,
    #[arg(long, default_value_t = 1e-4)]
    lr: f64,
    #[arg(long, default_value_t = 0)]
    warmup: u64,
    /// Clips per micro-batch.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Micro-batches per optimizer step (gradient accumulation).
    #[arg(long, default_value_t = 1)]
    accumulate: usize,
    /// Training size WxH (multiples of the task's VAE stride × patch, e.g. 32 for ti2v-5B).
    #[arg(long, default_value = "832x480")]
    size: String,
    /// Frames per video clip (4n+1); images are 1-frame clips.
    #[arg(long, default_value_t = 33)]
    frames: u32,
    /// Recompute each block during the backward pass (less memory, ~1.3× compute).
    #[arg(long)]
    grad_checkpoint: bool,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// σ sampling: uniform | shift:S | logit_normal:MEAN:STD:SHIFT.
    #[arg(long, default_value = "uniform")]
    sigma_sampling: String,
    /// Also save lora.safetensors and the training state every N steps (0 = only at the end).
    #[arg(long, default_value_t = 0)]
    save_every: u64,
    /// Continue from OUT/checkpoint.safetensors (adapters, optimizer, step, RNG) up to --steps.
    #[arg(long)]
    resume: bool,
    /// Global-norm gradient clipping (0 = off).
    #[arg(long, default_value_t = 1.0)]
    max_grad_norm: f64,
    /// Compute the DiT in bfloat16 (adapters and optimizer stay float32; use on Metal).
    #[arg(long)]
    bf16: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

fn main() -> Result<()> {
    let a = Args::parse();
    let (w, h) = wan::config::parse_size(&a.size)?;
    let mut cfg = FinetuneConfig::new(a.ckpt.clone(), a.data.clone(), a.out.clone());
    cfg.cache = a.cache.clone();
    cfg.expert = match a.expert {
        ExpertArg::High => Expert::HighNoise,
        ExpertArg::Low => Expert::LowNoise,
    };
    cfg.lora.rank = a.rank;
    cfg.lora.alpha = a.alpha.unwrap_or(a.rank as f32);
    if let Some(t) = &a.targets {
        cfg.lora.targets = t
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if cfg.lora.targets.is_empty() {
            bail!("--targets is empty (known: {})", ALL_TARGETS.join(", "));
        }
    }
    cfg.steps = a.steps;
    cfg.lr = a.lr;
    cfg.warmup = a.warmup;
    cfg.batch = a.batch;
    cfg.accumulate = a.accumulate;
    cfg.spec = ClipSpec {
        width: w as u32,
        height: h as u32,
        frames: a.frames,
    };
    cfg.grad_checkpoint = a.grad_checkpoint;
    cfg.seed = a.seed;
    cfg.sigma = SigmaSampling::parse(&a.sigma_sampling)?;
    cfg.save_every = a.save_every;
    cfg.resume = a.resume;
    if !a.max_grad_norm.is_finite() || a.max_grad_norm < 0.0 {
        bail!("--max-grad-norm must be ≥ 0");
    }
    cfg.max_grad_norm = (a.max_grad_norm > 0.0).then_some(a.max_grad_norm);
    if a.bf16 {
        cfg.dtype = mlx_rs::Dtype::Bfloat16;
    }

    let bar = ProgressBar::new(cfg.steps);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps {msg} [{elapsed} < {eta}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    if a.quiet {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let s = finetune::run(&cfg, &mut |st| {
        bar.set_message(format!("loss {:.4}", st.loss));
        bar.set_position(st.step);
    })
    .with_context(|| format!("LoRA training on {}", cfg.data.display()))?;
    bar.finish_and_clear();
    println!(
        "{} {}: {} clip(s) ({} cached, {} encoded; captions {} cached, {} encoded)",
        s.task,
        s.expert,
        s.items,
        s.cache.cached,
        s.cache.encoded,
        s.cache.text_cached,
        s.cache.text_encoded
    );
    println!(
        "trained {} steps in {:.1}s: loss {:.4} -> {:.4} (mean of last: {:.4}), peak {:.1} MB",
        s.steps,
        s.seconds_train,
        s.first_loss,
        s.final_loss,
        s.mean_last_loss,
        s.peak_memory_bytes as f64 / 1e6
    );
    println!("wrote {}", s.lora.display());
    Ok(())
}
