//! The two resamplers of the official image preprocessing, ported operation by operation so
//! that our tensors equal the official ones:
//! * [`lanczos`]: Pillow's `Image.resize(size, Image.LANCZOS)` on an RGB8 image
//!   (`libImaging/Resample.c`, 8 bits per channel), used by ti2v-5B. Integer arithmetic
//!   after the weights are fixed, so the port is bit-exact.
//! * [`bicubic`]: torch's `F.interpolate(x, size, mode="bicubic")` (align_corners False, no
//!   antialias, no clamp) on a float32 tensor, used by i2v-A14B. Weights and sums in float32
//!   in torch's order (rows outer, columns inner).
use image::{Rgb, RgbImage};

/// Fixed-point bits of Pillow's 8-bit resampler (`32 − 8 − 2`: room for 8-bit values and
/// filter lobes that sum above 1 or below 0).
const PRECISION_BITS: u32 = 22;

/// Lanczos-3 window support (Pillow's `LANCZOS.support`).
const LANCZOS_SUPPORT: f64 = 3.0;

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        return 1.0;
    }
    let x = x * std::f64::consts::PI;
    x.sin() / x
}

/// Pillow's `lanczos_filter`: truncated sinc, `sinc(x)·sinc(x/3)` on `[−3, 3)`.
fn lanczos_filter(x: f64) -> f64 {
    if (-3.0..3.0).contains(&x) {
        sinc(x) * sinc(x / 3.0)
    } else {
        0.0
    }
}

/// One axis of a resize: for each output index the first input index, the tap count and
/// `ksize` fixed-point weights (Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc`).
struct Taps {
    ksize: usize,
    bounds: Vec<(usize, usize)>,
    weights: Vec<i32>,
}

fn lanczos_taps(in_size: usize, out_size: usize) -> Taps {
    // `(double)(in1 − in0) / outSize` with the box (0, in_size): exact in f64.
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = LANCZOS_SUPPORT * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = vec![0i32; out_size * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // C `(int)` truncates toward zero, as `as i64` does.
        let xmin = ((center - support + 0.5) as i64).max(0);
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) - xmin;
        let n = xmax.max(0) as usize;
        let mut ww = 0.0;
        for (x, kx) in k.iter_mut().enumerate().take(n) {
            let w = lanczos_filter(((x as i64 + xmin) as f64 - center + 0.5) * ss);
            *kx = w;
            ww += w;
        }
        for (x, kx) in k.iter().enumerate().take(n) {
            let w = if ww != 0.0 { kx / ww } else { *kx };
            let scaled = w * (1u32 << PRECISION_BITS) as f64;
            // Round half away from zero, then truncate (C `(int)`).
            weights[xx * ksize + x] = if w < 0.0 {
                (-0.5 + scaled) as i32
            } else {
                (0.5 + scaled) as i32
            };
        }
        bounds.push((xmin as usize, n));
    }
    Taps {
        ksize,
        bounds,
        weights,
    }
}

/// Pillow's `clip8`: the accumulator (with its +½ already added) back to a byte.
fn clip8(acc: i64) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Sum of `taps` over `n` samples starting at `first`, `get(i)` reading sample `i`.
fn convolve(taps: &Taps, out: usize, get: impl Fn(usize) -> [u8; 3]) -> [u8; 3] {
    let (first, n) = taps.bounds[out];
    let k = &taps.weights[out * taps.ksize..out * taps.ksize + n];
    let mut acc = [1i64 << (PRECISION_BITS - 1); 3];
    for (i, &w) in k.iter().enumerate() {
        let px = get(first + i);
        for c in 0..3 {
            acc[c] += px[c] as i64 * w as i64;
        }
    }
    acc.map(clip8)
}

/// Pillow's `Image.resize((w, h), Image.LANCZOS)` of an RGB image: horizontal pass to
/// uint8 first, then vertical; an axis whose size does not change is not resampled, and an
/// unchanged size returns a copy. `w`, `h` must be ≥ 1.
pub fn lanczos(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    let (iw, ih) = img.dimensions();
    let horizontal = if w != iw {
        let taps = lanczos_taps(iw as usize, w as usize);
        RgbImage::from_fn(w, ih, |x, y| {
            Rgb(convolve(&taps, x as usize, |i| {
                img.get_pixel(i as u32, y).0
            }))
        })
    } else {
        img.clone()
    };
    if h == ih {
        return horizontal;
    }
    let taps = lanczos_taps(ih as usize, h as usize);
    RgbImage::from_fn(w, h, |x, y| {
        Rgb(convolve(&taps, y as usize, |i| {
            horizontal.get_pixel(x, i as u32).0
        }))
    })
}

/// Cubic convolution weights of torch's `upsample_bicubic2d` (A = −0.75) for each output
/// index: 4 clamped input indices and float32 weights (`HelperInterpCubic`).
fn bicubic_taps(in_size: usize, out_size: usize) -> Vec<([usize; 4], [f32; 4])> {
    const A: f32 = -0.75;
    let conv1 = |x: f32| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let conv2 = |x: f32| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    let scale = in_size as f32 / out_size as f32;
    (0..out_size)
        .map(|o| {
            let real = scale * (o as f32 + 0.5) - 0.5;
            let index = (real.floor() as i64).min(in_size as i64 - 1);
            let t = (real - index as f32).clamp(0.0, 1.0);
            let w = [
                conv2(t + 1.0),
                conv1(t),
                conv1(1.0 - t),
                conv2(1.0 - t + 1.0),
            ];
            let idx = [0, 1, 2, 3].map(|j| (index - 1 + j).clamp(0, in_size as i64 - 1) as usize);
            (idx, w)
        })
        .collect()
}

/// torch `F.interpolate(x[None], size=(h, w), mode="bicubic")` of a planar float32 image
/// `[c, ih, iw]` → `[c, h, w]` (align_corners False, no antialias, no clamp: values may
/// overshoot the input range). An unchanged size is a copy, as in torch.
pub fn bicubic(
    src: &[f32],
    c: usize,
    (ih, iw): (usize, usize),
    (h, w): (usize, usize),
) -> Vec<f32> {
    if (ih, iw) == (h, w) {
        return src.to_vec();
    }
    let ty = bicubic_taps(ih, h);
    let tx = bicubic_taps(iw, w);
    let mut out = vec![0f32; c * h * w];
    for ch in 0..c {
        let plane = &src[ch * ih * iw..(ch + 1) * ih * iw];
        for (y, (yi, wy)) in ty.iter().enumerate() {
            for (x, (xi, wx)) in tx.iter().enumerate() {
                let row = |r: usize| {
                    let line = &plane[r * iw..(r + 1) * iw];
                    let mut t = line[xi[0]] * wx[0];
                    for j in 1..4 {
                        t += line[xi[j]] * wx[j];
                    }
                    t
                };
                let mut acc = row(yi[0]) * wy[0];
                for i in 1..4 {
                    acc += row(yi[i]) * wy[i];
                }
                out[(ch * h + y) * w + x] = acc;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanczos_weights_sum_to_one_in_fixed_point() {
        for (i, o) in [(17, 1312), (1999, 128), (75, 96), (157, 146), (5, 1)] {
            let t = lanczos_taps(i, o);
            for (x, &(first, n)) in t.bounds.iter().enumerate() {
                assert!(first + n <= i, "{i}->{o} @ {x}");
                let s: i64 = t.weights[x * t.ksize..x * t.ksize + n]
                    .iter()
                    .map(|&w| w as i64)
                    .sum();
                // Each weight rounds by at most ½, so the sum is within n/2 of 2^22.
                assert!((s - (1 << 22)).abs() <= n as i64, "{i}->{o} @ {x}: {s}");
            }
        }
    }

    #[test]
    fn lanczos_keeps_constants_and_skips_unchanged_axes() {
        let flat = RgbImage::from_pixel(13, 7, Rgb([200, 3, 97]));
        for (w, h) in [(31, 7), (13, 20), (5, 3), (64, 64)] {
            let r = lanczos(&flat, w, h);
            assert_eq!(r.dimensions(), (w, h));
            assert!(r.pixels().all(|p| p.0 == [200, 3, 97]), "{w}x{h}");
        }
        // Only the width changes: each row is resampled on its own, rows never mix.
        let rows = RgbImage::from_fn(9, 4, |x, y| Rgb([(y * 60) as u8, (x * 25) as u8, 0]));
        let r = lanczos(&rows, 20, 4);
        for y in 0..4 {
            assert!((0..20).all(|x| r.get_pixel(x, y).0[0] == (y * 60) as u8));
        }
        assert_eq!(lanczos(&rows, 9, 4), rows);
    }

    #[test]
    fn lanczos_clips_the_overshoot_of_a_hard_edge() {
        // A black/white step overshoots with Lanczos; the fixed-point result saturates.
        let step = RgbImage::from_fn(8, 1, |x, _| Rgb([if x < 4 { 0 } else { 255 }; 3]));
        let r = lanczos(&step, 29, 1);
        let v: Vec<u8> = r.pixels().map(|p| p.0[0]).collect();
        assert_eq!(v[0], 0);
        assert_eq!(v[28], 255);
        assert!(v.windows(2).any(|w| w[0] > w[1]), "no ringing: {v:?}");
    }

    #[test]
    fn bicubic_matches_hand_computed_torch_values() {
        // 1-D upsample 2 → 4 of [0, 1]: torch gives these (A = −0.75, borders clamped).
        let out = bicubic(&[0.0, 1.0], 1, (1, 2), (1, 4));
        let want = [-0.10546875f64, 0.2265625, 0.7734375, 1.10546875];
        for (&g, w) in out.iter().zip(want) {
            assert!((g as f64 - w).abs() < 1e-6, "{out:?}");
        }
        // Same size: a copy.
        assert_eq!(
            bicubic(&[1.0, 2.0, 3.0], 1, (1, 3), (1, 3)),
            vec![1.0, 2.0, 3.0]
        );
    }
}
