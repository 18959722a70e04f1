//! Loading the tiny official folders (`checkpoints/{ti2v_tiny,t2v_a14b_tiny}`) reproduces
//! the fixtures' tensors, and a converted folder gives the same model outputs.
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use mlx_rs::{Array, Dtype};
use wan::checkpoint::convert::{ConvertOptions, convert};
use wan::checkpoint::{
    Checkpoint, Expert, FolderKind, Layout, Shards, T5Dims, TensorSource, VaeDims, to_mlx_layout,
};
use wan::config::{Task, VaeKind};
use wan::dit::{DitInput, Timesteps, WanModel};

use wan::fixture::Fixture;

fn folder(name: &str) -> Option<PathBuf> {
    common::fixture(&format!("checkpoints/{name}"))
}

/// A fresh empty scratch folder for this test.
fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wan-ckpt-test-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Same dtype, same shape, same values.
fn assert_identical(what: &str, got: &Array, want: &Array) {
    assert_eq!(got.dtype(), want.dtype(), "{what}: dtype");
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    assert!(got.eq_values(want).unwrap(), "{what}: values differ");
}

/// Every tensor of `src` equals `want` (official PyTorch layout), after `cast`.
fn assert_source_equals(
    src: &dyn TensorSource,
    want: &BTreeMap<String, Array>,
    cast: Option<Dtype>,
) {
    let mut names = src.tensor_names();
    names.sort();
    assert_eq!(names, want.keys().cloned().collect::<Vec<_>>());
    for (k, w) in want {
        let mut w = w.clone();
        if let Some(d) = cast {
            w = w.as_dtype(d).unwrap();
        }
        let mut got = src.load_tensor(k).unwrap();
        if src.layout() == Layout::Mlx {
            w = to_mlx_layout(k, w).unwrap();
        }
        if let Some(d) = cast {
            got = got.as_dtype(d).unwrap();
        }
        assert_identical(k, &got, &w);
    }
}

/// The `dit_ti2v` fixture inputs run through a model.
fn run_dit(model: &WanModel, fx: &Fixture) -> Array {
    let x = fx.get_f32("input/x").unwrap().expand_dims(0).unwrap();
    let t = Timesteps::PerToken(fx.get_vec_f32("input/t").unwrap());
    let context = [fx.get_f32("input/context").unwrap()];
    let out = model
        .forward(
            &DitInput {
                x: &x,
                t: &t,
                context: &context,
                y: None,
            },
            None,
        )
        .unwrap();
    out.eval().unwrap();
    out
}

/// Tiny random DiT inputs for a config (t2v: one timestep per sample).
fn run_t2v(model: &WanModel) -> Array {
    let c = &model.config;
    let (k1, k2) = (
        mlx_rs::random::key(7).unwrap(),
        mlx_rs::random::key(8).unwrap(),
    );
    let x = mlx_rs::random::normal::<f32>(&[1, c.in_dim, 2, 4, 4], None, None, &k1).unwrap();
    let ctx = [mlx_rs::random::normal::<f32>(&[5, c.text_dim], None, None, &k2).unwrap()];
    let t = Timesteps::PerSample(vec![700.0]);
    let out = model
        .forward(
            &DitInput {
                x: &x,
                t: &t,
                context: &ctx,
                y: None,
            },
            None,
        )
        .unwrap();
    out.eval().unwrap();
    out
}

#[test]
fn ti2v_folder_dit_equals_fixture_params_and_output() {
    let (Some(dir), Some(fxp)) = (folder("ti2v_tiny"), common::fixture("dit_ti2v.safetensors"))
    else {
        return;
    };
    let fx = Fixture::open(fxp).unwrap();
    let ck = Checkpoint::open(&dir).unwrap();
    assert_eq!(ck.kind, FolderKind::Official);
    assert_eq!(ck.experts(), vec![Expert::Main]);
    assert_eq!(ck.task().unwrap(), Task::Ti2v5B);
    assert!(
        ck.tokenizer_path()
            .unwrap()
            .ends_with("google/umt5-xxl/tokenizer.json")
    );

    let src = ck.dit_source(Expert::Main).unwrap();
    assert_source_equals(&src, &fx.params().unwrap(), None);

    let cfg = ck.dit_config(Expert::Main).unwrap();
    let want_cfg: wan::dit::WanConfig =
        serde_json::from_value(fx.cfg("constructor").unwrap().clone()).unwrap();
    assert_eq!(cfg.text_dim, want_cfg.text_dim);
    assert_eq!(cfg.dim, want_cfg.dim);
    let from_folder = run_dit(&ck.load_dit(Expert::Main).unwrap(), &fx);
    let from_fixture = run_dit(
        &WanModel::load(want_cfg, &fx.params().unwrap()).unwrap(),
        &fx,
    );
    assert_identical("output", &from_folder, &from_fixture);
    let c = wan::fixture::compare(
        "output/out",
        &from_folder,
        &fx.get("output/out").unwrap(),
        1e-4,
    )
    .unwrap();
    eprintln!("ti2v_tiny DiT: {}", c.line());
    assert!(c.passed(), "{}", c.line());
}

#[test]
fn t5_pth_equals_fixture_params_rounded_to_bf16() {
    let (Some(dir), Some(fxp)) = (
        folder("ti2v_tiny"),
        common::fixture("t5_encoder.safetensors"),
    ) else {
        return;
    };
    let ck = Checkpoint::open(&dir).unwrap();
    let src = ck.t5_source().unwrap();
    for n in src.tensor_names() {
        assert_eq!(src.load_tensor(&n).unwrap().dtype(), Dtype::Bfloat16, "{n}");
    }
    let want = Fixture::open(fxp).unwrap().params().unwrap();
    assert_source_equals(src.as_ref(), &want, Some(Dtype::Bfloat16));
    let d = ck.t5_dims().unwrap();
    assert_eq!(
        d,
        T5Dims {
            vocab: 512,
            dim: 64,
            dim_attn: 64,
            dim_ffn: 128,
            num_heads: 4,
            num_layers: 2,
            num_buckets: 32
        }
    );
}

#[test]
fn vae_pths_equal_fixture_params() {
    for (dir, fx, kind, z, dec) in [
        ("ti2v_tiny", "vae22.safetensors", VaeKind::Wan22, 48, 12),
        ("t2v_a14b_tiny", "vae21.safetensors", VaeKind::Wan21, 16, 8),
    ] {
        let (Some(dir), Some(fxp)) = (folder(dir), common::fixture(fx)) else {
            return;
        };
        let ck = Checkpoint::open(&dir).unwrap();
        let src = ck.vae_source().unwrap();
        assert_source_equals(
            src.as_ref(),
            &Fixture::open(fxp).unwrap().params().unwrap(),
            None,
        );
        let d: VaeDims = ck.vae_dims().unwrap();
        assert_eq!(
            (d.kind, d.dim, d.z_dim, d.dec_dim),
            (kind, 8, z, dec),
            "{fx}"
        );
    }
}

#[test]
fn converted_folders_load_to_identical_outputs() {
    let (Some(ti2v), Some(a14b), Some(fxp)) = (
        folder("ti2v_tiny"),
        folder("t2v_a14b_tiny"),
        common::fixture("dit_ti2v.safetensors"),
    ) else {
        return;
    };
    let fx = Fixture::open(fxp).unwrap();
    let tmp = scratch("convert");
    let f32 = ConvertOptions {
        dtype: Dtype::Float32,
        shard_bytes: 1 << 20, // force several shards on the tiny DiTs
        ..ConvertOptions::default()
    };

    // TI2V: DiT output identical; T5 / VAE tensors identical in MLX layout.
    let out = tmp.join("ti2v_mlx");
    let summary = convert(&ti2v, &out, &f32, &mut |_, _, _| {}).unwrap();
    assert!(
        summary
            .files
            .iter()
            .any(|f| f.ends_with("wan_model_mlx.safetensors.index.json"))
    );
    let (off, conv) = (
        Checkpoint::open(&ti2v).unwrap(),
        Checkpoint::open(&out).unwrap(),
    );
    assert_eq!(conv.kind, FolderKind::Converted);
    assert_eq!(conv.task().unwrap(), Task::Ti2v5B);
    assert_eq!(conv.dit_source(Expert::Main).unwrap().layout(), Layout::Mlx);
    assert!(conv.dit_source(Expert::Main).unwrap().files().len() > 1);
    let a = run_dit(&off.load_dit(Expert::Main).unwrap(), &fx);
    let b = run_dit(&conv.load_dit(Expert::Main).unwrap(), &fx);
    assert_identical("ti2v output", &b, &a);
    let t5 = off.t5_source().unwrap();
    let want: BTreeMap<String, Array> = t5
        .tensor_names()
        .into_iter()
        .map(|n| (n.clone(), t5.load_tensor(&n).unwrap()))
        .collect();
    assert_source_equals(
        conv.t5_source().unwrap().as_ref(),
        &want,
        Some(Dtype::Float32),
    );
    assert_eq!(conv.t5_dims().unwrap(), off.t5_dims().unwrap());
    assert_eq!(conv.vae_dims().unwrap(), off.vae_dims().unwrap());
    for f in [
        "config.json",
        "configuration.json",
        "google/umt5-xxl/tokenizer.json",
    ] {
        assert_eq!(
            std::fs::read(ti2v.join(f)).unwrap(),
            std::fs::read(out.join(f)).unwrap(),
            "{f}"
        );
    }

    // A14B: both experts, identical outputs.
    let out = tmp.join("a14b_mlx");
    convert(&a14b, &out, &f32, &mut |_, _, _| {}).unwrap();
    let (off, conv) = (
        Checkpoint::open(&a14b).unwrap(),
        Checkpoint::open(&out).unwrap(),
    );
    assert_eq!(conv.task().unwrap(), Task::T2vA14B);
    for e in [Expert::HighNoise, Expert::LowNoise] {
        let a = run_t2v(&off.load_dit(e).unwrap());
        let b = run_t2v(&conv.load_dit(e).unwrap());
        assert_identical(&format!("{e:?} output"), &b, &a);
    }
    let vae = conv.vae_source().unwrap();
    assert_eq!(
        vae.tensor_shape("encoder.conv1.weight").unwrap(),
        vec![8, 3, 3, 3, 3],
        "conv weights are channels-last"
    );
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn default_convert_is_bf16_with_format_metadata() {
    let Some(src) = folder("ti2v_tiny") else {
        return;
    };
    let tmp = scratch("bf16");
    let out = tmp.join("mlx");
    let status = Command::new(env!("CARGO_BIN_EXE_convert"))
        .args([src.as_os_str(), out.as_os_str()])
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    for (file, component, source) in [
        (
            "wan_model_mlx.safetensors",
            "dit",
            "diffusion_pytorch_model.safetensors.index.json",
        ),
        (
            "t5_encoder_mlx.safetensors",
            "t5",
            "models_t5_umt5-xxl-enc-bf16.pth",
        ),
        ("vae_mlx.safetensors", "vae", "Wan2.2_VAE.pth"),
    ] {
        let s = Shards::single(out.join(file)).unwrap();
        let m = s.metadata();
        assert_eq!(m["format"], "wan-studio-mlx", "{file}");
        assert_eq!(m["layout"], "mlx", "{file}");
        assert_eq!(m["format_version"], "1", "{file}");
        assert_eq!(m["component"], component, "{file}");
        assert!(m["source"].starts_with(source), "{file}: {}", m["source"]);
        assert_eq!(s.layout(), Layout::Mlx);
        for n in s.tensor_names() {
            assert_eq!(s.info(&n).unwrap().dtype.name(), "BF16", "{file} {n}");
        }
    }
    // The bf16 folder loads (weights upcast to f32) and differs from f32 only by rounding.
    let ck = Checkpoint::open(&out).unwrap();
    ck.load_dit(Expert::Main).unwrap();
    // No temp folder is left beside the output.
    let leftovers: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name() != "mlx")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let _ = std::fs::remove_dir_all(&tmp);
}

fn param_total(fixture: &str) -> Option<u64> {
    let fx = Fixture::open(common::fixture(fixture)?).unwrap();
    Some(fx.params().unwrap().values().map(|a| a.size() as u64).sum())
}

fn inspect_json(path: &Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_inspect_model"))
        .arg(path)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn inspect_model_prints_the_right_totals() {
    let (Some(ti2v), Some(dit), Some(t5), Some(vae)) = (
        folder("ti2v_tiny"),
        param_total("dit_ti2v.safetensors"),
        param_total("t5_encoder.safetensors"),
        param_total("vae22.safetensors"),
    ) else {
        return;
    };
    let j = inspect_json(&ti2v);
    assert_eq!(j["totals"]["params"], dit + t5 + vae);
    assert_eq!(j["folder"]["task"], "ti2v-5B");
    let files = j["files"].as_array().unwrap();
    let by_kind = |k: &str| files.iter().find(|f| f["kind"] == k).unwrap();
    assert_eq!(by_kind("dit")["totals"]["params"], dit);
    assert_eq!(by_kind("dit")["totals"]["bytes"], dit * 4);
    assert_eq!(by_kind("dit")["config"]["text_dim"], 64);
    assert_eq!(by_kind("t5")["totals"]["params"], t5);
    assert_eq!(by_kind("t5")["totals"]["by_dtype"]["BF16"][1], t5 * 2);
    assert_eq!(by_kind("vae")["totals"]["params"], vae);
    assert_eq!(by_kind("vae")["config"]["kind"], "Wan22");

    // Single files: a .pth and a shard index.
    let j = inspect_json(&ti2v.join("Wan2.2_VAE.pth"));
    assert_eq!(j["totals"]["params"], vae);
    let j = inspect_json(&ti2v.join("diffusion_pytorch_model.safetensors.index.json"));
    assert_eq!(j["totals"]["params"], dit);

    // The human-readable form states the same total.
    let out = Command::new(env!("CARGO_BIN_EXE_inspect_model"))
        .arg(&ti2v)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("{} params", dit + t5 + vae)),
        "{text}"
    );

    // A14B: two experts of the documented size (dim 64, ffn 128, 2 layers, 16 channels).
    let Some(a14b) = folder("t2v_a14b_tiny") else {
        return;
    };
    let j = inspect_json(&a14b);
    assert_eq!(j["folder"]["task"], "t2v-A14B");
    let dits: Vec<&serde_json::Value> = j["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "dit")
        .collect();
    assert_eq!(dits.len(), 2);
    for (d, expert) in dits.iter().zip(["high_noise_model", "low_noise_model"]) {
        // The generator's index states the byte total; the shards are float32.
        let index = a14b
            .join(expert)
            .join("diffusion_pytorch_model.safetensors.index.json");
        let index: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(index).unwrap()).unwrap();
        let bytes = index["metadata"]["total_size"].as_u64().unwrap();
        assert_eq!(d["totals"]["bytes"], bytes);
        assert_eq!(d["totals"]["params"], bytes / 4);
    }
}

#[test]
fn cancelled_convert_leaves_nothing_behind() {
    let Some(src) = folder("t2v_a14b_tiny") else {
        return;
    };
    let tmp = scratch("cancel");
    let dst = tmp.join("mlx");
    let token = wan::pipeline::api::CancelToken::new();
    let opts = ConvertOptions {
        cancel: Some(token.clone()),
        ..ConvertOptions::default()
    };
    let mut written = 0;
    // Cancel once a few tensors have been written (mid-file, mid-folder).
    let err = convert(&src, &dst, &opts, &mut |_, _, _| {
        written += 1;
        if written == 5 {
            token.cancel();
        }
    })
    .unwrap_err();
    assert_eq!(err.code(), "cancelled");
    assert_eq!(written, 5);
    assert!(!dst.exists());
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "temp folder left"
    );
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn vae_from_official_and_converted_folders_decodes_like_the_fixture() {
    let tmp = scratch("vae");
    for (name, fx) in [
        ("ti2v_tiny", "vae22.safetensors"),
        ("t2v_a14b_tiny", "vae21.safetensors"),
    ] {
        let (Some(dir), Some(fxp)) = (folder(name), common::fixture(fx)) else {
            return;
        };
        let fx = Fixture::open(fxp).unwrap();
        let z = fx.get_f32("input/z").unwrap();
        let official = Checkpoint::open(&dir).unwrap().load_vae().unwrap();
        let a = official.decode(&z).unwrap();
        a.eval().unwrap();
        let c = wan::fixture::compare("output/video", &a, &fx.get("output/video").unwrap(), 1e-4)
            .unwrap();
        eprintln!("{name}: {}", c.line());
        assert!(c.passed(), "{name}: {}", c.line());

        let out = tmp.join(name);
        let opts = ConvertOptions {
            dtype: Dtype::Float32,
            ..ConvertOptions::default()
        };
        convert(&dir, &out, &opts, &mut |_, _, _| {}).unwrap();
        let converted = Checkpoint::open(&out).unwrap().load_vae().unwrap();
        assert_eq!(converted.cfg, official.cfg);
        let b = converted.decode(&z).unwrap();
        assert_identical(&format!("{name} decode"), &b, &a);
    }
    let _ = std::fs::remove_dir_all(&tmp);
}
