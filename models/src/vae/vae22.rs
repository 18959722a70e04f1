//! Wan2.2 VAE (official `wan/modules/vae2_2.py:WanVAE_`, `Encoder3d`, `Decoder3d`,
//! `Down_ResidualBlock`, `Up_ResidualBlock`, `patchify`, `unpatchify`): z_dim 48,
//! 4×16×16 compression = a 2×2 pixel patchify around a 4×8×8 network.
//!
//! Layout `[B, F, H, W, C]` float32. Each stage `downsamples.i` / `upsamples.i` holds its
//! own `downsamples.j` / `upsamples.j` sequence plus a parameter-free shortcut
//! (AvgDown3D / DupUp3D) added to the stage output.
//! Patchify channel order is `(c, r, q)` with r = column offset, q = row offset
//! (official `b c f (h q) (w r) -> b (c r q) f h w`).
use mlx_rs::Array;
use mlx_rs::macros::ModuleParameters;

use crate::error::Result;
use crate::vae::causal_conv::CausalConv3d;
use crate::vae::resample::{Mode, Resample};
use crate::vae::resblock::{Head, Layer, Middle, ResidualBlock};
use crate::vae::shortcut::{AvgDown3D, DupUp3D};
use crate::vae::{CoderCache, VaeConfig, VaeModel};

/// Pixel patch of the 2.2 VAE.
pub const PATCH: i32 = 2;

/// `[B, F, H, W, C] → [B, F, H/p, W/p, C·p·p]`, channel `(c·p + r)·p + q`.
pub fn patchify(x: &Array, p: i32) -> Result<Array> {
    let s = x.shape().to_vec();
    let (b, f, h, w, c) = (s[0], s[1], s[2], s[3], s[4]);
    let x = x.reshape(&[b, f, h / p, p, w / p, p, c])?; // [.., h, q, w, r, c]
    let x = x.transpose_axes(&[0, 1, 2, 4, 6, 5, 3])?; // [.., h, w, c, r, q]
    Ok(x.reshape(&[b, f, h / p, w / p, c * p * p])?)
}

/// Inverse of [`patchify`].
pub fn unpatchify(x: &Array, p: i32) -> Result<Array> {
    let s = x.shape().to_vec();
    let (b, f, h, w, cpp) = (s[0], s[1], s[2], s[3], s[4]);
    let c = cpp / (p * p);
    let x = x.reshape(&[b, f, h, w, c, p, p])?; // [.., h, w, c, r, q]
    let x = x.transpose_axes(&[0, 1, 2, 6, 3, 5, 4])?; // [.., h, q, w, r, c]
    Ok(x.reshape(&[b, f, h * p, w * p, c])?)
}

#[derive(Debug, Clone, ModuleParameters)]
pub struct DownResidualBlock {
    #[param]
    pub downsamples: Vec<Layer>,
    pub avg_shortcut: AvgDown3D,
}

#[derive(Debug, Clone, ModuleParameters)]
pub struct UpResidualBlock {
    #[param]
    pub upsamples: Vec<Layer>,
    pub avg_shortcut: Option<DupUp3D>,
}

#[derive(Debug, Clone, ModuleParameters)]
pub struct Encoder3d {
    #[param]
    pub conv1: CausalConv3d,
    #[param]
    pub downsamples: Vec<DownResidualBlock>,
    #[param]
    pub middle: Middle,
    #[param]
    pub head: Head,
}

#[derive(Debug, Clone, ModuleParameters)]
pub struct Decoder3d {
    #[param]
    pub conv1: CausalConv3d,
    #[param]
    pub middle: Middle,
    #[param]
    pub upsamples: Vec<UpResidualBlock>,
    #[param]
    pub head: Head,
}

#[derive(Debug, Clone, ModuleParameters)]
pub struct WanVae22 {
    #[param]
    pub encoder: Encoder3d,
    #[param]
    pub conv1: CausalConv3d,
    #[param]
    pub conv2: CausalConv3d,
    #[param]
    pub decoder: Decoder3d,
}

impl Encoder3d {
    pub fn new(cfg: &VaeConfig) -> Result<Self> {
        let dims: Vec<i32> = std::iter::once(1)
            .chain(cfg.dim_mult.iter().copied())
            .map(|u| cfg.dim * u)
            .collect();
        let n = cfg.dim_mult.len();
        let mut stages = Vec::new();
        for i in 0..n {
            let (stage_in, out_dim) = (dims[i], dims[i + 1]);
            let t_down = cfg.temperal_downsample.get(i).copied().unwrap_or(false);
            let down = i != n - 1;
            let mut layers = Vec::new();
            let mut in_dim = stage_in;
            for _ in 0..cfg.num_res_blocks {
                layers.push(Layer::Res(ResidualBlock::new(in_dim, out_dim)?));
                in_dim = out_dim;
            }
            if down {
                let mode = if t_down {
                    Mode::Downsample3d
                } else {
                    Mode::Downsample2d
                };
                layers.push(Layer::Resample(Resample::new(out_dim, out_dim, mode)?));
            }
            stages.push(DownResidualBlock {
                downsamples: layers,
                avg_shortcut: AvgDown3D::new(
                    stage_in,
                    out_dim,
                    if t_down { 2 } else { 1 },
                    if down { 2 } else { 1 },
                )?,
            });
        }
        let top = dims[n];
        Ok(Self {
            conv1: CausalConv3d::cube(3 * PATCH * PATCH, dims[0], 3, 1)?,
            downsamples: stages,
            middle: Middle::new(top)?,
            head: Head::new(top, 2 * cfg.z_dim)?,
        })
    }

    pub fn forward(&self, x: &Array, cache: &mut CoderCache) -> Result<Array> {
        let mut x = self.conv1.forward_cached(x, &mut cache.conv1)?;
        for (i, stage) in self.downsamples.iter().enumerate() {
            let mut y = x.clone();
            for (j, layer) in stage.downsamples.iter().enumerate() {
                y = layer.forward(&y, cache.layer(i, j))?;
            }
            x = y.add(&stage.avg_shortcut.forward(&x)?)?;
        }
        let x = self.middle.forward(&x, &mut cache.middle)?;
        self.head.forward(&x, &mut cache.head)
    }
}

impl Decoder3d {
    pub fn new(cfg: &VaeConfig) -> Result<Self> {
        let m = &cfg.dim_mult;
        let n = m.len();
        let dims: Vec<i32> = std::iter::once(m[n - 1])
            .chain(m.iter().rev().copied())
            .map(|u| cfg.dec_dim * u)
            .collect();
        let temperal_upsample: Vec<bool> = cfg.temperal_downsample.iter().rev().copied().collect();
        let mut stages = Vec::new();
        for i in 0..n {
            let (stage_in, out_dim) = (dims[i], dims[i + 1]);
            let t_up = temperal_upsample.get(i).copied().unwrap_or(false);
            let up = i != n - 1;
            let mut layers = Vec::new();
            let mut in_dim = stage_in;
            for _ in 0..cfg.num_res_blocks + 1 {
                layers.push(Layer::Res(ResidualBlock::new(in_dim, out_dim)?));
                in_dim = out_dim;
            }
            if up {
                let mode = if t_up {
                    Mode::Upsample3d
                } else {
                    Mode::Upsample2d
                };
                layers.push(Layer::Resample(Resample::new(out_dim, out_dim, mode)?));
            }
            let avg_shortcut = if up {
                Some(DupUp3D::new(
                    stage_in,
                    out_dim,
                    if t_up { 2 } else { 1 },
                    2,
                )?)
            } else {
                None
            };
            stages.push(UpResidualBlock {
                upsamples: layers,
                avg_shortcut,
            });
        }
        Ok(Self {
            conv1: CausalConv3d::cube(cfg.z_dim, dims[0], 3, 1)?,
            middle: Middle::new(dims[0])?,
            upsamples: stages,
            head: Head::new(dims[n], 3 * PATCH * PATCH)?,
        })
    }

    pub fn forward(&self, x: &Array, cache: &mut CoderCache, first_chunk: bool) -> Result<Array> {
        let x = self.conv1.forward_cached(x, &mut cache.conv1)?;
        let mut x = self.middle.forward(&x, &mut cache.middle)?;
        for (i, stage) in self.upsamples.iter().enumerate() {
            let mut y = x.clone();
            for (j, layer) in stage.upsamples.iter().enumerate() {
                y = layer.forward(&y, cache.layer(i, j))?;
            }
            x = match &stage.avg_shortcut {
                Some(s) => y.add(&s.forward(&x, first_chunk)?)?,
                None => y,
            };
        }
        self.head.forward(&x, &mut cache.head)
    }
}

impl WanVae22 {
    pub fn new(cfg: &VaeConfig) -> Result<Self> {
        Ok(Self {
            encoder: Encoder3d::new(cfg)?,
            conv1: CausalConv3d::cube(2 * cfg.z_dim, 2 * cfg.z_dim, 1, 0)?,
            conv2: CausalConv3d::cube(cfg.z_dim, cfg.z_dim, 1, 0)?,
            decoder: Decoder3d::new(cfg)?,
        })
    }
}

impl VaeModel for WanVae22 {
    fn encode_chunk(&self, x: &Array, cache: &mut CoderCache) -> Result<Array> {
        self.encoder.forward(x, cache)
    }
    fn decode_chunk(&self, z: &Array, cache: &mut CoderCache, first: bool) -> Result<Array> {
        self.decoder.forward(z, cache, first)
    }
    fn conv1(&self) -> &CausalConv3d {
        &self.conv1
    }
    fn conv2(&self) -> &CausalConv3d {
        &self.conv2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Official order: channel (c·2 + r)·2 + q takes pixel (2h + q, 2w + r).
    #[test]
    fn patchify_channel_order_is_c_r_q() {
        // x[h, w, c] = 100·h + 10·w + c, H = W = 2, C = 2
        let mut v = Vec::new();
        for h in 0..2 {
            for w in 0..2 {
                for c in 0..2 {
                    v.push((100 * h + 10 * w + c) as f32);
                }
            }
        }
        let x = Array::from_slice(&v, &[1, 1, 2, 2, 2]);
        let p = patchify(&x, 2).unwrap();
        let got: Vec<f32> = crate::vae::host_f32(&p).unwrap();
        let mut want = Vec::new();
        for c in 0..2 {
            for r in 0..2 {
                for q in 0..2 {
                    want.push((100 * q + 10 * r + c) as f32);
                }
            }
        }
        assert_eq!(got, want);
        let back = unpatchify(&p, 2).unwrap();
        assert_eq!(crate::vae::host_f32(&back).unwrap(), v);
    }
}
