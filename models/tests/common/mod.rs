//! Shared by the integration tests: where the golden fixtures are, and one assertion.
#![allow(dead_code)]
use std::path::PathBuf;

/// `$WAN_FIXTURES` or `../shared/fixtures` beside the repository. `None` (test skipped,
/// with a note) when absent — except with `CI=true`, where a missing folder fails.
pub fn fixtures_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("WAN_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"));
    if dir.join("README.md").exists() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "fixtures not found at {} (CI=true: this is a failure, not a skip)",
            dir.display()
        );
    }
    eprintln!(
        "SKIP: fixtures not found at {} (set WAN_FIXTURES)",
        dir.display()
    );
    None
}

/// A fixture file path, or `None` when the fixture folder is absent (see above).
pub fn fixture(name: &str) -> Option<PathBuf> {
    let p = fixtures_dir()?.join(name);
    assert!(p.exists(), "fixture {} is missing", p.display());
    Some(p)
}

/// Run the parity case of one fixture file and assert every check passed.
pub fn assert_parity(name: &str) {
    let Some(path) = fixture(name) else { return };
    let report = wan::parity::run_file(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    let failed: Vec<String> = report
        .checks
        .iter()
        .filter(|c| !c.passed())
        .map(|c| c.line())
        .collect();
    assert!(!report.checks.is_empty(), "{name}: no checks ran");
    assert!(
        failed.is_empty(),
        "{name}: parity failures:\n{}",
        failed.join("\n")
    );
}

/// Largest absolute elementwise difference of two arrays.
pub fn max_diff(a: &mlx_rs::Array, b: &mlx_rs::Array) -> f32 {
    a.subtract(b)
        .unwrap()
        .abs()
        .unwrap()
        .max(None)
        .unwrap()
        .item_cast::<f32>()
}

/// `(codec, width, height, frames, pix_fmt)` of the first video stream, via ffprobe.
pub fn probe(path: &std::path::Path) -> (String, u32, u32, u32, String) {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-count_frames",
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames,pix_fmt",
            "-of",
            "csv=p=0:nk=1",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let f: Vec<&str> = s.split(',').collect();
    assert!(f.len() >= 5, "ffprobe said `{s}`");
    (
        f[0].into(),
        f[1].parse().unwrap(),
        f[2].parse().unwrap(),
        f[4].parse().unwrap(),
        f[3].into(),
    )
}
