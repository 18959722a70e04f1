//! Benchmark helpers behind the `bench` binary: a DiT of any official architecture with
//! random weights (or loaded ones), timed per sampling step the way the pipeline runs it
//! (cond + uncond batched, embedded context reused), plus MLX's memory counters.
use std::time::Instant;

use mlx_rs::module::ModuleParameters;
use mlx_rs::{Array, Dtype};
use serde::Serialize;

use crate::checkpoint::{Layout, TensorSource};
use crate::dit::{DitLoad, Timesteps, WanConfig, WanModel};
use crate::error::{Error, Result};

/// Replace every parameter with N(0, 0.02²) (timing only: no meaningful output).
pub fn randomize(model: &mut WanModel, seed: u64) -> Result<()> {
    let mut key = mlx_rs::random::key(seed)?;
    for (_, p) in model.parameters_mut().flatten() {
        let (k, next) = mlx_rs::random::split(&key, 2)?;
        key = next;
        let r = mlx_rs::random::normal::<f32>(p.shape(), None, Some(0.02), &k)?;
        *p = r.as_dtype(p.dtype())?;
        mlx_rs::transforms::eval([&*p])?;
    }
    Ok(())
}

/// A full-size architecture cut to `layers` blocks (None = all), random weights.
pub fn random_dit(cfg: WanConfig, layers: Option<i32>, dtype: Dtype) -> Result<WanModel> {
    random_dit_with(cfg, layers, &DitLoad::dense(dtype))
}

/// [`random_dit`] loaded through the real loader (`WanModel::load_with`): every tensor is
/// generated in f32, then cast or quantized and evaluated before the next, so a
/// full-size model is built without ever holding an f32 (or bf16) copy of it.
pub fn random_dit_with(
    mut cfg: WanConfig,
    layers: Option<i32>,
    opts: &DitLoad,
) -> Result<WanModel> {
    if let Some(l) = layers {
        cfg.num_layers = l;
    }
    let src = RandomSource::for_model(&WanModel::new(cfg.clone())?, 0);
    WanModel::load_with(cfg, &src, opts)
}

/// Random float32 tensors (uniform, std 0.02 like [`randomize`]; uniform is several
/// times cheaper than normal to draw on CPU) with a model's official keys and MLX-layout
/// shapes, each generated on request from `seed` and its name (nothing held).
pub struct RandomSource {
    shapes: std::collections::BTreeMap<String, Vec<i32>>,
    seed: u64,
}

impl RandomSource {
    pub fn for_model(model: &WanModel, seed: u64) -> Self {
        Self {
            shapes: model.expected_params().into_iter().collect(),
            seed,
        }
    }
}

impl TensorSource for RandomSource {
    fn tensor_names(&self) -> Vec<String> {
        self.shapes.keys().cloned().collect()
    }
    fn tensor_shape(&self, name: &str) -> Option<Vec<i32>> {
        self.shapes.get(name).cloned()
    }
    fn load_tensor(&self, name: &str) -> Result<Array> {
        let shape = self
            .shapes
            .get(name)
            .ok_or_else(|| Error::Weights(vec![format!("missing `{name}`")]))?;
        let key = mlx_rs::random::key(self.seed ^ crate::hash::fnv1a64(name.as_bytes()))?;
        let a = 0.02 * 3f32.sqrt();
        Ok(mlx_rs::random::uniform::<_, f32>(-a, a, shape, &key)?)
    }
    fn layout(&self) -> Layout {
        Layout::Mlx
    }
    fn tensor_dtype(&self, name: &str) -> Option<crate::checkpoint::safetensors::StDtype> {
        self.shapes
            .contains_key(name)
            .then_some(crate::checkpoint::safetensors::StDtype::F32)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StepTiming {
    /// Seconds per step (cond + uncond), every timed run.
    pub runs_s: Vec<f64>,
    pub median_s: f64,
    pub warmup_s: Vec<f64>,
    pub tokens: i64,
    /// Batch per DiT call (2 = CFG batched).
    pub batch: i32,
}

pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => 0.5 * (s[n / 2 - 1] + s[n / 2]),
    }
}

/// Time `warmup + runs` DiT steps on a random latent `[C, F', h, w]` with a `text_tokens`
/// context (batched CFG when `cfg`).
pub fn time_dit_steps(
    model: &WanModel,
    latent: [i32; 4],
    text_tokens: i32,
    cfg: bool,
    warmup: usize,
    runs: usize,
) -> Result<StepTiming> {
    let c = &model.config;
    let b = if cfg { 2 } else { 1 };
    let key = mlx_rs::random::key(1)?;
    let x = mlx_rs::random::normal::<f32>(
        &[b, latent[0], latent[1], latent[2], latent[3]],
        None,
        None,
        &key,
    )?;
    let y = match c.model_type {
        crate::dit::ModelType::I2v => Some(mlx_rs::ops::zeros::<f32>(&[
            b,
            c.in_dim - latent[0],
            latent[1],
            latent[2],
            latent[3],
        ])?),
        _ => None,
    };
    let ctx = mlx_rs::random::normal::<f32>(
        &[text_tokens.min(c.text_len), c.text_dim],
        None,
        None,
        &key,
    )?;
    let ctxs: Vec<Array> = (0..b).map(|_| ctx.clone()).collect();
    let [pt, ph, pw] = c.patch_size;
    let tokens = (latent[1] / pt) * (latent[2] / ph) * (latent[3] / pw);
    let t = match c.model_type {
        crate::dit::ModelType::Ti2v => Timesteps::PerToken(vec![500.0; (b * tokens) as usize]),
        _ => Timesteps::PerSample(vec![500.0; b as usize]),
    };
    let emb = model.embed_context(&ctxs)?;
    mlx_rs::transforms::eval([&emb])?;
    let step = || -> Result<f64> {
        let t0 = Instant::now();
        let out = model.forward_embedded(&x, y.as_ref(), &t, &emb, None)?;
        mlx_rs::transforms::eval([&out])?;
        Ok(t0.elapsed().as_secs_f64())
    };
    let warmup_s = (0..warmup).map(|_| step()).collect::<Result<Vec<_>>>()?;
    let runs_s = (0..runs).map(|_| step()).collect::<Result<Vec<_>>>()?;
    Ok(StepTiming {
        median_s: median(&runs_s),
        runs_s,
        warmup_s,
        tokens: tokens as i64,
        batch: b,
    })
}

/// MLX allocator counters in bytes: (peak, active).
pub fn memory() -> (usize, usize) {
    (
        mlx_rs::memory::peak_memory().unwrap_or(0),
        mlx_rs::memory::active_memory().unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}
