//! Pipeline parity (`pipe_ti2v`, `pipe_ti2v_t2v`) and the loop's own guarantees: batched
//! CFG equals two separate passes, cancellation stops within one step.
mod common;

use wan::dit::WanModel;
use wan::fixture::Fixture;
use wan::pipeline::{CancelToken, DenoiseSpec, Experts, SolverKind, denoise};

#[test]
fn pipe_ti2v_matches_official() {
    common::assert_parity("pipe_ti2v.safetensors");
}

#[test]
fn pipe_ti2v_t2v_matches_official() {
    common::assert_parity("pipe_ti2v_t2v.safetensors");
}

fn setup() -> Option<(Experts, Fixture)> {
    let dit = Fixture::open(common::fixture("dit_ti2v.safetensors")?).unwrap();
    let cfg = serde_json::from_value(dit.cfg("constructor").unwrap().clone()).unwrap();
    let model = WanModel::load(cfg, &dit.params().unwrap()).unwrap();
    let fx = Fixture::open(common::fixture("pipe_ti2v_t2v.safetensors")?).unwrap();
    Some((Experts::Single(Box::new(model)), fx))
}

#[test]
fn unbatched_cfg_equals_batched_and_cancel_stops_within_a_step() {
    let Some((mut experts, fx)) = setup() else {
        return;
    };
    let ctx = fx.get_f32("input/context").unwrap();
    let null = fx.get_f32("input/context_null").unwrap();
    let spec = |batch, token_chunks| DenoiseSpec {
        latent: fx.get_f32("input/noise").unwrap(),
        context: &ctx,
        context_null: &null,
        guide_scale: (5.0, 5.0),
        solver: SolverKind::Unipc,
        steps: 3,
        shift: 5.0,
        first_frame: None,
        y: None,
        batch_cfg: batch,
        step_cache: Default::default(),
        token_chunks,
    };
    let none = CancelToken::new();
    let a = denoise(&mut experts, &spec(true, 1), &none, &mut |_| Ok(()), None).unwrap();
    let max_abs = |x: &mlx_rs::Array| x.abs().unwrap().max(None).unwrap().item_cast::<f32>();
    let scale = max_abs(&a.latent);
    // Equal up to float32 rounding: separate CFG passes split the GEMMs differently (0
    // measured on CPU); token chunks (3 uneven ones; 2 for separate passes) run the same
    // arithmetic per row, but BLAS picks its blocking by the row count, so the last bits
    // differ and the 3 solver steps carry that (1.7e-6 relative measured). A chunk that
    // took another chunk's modulation or RoPE rows would be off by ~1e-1.
    for (batch, chunks, tol) in [(false, 1, 1e-6), (true, 3, 1e-5), (false, 2, 1e-5)] {
        let b = denoise(
            &mut experts,
            &spec(batch, chunks),
            &none,
            &mut |_| Ok(()),
            None,
        )
        .unwrap();
        let d = max_abs(&a.latent.subtract(&b.latent).unwrap());
        assert!(
            d <= tol * scale,
            "batched, 1 chunk vs batched {batch}, {chunks} chunk(s) differ by {d} (max |latent| {scale})"
        );
    }

    // Cancelled during step 1: the loop returns Cancelled before step 2 runs.
    let cancel = CancelToken::new();
    let mut seen = Vec::new();
    let err = denoise(
        &mut experts,
        &spec(true, 1),
        &cancel,
        &mut |s| {
            seen.push(s.step);
            if s.step == 1 {
                cancel.cancel();
            }
            Ok(())
        },
        None,
    )
    .err()
    .expect("cancelled");
    assert_eq!(err.code(), "cancelled");
    assert_eq!(seen, vec![1]);
}

#[test]
fn e2e_ti2v_t2v_matches_official() {
    common::assert_parity("e2e_ti2v_t2v.safetensors");
}

#[test]
fn e2e_ti2v_i2v_matches_official() {
    common::assert_parity("e2e_ti2v_i2v.safetensors");
}

#[test]
fn e2e_t2v_a14b_matches_official() {
    common::assert_parity("e2e_t2v_a14b.safetensors");
}

/// I2V-A14B end to end: tokenizer + T5, the PNG through the bicubic resize, the Wan2.1
/// VAE encode into `y`, both experts with (3.5, 3.5) guidance, the decode; every recorded
/// tensor compared (the `coverage` check fails on any left out).
#[test]
fn e2e_i2v_a14b_matches_official() {
    common::assert_parity("e2e_i2v_a14b.safetensors");
}

/// TI2V-5B preprocessing: Pillow loading, size decisions (refused rows included), LANCZOS
/// and crop, bit-exact on every case.
#[test]
fn resize_ti2v_matches_official_bit_for_bit() {
    common::assert_parity("resize_ti2v.safetensors");
}

/// Everything but tokenizer + T5, through the real `pipeline::run` on the tiny official
/// folders with the recorded contexts and noise injected: image resize + VAE encode (i2v,
/// i2v-A14B's bicubic resize and `y`),
/// the A14B expert switch with (low, high) guidance and one UniPC across both experts,
/// per-token t, every step, x0 and the decoded video.
#[test]
fn e2e_runs_match_official_with_recorded_contexts() {
    for name in [
        "e2e_t2v_a14b.safetensors",
        "e2e_ti2v_t2v.safetensors",
        "e2e_ti2v_i2v.safetensors",
        "e2e_i2v_a14b.safetensors",
    ] {
        let Some(path) = common::fixture(name) else {
            return;
        };
        let fx = Fixture::open(&path).unwrap();
        let checks = wan::parity::e2e::e2e_with(&fx, true).unwrap();
        for c in &checks {
            eprintln!("{name}: {}", c.line());
        }
        let failed: Vec<String> = checks
            .iter()
            .filter(|c| !c.passed())
            .map(|c| c.line())
            .collect();
        assert!(failed.is_empty(), "{name}:\n{}", failed.join("\n"));
        let extra: &[&str] = match name {
            "e2e_ti2v_i2v.safetensors" => &["inter/image", "inter/image_latent"],
            "e2e_t2v_a14b.safetensors" => &["inter/expert", "inter/guide_scale"],
            "e2e_i2v_a14b.safetensors" => &[
                "inter/image",
                "inter/image_resized",
                "inter/image_latent",
                "inter/y",
                "inter/expert",
                "inter/guide_scale",
            ],
            _ => &[],
        };
        for must in ["output/latents", "output/video", "inter/model_t"]
            .iter()
            .chain(extra)
        {
            assert!(checks.iter().any(|c| c.name == *must), "{name}: no {must}");
        }
    }
}

/// `--step_cache magcache:0` never skips and is bit-identical to no step cache; a real
/// threshold skips steps (fewer DiT evaluations) and records which.
#[test]
fn magcache_zero_is_bit_identical_to_off() {
    use wan::pipeline::StepCache;
    use wan::pipeline::step_cache::{Use, dit_evaluations};
    let Some((mut experts, fx)) = setup() else {
        return;
    };
    let ctx = fx.get_f32("input/context").unwrap();
    let null = fx.get_f32("input/context_null").unwrap();
    let spec = |cache: &str| DenoiseSpec {
        latent: fx.get_f32("input/noise").unwrap(),
        context: &ctx,
        context_null: &null,
        guide_scale: (5.0, 5.0),
        solver: SolverKind::Unipc,
        steps: 6,
        shift: 5.0,
        first_frame: None,
        y: None,
        batch_cfg: true,
        step_cache: cache.parse::<StepCache>().unwrap(),
        token_chunks: 1,
    };
    let none = CancelToken::new();
    let run = |experts: &mut Experts, c: &str| {
        denoise(experts, &spec(c), &none, &mut |_| Ok(()), None).unwrap()
    };
    let off = run(&mut experts, "off");
    let zero = run(&mut experts, "magcache:0");
    let a: Vec<f32> = off.latent.as_slice().to_vec();
    let b: Vec<f32> = zero.latent.as_slice().to_vec();
    assert!(a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()));
    assert_eq!(dit_evaluations(&zero.step_cache), 12);
    assert_eq!(dit_evaluations(&off.step_cache), 12);
    // The official calibration at 6 steps, threshold 0.06, K 2, retention 0.2 (hand-derived
    // in generate_cli's sidecar test): C R R C R C for both branches.
    let cached = run(&mut experts, "magcache:0.06");
    let cond: Vec<Use> = cached.step_cache.iter().map(|r| r.cond).collect();
    use Use::{Computed as C, Reused as R};
    assert_eq!(cond, vec![C, R, R, C, R, C]);
    assert_eq!(dit_evaluations(&cached.step_cache), 6);
    let d = cached
        .latent
        .subtract(&off.latent)
        .unwrap()
        .abs()
        .unwrap()
        .max(None)
        .unwrap()
        .item_cast::<f32>();
    assert!(
        d > 0.0 && d.is_finite(),
        "reused steps change the result a little: {d}"
    );
    // EasyCache on the same run: retained steps compute, the last step computes.
    let easy = run(&mut experts, "easycache:0.5:2");
    let e: Vec<Use> = easy.step_cache.iter().map(|r| r.cond).collect();
    assert_eq!((e[0], e[1], e[5]), (C, C, C));
    assert!(easy.step_cache.iter().all(|r| r.uncond == Some(r.cond)));
}

/// A14B: the step cache starts over at the expert switch — the first low-noise step always
/// computes, and each expert only ever reuses its own evaluations.
#[test]
fn a14b_step_cache_computes_at_the_expert_switch() {
    use wan::checkpoint::Checkpoint;
    use wan::pipeline::step_cache::Use;
    use wan::pipeline::{LoadOptions, StepCache, load_models};
    let Some(fx) = common::fixtures_dir() else {
        return;
    };
    let ck = Checkpoint::open(fx.join("checkpoints/t2v_a14b_tiny")).unwrap();
    let opts = LoadOptions {
        dtype: mlx_rs::Dtype::Float32,
        one_expert_at_a_time: false,
        lora: None,
        preview_cache: None,
        quantize: None,
    };
    let (_, mut experts) = load_models(&ck, ck.task().unwrap(), &opts).unwrap();
    let text_dim = match &experts {
        Experts::Pair { .. } => {
            let (_, m) = experts.for_timestep(999).unwrap();
            m.config.text_dim
        }
        Experts::Single(m) => m.config.text_dim,
    };
    let key = mlx_rs::random::key(2).unwrap();
    let ctx = mlx_rs::random::normal::<f32>(&[5, text_dim], None, None, &key).unwrap();
    let null = mlx_rs::ops::zeros::<f32>(&[3, text_dim]).unwrap();
    let noise = mlx_rs::random::normal::<f32>(&[16, 2, 8, 8], None, None, &key).unwrap();
    let spec = DenoiseSpec {
        latent: noise,
        context: &ctx,
        context_null: &null,
        guide_scale: (3.0, 4.0),
        solver: SolverKind::Unipc,
        steps: 12,
        shift: 12.0,
        first_frame: None,
        y: None,
        batch_cfg: true,
        // loose threshold, no retention window: only K and the switch force computes
        step_cache: "magcache:5:3:0".parse::<StepCache>().unwrap(),
        token_chunks: 1,
    };
    let out = denoise(
        &mut experts,
        &spec,
        &CancelToken::new(),
        &mut |_| Ok(()),
        None,
    )
    .unwrap();
    let rec = &out.step_cache;
    let switch = rec
        .iter()
        .position(|r| !r.high_noise)
        .expect("a low-noise step");
    assert!(switch > 0, "the run starts with the high-noise expert");
    assert_eq!(rec[0].cond, Use::Computed);
    assert_eq!(
        rec[switch].cond,
        Use::Computed,
        "first low-noise step: {rec:?}"
    );
    assert_eq!(rec[switch].uncond, Some(Use::Computed));
    // after a computed step, K = 3 reuses at most, then a compute — within each expert
    for r in rec.windows(4) {
        assert!(r.iter().any(|s| s.cond == Use::Computed), "{rec:?}");
    }
    assert!(
        rec.iter().any(|r| r.cond == Use::Reused),
        "a loose threshold reuses: {rec:?}"
    );
}
