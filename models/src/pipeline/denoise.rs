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
use super::step_cache::{MagTable, Schedule, StepCache, StepCacheState, StepRecord, Use};
use crate::dit::{Blocks, ContextKv, Kernels, ModelType, Timesteps};
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
    /// Reuse DiT evaluations across steps (`step_cache`); `StepCache::Off` is the official loop.
    pub step_cache: StepCache,
    /// Run each DiT block over this many token chunks (1: the whole sequence at once; more:
    /// a smaller step working set, see `WanModel::forward_blocks`). The memory plan picks it.
    pub token_chunks: u32,
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
    /// Per step and branch: computed or reused (all computed without a step cache).
    pub step_cache: Vec<StepRecord>,
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
    // Cross-attention K/V of the contexts per expert (high-noise flag) and CFG setting:
    // computed once, reused at every step, recomputed only after an expert switch.
    let mut contexts: Option<(bool, bool, Kvs)> = None;
    let high_steps = match experts {
        Experts::Single(_) => None,
        Experts::Pair { .. } => Some(timesteps.iter().filter(|&&t| experts.is_high(t)).count()),
    };
    let mut cache_slot: Option<StepCacheState> = None;

    for (i, &t) in timesteps.iter().enumerate() {
        cancel.check()?;
        if contexts.as_ref().map(|c| c.0) != Some(experts.is_high(t)) {
            contexts = None; // the previous expert's K/V go before the next expert loads
        }
        let (high, model) = experts.for_timestep(t)?;
        let g = if high {
            spec.guide_scale.1
        } else {
            spec.guide_scale.0
        };
        let cfg = g != 1.0;
        let text_len = model.config.text_len;
        if contexts.as_ref().map(|e| (e.0, e.1)) != Some((high, cfg)) {
            drop(contexts.take()); // a CFG change: old K/V go before the new ones are made
            let c = fit_context(spec.context, text_len, "prompt")?;
            let ctxs = if cfg {
                let n = fit_context(spec.context_null, text_len, "negative prompt")?;
                vec![c, n]
            } else {
                vec![c]
            };
            let kv = model.context_kv_folded(&ctxs)?;
            kv.eval()?;
            let kvs = if cfg {
                Kvs {
                    each: vec![kv.slice(0, 1)?, kv.slice(1, 1)?],
                    both: spec.batch_cfg.then_some(kv),
                }
            } else {
                Kvs {
                    each: vec![kv],
                    both: None,
                }
            };
            contexts = Some((high, cfg, kvs));
        }
        let (_, _, kvs) = contexts.as_ref().expect("set above");

        // Timesteps: per token for ti2v (0 on the image frame's tokens), else per sample.
        let per_token = model.config.model_type == ModelType::Ti2v;
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

        // Which branch (0 = cond, 1 = uncond) computes and which reuses (step cache).
        let cache = cache_slot.get_or_insert_with(|| {
            let schedule = Schedule {
                steps: total,
                high_steps,
                table: mag_table(model.config.model_type, spec.first_frame.is_some()),
            };
            StepCacheState::new(spec.step_cache, schedule)
        });
        let branches = if cfg { 2 } else { 1 };
        let uses = cache.decide(i, t, high, branches, &latent)?;
        let x1 = latent.expand_dims(0)?;
        let call = |bs: &[usize], blocks: Blocks| -> Result<(Vec<Array>, Option<Array>)> {
            let n = bs.len();
            let x = match n {
                1 => x1.clone(),
                _ => mlx_rs::ops::concatenate(&[x1.clone(), x1.clone()], 0)?,
            };
            let yn = match (&y, n) {
                (Some(y), 2) => Some(mlx_rs::ops::concatenate(&[y.clone(), y.clone()], 0)?),
                (y, _) => y.clone(),
            };
            let kv = match bs {
                [b] => &kvs.each[*b],
                _ => kvs
                    .both
                    .as_ref()
                    .expect("both branches run together only when batched"),
            };
            let tt = repeat_t(&model_t, n, per_token);
            let (out, res) = model.forward_blocks(
                &x,
                yn.as_ref(),
                &tt,
                kv,
                Kernels::Fast,
                blocks,
                spec.token_chunks,
            )?;
            let outs = match n {
                1 => vec![out.squeeze_axes(&[0])?],
                _ => out
                    .split_equal(2, 0)?
                    .iter()
                    .map(|p| p.squeeze_axes(&[0]))
                    .collect::<std::result::Result<_, _>>()?,
            };
            Ok((outs, res))
        };
        let magcache = cache.wants_residual();
        let mut preds: Vec<Option<Array>> = vec![None; branches];
        let mut keep: Vec<Array> = Vec::new(); // evaluated with the step
        // EasyCache reuses outputs without calling the model.
        for b in 0..branches {
            if uses[b] == Use::Reused && !magcache {
                preds[b] = Some(cache.reuse_output(b, &latent)?);
            }
        }
        let pending: Vec<usize> = (0..branches).filter(|&b| preds[b].is_none()).collect();
        let together = pending.len() == 2 && spec.batch_cfg && uses[0] == uses[1];
        let groups: Vec<Vec<usize>> = if together {
            vec![pending]
        } else {
            pending.into_iter().map(|b| vec![b]).collect()
        };
        for bs in groups {
            let reused = magcache && uses[bs[0]] == Use::Reused;
            let (outs, res) = if reused {
                let r = match bs.as_slice() {
                    [b] => cache.residual(*b)?.clone(),
                    _ => mlx_rs::ops::concatenate(&[cache.residual(0)?, cache.residual(1)?], 0)?,
                };
                call(&bs, Blocks::Reuse(&r))?
            } else {
                call(&bs, if magcache { Blocks::Keep } else { Blocks::Run })?
            };
            if let Some(res) = res {
                let parts = match bs.len() {
                    1 => vec![res],
                    _ => res.split_equal(2, 0)?,
                };
                for (&b, r) in bs.iter().zip(parts) {
                    keep.push(r.clone());
                    cache.store_residual(b, r);
                }
            }
            for (&b, v) in bs.iter().zip(outs) {
                if !reused {
                    cache.store_output(b, &latent, &v)?;
                }
                preds[b] = Some(v);
            }
        }
        let mut preds = preds
            .into_iter()
            .map(|p| p.expect("every branch predicted"));
        let cond = preds.next().expect("cond branch");
        let uncond = preds.next();
        // v = uncond + g·(cond − uncond)
        let noise_pred = match &uncond {
            Some(u) => u.add(cond.subtract(u)?.multiply(Array::from_f32(g))?)?,
            None => cond.clone(),
        };
        let out = solver.step(&noise_pred, i, &latent)?;
        let next = impose(&out.sample)?;
        mlx_rs::transforms::eval([&next, &out.x0].into_iter().chain(&keep))?;
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
        step_cache: cache_slot.map(|c| c.record).unwrap_or_default(),
    })
}

/// Context K/V of one expert: per branch (B = 1 views) and, for batched CFG, both (B = 2).
struct Kvs {
    each: Vec<ContextKv>,
    both: Option<ContextKv>,
}

/// The MagCache calibration of a run: by the model kind, and for ti2v-5B by whether an
/// image is imposed on frame 0.
fn mag_table(kind: ModelType, image: bool) -> MagTable {
    match (kind, image) {
        (ModelType::I2v, _) => MagTable::I2vA14B,
        (ModelType::T2v, _) => MagTable::T2vA14B,
        (ModelType::Ti2v, true) => MagTable::Ti2vI2v,
        (ModelType::Ti2v, false) => MagTable::Ti2vT2v,
    }
}

fn repeat_t(t: &[f32], b: usize, per_token: bool) -> Timesteps {
    let v: Vec<f32> = (0..b).flat_map(|_| t.iter().copied()).collect();
    if per_token {
        Timesteps::PerToken(v)
    } else {
        Timesteps::PerSample(v)
    }
}
