//! The sampling loop shared by every task (spec §5.5–5.6): expert choice, classifier-free
//! guidance, the solver step, first-frame re-imposition (ti2v-5B image→video), per-step
//! events and cancellation. Ports the loops of `wan/textimage2video.py:WanTI2V.{t2v,i2v}`,
//! `wan/text2video.py:WanT2V.generate` and `wan/image2video.py:WanI2V.generate`.
//!
//! Latents are `[C, F', h, w]` float32 (the official lists of one tensor); the DiT gets
//! `[B, C, F', h, w]` with B = 2 (cond, uncond) when the two passes are batched — exact,
//! because both contexts are zero-padded to `text_len` and attended without a mask.
use mlx_rs::{Array, Dtype};

use super::api::CancelToken;
use super::experts::Experts;
use crate::dit::Timesteps;
use crate::error::{Error, Result};
use crate::pipeline::SolverKind;
use crate::solvers::Solver;

/// Everything one sampling run needs besides the model(s).
pub struct DenoiseSpec<'a> {
    /// Initial latent `[C, F', h, w]` (noise; frame 0 already replaced for ti2v i2v).
    pub latent: Array,
    /// Prompt / negative-prompt embeddings `[L, text_dim]` (T5 output, unpadded).
    pub context: &'a Array,
    pub context_null: &'a Array,
    /// (low-noise, high-noise) guidance; single-model tasks use `.0`.
    pub guide_scale: (f32, f32),
    pub solver: SolverKind,
    pub steps: usize,
    pub shift: f64,
    /// ti2v-5B image→video: the image latent `[C, 1, h, w]` kept on latent frame 0 (t = 0 on
    /// its tokens, re-imposed after every step).
    pub first_frame: Option<&'a Array>,
    /// i2v-A14B conditioning `y = [mask 4 + image latent C, F', h, w]`, constant.
    pub y: Option<&'a Array>,
    /// Run cond + uncond as one B = 2 call (faster, twice the activation memory).
    pub batch_cfg: bool,
}

/// Per-step progress handed to the caller (it builds previews and UI events from it).
pub struct StepInfo<'a> {
    pub step: usize,
    pub total: usize,
    pub timestep: i64,
    /// The current x0 estimate `[C, F', h, w]` (the solver's data prediction).
    pub x0: &'a Array,
}

/// Every tensor of one step, as the parity fixtures record them.
pub struct StepTrace {
    pub model_input: Array,
    /// Timesteps the DiT got: per token (ti2v) or `[1]` (A14B).
    pub model_t: Vec<f32>,
    pub noise_pred_cond: Array,
    pub noise_pred_uncond: Option<Array>,
    pub noise_pred: Array,
    pub scheduler_out: Array,
    pub latent: Array,
    /// A14B: true when the high-noise expert ran.
    pub high_noise: bool,
    pub guide_scale: f32,
}

/// Result of the loop: the final latent and the schedule that produced it.
pub struct Denoised {
    pub latent: Array,
    pub timesteps: Vec<i64>,
    pub sigmas: Vec<f32>,
}

/// Keep at most `text_len` context rows (the official model crashes beyond that).
pub fn fit_context(ctx: &Array, text_len: i32, what: &str) -> Result<Array> {
    let s = ctx.shape();
    if s.len() != 2 {
        return Err(Error::Input(format!("{what} must be [L, D], got {s:?}")));
    }
    if s[0] > text_len {
        // `run` reports this as `Event::Warning` before sampling starts.
        let parts = ctx.split_at_indices(&[text_len], 0)?;
        return Ok(parts[0].clone());
    }
    Ok(ctx.clone())
}

/// Run the whole loop. `on_step` runs after every step (return an error to stop);
/// `trace` (parity) receives every intermediate.
pub fn denoise(
    experts: &mut Experts,
    spec: &DenoiseSpec,
    cancel: &CancelToken,
    on_step: &mut dyn FnMut(StepInfo) -> Result<()>,
    mut trace: Option<&mut dyn FnMut(StepTrace)>,
) -> Result<Denoised> {
    let mut solver = Solver::new(spec.solver, spec.steps, spec.shift)?;
    let timesteps = solver.timesteps().to_vec();
    let total = timesteps.len();
    let shape = spec.latent.shape().to_vec();
    if shape.len() != 4 {
        return Err(Error::Input(format!(
            "latent must be [C, F, h, w], got {shape:?}"
        )));
    }
    // mask2: 0 on latent frame 0 when an image latent is imposed there, 1 elsewhere.
    let mask2 = match spec.first_frame {
        Some(z) => {
            if z.shape() != [shape[0], 1, shape[2], shape[3]] {
                return Err(Error::Input(format!(
                    "image latent {:?} does not fit the latent {shape:?}",
                    z.shape()
                )));
            }
            let mut m = vec![1f32; shape[1] as usize];
            m[0] = 0.0;
            Some(Array::from_slice(&m, &[1, shape[1], 1, 1]))
        }
        None => None,
    };
    let impose = |lat: &Array| -> Result<Array> {
        match (&mask2, spec.first_frame) {
            // latent = (1 − mask2)·z + mask2·latent, as official.
            (Some(m), Some(z)) => Ok(Array::from_f32(1.0)
                .subtract(m)?
                .multiply(z)?
                .add(m.multiply(lat)?)?),
            _ => Ok(lat.clone()),
        }
    };

    let mut latent = impose(&spec.latent.as_dtype(Dtype::Float32)?)?;
    let y = spec.y.map(|y| y.expand_dims(0)).transpose()?;
    // Embedded contexts per expert (high-noise flag), recomputed after a switch.
    let mut embedded: Option<(bool, Array, bool)> = None;

    for (i, &t) in timesteps.iter().enumerate() {
        cancel.check()?;
        let (high, model) = experts.for_timestep(t)?;
        let g = if high {
            spec.guide_scale.1
        } else {
            spec.guide_scale.0
        };
        let cfg = g != 1.0;
        let text_len = model.config.text_len;
        if embedded.as_ref().map(|e| (e.0, e.2)) != Some((high, cfg)) {
            let c = fit_context(spec.context, text_len, "prompt")?;
            let ctxs = if cfg {
                let n = fit_context(spec.context_null, text_len, "negative prompt")?;
                vec![c, n]
            } else {
                vec![c]
            };
            let e = model.embed_context(&ctxs)?;
            embedded = Some((high, e, cfg));
        }
        let (_, ctx_emb, _) = embedded.as_ref().expect("set above");

        // Timesteps: per token for ti2v (0 on the image frame's tokens), else per sample.
        let per_token = model.config.model_type == crate::dit::ModelType::Ti2v;
        let model_t: Vec<f32> = if per_token {
            let [pt, ph, pw] = model.config.patch_size;
            let per_frame = ((shape[2] / ph) * (shape[3] / pw)) as usize;
            let frames = (shape[1] / pt) as usize;
            let mut v = vec![t as f32; per_frame * frames];
            if spec.first_frame.is_some() {
                v[..per_frame].iter_mut().for_each(|x| *x = 0.0);
            }
            v
        } else {
            vec![t as f32]
        };

        let x1 = latent.expand_dims(0)?;
        let (cond, uncond) = if cfg && spec.batch_cfg {
            let x2 = mlx_rs::ops::concatenate(&[x1.clone(), x1], 0)?;
            let y2 = y
                .as_ref()
                .map(|y| mlx_rs::ops::concatenate(&[y.clone(), y.clone()], 0))
                .transpose()?;
            let tt = repeat_t(&model_t, 2, per_token);
            let out = model.forward_embedded(&x2, y2.as_ref(), &tt, ctx_emb, None)?;
            let parts = out.split_equal(2, 0)?;
            (
                parts[0].squeeze_axes(&[0])?,
                Some(parts[1].squeeze_axes(&[0])?),
            )
        } else {
            let tt = repeat_t(&model_t, 1, per_token);
            let ctxs = if cfg {
                ctx_emb.split_equal(2, 0)?
            } else {
                vec![ctx_emb.clone()]
            };
            let c = model.forward_embedded(&x1, y.as_ref(), &tt, &ctxs[0], None)?;
            let u = if cfg {
                Some(model.forward_embedded(&x1, y.as_ref(), &tt, &ctxs[1], None)?)
            } else {
                None
            };
            (
                c.squeeze_axes(&[0])?,
                u.map(|u| u.squeeze_axes(&[0])).transpose()?,
            )
        };
        // v = uncond + g·(cond − uncond)
        let noise_pred = match &uncond {
            Some(u) => u.add(cond.subtract(u)?.multiply(Array::from_f32(g))?)?,
            None => cond.clone(),
        };
        let out = solver.step(&noise_pred, i, &latent)?;
        let next = impose(&out.sample)?;
        mlx_rs::transforms::eval([&next, &out.x0])?;
        if let Some(tr) = trace.as_deref_mut() {
            tr(StepTrace {
                model_input: latent.clone(),
                model_t: model_t.clone(),
                noise_pred_cond: cond,
                noise_pred_uncond: uncond,
                noise_pred,
                scheduler_out: out.sample,
                latent: next.clone(),
                high_noise: high,
                guide_scale: g,
            });
        }
        latent = next;
        on_step(StepInfo {
            step: i + 1,
            total,
            timestep: t,
            x0: &out.x0,
        })?;
        cancel.check()?;
    }
    Ok(Denoised {
        latent,
        timesteps,
        sigmas: solver.schedule().sigmas.clone(),
    })
}

fn repeat_t(t: &[f32], b: usize, per_token: bool) -> Timesteps {
    let v: Vec<f32> = (0..b).flat_map(|_| t.iter().copied()).collect();
    if per_token {
        Timesteps::PerToken(v)
    } else {
        Timesteps::PerSample(v)
    }
}
