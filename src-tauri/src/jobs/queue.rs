//! The FIFO job queue shared by the commands (producers) and the one MLX worker
//! (consumer): add while a job runs, reorder and remove pending jobs, cancel any job.
//! Generations and checkpoint conversions share it because both need MLX, which runs on
//! that one thread.
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};

use serde::Serialize;
use wan::pipeline::{CancelToken, GenerateParams};

use super::convert::ConvertJob;

pub type JobId = u64;

/// What a job does.
#[derive(Debug, Clone)]
pub enum Work {
    /// Validated settings and the checkpoint to use; `parent` is the gallery clip this
    /// one continues (recorded in its record).
    Generate {
        params: GenerateParams,
        checkpoint: PathBuf,
        parent: Option<String>,
    },
    /// An official folder to convert into a new MLX folder.
    Convert(ConvertJob),
}

/// A queued job and its cancel token.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: JobId,
    pub work: Work,
    pub cancel: CancelToken,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Generate,
    Convert,
}

/// What the UI shows of a job in the queue. For a conversion, `prompt` is a one-line
/// description (`convert A → B (bf16)`) and size, frames and steps are zero.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobSummary {
    pub id: JobId,
    pub kind: JobKind,
    pub prompt: String,
    pub task: String,
    pub size: (i32, i32),
    pub frames: i32,
    pub steps: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QueueSnapshot {
    pub running: Option<JobSummary>,
    pub pending: Vec<JobSummary>,
}

impl From<&Job> for JobSummary {
    fn from(j: &Job) -> Self {
        match &j.work {
            Work::Generate { params, .. } => Self {
                id: j.id,
                kind: JobKind::Generate,
                prompt: params.prompt.clone(),
                task: params.task.name().to_string(),
                size: params.size,
                frames: params.frame_num,
                steps: params.sample_steps,
            },
            Work::Convert(c) => Self {
                id: j.id,
                kind: JobKind::Convert,
                prompt: c.describe(),
                task: c.task.name().to_string(),
                size: (0, 0),
                frames: 0,
                steps: 0,
            },
        }
    }
}

/// What `cancel` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancelled {
    /// It was pending and is gone (the worker will never report on it).
    Removed,
    /// It is running and will stop within one step (the worker reports `Cancelled`).
    Signalled,
    Unknown,
}

#[derive(Default)]
struct State {
    next_id: JobId,
    pending: VecDeque<Job>,
    running: Option<Job>,
    closed: bool,
}

#[derive(Default)]
pub struct JobQueue {
    state: Mutex<State>,
    wake: Condvar,
}

impl JobQueue {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the queue inconsistent (every
        // mutation is a single VecDeque/Option operation), so poisoning is ignored.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Append a generation; returns its id. `before_visible` runs with the new id before
    /// the worker can see the job (register listeners there, so no event is missed).
    pub fn push(
        &self,
        params: GenerateParams,
        checkpoint: PathBuf,
        before_visible: impl FnOnce(JobId),
    ) -> JobId {
        let parent = None;
        self.push_work(
            Work::Generate {
                params,
                checkpoint,
                parent,
            },
            before_visible,
        )
    }

    /// Append any job (see [`JobQueue::push`]).
    pub fn push_work(&self, work: Work, before_visible: impl FnOnce(JobId)) -> JobId {
        let mut s = self.lock();
        s.next_id += 1;
        let id = s.next_id;
        before_visible(id);
        s.pending.push_back(Job {
            id,
            work,
            cancel: CancelToken::new(),
        });
        self.wake.notify_all();
        id
    }

    /// Whether a waiting or running conversion already writes to `dst` (two jobs racing
    /// for one folder: the second would fail only after the first finished).
    pub fn converting_into(&self, dst: &Path) -> bool {
        let s = self.lock();
        s.running
            .iter()
            .chain(s.pending.iter())
            .any(|j| matches!(&j.work, Work::Convert(c) if c.dst == dst))
    }

    pub fn snapshot(&self) -> QueueSnapshot {
        let s = self.lock();
        QueueSnapshot {
            running: s.running.as_ref().map(JobSummary::from),
            pending: s.pending.iter().map(JobSummary::from).collect(),
        }
    }

    /// Move a pending job to `index` (clamped) in the pending list.
    pub fn move_to(&self, id: JobId, index: usize) -> bool {
        let mut s = self.lock();
        let Some(pos) = s.pending.iter().position(|j| j.id == id) else {
            return false;
        };
        if let Some(job) = s.pending.remove(pos) {
            let at = index.min(s.pending.len());
            s.pending.insert(at, job);
        }
        true
    }

    /// Cancel a job: a pending one is removed, the running one is told to stop (it
    /// checks its token every denoising step).
    pub fn cancel(&self, id: JobId) -> Cancelled {
        let mut s = self.lock();
        if let Some(pos) = s.pending.iter().position(|j| j.id == id) {
            s.pending.remove(pos);
            return Cancelled::Removed;
        }
        match &s.running {
            Some(j) if j.id == id => {
                j.cancel.cancel();
                Cancelled::Signalled
            }
            _ => Cancelled::Unknown,
        }
    }

    /// Worker side: block until a job is available (it becomes the running one), or
    /// return `None` once the queue is closed.
    pub fn next(&self) -> Option<Job> {
        let mut s = self.lock();
        loop {
            if s.closed {
                return None;
            }
            if let Some(job) = s.pending.pop_front() {
                s.running = Some(job.clone());
                return Some(job);
            }
            s = self.wake.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Worker side: the running job is over.
    pub fn finish(&self, id: JobId) {
        let mut s = self.lock();
        if s.running.as_ref().is_some_and(|j| j.id == id) {
            s.running = None;
        }
    }

    /// Stop the worker after its current job (app exit); the running job is cancelled.
    pub fn close(&self) {
        let mut s = self.lock();
        s.closed = true;
        if let Some(j) = &s.running {
            j.cancel.cancel();
        }
        self.wake.notify_all();
    }
}
