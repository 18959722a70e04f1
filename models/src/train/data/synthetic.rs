//! Procedural video dataset for training a small DiT from scratch on a CPU: one coloured
//! shape (square or disc) moving left/right/up/down over a plain background, with a
//! caption per clip ("a red square moving left on a gray background").
//!
//! * Pixels: `[3, F, S, S]` RGB in [0, 1].
//! * "VAE" (fixed, no weights): 2×2 average pooling, then RGB ∈ [-1, 1] expanded to
//!   `LATENT_CHANNELS` by the fixed matrix `E = [I₃; 1ᵀ/√3]` → latent `[4, F, S/2, S/2]`.
//!   Decoding is the least-squares inverse `(EᵀE)⁻¹Eᵀ = (I − 11ᵀ/6)·Eᵀ` (at latent
//!   resolution; the statistics are measured there).
//! * Text: each word maps to a fixed pseudo-random vector (seeded by the word's FNV-1a
//!   hash), so a caption is a `[words, text_dim]` context with no text encoder.
//! * [`clip_stats`] recovers background colour, shape colour and motion from RGB frames;
//!   applied to generated samples it measures how well the model learned the data.
use mlx_rs::Array;

use crate::error::{Error, Result};
use crate::train::objective::{FlowBatch, Rng, SigmaSampling};

pub const LATENT_CHANNELS: i32 = 4;
pub const COLOURS: &[(&str, [f32; 3])] = &[
    ("red", [0.9, 0.1, 0.1]),
    ("green", [0.1, 0.8, 0.2]),
    ("blue", [0.15, 0.25, 0.95]),
    ("yellow", [0.95, 0.85, 0.1]),
];
pub const BACKGROUNDS: &[(&str, [f32; 3])] = &[
    ("black", [0.0, 0.0, 0.0]),
    ("gray", [0.5, 0.5, 0.5]),
    ("white", [1.0, 1.0, 1.0]),
];
pub const SHAPES: &[&str] = &["square", "disc"];
/// Direction name and pixel step per frame (dx, dy).
pub const DIRECTIONS: &[(&str, [f32; 2])] = &[
    ("left", [-1.0, 0.0]),
    ("right", [1.0, 0.0]),
    ("up", [0.0, -1.0]),
    ("down", [0.0, 1.0]),
];

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SyntheticConfig {
    /// Frames per clip (latent frames too: no temporal compression).
    pub frames: i32,
    /// Pixel side `S` (even; latents are `S/2`).
    pub size: i32,
    pub text_dim: i32,
    /// Shape half-size in pixels and speed in pixels per frame.
    pub radius: f32,
    pub speed: f32,
}

impl SyntheticConfig {
    pub fn validate(&self) -> Result<()> {
        let travel = self.speed * (self.frames - 1).max(0) as f32 + 2.0 * self.radius;
        if self.frames < 1 || self.size < 4 || self.size % 2 != 0 || travel > self.size as f32 {
            return Err(Error::Config(format!(
                "synthetic clips: {self:?} (need frames ≥ 1, even size ≥ 4, shape path inside the frame)"
            )));
        }
        Ok(())
    }
    /// Latent shape `[C, F, S/2, S/2]`.
    pub fn latent_shape(&self) -> [i32; 4] {
        [LATENT_CHANNELS, self.frames, self.size / 2, self.size / 2]
    }
}

/// Everything that defines one clip.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClipSpec {
    pub colour: usize,
    pub shape: usize,
    pub direction: usize,
    pub background: usize,
    /// Centre at frame 0, pixels.
    pub start: [f32; 2],
}

impl ClipSpec {
    pub fn random(rng: &mut Rng, cfg: &SyntheticConfig) -> Self {
        let direction = rng.below(DIRECTIONS.len());
        let d = DIRECTIONS[direction].1;
        let travel = cfg.speed * (cfg.frames - 1) as f32;
        let s = cfg.size as f32;
        // Start so that the whole path stays inside the frame.
        let mut start = [0.0; 2];
        for (i, st) in start.iter_mut().enumerate() {
            let (lo, hi) = if d[i] > 0.0 {
                (cfg.radius, s - cfg.radius - travel)
            } else if d[i] < 0.0 {
                (cfg.radius + travel, s - cfg.radius)
            } else {
                (cfg.radius, s - cfg.radius)
            };
            *st = lo + (hi - lo) * rng.uniform() as f32;
        }
        Self {
            colour: rng.below(COLOURS.len()),
            shape: rng.below(SHAPES.len()),
            direction,
            background: rng.below(BACKGROUNDS.len()),
            start,
        }
    }

    pub fn caption(&self) -> String {
        format!(
            "a {} {} moving {} on a {} background",
            COLOURS[self.colour].0,
            SHAPES[self.shape],
            DIRECTIONS[self.direction].0,
            BACKGROUNDS[self.background].0
        )
    }

    /// Shape centre at frame `f`.
    pub fn centre(&self, cfg: &SyntheticConfig, f: i32) -> [f32; 2] {
        let d = DIRECTIONS[self.direction].1;
        [
            self.start[0] + d[0] * cfg.speed * f as f32,
            self.start[1] + d[1] * cfg.speed * f as f32,
        ]
    }

    /// RGB pixels `[3, F, S, S]` in [0, 1] (row-major).
    pub fn render(&self, cfg: &SyntheticConfig) -> Vec<f32> {
        let (f_n, s) = (cfg.frames as usize, cfg.size as usize);
        let (bg, fg) = (BACKGROUNDS[self.background].1, COLOURS[self.colour].1);
        let mut px = vec![0f32; 3 * f_n * s * s];
        for f in 0..f_n {
            let [cx, cy] = self.centre(cfg, f as i32);
            for y in 0..s {
                for x in 0..s {
                    let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
                    let inside = match self.shape {
                        0 => dx.abs() < cfg.radius && dy.abs() < cfg.radius,
                        _ => dx * dx + dy * dy < cfg.radius * cfg.radius,
                    };
                    let c = if inside { fg } else { bg };
                    for ch in 0..3 {
                        px[((ch * f_n + f) * s + y) * s + x] = c[ch];
                    }
                }
            }
        }
        px
    }
}

/// Fixed "VAE" encode: RGB `[3, F, S, S]` in [0, 1] → latent `[4, F, S/2, S/2]`.
pub fn encode(px: &[f32], cfg: &SyntheticConfig) -> Vec<f32> {
    let (f_n, s) = (cfg.frames as usize, cfg.size as usize);
    let h = s / 2;
    let mut out = vec![0f32; LATENT_CHANNELS as usize * f_n * h * h];
    let inv = 1.0 / 3f32.sqrt();
    for f in 0..f_n {
        for y in 0..h {
            for x in 0..h {
                let mut rgb = [0f32; 3];
                for (ch, v) in rgb.iter_mut().enumerate() {
                    let at = |yy: usize, xx: usize| px[((ch * f_n + f) * s + yy) * s + xx];
                    let m = (at(2 * y, 2 * x)
                        + at(2 * y, 2 * x + 1)
                        + at(2 * y + 1, 2 * x)
                        + at(2 * y + 1, 2 * x + 1))
                        / 4.0;
                    *v = 2.0 * m - 1.0;
                }
                let lat = [rgb[0], rgb[1], rgb[2], (rgb[0] + rgb[1] + rgb[2]) * inv];
                for (c, v) in lat.iter().enumerate() {
                    out[((c * f_n + f) * h + y) * h + x] = *v;
                }
            }
        }
    }
    out
}

/// Least-squares decode of latents `[4, F, h, w]` → RGB `[3, F, h, w]` in [0, 1] (clamped).
pub fn decode(latent: &[f32], frames: usize, h: usize, w: usize) -> Vec<f32> {
    let n = frames * h * w;
    let inv = 1.0 / 3f32.sqrt();
    let mut out = vec![0f32; 3 * n];
    for i in 0..n {
        let l = [
            latent[i],
            latent[n + i],
            latent[2 * n + i],
            latent[3 * n + i],
        ];
        // Eᵀ l, then (I − 11ᵀ/6).
        let e = [l[0] + inv * l[3], l[1] + inv * l[3], l[2] + inv * l[3]];
        let s = (e[0] + e[1] + e[2]) / 6.0;
        for c in 0..3 {
            out[c * n + i] = (((e[c] - s) + 1.0) / 2.0).clamp(0.0, 1.0);
        }
    }
    out
}

/// A caption as a `[words, text_dim]` context: one fixed N(0, 1/dim) vector per word.
pub fn embed_caption(caption: &str, text_dim: i32) -> Result<Array> {
    let words: Vec<&str> = caption.split_whitespace().collect();
    if words.is_empty() {
        return Err(Error::Input("empty caption".into()));
    }
    let scale = 1.0 / (text_dim as f64).sqrt();
    let mut v = Vec::with_capacity(words.len() * text_dim as usize);
    for w in &words {
        // A stable hash (std's hasher is randomised per process).
        let mut r = Rng::new(crate::hash::fnv1a64(w.as_bytes()));
        v.extend((0..text_dim).map(|_| (r.normal() * scale) as f32));
    }
    Ok(Array::from_slice(&v, &[words.len() as i32, text_dim]))
}

/// One training batch: `b` random clips, noise from an MLX key drawn from `rng`, σ from
/// `sampling`. Returns the batch and its clip specs.
pub fn batch(
    cfg: &SyntheticConfig,
    rng: &mut Rng,
    b: usize,
    sampling: &SigmaSampling,
) -> Result<(FlowBatch, Vec<ClipSpec>)> {
    let specs: Vec<ClipSpec> = (0..b).map(|_| ClipSpec::random(rng, cfg)).collect();
    let [c, f, h, w] = cfg.latent_shape();
    let mut x0 = Vec::new();
    let mut context = Vec::with_capacity(b);
    for s in &specs {
        x0.extend(encode(&s.render(cfg), cfg));
        context.push(embed_caption(&s.caption(), cfg.text_dim)?);
    }
    let shape = [b as i32, c, f, h, w];
    let key = rng.mlx_key()?;
    let noise = mlx_rs::random::normal::<f32>(&shape[..], None, None, &key)?;
    let sigma = (0..b).map(|_| sampling.sample(rng)).collect();
    Ok((
        FlowBatch {
            x0: Array::from_slice(&x0, &shape),
            noise,
            sigma,
            context,
        },
        specs,
    ))
}

/// What can be read back from an RGB clip `[3, F, h, w]`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ClipStats {
    pub background: [f32; 3],
    pub shape_colour: [f32; 3],
    /// Fraction of pixels that differ from the background (mean over frames).
    pub area: f32,
    /// Shape centroid per frame in latent pixels (None where no shape pixel was found).
    pub centroids: Vec<Option<[f32; 2]>>,
    pub background_class: usize,
    pub colour_class: Option<usize>,
    pub direction_class: Option<usize>,
}

fn nearest(c: [f32; 3], palette: &[(&str, [f32; 3])]) -> usize {
    let d = |p: [f32; 3]| (0..3).map(|i| (c[i] - p[i]).powi(2)).sum::<f32>();
    (0..palette.len())
        .min_by(|&a, &b| d(palette[a].1).total_cmp(&d(palette[b].1)))
        .unwrap_or(0)
}

/// Background = median of the border pixels; shape pixels = farther than 0.25 from it.
pub fn clip_stats(rgb: &[f32], frames: usize, h: usize, w: usize) -> ClipStats {
    let n = frames * h * w;
    let px = |i: usize| [rgb[i], rgb[n + i], rgb[2 * n + i]];
    let mut border: [Vec<f32>; 3] = Default::default();
    for f in 0..frames {
        for y in 0..h {
            for x in 0..w {
                if y == 0 || x == 0 || y == h - 1 || x == w - 1 {
                    let p = px((f * h + y) * w + x);
                    for c in 0..3 {
                        border[c].push(p[c]);
                    }
                }
            }
        }
    }
    let background = [0, 1, 2].map(|c| {
        let v = &mut border[c];
        v.sort_by(f32::total_cmp);
        v[v.len() / 2]
    });
    let (mut sum, mut count) = ([0f32; 3], 0usize);
    let mut centroids = Vec::with_capacity(frames);
    for f in 0..frames {
        let (mut cx, mut cy, mut k) = (0f32, 0f32, 0usize);
        for y in 0..h {
            for x in 0..w {
                let p = px((f * h + y) * w + x);
                let d: f32 = (0..3).map(|c| (p[c] - background[c]).powi(2)).sum();
                if d.sqrt() > 0.25 {
                    (cx, cy, k) = (cx + x as f32 + 0.5, cy + y as f32 + 0.5, k + 1);
                    for c in 0..3 {
                        sum[c] += p[c];
                    }
                }
            }
        }
        count += k;
        centroids.push((k > 0).then(|| [cx / k as f32, cy / k as f32]));
    }
    let shape_colour = sum.map(|s| s / count.max(1) as f32);
    let direction_class = match (
        centroids.first().copied().flatten(),
        centroids.last().copied().flatten(),
    ) {
        (Some(a), Some(b)) if frames > 1 => {
            let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
            Some(if dx.abs() >= dy.abs() {
                if dx < 0.0 { 0 } else { 1 }
            } else if dy < 0.0 {
                2
            } else {
                3
            })
        }
        _ => None,
    };
    ClipStats {
        background,
        shape_colour,
        area: count as f32 / n as f32,
        centroids,
        background_class: nearest(background, BACKGROUNDS),
        colour_class: (count > 0).then(|| nearest(shape_colour, COLOURS)),
        direction_class,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SyntheticConfig {
        SyntheticConfig {
            frames: 4,
            size: 32,
            text_dim: 16,
            radius: 4.0,
            speed: 3.0,
        }
    }

    /// Rendering → encode → decode → stats recovers every attribute of the caption.
    #[test]
    fn stats_recover_the_ground_truth_of_real_clips() {
        let c = cfg();
        let mut rng = Rng::new(3);
        for _ in 0..40 {
            let s = ClipSpec::random(&mut rng, &c);
            let lat = encode(&s.render(&c), &c);
            let [_, f, h, w] = c.latent_shape();
            let st = clip_stats(&decode(&lat, f as usize, h as usize, w as usize), 4, 16, 16);
            assert_eq!(st.background_class, s.background, "{}", s.caption());
            assert_eq!(st.colour_class, Some(s.colour), "{}", s.caption());
            assert_eq!(st.direction_class, Some(s.direction), "{}", s.caption());
        }
    }

    #[test]
    fn captions_embed_deterministically_per_word() {
        let a = embed_caption("a red square", 8).unwrap();
        let b = embed_caption("red a", 8).unwrap();
        assert_eq!(a.shape(), &[3, 8]);
        let a: Vec<f32> = a.as_slice().to_vec();
        let b: Vec<f32> = b.as_slice().to_vec();
        assert_eq!(a[8..16], b[0..8]); // "red" is the same vector wherever it appears
        assert_eq!(a[0..8], b[8..16]);
        assert!(embed_caption("  ", 8).is_err());
    }
}
