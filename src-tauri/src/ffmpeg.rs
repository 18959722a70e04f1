//! ffmpeg for the app: checked at start and before a job is queued (never after
//! denoising), and — only with the user's consent — downloaded as a static build into
//! the data dir (the project's HTTP client, cancellable between reads; ffmpeg-sidecar's
//! URL table and unpacker), where `wan::video::ffmpeg` looks last.
//! The lookup order itself lives in the library (bundled sidecar → `WAN_FFMPEG` → PATH +
//! Homebrew folders → the download).
use std::path::Path;

use serde::Serialize;
use wan::pipeline::CancelToken;
use wan::video::ffmpeg::{self, Found, Lookup};

use crate::error::{AppError, AppResult};

/// Overrides the static build's URL (tests serve an archive from 127.0.0.1).
pub const DOWNLOAD_URL_ENV: &str = "WAN_FFMPEG_DOWNLOAD_URL";

/// What the window shows about ffmpeg.
#[derive(Debug, Clone, Serialize)]
pub struct FfmpegStatus {
    pub found: Option<Found>,
    /// Why none was found and what to do (platform-specific).
    pub message: Option<String>,
    /// Where a consented download would come from (`None`: no build for this platform).
    pub download_url: Option<String>,
    /// Where it would go.
    pub download_dir: String,
}

pub fn status(data_dir: &Path) -> FfmpegStatus {
    let (found, message) = match Lookup::from_env().find() {
        Ok(f) => (Some(f), None),
        Err(e) => (None, Some(e.to_string())),
    };
    FfmpegStatus {
        found,
        message,
        download_url: download_url(),
        download_dir: ffmpeg::download_dir(data_dir).display().to_string(),
    }
}

/// `Err` with code `ffmpeg` when no ffmpeg can be found: the check before queueing.
pub fn require() -> AppResult<Found> {
    ffmpeg::find().map_err(AppError::from)
}

pub fn download_url() -> Option<String> {
    std::env::var(DOWNLOAD_URL_ENV)
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| {
            ffmpeg_sidecar::download::ffmpeg_download_url()
                .ok()
                .map(String::from)
        })
}

/// The archive while it is being received (removed on cancel or failure, and after
/// unpacking).
const PARTIAL: &str = "ffmpeg-download.part";

/// A failed step of the download (`downloading`, `unpacking`), code `network`.
fn network(what: &str, url: &str, e: String) -> AppError {
    AppError::new("network", format!("{what} ffmpeg from {url}: {e}"))
}

/// Stream `url` into `to`, reporting progress and checking `cancel` before every read.
fn fetch(
    url: &str,
    to: &Path,
    cancel: &CancelToken,
    on_event: &(dyn Fn(FfmpegEvent) + Sync),
) -> AppResult<()> {
    use std::io::{Read, Write};
    let external = |e: String| network("downloading", url, e);
    let mut resp = wan::hub::api::agent()
        .get(url)
        .call()
        .map_err(|e| external(e.to_string()))?;
    let status = resp.status().as_u16();
    if status != 200 {
        return Err(external(format!("the server answered HTTP {status}")));
    }
    let total = resp
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let io = |e: std::io::Error| AppError::io("writing the ffmpeg download", e);
    let mut out = std::io::BufWriter::new(std::fs::File::create(to).map_err(io)?);
    let mut body = resp.body_mut().as_reader();
    let mut buf = vec![0u8; 256 << 10];
    let mut done = 0u64;
    loop {
        cancel.check()?;
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                return Err(external(format!(
                    "connection lost after {done} bytes ({e})"
                )));
            }
        };
        out.write_all(&buf[..n]).map_err(io)?;
        done += n as u64;
        on_event(FfmpegEvent::Progress { done, total });
    }
    if total > 0 && done != total {
        return Err(external(format!("received {done} of {total} bytes")));
    }
    out.flush().map_err(io)
}

/// Download progress for the window.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FfmpegEvent {
    Progress { done: u64, total: u64 },
    Unpacking,
    Done { found: Found },
    Failed { error: AppError },
}

/// Download and unpack a static ffmpeg into `<data dir>/ffmpeg/`, then check that the
/// lookup finds it and that it runs. Blocking (call it off the UI thread). Needs
/// `consent`: the app never fetches an executable the user has not agreed to. `cancel`
/// stops the transfer within one read (`Err` with code `cancelled`); a cancelled or failed
/// download leaves nothing in the folder.
pub fn download(
    data_dir: &Path,
    url: &str,
    consent: bool,
    cancel: &CancelToken,
    on_event: &(dyn Fn(FfmpegEvent) + Sync),
) -> AppResult<Found> {
    if !consent {
        return Err(AppError::input(
            "downloading ffmpeg needs your consent (Download in the ffmpeg notice)",
        ));
    }
    let dir = ffmpeg::download_dir(data_dir);
    std::fs::create_dir_all(&dir).map_err(|e| AppError::io("creating the ffmpeg folder", e))?;
    let archive = dir.join(PARTIAL);
    if let Err(e) = fetch(url, &archive, cancel, on_event) {
        let _ = std::fs::remove_file(&archive);
        return Err(e);
    }
    on_event(FfmpegEvent::Unpacking);
    let unpacked = ffmpeg_sidecar::download::unpack_ffmpeg(&archive, &dir);
    let _ = std::fs::remove_file(&archive);
    unpacked.map_err(|e| network("unpacking", url, format!("{e:#}")))?;
    let bin = dir.join(ffmpeg::exe_name());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755));
    }
    let runs = std::process::Command::new(&bin)
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !runs {
        let _ = std::fs::remove_file(&bin);
        return Err(AppError::new(
            "ffmpeg",
            format!("the downloaded ffmpeg ({url}) does not run on this machine; it was removed"),
        ));
    }
    let found = Lookup {
        data_dir: Some(data_dir.to_path_buf()),
        ..Lookup::default()
    }
    .find()?;
    on_event(FfmpegEvent::Done {
        found: found.clone(),
    });
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::sync::Mutex;
    use wan::hub::mock::{MockHub, MockOptions};
    use wan::video::ffmpeg::Source;

    #[test]
    fn no_consent_no_download() {
        let d = tempfile::tempdir().unwrap();
        let none = CancelToken::new();
        let e = download(d.path(), "http://127.0.0.1:9/x", false, &none, &|_| {}).unwrap_err();
        assert_eq!(e.code, "input");
        assert!(!ffmpeg::download_dir(d.path()).exists());
    }

    /// A stand-in "static build" (a shell script that answers `-version`) packed the way
    /// this platform's download is (tar.xz with `<dir>/bin/ffmpeg` on Linux, a zip with
    /// `ffmpeg` at the top on macOS), served from 127.0.0.1: unpacked into the data dir,
    /// run, and found by the library's lookup as `downloaded`.
    #[test]
    fn consented_download_lands_where_the_lookup_finds_it() {
        let t = tempfile::tempdir().unwrap();
        let stage = t.path().join("stage");
        let inner = if cfg!(target_os = "macos") {
            stage.clone()
        } else {
            stage.join("ffmpeg-n9.0-latest-linux64-gpl-9.0/bin")
        };
        std::fs::create_dir_all(&inner).unwrap();
        let script = inner.join("ffmpeg");
        std::fs::write(&script, "#!/bin/sh\necho 'ffmpeg version test'\n").unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let repo = t.path().join("hub/builds");
        std::fs::create_dir_all(&repo).unwrap();
        let (name, ok) = if cfg!(target_os = "macos") {
            let out = repo.join("ffmpeg.zip");
            let ok = Command::new("zip")
                .current_dir(&stage)
                .args(["-q", out.to_str().unwrap(), "ffmpeg"])
                .status()
                .unwrap()
                .success();
            ("ffmpeg.zip", ok)
        } else {
            let out = repo.join("ffmpeg.tar.xz");
            let ok = Command::new("tar")
                .current_dir(&stage)
                .args([
                    "-cJf",
                    out.to_str().unwrap(),
                    "ffmpeg-n9.0-latest-linux64-gpl-9.0",
                ])
                .status()
                .unwrap()
                .success();
            ("ffmpeg.tar.xz", ok)
        };
        assert!(ok, "packing the stand-in archive failed");
        let hub = MockHub::start(&t.path().join("hub"), MockOptions::default()).unwrap();
        let url = format!("{}/cdn/builds/{name}", hub.url());
        let data = t.path().join("data");
        let events = Mutex::new(Vec::new());
        let none = CancelToken::new();
        let found = download(&data, &url, true, &none, &|e| {
            events.lock().unwrap().push(e)
        })
        .unwrap();
        assert_eq!(found.source, Source::Downloaded);
        assert_eq!(found.path, ffmpeg::download_dir(&data).join("ffmpeg"));
        let ev = events.into_inner().unwrap();
        assert!(
            ev.iter()
                .any(|e| matches!(e, FfmpegEvent::Progress { done, .. } if *done > 0))
        );
        assert!(matches!(ev.last(), Some(FfmpegEvent::Done { .. })));
        // Only the binary is left (archive and temp folder removed).
        let left: Vec<_> = std::fs::read_dir(ffmpeg::download_dir(&data))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("ffmpeg")]);
    }

    /// Cancel during the transfer (as the notice's Cancel button does): the download stops
    /// within one read with code `cancelled`, long before the file is complete, and leaves
    /// nothing in the folder — no partial archive, no binary for the lookup to find.
    #[test]
    fn cancelled_download_stops_and_leaves_nothing() {
        let t = tempfile::tempdir().unwrap();
        let repo = t.path().join("hub/builds");
        std::fs::create_dir_all(&repo).unwrap();
        let size = 4u64 << 20;
        std::fs::write(repo.join("ffmpeg.tar.xz"), vec![7u8; size as usize]).unwrap();
        let opts = MockOptions {
            bytes_per_sec: Some(1 << 20),
            ..MockOptions::default()
        };
        let hub = MockHub::start(&t.path().join("hub"), opts).unwrap();
        let url = format!("{}/cdn/builds/ffmpeg.tar.xz", hub.url());
        let data = t.path().join("data");
        let cancel = CancelToken::new();
        let received = Mutex::new(0u64);
        let e = download(&data, &url, true, &cancel, &|e| {
            if let FfmpegEvent::Progress { done, .. } = e {
                *received.lock().unwrap() = done;
                cancel.cancel();
            }
        })
        .unwrap_err();
        assert_eq!(e.code, "cancelled", "{e:?}");
        let got = received.into_inner().unwrap();
        assert!(got > 0 && got < size, "stopped after {got} of {size} bytes");
        let left: Vec<_> = std::fs::read_dir(ffmpeg::download_dir(&data))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}
