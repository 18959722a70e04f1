//! Sharded safetensors (`diffusion_pytorch_model.safetensors.index.json`, as Hugging Face /
//! diffusers write it, and our `wan_model_mlx.safetensors.index.json`) and single files,
//! as one [`TensorSource`].
//!
//! The index is not trusted: every `weight_map` value must be a plain file name inside the
//! folder (no `..`, no separators, no absolute path), every shard must exist and have a
//! valid header, every indexed key must be in its shard, and no key may live in two shards.
//! The layout (`PyTorch` vs our `Mlx`) comes from the `layout` header metadata, never from
//! a guess.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mlx_rs::Array;

use super::safetensors::{SafeTensors, StDtype, TensorInfo};
use super::{Layout, TensorSource};
use crate::error::{Error, Result};

/// Metadata value of `format` in every file `convert` writes.
pub const FORMAT: &str = "wan-studio-mlx";
/// Index JSON is small text; anything larger is hostile.
const MAX_INDEX_BYTES: u64 = 64 << 20;

/// One or more validated safetensors files seen as one tensor map.
pub struct Shards {
    files: Vec<SafeTensors>,
    /// Tensor name → index into `files`.
    map: BTreeMap<String, usize>,
    layout: Layout,
    /// The index file, or the single file.
    origin: PathBuf,
}

/// Read a small JSON/text file with a size cap (before allocating).
pub fn read_small(path: &Path, cap: u64) -> Result<String> {
    let len = std::fs::metadata(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::Missing(path.to_path_buf()),
            _ => Error::io(path, e),
        })?
        .len();
    if len > cap {
        return Err(Error::format(
            path,
            format!("{len} bytes is too large for this file (limit {cap})"),
        ));
    }
    std::fs::read_to_string(path).map_err(|e| Error::io(path, e))
}

/// Layout recorded in a file's header metadata (`layout` = `mlx` only in our files).
fn layout_of(st: &SafeTensors) -> Result<Layout> {
    let m = st.metadata();
    match (
        m.get("format").map(String::as_str),
        m.get("layout").map(String::as_str),
    ) {
        (Some(FORMAT), Some("mlx")) => Ok(Layout::Mlx),
        (Some(FORMAT), other) => Err(Error::format(
            st.path(),
            format!("{FORMAT} file with unknown layout {other:?}"),
        )),
        _ => Ok(Layout::PyTorch),
    }
}

/// Is `name` a plain file name (what a shard reference must be)?
fn plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
        && !name.contains(':')
        && Path::new(name).file_name().is_some_and(|f| f == name)
}

impl Shards {
    /// One safetensors file.
    pub fn single(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let st = SafeTensors::open(path)?;
        let layout = layout_of(&st)?;
        let map = st.names().map(|n| (n.to_string(), 0)).collect();
        Ok(Self {
            files: vec![st],
            map,
            layout,
            origin: path.to_path_buf(),
        })
    }

    /// Parse an index and the headers of every shard it names (in its folder).
    pub fn from_index(index: impl AsRef<Path>) -> Result<Self> {
        let index = index.as_ref();
        let bad = |r: String| Error::format(index, r);
        let dir = index.parent().unwrap_or(Path::new("."));
        let text = read_small(index, MAX_INDEX_BYTES)?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad(format!("invalid JSON: {e}")))?;
        let wm = json
            .get("weight_map")
            .and_then(|w| w.as_object())
            .ok_or_else(|| bad("no `weight_map` object".into()))?;

        let mut problems = Vec::new();
        let mut shard_names: Vec<String> = Vec::new();
        let mut wanted: BTreeMap<String, String> = BTreeMap::new();
        for (key, v) in wm {
            match v.as_str() {
                Some(s) if plain_file_name(s) => {
                    if !shard_names.iter().any(|n| n == s) {
                        shard_names.push(s.to_string());
                    }
                    wanted.insert(key.clone(), s.to_string());
                }
                Some(s) => problems.push(format!(
                    "`{key}` → `{s}`: a shard must be a plain file name inside the folder"
                )),
                None => problems.push(format!("`{key}`: shard name is not a string")),
            }
        }
        if !problems.is_empty() {
            return Err(bad(problems.join("; ")));
        }
        if wanted.is_empty() {
            return Err(bad("empty weight_map".into()));
        }
        shard_names.sort();
        let mut files = Vec::with_capacity(shard_names.len());
        for name in &shard_names {
            let p = dir.join(name);
            if !p.is_file() {
                return Err(Error::Missing(p));
            }
            files.push(SafeTensors::open(&p)?);
        }
        let mut layouts: Vec<Layout> = files.iter().map(layout_of).collect::<Result<_>>()?;
        layouts.dedup();
        let layout = match layouts[..] {
            [one] => one,
            _ => return Err(bad("shards disagree on their layout".into())),
        };

        let mut map: BTreeMap<String, usize> = BTreeMap::new();
        for (i, f) in files.iter().enumerate() {
            for n in f.names() {
                if let Some(j) = map.insert(n.to_string(), i) {
                    problems.push(format!(
                        "`{n}` is in two shards ({} and {})",
                        shard_names[j], shard_names[i]
                    ));
                }
            }
        }
        for (key, shard) in &wanted {
            match map.get(key) {
                None => problems.push(format!("`{key}` is not in any shard (index says {shard})")),
                Some(&i) if &shard_names[i] != shard => problems.push(format!(
                    "`{key}` is in {} but the index says {shard}",
                    shard_names[i]
                )),
                _ => {}
            }
        }
        for key in map.keys().filter(|k| !wanted.contains_key(*k)) {
            problems.push(format!("`{key}` is in a shard but not in the index"));
        }
        if !problems.is_empty() {
            return Err(bad(problems.join("; ")));
        }
        Ok(Self {
            files,
            map,
            layout,
            origin: index.to_path_buf(),
        })
    }

    /// `.json` → index, anything else → single file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        if path.extension().is_some_and(|e| e == "json") {
            Self::from_index(path)
        } else {
            Self::single(path)
        }
    }

    pub fn origin(&self) -> &Path {
        &self.origin
    }
    pub fn info(&self, name: &str) -> Option<&TensorInfo> {
        self.map.get(name).and_then(|&i| self.files[i].info(name))
    }
    pub fn files(&self) -> &[SafeTensors] {
        &self.files
    }
    /// Shard file names (sorted).
    pub fn file_paths(&self) -> Vec<&Path> {
        self.files.iter().map(|f| f.path()).collect()
    }
    /// Metadata of the first shard (all of ours carry the same).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        self.files[0].metadata()
    }
}

impl TensorSource for Shards {
    fn tensor_names(&self) -> Vec<String> {
        self.map.keys().cloned().collect()
    }
    fn tensor_shape(&self, name: &str) -> Option<Vec<i32>> {
        self.info(name).map(|t| t.shape.clone())
    }
    fn load_tensor(&self, name: &str) -> Result<Array> {
        let i = *self.map.get(name).ok_or_else(|| {
            Error::Weights(vec![format!(
                "missing `{name}` in {}",
                self.origin.display()
            )])
        })?;
        self.files[i].array(name)
    }
    fn layout(&self) -> Layout {
        self.layout
    }
    fn tensor_dtype(&self, name: &str) -> Option<StDtype> {
        self.info(name).map(|t| t.dtype)
    }
    fn release(&self, name: &str) {
        if let Some(&i) = self.map.get(name) {
            self.files[i].release(name);
        }
    }
    fn file_metadata(&self) -> BTreeMap<String, String> {
        self.files[0].metadata().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::plain_file_name;

    #[test]
    fn shard_names_must_be_plain() {
        assert!(plain_file_name(
            "diffusion_pytorch_model-00001-of-00003.safetensors"
        ));
        for bad in ["../x", "/etc/shadow", "a/b", "..", ".", "", "a\\b", "C:x"] {
            assert!(!plain_file_name(bad), "{bad}");
        }
    }
}
