//! Training checkpoints: a run interrupted, saved and resumed into a *differently
//! initialised* model continues with exactly the losses of an uninterrupted run; a
//! checkpoint refuses a model it does not fit.
use wan::dit::WanModel;
use wan::train::checkpoint::{load_checkpoint, save_checkpoint};
use wan::train::data::synthetic::{self, SyntheticConfig};
use wan::train::init::init_weights;
use wan::train::scratch::small_model;
use wan::train::{AdamWConfig, LrSchedule, Rng, SigmaSampling, Trainer};

const DATA: SyntheticConfig = SyntheticConfig {
    frames: 2,
    size: 8,
    text_dim: 8,
    radius: 1.5,
    speed: 1.0,
};

fn tiny(seed: u64) -> WanModel {
    let mut cfg = small_model(DATA.text_dim);
    (cfg.dim, cfg.ffn_dim, cfg.freq_dim, cfg.num_layers) = (32, 64, 16, 1);
    let mut m = WanModel::new(cfg).unwrap();
    init_weights(&mut m, &mut Rng::new(seed)).unwrap();
    m
}

fn trainer() -> Trainer {
    let adamw = AdamWConfig {
        max_grad_norm: Some(1.0),
        ..Default::default()
    };
    let schedule = LrSchedule {
        lr: 3e-3,
        warmup_steps: 2,
        cosine_total: Some(6),
        min_lr: 1e-4,
    };
    Trainer::new(adamw, schedule)
}

fn run(model: &mut WanModel, t: &mut Trainer, rng: &mut Rng, steps: usize) -> Vec<f32> {
    let sampling = SigmaSampling::LogitNormal {
        mean: 0.0,
        std: 1.0,
        shift: 3.0,
    };
    (0..steps)
        .map(|_| {
            let (b, _) = synthetic::batch(&DATA, rng, 3, &sampling).unwrap();
            t.step(model, &[b]).unwrap().loss
        })
        .collect()
}

#[test]
fn resume_continues_exactly_like_an_uninterrupted_run() {
    let dir = std::env::temp_dir().join(format!("wan-train-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ckpt.safetensors");

    let (mut m, mut t, mut rng) = (tiny(1), trainer(), Rng::new(42));
    let full = run(&mut m, &mut t, &mut rng, 6);

    let (mut m, mut t, mut rng) = (tiny(1), trainer(), Rng::new(42));
    let first = run(&mut m, &mut t, &mut rng, 3);
    save_checkpoint(&path, &m, &t, &rng, &Default::default()).unwrap();
    drop((m, t));

    let (mut m2, mut t2) = (tiny(99), trainer()); // other weights: the checkpoint must win
    let resume = load_checkpoint(&path, &mut m2, &mut t2).unwrap();
    assert_eq!(resume.step, 3);
    assert_eq!(t2.opt.step, 3);
    let mut rng2 = resume.rng;
    let rest = run(&mut m2, &mut t2, &mut rng2, 3);

    assert_eq!(&full[..3], &first[..]);
    assert_eq!(
        &full[3..],
        &rest[..],
        "resumed losses differ: {full:?} vs {first:?}+{rest:?}"
    );
    assert!(full.iter().all(|l| l.is_finite()));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn checkpoint_refuses_a_model_it_does_not_fit() {
    let dir = std::env::temp_dir().join(format!("wan-train-ckpt-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ckpt.safetensors");
    let (m, t) = (tiny(1), trainer());
    save_checkpoint(&path, &m, &t, &Rng::new(0), &Default::default()).unwrap();

    let mut cfg = m.config.clone();
    cfg.ffn_dim = 48;
    let mut other = WanModel::new(cfg).unwrap();
    let err = load_checkpoint(&path, &mut other, &mut trainer()).unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.code(), "weights");
    assert!(msg.contains("model/blocks.0.ffn.fc1.weight"), "{msg}");

    // A file that is not a training checkpoint is refused as such.
    let plain = dir.join("plain.safetensors");
    wan::train::checkpoint::export_dit(&plain, &m).unwrap();
    let err = load_checkpoint(&plain, &mut tiny(1), &mut trainer()).unwrap_err();
    assert!(
        err.to_string().contains("not a training checkpoint"),
        "{err}"
    );
    // ...but it is a loadable DiT with the same weights.
    let back = wan::train::checkpoint::load_exported_dit(&plain).unwrap();
    assert_eq!(back.config, m.config);
    std::fs::remove_dir_all(&dir).ok();
}
