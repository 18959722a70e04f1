//! Calibration of the memory model: measured (MLX's counters, random weights) vs predicted
//! peak for the official architectures at full width — a few DiT blocks of TI2V-5B and of an
//! A14B expert at several token counts, umT5-XXL with 1 and 2 layers, the 2.2 / 2.1 VAEs at
//! small sizes — on this machine's backend.
//!
//! `cargo run -p wan-models --example calibrate [-- --reduced] [--only N]`
//! (full width needs ≈ 6 GB at its largest point; on the shared Linux box run it under
//! `flock /tmp/wan-heavy.lock`). Prints one JSON line per point; README "Memory plan"
//! holds the numbers.
use wan::memory::Backend;
use wan::memory::calibrate::{full_size_points, reduced_points};

fn main() -> anyhow::Result<()> {
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
