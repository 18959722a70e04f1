//! End-to-end parity `e2e_*`: tokenizer + T5 + DiT(s) + VAE + solver loaded from the tiny
//! official-layout folder the fixture names (`config.cli_equivalent.ckpt_dir`, relative to
//! the fixture's own folder; the image inside its `checkpoints/`), run as `generate`
//! would with the recorded noise injected.
use crate::config::Task;
use crate::error::{Error, Result};
use crate::fixture::{Check, Fixture, compare, compare_exact};
use crate::pipeline::{
    CancelToken, Components, GenerateParams, LoadOptions, Loaded, PromptEncoder, RunOptions,
    SolverKind, StepTrace, load, load_models, run,
};

use super::pipe::{check_schedule, check_steps};

const TOL: f64 = 1e-4;

/// Stands in for the text side when the recorded contexts are injected.
struct NoText;
impl PromptEncoder for NoText {
    fn encode(&mut self, _: &str) -> Result<mlx_rs::Array> {
        Err(Error::Unsupported("no text encoder in this run".into()))
    }
}

pub fn e2e(fx: &Fixture) -> Result<Vec<Check>> {
    e2e_with(fx, false)
}

/// `recorded_contexts`: inject `inter/context*` instead of running tokenizer + T5 (checks
/// image resize + VAE encode, DiTs, solver, VAE decode through the real `run`).
pub fn e2e_with(fx: &Fixture, recorded_contexts: bool) -> Result<Vec<Check>> {
    let cli = |k: &str| fx.cfg(&format!("cli_equivalent.{k}"));
    let s = |k: &str| -> Result<String> {
        cli(k)?
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| Error::format(&fx.path, format!("cli_equivalent.{k} is not a string")))
    };
    let task = Task::parse(&s("task")?)?;
    let cfg = task.config();
    let size = crate::config::parse_size(&s("size")?)?;
    let shift = cli("sample_shift")?.as_f64().unwrap_or(cfg.sample_shift);
    let guide = match cli("sample_guide_scale")?.as_f64() {
        Some(g) => (g as f32, g as f32),
        None => cfg.guide_scale,
    };
    let image = cli("image")?
        .as_str()
        .map(|name| fx.dir().join("checkpoints").join(name));
    let params = GenerateParams {
        task,
        prompt: s("prompt")?,
        negative_prompt: cli("n_prompt")?.as_str().map(str::to_string),
        size,
        frame_num: cli("frame_num")?.as_i64().unwrap_or(0) as i32,
        sample_steps: cli("sample_steps")?.as_u64().unwrap_or(0) as usize,
        sample_shift: shift,
        guide_scale: guide,
        solver: SolverKind::parse(&s("sample_solver")?)?,
        seed: cli("base_seed")?.as_u64().unwrap_or(0),
        image,
        step_cache: Default::default(),
        lora: None,
    };
    let dir = fx.dir().join(s("ckpt_dir")?);
    let lopts = LoadOptions {
        dtype: mlx_rs::Dtype::Float32,
        one_expert_at_a_time: false,
        lora: None,
        preview_cache: None,
        quantize: None,
    };
    let mut loaded = if recorded_contexts {
        let ck = crate::checkpoint::Checkpoint::open(&dir)?;
        let (vae, experts) = load_models(&ck, task, &lopts)?;
        Loaded {
            text: Box::new(NoText),
            vae,
            experts,
        }
    } else {
        load(&dir, task, &lopts)?
    };
    let mut checks = Vec::new();

    // Tokenizer ids (exact), when the encoder exposes them.
    for (name, text) in [
        ("inter/prompt_ids", params.prompt.clone()),
        (
            "inter/neg_prompt_ids",
            params.negative_prompt.clone().unwrap_or_default(),
        ),
    ] {
        if fx.has(name)
            && let Some(ids) = loaded.text.token_ids(&text)?
        {
            // The fixture holds the ids padded with 0 to the tokenizer length.
            let want = fx.get_vec_i64(name)?;
            let mut got: Vec<i64> = ids.into_iter().take(want.len()).collect();
            got.resize(want.len(), 0);
            checks.push(compare_exact(name, &got, &want, vec![want.len() as i32]));
        }
    }

    let mut comps = Components {
        text: loaded.text.as_mut(),
        vae: loaded.vae.as_ref(),
        experts: &mut loaded.experts,
    };
    let mut opts = RunOptions::new();
    opts.noise = Some(fx.get_f32("input/noise")?);
    if recorded_contexts {
        opts.contexts = Some((
            fx.get_f32("inter/context")?,
            fx.get_f32("inter/context_null")?,
        ));
    }
    let mut traces: Vec<StepTrace> = Vec::new();
    let mut rec = |t: StepTrace| traces.push(t);
    let (video, record) = run(
        &mut comps,
        &params,
        opts,
        &mut |_| {},
        &CancelToken::new(),
        Some(&mut rec),
    )?;

    if !recorded_contexts {
        checks.push(compare(
            "inter/context",
            &record.contexts.0,
            &fx.get("inter/context")?,
            TOL,
        )?);
        checks.push(compare(
            "inter/context_null",
            &record.contexts.1,
            &fx.get("inter/context_null")?,
            TOL,
        )?);
    }
    if let (Some(z), true) = (&record.image_latent, fx.has("inter/image_latent")) {
        checks.push(compare(
            "inter/image_latent",
            z,
            &fx.get("inter/image_latent")?,
            TOL,
        )?);
    }
    check_schedule(fx, &record.timesteps, &record.sigmas, &mut checks)?;
    check_steps(fx, &traces, &mut checks)?;
    checks.push(compare(
        "output/x0",
        &record.latent,
        &fx.get("output/x0")?,
        TOL,
    )?);
    checks.push(compare(
        "output/video",
        &video.frames,
        &fx.get("output/video")?,
        TOL,
    )?);
    Ok(checks)
}
