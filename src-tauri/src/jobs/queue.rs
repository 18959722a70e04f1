//! The FIFO job queue shared by the commands (producers) and the one MLX worker
//! (consumer): add while a job runs, reorder and remove pending jobs, cancel any job.
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard};

use serde::Serialize;
use wan::pipeline::{CancelToken, GenerateParams};

pub type JobId = u64;

/// A queued generation: validated settings, the checkpoint to use, its cancel token.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: JobId,
    pub params: GenerateParams,
    pub checkpoint: PathBuf,
    pub cancel: CancelToken,
}

/// What the UI shows of a job in the queue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobSummary {
    pub id: JobId,
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
        Self {
            id: j.id,
            prompt: j.params.prompt.clone(),
            task: j.params.task.name().to_string(),
            size: j.params.size,
            frames: j.params.frame_num,
            steps: j.params.sample_steps,
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

    /// Append a job; returns its id. `before_visible` runs with the new id before the
    /// worker can see the job (register listeners there, so no event is missed).
    pub fn push(
        &self,
        params: GenerateParams,
        checkpoint: PathBuf,
        before_visible: impl FnOnce(JobId),
    ) -> JobId {
        let mut s = self.lock();
        s.next_id += 1;
        let id = s.next_id;
        before_visible(id);
        s.pending.push_back(Job {
            id,
            params,
            checkpoint,
            cancel: CancelToken::new(),
        });
        self.wake.notify_all();
        id
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
