//! The small API the CLI and the app drive: settings in, events out, a cancel token.
//! (The implementation lives in the sibling modules; these types are the contract.)
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::Task;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SolverKind {
    /// Official default: flow-matching UniPC (bh2, order 2).
    Unipc,
    /// Flow-matching DPM-Solver++ (midpoint, order 2).
    #[serde(rename = "dpm++")]
    Dpmpp,
    /// Plain flow Euler.
    Euler,
}

impl SolverKind {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "unipc" => Ok(Self::Unipc),
            "dpm++" => Ok(Self::Dpmpp),
            "euler" => Ok(Self::Euler),
            _ => Err(Error::Input(format!(
                "unknown solver `{s}` (unipc, dpm++ or euler)"
            ))),
        }
    }
}

/// Everything that determines a clip (stored in the JSON sidecar / gallery record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateParams {
    pub task: Task,
    pub prompt: String,
    /// `None` → the official default negative prompt.
    pub negative_prompt: Option<String>,
    /// Output (W, H). With an image only the area is used (official behaviour).
    pub size: (i32, i32),
    pub frame_num: i32,
    pub sample_steps: usize,
    pub sample_shift: f64,
    /// (low-noise, high-noise) guidance; equal for single-model tasks.
    pub guide_scale: (f32, f32),
    pub solver: SolverKind,
    pub seed: u64,
    /// Conditioning image (ti2v-5B image→video, i2v-A14B).
    pub image: Option<PathBuf>,
    /// Step caching (`off`, `magcache[:…]`, `easycache[:…]`); reused steps change the clip,
    /// so it is part of its settings. Absent in older records: off.
    #[serde(default)]
    pub step_cache: super::step_cache::StepCache,
    /// LoRA / delta files merged into the DiT(s) at load (speed LoRAs such as Lightning,
    /// styles); loading reads this, the run itself does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lora: Option<crate::lora_file::LoraSpec>,
}

/// Coarse phases, for progress displays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    LoadModels,
    EncodeText,
    EncodeImage,
    Denoise,
    Decode,
    Done,
}

/// Small RGB preview frames (row-major RGB8), from the fast latent previewer.
#[derive(Debug, Clone)]
pub struct Preview {
    pub width: u32,
    pub height: u32,
    /// One `width·height·3` buffer per frame.
    pub frames: Vec<Vec<u8>>,
}

/// What a running generation reports, through one callback.
#[derive(Debug, Clone)]
pub enum Event {
    Stage(Stage),
    Step {
        step: usize,
        total: usize,
        timestep: i64,
        elapsed: Duration,
        preview: Option<Preview>,
    },
    /// VAE decode progress (chunks or tiles).
    Decode {
        done: usize,
        total: usize,
    },
    /// Something the user should know that does not stop the run (a prompt longer than
    /// the text encoder reads, which the official code truncates silently).
    Warning(String),
}

/// Cooperative cancellation, checked between denoising steps and between VAE chunks.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
    /// `Err(Error::Cancelled)` once cancelled.
    pub fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }
}

/// A finished clip: frames in [−1, 1] as the official pipeline returns them, plus
/// timings for the record.
#[derive(Debug, Clone)]
pub struct Video {
    /// `[3, F, H, W]` float32 in [−1, 1].
    pub frames: mlx_rs::Array,
    pub fps: u32,
    pub timings: Timings,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Timings {
    pub load_s: f64,
    pub text_s: f64,
    pub denoise_s: f64,
    pub decode_s: f64,
}
