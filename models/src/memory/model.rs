//! Bytes of each component and of each phase's working set, from shapes alone (no weights
//! are read): the DiT by dtype and quantization (through `WanModel::expected_params` and
//! `quant::Recipe`), umT5, the VAE; one DiT step (CFG batch, attention as the backend
//! really allocates it), a prompt encode, a VAE decode/encode chunk and the decoded video.
//! Copy counts come from the backend's row of [`super::constants`].
use mlx_rs::Dtype;

use super::constants::{Constants, dtype_bytes};
use crate::config::VaeKind;
use crate::dit::{WanConfig, WanModel};
use crate::error::Result;
use crate::quant::Recipe;
use crate::t5::T5Config;
use crate::vae::VaeConfig;

/// DiT tensors that `WanModel::set_compute_dtype` casts (everything else stays float32:
/// time embedding and projection, norms, modulation, head).
fn cast_to_compute(key: &str) -> bool {
    key == "patch_embedding.weight"
        || key.starts_with("text_embedding.")
        || (key.starts_with("blocks.")
            && [".self_attn.", ".cross_attn.", ".ffn."]
                .iter()
                .any(|p| key.contains(p))
            && !key.contains(".norm_"))
}

/// Resident bytes of one DiT after loading with compute `dtype` (and `quant`), and the
/// largest single tensor as stored in a `source` dtype (what a per-tensor load holds
/// beside the finished ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DitBytes {
    pub resident: u64,
    pub largest_source_tensor: u64,
    /// The same DiT entirely in `source` dtype (a load that casts after reading).
    pub source_total: u64,
}

pub fn dit_bytes(
    cfg: &WanConfig,
    dtype: Dtype,
    quant: Option<&Recipe>,
    source: Dtype,
) -> Result<DitBytes> {
    Ok(dit_bytes_of(&dit_params(cfg)?, dtype, quant, source))
}

/// Every DiT tensor (official key, shape) of `cfg` (lazy placeholders: no memory).
pub fn dit_params(cfg: &WanConfig) -> Result<Vec<(String, Vec<i32>)>> {
    Ok(WanModel::new(cfg.clone())?.expected_params())
}

/// [`dit_bytes`] over a precomputed [`dit_params`] list.
pub fn dit_bytes_of(
    params: &[(String, Vec<i32>)],
    dtype: Dtype,
    quant: Option<&Recipe>,
    source: Dtype,
) -> DitBytes {
    let (mut resident, mut largest, mut total) = (0u64, 0u64, 0u64);
    for (key, shape) in params {
        let key = key.as_str();
        let n: u64 = shape.iter().map(|&d| d as u64).product();
        let dense = if cast_to_compute(key) {
            dtype
        } else {
            Dtype::Float32
        };
        resident += match quant {
            Some(r) => r.tensor_bytes(key, shape, dense),
            None => n * dtype_bytes(dense),
        };
        let src = n * dtype_bytes(source);
        largest = largest.max(src);
        total += src;
    }
    DitBytes {
        resident,
        largest_source_tensor: largest,
        source_total: total,
    }
}

/// Tokens of a latent `[C, F', h, w]` after the DiT's patch embedding.
pub fn dit_tokens(cfg: &WanConfig, latent: [i32; 4]) -> u64 {
    let [pt, ph, pw] = cfg.patch_size;
    ((latent[1] / pt) * (latent[2] / ph) * (latent[3] / pw)) as u64
}

/// Peak working set of one DiT forward over `tokens` tokens in a batch of `batch` (2 when
/// cond and uncond run together), weights and the context K/V excluded: the largest of the
/// self-attention, cross-attention and FFN stages of one block (blocks run one after
/// another and MLX frees each block's temporaries, so depth adds nothing). The stages
/// overlap a little: MLX evaluates the block's graph depth-first, so part of the
/// self-attention's score buffers can still be alive while the FFN runs.
///
/// With `chunks > 1` every block runs over that many token chunks, evaluated one after
/// another (`WanAttentionBlock::forward_kv_chunked`): the stages then hold one chunk's
/// tokens (its queries against all the keys), on top of the block's full-length tensors —
/// `dit_chunked_f32` float32 `[L, D]` copies (input, finished chunks, the stem's tokens)
/// and the self-attention's K and V in the compute dtype.
pub fn dit_step_bytes(
    cfg: &WanConfig,
    tokens: u64,
    batch: u64,
    dtype: Dtype,
    k: &Constants,
    chunks: u32,
) -> u64 {
    let l = tokens as f64;
    let d = cfg.dim as f64;
    let c = dtype_bytes(dtype) as f64;
    let per_sample = if chunks <= 1 || tokens <= 1 {
        dit_stage_bytes(cfg, l, l, c, k)
    } else {
        let lc = crate::dit::model::chunk_tokens(tokens.min(i32::MAX as u64) as i32, chunks);
        l * d * (k.dit_chunked_f32 * 4.0 + 2.0 * c) + dit_stage_bytes(cfg, lc as f64, l, c, k)
    };
    (batch as f64 * per_sample) as u64
}

/// The largest stage of one block for `l` query tokens against `keys` self-attention keys,
/// one sample, compute dtype of `c` bytes.
fn dit_stage_bytes(cfg: &WanConfig, l: f64, keys: f64, c: f64, k: &Constants) -> f64 {
    let (d, f) = (cfg.dim as f64, cfg.ffn_dim as f64);
    let (h, lc) = (cfg.num_heads as f64, cfg.text_len as f64);
    let scores = h * l * keys * c;
    let self_stage = l * d * (k.dit_self_f32 * 4.0 + k.dit_self_cdt * c) + k.dit_scores * scores;
    let ffn = l * d * (k.dit_ffn_f32 * 4.0 + k.dit_ffn_cdt * c)
        + l * f * (k.dit_ffn_hidden_f32 * 4.0 + k.dit_ffn_hidden_cdt * c)
        + k.dit_ffn_scores * scores;
    let cross = k.dit_cross_f32 * l * d * 4.0 + k.dit_cross_scores * h * l * lc * c;
    self_stage.max(cross).max(ffn)
}

/// The embedded context the denoiser keeps for a whole run: `[B, text_len, dim]` f32.
pub fn dit_context_bytes(cfg: &WanConfig, batch: u64) -> u64 {
    batch * (cfg.text_len * cfg.dim) as u64 * 4
}

/// Context K/V computed once per run and expert (issue 16's cache): per resident expert
/// 2 (cond, uncond) × layers × 2 (K, V) × text_len × dim values in the compute dtype.
pub fn context_kv_bytes(cfg: &WanConfig, cfg_passes: u64, dtype: Dtype) -> u64 {
    cfg_passes * (cfg.num_layers as u64) * 2 * (cfg.text_len * cfg.dim) as u64 * dtype_bytes(dtype)
}

/// Latent-sized state of the sampling loop (latent, x0, noise prediction, solver history:
/// UniPC keeps its last outputs; i2v conditioning), float32.
pub fn sampler_state_bytes(latent: [i32; 4], cond_channels: i32) -> u64 {
    let n = latent.iter().map(|&v| v as u64).product::<u64>();
    let per_c = n / latent[0] as u64;
    8 * n * 4 + cond_channels as u64 * per_c * 4
}

/// umT5 weights (every tensor in `dtype`, as `T5Encoder::load` casts them).
pub fn t5_bytes(cfg: &T5Config, dtype: Dtype) -> u64 {
    cfg.num_params() * dtype_bytes(dtype)
}

/// Peak working set of encoding one prompt padded to `tokens` (the pipelines encode the
/// prompt and the negative prompt one after the other). The stream and attention run in
/// float32 whatever the weight dtype; only the FFN hidden is in the weights' dtype.
pub fn t5_encode_bytes(cfg: &T5Config, tokens: u64, dtype: Dtype, k: &Constants) -> u64 {
    let (l, d, f, h) = (
        tokens as f64,
        cfg.dim as f64,
        cfg.dim_ffn as f64,
        cfg.num_heads as f64,
    );
    let attn = k.t5_attn
        + if cfg.num_layers > 1 {
            k.t5_attn_deep
        } else {
            0.0
        };
    let c = dtype_bytes(dtype) as f64;
    (attn * h * l * l * 4.0 + k.t5_stream * l * d * 4.0 + k.t5_ffn * l * f * c) as u64
}

/// Every VAE tensor (official key, shape) of `cfg` (lazy placeholders: no memory).
pub fn vae_params(cfg: &VaeConfig) -> Result<Vec<(String, Vec<i32>)>> {
    Ok(match cfg.kind {
        VaeKind::Wan21 => crate::checkpoint::expected_params(
            &crate::vae::vae21::WanVae21::new(cfg)?,
            &crate::vae::keys::to_official,
        ),
        VaeKind::Wan22 => crate::checkpoint::expected_params(
            &crate::vae::vae22::WanVae22::new(cfg)?,
            &crate::vae::keys::to_official,
        ),
    })
}

/// VAE weights (float32, as the pipelines load them).
pub fn vae_bytes(cfg: &VaeConfig) -> Result<u64> {
    Ok(vae_params(cfg)?
        .iter()
        .map(|(_, s)| s.iter().map(|&d| d as u64).product::<u64>() * 4)
        .sum())
}

/// Elements of the decoder's largest activation per latent cell for one latent frame (the
/// later chunks, 4 output frames, are the largest): walk (frames, resolution, channels)
/// through the official decoder stages.
fn decoder_peak_per_cell(cfg: &VaeConfig) -> u64 {
    let n = cfg.dim_mult.len();
    let mut dims: Vec<u64> = vec![(cfg.dec_dim * cfg.dim_mult[n - 1]) as u64];
    dims.extend(cfg.dim_mult.iter().rev().map(|&m| (cfg.dec_dim * m) as u64));
    let up_t: Vec<bool> = cfg.temperal_downsample.iter().rev().copied().collect();
    let (mut frames, mut res) = (1u64, 1u64);
    let mut peak = (cfg.z_dim as u64).max(dims[0]);
    for i in 0..n {
        peak = peak.max(frames * res * res * dims[i].max(dims[i + 1]));
        if i != n - 1 {
            if up_t.get(i).copied().unwrap_or(false) {
                frames *= 2;
                // time_conv output holds 2C channels before the frames are split.
                peak = peak.max(frames * res * res * dims[i + 1]);
            }
            res *= 2;
            peak = peak.max(frames * res * res * dims[i + 1]);
        }
    }
    peak
}

/// Elements of the encoder's largest activation per latent cell for one chunk of `frames`
/// frames (4, or 1 for a single image).
fn encoder_peak_per_cell(cfg: &VaeConfig, frames: u64) -> u64 {
    let n = cfg.dim_mult.len();
    // The encoder sees `2^(n-1)` × its input grid per latent cell (2.2: after the 2×2
    // patchify).
    let dims: Vec<u64> = std::iter::once(1)
        .chain(cfg.dim_mult.iter().copied())
        .map(|m| (cfg.dim * m) as u64)
        .collect();
    let (mut frames, mut res) = (frames, 1u64 << (n - 1));
    let mut peak = 0u64;
    for i in 0..n {
        peak = peak.max(frames * res * res * dims[i].max(dims[i + 1]));
        if i != n - 1 {
            res /= 2;
            if cfg.temperal_downsample.get(i).copied().unwrap_or(false) {
                frames = (frames / 2).max(1);
            }
        }
    }
    peak
}

fn live(kind: VaeKind, k: &Constants, encode: bool) -> f64 {
    match (kind, encode) {
        (VaeKind::Wan21, false) => k.vae21_live,
        (VaeKind::Wan22, false) => k.vae22_live,
        (VaeKind::Wan21, true) => k.vae21_enc_live,
        (VaeKind::Wan22, true) => k.vae22_enc_live,
    }
}

/// Peak working set of decoding one latent frame of an `h × w` latent tile (weights and
/// the decoded video excluded).
pub fn vae_decode_chunk_bytes(cfg: &VaeConfig, h: i32, w: i32, k: &Constants) -> u64 {
    let cells = (h.max(0) as u64) * (w.max(0) as u64);
    (live(cfg.kind, k, false) * (decoder_peak_per_cell(cfg) * cells * 4) as f64) as u64
}

/// Peak working set of encoding a video of `frames` frames whose latent grid is `h × w`
/// (chunks of 4 frames after the first; a single image is one 1-frame chunk).
pub fn vae_encode_chunk_bytes(cfg: &VaeConfig, frames: i32, h: i32, w: i32, k: &Constants) -> u64 {
    let cells = (h.max(0) as u64) * (w.max(0) as u64);
    let chunk = if frames > 1 { 4 } else { 1 };
    (live(cfg.kind, k, true) * (encoder_peak_per_cell(cfg, chunk) * cells * 4) as f64) as u64
}

/// A decoded video `[3, F, H, W]` float32.
pub fn video_bytes(frames: i32, width: i32, height: i32) -> u64 {
    3 * frames.max(0) as u64 * width.max(0) as u64 * height.max(0) as u64 * 4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dit_weights_follow_dtype_and_quantization() {
        let cfg = WanConfig::ti2v_5b();
        let f32b = dit_bytes(&cfg, Dtype::Float32, None, Dtype::Float32).unwrap();
        let bf16 = dit_bytes(&cfg, Dtype::Bfloat16, None, Dtype::Float32).unwrap();
        // TI2V-5B: 4.999 B parameters (official); f32 resident = source total.
        assert_eq!(f32b.resident, f32b.source_total);
        let params = f32b.source_total / 4;
        assert!((4_990_000_000..5_010_000_000).contains(&params), "{params}");
        // bf16 casts everything but the small f32 parts (time embedding/projection, head,
        // norms, modulation): just over half.
        let ratio = bf16.resident as f64 / f32b.resident as f64;
        assert!((0.5..0.53).contains(&ratio), "{ratio}");
        let q8 = Recipe::all(crate::quant::QuantSpec::Q8);
        let q = dit_bytes(&cfg, Dtype::Bfloat16, Some(&q8), Dtype::Float32).unwrap();
        let r = q.resident as f64 / bf16.resident as f64;
        assert!((0.5..0.56).contains(&r), "q8/bf16 = {r}");
        // The largest official tensor is the time projection [6·3072, 3072] f32.
        assert_eq!(f32b.largest_source_tensor, 6 * 3072 * 3072 * 4);
    }

    #[test]
    fn cpu_attention_scores_grow_with_the_square_of_the_tokens() {
        let cfg = WanConfig::ti2v_5b();
        let k = &super::super::constants::CPU;
        let m = &super::super::constants::METAL;
        let small = dit_step_bytes(&cfg, 1000, 2, Dtype::Float32, k, 1);
        let large = dit_step_bytes(&cfg, 27_280, 2, Dtype::Float32, k, 1);
        // 2·24·27280²·4 B of scores alone.
        assert!(large > 2 * 24 * 27_280u64.pow(2) * 4);
        assert!(large > 100 * small);
        // Metal's fused kernel: linear in the tokens.
        let ms = dit_step_bytes(&cfg, 1000, 2, Dtype::Bfloat16, m, 1);
        let ml = dit_step_bytes(&cfg, 27_280, 2, Dtype::Bfloat16, m, 1);
        assert!(ml < 30 * ms, "{ml} vs {ms}");
    }

    #[test]
    fn t5_and_vae_sizes() {
        let t5 = T5Config::umt5_xxl();
        // 5 680 910 336 parameters (spec §3.2).
        assert_eq!(t5_bytes(&t5, Dtype::Bfloat16), 5_680_910_336 * 2);
        let v22 = vae_bytes(&VaeConfig::wan22()).unwrap();
        let v21 = vae_bytes(&VaeConfig::wan21()).unwrap();
        assert!(v22 > v21 && v21 > 100 << 20, "{v22} {v21}");
        assert_eq!(video_bytes(121, 1280, 704), 3 * 121 * 1280 * 704 * 4);
    }
}
