//! Parity cases for the DiT: `rope_and_time` and `dit_{ti2v,t2v,i2v}`.
use mlx_rs::Array;

use crate::dit::rope::{freqs_table, grid_cos_sin, rope_apply, sinusoidal_embedding};
use crate::dit::{Blocks, DitInput, Kernels, Timesteps, Trace, WanConfig, WanModel};
use crate::error::{Error, Result};
use crate::fixture::{Check, Fixture, compare, compare_abs};

/// Tolerances from the fixture README (float64 tables computed on the host).
const TOL_TABLE: f64 = 1e-6;
const TOL_ROPE: f64 = 1e-5;
const TOL_DIT: f64 = 1e-4;

pub fn rope_and_time(fx: &Fixture) -> Result<Vec<Check>> {
    let head_dim = fx.cfg_i64("head_dim")? as usize;
    let max_pos = fx.cfg_i64("max_seq_len")? as usize;
    let mut checks = Vec::new();

    let angles = freqs_table(head_dim, max_pos);
    let shape = [max_pos as i32, (head_dim / 2) as i32];
    let re: Vec<f32> = angles.iter().map(|a| a.cos() as f32).collect();
    let im: Vec<f32> = angles.iter().map(|a| a.sin() as f32).collect();
    checks.push(compare_abs(
        "output/freqs_real",
        &Array::from_slice(&re, &shape),
        &fx.get("output/freqs_real")?,
        TOL_TABLE,
    )?);
    checks.push(compare_abs(
        "output/freqs_imag",
        &Array::from_slice(&im, &shape),
        &fx.get("output/freqs_imag")?,
        TOL_TABLE,
    )?);

    let g = fx.get_vec_i64("input/grid_sizes")?;
    let grid = [g[0] as usize, g[1] as usize, g[2] as usize];
    let (cos, sin) = grid_cos_sin(head_dim, grid)?;
    if fx.has("inter/grid_cos") {
        checks.push(compare_abs(
            "inter/grid_cos",
            &cos,
            &fx.get("inter/grid_cos")?,
            TOL_TABLE,
        )?);
        checks.push(compare_abs(
            "inter/grid_sin",
            &sin,
            &fx.get("inter/grid_sin")?,
            TOL_TABLE,
        )?);
    }

    // rope_apply on [B, L+pad, H, d]: tokens past the grid pass through unchanged.
    let x = fx.get_f32("input/rope_x")?;
    let l = (grid[0] * grid[1] * grid[2]) as i32;
    let total = x.shape()[1];
    let parts = x.split_at_indices(&[l], 1)?;
    let rotated = rope_apply(&parts[0], &cos, &sin)?;
    let out = if total > l {
        mlx_rs::ops::concatenate(&[rotated, parts[1].clone()], 1)?
    } else {
        rotated
    };
    checks.push(compare(
        "output/rope_out",
        &out,
        &fx.get("output/rope_out")?,
        TOL_ROPE,
    )?);

    let freq_dim = fx.cfg_i64("freq_dim")? as usize;
    let ts: Vec<f64> = fx
        .get_vec_f32("input/timesteps")?
        .iter()
        .map(|&v| v as f64)
        .collect();
    checks.push(compare_abs(
        "output/sin_emb",
        &sinusoidal_embedding(freq_dim, &ts),
        &fx.get("output/sin_emb")?,
        TOL_TABLE,
    )?);
    Ok(checks)
}

/// Build the config from `config.constructor` (every official constructor argument).
pub fn config_from_fixture(fx: &Fixture) -> Result<WanConfig> {
    let ctor = fx.cfg("constructor")?;
    let cfg: WanConfig = serde_json::from_value(ctor.clone())
        .map_err(|e| Error::format(&fx.path, format!("config.constructor: {e}")))?;
    cfg.validate()?;
    Ok(cfg)
}

pub fn dit(fx: &Fixture) -> Result<Vec<Check>> {
    let cfg = config_from_fixture(fx)?;
    let model = WanModel::load(cfg, &fx.params()?)?;

    let x = fx.get_f32("input/x")?.expand_dims(0)?;
    let y = if fx.has("input/y") {
        Some(fx.get_f32("input/y")?.expand_dims(0)?)
    } else {
        None
    };
    let t_shape = fx.get("input/t")?.shape().to_vec();
    let t_vals = fx.get_vec_f32("input/t")?;
    let t = if t_shape.len() == 2 {
        Timesteps::PerToken(t_vals)
    } else {
        Timesteps::PerSample(t_vals)
    };
    let context = [fx.get_f32("input/context")?];

    let mut trace = Trace::new();
    let out = model.forward(
        &DitInput {
            x: &x,
            t: &t,
            context: &context,
            y: y.as_ref(),
        },
        Some(&mut trace),
    )?;

    let mut checks = Vec::new();
    for name in fx.with_prefix("inter/") {
        let key = &name["inter/".len()..];
        let Some(got) = trace.get(key) else { continue }; // inputs recorded as inter (msk, image_latent)
        if key == "grid_sizes" {
            let want = fx.get_vec_i64(&name)?;
            let got: Vec<i64> = got.as_slice::<i64>().to_vec();
            checks.push(crate::fixture::compare_exact(
                &name,
                &got,
                &want,
                vec![want.len() as i32],
            ));
            continue;
        }
        let want = fx.get(&name)?;
        // e / e0 may be recorded per token; the model computes them per distinct t.
        let got = mlx_rs::ops::broadcast_to(got, want.shape())?;
        checks.push(compare(&name, &got, &want, TOL_DIT)?);
    }
    checks.push(compare(
        "output/out",
        &out,
        &fx.get("output/out")?,
        TOL_DIT,
    )?);
    // The inference path: context K/V once, the zero padding folded into one weighted key,
    // the fast kernels — against the same official output.
    let kv = model.context_kv_folded(&context)?;
    let fast = model.forward_kv(&x, y.as_ref(), &t, &kv, Kernels::Fast)?;
    checks.push(compare(
        "output/out (folded padding, fast kernels)",
        &fast,
        &fx.get("output/out")?,
        TOL_DIT,
    )?);
    // The same over token chunks (the memory plan's lean step): three uneven chunks.
    let chunked = model
        .forward_blocks(&x, y.as_ref(), &t, &kv, Kernels::Fast, Blocks::Run, 3)?
        .0;
    checks.push(compare(
        "output/out (3 token chunks, folded, fast kernels)",
        &chunked,
        &fx.get("output/out")?,
        TOL_DIT,
    )?);
    Ok(checks)
}
