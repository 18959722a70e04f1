//! The Wan DiT (`WanModel`) in MLX: one file per model part.
pub mod attention;
pub mod block;
pub mod config;
pub mod kernels;
pub mod keys;
pub mod model;
pub mod rope;

pub use config::{ModelType, WanConfig};
pub use kernels::Kernels;
pub use model::{Blocks, ContextKv, DitInput, Stem, Timesteps, Trace, WanModel};
