//! Conditioning images as the official `generate.py:376` reads them:
//! `Image.open(path).convert("RGB")` (Pillow). PNGs are decoded to their stored samples and
//! converted with Pillow's rules, so the RGB bytes are Pillow's bit for bit:
//! * L (8-bit gray) and 1/2/4-bit gray (scaled ×255/(2ᵈ−1) while unpacking) → replicated;
//! * 16-bit gray (mode `I;16`) → **clipped** to 255 (not scaled);
//! * 16-bit RGB / RGBA / gray+alpha → the high byte (`v >> 8`);
//! * RGBA, LA → alpha dropped (no compositing); tRNS ignored;
//! * palette → palette colours (indices past the PLTE are black).
//!
//! Other formats (JPEG) go through the `image` crate; its JPEG decoder is not libjpeg, so a
//! few pixels may differ by a level from Pillow's. Images above Pillow's decompression-bomb
//! limit are refused, as Pillow refuses them.
use std::path::Path;

use image::{Rgb, RgbImage};
use mlx_rs::Array;

use crate::error::{Error, Result};

/// Pillow raises `DecompressionBombError` above `2 · Image.MAX_IMAGE_PIXELS` pixels.
pub const MAX_PIXELS: u64 = 2 * 89_478_485;

/// Open an image file as Pillow's `Image.open(path).convert("RGB")`; anything unreadable
/// is a clear [`Error::Input`], a missing file [`Error::Missing`].
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    if !path.is_file() {
        return Err(Error::Missing(path.to_path_buf()));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode_rgb(&bytes).map_err(|e| match e {
        Error::Input(m) => Error::Input(format!("cannot read image {}: {m}", path.display())),
        other => other,
    })
}

/// [`load_rgb`] on file contents.
pub fn decode_rgb(bytes: &[u8]) -> Result<RgbImage> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Ok(PngSamples::decode(bytes)?.to_rgb());
    }
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::Input(e.to_string()))?;
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| Error::Input(e.to_string()))?;
    check_pixels(w, h)?;
    let img = image::load_from_memory(bytes).map_err(|e| Error::Input(e.to_string()))?;
    Ok(img.to_rgb8())
}

fn check_pixels(w: u32, h: u32) -> Result<()> {
    if w == 0 || h == 0 {
        return Err(Error::Input(format!("the image is {w}×{h} pixels")));
    }
    if w as u64 * h as u64 > MAX_PIXELS {
        return Err(Error::Input(format!(
            "{w}×{h} pixels is more than the {MAX_PIXELS} the official loader (Pillow) accepts"
        )));
    }
    Ok(())
}

/// PNG colour types, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PngColor {
    Gray,
    GrayAlpha,
    Rgb,
    Rgba,
    Palette,
}

/// A PNG's samples as Pillow holds them before `convert("RGB")`: unpacked row-major,
/// `channels()` per pixel; low-bit gray already scaled to 8 bits (Pillow's `L;1/2/4`
/// unpackers), palette images as indices plus their `palette`.
#[derive(Debug, Clone)]
pub struct PngSamples {
    pub width: u32,
    pub height: u32,
    pub color: PngColor,
    /// 8 or 16 (16 only for 16-bit PNGs; low-bit images are unpacked to 8).
    pub bits: u8,
    pub samples: Vec<u16>,
    pub palette: Vec<[u8; 3]>,
}

impl PngSamples {
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let bad = |e: png::DecodingError| Error::Input(format!("invalid PNG: {e}"));
        let mut dec = png::Decoder::new(std::io::Cursor::new(bytes));
        dec.set_transformations(png::Transformations::IDENTITY);
        let info = dec.read_header_info().map_err(bad)?;
        check_pixels(info.width, info.height)?;
        let mut reader = dec.read_info().map_err(bad)?;
        let len = reader
            .output_buffer_size()
            .ok_or_else(|| Error::Input("the PNG is too large".into()))?;
        let mut buf = vec![0u8; len];
        let out = reader.next_frame(&mut buf).map_err(bad)?;
        let info = reader.info();
        let (w, h) = (out.width as usize, out.height as usize);
        let depth = out.bit_depth as u8;
        let (color, channels) = match out.color_type {
            png::ColorType::Grayscale => (PngColor::Gray, 1),
            png::ColorType::GrayscaleAlpha => (PngColor::GrayAlpha, 2),
            png::ColorType::Rgb => (PngColor::Rgb, 3),
            png::ColorType::Rgba => (PngColor::Rgba, 4),
            png::ColorType::Indexed => (PngColor::Palette, 1),
        };
        let palette: Vec<[u8; 3]> = match (&info.palette, color) {
            (Some(p), _) => p.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect(),
            (None, PngColor::Palette) => {
                return Err(Error::Input("palette PNG without a palette".into()));
            }
            (None, _) => Vec::new(),
        };
        // Pillow's unpackers: gray L;1/L;2/L;4 scale to 8 bits, palette P;1/2/4 do not.
        let scale: u16 = match (color, depth) {
            (PngColor::Gray, 1) => 255,
            (PngColor::Gray, 2) => 0x55,
            (PngColor::Gray, 4) => 0x11,
            _ => 1,
        };
        let mut samples = Vec::with_capacity(w * h * channels);
        for row in buf.chunks_exact(out.line_size).take(h) {
            let n = w * channels;
            match depth {
                16 => samples.extend(
                    row.chunks_exact(2)
                        .take(n)
                        .map(|b| u16::from_be_bytes([b[0], b[1]])),
                ),
                8 => samples.extend(row[..n].iter().map(|&b| b as u16)),
                d => {
                    let d = d as usize;
                    let mask = (1u16 << d) - 1;
                    samples.extend((0..n).map(|i| {
                        let bit = i * d;
                        let byte = row[bit / 8] as u16;
                        ((byte >> (8 - d - bit % 8)) & mask) * scale
                    }));
                }
            }
        }
        Ok(Self {
            width: w as u32,
            height: h as u32,
            color,
            bits: if depth == 16 { 16 } else { 8 },
            samples,
            palette,
        })
    }

    pub fn channels(&self) -> usize {
        match self.color {
            PngColor::Gray | PngColor::Palette => 1,
            PngColor::GrayAlpha => 2,
            PngColor::Rgb => 3,
            PngColor::Rgba => 4,
        }
    }

    /// Pillow's `convert("RGB")` of these samples (rules in the module docs).
    pub fn to_rgb(&self) -> RgbImage {
        let ch = self.channels();
        let wide = self.bits == 16;
        // 16-bit gray is Pillow's `I;16`, clipped; every other 16-bit sample keeps its high byte.
        let byte = |v: u16| if wide { (v >> 8) as u8 } else { v as u8 };
        let gray = |v: u16| if wide { v.min(255) as u8 } else { v as u8 };
        RgbImage::from_fn(self.width, self.height, |x, y| {
            let i = (y as usize * self.width as usize + x as usize) * ch;
            let s = &self.samples[i..i + ch];
            Rgb(match self.color {
                PngColor::Gray => [gray(s[0]); 3],
                PngColor::GrayAlpha => [byte(s[0]); 3],
                PngColor::Rgb | PngColor::Rgba => [byte(s[0]), byte(s[1]), byte(s[2])],
                PngColor::Palette => self
                    .palette
                    .get(s[0] as usize)
                    .copied()
                    .unwrap_or([0, 0, 0]),
            })
        })
    }
}

/// torchvision `TF.to_tensor(img).sub_(0.5).div_(0.5)`: RGB8 `[H, W, 3]` → float32
/// `[3, H, W]` planes, `(u/255 − 0.5)/0.5` in float32 exactly as torch computes it.
pub fn to_planes(img: &RgbImage) -> Vec<f32> {
    let (w, h) = img.dimensions();
    let n = (w * h) as usize;
    let mut out = vec![0f32; 3 * n];
    for (i, p) in img.pixels().enumerate() {
        for c in 0..3 {
            out[c * n + i] = (p.0[c] as f32 / 255.0 - 0.5) / 0.5;
        }
    }
    out
}

/// [`to_planes`] as the official `[3, 1, H, W]` tensor (one frame).
pub fn to_tensor(img: &RgbImage) -> Result<Array> {
    let (w, h) = img.dimensions();
    Ok(Array::from_slice(
        &to_planes(img),
        &[3, 1, h as i32, w as i32],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32, color: png::ColorType, depth: png::BitDepth, data: &[u8]) -> Vec<u8> {
        png_with(w, h, color, depth, data, |_| {})
    }

    fn png_with(
        w: u32,
        h: u32,
        color: png::ColorType,
        depth: png::BitDepth,
        data: &[u8],
        extra: impl FnOnce(&mut png::Encoder<&mut Vec<u8>>),
    ) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut e = png::Encoder::new(&mut out, w, h);
            e.set_color(color);
            e.set_depth(depth);
            extra(&mut e);
            let mut wr = e.write_header().unwrap();
            wr.write_image_data(data).unwrap();
        }
        out
    }

    fn rgb(bytes: &[u8]) -> Vec<[u8; 3]> {
        decode_rgb(bytes).unwrap().pixels().map(|p| p.0).collect()
    }

    #[test]
    fn sixteen_bit_gray_clips_and_sixteen_bit_rgb_keeps_the_high_byte() {
        use png::{BitDepth::Sixteen, ColorType::*};
        // Gray 16: 0x0080 → 128, 0x00FF → 255, 0x0100 → 255 (clipped), 0xFFFF → 255.
        let g = png(
            4,
            1,
            Grayscale,
            Sixteen,
            &[0, 0x80, 0, 0xFF, 1, 0, 0xFF, 0xFF],
        );
        assert_eq!(rgb(&g), [[128; 3], [255; 3], [255; 3], [255; 3]]);
        // RGB 16: high byte, no rounding (0x12FF → 0x12).
        let c = png(1, 1, Rgb, Sixteen, &[0x12, 0xFF, 0x80, 0x00, 0x00, 0x7F]);
        assert_eq!(rgb(&c), [[0x12, 0x80, 0x00]]);
        // Gray+alpha 16 and RGBA 16: high byte, alpha dropped.
        let la = png(1, 1, GrayscaleAlpha, Sixteen, &[0xAB, 0xCD, 0, 0]);
        assert_eq!(rgb(&la), [[0xAB; 3]]);
        let rgba = png(1, 1, Rgba, Sixteen, &[1, 2, 3, 4, 5, 6, 0, 0]);
        assert_eq!(rgb(&rgba), [[1, 3, 5]]);
    }

    #[test]
    fn alpha_and_transparency_are_dropped_not_composited() {
        use png::{BitDepth::Eight, ColorType::*};
        let rgba = png(2, 1, Rgba, Eight, &[10, 20, 30, 0, 40, 50, 60, 128]);
        assert_eq!(rgb(&rgba), [[10, 20, 30], [40, 50, 60]]);
        let la = png(1, 1, GrayscaleAlpha, Eight, &[77, 0]);
        assert_eq!(rgb(&la), [[77; 3]]);
        // Palette with tRNS on index 0: the palette colour, not black / white; an index
        // past the palette is black.
        let p = png_with(3, 1, Indexed, Eight, &[0, 1, 5], |e| {
            e.set_palette(vec![9, 8, 7, 1, 2, 3]);
            e.set_trns(vec![0]);
        });
        assert_eq!(rgb(&p), [[9, 8, 7], [1, 2, 3], [0, 0, 0]]);
    }

    #[test]
    fn low_bit_depths_unpack_as_pillow_does() {
        use png::ColorType::*;
        // 2-bit gray 0..3 → ×0x55; 1-bit → 0/255; 4-bit palette indices are not scaled.
        let g2 = png(4, 1, Grayscale, png::BitDepth::Two, &[0b00_01_10_11]);
        assert_eq!(rgb(&g2), [[0; 3], [0x55; 3], [0xAA; 3], [0xFF; 3]]);
        let g1 = png(3, 1, Grayscale, png::BitDepth::One, &[0b101_00000]);
        assert_eq!(rgb(&g1), [[255; 3], [0; 3], [255; 3]]);
        let p4 = png_with(2, 1, Indexed, png::BitDepth::Four, &[0x10], |e| {
            e.set_palette(vec![1, 1, 1, 200, 100, 50]);
        });
        assert_eq!(rgb(&p4), [[200, 100, 50], [1, 1, 1]]);
        let l8 = png(1, 1, Grayscale, png::BitDepth::Eight, &[42]);
        assert_eq!(rgb(&l8), [[42; 3]]);
    }

    #[test]
    fn to_tensor_is_torchvisions_float32_expression() {
        let img = RgbImage::from_fn(256, 1, |x, _| Rgb([x as u8, 0, 255]));
        let v = to_planes(&img);
        for (u, &x) in v[..256].iter().enumerate() {
            assert_eq!(x, (u as f32 / 255.0 - 0.5) / 0.5);
        }
        assert_eq!(v[256], -1.0);
        assert_eq!(v[2 * 256], 1.0);
        assert_eq!(to_tensor(&img).unwrap().shape(), &[3, 1, 1, 256]);
    }

    #[test]
    fn unreadable_images_are_clear_errors() {
        let dir = std::env::temp_dir().join(format!("wan-img-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bad = dir.join("bad.png");
        std::fs::write(&bad, b"not a png").unwrap();
        let e = load_rgb(&bad).unwrap_err();
        assert_eq!(e.code(), "input", "{e}");
        assert!(e.to_string().contains("cannot read image"), "{e}");
        // A truncated PNG: an error, never a panic.
        let good = png(8, 8, png::ColorType::Rgb, png::BitDepth::Eight, &[7; 192]);
        let cut = dir.join("cut.png");
        std::fs::write(&cut, &good[..good.len() - 20]).unwrap();
        assert_eq!(load_rgb(&cut).unwrap_err().code(), "input");
        assert_eq!(
            load_rgb(&dir.join("nope.png")).unwrap_err().code(),
            "missing"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn decompression_bombs_are_refused_from_the_header() {
        // A valid header claiming 20000×20000 pixels (more than Pillow accepts).
        let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = b"IHDR".to_vec();
        ihdr.extend(20000u32.to_be_bytes());
        ihdr.extend(20000u32.to_be_bytes());
        ihdr.extend([8, 2, 0, 0, 0]);
        b.extend(13u32.to_be_bytes());
        b.extend(&ihdr);
        b.extend(crc32(&ihdr).to_be_bytes());
        let e = decode_rgb(&b).unwrap_err();
        assert!(e.to_string().contains("Pillow"), "{e}");
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in data {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
}
