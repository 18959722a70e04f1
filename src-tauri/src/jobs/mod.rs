//! Background generation: one MLX worker thread fed by a FIFO queue.
pub mod engine;
pub mod queue;
pub mod worker;

pub use engine::{Engine, FakeEngine, Rendered, RgbFrame, WanEngine};
pub use queue::{Cancelled, Job, JobId, JobQueue, JobSummary, QueueSnapshot};
pub use worker::{JobEvent, JobSink, PreviewMsg};
