//! Precomputed training inputs: each clip VAE-encoded once and each caption T5-encoded
//! once, stored as safetensors under a cache folder (default `DATA/.wan_cache/`):
//!
//! | file | tensor | key hashes |
//! |---|---|---|
//! | `latents/<key>.safetensors` | `latent [z, T, h, w]` f32 | media bytes, W, H, F, VAE identity, version |
//! | `text/<key>.safetensors` | `context [L, text_dim]` f32 | caption, T5 + tokenizer identity, version |
//!
//! Separate keys mean an edited caption re-encodes only its text, and a different size or
//! VAE only the latents. Hashing the media *bytes* (not path or mtime) keeps the cache valid
//! across renames and `touch`, and catches an edited file. Model identity is file name +
//! size + mtime (hashing gigabytes of weights on every run would cost more than it saves).
//! Writes go through the atomic safetensors writer; an unreadable cache file is a miss.
//!
//! The encoders are built only when something is missing and are dropped before
//! [`prepare`] returns, so training holds only the DiT and the adapters.
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use mlx_rs::Array;

use crate::checkpoint::safetensors::{SafeTensors, save};
use crate::error::{Error, Result};
pub use crate::hash::Fnv128;
use crate::t5::TextEncoder;
use crate::train::data::folder::{ClipSpec, DatasetFolder, clip_tensor, load_clip};
use crate::vae::WanVae;
use crate::video::Frames;

/// Bump when the stored content or its meaning changes: every old entry becomes a miss.
pub const CACHE_VERSION: u32 = 1;

/// Decoded clips kept between the validation pass and the encode pass up to this size;
/// beyond it they are decoded again (cheap next to the VAE).
const KEEP_DECODED_BYTES: usize = 512 << 20;

/// Content hash of a file (streamed).
pub fn file_hash(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Fnv128::default();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.hex())
}

/// `name:size:mtime` of a model file (its identity in cache keys).
pub fn model_identity(path: &Path) -> Result<String> {
    let md = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let mtime = md
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    Ok(format!("{name}:{}:{mtime}", md.len()))
}

/// Identity of the encoders (see [`model_identity`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncoderIds {
    pub vae: String,
    /// T5 weights and tokenizer.
    pub t5: String,
}

pub fn latent_key(media_hash: &str, spec: &ClipSpec, frames: u32, vae: &str) -> String {
    Fnv128::default()
        .field(b"latent")
        .field(&CACHE_VERSION.to_le_bytes())
        .field(media_hash.as_bytes())
        .field(&spec.width.to_le_bytes())
        .field(&spec.height.to_le_bytes())
        .field(&frames.to_le_bytes())
        .field(vae.as_bytes())
        .hex()
}

pub fn text_key(caption: &str, t5: &str) -> String {
    Fnv128::default()
        .field(b"text")
        .field(&CACHE_VERSION.to_le_bytes())
        .field(caption.as_bytes())
        .field(t5.as_bytes())
        .hex()
}

/// One training example, ready for the DiT.
#[derive(Debug, Clone)]
pub struct CachedItem {
    /// Media file name (for logs).
    pub name: String,
    /// `[z, T, h, w]` float32, normalised as the DiT expects.
    pub latent: Array,
    /// `[L, text_dim]` float32, unpadded.
    pub context: Array,
}

/// What [`prepare`] found in the cache and what it had to compute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    /// Clips whose latents came from the cache / were VAE-encoded now.
    pub cached: usize,
    pub encoded: usize,
    /// Captions whose contexts came from the cache / were T5-encoded now.
    pub text_cached: usize,
    pub text_encoded: usize,
}

pub struct Prepared {
    pub items: Vec<CachedItem>,
    pub stats: CacheStats,
    /// Cache paths of each item's latent and context (parallel to `items`).
    pub files: Vec<(PathBuf, PathBuf)>,
}

fn read_cached(path: &Path, name: &str) -> Option<Array> {
    let st = SafeTensors::open(path).ok()?;
    let a = st.array(name).ok()?;
    a.eval().ok()?;
    Some(a)
}

fn write_cached(path: &Path, name: &str, a: &Array, source: &str) -> Result<()> {
    let meta = BTreeMap::from([
        ("source".to_string(), source.to_string()),
        ("version".to_string(), CACHE_VERSION.to_string()),
    ]);
    save(
        path,
        &BTreeMap::from([(name.to_string(), a.clone())]),
        &meta,
    )
}

/// Make sure every item of `ds` has its latent and context in `cache_dir`, then load them
/// all. The VAE / T5 are built (by `load_vae` / `load_t5`) only if something is missing,
/// and dropped here. Every unreadable / too-short clip and every scan problem is reported
/// in one error before any encoder is loaded.
pub fn prepare(
    ds: &DatasetFolder,
    spec: &ClipSpec,
    cache_dir: &Path,
    ids: &EncoderIds,
    load_vae: impl FnOnce() -> Result<WanVae>,
    load_t5: impl FnOnce() -> Result<TextEncoder>,
) -> Result<Prepared> {
    spec.validate()?;
    let (lat_dir, txt_dir) = (cache_dir.join("latents"), cache_dir.join("text"));
    for d in [&lat_dir, &txt_dir] {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    let mut problems = Vec::new();
    let mut files = Vec::with_capacity(ds.items.len());
    for it in &ds.items {
        let h = match file_hash(&it.media) {
            Ok(h) => h,
            Err(e) => {
                problems.push(format!("{}: {e}", it.name()));
                String::new()
            }
        };
        let lk = latent_key(&h, spec, spec.frames_for(it.kind), &ids.vae);
        let tk = text_key(&it.caption, &ids.t5);
        files.push((
            lat_dir.join(format!("{lk}.safetensors")),
            txt_dir.join(format!("{tk}.safetensors")),
        ));
    }

    // Validation pass: decode every clip that is not cached yet.
    let mut decoded: Vec<Option<Frames>> = vec![None; ds.items.len()];
    let mut kept = 0usize;
    let mut missing = Vec::new();
    for (i, it) in ds.items.iter().enumerate() {
        if read_cached(&files[i].0, "latent").is_some() {
            continue;
        }
        missing.push(i);
        match load_clip(it, spec) {
            Ok(f) => {
                let n: usize = f.frames.iter().map(Vec::len).sum();
                if kept + n <= KEEP_DECODED_BYTES {
                    kept += n;
                    decoded[i] = Some(f);
                }
            }
            Err(e) => problems.push(e.to_string().replace("invalid input: ", "")),
        }
    }
    ds.check(&problems)?;

    let mut stats = CacheStats {
        cached: ds.items.len() - missing.len(),
        ..Default::default()
    };
    if !missing.is_empty() {
        let vae = load_vae()?;
        for &i in &missing {
            let it = &ds.items[i];
            let frames = match decoded[i].take() {
                Some(f) => f,
                None => load_clip(it, spec)?,
            };
            let latent = vae
                .encode(&clip_tensor(&frames)?)
                .map_err(|e| Error::Input(format!("{}: VAE encode: {e}", it.name())))?;
            write_cached(&files[i].0, "latent", &latent, &it.name())?;
            stats.encoded += 1;
        }
    }

    let text_missing: Vec<usize> = (0..ds.items.len())
        .filter(|&i| read_cached(&files[i].1, "context").is_none())
        .collect();
    stats.text_cached = ds.items.len() - text_missing.len();
    if !text_missing.is_empty() {
        let t5 = load_t5()?;
        for &i in &text_missing {
            // Two items may share a caption: the first one wrote it already.
            if read_cached(&files[i].1, "context").is_some() {
                stats.text_cached += 1;
                continue;
            }
            let it = &ds.items[i];
            let enc = t5.encode(&[it.caption.as_str()])?;
            if enc.truncated.first().copied().unwrap_or(false) {
                eprintln!(
                    "warning: caption of {} is longer than {} tokens; truncated",
                    it.name(),
                    t5.tokenizer.text_len()
                );
            }
            let ctx = enc
                .contexts
                .into_iter()
                .next()
                .ok_or_else(|| Error::Input("text encoder returned no context".into()))?;
            write_cached(&files[i].1, "context", &ctx, &it.name())?;
            stats.text_encoded += 1;
        }
    }

    let items = ds
        .items
        .iter()
        .zip(&files)
        .map(|(it, (lp, tp))| {
            let bad = |p: &Path| Error::format(p, "cache entry unreadable right after writing");
            Ok(CachedItem {
                name: it.name(),
                latent: read_cached(lp, "latent").ok_or_else(|| bad(lp))?,
                context: read_cached(tp, "context").ok_or_else(|| bad(tp))?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Prepared {
        items,
        stats,
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_change_with_every_input() {
        let s = ClipSpec {
            width: 64,
            height: 64,
            frames: 5,
        };
        let k = latent_key("abc", &s, 5, "vae:1:2");
        assert_eq!(k, latent_key("abc", &s, 5, "vae:1:2"));
        assert_ne!(k, latent_key("abd", &s, 5, "vae:1:2"));
        assert_ne!(
            k,
            latent_key("abc", &ClipSpec { width: 32, ..s }, 5, "vae:1:2")
        );
        assert_ne!(k, latent_key("abc", &s, 1, "vae:1:2"));
        assert_ne!(k, latent_key("abc", &s, 5, "vae:1:3"));
        assert_ne!(text_key("a fox", "t5"), text_key("a fox ", "t5"));
        assert_ne!(text_key("a fox", "t5"), text_key("a fox", "t5b"));
    }
}
