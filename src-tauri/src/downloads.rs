//! Model downloads from the Hugging Face Hub into the app's models folder (Models →
//! Download). They run on their own thread, not the MLX worker's queue: a download is
//! network-bound for minutes or hours and must not hold up generations (and needs no
//! MLX). One at a time; progress (per file and total, ETA) streams to a sink; cancel
//! keeps what was received, so the same button resumes it (`wan::hub::download`).
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use wan::hub::{self, DownloadOptions, Progress, Summary};
use wan::pipeline::CancelToken;

use crate::checkpoint::{self, CheckpointInfo};
use crate::error::{AppError, AppResult};
use crate::settings::SettingsStore;

/// A validated request: which repo, into which folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadJob {
    pub repo: String,
    /// `<models dir>/<repo name>`.
    pub dest: PathBuf,
    /// Select the folder as the checkpoint once complete and usable.
    pub select: bool,
}

impl DownloadJob {
    pub fn new(repo: &str, models_dir: &Path, select: bool) -> AppResult<Self> {
        let repo = repo.trim();
        hub::check_repo_id(repo)?;
        if !models_dir.is_absolute() {
            return Err(AppError::input(
                "the models folder must be an absolute path",
            ));
        }
        Ok(Self {
            repo: repo.to_string(),
            dest: models_dir.join(hub::default_folder_name(repo)),
            select,
        })
    }
}

/// What the window hears about one download.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DownloadEvent {
    Started {
        repo: String,
        dest: PathBuf,
    },
    Progress {
        progress: Progress,
    },
    /// Complete and verified; `info` is the app's check of the new folder.
    Finished {
        summary: Summary,
        info: Box<CheckpointInfo>,
        selected: bool,
    },
    Failed {
        error: AppError,
    },
    /// Stopped by the user; `kept_bytes` stay on disk for the next run.
    Cancelled {
        kept_bytes: u64,
    },
}

/// Where a repo stands in the models folder (what the Download button offers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepoState {
    pub repo: String,
    pub dest: PathBuf,
    /// `absent`, `unfinished` (resume), `complete`, or `other` (a folder of that name
    /// that is not this download: refused).
    pub state: &'static str,
    /// Bytes on disk of an unfinished download (finished files + parts) and its total.
    pub have_bytes: u64,
    pub total_bytes: u64,
}

/// Bytes of an unfinished download already on disk.
fn kept_bytes(dest: &Path) -> u64 {
    let Some(u) = hub::download::unfinished(dest) else {
        return 0;
    };
    u.files
        .iter()
        .map(|f| {
            let done = dest.join(&f.path);
            if done.is_file() {
                f.size
            } else {
                let mut part = dest.join(hub::STAGING_DIR).join(&f.path).into_os_string();
                part.push(".part");
                std::fs::metadata(part)
                    .map(|m| m.len().min(f.size))
                    .unwrap_or(0)
            }
        })
        .sum()
}

pub fn repo_state(repo: &str, models_dir: &Path) -> AppResult<RepoState> {
    let job = DownloadJob::new(repo, models_dir, false)?;
    let dest = job.dest;
    let (state, have_bytes, total_bytes) = match hub::download::unfinished(&dest) {
        Some(u) if u.repo == job.repo => ("unfinished", kept_bytes(&dest), u.total_bytes()),
        Some(_) => ("other", 0, 0),
        None if !dest.exists() => ("absent", 0, 0),
        None if hub::download::is_partial(&dest) => ("other", 0, 0),
        None => {
            let empty = std::fs::read_dir(&dest)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false);
            if empty {
                ("absent", 0, 0)
            } else {
                ("complete", 0, 0)
            }
        }
    };
    Ok(RepoState {
        repo: job.repo,
        dest,
        state,
        have_bytes,
        total_bytes,
    })
}

/// The running download, if any.
#[derive(Debug, Clone, Serialize)]
pub struct ActiveDownload {
    pub id: u64,
    pub repo: String,
    pub dest: PathBuf,
}

#[derive(Default)]
pub struct Downloads {
    state: Mutex<(u64, Option<(ActiveDownload, CancelToken)>)>,
}

pub type EmitFn = Box<dyn Fn(DownloadEvent) + Send>;

impl Downloads {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn active(&self) -> Option<ActiveDownload> {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.1.as_ref().map(|(a, _)| a.clone())
    }

    /// Start `job` on a new thread (refused while another download runs). Events go to
    /// `emit`, the last one `Finished`, `Failed` or `Cancelled`.
    pub fn start(
        self: &Arc<Self>,
        job: DownloadJob,
        opts: DownloadOptions,
        settings: Arc<SettingsStore>,
        emit: EmitFn,
    ) -> AppResult<u64> {
        let cancel = CancelToken::new();
        let id = {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((a, _)) = &s.1 {
                return Err(AppError::input(format!(
                    "a download is under way ({}); wait for it or cancel it",
                    a.repo
                )));
            }
            s.0 += 1;
            let active = ActiveDownload {
                id: s.0,
                repo: job.repo.clone(),
                dest: job.dest.clone(),
            };
            s.1 = Some((active, cancel.clone()));
            s.0
        };
        let me = self.clone();
        let spawned = std::thread::Builder::new()
            .name("download".into())
            .spawn(move || {
                let mut opts = opts;
                opts.cancel = Some(cancel);
                let last = run(&job, &opts, &settings, &emit);
                me.state.lock().unwrap_or_else(|p| p.into_inner()).1 = None;
                emit(last);
            });
        if let Err(e) = spawned {
            self.state.lock().unwrap_or_else(|p| p.into_inner()).1 = None;
            return Err(AppError::new(
                "internal",
                format!("cannot start the download: {e}"),
            ));
        }
        Ok(id)
    }

    /// Ask the running download `id` to stop (within one network read).
    pub fn cancel(&self, id: u64) -> AppResult<()> {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match &s.1 {
            Some((a, c)) if a.id == id => {
                c.cancel();
                Ok(())
            }
            _ => Err(AppError::not_found(format!("no running download {id}"))),
        }
    }
}

/// One download to its last event.
fn run(
    job: &DownloadJob,
    opts: &DownloadOptions,
    settings: &SettingsStore,
    emit: &EmitFn,
) -> DownloadEvent {
    emit(DownloadEvent::Started {
        repo: job.repo.clone(),
        dest: job.dest.clone(),
    });
    let result = hub::download(&job.repo, &job.dest, opts, &mut |p| {
        emit(DownloadEvent::Progress {
            progress: p.clone(),
        })
    });
    let summary = match result {
        Ok(s) => s,
        Err(wan::Error::Cancelled) => {
            return DownloadEvent::Cancelled {
                kept_bytes: kept_bytes(&job.dest),
            };
        }
        Err(e) => return DownloadEvent::Failed { error: e.into() },
    };
    let info = match checkpoint::inspect(&job.dest) {
        Ok(i) => i,
        Err(error) => return DownloadEvent::Failed { error },
    };
    let selected = job.select && info.problems.is_empty();
    if selected && let Err(error) = settings.update(|s| s.checkpoint_dir = Some(info.path.clone()))
    {
        return DownloadEvent::Failed { error };
    }
    DownloadEvent::Finished {
        summary,
        info: Box::new(info),
        selected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;
    use wan::hub::mock::{MockHub, MockOptions};

    fn fixtures() -> PathBuf {
        std::env::var_os("WAN_FIXTURES")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures")
            })
    }

    fn wait_last(rx: &mpsc::Receiver<DownloadEvent>) -> (Vec<DownloadEvent>, DownloadEvent) {
        let mut seen = Vec::new();
        loop {
            let e = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("download events");
            match e {
                DownloadEvent::Finished { .. }
                | DownloadEvent::Failed { .. }
                | DownloadEvent::Cancelled { .. } => return (seen, e),
                e => seen.push(e),
            }
        }
    }

    /// The tiny official checkpoint from the mock Hub: cancelled mid-way (kept, shown
    /// as unfinished and not usable), resumed, then complete, checked and selected.
    #[test]
    fn download_cancel_resume_select() {
        let root = fixtures().join("checkpoints");
        assert!(
            root.join("ti2v_tiny").is_dir(),
            "fixtures missing at {}",
            root.display()
        );
        let hub = MockHub::start(
            &root,
            MockOptions {
                bytes_per_sec: Some(4_000_000),
                ..MockOptions::default()
            },
        )
        .unwrap();
        let data = tempfile::tempdir().unwrap();
        let models = data.path().join("models");
        let settings = Arc::new(SettingsStore::open(data.path()));
        let downloads = Arc::new(Downloads::new());
        let job = DownloadJob::new("Wan-AI/ti2v_tiny", &models, true).unwrap();
        assert_eq!(
            repo_state("Wan-AI/ti2v_tiny", &models).unwrap().state,
            "absent"
        );

        let (tx, rx) = mpsc::channel();
        let tx2 = tx.clone();
        let id = downloads
            .start(
                job.clone(),
                DownloadOptions::new(hub.url()),
                settings.clone(),
                Box::new(move |e| {
                    let _ = tx2.send(e);
                }),
            )
            .unwrap();
        // A second download while one runs is refused.
        let again = downloads.start(
            job.clone(),
            DownloadOptions::new(hub.url()),
            settings.clone(),
            Box::new(|_| {}),
        );
        assert_eq!(again.unwrap_err().code, "input");
        // Cancel once some bytes are in.
        loop {
            match rx.recv_timeout(Duration::from_secs(60)).unwrap() {
                DownloadEvent::Progress { progress } if progress.done > 2_000_000 => break,
                _ => {}
            }
        }
        downloads.cancel(id).unwrap();
        let (_, last) = wait_last(&rx);
        let DownloadEvent::Cancelled { kept_bytes } = last else {
            panic!("expected Cancelled, got {last:?}");
        };
        assert!(kept_bytes > 2_000_000, "{kept_bytes}");
        let st = repo_state("Wan-AI/ti2v_tiny", &models).unwrap();
        assert_eq!((st.state, st.have_bytes), ("unfinished", kept_bytes));
        let info = checkpoint::inspect(&job.dest).unwrap();
        assert!(
            info.problems.iter().any(|p| p.contains("has not finished")),
            "{:?}",
            info.problems
        );
        assert!(downloads.active().is_none());

        // The cancelled run's last response ends at its next failed write: wait for it, so
        // its bytes are not counted as the resumed run's.
        assert!(
            hub.wait_idle(Duration::from_secs(60)),
            "mock hub still busy"
        );
        hub.clear_log();
        let id2 = downloads
            .start(
                job.clone(),
                DownloadOptions::new(hub.url()),
                settings.clone(),
                Box::new(move |e| {
                    let _ = tx.send(e);
                }),
            )
            .unwrap();
        assert_ne!(id, id2);
        let (seen, last) = wait_last(&rx);
        let DownloadEvent::Finished {
            summary,
            info,
            selected,
        } = last
        else {
            panic!("expected Finished, got {last:?}");
        };
        assert!(matches!(seen.first(), Some(DownloadEvent::Started { .. })));
        assert_eq!(summary.reused, kept_bytes);
        assert!(info.problems.is_empty(), "{:?}", info.problems);
        assert!(selected);
        assert_eq!(settings.get().checkpoint_dir, Some(info.path.clone()));
        assert_eq!(
            repo_state("Wan-AI/ti2v_tiny", &models).unwrap().state,
            "complete"
        );
        // Resumed, not restarted: this run was sent exactly what was missing (read once the
        // server's threads are done: the client can have every byte before the last
        // response's log entry is updated).
        assert!(
            hub.wait_idle(Duration::from_secs(60)),
            "mock hub still busy"
        );
        let sent: u64 = hub.served().iter().map(|s| s.bytes).sum();
        assert_eq!(sent, summary.total_bytes - kept_bytes);
    }

    #[test]
    fn bad_requests_are_refused() {
        assert_eq!(
            DownloadJob::new("nope", Path::new("/m"), true)
                .unwrap_err()
                .code,
            "input"
        );
        assert_eq!(
            DownloadJob::new("a/b", Path::new("rel/m"), true)
                .unwrap_err()
                .code,
            "input"
        );
        let j = DownloadJob::new(" Wan-AI/Wan2.2-TI2V-5B ", Path::new("/m"), false).unwrap();
        assert_eq!(j.dest, Path::new("/m/Wan2.2-TI2V-5B"));
    }
}
