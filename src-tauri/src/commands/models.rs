//! Models view commands: choose and validate a checkpoint folder, memory estimates,
//! persisted settings.
use std::path::PathBuf;

use serde::Serialize;
use tauri::State;
use wan::pipeline::GenerateParams;

use super::AppState;
use crate::checkpoint::{self, CheckpointInfo, MemoryEstimate};
use crate::error::{AppError, AppResult};
use crate::settings::Settings;

#[tauri::command]
pub fn inspect_checkpoint(path: PathBuf) -> AppResult<CheckpointInfo> {
    if !path.is_absolute() {
        return Err(AppError::input("choose the folder with an absolute path"));
    }
    checkpoint::inspect(&path)
}

/// Select a checkpoint folder (persisted). Refused, with the problems, if unusable.
#[tauri::command]
pub fn set_checkpoint(state: State<'_, AppState>, path: PathBuf) -> AppResult<CheckpointInfo> {
    let info = inspect_checkpoint(path)?;
    if !info.problems.is_empty() {
        return Err(AppError::new("checkpoint", info.problems.join("\n")));
    }
    let mut s = state.settings.lock().unwrap_or_else(|p| p.into_inner());
    s.checkpoint_dir = Some(info.path.clone());
    s.save(&state.data_dir)?;
    Ok(info)
}

#[tauri::command]
pub fn get_settings(state: State<'_, AppState>) -> Settings {
    state.settings()
}

#[derive(Debug, Clone, Serialize)]
pub struct AppInfo {
    pub data_dir: PathBuf,
    pub gallery_dir: PathBuf,
    pub machine_bytes: u64,
    pub engine: String,
}

#[tauri::command]
pub fn app_info(state: State<'_, AppState>) -> AppInfo {
    AppInfo {
        data_dir: state.data_dir.clone(),
        gallery_dir: state.gallery.root().to_path_buf(),
        machine_bytes: checkpoint::machine_memory(),
        engine: crate::engine_kind().to_string(),
    }
}

/// Memory needed by `params` with the selected checkpoint.
#[tauri::command]
pub fn memory_estimate(
    state: State<'_, AppState>,
    params: GenerateParams,
) -> AppResult<MemoryEstimate> {
    let dir = state
        .settings()
        .checkpoint_dir
        .ok_or_else(|| AppError::new("checkpoint", "choose a checkpoint folder first"))?;
    let info = checkpoint::inspect(&dir)?;
    Ok(checkpoint::estimate(
        &info,
        &params,
        checkpoint::machine_memory(),
    ))
}
