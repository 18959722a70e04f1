//! `convert SRC DST [--dtype bf16|f16|f32] [--shard-size 5G]`: an official Wan2.2 folder
//! (or a converted one) → a new MLX folder (see `wan::checkpoint::convert`).
//! Exit code: 0 done, 1 refused or failed (nothing left at DST).
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use mlx_rs::Dtype;
use wan::checkpoint::convert::{ConvertOptions, DEFAULT_SHARD_BYTES, convert};

#[derive(Clone, Copy, ValueEnum)]
enum DtypeArg {
    Bf16,
    F16,
    F32,
}

/// Convert a Wan2.2 checkpoint folder to MLX safetensors.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Official (or converted) checkpoint folder.
    src: PathBuf,
    /// New output folder (must not exist).
    dst: PathBuf,
    /// Float dtype of the output tensors.
    #[arg(long, value_enum, default_value = "bf16")]
    dtype: DtypeArg,
    /// Shard the DiT above this size: bytes, or with a K/M/G suffix.
    #[arg(long, value_parser = parse_size)]
    shard_size: Option<u64>,
}

fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 'K' | 'k')) => (&s[..i], 1u64 << 10),
        Some((i, 'M' | 'm')) => (&s[..i], 1 << 20),
        Some((i, 'G' | 'g')) => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size (e.g. 5G, 500M, 1000000)"))?;
    n.checked_mul(mult)
        .filter(|&b| b > 0)
        .ok_or_else(|| format!("`{s}` is not a positive size"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let opts = ConvertOptions {
        dtype: match args.dtype {
            DtypeArg::Bf16 => Dtype::Bfloat16,
            DtypeArg::F16 => Dtype::Float16,
            DtypeArg::F32 => Dtype::Float32,
        },
        shard_bytes: args.shard_size.unwrap_or(DEFAULT_SHARD_BYTES),
        cancel: None,
    };
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let start = std::time::Instant::now();
    let result = convert(&args.src, &args.dst, &opts, &mut |name, done, total| {
        bar.set_length(total);
        bar.set_position(done);
        bar.set_message(name.to_string());
    });
    bar.finish_and_clear();
    match result {
        Ok(s) => {
            for f in &s.files {
                println!("wrote {}", f.display());
            }
            println!(
                "converted {} tensors, {:.1} MB in {:.1}s (peak MLX memory {:.1} MB)",
                s.tensors,
                s.bytes as f64 / 1e6,
                start.elapsed().as_secs_f64(),
                mlx_rs::memory::peak_memory().unwrap_or(0) as f64 / 1e6
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error[{}]: {e}", e.code());
            ExitCode::from(1)
        }
    }
}
