//! A stand-in for the Hugging Face Hub on 127.0.0.1, for tests and the app E2E (through
//! `examples/mock_hub.rs`): it serves every sub-folder of `root` as a repo `<any
//! owner>/<folder>` with the endpoints and headers [`super`]'s client relies on —
//! `/api/models/{repo}/revision/{rev}` (`sha`, `siblings`, sizes and hashes only with
//! `?blobs=true`), `/{repo}/resolve/{rev}/{path}` (small files directly, LFS files by a
//! 302 to a `/cdn/…` URL with `X-Linked-Etag`/`X-Linked-Size`), `Range` → 206, 404s with
//! `X-Error-Code`. Switches inject the failures the client must survive or report
//! (corrupted byte, missing file, dropped or hanging connection, ignored Range,
//! throttling), and every response is logged with the range it started at and the bytes
//! it sent, so tests can assert what was (not) downloaded again.
//!
//! Plain `std::net`, one thread per connection, `Connection: close`. Not a general HTTP
//! server: requests are small GETs from our own client.
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// Failure switches (all off by default).
#[derive(Debug, Clone, Default)]
pub struct MockOptions {
    /// `(repo path, offset)`: that byte is flipped in what is sent (the listed hash stays).
    pub corrupt: Option<(String, u64)>,
    /// Listed, but `resolve` answers 404 `EntryNotFound`.
    pub missing: Vec<String>,
    /// `(repo path, bytes)`: the first response for that file closes after `bytes`.
    pub cut_after: Option<(String, u64)>,
    /// `(repo path, bytes)`: every response for that file stops after `bytes` and holds
    /// the connection open until the hub stops (a client to kill mid-file).
    pub hang_after: Option<(String, u64)>,
    /// Answer `200` with the whole file even when a `Range` was asked for.
    pub ignore_range: bool,
    /// Throttle file bodies to this rate.
    pub bytes_per_sec: Option<u64>,
    /// Append one JSON line per finished response here (for the E2E script).
    pub log_file: Option<PathBuf>,
}

/// One response that carried (part of) a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Served {
    /// `repo folder/path`, e.g. `ti2v_tiny/config.json`.
    pub file: String,
    pub status: u16,
    /// First byte sent (the Range start, 0 without one).
    pub start: u64,
    /// Bytes of the body actually written so far.
    pub bytes: u64,
    /// Order of the response (unique per hub; survives [`MockHub::clear_log`]).
    pub seq: u64,
}

struct Shared {
    root: PathBuf,
    opts: MockOptions,
    stop: AtomicBool,
    cut_done: AtomicBool,
    seq: AtomicU64,
    log: Mutex<Vec<Served>>,
    /// Connections accepted and not yet finished (see [`MockHub::wait_idle`]).
    active: Mutex<usize>,
    idle: Condvar,
    sha256: Mutex<HashMap<PathBuf, String>>,
}

/// A running mock Hub; stops (and joins its accept loop) on drop.
pub struct MockHub {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

/// Files the real Hub keeps in LFS (by extension or size).
fn is_lfs(path: &str, size: u64) -> bool {
    let ext = path.rsplit('.').next().unwrap_or("");
    matches!(ext, "safetensors" | "pth" | "bin" | "pt" | "ckpt" | "gguf") || size >= 10 << 20
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Git blob id of `bytes`.
pub fn blob_id(bytes: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(format!("blob {}\0", bytes.len()).as_bytes());
    h.update(bytes);
    hex(&h.finalize())
}

impl MockHub {
    /// Serve `root` on a free port of 127.0.0.1.
    pub fn start(root: &Path, opts: MockOptions) -> std::io::Result<Self> {
        Self::start_on(root, opts, 0)
    }

    pub fn start_on(root: &Path, opts: MockOptions, port: u16) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            root: root.to_path_buf(),
            opts,
            stop: AtomicBool::new(false),
            cut_done: AtomicBool::new(false),
            seq: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
            active: Mutex::new(0),
            idle: Condvar::new(),
            sha256: Mutex::new(HashMap::new()),
        });
        let s = shared.clone();
        let accept = std::thread::Builder::new()
            .name("mock-hub".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if s.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let s = s.clone();
                    // Counted at accept (not in the thread), so `wait_idle` never misses
                    // a connection whose thread has not started yet.
                    *s.active.lock().unwrap_or_else(|p| p.into_inner()) += 1;
                    std::thread::spawn(move || {
                        let _ = handle(&s, conn);
                        let mut n = s.active.lock().unwrap_or_else(|p| p.into_inner());
                        *n -= 1;
                        s.idle.notify_all();
                    });
                }
            })?;
        Ok(Self {
            addr,
            shared,
            accept: Some(accept),
        })
    }

    /// `http://127.0.0.1:PORT` (what `--endpoint` / `HF_ENDPOINT` take).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every file response so far (live: a hanging one shows the bytes sent until now).
    pub fn served(&self) -> Vec<Served> {
        self.shared
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Wait until every accepted connection has finished (a cancelled client's responses
    /// end at their next failed write), at most `timeout`; `false` if some still run.
    /// Call before [`Self::clear_log`] so a response of an earlier run cannot land in the
    /// next run's log, and before reading [`Self::served`] after a finished download (the
    /// client can have every byte before the server's thread records its last write).
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let n = self.shared.active.lock().unwrap_or_else(|p| p.into_inner());
        let (n, _) = self
            .shared
            .idle
            .wait_timeout_while(n, timeout, |n| *n > 0)
            .unwrap_or_else(|p| p.into_inner());
        *n == 0
    }

    pub fn clear_log(&self) {
        self.shared
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Stop accepting, release hanging responses, and wait for the accept loop.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect(self.addr);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

impl Drop for MockHub {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A repo folder under root: `owner/name` → `root/name` (plain names only).
fn repo_dir(s: &Shared, owner: &str, name: &str) -> Option<PathBuf> {
    let plain = |p: &str| {
        !p.is_empty()
            && !p.starts_with('.')
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    (plain(owner) && plain(name))
        .then(|| s.root.join(name))
        .filter(|d| d.is_dir())
}

/// Regular files under `dir`, `/`-separated, sorted.
fn walk(dir: &Path) -> Vec<(String, u64)> {
    fn go(base: &Path, d: &Path, out: &mut Vec<(String, u64)>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                go(base, &p, out);
            } else if let (Ok(m), Ok(rel)) = (p.metadata(), p.strip_prefix(base)) {
                let parts: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                out.push((parts.join("/"), m.len()));
            }
        }
    }
    let mut v = Vec::new();
    go(dir, dir, &mut v);
    v.sort();
    v
}

/// A stable fake commit id of the folder's listing.
fn commit_of(files: &[(String, u64)]) -> String {
    let mut h = Sha1::new();
    for (p, n) in files {
        h.update(format!("{p}\0{n}\n").as_bytes());
    }
    hex(&h.finalize())
}

fn sha256_of(s: &Shared, path: &Path) -> std::io::Result<String> {
    if let Some(h) = s.sha256.lock().unwrap_or_else(|p| p.into_inner()).get(path) {
        return Ok(h.clone());
    }
    let h = hex(&Sha256::digest(std::fs::read(path)?));
    s.sha256
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(path.to_path_buf(), h.clone());
    Ok(h)
}

struct Request {
    path: String,
    query: String,
    range_start: Option<u64>,
}

fn read_request(conn: &TcpStream) -> std::io::Result<Option<Request>> {
    let mut r = BufReader::new(conn);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Ok(None);
    };
    let mut range_start = None;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.trim().eq_ignore_ascii_case("range")
        {
            range_start = v
                .trim()
                .strip_prefix("bytes=")
                .and_then(|v| v.split('-').next())
                .and_then(|v| v.parse().ok());
        }
    }
    if method != "GET" {
        return Ok(None);
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Ok(Some(Request {
        path: decode(path),
        query: query.to_string(),
        range_start,
    }))
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn respond(
    conn: &mut TcpStream,
    status: u16,
    headers: &[(&str, String)],
    body: &[u8],
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        206 => "Partial Content",
        302 => "Found",
        404 => "Not Found",
        416 => "Range Not Satisfiable",
        _ => "Error",
    };
    let mut head = format!("HTTP/1.1 {status} {reason}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    conn.write_all(head.as_bytes())?;
    conn.write_all(body)
}

fn not_found(conn: &mut TcpStream, code: &str) -> std::io::Result<()> {
    let body = format!("{{\"error\":\"{code}\"}}");
    respond(
        conn,
        404,
        &[("X-Error-Code", code.to_string())],
        body.as_bytes(),
    )
}

fn handle(s: &Shared, mut conn: TcpStream) -> std::io::Result<()> {
    let Some(req) = read_request(&conn)? else {
        return Ok(());
    };
    let segs: Vec<&str> = req.path.trim_start_matches('/').splitn(6, '/').collect();
    match segs.as_slice() {
        ["api", "models", owner, name, "revision", rev] => {
            let Some(dir) = repo_dir(s, owner, name) else {
                return not_found(&mut conn, "RepositoryNotFound");
            };
            let files = walk(&dir);
            let commit = commit_of(&files);
            if *rev != "main" && *rev != commit {
                return not_found(&mut conn, "RevisionNotFound");
            }
            let blobs = req.query.split('&').any(|q| q == "blobs=true");
            let mut siblings = Vec::new();
            for (p, size) in &files {
                let mut e = serde_json::json!({ "rfilename": p });
                if blobs {
                    let full = dir.join(p);
                    e["size"] = (*size).into();
                    if is_lfs(p, *size) {
                        // Git stores an LFS pointer: its blob id is the pointer's.
                        let sha = sha256_of(s, &full)?;
                        let pointer = format!(
                            "version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {size}\n"
                        );
                        e["blobId"] = blob_id(pointer.as_bytes()).into();
                        e["lfs"] = serde_json::json!({
                            "sha256": sha, "size": size, "pointerSize": pointer.len()
                        });
                    } else {
                        e["blobId"] = blob_id(&std::fs::read(&full)?).into();
                    }
                }
                siblings.push(e);
            }
            let body = serde_json::json!({ "id": format!("{owner}/{name}"), "sha": commit, "siblings": siblings });
            respond(
                &mut conn,
                200,
                &[("Content-Type", "application/json".into())],
                body.to_string().as_bytes(),
            )
        }
        [owner, name, "resolve", rev, rest @ ..] => {
            let Some(dir) = repo_dir(s, owner, name) else {
                return not_found(&mut conn, "RepositoryNotFound");
            };
            let files = walk(&dir);
            let commit = commit_of(&files);
            if *rev != "main" && *rev != commit {
                return not_found(&mut conn, "RevisionNotFound");
            }
            let path = rest.join("/");
            let Some((_, size)) = files.iter().find(|(p, _)| *p == path) else {
                return not_found(&mut conn, "EntryNotFound");
            };
            if s.opts.missing.contains(&path) {
                return not_found(&mut conn, "EntryNotFound");
            }
            if is_lfs(&path, *size) {
                let sha = sha256_of(s, &dir.join(&path))?;
                return respond(
                    &mut conn,
                    302,
                    &[
                        ("Location", format!("/cdn/{name}/{path}")),
                        ("X-Repo-Commit", commit),
                        ("X-Linked-Etag", format!("\"{sha}\"")),
                        ("X-Linked-Size", size.to_string()),
                    ],
                    b"",
                );
            }
            let etag = blob_id(&std::fs::read(dir.join(&path))?);
            serve_file(
                s,
                &mut conn,
                name,
                &dir,
                &path,
                req.range_start,
                &[("ETag", format!("\"{etag}\"")), ("X-Repo-Commit", commit)],
            )
        }
        ["cdn", name, rest @ ..] => {
            let Some(dir) = repo_dir(s, "cdn", name) else {
                return not_found(&mut conn, "RepositoryNotFound");
            };
            let path = rest.join("/");
            if !walk(&dir).iter().any(|(p, _)| *p == path) {
                return not_found(&mut conn, "EntryNotFound");
            }
            serve_file(s, &mut conn, name, &dir, &path, req.range_start, &[])
        }
        _ => not_found(&mut conn, "EntryNotFound"),
    }
}

/// Send `path` (from the Range start), applying the corruption/cut/hang/throttle switches.
fn serve_file(
    s: &Shared,
    conn: &mut TcpStream,
    name: &str,
    dir: &Path,
    path: &str,
    range_start: Option<u64>,
    extra: &[(&str, String)],
) -> std::io::Result<()> {
    let mut bytes = std::fs::read(dir.join(path))?;
    if let Some((p, off)) = &s.opts.corrupt
        && p == path
        && let Some(b) = bytes.get_mut(*off as usize)
    {
        *b ^= 0xFF;
    }
    let total = bytes.len() as u64;
    let start = if s.opts.ignore_range {
        None
    } else {
        range_start
    };
    let mut headers: Vec<(&str, String)> = extra.to_vec();
    headers.push(("Accept-Ranges", "bytes".into()));
    let (status, from) = match start {
        Some(st) if st >= total => {
            headers.push(("Content-Range", format!("bytes */{total}")));
            return respond(conn, 416, &headers, b"");
        }
        Some(st) => {
            headers.push(("Content-Range", format!("bytes {st}-{}/{total}", total - 1)));
            (206, st)
        }
        None => (200, 0),
    };
    let body = &bytes[from as usize..];
    let reason = if status == 206 {
        "Partial Content"
    } else {
        "OK"
    };
    let mut head = format!("HTTP/1.1 {status} {reason}\r\nConnection: close\r\n");
    for (k, v) in &headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    conn.write_all(head.as_bytes())?;

    let seq = s.seq.fetch_add(1, Ordering::SeqCst);
    s.log
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Served {
            file: format!("{name}/{path}"),
            status,
            start: from,
            bytes: 0,
            seq,
        });
    // Found by `seq`: a test may clear the log while this response is still running.
    let update = |sent: u64| -> Option<Served> {
        let mut log = s.log.lock().unwrap_or_else(|p| p.into_inner());
        let e = log.iter_mut().find(|e| e.seq == seq)?;
        e.bytes = sent;
        Some(e.clone())
    };
    let limit = match (&s.opts.cut_after, &s.opts.hang_after) {
        (Some((p, n)), _) if p == path && !s.cut_done.swap(true, Ordering::SeqCst) => {
            Some((n.saturating_sub(from), false))
        }
        (_, Some((p, n))) if p == path => Some((n.saturating_sub(from), true)),
        _ => None,
    };
    let chunk = 16 << 10;
    let mut sent = 0usize;
    let result = loop {
        if sent >= body.len() {
            break Ok(());
        }
        let mut end = (sent + chunk).min(body.len());
        if let Some((n, _)) = limit {
            end = end.min(n as usize);
        }
        if end <= sent {
            // Reached the cut/hang point.
            if let Some((_, true)) = limit {
                while !s.stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            break Ok(());
        }
        if let Err(e) = conn.write_all(&body[sent..end]) {
            break Err(e);
        }
        if let Some(r) = s.opts.bytes_per_sec.filter(|r| *r > 0) {
            std::thread::sleep(Duration::from_secs_f64((end - sent) as f64 / r as f64));
        }
        sent = end;
        update(sent as u64);
    };
    let _ = conn.flush();
    let _ = conn.shutdown(std::net::Shutdown::Both);
    if let (Some(f), Some(entry)) = (&s.opts.log_file, update(sent as u64))
        && let Ok(mut out) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(f)
    {
        let _ = writeln!(out, "{}", serde_json::to_string(&entry).unwrap_or_default());
    }
    result
}
