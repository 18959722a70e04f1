//! Parity against the golden fixtures: each case builds the module from the file's own
//! `config` and `param/*`, runs it on `input/*`, and compares every recorded output and
//! intermediate. Nothing about a particular fixture (sizes, seeds, layer or shard counts)
//! is hard-coded: a file of a known `case` kind with other dimensions works the same.
mod dit;
pub mod e2e;
mod pipe;
mod resize;
mod sched;
mod t5;
mod train;
mod vae;

use std::path::Path;

use crate::error::{Error, Result};
use crate::fixture::{Check, Fixture, Report};
use crate::pipeline::SolverKind;

/// Case kinds this build knows (metadata `case`, or a prefix of it).
pub const SUPPORTED: &[&str] = &[
    "rope_and_time",
    "dit_ti2v",
    "dit_t2v",
    "dit_i2v",
    "sched_unipc",
    "sched_dpmpp",
    "pipe_ti2v",
    "pipe_ti2v_t2v",
    "e2e_ti2v_t2v",
    "e2e_ti2v_i2v",
    "e2e_t2v_a14b",
    "e2e_i2v_a14b",
    "resize_ti2v",
    "t5_encoder",
    "tokenizer",
    "vae22",
    "vae21",
    "train_dit",
];

/// Run one fixture file. Unknown case kinds give [`Error::Unsupported`].
pub fn run_file(path: &Path) -> Result<Report> {
    let fx = Fixture::open(path)?;
    let case = if fx.case.is_empty() {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    } else {
        fx.case.clone()
    };
    let checks = match case.as_str() {
        "rope_and_time" => dit::rope_and_time(&fx)?,
        c if c.starts_with("dit_") => dit::dit(&fx)?,
        "sched_unipc" => sched::sched(&fx, SolverKind::Unipc)?,
        "sched_dpmpp" => sched::sched(&fx, SolverKind::Dpmpp)?,
        c if c.starts_with("pipe_ti2v") => pipe::pipe_ti2v(&fx)?,
        c if c.starts_with("e2e_") => e2e::e2e(&fx)?,
        c if c.starts_with("resize_ti2v") => {
            let mut checks = resize::resize_ti2v(&fx)?;
            checks.push(coverage(&fx, &checks, &[]));
            checks
        }
        "t5_encoder" => t5::t5_encoder(&fx)?,
        "tokenizer" => t5::tokenizer(&fx)?,
        c if c.starts_with("vae22") => vae::vae(&fx, crate::vae::VaeKind::Wan22)?,
        c if c.starts_with("vae21") => vae::vae(&fx, crate::vae::VaeKind::Wan21)?,
        c if c.starts_with("train_dit") => train::train_dit(&fx)?,
        other => {
            return Err(Error::Unsupported(format!(
                "fixture case `{other}` (supported: {})",
                SUPPORTED.join(", ")
            )));
        }
    };
    Ok(Report {
        file: path.to_path_buf(),
        case,
        checks,
    })
}

/// One check that fails when a recorded `inter/*` or `output/*` tensor (other than the
/// `informative` ones) was not compared, so a fixture recording more than this build
/// checks cannot pass silently.
pub(crate) fn coverage(fx: &Fixture, checks: &[Check], informative: &[&str]) -> Check {
    let missing: Vec<&str> = fx
        .names()
        .filter(|n| n.starts_with("inter/") || n.starts_with("output/"))
        .filter(|n| !informative.contains(n) && !checks.iter().any(|c| c.name == *n))
        .collect();
    Check {
        name: "coverage".into(),
        shape: vec![],
        err: missing.len() as f64,
        tol: 0.0,
        absolute: true,
        note: if missing.is_empty() {
            "every recorded inter/output tensor compared".into()
        } else {
            format!("not compared: {}", missing.join(", "))
        },
    }
}
