//! Spatial tiling of the VAE under a memory budget (not in the official code, which
//! always runs the whole frame): overlapping tiles, each run through the ordinary
//! chunked encode/decode, blended with linear ramps across every overlap.
//!
//! Tiles are square-ish windows of `tile` latent cells with `overlap` cells shared by
//! neighbours (the last tile of a row/column is aligned to the edge, so it may overlap
//! more). Blending happens on the host in float32 (`[C, F, H, W]`): each output pixel is
//! the weight-normalised sum of the tiles covering it; weights ramp linearly from the tile
//! edge to the end of the shared region, so seams cross-fade instead of cutting.
//!
//! The per-chunk peak memory comes from the memory model (`crate::memory::model`: the
//! decoder's (frames, resolution, channels) walk times the backend's calibrated copy
//! count, see [`WanVae::decode_bytes`]); tiling is chosen automatically when a whole-frame
//! decode would not fit the budget (the memory plan chooses the tile for generation).
//!
//! Measured (MLX CPU backend, fixture weights = tiny random VAEs, `vae_bench`):
//! | case | untiled | tiled | tiled vs untiled |
//! |---|---|---|---|
//! | vae22, latent [48,3,16,16] → 9×256×256, tiles 8/2 (9) | 14.0 s, 383 MiB | 18.9 s, 109 MiB | max 0.91, 25.4 dB |
//! | vae22, latent [48,3,8,8] → 9×128×128, tiles 4/1 (9) | 2.1 s, 102 MiB | 3.9 s, 33 MiB | max 1.18, 20.4 dB |
//! | vae21, latent [16,3,16,16] → 9×128×128, tiles 8/2 (9) | 4.3 s, 191 MiB | 9.2 s, 52 MiB | max 1.12, 24.5 dB |
//!
//! (Wall times on a 2-core machine shared with other jobs.) The agreement is poor because
//! random weights are a worst case: the middle attention is global over the frame and
//! random activations are not smooth, so a tile's decode differs from the whole frame's
//! well inside the tile; the blending itself is exact (tests). Scaled to the real dims the
//! estimate for a whole 720p frame is ≈124 GiB (2.2 VAE, 44×80 cells) and ≈190 GiB
//! (2.1 VAE, 90×160 cells) on this backend — tiling is what makes 720p decodable here;
//! a 16-cell 2.2 tile needs ≈9 GiB.
use mlx_rs::Array;
use mlx_rs::ops::indexing::TryIndexOp;

use crate::error::{Error, Result};
use crate::vae::{RunOpts, WanVae, host_f32};

/// Tile geometry in latent cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tiling {
    pub tile: i32,
    pub overlap: i32,
}

/// Smallest tile the automatic choice goes down to (latent cells).
const MIN_TILE: i32 = 4;

/// Start and size of each tile along one axis of `len` cells.
pub fn spans(len: i32, tile: i32, overlap: i32) -> Vec<(i32, i32)> {
    if len <= tile {
        return vec![(0, len)];
    }
    let stride = (tile - overlap).max(1);
    let mut out = Vec::new();
    let mut s = 0;
    while s + tile < len {
        out.push((s, tile));
        s += stride;
    }
    out.push((len - tile, tile));
    out
}

/// Blend weights (length `n·scale`) of span `k` of `spans`, in output units.
fn ramp(spans: &[(i32, i32)], k: usize, scale: i32) -> Vec<f32> {
    let (s, n) = spans[k];
    let front = if k > 0 {
        let (ps, pn) = spans[k - 1];
        (ps + pn - s).max(0) * scale
    } else {
        0
    };
    let back = if k + 1 < spans.len() {
        (s + n - spans[k + 1].0).max(0) * scale
    } else {
        0
    };
    let len = n * scale;
    (0..len)
        .map(|i| {
            let mut w = 1.0f32;
            if i < front {
                w = w.min((i as f32 + 0.5) / front as f32);
            }
            if i >= len - back {
                w = w.min(((len - i) as f32 - 0.5) / back as f32);
            }
            w
        })
        .collect()
}

/// Half of MLX's memory limit (the rest: weights, the DiT when kept loaded, the OS).
pub fn default_budget() -> Result<u64> {
    Ok(mlx_rs::memory::memory_limit()? as u64 / 2)
}

impl Tiling {
    /// Validate against the latent grid.
    pub fn check(&self) -> Result<()> {
        if self.tile < 1 || self.overlap < 0 || self.overlap >= self.tile {
            return Err(Error::Input(format!(
                "VAE tiling: tile {} / overlap {} (need 0 ≤ overlap < tile)",
                self.tile, self.overlap
            )));
        }
        Ok(())
    }
    /// Number of tiles over an `h × w` latent grid.
    pub fn count(&self, h: i32, w: i32) -> usize {
        spans(h, self.tile, self.overlap).len() * spans(w, self.tile, self.overlap).len()
    }
}

impl WanVae {
    /// Estimated peak bytes of one decode chunk (one latent frame, the later chunks are the
    /// largest) for an `h × w` latent tile, weights excluded — the memory model's estimate
    /// for this backend (`crate::memory::model::vae_decode_chunk_bytes`).
    pub fn decode_bytes(&self, h: i32, w: i32) -> u64 {
        crate::memory::model::vae_decode_chunk_bytes(
            &self.cfg,
            h,
            w,
            crate::memory::Backend::current().constants(),
        )
    }

    /// Tiling that keeps a decode of an `h × w` latent under `budget` bytes (`None`: the
    /// whole frame fits).
    pub fn tiling_for_budget(&self, h: i32, w: i32, budget: u64) -> Option<Tiling> {
        if self.decode_bytes(h, w) <= budget {
            return None;
        }
        let mut tile = h.max(w);
        while tile > MIN_TILE && self.decode_bytes(tile, tile) > budget {
            tile -= 1;
        }
        let overlap = (tile / 4).max(1);
        Some(Tiling { tile, overlap })
    }

    /// Decode with automatic tiling under `budget` bytes, by default [`default_budget`]
    /// (clamped to [−1, 1]). Untiled, hence exactly official, whenever the frame fits.
    pub fn decode_auto(&self, z: &Array, budget: Option<u64>, opts: RunOpts) -> Result<Array> {
        self.check_latent(z)?;
        let s = z.shape();
        let budget = match budget {
            Some(b) => b,
            None => default_budget()?,
        };
        match self.tiling_for_budget(s[2], s[3], budget) {
            None => self.decode_with(z, opts),
            Some(t) => self.decode_tiled(z, t, opts),
        }
    }

    /// Tiled decode of a normalised latent `[z, T, h, w]` → `[3, F, H, W]` in [−1, 1].
    pub fn decode_tiled(&self, z: &Array, tiling: Tiling, mut opts: RunOpts) -> Result<Array> {
        tiling.check()?;
        self.check_latent(z)?;
        let s = self.cfg.spatial_stride();
        let video = run_tiles(z, tiling, s, true, &mut opts, |tile, cancel| {
            self.decode_unclamped(
                tile,
                RunOpts {
                    cancel,
                    ..Default::default()
                },
            )
        })?;
        Ok(mlx_rs::ops::clip(&video, (-1.0f32, 1.0f32))?)
    }

    /// Tiled encode: `tiling` is in latent cells (pixel tiles are `tile·stride`).
    pub fn encode_tiled(&self, video: &Array, tiling: Tiling, mut opts: RunOpts) -> Result<Array> {
        tiling.check()?;
        self.check_video(video)?;
        let s = self.cfg.spatial_stride();
        let pixel = Tiling {
            tile: tiling.tile * s,
            overlap: tiling.overlap * s,
        };
        run_tiles(video, pixel, s, false, &mut opts, |tile, cancel| {
            Ok(self
                .encode_with(
                    tile,
                    RunOpts {
                        cancel,
                        ..Default::default()
                    },
                )?
                .latent)
        })
    }
}

/// Run `f` on every spatial tile of `x` `[C, F, H, W]` and blend. `up`: the output is
/// `scale`× larger (decode); else `scale`× smaller (encode; tiles are then in input pixels
/// and multiples of `scale`). Progress is reported per tile; cancel is checked per tile.
pub fn run_tiles(
    x: &Array,
    tiling: Tiling,
    scale: i32,
    up: bool,
    opts: &mut RunOpts,
    mut f: impl FnMut(&Array, Option<&crate::pipeline::api::CancelToken>) -> Result<Array>,
) -> Result<Array> {
    let sh = x.shape().to_vec();
    let (h, w) = (sh[2], sh[3]);
    let (rows, cols) = (
        spans(h, tiling.tile, tiling.overlap),
        spans(w, tiling.tile, tiling.overlap),
    );
    // Output units per input unit (decode) / input units per output unit (encode).
    let to_out = |v: i32| if up { v * scale } else { v / scale };
    let ramp_scale = if up { scale } else { 1 };
    let (oh, ow) = (to_out(h), to_out(w));
    let out_spans = |sp: &[(i32, i32)]| -> Vec<(i32, i32)> {
        sp.iter().map(|&(a, n)| (to_out(a), to_out(n))).collect()
    };
    let (orows, ocols) = (out_spans(&rows), out_spans(&cols));
    let total = rows.len() * cols.len();
    let (mut acc, mut wsum): (Vec<f32>, Vec<f32>) = (Vec::new(), vec![0.0; (oh * ow) as usize]);
    let (mut oc, mut of) = (0i32, 0i32);
    let mut done = 0;
    for (ri, &(r0, rn)) in rows.iter().enumerate() {
        let wr = if up {
            ramp(&rows, ri, ramp_scale)
        } else {
            ramp(&orows, ri, 1)
        };
        for (ci, &(c0, cn)) in cols.iter().enumerate() {
            let wc = if up {
                ramp(&cols, ci, ramp_scale)
            } else {
                ramp(&ocols, ci, 1)
            };
            let tile = x.try_index((.., .., r0..r0 + rn, c0..c0 + cn))?;
            let y = f(&tile, opts.cancel)?;
            let ys = y.shape().to_vec(); // [C', F', th, tw]
            if acc.is_empty() {
                (oc, of) = (ys[0], ys[1]);
                acc = vec![0.0; (oc * of * oh * ow) as usize];
            }
            let (th, tw) = (ys[2], ys[3]);
            let (y0, x0) = (orows[ri].0, ocols[ci].0);
            let data = host_f32(&y)?;
            for yy in 0..th {
                for xx in 0..tw {
                    let wgt = wr[yy as usize] * wc[xx as usize];
                    let o = ((y0 + yy) * ow + x0 + xx) as usize;
                    wsum[o] += wgt;
                    for cf in 0..(oc * of) {
                        let src = ((cf * th + yy) * tw + xx) as usize;
                        acc[cf as usize * (oh * ow) as usize + o] += wgt * data[src];
                    }
                }
            }
            done += 1;
            if let Some(p) = opts.progress.as_mut() {
                p(done, total);
            }
            if let Some(c) = opts.cancel {
                c.check()?;
            }
        }
    }
    let plane = (oh * ow) as usize;
    for (i, v) in acc.iter_mut().enumerate() {
        *v /= wsum[i % plane].max(1e-12);
    }
    Ok(Array::from_slice(&acc, &[oc, of, oh, ow]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_cover_the_axis_with_the_overlap() {
        assert_eq!(spans(4, 8, 2), vec![(0, 4)]);
        assert_eq!(spans(10, 4, 1), vec![(0, 4), (3, 4), (6, 4)]);
        assert_eq!(spans(11, 4, 1), vec![(0, 4), (3, 4), (6, 4), (7, 4)]);
    }

    #[test]
    fn ramps_cross_fade_to_one() {
        let sp = spans(10, 4, 2); // (0,4) (2,4) (4,4) (6,4)
        let a = ramp(&sp, 0, 1);
        let b = ramp(&sp, 1, 1);
        assert_eq!(a[..2], [1.0, 1.0]);
        // positions 2, 3 are shared by tiles 0 and 1: weights fall / rise.
        assert!(a[3] < a[2] && b[1] > b[0]);
        assert!(a.iter().chain(&b).all(|&w| w > 0.0 && w <= 1.0));
    }
}
