//! `train OUT_DIR`: train a small WanModel from scratch on the built-in synthetic video
//! dataset (coloured shapes moving on plain backgrounds), then sample clips as mp4.
//! Writes `OUT_DIR/{train.jsonl, checkpoint.safetensors, model.safetensors,
//! sample_NN.mp4, summary.json}`. `--resume` continues from the checkpoint.
//! `train --export-batches FILE` writes the exact batches (x0, noise, σ, contexts) the run
//! would train on, so an external baseline can train on identical data.
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use wan::train::SigmaSampling;
use wan::train::scratch::{self, ScratchConfig};

#[derive(Parser)]
#[command(
    version,
    about = "Train a small Wan DiT from scratch on synthetic clips"
)]
struct Args {
    /// Output folder (log, checkpoint, model, samples, summary).
    out: Option<PathBuf>,
    /// Write the training batches of this run to FILE (safetensors) and exit.
    #[arg(long, value_name = "FILE")]
    export_batches: Option<PathBuf>,
    /// Continue from OUT/checkpoint.safetensors.
    #[arg(long)]
    resume: bool,
    #[arg(long)]
    steps: Option<u64>,
    #[arg(long)]
    batch: Option<usize>,
    /// Micro-batches per optimizer step (gradient accumulation).
    #[arg(long)]
    accumulate: Option<usize>,
    #[arg(long)]
    lr: Option<f64>,
    #[arg(long)]
    warmup: Option<u64>,
    /// Constant LR after warmup (default: cosine decay).
    #[arg(long)]
    constant_lr: bool,
    /// Global-norm gradient clipping (0 = off).
    #[arg(long)]
    max_grad_norm: Option<f64>,
    /// σ sampling: uniform | shift:S | logit_normal:MEAN:STD:SHIFT.
    #[arg(long)]
    sigma_sampling: Option<String>,
    #[arg(long)]
    seed: Option<u64>,
    /// Stop training after this many minutes (then validate and sample).
    #[arg(long)]
    minutes: Option<f64>,
    #[arg(long)]
    samples: Option<usize>,
    #[arg(long)]
    sample_steps: Option<usize>,
    /// Flow shift of the sampling schedule.
    #[arg(long)]
    sample_shift: Option<f64>,
    /// Only sample (and measure) again from OUT/model.safetensors.
    #[arg(long)]
    sample_only: bool,
    /// Compute the big Linears in bfloat16 (float32 master weights in the optimizer).
    #[arg(long)]
    bf16: bool,
    /// Skip writing mp4 files (no ffmpeg needed).
    #[arg(long)]
    no_mp4: bool,
    #[arg(long)]
    quiet: bool,
}

fn main() -> Result<()> {
    let a = Args::parse();
    let mut cfg = ScratchConfig::default();
    if let Some(v) = a.steps {
        cfg.steps = v;
    }
    if let Some(v) = a.batch {
        cfg.batch = v;
    }
    if let Some(v) = a.accumulate {
        cfg.accumulate = v;
    }
    if let Some(v) = a.lr {
        cfg.lr = v;
    }
    if let Some(v) = a.warmup {
        cfg.warmup = v;
    }
    if let Some(v) = a.max_grad_norm {
        cfg.max_grad_norm = (v > 0.0).then_some(v);
    }
    if let Some(s) = &a.sigma_sampling {
        cfg.sigma = SigmaSampling::parse(s)?;
    }
    if let Some(v) = a.seed {
        cfg.seed = v;
    }
    if let Some(m) = a.minutes {
        if m.is_nan() || m <= 0.0 {
            bail!("--minutes must be positive");
        }
        cfg.time_limit = Some(Duration::from_secs_f64(m * 60.0));
    }
    if let Some(v) = a.samples {
        cfg.samples = v;
    }
    if let Some(v) = a.sample_steps {
        cfg.sample_steps = v.max(1);
    }
    if let Some(v) = a.sample_shift {
        cfg.sample_shift = v;
    }
    cfg.cosine = !a.constant_lr;
    cfg.write_mp4 = !a.no_mp4;
    if a.bf16 {
        cfg.compute_dtype = mlx_rs::Dtype::Bfloat16;
    }

    if let Some(path) = &a.export_batches {
        scratch::export_batches(&cfg, path)
            .with_context(|| format!("exporting batches to {}", path.display()))?;
        println!(
            "wrote {} step(s) of batches to {}",
            cfg.steps,
            path.display()
        );
        return Ok(());
    }
    let Some(out) = &a.out else {
        bail!("give an output folder (or --export-batches FILE)");
    };
    if a.sample_only {
        let (samples, files) = scratch::resample(&cfg, out)?;
        for s in &samples {
            println!(
                "{:<52} background {} colour {} direction {}",
                s.caption, s.background_ok, s.colour_ok, s.direction_ok
            );
        }
        println!(
            "background {:.0}%, colour {:.0}%, direction {:.0}% ({} file(s))",
            100.0 * scratch::accuracy(&samples, |s| s.background_ok),
            100.0 * scratch::accuracy(&samples, |s| s.colour_ok),
            100.0 * scratch::accuracy(&samples, |s| s.direction_ok),
            files.len()
        );
        return Ok(());
    }
    let r = scratch::run(&cfg, out, a.resume, a.quiet)?;
    println!(
        "trained {} steps in {:.0}s ({} params): val loss {:.4} -> {:.4}, train loss {:.4}",
        r.steps,
        r.train_seconds,
        r.num_params,
        r.initial_val_loss,
        r.final_val_loss,
        r.final_train_loss
    );
    println!(
        "samples: background {:.0}%, colour {:.0}%, direction {:.0}% match their captions",
        100.0 * r.background_accuracy,
        100.0 * r.colour_accuracy,
        100.0 * r.direction_accuracy
    );
    println!("wrote {}", out.display());
    Ok(())
}
