//! Models → Download (Hugging Face repos into the models folder) and the ffmpeg notice
//! (status at start, consented download). Both run off the MLX worker, on their own
//! threads, and report over a per-call channel.
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tauri::State;
use tauri::ipc::Channel;
use wan::hub::{self, DownloadOptions, KnownRepo};
use wan::pipeline::CancelToken;

use super::AppState;
use crate::downloads::{ActiveDownload, DownloadEvent, DownloadJob, Downloads, RepoState};
use crate::error::{AppError, AppResult};
use crate::ffmpeg::{self, FfmpegEvent, FfmpegStatus};
use crate::settings::default_models_dir;

fn models_dir_of(state: &AppState) -> PathBuf {
    state
        .settings()
        .models_dir
        .unwrap_or_else(|| default_models_dir(&state.data_dir))
}

/// The official Wan2.2 repos the view offers (any other id can be typed).
#[tauri::command]
pub fn hub_repos() -> Vec<KnownRepo> {
    hub::WAN_REPOS.to_vec()
}

/// Where downloads go (persisted choice, else `<data dir>/models`).
#[tauri::command]
pub fn models_dir(state: State<'_, AppState>) -> PathBuf {
    models_dir_of(&state)
}

/// Change where downloads go: an absolute path to a folder (created if missing).
#[tauri::command]
pub fn set_models_dir(state: State<'_, AppState>, path: PathBuf) -> AppResult<PathBuf> {
    if !path.is_absolute() {
        return Err(AppError::input(
            "the models folder must be an absolute path",
        ));
    }
    std::fs::create_dir_all(&path)
        .map_err(|e| AppError::input(format!("{}: {e}", path.display())))?;
    let path = path
        .canonicalize()
        .map_err(|e| AppError::input(format!("{}: {e}", path.display())))?;
    state
        .settings
        .update(|s| s.models_dir = Some(path.clone()))?;
    Ok(path)
}

/// Whether `repo` is absent, unfinished (and how far), or complete in the models folder.
#[tauri::command]
pub fn hub_repo_state(state: State<'_, AppState>, repo: String) -> AppResult<RepoState> {
    crate::downloads::repo_state(&repo, &models_dir_of(&state))
}

/// Download (or resume) `repo` into the models folder; events stream over `on_event`;
/// with `select` the folder becomes the checkpoint once complete. Returns the download id.
#[tauri::command]
pub fn download_model(
    state: State<'_, AppState>,
    downloads: State<'_, Arc<Downloads>>,
    repo: String,
    select: Option<bool>,
    on_event: Channel<DownloadEvent>,
) -> AppResult<u64> {
    let job = DownloadJob::new(&repo, &models_dir_of(&state), select.unwrap_or(true))?;
    let opts = DownloadOptions::new(hub::endpoint(None)?);
    downloads.start(
        job,
        opts,
        state.settings.clone(),
        Box::new(move |e| {
            // A closed window just stops listening; the download goes on.
            let _ = on_event.send(e);
        }),
    )
}

#[tauri::command]
pub fn cancel_download(downloads: State<'_, Arc<Downloads>>, id: u64) -> AppResult<()> {
    downloads.cancel(id)
}

#[tauri::command]
pub fn active_download(downloads: State<'_, Arc<Downloads>>) -> Option<ActiveDownload> {
    downloads.active()
}

/// Is there an ffmpeg (and which), or what to do (checked at start and on demand).
#[tauri::command]
pub fn ffmpeg_status(state: State<'_, AppState>) -> FfmpegStatus {
    ffmpeg::status(&state.data_dir)
}

/// The ffmpeg download in flight, if any (one at a time; Cancel reaches it here).
#[derive(Default)]
pub struct FfmpegDownload(Mutex<Option<CancelToken>>);

impl FfmpegDownload {
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<CancelToken>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// With the user's consent, fetch a static ffmpeg into the data dir; progress, then
/// `done` or `failed` (code `cancelled` after [`cancel_ffmpeg_download`]), stream over
/// `on_event`.
#[tauri::command]
pub fn download_ffmpeg(
    state: State<'_, AppState>,
    active: State<'_, Arc<FfmpegDownload>>,
    consent: bool,
    on_event: Channel<FfmpegEvent>,
) -> AppResult<()> {
    if !consent {
        return Err(AppError::input("downloading ffmpeg needs your consent"));
    }
    let url = ffmpeg::download_url().ok_or_else(|| {
        AppError::new(
            "ffmpeg",
            "no static ffmpeg build is known for this platform: install ffmpeg yourself",
        )
    })?;
    let cancel = {
        let mut slot = active.slot();
        if slot.is_some() {
            return Err(AppError::input("ffmpeg is already being downloaded"));
        }
        let c = CancelToken::new();
        *slot = Some(c.clone());
        c
    };
    let data_dir = state.data_dir.clone();
    let spawned = std::thread::Builder::new()
        .name("ffmpeg-download".into())
        .spawn({
            let active = Arc::clone(&active);
            move || {
                let send = |e| {
                    let _ = on_event.send(e);
                };
                let result = ffmpeg::download(&data_dir, &url, true, &cancel, &send);
                *active.slot() = None;
                if let Err(error) = result {
                    send(FfmpegEvent::Failed { error });
                }
            }
        });
    if let Err(e) = spawned {
        *active.slot() = None;
        return Err(AppError::new(
            "internal",
            format!("cannot start the download: {e}"),
        ));
    }
    Ok(())
}

/// Stop the ffmpeg download in flight (it reports `failed` with code `cancelled` and
/// leaves nothing behind); nothing to do when none runs.
#[tauri::command]
pub fn cancel_ffmpeg_download(active: State<'_, Arc<FfmpegDownload>>) {
    if let Some(c) = active.slot().as_ref() {
        c.cancel();
    }
}
