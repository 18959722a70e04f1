//! A small on-disk cache of prompt contexts (issue 4, memory): re-running a prompt with
//! the same text encoder skips loading the ~11 GB umT5-XXL entirely.
//!
//! Key = (prompt exactly as given, checkpoint identity, text_len, compute dtype). The file
//! name is a stable 64-bit FNV-1a hash of the key; the full key is stored in the file's
//! metadata and compared on read, so a hash collision is a miss, never a wrong context.
//! Files are safetensors (`context` `[L, dim]` f32) written atomically; the oldest entries
//! beyond `max_entries` are removed after each insert. A corrupt or foreign file is a miss.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use mlx_rs::{Array, Dtype};

use crate::checkpoint::safetensors::{SafeTensors, save};
use crate::error::{Error, Result};
use crate::t5::context::{Encoded, TextEncoder};

const KEY_META: &str = "wan_t5_cache_key";
const TRUNC_META: &str = "wan_t5_truncated";
const EXT: &str = "t5ctx.safetensors";

#[derive(Debug, Clone)]
pub struct ContextCache {
    dir: PathBuf,
    max_entries: usize,
}

/// Identity of a checkpoint file for cache keys: canonical path, size and mtime (a
/// re-downloaded or converted file gets a new identity without hashing 11 GB).
pub fn checkpoint_identity(path: &Path) -> Result<String> {
    let canon = path
        .canonicalize()
        .map_err(|_| Error::Missing(path.to_path_buf()))?;
    let meta = std::fs::metadata(&canon).map_err(|e| Error::io(&canon, e))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    Ok(format!("{}|{}|{}", canon.display(), meta.len(), mtime))
}

/// Where the CLI keeps prompt contexts: `$WAN_CACHE_DIR/t5-contexts`, else the user
/// cache folder (`~/Library/Caches/wan-studio/…` on macOS, `$XDG_CACHE_HOME` or
/// `~/.cache/wan-studio/…` elsewhere); `None` without a home folder.
pub fn default_dir() -> Option<PathBuf> {
    let sub = "t5-contexts";
    if let Some(d) = std::env::var_os("WAN_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d).join(sub));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from);
    let base = if cfg!(target_os = "macos") {
        home?.join("Library/Caches")
    } else {
        match std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
            Some(d) => PathBuf::from(d),
            None => home?.join(".cache"),
        }
    };
    Some(base.join("wan-studio").join(sub))
}

impl ContextCache {
    pub fn new(dir: impl Into<PathBuf>, max_entries: usize) -> Self {
        Self {
            dir: dir.into(),
            max_entries: max_entries.max(1),
        }
    }

    fn key(prompt: &str, checkpoint: &str, text_len: usize, dtype: Dtype) -> String {
        // Lengths first: no separator inside the prompt can fake another key.
        format!(
            "v1|{}:{checkpoint}|{text_len}|{dtype:?}|{}:{prompt}",
            checkpoint.len(),
            prompt.len()
        )
    }

    fn path_for(&self, key: &str) -> PathBuf {
        self.dir.join(format!(
            "{:016x}.{EXT}",
            crate::hash::fnv1a64(key.as_bytes())
        ))
    }

    /// The cached `[L, dim]` context, or `None` (absent, foreign, unreadable).
    pub fn get(
        &self,
        prompt: &str,
        checkpoint: &str,
        text_len: usize,
        dtype: Dtype,
    ) -> Option<Array> {
        self.get_entry(prompt, checkpoint, text_len, dtype)
            .map(|(a, _)| a)
    }

    /// Context and the prompt's `truncated` flag.
    pub fn get_entry(
        &self,
        prompt: &str,
        checkpoint: &str,
        text_len: usize,
        dtype: Dtype,
    ) -> Option<(Array, bool)> {
        let key = Self::key(prompt, checkpoint, text_len, dtype);
        let st = SafeTensors::open(self.path_for(&key)).ok()?;
        if st.metadata().get(KEY_META) != Some(&key) {
            return None;
        }
        let truncated = st.metadata().get(TRUNC_META).is_some_and(|v| v == "true");
        let a = st.array("context").ok()?;
        (a.ndim() == 2 && a.dtype() == Dtype::Float32).then_some((a, truncated))
    }

    /// Store a context, then evict the oldest entries beyond `max_entries`.
    pub fn put(
        &self,
        prompt: &str,
        checkpoint: &str,
        text_len: usize,
        dtype: Dtype,
        context: &Array,
        truncated: bool,
    ) -> Result<()> {
        if context.ndim() != 2 {
            return Err(Error::Input(format!(
                "a context is [L, dim], got {:?}",
                context.shape()
            )));
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let key = Self::key(prompt, checkpoint, text_len, dtype);
        let tensors = BTreeMap::from([("context".to_string(), context.as_dtype(Dtype::Float32)?)]);
        let meta = BTreeMap::from([
            (KEY_META.to_string(), key.clone()),
            (TRUNC_META.to_string(), truncated.to_string()),
        ]);
        save(&self.path_for(&key), &tensors, &meta)?;
        self.evict()
    }

    fn evict(&self) -> Result<()> {
        let rd = std::fs::read_dir(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let mut entries: Vec<(SystemTime, PathBuf)> = rd
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.to_string_lossy().ends_with(EXT))
            .map(|p| {
                let t = std::fs::metadata(&p)
                    .and_then(|m| m.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                (t, p)
            })
            .collect();
        if entries.len() <= self.max_entries {
            return Ok(());
        }
        entries.sort();
        let excess = entries.len() - self.max_entries;
        for (_, p) in entries.into_iter().take(excess) {
            let _ = std::fs::remove_file(p); // a concurrent eviction is fine
        }
        Ok(())
    }
}

/// Contexts of `prompts` for the encoder identified by `checkpoint` (see
/// [`checkpoint_identity`]), from `cache` where present. `load` builds the encoder only
/// when some prompt misses — a fully cached run never loads umT5 — and the encoder is
/// dropped before returning. New contexts are stored (a failed store is not an error:
/// the cache is an optimisation).
pub fn encode_with_cache(
    cache: Option<&ContextCache>,
    checkpoint: &str,
    prompts: &[&str],
    text_len: usize,
    dtype: Dtype,
    load: impl FnOnce() -> Result<TextEncoder>,
) -> Result<Encoded> {
    let hits: Vec<Option<(Array, bool)>> = prompts
        .iter()
        .map(|p| cache.and_then(|c| c.get_entry(p, checkpoint, text_len, dtype)))
        .collect();
    let misses: Vec<&str> = prompts
        .iter()
        .zip(&hits)
        .filter(|(_, h)| h.is_none())
        .map(|(p, _)| *p)
        .collect();
    let mut fresh = if misses.is_empty() {
        None
    } else {
        let te = load()?;
        if te.tokenizer.text_len() != text_len {
            return Err(Error::Config(format!(
                "tokenizer text_len {} differs from the requested {text_len}",
                te.tokenizer.text_len()
            )));
        }
        let enc = te.encode(&misses)?;
        if let Some(c) = cache {
            for ((p, ctx), tr) in misses.iter().zip(&enc.contexts).zip(&enc.truncated) {
                let _ = c.put(p, checkpoint, text_len, dtype, ctx, *tr);
            }
        }
        Some(enc.contexts.into_iter().zip(enc.truncated))
    };
    let (mut contexts, mut truncated) = (Vec::new(), Vec::new());
    for h in hits {
        let (ctx, tr) = match h {
            Some(hit) => hit,
            None => fresh
                .as_mut()
                .and_then(Iterator::next)
                .ok_or_else(|| Error::Input("encoder returned too few contexts".into()))?,
        };
        contexts.push(ctx);
        truncated.push(tr);
    }
    Ok(Encoded {
        contexts,
        truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("wan-t5-cache-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn round_trip_and_key_separation() {
        let dir = tmp_dir("rt");
        let cache = ContextCache::new(&dir, 8);
        let ctx = Array::from_slice(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[3, 2]);
        assert!(cache.get("a cat", "ck1", 512, Dtype::Float32).is_none());
        cache
            .put("a cat", "ck1", 512, Dtype::Float32, &ctx, true)
            .unwrap();
        let got = cache.get("a cat", "ck1", 512, Dtype::Float32).unwrap();
        assert_eq!(got.shape(), &[3, 2]);
        assert_eq!(got.as_slice::<f32>(), ctx.as_slice::<f32>());
        let (_, truncated) = cache
            .get_entry("a cat", "ck1", 512, Dtype::Float32)
            .unwrap();
        assert!(truncated);
        // Another checkpoint, text_len, dtype or prompt is a miss.
        assert!(cache.get("a cat", "ck2", 512, Dtype::Float32).is_none());
        assert!(cache.get("a cat", "ck1", 256, Dtype::Float32).is_none());
        assert!(cache.get("a cat", "ck1", 512, Dtype::Bfloat16).is_none());
        assert!(cache.get("a cat ", "ck1", 512, Dtype::Float32).is_none());
        // A corrupt file is a miss, not an error.
        let key = ContextCache::key("a cat", "ck1", 512, Dtype::Float32);
        std::fs::write(cache.path_for(&key), b"garbage").unwrap();
        assert!(cache.get("a cat", "ck1", 512, Dtype::Float32).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn oldest_entries_are_evicted() {
        let dir = tmp_dir("ev");
        let cache = ContextCache::new(&dir, 2);
        let ctx = Array::from_slice(&[0.5f32; 4], &[2, 2]);
        // Distinct, explicit mtimes (oldest first) instead of waiting for the clock.
        for (i, p) in ["one", "two", "three"].iter().enumerate() {
            cache
                .put(p, "ck", 512, Dtype::Float32, &ctx, false)
                .unwrap();
            let path = cache.path_for(&ContextCache::key(p, "ck", 512, Dtype::Float32));
            let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000 + i as u64);
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(t)
                .unwrap();
        }
        let n = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(n, 2);
        assert!(cache.get("three", "ck", 512, Dtype::Float32).is_some());
        assert!(cache.get("one", "ck", 512, Dtype::Float32).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
