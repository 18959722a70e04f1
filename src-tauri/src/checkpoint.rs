//! The Models view's checks: is a folder a usable Wan2.2 checkpoint (official Hugging
//! Face layout or converted safetensors), how big is it, and will a run fit in memory
//! (the library's memory plan, `wan::memory`).
//! Every problem is listed at once, in words a user can act on. File names are the
//! library's (`wan::checkpoint::folder`), so what passes here is what the pipeline loads.
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;
use wan::checkpoint::FolderKind;
use wan::checkpoint::folder::{
    MLX_DIT_INDEX, MLX_DIT_SINGLE, MLX_T5, MLX_VAE, OFFICIAL_DIT_INDEX, OFFICIAL_DIT_SINGLE,
    OFFICIAL_T5, OFFICIAL_VAE21, OFFICIAL_VAE22,
};
use wan::config::Task;
use wan::pipeline::GenerateParams;

use crate::error::{AppError, AppResult};

/// A DiT folder's `config.json` (the fields the app shows).
#[derive(Debug, Clone, Serialize)]
pub struct DitInfo {
    pub dim: u64,
    pub num_layers: u64,
    pub num_heads: u64,
    pub model_type: String,
    pub bytes: u64,
    /// Official (PyTorch layout) or converted (MLX safetensors); `None` without weights.
    #[serde(skip)]
    pub layout: Option<FolderKind>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckpointInfo {
    pub path: PathBuf,
    /// `Official` (can be converted) or `Converted`; `None` when not recognised.
    pub layout: Option<FolderKind>,
    /// `None` when the folder could not be recognised.
    pub task: Option<Task>,
    /// e.g. `ti2v-5B (dim 3072, 30 layers)`.
    pub name: String,
    pub dits: Vec<DitInfo>,
    pub total_bytes: u64,
    /// Empty when usable.
    pub problems: Vec<String>,
}

fn file_size(p: &Path) -> u64 {
    fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// The first of `names` present in `dir` (official `.pth` or converted `.safetensors`).
fn find_any(dir: &Path, names: &[&str]) -> Option<PathBuf> {
    names.iter().map(|n| dir.join(n)).find(|p| p.is_file())
}

fn read_dit(dir: &Path, problems: &mut Vec<String>) -> Option<DitInfo> {
    let rel = dir.file_name().and_then(|n| n.to_str()).unwrap_or(".");
    let cfg_path = dir.join("config.json");
    let cfg: serde_json::Value = match fs::read(&cfg_path) {
        Err(_) => {
            problems.push(format!("{rel}: config.json is missing"));
            return None;
        }
        Ok(b) => match serde_json::from_slice(&b) {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!("{rel}/config.json is not valid JSON: {e}"));
                return None;
            }
        },
    };
    let num = |k: &str| cfg.get(k).and_then(|v| v.as_u64());
    let (Some(dim), Some(num_layers), Some(num_heads)) =
        (num("dim"), num("num_layers"), num("num_heads"))
    else {
        problems.push(format!(
            "{rel}/config.json lacks dim, num_layers or num_heads"
        ));
        return None;
    };
    let model_type = cfg
        .get("model_type")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    // Weights: one file, or an index naming every shard (all must exist). Converted
    // names first, as the library looks.
    let found = [
        (MLX_DIT_INDEX, FolderKind::Converted),
        (MLX_DIT_SINGLE, FolderKind::Converted),
        (OFFICIAL_DIT_INDEX, FolderKind::Official),
        (OFFICIAL_DIT_SINGLE, FolderKind::Official),
    ]
    .into_iter()
    .find(|(n, _)| dir.join(n).is_file());
    let layout = found.map(|(_, k)| k);
    let mut bytes = 0;
    if let Some((single, _)) = found.filter(|(n, _)| !n.ends_with(".json")) {
        bytes = file_size(&dir.join(single));
    } else if let Some(Ok(b)) = found.map(|(index, _)| fs::read(dir.join(index))) {
        let shards: BTreeSet<String> = serde_json::from_slice::<serde_json::Value>(&b)
            .ok()
            .and_then(|v| v.get("weight_map").and_then(|m| m.as_object()).cloned())
            .map(|m| {
                m.values()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if shards.is_empty() {
            problems.push(format!("{rel}: the shard index lists no weights"));
        }
        for s in &shards {
            let p = dir.join(s);
            // Shard names come from a file: they must stay inside the folder.
            if s.contains(['/', '\\']) || s.starts_with('.') || !p.is_file() {
                problems.push(format!("{rel}: shard {s} is missing"));
            } else {
                bytes += file_size(&p);
            }
        }
    } else {
        problems.push(format!(
            "{rel}: no DiT weights ({OFFICIAL_DIT_INDEX} or {MLX_DIT_INDEX})"
        ));
    }
    Some(DitInfo {
        dim,
        num_layers,
        num_heads,
        model_type,
        bytes,
        layout,
    })
}

/// Inspect a checkpoint folder. `Err` only for paths that are not folders at all.
pub fn inspect(path: &Path) -> AppResult<CheckpointInfo> {
    let path = path
        .canonicalize()
        .map_err(|e| AppError::input(format!("{}: {e}", path.display())))?;
    if !path.is_dir() {
        return Err(AppError::input(format!(
            "{} is not a folder",
            path.display()
        )));
    }
    let mut problems = Vec::new();
    let experts = ["high_noise_model", "low_noise_model"];
    let two = experts.iter().all(|e| path.join(e).is_dir());
    let dits: Vec<DitInfo> = if two {
        experts
            .iter()
            .filter_map(|e| read_dit(&path.join(e), &mut problems))
            .collect()
    } else {
        read_dit(&path, &mut problems).into_iter().collect()
    };
    let task = match (two, dits.first().map(|d| d.model_type.as_str())) {
        (false, Some("ti2v")) => Some(Task::Ti2v5B),
        (true, Some("t2v")) => Some(Task::T2vA14B),
        (true, Some("i2v")) => Some(Task::I2vA14B),
        (_, Some(other)) => {
            problems.push(format!(
                "model_type `{other}` is not supported (ti2v-5B, t2v-A14B, i2v-A14B)"
            ));
            None
        }
        (_, None) => None,
    };
    let mut layouts: Vec<FolderKind> = dits.iter().filter_map(|d| d.layout).collect();
    layouts.dedup();
    let layout = match layouts[..] {
        [k] => Some(k),
        [] => None,
        _ => {
            problems.push("mixes official and converted DiT files".into());
            None
        }
    };
    let (vae_names, t5): (&[&str], &[&str]) = match (layout, task) {
        (Some(FolderKind::Converted), _) => (&[MLX_VAE], &[MLX_T5]),
        (_, Some(Task::Ti2v5B)) => (&[OFFICIAL_VAE22], &[OFFICIAL_T5]),
        _ => (&[OFFICIAL_VAE21], &[OFFICIAL_T5]),
    };
    let mut total_bytes: u64 = dits.iter().map(|d| d.bytes).sum();
    for (what, names) in [("VAE", vae_names), ("T5 encoder", t5)] {
        match find_any(&path, names) {
            Some(p) => total_bytes += file_size(&p),
            None => problems.push(format!("{what} weights missing ({})", names[0])),
        }
    }
    if !path.join("google/umt5-xxl/tokenizer.json").is_file() {
        problems.push("tokenizer missing (google/umt5-xxl/tokenizer.json)".into());
    }
    // Files appear one by one as they are verified: only a finished download is usable.
    if wan::hub::download::is_partial(&path) {
        problems.push(
            "the download into this folder has not finished: resume it in Models → Download".into(),
        );
    }
    let name = match (task, dits.first()) {
        (Some(t), Some(d)) => format!("{} (dim {}, {} layers)", t.name(), d.dim, d.num_layers),
        _ => "unrecognised folder".into(),
    };
    Ok(CheckpointInfo {
        path,
        layout,
        task,
        name,
        dits,
        total_bytes,
        problems,
    })
}

/// Environment variable that makes the app plan for another machine (`16GB`), as
/// `generate --memory` does: for tests and for trying a smaller Mac's plans.
pub const MEMORY_ENV: &str = "WAN_STUDIO_MEMORY";

/// The memory plans are made for: `WAN_STUDIO_MEMORY` when set (e.g. `16GB`), else this
/// machine's physical memory (0 when unknown).
pub fn machine_memory() -> u64 {
    std::env::var(MEMORY_ENV)
        .ok()
        .and_then(|m| wan::memory::parse_bytes(&m).ok())
        .or_else(wan::memory::machine_memory)
        .unwrap_or(0)
}

/// The library's memory plan (`wan::memory`) for `params` with the checkpoint `info` on a
/// machine of `machine` bytes (0: unknown, planned as if memory were plentiful): the
/// folder's headers only, nothing is loaded. `cache`: the app's prompt-context cache (a
/// cached prompt needs no text encoder).
pub fn plan(
    info: &CheckpointInfo,
    params: &GenerateParams,
    machine: u64,
    cache: Option<&wan::t5::cache::ContextCache>,
) -> AppResult<wan::memory::PlanReport> {
    let ck = wan::pipeline::check_folder(&info.path, params.task)
        .map_err(|e| AppError::new("checkpoint", e.to_string()))?;
    let machine = wan::memory::Machine {
        bytes: if machine == 0 { u64::MAX >> 4 } else { machine },
        backend: wan::memory::Backend::current(),
    };
    Ok(wan::pipeline::phases::plan_for(
        &ck,
        params,
        machine,
        &wan::memory::Overrides::default(),
        cache,
        params.lora.is_some(),
    )?)
}
