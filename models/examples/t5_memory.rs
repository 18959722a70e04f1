//! Peak memory of the umT5-XXL encoder at full width, random weights, one 512-token prompt.
//!
//! `cargo run -p wan-models --example t5_memory -- [LAYERS] [f32|bf16]`
//! builds `T5Config::umt5_xxl()` with LAYERS blocks (default 24), fills every parameter
//! with lazy random normals in the given weight dtype (nothing is allocated before the
//! graph runs), encodes one prompt and prints MLX's active / peak memory counters.
//! With fewer layers, the per-layer cost extrapolates linearly (weights dominate).
//!
//! Measured on the shared 2-core x86_64 Linux box (MLX CPU, 24 GiB RAM), debug build:
//!
//! | layers | weights | weight mem | peak during encode | encode 1×512 |
//! |---|---|---|---|---|
//! | 1 | f32 | 4.63 GiB | 5.00 GiB | 11.3 s |
//! | 2 | f32 | 5.35 GiB | 5.80 GiB | 22.8 s |
//! | 3 | f32 | 6.07 GiB | 6.52 GiB | 26.5 s |
//! | 1 | bf16 | 2.32 GiB | 2.71 GiB | 84.5 s (CPU bf16 matmuls are slow) |
//! | 2 | bf16 | 2.67 GiB | 3.08 GiB | 144.3 s |
//!
//! Activations add ≈ 0.4–0.45 GiB whatever the depth (MLX frees each block's
//! intermediates as the graph runs), so the full 24-layer encoder needs ≈ 21.2 + 0.45 ≈
//! 21.6 GiB in f32 (does not fit beside anything else on a 24 GiB machine) and
//! ≈ 10.6 + 0.4 ≈ 11 GiB with bf16 weights. A full 24-layer bf16 run here reached
//! 11.3 GB RSS with all weights resident but was stopped by its 20-minute limit while
//! encoding (bf16 on this CPU ≈ 85 s per layer under load); on Metal bf16 is the fast path.
use std::time::Instant;

use mlx_rs::module::ModuleParameters;
use mlx_rs::{Array, Dtype};
use wan::t5::{T5Config, T5Encoder};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let layers: i32 = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(24);
    let dtype = match args.get(2).map(String::as_str) {
        Some("bf16") => Dtype::Bfloat16,
        _ => Dtype::Float32,
    };
    let mut cfg = T5Config::umt5_xxl();
    cfg.num_layers = layers;
    let mut enc = T5Encoder::new(cfg.clone())?;
    // Small uniform weights keep the activations O(1) like a trained model's (uniform is
    // much cheaper to draw on CPU than normal). Drawn and evaluated before the clock starts.
    let t0 = Instant::now();
    for (_, p) in enc.parameters_mut().flatten() {
        let shape = p.shape().to_vec();
        *p = mlx_rs::random::uniform::<f32, f32>(-0.03, 0.03, &shape[..], None)?.as_dtype(dtype)?;
        p.eval()?;
    }
    let init_s = t0.elapsed().as_secs_f64();
    let l = 512;
    let ids: Vec<i32> = (0..l).map(|i| (i * 7919) % cfg.vocab).collect();
    let ids = Array::from_slice(&ids, &[1, l]);
    let mask = Array::from_slice(&vec![1i32; l as usize], &[1, l]);
    let weights = mlx_rs::memory::active_memory()?;
    mlx_rs::memory::reset_peak_memory()?;
    let t0 = Instant::now();
    let out = enc.forward(&ids, &mask, None)?;
    out.eval()?;
    let gib = |b: usize| b as f64 / (1u64 << 30) as f64;
    println!(
        "umT5-XXL width, {layers} layer(s), {:?} weights ({:.2} B params, init {init_s:.1} s): \
         encode 1×{l} in {:.1} s; weights {:.2} GiB, active after {:.2} GiB, peak {:.2} GiB",
        dtype,
        enc.num_params() as f64 / 1e9,
        t0.elapsed().as_secs_f64(),
        gib(weights),
        gib(mlx_rs::memory::active_memory()?),
        gib(mlx_rs::memory::peak_memory()?),
    );
    Ok(())
}
