//! The Hub's JSON API and URLs: list a revision's files with their sizes and hashes
//! (`/api/models/{repo}/revision/{rev}?blobs=true`), build `resolve` URLs, turn HTTP
//! answers into clear errors. Every name from the server is checked before it becomes
//! a path on disk.
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One file of a revision, as the Hub reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoFile {
    /// `/`-separated path inside the repo (checked: no `..`, no absolute paths).
    pub path: String,
    pub size: u64,
    /// LFS files: sha256 of the content (lowercase hex).
    pub sha256: Option<String>,
    /// Git blob id (sha1 of `blob {size}\0` + content) — what verifies non-LFS files.
    pub blob_id: Option<String>,
}

/// A revision pinned to its commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoListing {
    pub repo: String,
    pub commit: String,
    pub files: Vec<RepoFile>,
}

impl RepoListing {
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

#[derive(Deserialize)]
struct ApiRepo {
    sha: Option<String>,
    siblings: Option<Vec<ApiSibling>>,
}

#[derive(Deserialize)]
struct ApiSibling {
    rfilename: String,
    size: Option<u64>,
    #[serde(rename = "blobId")]
    blob_id: Option<String>,
    lfs: Option<ApiLfs>,
}

#[derive(Deserialize)]
struct ApiLfs {
    sha256: String,
}

/// The one HTTP client: connect and per-read timeouts (no total timeout: a 30 GB file
/// takes as long as it takes), statuses handled here rather than as errors.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        .http_status_as_error(false)
        .user_agent(concat!("wan-studio/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// Percent-encode one URL path segment (RFC 3986 unreserved characters stay).
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `{endpoint}/{repo}/resolve/{commit}/{path}` with every path segment encoded.
pub fn resolve_url(endpoint: &str, repo: &str, commit: &str, path: &str) -> String {
    let segs: Vec<String> = path.split('/').map(encode_segment).collect();
    format!(
        "{endpoint}/{repo}/resolve/{}/{}",
        encode_segment(commit),
        segs.join("/")
    )
}

/// A repo path that stays inside the destination: relative, `/`-separated plain names,
/// not inside our own staging folder.
pub fn check_path(p: &str) -> Result<PathBuf> {
    let bad = |why: &str| {
        Err(Error::Input(format!(
            "refused file name from the Hub `{p}`: {why}"
        )))
    };
    if p.is_empty() || p.contains('\\') || p.contains('\0') || p.len() > 1024 {
        return bad("empty, too long or with `\\`/NUL");
    }
    let rel = Path::new(p);
    let mut out = PathBuf::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => out.push(n),
            _ => return bad("absolute or with `.`/`..`"),
        }
    }
    if p.split('/').any(str::is_empty) {
        return bad("empty path segment");
    }
    if out.starts_with(super::STAGING_DIR) {
        return bad("inside the downloader's staging folder");
    }
    Ok(out)
}

/// Why a request failed, worded for a person. `what` names the thing asked for.
pub fn status_error(status: u16, error_code: Option<&str>, what: &str, url: &str) -> Error {
    Error::Network(match (status, error_code) {
        (401 | 404, Some("RepositoryNotFound")) | (401, _) => format!(
            "{what}: repository not found (it does not exist, or it is private or gated and \
             needs a token) — {url}"
        ),
        (_, Some("RevisionNotFound")) => format!("{what}: revision not found — {url}"),
        (404, _) => format!("{what}: not found on the server (HTTP 404) — {url}"),
        (403, _) => format!("{what}: access denied (HTTP 403) — {url}"),
        (429, _) => format!("{what}: the server asks to slow down (HTTP 429); try again later"),
        (s, _) => format!("{what}: HTTP {s} from {url}"),
    })
}

/// A transport failure (DNS, refused, reset, timeout) as a clear network error.
pub fn transport_error(e: &ureq::Error, url: &str) -> Error {
    let host = url
        .split("://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or(url);
    Error::Network(format!("cannot reach {host}: {e}"))
}

fn hex_of_len(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// List `repo` at `revision`: the commit it points to and every file with size and hash.
pub fn list_files(
    agent: &ureq::Agent,
    endpoint: &str,
    repo: &str,
    revision: &str,
) -> Result<RepoListing> {
    super::check_repo_id(repo)?;
    super::check_revision(revision)?;
    let url = format!(
        "{endpoint}/api/models/{repo}/revision/{}?blobs=true",
        encode_segment(revision)
    );
    let mut resp = agent
        .get(&url)
        .header("Accept-Encoding", "identity")
        .call()
        .map_err(|e| transport_error(&e, &url))?;
    let status = resp.status().as_u16();
    if status != 200 {
        let code = resp
            .headers()
            .get("x-error-code")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        return Err(status_error(status, code.as_deref(), repo, &url));
    }
    let body = resp
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_string()
        .map_err(|e| transport_error(&e, &url))?;
    parse_listing(repo, &body).map_err(|e| match e {
        Error::Input(m) => Error::Network(format!("{url}: {m}")),
        e => e,
    })
}

/// The JSON of the revision endpoint → a checked listing (sorted by path).
pub fn parse_listing(repo: &str, body: &str) -> Result<RepoListing> {
    let api: ApiRepo = serde_json::from_str(body)
        .map_err(|e| Error::Input(format!("unexpected answer from the Hub: {e}")))?;
    let commit = api
        .sha
        .filter(|s| hex_of_len(s, 40))
        .ok_or_else(|| Error::Input("the Hub did not report the revision's commit".into()))?;
    let mut files = Vec::new();
    for s in api.siblings.unwrap_or_default() {
        check_path(&s.rfilename)?;
        let size = s.size.ok_or_else(|| {
            Error::Input(format!(
                "the Hub did not report the size of {}",
                s.rfilename
            ))
        })?;
        let sha256 = s.lfs.map(|l| l.sha256.to_ascii_lowercase());
        if sha256.as_ref().is_some_and(|h| !hex_of_len(h, 64)) {
            return Err(Error::Input(format!("bad LFS sha256 for {}", s.rfilename)));
        }
        let blob_id = s.blob_id.map(|b| b.to_ascii_lowercase());
        if sha256.is_none() && !blob_id.as_ref().is_some_and(|b| hex_of_len(b, 40)) {
            return Err(Error::Input(format!(
                "the Hub reported no hash to verify {} by",
                s.rfilename
            )));
        }
        files.push(RepoFile {
            path: s.rfilename,
            size,
            sha256,
            blob_id,
        });
    }
    if files.is_empty() {
        return Err(Error::Input(format!("{repo} has no files")));
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    if files.windows(2).any(|w| w[0].path == w[1].path) {
        return Err(Error::Input("the Hub listed a file twice".into()));
    }
    Ok(RepoListing {
        repo: repo.to_string(),
        commit,
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_refused() {
        for bad in [
            "../x",
            "a/../../x",
            "/etc/passwd",
            "a//b",
            "a\\b",
            "./a",
            ".download/state.json",
            "",
        ] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
        assert_eq!(
            check_path("google/umt5-xxl/tokenizer.json").unwrap(),
            Path::new("google/umt5-xxl/tokenizer.json")
        );
    }

    #[test]
    fn listing_parses_the_revision_json() {
        let body = r#"{"id":"a/b","sha":"0123456789abcdef0123456789abcdef01234567","siblings":[
            {"rfilename":"z.safetensors","size":5,"blobId":"1111111111111111111111111111111111111111",
             "lfs":{"sha256":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","size":5,"pointerSize":130}},
            {"rfilename":"config.json","size":2,"blobId":"2222222222222222222222222222222222222222"}]}"#;
        let l = parse_listing("a/b", body).unwrap();
        assert_eq!(l.files[0].path, "config.json");
        assert_eq!(l.files[1].sha256.as_deref(), Some(&"a".repeat(64)[..]));
        assert_eq!(l.total_bytes(), 7);
        // Names only (no `blobs=true`): no sizes, refused rather than guessed.
        let names =
            r#"{"sha":"0123456789abcdef0123456789abcdef01234567","siblings":[{"rfilename":"a"}]}"#;
        assert!(parse_listing("a/b", names).is_err());
        let evil = body.replace("config.json", "../../.bashrc");
        assert!(parse_listing("a/b", &evil).is_err());
    }

    #[test]
    fn urls_are_encoded() {
        assert_eq!(
            resolve_url("http://h", "a/b", "main", "dir/x y#.json"),
            "http://h/a/b/resolve/main/dir/x%20y%23.json"
        );
    }
}
