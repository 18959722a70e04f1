//! LoRA on the tiny t2v DiT (`dit_t2v.safetensors` weights): train a few steps with the
//! base frozen, save in the community format, merge into a fresh base with
//! `merge_lora` (what `generate --lora FILE --lora_scale S` calls): scale 0 is the base
//! bit for bit, scale 1 reproduces the trained adapter, and the output moves with the scale.
mod common;
use common::max_diff;

use mlx_rs::module::ModuleParameters;
use wan::dit::{DitInput, Timesteps, WanConfig, WanModel};
use wan::fixture::Fixture;
use wan::train::lora::{LoraConfig, LoraWan, merge_lora};
use wan::train::{AdamWConfig, FlowBatch, FlowModel, LrSchedule, Rng, Trainer};

fn base() -> Option<WanModel> {
    let fx = Fixture::open(common::fixture("dit_t2v.safetensors")?).unwrap();
    let cfg: WanConfig = serde_json::from_value(fx.cfg("constructor").unwrap().clone()).unwrap();
    Some(WanModel::load(cfg, &fx.params().unwrap()).unwrap())
}

#[test]
fn lora_trains_saves_and_merges_with_scale() {
    let Some(model) = base() else { return };
    let td = model.config.text_dim;
    let mut rng = Rng::new(5);
    let key = |r: &mut Rng| r.mlx_key().unwrap();
    let shape = [2, 16, 2, 8, 8];
    let batch = FlowBatch {
        x0: mlx_rs::random::normal::<f32>(&shape[..], None, None, &key(&mut rng)).unwrap(),
        noise: mlx_rs::random::normal::<f32>(&shape[..], None, None, &key(&mut rng)).unwrap(),
        sigma: vec![0.3, 0.8],
        context: vec![
            mlx_rs::random::normal::<f32>(&[7, td][..], None, None, &key(&mut rng)).unwrap(),
            mlx_rs::random::normal::<f32>(&[4, td][..], None, None, &key(&mut rng)).unwrap(),
        ],
    };
    let frozen_before = (*model.blocks[0].self_attn.q.weight).clone();

    let cfg = LoraConfig::new(4);
    let mut lora = LoraWan::new(model, cfg, &mut rng).unwrap();
    let trainable = lora.trainable_parameters().flatten().len();
    assert_eq!(trainable, 2 * lora.adapters.len(), "only A and B train");
    assert_eq!(lora.adapters.len(), 2 * 10, "2 blocks × 10 targets");

    let mut t = Trainer::new(
        AdamWConfig {
            weight_decay: 0.0,
            ..Default::default()
        },
        LrSchedule::constant(5e-3),
    );
    let losses: Vec<f32> = (0..4)
        .map(|_| {
            t.step(&mut lora, std::slice::from_ref(&batch))
                .unwrap()
                .loss
        })
        .collect();
    assert!(
        losses[3] < losses[0],
        "LoRA training did not reduce the loss: {losses:?}"
    );

    let dir = std::env::temp_dir().join(format!("wan-lora-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("lora.safetensors");
    lora.save(&path).unwrap();
    let names = wan::checkpoint::safetensors::read_header(&path).unwrap();
    let names: Vec<&String> = names.tensors.keys().collect();
    assert!(
        names
            .iter()
            .any(|n| *n == "diffusion_model.blocks.1.ffn.2.lora_B.weight")
    );
    assert!(
        names
            .iter()
            .any(|n| *n == "diffusion_model.blocks.0.self_attn.q.alpha")
    );

    // The adapter's own prediction (for scale 1) and the base weights it started from.
    let tsteps = Timesteps::PerSample(vec![400.0, 900.0]);
    let x = batch.x_t().unwrap();
    let lora_out = lora.predict(&x, &tsteps, &batch.context).unwrap();

    let run = |m: &WanModel| {
        m.forward(
            &DitInput {
                x: &x,
                t: &tsteps,
                context: &batch.context,
                y: None,
            },
            None,
        )
        .unwrap()
    };
    let plain = base().unwrap();
    assert_eq!(
        max_diff(&plain.blocks[0].self_attn.q.weight, &frozen_before),
        0.0
    );
    let base_out = run(&plain);

    let mut m0 = base().unwrap();
    assert_eq!(merge_lora(&mut m0, &path, 0.0).unwrap(), 20);
    assert_eq!(
        max_diff(&run(&m0), &base_out),
        0.0,
        "scale 0 must be the base"
    );

    let mut m1 = base().unwrap();
    merge_lora(&mut m1, &path, 1.0).unwrap();
    let out1 = run(&m1);
    let scale = base_out
        .abs()
        .unwrap()
        .max(None)
        .unwrap()
        .item_cast::<f32>();
    assert!(
        max_diff(&out1, &lora_out) < 1e-5 * scale.max(1.0),
        "merged ≠ trained adapter"
    );
    let moved1 = max_diff(&out1, &base_out);
    assert!(moved1 > 1e-4, "scale 1 changes nothing ({moved1})");

    let mut m2 = base().unwrap();
    merge_lora(&mut m2, &path, 2.0).unwrap();
    assert!(
        max_diff(&run(&m2), &base_out) > moved1,
        "scale 2 moves less than scale 1"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn merge_lora_refuses_mismatched_files() {
    let Some(mut model) = base() else { return };
    let dir = std::env::temp_dir().join(format!("wan-lora-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.safetensors");
    let tensors = std::collections::BTreeMap::from([
        (
            "diffusion_model.blocks.0.self_attn.q.lora_A.weight".to_string(),
            mlx_rs::ops::zeros::<f32>(&[4, 3]).unwrap(),
        ),
        (
            "diffusion_model.blocks.0.self_attn.q.lora_B.weight".to_string(),
            mlx_rs::ops::zeros::<f32>(&[256, 4]).unwrap(),
        ),
        (
            "diffusion_model.blocks.9.ffn.0.lora_A.weight".to_string(),
            mlx_rs::ops::zeros::<f32>(&[4, 256]).unwrap(),
        ),
        (
            "something.else".to_string(),
            mlx_rs::ops::zeros::<f32>(&[1]).unwrap(),
        ),
    ]);
    wan::checkpoint::safetensors::save(&path, &tensors, &Default::default()).unwrap();
    let before = (*model.blocks[0].self_attn.q.weight).clone();
    let err = merge_lora(&mut model, &path, 1.0).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("lora_A.weight` [4, 3]"), "{msg}");
    assert!(
        msg.contains("do not fit `blocks.0.self_attn.q.weight`"),
        "{msg}"
    );
    assert!(msg.contains("blocks.9.ffn.0"), "{msg}");
    assert!(msg.contains("`something.else`"), "{msg}");
    assert_eq!(
        max_diff(&model.blocks[0].self_attn.q.weight, &before),
        0.0,
        "nothing merged"
    );
    std::fs::remove_dir_all(&dir).ok();
}
