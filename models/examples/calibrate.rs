//! Calibration of the memory model: measured (MLX's counters, random weights) vs predicted
//! peak for the official architectures at full width — a few DiT blocks of TI2V-5B and of an
//! A14B expert at several token counts, umT5-XXL with 1 and 2 layers, the 2.2 / 2.1 VAEs at
//! small sizes — on this machine's backend.
//!
//! `cargo run -p wan-models --example calibrate [-- --reduced] [--only N]`
//! (full width needs ≈ 6 GB at its largest point; on the shared Linux box run it under
//! `flock /tmp/wan-heavy.lock`). Prints one JSON line per point; README "Memory plan"
//! holds the numbers.
//!
//! `-- --probes` separates the DiT step's stages (one head, widened FFN, both kernel
//! sets; ≈ 7 GB at its largest).
//!
//! `-- --t5-release LAYERS` measures what the text phase gives back: umT5-XXL at full
//! width with LAYERS layers (random weights, the backend's dtype), one prompt encoded,
//! then the encoder dropped and MLX's cache cleared as the pipeline does before the DiT
//! is read; prints MLX's active memory at each point.
use wan::memory::Backend;
use wan::memory::calibrate::{full_size_points, reduced_points};

/// Active memory before, with umT5 loaded and encoded, and after its release.
fn t5_release(layers: i32) -> anyhow::Result<()> {
    use mlx_rs::module::ModuleParameters;
    let active = || mlx_rs::memory::active_memory().unwrap_or(0) as u64;
    let dtype = Backend::current().default_dtype();
    let mut cfg = wan::t5::T5Config::umt5_xxl();
    cfg.num_layers = layers;
    mlx_rs::memory::clear_cache()?;
    let before = active();
    let mut enc = wan::t5::T5Encoder::new(cfg.clone())?;
    for (_, p) in enc.parameters_mut().flatten() {
        let shape = p.shape().to_vec();
        let r = mlx_rs::random::uniform::<f32, f32>(-0.03, 0.03, &shape[..], None)?;
        *p = r.as_dtype(dtype)?;
        p.eval()?;
    }
    let ids: Vec<i32> = (0..512).map(|i| (i * 7919) % cfg.vocab).collect();
    let ids = mlx_rs::Array::from_slice(&ids, &[1, 512]);
    let mask = mlx_rs::Array::from_slice(&[1i32; 512], &[1, 512]);
    let ctx = enc.forward(&ids, &mask, None)?;
    ctx.eval()?;
    let with_t5 = active();
    let weights = wan::memory::model::t5_bytes(&cfg, dtype);
    drop(enc);
    mlx_rs::memory::clear_cache()?;
    let after = active();
    println!(
        "{}",
        serde_json::json!({
            "t5_layers": layers,
            "dtype": wan::memory::plan::dtype_name(dtype),
            "t5_weight_bytes": weights,
            "active_before_bytes": before,
            "active_with_t5_bytes": with_t5,
            "active_after_release_bytes": after,
            "released_bytes": with_t5 - after,
            "context_bytes": ctx.nbytes(),
        })
    );
    Ok(())
}

/// The stage-separating probes: TI2V-5B width, 2 blocks, 1 280 tokens, batch 2, f32, with
/// one head (no heads-major copies, negligible scores) and the FFN widened ×1/×2/×4, with
/// both kernel sets; plus 24 heads. Prints the working set (peak − resident) per probe.
fn probes() -> anyhow::Result<()> {
    use wan::dit::{Kernels, WanConfig};
    use wan::memory::calibrate::dit_step_with;
    for kernels in [Kernels::Exact, Kernels::Fast] {
        for heads in [1, 24] {
            for widen in [1, 2, 4] {
                let mut cfg = WanConfig::ti2v_5b();
                cfg.num_layers = 2;
                cfg.num_heads = heads;
                cfg.ffn_dim *= widen;
                let m =
                    dit_step_with(&cfg, [48, 5, 32, 32], 2, mlx_rs::Dtype::Float32, kernels, 1)?;
                println!(
                    "{}",
                    serde_json::json!({
                        "probe": "ti2v 2 blocks, 1280 tokens, batch 2, f32",
                        "kernels": kernels, "heads": heads, "ffn_dim": cfg.ffn_dim,
                        "resident_bytes": m.resident_bytes, "peak_bytes": m.peak_bytes,
                        "working_bytes": m.peak_bytes.saturating_sub(m.resident_bytes),
                    })
                );
            }
        }
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    if let Some(l) = std::env::args().skip_while(|a| a != "--t5-release").nth(1) {
        return t5_release(l.parse()?);
    }
    if std::env::args().any(|a| a == "--probes") {
        return probes();
    }
    let reduced = std::env::args().any(|a| a == "--reduced");
    let only: Option<usize> = std::env::args()
        .skip_while(|a| a != "--only")
        .nth(1)
        .map(|s| s.parse())
        .transpose()?;
    let points = if reduced {
        reduced_points()
    } else {
        full_size_points()
    };
    let k = Backend::current().constants();
    for (i, p) in points.iter().enumerate() {
        if only.is_some_and(|o| o != i) {
            continue;
        }
        let t0 = std::time::Instant::now();
        let c = p.calibrate(k)?;
        let mut v = serde_json::to_value(&c)?;
        v["seconds"] = serde_json::json!(t0.elapsed().as_secs_f64());
        v["backend"] = serde_json::json!(Backend::current().name());
        println!("{v}");
    }
    Ok(())
}
