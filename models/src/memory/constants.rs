//! The one table of backend-specific constants of the memory model.
//!
//! Every number here is "how many live copies of a tensor of this shape MLX holds at the
//! peak of a phase", so the formulas in [`super::model`] stay pure shape arithmetic and a
//! backend differs only by this table. The CPU row is *measured* on this project's Linux
//! box (MLX 0.32.2 CPU backend, `examples/calibrate.rs`, README "Memory plan"); the Metal
//! row is *assumed* from MLX's Metal source and must be recalibrated on the first Mac run
//! (`cargo run --release -p wan-models --example calibrate -- --fit`), see
//! [`METAL_RECALIBRATE`].
//!
//! What MLX allocates, per backend (read from MLX's `fast.cpp` and
//! `backend/metal/scaled_dot_product_attention.cpp`):
//! - `fast::scaled_dot_product_attention` on the **CPU** always takes the composed fallback:
//!   `q·scale`, `scores = q·kᵀ` materialised as `[B, H, Lq, Lk]` in the compute dtype,
//!   a precise softmax that reuses the scores buffer, then `scores·v`: one score copy at
//!   the peak (measured 0.96). The inference path's CPU softmax (`Kernels::Fast`) keeps
//!   four (scores, `2^n` bits, weights, and what MLX's evaluation order leaves alive).
//!   At TI2V-5B 1280×704×121 one copy is 2·24·27 280²·4 B ≈ 143 GB: the CPU backend
//!   cannot run official sizes.
//! - On **Metal** the fused `sdpa_full` kernel (head dim 64/80/128, query length > 8, no or
//!   an array mask) never materialises the scores; Wan's head dim is 128, umT5's is 64.
//!   umT5's additive position bias `[1, H, L, L]` (and bias + key mask) is still built.
use serde::Serialize;

/// Which MLX backend runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// MLX's CPU backend (Linux development and CI; measured).
    Cpu,
    /// Apple silicon GPU (the target; assumed until recalibrated on a Mac).
    Metal,
}

impl Backend {
    /// The backend this build runs on: Metal on macOS, the CPU elsewhere.
    pub fn current() -> Self {
        if cfg!(target_os = "macos") {
            Backend::Metal
        } else {
            Backend::Cpu
        }
    }

    pub fn constants(self) -> &'static Constants {
        match self {
            Backend::Cpu => &CPU,
            Backend::Metal => &METAL,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            Backend::Metal => "metal",
        }
    }

    /// Default compute dtype of the DiT and umT5: bf16 on Metal (the official precision,
    /// the fast path), float32 on the CPU (MLX's CPU bf16 matmul is ~30× slower; parity
    /// tests run in f32).
    pub fn default_dtype(self) -> mlx_rs::Dtype {
        match self {
            Backend::Cpu => mlx_rs::Dtype::Float32,
            Backend::Metal => mlx_rs::Dtype::Bfloat16,
        }
    }
}

/// Live copies at the peak of each phase, per sample (batch multiplies them). "f32" copies
/// stay float32 whatever the compute dtype (residual stream, norms, RoPE, softmax);
/// "cdt" copies are in the compute dtype (bf16 on Metal, f32 on the CPU by default).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Constants {
    /// Fraction of the machine's memory a plan may use (the rest: OS, the app, caches).
    pub budget_fraction: f64,

    // DiT step (one block at a time; MLX frees each block's temporaries), as the sampling
    // loop runs it (context K/V resident, `Kernels::Fast`). Self-attention: [L, D] working
    // copies (residual stream, norms, modulated input, q/k/v, heads-major copies, RoPE) and
    // the [H, L, L] scores; FFN: fewer [L, D] copies, two or more [L, ffn] hidden copies
    // and whatever of the scores MLX's depth-first evaluation still holds; cross-attention:
    // [L, D] copies and [H, L, text_len] scores (the K/V are resident, counted apart).
    pub dit_self_f32: f64,
    pub dit_self_cdt: f64,
    pub dit_scores: f64,
    pub dit_ffn_f32: f64,
    pub dit_ffn_cdt: f64,
    pub dit_ffn_hidden_f32: f64,
    pub dit_ffn_hidden_cdt: f64,
    pub dit_ffn_scores: f64,
    pub dit_cross_f32: f64,
    pub dit_cross_scores: f64,
    /// Token-chunked blocks: float32 `[L, D]` copies that stay full-length while the chunks
    /// run (the block's input, the finished output chunks, the stem's tokens, and what
    /// joining the chunks leaves — measured 4.5 with the K/V counted apart); the chunk's own
    /// stages use the counts above at the chunk's length.
    pub dit_chunked_f32: f64,

    // umT5 encode of one prompt padded to text_len: [H, L, L] bias/score copies, [L, D]
    // stream copies and [L, ffn] copies; one more bias copy from the second layer on.
    pub t5_attn: f64,
    pub t5_attn_deep: f64,
    pub t5_stream: f64,
    pub t5_ffn: f64,

    /// VAE decode: live copies of the largest activation of one latent frame (im2col
    /// conv inputs dominate), per VAE kind (2.1, 2.2).
    pub vae21_live: f64,
    pub vae22_live: f64,
    /// VAE encode: the same for the encoder's largest activation of one chunk.
    pub vae21_enc_live: f64,
    pub vae22_enc_live: f64,
    /// Copies of the decoded video `[3, F, H, W]` f32 held while the chunks are joined,
    /// unpatchified and clamped.
    pub vae_video_copies: f64,
}

/// MLX CPU backend, measured (see the module docs and README "Memory plan"). The DiT
/// counts are the inference path (`Kernels::Fast`: its CPU softmax keeps the scores, the
/// int `2^n` bits and the weights — 4 score copies — and its GELU 4 `[L, ffn]` copies);
/// fitted on full-width TI2V-5B / A14B blocks, with one-head and widened-FFN probes to
/// separate the stages (README "Calibration"). On the CPU every copy is f32, so the
/// f32/compute-dtype split of the [L, D] copies is not measurable here: it follows what
/// each tensor is in the code (norms, RoPE and the residual stream f32; projections and
/// heads-major copies in the compute dtype).
pub const CPU: Constants = Constants {
    budget_fraction: 0.8,
    dit_self_f32: 11.0,
    dit_self_cdt: 7.5,
    dit_scores: 4.0,
    dit_ffn_f32: 9.0,
    dit_ffn_cdt: 3.0,
    dit_ffn_hidden_f32: 3.5,
    dit_ffn_hidden_cdt: 0.5,
    dit_ffn_scores: 1.5,
    dit_cross_f32: 10.0,
    dit_cross_scores: 9.0,
    dit_chunked_f32: 4.5,
    t5_attn: 3.0,
    t5_attn_deep: 1.25,
    t5_stream: 16.0,
    t5_ffn: 3.0,
    vae21_live: 43.0,
    vae22_live: 62.0,
    vae21_enc_live: 82.0,
    vae22_enc_live: 82.0,
    vae_video_copies: 3.0,
};

/// Apple silicon (Metal), assumed: the step runs `Kernels::Fast` there too, but only its
/// fused RoPE differs from MLX's own ops — softmax and GELU are MLX's fused kernels and
/// `sdpa_full` never materialises scores. So: the CPU's self-attention [L, D] copies minus
/// the fallback's scaled-q copy, no scores anywhere, and the FFN as measured on the CPU
/// with MLX's own GELU (`Kernels::Exact` probes: 12 [L, D] + 2 [L, ffn] copies).
pub const METAL: Constants = Constants {
    budget_fraction: 0.8,
    dit_self_cdt: CPU.dit_self_cdt - 1.0,
    dit_scores: 0.0,
    dit_ffn_hidden_f32: 1.5,
    dit_ffn_hidden_cdt: 0.5,
    dit_ffn_scores: 0.0,
    dit_cross_scores: 0.0,
    t5_attn: 2.0,
    ..CPU
};

/// What the first Mac run must recalibrate, in words (printed by `bench --plan-only`'s
/// notes and kept in README).
pub const METAL_RECALIBRATE: &str = "Metal constants are assumed (fused attention: no \
score matrices; every other copy count taken from the CPU measurement); the first Mac run \
must re-measure them with `examples/calibrate` (DiT blocks, umT5 layers, VAE decode) and \
check MLX's buffer cache and the GPU working-set limit against the 80 % budget";

/// What the runtime can do today, as far as memory goes. Each flag belongs to another
/// part of the code and is flipped where that part lands (one place, so the plan never
/// counts on something the pipeline does not do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Runtime {
    /// The DiT is cast (or quantized) tensor by tensor while it is read, so an f32 folder
    /// loaded in bf16 never holds the f32 copy (issue 12's load transform). Without it,
    /// `WanModel::load` builds the f32 model and `set_compute_dtype` casts afterwards.
    pub per_tensor_load_cast: bool,
    /// `LoadOptions::quantize` works (issue 12): the plan may quantize a dense folder.
    pub on_load_quantization: bool,
    /// The context K/V are computed once per run and expert and kept (issue 16).
    pub context_kv_cache: bool,
}

impl Runtime {
    /// Everything the companion issues add (the README plan table assumes it).
    pub const COMPLETE: Runtime = Runtime {
        per_tensor_load_cast: true,
        on_load_quantization: true,
        context_kv_cache: true,
    };
}

/// This build's runtime.
pub const RUNTIME: Runtime = Runtime::COMPLETE;

/// Bytes per element of a dtype.
pub fn dtype_bytes(d: mlx_rs::Dtype) -> u64 {
    crate::quant::dtype_bytes(d) as u64
}
