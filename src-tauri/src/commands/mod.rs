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
use crate::notify::Notifier;
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
/// changes as the global `queue-changed` event; the notifier adds the system's side
/// (notifications, Dock progress).
pub struct TauriSink {
    app: AppHandle,
    channels: Mutex<HashMap<JobId, Channel<JobEvent>>>,
    pub notifier: Notifier,
}

impl TauriSink {
    pub fn new(app: AppHandle) -> Self {
        Self {
            notifier: Notifier::new(app.clone()),
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
        // Before the lock: the notifier may talk to the main thread, which may be waiting
        // for this lock in a command.
        self.notifier.job_event(job, &event);
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
        for j in snapshot.running.iter().chain(&snapshot.pending) {
            self.notifier.label(j.id, j.prompt.clone());
        }
        let _ = self.app.emit("queue-changed", snapshot);
    }
}
