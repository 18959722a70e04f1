//! Parity case `train_dit`: flow-matching training of the tiny DiT with PyTorch AdamW,
//! step by step from the recorded batches (`input/step{i}/…`).
//!
//! Initial weights: the file's own `param/*` when present, else the `param/*` of the file
//! named by `config.init_params_from`, resolved beside the fixture. Step count, batch size,
//! latent shape, contexts and optimizer settings all come from the file.
use std::collections::BTreeMap;

use mlx_rs::Array;
use mlx_rs::module::ModuleParameters;

use crate::checkpoint::to_pytorch_layout;
use crate::dit::{DitInput, WanModel, keys};
use crate::error::{Error, Result};
use crate::fixture::{Check, Fixture, compare};
use crate::train::objective::FlowBatch;
use crate::train::trainer::{Trainer, loss_and_grads};
use crate::train::{AdamWConfig, LrSchedule};

const TOL_SCALAR: f64 = 1e-4; // loss, grad_norm: relative, per step
const TOL_PRED: f64 = 1e-4;
const TOL_GRAD: f64 = 5e-4;
const TOL_DELTA_REL_L2: f64 = 1e-2;
const TOL_PARAM_ABS: f64 = 2e-3;

fn initial_params(fx: &Fixture) -> Result<BTreeMap<String, Array>> {
    let own = fx.params()?;
    if !own.is_empty() {
        return Ok(own);
    }
    let name = fx
        .cfg("init_params_from")?
        .as_str()
        .ok_or_else(|| Error::format(&fx.path, "config `init_params_from` is not a file name"))?;
    let path = fx.dir().join(name);
    if !path.exists() {
        return Err(Error::Missing(path));
    }
    Fixture::open(&path)?.params()
}

/// The recorded batch of step `i`: x0, noise, t and `context0..` until one is missing.
fn batch(fx: &Fixture, i: usize) -> Result<FlowBatch> {
    let p = format!("input/step{i}/");
    let x0 = fx.get_f32(&format!("{p}x0"))?;
    let mut context = Vec::new();
    while fx.has(&format!("{p}context{}", context.len())) {
        context.push(fx.get_f32(&format!("{p}context{}", context.len()))?);
    }
    Ok(FlowBatch {
        x0,
        noise: fx.get_f32(&format!("{p}noise"))?,
        sigma: fx.get_vec_f32(&format!("{p}t"))?,
        context,
    })
}

/// Official key → parameter in PyTorch layout.
fn official_params(model: &WanModel) -> Result<BTreeMap<String, Array>> {
    let mut out = BTreeMap::new();
    for (k, a) in model.parameters().flatten() {
        let key = keys::to_official(&k);
        out.insert(key.clone(), to_pytorch_layout(&key, a.clone(), a.shape())?);
    }
    Ok(out)
}

/// max over steps of |got − want| / |want|.
fn per_step_rel(name: &str, got: &[f32], want: &[f32], tol: f64) -> Check {
    let err = if got.len() != want.len() {
        f64::INFINITY
    } else {
        got.iter()
            .zip(want)
            .map(|(&g, &w)| (g as f64 - w as f64).abs() / (w as f64).abs().max(1e-30))
            .fold(0.0, f64::max)
    };
    Check {
        name: name.into(),
        shape: vec![want.len() as i32],
        err,
        tol,
        absolute: false,
        note: "max per-step relative error".into(),
    }
}

pub fn train_dit(fx: &Fixture) -> Result<Vec<Check>> {
    let cfg = super::dit::config_from_fixture(fx)?;
    let init = initial_params(fx)?;
    let mut model = WanModel::load(cfg, &init)?;

    let steps = (0..)
        .take_while(|i| fx.has(&format!("input/step{i}/x0")))
        .count();
    if steps == 0 {
        return Err(Error::format(&fx.path, "no `input/step0/x0`"));
    }
    let o = fx.cfg("optimizer")?;
    let num = |k: &str| {
        o.get(k)
            .and_then(|v| v.as_f64())
            .ok_or_else(|| Error::format(&fx.path, format!("config optimizer.{k} missing")))
    };
    let betas = o
        .get("betas")
        .and_then(|b| b.as_array())
        .and_then(|b| Some((b.first()?.as_f64()?, b.get(1)?.as_f64()?)))
        .ok_or_else(|| Error::format(&fx.path, "config optimizer.betas missing"))?;
    let adamw = AdamWConfig {
        betas,
        eps: num("eps")?,
        weight_decay: num("weight_decay")?,
        max_grad_norm: None,
    };
    let mut trainer = Trainer::new(adamw, LrSchedule::constant(num("lr")?));
    let mut checks = Vec::new();

    // Step 0 intermediates: x_t, the prediction and the full gradients.
    let b0 = batch(fx, 0)?;
    if fx.has("inter/step0/x_t") {
        checks.push(compare(
            "inter/step0/x_t",
            &b0.x_t()?,
            &fx.get("inter/step0/x_t")?,
            TOL_PRED,
        )?);
    }
    let t0 = b0.timesteps(&model.config)?;
    let pred = model.forward(
        &DitInput {
            x: &b0.x_t()?,
            t: &t0,
            context: &b0.context,
            y: None,
        },
        None,
    )?;
    checks.push(compare(
        "inter/step0/pred",
        &pred,
        &fx.get("inter/step0/pred")?,
        TOL_PRED,
    )?);
    let (_, grads) = loss_and_grads(&mut model, &b0)?;
    for name in fx.with_prefix("inter/step0/grad/") {
        let key = &name["inter/step0/grad/".len()..];
        let want = fx.get(&name)?;
        let g = grads
            .get(keys::to_internal(key).as_str())
            .ok_or_else(|| Error::format(&fx.path, format!("no parameter `{key}`")))?;
        let g = to_pytorch_layout(key, g.clone(), want.shape())?;
        checks.push(compare(&name, &g, &want, TOL_GRAD)?);
    }

    let (mut losses, mut norms) = (Vec::new(), Vec::new());
    for i in 0..steps {
        let s = trainer.step(&mut model, &[batch(fx, i)?])?;
        losses.push(s.loss);
        norms.push(s.grad_norm);
    }
    checks.push(per_step_rel(
        "output/loss",
        &losses,
        &fx.get_vec_f32("output/loss")?,
        TOL_SCALAR,
    ));
    checks.push(per_step_rel(
        "output/grad_norm",
        &norms,
        &fx.get_vec_f32("output/grad_norm")?,
        TOL_SCALAR,
    ));

    // Final parameters: the update Δ = p_final − p_init (rel L2 over all parameters), and
    // the worst absolute parameter error (see the fixture README on why it is loose).
    let fin = official_params(&model)?;
    let (mut diff2, mut ref2, mut max_abs, mut n) = (0f64, 0f64, 0f64, 0usize);
    for name in fx.with_prefix("output/param/") {
        let key = &name["output/param/".len()..];
        let want = fx.get_f32(&name)?;
        let (Some(got), Some(p0)) = (fin.get(key), init.get(key)) else {
            return Err(Error::format(
                &fx.path,
                format!("unknown parameter `{key}`"),
            ));
        };
        if got.shape() != want.shape() {
            return Err(Error::format(&fx.path, format!("`{key}`: shape mismatch")));
        }
        let da = got.subtract(p0)?;
        let db = want.subtract(p0)?;
        diff2 += da.subtract(&db)?.square()?.sum(None)?.item_cast::<f32>() as f64;
        ref2 += db.square()?.sum(None)?.item_cast::<f32>() as f64;
        let m = got.subtract(&want)?.abs()?.max(None)?.item_cast::<f32>() as f64;
        max_abs = max_abs.max(m);
        n += 1;
    }
    if n != fin.len() {
        return Err(Error::format(
            &fx.path,
            format!("{n} final parameters recorded, the model has {}", fin.len()),
        ));
    }
    checks.push(Check {
        name: "output/param (update Δ)".into(),
        shape: vec![n as i32],
        err: (diff2 / ref2.max(1e-300)).sqrt(),
        tol: TOL_DELTA_REL_L2,
        absolute: false,
        note: "rel L2 ‖Δ − Δref‖/‖Δref‖".into(),
    });
    checks.push(Check {
        name: "output/param (max abs)".into(),
        shape: vec![n as i32],
        err: max_abs,
        tol: TOL_PARAM_ABS,
        absolute: true,
        note: String::new(),
    });
    Ok(checks)
}
