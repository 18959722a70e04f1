//! `fit_preview SOURCE`: fit the fast latent previewer of a VAE once and write
//! `preview_mlx.safetensors` (beside the weights unless `--out` says otherwise).
//!
//! SOURCE is a `vae21`/`vae22` golden fixture (config and `param/*` from the file; then
//! `--out` is required, fixture folders are read-only references) or a
//! VAE safetensors file with official keys in PyTorch layout (`--kind wan21|wan22`
//! selects the official preset config).
use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Parser;
use wan::checkpoint::safetensors::SafeTensors;
use wan::fixture::Fixture;
use wan::vae::preview::{PREVIEW_FILE, Previewer};
use wan::vae::{VaeConfig, VaeKind, WanVae};

#[derive(Parser)]
#[command(version, about = "Fit the fast latent→RGB previewer of a Wan VAE")]
struct Args {
    /// A vae21/vae22 fixture, or VAE weights (.safetensors, official keys).
    source: PathBuf,
    /// VAE kind for a weights file: wan21 or wan22.
    #[arg(long)]
    kind: Option<String>,
    /// Output file (default: preview_mlx.safetensors beside SOURCE).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Number of fitting videos.
    #[arg(long, default_value_t = 32)]
    samples: usize,
    /// Frames per fitting video (4n+1).
    #[arg(long, default_value_t = 5)]
    frames: i32,
    /// Latent cells per side of the fitting videos.
    #[arg(long, default_value_t = 4)]
    cells: i32,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let mut is_fixture = false;
    let vae = if let Ok(fx) = Fixture::open(&args.source)
        && (fx.case.starts_with("vae21") || fx.case.starts_with("vae22"))
    {
        is_fixture = true;
        let kind = if fx.case.starts_with("vae22") {
            VaeKind::Wan22
        } else {
            VaeKind::Wan21
        };
        let cfg = VaeConfig::from_constructor(kind, fx.cfg("constructor")?)?;
        WanVae::load(cfg, &fx.params()?)?
    } else {
        let cfg = match args.kind.as_deref() {
            Some("wan21") => VaeConfig::wan21(),
            Some("wan22") => VaeConfig::wan22(),
            Some(k) => bail!("unknown --kind `{k}` (wan21 or wan22)"),
            None => bail!(
                "{}: not a VAE fixture; pass --kind wan21|wan22",
                args.source.display()
            ),
        };
        let st = SafeTensors::open(&args.source)?;
        let mut params = BTreeMap::new();
        for name in st.names() {
            params.insert(name.to_string(), st.array(name)?);
        }
        WanVae::load(cfg, &params)?
    };
    let out = match &args.out {
        Some(p) => p.clone(),
        // Fixture folders are shared references: never write beside them by default.
        None if is_fixture => bail!("SOURCE is a fixture: pass --out FILE"),
        None => args
            .source
            .parent()
            .map(|d| d.join(PREVIEW_FILE))
            .context("SOURCE has no parent folder; pass --out")?,
    };
    let t0 = std::time::Instant::now();
    let (pv, report) = Previewer::fit(
        &vae,
        args.samples,
        args.frames,
        (args.cells, args.cells),
        args.seed,
    )?;
    pv.save(&out, Some(&report))
        .with_context(|| format!("writing {}", out.display()))?;
    println!(
        "{}: fitted on {} videos in {:.1}s; held-out PSNR {:.2} dB (flat frame {:.2} dB), max |err| {:.3}",
        out.display(),
        report.samples,
        t0.elapsed().as_secs_f64(),
        report.psnr_db,
        report.mean_psnr_db,
        report.max_abs
    );
    Ok(())
}
