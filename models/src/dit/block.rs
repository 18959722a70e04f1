//! `WanAttentionBlock` (official `wan/modules/model.py`): modulated self-attention,
//! affine-norm cross-attention (no gate), modulated GELU-tanh FFN.
//!
//! Modulation: `blocks.N.modulation [1, 6, D] + e0` gives, in order, shift/scale/gate for
//! self-attention then shift/scale/gate for the FFN; `e0` has one row per distinct timestep
//! and [`Modulation`] broadcasts or selects rows instead of materialising them per token. The residual stream, norms and all
//! modulation arithmetic stay float32 whatever the Linear compute dtype.
use mlx_rs::fast;
use mlx_rs::macros::ModuleParameters;
use mlx_rs::module::Param;
use mlx_rs::ops::concatenate;
use mlx_rs::{Array, Dtype};

use crate::dit::attention::{CrossKv, Rope, WanAttention};
use crate::dit::kernels::{Kernels, gelu_tanh};
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
    pub fn forward(&self, x: &Array, kernels: Kernels) -> Result<Array> {
        let h = gelu_tanh(&self.fc1.forward(x)?, kernels)?;
        self.fc2.forward(&h)
    }
}

/// How the tokens pick their row of a per-timestep table `[U, n, D]`.
enum Pick {
    /// One distinct timestep: every chunk is a broadcast row `[1, 1, D]`.
    Shared,
    /// One timestep per sample: `index [B, 1]` → `[B, 1, D]`.
    PerSample(Array),
    /// Two timesteps per token (ti2v image→video: t = 0 on the image frame): a `[B, L, 1]`
    /// mask selects between the two rows.
    Mask(Array),
    /// Anything else: a gather per token.
    Gather(Array),
}

/// Per-token modulation rows of a `[U, n, D]` table (one row per distinct timestep) and the
/// token → row index `[B, Li]` (Li = 1: per sample). Never gathers `[B, L, D]` rows when
/// there are at most two distinct timesteps.
pub struct Modulation {
    table: Array,
    pick: Pick,
}

impl Modulation {
    pub fn new(table: Array, index: &Array) -> Result<Self> {
        let u = table.shape()[0];
        let pick = if u == 1 {
            Pick::Shared
        } else if index.shape()[1] == 1 {
            Pick::PerSample(index.clone())
        } else if u == 2 {
            Pick::Mask(index.eq(Array::from_int(1))?.expand_dims(-1)?)
        } else {
            Pick::Gather(index.clone())
        };
        Ok(Self { table, pick })
    }

    /// The same modulation for the tokens `[start, end)` only (token-chunked blocks).
    pub fn tokens(&self, start: i32, end: i32) -> Self {
        use mlx_rs::ops::indexing::IndexOp;
        let pick = match &self.pick {
            Pick::Shared => Pick::Shared,
            Pick::PerSample(idx) => Pick::PerSample(idx.clone()),
            Pick::Mask(m) => Pick::Mask(m.index((.., start..end))),
            Pick::Gather(idx) => Pick::Gather(idx.index((.., start..end))),
        };
        Self {
            table: self.table.clone(),
            pick,
        }
    }

    /// Chunk `i` as float32, broadcastable to `[B, L, D]`.
    pub fn chunk(&self, i: i32) -> Result<Array> {
        let s = self.table.shape();
        let (u, d) = (s[0], s[2]);
        let rows = self
            .table
            .take_axis(Array::from_int(i), 1)?
            .reshape(&[u, 1, d])?;
        Ok(match &self.pick {
            Pick::Shared => rows,
            Pick::PerSample(idx) => rows.take_axis(idx.reshape(&[-1])?, 0)?,
            Pick::Mask(m) => {
                let r = rows.split_equal(2, 0)?;
                mlx_rs::ops::select(m, &r[1], &r[0])?
            }
            Pick::Gather(idx) => rows.reshape(&[u, d])?.take_axis(idx, 0)?,
        })
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
    /// `context [B, text_len, D]` embedded text. MLX's own kernels (training, parity).
    pub fn forward(
        &self,
        x: &Array,
        e0: &Array,
        index: &Array,
        context: &Array,
        rope: &Rope,
        trace: Option<&mut BlockTrace>,
    ) -> Result<Array> {
        let kv = self.cross_attn.cross_kv(context)?;
        self.forward_kv(x, e0, index, &kv, rope, Kernels::Exact, trace)
    }

    /// [`Self::forward`] with the context's cross-attention K/V computed beforehand.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_kv(
        &self,
        x: &Array,
        e0: &Array,
        index: &Array,
        kv: &CrossKv,
        rope: &Rope,
        kernels: Kernels,
        trace: Option<&mut BlockTrace>,
    ) -> Result<Array> {
        let m = Modulation::new(self.modulation.add(e0)?, index)?;
        let h = self.modulated(x, &m, 0)?;
        let y = cast(
            &self.self_attn.forward_self(&h, rope, kernels)?,
            Dtype::Float32,
        )?;
        self.finish(x, y, &m, kv, kernels, trace)
    }

    /// [`Self::forward_kv`] over token chunks of at most `chunk` tokens, with an `eval`
    /// after each, so one step's working set is that of a chunk plus the block's
    /// full-length tensors (input, output, self-attention K/V) instead of the whole
    /// sequence's. Every stage but the self-attention is token-wise, and the
    /// self-attention is independent per query: pass 1 computes the rotated keys and the
    /// values of all tokens chunk by chunk, pass 2 runs each query chunk through the whole
    /// block against them. The same arithmetic as the unchunked block (per-row matmuls may
    /// round differently in the last bit); the price is re-normalising the input once more
    /// and one synchronisation per chunk. The output is evaluated.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_kv_chunked(
        &self,
        x: Array,
        e0: &Array,
        index: &Array,
        kv: &CrossKv,
        rope: &Rope,
        kernels: Kernels,
        chunk: i32,
    ) -> Result<Array> {
        use mlx_rs::ops::indexing::IndexOp;
        use mlx_rs::transforms::eval;
        let m = Modulation::new(self.modulation.add(e0)?, index)?;
        let l = x.shape()[1];
        let spans: Vec<(i32, i32)> = (0..l)
            .step_by(chunk.max(1) as usize)
            .map(|s| (s, (s + chunk.max(1)).min(l)))
            .collect();
        // Token rows [s, e) of the input, their modulation, the modulated self-attention
        // input and their RoPE tables.
        let part = |s: i32, e: i32| -> Result<(Array, Modulation, Array, [Array; 2])> {
            let (xc, mc) = (x.index((.., s..e)), m.tokens(s, e));
            let h = self.modulated(&xc, &mc, 0)?;
            let rope = [rope.cos.index((.., s..e)), rope.sin.index((.., s..e))];
            Ok((xc, mc, h, rope))
        };

        // Pass 1: the self-attention's keys and values of every token.
        let (mut ks, mut vs) = (Vec::new(), Vec::new());
        for &(s, e) in &spans {
            let (_, _, h, [cos, sin]) = part(s, e)?;
            let rc = Rope {
                cos: &cos,
                sin: &sin,
            };
            let c = self.self_attn.self_kv(&h, &rc, kernels)?;
            eval([&c.k, &c.v])?;
            ks.push(c.k);
            vs.push(c.v);
        }
        let self_kv = CrossKv {
            k: concatenate(&ks, 2)?,
            v: concatenate(&vs, 2)?,
            bias: None,
        };
        eval([&self_kv.k, &self_kv.v])?;
        drop((ks, vs));

        // Pass 2: each query chunk through the whole block.
        let mut outs = Vec::with_capacity(spans.len());
        for &(s, e) in &spans {
            let (xc, mc, h, [cos, sin]) = part(s, e)?;
            let rc = Rope {
                cos: &cos,
                sin: &sin,
            };
            let q = self.self_attn.self_q(&h, &rc, kernels)?;
            let y = cast(
                &self.self_attn.attend(&q, &self_kv, kernels)?,
                Dtype::Float32,
            )?;
            let out = self.finish(&xc, y, &mc, kv, kernels, None)?;
            eval([&out])?;
            outs.push(out);
        }
        drop((self_kv, x));
        let out = concatenate(&outs, 1)?;
        eval([&out])?;
        Ok(out)
    }

    /// `LayerNorm(x)·(1 + scale) + shift` with modulation chunks `first` (shift) and
    /// `first + 1` (scale).
    fn modulated(&self, x: &Array, m: &Modulation, first: i32) -> Result<Array> {
        let ln = fast::layer_norm(x, None, None, self.eps)?;
        Ok(ln
            .multiply(Array::from_f32(1.0).add(m.chunk(first + 1)?)?)?
            .add(m.chunk(first)?)?)
    }

    /// Everything after the self-attention `y`: gated residual, cross-attention, FFN.
    fn finish(
        &self,
        x: &Array,
        y: Array,
        m: &Modulation,
        kv: &CrossKv,
        kernels: Kernels,
        trace: Option<&mut BlockTrace>,
    ) -> Result<Array> {
        let x = x.add(y.multiply(m.chunk(2)?)?)?;
        let xn = match &self.norm3 {
            Some(n) => fast::layer_norm(&x, Some(&*n.weight), Some(&*n.bias), self.eps)?,
            None => x.clone(),
        };
        let c = cast(
            &self.cross_attn.forward_cross_kv(&xn, kv, kernels)?,
            Dtype::Float32,
        )?;
        let x = x.add(&c)?;

        let h = self.modulated(&x, m, 3)?;
        let f = cast(&self.ffn.forward(&h, kernels)?, Dtype::Float32)?;
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
