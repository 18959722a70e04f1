//! Hugging Face downloads (`wan::hub`, the `download` binary) against the mock Hub on
//! 127.0.0.1: byte-identical results, resume after a kill / a dropped connection / a
//! cancel (asserted by the bytes the server sent), checksum failures, clear network
//! errors, and the free-disk check before anything is fetched.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use wan::hub::download::{is_partial, unfinished};
use wan::hub::mock::{MockHub, MockOptions, Served};
use wan::hub::{DownloadOptions, Progress, download};
use wan::pipeline::CancelToken;

mod common;

const REPO: &str = "test-org/tiny";

struct Tmp(PathBuf);
impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tmp(tag: &str) -> Tmp {
    let d = std::env::temp_dir().join(format!("wan-hub-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    Tmp(d)
}

/// Deterministic pseudo-random bytes.
fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as u8
        })
        .collect()
}

/// `root/tiny/`: LFS-like weights, a nested text file, a small config. Sorted order:
/// big.pth, config.json, sub/dir/tokenizer.json, weights-00001…, weights-00002….
fn make_repo(root: &Path) -> PathBuf {
    let d = root.join("tiny");
    std::fs::create_dir_all(d.join("sub/dir")).unwrap();
    std::fs::write(d.join("big.pth"), bytes(1_000_000, 1)).unwrap();
    std::fs::write(d.join("config.json"), br#"{"dim": 16, "num_layers": 2}"#).unwrap();
    std::fs::write(d.join("sub/dir/tokenizer.json"), bytes(40_000, 2)).unwrap();
    std::fs::write(d.join("weights-00001.safetensors"), bytes(300_000, 3)).unwrap();
    std::fs::write(d.join("weights-00002.safetensors"), bytes(500_000, 4)).unwrap();
    d
}

fn opts(hub: &MockHub) -> DownloadOptions {
    let mut o = DownloadOptions::new(hub.url());
    o.retries = 2;
    o.retry_delay = Duration::from_millis(10);
    o
}

/// Every file of `src` is in `dst` with identical bytes, and nothing else is.
fn assert_identical(src: &Path, dst: &Path) {
    fn files(d: &Path, base: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                files(&p, base, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().to_path_buf());
            }
        }
    }
    let (mut a, mut b) = (Vec::new(), Vec::new());
    files(src, src, &mut a);
    files(dst, dst, &mut b);
    a.sort();
    b.sort();
    assert_eq!(a, b, "file lists differ");
    for f in &a {
        assert!(
            std::fs::read(src.join(f)).unwrap() == std::fs::read(dst.join(f)).unwrap(),
            "{} differs",
            f.display()
        );
    }
}

fn served_for<'a>(log: &'a [Served], file: &str) -> Vec<&'a Served> {
    log.iter()
        .filter(|s| s.file == format!("tiny/{file}"))
        .collect()
}

fn wait_for(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn part_len(dest: &Path, file: &str) -> u64 {
    std::fs::metadata(dest.join(".download").join(format!("{file}.part")))
        .map(|m| m.len())
        .unwrap_or(0)
}

#[test]
fn full_download_is_byte_identical_and_progress_adds_up() {
    let t = tmp("full");
    let src = make_repo(&t.0.join("hub"));
    let hub = MockHub::start(&t.0.join("hub"), MockOptions::default()).unwrap();
    let dest = t.0.join("models/tiny");
    let mut seen: Vec<Progress> = Vec::new();
    let s = download(REPO, &dest, &opts(&hub), &mut |p| seen.push(p.clone())).unwrap();
    assert_identical(&src, &dest);
    assert!(!is_partial(&dest) && unfinished(&dest).is_none());
    let total = 1_000_000 + 28 + 40_000 + 300_000 + 500_000;
    assert_eq!(
        (s.files, s.total_bytes, s.received, s.reused),
        (5, total, total, 0)
    );
    assert_eq!(s.commit.len(), 40);
    // Monotonic to the total; the last event is the whole revision.
    assert!(seen.windows(2).all(|w| w[0].done <= w[1].done));
    let last = seen.last().unwrap();
    assert_eq!(
        (last.done, last.total, last.file_index, last.files),
        (total, total, 5, 5)
    );
    // Each file was sent exactly once, whole.
    // The client can have every byte before the server's thread records its last write.
    assert!(
        hub.wait_idle(Duration::from_secs(60)),
        "mock hub still busy"
    );
    let log = hub.served();
    assert_eq!(log.iter().map(|s| s.bytes).sum::<u64>(), total);
    assert!(log.iter().all(|s| s.start == 0 && s.status == 200));
    // Running again on the complete folder fetches nothing.
    hub.clear_log();
    let again = download(REPO, &dest, &opts(&hub), &mut |_| {}).unwrap();
    assert_eq!((again.received, again.reused), (0, total));
    assert!(hub.served().is_empty());
}

/// The tiny official checkpoint the app uses, through the same path as the E2E.
#[test]
fn fixture_checkpoint_downloads_identically() {
    let Some(fixtures) = common::fixtures_dir() else {
        return;
    };
    let t = tmp("fixture");
    let hub = MockHub::start(&fixtures.join("checkpoints"), MockOptions::default()).unwrap();
    let dest = t.0.join("ti2v_tiny");
    download("Wan-AI/ti2v_tiny", &dest, &opts(&hub), &mut |_| {}).unwrap();
    assert_identical(&fixtures.join("checkpoints/ti2v_tiny"), &dest);
}

/// Kill the `download` process mid-file, then resume: finished files are not requested
/// again and the partial file continues from the byte where it stopped.
#[test]
fn killed_mid_file_then_resumed_continues_the_part() {
    let t = tmp("kill");
    let src = make_repo(&t.0.join("hub"));
    let cut = 200_000u64;
    let hanging = MockHub::start(
        &t.0.join("hub"),
        MockOptions {
            hang_after: Some(("weights-00002.safetensors".into(), cut)),
            ..MockOptions::default()
        },
    )
    .unwrap();
    let dest = t.0.join("dl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_download"))
        .args([REPO, dest.to_str().unwrap(), "--endpoint", &hanging.url()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the part to reach the cut", 60, || {
        part_len(&dest, "weights-00002.safetensors") == cut
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(is_partial(&dest));
    for done in [
        "big.pth",
        "config.json",
        "sub/dir/tokenizer.json",
        "weights-00001.safetensors",
    ] {
        assert!(dest.join(done).is_file(), "{done} should be finished");
    }
    assert!(!dest.join("weights-00002.safetensors").exists());

    let hub = MockHub::start(&t.0.join("hub"), MockOptions::default()).unwrap();
    let s = download(REPO, &dest, &opts(&hub), &mut |_| {}).unwrap();
    assert_identical(&src, &dest);
    // The client can have every byte before the server's thread records its last write.
    assert!(
        hub.wait_idle(Duration::from_secs(60)),
        "mock hub still busy"
    );
    let log = hub.served();
    assert_eq!(
        log.iter()
            .map(|s| (s.file.as_str(), s.status, s.start, s.bytes))
            .collect::<Vec<_>>(),
        vec![("tiny/weights-00002.safetensors", 206, cut, 500_000 - cut)],
        "only the rest of the partial file may be sent"
    );
    assert_eq!(s.received, 500_000 - cut);
    assert!(!is_partial(&dest));
}

/// A connection dropped mid-file is resumed within the same run with a Range request.
#[test]
fn dropped_connection_is_resumed_in_the_same_run() {
    let t = tmp("drop");
    let src = make_repo(&t.0.join("hub"));
    let hub = MockHub::start(
        &t.0.join("hub"),
        MockOptions {
            cut_after: Some(("big.pth".into(), 123_456)),
            ..MockOptions::default()
        },
    )
    .unwrap();
    let dest = t.0.join("dl");
    download(REPO, &dest, &opts(&hub), &mut |_| {}).unwrap();
    assert_identical(&src, &dest);
    // The client can have every byte before the server's thread records its last write.
    assert!(
        hub.wait_idle(Duration::from_secs(60)),
        "mock hub still busy"
    );
    let log = hub.served();
    let big: Vec<(u16, u64, u64)> = served_for(&log, "big.pth")
        .iter()
        .map(|s| (s.status, s.start, s.bytes))
        .collect();
    assert_eq!(
        big,
        vec![(200, 0, 123_456), (206, 123_456, 1_000_000 - 123_456)]
    );
}

/// Cancel keeps the part; the next run continues it. A server that ignores Range makes
/// the client restart that file from zero rather than append a second copy.
#[test]
fn cancel_keeps_the_part_and_resume_continues_it() {
    let t = tmp("cancel");
    let src = make_repo(&t.0.join("hub"));
    let slow = MockHub::start(
        &t.0.join("hub"),
        MockOptions {
            bytes_per_sec: Some(500_000),
            ..MockOptions::default()
        },
    )
    .unwrap();
    let dest = t.0.join("dl");
    let cancel = CancelToken::new();
    let mut o = opts(&slow);
    o.cancel = Some(cancel.clone());
    let (d2, o2) = (dest.clone(), o.clone());
    let run = std::thread::spawn(move || download(REPO, &d2, &o2, &mut |_| {}));
    wait_for("part of big.pth", 60, || {
        part_len(&dest, "big.pth") >= 100_000
    });
    cancel.cancel();
    let err = run.join().unwrap().unwrap_err();
    assert_eq!(err.code(), "cancelled");
    let kept = part_len(&dest, "big.pth");
    assert!((100_000..1_000_000).contains(&kept), "{kept}");
    drop(slow);

    // Resume against a server that ignores Range: big.pth starts over (200, whole file).
    let hub = MockHub::start(
        &t.0.join("hub"),
        MockOptions {
            ignore_range: true,
            ..MockOptions::default()
        },
    )
    .unwrap();
    download(REPO, &dest, &opts(&hub), &mut |_| {}).unwrap();
    assert_identical(&src, &dest);
    // The client can have every byte before the server's thread records its last write.
    assert!(
        hub.wait_idle(Duration::from_secs(60)),
        "mock hub still busy"
    );
    let log = hub.served();
    let big: Vec<(u16, u64, u64)> = served_for(&log, "big.pth")
        .iter()
        .map(|s| (s.status, s.start, s.bytes))
        .collect();
    assert_eq!(big, vec![(200, 0, 1_000_000)]);
}

/// One flipped byte: a checksum error naming the file, the file not kept (neither at
/// its place nor as a part), earlier files kept for a later resume. Both hash kinds: LFS
/// sha256 and the git blob id of a small file.
#[test]
fn corrupted_byte_is_a_checksum_error_and_not_kept() {
    let t = tmp("corrupt");
    make_repo(&t.0.join("hub"));
    for (file, before) in [
        ("weights-00001.safetensors", "sub/dir/tokenizer.json"),
        ("config.json", "big.pth"),
    ] {
        let hub = MockHub::start(
            &t.0.join("hub"),
            MockOptions {
                corrupt: Some((file.into(), 7)),
                ..MockOptions::default()
            },
        )
        .unwrap();
        let dest = t.0.join(format!("dl-{file}"));
        let err = download(REPO, &dest, &opts(&hub), &mut |_| {}).unwrap_err();
        assert_eq!(err.code(), "checksum", "{err}");
        assert!(err.to_string().contains(file), "{err}");
        assert!(!dest.join(file).exists());
        assert_eq!(part_len(&dest, file), 0);
        assert!(!dest.join(".download").join(format!("{file}.part")).exists());
        assert!(dest.join(before).is_file());
        assert!(is_partial(&dest));
    }
}

#[test]
fn not_found_and_server_gone_are_clear_errors() {
    let t = tmp("404");
    make_repo(&t.0.join("hub"));
    let hub = MockHub::start(
        &t.0.join("hub"),
        MockOptions {
            missing: vec!["config.json".into()],
            ..MockOptions::default()
        },
    )
    .unwrap();
    let e = download("test-org/nope", &t.0.join("a"), &opts(&hub), &mut |_| {}).unwrap_err();
    assert_eq!(e.code(), "network");
    assert!(e.to_string().contains("repository not found"), "{e}");
    assert!(!t.0.join("a").exists());
    let mut o = opts(&hub);
    o.revision = "v9".into();
    let e = download(REPO, &t.0.join("b"), &o, &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("revision not found"), "{e}");
    let e = download(REPO, &t.0.join("c"), &opts(&hub), &mut |_| {}).unwrap_err();
    assert_eq!(e.code(), "network");
    assert!(
        e.to_string().contains("config.json") && e.to_string().contains("404"),
        "{e}"
    );
    let url = hub.url();
    hub.stop();
    let mut o = DownloadOptions::new(url);
    o.retry_delay = Duration::from_millis(1);
    let e = download(REPO, &t.0.join("d"), &o, &mut |_| {}).unwrap_err();
    assert_eq!(e.code(), "network");
    assert!(e.to_string().contains("cannot reach 127.0.0.1"), "{e}");
    assert!(!t.0.join("d").exists());
}

/// Not enough room for what is left: refused before any file byte is fetched or any
/// folder is created.
#[test]
fn disk_too_small_is_refused_before_starting() {
    let t = tmp("disk");
    make_repo(&t.0.join("hub"));
    let hub = MockHub::start(&t.0.join("hub"), MockOptions::default()).unwrap();
    let mut o = opts(&hub);
    o.free_bytes = Some(1_500_000);
    o.reserve_bytes = 0;
    let dest = t.0.join("dl");
    let e = download(REPO, &dest, &o, &mut |_| {}).unwrap_err();
    assert_eq!(e.code(), "disk_space", "{e}");
    assert!(e.to_string().contains("1840028 bytes needed"), "{e}");
    assert!(hub.served().is_empty());
    assert!(!dest.exists());
}

/// A folder that is neither new, nor complete, nor an unfinished download of this repo
/// is never written into.
#[test]
fn foreign_folders_are_refused() {
    let t = tmp("foreign");
    make_repo(&t.0.join("hub"));
    let hub = MockHub::start(&t.0.join("hub"), MockOptions::default()).unwrap();
    let dest = t.0.join("mine");
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::write(dest.join("notes.txt"), "keep me").unwrap();
    let e = download(REPO, &dest, &opts(&hub), &mut |_| {}).unwrap_err();
    assert_eq!(e.code(), "input");
    assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 1);
    let other = t.0.join("other");
    std::fs::create_dir_all(other.join(".download")).unwrap();
    std::fs::write(
        other.join(".download/state.json"),
        r#"{"repo":"x/else","revision":"main","commit":"c","endpoint":"e","files":[]}"#,
    )
    .unwrap();
    let e = download(REPO, &other, &opts(&hub), &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("x/else"), "{e}");
    assert!(hub.served().is_empty());
}
