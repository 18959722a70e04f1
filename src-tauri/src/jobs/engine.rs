//! What the worker drives: an [`Engine`] turns settings into an mp4 in a staging folder,
//! reporting pipeline [`Event`]s. `WanEngine` is the MLX pipeline of the `wan` library;
//! `FakeEngine` is a deterministic stand-in for tests (and for UI work without weights).
//! An engine is created on, and only used from, the worker thread (MLX streams are per
//! thread).
use std::path::Path;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use wan::pipeline::{CancelToken, Event, GenerateParams, Preview, Stage, Timings};
use wan::{Error, Result};

/// One RGB8 frame (row-major).
#[derive(Debug, Clone, PartialEq)]
pub struct RgbFrame {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
}

/// What an engine reports back once `clip.mp4` is written.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// First frame at full size (the gallery poster).
    pub poster: RgbFrame,
    pub frames: u32,
    pub fps: u32,
    pub timings: Timings,
    /// Model description for the record, e.g. `ti2v-5B (dim 3072, 30 layers)`.
    pub model: String,
}

pub trait Engine {
    /// Short engine name stored in records (`wan`, `fake`).
    fn name(&self) -> &'static str;

    /// Generate `params` with the checkpoint at `ckpt`, writing the video to `out_mp4`.
    /// Must call `on_event` for every stage and step and return `Err(Error::Cancelled)`
    /// within one denoising step of `cancel` being set.
    fn generate(
        &mut self,
        ckpt: &Path,
        params: &GenerateParams,
        out_mp4: &Path,
        on_event: &mut dyn FnMut(Event),
        cancel: &CancelToken,
    ) -> Result<Rendered>;
}

/// Prompt contexts kept by the app's cache (the oldest are evicted).
pub const CONTEXT_CACHE_ENTRIES: usize = 256;

/// The real thing: `wan::pipeline` + `wan::video` on MLX.
pub struct WanEngine {
    /// Where previewers fitted for folders without one (official downloads) are kept, so
    /// the fit (seconds) happens once per VAE, not per job.
    pub preview_cache: std::path::PathBuf,
    /// Prompt contexts: a prompt seen before never loads umT5.
    pub context_cache: std::path::PathBuf,
    /// The memory jobs are planned for (`checkpoint::machine_memory`; 0: unknown).
    pub machine_bytes: u64,
}

impl Engine for WanEngine {
    fn name(&self) -> &'static str {
        "wan"
    }

    /// Plan the job for this machine (`wan::memory`), then run the library's phased
    /// pipeline: umT5 (or the prompt cache), the DiT, the VAE, each loaded when needed
    /// and released before the next is read; write the mp4. An idle app holds no weights.
    fn generate(
        &mut self,
        ckpt: &Path,
        params: &GenerateParams,
        out_mp4: &Path,
        on_event: &mut dyn FnMut(Event),
        cancel: &CancelToken,
    ) -> Result<Rendered> {
        use wan::memory::{Backend, Machine, Overrides};
        use wan::pipeline::{PhasedOptions, phases};
        on_event(Event::Stage(Stage::LoadModels));
        let ck = wan::pipeline::check_folder(ckpt, params.task)?;
        let cache = wan::t5::cache::ContextCache::new(&self.context_cache, CONTEXT_CACHE_ENTRIES);
        let machine = Machine {
            bytes: match self.machine_bytes {
                0 => u64::MAX >> 4,
                b => b,
            },
            backend: Backend::current(),
        };
        let report = phases::plan_for(
            &ck,
            params,
            machine,
            &Overrides::default(),
            Some(&cache),
            params.lora.is_some(),
        )?;
        if let (false, Some(reason)) = (report.fits, &report.reason) {
            return Err(Error::Memory(reason.clone()));
        }
        let tags = report.plan.tags().join(" · ");
        let opts = PhasedOptions {
            plan: report.plan,
            preview_cache: Some(self.preview_cache.clone()),
            context_cache: Some(cache),
            noise: None,
        };
        let (video, _record, phased) = phases::generate(&ck, params, opts, on_event, cancel)?;
        cancel.check()?;
        let frames = wan::video::frames_from_video(&video.frames)?;
        wan::video::write_mp4(out_mp4, &frames, video.fps)?;
        let first = frames
            .frames
            .first()
            .ok_or_else(|| Error::Input("the pipeline returned no frames".into()))?;
        let timings = video.timings.clone();
        Ok(Rendered {
            poster: RgbFrame {
                width: frames.width,
                height: frames.height,
                rgb: first.clone(),
            },
            frames: frames.frames.len() as u32,
            fps: video.fps,
            timings,
            // The plan it ran with, for the record (`cached prompt`: umT5 never loaded).
            model: format!(
                "{} ({}) · {tags}{}",
                params.task.name(),
                ckpt.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                if phased.context_from_cache && !tags.contains("cached prompt") {
                    " · cached prompt"
                } else {
                    ""
                }
            ),
        })
    }
}

/// A deterministic engine: coloured gradient frames whose brightness follows the step,
/// every stage and step reported, cancel honoured each step, a placeholder `clip.mp4`.
pub struct FakeEngine {
    /// Pause per denoising step (0 in unit tests; a little in the UI demo mode).
    pub step_delay: Duration,
    /// If set, each job waits for one message before starting (tests use it to hold
    /// the worker busy while they queue, reorder and cancel).
    pub gate: Option<Receiver<()>>,
}

impl FakeEngine {
    pub fn new(step_delay: Duration) -> Self {
        Self {
            step_delay,
            gate: None,
        }
    }

    fn frame(w: u32, h: u32, f: u32, level: f32) -> Vec<u8> {
        let mut v = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                let r = (x * 255 / w.max(1)) as f32;
                let g = (y * 255 / h.max(1)) as f32;
                let b = ((f * 40) % 256) as f32;
                v.extend([r, g, b].map(|c| (c * level) as u8));
            }
        }
        v
    }
}

impl Engine for FakeEngine {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn generate(
        &mut self,
        ckpt: &Path,
        params: &GenerateParams,
        out_mp4: &Path,
        on_event: &mut dyn FnMut(Event),
        cancel: &CancelToken,
    ) -> Result<Rendered> {
        if let Some(gate) = &self.gate {
            // A closed gate (test over) releases the job rather than hanging.
            let _ = gate.recv();
        }
        let (w, h) = (params.size.0 as u32, params.size.1 as u32);
        let frames = params.frame_num as u32;
        // Previews are the latent grid size (÷16), at least 2×2.
        let (pw, ph) = ((w / 16).max(2), (h / 16).max(2));
        let pf = (frames - 1) / 4 + 1;
        let t0 = Instant::now();
        on_event(Event::Stage(Stage::LoadModels));
        on_event(Event::Stage(Stage::EncodeText));
        cancel.check()?;
        on_event(Event::Stage(Stage::Denoise));
        let total = params.sample_steps;
        for step in 1..=total {
            if !self.step_delay.is_zero() {
                std::thread::sleep(self.step_delay);
            }
            cancel.check()?;
            let level = step as f32 / total as f32;
            on_event(Event::Step {
                step,
                total,
                timestep: (1000.0 * (1.0 - level)) as i64,
                elapsed: t0.elapsed(),
                preview: Some(Preview {
                    width: pw,
                    height: ph,
                    frames: (0..pf).map(|f| Self::frame(pw, ph, f, level)).collect(),
                }),
            });
        }
        on_event(Event::Stage(Stage::Decode));
        on_event(Event::Decode { done: 1, total: 1 });
        cancel.check()?;
        std::fs::write(out_mp4, b"fake mp4 (FakeEngine)").map_err(|e| Error::io(out_mp4, e))?;
        on_event(Event::Stage(Stage::Done));
        Ok(Rendered {
            poster: RgbFrame {
                width: w,
                height: h,
                rgb: Self::frame(w, h, 0, 1.0),
            },
            frames,
            fps: params.task.config().sample_fps,
            timings: Timings {
                denoise_s: t0.elapsed().as_secs_f64(),
                ..Timings::default()
            },
            model: format!(
                "fake engine ({})",
                ckpt.file_name().and_then(|n| n.to_str()).unwrap_or("?")
            ),
        })
    }
}
