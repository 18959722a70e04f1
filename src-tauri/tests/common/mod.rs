//! Shared by the app's integration tests: where the golden fixtures are. A missing folder
//! fails the test with the reason, unless `WAN_ALLOW_SKIP=1` is set explicitly (never in
//! `scripts/test.sh` / CI), which turns it into a skip.
#![allow(dead_code)]
use std::path::PathBuf;

/// `$WAN_FIXTURES/checkpoints/<name>` (default `../shared/fixtures` beside the repository),
/// or `None` (skip) only with `WAN_ALLOW_SKIP=1`.
pub fn tiny_folder(name: &str) -> Option<PathBuf> {
    let root = std::env::var_os("WAN_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"));
    let dir = root.join("checkpoints").join(name);
    if dir.is_dir() {
        return Some(dir);
    }
    let why = format!(
        "fixture folder {} not found (set WAN_FIXTURES to the shared fixtures folder)",
        dir.display()
    );
    assert!(
        std::env::var("WAN_ALLOW_SKIP").is_ok_and(|v| v == "1"),
        "{why} (set WAN_ALLOW_SKIP=1 to skip such tests instead of failing)"
    );
    eprintln!("SKIP (WAN_ALLOW_SKIP=1): {why}");
    None
}
