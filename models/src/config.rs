//! Task configurations (official `wan/configs/*.py`, spec §1): sizes, sampling defaults,
//! file names. Numbers only, no paths; one place for all of them.
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The official default negative prompt (`sample_neg_prompt`), used when none is given.
pub const DEFAULT_NEG_PROMPT: &str = "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走";

/// Every size string the official CLI knows (`SIZE_CONFIGS`, `W*H`).
pub const KNOWN_SIZES: &[(i32, i32)] = &[
    (720, 1280),
    (1280, 720),
    (480, 832),
    (832, 480),
    (704, 1280),
    (1280, 704),
    (1024, 704),
    (704, 1024),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Task {
    #[serde(rename = "ti2v-5B")]
    Ti2v5B,
    #[serde(rename = "t2v-A14B")]
    T2vA14B,
    #[serde(rename = "i2v-A14B")]
    I2vA14B,
}

impl Task {
    pub const ALL: [Task; 3] = [Task::Ti2v5B, Task::T2vA14B, Task::I2vA14B];

    pub fn name(self) -> &'static str {
        match self {
            Task::Ti2v5B => "ti2v-5B",
            Task::T2vA14B => "t2v-A14B",
            Task::I2vA14B => "i2v-A14B",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        Task::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| {
                Error::Input(format!(
                    "unknown task `{s}` (choose ti2v-5B, t2v-A14B or i2v-A14B)"
                ))
            })
    }

    pub fn config(self) -> TaskConfig {
        match self {
            Task::Ti2v5B => TaskConfig {
                task: self,
                vae: VaeKind::Wan22,
                vae_stride: [4, 16, 16],
                z_dim: 48,
                patch_size: [1, 2, 2],
                sample_shift: 5.0,
                sample_steps: 50,
                guide_scale: (5.0, 5.0),
                boundary: None,
                sample_fps: 24,
                frame_num: 121,
                supported_sizes: &[(704, 1280), (1280, 704)],
                needs_image: false,
                text_len: 512,
            },
            Task::T2vA14B => TaskConfig {
                task: self,
                vae: VaeKind::Wan21,
                vae_stride: [4, 8, 8],
                z_dim: 16,
                patch_size: [1, 2, 2],
                sample_shift: 12.0,
                sample_steps: 40,
                guide_scale: (3.0, 4.0),
                boundary: Some(0.875),
                sample_fps: 16,
                frame_num: 81,
                supported_sizes: &[(720, 1280), (1280, 720), (480, 832), (832, 480)],
                needs_image: false,
                text_len: 512,
            },
            Task::I2vA14B => TaskConfig {
                task: self,
                vae: VaeKind::Wan21,
                vae_stride: [4, 8, 8],
                z_dim: 16,
                patch_size: [1, 2, 2],
                sample_shift: 5.0,
                sample_steps: 40,
                guide_scale: (3.5, 3.5),
                boundary: Some(0.900),
                sample_fps: 16,
                frame_num: 81,
                supported_sizes: &[(720, 1280), (1280, 720), (480, 832), (832, 480)],
                needs_image: true,
                text_len: 512,
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VaeKind {
    /// Wan2.1 VAE: z_dim 16, 4×8×8 (A14B models).
    Wan21,
    /// Wan2.2 VAE: z_dim 48, 4×16×16 (TI2V-5B).
    Wan22,
}

/// Sampling defaults and geometry of a task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskConfig {
    pub task: Task,
    pub vae: VaeKind,
    /// (t, h, w) compression of the VAE.
    pub vae_stride: [i32; 3],
    pub z_dim: i32,
    pub patch_size: [i32; 3],
    pub sample_shift: f64,
    pub sample_steps: usize,
    /// (low-noise expert, high-noise expert); equal for single-model tasks.
    pub guide_scale: (f32, f32),
    /// A14B expert switch: high-noise expert while `t >= boundary · 1000`.
    pub boundary: Option<f64>,
    pub sample_fps: u32,
    pub frame_num: i32,
    /// `SUPPORTED_SIZES[task]` as (W, H).
    pub supported_sizes: &'static [(i32, i32)],
    pub needs_image: bool,
    /// Tokenizer length (the DiT's own `text_len` comes from its config).
    pub text_len: i32,
}

impl TaskConfig {
    /// Pixel (W, H) multiple a size must respect: VAE stride × DiT patch.
    pub fn size_multiple(&self) -> (i32, i32) {
        (
            self.vae_stride[2] * self.patch_size[2],
            self.vae_stride[1] * self.patch_size[1],
        )
    }

    /// Latent frames for `frames` pixel frames (`(F − 1)/4 + 1`); frames must be 4n+1.
    pub fn latent_frames(&self, frames: i32) -> Result<i32> {
        let st = self.vae_stride[0];
        if frames < 1 || (frames - 1) % st != 0 {
            return Err(Error::Input(format!(
                "frame_num must be {st}n+1 (1, 5, 9, …, 81, 121), got {frames}"
            )));
        }
        Ok((frames - 1) / st + 1)
    }

    /// Check a (W, H) output size: positive, divisible by the latent×patch multiple.
    pub fn check_size(&self, w: i32, h: i32) -> Result<()> {
        let (mw, mh) = self.size_multiple();
        if w <= 0 || h <= 0 || w % mw != 0 || h % mh != 0 {
            return Err(Error::Input(format!(
                "size {w}*{h} is not valid for {}: width must be a multiple of {mw} and height of {mh}",
                self.task.name()
            )));
        }
        Ok(())
    }
}

/// Parse an official `W*H` size string.
pub fn parse_size(s: &str) -> Result<(i32, i32)> {
    let bad = || Error::Input(format!("size `{s}` must look like W*H, e.g. 1280*704"));
    let (w, h) = s.split_once(['*', 'x']).ok_or_else(bad)?;
    let w: i32 = w.trim().parse().map_err(|_| bad())?;
    let h: i32 = h.trim().parse().map_err(|_| bad())?;
    if w <= 0 || h <= 0 || w > 16384 || h > 16384 {
        return Err(bad());
    }
    Ok((w, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_counts_must_be_4n_plus_1() {
        let c = Task::Ti2v5B.config();
        assert_eq!(c.latent_frames(121).unwrap(), 31);
        assert_eq!(c.latent_frames(81).unwrap(), 21);
        assert!(c.latent_frames(80).is_err());
        assert!(c.latent_frames(0).is_err());
    }

    #[test]
    fn sizes_parse_and_validate() {
        assert_eq!(parse_size("1280*704").unwrap(), (1280, 704));
        assert!(parse_size("1280").is_err());
        assert!(parse_size("-5*3").is_err());
        let c = Task::Ti2v5B.config();
        assert!(c.check_size(1280, 704).is_ok());
        assert!(c.check_size(1280, 720).is_err()); // 720 is not a multiple of 32
        assert!(Task::T2vA14B.config().check_size(1280, 720).is_ok());
        assert_eq!(Task::parse("t2v-A14B").unwrap(), Task::T2vA14B);
        assert!(Task::parse("t2v").is_err());
    }
}
