//! Parity cases `pipe_ti2v` / `pipe_ti2v_t2v`: the official `WanTI2V.i2v` / `.t2v` loop
//! with injected contexts and noise, the tiny DiT of `dit_ti2v.safetensors` and the tiny
//! VAE of `vae22.safetensors` (files named by `config.params_from`, beside the fixture).
use mlx_rs::Array;

use super::dit::config_from_fixture;
use crate::config::VaeKind;
use crate::dit::WanModel;
use crate::error::{Error, Result};
use crate::fixture::{Check, Fixture, compare, compare_abs, compare_exact};
use crate::pipeline::{
    CancelToken, DenoiseSpec, Experts, LatentVae, SolverKind, StepTrace, VaeComponent, denoise,
};
use crate::vae::{VaeConfig, WanVae};

const TOL: f64 = 1e-4;

/// `config.params_from.<what>` = "file.safetensors (param/*)" → that fixture, opened.
fn companion(fx: &Fixture, what: &str) -> Result<Fixture> {
    let s = fx
        .cfg(&format!("params_from.{what}"))?
        .as_str()
        .ok_or_else(|| Error::format(&fx.path, format!("params_from.{what} is not a string")))?;
    let file = s.split_whitespace().next().unwrap_or(s);
    Fixture::open(fx.dir().join(file))
}

/// Stack per-step tensors and compare with a `[S, …]` fixture tensor.
pub(crate) fn stacked(
    fx: &Fixture,
    name: &str,
    got: &[Array],
    checks: &mut Vec<Check>,
) -> Result<()> {
    if fx.has(name) && !got.is_empty() {
        let g = mlx_rs::ops::stack(got, 0)?;
        checks.push(compare(name, &g, &fx.get(name)?, TOL)?);
    }
    Ok(())
}

/// Compare every recorded per-step tensor of a run.
pub(crate) fn check_steps(
    fx: &Fixture,
    steps: &[StepTrace],
    checks: &mut Vec<Check>,
) -> Result<()> {
    let col = |f: &dyn Fn(&StepTrace) -> Array| steps.iter().map(f).collect::<Vec<_>>();
    stacked(
        fx,
        "inter/model_input",
        &col(&|s| s.model_input.clone()),
        checks,
    )?;
    stacked(
        fx,
        "inter/noise_pred_cond",
        &col(&|s| s.noise_pred_cond.clone()),
        checks,
    )?;
    if steps.iter().all(|s| s.noise_pred_uncond.is_some()) {
        let u: Vec<Array> = steps
            .iter()
            .filter_map(|s| s.noise_pred_uncond.clone())
            .collect();
        stacked(fx, "inter/noise_pred_uncond", &u, checks)?;
    }
    stacked(
        fx,
        "inter/noise_pred",
        &col(&|s| s.noise_pred.clone()),
        checks,
    )?;
    stacked(
        fx,
        "inter/scheduler_out",
        &col(&|s| s.scheduler_out.clone()),
        checks,
    )?;
    stacked(fx, "output/latents", &col(&|s| s.latent.clone()), checks)?;
    if fx.has("inter/model_t") {
        let want = fx.get_vec_i64("inter/model_t")?;
        let got: Vec<i64> = steps
            .iter()
            .flat_map(|s| s.model_t.iter().map(|&t| t as i64))
            .collect();
        checks.push(compare_exact(
            "inter/model_t",
            &got,
            &want,
            fx.get("inter/model_t")?.shape().to_vec(),
        ));
    }
    if fx.has("inter/expert") {
        let want = fx.get_vec_i64("inter/expert")?;
        let got: Vec<i64> = steps.iter().map(|s| s.high_noise as i64).collect();
        checks.push(compare_exact(
            "inter/expert",
            &got,
            &want,
            vec![want.len() as i32],
        ));
    }
    if fx.has("inter/guide_scale") {
        let g: Vec<f32> = steps.iter().map(|s| s.guide_scale).collect();
        checks.push(compare_abs(
            "inter/guide_scale",
            &Array::from_slice(&g, &[g.len() as i32]),
            &fx.get("inter/guide_scale")?,
            0.0,
        )?);
    }
    Ok(())
}

/// Schedule checks shared with the e2e cases.
pub(crate) fn check_schedule(
    fx: &Fixture,
    timesteps: &[i64],
    sigmas: &[f32],
    checks: &mut Vec<Check>,
) -> Result<()> {
    let want = fx.get_vec_i64("output/timesteps")?;
    checks.push(compare_exact(
        "output/timesteps",
        timesteps,
        &want,
        vec![want.len() as i32],
    ));
    checks.push(compare_abs(
        "output/sigmas",
        &Array::from_slice(sigmas, &[sigmas.len() as i32]),
        &fx.get("output/sigmas")?,
        1e-6,
    )?);
    Ok(())
}

pub fn pipe_ti2v(fx: &Fixture) -> Result<Vec<Check>> {
    let call = |k: &str| fx.cfg(&format!("call.{k}"));
    let steps = call("sampling_steps")?.as_u64().unwrap_or(0) as usize;
    let shift = call("shift")?.as_f64().unwrap_or(0.0);
    let guide = call("guide_scale")?.as_f64().unwrap_or(0.0) as f32;
    let solver = SolverKind::parse(call("sample_solver")?.as_str().unwrap_or(""))?;
    let i2v = fx.cfg("mode")?.as_str() == Some("i2v");

    let dit_fx = companion(fx, "dit")?;
    let model = WanModel::load(config_from_fixture(&dit_fx)?, &dit_fx.params()?)?;
    let mut experts = Experts::Single(Box::new(model));

    let context = fx.get_f32("input/context")?;
    let context_null = fx.get_f32("input/context_null")?;
    let noise = fx.get_f32("input/noise")?;
    let mut checks = Vec::new();
    let vae_fx = companion(fx, "vae")?;
    let vae = VaeComponent::new(
        WanVae::load(
            VaeConfig::from_constructor(VaeKind::Wan22, vae_fx.cfg("constructor")?)?,
            &vae_fx.params()?,
        )?,
        None,
    );
    let cancel = CancelToken::new();
    // The image latent: our encode of the recorded image tensor.
    let z = if i2v {
        let z = vae.encode(&fx.get_f32("input/image")?, &cancel)?;
        checks.push(compare(
            "inter/image_latent",
            &z,
            &fx.get("inter/image_latent")?,
            TOL,
        )?);
        Some(z)
    } else {
        None
    };
    let spec = DenoiseSpec {
        latent: noise,
        context: &context,
        context_null: &context_null,
        guide_scale: (guide, guide),
        solver,
        steps,
        shift,
        first_frame: z.as_ref(),
        y: None,
        batch_cfg: true,
        step_cache: Default::default(),
        token_chunks: 1,
    };
    let mut traces = Vec::new();
    let mut rec = |s: StepTrace| traces.push(s);
    let out = denoise(
        &mut experts,
        &spec,
        &cancel,
        &mut |_| Ok(()),
        Some(&mut rec),
    )?;
    check_schedule(fx, &out.timesteps, &out.sigmas, &mut checks)?;
    check_steps(fx, &traces, &mut checks)?;
    checks.push(compare(
        "output/x0",
        &out.latent,
        &fx.get("output/x0")?,
        TOL,
    )?);
    let video = vae.decode(&out.latent, &cancel, &mut |_, _| {})?;
    checks.push(compare(
        "output/video",
        &video,
        &fx.get("output/video")?,
        TOL,
    )?);
    Ok(checks)
}
