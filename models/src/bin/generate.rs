//! `generate`: the official `generate.py` for ti2v-5B, t2v-A14B and i2v-A14B on MLX.
//! Flags mirror the official ones (`--task --size --frame_num --ckpt_dir --prompt --image
//! --base_seed --sample_solver --sample_steps --sample_shift --sample_guide_scale
//! --save_file`), plus `--negative_prompt`, `--frames_dir`, `--noise`, and the memory plan
//! in place of `--offload_model` / `--t5_cpu` / `--convert_model_dtype`: `--plan auto`
//! (default) fits the run to the machine (`--memory 16GB` to simulate one) and refuses,
//! before loading anything, a run nothing fits; `--dtype`, `--low_memory`, `--vae_tile`, `--token_chunks`
//! pin a choice. Models are loaded phase by phase (umT5 released before the DiT is read);
//! prompt contexts are cached (`--t5_cache DIR`, `--no_t5_cache`).
//! Writes an H.264 mp4 and a JSON sidecar (`<file>.json`) atomically; Ctrl-C cancels
//! within one step and leaves no output.
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use wan::config::{KNOWN_SIZES, Task, parse_size};
use wan::lora_file::LoraSpec;
use wan::memory::{Backend, Machine, Overrides, plan::gb};
use wan::pipeline::{CancelToken, Event, GenerateParams, PhasedOptions, SolverKind, Stage};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Generate a video with Wan2.2 (MLX)",
    rename_all = "snake_case"
)]
struct Args {
    /// ti2v-5B, t2v-A14B or i2v-A14B.
    #[arg(long, default_value = "t2v-A14B")]
    task: String,
    /// Output size `W*H` (with an image only the area is used, as officially).
    #[arg(long)]
    size: Option<String>,
    /// Frames (4n+1); default from the task config (121 for ti2v-5B, 81 for A14B).
    #[arg(long)]
    frame_num: Option<i32>,
    /// Checkpoint folder (official layout or converted).
    #[arg(long)]
    ckpt_dir: PathBuf,
    #[arg(long, default_value = "")]
    prompt: String,
    /// Negative prompt; default: the official default negative prompt.
    #[arg(long)]
    negative_prompt: Option<String>,
    /// Conditioning image (ti2v-5B image→video, i2v-A14B).
    #[arg(long)]
    image: Option<PathBuf>,
    /// Noise seed; −1 picks a random one (recorded in the sidecar).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    base_seed: i64,
    /// unipc (default), dpm++ or euler.
    #[arg(long, default_value = "unipc")]
    sample_solver: String,
    #[arg(long)]
    sample_steps: Option<usize>,
    #[arg(long)]
    sample_shift: Option<f64>,
    /// One value replaces both A14B expert scales (official behaviour).
    #[arg(long)]
    sample_guide_scale: Option<f32>,
    /// Output mp4 (default: the official auto name in the current folder).
    #[arg(long)]
    save_file: Option<PathBuf>,
    /// Also write every frame as PNG into this folder.
    #[arg(long)]
    frames_dir: Option<PathBuf>,
    /// DiT and umT5 compute dtype, f32 or bf16; default: the plan's (bf16 on Metal, f32 on
    /// the CPU while it fits).
    #[arg(long)]
    dtype: Option<String>,
    /// Keep only the active A14B expert in memory (default: the plan decides).
    #[arg(long)]
    low_memory: bool,
    /// `auto`: fit the run to this machine's memory and refuse one that cannot fit;
    /// `force`: run the leanest plan even if it is predicted not to fit.
    #[arg(long, default_value = "auto", value_parser = ["auto", "force"])]
    plan: String,
    /// Plan for a machine with this much memory (e.g. 16GB) instead of this one's.
    #[arg(long)]
    memory: Option<String>,
    /// VAE decode tiles in latent cells, or `none` for the whole frame (default: the plan).
    #[arg(long)]
    vae_tile: Option<String>,
    /// Run each DiT block over this many token chunks (a smaller step working set, the
    /// same arithmetic; 1: the whole sequence). Default: the plan's (1 unless memory needs
    /// more).
    #[arg(long)]
    token_chunks: Option<u32>,
    /// Prompt-context cache folder (default: the user cache folder).
    #[arg(long)]
    t5_cache: Option<PathBuf>,
    /// Always run the text encoder (no prompt-context cache).
    #[arg(long)]
    no_t5_cache: bool,
    /// Initial noise `[z, F', h, w]` from a safetensors file (tensor `noise`, or the only one).
    #[arg(long)]
    noise: Option<PathBuf>,
    /// LoRA / delta file merged into the DiT(s) (ComfyUI, PEFT, kohya/musubi, diffusers or
    /// `.diff` keys), or a folder in the Lightning layout (`high_noise_model.safetensors` +
    /// `low_noise_model.safetensors`, one per A14B expert).
    #[arg(long)]
    lora: Option<PathBuf>,
    /// A14B: LoRA file for the high-noise expert only.
    #[arg(long, conflicts_with = "lora")]
    lora_high: Option<PathBuf>,
    /// A14B: LoRA file for the low-noise expert only.
    #[arg(long, conflicts_with = "lora")]
    lora_low: Option<PathBuf>,
    /// Scale of the merged LoRA(s) (0 = base model).
    #[arg(long, default_value_t = 1.0)]
    lora_scale: f32,
    /// A14B: merge the `--lora` file into this expert only (`high` or `low`, as trained by
    /// `train_lora --expert`); default: both experts.
    #[arg(long, requires = "lora", value_parser = ["high", "low"])]
    lora_expert: Option<String>,
    /// Step caching: `off` (default, the official loop), `magcache[:THRESH[:K[:RETENTION]]]`
    /// (official Wan2.2 calibration) or `easycache[:THRESH[:RET_STEPS]]` (runtime-only).
    /// The sidecar records which steps were computed and which reused.
    #[arg(long, default_value = "off")]
    step_cache: String,
    /// Accept any size that is a multiple of the model's stride (tiny test checkpoints).
    #[arg(long)]
    any_size: bool,
    /// Quantize the DiT's block Linears to 8 or 4 bits while loading a dense folder (q8 or
    /// q4; the default recipe). A folder converted with `--quantize` is used as stored.
    #[arg(long)]
    quantize: Option<String>,
    /// Weights per scale/bias pair with --quantize: 32, 64 (default) or 128.
    #[arg(long, requires = "quantize")]
    group_size: Option<i32>,
}

/// Every check that needs no model: the parameters of the clip.
fn params_from(args: &Args) -> Result<GenerateParams> {
    let task = Task::parse(&args.task)?;
    let cfg = task.config();
    let size = match &args.size {
        Some(s) => parse_size(s)?,
        None => cfg.supported_sizes[0],
    };
    if !args.any_size && !cfg.supported_sizes.contains(&size) {
        let known: Vec<String> = cfg
            .supported_sizes
            .iter()
            .map(|(w, h)| format!("{w}*{h}"))
            .collect();
        bail!(wan::Error::Input(format!(
            "size {}*{} is not supported for {} (supported: {}{})",
            size.0,
            size.1,
            task.name(),
            known.join(", "),
            if KNOWN_SIZES.contains(&size) {
                ""
            } else {
                "; use --any_size for other multiples of the stride"
            }
        )));
    }
    if args.image.is_none() || task == Task::T2vA14B {
        cfg.check_size(size.0, size.1)?;
    }
    let frame_num = args.frame_num.unwrap_or(cfg.frame_num);
    cfg.latent_frames(frame_num)?;
    let solver = SolverKind::parse(&args.sample_solver)?;
    let steps = args.sample_steps.unwrap_or(cfg.sample_steps);
    if steps == 0 {
        bail!(wan::Error::Input(
            "--sample_steps must be at least 1".into()
        ));
    }
    let shift = args.sample_shift.unwrap_or(cfg.sample_shift);
    if !(shift.is_finite() && shift > 0.0) {
        bail!(wan::Error::Input("--sample_shift must be positive".into()));
    }
    let guide = match args.sample_guide_scale {
        Some(g) if g.is_finite() => (g, g),
        Some(_) => bail!(wan::Error::Input(
            "--sample_guide_scale must be a number".into()
        )),
        None => cfg.guide_scale,
    };
    match (task, &args.image) {
        (Task::I2vA14B, None) => bail!(wan::Error::Input("i2v-A14B needs --image".into())),
        (Task::T2vA14B, Some(_)) => bail!(wan::Error::Input(
            "t2v-A14B takes no --image (use i2v-A14B or ti2v-5B)".into()
        )),
        (_, Some(p)) => {
            // Fail now, not after loading the models: an unreadable image, or one the
            // official size rules cannot fit to the area.
            let img = wan::video::load_rgb(p)?;
            wan::video::conditioned_size(&cfg, img.dimensions(), size)?;
        }
        _ => {}
    }
    let step_cache: wan::pipeline::StepCache = args.step_cache.parse()?;
    let lora = match (&args.lora, &args.lora_expert) {
        (Some(p), None) => Some(LoraSpec::from_path(p, args.lora_scale)?),
        (Some(p), Some(e)) => {
            if p.is_dir() {
                bail!(wan::Error::Input(
                    "--lora_expert takes a file; a Lightning folder already names its experts"
                        .into()
                ));
            }
            let p = Some(p.clone());
            Some(match e.as_str() {
                "high" => LoraSpec::per_expert(p, None, args.lora_scale)?,
                _ => LoraSpec::per_expert(None, p, args.lora_scale)?,
            })
        }
        (None, _) if args.lora_high.is_some() || args.lora_low.is_some() => {
            Some(LoraSpec::per_expert(
                args.lora_high.clone(),
                args.lora_low.clone(),
                args.lora_scale,
            )?)
        }
        (None, _) => None,
    };
    if lora.as_ref().is_some_and(LoraSpec::is_per_expert) && task.config().boundary.is_none() {
        bail!(wan::Error::Input(format!(
            "{} has one DiT; --lora_high/--lora_low/--lora_expert and LoRA folders are for A14B",
            task.name()
        )));
    }
    let seed = if args.base_seed >= 0 {
        args.base_seed as u64
    } else {
        use std::hash::{BuildHasher, RandomState};
        RandomState::new().hash_one(Instant::now()) & (i64::MAX as u64)
    };
    Ok(GenerateParams {
        task,
        prompt: args.prompt.clone(),
        negative_prompt: args.negative_prompt.clone(),
        size,
        frame_num,
        sample_steps: steps,
        sample_shift: shift,
        guide_scale: guide,
        solver,
        seed,
        image: args.image.clone(),
        step_cache,
        lora,
    })
}

/// Official auto name: `{task}_{size}_1_{prompt[:50]}_{YYYYmmdd_HHMMSS}.mp4` (UTC here).
fn auto_name(p: &GenerateParams) -> PathBuf {
    let prompt: String = p
        .prompt
        .chars()
        .take(50)
        .map(|c| if c == ' ' || c == '/' { '_' } else { c })
        .collect();
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    PathBuf::from(format!(
        "{}_{}*{}_1_{}_{:04}{:02}{:02}_{:02}{:02}{:02}.mp4",
        p.task.name(),
        p.size.0,
        p.size.1,
        prompt,
        y,
        m,
        d,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    ))
}

/// Days since 1970-01-01 → (year, month, day) (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn load_noise(path: &Path) -> Result<mlx_rs::Array> {
    let st = wan::checkpoint::safetensors::SafeTensors::open(path)?;
    let names: Vec<&str> = st.names().collect();
    let name = if names.contains(&"noise") {
        "noise"
    } else if names.contains(&"input/noise") {
        "input/noise"
    } else if names.len() == 1 {
        names[0]
    } else {
        bail!(wan::Error::format(
            path,
            "expected a tensor named `noise` (or a single tensor)"
        ))
    };
    Ok(st.array(name)?)
}

fn write_sidecar(path: &Path, value: &serde_json::Value) -> Result<()> {
    let tmp = wan::video::mp4::tmp_sibling(path);
    std::fs::write(&tmp, serde_json::to_string_pretty(value)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn run(args: Args, cancel: &CancelToken) -> Result<()> {
    let params = params_from(&args)?;
    let dtype =
        match args.dtype.as_deref() {
            None => None,
            Some(d) => Some(wan::memory::plan::parse_dtype(d).map_err(|_| {
                wan::Error::Input(format!("--dtype must be f32 or bf16, got `{d}`"))
            })?),
        };
    let vae_tile = match args.vae_tile.as_deref() {
        None => None,
        Some("none") => Some(None),
        Some(t) => match t.parse::<i32>() {
            Ok(n) if n >= wan::memory::plan::MIN_TILE => Some(Some(n)),
            _ => bail!(wan::Error::Input(format!(
                "--vae_tile must be `none` or a number of latent cells ≥ {}, got `{t}`",
                wan::memory::plan::MIN_TILE
            ))),
        },
    };
    if args.token_chunks == Some(0) {
        bail!(wan::Error::Input(
            "--token_chunks must be 1 or more (1: the whole sequence)".into()
        ));
    }
    // `--quantize`: the DiT quantized while it loads (a dense folder), with the default
    // recipe for the level; a quantized folder loads as stored.
    let quantize = args
        .quantize
        .as_deref()
        .map(|l| wan::quant::QuantSpec::parse(l, args.group_size))
        .transpose()?;
    let backend = Backend::current();
    let machine_bytes = match &args.memory {
        Some(m) => wan::memory::parse_bytes(m)?,
        None => wan::memory::machine_memory().ok_or_else(|| {
            wan::Error::Input("cannot read this machine's memory: pass --memory 16GB".into())
        })?,
    };
    let ck = wan::pipeline::check_folder(&args.ckpt_dir, params.task)?;
    let stored = wan::quant::folder_quantization(&args.ckpt_dir)?;
    let noise = args.noise.as_deref().map(load_noise).transpose()?;
    let save = args.save_file.clone().unwrap_or_else(|| auto_name(&params));
    if let Some(dir) = save.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.is_dir()
    {
        bail!(wan::Error::Missing(dir.to_path_buf()));
    }
    let context_cache = if args.no_t5_cache {
        None
    } else {
        args.t5_cache
            .clone()
            .or_else(wan::t5::cache::default_dir)
            .map(|d| wan::t5::cache::ContextCache::new(d, 256))
    };

    // The plan: before anything heavy is read.
    let overrides = Overrides {
        dtype,
        t5_dtype: dtype,
        one_expert_at_a_time: args.low_memory.then_some(true),
        vae_tile,
        quantize: quantize.map(Some),
        token_chunks: args.token_chunks,
        ..Overrides::default()
    };
    let machine = Machine {
        bytes: machine_bytes,
        backend,
    };
    let report = wan::pipeline::phases::plan_for(
        &ck,
        &params,
        machine,
        &overrides,
        context_cache.as_ref(),
        params.lora.is_some(),
    )?;
    eprintln!("plan ({}): {}", backend.name(), report.summary);
    for (phase, bytes) in &report.phases {
        eprintln!("  {phase:>8}: ≈ {}", gb(*bytes));
    }
    if let Some(reason) = &report.reason {
        if args.plan == "auto" {
            bail!(wan::Error::Memory(reason.clone()));
        }
        eprintln!("warning: {reason} (running anyway: --plan force)");
    }
    // The mp4 is written after minutes of denoising: find ffmpeg before loading weights.
    wan::video::ffmpeg::find()?;

    eprintln!(
        "generating {} from {}",
        params.task.name(),
        args.ckpt_dir.display()
    );
    let bar = ProgressBar::new(params.sample_steps as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>9} [{bar:30}] {pos}/{len} step {per_step} elapsed {elapsed} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key(
            "per_step",
            |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.2}s", s.per_sec().recip());
            },
        ),
    );
    // Without a terminal (logs, tests) print one plain line per event instead of the bar.
    let plain = !std::io::stderr().is_terminal();
    if plain {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut on_event = |e: Event| match e {
        Event::Stage(s) if plain => eprintln!("stage {s:?}"),
        Event::Stage(Stage::Denoise) => bar.set_message("denoise"),
        Event::Stage(s) => bar.println(format!("stage: {s:?}")),
        Event::Step {
            step,
            total,
            timestep,
            elapsed,
            ..
        } => {
            bar.set_position(step as u64);
            bar.set_message(format!("t={timestep}"));
            if plain {
                let per = elapsed.as_secs_f64() / step as f64;
                eprintln!(
                    "step {step}/{total} t={timestep} {per:.2}s/step eta {:.1}s",
                    per * (total - step) as f64
                );
            }
        }
        Event::Decode { done, total } => {
            bar.set_message(format!("vae {done}/{total}"));
            if plain {
                eprintln!("decode {done}/{total}");
            }
        }
        Event::Warning(w) if plain => eprintln!("warning: {w}"),
        Event::Warning(w) => bar.println(format!("warning: {w}")),
    };
    let opts = PhasedOptions {
        plan: report.plan.clone(),
        preview_cache: None,
        context_cache,
        noise,
    };
    let (video, record, phases) =
        wan::pipeline::phases::generate(&ck, &params, opts, &mut on_event, cancel)?;
    bar.finish_and_clear();
    cancel.check()?;

    let frames = wan::video::frames_from_video(&video.frames)?;
    wan::video::write_mp4(&save, &frames, video.fps)?;
    if let Some(dir) = &args.frames_dir {
        wan::video::write_png_frames(dir, &frames)?;
    }
    let timings = serde_json::to_value(&video.timings)?;
    let side = json!({
        "generator": format!("wan-studio generate {}", env!("CARGO_PKG_VERSION")),
        "params": params,
        "seed": params.seed,
        "dtype": wan::memory::plan::dtype_name(report.plan.dtype),
        "low_memory": report.plan.one_expert_at_a_time,
        "plan": report,
        "context_from_cache": phases.context_from_cache,
        "memory": phases,
        "quantize": report.plan.quantization.filter(|_| report.plan.quantize_on_load)
            .map(|q| wan::quant::Recipe::recommended(q).describe()),
        "stored_quantization": stored,
        "lora": params.lora,
        "lora_scale": params.lora.as_ref().map(|l| l.scale),
        "step_cache": {
            "setting": params.step_cache,
            "dit_evaluations": wan::pipeline::step_cache::dit_evaluations(&record.step_cache),
            "steps": record.step_cache,
        },
        "noise_file": args.noise,
        "checkpoint": wan::pipeline::folder_identity(&args.ckpt_dir),
        "timesteps": record.timesteps,
        "output": {"file": save, "fps": video.fps, "width": frames.width,
                   "height": frames.height, "frames": frames.frames.len()},
        "timings": timings,
        "rng_note": "noise from mlx random.normal with key(seed); differs from torch CUDA randn",
    });
    let mut side_path = save.clone().into_os_string();
    side_path.push(".json");
    write_sidecar(Path::new(&side_path), &side)?;
    println!("{}", save.display());
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let cancel = CancelToken::new();
    let c = cancel.clone();
    if let Err(e) = ctrlc::set_handler(move || c.cancel()) {
        eprintln!("warning: cannot install the Ctrl-C handler: {e}");
    }
    match run(args, &cancel) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = e
                .downcast_ref::<wan::Error>()
                .map(|w| w.code())
                .unwrap_or("error");
            eprintln!("error [{code}]: {e:#}");
            if code == "cancelled" {
                ExitCode::from(130)
            } else {
                ExitCode::from(1)
            }
        }
    }
}
