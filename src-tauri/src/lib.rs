//! Wan Studio, the desktop app: a Tauri shell around the `wan` library.
//!
//! `commands` is the IPC surface (validation, then queue/gallery/settings); `jobs` runs
//! generations and checkpoint conversions on one MLX worker thread and reports through a
//! sink; `gallery` is the atomic on-disk store of finished clips; `settings` persists
//! choices; `checkpoint` validates folders and plans memory (through `wan::memory`); `menu`
//! is the native menu bar; `notify` tells the system when a job ends (notifications, Dock
//! progress).
pub mod checkpoint;
pub mod commands;
pub mod downloads;
pub mod error;
pub mod ffmpeg;
pub mod gallery;
pub mod jobs;
pub mod menu;
pub mod notify;
pub mod selfcheck;
pub mod settings;

use std::sync::Arc;
use std::time::Duration;

use tauri::{Manager, RunEvent, WindowEvent};

use commands::{AppState, TauriSink};
use jobs::{Engine, FakeEngine, JobQueue, WanEngine};

/// `WAN_STUDIO_ENGINE=fake` selects the test engine (no weights needed).
pub const ENGINE_ENV: &str = "WAN_STUDIO_ENGINE";

pub fn engine_kind() -> &'static str {
    match std::env::var(ENGINE_ENV).as_deref() {
        Ok("fake") => "fake",
        _ => "wan",
    }
}

fn setup(app: &mut tauri::App) -> Result<(), Box<dyn std::error::Error>> {
    // Before any MLX work: a .app names its bundled Metal kernels (see wan::metallib).
    match wan::metallib::use_bundled_metallib() {
        Ok(Some(p)) => eprintln!("wan-studio: Metal kernels {}", p.display()),
        Ok(None) => {}
        Err(e) => eprintln!("wan-studio: warning: bundled Metal kernels not usable: {e}"),
    }
    let data_dir = settings::data_dir()?;
    // An ffmpeg downloaded into the data dir is found by every later lookup.
    wan::video::ffmpeg::set_app_data_dir(&data_dir);
    if let Err(e) = wan::video::ffmpeg::find() {
        eprintln!("wan-studio: {e}");
    }
    let gallery = Arc::new(gallery::Gallery::open(data_dir.join("gallery"))?);
    // The asset protocol may read the gallery and nothing else (the configured scope is
    // empty because the folder is only known at run time).
    app.asset_protocol_scope()
        .allow_directory(gallery.root(), true)?;
    let queue = Arc::new(JobQueue::new());
    let sink = Arc::new(TauriSink::new(app.handle().clone()));
    let make_engine: jobs::worker::EngineFactory = match engine_kind() {
        "fake" => {
            Box::new(|| Box::new(FakeEngine::new(Duration::from_millis(300))) as Box<dyn Engine>)
        }
        _ => {
            let preview_cache = settings::preview_cache_dir(&data_dir);
            let context_cache = settings::context_cache_dir(&data_dir);
            Box::new(move || {
                Box::new(WanEngine {
                    preview_cache,
                    context_cache,
                    machine_bytes: checkpoint::machine_memory(),
                }) as Box<dyn Engine>
            })
        }
    };
    let settings = Arc::new(settings::SettingsStore::open(&data_dir));
    let ctx = jobs::WorkerContext {
        queue: queue.clone(),
        gallery: gallery.clone(),
        settings: settings.clone(),
        sink: sink.clone(),
    };
    jobs::worker::spawn(ctx, make_engine)?;
    notify::handle_clicks(app.handle());
    // The saved appearance also themes the window itself (title bar, native controls).
    if let (Some(t), Some(w)) = (
        settings.get().appearance.theme(),
        app.get_webview_window("main"),
    ) {
        let _ = w.set_theme(Some(t));
    }
    app.manage(Arc::new(downloads::Downloads::new()));
    app.manage(Arc::new(commands::downloads::FfmpegDownload::default()));
    app.manage(AppState {
        queue,
        gallery,
        sink,
        settings,
        data_dir,
    });
    Ok(())
}

pub fn run() {
    let app = tauri::Builder::default()
        .plugin(tauri_plugin_dialog::init())
        .plugin(tauri_plugin_notification::init())
        .menu(menu::build)
        .on_menu_event(|app, event| menu::on_event(app, event.id().as_ref()))
        .on_window_event(|window, event| {
            if let WindowEvent::Focused(focused) = event
                && let Some(state) = window.try_state::<AppState>()
            {
                state.sink.notifier.set_focused(*focused);
            }
        })
        .setup(setup)
        .invoke_handler(tauri::generate_handler![
            commands::generate::task_presets,
            commands::generate::default_negative_prompt,
            commands::generate::enqueue,
            commands::generate::queue_snapshot,
            commands::generate::cancel_job,
            commands::generate::move_job,
            commands::generate::read_image,
            commands::gallery::list_clips,
            commands::gallery::delete_clip,
            commands::gallery::export_clip,
            commands::gallery::reveal_clip,
            commands::gallery::clip_last_frame,
            commands::gallery::join_clips,
            commands::models::inspect_checkpoint,
            commands::models::set_checkpoint,
            commands::models::get_settings,
            commands::models::set_appearance,
            commands::models::app_info,
            commands::models::memory_estimate,
            commands::models::convert_checkpoint,
            commands::models::convert_estimate,
            commands::downloads::hub_repos,
            commands::downloads::models_dir,
            commands::downloads::set_models_dir,
            commands::downloads::hub_repo_state,
            commands::downloads::download_model,
            commands::downloads::cancel_download,
            commands::downloads::active_download,
            commands::downloads::ffmpeg_status,
            commands::downloads::download_ffmpeg,
            commands::downloads::cancel_ffmpeg_download,
        ])
        .build(tauri::generate_context!("../tauri.conf.json"));
    let app = match app {
        Ok(a) => a,
        Err(e) => {
            eprintln!("wan-studio: cannot start: {e}");
            std::process::exit(1);
        }
    };
    app.run(|handle, event| {
        if let RunEvent::Exit = event {
            // Stop the worker: the running job is cancelled (its staging is swept on the
            // next start), nothing half-written reaches the gallery.
            if let Some(state) = handle.try_state::<AppState>() {
                state.queue.close();
            }
        }
    });
}
