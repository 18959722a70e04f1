//! Conditioning images, resized the way the official pipelines do it (spec §5.6):
//! * ti2v-5B (`wan/textimage2video.py:WanTI2V.i2v`): `best_output_size` for the requested
//!   area (multiples of 32), PIL LANCZOS resize by `max(ow/iw, oh/ih)`, center crop.
//! * i2v-A14B (`wan/image2video.py:WanI2V.generate`): the largest even latent size under the
//!   area with the image's aspect, bicubic `interpolate` on the [−1, 1] tensor
//!   (align_corners=False, no antialias, no crop).
//!
//! Output tensors are `[3, 1, H, W]` float32 in [−1, 1] (`to_tensor(img)·2 − 1`).
use std::path::Path;

use image::RgbImage;
use image::imageops::FilterType;
use mlx_rs::Array;

use crate::error::{Error, Result};

/// Open an image file as RGB8; anything unreadable is a clear [`Error::Input`].
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    if !path.is_file() {
        return Err(Error::Missing(path.to_path_buf()));
    }
    let img = image::ImageReader::open(path)
        .map_err(|e| Error::io(path, e))?
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?
        .decode()
        .map_err(|e| Error::Input(format!("cannot read image {}: {e}", path.display())))?;
    Ok(img.to_rgb8())
}

/// Official `best_output_size(w, h, dw, dh, expected_area)` → (ow, oh).
pub fn best_output_size(w: u32, h: u32, dw: u32, dh: u32, area: f64) -> (u32, u32) {
    let ratio = w as f64 / h as f64;
    let ow = (area * ratio).sqrt();
    let oh = area / ow;
    // Candidate A: fix the width first.
    let ow1 = ((ow / dw as f64).floor() as u32 * dw).max(dw);
    let oh1 = ((area / ow1 as f64 / dh as f64).floor() as u32 * dh).max(dh);
    let ratio1 = ow1 as f64 / oh1 as f64;
    // Candidate B: fix the height first.
    let oh2 = ((oh / dh as f64).floor() as u32 * dh).max(dh);
    let ow2 = ((area / oh2 as f64 / dw as f64).floor() as u32 * dw).max(dw);
    let ratio2 = ow2 as f64 / oh2 as f64;
    let dev = |r: f64| (r / ratio).max(ratio / r);
    if dev(ratio1) < dev(ratio2) {
        (ow1, oh1)
    } else {
        (ow2, oh2)
    }
}

/// RGB8 `[H, W, 3]` → `[3, 1, H, W]` float32 in [−1, 1].
pub fn to_tensor(img: &RgbImage) -> Result<Array> {
    let (w, h) = img.dimensions();
    let data: Vec<f32> = img
        .as_raw()
        .iter()
        .map(|&b| b as f32 / 255.0 * 2.0 - 1.0)
        .collect();
    let hwc = Array::from_slice(&data, &[h as i32, w as i32, 3]);
    Ok(hwc.transpose_axes(&[2, 0, 1])?.expand_dims(1)?)
}

/// ti2v-5B: resize (LANCZOS) + center crop to `best_output_size(…, 32, 32, area)`.
pub fn ti2v_image(img: &RgbImage, area: f64, multiple: u32) -> Result<Array> {
    let (iw, ih) = img.dimensions();
    let (ow, oh) = best_output_size(iw, ih, multiple, multiple, area);
    let scale = (ow as f64 / iw as f64).max(oh as f64 / ih as f64);
    let (rw, rh) = (
        ((iw as f64 * scale).round() as u32).max(ow),
        ((ih as f64 * scale).round() as u32).max(oh),
    );
    // PIL returns the image unchanged when the size does not change; so do we.
    let resized = if (rw, rh) == (iw, ih) {
        img.clone()
    } else {
        image::imageops::resize(img, rw, rh, FilterType::Lanczos3)
    };
    let (x0, y0) = ((rw - ow) / 2, (rh - oh) / 2);
    let cropped = image::imageops::crop_imm(&resized, x0, y0, ow, oh).to_image();
    to_tensor(&cropped)
}

/// i2v-A14B output size (W, H) for an `iw × ih` image and `max_area`: the largest even
/// latent (`÷ stride`) size with the image's aspect ratio.
pub fn i2v_a14b_size(iw: u32, ih: u32, max_area: f64, stride: u32) -> (u32, u32) {
    let ar = ih as f64 / iw as f64;
    let s = stride as f64;
    let lat_h = (((max_area * ar).sqrt() / s).floor() / 2.0).floor() * 2.0;
    let lat_w = (((max_area / ar).sqrt() / s).floor() / 2.0).floor() * 2.0;
    (
        (lat_w as u32).max(2) * stride,
        (lat_h as u32).max(2) * stride,
    )
}

/// Bicubic weights of torch `upsample_bicubic2d` (A = −0.75, align_corners=False, borders
/// clamped): for each output index, 4 source indices and weights.
fn bicubic_taps(src: usize, dst: usize) -> Vec<([usize; 4], [f32; 4])> {
    const A: f64 = -0.75;
    let cc1 = |x: f64| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let cc2 = |x: f64| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    let scale = src as f64 / dst as f64;
    (0..dst)
        .map(|o| {
            let real = scale * (o as f64 + 0.5) - 0.5;
            let i0 = real.floor();
            let t = real - i0;
            let w = [cc2(t + 1.0), cc1(t), cc1(1.0 - t), cc2(2.0 - t)];
            let mut idx = [0usize; 4];
            for (k, slot) in idx.iter_mut().enumerate() {
                *slot = (i0 as i64 - 1 + k as i64).clamp(0, src as i64 - 1) as usize;
            }
            (idx, w.map(|v| v as f32))
        })
        .collect()
}

/// i2v-A14B: bicubic resize of the [−1, 1] tensor to (W, H) (values may overshoot ±1).
pub fn i2v_a14b_image(img: &RgbImage, w: u32, h: u32) -> Result<Array> {
    let (iw, ih) = img.dimensions();
    let (iw, ih, w, h) = (iw as usize, ih as usize, w as usize, h as usize);
    let src: Vec<f32> = img
        .as_raw()
        .iter()
        .map(|&b| b as f32 / 255.0 * 2.0 - 1.0)
        .collect();
    let tx = bicubic_taps(iw, w);
    let ty = bicubic_taps(ih, h);
    // Rows first ([ih, w, 3]), then columns ([h, w, 3]).
    let mut tmp = vec![0f32; ih * w * 3];
    for y in 0..ih {
        for (x, (idx, wt)) in tx.iter().enumerate() {
            for c in 0..3 {
                let mut acc = 0f32;
                for k in 0..4 {
                    acc += wt[k] * src[(y * iw + idx[k]) * 3 + c];
                }
                tmp[(y * w + x) * 3 + c] = acc;
            }
        }
    }
    let mut out = vec![0f32; h * w * 3];
    for (y, (idx, wt)) in ty.iter().enumerate() {
        for x in 0..w {
            for c in 0..3 {
                let mut acc = 0f32;
                for k in 0..4 {
                    acc += wt[k] * tmp[(idx[k] * w + x) * 3 + c];
                }
                out[(y * w + x) * 3 + c] = acc;
            }
        }
    }
    let hwc = Array::from_slice(&out, &[h as i32, w as i32, 3]);
    Ok(hwc.transpose_axes(&[2, 0, 1])?.expand_dims(1)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spec §11.4.
    #[test]
    fn ti2v_best_output_size_vectors() {
        let a = 901_120.0;
        assert_eq!(best_output_size(1920, 1080, 32, 32, a), (1248, 704));
        assert_eq!(best_output_size(1080, 1920, 32, 32, a), (704, 1248));
        assert_eq!(best_output_size(1024, 1024, 32, 32, a), (960, 928));
        assert_eq!(best_output_size(4032, 3024, 32, 32, a), (1088, 800));
        assert_eq!(best_output_size(1280, 704, 32, 32, a), (1280, 704));
        // e2e_ti2v_i2v: a 64×96 image with area 96·64 keeps its size.
        assert_eq!(best_output_size(64, 96, 32, 32, 6144.0), (64, 96));
    }

    #[test]
    fn i2v_a14b_size_vectors() {
        assert_eq!(i2v_a14b_size(1920, 1080, 1280.0 * 720.0, 8), (1280, 720));
        assert_eq!(i2v_a14b_size(1920, 1080, 832.0 * 480.0, 8), (832, 464));
        assert_eq!(i2v_a14b_size(1024, 1024, 1280.0 * 720.0, 8), (960, 960));
    }

    #[test]
    fn ti2v_image_resizes_and_center_crops() {
        let img = RgbImage::from_fn(200, 100, |x, _| image::Rgb([(x % 256) as u8, 0, 255]));
        let t = ti2v_image(&img, 64.0 * 32.0, 32).unwrap();
        assert_eq!(t.shape(), &[3, 1, 32, 64]);
        let b = t.contiguous().unwrap();
        let v: Vec<f32> = b.as_slice::<f32>().to_vec();
        // Blue channel stays 1.0, green −1.0 (LANCZOS of a constant is the constant).
        assert!((v[2 * 32 * 64] - 1.0).abs() < 1e-2);
        assert!((v[32 * 64] + 1.0).abs() < 1e-2);
    }

    #[test]
    fn bicubic_identity_and_constant() {
        let img = RgbImage::from_fn(5, 3, |x, y| image::Rgb([(x * 40) as u8, (y * 60) as u8, 9]));
        let same = i2v_a14b_image(&img, 5, 3).unwrap();
        let direct = to_tensor(&img).unwrap();
        let d = same
            .subtract(&direct)
            .unwrap()
            .abs()
            .unwrap()
            .max(None)
            .unwrap()
            .item_cast::<f32>();
        assert!(d < 1e-6, "{d}");
        let up = i2v_a14b_image(&img, 16, 8).unwrap();
        assert_eq!(up.shape(), &[3, 1, 8, 16]);
    }

    #[test]
    fn unreadable_images_are_clear_errors() {
        let dir = std::env::temp_dir().join(format!("wan-img-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bad = dir.join("bad.png");
        std::fs::write(&bad, b"not a png").unwrap();
        let e = load_rgb(&bad).unwrap_err();
        assert_eq!(e.code(), "input", "{e}");
        assert_eq!(
            load_rgb(&dir.join("nope.png")).unwrap_err().code(),
            "missing"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
