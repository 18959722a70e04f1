//! `WanSelfAttention` / `WanCrossAttention` (official `wan/modules/model.py`).
//!
//! q and k go through an RMSNorm over the *whole* model dim before the head split; self
//! attention rotates q/k with the 3D RoPE; cross attention attends to every one of the
//! `text_len` context rows, zero-padded ones included (no text mask, as official).
//! Attention itself is SDPA with scale `1/√d` ([`crate::dit::kernels::attention`]).
//! Cross-attention K/V depend on the context only: [`WanAttention::cross_kv`] computes them
//! once, [`WanAttention::forward_cross_kv`] reuses them at every step. The zero-padded rows
//! all embed to the same key and value, so the pipelines keep one row for the padding with
//! an additive `ln(multiplicity)` score bias ([`CrossKv::bias`], built by
//! [`crate::dit::WanModel::context_kv_folded`]): the same softmax, exactly, over
//! `prompt tokens + 1` keys instead of `text_len`.
use mlx_rs::fast;
use mlx_rs::macros::ModuleParameters;
use mlx_rs::module::Param;
use mlx_rs::{Array, Dtype};

use crate::dit::kernels::{Kernels, attention, rotate};
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

/// RoPE tables for the current token grid, in a head's channel layout: `cos2`, `sin2`
/// `[1, L, 1, d]` (see [`crate::dit::rope::interleaved_tables`]).
pub struct Rope<'a> {
    pub cos: &'a Array,
    pub sin: &'a Array,
}

/// Cross-attention keys and values of one block for a fixed context, `[B, H, L_ctx, d]` each
/// (ready for SDPA). They depend on the text only, so the pipelines compute them once per run
/// and expert ([`crate::dit::WanModel::context_kv`]).
#[derive(Debug, Clone)]
pub struct CrossKv {
    pub k: Array,
    pub v: Array,
    /// Additive score bias `[B, 1, 1, L_ctx]` float32, natural-log units, when the padding
    /// rows are folded: key `j` of sample `b` stands for `exp(bias)` identical keys. With a
    /// bias the K/V are float32 too (upcast from the projection dtype, exact) and the
    /// attention runs in float32, so the log-multiplicity is not rounded to bf16.
    pub bias: Option<Array>,
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

    /// `[B, L, D]` → `[B, H, L, d]` in the projection dtype (the layout SDPA reads).
    fn heads(&self, x: &Array) -> Result<Array> {
        let (b, l, d) = (x.shape()[0], x.shape()[1], x.shape()[2]);
        let x = cast(x, self.q.dtype())?;
        Ok(x.reshape(&[b, l, self.num_heads, d / self.num_heads])?
            .transpose_axes(&[0, 2, 1, 3])?)
    }

    /// Self-attention over `x [B, L, D]` (RoPE on q and k).
    pub fn forward_self(&self, x: &Array, rope: &Rope, kernels: Kernels) -> Result<Array> {
        let q = self.self_q(x, rope, kernels)?;
        let kv = self.self_kv(x, rope, kernels)?;
        self.attend(&q, &kv, kernels)
    }

    /// Rotated, heads-major queries of the tokens `x [B, Lc, D]` whose RoPE rows `rope`
    /// holds: `[B, H, Lc, d]` in the projection dtype.
    pub fn self_q(&self, x: &Array, rope: &Rope, kernels: Kernels) -> Result<Array> {
        let q = self.norm(&self.norm_q, self.q.forward(x)?)?;
        self.rotated_heads(q, rope, kernels)
    }

    /// Rotated keys and the values of the tokens `x [B, Lc, D]`, heads-major: the
    /// self-attention's K/V, computable chunk by chunk (each token's row depends on that
    /// token only) and joined along the token axis.
    pub fn self_kv(&self, x: &Array, rope: &Rope, kernels: Kernels) -> Result<CrossKv> {
        let k = self.norm(&self.norm_k, self.k.forward(x)?)?;
        let v = self.v.forward(x)?;
        Ok(CrossKv {
            k: self.rotated_heads(k, rope, kernels)?,
            v: self.heads(&v)?,
            bias: None,
        })
    }

    /// RoPE in float32 (`[B, L, H, d]`), then one cast to the projection dtype, heads-major.
    fn rotated_heads(&self, t: Array, rope: &Rope, kernels: Kernels) -> Result<Array> {
        let (b, l, d) = (t.shape()[0], t.shape()[1], t.shape()[2]);
        let t = cast(&t, Dtype::Float32)?.reshape(&[b, l, self.num_heads, d / self.num_heads])?;
        let t = rotate(&t, rope.cos, rope.sin, kernels)?;
        self.heads(&t.reshape(&[b, l, d])?)
    }

    /// K/V of `context [B, L_ctx, D]` (already embedded) for [`Self::forward_cross_kv`].
    pub fn cross_kv(&self, context: &Array) -> Result<CrossKv> {
        let k = self.norm(&self.norm_k, self.k.forward(context)?)?;
        let v = self.v.forward(context)?;
        Ok(CrossKv {
            k: self.heads(&k)?,
            v: self.heads(&v)?,
            bias: None,
        })
    }

    /// [`Self::cross_kv`] of a context whose rows stand for several identical keys each:
    /// `bias [B, 1, 1, L_ctx]` is `ln(count)` per row (see [`CrossKv::bias`]).
    pub fn cross_kv_weighted(&self, context: &Array, bias: &Array) -> Result<CrossKv> {
        let kv = self.cross_kv(context)?;
        Ok(CrossKv {
            k: cast(&kv.k, Dtype::Float32)?,
            v: cast(&kv.v, Dtype::Float32)?,
            bias: Some(cast(bias, Dtype::Float32)?),
        })
    }

    /// Cross-attention of `x [B, L, D]` to `context [B, L_ctx, D]` (already embedded).
    pub fn forward_cross(&self, x: &Array, context: &Array) -> Result<Array> {
        self.forward_cross_kv(x, &self.cross_kv(context)?, Kernels::Exact)
    }

    /// Cross-attention of `x [B, L, D]` to precomputed context K/V.
    pub fn forward_cross_kv(&self, x: &Array, kv: &CrossKv, kernels: Kernels) -> Result<Array> {
        let q = self.norm(&self.norm_q, self.q.forward(x)?)?;
        self.attend(&self.heads(&q)?, kv, kernels)
    }

    /// `q [B, H, L, d]`, K/V `[B, H, Lk, d]` → attention → `o` → `[B, L, D]`.
    pub fn attend(&self, q: &Array, kv: &CrossKv, kernels: Kernels) -> Result<Array> {
        let s = q.shape();
        let (b, h, l, hd) = (s[0], s[1], s[2], s[3]);
        let scale = 1.0 / (hd as f32).sqrt();
        let out = match &kv.bias {
            // Weighted keys: float32 throughout (K/V already are; q is upcast exactly).
            Some(bias) => {
                let q = cast(q, Dtype::Float32)?;
                attention(&q, &kv.k, &kv.v, scale, Some(bias), kernels)?
            }
            None => attention(q, &kv.k, &kv.v, scale, None, kernels)?,
        };
        let out = out
            .transpose_axes(&[0, 2, 1, 3])?
            .reshape(&[b, l, h * hd])?;
        self.o.forward(&out)
    }

    pub fn cast(&mut self, dtype: Dtype) -> Result<()> {
        for l in [&mut self.q, &mut self.k, &mut self.v, &mut self.o] {
            l.cast(dtype)?;
        }
        Ok(())
    }
}
