//! `ResidualBlock` (official `wan/modules/vae2_{1,2}.py:ResidualBlock`), the shared
//! `middle` (Res, Attn, Res) and `head` (RMS_norm, SiLU, CausalConv3d) sequences, and
//! [`Layer`], one step of the `downsamples` / `upsamples` sequences.
//!
//! Layout `[B, F, H, W, C]`. Official `residual` indices: 0 norm, 1 SiLU, 2 conv,
//! 3 norm, 4 SiLU, 5 Dropout, 6 conv (named `norm1/conv1/norm2/conv2` here, mapped in
//! `vae::keys`). Each 3×3×3 conv caches its own *input* frames across chunks.
use mlx_rs::Array;
use mlx_rs::macros::ModuleParameters;
use mlx_rs::module::{ModuleParamMut, ModuleParamRef, ModuleParameters};
use mlx_rs::nn::silu;

use crate::error::Result;
use crate::vae::attention::AttentionBlock;
use crate::vae::causal_conv::{CausalConv3d, ConvCache};
use crate::vae::norm::RmsNorm;
use crate::vae::resample::{Resample, ResampleCache};

#[derive(Debug, Clone, ModuleParameters)]
pub struct Residual {
    #[param]
    pub norm1: RmsNorm,
    #[param]
    pub conv1: CausalConv3d,
    #[param]
    pub norm2: RmsNorm,
    #[param]
    pub conv2: CausalConv3d,
}

#[derive(Debug, Clone, ModuleParameters)]
pub struct ResidualBlock {
    #[param]
    pub residual: Residual,
    /// 1×1×1 conv when `in ≠ out`, else identity.
    #[param]
    pub shortcut: Option<CausalConv3d>,
}

/// Caches of the two temporal convs of one block.
#[derive(Debug, Clone, Default)]
pub struct ResCache {
    pub conv1: ConvCache,
    pub conv2: ConvCache,
}

impl ResCache {
    pub fn arrays(&self) -> Vec<&Array> {
        self.conv1.0.iter().chain(self.conv2.0.iter()).collect()
    }
}

impl ResidualBlock {
    pub fn new(in_dim: i32, out_dim: i32) -> Result<Self> {
        Ok(Self {
            residual: Residual {
                norm1: RmsNorm::new(in_dim)?,
                conv1: CausalConv3d::cube(in_dim, out_dim, 3, 1)?,
                norm2: RmsNorm::new(out_dim)?,
                conv2: CausalConv3d::cube(out_dim, out_dim, 3, 1)?,
            },
            shortcut: if in_dim != out_dim {
                Some(CausalConv3d::cube(in_dim, out_dim, 1, 0)?)
            } else {
                None
            },
        })
    }

    pub fn forward(&self, x: &Array, cache: &mut ResCache) -> Result<Array> {
        let h = match &self.shortcut {
            Some(s) => s.forward(x, None)?,
            None => x.clone(),
        };
        let r = &self.residual;
        let y = silu(r.norm1.forward(x)?)?;
        let y = r.conv1.forward_cached(&y, &mut cache.conv1)?;
        let y = silu(r.norm2.forward(&y)?)?;
        let y = r.conv2.forward_cached(&y, &mut cache.conv2)?;
        Ok(y.add(&h)?)
    }
}

/// Official `middle = Sequential(ResidualBlock, AttentionBlock, ResidualBlock)`.
#[derive(Debug, Clone, ModuleParameters)]
pub struct Middle {
    #[param]
    pub res1: ResidualBlock,
    #[param]
    pub attn: AttentionBlock,
    #[param]
    pub res2: ResidualBlock,
}

#[derive(Debug, Clone, Default)]
pub struct MiddleCache {
    pub res1: ResCache,
    pub res2: ResCache,
}

impl Middle {
    pub fn new(dim: i32) -> Result<Self> {
        Ok(Self {
            res1: ResidualBlock::new(dim, dim)?,
            attn: AttentionBlock::new(dim)?,
            res2: ResidualBlock::new(dim, dim)?,
        })
    }
    pub fn forward(&self, x: &Array, cache: &mut MiddleCache) -> Result<Array> {
        let x = self.res1.forward(x, &mut cache.res1)?;
        let x = self.attn.forward(&x)?;
        self.res2.forward(&x, &mut cache.res2)
    }
}

/// Official `head = Sequential(RMS_norm, SiLU, CausalConv3d(·, out, 3, padding=1))`.
#[derive(Debug, Clone, ModuleParameters)]
pub struct Head {
    #[param]
    pub norm: RmsNorm,
    #[param]
    pub conv: CausalConv3d,
}

impl Head {
    pub fn new(in_dim: i32, out_dim: i32) -> Result<Self> {
        Ok(Self {
            norm: RmsNorm::new(in_dim)?,
            conv: CausalConv3d::cube(in_dim, out_dim, 3, 1)?,
        })
    }
    pub fn forward(&self, x: &Array, cache: &mut ConvCache) -> Result<Array> {
        self.conv
            .forward_cached(&silu(self.norm.forward(x)?)?, cache)
    }
}

/// One element of a `downsamples` / `upsamples` `nn.Sequential`.
#[derive(Debug, Clone)]
pub enum Layer {
    Res(ResidualBlock),
    Resample(Resample),
}

/// Cache of one [`Layer`] (a block uses `res`, a resample `resample`).
#[derive(Debug, Clone, Default)]
pub struct LayerCache {
    pub res: ResCache,
    pub resample: ResampleCache,
}

impl LayerCache {
    pub fn arrays(&self) -> Vec<&Array> {
        let mut v = self.res.arrays();
        v.extend(self.resample.arrays());
        v
    }
}

impl Layer {
    pub fn forward(&self, x: &Array, cache: &mut LayerCache) -> Result<Array> {
        match self {
            Layer::Res(r) => r.forward(x, &mut cache.res),
            Layer::Resample(r) => r.forward(x, &mut cache.resample),
        }
    }
}

// The derive macro handles structs only; a layer's parameters are those of its variant.
impl ModuleParameters for Layer {
    fn num_parameters(&self) -> usize {
        match self {
            Layer::Res(m) => m.num_parameters(),
            Layer::Resample(m) => m.num_parameters(),
        }
    }
    fn parameters(&self) -> ModuleParamRef<'_> {
        match self {
            Layer::Res(m) => m.parameters(),
            Layer::Resample(m) => m.parameters(),
        }
    }
    fn parameters_mut(&mut self) -> ModuleParamMut<'_> {
        match self {
            Layer::Res(m) => m.parameters_mut(),
            Layer::Resample(m) => m.parameters_mut(),
        }
    }
    fn trainable_parameters(&self) -> ModuleParamRef<'_> {
        match self {
            Layer::Res(m) => m.trainable_parameters(),
            Layer::Resample(m) => m.trainable_parameters(),
        }
    }
    fn freeze_parameters(&mut self, recursive: bool) {
        match self {
            Layer::Res(m) => m.freeze_parameters(recursive),
            Layer::Resample(m) => m.freeze_parameters(recursive),
        }
    }
    fn unfreeze_parameters(&mut self, recursive: bool) {
        match self {
            Layer::Res(m) => m.unfreeze_parameters(recursive),
            Layer::Resample(m) => m.unfreeze_parameters(recursive),
        }
    }
    fn all_frozen(&self) -> Option<bool> {
        match self {
            Layer::Res(m) => m.all_frozen(),
            Layer::Resample(m) => m.all_frozen(),
        }
    }
    fn any_frozen(&self) -> Option<bool> {
        match self {
            Layer::Res(m) => m.any_frozen(),
            Layer::Resample(m) => m.any_frozen(),
        }
    }
}
