//! `CausalConv3d` (official `wan/modules/vae2_{1,2}.py:CausalConv3d`) and the plain
//! `nn.Conv2d` the VAE uses inside `Resample` and `AttentionBlock`.
//!
//! Layout: channels-last video `[B, F, H, W, C]`; weights in MLX conv layout
//! `[O, kT, kH, kW, I]` / `[O, kH, kW, I]` (PyTorch weights transposed once at load by
//! `checkpoint::to_mlx_layout`). float32 throughout.
//!
//! The official conv replaces its declared padding `(pt, ph, pw)` by explicit zero padding
//! `2·pt` frames in front (none behind) and `ph`/`pw` on both spatial sides. The feature
//! cache of the chunked encode/decode is an explicit [`ConvCache`] owned by the caller.
use mlx_rs::Array;
use mlx_rs::macros::ModuleParameters;
use mlx_rs::module::Param;
use mlx_rs::ops::indexing::TryIndexOp;
use mlx_rs::ops::{concatenate, conv2d, conv3d, pad};

use crate::error::Result;
use crate::nn::zeros_param;

/// Frames a temporal conv keeps from the previous chunk (official `CACHE_T`).
pub const CACHE_T: i32 = 2;

#[derive(Debug, Clone, ModuleParameters)]
pub struct CausalConv3d {
    /// `[O, kT, kH, kW, I]`.
    #[param]
    pub weight: Param<Array>,
    #[param]
    pub bias: Param<Array>,
    /// (t, h, w) stride.
    pub stride: (i32, i32, i32),
    /// Declared (t, h, w) padding; applied as (2·pt front, ph, pw) explicitly.
    pub padding: (i32, i32, i32),
}

/// The last ≤ [`CACHE_T`] input frames of one temporal conv from the previous chunk
/// (`None` before the first chunk). `[B, ≤2, H, W, C]`.
#[derive(Debug, Clone, Default)]
pub struct ConvCache(pub Option<Array>);

/// Frames `a..b` of a channels-last video.
pub fn frames(x: &Array, a: i32, b: i32) -> Result<Array> {
    Ok(x.try_index((.., a..b))?)
}

/// An owned copy of `frames(x, a, b)`. A plain slice is a view that keeps the whole
/// activation alive; a cache must not pin every conv input of a chunk until the next one.
pub fn keep_frames(x: &Array, a: i32, b: i32) -> Result<Array> {
    Ok(frames(x, a, b)?.multiply(Array::from_f32(1.0))?)
}

impl CausalConv3d {
    /// Zero placeholder (lazy; replaced by `load_strict`).
    pub fn new(
        in_dim: i32,
        out_dim: i32,
        kernel: (i32, i32, i32),
        stride: (i32, i32, i32),
        padding: (i32, i32, i32),
    ) -> Result<Self> {
        Ok(Self {
            weight: zeros_param(&[out_dim, kernel.0, kernel.1, kernel.2, in_dim])?,
            bias: zeros_param(&[out_dim])?,
            stride,
            padding,
        })
    }

    /// `k×k×k` kernel, stride 1, padding `(p, p, p)`.
    pub fn cube(in_dim: i32, out_dim: i32, k: i32, p: i32) -> Result<Self> {
        Self::new(in_dim, out_dim, (k, k, k), (1, 1, 1), (p, p, p))
    }

    /// The convolution on `x` `[B, F, H, W, C]`, with `cache` frames (if any) in front in
    /// place of as many zero frames. Kernel-1 / unpadded convs ignore the cache (official).
    pub fn forward(&self, x: &Array, cache: Option<&Array>) -> Result<Array> {
        let (pt, ph, pw) = self.padding;
        let mut front = 2 * pt;
        let mut x = x.clone();
        if let Some(c) = cache
            && front > 0
        {
            front -= c.shape()[1];
            x = concatenate(&[c.clone(), x], 1)?;
        }
        let front = front.max(0);
        if front > 0 {
            x = pad(
                &x,
                &[(0, 0), (front, 0), (0, 0), (0, 0), (0, 0)],
                None,
                None,
            )?;
        }
        let w = &*self.weight;
        let (kt, kh, kw) = (w.shape()[1], w.shape()[2], w.shape()[3]);
        let y = if kt > 1 && (kh > 1 || kw > 1) && self.stride == (1, 1, 1) {
            self.forward_as_2d(&x, kt, (ph, pw))?
        } else {
            if ph > 0 || pw > 0 {
                x = pad(
                    &x,
                    &[(0, 0), (0, 0), (ph, ph), (pw, pw), (0, 0)],
                    None,
                    None,
                )?;
            }
            conv3d(&x, w, self.stride, (0, 0, 0), None, None)?
        };
        Ok(y.add(&*self.bias)?)
    }

    /// A `kt × kh × kw` conv (stride 1) as the sum of `kt` 2-D convs over frames folded
    /// into the batch: the same sum in another order, but MLX unfolds only `kh·kw` (not
    /// `kt·kh·kw`) copies of the input, which bounds peak memory (and is faster on CPU).
    fn forward_as_2d(&self, x: &Array, kt: i32, (ph, pw): (i32, i32)) -> Result<Array> {
        let s = x.shape().to_vec(); // [B, F + kt − 1, H, W, C]
        let (b, f, h, w, c) = (s[0], s[1] - kt + 1, s[2], s[3], s[4]);
        let mut acc: Option<Array> = None;
        for t in 0..kt {
            let xs = frames(x, t, t + f)?.reshape(&[b * f, h, w, c])?;
            let wt = self.weight.try_index((.., t))?; // [O, kh, kw, C]
            let y = conv2d(&xs, &wt, (1, 1), (ph, pw), None, None)?;
            acc = Some(match acc {
                Some(a) => a.add(&y)?,
                None => y,
            });
        }
        let y = acc.ok_or_else(|| crate::error::Error::Config("empty temporal kernel".into()))?;
        let ys = y.shape().to_vec();
        Ok(y.reshape(&[b, f, ys[1], ys[2], ys[3]])?)
    }

    /// One chunk step of the official cache rule: run the conv with the previous cache,
    /// then keep this chunk's last 2 input frames (or, for a 1-frame chunk, the previous
    /// cache's last frame + this frame) for the next chunk.
    pub fn forward_cached(&self, x: &Array, cache: &mut ConvCache) -> Result<Array> {
        let t = x.shape()[1];
        let mut keep = keep_frames(x, (t - CACHE_T).max(0), t)?;
        if keep.shape()[1] < CACHE_T
            && let Some(prev) = &cache.0
        {
            let pt = prev.shape()[1];
            keep = concatenate(&[frames(prev, pt - 1, pt)?, keep], 1)?;
        }
        let y = self.forward(x, cache.0.as_ref())?;
        cache.0 = Some(keep);
        Ok(y)
    }
}

/// `nn.Conv2d` on frames folded into the batch: `[N, H, W, C]`.
#[derive(Debug, Clone, ModuleParameters)]
pub struct Conv2d {
    /// `[O, kH, kW, I]`.
    #[param]
    pub weight: Param<Array>,
    #[param]
    pub bias: Param<Array>,
}

impl Conv2d {
    pub fn new(in_dim: i32, out_dim: i32, k: i32) -> Result<Self> {
        Ok(Self {
            weight: zeros_param(&[out_dim, k, k, in_dim])?,
            bias: zeros_param(&[out_dim])?,
        })
    }

    pub fn forward(&self, x: &Array, stride: i32, padding: i32) -> Result<Array> {
        let y = conv2d(
            x,
            &*self.weight,
            (stride, stride),
            (padding, padding),
            None,
            None,
        )?;
        Ok(y.add(&*self.bias)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chunked run with the cache equals one causal conv over the whole sequence.
    #[test]
    fn cached_chunks_equal_whole_sequence() {
        mlx_rs::random::seed(3).unwrap();
        let mut conv = CausalConv3d::cube(2, 3, 3, 1).unwrap();
        *conv.weight = mlx_rs::random::normal::<f32>(&[3, 3, 3, 3, 2], None, None, None).unwrap();
        *conv.bias = mlx_rs::random::normal::<f32>(&[3], None, None, None).unwrap();
        let x = mlx_rs::random::normal::<f32>(&[1, 9, 4, 5, 2], None, None, None).unwrap();
        let whole = conv.forward(&x, None).unwrap();
        let mut cache = ConvCache::default();
        let mut outs = Vec::new();
        for (a, b) in [(0, 1), (1, 5), (5, 6), (6, 9)] {
            outs.push(
                conv.forward_cached(&frames(&x, a, b).unwrap(), &mut cache)
                    .unwrap(),
            );
        }
        let chunked = concatenate(&outs, 1).unwrap();
        assert_eq!(chunked.shape(), whole.shape());
        let err = chunked
            .subtract(&whole)
            .unwrap()
            .abs()
            .unwrap()
            .max(None)
            .unwrap();
        assert!(err.item_cast::<f32>() < 1e-5, "{}", err.item_cast::<f32>());
    }
}
