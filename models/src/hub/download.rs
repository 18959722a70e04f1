//! Download a whole revision into a folder, resumably and verified.
//!
//! Layout while unfinished: `DEST/.download/state.json` (repo, pinned commit, files with
//! sizes and hashes), `DEST/.download/lock` (held with `flock` while a download runs, so
//! two never write the same folder; the kernel drops it if the process is killed) and
//! `DEST/.download/<path>.part` (bytes received so far). A finished file is verified, then
//! renamed to `DEST/<path>`; when every file is in place the staging folder is removed.
//! So a file at its final path is always complete and verified, and a folder without
//! `.download/` is a complete download.
//!
//! Resuming (after a kill, a cancel, or a dropped connection within a run): finished
//! files are not requested again; a `.part` is continued with `Range: bytes=N-` (a
//! server that answers 200 instead restarts it from zero). The bytes already in the part
//! are hashed from disk first, so the checksum always covers the whole file.
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::api::{self, RepoFile, RepoListing};
use crate::error::{Error, Result};
use crate::pipeline::CancelToken;

/// The staging folder inside the destination (exists exactly while unfinished).
pub const STAGING_DIR: &str = ".download";
const STATE_FILE: &str = "state.json";
const LOCK_FILE: &str = "lock";
const CHUNK: usize = 256 << 10;
const PROGRESS_EVERY: Duration = Duration::from_millis(150);

/// How to download.
#[derive(Debug, Clone)]
pub struct DownloadOptions {
    /// `https://huggingface.co`, a mirror, or the mock Hub (see [`super::endpoint`]).
    pub endpoint: String,
    /// Branch, tag or commit; an unfinished download always continues its pinned commit.
    pub revision: String,
    pub cancel: Option<CancelToken>,
    /// Consecutive failed attempts of one file without new bytes before giving up (each
    /// retry resumes where the last stopped).
    pub retries: u32,
    /// Pause before the first retry (doubles, at most 10 s).
    pub retry_delay: Duration,
    /// Free bytes to assume instead of asking the file system (tests).
    pub free_bytes: Option<u64>,
    /// Room left free beyond the files themselves.
    pub reserve_bytes: u64,
}

impl DownloadOptions {
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            revision: "main".into(),
            cancel: None,
            retries: 5,
            retry_delay: Duration::from_secs(1),
            free_bytes: None,
            reserve_bytes: 256 << 20,
        }
    }
}

/// Where a download stands (sent at most every 150 ms, and at each file's start and end).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Progress {
    pub file: String,
    /// 1-based index of `file` among `files`.
    pub file_index: usize,
    pub files: usize,
    pub file_done: u64,
    pub file_size: u64,
    /// Bytes of the whole revision on disk (finished files + parts).
    pub done: u64,
    pub total: u64,
    /// Bytes received by this run (what the speed and ETA are measured on).
    pub received: u64,
    pub elapsed_s: f64,
    pub eta_s: Option<f64>,
}

/// What a finished download did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub repo: String,
    pub commit: String,
    pub dest: PathBuf,
    pub files: usize,
    pub total_bytes: u64,
    /// Received in this run.
    pub received: u64,
    /// Already on disk when this run started (finished files and resumed parts).
    pub reused: u64,
    pub wall_s: f64,
}

/// The state file of an unfinished download.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unfinished {
    pub repo: String,
    pub revision: String,
    pub commit: String,
    pub endpoint: String,
    pub files: Vec<RepoFile>,
}

impl Unfinished {
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// The unfinished download in `dir`, if any (a folder with one is not usable yet).
pub fn unfinished(dir: &Path) -> Option<Unfinished> {
    let b = fs::read(dir.join(STAGING_DIR).join(STATE_FILE)).ok()?;
    serde_json::from_slice(&b).ok()
}

/// Whether `dir` holds a download that has not finished (even one whose state file is
/// unreadable: the staging folder alone means "not complete").
pub fn is_partial(dir: &Path) -> bool {
    dir.join(STAGING_DIR).exists()
}

/// Bytes of `f` already in `dir`: its full size once in place, else its `.part`.
fn have_bytes(dir: &Path, f: &RepoFile) -> Result<(bool, u64)> {
    let rel = api::check_path(&f.path)?;
    if fs::metadata(dir.join(&rel)).is_ok_and(|m| m.is_file() && m.len() == f.size) {
        return Ok((true, f.size));
    }
    let part = part_path(dir, &rel);
    let n = fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    Ok((false, if n > f.size { 0 } else { n }))
}

fn part_path(dir: &Path, rel: &Path) -> PathBuf {
    let mut p = dir.join(STAGING_DIR).join(rel).into_os_string();
    p.push(".part");
    PathBuf::from(p)
}

/// Free bytes on the file system holding `path` (or its nearest existing ancestor).
#[cfg(unix)]
#[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let mut p = path;
    while !p.exists() {
        p = p.parent().unwrap_or(Path::new("/"));
    }
    let c = std::ffi::CString::new(p.as_os_str().as_bytes())?;
    // SAFETY: `c` is a valid NUL-terminated path and `s` a writable statvfs.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(s.f_bavail as u64 * s.f_frsize as u64)
}

#[cfg(not(unix))]
pub fn free_bytes(_path: &Path) -> std::io::Result<u64> {
    Ok(u64::MAX)
}

/// An exclusive `flock` on the staging folder's lock file, released on drop (or by the
/// kernel when the process dies, so a kill never leaves a stale lock).
struct Lock(#[allow(dead_code)] File);

impl Lock {
    fn take(staging: &Path, dest: &Path) -> Result<Self> {
        let path = staging.join(LOCK_FILE);
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: a valid open descriptor.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                return Err(Error::Input(format!(
                    "another download into {} is running",
                    dest.display()
                )));
            }
        }
        Ok(Self(f))
    }
}

fn write_state(staging: &Path, state: &Unfinished) -> Result<()> {
    let path = staging.join(STATE_FILE);
    let tmp = staging.join(".state.json.tmp");
    let bytes = serde_json::to_vec_pretty(state)
        .map_err(|e| Error::Input(format!("cannot encode the download state: {e}")))?;
    fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))
}

/// Incremental hash of what the Hub reported for a file.
enum Hasher {
    Sha256(Sha256),
    /// Git blob id: sha1 over `blob {size}\0` + content.
    Blob(Sha1),
}

impl Hasher {
    fn new(f: &RepoFile) -> Self {
        if f.sha256.is_some() {
            Self::Sha256(Sha256::new())
        } else {
            let mut h = Sha1::new();
            h.update(format!("blob {}\0", f.size).as_bytes());
            Self::Blob(h)
        }
    }
    fn update(&mut self, b: &[u8]) {
        match self {
            Self::Sha256(h) => h.update(b),
            Self::Blob(h) => h.update(b),
        }
    }
    fn hex(self) -> String {
        let bytes: Vec<u8> = match self {
            Self::Sha256(h) => h.finalize().to_vec(),
            Self::Blob(h) => h.finalize().to_vec(),
        };
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn expected_hash(f: &RepoFile) -> String {
    f.sha256
        .clone()
        .or_else(|| f.blob_id.clone())
        .unwrap_or_default()
}

/// Progress bookkeeping shared by the files of one run.
struct Meter<'a> {
    files: usize,
    total: u64,
    done_before: u64,
    received: u64,
    t0: Instant,
    last: Option<Instant>,
    on_progress: &'a mut dyn FnMut(&Progress),
}

impl Meter<'_> {
    fn emit(&mut self, f: &RepoFile, index: usize, file_done: u64, force: bool) {
        let now = Instant::now();
        if !force && self.last.is_some_and(|l| now - l < PROGRESS_EVERY) {
            return;
        }
        self.last = Some(now);
        let elapsed_s = self.t0.elapsed().as_secs_f64();
        let done = self.done_before + file_done;
        let eta_s = (self.received > 0 && elapsed_s > 0.2)
            .then(|| self.total.saturating_sub(done) as f64 / (self.received as f64 / elapsed_s));
        (self.on_progress)(&Progress {
            file: f.path.clone(),
            file_index: index + 1,
            files: self.files,
            file_done,
            file_size: f.size,
            done,
            total: self.total,
            received: self.received,
            elapsed_s,
            eta_s,
        });
    }
}

/// Download `repo` into `dest` (see the module doc). Cancel keeps what was received for
/// the next run; every error leaves only verified files at their final paths.
pub fn download(
    repo: &str,
    dest: &Path,
    opts: &DownloadOptions,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<Summary> {
    let t0 = Instant::now();
    super::check_repo_id(repo)?;
    let staging = dest.join(STAGING_DIR);
    if dest.exists() && !dest.is_dir() {
        return Err(Error::Input(format!("{} is not a folder", dest.display())));
    }
    let previous = unfinished(dest);
    if let Some(p) = &previous
        && p.repo != repo
    {
        return Err(Error::Input(format!(
            "{} holds an unfinished download of {}; resume that, or choose another folder",
            dest.display(),
            p.repo
        )));
    }
    let fresh = !dest.exists()
        || fs::read_dir(dest)
            .map_err(|e| Error::io(dest, e))?
            .next()
            .is_none();
    let agent = api::agent();
    // An unfinished download continues its pinned commit, whatever `main` is now.
    let revision = previous
        .as_ref()
        .map_or(opts.revision.as_str(), |p| &p.commit);
    let listing: RepoListing = api::list_files(&agent, &opts.endpoint, repo, revision)?;

    let mut have = Vec::with_capacity(listing.files.len());
    for f in &listing.files {
        have.push(have_bytes(dest, f)?);
    }
    let reused: u64 = have.iter().map(|h| h.1).sum();
    let total = listing.total_bytes();
    if previous.is_none() && !fresh {
        if have.iter().all(|h| h.0) && !is_partial(dest) {
            // Already complete (sizes match; each file was verified when it was written).
            return Ok(Summary {
                repo: repo.into(),
                commit: listing.commit,
                dest: dest.into(),
                files: listing.files.len(),
                total_bytes: total,
                received: 0,
                reused,
                wall_s: t0.elapsed().as_secs_f64(),
            });
        }
        return Err(Error::Input(format!(
            "{} already exists and is not an unfinished download of {repo}; choose a new folder",
            dest.display()
        )));
    }
    let needed = total - reused + opts.reserve_bytes;
    let free = match opts.free_bytes {
        Some(b) => b,
        None => free_bytes(dest).map_err(|e| Error::io(dest, e))?,
    };
    if needed > free {
        return Err(Error::DiskSpace {
            path: dest.to_path_buf(),
            needed,
            free,
        });
    }

    fs::create_dir_all(&staging).map_err(|e| Error::io(&staging, e))?;
    let _lock = Lock::take(&staging, dest)?;
    write_state(
        &staging,
        &Unfinished {
            repo: repo.into(),
            revision: previous
                .as_ref()
                .map_or_else(|| opts.revision.clone(), |p| p.revision.clone()),
            commit: listing.commit.clone(),
            endpoint: opts.endpoint.clone(),
            files: listing.files.clone(),
        },
    )?;

    let mut meter = Meter {
        files: listing.files.len(),
        total,
        done_before: 0,
        received: 0,
        t0,
        last: None,
        on_progress,
    };
    for (i, (f, (complete, _))) in listing.files.iter().zip(&have).enumerate() {
        if !complete {
            let url = api::resolve_url(&opts.endpoint, repo, &listing.commit, &f.path);
            fetch_file(&agent, &url, dest, f, i, opts, &mut meter)?;
        }
        meter.emit(f, i, f.size, true);
        meter.done_before += f.size;
    }
    drop(_lock);
    fs::remove_dir_all(&staging).map_err(|e| Error::io(&staging, e))?;
    Ok(Summary {
        repo: repo.into(),
        commit: listing.commit,
        dest: dest.into(),
        files: listing.files.len(),
        total_bytes: total,
        received: meter.received,
        reused,
        wall_s: t0.elapsed().as_secs_f64(),
    })
}

/// One file: continue its part (Range), retry dropped connections, verify, rename.
fn fetch_file(
    agent: &ureq::Agent,
    url: &str,
    dest: &Path,
    f: &RepoFile,
    index: usize,
    opts: &DownloadOptions,
    meter: &mut Meter,
) -> Result<()> {
    let rel = api::check_path(&f.path)?;
    let part = part_path(dest, &rel);
    if let Some(d) = part.parent() {
        fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    let mut out = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&part)
        .map_err(|e| Error::io(&part, e))?;
    let io = |e: std::io::Error| Error::io(&part, e);
    let mut have = out.metadata().map_err(io)?.len();
    if have > f.size {
        out.set_len(0).map_err(io)?;
        have = 0;
    }
    // Hash what an earlier run received, so the checksum covers the whole file.
    let mut hasher = Hasher::new(f);
    let mut buf = vec![0u8; CHUNK];
    let mut left = have;
    while left > 0 {
        let n = out.read(&mut buf[..CHUNK.min(left as usize)]).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    out.seek(SeekFrom::Start(have)).map_err(io)?;
    meter.emit(f, index, have, true);

    let mut failures = 0u32;
    let mut delay = opts.retry_delay;
    while have < f.size {
        if let Some(c) = &opts.cancel {
            c.check()?;
        }
        let before = have;
        let mut sink = Sink {
            out: &mut out,
            part: &part,
            have: &mut have,
            hasher: &mut hasher,
        };
        match fetch_range(agent, url, f, &mut sink, &mut buf, opts, meter, index) {
            Ok(Restart::No) => {}
            Ok(Restart::FromZero) => {
                out.set_len(0).map_err(io)?;
                out.seek(SeekFrom::Start(0)).map_err(io)?;
                have = 0;
                hasher = Hasher::new(f);
            }
            Err(Fail::Retry(m)) => {
                failures = if have > before { 1 } else { failures + 1 };
                if failures > opts.retries {
                    return Err(Error::Network(format!(
                        "{m} (gave up after {failures} attempts; run again to resume)"
                    )));
                }
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            Err(Fail::Stop(e)) => return Err(e),
        }
    }
    let got = hasher.hex();
    let want = expected_hash(f);
    if got != want {
        drop(out);
        let _ = fs::remove_file(&part);
        return Err(Error::Checksum {
            path: rel,
            expected: want,
            got,
        });
    }
    out.sync_all().map_err(io)?;
    drop(out);
    let to = dest.join(&rel);
    if let Some(d) = to.parent() {
        fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    fs::rename(&part, &to).map_err(|e| Error::io(&to, e))
}

enum Restart {
    No,
    FromZero,
}

/// Why one request ended early: worth another try (dropped, timed out, 5xx) or not.
enum Fail {
    Retry(String),
    Stop(Error),
}

/// Where received bytes go: the part file and the running hash.
struct Sink<'a> {
    out: &'a mut File,
    part: &'a Path,
    have: &'a mut u64,
    hasher: &'a mut Hasher,
}

/// One request from `have` to the end of the file (or until the connection drops).
#[allow(clippy::too_many_arguments)]
fn fetch_range(
    agent: &ureq::Agent,
    url: &str,
    f: &RepoFile,
    sink: &mut Sink,
    buf: &mut [u8],
    opts: &DownloadOptions,
    meter: &mut Meter,
    index: usize,
) -> std::result::Result<Restart, Fail> {
    let have = *sink.have;
    let mut req = agent.get(url).header("Accept-Encoding", "identity");
    if have > 0 {
        req = req.header("Range", format!("bytes={have}-"));
    }
    let mut resp = match req.call() {
        Ok(r) => r,
        Err(e) => return Err(Fail::Retry(api::transport_error(&e, url).to_string())),
    };
    let status = resp.status().as_u16();
    match status {
        // The server ignored the Range: take this answer from byte 0 instead.
        200 if have > 0 => {
            sink.out
                .set_len(0)
                .map_err(|e| Fail::Stop(Error::io(sink.part, e)))?;
            sink.out
                .seek(SeekFrom::Start(0))
                .map_err(|e| Fail::Stop(Error::io(sink.part, e)))?;
            *sink.have = 0;
            *sink.hasher = Hasher::new(f);
        }
        200 => {}
        206 => {
            let start = resp
                .headers()
                .get("content-range")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("bytes "))
                .and_then(|v| v.split('-').next())
                .and_then(|v| v.parse::<u64>().ok());
            if start != Some(have) {
                return Ok(Restart::FromZero);
            }
        }
        416 => return Ok(Restart::FromZero),
        408 | 429 | 500..=599 => return Err(Fail::Retry(format!("{}: HTTP {status}", f.path))),
        s => {
            let code = resp
                .headers()
                .get("x-error-code")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            return Err(Fail::Stop(api::status_error(
                s,
                code.as_deref(),
                &f.path,
                url,
            )));
        }
    }
    let io = |e: std::io::Error| Fail::Stop(Error::io(sink.part, e));
    let mut body = resp.body_mut().as_reader();
    loop {
        if let Some(c) = &opts.cancel
            && c.is_cancelled()
        {
            return Err(Fail::Stop(Error::Cancelled));
        }
        let n = match body.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                return Err(Fail::Retry(format!(
                    "{}: connection lost after {} of {} bytes ({e})",
                    f.path, *sink.have, f.size
                )));
            }
        };
        if *sink.have + n as u64 > f.size {
            let _ = std::fs::remove_file(sink.part);
            return Err(Fail::Stop(Error::Network(format!(
                "{}: the server sent more than the {} bytes it listed",
                f.path, f.size
            ))));
        }
        sink.out.write_all(&buf[..n]).map_err(io)?;
        sink.hasher.update(&buf[..n]);
        *sink.have += n as u64;
        meter.received += n as u64;
        meter.emit(f, index, *sink.have, false);
    }
    if *sink.have < f.size {
        return Err(Fail::Retry(format!(
            "{}: connection closed after {} of {} bytes",
            f.path, *sink.have, f.size
        )));
    }
    Ok(Restart::No)
}
