//! The mock Hugging Face Hub as a process, for the app E2E (`scripts/e2e-app.sh`):
//! `mock_hub ROOT [--port N] [--bytes-per-sec N] [--log FILE]` serves every folder of
//! ROOT as a repo `<owner>/<folder>` (see `wan::hub::mock`), prints
//! `mock hub: http://127.0.0.1:PORT` and runs until killed.
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use wan::hub::mock::{MockHub, MockOptions};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let root = PathBuf::from(
        args.next()
            .context("usage: mock_hub ROOT [--port N] [--bytes-per-sec N] [--log FILE]")?,
    );
    let mut opts = MockOptions::default();
    let mut port = 0u16;
    while let Some(a) = args.next() {
        let v = args.next().with_context(|| format!("{a} needs a value"))?;
        match a.as_str() {
            "--port" => port = v.parse()?,
            "--bytes-per-sec" => opts.bytes_per_sec = Some(v.parse()?),
            "--log" => opts.log_file = Some(PathBuf::from(v)),
            _ => bail!("unknown option {a}"),
        }
    }
    let hub = MockHub::start_on(&root, opts, port)?;
    println!("mock hub: {}", hub.url());
    loop {
        std::thread::park();
    }
}
