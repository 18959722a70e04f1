//! `RMS_norm` of the VAE (official `wan/modules/vae2_{1,2}.py:RMS_norm`):
//! `F.normalize(x, dim=channel) · √C · γ` (bias never used).
//!
//! Channels-last `[..., C]`, γ `[C]` (PyTorch `[C,1,1(,1)]` reshaped at load).
//! `x / max(‖x‖, 1e-12) · √C` equals `x · rsqrt(mean(x²))`, so this is
//! `fast::rms_norm` with γ as weight; the tiny eps only matters for all-zero vectors,
//! where F.normalize returns 0 and so does this (0 · finite).
use mlx_rs::Array;
use mlx_rs::fast::rms_norm;
use mlx_rs::macros::ModuleParameters;
use mlx_rs::module::Param;

use crate::error::Result;
use crate::nn::zeros_param;

/// (1e-12)² / C is below f32's normal range for C ≥ 1; 1e-30 keeps zero vectors finite
/// while leaving every realistic activation untouched.
const EPS: f32 = 1e-30;

#[derive(Debug, Clone, ModuleParameters)]
pub struct RmsNorm {
    /// `[C]`.
    #[param]
    pub gamma: Param<Array>,
}

impl RmsNorm {
    pub fn new(dim: i32) -> Result<Self> {
        Ok(Self {
            gamma: zeros_param(&[dim])?,
        })
    }

    /// `x`: `[..., C]` (channels last).
    pub fn forward(&self, x: &Array) -> Result<Array> {
        Ok(rms_norm(x, Some(&*self.gamma), EPS)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_normalize_times_sqrt_c() {
        let mut n = RmsNorm::new(4).unwrap();
        *n.gamma = Array::from_slice(&[1.0f32, 2.0, 0.5, -1.0], &[4]);
        let x = Array::from_slice(&[3.0f32, 4.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], &[2, 4]);
        let y = n.forward(&x).unwrap();
        let v: Vec<f32> = crate::vae::host_f32(&y).unwrap();
        // row 0: x/‖x‖ = (0.6, 0.8, 0, 0) · √4 · γ; row 1 (all zero) stays 0.
        let want = [1.2f32, 3.2, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        for (a, b) in v.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{v:?}");
        }
    }
}
