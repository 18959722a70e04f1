//! `AttentionBlock` (official `wan/modules/vae2_{1,2}.py:AttentionBlock`): per-frame,
//! single-head self-attention over the `H·W` positions, used in the encoder/decoder middle.
//!
//! `[B, F, H, W, C]` → frames folded into the batch `[B·F, H·W, C]` → RMS_norm →
//! 1×1 `to_qkv` (q, k, v = channel thirds, in that order) → softmax(q kᵀ/√C) v →
//! 1×1 `proj` → + input. The 1×1 convs are matmuls on the weight `[O, 1, 1, I]`.
use mlx_rs::Array;
use mlx_rs::fast::scaled_dot_product_attention;
use mlx_rs::macros::ModuleParameters;

use crate::error::Result;
use crate::vae::causal_conv::Conv2d;
use crate::vae::norm::RmsNorm;

#[derive(Debug, Clone, ModuleParameters)]
pub struct AttentionBlock {
    #[param]
    pub norm: RmsNorm,
    #[param]
    pub to_qkv: Conv2d,
    #[param]
    pub proj: Conv2d,
}

/// A 1×1 Conv2d on `[N, L, C]` tokens: `x · W[O, I]ᵀ + b`.
fn pointwise(conv: &Conv2d, x: &Array) -> Result<Array> {
    let w = &*conv.weight; // [O, 1, 1, I]
    let o = w.shape()[0];
    let i = w.shape()[3];
    let w = w.reshape(&[o, i])?;
    Ok(x.matmul(w.t())?.add(&*conv.bias)?)
}

impl AttentionBlock {
    pub fn new(dim: i32) -> Result<Self> {
        Ok(Self {
            norm: RmsNorm::new(dim)?,
            to_qkv: Conv2d::new(dim, 3 * dim, 1)?,
            proj: Conv2d::new(dim, dim, 1)?,
        })
    }

    pub fn forward(&self, x: &Array) -> Result<Array> {
        let s = x.shape().to_vec();
        let (b, f, h, w, c) = (s[0], s[1], s[2], s[3], s[4]);
        let tokens = x.reshape(&[b * f, h * w, c])?; // [N, L, C]
        let qkv = pointwise(&self.to_qkv, &self.norm.forward(&tokens)?)?; // [N, L, 3C]
        let qkv = qkv.reshape(&[b * f, 1, h * w, 3 * c])?; // one head
        let parts = qkv.split_equal(3, -1)?;
        let scale = 1.0 / (c as f32).sqrt();
        let att = scaled_dot_product_attention(&parts[0], &parts[1], &parts[2], scale, None, None)?;
        let out = pointwise(&self.proj, &att.reshape(&[b * f, h * w, c])?)?;
        Ok(out.reshape(&[b, f, h, w, c])?.add(x)?)
    }
}
