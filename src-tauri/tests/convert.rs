//! Checkpoint conversion through the job path: the tiny official fixture folder is
//! converted by the real worker (MLX, the library's `convert`), with progress, cancel,
//! the settings switch, and the Rust-side checks of the paths the UI sends.
mod common;

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wan::checkpoint::safetensors::StDtype;
use wan::checkpoint::{Checkpoint, Expert, FolderKind, Shards, TensorSource};
use wan::config::Task;
use wan::pipeline::CancelToken;
use wan::vae::VaeKind;
use wan::vae::preview::Previewer;
use wan_studio::checkpoint;
use wan_studio::gallery::Gallery;
use wan_studio::jobs::worker;
use wan_studio::jobs::{
    Cancelled, ConvertDtype, ConvertJob, Converted, Engine, FakeEngine, Job, JobEvent, JobId,
    JobKind, JobQueue, JobSink, JobSummary, QueueSnapshot, Work, WorkerContext,
};
use wan_studio::settings::{Settings, SettingsStore};

const WAIT: Duration = Duration::from_secs(120);

/// The official-layout tiny TI2V folder (`None` only when skipping is allowed).
fn tiny() -> Option<PathBuf> {
    common::tiny_folder("ti2v_tiny")
}

/// Forwards job events to the test; optionally cancels a job at its first progress event.
struct Recorder {
    tx: Mutex<Sender<(JobId, JobEvent)>>,
    cancel_on_progress: Option<Arc<JobQueue>>,
}

impl JobSink for Recorder {
    fn job_event(&self, job: JobId, event: JobEvent) {
        if let (JobEvent::Convert { .. }, Some(q)) = (&event, &self.cancel_on_progress) {
            // Called on the worker thread before the next tensor: deterministic.
            let c = q.cancel(job);
            assert!(matches!(c, Cancelled::Signalled), "{c:?}");
        }
        let _ = self.tx.lock().unwrap().send((job, event));
    }
    fn queue_changed(&self, _: QueueSnapshot) {}
}

struct Rig {
    queue: Arc<JobQueue>,
    settings: Arc<SettingsStore>,
    events: Receiver<(JobId, JobEvent)>,
    dir: tempfile::TempDir,
}

fn rig(cancel_on_progress: bool) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let queue = Arc::new(JobQueue::new());
    let settings = Arc::new(SettingsStore::open(&data));
    let (tx, events) = channel();
    let sink = Arc::new(Recorder {
        tx: Mutex::new(tx),
        cancel_on_progress: cancel_on_progress.then(|| queue.clone()),
    });
    let ctx = WorkerContext {
        queue: queue.clone(),
        gallery: Arc::new(Gallery::open(data.join("gallery")).unwrap()),
        settings: settings.clone(),
        sink,
    };
    let make: worker::EngineFactory =
        Box::new(|| Box::new(FakeEngine::new(Duration::ZERO)) as Box<dyn Engine>);
    worker::spawn(ctx, make).unwrap();
    Rig {
        queue,
        settings,
        events,
        dir,
    }
}

impl Rig {
    fn out(&self) -> PathBuf {
        let p = self.dir.path().join("out");
        std::fs::create_dir_all(&p).unwrap();
        p
    }
    /// Queue a conversion; `preview` also stores the fast previewer (a VAE fit).
    fn convert(
        &self,
        src: &Path,
        dst: &Path,
        dtype: ConvertDtype,
        select: bool,
        preview: bool,
    ) -> JobId {
        let mut job = ConvertJob::new(src, dst, dtype, select).unwrap();
        job.preview_cache = preview.then(|| self.dir.path().join("previewers"));
        self.queue.push_work(Work::Convert(job), |_| {})
    }
    /// Events of job `id` until it ends.
    fn until_end(&self, id: JobId) -> Vec<JobEvent> {
        let mut seen = Vec::new();
        loop {
            let (j, ev) = self.events.recv_timeout(WAIT).expect("worker went silent");
            if j != id {
                continue;
            }
            let end = matches!(
                ev,
                JobEvent::Converted { .. } | JobEvent::Failed { .. } | JobEvent::Cancelled
            );
            seen.push(ev);
            if end {
                return seen;
            }
        }
    }
}

/// (done, total) of every progress event.
fn progress(evs: &[JobEvent]) -> Vec<(u64, u64)> {
    evs.iter()
        .filter_map(|e| match e {
            JobEvent::Convert {
                tensor,
                done_bytes,
                total_bytes,
                eta_s,
                ..
            } => {
                assert!(!tensor.is_empty() && *eta_s >= 0.0 && eta_s.is_finite());
                Some((*done_bytes, *total_bytes))
            }
            _ => None,
        })
        .collect()
}

fn converted(evs: &[JobEvent]) -> &Converted {
    match evs.last() {
        Some(JobEvent::Converted { result }) => result,
        other => panic!("expected Converted, got {other:?}"),
    }
}

/// Stored dtypes of every tensor of a converted safetensors file or shard index.
fn dtypes(path: &Path) -> Vec<StDtype> {
    let s = Shards::open(path).unwrap();
    s.tensor_names()
        .iter()
        .map(|n| s.tensor_dtype(n).unwrap())
        .collect()
}

#[test]
fn the_tiny_official_folder_converts_with_progress_and_becomes_the_selection() {
    let Some(src) = tiny() else { return };
    let r = rig(false);
    let dst = r.out().join("ti2v_tiny-mlx");
    let id = r.convert(&src, &dst, ConvertDtype::Bf16, true, true);
    let evs = r.until_end(id);
    assert!(matches!(evs.first(), Some(JobEvent::Started)), "{evs:?}");
    assert!(evs.iter().any(|e| matches!(e, JobEvent::FitPreview)));
    let p = progress(&evs);
    assert!(p.len() > 10, "{} progress events", p.len());
    let total = p[0].1;
    assert!(p.iter().all(|&(_, t)| t == total), "total changed");
    assert!(
        p.windows(2).all(|w| w[1].0 > w[0].0),
        "progress not increasing"
    );
    assert_eq!(p.last().map(|&(d, _)| d), Some(total));
    let res = converted(&evs);
    assert!(res.info.problems.is_empty(), "{:?}", res.info.problems);
    assert_eq!(res.info.layout, Some(FolderKind::Converted));
    assert_eq!(res.info.task, Some(Task::Ti2v5B));
    assert_eq!(res.bytes, total);
    // The app's checks agree with the library, which validates every DiT key and shape.
    let again = checkpoint::inspect(&dst).unwrap();
    assert!(again.problems.is_empty(), "{:?}", again.problems);
    let ck = Checkpoint::open(&dst).unwrap();
    assert_eq!(ck.kind, FolderKind::Converted);
    ck.dit_config(Expert::Main).unwrap();
    let dit = dtypes(&ck.dits[0].weights);
    assert!(!dit.is_empty() && dit.iter().all(|d| *d == StDtype::BF16));
    // Selected, in memory and on disk.
    let canon = dst.canonicalize().unwrap();
    assert!(res.selected);
    assert_eq!(r.settings.get().checkpoint_dir.as_ref(), Some(&canon));
    let saved = Settings::load(&r.dir.path().join("data"));
    assert_eq!(saved.checkpoint_dir, Some(canon));
    // Only the new folder is left beside it (no temp folder).
    let names: Vec<_> = std::fs::read_dir(r.out())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["ti2v_tiny-mlx"]);
    // The previewer is beside the weights (nothing half-written), loadable, for this VAE.
    assert!(res.previewer);
    let p = Previewer::load_beside(&dst)
        .unwrap()
        .expect("no preview_mlx.safetensors");
    assert_eq!(
        (p.kind, p.z_dim),
        (VaeKind::Wan22, ck.vae_config().unwrap().z_dim)
    );
    for e in std::fs::read_dir(&dst).unwrap() {
        let name = e.unwrap().file_name();
        assert!(
            !name.to_string_lossy().starts_with('.'),
            "{name:?} left behind"
        );
    }
}

#[test]
fn cancel_leaves_no_destination_and_keeps_the_settings() {
    let Some(src) = tiny() else { return };
    let r = rig(true);
    let dst = r.out().join("cancelled");
    let id = r.convert(&src, &dst, ConvertDtype::Bf16, true, true);
    let evs = r.until_end(id);
    assert!(matches!(evs.last(), Some(JobEvent::Cancelled)), "{evs:?}");
    // Cancelled at the first tensor: the library stops before the next one.
    assert_eq!(progress(&evs).len(), 1);
    assert!(dst.symlink_metadata().is_err());
    assert!(std::fs::read_dir(r.out()).unwrap().next().is_none());
    assert_eq!(r.settings.get().checkpoint_dir, None);
}

#[test]
fn f32_without_selecting_keeps_the_settings() {
    let Some(src) = tiny() else { return };
    let r = rig(false);
    r.settings
        .update(|s| s.checkpoint_dir = Some("/models/other".into()))
        .unwrap();
    let dst = r.out().join("f32");
    let id = r.convert(&src, &dst, ConvertDtype::F32, false, false);
    let evs = r.until_end(id);
    let res = converted(&evs);
    assert!(!res.selected && !res.previewer);
    assert_eq!(
        r.settings.get().checkpoint_dir,
        Some(PathBuf::from("/models/other"))
    );
    let ck = Checkpoint::open(&dst).unwrap();
    for f in [ck.t5.unwrap(), ck.vae.unwrap()] {
        assert!(dtypes(&f).iter().all(|d| *d == StDtype::F32), "{f:?}");
    }
}

/// A folder that looks converted to the app's checks (files present, contents unread).
fn fake_converted(dir: &Path) {
    std::fs::write(
        dir.join("config.json"),
        r#"{"dim": 256, "num_layers": 2, "num_heads": 2, "model_type": "ti2v"}"#,
    )
    .unwrap();
    for f in [
        "wan_model_mlx.safetensors",
        "vae_mlx.safetensors",
        "t5_encoder_mlx.safetensors",
    ] {
        std::fs::write(dir.join(f), [0u8; 100]).unwrap();
    }
    std::fs::create_dir_all(dir.join("google/umt5-xxl")).unwrap();
    std::fs::write(dir.join("google/umt5-xxl/tokenizer.json"), "{}").unwrap();
}

#[test]
fn converted_folders_are_recognised_and_their_missing_files_named() {
    let d = tempfile::tempdir().unwrap();
    fake_converted(d.path());
    let info = checkpoint::inspect(d.path()).unwrap();
    assert!(info.problems.is_empty(), "{:?}", info.problems);
    assert_eq!(info.layout, Some(FolderKind::Converted));
    assert_eq!(info.total_bytes, 300);
    std::fs::remove_file(d.path().join("vae_mlx.safetensors")).unwrap();
    let p = checkpoint::inspect(d.path()).unwrap().problems.join("\n");
    assert!(p.contains("vae_mlx.safetensors"), "{p}");
}

#[test]
fn bad_paths_are_refused_with_clear_messages() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().canonicalize().unwrap();
    let official = root.join("official");
    std::fs::create_dir_all(&official).unwrap();
    // The app's checks only look at names and configs: a stand-in official folder.
    std::fs::write(
        official.join("config.json"),
        r#"{"dim": 256, "num_layers": 2, "num_heads": 2, "model_type": "ti2v"}"#,
    )
    .unwrap();
    for f in [
        "diffusion_pytorch_model.safetensors",
        "Wan2.2_VAE.pth",
        "models_t5_umt5-xxl-enc-bf16.pth",
    ] {
        std::fs::write(official.join(f), [0u8; 10]).unwrap();
    }
    std::fs::create_dir_all(official.join("google/umt5-xxl")).unwrap();
    std::fs::write(official.join("google/umt5-xxl/tokenizer.json"), "{}").unwrap();
    let converted = root.join("converted");
    std::fs::create_dir_all(&converted).unwrap();
    fake_converted(&converted);
    let empty = root.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(root.join("nowhere"), root.join("dangling")).unwrap();

    let new = root.join("new-mlx");
    let cases: Vec<(&str, PathBuf, PathBuf, &str)> = vec![
        ("input", "official".into(), new.clone(), "absolute"),
        ("input", official.clone(), "new-mlx".into(), "absolute"),
        ("input", root.join("missing"), new.clone(), "No such file"),
        (
            "checkpoint",
            empty.clone(),
            new.clone(),
            "config.json is missing",
        ),
        ("input", converted.clone(), new.clone(), "already converted"),
        (
            "input",
            official.clone(),
            converted.clone(),
            "already exists",
        ),
        (
            "input",
            official.clone(),
            root.join("no/such/dir"),
            "parent folder does not exist",
        ),
        (
            "input",
            official.clone(),
            official.join("inside"),
            "outside",
        ),
        ("input", official.clone(), root.join("a/../b"), "`..`"),
        ("input", official.clone(), PathBuf::from("/"), "folder name"),
    ];
    for (code, src, dst, why) in cases {
        let e = ConvertJob::new(&src, &dst, ConvertDtype::Bf16, true).unwrap_err();
        assert_eq!(e.code, code, "{src:?} → {dst:?}: {e}");
        assert!(
            e.message.contains(why),
            "expected `{why}` in `{}`",
            e.message
        );
    }
    #[cfg(unix)]
    {
        let e = ConvertJob::new(&official, &root.join("dangling"), ConvertDtype::Bf16, true)
            .unwrap_err();
        assert!(e.message.contains("already exists"), "{e}");
    }
    // A good request: canonical paths, the task, a one-line queue entry.
    let job = ConvertJob::new(&official, &new, ConvertDtype::F16, false).unwrap();
    assert_eq!(
        (job.src.as_path(), job.dst.as_path()),
        (official.as_path(), new.as_path())
    );
    assert_eq!(job.task, Task::Ti2v5B);
    let queued = Job {
        id: 3,
        work: Work::Convert(job.clone()),
        cancel: CancelToken::new(),
    };
    let s = JobSummary::from(&queued);
    assert_eq!(s.kind, JobKind::Convert);
    assert_eq!(s.prompt, "convert official → new-mlx (f16)");
    // The queue knows a conversion into `new` is pending (a second one is refused).
    let q = JobQueue::new();
    q.push_work(Work::Convert(job), |_| {});
    assert!(q.converting_into(&new));
    assert!(!q.converting_into(&official));
    // The dtype names the UI sends.
    for (s, d) in [
        ("\"bf16\"", ConvertDtype::Bf16),
        ("\"f16\"", ConvertDtype::F16),
        ("\"f32\"", ConvertDtype::F32),
    ] {
        assert_eq!(serde_json::from_str::<ConvertDtype>(s).unwrap(), d);
    }
    assert!(serde_json::from_str::<ConvertDtype>("\"int8\"").is_err());
}
