//! `WanSelfAttention` / `WanCrossAttention` (official `wan/modules/model.py`).
//!
//! q and k go through an RMSNorm over the *whole* model dim before the head split; self
//! attention rotates q/k with the 3D RoPE; cross attention attends to every one of the
//! `text_len` context rows, zero-padded ones included (no text mask, as official).
//! Attention itself is `mlx_rs::fast::scaled_dot_product_attention` with scale `1/√d`.
use mlx_rs::fast;
use mlx_rs::macros::ModuleParameters;
use mlx_rs::module::Param;
use mlx_rs::{Array, Dtype};

use crate::dit::rope::rope_apply;
use crate::error::Result;
use crate::nn::{Linear, cast, zeros_param};

/// `WanRMSNorm(dim)`: `x · rsqrt(mean(x²) + eps) · weight`, statistics in float32.
#[derive(Debug, Clone, ModuleParameters)]
pub struct WanRmsNorm {
    #[param]
    pub weight: Param<Array>,
}

impl WanRmsNorm {
    pub fn zeros(dim: i32) -> Result<Self> {
        Ok(Self {
            weight: zeros_param(&[dim])?,
        })
    }
    pub fn forward(&self, x: &Array, eps: f32) -> Result<Array> {
        let x = cast(x, Dtype::Float32)?;
        Ok(fast::rms_norm(&x, Some(&*self.weight), eps)?)
    }
}

/// q/k/v/o projections plus optional q/k norms, shared by both attention kinds.
#[derive(Debug, Clone, ModuleParameters)]
pub struct WanAttention {
    #[param]
    pub q: Linear,
    #[param]
    pub k: Linear,
    #[param]
    pub v: Linear,
    #[param]
    pub o: Linear,
    #[param]
    pub norm_q: Option<WanRmsNorm>,
    #[param]
    pub norm_k: Option<WanRmsNorm>,
    #[doc(hidden)]
    pub num_heads: i32,
    #[doc(hidden)]
    pub eps: f32,
}

/// RoPE tables for the current token grid: `(cos, sin)` each `[L, d/2]`.
pub struct Rope<'a> {
    pub cos: &'a Array,
    pub sin: &'a Array,
}

impl WanAttention {
    pub fn zeros(dim: i32, num_heads: i32, qk_norm: bool, eps: f32) -> Result<Self> {
        Ok(Self {
            q: Linear::zeros(dim, dim, true)?,
            k: Linear::zeros(dim, dim, true)?,
            v: Linear::zeros(dim, dim, true)?,
            o: Linear::zeros(dim, dim, true)?,
            norm_q: if qk_norm {
                Some(WanRmsNorm::zeros(dim)?)
            } else {
                None
            },
            norm_k: if qk_norm {
                Some(WanRmsNorm::zeros(dim)?)
            } else {
                None
            },
            num_heads,
            eps,
        })
    }

    fn norm(&self, n: &Option<WanRmsNorm>, x: Array) -> Result<Array> {
        match n {
            Some(n) => n.forward(&x, self.eps),
            None => Ok(x),
        }
    }

    /// Self-attention over `x [B, L, D]` (RoPE on q and k).
    pub fn forward_self(&self, x: &Array, rope: &Rope) -> Result<Array> {
        let q = self.norm(&self.norm_q, self.q.forward(x)?)?;
        let k = self.norm(&self.norm_k, self.k.forward(x)?)?;
        let v = self.v.forward(x)?;
        let (b, l, d) = (x.shape()[0], x.shape()[1], x.shape()[2]);
        let hd = d / self.num_heads;
        let q = rope_apply(&q.reshape(&[b, l, self.num_heads, hd])?, rope.cos, rope.sin)?;
        let k = rope_apply(&k.reshape(&[b, l, self.num_heads, hd])?, rope.cos, rope.sin)?;
        let v = v.reshape(&[b, l, self.num_heads, hd])?;
        self.attend(q, k, v, b, l)
    }

    /// Cross-attention of `x [B, L, D]` to `context [B, L_ctx, D]` (already embedded).
    pub fn forward_cross(&self, x: &Array, context: &Array) -> Result<Array> {
        let q = self.norm(&self.norm_q, self.q.forward(x)?)?;
        let k = self.norm(&self.norm_k, self.k.forward(context)?)?;
        let v = self.v.forward(context)?;
        let (b, l, d) = (x.shape()[0], x.shape()[1], x.shape()[2]);
        let lc = context.shape()[1];
        let hd = d / self.num_heads;
        let q = q.reshape(&[b, l, self.num_heads, hd])?;
        let k = k.reshape(&[b, lc, self.num_heads, hd])?;
        let v = v.reshape(&[b, lc, self.num_heads, hd])?;
        self.attend(q, k, v, b, l)
    }

    /// `[B, L, H, d]` q/k/v → fused SDPA in the projection dtype → `o` → `[B, L, D]`.
    fn attend(&self, q: Array, k: Array, v: Array, b: i32, l: i32) -> Result<Array> {
        let dt = self.q.dtype();
        let hd = q.shape()[3];
        let perm = [0, 2, 1, 3];
        let q = cast(&q, dt)?.transpose_axes(&perm)?;
        let k = cast(&k, dt)?.transpose_axes(&perm)?;
        let v = cast(&v, dt)?.transpose_axes(&perm)?;
        let scale = 1.0 / (hd as f32).sqrt();
        let out = fast::scaled_dot_product_attention(&q, &k, &v, scale, None, None)?;
        let out = out
            .transpose_axes(&perm)?
            .reshape(&[b, l, self.num_heads * hd])?;
        self.o.forward(&out)
    }

    pub fn cast(&mut self, dtype: Dtype) -> Result<()> {
        for l in [&mut self.q, &mut self.k, &mut self.v, &mut self.o] {
            l.cast(dtype)?;
        }
        Ok(())
    }
}
