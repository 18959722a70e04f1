//! `bench`: per-step DiT time (median of N after warm-up), peak memory, and — when a
//! checkpoint folder and the VAE / T5 modules are available — VAE decode and text-encode
//! times, for a task / size / frames / dtype. Without `--ckpt_dir` the full-size official
//! architecture (or `--layers K` of it) is built with random weights. Prints JSON.
//!
//! `--plan-only` loads nothing: it prints the memory plan for the job on a machine
//! (`--memory 16GB`, `--backend metal|cpu`): `fits`, `predicted_peak_bytes`, `phases`,
//! `plan`, and on refusal `reason` with what would fit.
use anyhow::{Result, bail};
use clap::Parser;
use mlx_rs::Dtype;
use serde_json::json;
use wan::checkpoint::Expert;
use wan::config::{Task, parse_size};
use wan::dit::{DitLoad, WanConfig};
use wan::quant::{QuantSpec, Recipe};

#[derive(Parser, Debug)]
#[command(version, about, rename_all = "snake_case")]
struct Args {
    #[arg(long, default_value = "ti2v-5B")]
    task: String,
    /// `W*H` (any multiple of the task's stride).
    #[arg(long, default_value = "1280*704")]
    size: String,
    #[arg(long, default_value_t = 121)]
    frame_num: i32,
    /// f32 or bf16 (`--plan-only`: also `auto`, the plan's choice).
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// Keep only the first K transformer blocks of the full-size architecture.
    #[arg(long)]
    layers: Option<i32>,
    /// Timed steps (the median is reported).
    #[arg(long, default_value_t = 3)]
    steps: usize,
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Prompt length in tokens for the context (≤ text_len).
    #[arg(long, default_value_t = 512)]
    text_tokens: i32,
    /// Time one pass instead of the batched cond + uncond.
    #[arg(long)]
    no_cfg: bool,
    /// DiT kernels: fast (inference default: fused RoPE; CPU softmax/GELU without MLX's exp
    /// and tanh kernels) or exact (MLX's own ops, as training uses).
    #[arg(long, default_value = "fast", value_parser = ["fast", "exact"])]
    kernels: String,
    /// Recompute the context K/V in every step, as the official forward does (default: once
    /// per run, as the pipelines do).
    #[arg(long)]
    kv_per_step: bool,
    /// Keep all `text_len` context rows instead of folding the prompt's zero padding into
    /// one weighted key (the pipelines fold; `--text_tokens` < text_len then matters).
    #[arg(long)]
    no_fold: bool,
    /// Run each block over this many token chunks (the memory plan's lean step; 1: the
    /// whole sequence at once).
    #[arg(long, default_value_t = 1)]
    token_chunks: u32,
    /// Steps of the run the once-per-run FLOPs are spread over (`flops.ratio_amortized`).
    #[arg(long, default_value_t = 50)]
    run_steps: usize,
    /// A step cache to plan over a `--run_steps` run (`magcache[:…]`; table-driven, so the
    /// effective number of DiT evaluations is known without running the model).
    #[arg(long, default_value = "off")]
    step_cache: String,
    /// Print the FLOP model (and the step-cache plan) only; no model is built.
    #[arg(long)]
    flops_only: bool,
    /// A checkpoint folder (its DiT — the high-noise expert for A14B — and VAE); without
    /// it, random weights.
    #[arg(long)]
    ckpt_dir: Option<std::path::PathBuf>,
    /// Quantize the DiT's block Linears at load: q8 or q4 (default recipe).
    #[arg(long)]
    quantize: Option<String>,
    /// Weights per scale/bias pair with --quantize: 32, 64 (default) or 128.
    #[arg(long, requires = "quantize")]
    group_size: Option<i32>,
    /// `default` (measured mixed precision) or `all` (every block Linear).
    #[arg(long, requires = "quantize", default_value = "default")]
    recipe: String,
    /// Only build the model and report its resident bytes (no steps).
    #[arg(long)]
    load_only: bool,
    /// Print the memory plan as JSON and load nothing (`--ckpt_dir`: its headers only;
    /// without it, the official architecture).
    #[arg(long = "plan-only", alias = "plan_only")]
    plan_only: bool,
    /// Plan for a machine with this much memory (default: this one's).
    #[arg(long)]
    memory: Option<String>,
    /// Plan for this backend (`metal` or `cpu`; default: this build's).
    #[arg(long, value_parser = ["metal", "cpu"])]
    backend: Option<String>,
    /// `current`: what this build does; `complete`: with the per-tensor load cast,
    /// on-load quantization and the context K/V cache of the companion issues.
    #[arg(long, default_value = "current", value_parser = ["current", "complete"])]
    runtime: String,
    /// The job has a conditioning image (ti2v-5B image→video, i2v-A14B).
    #[arg(long)]
    image: bool,
    /// A LoRA is merged at load.
    #[arg(long)]
    lora: bool,
}

/// `--plan-only`: the plan as JSON, nothing loaded.
fn plan_only(a: &Args, task: Task, size: (i32, i32)) -> Result<()> {
    use wan::memory::{Arch, Backend, Job, Machine, Overrides, Planner, Runtime};
    let backend = match a.backend.as_deref() {
        Some("metal") => Backend::Metal,
        Some(_) => Backend::Cpu,
        None => Backend::current(),
    };
    let bytes = match &a.memory {
        Some(m) => wan::memory::parse_bytes(m)?,
        None => wan::memory::machine_memory().ok_or_else(|| {
            wan::Error::Input("cannot read this machine's memory: pass --memory 16GB".into())
        })?,
    };
    let arch = match &a.ckpt_dir {
        Some(d) => Arch::from_checkpoint(&wan::pipeline::check_folder(d, task)?)?,
        None => Arch::official(task),
    };
    let dtype = match a.dtype.as_str() {
        "auto" => None,
        d => Some(wan::memory::plan::parse_dtype(d)?),
    };
    let quantize = a
        .quantize
        .as_deref()
        .map(|l| wan::quant::QuantSpec::parse(l, a.group_size))
        .transpose()?;
    let overrides = Overrides {
        dtype,
        quantize: quantize.map(Some),
        token_chunks: (a.token_chunks > 1).then_some(a.token_chunks),
        ..Overrides::default()
    };
    let mut planner = Planner::new(&arch, Machine { bytes, backend }, &overrides);
    if a.runtime == "complete" {
        planner.runtime = Runtime::COMPLETE;
    }
    let report = planner.choose(&Job {
        task,
        size,
        frame_num: a.frame_num,
        image: a.image,
        lora: a.lora,
        text_cached: false,
    })?;
    let mut v = serde_json::to_value(&report)?;
    v["task"] = json!(task.name());
    v["size"] = json!([size.0, size.1]);
    v["frame_num"] = json!(a.frame_num);
    v["runtime"] = serde_json::to_value(planner.runtime)?;
    if backend == Backend::Metal {
        v["note"] = json!(wan::memory::constants::METAL_RECALIBRATE);
    }
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

fn main() -> Result<()> {
    let a = Args::parse();
    let task = Task::parse(&a.task)?;
    let cfg = task.config();
    let (w, h) = parse_size(&a.size)?;
    cfg.check_size(w, h)?;
    let f_lat = cfg.latent_frames(a.frame_num)?;
    if a.plan_only {
        return plan_only(&a, task, (w, h));
    }
    let dtype = match a.dtype.as_str() {
        "f32" | "float32" => Dtype::Float32,
        "bf16" | "bfloat16" => Dtype::Bfloat16,
        d => bail!(wan::Error::Input(format!(
            "--dtype must be f32 or bf16, got `{d}`"
        ))),
    };
    if a.steps == 0 {
        bail!(wan::Error::Input("--steps must be at least 1".into()));
    }
    if let Some(l) = a.layers
        && l < 1
    {
        bail!(wan::Error::Input("--layers must be at least 1".into()));
    }
    let arch = match task {
        Task::Ti2v5B => WanConfig::ti2v_5b(),
        Task::T2vA14B => WanConfig::t2v_a14b(),
        Task::I2vA14B => WanConfig::i2v_a14b(),
    };
    let [_, sh, sw] = cfg.vae_stride;
    let latent = [cfg.z_dim, f_lat, h / sh, w / sw];
    let quantize = match &a.quantize {
        Some(level) => {
            let spec = QuantSpec::parse(level, a.group_size)?;
            Some(match a.recipe.as_str() {
                "default" => Recipe::recommended(spec),
                "all" => Recipe::all(spec),
                r => bail!(wan::Error::Input(format!(
                    "--recipe must be default or all, got `{r}`"
                ))),
            })
        }
        None => None,
    };
    let load = DitLoad {
        dtype,
        quantize: quantize.clone(),
    };
    let mut flops_cfg = arch.clone();
    if let Some(l) = a.layers {
        flops_cfg.num_layers = l;
    }
    let [pt, ph, pw] = flops_cfg.patch_size;
    let tokens = (latent[1] / pt) as i64 * (latent[2] / ph) as i64 * (latent[3] / pw) as i64;
    let batch = if a.no_cfg { 1 } else { 2 };
    let flops = wan::bench::step_flops(
        &flops_cfg,
        tokens,
        if a.no_fold || a.kv_per_step {
            flops_cfg.text_len as i64
        } else {
            a.text_tokens as i64
        },
        batch,
        1,
        a.run_steps,
    );
    let step_cache: wan::pipeline::StepCache = a.step_cache.parse()?;
    let plan = wan::bench::step_cache_plan(task, false, step_cache, a.run_steps, cfg.sample_shift)?;
    let cache = json!({
        "setting": step_cache,
        "run_steps": a.run_steps,
        "dit_evaluations": plan.as_ref().map(|p| wan::pipeline::step_cache::dit_evaluations(p)),
        "dit_evaluations_without": 2 * a.run_steps,
        "computed_steps": plan.as_ref().map(|p| p.iter().map(|r| r.cond == wan::pipeline::step_cache::Use::Computed).collect::<Vec<_>>()),
        "note": "CFG runs: two DiT evaluations (cond, uncond) per computed step; EasyCache decides at run time",
    });
    if a.flops_only {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "task": task.name(), "latent": latent, "tokens": tokens, "batch": batch,
                "layers": flops_cfg.num_layers, "flops": flops, "step_cache": cache,
            }))?
        );
        return Ok(());
    }
    let mode = wan::bench::StepMode {
        kv_cached: !a.kv_per_step,
        fold_padding: !a.no_fold,
        token_chunks: a.token_chunks.max(1),
        kernels: if a.kernels == "exact" {
            wan::dit::Kernels::Exact
        } else {
            wan::dit::Kernels::Fast
        },
    };

    mlx_rs::memory::clear_cache()?;
    let before = wan::bench::memory().1;
    mlx_rs::memory::reset_peak_memory()?;
    let t0 = std::time::Instant::now();
    let ck = match &a.ckpt_dir {
        Some(d) => Some(wan::pipeline::check_folder(d, task)?),
        None => None,
    };
    let mut model = match &ck {
        Some(ck) => {
            let expert = if cfg.boundary.is_some() {
                Expert::HighNoise
            } else {
                Expert::Main
            };
            ck.load_dit_with(expert, &load)?
        }
        None => wan::bench::random_dit_with(arch, a.layers, &load)?,
    };
    let build_s = t0.elapsed().as_secs_f64();
    let (load_peak, after) = wan::bench::memory();
    let weights_bytes = after.saturating_sub(before);
    let quantization = model.quantization()?;
    if a.load_only {
        let c = &model.config;
        let out = json!({
            "task": task.name(),
            "dtype": a.dtype,
            "quantize": quantize.as_ref().map(|r| r.describe()),
            "quantized_linears": quantization.map(|s| s.name()),
            "layers": c.num_layers,
            "params": model.num_params(),
            "weights": if ck.is_some() { "checkpoint" } else { "random" },
            "build_s": build_s,
            "memory": {
                "weights_bytes": weights_bytes,
                "parameter_bytes": model.weights_bytes(),
                "peak_bytes_during_load": load_peak.saturating_sub(before),
            },
            "device": if cfg!(target_os = "macos") { "metal" } else { "cpu" },
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    mlx_rs::memory::reset_peak_memory()?;
    let timing = wan::bench::time_dit_steps(
        &model,
        latent,
        a.text_tokens,
        !a.no_cfg,
        mode,
        a.warmup,
        a.steps,
    )?;
    let (peak, active) = wan::bench::memory();
    // VAE decode of a random latent of the same shape (checkpoint folders only).
    let vae_decode_s = match &ck {
        Some(ck) => {
            let vae = ck.load_vae()?;
            let key = mlx_rs::random::key(3)?;
            let z = mlx_rs::random::normal::<f32>(&latent, None, None, &key)?;
            let t = std::time::Instant::now();
            let v = vae.decode_auto(&z, None, Default::default())?;
            v.eval()?;
            Some(t.elapsed().as_secs_f64())
        }
        None => None,
    };
    let c = &model.config;
    let out = json!({
        "task": task.name(),
        "size": [w, h],
        "frame_num": a.frame_num,
        "latent": latent,
        "dtype": a.dtype,
        "quantize": quantize.as_ref().map(|r| r.describe()),
        "quantized_linears": quantization.map(|s| s.name()),
        "layers": c.num_layers,
        "full_layers": match task { Task::Ti2v5B => 30, _ => 40 },
        "dim": c.dim,
        "params": model.num_params(),
        "weights": if ck.is_some() { "checkpoint" } else { "random" },
        "build_s": build_s,
        "dit_step": timing,
        "step_mode": mode,
        "text_tokens": a.text_tokens,
        "flops": flops,
        "step_cache": cache,
        "memory": {
            "weights_bytes": weights_bytes,
            "peak_bytes_during_load": load_peak.saturating_sub(before),
            "peak_bytes_during_steps": peak,
            "active_bytes_after": active,
        },
        "vae_decode_s": vae_decode_s,
        "text_encode_s": null,
        "notes": "vae_decode_s needs --ckpt_dir; text_encode_s needs the T5 module",
        "device": if cfg!(target_os = "macos") { "metal" } else { "cpu" },
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
