//! The training step, MLX style: `nn::value_and_grad` over the model's trainable
//! parameters gives loss and gradients, [`AdamW::update`] builds the new parameters
//! lazily, and ONE `eval` per optimizer step materialises loss, gradient norm, parameters
//! and optimizer state together (the PyTorch loop's zero_grad/backward/step).
//!
//! Gradient accumulation: a step takes several micro-batches; their gradients are summed
//! (evaluated after each micro-batch so memory stays one micro-batch deep) and averaged.
//! Logging: one JSON object per step (`step`, `loss`, `grad_norm`, `lr`, `samples_per_s`,
//! `tokens_per_s`, `seconds`) to any writer.
use std::io::Write;
use std::time::Instant;

use mlx_rs::Array;
use mlx_rs::error::Exception;
use mlx_rs::module::ModuleParameters;

use crate::dit::{DitInput, Timesteps, WanConfig, WanModel};
use crate::error::{Error, Result};
use crate::train::adamw::{AdamW, AdamWConfig, LrSchedule, Params};
use crate::train::objective::{FlowBatch, mse};

/// A model the flow-matching trainer can drive (the full DiT, or the DiT + LoRA adapters).
pub trait FlowModel: ModuleParameters {
    fn dit_config(&self) -> &WanConfig;
    /// Velocity prediction `[B, C, F, H, W]` float32 for `x_t` at timesteps `t`.
    fn predict(&mut self, x_t: &Array, t: &Timesteps, context: &[Array]) -> Result<Array>;
    /// Loss and gradients with gradient checkpointing: only each block's input is kept
    /// through the forward pass and each block's forward is recomputed during the backward
    /// one (`train::grad_checkpoint`). Models without it refuse.
    fn checkpointed_loss_and_grads(&mut self, _batch: &FlowBatch) -> Result<(Array, Params)> {
        Err(Error::Unsupported(
            "gradient checkpointing is implemented for LoRA training only".into(),
        ))
    }
}

impl FlowModel for WanModel {
    fn dit_config(&self) -> &WanConfig {
        &self.config
    }
    fn predict(&mut self, x_t: &Array, t: &Timesteps, context: &[Array]) -> Result<Array> {
        self.forward(
            &DitInput {
                x: x_t,
                t,
                context,
                y: None,
            },
            None,
        )
    }
}

pub(crate) fn exception(e: Error) -> Exception {
    match e {
        Error::Mlx(x) => x,
        other => Exception::custom(other.to_string()),
    }
}

/// Loss `[]` and gradients (trainable parameters only, lazy) of one batch.
pub fn loss_and_grads<M: FlowModel>(model: &mut M, batch: &FlowBatch) -> Result<(Array, Params)> {
    batch.validate()?;
    let t = batch.timesteps(model.dit_config())?;
    let context = batch.context.clone();
    let x_t = batch.x_t()?;
    let target = batch.target()?;
    let f = move |m: &mut M, (x, y): (&Array, &Array)| -> std::result::Result<Array, Exception> {
        let pred = m.predict(x, &t, &context).map_err(exception)?;
        mse(&pred, y).map_err(exception)
    };
    let mut vg = mlx_rs::nn::value_and_grad(f);
    let (loss, grads) = vg(model, (&x_t, &target))?;
    if grads.is_empty() {
        return Err(Error::Input("the model has no trainable parameters".into()));
    }
    Ok((loss, grads))
}

/// Validation loss of one batch (no gradients).
pub fn eval_loss<M: FlowModel>(model: &mut M, batch: &FlowBatch) -> Result<f32> {
    batch.validate()?;
    let t = batch.timesteps(model.dit_config())?;
    let pred = model.predict(&batch.x_t()?, &t, &batch.context)?;
    Ok(mse(&pred, &batch.target()?)?.item_cast::<f32>())
}

/// What one optimizer step did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepStats {
    /// 1-based index of the optimizer step just taken.
    pub step: u64,
    /// Mean loss over the micro-batches, before the update.
    pub loss: f32,
    /// Global gradient norm before clipping.
    pub grad_norm: f32,
    pub lr: f64,
    pub samples: usize,
    pub seconds: f64,
    pub samples_per_s: f64,
    pub tokens_per_s: f64,
}

pub struct Trainer {
    pub opt: AdamW,
    pub schedule: LrSchedule,
    /// Trade compute for memory: recompute each block in the backward pass
    /// ([`FlowModel::checkpointed_loss_and_grads`]).
    pub grad_checkpoint: bool,
    log: Option<Box<dyn Write>>,
}

impl Trainer {
    pub fn new(adamw: AdamWConfig, schedule: LrSchedule) -> Self {
        Self {
            opt: AdamW::new(adamw),
            schedule,
            grad_checkpoint: false,
            log: None,
        }
    }

    /// Write one JSON line per step to `w` (a file, stdout, ...).
    pub fn with_log(mut self, w: Box<dyn Write>) -> Self {
        self.log = Some(w);
        self
    }

    /// One optimizer step over `micro` (≥ 1 micro-batches; gradients averaged).
    pub fn step<M: FlowModel>(&mut self, model: &mut M, micro: &[FlowBatch]) -> Result<StepStats> {
        if micro.is_empty() {
            return Err(Error::Input(
                "a training step needs at least one batch".into(),
            ));
        }
        let start = Instant::now();
        let n = micro.len() as f32;
        let ckpt = self.grad_checkpoint;
        let grads_of = |m: &mut M, b: &FlowBatch| {
            if ckpt {
                m.checkpointed_loss_and_grads(b)
            } else {
                loss_and_grads(m, b)
            }
        };
        let (mut loss_sum, mut grad_sum) = grads_of(model, &micro[0])?;
        for b in &micro[1..] {
            // Materialise the running sums so the graph (and memory) stays one micro-batch deep.
            mlx_rs::transforms::eval(grad_sum.values().chain([&loss_sum]))?;
            let (l, g) = grads_of(model, b)?;
            loss_sum = loss_sum.add(&l)?;
            for (k, acc) in grad_sum.iter_mut() {
                let gk = g
                    .get(k)
                    .ok_or_else(|| Error::Input(format!("no gradient for `{k}`")))?;
                *acc = acc.add(gk)?;
            }
        }
        let (loss, grads) = if micro.len() > 1 {
            let inv = Array::from_f32(1.0 / n);
            let g = grad_sum
                .into_iter()
                .map(|(k, a)| Ok((k, a.multiply(&inv)?)))
                .collect::<Result<Params>>()?;
            (loss_sum.multiply(&inv)?, g)
        } else {
            (loss_sum, grad_sum)
        };

        let lr = self.schedule.at(self.opt.step);
        let params: Params = model
            .trainable_parameters()
            .flatten()
            .into_iter()
            .map(|(k, v)| (k, v.clone()))
            .collect();
        let (new_params, norm) = self.opt.update(&params, &grads, lr)?;
        // The one eval of the step: loss, norm, parameters and optimizer state.
        mlx_rs::transforms::eval(
            new_params
                .values()
                .chain(self.opt.state_arrays())
                .chain([&loss, &norm]),
        )?;
        model.update_flattened(new_params);

        let seconds = start.elapsed().as_secs_f64();
        let samples: usize = micro.iter().map(FlowBatch::batch_size).sum();
        let tokens: usize = micro
            .iter()
            .map(|b| tokens_of(model.dit_config(), b.x0.shape()) * b.batch_size())
            .sum();
        let stats = StepStats {
            step: self.opt.step,
            loss: loss.item_cast::<f32>(),
            grad_norm: norm.item_cast::<f32>(),
            lr,
            samples,
            seconds,
            samples_per_s: samples as f64 / seconds.max(1e-9),
            tokens_per_s: tokens as f64 / seconds.max(1e-9),
        };
        if !stats.loss.is_finite() {
            return Err(Error::Input(format!(
                "training diverged at step {} (loss {})",
                stats.step, stats.loss
            )));
        }
        self.log_json(&serde_json::to_value(&stats).unwrap_or_default())?;
        Ok(stats)
    }

    /// Append one JSON line to the log (no-op without a log).
    pub fn log_json(&mut self, v: &serde_json::Value) -> Result<()> {
        if let Some(w) = self.log.as_mut() {
            writeln!(w, "{v}")
                .and_then(|_| w.flush())
                .map_err(|e| Error::io("<train log>", e))?;
        }
        Ok(())
    }
}

/// Tokens per sample of a latent `[B, C, F, H, W]` for this patch size.
pub fn tokens_of(cfg: &WanConfig, shape: &[i32]) -> usize {
    let [pt, ph, pw] = cfg.patch_size;
    ((shape[2] / pt) * (shape[3] / ph) * (shape[4] / pw)) as usize
}
