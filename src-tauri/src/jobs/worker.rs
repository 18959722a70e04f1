//! The one MLX worker thread: takes jobs from the queue in order, runs the engine (or a
//! checkpoint conversion), streams progress and previews to a [`JobSink`], and publishes
//! finished clips to the gallery (atomically; failed or cancelled runs leave nothing
//! behind).
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use serde::Serialize;
use wan::config::DEFAULT_NEG_PROMPT;
use wan::pipeline::{Event, Stage};

use super::convert::{self, Converted};
use super::engine::Engine;
use super::queue::{Job, JobId, JobQueue, QueueSnapshot, Work};
use crate::error::{AppError, AppResult};
use crate::gallery::{self, ClipEntry, ClipRecord, Gallery, ModelIdentity};
use crate::settings::SettingsStore;

/// One live preview: every frame of the current x0 estimate, small.
#[derive(Debug, Clone, Serialize)]
pub struct PreviewMsg {
    pub width: u32,
    pub height: u32,
    /// Base64 of row-major RGB8, one string per frame.
    pub frames: Vec<String>,
}

/// What the window hears about one job (over its Tauri channel).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobEvent {
    Started,
    Stage {
        stage: Stage,
    },
    Step {
        step: usize,
        total: usize,
        elapsed_s: f64,
        eta_s: f64,
        /// Unix ms when the worker received the finished step (preview latency probe).
        sent_ms: u64,
        preview: Option<PreviewMsg>,
    },
    Decode {
        done: usize,
        total: usize,
    },
    /// Shown beside the progress; the job goes on (e.g. a truncated prompt).
    Warning {
        message: String,
    },
    Finished {
        clip: Box<ClipEntry>,
    },
    /// A conversion wrote `tensor`; `done_bytes` of `total_bytes` are written.
    Convert {
        tensor: String,
        done_bytes: u64,
        total_bytes: u64,
        elapsed_s: f64,
        eta_s: f64,
    },
    /// A conversion wrote every tensor and now stores the fast previewer.
    FitPreview,
    /// A conversion is complete (its folder renamed into place).
    Converted {
        result: Box<Converted>,
    },
    Failed {
        error: AppError,
    },
    Cancelled,
}

/// Where the worker reports (Tauri channels in the app, a recorder in tests).
pub trait JobSink: Send + Sync {
    fn job_event(&self, job: JobId, event: JobEvent);
    fn queue_changed(&self, snapshot: QueueSnapshot);
}

pub type EngineFactory = Box<dyn FnOnce() -> Box<dyn Engine> + Send>;

/// What the worker shares with the commands.
pub struct WorkerContext {
    pub queue: Arc<JobQueue>,
    pub gallery: Arc<Gallery>,
    /// A finished conversion may select its folder here.
    pub settings: Arc<SettingsStore>,
    pub sink: Arc<dyn JobSink>,
}

/// Start the worker thread. The engine is built on that thread and never leaves it.
pub fn spawn(ctx: WorkerContext, make_engine: EngineFactory) -> std::io::Result<JoinHandle<()>> {
    let WorkerContext {
        queue,
        gallery,
        settings,
        sink,
    } = ctx;
    std::thread::Builder::new()
        .name("mlx-worker".into())
        .spawn(move || {
            let mut engine = make_engine();
            while let Some(job) = queue.next() {
                sink.queue_changed(queue.snapshot());
                sink.job_event(job.id, JobEvent::Started);
                let clip_id = gallery::new_clip_id();
                let outcome = catch_unwind(AssertUnwindSafe(|| match &job.work {
                    Work::Generate { .. } => {
                        run_job(engine.as_mut(), &job, &clip_id, &gallery, sink.as_ref()).map(
                            |clip| JobEvent::Finished {
                                clip: Box::new(clip),
                            },
                        )
                    }
                    Work::Convert(c) => {
                        let mut on_event = |ev| sink.job_event(job.id, ev);
                        convert::run(c, &job.cancel, &settings, &mut on_event).map(|r| {
                            JobEvent::Converted {
                                result: Box::new(r),
                            }
                        })
                    }
                }))
                .unwrap_or_else(|_| {
                    gallery.discard(&clip_id);
                    Err(AppError::new("internal", "the worker panicked"))
                });
                let event = match outcome {
                    Ok(event) => event,
                    Err(e) if e.code == "cancelled" => JobEvent::Cancelled,
                    Err(error) => JobEvent::Failed { error },
                };
                queue.finish(job.id);
                sink.job_event(job.id, event);
                sink.queue_changed(queue.snapshot());
            }
        })
}

pub fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                s.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// Map a pipeline event to what the window needs (ETA from the mean step time).
fn to_job_event(ev: Event) -> JobEvent {
    match ev {
        Event::Stage(stage) => JobEvent::Stage { stage },
        Event::Step {
            step,
            total,
            elapsed,
            preview,
            ..
        } => {
            let e = elapsed.as_secs_f64();
            JobEvent::Step {
                step,
                total,
                elapsed_s: e,
                eta_s: e / step.max(1) as f64 * total.saturating_sub(step) as f64,
                sent_ms: gallery::now_ms(),
                preview: preview.map(|p| PreviewMsg {
                    width: p.width,
                    height: p.height,
                    frames: p.frames.iter().map(|f| base64(f)).collect(),
                }),
            }
        }
        Event::Decode { done, total } => JobEvent::Decode { done, total },
        Event::Warning(message) => JobEvent::Warning { message },
    }
}

fn run_job(
    engine: &mut dyn Engine,
    job: &Job,
    id: &str,
    gallery: &Gallery,
    sink: &dyn JobSink,
) -> AppResult<ClipEntry> {
    let Work::Generate {
        params,
        checkpoint,
        parent,
    } = &job.work
    else {
        return Err(AppError::new("internal", "not a generation job"));
    };
    let staged = gallery.stage(id)?;
    let started = Instant::now();
    let mut on_event = |ev: Event| sink.job_event(job.id, to_job_event(ev));
    let result = engine.generate(
        checkpoint,
        params,
        &staged.join(gallery::CLIP),
        &mut on_event,
        &job.cancel,
    );
    let publish = result.map_err(AppError::from).and_then(|r| {
        let png = gallery::encode_png(r.poster.width, r.poster.height, &r.poster.rgb)?;
        gallery::write_atomic(&staged.join(gallery::POSTER), &png)?;
        gallery.commit(&ClipRecord {
            id: id.to_string(),
            created_unix_ms: gallery::now_ms(),
            negative_prompt_used: params
                .negative_prompt
                .clone()
                .unwrap_or_else(|| DEFAULT_NEG_PROMPT.to_string()),
            params: params.clone(),
            model: ModelIdentity {
                path: checkpoint.clone(),
                name: r.model,
                engine: engine.name().to_string(),
            },
            width: r.poster.width,
            height: r.poster.height,
            frames: r.frames,
            fps: r.fps,
            timings: r.timings,
            wall_s: started.elapsed().as_secs_f64(),
            parent: parent.clone(),
        })
    });
    if publish.is_err() {
        gallery.discard(id);
    }
    publish
}

#[cfg(test)]
mod tests {
    use super::base64;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }
}
