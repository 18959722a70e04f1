//! DiT parity against the official fixtures (`rope_and_time`, `dit_*`), plus the strict
//! loader's refusal of wrong weights.
mod common;

use std::collections::BTreeMap;

use wan::dit::{WanConfig, WanModel};
use wan::fixture::Fixture;

#[test]
fn rope_and_time_matches_official() {
    common::assert_parity("rope_and_time.safetensors");
}

#[test]
fn dit_ti2v_matches_official() {
    common::assert_parity("dit_ti2v.safetensors");
}

#[test]
fn dit_t2v_matches_official() {
    common::assert_parity("dit_t2v.safetensors");
}

#[test]
fn dit_i2v_matches_official() {
    common::assert_parity("dit_i2v.safetensors");
}

fn t2v_fixture() -> Option<(WanConfig, BTreeMap<String, mlx_rs::Array>)> {
    let fx = Fixture::open(common::fixture("dit_t2v.safetensors")?).unwrap();
    let cfg: WanConfig = serde_json::from_value(fx.cfg("constructor").unwrap().clone()).unwrap();
    Some((cfg, fx.params().unwrap()))
}

#[test]
fn expected_keys_are_exactly_the_official_state_dict() {
    let Some((cfg, params)) = t2v_fixture() else {
        return;
    };
    let model = WanModel::new(cfg).unwrap();
    let expected: Vec<String> = model
        .expected_params()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let official: Vec<String> = params.keys().cloned().collect();
    assert_eq!(expected, official);
}

#[test]
fn strict_load_reports_every_problem_at_once() {
    let Some((cfg, mut params)) = t2v_fixture() else {
        return;
    };
    params.remove("blocks.1.ffn.0.bias");
    params.insert(
        "blocks.0.self_attn.q.weight".into(),
        mlx_rs::ops::zeros::<f32>(&[3, 3]).unwrap(),
    );
    params.insert(
        "extra.weight".into(),
        mlx_rs::ops::zeros::<f32>(&[1]).unwrap(),
    );
    let err = WanModel::load(cfg, &params).unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.code(), "weights");
    assert!(msg.contains("missing `blocks.1.ffn.0.bias`"), "{msg}");
    assert!(
        msg.contains("`blocks.0.self_attn.q.weight`: expected shape [256, 256], got [3, 3]"),
        "{msg}"
    );
    assert!(msg.contains("unexpected `extra.weight`"), "{msg}");
}

#[test]
fn patch_embedding_weight_is_transposed_to_channels_last() {
    let Some((cfg, params)) = t2v_fixture() else {
        return;
    };
    let pt = params["patch_embedding.weight"].clone(); // [D, C, 1, 2, 2]
    let model = WanModel::load(cfg, &params).unwrap();
    let w = &*model.patch_embedding.weight; // [D, 1, 2, 2, C]
    assert_eq!(w.shape(), &[pt.shape()[0], 1, 2, 2, pt.shape()[1]]);
    let back = w.transpose_axes(&[0, 4, 1, 2, 3]).unwrap();
    let diff = back
        .subtract(&pt)
        .unwrap()
        .abs()
        .unwrap()
        .max(None)
        .unwrap()
        .item_cast::<f32>();
    assert_eq!(diff, 0.0);
}

/// The context K/V computed once and reused (what every sampling step does) give the same
/// bits as recomputing them inside each forward, for several steps with different latents
/// and timesteps; and the fast inference kernels stay within the parity tolerance.
#[test]
fn cached_context_kv_steps_equal_recomputation_bit_for_bit() {
    use wan::dit::{Kernels, Timesteps};
    let Some(path) = common::fixture("dit_ti2v.safetensors") else {
        return;
    };
    let fx = Fixture::open(path).unwrap();
    let cfg: WanConfig = serde_json::from_value(fx.cfg("constructor").unwrap().clone()).unwrap();
    let model = WanModel::load(cfg, &fx.params().unwrap()).unwrap();
    let x0 = fx.get_f32("input/x").unwrap().expand_dims(0).unwrap();
    let ctx = model
        .embed_context(&[fx.get_f32("input/context").unwrap()])
        .unwrap();
    let kv = model.context_kv(&ctx).unwrap();
    kv.eval().unwrap();
    let n = fx.get_vec_f32("input/t").unwrap().len();
    for (step, t) in [999.0f32, 500.0, 3.0].into_iter().enumerate() {
        let x = x0
            .multiply(mlx_rs::Array::from_f32(1.0 - 0.3 * step as f32))
            .unwrap();
        let ts = Timesteps::PerToken(vec![t; n]);
        let recomputed = model.forward_embedded(&x, None, &ts, &ctx, None).unwrap();
        let cached = model
            .forward_kv(&x, None, &ts, &kv, Kernels::Exact)
            .unwrap();
        let a: Vec<f32> = recomputed.as_slice().to_vec();
        let b: Vec<f32> = cached.as_slice().to_vec();
        assert!(
            a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()),
            "step {step}"
        );
        let fast = model.forward_kv(&x, None, &ts, &kv, Kernels::Fast).unwrap();
        let c = wan::fixture::compare("fast kernels", &fast, &recomputed, 1e-5).unwrap();
        assert!(c.passed(), "{}", c.line());
    }
}

/// The pipelines fold the prompt's zero padding into one key with an `ln(count)` score bias:
/// the fixture's 20-token context attends over 21 keys instead of `text_len` = 32, and a
/// batch of two prompts of different lengths gives each sample what the padded context
/// gives it alone; a prompt one row short of `text_len` is not folded (nothing to gain).
#[test]
fn folded_padding_keys_equal_the_padded_context() {
    use mlx_rs::ops::indexing::IndexOp;
    use wan::dit::{Kernels, Timesteps};
    let Some(path) = common::fixture("dit_t2v.safetensors") else {
        return;
    };
    let fx = Fixture::open(path).unwrap();
    let cfg: WanConfig = serde_json::from_value(fx.cfg("constructor").unwrap().clone()).unwrap();
    let tl = cfg.text_len;
    let model = WanModel::load(cfg, &fx.params().unwrap()).unwrap();
    let x = fx.get_f32("input/x").unwrap().expand_dims(0).unwrap();
    let ctx = fx.get_f32("input/context").unwrap();
    let n = ctx.shape()[0];
    assert!(
        n + 1 < tl,
        "the fixture's context must leave padding to fold"
    );
    let short = ctx.index(..5);
    let t1 = Timesteps::PerSample(vec![700.0]);
    let padded = |c: &mlx_rs::Array| {
        let kv = model
            .context_kv(&model.embed_context(std::slice::from_ref(c)).unwrap())
            .unwrap();
        model
            .forward_kv(&x, None, &t1, &kv, Kernels::Exact)
            .unwrap()
    };
    let (want_long, want_short) = (padded(&ctx), padded(&short));

    let kv = model
        .context_kv_folded(&[ctx.clone(), short.clone()])
        .unwrap();
    assert_eq!(kv.blocks[0].k.shape()[2], n + 1);
    let bias: Vec<f32> = kv.blocks[0].bias.as_ref().unwrap().as_slice().to_vec();
    let (long_pad, short_pad) = (
        ((tl - n) as f32).ln(),
        ((tl - 5) as f32 / (n + 1 - 5) as f32).ln(),
    );
    assert!(bias[..n as usize].iter().all(|&b| b == 0.0));
    assert!((bias[n as usize] - long_pad).abs() < 1e-6);
    assert!(
        bias[(n + 1 + 5) as usize..]
            .iter()
            .all(|&b| (b - short_pad).abs() < 1e-6)
    );
    let x2 = mlx_rs::ops::concatenate(&[x.clone(), x.clone()], 0).unwrap();
    let t2 = Timesteps::PerSample(vec![700.0, 700.0]);
    for kernels in [Kernels::Exact, Kernels::Fast] {
        let both = model.forward_kv(&x2, None, &t2, &kv, kernels).unwrap();
        let parts = both.split_equal(2, 0).unwrap();
        for (got, want, what) in [
            (&parts[0], &want_long, "long"),
            (&parts[1], &want_short, "short"),
        ] {
            let c = wan::fixture::compare(what, got, want, 1e-5).unwrap();
            assert!(c.passed(), "{kernels:?}: {}", c.line());
        }
        // one sample sliced out of the batched K/V is still exact
        let one = model
            .forward_kv(&x, None, &t1, &kv.slice(1, 1).unwrap(), kernels)
            .unwrap();
        let c = wan::fixture::compare("slice", &one, &want_short, 1e-5).unwrap();
        assert!(c.passed(), "{kernels:?}: {}", c.line());
    }

    let almost = mlx_rs::ops::concatenate(&[ctx.clone(), ctx.index(..tl - 1 - n)], 0).unwrap();
    let kv = model.context_kv_folded(&[almost]).unwrap();
    assert_eq!(kv.blocks[0].k.shape()[2], tl);
    assert!(kv.blocks[0].bias.is_none());
}

/// Token-chunked blocks (the memory plan's lean step) give the unchunked forward's output
/// for every way the tokens pick their modulation: one timestep (broadcast), two per token
/// (ti2v image→video: t = 0 on frame 0, the mask select, cut by the chunks), three per
/// token (gather), one per sample (batch of two); chunk counts that divide the tokens
/// unevenly, one token per chunk, and more chunks than tokens.
#[test]
fn token_chunked_blocks_equal_the_whole_sequence() {
    use wan::dit::{Blocks, Kernels, Timesteps};
    let Some(path) = common::fixture("dit_ti2v.safetensors") else {
        return;
    };
    let fx = Fixture::open(path).unwrap();
    let cfg: WanConfig = serde_json::from_value(fx.cfg("constructor").unwrap().clone()).unwrap();
    let model = WanModel::load(cfg, &fx.params().unwrap()).unwrap();
    let x = fx.get_f32("input/x").unwrap().expand_dims(0).unwrap();
    let ctx = fx.get_f32("input/context").unwrap();
    let n = fx.get_vec_f32("input/t").unwrap().len();
    let frame = n / x.shape()[2] as usize; // tokens of one latent frame
    let image = |i: usize| if i < frame { 0.0 } else { 600.0 };
    let three = |i: usize| [0.0, 300.0, 900.0][i * 3 / n];
    let x2 = mlx_rs::ops::concatenate(
        &[x.clone(), x.multiply(mlx_rs::Array::from_f32(0.5)).unwrap()],
        0,
    )
    .unwrap();
    let cases = [
        ("one t", &x, Timesteps::PerToken(vec![400.0; n])),
        (
            "image frame",
            &x,
            Timesteps::PerToken((0..n).map(image).collect()),
        ),
        (
            "three t",
            &x,
            Timesteps::PerToken((0..n).map(three).collect()),
        ),
        ("per sample", &x2, Timesteps::PerSample(vec![900.0, 100.0])),
    ];
    for (what, x, t) in &cases {
        let b = x.shape()[0] as usize;
        let kv = model.context_kv_folded(&vec![ctx.clone(); b]).unwrap();
        let t = match (t, b) {
            (Timesteps::PerToken(v), 2) => Timesteps::PerToken([v.clone(), v.clone()].concat()),
            (t, _) => t.clone(),
        };
        let whole = model.forward_kv(x, None, &t, &kv, Kernels::Fast).unwrap();
        for chunks in [2, 3, 7, n as u32, 4 * n as u32] {
            let got = model
                .forward_blocks(x, None, &t, &kv, Kernels::Fast, Blocks::Run, chunks)
                .unwrap()
                .0;
            let c = wan::fixture::compare(what, &got, &whole, 1e-5).unwrap();
            assert!(c.passed(), "{chunks} chunks: {}", c.line());
        }
    }
}
