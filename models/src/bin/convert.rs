//! `convert SRC DST [--dtype bf16|f16|f32] [--shard-size 5G] [--quantize q8|q4
//! [--group-size 32|64|128] [--recipe default|all] [--keep-dense PATTERN]...]
//! [--quantize-t5 q8|q4]`: an official Wan2.2 folder (or a dense converted one) → a new MLX
//! folder (see `wan::checkpoint::convert`), optionally with 8/4-bit DiT / umT5 Linears.
//! Exit code: 0 done, 1 refused or failed (nothing left at DST).
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use mlx_rs::Dtype;
use wan::checkpoint::convert::{ConvertOptions, DEFAULT_SHARD_BYTES, convert};
use wan::quant::{QuantSpec, Recipe};

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
    /// Store the DiT's block Linears as 8- or 4-bit affine triples (MLX `quantize`).
    #[arg(long)]
    quantize: Option<String>,
    /// Weights per scale/bias pair: 32, 64 (default) or 128.
    #[arg(long, requires = "quantize")]
    group_size: Option<i32>,
    /// `default`: the measured mixed-precision recipe (README); `all`: every block Linear.
    #[arg(long, requires = "quantize", default_value = "default")]
    recipe: String,
    /// Also keep these DiT keys dense (prefix; `*` matches one segment, e.g.
    /// `blocks.*.cross_attn.`). Repeatable.
    #[arg(long, requires = "quantize")]
    keep_dense: Vec<String>,
    /// Store umT5's Linears as 8- or 4-bit triples too.
    #[arg(long)]
    quantize_t5: Option<String>,
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

/// The DiT recipe of the flags (`None` without `--quantize`).
fn recipe(args: &Args) -> wan::Result<Option<Recipe>> {
    let Some(level) = &args.quantize else {
        return Ok(None);
    };
    let spec = QuantSpec::parse(level, args.group_size)?;
    let mut r = match args.recipe.as_str() {
        "default" => Recipe::recommended(spec),
        "all" => Recipe::all(spec),
        other => {
            return Err(wan::Error::Input(format!(
                "--recipe must be `default` or `all`, got `{other}`"
            )));
        }
    };
    r.keep_dense.extend(args.keep_dense.iter().cloned());
    Ok(Some(r))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let quant = recipe(&args).and_then(|r| {
        let t5 = args
            .quantize_t5
            .as_deref()
            .map(|l| QuantSpec::parse(l, args.group_size))
            .transpose()?;
        Ok((r, t5))
    });
    let (quantize, quantize_t5) = match quant {
        Ok(q) => q,
        Err(e) => {
            eprintln!("error[{}]: {e}", e.code());
            return ExitCode::from(1);
        }
    };
    let opts = ConvertOptions {
        dtype: match args.dtype {
            DtypeArg::Bf16 => Dtype::Bfloat16,
            DtypeArg::F16 => Dtype::Float16,
            DtypeArg::F32 => Dtype::Float32,
        },
        shard_bytes: args.shard_size.unwrap_or(DEFAULT_SHARD_BYTES),
        cancel: None,
        quantize,
        quantize_t5,
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
            if let Some(r) = &opts.quantize {
                println!("DiT block Linears quantized: {}", r.describe());
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
