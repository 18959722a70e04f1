//! Minimal mp4 writer for training samples: RGB frames piped to the `ffmpeg` binary
//! (H.264, yuv420p), nearest-neighbour upscaled so tiny clips are viewable. Kept isolated
//! on purpose: the project's `video/` module (generation helper) supersedes it once it
//! lands on `main`; this file then reduces to a call into it.
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

/// Write RGB `[3, F, H, W]` in [0, 1] as an mp4 at `fps`, each pixel blown up `scale`×.
pub fn write_mp4(
    path: &Path,
    rgb: &[f32],
    frames: usize,
    h: usize,
    w: usize,
    fps: u32,
    scale: usize,
) -> Result<()> {
    let n = frames * h * w;
    if rgb.len() != 3 * n || n == 0 {
        return Err(Error::Input(format!(
            "write_mp4: {} values for 3×{frames}×{h}×{w}",
            rgb.len()
        )));
    }
    // Interleave to rgb24 frames [F, H, W, 3].
    let mut bytes = Vec::with_capacity(3 * n);
    for i in 0..n {
        for c in 0..3 {
            bytes.push((rgb[c * n + i].clamp(0.0, 1.0) * 255.0).round() as u8);
        }
    }
    let (ow, oh) = (w * scale, h * scale);
    let mut child = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24"])
        .args(["-s", &format!("{w}x{h}"), "-r", &fps.to_string(), "-i", "-"])
        .args(["-vf", &format!("scale={}:{}:flags=neighbor", ow + ow % 2, oh + oh % 2)])
        .args(["-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "12"])
        .arg(path)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            Error::External(format!(
                "cannot run ffmpeg ({e}); install it (apt install ffmpeg / brew install ffmpeg) to write mp4 samples"
            ))
        })?;
    let write = child
        .stdin
        .take()
        .map(|mut s| s.write_all(&bytes))
        .unwrap_or(Ok(()));
    let out = child
        .wait_with_output()
        .map_err(|e| Error::External(format!("ffmpeg: {e}")))?;
    if !out.status.success() || write.is_err() {
        return Err(Error::External(format!(
            "ffmpeg failed writing {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}
