//! Generation pipelines (the only place that knows the order of things).
pub mod api;

pub use api::{CancelToken, Event, GenerateParams, Preview, SolverKind, Stage, Timings, Video};
