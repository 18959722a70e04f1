//! `download REPO_ID DEST [--revision REV] [--endpoint URL]`: a whole Hugging Face model
//! repo (e.g. `Wan-AI/Wan2.2-TI2V-5B`) into DEST, resumable and verified (see `wan::hub`).
//! The endpoint is `--endpoint`, else `$HF_ENDPOINT`, else https://huggingface.co.
//! Ctrl-C (or a kill) keeps what was received: run the same command again to resume.
//! Exit code: 0 done, 1 failed, 130 cancelled.
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use wan::hub::{self, DownloadOptions};
use wan::pipeline::CancelToken;

/// Download a model repository from the Hugging Face Hub.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Repository id, e.g. Wan-AI/Wan2.2-TI2V-5B.
    repo_id: String,
    /// Folder to download into (created; an unfinished download there is resumed).
    dest: PathBuf,
    /// Branch, tag or commit.
    #[arg(long, default_value = "main")]
    revision: String,
    /// Hub URL (default: $HF_ENDPOINT, else https://huggingface.co).
    #[arg(long)]
    endpoint: Option<String>,
}

fn run(args: &Args, cancel: &CancelToken) -> Result<()> {
    let mut opts = DownloadOptions::new(hub::endpoint(args.endpoint.as_deref())?);
    opts.revision = args.revision.clone();
    opts.cancel = Some(cancel.clone());
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {wide_msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    eprintln!("{} → {}", args.repo_id, args.dest.display());
    let result = hub::download(&args.repo_id, &args.dest, &opts, &mut |p| {
        bar.set_length(p.total);
        bar.set_position(p.done);
        bar.set_message(format!("[{}/{}] {}", p.file_index, p.files, p.file));
    });
    bar.finish_and_clear();
    let s = result?;
    println!(
        "{}@{}: {} files, {:.2} GB in {} ({:.2} GB received now, {:.2} GB already there) in {:.1}s",
        s.repo,
        &s.commit[..12.min(s.commit.len())],
        s.files,
        s.total_bytes as f64 / 1e9,
        s.dest.display(),
        s.received as f64 / 1e9,
        s.reused as f64 / 1e9,
        s.wall_s
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let cancel = CancelToken::new();
    let c = cancel.clone();
    if let Err(e) = ctrlc::set_handler(move || c.cancel()) {
        eprintln!("warning: cannot install the Ctrl-C handler: {e}");
    }
    match run(&args, &cancel) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = e
                .downcast_ref::<wan::Error>()
                .map(|w| w.code())
                .unwrap_or("error");
            eprintln!("error [{code}]: {e:#}");
            if code == "cancelled" {
                eprintln!("run the same command again to resume");
                ExitCode::from(130)
            } else {
                ExitCode::from(1)
            }
        }
    }
}
