//! `wan-studio --self-check`: what a freshly installed app depends on, checked without
//! opening a window — the Metal kernels it loads (the bundle's, not the build machine's),
//! one small computation on MLX's default device (the GPU on a Mac), and the ffmpeg it
//! would use. Prints one JSON object; exit code 0 when everything works. The macOS CI
//! runs it on the built .app with the build's kernel folder moved away.
use serde_json::json;

/// Run the checks, print the report, return the process exit code.
pub fn run() -> i32 {
    let metallib = wan::metallib::use_bundled_metallib();
    let mlx = mlx_check();
    let ffmpeg = wan::video::ffmpeg::find();
    let ok = metallib.is_ok() && mlx.is_ok() && ffmpeg.is_ok();
    let report = json!({
        "ok": ok,
        "metallib": match &metallib {
            Ok(Some(p)) => json!(p),
            Ok(None) => json!("MLX default search (not running from a .app)"),
            Err(e) => json!({ "error": e.to_string() }),
        },
        "mlx": match &mlx {
            Ok(device) => json!({ "device": device, "matmul": "ok" }),
            Err(e) => json!({ "error": e }),
        },
        "ffmpeg": match &ffmpeg {
            Ok(f) => json!(f),
            Err(e) => json!({ "error": e.to_string() }),
        },
    });
    println!("{report:#}");
    if ok { 0 } else { 1 }
}

/// A 2×2 matmul on the default device, checked against its known result.
fn mlx_check() -> Result<String, String> {
    use mlx_rs::{Array, Device};
    let device = format!("{:?}", Device::default());
    let a = Array::from_slice(&[1.0f32, 2.0, 3.0, 4.0], &[2, 2]);
    let b = a.matmul(&a).map_err(|e| e.to_string())?;
    b.eval().map_err(|e| e.to_string())?;
    let got: Vec<f32> = b.as_slice::<f32>().to_vec();
    if got == [7.0, 10.0, 15.0, 22.0] {
        Ok(device)
    } else {
        Err(format!("wrong result {got:?}"))
    }
}
