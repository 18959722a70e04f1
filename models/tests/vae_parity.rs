//! VAE parity against the official fixtures (`vae22`, `vae21`), strict key loading, and
//! the odd-input rules (1 frame, frame counts not 4n+1, sizes not multiples of the
//! compression), causality of the chunked encode/decode, cancellation and progress.
mod common;

use mlx_rs::Array;
use mlx_rs::ops::indexing::TryIndexOp;
use wan::fixture::{Fixture, compare};
use wan::pipeline::api::CancelToken;
use wan::vae::{RunOpts, VaeConfig, VaeKind, WanVae};

#[test]
fn vae22_matches_official() {
    common::assert_parity("vae22.safetensors");
}

#[test]
fn vae21_matches_official() {
    common::assert_parity("vae21.safetensors");
}

fn load(name: &str, kind: VaeKind) -> Option<(WanVae, Fixture)> {
    let fx = Fixture::open(common::fixture(name)?).unwrap();
    let cfg = VaeConfig::from_constructor(kind, fx.cfg("constructor").unwrap()).unwrap();
    let vae = WanVae::load(cfg, &fx.params().unwrap()).unwrap();
    Some((vae, fx))
}

fn max_err(a: &Array, b: &Array) -> f64 {
    compare("x", a, b, 1.0).unwrap().err
}

#[test]
fn expected_keys_are_exactly_the_official_state_dict() {
    for (name, kind) in [
        ("vae22.safetensors", VaeKind::Wan22),
        ("vae21.safetensors", VaeKind::Wan21),
    ] {
        let Some((vae, fx)) = load(name, kind) else {
            return;
        };
        let expected: Vec<String> = vae.expected_params().into_iter().map(|(k, _)| k).collect();
        let official: Vec<String> = fx.params().unwrap().keys().cloned().collect();
        assert_eq!(expected, official, "{name}");
    }
}

#[test]
fn strict_load_reports_every_problem_at_once() {
    let Some((vae, fx)) = load("vae21.safetensors", VaeKind::Wan21) else {
        return;
    };
    let mut params = fx.params().unwrap();
    params.remove("decoder.upsamples.3.time_conv.bias");
    params.insert(
        "encoder.head.2.weight".into(),
        mlx_rs::ops::zeros::<f32>(&[3, 3, 3, 3, 3]).unwrap(),
    );
    params.insert(
        "decoder.extra".into(),
        mlx_rs::ops::zeros::<f32>(&[1]).unwrap(),
    );
    let err = WanVae::load(vae.cfg.clone(), &params).unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.code(), "weights");
    assert!(
        msg.contains("missing `decoder.upsamples.3.time_conv.bias`"),
        "{msg}"
    );
    assert!(
        msg.contains("`encoder.head.2.weight`: expected shape"),
        "{msg}"
    );
    assert!(msg.contains("unexpected `decoder.extra`"), "{msg}");
}

/// Frame 0 is encoded alone and the network is causal: encoding only the first frame
/// (1 frame works) gives the first latent frame of the full official encode, and
/// encoding 5 frames gives its first two.
#[test]
fn short_videos_encode_causally() {
    for (name, kind) in [
        ("vae22.safetensors", VaeKind::Wan22),
        ("vae21.safetensors", VaeKind::Wan21),
    ] {
        let Some((vae, fx)) = load(name, kind) else {
            return;
        };
        let video = fx.get_f32("input/video").unwrap();
        let want = fx.get("output/latent").unwrap();
        for (f, t) in [(1, 1), (5, 2)] {
            let got = vae.encode(&video.try_index((.., 0..f)).unwrap()).unwrap();
            let w = want.try_index((.., 0..t)).unwrap();
            assert_eq!(got.shape(), w.shape(), "{name} {f} frames");
            assert!(max_err(&got, &w) < 1e-4, "{name} {f} frames");
        }
    }
}

/// One latent frame decodes to one video frame, equal to the official first frame.
#[test]
fn one_latent_frame_decodes_to_the_first_frame() {
    for (name, kind) in [
        ("vae22.safetensors", VaeKind::Wan22),
        ("vae21.safetensors", VaeKind::Wan21),
    ] {
        let Some((vae, fx)) = load(name, kind) else {
            return;
        };
        let z = fx.get_f32("input/z").unwrap();
        let got = vae.decode(&z.try_index((.., 0..1)).unwrap()).unwrap();
        let want = fx
            .get("output/video")
            .unwrap()
            .try_index((.., 0..1))
            .unwrap();
        assert_eq!(got.shape(), want.shape(), "{name}");
        assert!(max_err(&got, &want) < 1e-4, "{name}");
    }
}

#[test]
fn odd_inputs_are_refused_with_clear_errors() {
    let Some((vae, _)) = load("vae22.safetensors", VaeKind::Wan22) else {
        return;
    };
    let zeros = |s: &[i32]| mlx_rs::ops::zeros::<f32>(s).unwrap();
    for (shape, needle) in [
        (vec![3, 4, 32, 32], "not 4n+1"),
        (vec![3, 2, 32, 32], "not 4n+1"),
        (vec![3, 0, 32, 32], "not 4n+1"),
        (vec![3, 5, 40, 32], "multiples of 16"),
        (vec![3, 5, 32, 8], "multiples of 16"),
        (vec![4, 5, 32, 32], "[3, F, H, W]"),
        (vec![5, 32, 32], "[3, F, H, W]"),
    ] {
        let err = vae.encode(&zeros(&shape)).unwrap_err();
        assert_eq!(err.code(), "input", "{shape:?}: {err}");
        assert!(err.to_string().contains(needle), "{shape:?}: {err}");
    }
    for shape in [vec![16, 2, 4, 4], vec![48, 0, 4, 4], vec![48, 2, 4]] {
        let err = vae.decode(&zeros(&shape)).unwrap_err();
        assert_eq!(err.code(), "input", "{shape:?}: {err}");
    }
    let Some((v21, _)) = load("vae21.safetensors", VaeKind::Wan21) else {
        return;
    };
    // Non-square sizes are fine when both sides are multiples of 16.
    let z = vae.encode(&zeros(&[3, 1, 32, 48])).unwrap();
    assert_eq!(z.shape(), &[48, 1, 2, 3]);
    // 2.1 compresses by 8: 24 is fine there, 20 is not.
    assert!(v21.encode(&zeros(&[3, 1, 24, 16])).is_ok());
    let err = v21.encode(&zeros(&[3, 1, 20, 16])).unwrap_err();
    assert!(err.to_string().contains("multiples of 8"), "{err}");
}

#[test]
fn decode_reports_progress_and_honours_cancel() {
    let Some((vae, fx)) = load("vae21.safetensors", VaeKind::Wan21) else {
        return;
    };
    let z = fx.get_f32("input/z").unwrap();
    let mut seen = Vec::new();
    let mut cb = |d: usize, t: usize| seen.push((d, t));
    vae.decode_with(
        &z,
        RunOpts {
            progress: Some(&mut cb),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(seen, [(1, 3), (2, 3), (3, 3)]);

    let cancel = CancelToken::new();
    cancel.cancel();
    let err = vae
        .decode_with(
            &z,
            RunOpts {
                cancel: Some(&cancel),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(err.code(), "cancelled");
    let video = fx.get_f32("input/video").unwrap();
    let err = vae
        .encode_with(
            &video,
            RunOpts {
                cancel: Some(&cancel),
                ..Default::default()
            },
        )
        .err()
        .map(|e| e.code());
    assert_eq!(err, Some("cancelled"));
}

/// Spec §4.2 / §4.3 [computed] parameter counts of the real VAEs, from our module tree
/// built with the official preset configs (nothing is loaded or allocated).
#[test]
fn official_configs_have_the_official_parameter_counts() {
    use mlx_rs::module::ModuleParameters;
    let count = |m: &dyn ModuleParameters| -> i64 {
        m.parameters()
            .flatten()
            .values()
            .map(|a| a.shape().iter().map(|&d| d as i64).product::<i64>())
            .sum()
    };
    let v21 = wan::vae::vae21::WanVae21::new(&VaeConfig::wan21()).unwrap();
    assert_eq!(count(&v21.encoder), 53_595_872);
    assert_eq!(count(&v21.decoder), 73_295_331);
    assert_eq!(count(&v21), 126_892_531);
    let v22 = wan::vae::vae22::WanVae22::new(&VaeConfig::wan22()).unwrap();
    assert_eq!(count(&v22.encoder), 149_627_776);
    assert_eq!(count(&v22.decoder), 555_049_228);
    assert_eq!(count(&v22), 704_688_668);
}
