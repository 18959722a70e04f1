//! Fast latent previews (not in the official code): a per-VAE linear map from one latent
//! cell to a small `p × p` RGB block (p = 2 for Wan2.2, whose 2×2 pixel patchify gives each
//! latent cell a 2×2 block of "patch pixels"; p = 1 for Wan2.1), fitted once by least
//! squares against the real decoder and stored as `preview_mlx.safetensors` beside the
//! converted weights.
//!
//! Layout: latent `[z, T, h, w]` (normalised, as the pipeline holds it) → RGB
//! `[3, T, h·p, w·p]` in [−1, 1], one preview frame per latent frame. The fit target is
//! the decoded video averaged over each latent frame's 1 (first) or 4 frames and over
//! each `(s/p) × (s/p)` pixel block (s = spatial stride). Weight `[z, p·p·3]`, bias
//! `[p·p·3]`, block order (row offset, column offset, RGB).
use std::collections::BTreeMap;
use std::path::Path;

use mlx_rs::Array;
use mlx_rs::ops::indexing::TryIndexOp;

use crate::checkpoint::safetensors::{SafeTensors, save};
use crate::error::{Error, Result};
use crate::hash::Fnv128;
use crate::pipeline::api::Preview;
use crate::vae::{VaeKind, WanVae, host_f32};

/// File name of the fitted factors, beside the converted VAE weights.
pub const PREVIEW_FILE: &str = "preview_mlx.safetensors";

#[derive(Debug, Clone)]
pub struct Previewer {
    pub kind: VaeKind,
    pub z_dim: i32,
    /// Output pixels per latent cell and axis.
    pub patch: i32,
    /// `[z, p·p·3]`.
    pub weight: Array,
    /// `[p·p·3]`.
    pub bias: Array,
}

/// How well a fit reproduces the decoder on held-out latents.
#[derive(Debug, Clone, Copy)]
pub struct FitReport {
    pub samples: usize,
    /// PSNR (dB, [−1, 1] range) of the preview vs the pooled full decode.
    pub psnr_db: f64,
    pub max_abs: f32,
    /// PSNR of the trivial predictor (the training mean colour of every block position),
    /// for context: what the linear map adds over a flat frame.
    pub mean_psnr_db: f64,
}

/// A smooth random video `[3, F, H, W]` in [−1, 1]: random colours on a coarse 4×4 grid
/// (nearest upsampled), blended linearly from a start to an end key frame. Encoding such
/// videos gives latents on the decoder's data manifold, like the x0 estimates a preview
/// shows during sampling.
fn smooth_video(f: i32, h: i32, w: i32) -> Result<Array> {
    let keys = mlx_rs::random::uniform::<f32, f32>(-1.0, 1.0, &[2, 3, 1, 4, 1, 4, 1], None)?;
    let key = |i: i32| -> Result<Array> {
        let k = keys.try_index(i)?; // [3, 1, 4, 1, 4, 1]
        let k = mlx_rs::ops::broadcast_to(&k, &[3, 1, 4, h / 4, 4, w / 4])?;
        Ok(k.reshape(&[3, 1, h, w])?)
    };
    let (a, b) = (key(0)?, key(1)?);
    let ts: Vec<f32> = (0..f).map(|i| i as f32 / (f - 1).max(1) as f32).collect();
    let t = Array::from_slice(&ts, &[1, f, 1, 1]);
    let one = Array::from_f32(1.0);
    Ok(a.multiply(one.subtract(&t)?)?.add(b.multiply(&t)?)?)
}

/// Decoded video `[3, F, H, W]` → target `[3, T, h·p, w·p]`: mean over each latent frame's
/// video frames and over `(s/p)²` pixel blocks.
fn pool_target(video: &Array, t: i32, block: i32) -> Result<Array> {
    let s = video.shape().to_vec();
    let (h, w) = (s[2], s[3]);
    let mut frames = vec![video.try_index((.., 0..1))?];
    for i in 1..t {
        let f = video.try_index((.., 1 + 4 * (i - 1)..1 + 4 * i))?;
        frames.push(f.mean_axis(1, true)?);
    }
    let v = mlx_rs::ops::concatenate(&frames, 1)?; // [3, T, H, W]
    let v = v.reshape(&[3, t, h / block, block, w / block, block])?;
    Ok(v.mean_axes(&[3, 5], None)?)
}

/// Solve the ridge-regularised normal equations `(XᵀX + λI) B = XᵀY` (f64, Gaussian
/// elimination with partial pivoting). `x`: `n × d` rows, `y`: `n × k`.
fn least_squares(x: &[f64], y: &[f64], n: usize, d: usize, k: usize) -> Result<Vec<f64>> {
    let mut a = vec![0.0; d * d];
    let mut b = vec![0.0; d * k];
    for r in 0..n {
        let xr = &x[r * d..(r + 1) * d];
        let yr = &y[r * k..(r + 1) * k];
        for i in 0..d {
            for j in 0..d {
                a[i * d + j] += xr[i] * xr[j];
            }
            for j in 0..k {
                b[i * k + j] += xr[i] * yr[j];
            }
        }
    }
    let tr: f64 = (0..d).map(|i| a[i * d + i]).sum::<f64>() / d as f64;
    for i in 0..d {
        a[i * d + i] += 1e-6 * tr.max(1e-12);
    }
    for col in 0..d {
        let piv = (col..d)
            .max_by(|&p, &q| a[p * d + col].abs().total_cmp(&a[q * d + col].abs()))
            .unwrap_or(col);
        if a[piv * d + col].abs() < 1e-300 {
            return Err(Error::Input("preview fit: singular system".into()));
        }
        if piv != col {
            for j in 0..d {
                a.swap(piv * d + j, col * d + j);
            }
            for j in 0..k {
                b.swap(piv * k + j, col * k + j);
            }
        }
        for r in 0..d {
            if r == col {
                continue;
            }
            let f = a[r * d + col] / a[col * d + col];
            if f == 0.0 {
                continue;
            }
            for j in 0..d {
                a[r * d + j] -= f * a[col * d + j];
            }
            for j in 0..k {
                b[r * k + j] -= f * b[col * k + j];
            }
        }
    }
    for i in 0..d {
        for j in 0..k {
            b[i * k + j] /= a[i * d + i];
        }
    }
    Ok(b)
}

/// Target `[3, T, h·p, w·p]` → rows `[T·h·w, p·p·3]` in (row offset, col offset, RGB).
fn target_rows(t: &Array, p: i32) -> Result<Array> {
    let s = t.shape().to_vec();
    let (tt, h, w) = (s[1], s[2] / p, s[3] / p);
    let t = t.reshape(&[3, tt, h, p, w, p])?;
    let t = t.transpose_axes(&[1, 2, 4, 3, 5, 0])?; // [T, h, w, p, p, 3]
    Ok(t.reshape(&[tt * h * w, p * p * 3])?)
}

impl Previewer {
    /// Fit against `vae` on `n_samples` encoded smooth random videos of `frames` frames and
    /// `h × w` latent cells, plus `n_samples / 4 + 1` held-out ones for the report.
    pub fn fit(
        vae: &WanVae,
        n_samples: usize,
        frames: i32,
        (h, w): (i32, i32),
        seed: u64,
    ) -> Result<(Self, FitReport)> {
        if n_samples == 0 || frames < 1 || (frames - 1) % 4 != 0 || h < 1 || w < 1 {
            return Err(Error::Input(format!(
                "preview fit: {n_samples} samples of {frames} frames, {h}×{w} latent cells"
            )));
        }
        mlx_rs::random::seed(seed)?;
        let (z, p, s) = (vae.cfg.z_dim, vae.cfg.patch(), vae.cfg.spatial_stride());
        let k = (p * p * 3) as usize;
        let d = z as usize + 1;
        let sample = || -> Result<(Array, Array)> {
            let video = smooth_video(frames, h * s, w * s)?;
            let latent = vae.encode(&video)?; // [z, T, h, w]
            let decoded = vae.decode(&latent)?;
            let t = latent.shape()[1];
            let target = target_rows(&pool_target(&decoded, t, s / p)?, p)?;
            let rows = latent.transpose_axes(&[1, 2, 3, 0])?.reshape(&[-1, z])?;
            Ok((rows, target))
        };
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        for _ in 0..n_samples {
            let (x, y) = sample()?;
            for row in host_f32(&x)?.chunks(z as usize) {
                xs.extend(row.iter().map(|&v| v as f64));
                xs.push(1.0);
            }
            ys.extend(host_f32(&y)?.iter().map(|&v| v as f64));
        }
        let n = ys.len() / k;
        let mut mean_rgb = vec![0f64; k];
        for row in ys.chunks(k) {
            for (m, v) in mean_rgb.iter_mut().zip(row) {
                *m += v / n as f64;
            }
        }
        let sol = least_squares(&xs, &ys, n, d, k)?;
        let wv: Vec<f32> = sol[..(d - 1) * k].iter().map(|&v| v as f32).collect();
        let bv: Vec<f32> = sol[(d - 1) * k..].iter().map(|&v| v as f32).collect();
        let me = Self {
            kind: vae.cfg.kind,
            z_dim: z,
            patch: p,
            weight: Array::from_slice(&wv, &[z, k as i32]),
            bias: Array::from_slice(&bv, &[k as i32]),
        };
        // Held-out evaluation.
        let held = n_samples / 4 + 1;
        let (mut se, mut se_mean, mut cnt, mut max) = (0f64, 0f64, 0usize, 0f32);
        for _ in 0..held {
            let video = smooth_video(frames, h * s, w * s)?;
            let latent = vae.encode(&video)?;
            let decoded = vae.decode(&latent)?;
            let t = latent.shape()[1];
            let want = host_f32(&target_rows(&pool_target(&decoded, t, s / p)?, p)?)?;
            let got = host_f32(&target_rows(&me.rgb(&latent)?, p)?)?;
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                let e = a - b;
                max = max.max(e.abs());
                se += (e as f64) * (e as f64);
                let em = mean_rgb[i % k] - *b as f64;
                se_mean += em * em;
                cnt += 1;
            }
        }
        let psnr = |se: f64| 10.0 * (4.0 / (se / cnt.max(1) as f64).max(1e-20)).log10();
        let (psnr_db, mean_psnr_db) = (psnr(se), psnr(se_mean));
        Ok((
            me,
            FitReport {
                samples: n_samples,
                psnr_db,
                max_abs: max,
                mean_psnr_db,
            },
        ))
    }

    /// Latent `[z, T, h, w]` → preview RGB `[3, T, h·p, w·p]` in [−1, 1] (unclamped).
    pub fn rgb(&self, latent: &Array) -> Result<Array> {
        Ok(self.rgb_frames(latent)?.transpose_axes(&[3, 0, 1, 2])?)
    }

    /// Latent `[z, T, h, w]` → `[T, h·p, w·p, 3]` (the layout of preview frames).
    fn rgb_frames(&self, latent: &Array) -> Result<Array> {
        let s = latent.shape();
        if s.len() != 4 || s[0] != self.z_dim {
            return Err(Error::Input(format!(
                "preview wants a latent [{}, T, h, w], got {s:?}",
                self.z_dim
            )));
        }
        let (t, h, w, p) = (s[1], s[2], s[3], self.patch);
        let x = latent
            .as_dtype(mlx_rs::Dtype::Float32)?
            .transpose_axes(&[1, 2, 3, 0])?
            .reshape(&[-1, self.z_dim])?;
        let y = x.matmul(&self.weight)?.add(&self.bias)?; // [T·h·w, p·p·3]
        if p == 1 {
            return Ok(y.reshape(&[t, h, w, 3])?);
        }
        let y = y.reshape(&[t, h, w, p, p, 3])?;
        let y = y.transpose_axes(&[0, 1, 3, 2, 4, 5])?; // [T, h, p, w, p, 3]
        Ok(y.reshape(&[t, h * p, w * p, 3])?)
    }

    /// Small RGB8 frames, one per latent frame (official `uint8((x + 1) / 2 · 255)`).
    pub fn preview(&self, latent: &Array) -> Result<Preview> {
        let y = self.rgb_frames(latent)?;
        // Map to [0, 255] in MLX (one pass), then copy out as bytes.
        let y = mlx_rs::ops::clip(&y, (-1.0f32, 1.0f32))?
            .add(Array::from_f32(1.0))?
            .multiply(Array::from_f32(127.5))?
            .as_dtype(mlx_rs::Dtype::Uint8)?
            .contiguous()?;
        let s = y.shape().to_vec();
        let (h, w) = (s[1], s[2]);
        let bytes = y
            .to_vec_cast::<u8>()
            .map_err(|e| Error::Unsupported(format!("preview copy: {e}")))?;
        let frames = bytes
            .chunks((h * w * 3) as usize)
            .map(<[u8]>::to_vec)
            .collect();
        Ok(Preview {
            width: w as u32,
            height: h as u32,
            frames,
        })
    }

    pub fn save(&self, path: &Path, report: Option<&FitReport>) -> Result<()> {
        let mut t = BTreeMap::new();
        t.insert("weight".to_string(), self.weight.clone());
        t.insert("bias".to_string(), self.bias.clone());
        let mut md = BTreeMap::new();
        md.insert("kind".to_string(), format!("{:?}", self.kind));
        md.insert("patch".to_string(), self.patch.to_string());
        if let Some(r) = report {
            md.insert("fit_samples".to_string(), r.samples.to_string());
            md.insert("heldout_psnr_db".to_string(), format!("{:.2}", r.psnr_db));
        }
        save(path, &t, &md)
    }

    pub fn load(path: &Path) -> Result<Self> {
        let st = SafeTensors::open(path)?;
        let md = st.metadata();
        let kind = match md.get("kind").map(String::as_str) {
            Some("Wan21") => VaeKind::Wan21,
            Some("Wan22") => VaeKind::Wan22,
            other => {
                return Err(Error::format(path, format!("preview kind {other:?}")));
            }
        };
        let patch: i32 = md
            .get("patch")
            .and_then(|p| p.parse().ok())
            .filter(|&p| p >= 1)
            .ok_or_else(|| Error::format(path, "preview metadata: bad `patch`"))?;
        let weight = st.array("weight")?.as_dtype(mlx_rs::Dtype::Float32)?;
        let bias = st.array("bias")?.as_dtype(mlx_rs::Dtype::Float32)?;
        let k = patch * patch * 3;
        if weight.ndim() != 2 || weight.shape()[1] != k || bias.shape() != [k] {
            return Err(Error::format(
                path,
                format!(
                    "preview factors: weight {:?}, bias {:?} (want [z, {k}], [{k}])",
                    weight.shape(),
                    bias.shape()
                ),
            ));
        }
        Ok(Self {
            kind,
            z_dim: weight.shape()[0],
            patch,
            weight,
            bias,
        })
    }

    /// The previewer stored beside converted weights in `dir`, if any.
    pub fn load_beside(dir: &Path) -> Result<Option<Self>> {
        let p = dir.join(PREVIEW_FILE);
        if p.exists() {
            Ok(Some(Self::load(&p)?))
        } else {
            Ok(None)
        }
    }
}

/// Settings of the fit [`ensure_previewer`] runs when no previewer is stored: 12 smooth
/// clips of 5 frames at 4×4 latent cells (a few seconds on CPU for the tiny test VAE;
/// a held-out PSNR close to what more samples give, since the map has only `(z+1)·p²·3`
/// unknowns against `12·2·16` latent cells of `p²·3` targets each).
pub const AUTO_FIT: (usize, i32, i32) = (12, 5, 4);

/// Cache key of a VAE weights file: its canonical path, size and mtime, the first and
/// last MiB of its bytes (so a replaced file with the same name and size still misses),
/// and the VAE config.
fn vae_file_key(file: &Path, cfg: &crate::vae::VaeConfig) -> Result<String> {
    use std::io::{Read, Seek, SeekFrom};
    let canon = std::fs::canonicalize(file).map_err(|e| Error::io(file, e))?;
    let md = std::fs::metadata(&canon).map_err(|e| Error::io(file, e))?;
    let mtime = md
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut h = Fnv128::default();
    h.field(canon.to_string_lossy().as_bytes())
        .field(&md.len().to_le_bytes())
        .field(&mtime.to_le_bytes())
        .field(format!("{cfg:?}").as_bytes());
    let mut f = std::fs::File::open(&canon).map_err(|e| Error::io(file, e))?;
    let chunk = 1u64 << 20;
    let mut buf = Vec::new();
    (&mut f)
        .take(chunk)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io(file, e))?;
    if md.len() > chunk {
        f.seek(SeekFrom::Start(md.len().saturating_sub(chunk).max(chunk)))
            .map_err(|e| Error::io(file, e))?;
        f.read_to_end(&mut buf).map_err(|e| Error::io(file, e))?;
    }
    Ok(h.field(&buf).hex())
}

/// Where a previewer came from (for logs and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreviewSource {
    /// `preview_mlx.safetensors` beside the weights (converted folders).
    Beside,
    /// Fitted earlier for the same VAE file and read from the cache folder.
    Cache,
    /// Fitted now (and stored in the cache folder).
    Fitted,
}

/// What [`ensure_previewer`] finds without fitting (so without the VAE's weights: the
/// pipeline loads the VAE only when a fit is really needed): the previewer beside the
/// weights in `dir`, or one fitted earlier for `vae_file` in `cache_dir`.
pub fn find_previewer(
    dir: &Path,
    vae_file: &Path,
    cfg: &crate::vae::VaeConfig,
    cache_dir: &Path,
) -> Result<Option<(Previewer, PreviewSource)>> {
    if let Some(p) = Previewer::load_beside(dir)? {
        return Ok(Some((p, PreviewSource::Beside)));
    }
    let cached = cache_dir.join(format!(
        "preview-{}.safetensors",
        vae_file_key(vae_file, cfg)?
    ));
    if cached.exists() {
        match Previewer::load(&cached) {
            Ok(p) if p.kind == cfg.kind && p.z_dim == cfg.z_dim => {
                return Ok(Some((p, PreviewSource::Cache)));
            }
            Ok(_) | Err(_) => {
                eprintln!(
                    "warning: refitting the previewer: {} is unusable",
                    cached.display()
                );
            }
        }
    }
    Ok(None)
}

/// The fast previewer for `vae`, whatever the folder: the one stored beside the weights in
/// `dir`, else one fitted earlier for the same weights file (`vae_file`) in `cache_dir`,
/// else fitted now with [`AUTO_FIT`] and stored there (atomically) for next time. Official
/// folders ship no previewer, and live previews should not depend on running `convert`.
/// A corrupt cache entry is refitted, not an error.
pub fn ensure_previewer(
    vae: &WanVae,
    dir: &Path,
    vae_file: &Path,
    cache_dir: &Path,
) -> Result<(Previewer, PreviewSource)> {
    if let Some(found) = find_previewer(dir, vae_file, &vae.cfg, cache_dir)? {
        return Ok(found);
    }
    let cached = cache_dir.join(format!(
        "preview-{}.safetensors",
        vae_file_key(vae_file, &vae.cfg)?
    ));
    let (n, frames, cells) = AUTO_FIT;
    let (p, report) = Previewer::fit(vae, n, frames, (cells, cells), 0)?;
    std::fs::create_dir_all(cache_dir).map_err(|e| Error::io(cache_dir, e))?;
    p.save(&cached, Some(&report))?;
    Ok((p, PreviewSource::Fitted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_squares_recovers_a_linear_map() {
        // y = 2·x0 − x1 + 0.5 (bias column last)
        let rows = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, -1.0], [0.5, 3.0]];
        let mut x = Vec::new();
        let mut y = Vec::new();
        for r in rows {
            x.extend([r[0], r[1], 1.0]);
            y.push(2.0 * r[0] - r[1] + 0.5);
        }
        let b = least_squares(&x, &y, 5, 3, 1).unwrap();
        for (g, w) in b.iter().zip([2.0, -1.0, 0.5]) {
            assert!((g - w).abs() < 1e-4, "{b:?}");
        }
    }
}
