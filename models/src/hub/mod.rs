//! Hugging Face downloads: a whole model repository (e.g. `Wan-AI/Wan2.2-TI2V-5B`) into a
//! folder, the way the `download` binary and the app's Models view fetch the official
//! weights.
//!
//! How the Hub answers (as `huggingface_hub` uses it, and what [`mock`] imitates):
//! * `GET {endpoint}/api/models/{repo}/revision/{rev}?blobs=true` → JSON with `sha` (the
//!   commit the revision points to) and `siblings`: `rfilename`, `size`, `blobId` (git
//!   blob id) and, for LFS files, `lfs.sha256`. Without `blobs=true` only names come back.
//!   An unknown repo is 401/404 with `X-Error-Code: RepositoryNotFound`, an unknown
//!   revision 404 `RevisionNotFound`.
//! * `GET {endpoint}/{repo}/resolve/{commit}/{path}`: small files come back directly
//!   (`ETag` = blob id); LFS files answer `302` to a CDN (`X-Linked-Etag` = sha256,
//!   `X-Linked-Size`, `X-Repo-Commit`). Both honour `Range: bytes=N-` with `206` +
//!   `Content-Range`; text files are gzip-encoded unless `Accept-Encoding: identity`.
//!
//! [`download::download`] lists the revision once, pins its commit, checks free disk
//! space, then fetches file by file into `DEST/.download/<path>.part` (Range-resumed
//! after a kill, a dropped connection or a cancel), verifies each against the hash the
//! Hub reported (LFS sha256, else the git blob id) and renames it into place. The
//! staging folder exists exactly while the download is unfinished, so a folder without
//! it is complete ([`download::unfinished`]).
pub mod api;
pub mod download;
pub mod mock;

use crate::config::Task;
use crate::error::{Error, Result};

pub use api::{RepoFile, RepoListing};
pub use download::{DownloadOptions, Progress, STAGING_DIR, Summary, Unfinished, download};

/// Where files come from unless `--endpoint` or `HF_ENDPOINT` says otherwise.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";
/// The variable `huggingface_hub` reads for mirrors (and our tests for the mock Hub).
pub const ENDPOINT_ENV: &str = "HF_ENDPOINT";

/// A repository the app offers by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct KnownRepo {
    pub id: &'static str,
    pub task: Task,
}

/// The official Wan2.2 weights.
pub const WAN_REPOS: [KnownRepo; 3] = [
    KnownRepo {
        id: "Wan-AI/Wan2.2-TI2V-5B",
        task: Task::Ti2v5B,
    },
    KnownRepo {
        id: "Wan-AI/Wan2.2-T2V-A14B",
        task: Task::T2vA14B,
    },
    KnownRepo {
        id: "Wan-AI/Wan2.2-I2V-A14B",
        task: Task::I2vA14B,
    },
];

/// `explicit` (a `--endpoint` flag), else `$HF_ENDPOINT`, else huggingface.co; an
/// http(s) URL without a trailing `/`.
pub fn endpoint(explicit: Option<&str>) -> Result<String> {
    let from_env = std::env::var(ENDPOINT_ENV).ok().filter(|s| !s.is_empty());
    let raw = explicit
        .map(str::to_string)
        .or(from_env)
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
    let url = raw.trim().trim_end_matches('/').to_string();
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => Ok(url),
        _ => Err(Error::Input(format!(
            "the Hub endpoint must be an http(s) URL, got `{raw}`"
        ))),
    }
}

/// `owner/name` with the Hub's characters only (so it is safe in URLs and as a folder name).
pub fn check_repo_id(id: &str) -> Result<()> {
    let ok_part = |p: &str| {
        !p.is_empty()
            && p.len() <= 96
            && !p.starts_with(['.', '-'])
            && !p.contains("..")
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    match id.split_once('/') {
        Some((owner, name)) if ok_part(owner) && ok_part(name) => Ok(()),
        _ => Err(Error::Input(format!(
            "`{id}` is not a Hugging Face repo id (owner/name, e.g. Wan-AI/Wan2.2-TI2V-5B)"
        ))),
    }
}

/// A branch, tag or commit: printable, no spaces, reasonably short.
pub fn check_revision(rev: &str) -> Result<()> {
    if rev.is_empty() || rev.len() > 256 || rev.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Error::Input(format!("`{rev}` is not a revision")));
    }
    Ok(())
}

/// The folder name a repo downloads into by default: its name (`Wan2.2-TI2V-5B`).
pub fn default_folder_name(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_ids_and_endpoints() {
        for ok in ["Wan-AI/Wan2.2-TI2V-5B", "a/b", "x_y/z.w-1"] {
            check_repo_id(ok).unwrap();
        }
        for bad in [
            "", "Wan2.2", "a/b/c", "../x", "a/..", "a/.git", "a b/c", "a/b?c", "/a",
        ] {
            assert!(check_repo_id(bad).is_err(), "{bad}");
        }
        assert_eq!(
            default_folder_name("Wan-AI/Wan2.2-TI2V-5B"),
            "Wan2.2-TI2V-5B"
        );
        assert_eq!(
            endpoint(Some("http://127.0.0.1:9/")).unwrap(),
            "http://127.0.0.1:9"
        );
        assert!(endpoint(Some("ftp://x")).is_err());
        assert!(endpoint(Some("https://")).is_err());
        check_revision("main").unwrap();
        assert!(check_revision("a b").is_err());
    }
}
