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
    let spec = |batch| DenoiseSpec {
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
    };
    let none = CancelToken::new();
    let a = denoise(&mut experts, &spec(true), &none, &mut |_| Ok(()), None).unwrap();
    let b = denoise(&mut experts, &spec(false), &none, &mut |_| Ok(()), None).unwrap();
    let d = a
        .latent
        .subtract(&b.latent)
        .unwrap()
        .abs()
        .unwrap()
        .max(None)
        .unwrap()
        .item_cast::<f32>();
    // Equal up to float32 rounding of a different GEMM split (0 measured on CPU).
    let scale = a
        .latent
        .abs()
        .unwrap()
        .max(None)
        .unwrap()
        .item_cast::<f32>();
    assert!(
        d <= 1e-6 * scale,
        "batched vs separate CFG differ by {d} (max |latent| {scale})"
    );

    // Cancelled during step 1: the loop returns Cancelled before step 2 runs.
    let cancel = CancelToken::new();
    let mut seen = Vec::new();
    let err = denoise(
        &mut experts,
        &spec(true),
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
