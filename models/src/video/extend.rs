//! Continuing and joining clips (the app's "Continue from last frame" and "Join"): the last
//! frame of an mp4, which becomes the image of an image→video job, and the concatenation of
//! clips into one mp4 without re-encoding. Both run the system ffmpeg (the same binary
//! [`super::write_mp4`] uses).
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use image::RgbImage;

use super::mp4::tmp_sibling;
use crate::error::{Error, Result};

/// `file:` keeps names with ':' or a leading '-' from being read as protocols or options.
fn file_arg(path: &Path) -> std::ffi::OsString {
    let mut s = std::ffi::OsString::from("file:");
    s.push(path.as_os_str());
    s
}

fn spawn_error(bin: &Path, e: std::io::Error) -> Error {
    Error::External(format!(
        "cannot run ffmpeg (`{}`): {e}; install it or set WAN_FFMPEG",
        bin.display()
    ))
}

/// The last decoded frame of `mp4` as RGB8. Only the final second is decoded (`-sseof`),
/// streamed as PPM frames of which just the latest is kept, so a long clip costs one frame
/// of memory.
pub fn last_frame(mp4: &Path) -> Result<RgbImage> {
    if !mp4.is_file() {
        return Err(Error::Missing(mp4.to_path_buf()));
    }
    let bin = super::ffmpeg::find()?.path;
    let mut child = Command::new(&bin)
        .args(["-hide_banner", "-loglevel", "error", "-nostdin"])
        .args(["-sseof", "-1", "-i"])
        .arg(file_arg(mp4))
        .args(["-an", "-f", "image2pipe", "-c:v", "ppm", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| spawn_error(&bin, e))?;
    let stderr = child.stderr.take();
    let log = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut e) = stderr {
            let _ = e.read_to_string(&mut s);
        }
        s
    });
    let frame = child
        .stdout
        .take()
        .map(|o| last_ppm(BufReader::new(o)))
        .transpose();
    let status = child
        .wait()
        .map_err(|e| Error::External(format!("ffmpeg: {e}")))?;
    let log = log.join().unwrap_or_default();
    if !status.success() {
        return Err(Error::External(format!(
            "ffmpeg cannot read {} ({status}): {}",
            mp4.display(),
            log.trim()
        )));
    }
    frame
        .map_err(|reason| Error::format(mp4, reason))?
        .flatten()
        .ok_or_else(|| Error::format(mp4, "no video frame could be decoded"))
}

/// The last of a stream of binary PPM (`P6`, maxval 255) images, or `None` if empty.
fn last_ppm(mut r: impl BufRead) -> std::result::Result<Option<RgbImage>, String> {
    let mut last: Option<RgbImage> = None;
    loop {
        if r.fill_buf().map_err(|e| e.to_string())?.is_empty() {
            return Ok(last);
        }
        let mut header = [0u32; 3];
        if read_token(&mut r)? != "P6" {
            return Err("ffmpeg sent something that is not a PPM frame".into());
        }
        for v in &mut header {
            *v = read_token(&mut r)?
                .parse()
                .map_err(|_| "bad PPM header".to_string())?;
        }
        let [w, h, maxval] = header;
        if maxval != 255 || w == 0 || h == 0 || w > 16384 || h > 16384 {
            return Err(format!("unexpected PPM frame {w}x{h} (maxval {maxval})"));
        }
        // Reuse the previous frame's buffer when the size repeats.
        let len = (w * h * 3) as usize;
        let mut buf = match last.take() {
            Some(img) if img.dimensions() == (w, h) => img.into_raw(),
            _ => vec![0; len],
        };
        r.read_exact(&mut buf)
            .map_err(|e| format!("truncated frame: {e}"))?;
        last = RgbImage::from_raw(w, h, buf);
    }
}

/// One whitespace-separated header token, and the single whitespace byte after it.
fn read_token(r: &mut impl BufRead) -> std::result::Result<String, String> {
    let mut tok = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        r.read_exact(&mut byte)
            .map_err(|e| format!("truncated PPM header: {e}"))?;
        if byte[0].is_ascii_whitespace() {
            if !tok.is_empty() {
                break;
            }
        } else if tok.len() < 16 {
            tok.push(byte[0]);
        } else {
            return Err("bad PPM header".into());
        }
    }
    Ok(String::from_utf8_lossy(&tok).into_owned())
}

/// A line of ffmpeg's concat list: `file '<path>'`, with `'` escaped as `'\''`.
fn concat_line(path: &Path) -> Result<String> {
    let s = path
        .to_str()
        .ok_or_else(|| Error::Input(format!("{}: not a UTF-8 path", path.display())))?;
    if s.contains(['\n', '\r']) {
        return Err(Error::Input(format!("{s:?}: a line break in a file name")));
    }
    Ok(format!("file '{}'\n", s.replace('\'', r"'\''")))
}

/// Write `inputs` one after the other into `out` (atomically) with ffmpeg's concat demuxer
/// and stream copy: no re-encode, so every input must share codec, size and frame rate
/// (clips continued from one another do). `out` must not be one of the inputs.
pub fn concat_mp4(inputs: &[PathBuf], out: &Path) -> Result<()> {
    if inputs.len() < 2 {
        return Err(Error::Input("joining needs at least two clips".into()));
    }
    for p in inputs {
        if !p.is_absolute() {
            return Err(Error::Input(format!(
                "{}: not an absolute path",
                p.display()
            )));
        }
        if !p.is_file() {
            return Err(Error::Missing(p.clone()));
        }
        if p == out {
            return Err(Error::Input(format!(
                "{}: the joined clip would overwrite one of its parts",
                out.display()
            )));
        }
    }
    let mut list = String::new();
    for p in inputs {
        list.push_str(&concat_line(p)?);
    }
    let tmp = tmp_sibling(out);
    let mut list_path = tmp.clone().into_os_string();
    list_path.push(".txt");
    let list_path = PathBuf::from(list_path);
    let cleanup = || {
        let _ = std::fs::remove_file(&list_path);
        let _ = std::fs::remove_file(&tmp);
    };
    std::fs::File::create(&list_path)
        .and_then(|mut f| f.write_all(list.as_bytes()))
        .map_err(|e| Error::io(&list_path, e))?;
    let bin = super::ffmpeg::find()?.path;
    let run = Command::new(&bin)
        // -xerror: a part that cannot be read fails the join instead of being skipped.
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-xerror",
            "-y",
        ])
        .args(["-f", "concat", "-safe", "0", "-i"])
        .arg(file_arg(&list_path))
        .args(["-c", "copy", "-movflags", "+faststart", "-f", "mp4"])
        .arg(file_arg(&tmp))
        .stdin(Stdio::null())
        .output();
    let output = match run {
        Ok(o) => o,
        Err(e) => {
            cleanup();
            return Err(spawn_error(&bin, e));
        }
    };
    if !output.status.success() {
        cleanup();
        return Err(Error::External(format!(
            "ffmpeg could not join the clips ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let _ = std::fs::remove_file(&list_path);
    std::fs::rename(&tmp, out).map_err(|e| {
        cleanup();
        Error::io(out, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::video::{Frames, write_mp4};

    /// A clip whose frame `i` is a flat grey of level `40·i + 20`.
    fn clip(path: &Path, n: u32) -> Frames {
        let (w, h) = (32u32, 16u32);
        let frames = Frames {
            width: w,
            height: h,
            frames: (0..n)
                .map(|i| vec![(40 * i + 20) as u8; (w * h * 3) as usize])
                .collect(),
        };
        write_mp4(path, &frames, 24).unwrap();
        frames
    }

    /// A fresh folder under the system temp dir, removed when dropped.
    struct Tmp(PathBuf);
    impl Tmp {
        fn new(tag: &str) -> Self {
            let d = std::env::temp_dir().join(format!("wan-extend-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            Self(d)
        }
        fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn mean(img: &RgbImage) -> f64 {
        img.as_raw().iter().map(|&v| v as f64).sum::<f64>() / img.as_raw().len() as f64
    }

    fn count_frames(path: &Path) -> usize {
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
            .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
            .arg(path)
            .output()
            .expect("ffprobe (installed by scripts/setup.sh)");
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }

    #[test]
    fn last_frame_is_the_final_frame_not_the_first() {
        let dir = Tmp::new("last");
        let p = dir.path().join("a.mp4");
        clip(&p, 5);
        let last = last_frame(&p).unwrap();
        assert_eq!(last.dimensions(), (32, 16));
        // Frame 4 is grey 180 (frame 0 is 20); H.264 at crf 10 keeps a flat field within ±3.
        assert!((mean(&last) - 180.0).abs() < 3.0, "mean {}", mean(&last));
        // Longer than the one second `-sseof` decodes: still the very last frame.
        let long = dir.path().join("long.mp4");
        clip(&long, 6 + 24);
        assert!((mean(&last_frame(&long).unwrap()) - ((40 * 29 + 20) % 256) as f64).abs() < 3.0);
    }

    #[test]
    fn last_frame_errors_are_clear() {
        let dir = Tmp::new("errors");
        let missing = dir.path().join("none.mp4");
        assert!(matches!(last_frame(&missing), Err(Error::Missing(_))));
        let junk = dir.path().join("junk.mp4");
        std::fs::write(&junk, b"not a video").unwrap();
        let e = last_frame(&junk).unwrap_err().to_string();
        assert!(e.contains("junk.mp4"), "{e}");
    }

    #[test]
    fn ppm_stream_keeps_the_last_frame() {
        let mut s = b"P6\n2 1\n255\n\x01\x02\x03\x04\x05\x06".to_vec();
        s.extend_from_slice(b"P6 2 1 255\n\x07\x08\x09\x0a\x0b\x0c");
        let img = last_ppm(&s[..]).unwrap().unwrap();
        assert_eq!(img.as_raw(), &[7, 8, 9, 10, 11, 12]);
        assert!(last_ppm(&b""[..]).unwrap().is_none());
        assert!(last_ppm(&b"P6\n2 1\n255\n\x01"[..]).is_err());
        assert!(last_ppm(&b"P5\n2 1\n255\n\x01\x02"[..]).is_err());
    }

    #[test]
    fn concat_joins_without_reencoding_and_refuses_bad_lists() {
        let dir = Tmp::new("concat");
        let (a, b) = (dir.path().join("a b.mp4"), dir.path().join("it's.mp4"));
        clip(&a, 5);
        clip(&b, 9);
        let out = dir.path().join("joined.mp4");
        concat_mp4(&[a.clone(), b.clone()], &out).unwrap();
        assert_eq!(count_frames(&out), 14);
        // The joined clip ends where the second part ends.
        assert!((mean(&last_frame(&out).unwrap()) - 340.0 % 256.0).abs() < 3.0);
        // Nothing but the result is left beside it.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");

        assert!(concat_mp4(std::slice::from_ref(&a), &out).is_err());
        assert!(concat_mp4(&[a.clone(), a.clone()], &a).is_err());
        assert!(matches!(
            concat_mp4(&[a.clone(), dir.path().join("gone.mp4")], &out),
            Err(Error::Missing(_))
        ));
        assert!(concat_mp4(&[a.clone(), PathBuf::from("rel.mp4")], &out).is_err());
        // A failing ffmpeg (a part that is no video) leaves no partial output.
        let junk = dir.path().join("junk.mp4");
        std::fs::write(&junk, b"not a video").unwrap();
        let out2 = dir.path().join("joined2.mp4");
        assert!(concat_mp4(&[a, junk], &out2).is_err());
        assert!(!out2.exists());
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left.len(), 4, "{left:?}");
    }
}
