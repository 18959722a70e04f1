//! The IPC surface. Commands validate, then call into the queue, gallery or settings;
//! errors reach the UI as `{ code, message }`.
pub mod downloads;
pub mod gallery;
pub mod generate;
pub mod models;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tauri::ipc::Channel;
use tauri::{AppHandle, Emitter};

use crate::gallery::Gallery;
use crate::jobs::{JobEvent, JobId, JobQueue, JobSink, QueueSnapshot};
use crate::settings::{Settings, SettingsStore};

/// Shared by every command (Tauri-managed).
pub struct AppState {
    pub queue: Arc<JobQueue>,
    pub gallery: Arc<Gallery>,
    pub sink: Arc<TauriSink>,
    pub data_dir: PathBuf,
    /// Shared with the worker (a conversion may select its output).
    pub settings: Arc<SettingsStore>,
}

impl AppState {
    pub fn settings(&self) -> Settings {
        self.settings.get()
    }
}

/// Streams each job's events over the channel its `enqueue` call opened, and queue
/// changes as the global `queue-changed` event.
pub struct TauriSink {
    app: AppHandle,
    channels: Mutex<HashMap<JobId, Channel<JobEvent>>>,
}

impl TauriSink {
    pub fn new(app: AppHandle) -> Self {
        Self {
            app,
            channels: Mutex::new(HashMap::new()),
        }
    }
    pub fn register(&self, id: JobId, ch: Channel<JobEvent>) {
        self.channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, ch);
    }
}

impl JobSink for TauriSink {
    fn job_event(&self, job: JobId, event: JobEvent) {
        let last = matches!(
            event,
            JobEvent::Finished { .. } | JobEvent::Failed { .. } | JobEvent::Cancelled
        );
        let mut chans = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(ch) = chans.get(&job) {
            // A closed window just stops listening; the job still completes.
            let _ = ch.send(event);
        }
        if last {
            chans.remove(&job);
            let _ = self.app.emit("gallery-changed", ());
        }
    }

    fn queue_changed(&self, snapshot: QueueSnapshot) {
        let _ = self.app.emit("queue-changed", snapshot);
    }
}
