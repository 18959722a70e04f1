//! Gallery view commands. Clip ids are checked by the gallery; export targets are
//! checked there too.
use std::path::PathBuf;

use tauri::State;

use super::AppState;
use crate::error::{AppError, AppResult};
use crate::gallery::ClipEntry;

#[tauri::command]
pub fn list_clips(state: State<'_, AppState>) -> AppResult<Vec<ClipEntry>> {
    state.gallery.list()
}

#[tauri::command]
pub fn delete_clip(state: State<'_, AppState>, id: String) -> AppResult<()> {
    state.gallery.delete(&id)
}

#[tauri::command]
pub fn export_clip(state: State<'_, AppState>, id: String, dest: PathBuf) -> AppResult<()> {
    if !dest.is_absolute() {
        return Err(AppError::input("export needs an absolute path"));
    }
    state.gallery.export(&id, &dest)
}

/// Show the clip in Finder / the file manager.
#[tauri::command]
pub fn reveal_clip(state: State<'_, AppState>, id: String) -> AppResult<()> {
    let entry = state.gallery.get(&id)?;
    #[cfg(target_os = "macos")]
    let spawned = std::process::Command::new("open")
        .arg("-R")
        .arg(&entry.clip)
        .spawn();
    #[cfg(not(target_os = "macos"))]
    let spawned = std::process::Command::new("xdg-open")
        .arg(&entry.dir)
        .spawn();
    spawned
        .map(|_| ())
        .map_err(|e| AppError::new("external", format!("cannot open the file manager: {e}")))
}
