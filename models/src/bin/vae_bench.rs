//! `vae_bench FIXTURE`: time and peak memory of a VAE decode, untiled and tiled, on a
//! random latent of a chosen size, plus tiled-vs-untiled agreement and the tiling
//! estimator's prediction. Weights come from a `vae21`/`vae22` fixture.
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use clap::Parser;
use mlx_rs::Array;
use wan::fixture::Fixture;
use wan::vae::tiling::Tiling;
use wan::vae::{RunOpts, VaeConfig, VaeKind, WanVae, host_f32};

#[derive(Parser)]
#[command(version, about = "Decode time / peak memory, tiled vs untiled")]
struct Args {
    fixture: PathBuf,
    /// Latent frames.
    #[arg(long, default_value_t = 3)]
    frames: i32,
    /// Latent height, width (cells).
    #[arg(long, default_value_t = 16)]
    height: i32,
    #[arg(long, default_value_t = 16)]
    width: i32,
    #[arg(long, default_value_t = 8)]
    tile: i32,
    #[arg(long, default_value_t = 2)]
    overlap: i32,
}

fn measure(f: impl FnOnce() -> wan::Result<Array>) -> Result<(Array, f64, usize)> {
    mlx_rs::memory::clear_cache()?;
    mlx_rs::memory::reset_peak_memory()?;
    let t0 = Instant::now();
    let out = f()?;
    out.eval()?;
    Ok((
        out,
        t0.elapsed().as_secs_f64(),
        mlx_rs::memory::peak_memory()?,
    ))
}

fn main() -> Result<()> {
    let a = Args::parse();
    let fx = Fixture::open(&a.fixture)?;
    let kind = match fx.case.as_str() {
        c if c.starts_with("vae22") => VaeKind::Wan22,
        c if c.starts_with("vae21") => VaeKind::Wan21,
        c => bail!("not a VAE fixture (case `{c}`)"),
    };
    let vae = WanVae::load(
        VaeConfig::from_constructor(kind, fx.cfg("constructor")?)?,
        &fx.params()?,
    )?;
    mlx_rs::random::seed(0)?;
    let z = mlx_rs::random::normal::<f32>(
        &[vae.cfg.z_dim, a.frames, a.height, a.width],
        None,
        None,
        None,
    )?;
    z.eval()?;
    let (full, t_full, m_full) = measure(|| vae.decode(&z))?;
    let tiling = Tiling {
        tile: a.tile,
        overlap: a.overlap,
    };
    let (tiled, t_tiled, m_tiled) = measure(|| vae.decode_tiled(&z, tiling, RunOpts::default()))?;
    let (x, y) = (host_f32(&full)?, host_f32(&tiled)?);
    let (mut max, mut se) = (0f32, 0f64);
    for (p, q) in x.iter().zip(&y) {
        max = max.max((p - q).abs());
        se += ((p - q) as f64).powi(2);
    }
    let psnr = 10.0 * (4.0 / (se / x.len() as f64).max(1e-20)).log10();
    let mib = |b: usize| b as f64 / (1 << 20) as f64;
    println!(
        "{:?} latent [{}, {}, {}, {}] -> video {:?}",
        kind,
        vae.cfg.z_dim,
        a.frames,
        a.height,
        a.width,
        full.shape()
    );
    println!(
        "untiled: {t_full:.2}s, peak {:.1} MiB (estimate per chunk {:.1} MiB)",
        mib(m_full),
        mib(vae.decode_bytes(a.height, a.width) as usize)
    );
    println!(
        "tiled {}/{} ({} tiles): {t_tiled:.2}s, peak {:.1} MiB (estimate per chunk {:.1} MiB)",
        a.tile,
        a.overlap,
        tiling.count(a.height, a.width),
        mib(m_tiled),
        mib(vae.decode_bytes(a.tile.min(a.height), a.tile.min(a.width)) as usize)
    );
    println!("tiled vs untiled: max |err| {max:.3e}, PSNR {psnr:.1} dB");
    Ok(())
}
