//! The parameter-free stage shortcuts of the Wan2.2 VAE (official
//! `wan/modules/vae2_2.py:AvgDown3D`, `DupUp3D`).
//!
//! Channels-last `[B, T, H, W, C]`. Both keep the official flatten order of a
//! `ft × fs × fs` block as extra channels: `j = ((c·ft + it)·fs + ih)·fs + iw`.
use mlx_rs::Array;
use mlx_rs::ops::{broadcast_to, pad};

use crate::error::{Error, Result};

/// Space/time-to-channel, then average groups of `g = in·ft·fs²/out` consecutive `j`.
#[derive(Debug, Clone, Copy)]
pub struct AvgDown3D {
    pub in_channels: i32,
    pub out_channels: i32,
    pub factor_t: i32,
    pub factor_s: i32,
}

impl AvgDown3D {
    pub fn new(in_channels: i32, out_channels: i32, factor_t: i32, factor_s: i32) -> Result<Self> {
        let factor = factor_t * factor_s * factor_s;
        if (in_channels * factor) % out_channels != 0 {
            return Err(Error::Config(format!(
                "AvgDown3D: {in_channels}·{factor} not divisible by {out_channels}"
            )));
        }
        Ok(Self {
            in_channels,
            out_channels,
            factor_t,
            factor_s,
        })
    }

    pub fn forward(&self, x: &Array) -> Result<Array> {
        let (ft, fs) = (self.factor_t, self.factor_s);
        let t0 = x.shape()[1];
        // Front-pad time with zero frames to a multiple of ft (official).
        let pad_t = (ft - t0 % ft) % ft;
        let x = if pad_t > 0 {
            pad(x, &[(0, 0), (pad_t, 0), (0, 0), (0, 0), (0, 0)], None, None)?
        } else {
            x.clone()
        };
        let s = x.shape().to_vec();
        let (b, t, h, w, c) = (s[0], s[1], s[2], s[3], s[4]);
        let (t2, h2, w2) = (t / ft, h / fs, w / fs);
        // [B, T', ft, H', fs, W', fs, C] → [B, T', H', W', C, ft, fs(h), fs(w)]
        let x = x.reshape(&[b, t2, ft, h2, fs, w2, fs, c])?;
        let x = x.transpose_axes(&[0, 1, 3, 5, 7, 2, 4, 6])?;
        let g = c * ft * fs * fs / self.out_channels;
        let x = x.reshape(&[b, t2, h2, w2, self.out_channels, g])?;
        Ok(x.mean_axis(-1, None)?)
    }
}

/// Repeat each channel `rep = out·ft·fs²/in` times, then scatter the copies to
/// `(time, row, col)` sub-positions. On the first decode chunk the first `ft − 1`
/// output frames are dropped (the main path does not double that chunk).
#[derive(Debug, Clone, Copy)]
pub struct DupUp3D {
    pub in_channels: i32,
    pub out_channels: i32,
    pub factor_t: i32,
    pub factor_s: i32,
}

impl DupUp3D {
    pub fn new(in_channels: i32, out_channels: i32, factor_t: i32, factor_s: i32) -> Result<Self> {
        let factor = factor_t * factor_s * factor_s;
        if (out_channels * factor) % in_channels != 0 {
            return Err(Error::Config(format!(
                "DupUp3D: {out_channels}·{factor} not divisible by {in_channels}"
            )));
        }
        Ok(Self {
            in_channels,
            out_channels,
            factor_t,
            factor_s,
        })
    }

    pub fn forward(&self, x: &Array, first_chunk: bool) -> Result<Array> {
        let (ft, fs, o) = (self.factor_t, self.factor_s, self.out_channels);
        let s = x.shape().to_vec();
        let (b, t, h, w, c) = (s[0], s[1], s[2], s[3], s[4]);
        let rep = o * ft * fs * fs / c;
        // repeat_interleave: [B, T, H, W, C, rep] → j = c·rep + k
        let x = broadcast_to(&x.reshape(&[b, t, h, w, c, 1])?, &[b, t, h, w, c, rep])?;
        // j = ((o·ft + it)·fs + ih)·fs + iw
        let x = x.reshape(&[b, t, h, w, o, ft, fs, fs])?;
        // → [B, T, ft, H, fs, W, fs, O]
        let x = x.transpose_axes(&[0, 1, 5, 2, 6, 3, 7, 4])?;
        let x = x.reshape(&[b, t * ft, h * fs, w * fs, o])?;
        if first_chunk && ft > 1 {
            Ok(crate::vae::causal_conv::frames(&x, ft - 1, t * ft)?)
        } else {
            Ok(x)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iota(shape: &[i32]) -> Array {
        let n: i32 = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|i| i as f32).collect();
        Array::from_slice(&v, shape)
    }

    /// (in 2 → out 4, ft 2, fs 2): g = 4, so output channel o averages j ∈ [4o, 4o+4) with
    /// j = ((c·2 + it)·2 + ih)·2 + iw: the 2×2 mean of channel o/2 at time offset o%2.
    #[test]
    fn avgdown_flatten_order() {
        // x[t, h, w, c] = 1000·t + 100·h + 10·w + c, T=2, H=W=2, C=2
        let mut v = Vec::new();
        for t in 0..2 {
            for h in 0..2 {
                for w in 0..2 {
                    for c in 0..2 {
                        v.push((1000 * t + 100 * h + 10 * w + c) as f32);
                    }
                }
            }
        }
        let x = Array::from_slice(&v, &[1, 2, 2, 2, 2]);
        let y = AvgDown3D::new(2, 4, 2, 2).unwrap().forward(&x).unwrap();
        assert_eq!(y.shape(), &[1, 1, 1, 1, 4]);
        let got: Vec<f32> = crate::vae::host_f32(&y).unwrap();
        // o=0: c0,t0 → mean(0,10,100,110) = 55; o=1: c0,t1 → 1055; o=2: c1,t0 → 56; o=3: 1056
        assert_eq!(got, [55.0, 1055.0, 56.0, 1056.0]);
    }

    /// (1024→512-like: in 4 → out 2, ft 1, fs 2): rep 2; channel o at row offset a = in 2o + a.
    #[test]
    fn dupup_flatten_order() {
        let x = iota(&[1, 1, 1, 1, 4]); // channels 0..3
        let y = DupUp3D::new(4, 2, 1, 2)
            .unwrap()
            .forward(&x, false)
            .unwrap();
        assert_eq!(y.shape(), &[1, 1, 2, 2, 2]);
        let got: Vec<f32> = crate::vae::host_f32(&y).unwrap();
        // [h, w, o]: row 0 → channels (0, 2); row 1 → (1, 3); columns equal.
        assert_eq!(got, [0., 2., 0., 2., 1., 3., 1., 3.]);
    }

    #[test]
    fn dupup_first_chunk_drops_frames() {
        let x = iota(&[1, 1, 1, 1, 2]);
        let y = DupUp3D::new(2, 2, 2, 2).unwrap().forward(&x, true).unwrap();
        assert_eq!(y.shape(), &[1, 1, 2, 2, 2]);
    }
}
