//! Generate view commands: task presets, validation, enqueue/cancel/reorder, images.
use std::path::Path;

use serde::Serialize;
use tauri::State;
use tauri::ipc::Channel;
use wan::config::{DEFAULT_NEG_PROMPT, Task};
use wan::pipeline::GenerateParams;

use super::AppState;
use crate::checkpoint::{self, CheckpointInfo};
use crate::error::{AppError, AppResult};
use crate::gallery::Gallery;
use crate::jobs::{Cancelled, JobEvent, JobId, JobSink, QueueSnapshot, Work};
use crate::settings::remember_prompt;

/// Everything the form needs to offer only valid choices for a task.
#[derive(Debug, Clone, Serialize)]
pub struct TaskPreset {
    pub task: Task,
    pub sizes: Vec<(i32, i32)>,
    /// (W, H) multiples any custom size must respect.
    pub size_multiple: (i32, i32),
    pub frame_num: i32,
    pub fps: u32,
    pub sample_steps: usize,
    pub sample_shift: f64,
    pub guide_scale: (f32, f32),
    pub needs_image: bool,
    pub accepts_image: bool,
}

pub const MAX_PROMPT_CHARS: usize = 4000;
pub const MAX_PIXELS: i64 = 1920 * 1088;
pub const MAX_FRAMES: i32 = 241;
const IMAGE_EXTS: [&str; 3] = ["png", "jpg", "jpeg"];
const MAX_IMAGE_BYTES: u64 = 50 << 20;

pub fn presets() -> Vec<TaskPreset> {
    Task::ALL
        .into_iter()
        .map(|task| {
            let c = task.config();
            TaskPreset {
                task,
                sizes: c.supported_sizes.to_vec(),
                size_multiple: c.size_multiple(),
                frame_num: c.frame_num,
                fps: c.sample_fps,
                sample_steps: c.sample_steps,
                sample_shift: c.sample_shift,
                guide_scale: c.guide_scale,
                needs_image: c.needs_image,
                accepts_image: task != Task::T2vA14B,
            }
        })
        .collect()
}

/// A path from the UI naming an image we will read: absolute, an existing regular
/// file, an image extension, a sane size.
pub fn check_image_path(p: &Path) -> AppResult<()> {
    if !p.is_absolute() {
        return Err(AppError::input("the image path must be absolute"));
    }
    let ext = p
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .unwrap_or_default();
    if !IMAGE_EXTS.contains(&ext.as_str()) {
        return Err(AppError::input(format!(
            "{}: not an image (png or jpg)",
            p.display()
        )));
    }
    let meta =
        std::fs::metadata(p).map_err(|e| AppError::input(format!("{}: {e}", p.display())))?;
    if !meta.is_file() {
        return Err(AppError::input(format!("{} is not a file", p.display())));
    }
    if meta.len() > MAX_IMAGE_BYTES {
        return Err(AppError::input("the image is larger than 50 MB"));
    }
    Ok(())
}

/// The Rust half of validation (the UI checks the same rules first). `ckpt` is the
/// selected checkpoint; the run must match its task (and then fit: [`check_memory`]).
pub fn validate(params: &GenerateParams, ckpt: &CheckpointInfo) -> AppResult<()> {
    let cfg = params.task.config();
    let bad = |m: String| Err(AppError::input(m));
    if params.prompt.trim().is_empty() {
        return bad("the prompt is empty".into());
    }
    if params.prompt.chars().count() > MAX_PROMPT_CHARS
        || params
            .negative_prompt
            .as_ref()
            .is_some_and(|n| n.chars().count() > MAX_PROMPT_CHARS)
    {
        return bad(format!(
            "prompts are limited to {MAX_PROMPT_CHARS} characters"
        ));
    }
    let (w, h) = params.size;
    cfg.check_size(w, h)?;
    if w as i64 * h as i64 > MAX_PIXELS {
        return bad(format!("{w}×{h} is larger than 1920×1088"));
    }
    cfg.latent_frames(params.frame_num)?;
    if params.frame_num > MAX_FRAMES {
        return bad(format!("at most {MAX_FRAMES} frames"));
    }
    if !(1..=200).contains(&params.sample_steps) {
        return bad("steps must be between 1 and 200".into());
    }
    if !(params.sample_shift.is_finite()
        && params.sample_shift > 0.0
        && params.sample_shift <= 100.0)
    {
        return bad("shift must be in (0, 100]".into());
    }
    let (g0, g1) = params.guide_scale;
    if ![g0, g1]
        .iter()
        .all(|g| g.is_finite() && (0.0..=30.0).contains(g))
    {
        return bad("guidance must be between 0 and 30".into());
    }
    match (&params.image, cfg.needs_image, params.task) {
        (None, true, _) => return bad(format!("{} needs an image", params.task.name())),
        (Some(_), _, Task::T2vA14B) => {
            return bad("t2v-A14B is text-only: remove the image".into());
        }
        (Some(p), _, _) => {
            check_image_path(p)?;
            // The official size rules must fit this image to the area (they divide by
            // zero for extreme aspect ratios): refuse now rather than in the worker.
            let bytes = std::fs::read(p).map_err(|e| AppError::io("reading the image", e))?;
            let dims = image_dims(&bytes).ok_or_else(|| {
                AppError::input(format!("{}: not a PNG or JPEG image", p.display()))
            })?;
            wan::video::conditioned_size(&cfg, dims, params.size)?;
        }
        _ => {}
    }
    if !ckpt.problems.is_empty() {
        return Err(AppError::new(
            "checkpoint",
            format!("the checkpoint is not usable: {}", ckpt.problems.join("; ")),
        ));
    }
    if ckpt.task != Some(params.task) {
        return Err(AppError::new(
            "checkpoint",
            format!(
                "the selected checkpoint is {}, not {}",
                ckpt.name,
                params.task.name()
            ),
        ));
    }
    Ok(())
}

/// The memory plan of a valid run on a machine of `machine` bytes; a run no plan fits is
/// refused (code `memory`) with the library's reason and suggestion, before it is queued.
pub fn check_memory(
    params: &GenerateParams,
    ckpt: &CheckpointInfo,
    machine: u64,
    cache: Option<&wan::t5::cache::ContextCache>,
) -> AppResult<wan::memory::PlanReport> {
    let report = checkpoint::plan(ckpt, params, machine, cache)?;
    match &report.reason {
        Some(reason) if !report.fits => Err(AppError::new("memory", reason.clone())),
        _ => Ok(report),
    }
}

/// A job that continues gallery clip `parent` must name an existing clip and carry an
/// image (the parent's last frame, or another the user chose).
pub fn check_continuation(
    gallery: &Gallery,
    parent: Option<&str>,
    params: &GenerateParams,
) -> AppResult<()> {
    let Some(parent) = parent else {
        return Ok(());
    };
    gallery.get(parent).map_err(|e| {
        AppError::new(
            &e.code,
            format!("the clip this job continues is gone: {}", e.message),
        )
    })?;
    if params.image.is_none() {
        return Err(AppError::input(
            "a continuation starts from an image (the last frame of the clip it continues)",
        ));
    }
    Ok(())
}

#[tauri::command]
pub fn task_presets() -> Vec<TaskPreset> {
    presets()
}

#[tauri::command]
pub fn default_negative_prompt() -> &'static str {
    DEFAULT_NEG_PROMPT
}

/// Validate, remember as the last settings (and the prompt in the history), queue.
/// `parent`: the gallery clip this job continues (its record will link it). Events stream
/// over `on_event`.
#[tauri::command]
pub fn enqueue(
    state: State<'_, AppState>,
    params: GenerateParams,
    parent: Option<String>,
    on_event: Channel<JobEvent>,
) -> AppResult<JobId> {
    // The clip is written by ffmpeg after the whole run: refuse now, not after denoising.
    crate::ffmpeg::require()?;
    let dir = state
        .settings()
        .checkpoint_dir
        .ok_or_else(|| AppError::new("checkpoint", "choose a checkpoint folder in Models"))?;
    let info = checkpoint::inspect(&dir)?;
    validate(&params, &info)?;
    check_continuation(&state.gallery, parent.as_deref(), &params)?;
    let cache = wan::t5::cache::ContextCache::new(
        crate::settings::context_cache_dir(&state.data_dir),
        crate::jobs::engine::CONTEXT_CACHE_ENTRIES,
    );
    check_memory(&params, &info, checkpoint::machine_memory(), Some(&cache))?;
    state.settings.update(|s| {
        s.last_params = Some(params.clone());
        remember_prompt(&mut s.prompt_history, &params.prompt);
    })?;
    let sink = state.sink.clone();
    let work = Work::Generate {
        params,
        checkpoint: info.path,
        parent,
    };
    let id = state
        .queue
        .push_work(work, |id| sink.register(id, on_event));
    state.sink.queue_changed(state.queue.snapshot());
    Ok(id)
}

#[tauri::command]
pub fn queue_snapshot(state: State<'_, AppState>) -> QueueSnapshot {
    state.queue.snapshot()
}

#[tauri::command]
pub fn cancel_job(state: State<'_, AppState>, id: JobId) -> AppResult<()> {
    match state.queue.cancel(id) {
        Cancelled::Unknown => Err(AppError::not_found(format!("no job {id}"))),
        Cancelled::Signalled => Ok(()),
        Cancelled::Removed => {
            state.sink.job_event(id, JobEvent::Cancelled);
            state.sink.queue_changed(state.queue.snapshot());
            Ok(())
        }
    }
}

#[tauri::command]
pub fn move_job(state: State<'_, AppState>, id: JobId, index: usize) -> AppResult<()> {
    if !state.queue.move_to(id, index) {
        return Err(AppError::not_found(format!("job {id} is not waiting")));
    }
    state.sink.queue_changed(state.queue.snapshot());
    Ok(())
}

/// A dropped or picked reference image: its size and a data URL to show it.
#[derive(Debug, Clone, Serialize)]
pub struct ImageInfo {
    pub path: String,
    pub width: u32,
    pub height: u32,
    pub data_url: String,
}

/// (width, height) from a PNG or baseline/progressive JPEG header.
pub fn image_dims(b: &[u8]) -> Option<(u32, u32)> {
    if b.starts_with(b"\x89PNG\r\n\x1a\n") && b.len() >= 24 && &b[12..16] == b"IHDR" {
        let be = |o: usize| u32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        return Some((be(16), be(20)));
    }
    if b.starts_with(&[0xFF, 0xD8]) {
        let mut i = 2;
        while i + 9 < b.len() {
            if b[i] != 0xFF {
                return None;
            }
            let m = b[i + 1];
            let len = u16::from_be_bytes([b[i + 2], b[i + 3]]) as usize;
            // SOF0..SOF15 except DHT (C4), JPG (C8), DAC (CC) carry the frame size.
            if (0xC0..=0xCF).contains(&m) && ![0xC4, 0xC8, 0xCC].contains(&m) {
                let h = u16::from_be_bytes([b[i + 5], b[i + 6]]) as u32;
                let w = u16::from_be_bytes([b[i + 7], b[i + 8]]) as u32;
                return Some((w, h));
            }
            i += 2 + len;
        }
    }
    None
}

#[tauri::command]
pub fn read_image(path: String) -> AppResult<ImageInfo> {
    let p = Path::new(&path);
    check_image_path(p)?;
    let bytes = std::fs::read(p).map_err(|e| AppError::io("reading the image", e))?;
    let (width, height) = image_dims(&bytes)
        .filter(|&(w, h)| w > 0 && h > 0)
        .ok_or_else(|| AppError::input(format!("{path}: not a PNG or JPEG image")))?;
    let mime = if bytes.starts_with(b"\x89PNG") {
        "image/png"
    } else {
        "image/jpeg"
    };
    Ok(ImageInfo {
        data_url: format!("data:{mime};base64,{}", crate::jobs::worker::base64(&bytes)),
        path,
        width,
        height,
    })
}
