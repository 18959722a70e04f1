//! `WanModel` (official `wan/modules/model.py`): patch embedding, text/time embeddings,
//! time projection, `num_layers` blocks, head, unpatchify.
//!
//! Layouts: latents enter channels-first `[B, C, F, H, W]` like the official model; tokens
//! are `[B, L, D]` in (f, h, w) row-major order. The patch-embedding Conv3d (kernel =
//! stride = patch) is computed as a reshape + matmul on channels-last patches with the
//! weight in MLX conv layout `[D, pt, ph, pw, C]` (transposed once, at load).
//! The time embedding is computed once per *distinct* timestep value and gathered per
//! token, never materialised per token.
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use mlx_rs::fast;
use mlx_rs::macros::ModuleParameters;
use mlx_rs::module::{ModuleParameters as _, Param};
use mlx_rs::ops::concatenate;
use mlx_rs::{Array, Dtype};

use crate::checkpoint::{self, TensorSource};
use crate::dit::attention::CrossKv;
use crate::dit::attention::Rope;
use crate::dit::block::{BlockTrace, Modulation, WanAttentionBlock};
use crate::dit::config::WanConfig;
use crate::dit::kernels::Kernels;
use crate::dit::keys;
use crate::dit::rope::{grid_cos_sin, interleaved_tables, sinusoidal_embedding};
use crate::error::{Error, Result};
use crate::nn::{Linear, cast, zeros_param};

/// Intermediates captured for parity checks, by fixture name (`patch_embedding`, `e`, ...).
pub type Trace = BTreeMap<String, Array>;

#[derive(Debug, Clone, ModuleParameters)]
pub struct PatchEmbedding {
    /// `[D, pt, ph, pw, C_in]` (MLX Conv3d layout).
    #[param]
    pub weight: Param<Array>,
    #[param]
    pub bias: Param<Array>,
}

/// `Linear → act → Linear` (`text_embedding`: GELU-tanh, `time_embedding`: SiLU).
#[derive(Debug, Clone, ModuleParameters)]
pub struct Mlp {
    #[param]
    pub fc1: Linear,
    #[param]
    pub fc2: Linear,
}

/// `time_projection = Sequential(SiLU, Linear(D, 6D))`.
#[derive(Debug, Clone, ModuleParameters)]
pub struct TimeProjection {
    #[param]
    pub fc: Linear,
}

#[derive(Debug, Clone, ModuleParameters)]
pub struct Head {
    #[param]
    pub modulation: Param<Array>,
    #[param]
    pub head: Linear,
}

/// Timesteps as the official model accepts them.
#[derive(Debug, Clone)]
pub enum Timesteps {
    /// One value per sample (`t` of shape `[B]`, A14B).
    PerSample(Vec<f32>),
    /// One value per token, `[B][L]` flattened row-major (ti2v-5B).
    PerToken(Vec<f32>),
}

/// One forward call. `context` holds each sample's text embedding `[L_i, text_dim]`,
/// unpadded (the model zero-pads to `text_len`, as official).
pub struct DitInput<'a> {
    pub x: &'a Array,
    pub t: &'a Timesteps,
    pub context: &'a [Array],
    pub y: Option<&'a Array>,
}

#[derive(Debug, ModuleParameters)]
pub struct WanModel {
    #[param]
    pub patch_embedding: PatchEmbedding,
    #[param]
    pub text_embedding: Mlp,
    #[param]
    pub time_embedding: Mlp,
    #[param]
    pub time_projection: TimeProjection,
    #[param]
    pub blocks: Vec<WanAttentionBlock>,
    #[param]
    pub head: Head,
    pub config: WanConfig,
    /// RoPE tables per token grid in a head's channel layout (`interleaved_tables`),
    /// constant for a whole generation.
    rope_cache: RefCell<HashMap<[usize; 3], (Array, Array)>>,
}

impl WanModel {
    /// The model with lazy zero placeholders (no memory is used until weights replace them).
    pub fn new(config: WanConfig) -> Result<Self> {
        config.validate()?;
        let c = &config;
        let (d, eps) = (c.dim, c.eps as f32);
        let [pt, ph, pw] = c.patch_size;
        let blocks = (0..c.num_layers)
            .map(|_| {
                WanAttentionBlock::zeros(
                    d,
                    c.ffn_dim,
                    c.num_heads,
                    c.qk_norm,
                    c.cross_attn_norm,
                    eps,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            patch_embedding: PatchEmbedding {
                weight: zeros_param(&[d, pt, ph, pw, c.in_dim])?,
                bias: zeros_param(&[d])?,
            },
            text_embedding: Mlp {
                fc1: Linear::zeros(c.text_dim, d, true)?,
                fc2: Linear::zeros(d, d, true)?,
            },
            time_embedding: Mlp {
                fc1: Linear::zeros(c.freq_dim, d, true)?,
                fc2: Linear::zeros(d, d, true)?,
            },
            time_projection: TimeProjection {
                fc: Linear::zeros(d, 6 * d, true)?,
            },
            blocks,
            head: Head {
                modulation: zeros_param(&[1, 2, d])?,
                head: Linear::zeros(d, c.patch_volume() * c.out_dim, true)?,
            },
            config,
            rope_cache: RefCell::new(HashMap::new()),
        })
    }

    /// Every official key with its MLX-layout shape (what a checkpoint must hold).
    pub fn expected_params(&self) -> Vec<(String, Vec<i32>)> {
        checkpoint::expected_params(self, &keys::to_official)
    }

    /// Build from a config and strictly load float32 weights from `src`; a wrong key set or
    /// shape is reported in full before any tensor is read.
    pub fn load(config: WanConfig, src: &dyn TensorSource) -> Result<Self> {
        let mut m = Self::new(config)?;
        checkpoint::load_strict(&mut m, src, &keys::to_official, Some(Dtype::Float32))?;
        Ok(m)
    }

    /// Compute dtype of the big Linears (patch/text embeddings and every block); the time
    /// embedding, projection, head, norms and modulation stay float32, as the official
    /// autocast regions keep them. Use bf16 on Metal, float32 on CPU.
    pub fn set_compute_dtype(&mut self, dtype: Dtype) -> Result<()> {
        *self.patch_embedding.weight = self.patch_embedding.weight.as_dtype(dtype)?;
        self.text_embedding.fc1.cast(dtype)?;
        self.text_embedding.fc2.cast(dtype)?;
        for b in &mut self.blocks {
            b.cast(dtype)?;
        }
        Ok(())
    }

    pub fn num_params(&self) -> usize {
        self.parameters().flatten().values().map(|a| a.size()).sum()
    }

    fn rope(&self, grid: [usize; 3]) -> Result<(Array, Array)> {
        if let Some(r) = self.rope_cache.borrow().get(&grid) {
            return Ok(r.clone());
        }
        let (cos, sin) = grid_cos_sin(self.config.head_dim() as usize, grid)?;
        let r = interleaved_tables(&cos, &sin)?;
        self.rope_cache.borrow_mut().insert(grid, r.clone());
        Ok(r)
    }

    /// Distinct timestep values `[U]` and a per-token (or per-sample) index `[B, Li]`.
    fn timestep_index(&self, t: &Timesteps, b: i32, l: i32) -> Result<(Vec<f64>, Array)> {
        let (vals, li): (&[f32], i32) = match t {
            Timesteps::PerSample(v) => (v, 1),
            Timesteps::PerToken(v) => (v, l),
        };
        if vals.len() != (b * li) as usize {
            return Err(Error::Input(format!(
                "timesteps: expected {} values ({b} sample(s) × {li}), got {}",
                b * li,
                vals.len()
            )));
        }
        let mut uniq: Vec<f32> = Vec::new();
        let mut idx = Vec::with_capacity(vals.len());
        for &v in vals {
            let i = match uniq.iter().position(|&u| u.to_bits() == v.to_bits()) {
                Some(i) => i,
                None => {
                    uniq.push(v);
                    uniq.len() - 1
                }
            };
            idx.push(i as i32);
        }
        Ok((
            uniq.iter().map(|&v| v as f64).collect(),
            Array::from_slice(&idx, &[b, li]),
        ))
    }

    /// Patchify `[B, C, F, H, W]` → tokens `[B, L, pt·ph·pw·C]` ordered (kt, kh, kw, c).
    fn patchify(&self, x: &Array) -> Result<(Array, [usize; 3])> {
        let s = x.shape();
        let (b, c, f, h, w) = (s[0], s[1], s[2], s[3], s[4]);
        let [pt, ph, pw] = self.config.patch_size;
        if f % pt != 0 || h % ph != 0 || w % pw != 0 {
            return Err(Error::Input(format!(
                "latent {f}×{h}×{w} is not divisible by the patch size {pt}×{ph}×{pw}"
            )));
        }
        let (fp, hp, wp) = (f / pt, h / ph, w / pw);
        let t = x
            .transpose_axes(&[0, 2, 3, 4, 1])? // [B, F, H, W, C]
            .reshape(&[b, fp, pt, hp, ph, wp, pw, c])?
            .transpose_axes(&[0, 1, 3, 5, 2, 4, 6, 7])? // [B, Fp, Hp, Wp, pt, ph, pw, C]
            .reshape(&[b, fp * hp * wp, pt * ph * pw * c])?;
        Ok((t, [fp as usize, hp as usize, wp as usize]))
    }

    /// `[B, L, pt·ph·pw·C_out]` (patch-major, channel innermost) → `[B, C_out, F, H, W]`.
    fn unpatchify(&self, x: &Array, grid: [usize; 3]) -> Result<Array> {
        let [pt, ph, pw] = self.config.patch_size;
        let c = self.config.out_dim;
        let (b, [fp, hp, wp]) = (x.shape()[0], grid.map(|g| g as i32));
        Ok(x.reshape(&[b, fp, hp, wp, pt, ph, pw, c])?
            .transpose_axes(&[0, 7, 1, 4, 2, 5, 3, 6])? // [B, C, Fp, pt, Hp, ph, Wp, pw]
            .reshape(&[b, c, fp * pt, hp * ph, wp * pw])?)
    }

    /// Zero-pad each context to `text_len` rows and embed → `[B, text_len, D]`.
    pub fn embed_context(&self, context: &[Array]) -> Result<Array> {
        let lens = self.context_lens(context)?;
        self.embed_rows(context, &lens, self.config.text_len)
    }

    /// Each context `[L_b, text_dim]` (checked by [`Self::context_lens`] → `lens`),
    /// zero-padded to `rows` (≥ every `L_b`, ≤ `text_len`) and embedded → `[B, rows, D]`
    /// float32.
    fn embed_rows(&self, context: &[Array], lens: &[i32], rows: i32) -> Result<Array> {
        let td = self.config.text_dim;
        let padded = context
            .iter()
            .zip(lens)
            .map(|(c, &n)| {
                let c = cast(c, Dtype::Float32)?;
                Ok(if n < rows {
                    concatenate(&[c, mlx_rs::ops::zeros::<f32>(&[rows - n, td])?], 0)?
                } else {
                    c
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let ctx = mlx_rs::ops::stack(&padded, 0)?;
        let h = mlx_rs::nn::gelu_approximate(self.text_embedding.fc1.forward(&ctx)?)?;
        cast(&self.text_embedding.fc2.forward(&h)?, Dtype::Float32)
    }

    /// Rows of each context, checked against `[L ≤ text_len, text_dim]`.
    fn context_lens(&self, context: &[Array]) -> Result<Vec<i32>> {
        let (tl, td) = (self.config.text_len, self.config.text_dim);
        if context.is_empty() {
            return Err(Error::Input("no context given".into()));
        }
        context
            .iter()
            .map(|c| {
                let s = c.shape();
                if s.len() != 2 || s[1] != td {
                    return Err(Error::Input(format!("context must be [L, {td}], got {s:?}")));
                }
                if s[0] > tl {
                    return Err(Error::Input(format!(
                        "context has {} tokens, more than the model's text_len {tl} (truncate the prompt)",
                        s[0]
                    )));
                }
                Ok(s[0])
            })
            .collect()
    }

    /// Forward pass. Returns the velocity prediction `[B, C_out, F, H, W]` (float32).
    pub fn forward(&self, input: &DitInput, trace: Option<&mut Trace>) -> Result<Array> {
        let context = self.embed_context(input.context)?;
        self.forward_embedded(input.x, input.y, input.t, &context, trace)
    }

    /// Forward with a context already embedded by [`Self::embed_context`], with MLX's own
    /// kernels (training, parity traces). The cross-attention K/V are computed in this call.
    pub fn forward_embedded(
        &self,
        x: &Array,
        y: Option<&Array>,
        t: &Timesteps,
        context: &Array,
        mut trace: Option<&mut Trace>,
    ) -> Result<Array> {
        let kv = self.context_kv(context)?;
        if let Some(tr) = trace.as_deref_mut() {
            tr.insert("context_emb".into(), context.clone());
        }
        Ok(self
            .forward_with(x, y, t, &kv, Kernels::Exact, Blocks::Run, 1, trace)?
            .0)
    }

    /// The cross-attention K/V of an embedded context `[B, text_len, D]` for every block
    /// (lazy; evaluate once). They depend on the text only, so a sampling run computes them
    /// once per expert and reuses them at every step ([`Self::forward_kv`]).
    pub fn context_kv(&self, context: &Array) -> Result<ContextKv> {
        let blocks = self
            .blocks
            .iter()
            .map(|b| b.cross_attn.cross_kv(context))
            .collect::<Result<Vec<_>>>()?;
        Ok(ContextKv {
            batch: context.shape()[0],
            blocks,
        })
    }

    /// The K/V of unpadded contexts `[L_b, text_dim]` with the zero padding folded: the
    /// official forward pads every context to `text_len` rows with zeros, and every padding
    /// row embeds to the same key and value, so keeping `R = min(max L_b + 1, text_len)`
    /// rows and adding `ln((text_len − L_b) / (R − L_b))` to the scores of sample `b`'s
    /// padding rows is the same softmax (the same sums, reordered) over `R` keys instead of
    /// `text_len`. A 100-token prompt attends over 101 keys: the cross-attention scores and
    /// the resident K/V shrink ≈ 5×. Falls back to [`Self::context_kv`] (no bias) when
    /// nothing would be folded, or when the float32 folded K/V would outgrow the unfolded
    /// ones in a narrower compute dtype (bf16 prompts over 255 tokens), so
    /// [`ContextKv::bytes_for`] stays an upper bound.
    pub fn context_kv_folded(&self, context: &[Array]) -> Result<ContextKv> {
        let tl = self.config.text_len;
        let lens = self.context_lens(context)?;
        let rows = (lens.iter().copied().max().unwrap_or(0) + 1).min(tl);
        let cdt = self
            .blocks
            .first()
            .map_or(Dtype::Float32, |b| b.cross_attn.k.dtype());
        if rows == tl || rows as usize * 4 > tl as usize * crate::quant::dtype_bytes(cdt) {
            return self.context_kv(&self.embed_rows(context, &lens, tl)?);
        }
        let emb = self.embed_rows(context, &lens, rows)?;
        let mut bias = Vec::with_capacity(lens.len() * rows as usize);
        for &n in &lens {
            let w = ((tl - n) as f64 / (rows - n) as f64).ln() as f32;
            bias.extend((0..rows).map(|j| if j < n { 0.0 } else { w }));
        }
        let bias = Array::from_slice(&bias, &[lens.len() as i32, 1, 1, rows]);
        let blocks = self
            .blocks
            .iter()
            .map(|b| b.cross_attn.cross_kv_weighted(&emb, &bias))
            .collect::<Result<Vec<_>>>()?;
        Ok(ContextKv {
            batch: lens.len() as i32,
            blocks,
        })
    }

    /// One denoising forward with precomputed context K/V ([`Self::context_kv`]) and the given
    /// kernels ([`Kernels::Fast`] for inference). `x [B, C, F, H, W]` → `[B, C_out, F, H, W]`.
    pub fn forward_kv(
        &self,
        x: &Array,
        y: Option<&Array>,
        t: &Timesteps,
        kv: &ContextKv,
        kernels: Kernels,
    ) -> Result<Array> {
        Ok(self
            .forward_with(x, y, t, kv, kernels, Blocks::Run, 1, None)?
            .0)
    }

    /// [`Self::forward_kv`] for step caching (MagCache): `Blocks::Reuse(r)` skips the blocks
    /// and adds `r` — an earlier step's `blocks(h) − h`, `[B, L, D]` — to this step's patch
    /// embedding before the head; `Blocks::Keep` runs them and also returns that residual.
    /// `token_chunks > 1` runs every block over that many token chunks
    /// ([`WanAttentionBlock::forward_kv_chunked`]: a smaller working set, one evaluation per
    /// chunk); 1 is the plain lazy forward.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_blocks(
        &self,
        x: &Array,
        y: Option<&Array>,
        t: &Timesteps,
        kv: &ContextKv,
        kernels: Kernels,
        blocks: Blocks,
        token_chunks: u32,
    ) -> Result<(Array, Option<Array>)> {
        self.forward_with(x, y, t, kv, kernels, blocks, token_chunks, None)
    }

    #[allow(clippy::too_many_arguments)]
    fn forward_with(
        &self,
        x: &Array,
        y: Option<&Array>,
        t: &Timesteps,
        kv: &ContextKv,
        kernels: Kernels,
        blocks: Blocks,
        token_chunks: u32,
        mut trace: Option<&mut Trace>,
    ) -> Result<(Array, Option<Array>)> {
        if kv.blocks.len() != self.blocks.len() || kv.batch != x.shape()[0] {
            return Err(Error::Input(format!(
                "context K/V for {} block(s) × batch {} do not fit this model ({} blocks) and \
                 batch {}",
                kv.blocks.len(),
                kv.batch,
                self.blocks.len(),
                x.shape().first().copied().unwrap_or(0)
            )));
        }
        let stem = self.stem_for(x, y, t, kv.batch)?;
        let mut h = stem.h.clone();
        if let Some(tr) = trace.as_deref_mut() {
            let (b, l, d) = (h.shape()[0], h.shape()[1], self.config.dim);
            let full = |a: &Array, tail: &[i32]| -> Result<Array> {
                let g = a.take_axis(&stem.index, 0)?; // [B, Li, ...]
                let mut shape = vec![b, l];
                shape.extend_from_slice(tail);
                Ok(mlx_rs::ops::broadcast_to(&g, &shape)?)
            };
            tr.insert("patch_embedding".into(), h.clone());
            tr.insert("e".into(), full(&stem.e, &[d])?);
            tr.insert("e0".into(), full(&stem.e0, &[6, d])?);
            let g: Vec<i64> = stem.grid.iter().map(|&v| v as i64).collect();
            tr.insert("grid_sizes".into(), Array::from_slice(&g, &[1, 3]));
        }

        if let Blocks::Reuse(r) = blocks {
            if r.shape() != h.shape() {
                return Err(Error::Input(format!(
                    "reused block residual {:?} does not fit the tokens {:?}",
                    r.shape(),
                    h.shape()
                )));
            }
            let out = self.head_tokens(&h.add(r)?, &stem)?;
            return Ok((self.unpatchify(&out, stem.grid)?, None));
        }
        let l = h.shape()[1];
        let chunk = chunk_tokens(l, token_chunks);
        for (i, (block, bkv)) in self.blocks.iter().zip(&kv.blocks).enumerate() {
            if chunk < l && trace.is_none() {
                h = block.forward_kv_chunked(
                    h,
                    &stem.e0,
                    &stem.index,
                    bkv,
                    &stem.rope(),
                    kernels,
                    chunk,
                )?;
                continue;
            }
            let mut bt = trace.as_ref().map(|_| BlockTrace::default());
            h = block.forward_kv(
                &h,
                &stem.e0,
                &stem.index,
                bkv,
                &stem.rope(),
                kernels,
                bt.as_mut(),
            )?;
            if let (Some(tr), Some(bt)) = (trace.as_deref_mut(), bt) {
                tr.insert(format!("block{i}_self_attn"), bt.self_attn.expect("traced"));
                tr.insert(
                    format!("block{i}_cross_attn"),
                    bt.cross_attn.expect("traced"),
                );
                tr.insert(format!("block{i}_ffn"), bt.ffn.expect("traced"));
                tr.insert(format!("block{i}_out"), h.clone());
            }
        }

        let residual = match blocks {
            Blocks::Keep => Some(h.subtract(&stem.h)?),
            _ => None,
        };
        let out = self.head_tokens(&h, &stem)?;
        if let Some(tr) = trace {
            tr.insert("head_out".into(), out.clone());
        }
        Ok((self.unpatchify(&out, stem.grid)?, residual))
    }

    /// Everything before the blocks: input checks, patch embedding, time embedding and
    /// RoPE tables. Public so the gradient-checkpointed trainer can drive the blocks one by
    /// one (`train::grad_checkpoint`); `context` is already embedded `[B, text_len, D]`.
    pub fn stem(
        &self,
        x: &Array,
        y: Option<&Array>,
        t: &Timesteps,
        context: &Array,
    ) -> Result<Stem> {
        self.stem_for(x, y, t, context.shape()[0])
    }

    /// [`Self::stem`] for `ctx_batch` contexts.
    fn stem_for(
        &self,
        x: &Array,
        y: Option<&Array>,
        t: &Timesteps,
        ctx_batch: i32,
    ) -> Result<Stem> {
        let c = &self.config;
        if x.ndim() != 5 {
            return Err(Error::Input(format!(
                "latent must be [B, C, F, H, W], got {:?}",
                x.shape()
            )));
        }
        let x = match y {
            Some(y) => concatenate(&[cast(x, Dtype::Float32)?, cast(y, Dtype::Float32)?], 1)?,
            None => cast(x, Dtype::Float32)?,
        };
        if x.shape()[1] != c.in_dim {
            return Err(Error::Input(format!(
                "model expects {} input channels (latent + conditioning), got {}",
                c.in_dim,
                x.shape()[1]
            )));
        }
        let b = x.shape()[0];
        if ctx_batch != b {
            return Err(Error::Input(format!(
                "{ctx_batch} context(s) for {b} latent(s)"
            )));
        }

        // Patch embedding: [B, L, pt·ph·pw·C] @ [D, pt·ph·pw·C]ᵀ.
        let (patches, grid) = self.patchify(&x)?;
        let l = patches.shape()[1];
        let w = self.patch_embedding.weight.reshape(&[c.dim, -1])?;
        let h = cast(&patches, w.dtype())?.matmul(w.t())?;
        let h = cast(&h, Dtype::Float32)?.add(cast(&self.patch_embedding.bias, Dtype::Float32)?)?;

        // Time embedding, once per distinct t: e [U, D], e0 [U, 6, D].
        let (uniq, index) = self.timestep_index(t, b, l)?;
        let sin = sinusoidal_embedding(c.freq_dim as usize, &uniq);
        let e = self
            .time_embedding
            .fc2
            .forward(&mlx_rs::nn::silu(self.time_embedding.fc1.forward(&sin)?)?)?;
        let e0 = self
            .time_projection
            .fc
            .forward(&mlx_rs::nn::silu(&e)?)?
            .reshape(&[uniq.len() as i32, 6, c.dim])?;
        let (cos2, sin2) = self.rope(grid)?;
        Ok(Stem {
            h,
            e,
            e0,
            index,
            cos2,
            sin2,
            grid,
        })
    }

    /// The head on the last block's tokens `[B, L, D]` → `[B, L, pt·ph·pw·C_out]` float32:
    /// modulation + e (the time embedding before the projection) → shift, scale.
    pub fn head_tokens(&self, h: &Array, stem: &Stem) -> Result<Array> {
        let hm = Modulation::new(
            self.head.modulation.add(stem.e.expand_dims(1)?)?,
            &stem.index,
        )?; // [U, 2, D]
        let hn = fast::layer_norm(h, None, None, self.config.eps as f32)?;
        let hn = hn
            .multiply(Array::from_f32(1.0).add(hm.chunk(1)?)?)?
            .add(hm.chunk(0)?)?;
        cast(&self.head.head.forward(&hn)?, Dtype::Float32)
    }

    /// [`Self::head_tokens`] then unpatchify → `[B, C_out, F, H, W]` float32.
    pub fn head_forward(&self, h: &Array, stem: &Stem) -> Result<Array> {
        self.unpatchify(&self.head_tokens(h, stem)?, stem.grid)
    }
}

/// Tokens per chunk when `l` tokens run in `chunks` chunks (the last may be shorter).
pub fn chunk_tokens(l: i32, chunks: u32) -> i32 {
    let n = chunks.max(1) as i64;
    ((l as i64 + n - 1) / n).max(1) as i32
}

/// What a forward does with the block stack (see [`WanModel::forward_blocks`]).
#[derive(Debug, Clone, Copy)]
pub enum Blocks<'a> {
    /// Run every block.
    Run,
    /// Run every block and return `blocks(h) − h`.
    Keep,
    /// Skip the blocks: add this residual to the patch embedding.
    Reuse(&'a Array),
}

/// The cross-attention K/V of one embedded context batch for every block
/// ([`WanModel::context_kv`]). Resident for a whole sampling run of an expert: unfolded,
/// `2 · num_layers · B · text_len · dim` elements in the compute dtype — with CFG batched
/// (B = 2, cond + uncond) TI2V-5B holds 2·30·2·512·3072 = 189 M elements (377 MB bf16,
/// 755 MB f32), each A14B expert 2·40·2·512·5120 = 419 M (839 MB bf16, 1.68 GB f32).
/// Folded ([`WanModel::context_kv_folded`]) `text_len` becomes the longest prompt + 1 and
/// the elements are float32: a 100-token prompt holds 0.39× the bf16 bytes above.
/// In exchange each step skips `4 · num_layers · B · text_len · dim²` matmul FLOPs.
#[derive(Debug, Clone)]
pub struct ContextKv {
    /// Contexts in the batch (B).
    pub batch: i32,
    pub blocks: Vec<CrossKv>,
}

impl ContextKv {
    /// Bytes these K/V occupy once evaluated.
    pub fn nbytes(&self) -> usize {
        self.blocks
            .iter()
            .map(|b| b.k.nbytes() + b.v.nbytes())
            .sum()
    }

    /// Bytes of the unfolded K/V for `batch` contexts of `config` in `dtype` (for memory
    /// plans; folded K/V never take more).
    pub fn bytes_for(config: &WanConfig, batch: usize, dtype: Dtype) -> usize {
        2 * config.num_layers as usize
            * batch
            * config.text_len as usize
            * config.dim as usize
            * crate::quant::dtype_bytes(dtype)
    }

    /// Materialise them (once per run; every step then reads them).
    pub fn eval(&self) -> Result<()> {
        mlx_rs::transforms::eval(
            self.blocks
                .iter()
                .flat_map(|b| [Some(&b.k), Some(&b.v), b.bias.as_ref()])
                .flatten(),
        )?;
        Ok(())
    }

    /// Samples `[start, start + n)` of the batch (e.g. cond / uncond for unbatched CFG).
    pub fn slice(&self, start: i32, n: i32) -> Result<Self> {
        use mlx_rs::ops::indexing::IndexOp;
        Ok(Self {
            batch: n,
            blocks: self
                .blocks
                .iter()
                .map(|b| CrossKv {
                    k: b.k.index(start..start + n),
                    v: b.v.index(start..start + n),
                    bias: b.bias.as_ref().map(|a| a.index(start..start + n)),
                })
                .collect(),
        })
    }
}

/// What the blocks consume besides their own weights (see [`WanModel::stem`]).
#[derive(Debug, Clone)]
pub struct Stem {
    /// Patch-embedded tokens `[B, L, D]` float32 (the first block's input).
    pub h: Array,
    /// Time embedding per distinct timestep `[U, D]` (the head's modulation input).
    pub e: Array,
    /// Time projection per distinct timestep `[U, 6, D]` (the blocks' modulation input).
    pub e0: Array,
    /// Row of `e`/`e0` for each token `[B, Li]`.
    pub index: Array,
    /// RoPE tables `[1, L, 1, d]` (`rope::interleaved_tables`).
    pub cos2: Array,
    pub sin2: Array,
    /// Token grid (F/pt, H/ph, W/pw).
    pub grid: [usize; 3],
}

impl Stem {
    pub fn rope(&self) -> Rope<'_> {
        Rope {
            cos: &self.cos2,
            sin: &self.sin2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dit::ModelType;

    fn tiny(in_dim: i32, out_dim: i32) -> WanConfig {
        let mut c = WanConfig::t2v_a14b();
        c.model_type = ModelType::T2v;
        (
            c.in_dim,
            c.out_dim,
            c.dim,
            c.ffn_dim,
            c.num_heads,
            c.num_layers,
            c.text_dim,
        ) = (in_dim, out_dim, 24, 32, 2, 1, 8);
        c
    }

    #[test]
    fn unpatchify_inverts_patchify() {
        let m = WanModel::new(tiny(5, 5)).unwrap();
        let x = mlx_rs::random::normal::<f32>(
            &[2, 5, 3, 4, 6],
            None,
            None,
            &mlx_rs::random::key(1).unwrap(),
        )
        .unwrap();
        let (tokens, grid) = m.patchify(&x).unwrap();
        assert_eq!(grid, [3, 2, 3]);
        assert_eq!(tokens.shape(), &[2, 18, 20]);
        let back = m.unpatchify(&tokens, grid).unwrap();
        let d = back
            .subtract(&x)
            .unwrap()
            .abs()
            .unwrap()
            .max(None)
            .unwrap()
            .item_cast::<f32>();
        assert_eq!(d, 0.0);
    }

    #[test]
    fn patch_tokens_are_fhw_row_major_with_channel_innermost() {
        let m = WanModel::new(tiny(2, 2)).unwrap();
        // x[c, f, h, w] = 1000c + 100f + 10h + w
        let mut v = Vec::new();
        for c in 0..2 {
            for f in 0..1 {
                for h in 0..2 {
                    for w in 0..4 {
                        v.push((1000 * c + 100 * f + 10 * h + w) as f32);
                    }
                }
            }
        }
        let x = Array::from_slice(&v, &[1, 2, 1, 2, 4]);
        let (t, _) = m.patchify(&x).unwrap();
        let t: Vec<f32> = t.as_slice().to_vec();
        // token 1 = patch (f0, h0, w1): pixels (0,2),(0,3),(1,2),(1,3) × channels 0,1
        assert_eq!(&t[8..16], &[2., 1002., 3., 1003., 12., 1012., 13., 1013.]);
    }

    #[test]
    fn bad_inputs_are_clear_errors() {
        let m = WanModel::new(tiny(4, 4)).unwrap();
        let t = Timesteps::PerSample(vec![500.0]);
        let ctx = [mlx_rs::ops::zeros::<f32>(&[3, 8]).unwrap()];
        let odd = mlx_rs::ops::zeros::<f32>(&[1, 4, 1, 3, 4]).unwrap();
        let e = m
            .forward(
                &DitInput {
                    x: &odd,
                    t: &t,
                    context: &ctx,
                    y: None,
                },
                None,
            )
            .unwrap_err();
        assert!(
            e.to_string().contains("not divisible by the patch size"),
            "{e}"
        );
        let wrong_c = mlx_rs::ops::zeros::<f32>(&[1, 3, 1, 2, 2]).unwrap();
        let e = m
            .forward(
                &DitInput {
                    x: &wrong_c,
                    t: &t,
                    context: &ctx,
                    y: None,
                },
                None,
            )
            .unwrap_err();
        assert!(e.to_string().contains("4 input channels"), "{e}");
        let long = [mlx_rs::ops::zeros::<f32>(&[600, 8]).unwrap()];
        let x = mlx_rs::ops::zeros::<f32>(&[1, 4, 1, 2, 2]).unwrap();
        let e = m
            .forward(
                &DitInput {
                    x: &x,
                    t: &t,
                    context: &long,
                    y: None,
                },
                None,
            )
            .unwrap_err();
        assert!(e.to_string().contains("text_len"), "{e}");
        let two = Timesteps::PerSample(vec![1.0, 2.0]);
        let e = m
            .forward(
                &DitInput {
                    x: &x,
                    t: &two,
                    context: &ctx,
                    y: None,
                },
                None,
            )
            .unwrap_err();
        assert!(e.to_string().contains("timesteps"), "{e}");
    }
}
