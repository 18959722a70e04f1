//! `train_lora` end to end on the tiny TI2V checkpoint: a dataset folder with hostile names
//! (spaces, unicode) holding 2 mp4 clips and 1 png with captions; the first run encodes
//! and caches all three, a second run (with `--grad-checkpoint`) hits the cache only;
//! `--resume` continues a run exactly; the cached latent equals a fresh VAE encode; an
//! edited caption re-encodes only its text; the LoRA file merges into the DiT and changes
//! its output (scale 0 leaves it untouched). A second folder with a broken video, a
//! too-short clip and a caption-less image fails with all three named.
use std::path::{Path, PathBuf};
use std::process::Command;

use wan::checkpoint::Checkpoint;
use wan::checkpoint::folder::Expert;
use wan::dit::{DitInput, Timesteps};
use wan::train::data::cache::{CacheStats, file_hash, latent_key, model_identity};
use wan::train::data::folder::{ClipSpec, DatasetFolder, MediaKind, clip_tensor, load_clip};
use wan::train::finetune::{FinetuneConfig, prepare_data};
use wan::train::lora::merge_lora;
use wan::video::{Frames, write_mp4};

mod common;
use common::max_diff;

/// A moving coloured square on a gradient, `n` frames of `w × h`.
fn clip(w: u32, h: u32, n: usize, hue: u8) -> Frames {
    let frames = (0..n)
        .map(|t| {
            let mut f = Vec::with_capacity((w * h * 3) as usize);
            for y in 0..h {
                for x in 0..w {
                    let inside = (x as usize).abs_diff(10 + 6 * t) < 8 && y.abs_diff(h / 2) < 8;
                    let px = if inside {
                        [hue, 255 - hue, 40]
                    } else {
                        [(x * 255 / w) as u8, (y * 255 / h) as u8, 128]
                    };
                    f.extend_from_slice(&px);
                }
            }
            f
        })
        .collect();
    Frames {
        width: w,
        height: h,
        frames,
    }
}

fn caption(dir: &Path, stem: &str, text: &str) {
    std::fs::write(dir.join(format!("{stem}.txt")), text).unwrap();
}

fn train(ckpt: &Path, data: &Path, out: &Path, steps: u32, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_train_lora"))
        .args([
            "--ckpt",
            ckpt.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
        ])
        .args(["--out", out.to_str().unwrap()])
        .args(["--size", "64x64", "--frames", "5", "--rank", "4"])
        .args(["--steps", &steps.to_string()])
        .args(["--lr", "1e-2", "--seed", "3", "--quiet"])
        .args(extra)
        .output()
        .unwrap()
}

fn summary(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap()
}

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|r| {
            r.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "safetensors"))
            })
            .count()
        })
        .unwrap_or(0)
}

#[test]
fn train_lora_on_a_folder_caches_and_produces_a_usable_lora() {
    let Some(fx) = common::fixtures_dir() else {
        return;
    };
    let ckpt = fx.join("checkpoints/ti2v_tiny");
    let tmp = std::env::temp_dir().join(format!("wan-lora-folder-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let data: PathBuf = tmp.join("my clips ✓");
    std::fs::create_dir_all(&data).unwrap();

    write_mp4(&data.join("clip one.mp4"), &clip(96, 72, 7, 220), 16).unwrap();
    caption(
        &data,
        "clip one",
        "A red square slides right over a gradient.",
    );
    write_mp4(&data.join("clïp-2.mp4"), &clip(80, 80, 6, 30), 16).unwrap();
    caption(&data, "clïp-2", "A green square slides right.");
    let still = clip(100, 60, 1, 128);
    image::save_buffer(
        data.join("still ✓.png"),
        &still.frames[0],
        100,
        60,
        image::ExtendedColorType::Rgb8,
    )
    .unwrap();
    caption(&data, "still ✓", "A still frame with a square.");
    std::fs::write(data.join("notes.json"), "{}").unwrap(); // ignored: not media

    // Run 1: everything is encoded and cached.
    let out1 = tmp.join("out1");
    let r = train(&ckpt, &data, &out1, 3, &[]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let s1 = summary(&out1);
    assert_eq!(s1["items"], 3, "{s1}");
    assert_eq!(
        (s1["cached"].as_u64(), s1["encoded"].as_u64()),
        (Some(0), Some(3)),
        "{s1}"
    );
    assert_eq!(s1["text_encoded"], 3, "{s1}");
    let cache = data.join(".wan_cache");
    assert_eq!(count(&cache.join("latents")), 3);
    assert_eq!(count(&cache.join("text")), 3);
    let loss = s1["final_loss"].as_f64().unwrap();
    assert!(loss.is_finite() && loss > 0.0, "{s1}");
    let log = std::fs::read_to_string(out1.join("train.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 3, "one JSON line per step");

    // Run 2 (gradient checkpointing): nothing is re-encoded.
    let out2 = tmp.join("out2");
    let r = train(&ckpt, &data, &out2, 3, &["--grad-checkpoint"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let s2 = summary(&out2);
    assert_eq!(
        (s2["cached"].as_u64(), s2["encoded"].as_u64()),
        (Some(3), Some(0)),
        "{s2}"
    );
    assert_eq!(
        (s2["text_cached"].as_u64(), s2["text_encoded"].as_u64()),
        (Some(3), Some(0))
    );
    assert_eq!(s2["grad_checkpoint"], true);
    // Same data, seed and cache → the same first loss with or without checkpointing.
    let (l1, l2) = (
        s1["first_loss"].as_f64().unwrap(),
        s2["first_loss"].as_f64().unwrap(),
    );
    assert!((l1 - l2).abs() <= 1e-4 * l1.abs(), "{l1} vs {l2}");

    // Resuming run 2 to step 5 continues exactly like an uninterrupted 5-step run.
    let r = train(&ckpt, &data, &out2, 5, &["--grad-checkpoint", "--resume"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(summary(&out2)["resumed_from"], 3);
    let out5 = tmp.join("out5");
    let r = train(&ckpt, &data, &out5, 5, &["--grad-checkpoint"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let losses = |out: &Path| -> Vec<f64> {
        std::fs::read_to_string(out.join("train.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"]
                    .as_f64()
                    .unwrap()
            })
            .collect()
    };
    let (resumed, straight) = (losses(&out2), losses(&out5));
    assert_eq!(resumed.len(), 5, "the log continues on resume");
    assert_eq!(
        resumed, straight,
        "resume must replay the uninterrupted run"
    );

    // The cached latent of the first clip equals a fresh encode.
    let ck = Checkpoint::open(&ckpt).unwrap();
    let ds = DatasetFolder::scan(&data).unwrap();
    let item = ds
        .items
        .iter()
        .find(|i| i.kind == MediaKind::Video)
        .unwrap();
    let spec = ClipSpec {
        width: 64,
        height: 64,
        frames: 5,
    };
    let vae = ck.load_vae().unwrap();
    let fresh = vae
        .encode(&clip_tensor(&load_clip(item, &spec).unwrap()).unwrap())
        .unwrap();
    assert_eq!(fresh.shape(), &[48, 2, 4, 4]);
    let key = latent_key(
        &file_hash(&item.media).unwrap(),
        &spec,
        5,
        &model_identity(ck.vae.as_ref().unwrap()).unwrap(),
    );
    let st = wan::checkpoint::safetensors::SafeTensors::open(
        cache.join("latents").join(format!("{key}.safetensors")),
    )
    .unwrap();
    assert!(max_diff(&st.array("latent").unwrap(), &fresh) < 1e-6);
    drop(vae);

    // An edited caption re-encodes only that caption; a touched (unchanged) video nothing.
    caption(&data, "clïp-2", "A green square slides left.");
    let f = std::fs::File::options()
        .append(true)
        .open(&item.media)
        .unwrap();
    f.set_modified(std::time::SystemTime::now()).unwrap();
    let mut cfg = FinetuneConfig::new(ckpt.clone(), data.clone(), tmp.join("unused"));
    cfg.spec = spec;
    let stats = prepare_data(&cfg, &ck).unwrap().stats;
    let want = CacheStats {
        cached: 3,
        encoded: 0,
        text_cached: 2,
        text_encoded: 1,
    };
    assert_eq!(stats, want);

    // The LoRA merges into the DiT (what `generate --lora` does) and changes its output.
    let lora = out1.join("lora.safetensors");
    let run = |scale: Option<f32>| {
        let mut m = ck.load_dit(Expert::Main).unwrap();
        if let Some(s) = scale {
            assert_eq!(merge_lora(&mut m, &lora, s).unwrap(), 2 * 10);
        }
        let x = mlx_rs::random::normal::<f32>(
            &[1, 48, 2, 4, 4][..],
            None,
            None,
            &mlx_rs::random::key(1).unwrap(),
        )
        .unwrap();
        let ctx = vec![
            mlx_rs::random::normal::<f32>(
                &[5, m.config.text_dim][..],
                None,
                None,
                &mlx_rs::random::key(2).unwrap(),
            )
            .unwrap(),
        ];
        m.forward(
            &DitInput {
                x: &x,
                t: &Timesteps::PerSample(vec![500.0]),
                context: &ctx,
                y: None,
            },
            None,
        )
        .unwrap()
    };
    let base = run(None);
    assert_eq!(
        max_diff(&run(Some(0.0)), &base),
        0.0,
        "scale 0 must be the base"
    );
    let moved = max_diff(&run(Some(1.0)), &base);
    assert!(moved > 1e-5, "the trained LoRA changes nothing ({moved})");

    // A folder with problems: every one is named, nothing is trained.
    let bad = tmp.join("bad set");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::copy(data.join("clip one.mp4"), bad.join("good.mp4")).unwrap();
    caption(&bad, "good", "fine");
    std::fs::write(bad.join("broken.mp4"), b"this is not a video").unwrap();
    caption(&bad, "broken", "broken");
    write_mp4(&bad.join("short.mp4"), &clip(64, 64, 3, 90), 16).unwrap();
    caption(&bad, "short", "too short");
    std::fs::copy(data.join("still ✓.png"), bad.join("no caption.png")).unwrap();
    let out3 = tmp.join("out3");
    let r = train(&ckpt, &bad, &out3, 3, &[]);
    assert!(!r.status.success());
    let err = String::from_utf8_lossy(&r.stderr);
    for name in [
        "broken.mp4",
        "short.mp4: clip too short: 3 frame(s), need 5",
        "no caption.png: no caption",
    ] {
        assert!(err.contains(name), "`{name}` not in:\n{err}");
    }
    assert!(err.contains("3 problem(s)"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!out3.join("lora.safetensors").exists());

    // An empty folder is an error too, not a panic.
    let empty = tmp.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let r = train(&ckpt, &empty, &tmp.join("out4"), 3, &[]);
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("no training media"));
    std::fs::remove_dir_all(&tmp).unwrap();
}
