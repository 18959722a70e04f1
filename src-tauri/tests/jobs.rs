//! The job manager without Tauri: queue order, reorder/remove while running, cancel
//! within one step, failures and panics, and that the gallery only ever lists complete
//! clips. Events are awaited with timeouts (never sleeps).
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wan::config::Task;
use wan::pipeline::{CancelToken, Event, GenerateParams, SolverKind};
use wan_studio::gallery::Gallery;
use wan_studio::jobs::worker::{self, EngineFactory};
use wan_studio::jobs::{
    Cancelled, Engine, FakeEngine, JobEvent, JobId, JobQueue, JobSink, QueueSnapshot, Rendered,
    Work, WorkerContext,
};
use wan_studio::settings::SettingsStore;

const WAIT: Duration = Duration::from_secs(60);

fn params(prompt: &str, steps: usize) -> GenerateParams {
    GenerateParams {
        task: Task::Ti2v5B,
        prompt: prompt.into(),
        negative_prompt: None,
        size: (96, 64),
        frame_num: 5,
        sample_steps: steps,
        sample_shift: 5.0,
        guide_scale: (5.0, 5.0),
        solver: SolverKind::Unipc,
        seed: 42,
        image: None,
        step_cache: Default::default(),
        lora: None,
    }
}

/// Forwards every job event to the test; optionally cancels a job at a given step.
struct Recorder {
    tx: Mutex<Sender<(JobId, JobEvent)>>,
    cancel_at: Option<(usize, Arc<JobQueue>)>,
}

impl JobSink for Recorder {
    fn job_event(&self, job: JobId, event: JobEvent) {
        if let (JobEvent::Step { step, .. }, Some((at, q))) = (&event, &self.cancel_at)
            && step == at
        {
            assert_eq!(q.cancel(job), Cancelled::Signalled);
        }
        let _ = self.tx.lock().unwrap().send((job, event));
    }
    fn queue_changed(&self, _: QueueSnapshot) {}
}

struct Rig {
    queue: Arc<JobQueue>,
    gallery: Arc<Gallery>,
    events: Receiver<(JobId, JobEvent)>,
    _dir: tempfile::TempDir,
}

fn rig(make_engine: EngineFactory, cancel_at: Option<usize>) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let gallery = Arc::new(Gallery::open(dir.path().join("gallery")).unwrap());
    let queue = Arc::new(JobQueue::new());
    let (tx, events) = channel();
    let sink = Arc::new(Recorder {
        tx: Mutex::new(tx),
        cancel_at: cancel_at.map(|s| (s, queue.clone())),
    });
    let ctx = WorkerContext {
        queue: queue.clone(),
        gallery: gallery.clone(),
        settings: Arc::new(SettingsStore::open(dir.path())),
        sink,
    };
    worker::spawn(ctx, make_engine).unwrap();
    Rig {
        queue,
        gallery,
        events,
        _dir: dir,
    }
}

fn fake() -> EngineFactory {
    Box::new(|| Box::new(FakeEngine::new(Duration::ZERO)) as Box<dyn Engine>)
}

impl Rig {
    fn push(&self, prompt: &str, steps: usize) -> JobId {
        self.queue
            .push(params(prompt, steps), PathBuf::from("/ckpt/tiny"), |_| {})
    }
    /// Next event (panics after a generous timeout rather than hanging).
    fn next(&self) -> (JobId, JobEvent) {
        self.events.recv_timeout(WAIT).expect("worker went silent")
    }
    /// Events until job `id` ends; returns them all.
    fn until_end(&self, id: JobId) -> Vec<JobEvent> {
        let mut seen = Vec::new();
        loop {
            let (j, ev) = self.next();
            if j != id {
                continue;
            }
            let end = matches!(
                ev,
                JobEvent::Finished { .. } | JobEvent::Failed { .. } | JobEvent::Cancelled
            );
            seen.push(ev);
            if end {
                return seen;
            }
        }
    }
    fn staging_is_empty(&self) -> bool {
        let s = self.gallery.root().join(".staging");
        !s.exists() || std::fs::read_dir(s).unwrap().next().is_none()
    }
}

#[test]
fn jobs_run_fifo_with_reorder_and_remove_while_one_runs() {
    let (gate_tx, gate_rx) = channel::<()>();
    let make: EngineFactory = Box::new(move || {
        let mut e = FakeEngine::new(Duration::ZERO);
        e.gate = Some(gate_rx);
        Box::new(e) as Box<dyn Engine>
    });
    let r = rig(make, None);
    let a = r.push("a", 2);
    assert!(matches!(r.next(), (j, JobEvent::Started) if j == a));
    // A is running (held at the gate): queue B, C, D, move D first, remove C.
    let b = r.push("b", 2);
    let c = r.push("c", 2);
    let d = r.push("d", 2);
    assert!(r.queue.move_to(d, 0));
    assert_eq!(r.queue.cancel(c), Cancelled::Removed);
    let snap = r.queue.snapshot();
    assert_eq!(snap.running.as_ref().map(|j| j.id), Some(a));
    assert_eq!(
        snap.pending.iter().map(|j| j.id).collect::<Vec<_>>(),
        [d, b]
    );
    for _ in 0..3 {
        gate_tx.send(()).unwrap();
    }
    let mut order = Vec::new();
    let mut finished = 0;
    while finished < 3 {
        match r.next() {
            (j, JobEvent::Started) => order.push(j),
            (_, JobEvent::Finished { .. }) => finished += 1,
            (j, ev @ (JobEvent::Failed { .. } | JobEvent::Cancelled)) => {
                panic!("job {j} ended with {ev:?}")
            }
            _ => {}
        }
    }
    assert_eq!(order, [d, b]);
    let prompts: Vec<String> = r
        .gallery
        .list()
        .unwrap()
        .into_iter()
        .map(|e| e.record.params.prompt)
        .collect();
    let mut sorted = prompts.clone();
    sorted.sort();
    assert_eq!(sorted, ["a", "b", "d"]);
    assert_eq!(r.queue.snapshot(), QueueSnapshot::default());
}

#[test]
fn finished_job_reports_every_step_with_preview_and_a_complete_record() {
    let r = rig(fake(), None);
    let id = r.push("a fox", 3);
    let evs = r.until_end(id);
    let steps: Vec<usize> = evs
        .iter()
        .filter_map(|e| match e {
            JobEvent::Step {
                step,
                total: 3,
                preview: Some(p),
                eta_s,
                ..
            } => {
                // Fake previews: latent grid 96/16 × 64/16, (5−1)/4+1 = 2 frames.
                assert_eq!((p.width, p.height, p.frames.len()), (6, 4, 2));
                assert!(*eta_s >= 0.0);
                Some(*step)
            }
            _ => None,
        })
        .collect();
    assert_eq!(steps, [1, 2, 3]);
    let stages: Vec<_> = evs
        .iter()
        .filter_map(|e| match e {
            JobEvent::Stage { stage } => Some(*stage),
            _ => None,
        })
        .collect();
    use wan::pipeline::Stage::*;
    assert_eq!(stages, [LoadModels, EncodeText, Denoise, Decode, Done]);
    let Some(JobEvent::Finished { clip }) = evs.last() else {
        panic!("no Finished: {evs:?}");
    };
    assert_eq!(clip.record.params, params("a fox", 3));
    assert_eq!(
        clip.record.negative_prompt_used,
        wan::config::DEFAULT_NEG_PROMPT
    );
    assert_eq!(
        (clip.record.width, clip.record.height, clip.record.frames),
        (96, 64, 5)
    );
    assert_eq!(clip.record.model.engine, "fake");
    assert!(clip.poster.is_file() && clip.clip.is_file());
    let png = std::fs::read(&clip.poster).unwrap();
    assert_eq!(
        wan_studio::commands::generate::image_dims(&png),
        Some((96, 64))
    );
    // Rebuilt from disk: a fresh Gallery on the same folder lists the same clip.
    let again = Gallery::open(r.gallery.root()).unwrap().list().unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].record.id, clip.record.id);
    assert!(r.staging_is_empty());
}

#[test]
fn cancel_stops_within_one_step_and_leaves_no_entry() {
    let r = rig(fake(), Some(2));
    let id = r.push("to be cancelled", 50);
    let evs = r.until_end(id);
    let last_step = evs
        .iter()
        .filter_map(|e| match e {
            JobEvent::Step { step, .. } => Some(*step),
            _ => None,
        })
        .max();
    assert!(matches!(evs.last(), Some(JobEvent::Cancelled)), "{evs:?}");
    assert!(
        last_step.is_some_and(|s| s <= 3),
        "ran to step {last_step:?}"
    );
    assert!(r.gallery.list().unwrap().is_empty());
    assert!(r.staging_is_empty());
    // The worker is free again.
    let next = r.push("after", 1);
    assert!(matches!(
        r.until_end(next).last(),
        Some(JobEvent::Finished { .. })
    ));
}

/// Fails (or panics) in the middle of a run after writing part of its output.
struct Broken {
    panic: bool,
}

impl Engine for Broken {
    fn name(&self) -> &'static str {
        "broken"
    }
    fn generate(
        &mut self,
        _: &Path,
        _: &GenerateParams,
        out: &Path,
        on_event: &mut dyn FnMut(Event),
        _: &CancelToken,
    ) -> wan::Result<Rendered> {
        std::fs::write(out, b"half a video").unwrap();
        on_event(Event::Decode { done: 1, total: 4 });
        if self.panic {
            panic!("engine bug");
        }
        Err(wan::Error::External("ffmpeg died".into()))
    }
}

#[test]
fn failed_or_panicking_engine_reports_and_leaves_no_entry() {
    for panic in [false, true] {
        let r = rig(
            Box::new(move || Box::new(Broken { panic }) as Box<dyn Engine>),
            None,
        );
        let first = r.push("x", 2);
        let second = r.push("y", 2);
        for id in [first, second] {
            match r.until_end(id).last() {
                Some(JobEvent::Failed { error }) => {
                    let code = if panic { "internal" } else { "external" };
                    assert_eq!(error.code, code);
                }
                other => panic!("expected Failed, got {other:?}"),
            }
        }
        assert!(r.gallery.list().unwrap().is_empty());
        assert!(r.staging_is_empty());
    }
}

#[test]
fn a_crash_mid_generation_never_leaves_a_broken_entry() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("gallery");
    let g = Gallery::open(&root).unwrap();
    // A complete clip, via the worker path.
    let r = rig(fake(), None);
    let id = r.push("keep me", 1);
    let Some(JobEvent::Finished { clip }) = r.until_end(id).pop() else {
        panic!("no clip")
    };
    let good = root.join(&clip.record.id);
    copy_dir(&clip.dir, &good);
    // Debris a crash can leave: a half-staged clip, and folders that look like entries
    // but are not complete (no record, truncated record, record of another id).
    let staged = g.stage("1-99").unwrap();
    std::fs::write(staged.join("clip.mp4"), b"partial").unwrap();
    std::fs::create_dir_all(root.join("2-0")).unwrap();
    std::fs::write(root.join("2-0/clip.mp4"), b"x").unwrap();
    copy_dir(&good, &root.join("3-0"));
    let rec = std::fs::read(root.join("3-0/record.json")).unwrap();
    std::fs::write(root.join("3-0/record.json"), &rec[..rec.len() / 2]).unwrap();
    copy_dir(&good, &root.join("4-0"));
    // "Restart": the listing is rebuilt from disk and the staging area swept.
    let g = Gallery::open(&root).unwrap();
    let ids: Vec<String> = g.list().unwrap().into_iter().map(|e| e.record.id).collect();
    assert_eq!(ids, std::slice::from_ref(&clip.record.id));
    assert!(!root.join(".staging").exists());
    // Deleting works, and hostile ids are refused.
    for bad in ["../x", "", "a/b", "..", "UPPER"] {
        assert_eq!(g.delete(bad).unwrap_err().code, "input", "{bad}");
    }
    g.delete(&clip.record.id).unwrap();
    assert!(g.list().unwrap().is_empty());
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn a_continuation_records_its_parent_and_the_gallery_follows_the_chain() {
    let r = rig(fake(), None);
    let first = r.push("a paper boat", 1);
    let Some(JobEvent::Finished { clip: parent }) = r.until_end(first).pop() else {
        panic!("the first job did not finish");
    };
    assert_eq!(parent.record.parent, None);
    let mut p = params("the boat drifts on", 1);
    p.image = Some(parent.dir.join("last.png"));
    let work = Work::Generate {
        params: p,
        checkpoint: PathBuf::from("/ckpt/tiny"),
        parent: Some(parent.record.id.clone()),
    };
    let second = r.queue.push_work(work, |_| {});
    let Some(JobEvent::Finished { clip: child }) = r.until_end(second).pop() else {
        panic!("the continuation did not finish");
    };
    assert_eq!(
        child.record.parent.as_deref(),
        Some(parent.record.id.as_str())
    );
    // The link is on disk: a fresh gallery rebuilds the chain from the records.
    let g = Gallery::open(r.gallery.root()).unwrap();
    let chain: Vec<String> = g
        .chain(&child.record.id)
        .unwrap()
        .into_iter()
        .map(|e| e.record.id)
        .collect();
    assert_eq!(chain, [parent.record.id.clone(), child.record.id.clone()]);
    let text = std::fs::read_to_string(child.dir.join("record.json")).unwrap();
    assert!(text.contains(&format!("\"parent\": \"{}\"", parent.record.id)));
}
