//! End-to-end parity `e2e_*`: tokenizer + T5 + DiT(s) + VAE + solver loaded from the tiny
//! official-layout folder the fixture names (`config.cli_equivalent.ckpt_dir`, relative to
//! the fixture's own folder; the image inside its `checkpoints/`), run as `generate`
//! would with the recorded noise injected.
use crate::config::Task;
use crate::error::{Error, Result};
use crate::fixture::{Check, Fixture, compare, compare_abs, compare_exact};
use crate::pipeline::{
    CancelToken, Components, GenerateParams, ImageTensors, LoadOptions, Loaded, PromptEncoder,
    RunOptions, SolverKind, StepTrace, load, load_models, run,
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

    // Tokenizer ids and attention masks (exact), when the encoder exposes them.
    for (name, mask_name, text) in [
        (
            "inter/prompt_ids",
            "inter/prompt_mask",
            params.prompt.clone(),
        ),
        (
            "inter/neg_prompt_ids",
            "inter/neg_prompt_mask",
            params.negative_prompt.clone().unwrap_or_default(),
        ),
    ] {
        if fx.has(name)
            && let Some(ids) = loaded.text.token_ids(&text)?
        {
            // The fixture holds the ids padded with 0 to the tokenizer length.
            let want = fx.get_vec_i64(name)?;
            let valid = ids.len().min(want.len());
            let mut got: Vec<i64> = ids.into_iter().take(want.len()).collect();
            got.resize(want.len(), 0);
            checks.push(compare_exact(name, &got, &want, vec![want.len() as i32]));
            if fx.has(mask_name) {
                let want = fx.get_vec_i64(mask_name)?;
                let got: Vec<i64> = (0..want.len()).map(|i| (i < valid) as i64).collect();
                checks.push(compare_exact(
                    mask_name,
                    &got,
                    &want,
                    vec![want.len() as i32],
                ));
            }
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
    if let Some(img) = &record.image {
        check_image(fx, task, params.image.as_deref(), img, &mut checks)?;
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
    if !recorded_contexts {
        checks.push(super::coverage(fx, &checks, INFORMATIVE));
    }
    Ok(checks)
}

/// Tensors the official run recorded only for information: the T5 contexts in the official
/// bfloat16 (the run itself used the float32 ones, compared as `inter/context*`).
const INFORMATIVE: &[&str] = &["inter/context_t5_bf16", "inter/context_null_t5_bf16"];

/// The conditioning image at each official stage: the [−1, 1] image (exact: the same
/// float32 expression; i2v-A14B records it before its resize, loaded here by the pipeline's
/// own loader), i2v-A14B's bicubic resize, the image latent and `y`.
fn check_image(
    fx: &Fixture,
    task: Task,
    path: Option<&std::path::Path>,
    img: &ImageTensors,
    checks: &mut Vec<Check>,
) -> Result<()> {
    let (image, resized) = match (task, path) {
        (Task::I2vA14B, Some(p)) => (
            crate::video::to_tensor(&crate::video::load_rgb(p)?)?,
            Some(&img.image),
        ),
        _ => (img.image.clone(), None),
    };
    if fx.has("inter/image") {
        let want = fx.get("inter/image")?;
        // i2v-A14B records it without the frame axis.
        let got = if image.size() == want.size() {
            image.reshape(want.shape())?
        } else {
            image
        };
        checks.push(compare_abs("inter/image", &got, &want, 0.0)?);
    }
    for (name, got) in [
        ("inter/image_resized", resized),
        ("inter/image_latent", Some(&img.latent)),
        ("inter/y", img.y.as_ref()),
    ] {
        if let (Some(got), true) = (got, fx.has(name)) {
            checks.push(compare(name, got, &fx.get(name)?, TOL)?);
        }
    }
    Ok(())
}
