//! How far a quantized model drifts from the dense one: the measures the README's
//! tables, the tests and the Models view quote (normalized max / RMS error of a DiT
//! output, PSNR of a decoded video).
use mlx_rs::{Array, Dtype};
use serde::Serialize;

use crate::dit::{DitInput, Timesteps, WanConfig, WanModel};
use crate::error::Result;
use crate::fixture::Fixture;
use crate::quant::{QuantSpec, Recipe};

/// Error of `got` against `want`, both normalized by `max|want|`.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Drift {
    /// `max|got − want| / max|want|`.
    pub max: f64,
    /// `rms(got − want) / max|want|`.
    pub rms: f64,
}

pub fn drift(got: &Array, want: &Array) -> Result<Drift> {
    let g = got.as_dtype(Dtype::Float32)?;
    let w = want.as_dtype(Dtype::Float32)?;
    let d = g.subtract(&w)?;
    let scale = w.abs()?.max(None)?.item_cast::<f32>() as f64;
    let scale = if scale > 0.0 { scale } else { 1.0 };
    let max = d.abs()?.max(None)?.item_cast::<f32>() as f64 / scale;
    let rms = (d.square()?.mean(None)?.item_cast::<f32>() as f64).sqrt() / scale;
    Ok(Drift { max, rms })
}

/// PSNR in dB of two videos in `[-1, 1]` (peak-to-peak 2), as `10·log10(2² / mse)`.
pub fn psnr(got: &Array, want: &Array) -> Result<f64> {
    let d = got
        .as_dtype(Dtype::Float32)?
        .subtract(want.as_dtype(Dtype::Float32)?)?;
    let mse = d.square()?.mean(None)?.item_cast::<f32>() as f64;
    Ok(if mse > 0.0 {
        10.0 * (4.0 / mse).log10()
    } else {
        f64::INFINITY
    })
}

/// The DiT config of a `dit_*` fixture (`config.constructor`).
pub fn fixture_config(fx: &Fixture) -> Result<WanConfig> {
    let cfg: WanConfig = serde_json::from_value(fx.cfg("constructor")?.clone())
        .map_err(|e| crate::Error::format(&fx.path, format!("config.constructor: {e}")))?;
    cfg.validate()?;
    Ok(cfg)
}

/// The recorded inputs of a `dit_*` fixture run through `model` (float32 output).
pub fn run_dit_fixture(model: &WanModel, fx: &Fixture) -> Result<Array> {
    let x = fx.get_f32("input/x")?.expand_dims(0)?;
    let y = if fx.has("input/y") {
        Some(fx.get_f32("input/y")?.expand_dims(0)?)
    } else {
        None
    };
    let t_vals = fx.get_vec_f32("input/t")?;
    let t = if fx.get("input/t")?.ndim() == 2 {
        Timesteps::PerToken(t_vals)
    } else {
        Timesteps::PerSample(t_vals)
    };
    let context = [fx.get_f32("input/context")?];
    let out = model.forward(
        &DitInput {
            x: &x,
            t: &t,
            context: &context,
            y: y.as_ref(),
        },
        None,
    )?;
    out.eval()?;
    Ok(out)
}

/// The decoded video of an `e2e_*` fixture's run (its folder, prompt, size, steps, seed and
/// recorded noise; the text encoder runs) with the DiT(s) loaded per `quantize`: the
/// end-to-end drift of a quantized folder is the PSNR of this against the dense run.
pub fn e2e_fixture_video(fx: &Fixture, quantize: Option<Recipe>) -> Result<Array> {
    use crate::config::{Task, parse_size};
    use crate::pipeline::{
        CancelToken, Components, GenerateParams, LoadOptions, RunOptions, SolverKind, load, run,
    };
    let cli = |k: &str| fx.cfg(&format!("cli_equivalent.{k}"));
    let s = |k: &str| -> Result<String> {
        cli(k)?
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| crate::Error::format(&fx.path, format!("cli_equivalent.{k}")))
    };
    let task = Task::parse(&s("task")?)?;
    let cfg = task.config();
    let guide = match cli("sample_guide_scale")?.as_f64() {
        Some(g) => (g as f32, g as f32),
        None => cfg.guide_scale,
    };
    let params = GenerateParams {
        task,
        prompt: s("prompt")?,
        negative_prompt: cli("n_prompt")?.as_str().map(str::to_string),
        size: parse_size(&s("size")?)?,
        frame_num: cli("frame_num")?.as_i64().unwrap_or(0) as i32,
        sample_steps: cli("sample_steps")?.as_u64().unwrap_or(0) as usize,
        sample_shift: cli("sample_shift")?.as_f64().unwrap_or(cfg.sample_shift),
        guide_scale: guide,
        solver: SolverKind::parse(&s("sample_solver")?)?,
        seed: cli("base_seed")?.as_u64().unwrap_or(0),
        image: cli("image")?
            .as_str()
            .map(|n| fx.dir().join("checkpoints").join(n)),
        step_cache: Default::default(),
        lora: None,
    };
    let lopts = LoadOptions {
        dtype: Dtype::Float32,
        one_expert_at_a_time: false,
        lora: None,
        preview_cache: None,
        quantize,
    };
    let mut loaded = load(&fx.dir().join(s("ckpt_dir")?), task, &lopts)?;
    let mut comps = Components {
        text: loaded.text.as_mut(),
        vae: loaded.vae.as_ref(),
        experts: &mut loaded.experts,
    };
    let mut opts = RunOptions::new();
    opts.noise = Some(fx.get_f32("input/noise")?);
    let (video, _) = run(
        &mut comps,
        &params,
        opts,
        &mut |_| {},
        &CancelToken::new(),
        None,
    )?;
    video.frames.eval()?;
    Ok(video.frames)
}

/// The mixed-precision variants of the sensitivity study for a `layers`-block DiT: every
/// block Linear quantized, or one group kept dense (first / last block, both, every
/// self-attention, cross-attention or FFN).
pub fn study_recipes(spec: QuantSpec, layers: i32) -> Vec<(String, Recipe)> {
    let last = format!("blocks.{}.", layers - 1);
    let keep = |v: &[&str]| Recipe {
        spec,
        keep_dense: v.iter().map(|s| s.to_string()).collect(),
    };
    vec![
        ("all".into(), Recipe::all(spec)),
        ("first block dense".into(), keep(&["blocks.0."])),
        ("last block dense".into(), keep(&[&last])),
        ("first + last dense".into(), keep(&["blocks.0.", &last])),
        ("self-attn dense".into(), keep(&["blocks.*.self_attn."])),
        ("cross-attn dense".into(), keep(&["blocks.*.cross_attn."])),
        (
            "cross-attn q,k dense".into(),
            keep(&["blocks.*.cross_attn.q.", "blocks.*.cross_attn.k."]),
        ),
        (
            "cross-attn v,o dense".into(),
            keep(&["blocks.*.cross_attn.v.", "blocks.*.cross_attn.o."]),
        ),
        (
            "first-block attention dense".into(),
            keep(&["blocks.0.self_attn.", "blocks.0.cross_attn."]),
        ),
        (
            "first + last cross-attn dense".into(),
            keep(&["blocks.0.cross_attn.", &format!("{last}cross_attn.")]),
        ),
        ("FFN dense".into(), keep(&["blocks.*.ffn."])),
        ("default".into(), Recipe::recommended(spec)),
    ]
}

/// Resident bytes of a DiT's weights under `recipe` (dense tensors in `dense`), from its
/// expected shapes.
pub fn recipe_bytes(model: &WanModel, recipe: Option<&Recipe>, dense: Dtype) -> u64 {
    model
        .expected_params()
        .iter()
        .map(|(k, s)| {
            let d = if crate::dit::load::is_compute_key(k) {
                dense
            } else {
                Dtype::Float32
            };
            match recipe {
                Some(r) => r.tensor_bytes(k, s, d),
                None => s.iter().map(|&x| x as u64).product::<u64>() * super::dtype_bytes(d) as u64,
            }
        })
        .sum()
}
