//! `parity FILE...`: check fixture files against this implementation.
//! Exit code: 0 all pass, 1 any failure, 2 an unsupported or unreadable case.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Run golden-fixture parity checks (see ../shared/fixtures/README.md).
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Fixture files (`*.safetensors` with `case` metadata).
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let (mut failed, mut unsupported, mut checks, mut files_ok) = (0usize, 0usize, 0usize, 0usize);
    for f in &args.files {
        println!("== {}", f.display());
        let start = std::time::Instant::now();
        match wan::parity::run_file(f) {
            Ok(report) => {
                for c in &report.checks {
                    println!("  {}", c.line());
                }
                checks += report.checks.len();
                let bad = report.checks.iter().filter(|c| !c.passed()).count();
                failed += bad;
                if report.passed() {
                    files_ok += 1;
                }
                println!(
                    "  -> {} [{}]: {} check(s), {} failed, worst {} ({:.1}s)",
                    if report.passed() { "PASS" } else { "FAIL" },
                    report.case,
                    report.checks.len(),
                    bad,
                    report
                        .worst()
                        .map(|w| format!("{} {:.2e}", w.name, w.err))
                        .unwrap_or_default(),
                    start.elapsed().as_secs_f64()
                );
            }
            Err(e @ wan::Error::Unsupported(_)) => {
                unsupported += 1;
                println!("  -> UNSUPPORTED: {e}");
            }
            Err(e) => {
                unsupported += 1;
                println!("  -> ERROR: {e}");
            }
        }
    }
    println!(
        "parity: {files_ok}/{} file(s) passed, {checks} check(s), {failed} failed, {unsupported} unsupported/unreadable",
        args.files.len()
    );
    if failed > 0 {
        ExitCode::from(1)
    } else if unsupported > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}
