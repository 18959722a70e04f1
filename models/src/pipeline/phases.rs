//! Phased residency: one generation from a checkpoint folder where each phase loads what
//! it needs and releases it before the next one reads anything (what `generate` and the
//! app run; the memory plan in `crate::memory::plan` predicts exactly these phases).
//!
//! 1. **text**: contexts of the prompt and the negative prompt — from the prompt cache
//!    when both are there (umT5 is then never loaded), else tokenizer + umT5 in the plan's
//!    dtype, encoded one prompt at a time, stored in the cache; only the trimmed contexts
//!    are kept, the encoder is dropped and MLX's buffer cache cleared *before* the DiT is
//!    read.
//! 2. **image** (image→video): the VAE encodes the conditioning image (tiled when the plan
//!    says), then is dropped unless the plan keeps it for the decode.
//! 3. **load + denoise**: the DiT(s) (A14B one expert at a time when the plan says), the
//!    sampling loop with live previews from the small previewer (never the VAE).
//! 4. **decode**: the DiT(s) dropped and the cache cleared, the VAE (re)loaded, decoded
//!    with the plan's tiles.
//!
//! MLX's active memory is recorded at each boundary ([`PhaseRecord`]) for the sidecar
//! and the tests.
use std::path::PathBuf;
use std::time::Instant;

use mlx_rs::Array;
use serde::Serialize;

use super::api::{CancelToken, Event, GenerateParams, Stage, Timings, Video};
use super::denoise::{DenoiseSpec, denoise};
use super::load::{LoadOptions, load_experts, load_text_encoder, previewer_for};
use super::run::{
    LatentVae, RunRecord, finish, initial_noise, negative_prompt, prepare, truncation_warnings,
};
use super::vae_glue::VaeComponent;
use crate::checkpoint::folder::Checkpoint;
use crate::error::{Error, Result};
use crate::memory::Plan;
use crate::quant::Recipe;
use crate::t5::cache::{ContextCache, checkpoint_identity};
use crate::vae::preview::{Previewer, find_previewer};

/// How to run one phased generation: the memory plan plus what is not about memory.
pub struct PhasedOptions {
    pub plan: Plan,
    /// Where previewers fitted for folders without one are kept (the app).
    pub preview_cache: Option<PathBuf>,
    /// The prompt-embedding cache (`None`: always encode).
    pub context_cache: Option<ContextCache>,
    /// Initial noise `[z, F', h, w]` instead of drawing it from the seed.
    pub noise: Option<Array>,
}

/// MLX memory at one phase boundary.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseMemory {
    pub phase: &'static str,
    /// Peak of MLX's active memory during the phase.
    pub peak_bytes: u64,
    /// Active memory when the phase ended, after what it released.
    pub active_after_bytes: u64,
}

/// What the phases did, for the sidecar and the tests.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PhaseRecord {
    /// Both contexts came from the prompt cache (umT5 was never loaded).
    pub context_from_cache: bool,
    /// Active memory with the contexts encoded and umT5 still loaded (`None`: not loaded).
    pub text_active_bytes: Option<u64>,
    /// Active memory after umT5 was dropped and the cache cleared, before the DiT is read.
    pub before_dit_active_bytes: u64,
    pub phases: Vec<PhaseMemory>,
}

fn active() -> u64 {
    mlx_rs::memory::active_memory().unwrap_or(0) as u64
}

/// Clear MLX's buffer cache, then start a phase's peak count.
fn begin_phase() -> Result<()> {
    mlx_rs::memory::clear_cache()?;
    mlx_rs::memory::reset_peak_memory()?;
    Ok(())
}

fn end_phase(record: &mut PhaseRecord, phase: &'static str) -> Result<()> {
    let peak = mlx_rs::memory::peak_memory()? as u64;
    mlx_rs::memory::clear_cache()?;
    record.phases.push(PhaseMemory {
        phase,
        peak_bytes: peak,
        active_after_bytes: active(),
    });
    Ok(())
}

/// The identity of a folder's text encoder for the prompt cache: its weights file and its
/// tokenizer (a changed file gets a new identity).
pub fn text_encoder_identity(ck: &Checkpoint) -> Result<String> {
    let t5 = ck
        .t5
        .as_ref()
        .ok_or_else(|| Error::Missing(ck.root.join(crate::checkpoint::folder::OFFICIAL_T5)))?;
    Ok(format!(
        "{}|{}",
        checkpoint_identity(t5)?,
        checkpoint_identity(ck.tokenizer_path()?)?
    ))
}

/// Are both prompts of `params` in `cache` for this folder and umT5 dtype (so the plan can
/// leave out the text phase)?
pub fn contexts_cached(
    ck: &Checkpoint,
    params: &GenerateParams,
    cache: &ContextCache,
    t5_dtype: mlx_rs::Dtype,
) -> bool {
    let Ok(id) = text_encoder_identity(ck) else {
        return false;
    };
    [params.prompt.as_str(), negative_prompt(params)]
        .iter()
        .all(|p| cache.get(p, &id, crate::t5::TEXT_LEN, t5_dtype).is_some())
}

/// The memory plan for `params` with the folder `ck` on `machine`: the folder's shapes
/// (headers only), the job, whether the prompt cache already holds both contexts (then
/// umT5 is never loaded), `overrides` from flags or settings. Shared by `generate`, the
/// app and `bench`.
pub fn plan_for(
    ck: &Checkpoint,
    params: &GenerateParams,
    machine: crate::memory::Machine,
    overrides: &crate::memory::Overrides,
    cache: Option<&ContextCache>,
    lora: bool,
) -> Result<crate::memory::PlanReport> {
    let arch = crate::memory::Arch::from_checkpoint(ck)?;
    let t5_dtype = overrides
        .t5_dtype
        .unwrap_or_else(|| machine.backend.default_dtype());
    let job = crate::memory::Job {
        task: params.task,
        size: params.size,
        frame_num: params.frame_num,
        image: params.image.is_some(),
        lora,
        text_cached: cache.is_some_and(|c| contexts_cached(ck, params, c, t5_dtype)),
    };
    crate::memory::Planner::new(&arch, machine, overrides).choose(&job)
}

/// Contexts of the prompt and the negative prompt, with their "cut by the tokenizer"
/// limits; umT5 is loaded only for a prompt the cache lacks and dropped before returning.
fn encode_prompts(
    ck: &Checkpoint,
    params: &GenerateParams,
    opts: &PhasedOptions,
    record: &mut PhaseRecord,
) -> Result<([Array; 2], [Option<usize>; 2])> {
    let t5_dtype = opts.plan.t5_dtype;
    let text_len = crate::t5::TEXT_LEN;
    let id = text_encoder_identity(ck)?;
    let prompts = [params.prompt.as_str(), negative_prompt(params)];
    let cache = opts.context_cache.as_ref();
    let hits: Vec<Option<(Array, bool)>> = prompts
        .iter()
        .map(|p| cache.and_then(|c| c.get_entry(p, &id, text_len, t5_dtype)))
        .collect();
    let mut out: Vec<(Array, bool)> = Vec::with_capacity(2);
    if hits.iter().all(Option::is_some) {
        record.context_from_cache = true;
        out.extend(hits.into_iter().flatten());
    } else {
        let te = load_text_encoder(ck, t5_dtype)?;
        for (p, hit) in prompts.iter().zip(hits) {
            let entry = match hit {
                Some(h) => h,
                None => {
                    // One prompt at a time, padded to text_len, as the official pipeline.
                    let enc = te.encode(&[p])?;
                    let ctx = enc.contexts.into_iter().next().ok_or_else(|| {
                        Error::Input("the text encoder returned no context".into())
                    })?;
                    let cut = enc.truncated.first().copied().unwrap_or(false);
                    if let Some(c) = cache {
                        // The cache is an optimisation: a failed store is not an error.
                        let _ = c.put(p, &id, text_len, t5_dtype, &ctx, cut);
                    }
                    (ctx, cut)
                }
            };
            out.push(entry);
        }
        mlx_rs::transforms::eval(out.iter().map(|(a, _)| a))?;
        record.text_active_bytes = Some(active());
        drop(te);
    }
    mlx_rs::memory::clear_cache()?;
    let cut = [out[0].1, out[1].1].map(|c| c.then_some(text_len));
    let mut it = out.into_iter().map(|(a, _)| a);
    let (c, n) = (
        it.next()
            .ok_or_else(|| Error::Input("no prompt context".into()))?,
        it.next()
            .ok_or_else(|| Error::Input("no negative context".into()))?,
    );
    Ok(([c, n], cut))
}

/// Load the VAE with the plan's tiles.
fn load_vae(ck: &Checkpoint, plan: &Plan) -> Result<VaeComponent> {
    let mut v = VaeComponent::new(ck.load_vae()?, None);
    v.encode_tile = plan.vae_encode_tile;
    v.decode_tile = Some(plan.vae_tile);
    Ok(v)
}

/// Run one generation from the folder `ck` in phases (see the module docs).
pub fn generate(
    ck: &Checkpoint,
    params: &GenerateParams,
    mut opts: PhasedOptions,
    on_event: &mut dyn FnMut(Event),
    cancel: &CancelToken,
) -> Result<(Video, RunRecord, PhaseRecord)> {
    let task = params.task;
    let cfg = task.config();
    let plan = opts.plan.clone();
    let mut timings = Timings::default();
    let mut record = PhaseRecord::default();
    // On-load quantization of a dense folder uses the level's default recipe; a folder
    // that cannot take it is refused here, before any weight is read.
    let quantize = plan
        .quantization
        .filter(|_| plan.quantize_on_load)
        .map(Recipe::recommended);
    if let Some(r) = &quantize {
        super::load::check_quantize(ck, r)?;
    }
    cancel.check()?;

    // 1. Text.
    on_event(Event::Stage(Stage::EncodeText));
    let t0 = Instant::now();
    begin_phase()?;
    let ([context, context_null], cut) = encode_prompts(ck, params, &opts, &mut record)?;
    end_phase(&mut record, "text")?;
    record.before_dit_active_bytes = active();
    let dit_len = ck.dit_config(ck.dits[0].expert)?.text_len as usize;
    truncation_warnings([&context, &context_null], cut, Some(dit_len), on_event);
    timings.text_s = t0.elapsed().as_secs_f64();
    cancel.check()?;

    // 2. Image (and the previewer, which needs the VAE only when it must be fitted).
    let t_load = Instant::now();
    let mut vae: Option<VaeComponent> = None;
    begin_phase()?;
    let prep = {
        let mut encode = |x: &Array| -> Result<Array> {
            let v = match &mut vae {
                Some(v) => v,
                None => vae.insert(load_vae(ck, &plan)?),
            };
            v.encode(x, cancel)
        };
        prepare(&cfg, params, &mut encode, on_event)?
    };
    let found = match (&opts.preview_cache, &ck.vae) {
        (Some(cache), Some(file)) => find_previewer(&ck.root, file, &ck.vae_config()?, cache)?,
        _ => Previewer::load_beside(&ck.root)?
            .map(|p| (p, crate::vae::preview::PreviewSource::Beside)),
    };
    let previewer = match (found, &opts.preview_cache) {
        (Some((p, _)), _) => Some(p),
        (None, Some(cache)) => {
            let v = match &mut vae {
                Some(v) => v,
                None => vae.insert(load_vae(ck, &plan)?),
            };
            previewer_for(ck, &v.vae, Some(cache))?
        }
        (None, None) => None,
    };
    if !plan.keep_vae {
        vae = None;
    }
    if params.image.is_some() {
        end_phase(&mut record, "image")?;
    }
    cancel.check()?;
    let latent = initial_noise(opts.noise.take(), params.seed, &prep.shape)?;

    // 3. Load the DiT(s), denoise.
    on_event(Event::Stage(Stage::LoadModels));
    begin_phase()?;
    let lopts = LoadOptions {
        dtype: plan.dtype,
        one_expert_at_a_time: plan.one_expert_at_a_time,
        lora: params.lora.clone(),
        preview_cache: opts.preview_cache.clone(),
        quantize,
    };
    let mut experts = load_experts(ck, task, &lopts)?;
    end_phase(&mut record, "load")?;
    timings.load_s = t_load.elapsed().as_secs_f64();
    cancel.check()?;

    on_event(Event::Stage(Stage::Denoise));
    begin_phase()?;
    let t1 = Instant::now();
    let spec = DenoiseSpec {
        latent,
        context: &context,
        context_null: &context_null,
        guide_scale: params.guide_scale,
        solver: params.solver,
        steps: params.sample_steps,
        shift: params.sample_shift,
        first_frame: prep.first_frame.as_ref(),
        y: prep.y.as_ref(),
        batch_cfg: plan.batch_cfg,
        step_cache: params.step_cache,
        token_chunks: plan.token_chunks,
    };
    let out = denoise(
        &mut experts,
        &spec,
        cancel,
        &mut |s| {
            let preview = previewer.as_ref().map(|p| p.preview(s.x0)).transpose()?;
            on_event(Event::Step {
                step: s.step,
                total: s.total,
                timestep: s.timestep,
                elapsed: t1.elapsed(),
                preview,
            });
            Ok(())
        },
        None,
    )?;
    timings.denoise_s = t1.elapsed().as_secs_f64();
    drop(experts);
    end_phase(&mut record, "denoise")?;

    // 4. Decode.
    on_event(Event::Stage(Stage::Decode));
    begin_phase()?;
    let t2 = Instant::now();
    let vae = match vae {
        Some(v) => v,
        None => load_vae(ck, &plan)?,
    };
    let frames = vae.decode(&out.latent, cancel, &mut |done, total| {
        on_event(Event::Decode { done, total })
    })?;
    drop(vae);
    end_phase(&mut record, "decode")?;
    timings.decode_s = t2.elapsed().as_secs_f64();
    on_event(Event::Stage(Stage::Done));
    let video = Video {
        frames,
        fps: cfg.sample_fps,
        timings,
    };
    let (video, run) = finish(video, out, prep.image, (context, context_null));
    Ok((video, run, record))
}
