//! Gallery view commands. Clip ids are checked by the gallery; export targets are
//! checked there too.
use std::path::PathBuf;

use tauri::State;

use super::AppState;
use super::generate::{ImageInfo, read_image};
use crate::error::{AppError, AppResult};
use crate::gallery::ClipEntry;

/// Runs `f` on a blocking thread: reading hundreds of records or running ffmpeg must not
/// hold the main thread (sync commands run there, and the window would freeze).
async fn off_main<T: Send + 'static>(
    f: impl FnOnce() -> AppResult<T> + Send + 'static,
) -> AppResult<T> {
    tauri::async_runtime::spawn_blocking(f)
        .await
        .map_err(|e| AppError::new("internal", format!("background task failed: {e}")))?
}

#[tauri::command]
pub async fn list_clips(state: State<'_, AppState>) -> AppResult<Vec<ClipEntry>> {
    let gallery = state.gallery.clone();
    off_main(move || gallery.list()).await
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
        .spawn()
        .map(|_| ());
    #[cfg(not(target_os = "macos"))]
    let spawned = crate::menu::open_folder(&entry.dir);
    spawned.map_err(|e| AppError::new("external", format!("cannot open the file manager: {e}")))
}

/// "Continue from last frame": the clip's last frame as a PNG in its gallery folder
/// (extracted on first use), described like a picked image. The UI puts it in the form
/// with the clip's settings and enqueues with `parent` = this clip.
#[tauri::command]
pub async fn clip_last_frame(state: State<'_, AppState>, id: String) -> AppResult<ImageInfo> {
    let gallery = state.gallery.clone();
    off_main(move || {
        let png = gallery.last_frame(&id)?;
        read_image(png.to_string_lossy().into_owned())
    })
    .await
}

/// "Join": write the chain that ends at clip `id` (oldest first) as one mp4 at `dest`,
/// without re-encoding. Returns the number of clips joined.
#[tauri::command]
pub async fn join_clips(state: State<'_, AppState>, id: String, dest: PathBuf) -> AppResult<usize> {
    if !dest.is_absolute() {
        return Err(AppError::input("join needs an absolute path"));
    }
    let gallery = state.gallery.clone();
    off_main(move || gallery.join(&id, &dest)).await
}
