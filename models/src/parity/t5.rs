//! Parity cases for the text side: `t5_encoder` (umT5 encoder on a padded batch) and
//! `tokenizer` (cleaning + ids + masks of the official wrapper, and the trimmed contexts
//! of the tiny checkpoint encoder).
use std::collections::BTreeMap;
use std::path::PathBuf;

use mlx_rs::{Array, Dtype};

use crate::checkpoint::TensorSource;
use crate::checkpoint::pth::PthFile;
use crate::error::{Error, Result};
use crate::fixture::{Check, Fixture, compare, compare_exact};
use crate::t5::context::{mask_lengths, trim_rows};
use crate::t5::{T5Config, T5Encoder, T5Tokenizer, TextEncoder};

/// Fixture README: T5 outputs ≤ 1e-4 (normalized max error); ids, masks, buckets exact.
const TOL_T5: f64 = 1e-4;

/// `config.resulting_T5Encoder_args` (+ `max_dist`, `eps` when recorded).
fn encoder_config(fx: &Fixture) -> Result<T5Config> {
    let mut cfg: T5Config = serde_json::from_value(fx.cfg("resulting_T5Encoder_args")?.clone())
        .map_err(|e| Error::format(&fx.path, format!("config.resulting_T5Encoder_args: {e}")))?;
    if let Ok(v) = fx.cfg_i64("max_dist") {
        cfg.max_dist = v as i32;
    }
    if let Ok(v) = fx.cfg_f64("eps") {
        cfg.eps = v as f32;
    }
    cfg.validate()?;
    Ok(cfg)
}

fn exact(name: &str, got: &Array, want: &Array) -> Result<Check> {
    let g: Vec<i64> = got.as_dtype(Dtype::Int64)?.as_slice::<i64>().to_vec();
    let w: Vec<i64> = want.as_dtype(Dtype::Int64)?.as_slice::<i64>().to_vec();
    Ok(compare_exact(name, &g, &w, want.shape().to_vec()))
}

pub fn t5_encoder(fx: &Fixture) -> Result<Vec<Check>> {
    let cfg = encoder_config(fx)?;
    let enc = T5Encoder::load(cfg, &fx.params()?, Dtype::Float32)?;
    let ids = fx.get("input/ids")?;
    let mask = fx.get("input/mask")?;
    let mut trace = BTreeMap::new();
    let hidden = enc.forward(&ids, &mask, Some(&mut trace))?;

    let mut checks = Vec::new();
    for name in fx.with_prefix("inter/") {
        let key = &name["inter/".len()..];
        let got = trace.get(key).ok_or_else(|| {
            Error::format(&fx.path, format!("no intermediate `{key}` in our encoder"))
        })?;
        let want = fx.get(&name)?;
        checks.push(if key == "rel_buckets" {
            exact(&name, got, &want)?
        } else {
            compare(&name, got, &want, TOL_T5)?
        });
    }
    checks.push(compare(
        "output/hidden",
        &hidden,
        &fx.get("output/hidden")?,
        TOL_T5,
    )?);
    let contexts = trim_rows(&hidden, &mask_lengths(&mask)?)?;
    for (i, ctx) in contexts.iter().enumerate() {
        let name = format!("output/context_{i}");
        if fx.has(&name) {
            checks.push(compare(&name, ctx, &fx.get(&name)?, TOL_T5)?);
        }
    }
    Ok(checks)
}

/// `config.tokenizer_dir` ("<rel path> (note)") resolved against the fixture folder.
fn tokenizer_dir(fx: &Fixture) -> Result<PathBuf> {
    let rel = fx
        .cfg("tokenizer_dir")
        .ok()
        .and_then(|v| v.as_str())
        .map(|s| s.split(" (").next().unwrap_or(s).trim().to_string())
        .unwrap_or_else(|| "checkpoints/ti2v_tiny/google/umt5-xxl".into());
    Ok(fx.dir().join(rel))
}

/// Encoder config from `config.t5_dims` (umT5 defaults for what it does not record).
fn dims_config(fx: &Fixture) -> Result<T5Config> {
    let dims = fx.cfg("t5_dims")?;
    let get = |k: &str| -> Result<i32> {
        dims.get(k)
            .and_then(|v| v.as_i64())
            .map(|v| v as i32)
            .ok_or_else(|| Error::format(&fx.path, format!("config.t5_dims has no `{k}`")))
    };
    let cfg = T5Config {
        vocab: get("vocab")?,
        dim: get("dim")?,
        dim_attn: get("dim_attn")?,
        dim_ffn: get("dim_ffn")?,
        num_heads: get("num_heads")?,
        num_layers: get("num_layers")?,
        num_buckets: get("num_buckets")?,
        ..T5Config::umt5_xxl()
    };
    cfg.validate()?;
    Ok(cfg)
}

/// The tiny encoder the fixture used: `config.t5_checkpoint`, the official bf16 `.pth`
/// (read by `checkpoint::pth`). When that folder is absent, `param/*` of the sibling
/// `t5_encoder.safetensors` rounded to bf16 (the same tensors) stand in.
fn tiny_encoder_weights(fx: &Fixture) -> Result<(T5Config, Box<dyn TensorSource>)> {
    let cfg = dims_config(fx)?;
    if let Some(rel) = fx.cfg("t5_checkpoint").ok().and_then(|v| v.as_str()) {
        let path = fx.dir().join(rel);
        if path.exists() {
            return Ok((cfg, Box::new(PthFile::open(&path)?)));
        }
    }
    let path = fx.dir().join("t5_encoder.safetensors");
    if !path.exists() {
        return Err(Error::Missing(path));
    }
    let params: BTreeMap<String, Array> = Fixture::open(&path)?
        .params()?
        .into_iter()
        .map(|(k, a)| Ok((k, a.as_dtype(Dtype::Bfloat16)?)))
        .collect::<Result<_>>()?;
    Ok((cfg, Box::new(params)))
}

pub fn tokenizer(fx: &Fixture) -> Result<Vec<Check>> {
    let text_len = fx.get("output/ids")?.shape()[1] as usize;
    let tok = T5Tokenizer::from_file(&tokenizer_dir(fx)?.join("tokenizer.json"), text_len)?;
    let prompts = fx
        .cfg("prompts")?
        .as_array()
        .ok_or_else(|| Error::format(&fx.path, "config.prompts is not a list"))?;
    let texts: Vec<&str> = prompts
        .iter()
        .map(|p| p.get("text").and_then(|t| t.as_str()).unwrap_or_default())
        .collect();
    let n = texts.len() as i32;

    let batch = tok.encode_batch(&texts)?;
    let mut checks = vec![
        exact("output/ids", &batch.ids, &fx.get("output/ids")?)?,
        exact("output/mask", &batch.mask, &fx.get("output/mask")?)?,
    ];
    let lengths: Vec<i64> = batch.rows.iter().map(|r| r.length as i64).collect();
    checks.push(compare_exact(
        "output/lengths",
        &lengths,
        &fx.get_vec_i64("output/lengths")?,
        vec![n],
    ));
    // Cleaning and truncation flags per prompt (metadata `cleaned`, `truncated`).
    let flag = |p: &serde_json::Value, k: &str| p.get(k).and_then(|v| v.as_bool()).unwrap_or(false);
    let cleaned_ok: Vec<i64> = batch
        .rows
        .iter()
        .zip(prompts)
        .map(|(r, p)| {
            (Some(r.cleaned.as_str()) == p.get("cleaned").and_then(|c| c.as_str())) as i64
        })
        .collect();
    checks.push(compare_exact(
        "config.prompts[].cleaned",
        &cleaned_ok,
        &vec![1; n as usize],
        vec![n],
    ));
    let trunc: Vec<i64> = batch.rows.iter().map(|r| r.truncated as i64).collect();
    let want_trunc: Vec<i64> = prompts
        .iter()
        .map(|p| flag(p, "truncated") as i64)
        .collect();
    checks.push(compare_exact(
        "config.prompts[].truncated",
        &trunc,
        &want_trunc,
        vec![n],
    ));

    if fx.with_prefix("output/t5_context_").is_empty() {
        return Ok(checks);
    }
    let (cfg, params) = tiny_encoder_weights(fx)?;
    let te = TextEncoder::load(tok, cfg, params.as_ref(), Dtype::Float32)?;
    let contexts = te.encode(&texts)?.contexts;
    for (i, ctx) in contexts.iter().enumerate() {
        let name = format!("output/t5_context_{i}");
        if fx.has(&name) {
            checks.push(compare(&name, ctx, &fx.get(&name)?, TOL_T5)?);
        }
    }
    Ok(checks)
}
