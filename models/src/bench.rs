//! Benchmark helpers behind the `bench` binary: a DiT of any official architecture with
//! random weights (or loaded ones), timed per sampling step the way the pipeline runs it
//! (cond + uncond batched, embedded context reused), plus MLX's memory counters.
use std::time::Instant;

use mlx_rs::module::ModuleParameters;
use mlx_rs::{Array, Dtype};
use serde::Serialize;

use crate::checkpoint::{Layout, TensorSource};
use crate::dit::{DitLoad, Kernels, Timesteps, WanConfig, WanModel};
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

/// What a timed step recomputes (to measure each saving on its own).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct StepMode {
    /// Context K/V once per run (the pipelines) or in every step (the official forward).
    pub kv_cached: bool,
    /// With `kv_cached`: the zero padding folded into one weighted key
    /// ([`WanModel::context_kv_folded`], the pipelines) or all `text_len` rows kept.
    pub fold_padding: bool,
    pub kernels: Kernels,
    /// Token chunks per block (1: the whole sequence; see `WanModel::forward_blocks`).
    pub token_chunks: u32,
}

/// Time `warmup + runs` DiT steps on a random latent `[C, F', h, w]` with a `text_tokens`
/// context (batched CFG when `cfg`).
pub fn time_dit_steps(
    model: &WanModel,
    latent: [i32; 4],
    text_tokens: i32,
    cfg: bool,
    mode: StepMode,
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
    let kv = if mode.fold_padding {
        model.context_kv_folded(&ctxs)?
    } else {
        model.context_kv(&emb)?
    };
    kv.eval()?;
    let step = || -> Result<f64> {
        let t0 = Instant::now();
        let fresh;
        let kv = if mode.kv_cached {
            &kv
        } else {
            fresh = model.context_kv(&emb)?;
            &fresh
        };
        let run = crate::dit::Blocks::Run;
        let (out, _) =
            model.forward_blocks(&x, y.as_ref(), &t, kv, mode.kernels, run, mode.token_chunks)?;
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

/// Matmul FLOPs (2·m·n·k per product, attention included) of one denoising step of `batch`
/// samples with `tokens` latent tokens and a `text_tokens`-token prompt, for the official
/// forward and for ours.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StepFlops {
    /// Official `WanModel.forward` per call: text embedding, per-token time embedding and
    /// projection, cross-attention K/V in every block, every step, over all `text_len`
    /// context rows (the prompt zero-padded).
    pub official: f64,
    /// Ours per step: the same blocks without the context K/V, the time embedding once per
    /// distinct timestep (`distinct_t`), no text embedding, cross-attention over the prompt's
    /// rows plus one folded padding key (`cross_keys`).
    pub ours_per_step: f64,
    /// Ours once per run and expert: text embedding + every block's context K/V (of the
    /// `cross_keys` rows).
    pub ours_once_per_run: f64,
    /// Keys each cross-attention attends over in ours: `min(text_tokens + 1, text_len)`.
    pub cross_keys: i64,
    /// `ours_per_step / official`.
    pub ratio: f64,
    /// `(ours_per_step + ours_once_per_run / steps) / official` for a `steps`-step run.
    pub ratio_amortized: f64,
    pub steps: usize,
}

/// FLOP model of one step (see [`StepFlops`]); `distinct_t` is 1 for t2v and A14B, 2 for
/// ti2v image→video (t = 0 on the image frame).
pub fn step_flops(
    c: &WanConfig,
    tokens: i64,
    text_tokens: i64,
    batch: i64,
    distinct_t: i64,
    steps: usize,
) -> StepFlops {
    let (b, l) = (batch as f64, tokens as f64);
    let (d, f, lc) = (c.dim as f64, c.ffn_dim as f64, c.text_len as f64);
    let keys = (text_tokens.max(0) + 1).min(c.text_len as i64);
    let lk = keys as f64;
    let (td, fq) = (c.text_dim as f64, c.freq_dim as f64);
    let pv = c.patch_volume() as f64;
    let mm = |m: f64, n: f64, k: f64| 2.0 * m * n * k;
    let patch = mm(b * l, d, pv * c.in_dim as f64);
    let head = mm(b * l, pv * c.out_dim as f64, d);
    let time_rows = |rows: f64| mm(rows, d, fq) + mm(rows, d, d) + mm(rows, 6.0 * d, d);
    let text = |rows: f64| mm(b * rows, d, td) + mm(b * rows, d, d);
    let block_step = |keys: f64| {
        4.0 * mm(b * l, d, d) // self q, k, v, o
            + 2.0 * mm(b * l, l, d) // self QKᵀ, PV
            + 2.0 * mm(b * l, d, d) // cross q, o
            + 2.0 * mm(b * l, keys, d) // cross QKᵀ, PV
            + mm(b * l, f, d) + mm(b * l, d, f) // FFN
    };
    let cross_kv = |rows: f64| 2.0 * mm(b * rows, d, d);
    let n = c.num_layers as f64;
    let official = patch + head + text(lc) + time_rows(b * l) + n * (block_step(lc) + cross_kv(lc));
    let ours_per_step = patch + head + time_rows(distinct_t as f64) + n * block_step(lk);
    let ours_once_per_run = text(lk) + n * cross_kv(lk);
    StepFlops {
        official,
        ours_per_step,
        ours_once_per_run,
        cross_keys: keys,
        ratio: ours_per_step / official,
        ratio_amortized: (ours_per_step + ours_once_per_run / steps.max(1) as f64) / official,
        steps,
    }
}

/// What a table-driven step cache (MagCache) does over a whole run of `steps` UniPC steps of
/// `task` with CFG (no model needed: the decisions follow the calibration alone). Returns the
/// record (computed / reused per step and branch); EasyCache decides on the latents at run
/// time, so it has no plan (`None`).
pub fn step_cache_plan(
    task: crate::config::Task,
    image: bool,
    setting: crate::pipeline::StepCache,
    steps: usize,
    shift: f64,
) -> Result<Option<Vec<crate::pipeline::StepRecord>>> {
    use crate::config::Task;
    use crate::pipeline::step_cache::{MagTable, Schedule, StepCacheState, Use};
    if matches!(setting, crate::pipeline::StepCache::EasyCache { .. }) {
        return Ok(None);
    }
    let cfg = task.config();
    let solver = crate::solvers::Solver::new(crate::pipeline::SolverKind::Unipc, steps, shift)?;
    let ts = solver.timesteps().to_vec();
    let boundary = cfg.boundary.map(|b| b * 1000.0);
    let high = |t: i64| boundary.is_some_and(|b| t as f64 >= b);
    let table = match (task, image) {
        (Task::Ti2v5B, false) => MagTable::Ti2vT2v,
        (Task::Ti2v5B, true) => MagTable::Ti2vI2v,
        (Task::T2vA14B, _) => MagTable::T2vA14B,
        (Task::I2vA14B, _) => MagTable::I2vA14B,
    };
    let schedule = Schedule {
        steps: ts.len(),
        high_steps: boundary.map(|_| ts.iter().filter(|&&t| high(t)).count()),
        table,
    };
    let mut state = StepCacheState::new(setting, schedule);
    let x = Array::from_f32(0.0);
    for (i, &t) in ts.iter().enumerate() {
        let uses = state.decide(i, t, high(t), 2, &x)?;
        for (b, u) in uses.iter().enumerate() {
            if *u == Use::Computed {
                state.store_residual(b, x.clone());
            }
        }
    }
    Ok(Some(state.record))
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
    fn flops_count_every_product_once() {
        // dim 4, ffn 8, text_len 3, text_dim 5, freq 2, 1 layer, patch 1×1×1, C 1 → 1
        let mut c = WanConfig::ti2v_5b();
        (
            c.dim,
            c.ffn_dim,
            c.text_len,
            c.text_dim,
            c.freq_dim,
            c.num_layers,
        ) = (4, 8, 3, 5, 2, 1);
        (c.patch_size, c.in_dim, c.out_dim, c.num_heads) = ([1, 1, 1], 1, 1, 1);
        let f = step_flops(&c, 2, 3, 1, 1, 10);
        // by hand (2·m·n·k): patch 16, head 16, text 2·3·4·5 + 2·3·4·4 = 216,
        // time per token 2·2·(4·2 + 4·4 + 24·4) = 480, per distinct t 240,
        // block: self 4·2·2·4·4 = 256, QKᵀ+PV 2·2·2·2·4 = 64, cross q/o 128,
        // cross scores 2·2·2·3·4 = 96, FFN 2·(2·2·8·4) = 256 → 800; cross K/V 2·2·3·4·4 = 192
        assert_eq!(f.official, 16.0 + 16.0 + 216.0 + 480.0 + 800.0 + 192.0);
        assert_eq!(f.ours_per_step, 16.0 + 16.0 + 240.0 + 800.0);
        assert_eq!(f.ours_once_per_run, 216.0 + 192.0);
        assert_eq!(f.cross_keys, 3);
        assert_eq!(f.ratio_amortized, (1072.0 + 40.8) / 1720.0);
        // a 1-token prompt: 2 keys (the token + the folded padding); official unchanged.
        // cross scores 2·2·2·2·4 = 64, text 2·2·4·5 + 2·2·4·4 = 144, K/V 2·2·2·4·4 = 128
        let g = step_flops(&c, 2, 1, 1, 1, 10);
        assert_eq!(g.official, f.official);
        assert_eq!(g.cross_keys, 2);
        assert_eq!(g.ours_per_step, 16.0 + 16.0 + 240.0 + 768.0);
        assert_eq!(g.ours_once_per_run, 144.0 + 128.0);
    }

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}
