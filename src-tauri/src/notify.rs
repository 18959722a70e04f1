//! What the system hears about jobs while the user looks elsewhere: a notification when a
//! job ends (done, failed, cancelled) and the window is not focused, and the running job's
//! progress on the Dock icon / taskbar entry. The decisions are pure functions; the
//! [`Notifier`] only carries them out, best effort: a notification or progress bar that
//! cannot be shown (no notification daemon, no Dock) is ignored and never fails a job.
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tauri::window::{ProgressBarState, ProgressBarStatus};
use tauri::{AppHandle, Emitter, Manager};
use tauri_plugin_notification::NotificationExt;

use crate::jobs::{JobEvent, JobId};

/// The event the window receives when a notification of a finished clip is clicked.
pub const OPEN_CLIP_EVENT: &str = "open-clip";

/// A notification to show: clicking it opens `clip` (a gallery id) when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub title: String,
    pub body: String,
    pub clip: Option<String>,
}

/// The first words of `text`, at most `max` characters, with "…" when cut.
pub fn first_words(text: &str, max: usize) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.chars().count() <= max {
        return text;
    }
    let mut out = String::new();
    for word in text.split(' ') {
        let next = if out.is_empty() {
            word.chars().count()
        } else {
            out.chars().count() + 1 + word.chars().count()
        };
        if next > max.saturating_sub(1) {
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    if out.is_empty() {
        // One very long word (or a language without spaces): cut inside it.
        out = text.chars().take(max.saturating_sub(1)).collect();
    }
    out.push('…');
    out
}

/// The notification for `event` of a job described by `label` (its prompt, or a
/// conversion's one-line description), or `None`: nothing while the window is focused
/// (the user sees the result there) and nothing for events that do not end a job.
pub fn job_notification(window_focused: bool, label: &str, event: &JobEvent) -> Option<Note> {
    if window_focused {
        return None;
    }
    let words = first_words(label, 80);
    let (title, body, clip) = match event {
        JobEvent::Finished { clip } => (
            "Clip ready".to_string(),
            words,
            Some(clip.record.id.clone()),
        ),
        JobEvent::Converted { result } => (
            "Conversion done".to_string(),
            format!("{} is ready to use", result.info.name),
            None,
        ),
        JobEvent::Failed { error } => (
            "Job failed".to_string(),
            format!("{words}: {}", first_words(&error.message, 120)),
            None,
        ),
        JobEvent::Cancelled => ("Job cancelled".to_string(), words, None),
        _ => return None,
    };
    Some(Note { title, body, clip })
}

/// What the Dock / taskbar progress should show after `event`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DockProgress {
    /// Percent done of the running job.
    Percent(u64),
    /// No job running: hide the bar.
    Clear,
}

pub fn dock_progress(event: &JobEvent) -> Option<DockProgress> {
    let pct = |done: f64, total: f64| {
        let p = if total > 0.0 {
            100.0 * done / total
        } else {
            0.0
        };
        DockProgress::Percent(p.clamp(0.0, 100.0).round() as u64)
    };
    match event {
        JobEvent::Started => Some(DockProgress::Percent(0)),
        JobEvent::Step { step, total, .. } => Some(pct(*step as f64, *total as f64)),
        JobEvent::Convert {
            done_bytes,
            total_bytes,
            ..
        } => Some(pct(*done_bytes as f64, *total_bytes as f64)),
        JobEvent::Finished { .. }
        | JobEvent::Converted { .. }
        | JobEvent::Failed { .. }
        | JobEvent::Cancelled => Some(DockProgress::Clear),
        _ => None,
    }
}

/// Carries the decisions out for the app: remembers each job's label, tracks whether the
/// main window is focused, shows notifications and sets the progress bar.
pub struct Notifier {
    app: AppHandle,
    focused: AtomicBool,
    labels: Mutex<HashMap<JobId, String>>,
}

impl Notifier {
    pub fn new(app: AppHandle) -> Self {
        Self {
            app,
            // The window opens focused; window events keep this current.
            focused: AtomicBool::new(true),
            labels: Mutex::new(HashMap::new()),
        }
    }

    pub fn set_focused(&self, focused: bool) {
        self.focused.store(focused, Ordering::SeqCst);
    }

    /// What a notification about job `id` will say it was.
    pub fn label(&self, id: JobId, label: impl Into<String>) {
        self.labels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, label.into());
    }

    /// React to one job event (called by the sink, without any lock of its own held).
    pub fn job_event(&self, id: JobId, event: &JobEvent) {
        if let Some(p) = dock_progress(event) {
            self.progress(p);
        }
        if matches!(dock_progress(event), Some(DockProgress::Clear)) {
            let label = self
                .labels
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id)
                .unwrap_or_default();
            if let Some(note) = job_notification(self.focused.load(Ordering::SeqCst), &label, event)
            {
                self.show(note);
            }
        }
    }

    fn progress(&self, p: DockProgress) {
        let Some(w) = self.app.get_webview_window("main") else {
            return;
        };
        let state = match p {
            DockProgress::Percent(n) => ProgressBarState {
                status: Some(ProgressBarStatus::Normal),
                progress: Some(n),
            },
            DockProgress::Clear => ProgressBarState {
                status: Some(ProgressBarStatus::None),
                progress: None,
            },
        };
        let _ = w.set_progress_bar(state);
    }

    fn show(&self, note: Note) {
        let mut b = self
            .app
            .notification()
            .builder()
            .title(note.title)
            .body(note.body);
        if let Some(clip) = note.clip {
            b = b.extra("clip", clip);
        }
        if let Err(e) = b.show() {
            eprintln!("wan-studio: notification not shown: {e}");
        }
    }
}

/// Clicking a notification brings the window forward; one about a finished clip also
/// opens that clip in the gallery.
pub fn handle_clicks(app: &AppHandle) {
    let handle = app.clone();
    let _ = app.notification().on_action(move |action| {
        if action.action_id() != "tap" {
            return;
        }
        if let Some(w) = handle.get_webview_window("main") {
            let _ = w.unminimize();
            let _ = w.show();
            let _ = w.set_focus();
        }
        let clip = action
            .notification()
            .and_then(|n| n.extra().get("clip"))
            .and_then(|v| v.as_str())
            .map(str::to_string);
        if let Some(id) = clip {
            let _ = handle.emit(OPEN_CLIP_EVENT, id);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::AppError;
    use crate::gallery::{ClipEntry, ClipRecord, ModelIdentity};
    use wan::config::Task;
    use wan::pipeline::{GenerateParams, SolverKind, Timings};

    fn finished(id: &str) -> JobEvent {
        let record = ClipRecord {
            id: id.into(),
            created_unix_ms: 1,
            params: GenerateParams {
                task: Task::Ti2v5B,
                prompt: "a fox".into(),
                negative_prompt: None,
                size: (96, 64),
                frame_num: 5,
                sample_steps: 2,
                sample_shift: 5.0,
                guide_scale: (5.0, 5.0),
                solver: SolverKind::Unipc,
                seed: 1,
                image: None,
                step_cache: Default::default(),
                lora: None,
            },
            negative_prompt_used: String::new(),
            model: ModelIdentity {
                path: "/ckpt".into(),
                name: "tiny".into(),
                engine: "fake".into(),
            },
            width: 96,
            height: 64,
            frames: 5,
            fps: 24,
            timings: Timings::default(),
            wall_s: 1.0,
            parent: None,
        };
        JobEvent::Finished {
            clip: Box::new(ClipEntry {
                record,
                dir: "/g/1-0".into(),
                clip: "/g/1-0/clip.mp4".into(),
                poster: "/g/1-0/poster.png".into(),
            }),
        }
    }

    #[test]
    fn focused_window_gets_no_notification() {
        for ev in [
            finished("1-0"),
            JobEvent::Cancelled,
            JobEvent::Failed {
                error: AppError::input("x"),
            },
        ] {
            assert_eq!(job_notification(true, "a fox", &ev), None);
            assert!(job_notification(false, "a fox", &ev).is_some());
        }
    }

    #[test]
    fn only_the_end_of_a_job_notifies() {
        for ev in [
            JobEvent::Started,
            JobEvent::Decode { done: 1, total: 2 },
            JobEvent::Warning {
                message: "cut".into(),
            },
        ] {
            assert_eq!(job_notification(false, "a fox", &ev), None);
        }
        // A finished clip: clicking the notification opens it.
        let done = job_notification(false, "A red fox runs", &finished("7-1")).unwrap();
        assert_eq!(
            (
                done.title.as_str(),
                done.body.as_str(),
                done.clip.as_deref()
            ),
            ("Clip ready", "A red fox runs", Some("7-1"))
        );
        let n = job_notification(false, "A red fox runs", &JobEvent::Cancelled).unwrap();
        assert_eq!(
            (n.title.as_str(), n.body.as_str(), n.clip),
            ("Job cancelled", "A red fox runs", None)
        );
        let f = job_notification(
            false,
            "A red fox",
            &JobEvent::Failed {
                error: AppError::new("external", "ffmpeg missing"),
            },
        )
        .unwrap();
        assert_eq!(f.title, "Job failed");
        assert_eq!(f.body, "A red fox: ffmpeg missing");
    }

    #[test]
    fn first_words_cut_at_a_word_with_an_ellipsis() {
        assert_eq!(first_words("  a   red\nfox ", 80), "a red fox");
        let long = "A red fox runs through fresh snow at dawn, its breath steaming in the cold";
        let cut = first_words(long, 30);
        assert_eq!(cut, "A red fox runs through fresh…");
        assert!(cut.chars().count() <= 30);
        assert_eq!(
            first_words("一只红狐狸在黎明时分穿过新雪", 6),
            "一只红狐狸…"
        );
    }

    #[test]
    fn dock_progress_follows_steps_and_clears_at_the_end() {
        let step = |step, total| JobEvent::Step {
            step,
            total,
            elapsed_s: 1.0,
            eta_s: 1.0,
            sent_ms: 0,
            preview: None,
        };
        assert_eq!(dock_progress(&step(1, 4)), Some(DockProgress::Percent(25)));
        assert_eq!(dock_progress(&step(4, 4)), Some(DockProgress::Percent(100)));
        assert_eq!(dock_progress(&step(1, 0)), Some(DockProgress::Percent(0)));
        assert_eq!(
            dock_progress(&JobEvent::Cancelled),
            Some(DockProgress::Clear)
        );
        assert_eq!(
            dock_progress(&JobEvent::Warning {
                message: String::new()
            }),
            None
        );
    }
}
