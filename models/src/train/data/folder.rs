//! A LoRA dataset folder in the community layout (musubi-tuner / DiffSynth / ai-toolkit):
//! media files with a caption in a same-stem `.txt` beside each (`fox.mp4` + `fox.txt`).
//!
//! * videos (`.mp4 .mov .webm .mkv`) are decoded by `ffmpeg` (`video::ffmpeg`; no codec code in
//!   this crate), scaled to cover the training size and centre-cropped by ffmpeg's own
//!   filters, and the first `F` frames are kept (`F = 4n+1`, what the VAE encodes);
//! * images (`.png .jpg .jpeg` through the `image` crate, `.webp` through ffmpeg, since the
//!   crate is built without its webp decoder) become 1-frame clips, resized to cover and
//!   centre-cropped the same way.
//!
//! Everything wrong with a folder (missing or empty caption, unreadable file, clip too
//! short, nothing usable) is collected and reported at once, naming the files. Hidden
//! entries (`.wan_cache/`, `.DS_Store`) are skipped. Pixels come out as [`Frames`] (RGB8)
//! and [`clip_tensor`] turns them into the VAE's `[3, F, H, W]` in [−1, 1].
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use image::imageops::FilterType;
use mlx_rs::Array;

use crate::error::{Error, Result};
use crate::video::Frames;

pub const VIDEO_EXTS: &[&str] = &["mp4", "mov", "webm", "mkv"];
pub const IMAGE_EXTS: &[&str] = &["png", "jpg", "jpeg", "webp"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Video,
    Image,
}

/// One training example: a media file and its caption.
#[derive(Debug, Clone)]
pub struct Item {
    pub media: PathBuf,
    pub kind: MediaKind,
    pub caption: String,
}

impl Item {
    /// The file name, for messages and the summary.
    pub fn name(&self) -> String {
        self.media
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// Training clip geometry: `width × height` pixels, `frames` (4n+1) per video.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClipSpec {
    pub width: u32,
    pub height: u32,
    pub frames: u32,
}

impl ClipSpec {
    pub fn validate(&self) -> Result<()> {
        if self.width == 0 || self.height == 0 || self.width > 8192 || self.height > 8192 {
            return Err(Error::Input(format!(
                "training size {}x{} is out of range",
                self.width, self.height
            )));
        }
        if self.frames == 0 || !(self.frames - 1).is_multiple_of(4) || self.frames > 1025 {
            return Err(Error::Input(format!(
                "--frames must be 4n+1 (1, 5, 9, …, 81), got {}",
                self.frames
            )));
        }
        Ok(())
    }

    /// Frames a clip of `kind` gets: images are single frames.
    pub fn frames_for(&self, kind: MediaKind) -> u32 {
        match kind {
            MediaKind::Video => self.frames,
            MediaKind::Image => 1,
        }
    }
}

/// A scanned dataset folder: the usable items (sorted by file name) and every problem.
#[derive(Debug, Clone)]
pub struct DatasetFolder {
    pub root: PathBuf,
    pub items: Vec<Item>,
    /// Problems found while scanning (missing/empty captions); see [`Self::check`].
    pub problems: Vec<String>,
}

fn media_kind(path: &Path) -> Option<MediaKind> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    if VIDEO_EXTS.contains(&ext.as_str()) {
        Some(MediaKind::Video)
    } else if IMAGE_EXTS.contains(&ext.as_str()) {
        Some(MediaKind::Image)
    } else {
        None
    }
}

impl DatasetFolder {
    /// List `dir` (not recursive): media files with their captions. Only an unreadable
    /// folder is an immediate error; per-file problems are collected in `problems`.
    pub fn scan(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::Missing(dir.to_path_buf()));
        }
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                !p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        paths.sort();
        let (mut items, mut problems) = (Vec::new(), Vec::new());
        for media in paths {
            let Some(kind) = media_kind(&media) else {
                continue;
            };
            if !media.is_file() {
                continue;
            }
            let name = media
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let txt = media.with_extension("txt");
            match std::fs::read(&txt) {
                Err(_) if !txt.exists() => problems.push(format!(
                    "{name}: no caption (expected {})",
                    txt.file_name().unwrap_or_default().to_string_lossy()
                )),
                Err(e) => problems.push(format!("{name}: cannot read its caption: {e}")),
                Ok(bytes) => match String::from_utf8(bytes) {
                    Err(_) => problems.push(format!("{name}: caption is not UTF-8 text")),
                    Ok(s) if s.trim().is_empty() => {
                        problems.push(format!("{name}: caption is empty"))
                    }
                    Ok(s) => items.push(Item {
                        media,
                        kind,
                        caption: s.trim().to_string(),
                    }),
                },
            }
        }
        Ok(Self {
            root: dir.to_path_buf(),
            items,
            problems,
        })
    }

    /// `Err` listing every problem in `self.problems` plus `more`, or for an empty folder.
    pub fn check(&self, more: &[String]) -> Result<()> {
        let mut all: Vec<String> = self.problems.iter().chain(more).cloned().collect();
        if self.items.is_empty() && all.is_empty() {
            all.push(format!(
                "no training media (videos: {}; images: {}; each with a same-stem .txt caption)",
                VIDEO_EXTS.join(" "),
                IMAGE_EXTS.join(" ")
            ));
        }
        if all.is_empty() {
            return Ok(());
        }
        Err(Error::Input(format!(
            "dataset {}: {} problem(s):\n  {}",
            self.root.display(),
            all.len(),
            all.join("\n  ")
        )))
    }
}

/// Decode one item at the training geometry (`Err` names the file).
pub fn load_clip(item: &Item, spec: &ClipSpec) -> Result<Frames> {
    let ext = item
        .media
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    let out = match (item.kind, ext.as_deref()) {
        (MediaKind::Image, Some("webp")) | (MediaKind::Video, _) => {
            ffmpeg_frames(&item.media, spec, spec.frames_for(item.kind))
        }
        (MediaKind::Image, _) => image_frame(&item.media, spec),
    };
    out.map_err(|e| Error::Input(format!("{}: {e}", item.name())))
}

/// Resize to cover `spec` (Lanczos) and centre-crop.
fn image_frame(path: &Path, spec: &ClipSpec) -> std::result::Result<Frames, String> {
    let img = image::ImageReader::open(path)
        .map_err(|e| format!("cannot open: {e}"))?
        .with_guessed_format()
        .map_err(|e| format!("cannot open: {e}"))?
        .decode()
        .map_err(|e| format!("unreadable image: {e}"))?
        .to_rgb8();
    let (iw, ih) = img.dimensions();
    let (w, h) = (spec.width, spec.height);
    let s = (w as f64 / iw as f64).max(h as f64 / ih as f64);
    let (rw, rh) = (
        ((iw as f64 * s).round() as u32).max(w),
        ((ih as f64 * s).round() as u32).max(h),
    );
    let resized = if (rw, rh) == (iw, ih) {
        img
    } else {
        image::imageops::resize(&img, rw, rh, FilterType::Lanczos3)
    };
    let crop = image::imageops::crop_imm(&resized, (rw - w) / 2, (rh - h) / 2, w, h).to_image();
    Ok(Frames {
        width: w,
        height: h,
        frames: vec![crop.into_raw()],
    })
}

/// The first `n` frames through ffmpeg's scale-to-cover + centre crop, as raw RGB24.
fn ffmpeg_frames(path: &Path, spec: &ClipSpec, n: u32) -> std::result::Result<Frames, String> {
    let (w, h) = (spec.width, spec.height);
    let bin = crate::video::ffmpeg::find()
        .map_err(|e| e.to_string())?
        .path;
    // `file:` keeps names with ':' or a leading '-' from being read as protocols/options.
    let mut input = std::ffi::OsString::from("file:");
    input.push(path.as_os_str());
    let mut child = Command::new(&bin)
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-i"])
        .arg(&input)
        .args([
            "-vf",
            &format!(
                "scale={w}:{h}:force_original_aspect_ratio=increase:flags=bicubic,crop={w}:{h}"
            ),
        ])
        .args(["-frames:v", &n.to_string(), "-an", "-f", "rawvideo"])
        .args(["-pix_fmt", "rgb24", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run ffmpeg (`{}`): {e}", bin.display()))?;
    // Read stderr on a thread so a chatty ffmpeg never blocks on a full pipe.
    let stderr = child.stderr.take();
    let log = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut e) = stderr {
            let _ = e.read_to_string(&mut s);
        }
        s
    });
    let mut bytes = Vec::new();
    if let Some(mut o) = child.stdout.take() {
        o.read_to_end(&mut bytes)
            .map_err(|e| format!("reading ffmpeg output: {e}"))?;
    }
    let status = child.wait().map_err(|e| format!("ffmpeg: {e}"))?;
    let log = log.join().unwrap_or_default();
    if !status.success() {
        let last = log.lines().last().unwrap_or("").trim().to_string();
        return Err(format!("unreadable ({last})"));
    }
    let per = (w * h * 3) as usize;
    let got = bytes.len() / per;
    if got < n as usize {
        return Err(if got == 0 {
            "no frames could be decoded".into()
        } else {
            format!("clip too short: {got} frame(s), need {n}")
        });
    }
    bytes.truncate(per * n as usize);
    Ok(Frames {
        width: w,
        height: h,
        frames: bytes.chunks(per).map(<[u8]>::to_vec).collect(),
    })
}

/// RGB8 frames → `[3, F, H, W]` float32 in [−1, 1] (the VAE's input).
pub fn clip_tensor(frames: &Frames) -> Result<Array> {
    let (w, h, f) = (
        frames.width as i32,
        frames.height as i32,
        frames.frames.len() as i32,
    );
    let per = (w * h * 3) as usize;
    if f == 0 || frames.frames.iter().any(|fr| fr.len() != per) {
        return Err(Error::Input(format!(
            "clip frames do not match {w}x{h} RGB"
        )));
    }
    let data: Vec<f32> = frames
        .frames
        .iter()
        .flatten()
        .map(|&b| b as f32 / 127.5 - 1.0)
        .collect();
    let fhwc = Array::from_slice(&data, &[f, h, w, 3]);
    Ok(fhwc.transpose_axes(&[3, 0, 1, 2])?) // [3, F, H, W]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_checks_frames_and_size() {
        let ok = ClipSpec {
            width: 64,
            height: 32,
            frames: 5,
        };
        assert!(ok.validate().is_ok());
        assert_eq!(ok.frames_for(MediaKind::Image), 1);
        assert!(ClipSpec { frames: 4, ..ok }.validate().is_err());
        assert!(ClipSpec { width: 0, ..ok }.validate().is_err());
    }

    #[test]
    fn scan_pairs_captions_and_collects_every_problem() {
        let dir = std::env::temp_dir().join(format!("wan-scan-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join(".wan_cache")).unwrap();
        let put = |name: &str, text: &str| std::fs::write(dir.join(name), text).unwrap();
        put("b clip.MP4", "x");
        put("b clip.txt", "  a fox \n");
        put("a.png", "x");
        put("a.txt", "a still");
        put("empty.jpg", "x");
        put("empty.txt", " \n");
        put("lonely.webm", "x");
        put(".hidden.mp4", "x");
        put("readme.md", "not media");
        let ds = DatasetFolder::scan(&dir).unwrap();
        let names: Vec<String> = ds.items.iter().map(Item::name).collect();
        assert_eq!(names, ["a.png", "b clip.MP4"]);
        assert_eq!(ds.items[1].caption, "a fox");
        assert_eq!(ds.items[1].kind, MediaKind::Video);
        let err = ds
            .check(&["c.mp4: unreadable".into()])
            .unwrap_err()
            .to_string();
        for want in [
            "3 problem(s)",
            "empty.jpg: caption is empty",
            "lonely.webm: no caption",
            "c.mp4",
        ] {
            assert!(err.contains(want), "`{want}` not in {err}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            DatasetFolder::scan(&dir).is_err(),
            "a missing folder is an error"
        );
    }

    #[test]
    fn clip_tensor_is_channels_first_in_unit_range() {
        // 2 frames of 1×2 px: frame 0 black/white, frame 1 red/blue.
        let f = Frames {
            width: 2,
            height: 1,
            frames: vec![vec![0, 0, 0, 255, 255, 255], vec![255, 0, 0, 0, 0, 255]],
        };
        let t = clip_tensor(&f).unwrap();
        assert_eq!(t.shape(), &[3, 2, 1, 2]);
        let v: Vec<f32> = t.contiguous().unwrap().as_slice().to_vec();
        // R channel: f0 (−1, 1), f1 (1, −1); B channel: f0 (−1, 1), f1 (−1, 1).
        assert_eq!(&v[0..4], &[-1.0, 1.0, 1.0, -1.0]);
        assert_eq!(&v[8..12], &[-1.0, 1.0, -1.0, 1.0]);
    }
}
