//! LoRA end to end: train adapters on the tiny TI2V checkpoint's DiT for a few steps, save
//! them, and load them with `generate --lora FILE --lora_scale S`: scale 0 reproduces the
//! base clip bit for bit, scale 1 changes it.
use std::path::{Path, PathBuf};
use std::process::Command;

use wan::checkpoint::Checkpoint;
use wan::checkpoint::folder::Expert;
use wan::train::lora::{LoraConfig, LoraWan};
use wan::train::{AdamWConfig, FlowBatch, LrSchedule, Rng, Trainer};

mod common;

fn frames(dir: &Path) -> Vec<Vec<u8>> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no frames in {}", dir.display());
    names.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

#[test]
fn generate_applies_a_trained_lora_with_its_scale() {
    let Some(fx) = common::fixtures_dir() else {
        return;
    };
    let ckpt = fx.join("checkpoints/ti2v_tiny");
    let tmp = std::env::temp_dir().join(format!("wan-gen-lora-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();

    // A few LoRA steps on random flow-matching batches shaped like the checkpoint's latents.
    let model = Checkpoint::open(&ckpt)
        .unwrap()
        .load_dit(Expert::Main)
        .unwrap();
    let (c, td) = (model.config.in_dim, model.config.text_dim);
    let mut rng = Rng::new(11);
    let mut key = || rng.mlx_key().unwrap();
    let shape = [1, c, 2, 4, 4];
    let batch = FlowBatch {
        x0: mlx_rs::random::normal::<f32>(&shape[..], None, None, &key()).unwrap(),
        noise: mlx_rs::random::normal::<f32>(&shape[..], None, None, &key()).unwrap(),
        sigma: vec![0.6],
        context: vec![mlx_rs::random::normal::<f32>(&[6, td][..], None, None, &key()).unwrap()],
    };
    let mut lora = LoraWan::new(model, LoraConfig::new(4), &mut Rng::new(3)).unwrap();
    let mut trainer = Trainer::new(
        AdamWConfig {
            weight_decay: 0.0,
            ..Default::default()
        },
        LrSchedule::constant(1e-2),
    );
    for _ in 0..3 {
        trainer
            .step(&mut lora, std::slice::from_ref(&batch))
            .unwrap();
    }
    let lora_path = tmp.join("lora.safetensors");
    lora.save(&lora_path).unwrap();

    let run = |tag: &str, extra: &[&str]| -> Vec<Vec<u8>> {
        let frames_dir = tmp.join(format!("frames-{tag}"));
        let out = Command::new(env!("CARGO_BIN_EXE_generate"))
            .args([
                "--task",
                "ti2v-5B",
                "--ckpt_dir",
                ckpt.to_str().unwrap(),
                "--any_size",
            ])
            .args([
                "--size",
                "64*64",
                "--frame_num",
                "5",
                "--sample_steps",
                "2",
                "--base_seed",
                "7",
            ])
            .args([
                "--prompt",
                "A red fox runs through fresh snow.",
                "--negative_prompt",
                "blurry",
            ])
            .args([
                "--save_file",
                tmp.join(format!("{tag}.mp4")).to_str().unwrap(),
            ])
            .args(["--frames_dir", frames_dir.to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{tag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        frames(&frames_dir)
    };
    let lora_arg = lora_path.to_str().unwrap();
    let base = run("base", &[]);
    let zero = run("zero", &["--lora", lora_arg, "--lora_scale", "0"]);
    let one = run("one", &["--lora", lora_arg, "--lora_scale", "1"]);
    assert_eq!(base, zero, "scale 0 must reproduce the base clip exactly");
    assert_ne!(base, one, "scale 1 must change the clip");
    let side: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.join("one.mp4.json")).unwrap()).unwrap();
    assert_eq!(side["lora_scale"].as_f64(), Some(1.0), "{side}");
    std::fs::remove_dir_all(&tmp).unwrap();
}
