//! How a folder records its quantization, and reading it back without loading weights.
//!
//! `convert --quantize` writes the setting twice: in the `__metadata__` of every DiT (and
//! umT5) safetensors file under the key `quantization`, and in the DiT's `config.json`
//! (the one the memory plan and the app read first). Both hold the same flat JSON:
//! `{"bits": 8, "group_size": 64, "mode": "affine", "keep_dense": ["blocks.0."]}`.
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{QuantSpec, Recipe};
use crate::checkpoint::folder::{Checkpoint, FolderKind};
use crate::checkpoint::index::read_small;
use crate::checkpoint::{Shards, TensorSource, open_source};
use crate::error::{Error, Result};

/// Metadata / config key.
pub const META_KEY: &str = "quantization";

/// The flat JSON form of a setting (what files and `config.json` hold).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuantMeta {
    pub bits: i32,
    pub group_size: i32,
    #[serde(default = "affine")]
    pub mode: String,
    /// DiT only: key prefixes kept dense (mixed precision).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keep_dense: Vec<String>,
}

fn affine() -> String {
    "affine".into()
}

impl QuantMeta {
    pub fn of_recipe(r: &Recipe) -> Self {
        Self {
            bits: r.spec.bits,
            group_size: r.spec.group_size,
            mode: affine(),
            keep_dense: r.keep_dense.clone(),
        }
    }

    pub fn of_spec(s: QuantSpec) -> Self {
        Self {
            bits: s.bits,
            group_size: s.group_size,
            mode: affine(),
            keep_dense: Vec::new(),
        }
    }

    /// The recipe, refusing what our kernels cannot run.
    pub fn recipe(&self) -> Result<Recipe> {
        if self.mode != "affine" {
            return Err(Error::Unsupported(format!(
                "quantization mode `{}` (only affine)",
                self.mode
            )));
        }
        let spec = QuantSpec {
            bits: self.bits,
            group_size: self.group_size,
        };
        spec.validate()?;
        Ok(Recipe {
            spec,
            keep_dense: self.keep_dense.clone(),
        })
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parse a metadata / config value (`what` names where it came from in errors).
    pub fn parse(v: &Value, what: &str) -> Result<Self> {
        let m: QuantMeta = serde_json::from_value(v.clone())
            .map_err(|e| Error::Config(format!("{what}: `{META_KEY}` is invalid: {e}")))?;
        m.recipe()
            .map_err(|e| Error::Config(format!("{what}: `{META_KEY}`: {e}")))?;
        Ok(m)
    }
}

/// The setting a source's header declares (`None`: not a quantized file).
pub fn declared(src: &dyn TensorSource, what: &str) -> Result<Option<QuantMeta>> {
    match src.file_metadata().get(META_KEY) {
        None => Ok(None),
        Some(s) => {
            let v: Value = serde_json::from_str(s)
                .map_err(|e| Error::Config(format!("{what}: `{META_KEY}` is not JSON: {e}")))?;
            QuantMeta::parse(&v, what).map(Some)
        }
    }
}

/// What a checkpoint folder stores quantized (headers and configs only: milliseconds).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FolderQuant {
    /// The DiT recipe (the same for both A14B experts); `None`: dense.
    pub dit: Option<Recipe>,
    /// umT5's setting; `None`: dense.
    pub t5: Option<QuantSpec>,
}

impl FolderQuant {
    /// `bf16`-style label for one line of UI: `q8`, `q4 (group 32)`, `dense`.
    pub fn label(&self) -> String {
        match &self.dit {
            Some(r) => r.describe(),
            None => "dense".into(),
        }
    }
}

/// Read a folder's quantization without loading any weights: each DiT's `config.json`
/// `quantization` and its weight files' header must agree (and both experts of an A14B
/// folder), and the umT5 file's header gives its own setting. Official folders are dense.
pub fn folder_quantization(dir: &Path) -> Result<FolderQuant> {
    let ck = Checkpoint::open(dir)?;
    if ck.kind == FolderKind::Official {
        return Ok(FolderQuant::default());
    }
    let mut dit: Option<Option<QuantMeta>> = None;
    for d in &ck.dits {
        let text = read_small(&d.config, 1 << 20)?;
        let cfg: Value = serde_json::from_str(&text)
            .map_err(|e| Error::Config(format!("{}: invalid JSON: {e}", d.config.display())))?;
        let from_cfg = match cfg.get(META_KEY) {
            Some(v) => Some(QuantMeta::parse(v, &d.config.display().to_string())?),
            None => None,
        };
        let src = Shards::open(&d.weights)?;
        let from_header = declared(&src, &d.weights.display().to_string())?;
        if from_cfg != from_header {
            return Err(Error::Config(format!(
                "{}: `{META_KEY}` in config.json ({}) disagrees with the weights' header ({})",
                d.config.display(),
                from_cfg.as_ref().map_or("none".into(), QuantMeta::to_json),
                from_header
                    .as_ref()
                    .map_or("none".into(), QuantMeta::to_json),
            )));
        }
        match &dit {
            Some(prev) if prev != &from_cfg => {
                return Err(Error::Config(format!(
                    "{}: the two experts are quantized differently",
                    dir.display()
                )));
            }
            _ => dit = Some(from_cfg),
        }
    }
    let t5 = match &ck.t5 {
        Some(p) => {
            let src = open_source(p)?;
            match declared(src.as_ref(), &p.display().to_string())? {
                Some(m) => Some(m.recipe()?.spec),
                None => None,
            }
        }
        None => None,
    };
    Ok(FolderQuant {
        dit: dit.flatten().map(|m| m.recipe()).transpose()?,
        t5,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_round_trips_and_refuses_what_mlx_cannot_run() {
        let r = Recipe {
            spec: QuantSpec::Q4,
            keep_dense: vec!["blocks.0.".into()],
        };
        let m = QuantMeta::of_recipe(&r);
        let v: Value = serde_json::from_str(&m.to_json()).unwrap();
        assert_eq!(v["bits"], 4);
        assert_eq!(v["group_size"], 64);
        assert_eq!(QuantMeta::parse(&v, "x").unwrap().recipe().unwrap(), r);
        // what i11's plan reads: {bits, group_size} alone is enough
        let plain = serde_json::json!({"bits": 8, "group_size": 128});
        assert_eq!(
            QuantMeta::parse(&plain, "x")
                .unwrap()
                .recipe()
                .unwrap()
                .spec,
            QuantSpec {
                bits: 8,
                group_size: 128
            }
        );
        for bad in [
            serde_json::json!({"bits": 3, "group_size": 64}),
            serde_json::json!({"bits": 8, "group_size": 48}),
            serde_json::json!({"bits": 8, "group_size": 64, "mode": "mxfp4"}),
            serde_json::json!({"bits": "8"}),
        ] {
            let e = QuantMeta::parse(&bad, "cfg.json").unwrap_err().to_string();
            assert!(e.contains("cfg.json") && e.contains("quantization"), "{e}");
        }
    }
}
