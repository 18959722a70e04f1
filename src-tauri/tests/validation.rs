//! Rust-side validation of what the UI sends: settings, checkpoint folders, memory,
//! image paths, export targets, persisted settings.
mod common;

use std::path::Path;

use wan::config::Task;
use wan::pipeline::{GenerateParams, SolverKind};
use wan_studio::checkpoint::{self, CheckpointInfo};
use wan_studio::commands::generate::{check_continuation, check_memory, image_dims, validate};
use wan_studio::settings::Settings;

const GIB: u64 = 1 << 30;

/// One change to otherwise valid settings.
type Edit = Box<dyn Fn(&mut GenerateParams)>;

fn params() -> GenerateParams {
    GenerateParams {
        task: Task::Ti2v5B,
        prompt: "a fox in the snow".into(),
        negative_prompt: None,
        size: (96, 64),
        frame_num: 5,
        sample_steps: 2,
        sample_shift: 5.0,
        guide_scale: (5.0, 5.0),
        solver: SolverKind::Unipc,
        seed: 1,
        image: None,
        step_cache: Default::default(),
        lora: None,
    }
}

/// A minimal ti2v checkpoint folder laid out like the official release.
fn fake_ckpt(dir: &Path) {
    std::fs::write(
        dir.join("config.json"),
        r#"{"dim": 256, "num_layers": 2, "num_heads": 2, "model_type": "ti2v"}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("diffusion_pytorch_model.safetensors.index.json"),
        r#"{"weight_map": {"a": "s-1.safetensors", "b": "s-2.safetensors"}}"#,
    )
    .unwrap();
    for f in [
        "s-1.safetensors",
        "s-2.safetensors",
        "Wan2.2_VAE.pth",
        "models_t5_umt5-xxl-enc-bf16.pth",
    ] {
        std::fs::write(dir.join(f), [0u8; 1000]).unwrap();
    }
    std::fs::create_dir_all(dir.join("google/umt5-xxl")).unwrap();
    std::fs::write(dir.join("google/umt5-xxl/tokenizer.json"), "{}").unwrap();
}

fn ckpt() -> (tempfile::TempDir, CheckpointInfo) {
    let d = tempfile::tempdir().unwrap();
    fake_ckpt(d.path());
    let info = checkpoint::inspect(d.path()).unwrap();
    (d, info)
}

#[test]
fn a_complete_folder_is_recognised_with_its_size() {
    let (_d, info) = ckpt();
    assert!(info.problems.is_empty(), "{:?}", info.problems);
    assert_eq!(info.task, Some(Task::Ti2v5B));
    assert_eq!(info.name, "ti2v-5B (dim 256, 2 layers)");
    assert_eq!(info.total_bytes, 4000);
}

#[test]
fn every_missing_piece_is_named() {
    let (d, _) = ckpt();
    std::fs::remove_file(d.path().join("s-2.safetensors")).unwrap();
    std::fs::remove_file(d.path().join("Wan2.2_VAE.pth")).unwrap();
    std::fs::remove_file(d.path().join("google/umt5-xxl/tokenizer.json")).unwrap();
    let p = checkpoint::inspect(d.path()).unwrap().problems.join("\n");
    assert!(p.contains("s-2.safetensors"), "{p}");
    assert!(p.contains("Wan2.2_VAE.pth"), "{p}");
    assert!(p.contains("tokenizer"), "{p}");
    let empty = tempfile::tempdir().unwrap();
    let p = checkpoint::inspect(empty.path())
        .unwrap()
        .problems
        .join("\n");
    assert!(p.contains("config.json is missing"), "{p}");
    assert_eq!(
        checkpoint::inspect(&empty.path().join("nope"))
            .unwrap_err()
            .code,
        "input"
    );
}

#[test]
fn shard_names_cannot_escape_the_folder() {
    let (d, _) = ckpt();
    std::fs::write(
        d.path()
            .join("diffusion_pytorch_model.safetensors.index.json"),
        r#"{"weight_map": {"a": "../../etc/passwd"}}"#,
    )
    .unwrap();
    let info = checkpoint::inspect(d.path()).unwrap();
    assert!(info.problems.iter().any(|p| p.contains("passwd")));
}

#[test]
fn the_official_tiny_folder_is_usable() {
    for (name, task) in [
        ("ti2v_tiny", Task::Ti2v5B),
        ("t2v_a14b_tiny", Task::T2vA14B),
        ("i2v_a14b_tiny", Task::I2vA14B),
    ] {
        let Some(dir) = common::tiny_folder(name) else {
            return;
        };
        let info = checkpoint::inspect(&dir).unwrap();
        assert!(info.problems.is_empty(), "{name}: {:?}", info.problems);
        assert_eq!(info.task, Some(task));
    }
}

#[test]
fn good_settings_pass_and_each_bad_one_is_refused_with_a_reason() {
    let (_d, info) = ckpt();
    validate(&params(), &info).unwrap();
    let cases: Vec<(&str, Edit)> = vec![
        ("prompt is empty", Box::new(|p| p.prompt = "  ".into())),
        ("multiple of 32", Box::new(|p| p.size = (100, 64))),
        ("larger than", Box::new(|p| p.size = (4096, 4096))),
        ("4n+1", Box::new(|p| p.frame_num = 6)),
        ("steps", Box::new(|p| p.sample_steps = 0)),
        ("shift", Box::new(|p| p.sample_shift = f64::NAN)),
        ("guidance", Box::new(|p| p.guide_scale = (5.0, 99.0))),
        ("absolute", Box::new(|p| p.image = Some("cat.png".into()))),
        (
            "not an image",
            Box::new(|p| p.image = Some("/etc/passwd".into())),
        ),
        ("limited", Box::new(|p| p.prompt = "x".repeat(5000))),
    ];
    for (why, edit) in cases {
        let mut p = params();
        edit(&mut p);
        let e = validate(&p, &info).unwrap_err();
        assert_eq!(e.code, "input", "{why}: {e}");
        assert!(
            e.message.contains(why),
            "expected `{why}` in `{}`",
            e.message
        );
    }
}

#[test]
fn task_must_match_the_checkpoint() {
    let (_d, info) = ckpt();
    let mut p = params();
    p.task = Task::T2vA14B;
    p.guide_scale = (3.0, 4.0);
    let e = validate(&p, &info).unwrap_err();
    assert_eq!(e.code, "checkpoint", "{e}");
    // i2v needs an image.
    p.task = Task::I2vA14B;
    assert!(
        validate(&p, &info)
            .unwrap_err()
            .message
            .contains("needs an image")
    );
}

/// The memory check is the library's plan on the real tiny folder: a small run fits and
/// reports its plan; one that no plan fits is refused (code `memory`) with what would fit.
#[test]
fn a_run_no_memory_plan_fits_is_refused_with_a_suggestion() {
    let Some(dir) = common::tiny_folder("ti2v_tiny") else {
        return;
    };
    let info = checkpoint::inspect(&dir).unwrap();
    let plan = check_memory(&params(), &info, 16 * GIB, None).unwrap();
    assert!(plan.fits && plan.predicted_peak_bytes > 0, "{plan:?}");
    assert!(plan.summary.starts_with("≈ ") && plan.summary.contains("of 16.0 GB"));
    // The largest run the form allows: the CPU's attention scores alone need far more.
    let mut big = params();
    big.size = (1920, 1088);
    big.frame_num = 241;
    let e = check_memory(&big, &info, 16 * GIB, None).unwrap_err();
    assert_eq!(e.code, "memory", "{e}");
    assert!(e.message.contains("would fit:"), "{e}");
    assert!(e.message.contains("frames"), "{e}");
    // The plan grows with the job.
    let report = checkpoint::plan(&info, &big, 16 * GIB, None).unwrap();
    assert!(!report.fits && report.predicted_peak_bytes > plan.predicted_peak_bytes * 100);
    // A folder that is not a checkpoint cannot be planned: a checkpoint error.
    let (_d, fake) = ckpt();
    assert_eq!(
        checkpoint::plan(&fake, &params(), 16 * GIB, None)
            .unwrap_err()
            .code,
        "checkpoint"
    );
}

/// An image the official size rules cannot fit to the area (they divide by zero) is
/// refused at validation, with the reason; a normal one passes.
#[test]
fn images_the_official_size_rules_cannot_fit_are_refused() {
    let (_d, info) = ckpt();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, w: u32, h: u32| {
        let png = wan_studio::gallery::encode_png(w, h, &vec![0; (w * h * 3) as usize]).unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, png).unwrap();
        path
    };
    let mut p = params();
    p.image = Some(write("ok.png", 64, 96));
    validate(&p, &info).unwrap();
    // 3000×100 at the area 96·64: the official best_output_size divides by zero.
    p.image = Some(write("strip.png", 3000, 100));
    let e = validate(&p, &info).unwrap_err();
    assert_eq!(e.code, "input", "{e}");
    assert!(e.message.contains("cannot be fitted"), "{e}");
    // The same image fits a larger area.
    p.size = (1280, 704);
    validate(&p, &info).unwrap();
}

#[test]
fn image_sizes_come_from_png_and_jpeg_headers() {
    let png = wan_studio::gallery::encode_png(7, 3, &[0; 7 * 3 * 3]).unwrap();
    assert_eq!(image_dims(&png), Some((7, 3)));
    // JPEG: SOI, an APP0 segment, then SOF0 with height 480, width 640.
    let mut jpg = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0, 0];
    jpg.extend([
        0xFF, 0xC0, 0x00, 0x11, 0x08, 0x01, 0xE0, 0x02, 0x80, 3, 0, 0, 0, 0,
    ]);
    assert_eq!(image_dims(&jpg), Some((640, 480)));
    assert_eq!(image_dims(b"GIF89a......"), None);
}

#[test]
fn settings_persist_and_a_corrupt_file_falls_back_to_defaults() {
    let d = tempfile::tempdir().unwrap();
    let s = Settings {
        checkpoint_dir: Some("/models/ti2v".into()),
        last_params: Some(params()),
        prompt_history: vec!["a fox".into(), "a boat".into()],
        appearance: wan_studio::settings::Appearance::Dark,
        models_dir: Some("/Volumes/big/models".into()),
    };
    s.save(d.path()).unwrap();
    assert_eq!(Settings::load(d.path()), s);
    std::fs::write(d.path().join("settings.json"), b"{oops").unwrap();
    assert_eq!(Settings::load(d.path()), Settings::default());
}

#[test]
fn export_only_to_a_new_mp4_outside_the_gallery() {
    let d = tempfile::tempdir().unwrap();
    let g = wan_studio::gallery::Gallery::open(d.path().join("g")).unwrap();
    assert_eq!(
        g.export("1-0", &d.path().join("x.mp4")).unwrap_err().code,
        "not_found"
    );
}

#[test]
fn a_continuation_names_an_existing_clip_and_has_an_image() {
    let d = tempfile::tempdir().unwrap();
    let g = wan_studio::gallery::Gallery::open(d.path().join("g")).unwrap();
    // Not a continuation: nothing to check.
    assert!(check_continuation(&g, None, &params()).is_ok());
    let gone = check_continuation(&g, Some("1-0"), &params()).unwrap_err();
    assert_eq!(gone.code, "not_found");
    assert!(gone.message.contains("is gone"), "{}", gone.message);
    assert_eq!(
        check_continuation(&g, Some("../etc"), &params())
            .unwrap_err()
            .code,
        "input"
    );
    // An existing clip, but no image: refused.
    let dir = g.root().join("1-0");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("clip.mp4"), b"x").unwrap();
    std::fs::write(dir.join("poster.png"), b"x").unwrap();
    let mut rec = serde_json::json!({
        "id": "1-0", "created_unix_ms": 1, "params": params(), "negative_prompt_used": "",
        "model": {"path": "/c", "name": "tiny", "engine": "fake"}, "width": 96, "height": 64,
        "frames": 5, "fps": 24, "timings": {"load_s": 0.0, "text_s": 0.0, "denoise_s": 0.0, "decode_s": 0.0},
        "wall_s": 1.0
    });
    rec["params"]["prompt"] = "parent".into();
    std::fs::write(dir.join("record.json"), rec.to_string()).unwrap();
    let no_image = check_continuation(&g, Some("1-0"), &params()).unwrap_err();
    assert_eq!(no_image.code, "input");
    let mut p = params();
    p.image = Some(dir.join("last.png"));
    assert!(check_continuation(&g, Some("1-0"), &p).is_ok());
}

/// `wan-studio --self-check` (what bundle.sh runs on the built .app): MLX computes, the
/// ffmpeg in use is reported with its source; with none found it fails, with the fix.
#[test]
fn self_check_reports_mlx_and_ffmpeg_and_fails_without_ffmpeg() {
    let d = tempfile::tempdir().unwrap();
    let fake = d.path().join("ffmpeg");
    std::fs::write(&fake, "#!/bin/sh\nexit 0\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let run = |search: &Path| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_wan-studio"))
            .arg("--self-check")
            .env_remove("WAN_FFMPEG")
            .env("WAN_FFMPEG_SEARCH_PATH", search)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        (o.status.code(), v)
    };
    let (code, v) = run(d.path());
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["ok"], true);
    assert_eq!(v["mlx"]["matmul"], "ok");
    assert_eq!(v["ffmpeg"]["source"], "path");
    assert_eq!(v["ffmpeg"]["path"], fake.to_str().unwrap());
    let (code, v) = run(&d.path().join("empty"));
    assert_eq!(code, Some(1));
    assert_eq!(v["ok"], false);
    assert!(
        v["ffmpeg"]["error"]
            .as_str()
            .unwrap()
            .contains("ffmpeg was not found"),
        "{v}"
    );
}
