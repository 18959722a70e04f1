//! AdamW with PyTorch's exact semantics (`torch.optim.AdamW`, amsgrad off), over a
//! flattened parameter map, plus global-norm clipping and the LR schedule.
//!
//! Why our own and not `mlx_rs::optimizers::AdamW`: mlx's AdamW applies no bias correction
//! (its docs say so), which changes every early step; PyTorch's update per parameter is
//!   p ← p·(1 − lr·wd)                       (decoupled decay, every parameter)
//!   m ← β1·m + (1 − β1)·g;  v ← β2·v + (1 − β2)·g²
//!   p ← p − (lr / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + ε)
//! evaluated in that order (ε after the bias correction). Step scalars are computed in f64
//! on the host and enter the graph as float32 constants. State (`m`, `v` float32, `step`)
//! round-trips through [`AdamW::state_tensors`] / [`AdamW::load_state`]. Parameters stored
//! in a low-precision dtype (bf16 compute) get a float32 master copy here.
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use mlx_rs::{Array, Dtype};

use crate::error::{Error, Result};

pub type Params = HashMap<Rc<str>, Array>;

/// Learning-rate schedule: linear warmup to `lr`, then constant or cosine to `min_lr`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrSchedule {
    pub lr: f64,
    pub warmup_steps: u64,
    /// `Some(total)`: cosine decay from the end of warmup to `min_lr` at step `total`.
    pub cosine_total: Option<u64>,
    pub min_lr: f64,
}

impl LrSchedule {
    pub fn constant(lr: f64) -> Self {
        Self {
            lr,
            warmup_steps: 0,
            cosine_total: None,
            min_lr: 0.0,
        }
    }

    /// LR used by optimizer step `step` (0-based).
    pub fn at(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        match self.cosine_total {
            Some(total) if total > self.warmup_steps => {
                let p = ((step - self.warmup_steps) as f64 / (total - self.warmup_steps) as f64)
                    .min(1.0);
                self.min_lr
                    + 0.5 * (self.lr - self.min_lr) * (1.0 + (std::f64::consts::PI * p).cos())
            }
            _ => self.lr,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    pub betas: (f64, f64),
    pub eps: f64,
    pub weight_decay: f64,
    /// Global-norm clipping (`torch.nn.utils.clip_grad_norm_`); `None` = off.
    pub max_grad_norm: Option<f64>,
}

impl Default for AdamWConfig {
    /// PyTorch defaults.
    fn default() -> Self {
        Self {
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.01,
            max_grad_norm: None,
        }
    }
}

pub struct AdamW {
    pub config: AdamWConfig,
    /// Optimizer steps taken so far (PyTorch `state['step']`).
    pub step: u64,
    m: Params,
    v: Params,
    /// float32 master weights of parameters held in another dtype.
    master: Params,
}

/// `sqrt(Σ g²)` over every gradient (float32 scalar, lazy).
pub fn global_norm(grads: &Params) -> Result<Array> {
    let mut keys: Vec<&Rc<str>> = grads.keys().collect();
    keys.sort(); // fixed summation order
    let mut total = Array::from_f32(0.0);
    for k in keys {
        let g = grads[k].as_dtype(Dtype::Float32)?;
        total = total.add(g.square()?.sum(None)?)?;
    }
    Ok(total.sqrt()?)
}

impl AdamW {
    pub fn new(config: AdamWConfig) -> Self {
        Self {
            config,
            step: 0,
            m: Params::new(),
            v: Params::new(),
            master: Params::new(),
        }
    }

    /// One update of `params` (same keys as `grads`) with learning rate `lr`. Returns the
    /// new parameters (lazy, in each parameter's dtype) and the pre-clip global gradient
    /// norm (lazy scalar). Call `eval` on the results and [`Self::state_arrays`] once.
    pub fn update(&mut self, params: &Params, grads: &Params, lr: f64) -> Result<(Params, Array)> {
        let c = self.config;
        let norm = global_norm(grads)?;
        // torch: clip_coef = max_norm / (total_norm + 1e-6), clamped to 1.
        let clip = match c.max_grad_norm {
            Some(max) => Some(mlx_rs::ops::minimum(
                Array::from_f32(max as f32).divide(norm.add(Array::from_f32(1e-6))?)?,
                Array::from_f32(1.0),
            )?),
            None => None,
        };
        self.step += 1;
        let t = self.step as i32;
        let (b1, b2) = c.betas;
        let bc1 = 1.0 - b1.powi(t);
        let bc2_sqrt = (1.0 - b2.powi(t)).sqrt();
        let step_size = Array::from_f32((lr / bc1) as f32);
        let decay = Array::from_f32((1.0 - lr * c.weight_decay) as f32);
        let (b1a, b2a) = (Array::from_f32(b1 as f32), Array::from_f32(b2 as f32));
        let (ob1, ob2) = (
            Array::from_f32((1.0 - b1) as f32),
            Array::from_f32((1.0 - b2) as f32),
        );
        let bc2a = Array::from_f32(bc2_sqrt as f32);
        let eps = Array::from_f32(c.eps as f32);

        let mut out = Params::with_capacity(grads.len());
        for (k, g) in grads {
            let p = params
                .get(k)
                .ok_or_else(|| Error::Input(format!("gradient for unknown parameter `{k}`")))?;
            let mut g = g.as_dtype(Dtype::Float32)?;
            if let Some(cl) = &clip {
                g = g.multiply(cl)?;
            }
            let p32 = match self.master.get(k) {
                Some(m) => m.clone(),
                None => p.as_dtype(Dtype::Float32)?,
            };
            let zeros = || mlx_rs::ops::zeros_like(&g);
            let m = match self.m.get(k) {
                Some(m) => m.clone(),
                None => zeros()?,
            };
            let v = match self.v.get(k) {
                Some(v) => v.clone(),
                None => zeros()?,
            };
            let p32 = p32.multiply(&decay)?;
            let m = b1a.multiply(&m)?.add(ob1.multiply(&g)?)?;
            let v = b2a.multiply(&v)?.add(ob2.multiply(g.square()?)?)?;
            let denom = v.sqrt()?.divide(&bc2a)?.add(&eps)?;
            let p32 = p32.subtract(step_size.multiply(m.divide(&denom)?)?)?;
            self.m.insert(k.clone(), m);
            self.v.insert(k.clone(), v);
            if p.dtype() != Dtype::Float32 {
                out.insert(k.clone(), p32.as_dtype(p.dtype())?);
                self.master.insert(k.clone(), p32);
            } else {
                out.insert(k.clone(), p32);
            }
        }
        Ok((out, norm))
    }

    /// Every state array (for the once-per-step `eval`).
    pub fn state_arrays(&self) -> Vec<&Array> {
        self.m
            .values()
            .chain(self.v.values())
            .chain(self.master.values())
            .collect()
    }

    /// State as named tensors: `m/<key>`, `v/<key>`, `master/<key>`.
    pub fn state_tensors(&self) -> BTreeMap<String, Array> {
        let mut out = BTreeMap::new();
        for (prefix, map) in [("m/", &self.m), ("v/", &self.v), ("master/", &self.master)] {
            for (k, a) in map {
                out.insert(format!("{prefix}{k}"), a.clone());
            }
        }
        out
    }

    /// Restore state written by [`Self::state_tensors`] (names without any outer prefix).
    pub fn load_state(&mut self, step: u64, tensors: BTreeMap<String, Array>) -> Result<()> {
        let (mut m, mut v, mut master) = (Params::new(), Params::new(), Params::new());
        for (name, a) in tensors {
            let (map, key) = if let Some(k) = name.strip_prefix("m/") {
                (&mut m, k)
            } else if let Some(k) = name.strip_prefix("v/") {
                (&mut v, k)
            } else if let Some(k) = name.strip_prefix("master/") {
                (&mut master, k)
            } else {
                return Err(Error::Input(format!(
                    "optimizer state: unexpected `{name}`"
                )));
            };
            map.insert(Rc::from(key), a);
        }
        if m.len() != v.len() || m.keys().any(|k| !v.contains_key(k)) {
            return Err(Error::Input(
                "optimizer state: `m` and `v` cover different parameters".into(),
            ));
        }
        (self.step, self.m, self.v, self.master) = (step, m, v, master);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two steps by hand (the PyTorch formulas above, in f64) on a single scalar.
    #[test]
    fn matches_pytorch_adamw_by_hand() {
        let (lr, wd, b1, b2, eps) = (0.1f64, 0.5f64, 0.9f64, 0.999f64, 1e-8f64);
        let mut opt = AdamW::new(AdamWConfig {
            betas: (b1, b2),
            eps,
            weight_decay: wd,
            max_grad_norm: None,
        });
        let key: Rc<str> = Rc::from("w");
        let mut params = Params::from([(key.clone(), Array::from_f32(1.0))]);
        let (mut p, mut m, mut v) = (1.0f64, 0.0f64, 0.0f64);
        for (t, g) in [(1, 0.5f64), (2, -2.0f64)] {
            let grads = Params::from([(key.clone(), Array::from_f32(g as f32))]);
            let (np, _) = opt.update(&params, &grads, lr).unwrap();
            params = np;
            p *= 1.0 - lr * wd;
            m = b1 * m + (1.0 - b1) * g;
            v = b2 * v + (1.0 - b2) * g * g;
            let denom = v.sqrt() / (1.0 - b2.powi(t)).sqrt() + eps;
            p -= lr / (1.0 - b1.powi(t)) * m / denom;
            let got = params[&key].item_cast::<f32>() as f64;
            assert!((got - p).abs() < 1e-6, "step {t}: {got} vs {p}");
        }
    }

    #[test]
    fn clipping_scales_to_max_norm_and_reports_preclip_norm() {
        let mut opt = AdamW::new(AdamWConfig {
            max_grad_norm: Some(1.0),
            weight_decay: 0.0,
            ..Default::default()
        });
        let key: Rc<str> = Rc::from("w");
        let params = Params::from([(key.clone(), Array::from_slice(&[0.0f32, 0.0], &[2]))]);
        let grads = Params::from([(key.clone(), Array::from_slice(&[3.0f32, 4.0], &[2]))]);
        let (_, norm) = opt.update(&params, &grads, 1e-3).unwrap();
        assert!((norm.item_cast::<f32>() - 5.0).abs() < 1e-6);
        // m after one step = (1 − β1)·g·clip = 0.1·(3, 4)/5.
        let m = &opt.state_tensors()["m/w"];
        let m: Vec<f32> = m.as_slice().to_vec();
        assert!(
            (m[0] - 0.06).abs() < 1e-6 && (m[1] - 0.08).abs() < 1e-6,
            "{m:?}"
        );
    }

    #[test]
    fn schedule_warms_up_then_decays() {
        let s = LrSchedule {
            lr: 1.0,
            warmup_steps: 4,
            cosine_total: Some(14),
            min_lr: 0.0,
        };
        assert_eq!(s.at(0), 0.25);
        assert_eq!(s.at(3), 1.0);
        assert_eq!(s.at(4), 1.0);
        assert!((s.at(9) - 0.5).abs() < 1e-12);
        assert!(s.at(14).abs() < 1e-12 && s.at(100).abs() < 1e-12);
        assert_eq!(LrSchedule::constant(0.1).at(1000), 0.1);
    }
}
