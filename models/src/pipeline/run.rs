//! Task-level generation over injected components (spec §5.6): text encoding, the
//! conditioning image, noise, the sampling loop, decoding — in the official order for
//! `WanTI2V.{t2v,i2v}` (ti2v-5B), `WanT2V.generate` (t2v-A14B) and `WanI2V.generate`
//! (i2v-A14B). The components are traits so that parity runs, tests and the app can plug
//! in recorded contexts, a stub VAE or real models alike.
//!
//! Noise: drawn from MLX's own counter-based RNG (`mlx_rs::random::normal` with
//! `random::key(seed)`), float32 `[z, F', h, w]`. It does **not** reproduce the official
//! `torch.randn` on a CUDA generator (Philox streams differ); the same seed gives the same
//! clip here, not the official clip. To replay an official run, inject its noise tensor.
use std::time::Instant;

use mlx_rs::{Array, Dtype};

use super::api::{CancelToken, Event, GenerateParams, Preview, Stage, Timings, Video};
use super::denoise::{DenoiseSpec, StepTrace, denoise};
use super::experts::Experts;
use crate::config::{DEFAULT_NEG_PROMPT, Task, TaskConfig};
use crate::error::{Error, Result};
use crate::video;

/// Prompt → T5 context `[L, dim]` (trimmed to the mask length, as the pipelines get it).
pub trait PromptEncoder {
    fn encode(&mut self, prompt: &str) -> Result<Array>;
    /// Token ids incl. `</s>` (unpadded) for checks; `None` when not exposed.
    fn token_ids(&self, _prompt: &str) -> Result<Option<Vec<i64>>> {
        Ok(None)
    }
    /// `Some(text_len)` when `prompt` is longer than the `text_len` tokens the encoder
    /// reads (the rest is cut off, as in the official code); `None` when it fits or the
    /// encoder cannot tell.
    fn truncated_to(&self, _prompt: &str) -> Result<Option<usize>> {
        Ok(None)
    }
}

/// The task's VAE (channels-first tensors, official normalisation).
pub trait LatentVae {
    /// Video `[3, F, H, W]` in [−1, 1] → latent `[z, F', h, w]`.
    fn encode(&self, video: &Array, cancel: &CancelToken) -> Result<Array>;
    /// Latent → video `[3, F, H, W]` clamped to [−1, 1]; `progress(done, total)` per chunk.
    fn decode(
        &self,
        latent: &Array,
        cancel: &CancelToken,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Array>;
    /// A cheap RGB preview of an x0 estimate (the fast previewer); `None` if unavailable.
    fn preview(&self, _x0: &Array) -> Result<Option<Preview>> {
        Ok(None)
    }
}

/// Everything a generation needs, loaded.
pub struct Components<'a> {
    pub text: &'a mut dyn PromptEncoder,
    pub vae: &'a dyn LatentVae,
    pub experts: &'a mut Experts,
}

/// Optional overrides (parity, replay) and knobs that are not part of the clip's identity.
#[derive(Default)]
pub struct RunOptions {
    /// Initial noise `[z, F', h, w]` instead of drawing it from the seed.
    pub noise: Option<Array>,
    /// Contexts instead of running the text encoder (prompt, negative prompt).
    pub contexts: Option<(Array, Array)>,
    /// Run cond and uncond as one batch of two (default true via [`RunOptions::new`]).
    pub batch_cfg: bool,
    /// Token chunks per DiT block (1 via [`RunOptions::new`]; see `DenoiseSpec::token_chunks`).
    pub token_chunks: u32,
}

impl RunOptions {
    pub fn new() -> Self {
        Self {
            batch_cfg: true,
            token_chunks: 1,
            ..Default::default()
        }
    }
}

/// What a run produced besides the video (for parity and the sidecar).
pub struct RunRecord {
    pub timesteps: Vec<i64>,
    pub sigmas: Vec<f32>,
    pub latent: Array,
    /// The conditioning image at each official stage (image→video runs).
    pub image: Option<ImageTensors>,
    pub contexts: (Array, Array),
    /// Which steps computed the DiT and which reused an earlier evaluation.
    pub step_cache: Vec<super::step_cache::StepRecord>,
}

/// The conditioning image as the VAE and the DiT saw it (for parity and inspection; all at
/// the output resolution or smaller, so keeping them costs little).
#[derive(Clone)]
pub struct ImageTensors {
    /// The `[3, 1, H, W]` image frame the VAE encodes, in [−1, 1]: ti2v-5B after the
    /// LANCZOS resize + crop, i2v-A14B after the bicubic resize (may overshoot ±1).
    pub image: Array,
    /// The VAE latent: ti2v-5B `[48, 1, h, w]`; i2v-A14B `[16, F', h, w]` (image + zero frames).
    pub latent: Array,
    /// i2v-A14B: `y` = 4 mask channels (1 on latent frame 0) + `latent`, given to the DiT.
    pub y: Option<Array>,
}

/// The negative prompt of a request (empty or absent: the official default).
pub(crate) fn negative_prompt(params: &GenerateParams) -> &str {
    params
        .negative_prompt
        .as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or(DEFAULT_NEG_PROMPT)
}

/// Prompts are cut twice, silently in the official code: by the tokenizer's text_len
/// (`cut`, per prompt) and by the DiT's (`fit_context`); say so once, with the smaller
/// limit.
pub(crate) fn truncation_warnings(
    contexts: [&Array; 2],
    cut: [Option<usize>; 2],
    dit_len: Option<usize>,
    on_event: &mut dyn FnMut(Event),
) {
    let whats = ["prompt", "negative prompt"];
    for ((what, ctx), tokenizer) in whats.iter().zip(contexts).zip(cut) {
        let dit = dit_len.filter(|&l| ctx.shape()[0] as usize > l);
        let limit = match (tokenizer, dit_len) {
            (Some(t), Some(d)) => Some(t.min(d)),
            (Some(t), None) => Some(t),
            (None, _) => dit,
        };
        if let Some(limit) = limit {
            on_event(Event::Warning(format!(
                "the {what} is longer than the {limit} tokens the model reads; the rest is ignored"
            )));
        }
    }
}

/// The injected noise (checked against `shape`) or seeded noise.
pub(crate) fn initial_noise(noise: Option<Array>, seed: u64, shape: &[i32; 4]) -> Result<Array> {
    match noise {
        Some(n) => {
            if n.shape() != shape {
                return Err(Error::Input(format!(
                    "injected noise has shape {:?}, this request needs {:?}",
                    n.shape(),
                    shape
                )));
            }
            Ok(n.as_dtype(Dtype::Float32)?)
        }
        None => seeded_noise(seed, shape),
    }
}

/// Seeded float32 standard-normal noise of `shape` (our RNG; see the module docs).
pub fn seeded_noise(seed: u64, shape: &[i32]) -> Result<Array> {
    let key = mlx_rs::random::key(seed)?;
    Ok(mlx_rs::random::normal::<f32>(shape, None, None, &key)?)
}

/// Latent geometry + conditioning of one request.
pub(crate) struct Prepared {
    pub shape: [i32; 4],
    pub first_frame: Option<Array>,
    pub y: Option<Array>,
    pub image: Option<ImageTensors>,
}

/// Latent shape and image conditioning; `encode` (the VAE encoder) runs only for an image.
pub(crate) fn prepare(
    cfg: &TaskConfig,
    params: &GenerateParams,
    encode: &mut dyn FnMut(&Array) -> Result<Array>,
    on_event: &mut dyn FnMut(Event),
) -> Result<Prepared> {
    let f_lat = cfg.latent_frames(params.frame_num)?;
    let (w, h) = params.size;
    // `max_area` = W·H of the size string (`MAX_AREA_CONFIGS`): only the area counts.
    let area = w.max(0) as u64 * h.max(0) as u64;
    let [_, sh, sw] = cfg.vae_stride;
    match (cfg.task, &params.image) {
        (Task::Ti2v5B, Some(path)) => {
            on_event(Event::Stage(Stage::EncodeImage));
            let img = video::load_rgb(path)?;
            let (mw, _) = cfg.size_multiple();
            let (_, x) = video::ti2v_image(&img, area, mw as u32)?; // [3, 1, oh, ow]
            let z = encode(&x)?; // [z, 1, oh/16, ow/16]
            let s = z.shape().to_vec();
            Ok(Prepared {
                shape: [cfg.z_dim, f_lat, s[2], s[3]],
                first_frame: Some(z.clone()),
                y: None,
                image: Some(ImageTensors {
                    image: x,
                    latent: z,
                    y: None,
                }),
            })
        }
        (Task::I2vA14B, Some(path)) => {
            on_event(Event::Stage(Stage::EncodeImage));
            let img = video::load_rgb(path)?;
            let (iw, ih) = img.dimensions();
            let patch = cfg.patch_size[1] as u32;
            let (ow, oh) = video::i2v_a14b_size(iw, ih, area, sh as u32, patch)?;
            let x = video::i2v_a14b_image(&img, ow, oh)?; // [3, 1, H, W]
            let (ow, oh) = (ow as i32, oh as i32);
            let frames = params.frame_num;
            let pad = mlx_rs::ops::zeros::<f32>(&[3, frames - 1, oh, ow])?;
            let clip = mlx_rs::ops::concatenate(&[&x, &pad], 1)?;
            let lat = encode(&clip)?; // [16, F', h, w]
            let (lh, lw) = (oh / sh, ow / sw);
            // Mask: 4 channels, 1 on latent frame 0 (official msk after folding 4 frames).
            let mut m = vec![0f32; (4 * f_lat * lh * lw) as usize];
            let per = (lh * lw) as usize;
            for c in 0..4usize {
                let base = c * f_lat as usize * per;
                m[base..base + per].iter_mut().for_each(|v| *v = 1.0);
            }
            let msk = Array::from_slice(&m, &[4, f_lat, lh, lw]);
            let y = mlx_rs::ops::concatenate(&[&msk, &lat], 0)?;
            Ok(Prepared {
                shape: [cfg.z_dim, f_lat, lh, lw],
                first_frame: None,
                y: Some(y.clone()),
                image: Some(ImageTensors {
                    image: x,
                    latent: lat,
                    y: Some(y),
                }),
            })
        }
        (Task::I2vA14B, None) => Err(Error::Input("i2v-A14B needs --image".into())),
        (Task::T2vA14B, Some(_)) => Err(Error::Input(
            "t2v-A14B takes no image (use i2v-A14B or ti2v-5B)".into(),
        )),
        _ => {
            cfg.check_size(w, h)?;
            Ok(Prepared {
                shape: [cfg.z_dim, f_lat, h / sh, w / sw],
                first_frame: None,
                y: None,
                image: None,
            })
        }
    }
}

/// Run one generation with loaded components. `trace` receives every step's tensors.
pub fn run(
    comps: &mut Components,
    params: &GenerateParams,
    opts: RunOptions,
    on_event: &mut dyn FnMut(Event),
    cancel: &CancelToken,
    trace: Option<&mut dyn FnMut(StepTrace)>,
) -> Result<(Video, RunRecord)> {
    let cfg = params.task.config();
    let mut timings = Timings::default();
    cancel.check()?;

    on_event(Event::Stage(Stage::EncodeText));
    let t0 = Instant::now();
    let (context, context_null) = match opts.contexts {
        Some(c) => c,
        None => {
            let neg = negative_prompt(params);
            let c = comps.text.encode(&params.prompt)?;
            let n = comps.text.encode(neg)?;
            let dit_len = comps.experts.text_len().map(|l| l as usize);
            let cut = [
                comps.text.truncated_to(&params.prompt)?,
                comps.text.truncated_to(neg)?,
            ];
            truncation_warnings([&c, &n], cut, dit_len, on_event);
            (c, n)
        }
    };
    timings.text_s = t0.elapsed().as_secs_f64();
    cancel.check()?;

    let vae = comps.vae;
    let prep = prepare(&cfg, params, &mut |x| vae.encode(x, cancel), on_event)?;
    let latent = initial_noise(opts.noise, params.seed, &prep.shape)?;

    on_event(Event::Stage(Stage::Denoise));
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
        batch_cfg: opts.batch_cfg,
        step_cache: params.step_cache,
        token_chunks: opts.token_chunks,
    };
    let out = denoise(
        comps.experts,
        &spec,
        cancel,
        &mut |s| {
            let preview = vae.preview(s.x0)?;
            on_event(Event::Step {
                step: s.step,
                total: s.total,
                timestep: s.timestep,
                elapsed: t1.elapsed(),
                preview,
            });
            Ok(())
        },
        trace,
    )?;
    timings.denoise_s = t1.elapsed().as_secs_f64();

    on_event(Event::Stage(Stage::Decode));
    let t2 = Instant::now();
    let frames = vae.decode(&out.latent, cancel, &mut |done, total| {
        on_event(Event::Decode { done, total })
    })?;
    timings.decode_s = t2.elapsed().as_secs_f64();
    on_event(Event::Stage(Stage::Done));
    Ok(finish(
        Video {
            frames,
            fps: cfg.sample_fps,
            timings,
        },
        out,
        prep.image,
        (context, context_null),
    ))
}

/// The clip and what produced it, from a finished sampling run (`run` and the phased
/// pipeline end the same way).
pub(crate) fn finish(
    video: Video,
    out: super::denoise::Denoised,
    image: Option<ImageTensors>,
    contexts: (Array, Array),
) -> (Video, RunRecord) {
    let record = RunRecord {
        timesteps: out.timesteps,
        sigmas: out.sigmas,
        latent: out.latent,
        image,
        contexts,
        step_cache: out.step_cache,
    };
    (video, record)
}
