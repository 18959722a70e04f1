//! Quantized weights (issue 12): the quantized DiT equals the float32 forward with the
//! dequantized weights (the kernel path is exact), `convert --quantize` round-trips,
//! bad quantized input is refused naming the tensor with nothing written, a LoRA on a
//! quantized DiT runs as a side path, and loading an official f32 folder in bf16 never
//! holds the f32 copy (MLX's peak-memory counter). Tests run one at a time: the memory
//! test reads process-wide MLX counters.
mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use mlx_rs::{Array, Dtype};
use wan::checkpoint::Checkpoint;
use wan::checkpoint::convert::{ConvertOptions, convert, estimate_bytes, predict_bytes};
use wan::checkpoint::folder::Expert;
use wan::checkpoint::safetensors::{SafeTensors, save};
use wan::dit::{DitLoad, WanModel};
use wan::fixture::{Fixture, compare};
use wan::quant::drift::{drift, fixture_config as config_from_fixture, run_dit_fixture};
use wan::quant::{FolderQuant, QuantSpec, Recipe, folder_quantization};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wan-quant-test-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn load_fixture_dit(fx: &Fixture, quantize: Option<Recipe>) -> WanModel {
    let cfg = config_from_fixture(fx).unwrap();
    let opts = DitLoad {
        dtype: Dtype::Float32,
        quantize,
    };
    WanModel::load_with(cfg, &fx.params().unwrap(), &opts).unwrap()
}

/// The dense f32 model of `fx` with every quantized Linear of `q` replaced by its
/// dequantized weight (what the quantized model must compute).
fn dequantized_twin(fx: &Fixture, q: &mut WanModel) -> WanModel {
    let mut deq = BTreeMap::new();
    q.for_each_block_linear(|k, l| {
        if l.is_quantized() {
            deq.insert(k.to_string(), l.dense_weight()?);
        }
        Ok(())
    })
    .unwrap();
    let mut dense = load_fixture_dit(fx, None);
    dense
        .for_each_block_linear(|k, l| {
            if let Some(w) = deq.get(k) {
                *l.weight = w.clone();
            }
            Ok(())
        })
        .unwrap();
    dense
}

#[test]
fn quantized_dit_equals_the_f32_forward_with_dequantized_weights() {
    let _g = serial();
    for name in ["dit_ti2v", "dit_t2v", "dit_i2v"] {
        let Some(p) = common::fixture(&format!("{name}.safetensors")) else {
            return;
        };
        let fx = Fixture::open(p).unwrap();
        let reference = run_dit_fixture(&load_fixture_dit(&fx, None), &fx).unwrap();
        let specs = [
            QuantSpec::Q8,
            QuantSpec::Q4,
            QuantSpec {
                bits: 4,
                group_size: 32,
            },
            QuantSpec {
                bits: 8,
                group_size: 128,
            },
        ];
        for spec in specs {
            let mut q = load_fixture_dit(&fx, Some(Recipe::all(spec)));
            assert_eq!(q.quantization().unwrap(), Some(spec));
            let l = &q.blocks[1].ffn.fc2;
            assert_eq!(l.weight.dtype(), Dtype::Uint32, "{name}: stays packed");
            assert_eq!(
                l.in_dim(),
                fx.cfg_i64("constructor.ffn_dim").unwrap() as i32
            );
            let out = run_dit_fixture(&q, &fx).unwrap();
            let twin = run_dit_fixture(&dequantized_twin(&fx, &mut q), &fx).unwrap();
            let c = compare(
                &format!("{name} {spec:?} vs dequantized"),
                &out,
                &twin,
                1e-4,
            )
            .unwrap();
            eprintln!("{}", c.line());
            assert!(c.passed(), "{}", c.line());
            // ...and quantization did change the model.
            let d = drift(&out, &reference).unwrap();
            assert!(d.max > 1e-5, "{name} {spec:?}: no drift at all ({d:?})");
        }
    }
}

/// Drift of the quantized DiT fixtures against float32 (normalized by max|f32 out|): what
/// the README table states, bounded so a regression in the kernels or the recipe fails.
#[test]
fn dit_fixture_drift_is_small_and_the_default_recipe_is_no_worse() {
    let _g = serial();
    for name in ["dit_ti2v", "dit_t2v", "dit_i2v"] {
        let Some(p) = common::fixture(&format!("{name}.safetensors")) else {
            return;
        };
        let fx = Fixture::open(p).unwrap();
        let reference = run_dit_fixture(&load_fixture_dit(&fx, None), &fx).unwrap();
        for (spec, max_rms) in [(QuantSpec::Q8, 2e-3), (QuantSpec::Q4, 3e-2)] {
            let mut row = Vec::new();
            for (label, recipe) in [
                ("all", Recipe::all(spec)),
                ("default", Recipe::recommended(spec)),
            ] {
                let q = load_fixture_dit(&fx, Some(recipe));
                let d = drift(&run_dit_fixture(&q, &fx).unwrap(), &reference).unwrap();
                eprintln!(
                    "{name} {} {label}: max {:.2e} rms {:.2e}",
                    spec.name(),
                    d.max,
                    d.rms
                );
                assert!(d.rms < max_rms, "{name} {spec:?} {label}: {d:?}");
                row.push(d);
            }
            assert!(
                row[1].rms <= row[0].rms * 1.05,
                "{name} {spec:?}: default worse than all"
            );
        }
    }
}

fn read_all(path: &Path) -> (BTreeMap<String, Array>, BTreeMap<String, String>) {
    let st = SafeTensors::open(path).unwrap();
    let names: Vec<String> = st.names().map(str::to_string).collect();
    let m = names
        .iter()
        .map(|n| (n.clone(), st.array(n).unwrap()))
        .collect();
    (m, st.metadata().clone())
}

#[test]
fn convert_quantize_round_trips_through_inspect_and_load() {
    let _g = serial();
    let (Some(ti2v), Some(fxp)) = (
        common::fixture("checkpoints/ti2v_tiny"),
        common::fixture("dit_ti2v.safetensors"),
    ) else {
        return;
    };
    let fx = Fixture::open(fxp).unwrap();
    let tmp = scratch("convert");
    let dst = tmp.join("ti2v_q8");
    let opts = ConvertOptions {
        dtype: Dtype::Float32,
        quantize: Some(Recipe::all(QuantSpec::Q8)),
        quantize_t5: Some(QuantSpec::Q8),
        ..ConvertOptions::default()
    };
    let predicted = predict_bytes(&ti2v, &opts).unwrap();
    let summary = convert(&ti2v, &dst, &opts, &mut |_, _, _| {}).unwrap();
    assert_eq!(summary.bytes, predicted, "predicted size is exact");
    assert_eq!(
        estimate_bytes(&ti2v, &opts).unwrap(),
        predicted,
        "header-only estimate"
    );
    let dense = predict_bytes(
        &ti2v,
        &ConvertOptions {
            dtype: Dtype::Float32,
            ..ConvertOptions::default()
        },
    )
    .unwrap();
    assert!(predicted < dense, "{predicted} vs dense {dense}");

    // The folder says what it is (config.json, headers) and the reader agrees.
    let q = folder_quantization(&dst).unwrap();
    assert_eq!(
        q,
        FolderQuant {
            dit: Some(Recipe::all(QuantSpec::Q8)),
            t5: Some(QuantSpec::Q8)
        }
    );
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dst.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["quantization"]["bits"], 8);
    assert_eq!(cfg["quantization"]["group_size"], 64);
    assert_eq!(folder_quantization(&ti2v).unwrap(), FolderQuant::default());

    // inspect_model: precision per component.
    let r = wan::checkpoint::inspect::inspect(&dst).unwrap();
    let prec: BTreeMap<&str, &str> = r
        .files
        .iter()
        .map(|f| (f.kind.as_str(), f.precision.as_str()))
        .collect();
    // 2 blocks × 10 Linears; umT5: 2 blocks × 7 Linears
    assert_eq!(prec["dit"], "q8 (group 64) × 20 Linears + f32");
    assert_eq!(prec["t5"], "q8 (group 64) × 14 Linears + f32");
    assert_eq!(prec["vae"], "f32");
    let dit = r.files.iter().find(|f| f.kind == "dit").unwrap();
    let official = wan::checkpoint::inspect::inspect(&ti2v).unwrap();
    let odit = official.files.iter().find(|f| f.kind == "dit").unwrap();
    assert_eq!(
        dit.totals.params, odit.totals.params,
        "logical parameter count"
    );
    assert!(dit.totals.bytes < odit.totals.bytes);

    // The converted folder loads quantized and computes exactly what quantizing the
    // official folder at load computes (same f32 triples).
    let ck = Checkpoint::open(&dst).unwrap();
    let mut from_folder = ck.load_dit(Expert::Main).unwrap();
    assert_eq!(from_folder.quantization().unwrap(), Some(QuantSpec::Q8));
    let at_load = Checkpoint::open(&ti2v)
        .unwrap()
        .load_dit_with(
            Expert::Main,
            &DitLoad {
                dtype: Dtype::Float32,
                quantize: Some(Recipe::all(QuantSpec::Q8)),
            },
        )
        .unwrap();
    let a = run_dit_fixture(&from_folder, &fx).unwrap();
    let b = run_dit_fixture(&at_load, &fx).unwrap();
    assert!(a.eq_values(&b).unwrap(), "converted ≠ quantized at load");
    assert!(from_folder.weights_bytes() < load_fixture_dit(&fx, None).weights_bytes());

    // umT5 loads quantized too and stays close to the dense encoder.
    let text = |dir: &Path| {
        let tok = wan::t5::T5Tokenizer::from_file(
            &dir.join("google/umt5-xxl/tokenizer.json"),
            wan::t5::TEXT_LEN,
        )
        .unwrap();
        let src = Checkpoint::open(dir).unwrap().t5_source().unwrap();
        let cfg = wan::t5::T5Config::infer(src.as_ref()).unwrap();
        let enc = wan::t5::TextEncoder::load(tok, cfg, src.as_ref(), Dtype::Float32).unwrap();
        let out = enc.encode(&["A red fox runs through fresh snow."]).unwrap();
        (
            enc.encoder.blocks[0].attn.q.is_quantized(),
            out.contexts[0].clone(),
        )
    };
    let (qt5, qctx) = text(&dst);
    let (dt5, dctx) = text(&ti2v);
    assert!(qt5 && !dt5);
    let d = drift(&qctx, &dctx).unwrap();
    eprintln!("umT5 q8 context drift: {d:?}");
    assert!(d.max > 0.0 && d.rms < 5e-3, "{d:?}");

    // A quantized folder is not quantized again.
    let e = convert(&dst, &tmp.join("again"), &opts, &mut |_, _, _| {}).unwrap_err();
    assert!(e.to_string().contains("already quantized"), "{e}");
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn bad_quantized_input_is_refused_naming_the_tensor() {
    let _g = serial();
    let (Some(a14b), Some(ti2v)) = (
        common::fixture("checkpoints/t2v_a14b_tiny"),
        common::fixture("checkpoints/ti2v_tiny"),
    ) else {
        return;
    };
    let tmp = scratch("bad");
    let nothing_written = |dst: &Path| {
        assert!(!dst.exists(), "{} was written", dst.display());
        let left: Vec<_> = std::fs::read_dir(&tmp)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .filter(|n| n.to_string_lossy().contains("converting"))
            .collect();
        assert!(left.is_empty(), "temp folder left: {left:?}");
    };

    // A shape that does not divide the group size (A14B tiny: dim 64, group 128).
    let dst = tmp.join("g128");
    let opts = ConvertOptions {
        quantize: Some(Recipe::all(QuantSpec {
            bits: 8,
            group_size: 128,
        })),
        ..ConvertOptions::default()
    };
    let e = convert(&a14b, &dst, &opts, &mut |_, _, _| {})
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`blocks.0.cross_attn.k.weight` [64, 64]") && e.contains("group size 128"),
        "{e}"
    );
    nothing_written(&dst);

    // Wrong bits / group size.
    for spec in [
        QuantSpec {
            bits: 3,
            group_size: 64,
        },
        QuantSpec {
            bits: 8,
            group_size: 48,
        },
    ] {
        let dst = tmp.join("badspec");
        let opts = ConvertOptions {
            quantize: Some(Recipe::all(spec)),
            ..ConvertOptions::default()
        };
        let e = convert(&ti2v, &dst, &opts, &mut |_, _, _| {}).unwrap_err();
        assert_eq!(e.code(), "input", "{e}");
        assert!(e.to_string().contains("must be"), "{e}");
        nothing_written(&dst);
    }
    assert!(QuantSpec::parse("q2", None).is_err());

    // A quantized folder missing one tensor's scales, or lying about its setting.
    let good = tmp.join("q4");
    let opts = ConvertOptions {
        quantize: Some(Recipe::all(QuantSpec::Q4)),
        ..ConvertOptions::default()
    };
    convert(&ti2v, &good, &opts, &mut |_, _, _| {}).unwrap();
    let file = good.join("wan_model_mlx.safetensors");
    let (tensors, meta) = read_all(&file);
    let mut no_scales = tensors.clone();
    no_scales.remove("blocks.1.ffn.2.scales");
    save(&file, &no_scales, &meta).unwrap();
    let e = Checkpoint::open(&good)
        .unwrap()
        .load_dit(Expert::Main)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("`blocks.1.ffn.2.scales` is missing"), "{e}");
    let e = wan::pipeline::check_folder(&good, wan::config::Task::Ti2v5B)
        .and_then(|ck| ck.dit_config(Expert::Main))
        .unwrap_err()
        .to_string();
    assert!(e.contains("`blocks.1.ffn.2.scales` is missing"), "{e}");

    let mut lying = meta.clone();
    lying.insert(
        "quantization".into(),
        r#"{"bits":8,"group_size":64,"mode":"affine"}"#.into(),
    );
    save(&file, &tensors, &lying).unwrap();
    let e = Checkpoint::open(&good)
        .unwrap()
        .load_dit(Expert::Main)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains(
            "`blocks.0.self_attn.q.weight` is packed as q4 group 64 but the file declares q8"
        ),
        "{e}"
    );
    let e = folder_quantization(&good).unwrap_err().to_string();
    assert!(e.contains("disagrees"), "{e}");
    let mut bad_bits = meta.clone();
    bad_bits.insert(
        "quantization".into(),
        r#"{"bits":5,"group_size":64}"#.into(),
    );
    save(&file, &tensors, &bad_bits).unwrap();
    let e = Checkpoint::open(&good)
        .unwrap()
        .load_dit(Expert::Main)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("bits must be 4 or 8"), "{e}");
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn lora_on_a_quantized_dit_is_a_side_path_equal_to_the_merged_dequantized_weights() {
    let _g = serial();
    let Some(p) = common::fixture("dit_t2v.safetensors") else {
        return;
    };
    let fx = Fixture::open(p).unwrap();
    let tmp = scratch("lora");
    // A rank-4 LoRA on every target of block 1 (PEFT names, alpha 8 → scale 2).
    let mut lora = BTreeMap::new();
    let mut key = mlx_rs::random::key(11).unwrap();
    let (dim, ffn) = (256, 512);
    for (t, out, inp) in [
        ("self_attn.q", dim, dim),
        ("cross_attn.v", dim, dim),
        ("ffn.0", ffn, dim),
        ("ffn.2", dim, ffn),
    ] {
        let (now, next) = mlx_rs::random::split(&key, 2).unwrap();
        key = next;
        let (k1, k2) = mlx_rs::random::split(&now, 2).unwrap();
        let p = format!("diffusion_model.blocks.1.{t}");
        let a = mlx_rs::random::normal::<f32>(&[4, inp], None, Some(0.05), &k1).unwrap();
        let b = mlx_rs::random::normal::<f32>(&[out, 4], None, Some(0.05), &k2).unwrap();
        lora.insert(format!("{p}.lora_A.weight"), a);
        lora.insert(format!("{p}.lora_B.weight"), b);
        lora.insert(format!("{p}.alpha"), Array::from_f32(8.0));
    }
    let file = tmp.join("lora.safetensors");
    save(&file, &lora, &BTreeMap::new()).unwrap();

    let mut q = load_fixture_dit(&fx, Some(Recipe::all(QuantSpec::Q4)));
    let mut twin = dequantized_twin(&fx, &mut q);
    let before = run_dit_fixture(&q, &fx).unwrap();
    assert_eq!(wan::train::lora::merge_lora(&mut q, &file, 0.5).unwrap(), 4);
    assert_eq!(
        wan::train::lora::merge_lora(&mut twin, &file, 0.5).unwrap(),
        4
    );
    assert!(
        q.blocks[1].ffn.fc1.lora.is_some(),
        "side path on the quantized layer"
    );
    assert_eq!(q.blocks[1].ffn.fc1.weight.dtype(), Dtype::Uint32);
    let out = run_dit_fixture(&q, &fx).unwrap();
    let want = run_dit_fixture(&twin, &fx).unwrap();
    let c = compare("LoRA side path vs merged", &out, &want, 1e-4).unwrap();
    eprintln!("{}", c.line());
    assert!(c.passed(), "{}", c.line());
    assert!(
        drift(&out, &before).unwrap().max > 1e-3,
        "the LoRA changed nothing"
    );
    // A full delta cannot be added to a quantized weight: refused, naming it, nothing changed.
    let mut full = BTreeMap::new();
    full.insert(
        "diffusion_model.blocks.0.self_attn.k.diff".to_string(),
        mlx_rs::ops::zeros::<f32>(&[dim, dim]).unwrap(),
    );
    let full_file = tmp.join("full.safetensors");
    save(&full_file, &full, &BTreeMap::new()).unwrap();
    let e = wan::train::lora::merge_lora(&mut q, &full_file, 1.0)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("blocks.0.self_attn.k.weight"), "{e}");
    assert!(q.blocks[0].self_attn.k.lora.is_none());
    // training needs a dense base
    let mut rng = wan::train::objective::Rng::new(0);
    let e = wan::train::lora::LoraWan::new(q, wan::train::lora::LoraConfig::new(4), &mut rng)
        .err()
        .unwrap();
    assert_eq!(e.code(), "unsupported");
    let _ = std::fs::remove_dir_all(&tmp);
}

/// Write an official-layout DiT folder (config.json + f32 shards + index) tensor by
/// tensor, without holding more than one tensor. Returns (f32 bytes, largest tensor bytes).
fn write_official_dit(dir: &Path, cfg: &serde_json::Value, text_dim: i32) -> (u64, u64) {
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    let c = |k: &str| cfg[k].as_i64().unwrap() as i32;
    let mut skeleton = wan::dit::WanConfig::from_json(&cfg.to_string()).unwrap();
    skeleton.text_dim = text_dim;
    let model = WanModel::new(skeleton).unwrap();
    let _ = c("dim");
    // Official shapes: conv weights channels-first.
    let mut tensors: Vec<(String, Vec<i32>)> = model
        .expected_params()
        .into_iter()
        .map(|(k, s)| {
            if k == "patch_embedding.weight" {
                (k, vec![s[0], s[4], s[1], s[2], s[3]])
            } else {
                (k, s)
            }
        })
        .collect();
    tensors.sort();
    let half = tensors.len() / 2;
    let shards = [&tensors[..half], &tensors[half..]];
    let mut weight_map = serde_json::Map::new();
    let (mut total, mut largest) = (0u64, 0u64);
    // One random block of values, reused by every tensor (only sizes matter here; fast).
    let pool_len = tensors
        .iter()
        .map(|(_, s)| s.iter().map(|&d| d as usize).product::<usize>())
        .max()
        .unwrap_or(0);
    let key = mlx_rs::random::key(2).unwrap();
    let pool = mlx_rs::random::normal::<f32>(&[pool_len as i32], None, Some(0.02), &key).unwrap();
    pool.eval().unwrap();
    let pool: Vec<f32> = pool.as_slice::<f32>().to_vec();
    for (i, part) in shards.iter().enumerate() {
        let name = format!("diffusion_pytorch_model-0000{}-of-00002.safetensors", i + 1);
        let mut header = serde_json::Map::new();
        header.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
        let mut off = 0u64;
        for (k, s) in part.iter() {
            let n = s.iter().map(|&d| d as u64).product::<u64>() * 4;
            header.insert(
                k.clone(),
                serde_json::json!({"dtype": "F32", "shape": s, "data_offsets": [off, off + n]}),
            );
            weight_map.insert(k.clone(), name.clone().into());
            off += n;
            total += n;
            largest = largest.max(n);
        }
        let mut h = serde_json::to_vec(&serde_json::Value::Object(header)).unwrap();
        while !h.len().is_multiple_of(8) {
            h.push(b' ');
        }
        let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join(&name)).unwrap());
        f.write_all(&(h.len() as u64).to_le_bytes()).unwrap();
        f.write_all(&h).unwrap();
        for (_, s) in part.iter() {
            let v = &pool[..s.iter().map(|&d| d as usize).product::<usize>()];
            // SAFETY: f32 slice viewed as its little-endian bytes (x86_64 / arm64).
            let b = unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), v.len() * 4) };
            f.write_all(b).unwrap();
        }
        f.flush().unwrap();
    }
    std::fs::write(
        dir.join("diffusion_pytorch_model.safetensors.index.json"),
        serde_json::json!({"metadata": {"total_size": total}, "weight_map": weight_map})
            .to_string(),
    )
    .unwrap();
    (total, largest)
}

/// Issue 11 item 2: an official f32 folder loaded in bf16 never holds the f32 copy — the
/// MLX peak during the load stays within the bf16 model plus one tensor in flight.
#[test]
fn official_f32_dit_loads_in_bf16_without_an_f32_copy() {
    let _g = serial();
    let tmp = scratch("peak");
    // ~2.2 GB of f32: dim 1536, ffn 6144, 14 blocks (largest tensor 37.7 MB).
    let cfg = serde_json::json!({
        "_class_name": "WanModel", "_diffusers_version": "0.33.0",
        "dim": 1536, "eps": 1e-6, "ffn_dim": 6144, "freq_dim": 256, "in_dim": 16,
        "model_type": "t2v", "num_heads": 12, "num_layers": 14, "out_dim": 16, "text_len": 512
    });
    let t0 = std::time::Instant::now();
    let (f32_bytes, largest) = write_official_dit(&tmp, &cfg, 1024);
    eprintln!("wrote the f32 folder in {:.1}s", t0.elapsed().as_secs_f64());
    let t0 = std::time::Instant::now();
    assert!(f32_bytes > 2_000_000_000, "{f32_bytes}");
    let ck = Checkpoint::open(&tmp).unwrap();
    mlx_rs::memory::clear_cache().unwrap();
    let base = mlx_rs::memory::active_memory().unwrap() as u64;
    mlx_rs::memory::reset_peak_memory().unwrap();
    let m = ck
        .load_dit_with(Expert::Main, &DitLoad::dense(Dtype::Bfloat16))
        .unwrap();
    let peak = mlx_rs::memory::peak_memory().unwrap() as u64 - base;
    eprintln!("loaded in bf16 in {:.1}s", t0.elapsed().as_secs_f64());
    let resident = mlx_rs::memory::active_memory().unwrap() as u64 - base;
    let weights = m.weights_bytes();
    assert_eq!(m.blocks[3].ffn.fc1.weight.dtype(), Dtype::Bfloat16);
    assert_eq!(m.blocks[3].modulation.dtype(), Dtype::Float32);
    eprintln!(
        "f32 file {:.2} GB → resident {:.3} GB (weights {:.3} GB), peak during load {:.3} GB, \
         largest tensor {:.1} MB",
        f32_bytes as f64 / 1e9,
        resident as f64 / 1e9,
        weights as f64 / 1e9,
        peak as f64 / 1e9,
        largest as f64 / 1e6
    );
    // Resident = the model in its final dtypes (block Linears bf16, the rest f32).
    assert!(resident <= weights + (16 << 20), "{resident} vs {weights}");
    assert!(
        weights < f32_bytes * 52 / 100,
        "{weights} vs f32 {f32_bytes}"
    );
    // One tensor in flight: its f32 read plus its bf16 cast, plus a little slack.
    let bound = weights + largest + largest / 2 + (32 << 20);
    assert!(peak <= bound, "peak {peak} > bound {bound}");
    drop(m);

    // Quantizing at load from the same f32 folder: the bf16 model is never resident either.
    mlx_rs::memory::clear_cache().unwrap();
    mlx_rs::memory::reset_peak_memory().unwrap();
    let q = ck
        .load_dit_with(
            Expert::Main,
            &DitLoad {
                dtype: Dtype::Bfloat16,
                quantize: Some(Recipe::all(QuantSpec::Q8)),
            },
        )
        .unwrap();
    let qpeak = mlx_rs::memory::peak_memory().unwrap() as u64 - base;
    let qweights = q.weights_bytes();
    eprintln!(
        "q8 at load: weights {:.3} GB ({:.2}× bf16), peak during load {:.3} GB",
        qweights as f64 / 1e9,
        qweights as f64 / weights as f64,
        qpeak as f64 / 1e9
    );
    assert!(qweights * 100 < weights * 60, "{qweights} vs {weights}");
    assert!(
        qpeak <= qweights + 2 * largest + (32 << 20),
        "q8 peak {qpeak}"
    );
    drop(q);
    let _ = std::fs::remove_dir_all(&tmp);
}

/// The per-layer sensitivity study on the fixtures (README "Quantization"): drift of each
/// mixed-precision variant against float32 on the three DiT fixtures, and the end-to-end
/// PSNR of quantized tiny folders against their float32 pipeline.
/// `cargo test -p wan-models --test quant sensitivity_study_on_the_fixtures -- --ignored --nocapture`
#[test]
#[ignore]
fn sensitivity_study_on_the_fixtures() {
    let _g = serial();
    use wan::quant::drift::{e2e_fixture_video, psnr, recipe_bytes, study_recipes};
    for name in ["dit_ti2v", "dit_t2v", "dit_i2v"] {
        let Some(p) = common::fixture(&format!("{name}.safetensors")) else {
            return;
        };
        let fx = Fixture::open(p).unwrap();
        let dense = load_fixture_dit(&fx, None);
        let reference = run_dit_fixture(&dense, &fx).unwrap();
        let bf16 = recipe_bytes(&dense, None, Dtype::Bfloat16) as f64;
        let specs = [
            QuantSpec::Q8,
            QuantSpec::Q4,
            QuantSpec {
                bits: 8,
                group_size: 128,
            },
            QuantSpec {
                bits: 4,
                group_size: 32,
            },
        ];
        for spec in specs {
            for (label, r) in study_recipes(spec, dense.config.num_layers) {
                let q = load_fixture_dit(&fx, Some(r.clone()));
                let d = drift(&run_dit_fixture(&q, &fx).unwrap(), &reference).unwrap();
                let bytes = recipe_bytes(&dense, Some(&r), Dtype::Bfloat16) as f64;
                println!(
                    "| {name} | {}/{} | {label} | {:.2e} | {:.2e} | {:.2} |",
                    spec.name(),
                    spec.group_size,
                    d.max,
                    d.rms,
                    bytes / bf16
                );
            }
        }
    }
    for name in ["e2e_ti2v_t2v", "e2e_t2v_a14b"] {
        let Some(p) = common::fixture(&format!("{name}.safetensors")) else {
            return;
        };
        let fx = Fixture::open(p).unwrap();
        let reference = e2e_fixture_video(&fx, None).unwrap();
        for spec in [QuantSpec::Q8, QuantSpec::Q4] {
            for (label, r) in [
                ("all", Recipe::all(spec)),
                ("default", Recipe::recommended(spec)),
            ] {
                let v = e2e_fixture_video(&fx, Some(r)).unwrap();
                println!(
                    "| {name} | {} | {label} | PSNR {:.1} dB |",
                    spec.name(),
                    psnr(&v, &reference).unwrap()
                );
            }
        }
    }
}

/// The sensitivity study on the full-size TI2V-5B architecture (all dims real, the first
/// `WAN_STUDY_LAYERS` (default 4) blocks, random weights, 16 tokens): drift of each variant
/// against float32. Heavy (~3 GB): run under `flock /tmp/wan-heavy.lock`.
/// `cargo test -p wan-models --test quant sensitivity_study_full_size -- --ignored --nocapture`
#[test]
#[ignore]
fn sensitivity_study_full_size() {
    let _g = serial();
    use wan::bench::random_dit_with;
    use wan::dit::{DitInput, Timesteps, WanConfig};
    use wan::quant::drift::study_recipes;
    let layers: i32 = std::env::var("WAN_STUDY_LAYERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let cfg = WanConfig::ti2v_5b();
    let key = mlx_rs::random::key(9).unwrap();
    let x = mlx_rs::random::normal::<f32>(&[1, cfg.in_dim, 1, 8, 8], None, None, &key).unwrap();
    let ctx = [mlx_rs::random::normal::<f32>(&[32, cfg.text_dim], None, None, &key).unwrap()];
    let t = Timesteps::PerToken(vec![700.0; 16]);
    let run = |m: &WanModel| {
        let o = m
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
        o.eval().unwrap();
        o
    };
    let reference = {
        let m =
            random_dit_with(cfg.clone(), Some(layers), &DitLoad::dense(Dtype::Float32)).unwrap();
        run(&m)
    };
    for spec in [QuantSpec::Q8, QuantSpec::Q4] {
        for (label, r) in study_recipes(spec, layers) {
            let opts = DitLoad {
                dtype: Dtype::Float32,
                quantize: Some(r),
            };
            let m = random_dit_with(cfg.clone(), Some(layers), &opts).unwrap();
            let d = drift(&run(&m), &reference).unwrap();
            println!(
                "| ti2v-5B ×{layers} blocks | {} | {label} | {:.2e} | {:.2e} |",
                spec.name(),
                d.max,
                d.rms
            );
        }
    }
}
