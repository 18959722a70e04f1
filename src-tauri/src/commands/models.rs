//! Models view commands: choose and validate a checkpoint folder, convert an official
//! folder to MLX (a worker job), memory estimates, persisted settings.
use std::path::PathBuf;

use serde::Serialize;
use tauri::State;
use tauri::ipc::Channel;
use wan::pipeline::GenerateParams;

use super::AppState;
use crate::checkpoint::{self, CheckpointInfo};
use crate::error::{AppError, AppResult};
use crate::jobs::{
    ConvertDtype, ConvertJob, ConvertLevel, ConvertQuant, JobEvent, JobId, JobSink, Work,
};
use crate::settings::{Appearance, Settings};

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
    state
        .settings
        .update(|s| s.checkpoint_dir = Some(info.path.clone()))?;
    Ok(info)
}

#[tauri::command]
pub fn get_settings(state: State<'_, AppState>) -> Settings {
    state.settings()
}

/// Light, dark or the system's scheme: persisted, and given to the window (its title bar
/// and the page's `prefers-color-scheme` follow; best effort where a platform lacks it).
#[tauri::command]
pub fn set_appearance(
    window: tauri::WebviewWindow,
    state: State<'_, AppState>,
    appearance: Appearance,
) -> AppResult<()> {
    state.settings.update(|s| s.appearance = appearance)?;
    let _ = window.set_theme(appearance.theme());
    Ok(())
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

/// The memory plan of `params` with the selected checkpoint on this machine (the plan
/// line next to Generate): fits, predicted peak, phases, the plan, or why nothing fits.
#[tauri::command]
pub fn memory_estimate(
    state: State<'_, AppState>,
    params: GenerateParams,
) -> AppResult<wan::memory::PlanReport> {
    let dir = state
        .settings()
        .checkpoint_dir
        .ok_or_else(|| AppError::new("checkpoint", "choose a checkpoint folder first"))?;
    let info = checkpoint::inspect(&dir)?;
    let cache = wan::t5::cache::ContextCache::new(
        crate::settings::context_cache_dir(&state.data_dir),
        crate::jobs::engine::CONTEXT_CACHE_ENTRIES,
    );
    checkpoint::plan(&info, &params, checkpoint::machine_memory(), Some(&cache))
}

/// Predicted size (and measured drift) of each "Convert to MLX" level for `src` in
/// `dtype`: dense, 8-bit, 4-bit. Headers only.
#[tauri::command]
pub fn convert_estimate(src: PathBuf, dtype: Option<ConvertDtype>) -> AppResult<Vec<ConvertLevel>> {
    if !src.is_absolute() {
        return Err(AppError::input("choose the folder with an absolute path"));
    }
    crate::jobs::convert::estimate_levels(&src, dtype.unwrap_or_default())
}

/// Queue the conversion of the official folder `src` into the new folder `dst` (both
/// checked here first); progress streams over `on_event`; with `select` the new folder
/// becomes the chosen checkpoint once complete. Returns the job id (cancel with
/// `cancel_job`).
#[tauri::command]
#[allow(clippy::too_many_arguments)]
pub fn convert_checkpoint(
    state: State<'_, AppState>,
    src: PathBuf,
    dst: PathBuf,
    dtype: Option<ConvertDtype>,
    select: Option<bool>,
    quantize: Option<ConvertQuant>,
    on_event: Channel<JobEvent>,
) -> AppResult<JobId> {
    let mut job = ConvertJob::new(
        &src,
        &dst,
        dtype.unwrap_or_default(),
        select.unwrap_or(true),
    )?;
    job.quantize = quantize;
    job.preview_cache = Some(crate::settings::preview_cache_dir(&state.data_dir));
    if state.queue.converting_into(&job.dst) {
        return Err(AppError::input(format!(
            "{} is already being converted into",
            job.dst.display()
        )));
    }
    let sink = state.sink.clone();
    let id = state
        .queue
        .push_work(Work::Convert(job), |id| sink.register(id, on_event));
    state.sink.queue_changed(state.queue.snapshot());
    Ok(id)
}
