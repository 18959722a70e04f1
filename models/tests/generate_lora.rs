//! LoRA end to end: train adapters on the tiny TI2V checkpoint's DiT for a few steps, save
//! them, and load them with `generate --lora FILE --lora_scale S`: scale 0 reproduces the
//! base clip bit for bit, scale 1 changes it.
use std::path::{Path, PathBuf};
use std::process::Command;

use wan::checkpoint::Checkpoint;
use wan::checkpoint::folder::Expert;
use wan::lora_file::LoraSpec;
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

/// A14B LoRAs are trained per expert (`train_lora --expert`, Lightning's high/low pair): a
/// per-expert file goes into that expert only, a Lightning-layout folder gives each expert its
/// own file, a plain file goes into both; a one-DiT task refuses per-expert files.
#[test]
fn a14b_lora_goes_into_the_chosen_expert_only() {
    use std::collections::BTreeMap;
    use wan::pipeline::{Experts, LoadOptions, load_models};
    let Some(fx) = common::fixtures_dir() else {
        return;
    };
    let ck = Checkpoint::open(fx.join("checkpoints/t2v_a14b_tiny")).unwrap();
    let task = ck.task().unwrap();
    let base = ck.load_dit(Expert::LowNoise).unwrap();
    let q = &base.blocks[0].self_attn.q.weight;
    let (out, inp) = (q.shape()[0], q.shape()[1]);
    let r = 2;
    let tmp =
        std::env::temp_dir().join(format!("wan-a14b-lora-{}.safetensors", std::process::id()));
    let mut t: BTreeMap<String, mlx_rs::Array> = BTreeMap::new();
    let key = |k: &str| format!("diffusion_model.blocks.0.self_attn.q.{k}");
    t.insert(
        key("lora_A.weight"),
        mlx_rs::Array::from_slice(&vec![0.5f32; (r * inp) as usize], &[r, inp]),
    );
    t.insert(
        key("lora_B.weight"),
        mlx_rs::Array::from_slice(&vec![0.25f32; (out * r) as usize], &[out, r]),
    );
    wan::checkpoint::safetensors::save(&tmp, &t, &BTreeMap::new()).unwrap();

    let q_of = |experts: &mut Experts, t: i64| -> Vec<f32> {
        let (_, m) = experts.for_timestep(t).unwrap();
        let w = m.blocks[0]
            .self_attn
            .q
            .weight
            .as_dtype(mlx_rs::Dtype::Float32)
            .unwrap();
        w.as_slice::<f32>().to_vec()
    };
    let load = |expert: Option<Expert>| {
        let lora = match expert {
            Some(Expert::HighNoise) => LoraSpec::per_expert(Some(tmp.clone()), None, 1.0),
            Some(_) => LoraSpec::per_expert(None, Some(tmp.clone()), 1.0),
            None => LoraSpec::from_path(&tmp, 1.0),
        };
        let opts = LoadOptions {
            dtype: mlx_rs::Dtype::Float32,
            one_expert_at_a_time: false,
            lora: Some(lora.unwrap()),
            preview_cache: None,
            quantize: None,
        };
        load_models(&ck, task, &opts).map(|(_, e)| e)
    };
    let base_high = ck.load_dit(Expert::HighNoise).unwrap();
    let plain = |m: &wan::dit::WanModel| {
        m.blocks[0]
            .self_attn
            .q
            .weight
            .as_dtype(mlx_rs::Dtype::Float32)
            .unwrap()
            .as_slice::<f32>()
            .to_vec()
    };
    let (hb, lb) = (plain(&base_high), plain(&base));

    let mut high_only = load(Some(Expert::HighNoise)).unwrap();
    assert_ne!(q_of(&mut high_only, 999), hb, "high expert got the LoRA");
    assert_eq!(q_of(&mut high_only, 0), lb, "low expert untouched");

    let mut low_only = load(Some(Expert::LowNoise)).unwrap();
    assert_eq!(q_of(&mut low_only, 999), hb, "high expert untouched");
    assert_ne!(q_of(&mut low_only, 0), lb, "low expert got the LoRA");

    let mut both = load(None).unwrap();
    assert_ne!(q_of(&mut both, 999), hb);
    assert_ne!(q_of(&mut both, 0), lb);

    // Lightning layout: high_noise_model / low_noise_model in one folder. The low file here
    // is the same LoRA at twice the strength (B doubled): the low expert must get exactly
    // that, the high one the plain file.
    let folder = std::env::temp_dir().join(format!("wan-lightning-{}", std::process::id()));
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(&tmp, folder.join(wan::lora_file::HIGH_FILE)).unwrap();
    t.insert(
        key("lora_B.weight"),
        mlx_rs::Array::from_slice(&vec![0.5f32; (out * r) as usize], &[out, r]),
    );
    wan::checkpoint::safetensors::save(
        &folder.join(wan::lora_file::LOW_FILE),
        &t,
        &BTreeMap::new(),
    )
    .unwrap();
    let opts = LoadOptions {
        dtype: mlx_rs::Dtype::Float32,
        one_expert_at_a_time: false,
        lora: Some(LoraSpec::from_path(&folder, 1.0).unwrap()),
        preview_cache: None,
        quantize: None,
    };
    let mut lightning = load_models(&ck, task, &opts).map(|(_, e)| e).unwrap();
    // ΔW = B·A: every entry r·0.5·0.25 (high) and r·0.5·0.5 (low)
    let (dh, dl) = (r as f32 * 0.125, r as f32 * 0.25);
    let high_q = q_of(&mut lightning, 999);
    let low_q = q_of(&mut lightning, 0);
    for (got, was) in high_q.iter().zip(&hb) {
        assert!(
            (got - (was + dh)).abs() < 1e-6,
            "high expert: {got} vs {was} + {dh}"
        );
    }
    for (got, was) in low_q.iter().zip(&lb) {
        assert!(
            (got - (was + dl)).abs() < 1e-6,
            "low expert: {got} vs {was} + {dl}"
        );
    }
    std::fs::remove_dir_all(&folder).ok();

    // One-DiT tasks have no experts to choose from.
    let ti2v = Checkpoint::open(fx.join("checkpoints/ti2v_tiny")).unwrap();
    let opts = LoadOptions {
        dtype: mlx_rs::Dtype::Float32,
        one_expert_at_a_time: false,
        lora: Some(LoraSpec::per_expert(Some(tmp.clone()), None, 1.0).unwrap()),
        preview_cache: None,
        quantize: None,
    };
    let err = load_models(&ti2v, ti2v.task().unwrap(), &opts)
        .err()
        .expect("refused");
    assert!(err.to_string().contains("one DiT"), "{err}");
    let _ = std::fs::remove_file(&tmp);
}
