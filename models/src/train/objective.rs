//! Flow-matching objective (no upstream training code; spec §10, fixture `train_dit`):
//! `x_t = (1 − σ)·x0 + σ·ε`, target `ε − x0`, loss = MSE over all elements, DiT timestep
//! `T = 1000·σ` given per token (`[B, L]`, as the official per-token path and the fixture).
//!
//! σ sampling: uniform, shifted-uniform (`σ ← S·u / (1 + (S − 1)·u)`, DiffSynth/musubi) and
//! logit-normal then shift. Randomness comes from [`Rng`], a SplitMix64 whose whole state
//! is one `u64`, so a training checkpoint can store it and a resume replays exactly.
use mlx_rs::{Array, Dtype};

use crate::dit::{Timesteps, WanConfig};
use crate::error::{Error, Result};

/// SplitMix64: tiny, fast, statistically fine for σ draws and seeds; state = one `u64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rng {
    pub state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1) with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Standard normal (Box–Muller; one draw per call keeps the state arithmetic simple).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(f64::MIN_POSITIVE);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
    /// Integer in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.uniform() * n as f64) as usize % n.max(1)
    }
    /// An MLX PRNG key drawn from this stream (for noise tensors).
    pub fn mlx_key(&mut self) -> Result<Array> {
        Ok(mlx_rs::random::key(self.next_u64())?)
    }
}

/// The flow shift `σ ← S·σ / (1 + (S − 1)·σ)` (same map as the inference schedules).
pub fn shift_sigma(sigma: f64, shift: f64) -> f64 {
    shift * sigma / (1.0 + (shift - 1.0) * sigma)
}

/// How training σ ∈ [0, 1] is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SigmaSampling {
    Uniform,
    /// Uniform then shifted (DiffSynth "Wan" template uses shift 5).
    Shifted {
        shift: f64,
    },
    /// `σ = sigmoid(mean + std·N(0,1))`, then shifted (musubi `shift` sampling).
    LogitNormal {
        mean: f64,
        std: f64,
        shift: f64,
    },
}

impl SigmaSampling {
    /// Parse `uniform`, `shift:S`, `logit_normal:MEAN:STD:SHIFT`.
    pub fn parse(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.split(':').collect();
        let num = |i: usize| -> Result<f64> {
            parts
                .get(i)
                .and_then(|p| p.parse::<f64>().ok())
                .ok_or_else(|| Error::Input(format!("sigma sampling `{s}`: bad number {i}")))
        };
        let out = match parts[0] {
            "uniform" => Self::Uniform,
            "shift" => Self::Shifted { shift: num(1)? },
            "logit_normal" => Self::LogitNormal {
                mean: num(1)?,
                std: num(2)?,
                shift: num(3)?,
            },
            _ => {
                return Err(Error::Input(format!(
                    "sigma sampling `{s}`: expected uniform | shift:S | logit_normal:MEAN:STD:SHIFT"
                )));
            }
        };
        out.validate()?;
        Ok(out)
    }

    pub fn validate(&self) -> Result<()> {
        let ok = match *self {
            Self::Uniform => true,
            Self::Shifted { shift } => shift > 0.0,
            Self::LogitNormal { std, shift, .. } => std >= 0.0 && shift > 0.0,
        };
        if ok {
            Ok(())
        } else {
            Err(Error::Input(format!("invalid sigma sampling {self:?}")))
        }
    }

    pub fn sample(&self, rng: &mut Rng) -> f32 {
        let s = match *self {
            Self::Uniform => rng.uniform(),
            Self::Shifted { shift } => shift_sigma(rng.uniform(), shift),
            Self::LogitNormal { mean, std, shift } => {
                let z = mean + std * rng.normal();
                shift_sigma(1.0 / (1.0 + (-z).exp()), shift)
            }
        };
        s as f32
    }
}

/// One (micro-)batch: clean latents, noise, σ per sample and each sample's text context.
#[derive(Debug, Clone)]
pub struct FlowBatch {
    /// `[B, C, F, H, W]` float32.
    pub x0: Array,
    /// `[B, C, F, H, W]` float32, N(0, I).
    pub noise: Array,
    /// `[B]` σ ∈ [0, 1].
    pub sigma: Vec<f32>,
    /// `B` contexts `[L_i, text_dim]` (unpadded).
    pub context: Vec<Array>,
}

impl FlowBatch {
    pub fn batch_size(&self) -> usize {
        self.sigma.len()
    }

    /// Shapes agree (B, latent shape); a wrong batch is an input error, not a panic.
    pub fn validate(&self) -> Result<()> {
        let (s, n) = (self.x0.shape(), self.noise.shape());
        if s.len() != 5 || s != n {
            return Err(Error::Input(format!(
                "batch: x0 {s:?} and noise {n:?} must both be [B, C, F, H, W]"
            )));
        }
        let b = s[0] as usize;
        if self.sigma.len() != b || self.context.len() != b {
            return Err(Error::Input(format!(
                "batch of {b}: got {} sigma(s) and {} context(s)",
                self.sigma.len(),
                self.context.len()
            )));
        }
        if self.sigma.iter().any(|s| !(0.0..=1.0).contains(s)) {
            return Err(Error::Input("batch: sigma outside [0, 1]".into()));
        }
        Ok(())
    }

    /// `σ` as `[B, 1, 1, 1, 1]` for broadcasting over a latent.
    fn sigma_array(&self) -> Array {
        Array::from_slice(&self.sigma, &[self.sigma.len() as i32, 1, 1, 1, 1])
    }

    /// `x_t = (1 − σ)·x0 + σ·ε` `[B, C, F, H, W]`.
    pub fn x_t(&self) -> Result<Array> {
        let s = self.sigma_array();
        let one_minus = Array::from_f32(1.0).subtract(&s)?;
        Ok(one_minus
            .multiply(&self.x0)?
            .add(s.multiply(&self.noise)?)?)
    }

    /// Velocity target `ε − x0`.
    pub fn target(&self) -> Result<Array> {
        Ok(self.noise.subtract(&self.x0)?)
    }

    /// DiT timesteps `1000·σ` per token (`[B, L]` row-major), `L` from the patch grid.
    pub fn timesteps(&self, cfg: &WanConfig) -> Result<Timesteps> {
        let s = self.x0.shape();
        let [pt, ph, pw] = cfg.patch_size;
        let l = ((s[2] / pt) * (s[3] / ph) * (s[4] / pw)) as usize;
        let mut t = Vec::with_capacity(self.sigma.len() * l);
        for &sg in &self.sigma {
            // float32 product, exactly as `t * 1000` in the float32 reference.
            t.extend(std::iter::repeat_n(sg * 1000.0, l));
        }
        Ok(Timesteps::PerToken(t))
    }
}

/// `mean((pred − target)²)` over all elements, float32 scalar.
pub fn mse(pred: &Array, target: &Array) -> Result<Array> {
    let d = pred.as_dtype(Dtype::Float32)?.subtract(target)?;
    Ok(d.square()?.mean(None)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_deterministic_and_uniform_in_range() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let xs: Vec<f64> = (0..1000).map(|_| a.uniform()).collect();
        let ys: Vec<f64> = (0..1000).map(|_| b.uniform()).collect();
        assert_eq!(xs, ys);
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = xs.iter().sum::<f64>() / 1000.0;
        assert!((mean - 0.5).abs() < 0.05, "{mean}");
    }

    #[test]
    fn shift_maps_ends_and_pushes_mass_up() {
        assert_eq!(shift_sigma(0.0, 5.0), 0.0);
        assert!((shift_sigma(1.0, 5.0) - 1.0).abs() < 1e-12);
        assert!((shift_sigma(0.5, 5.0) - 5.0 / 6.0).abs() < 1e-12);
        let mut r = Rng::new(1);
        let s = SigmaSampling::parse("shift:5").unwrap();
        let mean = (0..2000).map(|_| s.sample(&mut r) as f64).sum::<f64>() / 2000.0;
        assert!(mean > 0.7, "shift 5 mean σ {mean}");
        assert!(SigmaSampling::parse("nope").is_err());
        assert!(SigmaSampling::parse("shift:-1").is_err());
    }

    #[test]
    fn x_t_and_target_follow_the_flow_definition() {
        let x0 = Array::from_slice(&[1.0f32, 2.0], &[2, 1, 1, 1, 1]);
        let noise = Array::from_slice(&[-1.0f32, 4.0], &[2, 1, 1, 1, 1]);
        let b = FlowBatch {
            x0,
            noise,
            sigma: vec![0.25, 1.0],
            context: vec![],
        };
        let xt: Vec<f32> = b.x_t().unwrap().as_slice().to_vec();
        assert_eq!(xt, vec![0.75 - 0.25, 4.0]);
        let tg: Vec<f32> = b.target().unwrap().as_slice().to_vec();
        assert_eq!(tg, vec![-2.0, 2.0]);
        assert!(b.validate().is_err(), "contexts missing");
    }
}
