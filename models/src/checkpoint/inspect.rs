//! What `inspect_model` reports (the seed's `inspect_model.py`): for a safetensors file, a
//! shard index, a `.pth` or a whole folder — tensors grouped by module prefix, totals by
//! dtype, the detected model kind and its inferred config. Headers only: safetensors data
//! and `.pth` storages are never read, so a 20 GB file is inspected in milliseconds.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use super::folder::{Checkpoint, read_dit_config, text_dim_of};
use super::infer::{T5Dims, VaeDims, count_blocks};
use super::safetensors::StDtype;
use super::{Layout, TensorSource, open_source};
use crate::error::Result;
use crate::quant::meta::QuantMeta;

#[derive(Debug, Clone, Serialize)]
pub struct TensorRow {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<i32>,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub prefix: String,
    pub params: u64,
    pub bytes: u64,
    pub tensors: Vec<TensorRow>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    pub tensors: usize,
    pub params: u64,
    pub bytes: u64,
    /// dtype → (params, bytes)
    pub by_dtype: BTreeMap<String, (u64, u64)>,
}

impl Totals {
    fn add(&mut self, dtype: &str, params: u64, bytes: u64) {
        self.tensors += 1;
        self.params += params;
        self.bytes += bytes;
        let e = self.by_dtype.entry(dtype.to_string()).or_default();
        e.0 += params;
        e.1 += bytes;
    }
    fn merge(&mut self, o: &Totals) {
        self.tensors += o.tensors;
        self.params += o.params;
        self.bytes += o.bytes;
        for (k, (p, b)) in &o.by_dtype {
            let e = self.by_dtype.entry(k.clone()).or_default();
            e.0 += p;
            e.1 += b;
        }
    }
}

/// One tensor file (or shard set).
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub path: PathBuf,
    /// `dit`, `t5`, `vae` or `unknown`.
    pub kind: String,
    pub layout: String,
    /// How the weights are stored, in one line: `bf16`, `f32 + bf16`, or
    /// `q8 (group 64) × 300 Linears + bf16`.
    pub precision: String,
    /// `{bits, group_size, mode, keep_dense, linears}` when Linears are stored quantized.
    pub quantization: Option<Value>,
    /// Inferred config of the detected kind (or the error that stopped inference).
    pub config: Value,
    pub groups: Vec<Group>,
    pub totals: Totals,
}

/// A whole inspection (one file, or every component of a folder).
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub path: PathBuf,
    /// Folder layout and task guess, when a folder was given.
    pub folder: Option<Value>,
    pub files: Vec<FileReport>,
    pub totals: Totals,
}

/// Module prefix of a key: its non-leaf segments up to and including the first numeric
/// one, at most three (`blocks.0`, `encoder.downsamples.0`, `head.head`).
fn prefix(name: &str) -> String {
    let segs: Vec<&str> = name.split('.').collect();
    let mut out = Vec::new();
    for s in &segs[..segs.len().saturating_sub(1)] {
        out.push(*s);
        if s.parse::<u64>().is_ok() || out.len() == 3 {
            break;
        }
    }
    if out.is_empty() {
        name.to_string()
    } else {
        out.join(".")
    }
}

fn detect(src: &dyn TensorSource, dit_config: Option<&Path>) -> (String, Value) {
    let has = |k: &str| src.tensor_shape(k).is_some();
    let err = |e: crate::Error| serde_json::json!({ "error": e.to_string() });
    if has("text_embedding.0.weight") && has("patch_embedding.weight") {
        let cfg = match dit_config.filter(|p| p.is_file()) {
            Some(p) => read_dit_config(p).and_then(|mut c| {
                c.text_dim = text_dim_of(src)?;
                Ok(serde_json::to_value(c).unwrap_or(Value::Null))
            }),
            None => dit_dims(src),
        };
        ("dit".into(), cfg.unwrap_or_else(err))
    } else if has("token_embedding.weight") {
        let v = T5Dims::infer(src).map(|d| serde_json::to_value(d).unwrap_or(Value::Null));
        ("t5".into(), v.unwrap_or_else(err))
    } else if has("encoder.conv1.weight") && has("decoder.head.2.weight") {
        let v = VaeDims::infer(src).map(|d| serde_json::to_value(d).unwrap_or(Value::Null));
        ("vae".into(), v.unwrap_or_else(err))
    } else {
        ("unknown".into(), Value::Null)
    }
}

/// DiT dims from shapes alone (a lone file without its `config.json`).
fn dit_dims(src: &dyn TensorSource) -> Result<Value> {
    let s = |k: &str| src.tensor_shape(k).unwrap_or_default();
    let te = s("text_embedding.0.weight"); // [dim, text_dim]
    let ffn = s("blocks.0.ffn.0.weight"); // [ffn_dim, dim]
    let tf = s("time_embedding.0.weight"); // [dim, freq_dim]
    let head = s("head.head.weight"); // [out_dim * prod(patch), dim]
    let pe = s("patch_embedding.weight");
    let in_dim = match src.layout() {
        Layout::PyTorch => pe.get(1).copied(),
        Layout::Mlx => pe.last().copied(),
    };
    Ok(serde_json::json!({
        "dim": te.first(),
        "text_dim": te.get(1),
        "ffn_dim": ffn.first(),
        "freq_dim": tf.get(1),
        "in_dim": in_dim,
        "head_out": head.first(),
        "num_layers": count_blocks(&src.tensor_names(), "blocks.")?,
        "note": "num_heads, eps and model_type are only in config.json",
    }))
}

/// Quantized Linears of a source: their weight keys and the declared setting (headers
/// only). A packed `U32` weight with `.scales` beside it counts as quantized.
fn quantized(src: &dyn TensorSource) -> (Vec<String>, Option<QuantMeta>) {
    let names = src.tensor_names();
    let mut linears: Vec<String> = names
        .iter()
        .filter(|n| {
            n.ends_with(".weight")
                && src.tensor_dtype(n) == Some(StDtype::U32)
                && src
                    .tensor_shape(&format!("{}.scales", &n[..n.len() - ".weight".len()]))
                    .is_some()
        })
        .cloned()
        .collect();
    linears.sort();
    let declared = crate::quant::meta::declared(src, "header").ok().flatten();
    (linears, declared)
}

/// One line for the storage precision of a file (see [`FileReport::precision`]).
fn precision_line(
    by_dtype: &BTreeMap<String, (u64, u64)>,
    linears: usize,
    q: Option<&QuantMeta>,
) -> String {
    let name = |d: &str| match d {
        "BF16" => "bf16".to_string(),
        "F16" => "f16".into(),
        "F32" => "f32".into(),
        "F64" => "f64".into(),
        other => other.to_ascii_lowercase(),
    };
    // Dense float dtypes, largest share first (packed U32 / integer buffers aside).
    let mut dense: Vec<(&String, u64)> = by_dtype
        .iter()
        .filter(|(d, _)| matches!(d.as_str(), "BF16" | "F16" | "F32" | "F64"))
        .map(|(d, (_, b))| (d, *b))
        .collect();
    dense.sort_by_key(|d| std::cmp::Reverse(d.1));
    let dense: Vec<String> = dense.iter().map(|(d, _)| name(d)).collect();
    let dense = if dense.is_empty() {
        "no float tensors".to_string()
    } else {
        dense.join(" + ")
    };
    match (linears, q) {
        (0, _) => dense,
        (n, Some(q)) => format!(
            "q{} (group {}) × {n} Linears + {dense}",
            q.bits, q.group_size
        ),
        (n, None) => format!("quantized × {n} Linears (setting not declared) + {dense}"),
    }
}

fn report(path: &Path, src: &dyn TensorSource, dit_config: Option<&Path>) -> FileReport {
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    let mut totals = Totals::default();
    let (qlinears, qmeta) = quantized(src);
    for name in src.tensor_names() {
        let shape = src.tensor_shape(&name).unwrap_or_default();
        let dtype = src.tensor_dtype(&name);
        let stored: u64 = shape.iter().map(|&d| d as u64).product();
        let bytes = stored * dtype.map_or(0, |d| d.size());
        // A packed weight holds 32/bits parameters per u32; its scales and biases are
        // storage overhead, not parameters.
        let of_quantized = |suffix: &str| {
            name.strip_suffix(suffix)
                .is_some_and(|b| qlinears.binary_search(&format!("{b}.weight")).is_ok())
        };
        let params = match &qmeta {
            Some(q) if qlinears.binary_search(&name).is_ok() => stored * 32 / q.bits as u64,
            _ if of_quantized(".scales") || of_quantized(".biases") => 0,
            _ => stored,
        };
        let dname = dtype.map_or("?", |d| d.name()).to_string();
        totals.add(&dname, params, bytes);
        let p = prefix(&name);
        let g = groups.entry(p.clone()).or_insert_with(|| Group {
            prefix: p,
            params: 0,
            bytes: 0,
            tensors: Vec::new(),
        });
        g.params += params;
        g.bytes += bytes;
        g.tensors.push(TensorRow {
            name,
            dtype: dname,
            shape,
            bytes,
        });
    }
    let (kind, config) = detect(src, dit_config);
    let precision = precision_line(&totals.by_dtype, qlinears.len(), qmeta.as_ref());
    let quantization = (!qlinears.is_empty()).then(|| {
        let mut v = qmeta
            .as_ref()
            .and_then(|q| serde_json::to_value(q).ok())
            .unwrap_or_else(|| serde_json::json!({}));
        v["linears"] = Value::from(qlinears.len());
        v
    });
    FileReport {
        path: path.to_path_buf(),
        kind,
        layout: format!("{:?}", src.layout()),
        precision,
        quantization,
        config,
        groups: groups.into_values().collect(),
        totals,
    }
}

/// Inspect a file (`.safetensors`, `.json` index, `.pth`) or a checkpoint folder.
pub fn inspect(path: &Path) -> Result<Inspection> {
    let mut files = Vec::new();
    let mut folder = None;
    if path.is_dir() {
        let ck = Checkpoint::open(path)?;
        let mut info = serde_json::json!({
            "kind": ck.kind,
            "experts": ck.experts(),
            "tokenizer": ck.tokenizer,
        });
        info["task"] = match ck.task() {
            Ok(t) => Value::from(t.name()),
            Err(e) => serde_json::json!({ "error": e.to_string() }),
        };
        info["quantization"] = match crate::quant::folder_quantization(path) {
            Ok(q) => serde_json::to_value(q).unwrap_or(Value::Null),
            Err(e) => serde_json::json!({ "error": e.to_string() }),
        };
        for d in &ck.dits {
            let src = ck.dit_source(d.expert)?;
            files.push(report(&d.weights, &src, Some(&d.config)));
        }
        for p in [&ck.t5, &ck.vae].into_iter().flatten() {
            files.push(report(p, open_source(p)?.as_ref(), None));
        }
        folder = Some(info);
    } else {
        let src = open_source(path)?;
        let cfg = path.parent().map(|d| d.join("config.json"));
        files.push(report(path, src.as_ref(), cfg.as_deref()));
    }
    let mut totals = Totals::default();
    for f in &files {
        totals.merge(&f.totals);
    }
    Ok(Inspection {
        path: path.to_path_buf(),
        folder,
        files,
        totals,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precision_lines() {
        let by = |v: &[(&str, u64)]| -> BTreeMap<String, (u64, u64)> {
            v.iter().map(|(d, b)| (d.to_string(), (0, *b))).collect()
        };
        assert_eq!(precision_line(&by(&[("BF16", 10)]), 0, None), "bf16");
        assert_eq!(
            precision_line(&by(&[("BF16", 10), ("F32", 90)]), 0, None),
            "f32 + bf16"
        );
        let q = QuantMeta::of_spec(crate::quant::QuantSpec::Q4);
        assert_eq!(
            precision_line(&by(&[("BF16", 10), ("U32", 90)]), 300, Some(&q)),
            "q4 (group 64) × 300 Linears + bf16"
        );
    }

    #[test]
    fn prefixes_group_by_module() {
        assert_eq!(prefix("blocks.0.self_attn.q.weight"), "blocks.0");
        assert_eq!(
            prefix("encoder.downsamples.0.x.weight"),
            "encoder.downsamples.0"
        );
        assert_eq!(prefix("head.head.weight"), "head.head");
        assert_eq!(prefix("patch_embedding.weight"), "patch_embedding");
        assert_eq!(prefix("w"), "w");
    }
}
