//! Wan2.2 in MLX (through `mlx-rs`): the library behind Wan Studio's app and CLIs.
//!
//! Data flow: prompt → `t5` → context → `pipeline` (solver loop, CFG, experts) driving
//! `dit::WanModel` → latents → `vae` decode → frames → `video` (mp4).
pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod dit;
pub mod error;
pub mod fixture;
pub mod hash;
pub mod hub;
pub mod lora_file;
pub mod memory;
pub mod metallib;
pub mod nn;
pub mod parity;
pub mod pipeline;
pub mod quant;
pub mod solvers;
pub mod t5;
pub mod train;
pub mod vae;
pub mod video;

pub use error::{Error, Result};
