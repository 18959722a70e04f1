//! Text side against the official fixtures (`t5_encoder`, `tokenizer`), the strict loader,
//! tokenizer edge cases on the tiny checkpoint's `tokenizer.json`, and the context hand-off
//! to the DiT (trimmed, then zero-padded by the DiT).
mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use mlx_rs::ops::indexing::IndexOp;
use mlx_rs::{Array, Dtype};
use wan::dit::{WanConfig, WanModel};
use wan::fixture::Fixture;
use wan::t5::{T5Config, T5Encoder, T5Tokenizer, TextEncoder};

#[test]
fn t5_encoder_matches_official() {
    common::assert_parity("t5_encoder.safetensors");
}

#[test]
fn tokenizer_matches_official() {
    common::assert_parity("tokenizer.safetensors");
}

fn encoder_fixture() -> Option<(T5Config, BTreeMap<String, Array>)> {
    let fx = Fixture::open(common::fixture("t5_encoder.safetensors")?).unwrap();
    let cfg: T5Config =
        serde_json::from_value(fx.cfg("resulting_T5Encoder_args").unwrap().clone()).unwrap();
    Some((cfg, fx.params().unwrap()))
}

fn tokenizer() -> Option<T5Tokenizer> {
    let dir: PathBuf = common::fixtures_dir()?.join("checkpoints/ti2v_tiny/google/umt5-xxl");
    Some(T5Tokenizer::from_dir(&dir).unwrap())
}

#[test]
fn expected_keys_are_exactly_the_official_state_dict() {
    let Some((cfg, params)) = encoder_fixture() else {
        return;
    };
    let expected: Vec<String> = T5Encoder::new(cfg)
        .unwrap()
        .expected_params()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let official: Vec<String> = params.keys().cloned().collect();
    assert_eq!(expected, official);
    assert!(official.contains(&"blocks.1.ffn.gate.0.weight".to_string()));
}

#[test]
fn strict_load_reports_every_problem_at_once() {
    let Some((cfg, mut params)) = encoder_fixture() else {
        return;
    };
    params.remove("blocks.0.ffn.gate.0.weight");
    params.insert(
        "norm.weight".into(),
        mlx_rs::ops::zeros::<f32>(&[3]).unwrap(),
    );
    params.insert(
        "pos_embedding.embedding.weight".into(),
        mlx_rs::ops::zeros::<f32>(&[32, 4]).unwrap(),
    );
    let err = T5Encoder::load(cfg, &params, Dtype::Float32).unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.code(), "weights");
    assert!(
        msg.contains("missing `blocks.0.ffn.gate.0.weight`"),
        "{msg}"
    );
    assert!(
        msg.contains("`norm.weight`: expected shape [64], got [3]"),
        "{msg}"
    );
    assert!(
        msg.contains("unexpected `pos_embedding.embedding.weight`"),
        "{msg}"
    );
}

#[test]
fn empty_and_whitespace_prompts_give_only_eos() {
    let Some(tok) = tokenizer() else { return };
    for p in ["", " \t\n "] {
        let t = tok.encode(p).unwrap();
        assert_eq!(t.length, 1);
        assert_eq!(&t.ids[..3], &[1, 0, 0]);
        assert_eq!(&t.mask[..3], &[1, 0, 0]);
        assert_eq!(t.ids.len(), 512);
        assert!(!t.truncated);
    }
}

#[test]
fn long_prompt_is_truncated_to_511_tokens_plus_eos() {
    let Some(tok) = tokenizer() else { return };
    let long = "A lighthouse keeper climbs the stone stairs at dawn. ".repeat(60);
    let t = tok.encode(&long).unwrap();
    assert!(t.truncated);
    assert_eq!(t.length, 512);
    assert!(t.mask.iter().all(|&m| m == 1));
    assert_eq!(t.ids[511], 1, "last id must be </s>");
    assert!(t.ids[..511].iter().all(|&i| i != 1 && i != 0));
    // A short prompt is not flagged.
    assert!(!tok.encode("A short prompt.").unwrap().truncated);
}

#[test]
fn cjk_emoji_and_special_literals() {
    let Some(tok) = tokenizer() else { return };
    // Fullwidth comma folds to ',' (same ids as the ASCII spelling).
    let a = tok.encode("静止，画面").unwrap();
    let b = tok.encode("静止,画面").unwrap();
    assert_eq!(a.ids, b.ids);
    assert_eq!(*a.ids.get(a.length - 1).unwrap(), 1);
    // Emoji are outside the tiny vocabulary: <unk> = 2.
    let e = tok.encode("🐱").unwrap();
    assert!(
        e.ids[..e.length - 1].contains(&2),
        "{:?}",
        &e.ids[..e.length]
    );
    // Special-token literals are matched as added tokens.
    let s = tok.encode("</s> <pad> <unk>").unwrap();
    assert_eq!(&s.ids[..s.length], &[1, 0, 2, 1]);
}

#[test]
fn trimmed_context_is_zero_padded_by_the_dit() {
    // Tiny T5 (dim 64) feeding the tiny t2v DiT (text_dim 64, text_len 32).
    let (Some((t5_cfg, t5_params)), Some(tok), Some(dit_path)) = (
        encoder_fixture(),
        tokenizer(),
        common::fixture("dit_t2v.safetensors"),
    ) else {
        return;
    };
    let dit_fx = Fixture::open(dit_path).unwrap();
    let dit_cfg: WanConfig =
        serde_json::from_value(dit_fx.cfg("constructor").unwrap().clone()).unwrap();
    let text_len = dit_cfg.text_len;
    let dit = WanModel::load(dit_cfg, &dit_fx.params().unwrap()).unwrap();

    let te = TextEncoder::load(tok, t5_cfg, &t5_params, Dtype::Float32).unwrap();
    let prompt = "A dog running on the beach.";
    let ctx = te.encode(&[prompt]).unwrap().contexts.remove(0);
    let len = te.tokenizer.encode(prompt).unwrap().length as i32;
    assert_eq!(ctx.shape(), &[len, 64]);

    // What the DiT fixtures assume: the unpadded context, zero rows up to text_len.
    let zeros = mlx_rs::ops::zeros::<f32>(&[text_len - len, 64]).unwrap();
    let padded = mlx_rs::ops::concatenate(&[ctx.clone(), zeros], 0).unwrap();
    let via_dit = dit.embed_context(&[ctx]).unwrap();
    let explicit = dit.embed_context(&[padded]).unwrap();
    let diff = via_dit
        .subtract(&explicit)
        .unwrap()
        .abs()
        .unwrap()
        .max(None)
        .unwrap();
    assert_eq!(diff.item_cast::<f32>(), 0.0);

    // The encoder's own outputs at pad positions are not zero: padding them in instead
    // would change the DiT context (this is the pitfall the trimming avoids).
    let batch = te.tokenizer.encode_batch(&[prompt]).unwrap();
    let hidden = te.encoder.forward(&batch.ids, &batch.mask, None).unwrap();
    let untrimmed = hidden
        .index((0, ..text_len))
        .as_dtype(Dtype::Float32)
        .unwrap();
    let wrong = dit.embed_context(&[untrimmed]).unwrap();
    let d = wrong
        .subtract(&via_dit)
        .unwrap()
        .abs()
        .unwrap()
        .max(None)
        .unwrap();
    assert!(d.item_cast::<f32>() > 1e-3);
}

#[test]
fn bf16_weights_stay_close_to_the_f32_reference() {
    // The Metal path: matmuls in bf16, norms/softmax/residual in f32.
    let Some((cfg, params)) = encoder_fixture() else {
        return;
    };
    let fx = Fixture::open(common::fixture("t5_encoder.safetensors").unwrap()).unwrap();
    let enc = T5Encoder::load(cfg, &params, Dtype::Bfloat16).unwrap();
    assert_eq!(enc.compute_dtype(), Dtype::Bfloat16);
    let out = enc
        .forward(
            &fx.get("input/ids").unwrap(),
            &fx.get("input/mask").unwrap(),
            None,
        )
        .unwrap();
    assert_eq!(out.dtype(), Dtype::Float32);
    let c = wan::fixture::compare("hidden", &out, &fx.get("output/hidden").unwrap(), 3e-2).unwrap();
    eprintln!("{}", c.line());
    assert!(c.passed(), "{}", c.line());
    assert!(
        c.err > 1e-5,
        "bf16 weights must actually be used ({})",
        c.line()
    );
}

#[test]
fn cached_contexts_skip_the_encoder_and_match_it() {
    use wan::t5::cache::{ContextCache, encode_with_cache};
    let (Some((cfg, params)), Some(tok)) = (encoder_fixture(), tokenizer()) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("wan-t5-cache-it-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cache = ContextCache::new(&dir, 16);
    let prompts = ["A red fox in the snow.", "blurry, low quality"];
    let load = || TextEncoder::load(tok.clone(), cfg.clone(), &params, Dtype::Float32);

    let mut loads = 0;
    let first = encode_with_cache(Some(&cache), "tiny", &prompts, 512, Dtype::Float32, || {
        loads += 1;
        load()
    })
    .unwrap();
    let second = encode_with_cache(Some(&cache), "tiny", &prompts, 512, Dtype::Float32, || {
        loads += 1;
        load()
    })
    .unwrap();
    assert_eq!(loads, 1, "the second run must not load the encoder");
    let direct = load().unwrap().encode(&prompts).unwrap();
    for ((a, b), c) in first
        .contexts
        .iter()
        .zip(&second.contexts)
        .zip(&direct.contexts)
    {
        assert_eq!(a.shape(), c.shape());
        assert_eq!(b.as_slice::<f32>(), c.as_slice::<f32>());
    }
    // Another checkpoint identity misses.
    let mut other = 0;
    encode_with_cache(
        Some(&cache),
        "other",
        &prompts[..1],
        512,
        Dtype::Float32,
        || {
            other += 1;
            load()
        },
    )
    .unwrap();
    assert_eq!(other, 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn official_checkpoint_folder_encodes_like_the_fixture() {
    // Tokenizer + bf16 .pth of the tiny ti2v folder, dims inferred from the weights.
    let (Some(dir), Some(fx_path)) = (
        common::fixtures_dir(),
        common::fixture("tokenizer.safetensors"),
    ) else {
        return;
    };
    let fx = Fixture::open(fx_path).unwrap();
    let te = TextEncoder::from_checkpoint_dir(&dir.join("checkpoints/ti2v_tiny"), Dtype::Float32)
        .unwrap();
    assert_eq!(te.encoder.config.dim, 64);
    assert_eq!(te.encoder.config.num_layers, 2);
    let prompt = fx.cfg("prompts").unwrap()[0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    let ctx = te.encode(&[&prompt]).unwrap().contexts.remove(0);
    let c = wan::fixture::compare(
        "t5_context_0",
        &ctx,
        &fx.get("output/t5_context_0").unwrap(),
        1e-4,
    )
    .unwrap();
    assert!(c.passed(), "{}", c.line());
    // A folder without the encoder file is a clear error.
    let err =
        TextEncoder::from_checkpoint_dir(&dir.join("checkpoints"), Dtype::Float32).unwrap_err();
    assert!(matches!(err.code(), "missing" | "io"), "{err}");
}
