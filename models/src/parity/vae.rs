//! Parity cases for the VAEs: `vae22` and `vae21` (official `WanVAE_` through the
//! `Wan2_{1,2}_VAE` wrappers): chunked encode (latent, mu, log_var, per-chunk encoder
//! outputs) and chunked decode (conv2 output, first decoder chunk, video with and
//! without the clamp). Sizes, frame counts and dims all come from the file.
use crate::error::Result;
use crate::fixture::{Check, Fixture, compare};
use crate::vae::{RunOpts, Trace, VaeConfig, VaeKind, WanVae};

/// Fixture README: ≤ 1e-4 for every VAE output and intermediate.
const TOL_VAE: f64 = 1e-4;

pub fn vae(fx: &Fixture, kind: VaeKind) -> Result<Vec<Check>> {
    let cfg = VaeConfig::from_constructor(kind, fx.cfg("constructor")?)?;
    let vae = WanVae::load(cfg, &fx.params()?)?;
    let mut checks = Vec::new();

    let mut trace = Trace::new();
    if fx.has("input/video") {
        let enc = vae.encode_with(
            &fx.get_f32("input/video")?,
            RunOpts {
                trace: Some(&mut trace),
                ..Default::default()
            },
        )?;
        for (name, got) in [
            ("output/latent", &enc.latent),
            ("output/mu", &enc.mu),
            ("output/log_var", &enc.log_var),
        ] {
            if fx.has(name) {
                checks.push(compare(name, got, &fx.get(name)?, TOL_VAE)?);
            }
        }
    }
    if fx.has("input/z") {
        let z = fx.get_f32("input/z")?;
        let unclamped = vae.decode_unclamped(
            &z,
            RunOpts {
                trace: Some(&mut trace),
                ..Default::default()
            },
        )?;
        let clamped = mlx_rs::ops::clip(&unclamped, (-1.0f32, 1.0f32))?;
        for (name, got) in [
            ("output/video_unclamped", &unclamped),
            ("output/video", &clamped),
        ] {
            if fx.has(name) {
                checks.push(compare(name, got, &fx.get(name)?, TOL_VAE)?);
            }
        }
    }
    let (mean, inv_std) = vae.scale();
    trace.insert("scale_mean".into(), mean.clone());
    trace.insert("scale_inv_std".into(), inv_std.clone());
    for name in fx.with_prefix("inter/") {
        let key = &name["inter/".len()..];
        let want = fx.get(&name)?;
        match trace.get(key) {
            Some(got) => checks.push(compare(&name, got, &want, TOL_VAE)?),
            None => checks.push(Check {
                name: name.clone(),
                shape: want.shape().to_vec(),
                err: f64::INFINITY,
                tol: TOL_VAE,
                absolute: false,
                note: "not produced by this implementation".into(),
            }),
        }
    }
    Ok(checks)
}
