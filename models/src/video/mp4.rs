//! Video output as the official `wan/utils/utils.py:save_video` writes it: frames in
//! [−1, 1] → `uint8 = trunc((clamp(x, −1, 1) + 1)/2 · 255)` → H.264 (`libx264`, yuv420p,
//! crf 10) at the task fps. Encoding goes through `ffmpeg-sidecar` driving the ffmpeg
//! binary that [`super::ffmpeg`] finds (bundled sidecar, `$WAN_FFMPEG`, PATH + Homebrew,
//! the app's download). Every file is written to a temporary name beside the target and
//! renamed on success.
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use ffmpeg_sidecar::command::FfmpegCommand;
use mlx_rs::{Array, Dtype};

use crate::error::{Error, Result};

/// RGB8 frames of one clip (row-major, `width·height·3` bytes each).
#[derive(Debug, Clone)]
pub struct Frames {
    pub width: u32,
    pub height: u32,
    pub frames: Vec<Vec<u8>>,
}

/// `[3, F, H, W]` float in [−1, 1] → RGB8 frames with the official rounding (truncation).
pub fn frames_from_video(video: &Array) -> Result<Frames> {
    let sh = video.shape();
    if sh.len() != 4 || sh[0] != 3 {
        return Err(Error::Input(format!(
            "video must be [3, F, H, W], got {sh:?}"
        )));
    }
    let (h, w) = (sh[2], sh[3]);
    // [3, F, H, W] → [F, H, W, 3]; trunc of a non-negative value = floor.
    let x = mlx_rs::ops::clip(video.as_dtype(Dtype::Float32)?, (-1.0f32, 1.0f32))?
        .add(Array::from_f32(1.0))?
        .divide(Array::from_f32(2.0))?
        .multiply(Array::from_f32(255.0))?
        .floor()?
        .as_dtype(Dtype::Uint8)?
        .transpose_axes(&[1, 2, 3, 0])?
        .contiguous()?;
    let bytes: Vec<u8> = x.as_slice::<u8>().to_vec();
    let per = (h * w * 3) as usize;
    Ok(Frames {
        width: w as u32,
        height: h as u32,
        frames: bytes.chunks(per).map(<[u8]>::to_vec).collect(),
    })
}

/// A sibling temporary path that keeps the extension (ffmpeg picks the muxer from it).
pub fn tmp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    path.with_file_name(format!(".{name}.partial-{}", std::process::id()))
}

/// Encode `frames` to an H.264 yuv420p mp4 at `fps`, atomically.
pub fn write_mp4(path: &Path, frames: &Frames, fps: u32) -> Result<()> {
    if frames.frames.is_empty() {
        return Err(Error::Input("no frames to write".into()));
    }
    if !frames.width.is_multiple_of(2) || !frames.height.is_multiple_of(2) {
        return Err(Error::Input(format!(
            "yuv420p needs even sizes, got {}x{}",
            frames.width, frames.height
        )));
    }
    let bin = super::ffmpeg::find()?.path;
    let tmp = tmp_sibling(path);
    let mut cmd = FfmpegCommand::new_with_path(&bin);
    cmd.hide_banner()
        .args(["-loglevel", "error"])
        .format("rawvideo")
        .pix_fmt("rgb24")
        .size(frames.width, frames.height)
        .rate(fps as f32)
        .input("-")
        .codec_video("libx264")
        .pix_fmt("yuv420p")
        .crf(10)
        .args(["-f", "mp4"])
        .overwrite()
        .output(tmp.as_os_str().to_string_lossy().as_ref());
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::External(format!("cannot run ffmpeg (`{}`): {e}", bin.display())))?;
    // Drain stdout/stderr on threads so a chatty ffmpeg never blocks on a full pipe.
    let stdout = child.take_stdout();
    let drain = std::thread::spawn(move || {
        if let Some(mut o) = stdout {
            let _ = std::io::copy(&mut o, &mut std::io::sink());
        }
    });
    let stderr = child.take_stderr();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut e) = stderr {
            let _ = e.read_to_string(&mut s);
        }
        s
    });
    let mut write_err = None;
    if let Some(mut stdin) = child.take_stdin() {
        for f in &frames.frames {
            if let Err(e) = stdin.write_all(f) {
                write_err = Some(e);
                break;
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| Error::External(format!("ffmpeg: {e}")))?;
    let log = reader.join().unwrap_or_default();
    let _ = drain.join();
    if !status.success() || write_err.is_some() {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::External(format!(
            "ffmpeg failed ({status}): {}",
            log.trim()
        )));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// Write every frame as `frame_00000.png` … into `dir` (created), each atomically.
pub fn write_png_frames(dir: &Path, frames: &Frames) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    for (i, f) in frames.frames.iter().enumerate() {
        let path = dir.join(format!("frame_{i:05}.png"));
        let tmp = tmp_sibling(&path);
        image::save_buffer_with_format(
            &tmp,
            f,
            frames.width,
            frames.height,
            image::ExtendedColorType::Rgb8,
            image::ImageFormat::Png,
        )
        .map_err(|e| Error::External(format!("writing {}: {e}", path.display())))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_uint8_rounding_truncates() {
        // [3, 1, 1, 4]: −1 → 0, 1 → 255, 0 → trunc(127.5) = 127, clamp beyond ±1.
        let v = Array::from_slice(
            &[
                -1.0f32, 1.0, 0.0, 2.0, -1.0, -1.0, -1.0, -1.0, 0.5, -3.0, 0.999, 0.0,
            ],
            &[3, 1, 1, 4],
        );
        let f = frames_from_video(&v).unwrap();
        assert_eq!((f.width, f.height, f.frames.len()), (4, 1, 1));
        // pixel-major RGB: pixel 0 = (−1, −1, 0.5) …
        assert_eq!(
            f.frames[0],
            vec![0, 0, 191, 255, 0, 0, 127, 0, 254, 255, 0, 127]
        );
    }

    #[test]
    fn bad_shapes_are_refused() {
        assert!(frames_from_video(&Array::from_slice(&[0.0f32; 4], &[4, 1, 1, 1])).is_err());
    }
}
