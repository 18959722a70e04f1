//! Shared by the integration tests: where the golden fixtures are, and one assertion.
#![allow(dead_code)]
use std::path::PathBuf;

/// Whether a test may skip because its fixtures or a tool are missing: only when
/// `WAN_ALLOW_SKIP=1` is set explicitly (never in `scripts/test.sh` / CI). Otherwise a
/// missing prerequisite is a failure that says what is missing.
pub fn skip_allowed() -> bool {
    std::env::var("WAN_ALLOW_SKIP").is_ok_and(|v| v == "1")
}

/// Fail with `why`, or (with `WAN_ALLOW_SKIP=1`) print a SKIP note and return.
pub fn missing(why: &str) {
    assert!(
        skip_allowed(),
        "{why} (set WAN_ALLOW_SKIP=1 to skip such tests instead of failing)"
    );
    eprintln!("SKIP (WAN_ALLOW_SKIP=1): {why}");
}

/// `$WAN_FIXTURES` or `../shared/fixtures` beside the repository. Absent: the test fails,
/// or with `WAN_ALLOW_SKIP=1` gets `None` and skips.
pub fn fixtures_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("WAN_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"));
    if dir.join("README.md").exists() {
        return Some(dir);
    }
    missing(&format!(
        "golden fixtures not found at {} (set WAN_FIXTURES to the shared fixtures folder)",
        dir.display()
    ));
    None
}

/// Whether the command-line tool `name` runs (`name -version`); absent: the test fails, or
/// with `WAN_ALLOW_SKIP=1` gets `false` and skips.
pub fn tool(name: &str) -> bool {
    let ok = std::process::Command::new(name)
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        missing(&format!("`{name}` is not installed or does not run"));
    }
    ok
}

/// A fixture file path (`None` only when skipping is allowed and the folder is absent).
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
