//! `inspect_model PATH [--json]`: tensors of a `.safetensors` file, a shard index, a `.pth`
//! or a checkpoint folder, grouped by module, with totals, detected kind and inferred
//! config. Headers only (no tensor data read). Exit code: 0 ok, 1 refused or unreadable.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use wan::checkpoint::inspect::{Inspection, Totals, inspect};

/// Inspect Wan2.2 checkpoint files without loading them.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// A .safetensors file, a *.safetensors.index.json, a .pth or a checkpoint folder.
    path: PathBuf,
    /// Machine-readable JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Only the per-module summary, not every tensor.
    #[arg(long)]
    brief: bool,
}

fn human(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.2} G", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.2} M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1} K", n as f64 / 1e3),
        n => n.to_string(),
    }
}

fn print_totals(indent: &str, t: &Totals) {
    println!(
        "{indent}total: {} tensors, {} params ({}), {} bytes ({}B)",
        t.tensors,
        t.params,
        human(t.params),
        t.bytes,
        human(t.bytes)
    );
    for (d, (p, b)) in &t.by_dtype {
        println!("{indent}  {d}: {p} params, {b} bytes");
    }
}

fn print_text(r: &Inspection, brief: bool) {
    if let Some(f) = &r.folder {
        println!("folder {}: {f}", r.path.display());
    }
    for f in &r.files {
        println!(
            "== {} [{} · layout {} · {}]",
            f.path.display(),
            f.kind,
            f.layout,
            f.precision
        );
        println!("  config: {}", f.config);
        for g in &f.groups {
            println!(
                "  {:<40} {:>12} params {:>12} bytes",
                g.prefix, g.params, g.bytes
            );
            if !brief {
                for t in &g.tensors {
                    println!(
                        "      {:<60} {:<5} {:<22} {:>12}",
                        t.name,
                        t.dtype,
                        format!("{:?}", t.shape),
                        t.bytes
                    );
                }
            }
        }
        print_totals("  ", &f.totals);
    }
    if r.files.len() > 1 {
        print_totals("", &r.totals);
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match inspect(&args.path) {
        Ok(r) => {
            if args.json {
                match serde_json::to_string_pretty(&r) {
                    Ok(s) => println!("{s}"),
                    Err(e) => {
                        eprintln!("error[external]: {e}");
                        return ExitCode::from(1);
                    }
                }
            } else {
                print_text(&r, args.brief);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error[{}]: {e}", e.code());
            ExitCode::from(1)
        }
    }
}
