//! The denoiser(s) of a task: one `WanModel` (ti2v-5B) or the A14B pair of experts
//! (`high_noise_model` while `t ≥ boundary·1000`, `low_noise_model` below; spec §5.5).
//! With `one_at_a_time` only the active expert is resident: the high-noise one is dropped
//! at the switch and the low-noise one loaded then (the official `offload_model`).
use crate::dit::WanModel;
use crate::error::{Error, Result};

/// A model held in memory or loaded on first use.
pub struct ExpertSlot {
    model: Option<Box<WanModel>>,
    loader: Option<Box<dyn FnMut() -> Result<WanModel>>>,
}

impl ExpertSlot {
    pub fn loaded(model: WanModel) -> Self {
        Self {
            model: Some(Box::new(model)),
            loader: None,
        }
    }

    pub fn lazy(loader: impl FnMut() -> Result<WanModel> + 'static) -> Self {
        Self {
            model: None,
            loader: Some(Box::new(loader)),
        }
    }

    fn get(&mut self) -> Result<&WanModel> {
        if self.model.is_none() {
            let load = self
                .loader
                .as_mut()
                .ok_or_else(|| Error::Config("expert released and no loader".into()))?;
            self.model = Some(Box::new(load()?));
        }
        Ok(self.model.as_deref().expect("loaded above"))
    }

    /// Drop the weights if they can be loaded again.
    fn release(&mut self) {
        if self.loader.is_some() {
            self.model = None;
        }
    }
}

pub enum Experts {
    Single(Box<WanModel>),
    Pair {
        low: ExpertSlot,
        high: ExpertSlot,
        /// `boundary · 1000` (875 for t2v, 900 for i2v).
        boundary_t: f64,
        one_at_a_time: bool,
    },
}

impl Experts {
    /// The shortest `text_len` of the resident model(s) (contexts beyond it are cut);
    /// `None` when no expert is loaded yet.
    pub fn text_len(&self) -> Option<i32> {
        match self {
            Experts::Single(m) => Some(m.config.text_len),
            Experts::Pair { low, high, .. } => [low, high]
                .iter()
                .filter_map(|s| s.model.as_ref().map(|m| m.config.text_len))
                .min(),
        }
    }

    /// Whether timestep `t` belongs to the high-noise expert (false for single models).
    pub fn is_high(&self, t: i64) -> bool {
        match self {
            Experts::Single(_) => false,
            Experts::Pair { boundary_t, .. } => t as f64 >= *boundary_t,
        }
    }

    /// The model for integer timestep `t` and whether it is the high-noise expert.
    pub fn for_timestep(&mut self, t: i64) -> Result<(bool, &WanModel)> {
        match self {
            Experts::Single(m) => Ok((false, m)),
            Experts::Pair {
                low,
                high,
                boundary_t,
                one_at_a_time,
            } => {
                if t as f64 >= *boundary_t {
                    if *one_at_a_time {
                        low.release();
                    }
                    Ok((true, high.get()?))
                } else {
                    if *one_at_a_time {
                        high.release();
                    }
                    Ok((false, low.get()?))
                }
            }
        }
    }
}
