//! From a checkpoint folder to [`Components`](super::run::Components): which files a task
//! needs (official layouts, spec §7.1), their identity for the JSON sidecar, and loading.
use std::path::{Path, PathBuf};

use mlx_rs::Dtype;
use serde_json::{Value, json};

use super::experts::Experts;
use super::run::{LatentVae, TextEncoder};
use crate::config::{Task, VaeKind};
use crate::error::{Error, Result};

/// Loading knobs (ours, in place of `--offload_model` / `--convert_model_dtype`).
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    /// DiT compute dtype (float32 on CPU; bf16 on Metal).
    pub dtype: Dtype,
    /// A14B: keep only the active expert resident.
    pub one_expert_at_a_time: bool,
}

/// Loaded models of one task.
pub struct Loaded {
    pub text: Box<dyn TextEncoder>,
    pub vae: Box<dyn LatentVae>,
    pub experts: Experts,
}

/// Files an official-layout folder must hold for `task` (relative paths).
pub fn required_files(task: Task) -> Vec<PathBuf> {
    let cfg = task.config();
    let mut v = vec![
        PathBuf::from("models_t5_umt5-xxl-enc-bf16.pth"),
        PathBuf::from("google/umt5-xxl/tokenizer.json"),
        PathBuf::from(match cfg.vae {
            VaeKind::Wan21 => "Wan2.1_VAE.pth",
            VaeKind::Wan22 => "Wan2.2_VAE.pth",
        }),
    ];
    let dits: &[&str] = match cfg.boundary {
        Some(_) => &["low_noise_model", "high_noise_model"],
        None => &[""],
    };
    for d in dits {
        v.push(Path::new(d).join("config.json"));
    }
    v
}

/// Check a folder before loading anything: it exists, holds every file the task needs and
/// its DiT `config.json` describes a model of the task's kind.
pub fn check_folder(dir: &Path, task: Task) -> Result<()> {
    if !dir.is_dir() {
        return Err(Error::Missing(dir.to_path_buf()));
    }
    // A single-model folder given to an A14B task (or the reverse): say so plainly.
    let want = match task {
        Task::Ti2v5B => crate::dit::ModelType::Ti2v,
        Task::T2vA14B => crate::dit::ModelType::T2v,
        Task::I2vA14B => crate::dit::ModelType::I2v,
    };
    let root = dir.join("config.json");
    if let Ok(text) = std::fs::read_to_string(&root)
        && let Ok(cfg) = crate::dit::WanConfig::from_json(&text)
        && cfg.model_type != want
    {
        return Err(Error::Input(format!(
            "{} holds a `{:?}` model, but --task {} needs `{want:?}` (wrong --ckpt_dir or --task?)",
            dir.display(),
            cfg.model_type,
            task.name()
        )));
    }
    for rel in required_files(task) {
        let p = dir.join(&rel);
        if !p.is_file() {
            // A converted folder may hold `.safetensors` in place of `.pth`.
            let alt = p.with_extension("safetensors");
            if !(p.extension().is_some_and(|e| e == "pth") && alt.is_file()) {
                return Err(Error::Missing(p));
            }
        }
        if rel.file_name().is_some_and(|n| n == "config.json") {
            let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
            let cfg = crate::dit::WanConfig::from_json(&text)
                .map_err(|e| Error::format(&p, e.to_string()))?;
            if cfg.model_type != want {
                return Err(Error::Input(format!(
                    "{} is a `{:?}` model, but --task {} needs `{want:?}` (wrong --ckpt_dir or --task?)",
                    p.display(),
                    cfg.model_type,
                    task.name()
                )));
            }
        }
    }
    Ok(())
}

/// Identity of a folder for the sidecar: canonical path and every file's size and mtime.
pub fn folder_identity(dir: &Path) -> Value {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(md) = e.metadata() else { continue };
            if md.is_dir() {
                stack.push(p);
            } else {
                let mtime = md
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_secs());
                let rel = p.strip_prefix(dir).unwrap_or(&p).display().to_string();
                files.push(json!({"file": rel, "bytes": md.len(), "mtime": mtime}));
            }
        }
    }
    files.sort_by(|a, b| a["file"].as_str().cmp(&b["file"].as_str()));
    json!({
        "dir": std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf()),
        "files": files,
    })
}

/// Load every model of `task` from `dir`.
pub fn load(dir: &Path, task: Task, opts: &LoadOptions) -> Result<Loaded> {
    check_folder(dir, task)?;
    let _ = opts;
    Err(Error::Unsupported(
        "loading a checkpoint folder needs the checkpoint, T5 and VAE modules (not merged yet)"
            .into(),
    ))
}
