//! Checkpoint folders: the official Hugging Face layouts (`Wan-AI/Wan2.2-TI2V-5B`: DiT shards
//! at the root; `Wan-AI/Wan2.2-{T2V,I2V}-A14B`: `high_noise_model/` + `low_noise_model/`)
//! and our converted MLX layout (same nesting, `*_mlx.safetensors` files), loaded through
//! the same code. Nothing is guessed from sizes: file names say where things are, headers
//! say the layout, `config.json` + tensor shapes say the dimensions.
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use super::index::{Shards, read_small};
use super::infer::{T5Dims, VaeDims};
use super::pth::PthFile;
use super::{TensorSource, check_tensors};
use crate::config::Task;
use crate::dit::{DitLoad, ModelType, WanConfig, WanModel};
use crate::error::{Error, Result};
use crate::vae::{VaeConfig, WanVae};

pub const OFFICIAL_DIT_INDEX: &str = "diffusion_pytorch_model.safetensors.index.json";
pub const OFFICIAL_DIT_SINGLE: &str = "diffusion_pytorch_model.safetensors";
pub const OFFICIAL_T5: &str = "models_t5_umt5-xxl-enc-bf16.pth";
pub const OFFICIAL_VAE22: &str = "Wan2.2_VAE.pth";
pub const OFFICIAL_VAE21: &str = "Wan2.1_VAE.pth";
pub const MLX_DIT_INDEX: &str = "wan_model_mlx.safetensors.index.json";
pub const MLX_DIT_SINGLE: &str = "wan_model_mlx.safetensors";
pub const MLX_T5: &str = "t5_encoder_mlx.safetensors";
pub const MLX_VAE: &str = "vae_mlx.safetensors";
pub const TOKENIZER_DIR: &str = "google/umt5-xxl";

/// Which layout a folder has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum FolderKind {
    /// Hugging Face release (PyTorch layout, `.pth` T5/VAE).
    Official,
    /// Output of our `convert` (MLX layout, safetensors only).
    Converted,
}

/// One DiT of a checkpoint: the single model (TI2V-5B) or an A14B expert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Expert {
    Main,
    HighNoise,
    LowNoise,
}

impl Expert {
    /// Sub-folder of the expert (official and converted alike).
    pub fn dir_name(self) -> Option<&'static str> {
        match self {
            Expert::Main => None,
            Expert::HighNoise => Some("high_noise_model"),
            Expert::LowNoise => Some("low_noise_model"),
        }
    }
}

/// Where one DiT lives.
#[derive(Debug, Clone, Serialize)]
pub struct DitFiles {
    pub expert: Expert,
    /// `config.json` of this DiT.
    pub config: PathBuf,
    /// The shard index or the single safetensors file.
    pub weights: PathBuf,
}

/// A located checkpoint folder. Opening it reads only directory entries; tensors and
/// headers are read on demand.
#[derive(Debug, Clone, Serialize)]
pub struct Checkpoint {
    pub root: PathBuf,
    pub kind: FolderKind,
    pub dits: Vec<DitFiles>,
    pub t5: Option<PathBuf>,
    pub vae: Option<PathBuf>,
    /// `google/umt5-xxl/tokenizer.json`.
    pub tokenizer: Option<PathBuf>,
}

/// Open a tensor file by extension: `.pth` (torch zip), `.json` (shard index), else safetensors.
pub fn open_source(path: &Path) -> Result<Box<dyn TensorSource>> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("pth") | Some("pt") | Some("bin") => Ok(Box::new(PthFile::open(path)?)),
        _ => Ok(Box::new(Shards::open(path)?)),
    }
}

fn first_existing(dir: &Path, names: &[&str]) -> Option<PathBuf> {
    names.iter().map(|n| dir.join(n)).find(|p| p.is_file())
}

/// The DiT weights of one folder (converted names first, then official).
fn dit_weights(dir: &Path) -> Option<(PathBuf, FolderKind)> {
    if let Some(p) = first_existing(dir, &[MLX_DIT_INDEX, MLX_DIT_SINGLE]) {
        return Some((p, FolderKind::Converted));
    }
    first_existing(dir, &[OFFICIAL_DIT_INDEX, OFFICIAL_DIT_SINGLE])
        .map(|p| (p, FolderKind::Official))
}

impl Checkpoint {
    /// Detect the layout of `root` and locate every component.
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        if !root.is_dir() {
            return Err(Error::Missing(root));
        }
        // Hostile or broken configs are refused first, before any weights are looked at.
        for dir in [
            root.clone(),
            root.join("high_noise_model"),
            root.join("low_noise_model"),
        ] {
            let cfg = dir.join("config.json");
            if cfg.is_file() {
                read_dit_config(&cfg)?;
            }
        }
        let mut dits = Vec::new();
        let mut kinds = Vec::new();
        if let Some((weights, kind)) = dit_weights(&root) {
            dits.push(DitFiles {
                expert: Expert::Main,
                config: root.join("config.json"),
                weights,
            });
            kinds.push(kind);
        } else {
            for expert in [Expert::HighNoise, Expert::LowNoise] {
                let dir = root.join(expert.dir_name().unwrap_or_default());
                match dit_weights(&dir) {
                    Some((weights, kind)) => {
                        dits.push(DitFiles {
                            expert,
                            config: dir.join("config.json"),
                            weights,
                        });
                        kinds.push(kind);
                    }
                    None if dir.is_dir() => {
                        return Err(Error::Missing(dir.join(OFFICIAL_DIT_INDEX)));
                    }
                    None => {}
                }
            }
            if dits.len() == 1 {
                return Err(Error::Input(format!(
                    "{}: an A14B folder needs both high_noise_model/ and low_noise_model/",
                    root.display()
                )));
            }
        }
        if dits.is_empty() {
            return Err(Error::Input(format!(
                "{}: no DiT weights found (expected {OFFICIAL_DIT_INDEX}, {MLX_DIT_INDEX} or \
                 high_noise_model/ + low_noise_model/)",
                root.display()
            )));
        }
        kinds.dedup();
        let kind = match kinds[..] {
            [k] => k,
            _ => {
                return Err(Error::Input(format!(
                    "{}: mixes official and converted DiT files",
                    root.display()
                )));
            }
        };
        let (t5, vae) = match kind {
            FolderKind::Converted => (
                first_existing(&root, &[MLX_T5]),
                first_existing(&root, &[MLX_VAE]),
            ),
            FolderKind::Official => (
                first_existing(&root, &[OFFICIAL_T5]),
                first_existing(&root, &[OFFICIAL_VAE22, OFFICIAL_VAE21]),
            ),
        };
        let tokenizer = first_existing(&root.join(TOKENIZER_DIR), &["tokenizer.json"]);
        Ok(Self {
            root,
            kind,
            dits,
            t5,
            vae,
            tokenizer,
        })
    }

    pub fn experts(&self) -> Vec<Expert> {
        self.dits.iter().map(|d| d.expert).collect()
    }

    pub fn dit_files(&self, expert: Expert) -> Result<&DitFiles> {
        self.dits
            .iter()
            .find(|d| d.expert == expert)
            .ok_or_else(|| {
                Error::Input(format!(
                    "{}: this checkpoint has no {expert:?} DiT (it has {:?})",
                    self.root.display(),
                    self.experts()
                ))
            })
    }

    /// The DiT's tensors (headers validated, nothing loaded).
    pub fn dit_source(&self, expert: Expert) -> Result<Shards> {
        Shards::open(&self.dit_files(expert)?.weights)
    }

    /// The DiT config: `config.json` checked field by field, `text_dim` from the weights,
    /// then every key and shape checked against the model (headers only, nothing allocated).
    pub fn dit_config(&self, expert: Expert) -> Result<WanConfig> {
        let files = self.dit_files(expert)?;
        let mut cfg = read_dit_config(&files.config)?;
        let src = self.dit_source(expert)?;
        cfg.text_dim = text_dim_of(&src)?;
        cfg.validate()?;
        // Quantized folders: the skeleton has packed weights + scales + biases where the
        // files store them (each triple checked).
        let (skeleton, _) = WanModel::skeleton_for(cfg.clone(), &src, mlx_rs::Dtype::Float32)?;
        check_tensors(&src, &skeleton.expected_params())?;
        Ok(cfg)
    }

    /// Build and strictly load one DiT (float32 weights; a quantized folder stays
    /// quantized, with float32 scales).
    pub fn load_dit(&self, expert: Expert) -> Result<WanModel> {
        self.load_dit_with(expert, &DitLoad::dense(mlx_rs::Dtype::Float32))
    }

    /// Build and strictly load one DiT in the dtypes / quantization of `opts`, tensor by
    /// tensor (see [`WanModel::load_with`]).
    pub fn load_dit_with(&self, expert: Expert, opts: &DitLoad) -> Result<WanModel> {
        let cfg = self.dit_config(expert)?;
        WanModel::load_with(cfg, &self.dit_source(expert)?, opts)
    }

    /// Guess the task from the folder shape and the DiT's `model_type`.
    pub fn task(&self) -> Result<Task> {
        let cfg = read_dit_config(&self.dits[0].config)?;
        Ok(match (cfg.model_type, self.dits.len()) {
            (ModelType::Ti2v, 1) => Task::Ti2v5B,
            (ModelType::T2v, 2) => Task::T2vA14B,
            (ModelType::I2v, 2) => Task::I2vA14B,
            (t, n) => {
                return Err(Error::Unsupported(format!(
                    "a {t:?} DiT in a folder with {n} DiT(s) matches no known task"
                )));
            }
        })
    }

    pub fn t5_source(&self) -> Result<Box<dyn TensorSource>> {
        let p = self.t5.as_ref().ok_or_else(|| {
            Error::Missing(self.root.join(match self.kind {
                FolderKind::Official => OFFICIAL_T5,
                FolderKind::Converted => MLX_T5,
            }))
        })?;
        open_source(p)
    }

    pub fn vae_source(&self) -> Result<Box<dyn TensorSource>> {
        let p = self.vae.as_ref().ok_or_else(|| {
            Error::Missing(self.root.join(match self.kind {
                FolderKind::Official => OFFICIAL_VAE22,
                FolderKind::Converted => MLX_VAE,
            }))
        })?;
        open_source(p)
    }

    pub fn t5_dims(&self) -> Result<T5Dims> {
        T5Dims::infer(self.t5_source()?.as_ref())
    }

    pub fn vae_dims(&self) -> Result<VaeDims> {
        VaeDims::infer(self.vae_source()?.as_ref())
    }

    /// The VAE config inferred from its tensor shapes.
    pub fn vae_config(&self) -> Result<VaeConfig> {
        Ok(self.vae_dims()?.config())
    }

    /// Build and strictly load the VAE (float32).
    pub fn load_vae(&self) -> Result<WanVae> {
        let src = self.vae_source()?;
        WanVae::load(VaeDims::infer(src.as_ref())?.config(), src.as_ref())
    }

    pub fn tokenizer_path(&self) -> Result<&Path> {
        self.tokenizer
            .as_deref()
            .ok_or_else(|| Error::Missing(self.root.join(TOKENIZER_DIR).join("tokenizer.json")))
    }
}

/// `text_dim` is not in `config.json` (the official class excludes it): read it from
/// `text_embedding.0.weight` `[dim, text_dim]` (a Linear: same in both layouts).
pub fn text_dim_of(src: &dyn TensorSource) -> Result<i32> {
    let k = "text_embedding.0.weight";
    match src.tensor_shape(k) {
        Some(s) if s.len() == 2 => Ok(s[1]),
        Some(s) => Err(Error::Weights(vec![format!(
            "`{k}` has shape {s:?}, expected [dim, text_dim]"
        )])),
        None => Err(Error::Weights(vec![format!("missing `{k}`")])),
    }
}

/// Integer fields of the official DiT `config.json` and their sane ranges.
const INT_FIELDS: &[(&str, i64)] = &[
    ("dim", 1 << 16),
    ("ffn_dim", 1 << 18),
    ("freq_dim", 1 << 16),
    ("in_dim", 4096),
    ("out_dim", 4096),
    ("num_heads", 1024),
    ("num_layers", 512),
    ("text_len", 1 << 16),
];

/// Check the raw JSON of a DiT config field by field, naming every bad field, before serde
/// (whose errors name only a position) and long before anything is sized from it.
pub fn check_dit_config_json(v: &Value) -> Result<()> {
    let obj = v
        .as_object()
        .ok_or_else(|| Error::Config("DiT config.json is not a JSON object".into()))?;
    let mut bad = Vec::new();
    for &(name, max) in INT_FIELDS {
        match obj.get(name) {
            None => bad.push(format!("`{name}` is missing")),
            Some(x) => match x.as_i64() {
                Some(i) if (1..=max).contains(&i) => {}
                Some(i) => bad.push(format!("`{name}` = {i} is outside 1..={max}")),
                None => bad.push(format!("`{name}` must be an integer, got {x}")),
            },
        }
    }
    match obj.get("eps") {
        Some(Value::Number(n)) if n.as_f64().is_some_and(|e| e > 0.0 && e < 1.0) => {}
        Some(x) => bad.push(format!("`eps` must be a number in (0, 1), got {x}")),
        None => bad.push("`eps` is missing".into()),
    }
    match obj.get("model_type").and_then(Value::as_str) {
        Some("t2v" | "i2v" | "ti2v") => {}
        _ => bad.push(format!(
            "`model_type` must be \"t2v\", \"i2v\" or \"ti2v\", got {}",
            obj.get("model_type").unwrap_or(&Value::Null)
        )),
    }
    if let (Some(d), Some(h)) = (
        obj.get("dim").and_then(Value::as_i64),
        obj.get("num_heads").and_then(Value::as_i64),
    ) && h > 0
        && d % h != 0
    {
        bad.push(format!("`dim` {d} is not divisible by `num_heads` {h}"));
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "DiT config.json: {}",
            bad.join("; ")
        )))
    }
}

/// Read and validate a DiT `config.json` (small-file cap, field checks, then serde).
pub fn read_dit_config(path: &Path) -> Result<WanConfig> {
    let text = read_small(path, 1 << 20)?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| Error::Config(format!("{}: invalid JSON: {e}", path.display())))?;
    check_dit_config_json(&v).map_err(|e| match e {
        Error::Config(m) => Error::Config(format!("{}: {m}", path.display())),
        other => other,
    })?;
    WanConfig::from_json(&text)
}
