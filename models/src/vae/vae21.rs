//! Wan2.1 VAE (official `wan/modules/vae2_1.py:WanVAE_`, `Encoder3d`, `Decoder3d`):
//! z_dim 16, 4×8×8 compression, no pixel patchify.
//!
//! Layout `[B, F, H, W, C]` float32. `downsamples` / `upsamples` are flat sequences of
//! residual blocks and resamples (official indices kept). The decoder's 2-D upsampling
//! convs halve the channels, so every stage after the first starts at `dims[i]/2`.
use mlx_rs::Array;
use mlx_rs::macros::ModuleParameters;

use crate::error::Result;
use crate::vae::causal_conv::CausalConv3d;
use crate::vae::resample::{Mode, Resample};
use crate::vae::resblock::{Head, Layer, Middle, ResidualBlock};
use crate::vae::{CoderCache, VaeConfig, VaeModel};

#[derive(Debug, Clone, ModuleParameters)]
pub struct Encoder3d {
    #[param]
    pub conv1: CausalConv3d,
    #[param]
    pub downsamples: Vec<Layer>,
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
    pub upsamples: Vec<Layer>,
    #[param]
    pub head: Head,
}

#[derive(Debug, Clone, ModuleParameters)]
pub struct WanVae21 {
    #[param]
    pub encoder: Encoder3d,
    /// 1×1×1 on the encoder output (→ mu | log_var).
    #[param]
    pub conv1: CausalConv3d,
    /// 1×1×1 on the de-normalised latent.
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
        let mut downsamples = Vec::new();
        for i in 0..n {
            let (mut in_dim, out_dim) = (dims[i], dims[i + 1]);
            for _ in 0..cfg.num_res_blocks {
                downsamples.push(Layer::Res(ResidualBlock::new(in_dim, out_dim)?));
                in_dim = out_dim;
            }
            if i != n - 1 {
                let mode = if cfg.temperal_downsample[i] {
                    Mode::Downsample3d
                } else {
                    Mode::Downsample2d
                };
                downsamples.push(Layer::Resample(Resample::new(out_dim, out_dim, mode)?));
            }
        }
        let top = dims[n];
        Ok(Self {
            conv1: CausalConv3d::cube(3, dims[0], 3, 1)?,
            downsamples,
            middle: Middle::new(top)?,
            head: Head::new(top, 2 * cfg.z_dim)?,
        })
    }

    pub fn forward(&self, x: &Array, cache: &mut CoderCache) -> Result<Array> {
        let mut x = self.conv1.forward_cached(x, &mut cache.conv1)?;
        for (j, layer) in self.downsamples.iter().enumerate() {
            x = layer.forward(&x, cache.layer(0, j))?;
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
        let mut upsamples = Vec::new();
        for i in 0..n {
            let out_dim = dims[i + 1];
            // The previous stage's upsampling conv halved the channels.
            let mut in_dim = if i >= 1 { dims[i] / 2 } else { dims[i] };
            for _ in 0..cfg.num_res_blocks + 1 {
                upsamples.push(Layer::Res(ResidualBlock::new(in_dim, out_dim)?));
                in_dim = out_dim;
            }
            if i != n - 1 {
                let mode = if temperal_upsample[i] {
                    Mode::Upsample3d
                } else {
                    Mode::Upsample2d
                };
                upsamples.push(Layer::Resample(Resample::new(out_dim, out_dim / 2, mode)?));
            }
        }
        Ok(Self {
            conv1: CausalConv3d::cube(cfg.z_dim, dims[0], 3, 1)?,
            middle: Middle::new(dims[0])?,
            upsamples,
            head: Head::new(dims[n], 3)?,
        })
    }

    pub fn forward(&self, x: &Array, cache: &mut CoderCache) -> Result<Array> {
        let x = self.conv1.forward_cached(x, &mut cache.conv1)?;
        let mut x = self.middle.forward(&x, &mut cache.middle)?;
        for (j, layer) in self.upsamples.iter().enumerate() {
            x = layer.forward(&x, cache.layer(0, j))?;
        }
        self.head.forward(&x, &mut cache.head)
    }
}

impl WanVae21 {
    pub fn new(cfg: &VaeConfig) -> Result<Self> {
        Ok(Self {
            encoder: Encoder3d::new(cfg)?,
            conv1: CausalConv3d::cube(2 * cfg.z_dim, 2 * cfg.z_dim, 1, 0)?,
            conv2: CausalConv3d::cube(cfg.z_dim, cfg.z_dim, 1, 0)?,
            decoder: Decoder3d::new(cfg)?,
        })
    }
}

impl VaeModel for WanVae21 {
    fn encode_chunk(&self, x: &Array, cache: &mut CoderCache) -> Result<Array> {
        self.encoder.forward(x, cache)
    }
    fn decode_chunk(&self, z: &Array, cache: &mut CoderCache, _first: bool) -> Result<Array> {
        // No `first_chunk` argument in 2.1: the "Rep" state does the same job.
        self.decoder.forward(z, cache)
    }
    fn conv1(&self) -> &CausalConv3d {
        &self.conv1
    }
    fn conv2(&self) -> &CausalConv3d {
        &self.conv2
    }
}
