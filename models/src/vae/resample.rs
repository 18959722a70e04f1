//! `Resample` (official `wan/modules/vae2_{1,2}.py:Resample`): ×2 spatial up/down
//! sampling per frame, plus the temporal `time_conv` of the 3-D modes.
//!
//! Layout `[B, F, H, W, C]`; the 2-D part folds frames into the batch `[B·F, H, W, C]`.
//! * `downsample2d/3d`: zero-pad right 1 / bottom 1 only, 3×3 conv stride 2 (key
//!   `resample.1`); `downsample3d` then halves time with `time_conv` (kernel (3,1,1),
//!   stride 2, no padding) — except on the first chunk, which passes through.
//! * `upsample2d/3d`: nearest ×2 (plain duplication), 3×3 conv pad 1 (2.1 halves the
//!   channels, 2.2 keeps them); `upsample3d` first doubles time with `time_conv`
//!   (`C → 2C`, the two halves become frames `2τ`, `2τ+1`) — except on the first chunk.
//!
//! The official per-layer cache entry (frames, or the string marker "Rep" after the
//! first upsample chunk) is the explicit [`ResampleCache`].
use mlx_rs::Array;
use mlx_rs::macros::ModuleParameters;
use mlx_rs::ops::{broadcast_to, concatenate, pad, zeros_like};

use crate::error::Result;
use crate::vae::causal_conv::{CACHE_T, CausalConv3d, Conv2d, frames, keep_frames};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Upsample2d,
    Upsample3d,
    Downsample2d,
    Downsample3d,
}

#[derive(Debug, Clone, ModuleParameters)]
pub struct Resample {
    /// Official `resample.1` (index 0 is the Upsample / ZeroPad2d).
    #[param]
    pub resample: ResampleConv,
    #[param]
    pub time_conv: Option<CausalConv3d>,
    pub mode: Mode,
}

/// The `nn.Sequential` holding the 2-D conv; `conv` is its index 1.
#[derive(Debug, Clone, ModuleParameters)]
pub struct ResampleConv {
    #[param]
    pub conv: Conv2d,
}

/// Temporal state of one resample layer across chunks.
#[derive(Debug, Clone, Default)]
pub enum ResampleCache {
    /// No chunk seen yet.
    #[default]
    Fresh,
    /// Official "Rep": upsample3d saw its first chunk (which was not doubled).
    Rep,
    /// Input frames kept for the next chunk's temporal conv.
    Frames(Array),
}

impl ResampleCache {
    pub fn arrays(&self) -> Vec<&Array> {
        match self {
            Self::Frames(a) => vec![a],
            _ => vec![],
        }
    }
}

/// Nearest-neighbour ×2 in H and W: `[N, H, W, C] → [N, 2H, 2W, C]`.
pub fn upsample_nearest2(x: &Array) -> Result<Array> {
    let s = x.shape().to_vec();
    let (n, h, w, c) = (s[0], s[1], s[2], s[3]);
    let x = x.reshape(&[n, h, 1, w, 1, c])?;
    let x = broadcast_to(&x, &[n, h, 2, w, 2, c])?;
    Ok(x.reshape(&[n, 2 * h, 2 * w, c])?)
}

impl Resample {
    /// `out_2d`: channels after the 2-D conv (`dim/2` for 2.1 upsampling, else `dim`).
    pub fn new(dim: i32, out_2d: i32, mode: Mode) -> Result<Self> {
        let time_conv = match mode {
            Mode::Upsample3d => Some(CausalConv3d::new(
                dim,
                2 * dim,
                (3, 1, 1),
                (1, 1, 1),
                (1, 0, 0),
            )?),
            Mode::Downsample3d => Some(CausalConv3d::new(
                dim,
                dim,
                (3, 1, 1),
                (2, 1, 1),
                (0, 0, 0),
            )?),
            _ => None,
        };
        Ok(Self {
            resample: ResampleConv {
                conv: Conv2d::new(dim, out_2d, 3)?,
            },
            time_conv,
            mode,
        })
    }

    /// One chunk `[B, F, H, W, C]`.
    pub fn forward(&self, x: &Array, cache: &mut ResampleCache) -> Result<Array> {
        let mut x = x.clone();
        if self.mode == Mode::Upsample3d
            && let Some(tc) = &self.time_conv
        {
            x = self.time_up(tc, &x, cache)?;
        }
        let s = x.shape().to_vec();
        let (b, f, h, w, c) = (s[0], s[1], s[2], s[3], s[4]);
        let x2 = x.reshape(&[b * f, h, w, c])?;
        let y = match self.mode {
            Mode::Upsample2d | Mode::Upsample3d => {
                self.resample.conv.forward(&upsample_nearest2(&x2)?, 1, 1)?
            }
            Mode::Downsample2d | Mode::Downsample3d => {
                let widths = [(0, 0), (0, 1), (0, 1), (0, 0)];
                self.resample
                    .conv
                    .forward(&pad(&x2, &widths, None, None)?, 2, 0)?
            }
        };
        let ys = y.shape().to_vec();
        let mut x = y.reshape(&[b, f, ys[1], ys[2], ys[3]])?;
        if self.mode == Mode::Downsample3d
            && let Some(tc) = &self.time_conv
        {
            x = Self::time_down(tc, &x, cache)?;
        }
        Ok(x)
    }

    /// upsample3d temporal step: first chunk passes (marker "Rep"); the second runs the
    /// conv with zero history; later chunks use the cached frames. Output `[B, 2F, ...]`.
    fn time_up(&self, tc: &CausalConv3d, x: &Array, cache: &mut ResampleCache) -> Result<Array> {
        let t = x.shape()[1];
        let prev = std::mem::take(cache);
        let (y, keep) = match prev {
            ResampleCache::Fresh => {
                *cache = ResampleCache::Rep;
                return Ok(x.clone());
            }
            ResampleCache::Rep => {
                let mut keep = keep_frames(x, (t - CACHE_T).max(0), t)?;
                if keep.shape()[1] < CACHE_T {
                    keep = concatenate(&[zeros_like(&keep)?, keep], 1)?;
                }
                (tc.forward(x, None)?, keep)
            }
            ResampleCache::Frames(c) => {
                let mut keep = keep_frames(x, (t - CACHE_T).max(0), t)?;
                if keep.shape()[1] < CACHE_T {
                    let ct = c.shape()[1];
                    keep = concatenate(&[frames(&c, ct - 1, ct)?, keep], 1)?;
                }
                (tc.forward(x, Some(&c))?, keep)
            }
        };
        *cache = ResampleCache::Frames(keep);
        // [B, T, H, W, 2C]: channel s·C + c of frame τ → frame 2τ + s.
        let s = y.shape().to_vec();
        let (b, h, w, c2) = (s[0], s[2], s[3], s[4]);
        let y = y.reshape(&[b, t, h, w, 2, c2 / 2])?;
        let y = y.transpose_axes(&[0, 1, 4, 2, 3, 5])?;
        Ok(y.reshape(&[b, 2 * t, h, w, c2 / 2])?)
    }

    /// downsample3d temporal step: the first chunk passes through (and is cached);
    /// later chunks prepend the last cached frame, stride-2 conv, keep their last frame.
    fn time_down(tc: &CausalConv3d, x: &Array, cache: &mut ResampleCache) -> Result<Array> {
        let t = x.shape()[1];
        match std::mem::take(cache) {
            ResampleCache::Frames(c) => {
                let ct = c.shape()[1];
                let joined = concatenate(&[frames(&c, ct - 1, ct)?, x.clone()], 1)?;
                *cache = ResampleCache::Frames(keep_frames(x, t - 1, t)?);
                tc.forward(&joined, None)
            }
            _ => {
                *cache = ResampleCache::Frames(keep_frames(x, t - 1, t)?);
                Ok(x.clone())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_upsample_duplicates_pixels() {
        let x = Array::from_slice(&[1.0f32, 2.0, 3.0, 4.0], &[1, 2, 2, 1]);
        let y = upsample_nearest2(&x).unwrap();
        assert_eq!(y.shape(), &[1, 4, 4, 1]);
        let v: Vec<f32> = crate::vae::host_f32(&y).unwrap();
        assert_eq!(
            v,
            [
                1., 1., 2., 2., 1., 1., 2., 2., 3., 3., 4., 4., 3., 3., 4., 4.
            ]
        );
    }
}
