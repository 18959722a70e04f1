//! The official size, resize and crop decisions for a conditioning image, with Python's
//! semantics (float64 in the official expression order, float floor division, `round`
//! half to even, floor crop offsets):
//! * ti2v-5B (`wan/textimage2video.py:461-477`, inline in `WanTI2V.i2v`):
//!   `best_output_size` (`wan/utils/utils.py:202-225`) for `max_area` in multiples of 32,
//!   Pillow LANCZOS resize by `max(ow/iw, oh/ih)`, centre crop, to tensor.
//! * i2v-A14B (`wan/image2video.py`, `WanI2V.generate`): the even latent grid under
//!   `max_area` with the image's aspect, torch bicubic `interpolate` of the [−1, 1] tensor
//!   (no crop, no clamp).
//!
//! Where the official code divides by zero (an extreme aspect ratio for the area: one axis
//! rounds down to 0) or would build an empty tensor, we refuse with a clear error instead.
use image::RgbImage;
use mlx_rs::Array;

use super::image::{to_planes, to_tensor};
use super::resize::{bicubic, lanczos};
use crate::config::{Task, TaskConfig};
use crate::error::{Error, Result};

/// Python's float floor division `a // b` (CPython `_float_div_mod`, numpy `npy_divmod`):
/// `fmod` first, so it can differ from `floor(a / b)` when `a / b` rounds up.
pub fn py_floordiv(a: f64, b: f64) -> f64 {
    let m = a % b;
    let mut div = (a - m) / b;
    if m != 0.0 && ((b < 0.0) != (m < 0.0)) {
        div -= 1.0;
    }
    if div == 0.0 {
        return (0.0f64).copysign(a / b);
    }
    let mut f = div.floor();
    if div - f > 0.5 {
        f += 1.0;
    }
    f
}

fn refused(iw: u32, ih: u32, max_area: u64, why: &str) -> Error {
    Error::Input(format!(
        "a {iw}×{ih} image cannot be fitted to the area {max_area} ({why}; the official code \
         fails here too): use a larger size or crop the image to a less extreme aspect ratio"
    ))
}

/// Official `best_output_size(w, h, dw, dh, expected_area)` → `(ow, oh)`: the multiple of
/// (dw, dh) under the area whose aspect deviates least from the image's (ties: height
/// first). Refuses the inputs for which the official code raises `ZeroDivisionError`.
pub fn best_output_size(
    w: u32,
    h: u32,
    dw: u32,
    dh: u32,
    expected_area: u64,
) -> Result<(u32, u32)> {
    let zero = |why: &str| Err(refused(w, h, expected_area, why));
    if w == 0 || h == 0 {
        return zero("an empty image");
    }
    let (area, dwf, dhf) = (expected_area as f64, dw as f64, dh as f64);
    let ratio = w as f64 / h as f64;
    // `** 0.5` is C `pow`, as Rust's `powf`.
    let ow = (area * ratio).powf(0.5);
    let oh = area / ow;
    // Width first.
    let ow1 = (py_floordiv(ow, dwf) * dwf) as u64;
    if ow1 == 0 {
        return zero("the width rounds down to 0");
    }
    let oh1 = (py_floordiv(area / ow1 as f64, dhf) * dhf) as u64;
    if oh1 == 0 {
        return zero("the height rounds down to 0");
    }
    let ratio1 = ow1 as f64 / oh1 as f64;
    // Height first.
    let oh2 = (py_floordiv(oh, dhf) * dhf) as u64;
    if oh2 == 0 {
        return zero("the height rounds down to 0");
    }
    let ow2 = (py_floordiv(area / oh2 as f64, dwf) * dwf) as u64;
    if ow2 == 0 {
        return zero("the width rounds down to 0");
    }
    let ratio2 = ow2 as f64 / oh2 as f64;
    if ow1 * oh1 > expected_area || ow2 * oh2 > expected_area {
        return zero("no size fits the area");
    }
    let dev = |r: f64| (ratio / r).max(r / ratio);
    let (ow, oh) = if dev(ratio1) < dev(ratio2) {
        (ow1, oh1)
    } else {
        (ow2, oh2)
    };
    let fit = |v: u64| u32::try_from(v).map_err(|_| refused(w, h, expected_area, "too large"));
    Ok((fit(ow)?, fit(oh)?))
}

/// The ti2v-5B decisions for one image: output size, LANCZOS target size, crop offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ti2vPlan {
    /// (ow, oh): the video size.
    pub size: (u32, u32),
    /// (round(iw·scale), round(ih·scale)), scale = max(ow/iw, oh/ih).
    pub resize: (u32, u32),
    /// (x1, y1) = ((rw − ow) // 2, (rh − oh) // 2).
    pub crop: (i64, i64),
}

impl Ti2vPlan {
    /// `multiple` = patch · vae_stride = 32 for ti2v-5B.
    pub fn new(iw: u32, ih: u32, max_area: u64, multiple: u32) -> Result<Self> {
        let (ow, oh) = best_output_size(iw, ih, multiple, multiple, max_area)?;
        let scale = (ow as f64 / iw as f64).max(oh as f64 / ih as f64);
        // Python `round` on the float64 product: half to even.
        let rw = (iw as f64 * scale).round_ties_even();
        let rh = (ih as f64 * scale).round_ties_even();
        if !(1.0..=u32::MAX as f64).contains(&rw) || !(1.0..=u32::MAX as f64).contains(&rh) {
            return Err(refused(iw, ih, max_area, "the resized image is empty"));
        }
        let (rw, rh) = (rw as u32, rh as u32);
        let x1 = (rw as i64 - ow as i64).div_euclid(2);
        let y1 = (rh as i64 - oh as i64).div_euclid(2);
        Ok(Self {
            size: (ow, oh),
            resize: (rw, rh),
            crop: (x1, y1),
        })
    }

    /// Pillow's `img.resize(self.resize, LANCZOS)` (a copy at the same size).
    pub fn resize(&self, img: &RgbImage) -> RgbImage {
        lanczos(img, self.resize.0, self.resize.1)
    }

    /// Pillow's `img.crop((x1, y1, x1 + ow, y1 + oh))` (outside the image: black).
    pub fn crop(&self, resized: &RgbImage) -> RgbImage {
        let (x1, y1) = self.crop;
        let (rw, rh) = resized.dimensions();
        RgbImage::from_fn(self.size.0, self.size.1, |x, y| {
            let (sx, sy) = (x as i64 + x1, y as i64 + y1);
            if (0..rw as i64).contains(&sx) && (0..rh as i64).contains(&sy) {
                *resized.get_pixel(sx as u32, sy as u32)
            } else {
                image::Rgb([0, 0, 0])
            }
        })
    }

    /// Resize + crop: the uint8 image the official code turns into a tensor.
    pub fn apply(&self, img: &RgbImage) -> RgbImage {
        self.crop(&self.resize(img))
    }
}

/// ti2v-5B: the official `[3, 1, oh, ow]` float32 tensor for `img` and `max_area`.
pub fn ti2v_image(img: &RgbImage, max_area: u64, multiple: u32) -> Result<(Ti2vPlan, Array)> {
    let (iw, ih) = img.dimensions();
    let plan = Ti2vPlan::new(iw, ih, max_area, multiple)?;
    Ok((plan, to_tensor(&plan.apply(img))?))
}

/// i2v-A14B output size (W, H) for an `iw × ih` image: `lat = round(sqrt(max_area·aspect)
/// // stride // patch · patch)` per axis (numpy float64 floor divisions), size = lat·stride.
pub fn i2v_a14b_size(
    iw: u32,
    ih: u32,
    max_area: u64,
    stride: u32,
    patch: u32,
) -> Result<(u32, u32)> {
    if iw == 0 || ih == 0 {
        return Err(refused(iw, ih, max_area, "an empty image"));
    }
    let aspect = ih as f64 / iw as f64;
    let (s, p, area) = (stride as f64, patch as f64, max_area as f64);
    let lat = |v: f64| py_floordiv(py_floordiv(v.sqrt(), s), p) * p;
    let lat_h = lat(area * aspect).round_ties_even();
    let lat_w = lat(area / aspect).round_ties_even();
    if lat_h < 1.0 || lat_w < 1.0 {
        return Err(refused(
            iw,
            ih,
            max_area,
            "one side of the latent rounds down to 0",
        ));
    }
    let fit =
        |v: f64| u32::try_from((v * s) as u64).map_err(|_| refused(iw, ih, max_area, "too large"));
    Ok((fit(lat_w)?, fit(lat_h)?))
}

/// i2v-A14B: the bicubic resize `[3, 1, h, w]` of the image's [−1, 1] tensor (the first
/// frame the VAE encodes; values may overshoot ±1, as officially).
pub fn i2v_a14b_image(img: &RgbImage, w: u32, h: u32) -> Result<Array> {
    let (iw, ih) = img.dimensions();
    let resized = bicubic(
        &to_planes(img),
        3,
        (ih as usize, iw as usize),
        (h as usize, w as usize),
    );
    Ok(Array::from_slice(&resized, &[3, 1, h as i32, w as i32]))
}

/// The video size (W, H) a run of `cfg`'s task with an `image` (W, H) and the requested
/// `size` (only its area counts) will produce; the check the CLI and the app make before
/// loading any model.
pub fn conditioned_size(
    cfg: &TaskConfig,
    image: (u32, u32),
    size: (i32, i32),
) -> Result<(u32, u32)> {
    let (iw, ih) = image;
    let area = size.0.max(0) as u64 * size.1.max(0) as u64;
    match cfg.task {
        Task::Ti2v5B => {
            let (m, _) = cfg.size_multiple();
            Ok(Ti2vPlan::new(iw, ih, area, m as u32)?.size)
        }
        Task::I2vA14B => i2v_a14b_size(
            iw,
            ih,
            area,
            cfg.vae_stride[1] as u32,
            cfg.patch_size[1] as u32,
        ),
        Task::T2vA14B => Err(Error::Input(
            "t2v-A14B takes no image (use i2v-A14B or ti2v-5B)".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_division_follows_python() {
        assert_eq!(py_floordiv(7.5, 2.0), 3.0);
        assert_eq!(py_floordiv(-7.5, 2.0), -4.0);
        // floor(1 / 0.1) = 10, but 1 // 0.1 = 9 in Python (fmod-based).
        assert_eq!(py_floordiv(1.0, 0.1), 9.0);
        assert_eq!(py_floordiv(0.3, 1.0), 0.0);
    }

    /// Spec §11.4 and the fixture README's pitfalls.
    #[test]
    fn ti2v_sizes_follow_the_official_rules() {
        let a = 901_120;
        let size = |w, h, a| best_output_size(w, h, 32, 32, a).unwrap();
        assert_eq!(size(1920, 1080, a), (1248, 704));
        assert_eq!(size(1080, 1920, a), (704, 1248));
        assert_eq!(size(1024, 1024, a), (960, 928));
        assert_eq!(size(4032, 3024, a), (1088, 800));
        assert_eq!(size(1280, 704, a), (1280, 704));
        assert_eq!(size(17, 9, a), (1312, 672));
        // Ties go to the height-first candidate.
        assert_eq!(size(1, 1, 6144), (96, 64));
        // round(43 · 1.5) = round(64.5) = 64 (half to even), not 65.
        let tie = Ti2vPlan::new(64, 43, 6144, 32).unwrap();
        assert_eq!(
            (tie.size, tie.resize, tie.crop),
            ((96, 64), (96, 64), (0, 0))
        );
        // 1999 · (128/1999) = 127.99999999999999 → 128; odd excess: the extra pixel stays
        // at the bottom (floor).
        let big = Ti2vPlan::new(1999, 1111, 8192, 32).unwrap();
        assert_eq!(
            (big.size, big.resize, big.crop),
            ((128, 64), (128, 71), (0, 3))
        );
    }

    #[test]
    fn zero_division_inputs_are_refused_clearly() {
        for (w, h, a) in [
            (3000, 100, 6144),
            (100, 3000, 15360),
            (1, 1, 0),
            (0, 5, 6144),
        ] {
            let e = best_output_size(w, h, 32, 32, a).unwrap_err();
            assert_eq!(e.code(), "input");
            assert!(e.to_string().contains("official code fails"), "{e}");
        }
        assert!(best_output_size(3000, 100, 32, 32, 901_120).is_ok());
        let e = i2v_a14b_size(4000, 10, 3840, 8, 2).unwrap_err();
        assert!(e.to_string().contains("latent rounds down to 0"), "{e}");
    }

    #[test]
    fn i2v_a14b_sizes_follow_the_official_rules() {
        let s = |w, h, a| i2v_a14b_size(w, h, a, 8, 2).unwrap();
        assert_eq!(s(1920, 1080, 1280 * 720), (1280, 720));
        assert_eq!(s(1920, 1080, 832 * 480), (832, 464));
        assert_eq!(s(1024, 1024, 1280 * 720), (960, 960));
        // e2e_i2v_a14b: a 72×40 image and the area 80·48 → 80×32.
        assert_eq!(s(72, 40, 3840), (80, 32));
    }

    #[test]
    fn crop_outside_the_image_is_black() {
        let plan = Ti2vPlan {
            size: (4, 2),
            resize: (2, 2),
            crop: (-1, 0),
        };
        let img = RgbImage::from_pixel(2, 2, image::Rgb([9, 9, 9]));
        let c = plan.crop(&img);
        let row: Vec<u8> = (0..4).map(|x| c.get_pixel(x, 0).0[0]).collect();
        assert_eq!(row, [0, 9, 9, 0]);
    }
}
