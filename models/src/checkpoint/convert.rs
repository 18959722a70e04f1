//! Official folder → MLX folder (`convert` binary). Output, beside the official nesting:
//! `wan_model_mlx.safetensors` (or shards + `wan_model_mlx.safetensors.index.json`; A14B:
//! one set in each of `high_noise_model/` and `low_noise_model/`), `t5_encoder_mlx.safetensors`,
//! `vae_mlx.safetensors`, the `config.json`s, `configuration.json` and `google/umt5-xxl/`.
//!
//! Every tensor is converted to MLX layout (conv weights channels-last, VAE gammas `[C]`)
//! and float tensors cast to the chosen dtype. Every file records `format`
//! (`wan-studio-mlx`), `format_version`, `layout` (`mlx`), `component` and `source` in its
//! header so loaders never guess. Streaming: one tensor in memory at a time. Atomic: all is
//! written into a hidden temp folder beside the destination and renamed at the end, so an
//! interrupted run leaves nothing that looks like a checkpoint.
//!
//! `quantize` (`--quantize q8|q4`) stores the DiT's block Linears as MLX affine triples
//! (packed `u32` weight, scales, biases in the output dtype), each quantized as it is
//! read; `quantize_t5` does the same for umT5's Linears. The setting is recorded as
//! `quantization` in those files' headers and in the DiT `config.json` (`quant::meta`).
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use mlx_rs::Dtype;

use super::folder::{
    Checkpoint, Expert, MLX_DIT_INDEX, MLX_DIT_SINGLE, MLX_T5, MLX_VAE, TOKENIZER_DIR,
};
use super::index::FORMAT;
use super::index::read_small;
use super::infer::{T5Dims, VaeDims};
use super::safetensors::{StDtype, with_bytes};
use super::{Layout, TensorSource, mlx_shape, to_mlx_layout};
use crate::error::{Error, Result};
use crate::pipeline::api::CancelToken;
use crate::quant::meta::{META_KEY, QuantMeta};
use crate::quant::{QuantSpec, QuantizedSource, Recipe, T5Recipe, folder_quantization};

pub const FORMAT_VERSION: &str = "1";
/// Default shard size (bytes): the 5B DiT in bf16 (~10 GB) becomes two shards.
pub const DEFAULT_SHARD_BYTES: u64 = 5 << 30;

#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// Float tensors are cast to this (bf16 by default; integer tensors are kept).
    pub dtype: Dtype,
    /// DiT files above this size are split into shards.
    pub shard_bytes: u64,
    /// Checked before every tensor: a cancelled convert removes its temp folder and
    /// returns `Error::Cancelled`.
    pub cancel: Option<CancelToken>,
    /// Store the DiT's block Linears quantized with this recipe.
    pub quantize: Option<Recipe>,
    /// Store umT5's Linears quantized with this setting.
    pub quantize_t5: Option<QuantSpec>,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        Self {
            dtype: Dtype::Bfloat16,
            shard_bytes: DEFAULT_SHARD_BYTES,
            cancel: None,
            quantize: None,
            quantize_t5: None,
        }
    }
}

/// What was written (for the CLI's summary and tests).
#[derive(Debug, Clone, Default)]
pub struct ConvertSummary {
    pub files: Vec<PathBuf>,
    pub tensors: usize,
    pub bytes: u64,
}

/// Progress callback: (tensor just written, bytes written so far, total bytes).
pub type Progress<'a> = &'a mut dyn FnMut(&str, u64, u64);

fn is_float(d: StDtype) -> bool {
    matches!(
        d,
        StDtype::F16 | StDtype::BF16 | StDtype::F32 | StDtype::F64
    )
}

/// One tensor to write: source key, output dtype, MLX-layout shape.
struct Plan {
    name: String,
    dtype: StDtype,
    shape: Vec<i32>,
}

impl Plan {
    fn nbytes(&self) -> u64 {
        self.shape.iter().map(|&d| d as u64).product::<u64>() * self.dtype.size()
    }
}

/// Plan every tensor of a source (sorted by key), in MLX layout and the output dtype.
fn plan(src: &dyn TensorSource, out: StDtype) -> Result<Vec<Plan>> {
    let mut names = src.tensor_names();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let stored = src
                .tensor_dtype(&name)
                .ok_or_else(|| Error::Unsupported(format!("unknown stored dtype of `{name}`")))?;
            let shape = src
                .tensor_shape(&name)
                .ok_or_else(|| Error::Weights(vec![format!("missing `{name}`")]))?;
            let shape = match src.layout() {
                Layout::PyTorch => mlx_shape(&name, &shape),
                Layout::Mlx => shape,
            };
            let dtype = if is_float(stored) { out } else { stored };
            Ok(Plan { name, dtype, shape })
        })
        .collect()
}

/// Split a plan into consecutive groups of at most `max` bytes (one tensor may exceed it).
fn split_shards(plan: Vec<Plan>, max: u64) -> Vec<Vec<Plan>> {
    let mut shards: Vec<Vec<Plan>> = vec![Vec::new()];
    let mut size = 0u64;
    for p in plan {
        let n = p.nbytes();
        if size > 0 && size + n > max {
            shards.push(Vec::new());
            size = 0;
        }
        size += n;
        if let Some(last) = shards.last_mut() {
            last.push(p);
        }
    }
    shards
}

/// Stream tensors from `src` into one safetensors file: header first (sizes are known from
/// the plan), then each tensor converted, evaluated, written and dropped.
fn write_file(
    path: &Path,
    src: &dyn TensorSource,
    plan: &[Plan],
    metadata: &BTreeMap<String, String>,
    cancel: Option<&CancelToken>,
    progress: &mut dyn FnMut(&str, u64),
) -> Result<u64> {
    let mut header = serde_json::Map::new();
    header.insert(
        "__metadata__".into(),
        serde_json::to_value(metadata).map_err(|e| Error::External(e.to_string()))?,
    );
    let mut offset = 0u64;
    for p in plan {
        let n = p.nbytes();
        header.insert(
            p.name.clone(),
            serde_json::json!({"dtype": p.dtype.name(), "shape": p.shape, "data_offsets": [offset, offset + n]}),
        );
        offset += n;
    }
    let mut h = serde_json::to_vec(&serde_json::Value::Object(header))
        .map_err(|e| Error::External(e.to_string()))?;
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let io = |e| Error::io(path, e);
    let mut f = std::io::BufWriter::new(File::create(path).map_err(io)?);
    f.write_all(&(h.len() as u64).to_le_bytes()).map_err(io)?;
    f.write_all(&h).map_err(io)?;
    for p in plan {
        if let Some(c) = cancel {
            c.check()?;
        }
        let mut a = src.load_tensor(&p.name)?;
        if src.layout() == Layout::PyTorch {
            a = to_mlx_layout(&p.name, a)?;
        }
        let want = p.dtype.to_mlx();
        if a.dtype() != want {
            a = a.as_dtype(want)?;
        }
        if a.shape() != p.shape.as_slice() {
            return Err(Error::Shape {
                key: p.name.clone(),
                expected: p.shape.clone(),
                got: a.shape().to_vec(),
            });
        }
        let n = with_bytes(&a, |b| f.write_all(b).map(|_| b.len() as u64))?.map_err(io)?;
        if n != p.nbytes() {
            return Err(Error::format(
                path,
                format!("`{}`: wrote {n} bytes, planned {}", p.name, p.nbytes()),
            ));
        }
        src.release(&p.name);
        progress(&p.name, n);
    }
    let f = f.into_inner().map_err(|e| io(e.into_error()))?;
    f.sync_all().map_err(io)?;
    Ok(offset)
}

fn source_note(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    format!("{name} ({size} bytes)")
}

fn metadata(
    component: &str,
    source: &Path,
    dtype: StDtype,
    quant: Option<&QuantMeta>,
) -> BTreeMap<String, String> {
    let mut m = BTreeMap::from([
        ("format".into(), FORMAT.into()),
        ("format_version".into(), FORMAT_VERSION.into()),
        ("layout".into(), "mlx".into()),
        ("component".into(), component.into()),
        ("source".into(), source_note(source)),
        ("dtype".into(), dtype.name().into()),
    ]);
    if let Some(q) = quant {
        m.insert(META_KEY.into(), q.to_json());
    }
    m
}

/// The official DiT `config.json` text with the quantization added (or as is).
fn dit_config_text(from: &Path, quant: Option<&QuantMeta>) -> Result<String> {
    let text = read_small(from, 1 << 20)?;
    let Some(q) = quant else {
        return Ok(text);
    };
    let mut v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::Config(format!("{}: invalid JSON: {e}", from.display())))?;
    let obj = v
        .as_object_mut()
        .ok_or_else(|| Error::Config(format!("{}: not a JSON object", from.display())))?;
    obj.insert(
        META_KEY.into(),
        serde_json::to_value(q).map_err(|e| Error::External(e.to_string()))?,
    );
    let mut out = serde_json::to_string_pretty(&v).map_err(|e| Error::External(e.to_string()))?;
    out.push('\n');
    Ok(out)
}

/// Copy regular files of a folder tree (the tokenizer), refusing links.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| Error::io(to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| Error::io(from, e))? {
        let entry = entry.map_err(|e| Error::io(from, e))?;
        let ty = entry.file_type().map_err(|e| Error::io(entry.path(), e))?;
        let dst = to.join(entry.file_name());
        if ty.is_dir() {
            copy_tree(&entry.path(), &dst)?;
        } else if ty.is_file() {
            std::fs::copy(entry.path(), &dst).map_err(|e| Error::io(&dst, e))?;
        }
    }
    Ok(())
}

/// One output file to write: destination (relative), source, plan, metadata.
struct Job {
    rel: PathBuf,
    source: usize,
    plan: Vec<Plan>,
    meta: BTreeMap<String, String>,
}

/// Everything `convert` will write, validated and planned (nothing written yet).
struct Planned {
    ck: Checkpoint,
    sources: Vec<(Box<dyn TensorSource>, PathBuf)>,
    jobs: Vec<Job>,
    /// (official DiT config.json, its text in the output, relative destination).
    configs: Vec<(PathBuf, String, PathBuf)>,
}

impl Planned {
    fn total_bytes(&self) -> u64 {
        self.jobs
            .iter()
            .flat_map(|j| &j.plan)
            .map(Plan::nbytes)
            .sum()
    }
}

/// Validate `src` and plan every output tensor for `opts` (headers only, nothing written):
/// every DiT key and shape, T5 / VAE dims, and each tensor a quantization targets.
fn plan_folder(src: &Path, opts: &ConvertOptions) -> Result<Planned> {
    let out = StDtype::from_mlx(opts.dtype)
        .filter(|d| is_float(*d))
        .ok_or_else(|| Error::Input(format!("dtype {:?} is not a float type", opts.dtype)))?;
    if let Some(r) = &opts.quantize {
        r.spec.validate()?;
    }
    if let Some(s) = &opts.quantize_t5 {
        s.validate()?;
    }
    let ck = Checkpoint::open(src)?;
    let already = folder_quantization(src)?;
    if already.dit.is_some() || already.t5.is_some() {
        return Err(Error::Input(format!(
            "{} is already quantized ({}); convert its official folder instead",
            src.display(),
            already.label()
        )));
    }
    let dit_meta = opts.quantize.as_ref().map(QuantMeta::of_recipe);
    let t5_meta = opts.quantize_t5.map(QuantMeta::of_spec);

    let mut sources: Vec<(Box<dyn TensorSource>, PathBuf)> = Vec::new();
    let mut jobs: Vec<Job> = Vec::new();
    let mut configs = Vec::new();
    for d in &ck.dits {
        ck.dit_config(d.expert)?;
        let shards = ck.dit_source(d.expert)?;
        let dir = d.expert.dir_name().map(PathBuf::from).unwrap_or_default();
        let component = match d.expert {
            Expert::Main => "dit".to_string(),
            e => format!("dit.{}", e.dir_name().unwrap_or_default()),
        };
        let src: Box<dyn TensorSource> = match &opts.quantize {
            Some(r) => Box::new(QuantizedSource::new(shards, r, opts.dtype)?),
            None => Box::new(shards),
        };
        let plan = plan(src.as_ref(), out)?;
        let groups = split_shards(plan, opts.shard_bytes.max(1));
        let n = groups.len();
        sources.push((src, d.weights.clone()));
        for (i, group) in groups.into_iter().enumerate() {
            let name = if n == 1 {
                MLX_DIT_SINGLE.to_string()
            } else {
                format!("wan_model_mlx-{:05}-of-{:05}.safetensors", i + 1, n)
            };
            jobs.push(Job {
                rel: dir.join(name),
                source: sources.len() - 1,
                plan: group,
                meta: metadata(&component, &d.weights, out, dit_meta.as_ref()),
            });
        }
        let text = dit_config_text(&d.config, dit_meta.as_ref())?;
        configs.push((d.config.clone(), text, dir.join("config.json")));
    }
    if let Some(t5) = &ck.t5 {
        let s = ck.t5_source()?;
        T5Dims::infer(s.as_ref())?;
        let s: Box<dyn TensorSource> = match opts.quantize_t5 {
            Some(spec) => Box::new(QuantizedSource::new(s, &T5Recipe(spec), opts.dtype)?),
            None => s,
        };
        let plan = plan(s.as_ref(), out)?;
        sources.push((s, t5.clone()));
        jobs.push(Job {
            rel: MLX_T5.into(),
            source: sources.len() - 1,
            plan,
            meta: metadata("t5", t5, out, t5_meta.as_ref()),
        });
    } else if opts.quantize_t5.is_some() {
        return Err(Error::Missing(ck.root.join(super::folder::OFFICIAL_T5)));
    }
    if let Some(vae) = &ck.vae {
        let s = ck.vae_source()?;
        let dims = VaeDims::infer(s.as_ref())?;
        let plan = plan(s.as_ref(), out)?;
        let mut meta = metadata("vae", vae, out, None);
        meta.insert("vae_kind".into(), format!("{:?}", dims.kind));
        sources.push((s, vae.clone()));
        jobs.push(Job {
            rel: MLX_VAE.into(),
            source: sources.len() - 1,
            plan,
            meta,
        });
    }
    Ok(Planned {
        ck,
        sources,
        jobs,
        configs,
    })
}

/// Bytes of weights `convert` would write for `opts` (exact: the same plan, nothing
/// written; headers only). What the Models view shows as the predicted size.
pub fn predict_bytes(src: &Path, opts: &ConvertOptions) -> Result<u64> {
    Ok(plan_folder(src, opts)?.total_bytes())
}

/// Which tensors of a source an estimate counts quantized, and with what.
type QuantOf<'a> = &'a dyn Fn(&str, &[i32]) -> Option<QuantSpec>;

/// Output bytes of every tensor of `src` in `out` (MLX layout; integer tensors as stored),
/// quantized where `quant` says.
fn source_bytes(src: &dyn TensorSource, out: StDtype, quant: Option<QuantOf>) -> u64 {
    src.tensor_names()
        .iter()
        .map(|name| {
            let shape = src.tensor_shape(name).unwrap_or_default();
            let shape = match src.layout() {
                Layout::PyTorch => mlx_shape(name, &shape),
                Layout::Mlx => shape,
            };
            let stored = src.tensor_dtype(name).unwrap_or(out);
            let size = if is_float(stored) { out } else { stored }.size();
            match quant.and_then(|q| q(name, &shape)) {
                Some(q) => q.weight_bytes(shape[0] as i64, shape[1] as i64, out.to_mlx()),
                None => shape.iter().map(|&d| d as u64).product::<u64>() * size,
            }
        })
        .sum()
}

/// The same number as [`predict_bytes`] from tensor headers alone (no validation beyond
/// opening the files, no MLX arrays: safe on any thread, e.g. a UI command). Tensors a
/// recipe targets but cannot pack count as dense here (`convert` would refuse them).
pub fn estimate_bytes(src: &Path, opts: &ConvertOptions) -> Result<u64> {
    let out = StDtype::from_mlx(opts.dtype)
        .filter(|d| is_float(*d))
        .ok_or_else(|| Error::Input(format!("dtype {:?} is not a float type", opts.dtype)))?;
    let ck = Checkpoint::open(src)?;
    let dit = |k: &str, s: &[i32]| {
        let r = opts.quantize.as_ref()?;
        r.quantizes(k, s).then_some(r.spec)
    };
    let t5 = |k: &str, s: &[i32]| {
        let spec = opts.quantize_t5?;
        (T5Recipe::targets(k) && spec.fits(s)).then_some(spec)
    };
    let mut total = 0;
    for d in &ck.dits {
        total += source_bytes(&ck.dit_source(d.expert)?, out, Some(&dit));
    }
    if ck.t5.is_some() {
        total += source_bytes(ck.t5_source()?.as_ref(), out, Some(&t5));
    }
    if ck.vae.is_some() {
        total += source_bytes(ck.vae_source()?.as_ref(), out, None);
    }
    Ok(total)
}

/// Convert the checkpoint folder `src` into a new MLX folder `dst` (which must not exist).
/// Everything is validated (configs, every DiT key and shape, T5 / VAE dims, every tensor
/// a quantization targets) before the first byte is written.
pub fn convert(
    src: &Path,
    dst: &Path,
    opts: &ConvertOptions,
    progress: Progress,
) -> Result<ConvertSummary> {
    if dst.exists() {
        return Err(Error::Input(format!(
            "{} already exists; choose a new folder",
            dst.display()
        )));
    }
    let planned = plan_folder(src, opts)?;
    let total = planned.total_bytes();
    let Planned {
        ck,
        sources,
        jobs,
        configs,
    } = planned;

    // Write into a hidden temp folder beside the destination, rename at the end.
    let parent = dst
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = dst
        .file_name()
        .ok_or_else(|| Error::Input(format!("{}: not a folder name", dst.display())))?;
    let tmp = parent.join(format!(
        ".{}.converting-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let result = (|| -> Result<ConvertSummary> {
        let mut summary = ConvertSummary::default();
        let mut done = 0u64;
        let mut index: BTreeMap<PathBuf, (u64, BTreeMap<String, String>)> = BTreeMap::new();
        for job in &jobs {
            let path = tmp.join(&job.rel);
            if let Some(p) = path.parent() {
                std::fs::create_dir_all(p).map_err(|e| Error::io(p, e))?;
            }
            let src = sources[job.source].0.as_ref();
            let cancel = opts.cancel.as_ref();
            let bytes = write_file(&path, src, &job.plan, &job.meta, cancel, &mut |t, n| {
                done += n;
                progress(t, done, total);
            })?;
            summary.tensors += job.plan.len();
            summary.bytes += bytes;
            summary.files.push(dst.join(&job.rel));
            let file = job
                .rel
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            if file.starts_with("wan_model_mlx-") {
                let dir = job.rel.parent().map(Path::to_path_buf).unwrap_or_default();
                let e = index.entry(dir).or_default();
                e.0 += bytes;
                for p in &job.plan {
                    e.1.insert(p.name.clone(), file.clone());
                }
            }
        }
        for (dir, (size, map)) in index {
            let json = serde_json::json!({
                "metadata": {"total_size": size, "format": FORMAT, "format_version": FORMAT_VERSION},
                "weight_map": map,
            });
            let p = tmp.join(&dir).join(MLX_DIT_INDEX);
            let text =
                serde_json::to_string_pretty(&json).map_err(|e| Error::External(e.to_string()))?;
            std::fs::write(&p, text).map_err(|e| Error::io(&p, e))?;
            summary.files.push(dst.join(dir).join(MLX_DIT_INDEX));
        }
        for (_, text, rel) in &configs {
            let to = tmp.join(rel);
            std::fs::write(&to, text).map_err(|e| Error::io(&to, e))?;
        }
        let conf = ck.root.join("configuration.json");
        if conf.is_file() {
            let to = tmp.join("configuration.json");
            std::fs::copy(&conf, &to).map_err(|e| Error::io(&to, e))?;
        }
        let tok = ck.root.join(TOKENIZER_DIR);
        if tok.is_dir() {
            copy_tree(&tok, &tmp.join(TOKENIZER_DIR))?;
        }
        Ok(summary)
    })();
    match result {
        Ok(summary) => {
            std::fs::rename(&tmp, dst).map_err(|e| {
                let _ = std::fs::remove_dir_all(&tmp);
                Error::io(dst, e)
            })?;
            Ok(summary)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(e)
        }
    }
}
