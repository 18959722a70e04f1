//! Peak memory of a VAE decode, untiled vs tiled (its own test binary: MLX's peak
//! counter is process-wide, so nothing else may run beside it).
mod common;

use wan::fixture::Fixture;
use wan::vae::tiling::Tiling;
use wan::vae::{RunOpts, VaeConfig, VaeKind, WanVae};

/// Measured on CPU (vae22 fixture weights, random latent [48, 3, 8, 8] → 9×128×128):
/// untiled peak ≈ 101 MiB, tiled 4/1 ≈ 31 MiB. `decode_bytes` is the memory model's
/// calibrated estimate (`memory::model`), whose stated guarantee is ±15 % of MLX's
/// measured peak (the plan keeps 20 % of the machine as headroom for the rest); asserted
/// here without slack. A tiled decode also holds the whole output frames beside its tile,
/// so its peak is compared with the untiled one only.
#[test]
fn tiling_lowers_peak_memory_and_the_estimate_bounds_it() {
    let Some(path) = common::fixture("vae22.safetensors") else {
        return;
    };
    let fx = Fixture::open(path).unwrap();
    let cfg = VaeConfig::from_constructor(VaeKind::Wan22, fx.cfg("constructor").unwrap()).unwrap();
    let vae = WanVae::load(cfg, &fx.params().unwrap()).unwrap();
    mlx_rs::random::seed(0).unwrap();
    let z = mlx_rs::random::normal::<f32>(&[48, 3, 8, 8], None, None, None).unwrap();
    z.eval().unwrap();
    let peak = |f: &dyn Fn()| -> usize {
        mlx_rs::memory::clear_cache().unwrap();
        mlx_rs::memory::reset_peak_memory().unwrap();
        f();
        mlx_rs::memory::peak_memory().unwrap()
    };
    let untiled = peak(&|| {
        vae.decode(&z).unwrap().eval().unwrap();
    });
    let t = Tiling {
        tile: 4,
        overlap: 1,
    };
    let tiled = peak(&|| {
        vae.decode_tiled(&z, t, RunOpts::default())
            .unwrap()
            .eval()
            .unwrap();
    });
    let mib = |b: usize| b as f64 / (1 << 20) as f64;
    eprintln!(
        "peak untiled {:.1} MiB (estimate {:.1}), tiled {:.1} MiB (estimate {:.1})",
        mib(untiled),
        mib(vae.decode_bytes(8, 8) as usize),
        mib(tiled),
        mib(vae.decode_bytes(4, 4) as usize)
    );
    assert!(tiled * 2 < untiled, "tiled {tiled} vs untiled {untiled}");
    let estimate = vae.decode_bytes(8, 8) as f64;
    let rel = (estimate - untiled as f64) / untiled as f64;
    assert!(
        rel.abs() <= 0.15,
        "estimate {estimate} is {:+.1} % off the untiled peak {untiled}",
        rel * 100.0
    );
}
