//! Gradient checkpointing (block-by-block recompute with `vjp`) against plain
//! `value_and_grad` on the tiny t2v DiT (`dit_t2v.safetensors` weights): the loss and every
//! LoRA gradient agree to float32 rounding, and a trainer step with either gives the same
//! update. Adapters start with non-zero B so every gradient path (A and B) is exercised.
mod common;

use mlx_rs::Array;
use mlx_rs::module::ModuleParameters;
use wan::dit::{WanConfig, WanModel};
use wan::fixture::Fixture;
use wan::train::lora::{LoraConfig, LoraWan};
use wan::train::trainer::loss_and_grads;
use wan::train::{AdamWConfig, FlowBatch, FlowModel, LrSchedule, Rng, Trainer};

fn base() -> Option<WanModel> {
    let fx = Fixture::open(common::fixture("dit_t2v.safetensors")?).unwrap();
    let cfg: WanConfig = serde_json::from_value(fx.cfg("constructor").unwrap().clone()).unwrap();
    Some(WanModel::load(cfg, &fx.params().unwrap()).unwrap())
}

fn lora(model: WanModel) -> LoraWan {
    let mut l = LoraWan::new(model, LoraConfig::new(4), &mut Rng::new(9)).unwrap();
    // PEFT starts B at zero (then ∂/∂A = 0); give B values so both gradients are non-trivial.
    let mut rng = Rng::new(21);
    for ad in &mut l.adapters {
        let s = ad.lora_b.shape().to_vec();
        *ad.lora_b =
            mlx_rs::random::normal::<f32>(&s[..], None, Some(0.05), &rng.mlx_key().unwrap())
                .unwrap();
    }
    l
}

fn batch(td: i32, c: i32) -> FlowBatch {
    let mut rng = Rng::new(5);
    let mut key = || rng.mlx_key().unwrap();
    let shape = [2, c, 2, 8, 8];
    FlowBatch {
        x0: mlx_rs::random::normal::<f32>(&shape[..], None, None, &key()).unwrap(),
        noise: mlx_rs::random::normal::<f32>(&shape[..], None, None, &key()).unwrap(),
        sigma: vec![0.3, 0.8],
        context: vec![
            mlx_rs::random::normal::<f32>(&[7, td][..], None, None, &key()).unwrap(),
            mlx_rs::random::normal::<f32>(&[4, td][..], None, None, &key()).unwrap(),
        ],
    }
}

fn max_abs(a: &Array) -> f32 {
    a.abs().unwrap().max(None).unwrap().item_cast::<f32>()
}

#[test]
fn checkpointed_gradients_match_plain_autodiff() {
    let Some(model) = base() else { return };
    let b = batch(model.config.text_dim, model.config.in_dim);
    let mut l = lora(model);

    let (loss0, g0) = loss_and_grads(&mut l, &b).unwrap();
    let (loss1, g1) = l.checkpointed_loss_and_grads(&b).unwrap();
    let (loss0, loss1) = (loss0.item_cast::<f32>(), loss1.item_cast::<f32>());
    assert!(loss0.is_finite());
    assert!(
        (loss0 - loss1).abs() <= 1e-5 * loss0.abs(),
        "loss {loss0} vs {loss1}"
    );
    assert_eq!(g0.len(), g1.len(), "same parameter set");
    assert_eq!(g0.len(), l.trainable_parameters().flatten().len());
    let mut worst = 0f32;
    for (k, a) in &g0 {
        let c = g1
            .get(k)
            .unwrap_or_else(|| panic!("no checkpointed gradient `{k}`"));
        assert_eq!(a.shape(), c.shape(), "{k}");
        let scale = max_abs(a);
        assert!(
            scale > 0.0,
            "`{k}` has a zero gradient: the test would prove nothing"
        );
        let rel = max_abs(&a.subtract(c).unwrap()) / scale;
        worst = worst.max(rel);
        assert!(rel < 1e-5, "`{k}`: relative max error {rel}");
    }
    eprintln!("checkpointed vs plain: loss {loss0} / {loss1}, worst gradient rel err {worst:e}");
}

#[test]
fn trainer_steps_agree_with_and_without_checkpointing() {
    let Some(model) = base() else { return };
    let b = batch(model.config.text_dim, model.config.in_dim);
    let run = |ckpt: bool| {
        let m = base().unwrap();
        let w0 = (*m.blocks[1].ffn.fc1.weight).clone();
        let mut l = lora(m);
        let mut t = Trainer::new(AdamWConfig::default(), LrSchedule::constant(1e-3));
        t.grad_checkpoint = ckpt;
        let losses: Vec<f32> = (0..2)
            .map(|_| t.step(&mut l, &[b.clone(), b.clone()]).unwrap().loss)
            .collect();
        // Merged weights live only inside a step's graph, never in the base (memory).
        let w = l.base.blocks[1].ffn.fc1.weight.subtract(&w0).unwrap();
        assert_eq!(max_abs(&w), 0.0, "merged weights left in the base");
        (losses, (*l.adapters[3].lora_a).clone())
    };
    let (plain, a0) = run(false);
    let (ckpt, a1) = run(true);
    for (p, c) in plain.iter().zip(&ckpt) {
        assert!((p - c).abs() <= 1e-5 * p.abs(), "{plain:?} vs {ckpt:?}");
    }
    let d = max_abs(&a0.subtract(&a1).unwrap()) / max_abs(&a0);
    assert!(d < 1e-5, "adapters diverged: {d}");
    drop(model);
}

/// Peak MLX memory of one LoRA training step with and without checkpointing on a
/// bigger-than-tiny DiT (dim 512, 8 blocks, 1024 tokens). A measurement, not a check run
/// in CI (tens of seconds on 2 cores):
/// `cargo test -p wan-models --test train_grad_checkpoint -- --ignored --nocapture`.
#[test]
#[ignore]
fn measure_peak_memory() {
    use wan::dit::ModelType;
    let mut cfg = WanConfig::t2v_a14b();
    cfg.model_type = ModelType::T2v;
    (cfg.in_dim, cfg.out_dim, cfg.dim, cfg.ffn_dim) = (16, 16, 512, 2048);
    (cfg.num_heads, cfg.num_layers, cfg.text_dim, cfg.text_len) = (4, 8, 64, 32);
    let shape = [1, 16, 4, 32, 32]; // 4·16·16 = 1024 tokens
    let mut rng = Rng::new(1);
    let mut key = || rng.mlx_key().unwrap();
    let b = FlowBatch {
        x0: mlx_rs::random::normal::<f32>(&shape[..], None, None, &key()).unwrap(),
        noise: mlx_rs::random::normal::<f32>(&shape[..], None, None, &key()).unwrap(),
        sigma: vec![0.5],
        context: vec![mlx_rs::random::normal::<f32>(&[16, 64][..], None, None, &key()).unwrap()],
    };
    for ckpt in [false, true] {
        let mut m = WanModel::new(cfg.clone()).unwrap();
        wan::train::init::init_weights(&mut m, &mut Rng::new(2)).unwrap();
        let mut l = LoraWan::new(m, LoraConfig::new(16), &mut Rng::new(3)).unwrap();
        mlx_rs::transforms::eval(l.parameters().flatten().values().copied()).unwrap();
        let mut t = Trainer::new(AdamWConfig::default(), LrSchedule::constant(1e-4));
        t.grad_checkpoint = ckpt;
        t.step(&mut l, std::slice::from_ref(&b)).unwrap(); // warm-up (optimizer state)
        let before = mlx_rs::memory::active_memory().unwrap();
        mlx_rs::memory::reset_peak_memory().unwrap();
        let start = std::time::Instant::now();
        let s = t.step(&mut l, std::slice::from_ref(&b)).unwrap();
        let peak = mlx_rs::memory::peak_memory().unwrap();
        eprintln!(
            "grad_checkpoint={ckpt}: step {:.2}s, loss {:.4}, active before step {:.1} MB, \
             peak during step {:.1} MB (+{:.1} MB)",
            start.elapsed().as_secs_f64(),
            s.loss,
            before as f64 / 1e6,
            peak as f64 / 1e6,
            (peak - before.min(peak)) as f64 / 1e6
        );
    }
}
