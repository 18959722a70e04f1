//! Background work: one MLX worker thread fed by a FIFO queue (generations and
//! checkpoint conversions).
pub mod convert;
pub mod engine;
pub mod queue;
pub mod worker;

pub use convert::{ConvertDtype, ConvertJob, ConvertLevel, ConvertQuant, Converted};
pub use engine::{Engine, FakeEngine, Rendered, RgbFrame, WanEngine};
pub use queue::{Cancelled, Job, JobId, JobKind, JobQueue, JobSummary, QueueSnapshot, Work};
pub use worker::{JobEvent, JobSink, PreviewMsg, WorkerContext};
