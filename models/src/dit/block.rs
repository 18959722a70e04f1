//! `WanAttentionBlock` (official `wan/modules/model.py`): modulated self-attention,
//! affine-norm cross-attention (no gate), modulated GELU-tanh FFN.
//!
//! Modulation: `blocks.N.modulation [1, 6, D] + e0` gives, in order, shift/scale/gate for
//! self-attention then shift/scale/gate for the FFN. The residual stream, norms and all
//! modulation arithmetic stay float32 whatever the Linear compute dtype.
use mlx_rs::fast;
use mlx_rs::macros::ModuleParameters;
use mlx_rs::module::Param;
use mlx_rs::{Array, Dtype};

use crate::dit::attention::{Rope, WanAttention};
use crate::error::Result;
use crate::nn::{Linear, cast, zeros_param};

/// Affine `WanLayerNorm` (`norm3`, before cross-attention).
#[derive(Debug, Clone, ModuleParameters)]
pub struct WanLayerNorm {
    #[param]
    pub weight: Param<Array>,
    #[param]
    pub bias: Param<Array>,
}

/// Two-Linear GELU-tanh MLP; official keys `ffn.0` / `ffn.2` (see `dit::keys`).
#[derive(Debug, Clone, ModuleParameters)]
pub struct FeedForward {
    #[param]
    pub fc1: Linear,
    #[param]
    pub fc2: Linear,
}

impl FeedForward {
    pub fn forward(&self, x: &Array) -> Result<Array> {
        let h = mlx_rs::nn::gelu_approximate(self.fc1.forward(x)?)?;
        self.fc2.forward(&h)
    }
}

/// Per-token modulation rows: a `[U, n, D]` table of distinct rows and an index `[B, Li]`
/// (Li = 1 for one timestep per sample, else L) selecting a row per token.
pub struct Modulation<'a> {
    pub table: Array,
    pub index: &'a Array,
}

impl Modulation<'_> {
    /// Chunk `i` as `[B, Li, D]` float32.
    pub fn chunk(&self, i: i32) -> Result<Array> {
        let s = self.table.shape();
        let rows = self
            .table
            .take_axis(Array::from_int(i), 1)?
            .reshape(&[s[0], s[2]])?;
        Ok(rows.take_axis(self.index, 0)?)
    }
}

#[derive(Debug, Clone, ModuleParameters)]
pub struct WanAttentionBlock {
    #[param]
    pub modulation: Param<Array>,
    #[param]
    pub self_attn: WanAttention,
    #[param]
    pub norm3: Option<WanLayerNorm>,
    #[param]
    pub cross_attn: WanAttention,
    #[param]
    pub ffn: FeedForward,
    #[doc(hidden)]
    pub eps: f32,
}

/// Optional capture of the per-block intermediates (parity fixtures).
#[derive(Default)]
pub struct BlockTrace {
    pub self_attn: Option<Array>,
    pub cross_attn: Option<Array>,
    pub ffn: Option<Array>,
}

impl WanAttentionBlock {
    pub fn zeros(
        dim: i32,
        ffn_dim: i32,
        heads: i32,
        qk_norm: bool,
        cross_attn_norm: bool,
        eps: f32,
    ) -> Result<Self> {
        Ok(Self {
            modulation: zeros_param(&[1, 6, dim])?,
            self_attn: WanAttention::zeros(dim, heads, qk_norm, eps)?,
            norm3: if cross_attn_norm {
                Some(WanLayerNorm {
                    weight: zeros_param(&[dim])?,
                    bias: zeros_param(&[dim])?,
                })
            } else {
                None
            },
            cross_attn: WanAttention::zeros(dim, heads, qk_norm, eps)?,
            ffn: FeedForward {
                fc1: Linear::zeros(dim, ffn_dim, true)?,
                fc2: Linear::zeros(ffn_dim, dim, true)?,
            },
            eps,
        })
    }

    /// `x [B, L, D]` f32; `e0` the `[U, 6, D]` time-projection rows with their token index;
    /// `context [B, text_len, D]` embedded text.
    pub fn forward(
        &self,
        x: &Array,
        e0: &Array,
        index: &Array,
        context: &Array,
        rope: &Rope,
        trace: Option<&mut BlockTrace>,
    ) -> Result<Array> {
        let m = Modulation {
            table: self.modulation.add(e0)?,
            index,
        };
        let ln = |x: &Array| -> Result<Array> { Ok(fast::layer_norm(x, None, None, self.eps)?) };
        let one = Array::from_f32(1.0);

        let h = ln(x)?.multiply(one.add(m.chunk(1)?)?)?.add(m.chunk(0)?)?;
        let y = cast(&self.self_attn.forward_self(&h, rope)?, Dtype::Float32)?;
        let x = x.add(y.multiply(m.chunk(2)?)?)?;

        let xn = match &self.norm3 {
            Some(n) => fast::layer_norm(&x, Some(&*n.weight), Some(&*n.bias), self.eps)?,
            None => x.clone(),
        };
        let c = cast(
            &self.cross_attn.forward_cross(&xn, context)?,
            Dtype::Float32,
        )?;
        let x = x.add(&c)?;

        let h = ln(&x)?.multiply(one.add(m.chunk(4)?)?)?.add(m.chunk(3)?)?;
        let f = cast(&self.ffn.forward(&h)?, Dtype::Float32)?;
        let out = x.add(f.multiply(m.chunk(5)?)?)?;
        if let Some(t) = trace {
            t.self_attn = Some(y);
            t.cross_attn = Some(c);
            t.ffn = Some(f);
        }
        Ok(out)
    }

    /// Compute dtype of the big Linears (norms and modulation stay float32).
    pub fn cast(&mut self, dtype: Dtype) -> Result<()> {
        self.self_attn.cast(dtype)?;
        self.cross_attn.cast(dtype)?;
        self.ffn.fc1.cast(dtype)?;
        self.ffn.fc2.cast(dtype)
    }
}
