//! Checkpoint conversion as a worker job: an official Wan2.2 folder → a new MLX folder
//! (`wan::checkpoint::convert`: validated first, streamed one tensor at a time, written
//! into a hidden temp folder and renamed at the end). It runs on the worker thread, not
//! in the command, because the conversion evaluates MLX arrays (layout changes, casts)
//! and MLX work belongs to that one thread; so a conversion waits behind a running
//! generation, in FIFO order like any job.
use std::path::{Component, Path, PathBuf};
use std::time::Instant;

use mlx_rs::Dtype;
use serde::{Deserialize, Serialize};
use wan::checkpoint::convert::{ConvertOptions, DEFAULT_SHARD_BYTES, convert, estimate_bytes};
use wan::checkpoint::{Checkpoint, FolderKind};
use wan::config::Task;
use wan::pipeline::CancelToken;
use wan::quant::{QuantSpec, Recipe, measured_drift};
use wan::vae::preview::{PREVIEW_FILE, ensure_previewer};

use super::worker::JobEvent;
use crate::checkpoint::{self, CheckpointInfo};
use crate::error::{AppError, AppResult};
use crate::settings::SettingsStore;

/// Float dtype of the converted tensors (bf16 halves the official f32 DiT and is what
/// Metal computes in; f32 keeps full precision for CPU runs and comparisons).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConvertDtype {
    #[default]
    Bf16,
    F16,
    F32,
}

impl ConvertDtype {
    pub fn mlx(self) -> Dtype {
        match self {
            Self::Bf16 => Dtype::Bfloat16,
            Self::F16 => Dtype::Float16,
            Self::F32 => Dtype::Float32,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Bf16 => "bf16",
            Self::F16 => "f16",
            Self::F32 => "f32",
        }
    }
}

/// Quantization level of a conversion (`None` in the job: dense in the dtype). The DiT's
/// block Linears are stored as 8- or 4-bit affine triples with the measured default
/// recipe (`wan::quant::Recipe::recommended`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConvertQuant {
    Q8,
    Q4,
}

impl ConvertQuant {
    pub fn spec(self) -> QuantSpec {
        match self {
            Self::Q8 => QuantSpec::Q8,
            Self::Q4 => QuantSpec::Q4,
        }
    }

    pub fn recipe(self) -> Recipe {
        Recipe::recommended(self.spec())
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Q8 => "8-bit",
            Self::Q4 => "4-bit",
        }
    }
}

/// A validated conversion request.
#[derive(Debug, Clone)]
pub struct ConvertJob {
    /// Canonical path of a usable official folder.
    pub src: PathBuf,
    /// New folder: canonical existing parent + a plain name that does not exist yet.
    pub dst: PathBuf,
    pub dtype: ConvertDtype,
    pub task: Task,
    /// Select the converted folder in the settings once it is complete.
    pub select: bool,
    /// Store the DiT quantized (8/4-bit); `None`: dense in `dtype`.
    pub quantize: Option<ConvertQuant>,
    /// The app's previewer cache: with it, the fast previewer is stored beside the new
    /// weights (reused from the cache when one was fitted for the source VAE, else
    /// fitted now); without it, none is written.
    pub preview_cache: Option<PathBuf>,
}

impl ConvertJob {
    /// Check what the UI sent before anything is queued: both paths absolute, `src` a
    /// complete official folder (a converted one has nothing to convert), `dst` a new
    /// folder in an existing parent, outside `src`. The library re-validates every
    /// tensor on the worker before writing.
    pub fn new(src: &Path, dst: &Path, dtype: ConvertDtype, select: bool) -> AppResult<Self> {
        if !src.is_absolute() {
            return Err(AppError::input(
                "the folder to convert must be an absolute path",
            ));
        }
        if !dst.is_absolute() {
            return Err(AppError::input("the destination must be an absolute path"));
        }
        let info = checkpoint::inspect(src)?;
        if info.layout == Some(FolderKind::Converted) {
            return Err(AppError::input(format!(
                "{} is already converted to MLX: use it directly (to change the dtype, \
                 convert its official folder)",
                info.path.display()
            )));
        }
        if !info.problems.is_empty() {
            return Err(AppError::new(
                "checkpoint",
                format!(
                    "cannot convert {}: {}",
                    info.path.display(),
                    info.problems.join("; ")
                ),
            ));
        }
        let task = info.task.ok_or_else(|| {
            AppError::new(
                "checkpoint",
                format!("{}: unrecognised folder", src.display()),
            )
        })?;
        let name = match dst.components().next_back() {
            Some(Component::Normal(n)) => n,
            _ => {
                return Err(AppError::input(format!(
                    "{}: end the destination with a new folder name",
                    dst.display()
                )));
            }
        };
        if dst.components().any(|c| c == Component::ParentDir) {
            return Err(AppError::input("the destination must not contain `..`"));
        }
        let parent = dst
            .parent()
            .filter(|p| p.is_dir())
            .ok_or_else(|| {
                AppError::input(format!(
                    "{}: the destination's parent folder does not exist",
                    dst.display()
                ))
            })?
            .canonicalize()
            .map_err(|e| AppError::input(format!("{}: {e}", dst.display())))?;
        let dst = parent.join(name);
        // `symlink_metadata`: a dangling link is "something there" too.
        if dst.symlink_metadata().is_ok() {
            return Err(AppError::input(format!(
                "{} already exists; choose a new folder name",
                dst.display()
            )));
        }
        if dst.starts_with(&info.path) {
            return Err(AppError::input(
                "the destination must be outside the folder being converted",
            ));
        }
        Ok(Self {
            src: info.path,
            dst,
            dtype,
            task,
            select,
            quantize: None,
            preview_cache: None,
        })
    }

    /// One line for the queue: `convert Wan2.2-TI2V-5B → Wan2.2-TI2V-5B-mlx (bf16)`.
    pub fn describe(&self) -> String {
        let name = |p: &Path| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| p.display().to_string())
        };
        let level = match self.quantize {
            Some(q) => format!("{}, {}", self.dtype.name(), q.label()),
            None => self.dtype.name().to_string(),
        };
        format!(
            "convert {} → {} ({level})",
            name(&self.src),
            name(&self.dst),
        )
    }
}

/// One choice of the Models view's "Convert to MLX" with what it costs on disk and in
/// memory (headers only, exact for the weights) and how far it drifts from the dense model.
#[derive(Debug, Clone, Serialize)]
pub struct ConvertLevel {
    /// `None` (dense in the chosen dtype), `q8` or `q4`.
    pub quantize: Option<ConvertQuant>,
    /// Weight bytes the new folder will hold.
    pub bytes: u64,
    /// The measured drift against the dense model, one line (`None` for dense).
    pub drift: Option<String>,
}

/// The predicted size of each level for converting `src` in `dtype` (no MLX work: safe
/// in a command).
pub fn estimate_levels(src: &Path, dtype: ConvertDtype) -> AppResult<Vec<ConvertLevel>> {
    [None, Some(ConvertQuant::Q8), Some(ConvertQuant::Q4)]
        .into_iter()
        .map(|q| {
            let opts = ConvertOptions {
                dtype: dtype.mlx(),
                quantize: q.map(ConvertQuant::recipe),
                ..ConvertOptions::default()
            };
            Ok(ConvertLevel {
                quantize: q,
                bytes: estimate_bytes(src, &opts)?,
                drift: q.map(|q| measured_drift(q.spec()).to_string()),
            })
        })
        .collect()
}

/// What a finished conversion reports.
#[derive(Debug, Clone, Serialize)]
pub struct Converted {
    /// The new folder, as the app's checks see it (no problems when complete).
    pub info: CheckpointInfo,
    /// Whether it is now the selected checkpoint (persisted).
    pub selected: bool,
    /// Whether `preview_mlx.safetensors` was stored beside the weights.
    pub previewer: bool,
    pub tensors: usize,
    pub bytes: u64,
    pub wall_s: f64,
}

/// Run one conversion: progress after every tensor (bytes-based ETA), `Err` with code
/// `cancelled` within one tensor of `cancel` (the library removes its temp folder, so
/// nothing is left at `dst`), then the new folder checked and optionally selected.
pub fn run(
    job: &ConvertJob,
    cancel: &CancelToken,
    settings: &SettingsStore,
    on_event: &mut dyn FnMut(JobEvent),
) -> AppResult<Converted> {
    let t0 = Instant::now();
    let opts = ConvertOptions {
        dtype: job.dtype.mlx(),
        shard_bytes: DEFAULT_SHARD_BYTES,
        cancel: Some(cancel.clone()),
        quantize: job.quantize.map(ConvertQuant::recipe),
        ..ConvertOptions::default()
    };
    let summary = convert(&job.src, &job.dst, &opts, &mut |tensor, done, total| {
        let elapsed_s = t0.elapsed().as_secs_f64();
        let eta_s = if done == 0 {
            0.0
        } else {
            elapsed_s / done as f64 * total.saturating_sub(done) as f64
        };
        on_event(JobEvent::Convert {
            tensor: tensor.to_string(),
            done_bytes: done,
            total_bytes: total,
            elapsed_s,
            eta_s,
        });
    })?;
    let previewer = match &job.preview_cache {
        Some(cache) if !cancel.is_cancelled() => {
            on_event(JobEvent::FitPreview);
            // Previews are a convenience: the folder is complete without one, and the
            // first generation fits it then.
            store_previewer(job, cache)
                .inspect_err(|e| eprintln!("warning: no previewer stored: {e}"))
                .is_ok()
        }
        _ => false,
    };
    let info = checkpoint::inspect(&job.dst)?;
    let selected = job.select && info.problems.is_empty();
    if selected {
        settings
            .update(|s| s.checkpoint_dir = Some(info.path.clone()))
            .map_err(|e| {
                AppError::new(
                    &e.code,
                    format!(
                        "converted into {}, but it could not be selected: {}",
                        info.path.display(),
                        e.message
                    ),
                )
            })?;
    }
    Ok(Converted {
        info,
        selected,
        previewer,
        tensors: summary.tensors,
        bytes: summary.bytes,
        wall_s: t0.elapsed().as_secs_f64(),
    })
}

/// Store the fast previewer beside the converted weights (written then renamed, so a
/// half-written file never sits where loaders look). Keyed by the *source* VAE file, so
/// a previewer already fitted for the official folder is reused instead of refitted.
fn store_previewer(job: &ConvertJob, cache: &Path) -> wan::Result<()> {
    let src_vae = Checkpoint::open(&job.src)?
        .vae
        .ok_or_else(|| wan::Error::Missing(job.src.clone()))?;
    let vae = Checkpoint::open(&job.dst)?.load_vae()?;
    let (previewer, _) = ensure_previewer(&vae, &job.dst, &src_vae, cache)?;
    let tmp = job.dst.join(format!(".{PREVIEW_FILE}.part"));
    previewer.save(&tmp, None)?;
    let to = job.dst.join(PREVIEW_FILE);
    std::fs::rename(&tmp, &to).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        wan::Error::io(&to, e)
    })
}
