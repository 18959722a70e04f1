//! One memory model for the CLI, the app and `bench`: bytes of every component by dtype
//! and quantization, the working set of every phase per backend ([`model`], with the
//! backend constants in one table, [`constants`]), calibrated against MLX's own counters
//! on the real architectures ([`calibrate`]), and the automatic plan ([`plan`]) that fits
//! a job to a machine or refuses it before anything is loaded.
pub mod calibrate;
pub mod constants;
pub mod model;
pub mod plan;

pub use constants::{Backend, RUNTIME, Runtime};
pub use plan::{Arch, Job, Machine, Overrides, Plan, PlanReport, Planner};

use crate::error::{Error, Result};

/// Physical memory of this machine (`hw.memsize` on macOS, `MemTotal` on Linux); `None`
/// when it cannot be read.
pub fn machine_memory() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .map(|kb| kb * 1024)
        })
    }
    #[cfg(target_os = "macos")]
    {
        std::process::Command::new("sysctl")
            .args(["-n", "hw.memsize"])
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    {
        None
    }
}

/// `16GB`, `16 GB`, `24gb`, `512MB`, `16GiB`, `17179869184` → bytes. GB and MB are
/// binary, as Apple counts memory: a "16 GB" Mac has 16 GiB.
pub fn parse_bytes(s: &str) -> Result<u64> {
    let t = s.trim().to_ascii_lowercase().replace(' ', "");
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let v: f64 = num
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v > 0.0)
        .ok_or_else(|| Error::Input(format!("memory `{s}`: expected e.g. 16GB")))?;
    let scale: f64 = match unit {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => (1u64 << 20) as f64,
        "g" | "gb" | "gib" => (1u64 << 30) as f64,
        "t" | "tb" | "tib" => (1u64 << 40) as f64,
        _ => {
            return Err(Error::Input(format!(
                "memory `{s}`: unknown unit `{unit}` (use GB or MB)"
            )));
        }
    };
    Ok((v * scale) as u64)
}
