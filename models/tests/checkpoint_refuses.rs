//! Every file of `checkpoints/malicious/` is refused by all three entry points — the
//! library loaders, `inspect_model` and `convert` — with the right error kind, no panic,
//! nothing executed (no `/tmp/PWNED_BY_PTH`) and nothing left at the destination.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use wan::checkpoint::safetensors::SafeTensors;
use wan::checkpoint::{Checkpoint, Expert, PthFile, Shards};

const MARKER: &str = "/tmp/PWNED_BY_PTH";

/// (entry of `malicious/`, expected `Error::code`, a word the message must contain)
const CASES: &[(&str, &str, &str)] = &[
    ("bad_json_header.safetensors", "format", "JSON"),
    ("header_len_past_eof.safetensors", "format", "header length"),
    ("huge_header_len.safetensors", "format", "header length"),
    ("negative_shape.safetensors", "format", "shape"),
    (
        "offsets_out_of_bounds.safetensors",
        "format",
        "data_offsets",
    ),
    ("overlapping_offsets.safetensors", "format", "overlap"),
    ("shape_mismatch.safetensors", "format", "bytes"),
    ("shape_overflow.safetensors", "format", "too large"),
    ("truncated.safetensors", "format", "truncated"),
    ("truncated_header.safetensors", "format", "header length"),
    ("unknown_dtype.safetensors", "format", "F128"),
    ("evil.pth", "pickle", "__builtin__.exec"),
    ("storage_too_small.pth", "format", "storage record"),
    ("truncated.pth", "format", "zip"),
    ("view_out_of_bounds.pth", "format", "view"),
    ("config_absurd_dims", "config", "dim"),
    (
        "config_wrong_types",
        "config",
        "`num_heads` must be an integer",
    ),
    ("index_path_traversal", "format", "plain file name"),
];

fn malicious() -> Option<PathBuf> {
    common::fixture("checkpoints/malicious")
}

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wan-refuse-test-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The library entry point for one path: a folder goes through `Checkpoint`, a file
/// through its reader.
fn load(path: &Path) -> wan::Result<()> {
    if path.is_dir() {
        let ck = Checkpoint::open(path)?;
        ck.load_dit(Expert::Main)?;
        return Ok(());
    }
    match path.extension().and_then(|e| e.to_str()) {
        Some("pth") => PthFile::open(path).map(|_| ()),
        _ => {
            SafeTensors::open(path)?;
            Shards::single(path).map(|_| ())
        }
    }
}

fn assert_no_marker() {
    assert!(
        !Path::new(MARKER).exists(),
        "{MARKER} exists: pickle code was executed"
    );
}

#[test]
fn library_loaders_refuse_every_malicious_file() {
    let Some(dir) = malicious() else { return };
    for &(name, code, word) in CASES {
        let err = load(&dir.join(name)).expect_err(name);
        assert_eq!(err.code(), code, "{name}: {err}");
        assert!(
            err.to_string().contains(word),
            "{name}: `{err}` lacks `{word}`"
        );
        assert_no_marker();
    }
}

#[test]
fn inspect_model_refuses_every_malicious_file() {
    let Some(dir) = malicious() else { return };
    for &(name, code, word) in CASES {
        let out = Command::new(env!("CARGO_BIN_EXE_inspect_model"))
            .arg(dir.join(name))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(err.starts_with(&format!("error[{code}]")), "{name}: {err}");
        assert!(err.contains(word), "{name}: {err}");
        assert!(out.stdout.is_empty(), "{name}: printed a report");
        assert_no_marker();
    }
}

/// A folder `convert` would accept, except for one hostile component: the tiny official
/// TI2V folder (linked) with the malicious file in place of its DiT / VAE / T5.
fn hostile_folder(root: &Path, dir: &Path, name: &str) -> PathBuf {
    let src = dir.join(name);
    if src.is_dir() {
        return src; // config_* and index_path_traversal are whole folders already
    }
    let ti2v = dir.join("../ti2v_tiny");
    let f = root.join(name.replace('.', "_"));
    std::fs::create_dir_all(&f).unwrap();
    let link = |from: &Path, to: &str| std::os::unix::fs::symlink(from, f.join(to)).unwrap();
    link(&ti2v.join("config.json"), "config.json");
    link(&ti2v.join("google"), "google");
    if name.ends_with(".pth") {
        for e in std::fs::read_dir(&ti2v).unwrap() {
            let e = e.unwrap().file_name();
            let e = e.to_string_lossy();
            if e.starts_with("diffusion_pytorch_model") || e == "Wan2.2_VAE.pth" {
                link(&ti2v.join(&*e), &e);
            }
        }
        link(&src, "models_t5_umt5-xxl-enc-bf16.pth");
    } else {
        link(&src, "diffusion_pytorch_model.safetensors");
        link(&ti2v.join("Wan2.2_VAE.pth"), "Wan2.2_VAE.pth");
    }
    f
}

#[test]
fn convert_refuses_every_malicious_file_and_writes_nothing() {
    let Some(dir) = malicious() else { return };
    let root = scratch("convert");
    for &(name, code, word) in CASES {
        let src = hostile_folder(&root.join("in"), &dir, name);
        let dst = root.join("out").join(name);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_convert"))
            .arg(&src)
            .arg(&dst)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(err.starts_with(&format!("error[{code}]")), "{name}: {err}");
        assert!(err.contains(word), "{name}: {err}");
        assert!(!dst.exists(), "{name}: output folder created");
        let left: Vec<_> = std::fs::read_dir(dst.parent().unwrap())
            .unwrap()
            .filter_map(|e| e.ok())
            .collect();
        assert!(left.is_empty(), "{name}: left {left:?}");
        assert_no_marker();
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn missing_shard_is_named() {
    let Some(dir) = malicious() else { return };
    let root = scratch("missing");
    let f = root.join("ck");
    std::fs::create_dir_all(&f).unwrap();
    std::fs::copy(
        dir.join("index_path_traversal/config.json"),
        f.join("config.json"),
    )
    .unwrap();
    std::fs::write(
        f.join("diffusion_pytorch_model.safetensors.index.json"),
        r#"{"weight_map": {"a": "diffusion_pytorch_model-00001-of-00002.safetensors"}}"#,
    )
    .unwrap();
    let err = Checkpoint::open(&f)
        .unwrap()
        .load_dit(Expert::Main)
        .unwrap_err();
    assert_eq!(err.code(), "missing");
    assert!(
        err.to_string()
            .contains("diffusion_pytorch_model-00001-of-00002.safetensors")
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn existing_destination_is_refused_untouched() {
    let Some(dir) = malicious() else { return };
    let root = scratch("exists");
    let dst = root.join("dst");
    std::fs::create_dir_all(&dst).unwrap();
    std::fs::write(dst.join("keep"), "x").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_convert"))
        .arg(dir.join("../ti2v_tiny"))
        .arg(&dst)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error[input]"), "{err}");
    assert_eq!(std::fs::read_to_string(dst.join("keep")).unwrap(), "x");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn killed_convert_leaves_no_valid_looking_folder() {
    let Some(dir) = malicious() else { return };
    let root = scratch("killed");
    let dst = root.join("dst");
    let mut child = Command::new(env!("CARGO_BIN_EXE_convert"))
        .arg(dir.join("../ti2v_tiny"))
        .arg(&dst)
        .args(["--shard-size", "100K"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _ = child.kill();
    let status = child.wait().unwrap();
    if status.success() {
        // Finished before the kill: then the folder must be complete.
        let ck = Checkpoint::open(&dst).unwrap();
        ck.load_dit(Expert::Main).unwrap();
    } else {
        // Killed: whatever was written is in a hidden temp folder, never at `dst`.
        assert!(!dst.exists(), "a killed convert left {}", dst.display());
        assert!(Checkpoint::open(&dst).is_err());
    }
    let _ = std::fs::remove_dir_all(&root);
}
